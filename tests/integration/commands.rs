//! The image commands: images, inspect, rmi, df, gc, fsck, and their JSON output.

use crate::util::{Layout, Root, small_layer};

fn two_images(root: &Root) {
    let a = Layout::new(vec![small_layer("base"), small_layer("a")]).write(&root.path().join("a"));
    let b = Layout::new(vec![small_layer("base"), small_layer("b")]).write(&root.path().join("b"));
    root.ok(&["import", a.to_str().unwrap(), "--name", "a"]);
    root.ok(&["import", b.to_str().unwrap(), "--name", "b"]);
}

#[test]
fn images_inspect_and_df_describe_the_store() {
    let root = Root::new();
    two_images(&root);
    let images = root.images();
    assert_eq!(images.as_array().map(Vec::len), Some(2));
    assert_eq!(images[0]["layers"], 2);
    let table = root.ok(&["images"]);
    assert!(
        table.starts_with("NAME") && table.contains("a ") && table.contains("b "),
        "{table}"
    );
    let inspected: serde_json::Value =
        serde_json::from_str(&root.ok(&["inspect", "a", "--json"])).expect("json");
    assert_eq!(inspected["config"]["config"]["Cmd"][0], "/bin/sh");
    assert_eq!(inspected["layers"].as_array().map(Vec::len), Some(2));
    assert!(inspected["layer_details"][0]["entries"].as_u64() == Some(3));
    let id = inspected["id"].as_str().expect("id");
    root.ok(&["inspect", &id[7..19]]);
    let text = root.ok(&["inspect", "a"]);
    assert!(
        text.contains("History:") && text.contains("DIFF_ID"),
        "{text}"
    );
    let df: serde_json::Value = serde_json::from_str(&root.ok(&["df", "--json"])).expect("json");
    assert!(
        df["logical_bytes"].as_u64() > df["content_bytes"].as_u64(),
        "the shared layer is stored once: {df:#}"
    );
    let err = root.snap(&["inspect", "nope"]).fails();
    assert!(err.contains("no image named \"nope\""), "{err}");
}

#[test]
fn rmi_untags_then_removes_and_gc_frees_the_bytes() {
    let root = Root::new();
    two_images(&root);
    let a = root.path().join("a");
    root.ok(&["import", a.to_str().unwrap(), "--name", "a2"]);
    let out = root.ok(&["rmi", "a"]);
    assert!(
        out.contains("untagged: a") && !out.contains("deleted"),
        "{out}"
    );
    let out = root.ok(&["rmi", "a2"]);
    assert!(out.contains("deleted: sha256:"), "{out}");
    let gc: serde_json::Value = serde_json::from_str(&root.ok(&["gc", "--json"])).expect("json");
    assert!(
        gc["objects"].as_u64() >= Some(2),
        "a's config and its own layer's content are freed: {gc:#}"
    );
    assert_eq!(gc["layer_files"], 1, "the shared base layer stays: {gc:#}");
    assert_eq!(gc["index_files"], 1);
    root.ok(&["inspect", "b"]);
    root.fsck_clean();
    let err = root.snap(&["rmi", "a"]).fails();
    assert!(err.contains("no image named"), "{err}");
}

#[test]
fn fsck_finds_corrupt_and_missing_objects() {
    let root = Root::new();
    two_images(&root);
    root.fsck_clean();
    let hello_b = sha256_hex(b"hello b\n");
    let path = root
        .store()
        .join("objects/sha256")
        .join(&hello_b[..2])
        .join(&hello_b);
    let mut perms = std::fs::metadata(&path).expect("object").permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o644);
    std::fs::set_permissions(&path, perms).expect("chmod");
    std::fs::write(&path, b"hello B\n").expect("corrupt");
    let run = root.snap(&["fsck"]);
    assert_eq!(run.output.status.code(), Some(1));
    assert!(
        run.stdout().contains(&hello_b) && run.stdout().contains("corrupt"),
        "{}",
        run.stdout()
    );
    std::fs::remove_file(&path).expect("remove");
    let run = root.snap(&["fsck"]);
    assert_eq!(run.output.status.code(), Some(1));
    assert!(run.stdout().contains("missing"), "{}", run.stdout());
}

#[test]
fn bad_names_and_roots_get_clear_errors() {
    let root = Root::new();
    let dir = Layout::new(vec![small_layer("x")]).write(&root.path().join("x"));
    let err = root
        .snap(&["import", dir.to_str().unwrap(), "--name", "has space"])
        .fails();
    assert!(err.contains("invalid image name"), "{err}");
    let err = root
        .snap(&["import", dir.to_str().unwrap(), "--platform", "linux"])
        .fails();
    assert!(err.contains("os/arch"), "{err}");
    let output = std::process::Command::new(crate::util::snap_binary())
        .args(["images"])
        .env("SNAPFS_ROOT", "/proc/version/not-a-dir")
        .output()
        .expect("run");
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("/proc/version/not-a-dir"));
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(<sha2::Sha256 as sha2::Digest>::digest(bytes))
}
