//! `snap commit` and `snap export`: each kind of change becomes an image equal to the
//! committed container; exports round-trip through umoci, skopeo, containerd and snap itself;
//! a commit under a running writer, a killed commit and bad input lose nothing.

use crate::ctrd::Containerd;
use crate::util::{Mounted, Root, Tree, diff, dump_dir, dump_index};
use sha2::{Digest as _, Sha256};
use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

fn without_root(mut tree: Tree) -> Tree {
    tree.remove("");
    tree
}

/// containerd's applier leaves the unpack time on directories that a layer changes without
/// naming them (seen with the original python image too), so their mtimes are not compared.
fn without_dir_mtimes(mut tree: Tree) -> Tree {
    for node in tree.values_mut() {
        if node.kind == "dir" {
            node.mtime = (0, 0);
        }
    }
    tree
}

fn assert_same(left_name: &str, left: &Tree, right_name: &str, right: &Tree) {
    let differences = diff(left_name, left, right_name, right);
    assert!(
        differences.is_empty(),
        "{} differences:\n{}",
        differences.len(),
        differences.join("\n")
    );
}

fn sh(dir: &Path, script: &str) {
    let out = Command::new("sh")
        .args(["-ec", script])
        .current_dir(dir)
        .output()
        .expect("sh");
    assert!(
        out.status.success(),
        "{script}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `snap commit --json`, parsed.
fn commit(root: &Root, container: &str, image: &str, extra: &[&str]) -> serde_json::Value {
    let mut args = vec!["commit", container, image, "--json"];
    args.extend_from_slice(extra);
    serde_json::from_str(&root.ok(&args)).expect("commit json")
}

/// `snap inspect IMAGE --json`, parsed.
fn inspect(root: &Root, image: &str) -> serde_json::Value {
    serde_json::from_str(&root.ok(&["inspect", image, "--json"])).expect("inspect json")
}

/// A JSON array of strings.
fn strings(value: &serde_json::Value) -> Vec<String> {
    value
        .as_array()
        .expect("an array")
        .iter()
        .map(|v| v.as_str().expect("a string").to_string())
        .collect()
}

fn objects(root: &Root) -> u64 {
    let df: serde_json::Value = serde_json::from_str(&root.ok(&["df", "--json"])).expect("df");
    df["objects"].as_u64().expect("objects")
}

/// The changes a container can make, one kind each, as shell run in the mounted root.
const CHANGES: &[(&str, &str)] = &[
    (
        "new files and dirs",
        "mkdir -p srv/app/deep && printf hello > srv/app/a.txt && head -c 3000000 /dev/urandom > srv/app/deep/big.bin",
    ),
    ("changed file", "echo extra >> etc/issue"),
    (
        "metadata only",
        "chmod 600 etc/issue.net && chown 12:34 etc/shells && touch -d '2001-02-03 04:05:06.789' etc/host.conf && setfattr -n user.note -v kept etc/group",
    ),
    (
        "deleted file and dir",
        "rm etc/issue.net && rm -rf usr/share/doc",
    ),
    (
        "replaced dir",
        "rm -rf etc/apt && mkdir etc/apt && echo only > etc/apt/only",
    ),
    ("renamed dir", "mv etc/default etc/default.old"),
    (
        "links",
        "ln -s /etc/passwd etc/passwd.link && ln etc/shells etc/shells.hard && mkdir -p d && echo h > d/one && ln d/one d/two && chmod 700 usr/bin/perl",
    ),
    (
        "devices and fifos",
        "mknod dev/null2 c 1 3 && mknod dev/loop9 b 7 9 && mkfifo run/fifo1",
    ),
];

#[test]
fn each_kind_of_change_commits_to_an_image_equal_to_the_container() {
    let root = Root::new();
    root.import_test_image("python.docker.tar", "py");
    let all: Vec<&str> = CHANGES.iter().map(|(_, s)| *s).collect();
    let together = all.join(" && ");
    let cases = CHANGES
        .iter()
        .copied()
        .chain([("all together", together.as_str())]);
    for (n, (kind, script)) in cases.enumerate() {
        let name = format!("c{n}");
        let mnt = Mounted::new(&root, "py", &name);
        sh(&mnt.dir, script);
        let report = commit(&root, &name, &format!("img{n}"), &["-m", kind]);
        let id = report["id"].as_str().expect("id");
        let container = dump_dir(&mnt.dir);
        let image = dump_index(&root.store(), id);
        let differences = diff("container", &container, "committed image", &image);
        assert!(
            differences.is_empty(),
            "{kind}: {} differences:\n{}",
            differences.len(),
            differences.join("\n")
        );
        // A container of the new image sees the same tree (its root is its own upper's).
        let again = Mounted::new(&root, &format!("img{n}"), &format!("again{n}"));
        assert_same(
            "committed container",
            &without_root(container),
            "new container",
            &without_root(dump_dir(&again.dir)),
        );
        // The committed container goes on, on its own upper; the image does not change.
        sh(&mnt.dir, "echo after > after-commit");
        assert!(!again.path("after-commit").exists());
        assert_eq!(dump_index(&root.store(), id), image, "{kind}");
    }
    root.fsck_clean();
}

#[test]
fn unchanged_contents_add_no_objects() {
    let root = Root::new();
    root.import_test_image("python.docker.tar", "py");
    let _untouched = Mounted::new(&root, "py", "untouched");
    let before = objects(&root);
    let report = commit(&root, "untouched", "same", &[]);
    assert_eq!(report["new_objects"], 1, "only the config is new: {report}");
    assert_eq!(objects(&root), before + 1);

    // Copy-up without a content change (chmod, chown, touch) stores no new content.
    let mnt = Mounted::new(&root, "py", "chmodded");
    sh(
        &mnt.dir,
        "chmod 4755 usr/bin/python3* && chown 1:1 usr/lib/os-release && touch etc/passwd",
    );
    let before = objects(&root);
    let report = commit(&root, "chmodded", "chmodded-img", &[]);
    assert!(report["files"].as_u64().expect("files") >= 3, "{report}");
    assert_eq!(report["new_objects"], 1, "only the config is new: {report}");
    assert_eq!(objects(&root), before + 1);

    // New contents are stored once however many files hold them.
    sh(
        &mnt.dir,
        "for i in 1 2 3 4 5; do echo same > f$i; done && head -c 100000 /dev/zero > z",
    );
    let report = commit(&root, "chmodded", "twice", &[]);
    assert_eq!(report["new_objects"], 3, "config + 2 contents: {report}");
}

#[test]
fn config_changes_history_and_author_are_recorded() {
    let root = Root::new();
    root.import_test_image("python.docker.tar", "py");
    let mnt = Mounted::new(&root, "py", "c");
    sh(&mnt.dir, "echo 'print(42)' > answer.py");
    commit(
        &root,
        "c",
        "answer",
        &[
            "-m",
            "add the answer",
            "-a",
            "Ops <ops@example.com>",
            "-c",
            r#"CMD ["python3", "/answer.py"]"#,
            "-c",
            "ENV ANSWER=42 MODE=\"very sure\"",
            "-c",
            "WORKDIR /srv",
            "-c",
            "USER 1000",
            "-c",
            "LABEL team=storage",
            "-c",
            "EXPOSE 8080/udp",
        ],
    );
    let info = inspect(&root, "answer");
    let config = &info["config"];
    assert_eq!(config["author"], "Ops <ops@example.com>");
    let runtime = &config["config"];
    assert_eq!(runtime["Cmd"], serde_json::json!(["python3", "/answer.py"]));
    let env = runtime["Env"].as_array().expect("env");
    assert!(env.contains(&serde_json::json!("ANSWER=42")), "{env:?}");
    assert!(
        env.contains(&serde_json::json!("MODE=very sure")),
        "{env:?}"
    );
    assert_eq!(runtime["WorkingDir"], "/srv");
    assert_eq!(runtime["User"], "1000");
    assert_eq!(runtime["Labels"]["team"], "storage");
    assert!(runtime["ExposedPorts"]["8080/udp"].is_object());
    let history = config["history"].as_array().expect("history");
    let last = history.last().expect("an entry");
    assert_eq!(last["comment"], "add the answer");
    assert_eq!(last["created_by"], "snap commit c");
    assert_eq!(
        config["rootfs"]["diff_ids"].as_array().map(Vec::len),
        Some(3)
    );
}

#[test]
fn bad_commit_and_export_input_changes_nothing() {
    let root = Root::new();
    root.import_test_image("python.docker.tar", "py");
    let mnt = Mounted::new(&root, "py", "c");
    sh(&mnt.dir, "echo x > x");
    let before = root.images();
    let objects_before = objects(&root);

    let e = root.snap(&["commit", "nosuch", "img"]).fails();
    assert!(e.contains("no container named \"nosuch\""), "{e}");
    let e = root.snap(&["commit", "c", "py"]).fails();
    assert!(e.contains("an image named \"py\" exists already"), "{e}");
    let e = root.snap(&["commit", "c", "bad name"]).fails();
    assert!(e.contains("invalid image name"), "{e}");
    let e = root
        .snap(&["commit", "c", "img", "-c", "RUN rm -rf /"])
        .fails();
    assert!(e.contains("unknown instruction \"RUN\""), "{e}");
    let e = root
        .snap(&["export", "py", "-o", "/nonexistent-dir/py.tar"])
        .fails();
    assert!(e.contains("/nonexistent-dir"), "{e}");
    let e = root
        .snap(&[
            "export",
            "nosuch",
            "-o",
            root.path().join("x.tar").to_str().unwrap(),
        ])
        .fails();
    assert!(e.contains("no image named \"nosuch\""), "{e}");
    assert!(!root.path().join("x.tar").exists());

    assert_eq!(root.images(), before);
    assert_eq!(objects(&root), objects_before);
    let leftovers: Vec<_> = std::fs::read_dir(root.store().join("tmp"))
        .expect("tmp")
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    root.fsck_clean();
}

/// The digests of the only states a file written whole, in one write, can be in.
fn uniform_digests(len: usize) -> BTreeSet<String> {
    (b'a'..=b'z')
        .map(|c| hex::encode(Sha256::digest(vec![c; len])))
        .collect()
}

#[test]
fn commit_while_a_writer_runs_takes_whole_writes() {
    let root = Root::new();
    root.import_test_image("python.docker.tar", "py");
    let mnt = Mounted::new(&root, "py", "busy");
    std::fs::create_dir(mnt.path("data")).expect("data dir");
    let stop = root.path().join("stop");
    // One big file rewritten in place with single 12 MiB writes, and small files written
    // whole and renamed into place, as a database and a log rotator would.
    let writer = r#"
import os, sys, time
data, stop = sys.argv[1], sys.argv[2]
fd = os.open(data + "/blob", os.O_RDWR | os.O_CREAT, 0o644)
os.pwrite(fd, b"a" * (12 << 20), 0)
open(data + "/ready", "w").close()
i = 0
while not os.path.exists(stop):
    os.pwrite(fd, bytes([97 + i % 26]) * (12 << 20), 0)
    with open(f"{data}/f{i}.tmp", "wb") as f:
        f.write(bytes([97 + i % 26]) * 4096)
    os.rename(f"{data}/f{i}.tmp", f"{data}/f{i}")
    i += 1
    time.sleep(0.02)
"#;
    let mut child = Command::new("python3")
        .args(["-c", writer])
        .arg(mnt.path("data"))
        .arg(&stop)
        .spawn()
        .expect("writer");
    while !mnt.path("data/ready").exists() {
        std::thread::sleep(Duration::from_millis(20));
    }
    let big = uniform_digests(12 << 20);
    let small = uniform_digests(4096);
    for round in 0..3 {
        let report = commit(&root, "busy", &format!("busy{round}"), &[]);
        let tree = dump_index(&root.store(), report["id"].as_str().expect("id"));
        let blob = &tree["data/blob"];
        assert!(
            big.contains(blob.content.as_deref().unwrap_or("")),
            "round {round}: data/blob holds half a write"
        );
        let files: Vec<_> = tree.keys().filter(|k| k.starts_with("data/f")).collect();
        for path in files {
            let node = &tree[path];
            let whole = small.contains(node.content.as_deref().unwrap_or(""));
            assert!(
                whole || (path.ends_with(".tmp") && node.size == 0),
                "round {round}: {path} holds half a write ({} bytes)",
                node.size
            );
        }
        std::thread::sleep(Duration::from_millis(150));
    }
    std::fs::write(&stop, b"").expect("stop");
    assert!(child.wait().expect("writer").success());
    root.fsck_clean();
}

#[test]
fn killed_commit_leaves_no_image_and_the_container_as_it_was() {
    let root = Root::new();
    root.import_test_image("python.docker.tar", "py");
    let mnt = Mounted::new(&root, "py", "c");
    sh(
        &mnt.dir,
        "mkdir many && for i in $(seq 2000); do echo $i > many/$i; done && head -c 150000000 /dev/urandom > big",
    );
    let upper = root.store().join("containers/c/upper");
    let upper_before = dump_dir(&upper);
    let view_before = dump_dir(&mnt.dir);
    let images_before = root.images();
    for delay_ms in [5, 60, 150, 300, 500, 800, 1200] {
        let mut child = Command::new(crate::util::snap_binary())
            .args(["commit", "c", "snapshot", "--quiet"])
            .env("SNAPFS_ROOT", root.store())
            .spawn()
            .expect("spawn commit");
        std::thread::sleep(Duration::from_millis(delay_ms));
        let _ = child.kill();
        let exited = child.wait().expect("wait").success();
        root.fsck_clean();
        // A kill that lands after the commit's transaction (and before the process exits)
        // leaves the whole image: then it is there, checked by fsck, and goes again.
        if exited || root.snap(&["inspect", "snapshot"]).output.status.success() {
            root.ok(&["rmi", "snapshot"]);
        }
        assert_eq!(root.images(), images_before, "killed at {delay_ms} ms");
        assert_same(
            "upper before",
            &upper_before,
            "upper after",
            &dump_dir(&upper),
        );
    }
    assert_same(
        "view before",
        &view_before,
        "view after",
        &dump_dir(&mnt.dir),
    );
    root.ok(&["gc"]);
    let report = root.fsck_clean();
    assert_eq!(report["unreferenced_objects"], 0);
    assert_eq!(
        std::fs::read_dir(root.store().join("tmp"))
            .expect("tmp")
            .count(),
        0
    );
    let report = commit(&root, "c", "snapshot", &[]);
    let image = dump_index(&root.store(), report["id"].as_str().expect("id"));
    assert_same("container", &dump_dir(&mnt.dir), "image", &image);
}

/// `umoci unpack` of an OCI layout directory (tag `tag`) into `dir`; returns the rootfs.
fn umoci_unpack(layout: &Path, tag: &str, dir: &Path) -> std::path::PathBuf {
    let out = Command::new("umoci")
        .arg("unpack")
        .arg("--image")
        .arg(format!("{}:{tag}", layout.display()))
        .arg(dir)
        .output()
        .expect("umoci");
    assert!(
        out.status.success(),
        "umoci unpack: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    dir.join("rootfs")
}

fn untar(archive: &Path, dir: &Path) {
    std::fs::create_dir_all(dir).expect("dir");
    let status = Command::new("tar")
        .arg("-xf")
        .arg(archive)
        .arg("-C")
        .arg(dir)
        .status()
        .expect("tar");
    assert!(status.success());
}

fn path_str(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

#[test]
fn exports_round_trip_through_umoci_skopeo_containerd_and_snap() {
    let root = Root::new();
    root.import_test_image("python.docker.tar", "py");
    let mnt = Mounted::new(&root, "py", "c");
    let all: Vec<&str> = CHANGES.iter().map(|(_, s)| *s).collect();
    sh(&mnt.dir, &all.join(" && "));
    let id = commit(&root, "c", "rt", &[])["id"]
        .as_str()
        .expect("id")
        .to_string();
    let container = without_root(dump_dir(&mnt.dir));
    let out = root.path().join("out");
    std::fs::create_dir(&out).expect("out");
    let oci = out.join("rt.oci.tar");
    let docker = out.join("rt.docker.tar");
    let layout = out.join("rt-layout");
    let zstd = out.join("rt-zstd");
    root.ok(&["export", "rt", "-o", path_str(&oci)]);
    root.ok(&[
        "export",
        "rt",
        "-o",
        path_str(&docker),
        "--format",
        "docker",
    ]);
    root.ok(&[
        "export",
        "rt",
        "-o",
        path_str(&layout),
        "--format",
        "oci-dir",
    ]);
    root.ok(&[
        "export",
        "rt",
        "-o",
        path_str(&zstd),
        "--format",
        "oci-dir",
        "--compress",
        "zstd",
    ]);

    // Deterministic: the same image exports to the same bytes.
    let again = out.join("again.oci.tar");
    root.ok(&["export", "rt", "-o", path_str(&again)]);
    assert!(std::fs::read(&oci).unwrap() == std::fs::read(&again).unwrap());

    // snap imports each back as the same image.
    for source in [&oci, &docker, &layout, &zstd] {
        let other = Root::new();
        other.ok(&["import", path_str(source), "--name", "back"]);
        let images = other.images();
        assert_eq!(images[0]["id"], id.as_str(), "{}", source.display());
    }

    // umoci unpacks the layout dir and the OCI archive (untarred) to the container's tree.
    let unpacked = umoci_unpack(&layout, "rt", &out.join("umoci-dir"));
    assert_same(
        "container",
        &container,
        "umoci (oci-dir)",
        &without_root(dump_dir(&unpacked)),
    );
    untar(&oci, &out.join("oci-untarred"));
    let unpacked = umoci_unpack(&out.join("oci-untarred"), "rt", &out.join("umoci-archive"));
    assert_same(
        "container",
        &container,
        "umoci (oci archive)",
        &without_root(dump_dir(&unpacked)),
    );

    // skopeo copies each format to itself (converting docker to OCI would rewrite the
    // config, so the id, by design of containers/image); snap imports the copies as the image.
    for (from, to) in [
        (
            format!("oci-archive:{}", oci.display()),
            format!("oci:{}:rt", out.join("skopeo-oci").display()),
        ),
        (
            format!("docker-archive:{}", docker.display()),
            format!(
                "docker-archive:{}:rt:latest",
                out.join("skopeo.tar").display()
            ),
        ),
    ] {
        let result = Command::new("skopeo")
            .args(["copy", "--quiet", &from, &to])
            .output()
            .expect("skopeo");
        assert!(
            result.status.success(),
            "skopeo copy {from} {to}: {}",
            String::from_utf8_lossy(&result.stderr)
        );
        let copy = to.split(':').nth(1).expect("path");
        let other = Root::new();
        other.ok(&["import", copy, "--name", "back"]);
        assert_eq!(other.images()[0]["id"], id.as_str(), "{to}");
    }

    // containerd imports both archives; the image it mounts is the container's tree.
    let ctrd = Containerd::start(&out.join("ctrd"), "");
    for (archive, reference) in [
        (&oci, "docker.io/library/rt:latest"),
        (&docker, "docker.io/library/rt:latest"),
    ] {
        ctrd.ctr_ok(&["images", "import", path_str(archive)]);
        let listed = ctrd.ctr_ok(&["images", "ls", "-q"]);
        assert!(listed.lines().any(|l| l == reference), "{listed}");
        let target = out.join("ctr-mount");
        std::fs::create_dir_all(&target).expect("target");
        ctrd.ctr_ok(&["images", "mount", reference, path_str(&target)]);
        let seen = without_dir_mtimes(without_root(dump_dir(&target)));
        ctrd.ctr_ok(&["images", "unmount", "--rm", path_str(&target)]);
        assert_same(
            "container",
            &without_dir_mtimes(container.clone()),
            "containerd",
            &seen,
        );
        ctrd.ctr_ok(&["images", "rm", "--sync", reference]);
    }
}

#[test]
fn reexport_of_an_imported_image_keeps_its_id_and_diff_ids() {
    let root = Root::new();
    root.import_test_image("app.oci.tar", "app");
    let info = inspect(&root, "app");
    let id = info["id"].as_str().expect("id").to_string();
    let diff_ids = info["config"]["rootfs"]["diff_ids"].clone();
    let out = root.path().join("app.tar");
    let report: serde_json::Value = serde_json::from_str(&root.ok(&[
        "export",
        "app",
        "-o",
        path_str(&out),
        "--compress",
        "none",
        "--json",
    ]))
    .expect("export json");
    // Uncompressed, each layer blob is the original tar: its digest is the diff_id.
    let layers: Vec<String> = strings(&report["layers"]);
    let expected: Vec<String> = strings(&diff_ids);
    assert_eq!(layers, expected);
    let other = Root::new();
    other.ok(&["import", path_str(&out), "--name", "back"]);
    assert_eq!(other.images()[0]["id"], id.as_str());
}

#[test]
fn kept_blobs_export_with_the_original_layer_digests() {
    let root = Root::new();
    let source = crate::util::test_images().join("app.oci.tar");
    root.ok(&["import", path_str(&source), "--name", "app", "--keep-blobs"]);
    let info = inspect(&root, "app");
    let original: Vec<String> = info["layers"]
        .as_array()
        .expect("layers")
        .iter()
        .map(|l| {
            l["blob"]["digest"]
                .as_str()
                .expect("blob digest")
                .to_string()
        })
        .collect();
    // gc keeps kept blobs, fsck counts them as referenced; export hands them out as they came.
    root.ok(&["gc"]);
    let report = root.fsck_clean();
    assert_eq!(report["unreferenced_objects"], 0, "{report}");
    let out = root.path().join("app.tar");
    let report: serde_json::Value =
        serde_json::from_str(&root.ok(&["export", "app", "-o", path_str(&out), "--json"]))
            .expect("export json");
    let exported: Vec<String> = strings(&report["layers"]);
    assert_eq!(exported, original);
    let other = Root::new();
    other.ok(&["import", path_str(&out), "--name", "back"]);
    assert_eq!(other.images()[0]["id"], info["id"]);
}

#[test]
fn a_freeze_holds_namespace_changes_until_its_client_lets_go_or_dies() {
    let root = Root::new();
    root.import_test_image("python.docker.tar", "py");
    let mnt = Mounted::new(&root, "py", "c");
    let control = root.store().join("containers/c/control.sock");
    let mkdir_in_background = |name: &str| {
        let path = mnt.path(name);
        let (done, wait) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = done.send(std::fs::create_dir(path).is_ok());
        });
        wait
    };

    let frozen = snapfs::container::freeze(&control).expect("freeze");
    let wait = mkdir_in_background("made-while-frozen");
    assert!(
        wait.recv_timeout(Duration::from_millis(500)).is_err(),
        "a mkdir went through a frozen daemon"
    );
    drop(frozen);
    assert_eq!(wait.recv_timeout(Duration::from_secs(10)), Ok(true));

    // A client killed while holding the freeze thaws the container.
    let mut client = Command::new("python3")
        .args([
            "-c",
            "import socket, sys, time\n\
             s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); s.sendall(b'freeze\\n')\n\
             print(s.recv(7).decode().strip(), flush=True); time.sleep(60)",
        ])
        .arg(&control)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python client");
    let mut answer = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(client.stdout.take().expect("stdout")),
        &mut answer,
    )
    .expect("answer");
    assert_eq!(answer.trim(), "frozen");
    let wait = mkdir_in_background("made-after-kill");
    assert!(wait.recv_timeout(Duration::from_millis(300)).is_err());
    client.kill().expect("kill");
    let _ = client.wait();
    assert_eq!(wait.recv_timeout(Duration::from_secs(10)), Ok(true));
}
