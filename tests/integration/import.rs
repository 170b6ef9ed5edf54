//! Importing the real test images from every source format.

use crate::util::{
    Layout, Root, diff, dump_dir, dump_index, small_layer, tar_dir, test_images, write_index,
};

fn image_id(root: &Root, name: &str) -> String {
    let v: serde_json::Value =
        serde_json::from_str(&root.ok(&["inspect", name, "--json"])).expect("inspect json");
    v["id"].as_str().expect("id").to_string()
}

#[test]
fn layout_oci_archive_and_docker_archive_give_one_image_id() {
    let images = test_images();
    let root = Root::new();
    let layout = images.join("oci");
    root.ok(&[
        "import",
        layout.to_str().unwrap(),
        "--tag",
        "app",
        "--name",
        "from-layout",
    ]);
    root.import_test_image("app.oci.tar", "from-oci-archive");
    root.import_test_image("app.docker.tar", "from-docker-archive");
    let ids: Vec<String> = ["from-layout", "from-oci-archive", "from-docker-archive"]
        .iter()
        .map(|n| image_id(&root, n))
        .collect();
    assert_eq!(ids[0], ids[1]);
    assert_eq!(ids[0], ids[2]);
    assert_eq!(
        root.images().as_array().map(Vec::len),
        Some(1),
        "one image with three names"
    );
    root.fsck_clean();
}

fn assert_index_equals_unpack(name: &str, source: &str, unpacked: &str) -> crate::util::Tree {
    let images = test_images();
    let root = Root::new();
    root.import_test_image(source, name);
    let id = image_id(&root, name);
    let ours = dump_index(&root.store(), &id);
    let theirs = dump_dir(&images.join(unpacked).join("rootfs"));
    // The root directory itself is made by umoci, not taken from a layer.
    let mut ours_without_root = ours.clone();
    let mut theirs_without_root = theirs.clone();
    ours_without_root.remove("");
    theirs_without_root.remove("");
    let differences = diff("snapfs", &ours_without_root, "umoci", &theirs_without_root);
    assert!(
        differences.is_empty(),
        "{} differences:\n{}",
        differences.len(),
        differences.join("\n")
    );
    assert!(ours.len() > 1000, "a real image has many entries");
    ours
}

#[test]
fn app_index_equals_umoci_unpack() {
    let tree = assert_index_equals_unpack("app", "app.oci.tar", "app.unpacked");
    // The comparison covered what the app layer was built to exercise.
    assert_eq!(tree["app/hard1"].link_group.as_deref(), Some("app/hard1"));
    assert_eq!(tree["app/hard2"].link_group.as_deref(), Some("app/hard1"));
    assert_eq!(
        tree["app/hard1"].xattrs,
        vec![(b"user.snapfs.test".to_vec(), b"hello".to_vec())]
    );
    assert_eq!(tree["app/setuid"].mode, 0o4755);
    assert_eq!(tree["app/fifo"].kind, "fifo");
    assert_eq!(tree["app/owned-by-1000"].uid, 1000);
    assert_eq!(tree["app/big1.bin"].content, tree["app/big2.bin"].content);
    assert!(!tree.contains_key("etc/motd"), "whiteouts hide lower files");
    let apt_docs: Vec<_> = tree
        .keys()
        .filter(|k| k.starts_with("usr/share/doc/apt/"))
        .collect();
    assert_eq!(
        apt_docs,
        ["usr/share/doc/apt/README.snapfs"],
        "the opaque dir hides the lower tree"
    );
}

#[test]
fn python_index_equals_umoci_unpack() {
    assert_index_equals_unpack("python", "python.docker.tar", "python.unpacked");
}

#[test]
fn shared_and_rebuilt_layers_are_stored_once() {
    let images = test_images();
    let root = Root::new();
    let layout = images.join("oci");
    for tag in ["python", "app", "app-rebuilt"] {
        root.ok(&[
            "import",
            layout.to_str().unwrap(),
            "--tag",
            tag,
            "--name",
            tag,
        ]);
    }
    let df: serde_json::Value = serde_json::from_str(&root.ok(&["df", "--json"])).expect("df json");
    let overhead = df["overhead_ratio"].as_f64().expect("ratio");
    assert!(
        overhead <= 1.05,
        "store takes {overhead:.3}x its distinct contents: {df:#}"
    );
    assert!(df["dedup_ratio"].as_f64().expect("ratio") > 2.0, "{df:#}");
    // Importing the same images again adds no objects.
    let before = df["stored_bytes"].as_u64().expect("bytes");
    let again: serde_json::Value = serde_json::from_str(&root.ok(&[
        "import",
        layout.to_str().unwrap(),
        "--tag",
        "app-rebuilt",
        "--json",
    ]))
    .expect("json");
    assert_eq!(again["new_objects"], 0);
    let df: serde_json::Value = serde_json::from_str(&root.ok(&["df", "--json"])).expect("df json");
    assert!(df["stored_bytes"].as_u64().expect("bytes") < before + 64 * 1024);
    root.fsck_clean();
}

