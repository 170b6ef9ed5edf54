//! A hostile container: what it makes in its upper directory must not be obeyed as overlay
//! bookkeeping, by its own mount or by the image a commit makes of it.

use crate::util::{Layout, Mounted, Root, small_layer};
use std::process::Command;

/// A root with image `base` (`etc/hello`, `etc/same`) and container `c` of it, mounted.
fn mounted(root: &Root) -> Mounted<'_> {
    let layout = Layout::new(vec![small_layer("base")]).write(&root.path().join("base"));
    root.ok(&["import", layout.to_str().unwrap(), "--name", "base"]);
    Mounted::new(root, "base", "c")
}

#[test]
fn commit_refuses_files_named_like_whiteouts() {
    let root = Root::new();
    let m = mounted(&root);
    let before = root.images();
    // What a container makes to hide its image's `/` and `/etc` in a committed image.
    for name in [".wh..wh..opq", ".wh.etc"] {
        std::fs::write(m.path(name), b"").unwrap();
        let err = root.snap(&["commit", "c", "evil"]).fails();
        assert!(err.contains(name), "the error names {name}:\n{err}");
        assert!(err.contains("whiteout"), "{err}");
        assert_eq!(root.images(), before, "a refused commit made an image");
        std::fs::remove_file(m.path(name)).unwrap();
    }
    std::fs::create_dir(m.path("etc/.wh.dir")).unwrap();
    let err = root.snap(&["commit", "c", "evil"]).fails();
    assert!(err.contains("etc/.wh.dir"), "{err}");
    std::fs::remove_dir(m.path("etc/.wh.dir")).unwrap();
    root.ok(&["gc"]);
    root.fsck_clean();
    // Without them the commit goes through, and the new image shows the parent's files.
    std::fs::write(m.path("etc/new"), b"new\n").unwrap();
    root.ok(&["commit", "c", "good"]);
    let n = Mounted::new(&root, "good", "d");
    assert_eq!(std::fs::read(n.path("etc/hello")).unwrap(), b"hello base\n");
    assert_eq!(std::fs::read(n.path("etc/new")).unwrap(), b"new\n");
}

#[test]
fn a_container_cannot_set_or_see_overlay_xattrs() {
    let root = Root::new();
    let m = mounted(&root);
    let etc = m.path("etc");
    for name in [
        "trusted.overlay.opaque",
        "trusted.overlay.redirect",
        "user.overlay.opaque",
    ] {
        let out = Command::new("setfattr")
            .args(["-n", name, "-v", "y"])
            .arg(&etc)
            .output()
            .expect("setfattr");
        assert!(!out.status.success(), "{name} was set");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("not permitted"), "{name}: {err}");
    }
    // Nothing was copied up or marked: etc is still merged with its lower files.
    assert_eq!(std::fs::read(m.path("etc/hello")).unwrap(), b"hello base\n");
    let out = Command::new("getfattr")
        .args(["-d", "-m", "-"])
        .arg(&etc)
        .output()
        .expect("getfattr");
    assert!(!String::from_utf8_lossy(&out.stdout).contains("overlay"));
    drop(m);
    let m = Mounted::mount(&root, "c");
    assert_eq!(std::fs::read(m.path("etc/same")).unwrap(), b"same!\n");
}
