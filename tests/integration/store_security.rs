//! Holes found by probing the store from outside: other users reaching what containers wrote,
//! a second container mounted over the first, a wrong `--root` losing its files, and errors
//! that repeat themselves or panic on a closed pipe.

use crate::util::{Layout, Mounted, Root, small_layer};
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};

/// Runs `snap --root ROOT ARGS…`.
fn snap_at(root: &Path, args: &[&str]) -> Output {
    Command::new(crate::util::snap_binary())
        .arg("--root")
        .arg(root)
        .args(args)
        .env("RUST_LOG", "warn")
        .env_remove("SNAPFS_ROOT")
        .output()
        .expect("run snap")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Runs `args` as user nobody (uid and gid 65534, no supplementary groups). Through a shell:
/// setpriv looks its program up with root's capabilities still in effect (it keeps them
/// across the uid change), so `setpriv … PATH` reaches a PATH that nobody could.
fn as_nobody(args: &[&str]) -> Output {
    Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .args(["sh", "-c", "exec \"$0\" \"$@\""])
        .args(args)
        .output()
        .expect("setpriv")
}

fn image(root: &Root, name: &str) {
    let dir = Layout::new(vec![small_layer(name)]).write(&root.path().join(format!("{name}.oci")));
    root.ok(&["import", dir.to_str().expect("utf-8"), "--name", name]);
}

fn mode(path: &Path) -> u32 {
    fs::metadata(path).expect("stat").permissions().mode() & 0o7777
}

/// Lets every user reach the test's directory, so that only the store's own modes keep them
/// out of it (a temporary directory is 0700).
fn open_to_all(root: &Root) {
    fs::set_permissions(root.path(), fs::Permissions::from_mode(0o755)).expect("chmod");
}

#[test]
fn other_users_reach_neither_uppers_nor_image_files_but_do_reach_the_mount() {
    let root = Root::new();
    open_to_all(&root);
    image(&root, "a");
    let mnt = Mounted::new(&root, "a", "c");
    // Root in the container writes a setuid-root binary into its upper dir.
    fs::create_dir(mnt.path("bin")).expect("mkdir");
    fs::copy("/usr/bin/id", mnt.path("bin/suid_id")).expect("cp id");
    fs::set_permissions(mnt.path("bin/suid_id"), fs::Permissions::from_mode(0o4755))
        .expect("chmod 4755");
    let store = root.store();
    let upper = store.join("containers/c/upper/bin/suid_id");
    assert_eq!(mode(&upper), 0o4755, "the upper holds it");
    let run = as_nobody(&[upper.to_str().expect("utf-8")]);
    assert!(
        !run.status.success() && text(&run.stderr).contains("Permission denied"),
        "another user ran the container's setuid binary by its path in the store: {}{}",
        text(&run.stdout),
        text(&run.stderr)
    );
    for dir in [
        "layers",
        "index",
        "objects",
        "containers",
        "snapshots",
        "db",
        "tmp",
    ] {
        let run = as_nobody(&["ls", store.join(dir).to_str().expect("utf-8")]);
        assert!(
            !run.status.success() && text(&run.stderr).contains("Permission denied"),
            "another user listed {dir}/: {}",
            text(&run.stdout)
        );
    }
    for dir in [
        "",
        "layers",
        "index",
        "objects",
        "containers",
        "snapshots",
        "db",
        "tmp",
    ] {
        assert_eq!(mode(&store.join(dir)), 0o700, "{dir}/");
    }
    // The mount point is the door: users reach the container there, as before (allow_other,
    // default_permissions, dev, suid: a container's own setuid binaries work in it).
    let hello = mnt.path("etc/hello");
    let run = as_nobody(&["cat", hello.to_str().expect("utf-8")]);
    assert_eq!(text(&run.stdout), "hello a\n", "{}", text(&run.stderr));
    let run = as_nobody(&[mnt.path("bin/suid_id").to_str().expect("utf-8"), "-u"]);
    assert_eq!(text(&run.stdout), "0\n", "{}", text(&run.stderr));
    let mountinfo = fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
    let options = mountinfo
        .lines()
        .map(|line| line.split(' ').collect::<Vec<_>>())
        .find(|fields| fields.get(4) == mnt.dir.to_str().as_ref())
        .map(|fields| fields[5].to_string())
        .expect("mounted");
    assert!(
        !options.contains("nosuid") && !options.contains("nodev"),
        "{options}"
    );
}

#[test]
fn an_old_store_gets_its_marker_and_closed_modes_when_opened() {
    let root = Root::new();
    image(&root, "a");
    root.ok(&["create", "a", "c"]);
    let store = root.store();
    // As earlier versions left it: no marker, directories 0755.
    fs::remove_file(store.join("snapfs-store")).expect("rm marker");
    for dir in ["", "layers", "index", "objects", "containers", "db", "tmp"] {
        fs::set_permissions(store.join(dir), fs::Permissions::from_mode(0o755)).expect("chmod");
    }
    // Read-only commands read it as it is, writing nothing.
    let images = root.images();
    assert_eq!(images.as_array().map(Vec::len), Some(1), "{images}");
    assert!(
        !store.join("snapfs-store").exists(),
        "images wrote the marker"
    );
    assert_eq!(mode(&store.join("layers")), 0o755, "images changed a mode");
    // The first command that writes adopts it.
    root.ok(&["gc"]);
    let marker = fs::read_to_string(store.join("snapfs-store")).expect("adopted");
    assert_eq!(marker, "snapfs store\nformat 1\n");
    for dir in ["", "layers", "index", "objects", "containers", "db", "tmp"] {
        assert_eq!(mode(&store.join(dir)), 0o700, "{dir}/");
    }
    root.fsck_clean();
}

#[test]
fn a_directory_with_db_and_objects_is_no_store_to_any_command() {
    let root = Root::new();
    let other = root.path().join("other");
    let keep = [
        "db/mydata",
        "tmp/archive-1-0",
        "layers/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
        "objects/sha256/ab/ab00000000000000000000000000000000000000000000000000000000000000",
    ];
    for path in keep {
        let path = other.join(path);
        fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        fs::write(path, "keep me\n").expect("write");
    }
    for args in [&["images"][..], &["fsck"], &["gc"]] {
        let run = snap_at(&other, args);
        assert!(
            !run.status.success(),
            "{args:?} took {} for a store",
            other.display()
        );
        assert!(
            text(&run.stderr).contains("is not a snapfs store"),
            "{args:?}"
        );
    }
    for path in keep {
        assert_eq!(
            fs::read_to_string(other.join(path)).expect(path),
            "keep me\n"
        );
    }
    assert!(!other.join("snapfs-store").exists() && !other.join("db/conf").exists());
}

#[test]
fn a_containers_root_has_the_images_mode_whatever_the_umask() {
    let root = Root::new();
    image(&root, "a");
    // `snap create` under umask 000, as a careless caller would run it.
    let made = Command::new("sh")
        .args(["-c", "umask 000 && exec \"$0\" create a c"])
        .arg(crate::util::snap_binary())
        .env("SNAPFS_ROOT", root.store())
        .output()
        .expect("sh");
    assert!(made.status.success(), "{}", text(&made.stderr));
    let m = Mounted::mount(&root, "c");
    assert_eq!(mode(&m.dir), 0o755, "the image's root mode");
    assert_eq!(mode(&root.store().join("containers/c/work")), 0o700);
}

#[test]
fn a_mount_point_that_is_mounted_already_or_not_a_directory_is_refused() {
    let root = Root::new();
    image(&root, "a");
    for name in ["e1", "e2", "e3"] {
        root.ok(&["create", "a", name]);
    }
    let e1 = Mounted::mount(&root, "e1");
    let point = e1.dir.to_str().expect("utf-8");
    let err = root.snap(&["mount", "e2", point]).fails();
    assert!(
        err.contains(&format!("{point} is already a mount point")),
        "{err}"
    );
    let err = root.snap(&["umount", "e2"]).fails();
    assert!(err.contains("not mounted"), "{err}");
    assert_eq!(
        fs::read_to_string(e1.path("etc/hello")).expect("e1 serves on"),
        "hello a\n"
    );
    // Of anything, not only of snapfs.
    let tmpfs = root.path().join("tmpfs");
    fs::create_dir(&tmpfs).expect("mkdir");
    let status = Command::new("mount")
        .args(["-t", "tmpfs", "tmpfs"])
        .arg(&tmpfs)
        .status()
        .expect("mount tmpfs");
    assert!(status.success());
    let err = root
        .snap(&["mount", "e3", tmpfs.to_str().expect("utf-8")])
        .fails();
    snapfs::sys::unmount(&tmpfs).expect("umount tmpfs");
    assert!(err.contains("already a mount point (tmpfs"), "{err}");
    let file = root.path().join("file");
    fs::write(&file, "").expect("file");
    let err = root
        .snap(&["mount", "e3", file.to_str().expect("utf-8")])
        .fails();
    assert!(
        err.contains(&format!("{} is not a directory", file.display())),
        "{err}"
    );
    let ps: serde_json::Value = serde_json::from_str(&root.ok(&["ps", "--json"])).expect("ps");
    let mounted: Vec<_> = ps
        .as_array()
        .expect("list")
        .iter()
        .filter(|c| !c["mountpoint"].is_null())
        .map(|c| c["name"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(mounted, ["e1"]);
}

/// A directory of another program's, with names a store also uses.
fn foreign_dir(base: &Path) -> Vec<(&'static str, &'static str)> {
    let files = [
        ("lock", "not yours\n"),
        ("tmp/notes", "keep me\n"),
        ("layers/readme", "keep me\n"),
        (
            "objects/sha256/ab/abababababababababababababababababababababababababababababababab",
            "keep me\n",
        ),
    ];
    for (path, body) in files {
        let path = base.join(path);
        fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        fs::write(path, body).expect("write");
    }
    files.to_vec()
}

#[test]
fn a_wrong_root_is_refused_and_left_as_it_was() {
    let root = Root::new();
    let other = root.path().join("other");
    let files = foreign_dir(&other);
    let layout = Layout::new(vec![small_layer("x")]).write(&root.path().join("x"));
    let layout = layout.to_str().expect("utf-8");
    for args in [
        &["images"][..],
        &["ps"],
        &["df"],
        &["fsck"],
        &["gc"],
        &["import", layout],
        &["create", "x", "c"],
    ] {
        let run = snap_at(&other, args);
        let err = text(&run.stderr);
        assert!(
            !run.status.success(),
            "{args:?} worked on {}",
            other.display()
        );
        assert!(
            err.contains(&format!(
                "{} is not a snapfs store (no snapfs-store marker) and is not empty",
                other.display()
            )),
            "{args:?}: {err}"
        );
    }
    for (path, body) in files {
        assert_eq!(fs::read_to_string(other.join(path)).expect(path), body);
    }
    assert!(!other.join("snapfs-store").exists());
    assert!(!other.join("db").exists());
}

#[test]
fn read_only_commands_create_nothing_where_there_is_no_store() {
    let root = Root::new();
    let missing = root.path().join("missing");
    let empty = root.path().join("empty");
    fs::create_dir(&empty).expect("mkdir");
    for dir in [&missing, &empty] {
        for args in [
            &["images"][..],
            &["ps"],
            &["df"],
            &["fsck"],
            &["images", "--json"],
        ] {
            let run = snap_at(dir, args);
            assert!(run.status.success(), "{args:?}: {}", text(&run.stderr));
        }
        let run = snap_at(dir, &["inspect", "x"]);
        assert!(text(&run.stderr).contains("no image named \"x\""));
    }
    assert!(!missing.exists(), "a read-only command made the root");
    assert_eq!(fs::read_dir(&empty).expect("ls").count(), 0);
    // A command that writes makes the store, with its marker.
    let run = snap_at(&empty, &["gc"]);
    assert!(run.status.success(), "{}", text(&run.stderr));
    assert_eq!(
        fs::read_to_string(empty.join("snapfs-store")).expect("marker"),
        "snapfs store\nformat 1\n"
    );
}

/// A read-only bind mount of a directory, unmounted when dropped.
struct ReadOnlyBind(std::path::PathBuf);

impl ReadOnlyBind {
    fn new(source: &Path, target: &Path) -> Self {
        fs::create_dir_all(target).expect("mkdir");
        let bound = Command::new("mount")
            .arg("--bind")
            .arg(source)
            .arg(target)
            .status()
            .expect("mount --bind");
        assert!(bound.success());
        let bind = ReadOnlyBind(target.to_path_buf());
        let read_only = Command::new("mount")
            .args(["-o", "remount,bind,ro"])
            .arg(target)
            .status()
            .expect("mount -o remount,bind,ro");
        assert!(read_only.success());
        bind
    }
}

impl Drop for ReadOnlyBind {
    fn drop(&mut self) {
        let _ = snapfs::sys::unmount(&self.0);
    }
}

#[test]
fn a_read_only_store_can_be_listed_and_checked() {
    let root = Root::new();
    image(&root, "a");
    root.ok(&["create", "a", "c"]);
    let view = ReadOnlyBind::new(&root.store(), &root.path().join("ro"));
    let images = snap_at(&view.0, &["images", "--json"]);
    assert!(images.status.success(), "{}", text(&images.stderr));
    let images: serde_json::Value = serde_json::from_slice(&images.stdout).expect("json");
    assert_eq!(images[0]["names"][0], "a", "{images}");
    for args in [&["ps"][..], &["df"], &["inspect", "a"], &["fsck"]] {
        let run = snap_at(&view.0, args);
        assert!(run.status.success(), "{args:?}: {}", text(&run.stderr));
    }
    assert!(text(&snap_at(&view.0, &["ps"]).stdout).contains("c "));
    assert!(text(&snap_at(&view.0, &["fsck"]).stdout).contains("no problems"));
    let run = snap_at(&view.0, &["gc"]);
    assert!(!run.status.success());
    assert!(
        text(&run.stderr).contains("Read-only file system"),
        "{}",
        text(&run.stderr)
    );
    // The writable store is the same as before, and works on.
    root.ok(&["images"]);
}

#[test]
fn gc_removes_only_files_named_as_the_store_names_them() {
    let root = Root::new();
    image(&root, "a");
    let store = root.store();
    let strays = [
        "tmp/notes.txt",
        "layers/README",
        "index/notes",
        "objects/sha256/stray",
        "objects/sha256/ab/not-a-digest",
        "objects/sha256/zz",
    ];
    for stray in strays {
        let path = store.join(stray);
        fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        fs::write(&path, "someone else's\n").expect("write");
    }
    // Its own leftovers do go.
    fs::write(store.join("tmp/object-1-2"), "partial").expect("write");
    fs::create_dir(store.join("objects/sha256/00")).expect("shard");
    let garbage = store.join(format!("objects/sha256/00/00{}", "0".repeat(62)));
    fs::write(&garbage, "garbage").expect("write");
    let gc: serde_json::Value = serde_json::from_str(&root.ok(&["gc", "--json"])).expect("json");
    assert_eq!(gc["tmp_files"], 1, "{gc:#}");
    assert_eq!(gc["objects"], 1, "{gc:#}");
    assert!(!garbage.exists() && !store.join("tmp/object-1-2").exists());
    let unknown: Vec<String> = gc["unknown"]
        .as_array()
        .expect("unknown")
        .iter()
        .map(|p| p.as_str().unwrap_or_default().to_string())
        .collect();
    for stray in strays {
        assert!(store.join(stray).exists(), "gc removed {stray}");
        let path = store.join(stray).display().to_string();
        assert!(unknown.contains(&path), "{path} not reported: {gc:#}");
    }
    let human = root.ok(&["gc"]);
    assert!(human.contains("left alone 6 files"), "{human}");
    root.ok(&["inspect", "a"]);
}

/// Fails if a line of `stderr` says the same thing twice ("X: X").
fn assert_each_cause_once(what: &str, stderr: &str) {
    for line in stderr.lines() {
        let parts: Vec<&str> = line.split(": ").collect();
        for (i, part) in parts.iter().enumerate() {
            assert!(
                !parts[i + 1..].contains(part),
                "{what}: {part:?} repeated in {line:?}"
            );
        }
        assert!(
            line.matches("(os error").count() <= 1,
            "{what}: two causes in {line:?}"
        );
    }
}

#[test]
fn errors_name_each_cause_once() {
    let root = Root::new();
    image(&root, "a");
    root.ok(&["create", "a", "c"]);
    let missing = root.path().join("missing/dir");
    let missing = missing.to_str().expect("utf-8");
    let out = format!("{missing}/out.tar");
    let not_a_dir = "/proc/version/not-a-dir";
    for args in [
        &["import", missing][..],
        &["mount", "c", missing],
        &["export", "a", "--output", &out],
        &["--root", not_a_dir, "images"],
        &["--root", not_a_dir, "gc"],
    ] {
        let err = root.snap(args).fails();
        assert!(err.contains("(os error"), "{args:?}: {err}");
        assert_each_cause_once(&format!("{args:?}"), &err);
    }
}

#[test]
fn a_closed_stdout_ends_a_command_quietly() {
    let root = Root::new();
    image(&root, "a");
    root.ok(&["create", "a", "c"]);
    for args in [
        &["df"][..],
        &["images"],
        &["images", "--json"],
        &["ps"],
        &["inspect", "a"],
        &["fsck"],
        &["gc"],
    ] {
        let (reader, writer) = std::io::pipe().expect("pipe");
        drop(reader);
        let run = Command::new(crate::util::snap_binary())
            .args(args)
            .env("SNAPFS_ROOT", root.store())
            .stdout(writer)
            .stderr(Stdio::piped())
            .output()
            .expect("run snap");
        assert_eq!(
            run.status.code(),
            Some(141),
            "{args:?}: {}",
            text(&run.stderr)
        );
        assert_eq!(text(&run.stderr), "", "{args:?}");
    }
    // As a shell pipe: `snap df | head -c1`.
    let run = Command::new("bash")
        .args(["-c", "set -o pipefail; \"$0\" df | head -c1 >/dev/null"])
        .arg(crate::util::snap_binary())
        .env("SNAPFS_ROOT", root.store())
        .output()
        .expect("bash");
    assert!(
        matches!(run.status.code(), Some(0 | 141)),
        "{:?}: {}",
        run.status,
        text(&run.stderr)
    );
    assert!(
        !text(&run.stderr).contains("panicked"),
        "{}",
        text(&run.stderr)
    );
}

#[test]
fn umount_says_what_is_wrong() {
    let root = Root::new();
    image(&root, "a");
    let err = root.snap(&["umount", "nope"]).fails();
    assert!(err.contains("no container named \"nope\""), "{err}");
    let mnt = Mounted::new(&root, "a", "c");
    let mut user = Command::new("sleep")
        .arg("60")
        .current_dir(&mnt.dir)
        .spawn()
        .expect("sleep in the mount");
    let err = root.snap(&["umount", "c"]).fails();
    assert!(
        err.contains("unmounting container c:")
            && err.contains(&format!("{} is busy", mnt.dir.display()))
            && !err.contains("mounting container c at"),
        "{err}"
    );
    assert!(mnt.path("etc/hello").exists(), "still mounted");
    // Lazily: detached at once; the daemon serves the process and exits after it.
    let out = root.ok(&["umount", "--lazy", "c"]);
    assert!(out.contains("detached c"), "{out}");
    assert!(!snapfs::sys::is_mount_point(&mnt.dir));
    let _ = user.kill();
    let _ = user.wait();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !root.snap(&["rm", "c"]).output.status.success() {
        assert!(
            std::time::Instant::now() < deadline,
            "the daemon did not exit"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}