#[test]
fn layout_with_several_images_needs_a_tag() {
    let images = test_images();
    let root = Root::new();
    let err = root
        .snap(&["import", images.join("oci").to_str().unwrap()])
        .fails();
    assert!(
        err.contains("--tag") && err.contains("app-rebuilt") && err.contains("python"),
        "{err}"
    );
    let err = root
        .snap(&[
            "import",
            images.join("oci").to_str().unwrap(),
            "--tag",
            "nope",
        ])
        .fails();
    assert!(err.contains("no image tagged \"nope\""), "{err}");
    assert_eq!(root.images(), serde_json::json!([]));
}

#[test]
fn multi_platform_index_picks_the_host_or_the_asked_platform() {
    let root = Root::new();
    let dir = root.path().join("multi");
    let mut amd = Layout::new(vec![small_layer("amd64")]);
    amd.platform = Some(("linux", "amd64"));
    let mut arm = Layout::new(vec![small_layer("arm64")]);
    arm.platform = Some(("linux", "arm64"));
    let descriptors = vec![amd.write_manifest(&dir), arm.write_manifest(&dir)];
    write_index(&dir, descriptors);
    let host: serde_json::Value =
        serde_json::from_str(&root.ok(&["import", dir.to_str().unwrap(), "--json"])).expect("json");
    let arm64: serde_json::Value = serde_json::from_str(&root.ok(&[
        "import",
        dir.to_str().unwrap(),
        "--platform",
        "linux/arm64",
        "--name",
        "arm",
        "--json",
    ]))
    .expect("json");
    assert_ne!(host["id"], arm64["id"]);
    let inspected: serde_json::Value =
        serde_json::from_str(&root.ok(&["inspect", "arm", "--json"])).expect("json");
    assert_eq!(inspected["architecture"], "arm64");
    let err = root
        .snap(&["import", dir.to_str().unwrap(), "--platform", "linux/s390x"])
        .fails();
    assert!(
        err.contains("no image for platform linux/s390x") && err.contains("linux/arm64"),
        "{err}"
    );
}

#[test]
fn uncompressed_zstd_and_archived_layouts_import() {
    let root = Root::new();
    let mut plain = Layout::new(vec![small_layer("plain")]);
    plain.compress = "none";
    let dir = plain.write(&root.path().join("plain"));
    root.ok(&["import", dir.to_str().unwrap(), "--name", "plain"]);
    let archive = root.path().join("plain.tar");
    tar_dir(&dir, &archive);
    let out: serde_json::Value =
        serde_json::from_str(&root.ok(&["import", archive.to_str().unwrap(), "--json"]))
            .expect("json");
    assert_eq!(
        out["reused_layers"], 1,
        "the same diff_id is not read twice"
    );
    let mut zstd = Layout::new(vec![small_layer("zstd")]);
    zstd.compress = "zstd";
    let dir = zstd.write(&root.path().join("zstd"));
    root.ok(&["import", dir.to_str().unwrap(), "--name", "zstd"]);
    // a gzip-compressed OCI archive is unpacked to tmp/ and read like any other
    let gz = root.path().join("plain.tar.gz");
    let status = std::process::Command::new("gzip")
        .arg("-k")
        .arg(&archive)
        .status()
        .expect("gzip");
    assert!(status.success());
    root.ok(&["import", gz.to_str().unwrap(), "--name", "gz"]);
    assert_eq!(root.images().as_array().map(Vec::len), Some(2));
    root.fsck_clean();
}

#[test]
fn rootfs_directory_and_tar_import_as_one_layer() {
    let root = Root::new();
    let tree = root.path().join("tree");
    std::fs::create_dir_all(tree.join("bin")).expect("mkdir");
    std::fs::write(tree.join("bin/tool"), b"#!/bin/sh\necho hi\n").expect("write");
    std::fs::hard_link(tree.join("bin/tool"), tree.join("bin/tool2")).expect("link");
    std::os::unix::fs::symlink("tool", tree.join("bin/link")).expect("symlink");
    std::process::Command::new("mkfifo")
        .arg(tree.join("fifo"))
        .status()
        .expect("mkfifo");
    std::process::Command::new("setfattr")
        .args(["-n", "user.k", "-v", "v"])
        .arg(tree.join("bin/tool"))
        .status()
        .expect("setfattr");
    let out: serde_json::Value = serde_json::from_str(&root.ok(&[
        "import",
        tree.to_str().unwrap(),
        "--name",
        "tree",
        "--json",
    ]))
    .expect("json");
    let ours = dump_index(&root.store(), out["id"].as_str().expect("id"));
    let mut theirs = dump_dir(&tree);
    let mut ours_cmp = ours.clone();
    ours_cmp.remove("");
    theirs.remove("");
    let differences = diff("snapfs", &ours_cmp, "dir", &theirs);
    assert!(differences.is_empty(), "{}", differences.join("\n"));
    // the same tree as a gzip tar
    let tarball = root.path().join("tree.tar.gz");
    let status = std::process::Command::new("tar")
        .args(["-czf"])
        .arg(&tarball)
        .arg("-C")
        .arg(&tree)
        .arg(".")
        .status()
        .expect("tar");
    assert!(status.success());
    root.ok(&["import", tarball.to_str().unwrap(), "--name", "tree-tar"]);
    root.fsck_clean();
}
