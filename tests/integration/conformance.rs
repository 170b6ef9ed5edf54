//! Semantics under conditions the operations script does not set, each compared with kernel
//! overlayfs over the same layers: the caller's umask, and what only overlayfs may make.

use crate::util::{Layout, Mounted, Overlay, Root, small_layer};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

/// A root with image `base` (`etc/hello`, `etc/same`).
fn base_image(root: &Root) {
    let layout = Layout::new(vec![small_layer("base")]).write(&root.path().join("base"));
    root.ok(&["import", layout.to_str().unwrap(), "--name", "base"]);
}

/// Runs `script` with `sh -c` in `dir`; its exit status and stderr.
fn sh(dir: &Path, script: &str) -> (bool, String) {
    let out = Command::new("sh")
        .args(["-c", script])
        .current_dir(dir)
        .output()
        .expect("sh");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The modes of what `sh` made under each umask in `dir`.
fn modes_under_umasks(dir: &Path) -> Vec<(String, u32)> {
    let mut out = Vec::new();
    for umask in ["000", "002", "022", "077"] {
        let script = format!(
            "umask {umask} && mkdir d{umask} && : > f{umask} && mkfifo p{umask} && \
             mkdir -m 0777 m{umask} && mkdir etc/d{umask} && : > etc/f{umask}"
        );
        let (ok, err) = sh(dir, &script);
        assert!(ok, "umask {umask}: {err}");
        for name in ["d", "f", "p", "m", "etc/d", "etc/f"] {
            let name = format!("{name}{umask}");
            let mode = std::fs::symlink_metadata(dir.join(&name))
                .expect("made")
                .permissions();
            out.push((name, mode.mode() & 0o7777));
        }
    }
    out
}

#[test]
fn new_entries_get_the_mode_the_callers_umask_leaves_as_on_overlayfs() {
    let root = Root::new();
    base_image(&root);
    let overlay = Overlay::new(&root.store(), "base", &root.path().join("overlay"));
    let m = Mounted::new(&root, "base", "c");
    let theirs = modes_under_umasks(&overlay.dir);
    let ours = modes_under_umasks(&m.dir);
    assert_eq!(ours, theirs, "snapfs, then overlayfs");
    // What overlayfs gives, spelled out (the daemon's own umask is 022).
    assert!(theirs.contains(&("d000".into(), 0o777)));
    assert!(theirs.contains(&("f002".into(), 0o664)));
    assert!(theirs.contains(&("etc/d002".into(), 0o775)));
    drop(m);
    // And they stay so after a remount.
    let m = Mounted::mount(&root, "c");
    let mode = std::fs::metadata(m.path("d000"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o7777, 0o777);
}

#[test]
fn a_whiteout_cannot_be_made_through_the_mount_as_on_overlayfs() {
    let root = Root::new();
    base_image(&root);
    let overlay = Overlay::new(&root.store(), "base", &root.path().join("overlay"));
    let m = Mounted::new(&root, "base", "c");
    for dir in [&overlay.dir, &m.dir] {
        for name in ["w", "etc/hello"] {
            let (ok, err) = sh(dir, &format!("mknod {name} c 0 0"));
            assert!(!ok, "{}: mknod {name} c 0 0 succeeded", dir.display());
            let expected = if name == "w" {
                "not permitted"
            } else {
                "exists"
            };
            assert!(err.contains(expected), "{}: {name}: {err}", dir.display());
        }
        // Other devices are made.
        let (ok, err) = sh(dir, "mknod null c 1 3");
        assert!(ok, "{err}");
    }
    assert!(!m.path("w").exists());
    assert_eq!(std::fs::read(m.path("etc/hello")).unwrap(), b"hello base\n");
}

/// Goes 30 directories of 200-byte names deep in `dir` (6 000 bytes from the root, beyond
/// `PATH_MAX`), changes things there, and prints what it sees (`stat` of each entry).
fn deep_changes(dir: &Path, first: bool) -> String {
    let script = format!(
        "n=$(printf 'd%.0s' $(seq 200)) && for i in $(seq 30); do {mk} cd -P $n; done && \
         {changes} stat -c '%n %F %a %h %s' * | sort && cat g",
        mk = if first { "mkdir $n &&" } else { "" },
        changes = if first {
            "echo hi > f && chmod 640 f && mv f g && ln g h && ln -s g s && mkfifo p && \
             mkdir sub && rmdir sub && : > gone && rm gone && rm h &&"
        } else {
            ""
        },
    );
    let out = Command::new("sh")
        .args(["-ec", &script])
        .current_dir(dir)
        .output()
        .expect("sh");
    assert!(
        out.status.success(),
        "{}: {}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn trees_deeper_than_path_max_work_as_on_overlayfs() {
    let root = Root::new();
    base_image(&root);
    let overlay = Overlay::new(&root.store(), "base", &root.path().join("overlay"));
    let m = Mounted::new(&root, "base", "c");
    let theirs = deep_changes(&overlay.dir, true);
    assert_eq!(deep_changes(&m.dir, true), theirs, "snapfs, then overlayfs");
    assert!(theirs.contains("g regular file 640 1 3"), "{theirs}");
    drop(m);
    let m = Mounted::mount(&root, "c");
    assert_eq!(deep_changes(&m.dir, false), theirs, "after a remount");
}

/// Reads both names of the hardlink `h1` / `d/h2` (so the kernel caches their nodes,
/// attributes and pages), then, with `d/h2` held open by a reader, writes new content
/// through `h1`, which copies it up. Returns the reader's file.
fn write_one_name_of_a_hardlink(dir: &Path) -> std::fs::File {
    for name in ["h1", "d/h2"] {
        assert_eq!(std::fs::read(dir.join(name)).unwrap(), b"old\n", "{name}");
        std::fs::symlink_metadata(dir.join(name)).unwrap();
    }
    let reader = std::fs::File::open(dir.join("d/h2")).unwrap();
    std::fs::write(dir.join("h1"), b"new content\n").unwrap();
    reader
}

/// Whether `d/h2` is the same inode as `h1`, and its link count (by `lstat` only: an open
/// would make the kernel look the name up again).
fn same_inode(dir: &Path) -> (bool, u64) {
    use std::os::unix::fs::MetadataExt;
    let (a, b) = (
        std::fs::symlink_metadata(dir.join("h1")).unwrap(),
        std::fs::symlink_metadata(dir.join("d/h2")).unwrap(),
    );
    (a.ino() == b.ino(), b.nlink())
}

#[test]
fn every_name_of_a_copied_up_hardlink_shows_its_data_and_inode_while_mounted() {
    use tar::EntryType;
    let root = Root::new();
    let tar = crate::util::raw_entry_tar(&[
        (b"h1", EntryType::Regular, None, b"old\n"),
        (b"d/", EntryType::Directory, None, b""),
        (b"d/h2", EntryType::Link, Some(b"h1"), b""),
    ]);
    let layout = Layout::new(vec![tar]).write(&root.path().join("links"));
    root.ok(&["import", layout.to_str().unwrap(), "--name", "links"]);
    let overlay = Overlay::new(&root.store(), "links", &root.path().join("overlay"));
    let m = Mounted::new(&root, "links", "c");
    let _theirs_open = write_one_name_of_a_hardlink(&overlay.dir);
    assert_eq!(same_inode(&overlay.dir), (true, 2), "overlayfs");
    let _ours_open = write_one_name_of_a_hardlink(&m.dir);
    // The kernel is told to drop the names' old node right after the copy-up's locks are
    // released (by a thread of the daemon's): give it a moment, not a remount.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
    while same_inode(&m.dir) != (true, 2) && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert_eq!(
        same_inode(&m.dir),
        (true, 2),
        "snapfs: one inode under both names"
    );
    for dir in [&overlay.dir, &m.dir] {
        assert_eq!(std::fs::read(dir.join("d/h2")).unwrap(), b"new content\n");
    }
}

/// Makes a setgid directory of group 4242, and under each umask a file and a directory in
/// it (and in a plain directory made in it); their modes and groups.
fn setgid_inheritance(dir: &Path) -> Vec<(String, u32, u32)> {
    use std::os::unix::fs::MetadataExt;
    let (ok, err) = sh(dir, "mkdir sg && chgrp 4242 sg && chmod 2775 sg");
    assert!(ok, "{err}");
    let mut out = Vec::new();
    for umask in ["000", "022", "077"] {
        let script = format!(
            "umask {umask} && : > sg/f{umask} && mkdir sg/d{umask} && mkdir -m 0777 sg/m{umask} && \
             : > sg/d{umask}/f && mkdir sg/d{umask}/d"
        );
        let (ok, err) = sh(dir, &script);
        assert!(ok, "umask {umask}: {err}");
        for name in ["f", "d", "m"] {
            let name = format!("sg/{name}{umask}");
            let m = std::fs::symlink_metadata(dir.join(&name)).expect("made");
            out.push((name, m.mode() & 0o7777, m.gid()));
        }
        for name in ["f", "d"] {
            let name = format!("sg/d{umask}/{name}");
            let m = std::fs::symlink_metadata(dir.join(&name)).expect("made");
            out.push((name, m.mode() & 0o7777, m.gid()));
        }
    }
    out
}

#[test]
fn setgid_directories_give_new_entries_their_group_and_bit_under_every_umask() {
    let root = Root::new();
    base_image(&root);
    let overlay = Overlay::new(&root.store(), "base", &root.path().join("overlay"));
    let m = Mounted::new(&root, "base", "c");
    let theirs = setgid_inheritance(&overlay.dir);
    assert_eq!(setgid_inheritance(&m.dir), theirs, "snapfs, then overlayfs");
    assert!(
        theirs.contains(&("sg/d000".into(), 0o2777, 4242)),
        "{theirs:?}"
    );
}
