//! The union's rules, in process and without FUSE: a [`UnionFs`] over an index built by
//! `index::build` from entries made here, a store holding their contents, and an upper and
//! work directory in a temporary directory. Run as root (copy-up gives entries their lower
//! owners, and opaque marks are `trusted.` xattrs).

use super::id::NodeId;
use super::lookup::Found;
use super::setattr::SetAttr;
use super::setid::Caller;
use super::union::UnionFs;
use super::upper::{New, Upper};
use crate::index::{LayerInput, build};
use crate::model::{Digest, Entry, EntryPath, Kind, LayerId, Meta, Xattr};
use crate::store::Store;
use crate::sys::Mapped;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

const ROOT: Caller = Caller {
    uid: 0,
    gid: 0,
    pid: 0,
};

/// A union over one lower layer, in a temporary directory.
struct Fixture {
    dir: tempfile::TempDir,
    fs: UnionFs,
}

fn meta(mode: u32) -> Meta {
    Meta {
        mode,
        uid: 1000,
        gid: 1001,
        mtime_sec: 1_600_000_000,
        mtime_nsec: 5,
        xattrs: Vec::new(),
    }
}

fn entry(path: &str, kind: Kind, mode: u32) -> Entry {
    Entry {
        path: EntryPath::parse(path.as_bytes()).expect("test path"),
        kind,
        meta: meta(mode),
    }
}

fn dir(path: &str) -> Entry {
    entry(path, Kind::Dir, 0o755)
}

impl Fixture {
    /// The lower layer: `etc/passwd`, `usr/lib/{a,b}`, `usr/share/doc/c`, a hardlinked
    /// `h1`/`usr/h2`, and `tagged` with an xattr.
    fn new() -> Option<Self> {
        if !rustix::process::geteuid().is_root() {
            eprintln!("skipped: the union tests copy entries up with their owners, as root");
            return None;
        }
        let base = std::env::var_os("SNAPFS_TEST_TMP")
            .map_or_else(|| PathBuf::from("/var/tmp"), PathBuf::from);
        let tmp = tempfile::Builder::new()
            .prefix("snapfs-union-")
            .tempdir_in(base)
            .expect("temp dir");
        let store = Store::open(&tmp.path().join("store")).expect("store");
        let file = |path: &str, content: &str| {
            let digest = store.put_bytes(content.as_bytes()).expect("put");
            let size = content.len() as u64;
            entry(path, Kind::File { digest, size }, 0o640)
        };
        let mut tagged = file("tagged", "t");
        tagged.meta.xattrs = vec![Xattr {
            name: b"user.tag".to_vec(),
            value: b"v".to_vec(),
        }];
        // A directory an image marked with overlayfs's own xattrs.
        let mut odd = dir("odd");
        odd.meta.xattrs = [
            ("trusted.overlay.opaque", "y"),
            ("trusted.overlay.redirect", "/etc"),
        ]
        .map(|(name, value)| Xattr {
            name: name.as_bytes().to_vec(),
            value: value.as_bytes().to_vec(),
        })
        .to_vec();
        let entries = vec![
            dir("etc"),
            file("etc/passwd", "root:x:0:0"),
            dir("usr"),
            dir("usr/lib"),
            file("usr/lib/a", "aaa"),
            file("usr/lib/b", "bbb"),
            dir("usr/share"),
            dir("usr/share/doc"),
            file("usr/share/doc/c", "ccc"),
            file("h1", "linked"),
            entry(
                "usr/h2",
                Kind::Hardlink {
                    target: EntryPath::parse(b"h1").expect("test path"),
                },
                0o640,
            ),
            tagged,
            odd,
            file("odd/kid", "k"),
        ];
        let layer = LayerInput {
            id: LayerId(Digest::of(b"layer")),
            entries: &entries,
        };
        let index_path = tmp.path().join("index");
        std::fs::write(&index_path, build(&[layer]).expect("index")).expect("write index");
        let mapped =
            Mapped::map(&std::fs::File::open(&index_path).expect("open index")).expect("map index");
        let index = crate::index::Index::open(mapped).expect("index");
        for d in ["upper", "work"] {
            std::fs::create_dir(tmp.path().join(d)).expect("mkdir");
        }
        let upper =
            Upper::open(&tmp.path().join("upper"), &tmp.path().join("work")).expect("upper");
        let fs = UnionFs::new(index, store, upper);
        Some(Fixture { dir: tmp, fs })
    }

    fn upper(&self, path: &str) -> PathBuf {
        self.dir.path().join("upper").join(path)
    }

    /// Looks `path` up from the root, name by name, as the kernel would (remembering each).
    fn lookup(&self, path: &str) -> Result<Found, super::FsError> {
        let mut found = Found {
            id: NodeId::ROOT,
            path: Vec::new(),
            lower: None,
            upper: None,
        };
        for name in path.split('/').filter(|n| !n.is_empty()) {
            found = self.fs.child(found.id, name.as_bytes())?;
            self.fs.remember(&found);
        }
        Ok(found)
    }

    fn id(&self, path: &str) -> NodeId {
        self.lookup(path).expect("lookup").id
    }

    /// The union's listing of the directory `path`, sorted.
    fn names(&self, path: &str) -> Vec<String> {
        let found = self.lookup(path).expect("lookup");
        let mut names: Vec<String> = self
            .fs
            .layers
            .list_dir(&found.path, found.lower)
            .expect("list")
            .into_iter()
            .map(|(n, _)| String::from_utf8_lossy(&n).into_owned())
            .collect();
        names.sort();
        names
    }

    fn missing(&self, path: &str) -> bool {
        matches!(self.lookup(path), Err(super::FsError::NotFound { .. }))
    }

    fn read(&self, path: &str) -> String {
        let found = self.lookup(path).expect("lookup");
        let opened = self
            .fs
            .open_file(found.id, libc::O_RDONLY, false, &ROOT)
            .expect("open");
        std::io::read_to_string(opened.file).expect("read")
    }
}

fn is_whiteout(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_char_device() && m.rdev() == 0)
}

#[test]
fn upper_whiteouts_and_opaque_directories_hide_lower_entries() {
    let Some(f) = Fixture::new() else { return };
    // What an upper directory left by an earlier mount (or kernel overlayfs) holds.
    std::fs::create_dir_all(f.upper("usr/lib")).unwrap();
    rustix::fs::mknodat(
        rustix::fs::CWD,
        f.upper("usr/lib/a"),
        rustix::fs::FileType::CharacterDevice,
        rustix::fs::Mode::empty(),
        0,
    )
    .unwrap();
    std::fs::create_dir_all(f.upper("usr/share")).unwrap();
    std::fs::write(f.upper("usr/share/new"), b"n").unwrap();
    rustix::fs::setxattr(
        f.upper("usr/share"),
        "trusted.overlay.opaque",
        b"y",
        rustix::fs::XattrFlags::empty(),
    )
    .unwrap();

    assert!(f.missing("usr/lib/a"), "a whiteout hides the lower file");
    assert_eq!(f.names("usr/lib"), ["b"]);
    assert!(
        f.missing("usr/share/doc"),
        "an opaque directory hides the lower tree"
    );
    assert_eq!(f.names("usr/share"), ["new"]);
    assert!(f.lookup("usr/share").unwrap().id.is_upper());
    // A merged directory keeps its lower node id.
    assert!(!f.lookup("usr/lib").unwrap().id.is_upper());
    assert_eq!(f.read("usr/lib/b"), "bbb");
}

#[test]
fn deleting_lower_names_leaves_whiteouts_and_recreating_them_hides_the_lower_tree() {
    let Some(f) = Fixture::new() else { return };
    let lib = f.id("usr/lib");
    f.fs.remove(lib, b"a", false).unwrap();
    assert!(f.missing("usr/lib/a"));
    assert!(is_whiteout(&f.upper("usr/lib/a")));
    assert_eq!(f.names("usr/lib"), ["b"]);
    // A file made over the whiteout replaces it.
    let (found, _) = f.fs.create_file(lib, b"a", 0o600, (0, 0)).unwrap();
    f.fs.remember(&found);
    assert_eq!(f.read("usr/lib/a"), "");

    // rm -r usr/share/doc, then mkdir it again: the new directory is opaque and empty.
    let doc = f.id("usr/share/doc");
    f.fs.remove(doc, b"c", false).unwrap();
    f.fs.remove(f.id("usr/share"), b"doc", true).unwrap();
    assert!(f.missing("usr/share/doc"));
    assert!(is_whiteout(&f.upper("usr/share/doc")));
    let made =
        f.fs.make(f.id("usr/share"), b"doc", New::Dir { mode: 0o755 }, (0, 0));
    f.fs.remember(&made.unwrap());
    assert!(f.fs.layers.upper.is_opaque(b"usr/share/doc"));
    assert!(f.names("usr/share/doc").is_empty());
    assert_eq!(
        f.fs.remove(f.id("usr"), b"lib", true).unwrap_err().errno(),
        libc::ENOTEMPTY
    );
}

#[test]
fn copy_up_keeps_the_lower_data_owner_mode_times_and_xattrs() {
    let Some(f) = Fixture::new() else { return };
    let id = f.id("tagged");
    let change = SetAttr {
        uid: Some(7),
        ..SetAttr::default()
    };
    let attr = f.fs.setattr(id, &change, &ROOT).unwrap();
    assert_eq!((attr.uid, attr.gid, attr.mode), (7, 1001, 0o640));
    let up = std::fs::symlink_metadata(f.upper("tagged")).unwrap();
    assert_eq!((up.uid(), up.gid(), up.mode() & 0o7777), (7, 1001, 0o640));
    assert_eq!((up.mtime(), up.mtime_nsec()), (1_600_000_000, 5));
    assert_eq!(std::fs::read(f.upper("tagged")).unwrap(), b"t");
    assert_eq!(f.fs.getxattr(id, b"user.tag").unwrap(), b"v");

    // Parents are copied up first, with their lower metadata.
    f.fs.setattr(
        f.id("usr/lib/b"),
        &SetAttr {
            mode: Some(0o600),
            ..SetAttr::default()
        },
        &ROOT,
    )
    .unwrap();
    let lib = std::fs::symlink_metadata(f.upper("usr/lib")).unwrap();
    assert_eq!((lib.uid(), lib.mode() & 0o7777), (1000, 0o755));
    assert_eq!(lib.mtime(), 1_600_000_000);
    assert_eq!(f.read("usr/lib/b"), "bbb");
    assert!(
        !f.upper("usr/lib/a").exists(),
        "only what changes is copied"
    );
}

#[test]
fn renaming_a_lower_directory_moves_its_whole_tree() {
    let Some(f) = Fixture::new() else { return };
    let usr = f.id("usr");
    let lib = f.id("usr/lib");
    f.fs.rename(NodeId::ROOT, b"usr", NodeId::ROOT, b"opt", 0)
        .unwrap();
    assert!(f.missing("usr"));
    assert!(
        is_whiteout(&f.upper("usr")),
        "the old name hides the lower tree"
    );
    assert_eq!(f.names("opt/lib"), ["a", "b"]);
    assert_eq!(f.read("opt/share/doc/c"), "ccc");
    assert!(f.fs.layers.upper.is_opaque(b"opt"));
    // The nodes the kernel holds moved with it.
    assert_eq!(f.fs.node(usr).unwrap().0, b"opt");
    assert_eq!(f.fs.node(lib).unwrap().0, b"opt/lib");
    // A file renamed over another replaces it; the lower name left gets a whiteout.
    f.fs.rename(NodeId::ROOT, b"h1", f.id("etc"), b"passwd", 0)
        .unwrap();
    assert_eq!(f.read("etc/passwd"), "linked");
    assert!(is_whiteout(&f.upper("h1")));
    let dir_over_file = f.fs.rename(NodeId::ROOT, b"opt", f.id("etc"), b"passwd", 0);
    assert_eq!(dir_over_file.unwrap_err().errno(), libc::ENOTDIR);
}

#[test]
fn copying_up_a_lower_hardlink_keeps_one_inode_with_every_name() {
    let Some(f) = Fixture::new() else { return };
    let h1 = f.id("h1");
    let opened = f.fs.open_file(h1, libc::O_WRONLY, false, &ROOT).unwrap();
    std::os::unix::fs::FileExt::write_all_at(&opened.file, b"!", 6).unwrap();
    let (a, b) = (
        std::fs::symlink_metadata(f.upper("h1")).unwrap(),
        std::fs::symlink_metadata(f.upper("usr/h2")).unwrap(),
    );
    assert_eq!(a.ino(), b.ino());
    assert_eq!(a.nlink(), 2);
    assert_eq!(f.read("usr/h2"), "linked!");
    let (x, y) = (f.lookup("h1").unwrap(), f.lookup("usr/h2").unwrap());
    assert_eq!(x.id, y.id, "both names are one node");
    assert_eq!(f.fs.getattr(x.id).unwrap().nlink, 2);
}

#[test]
fn a_node_opened_on_its_lower_object_is_stale_once_copied_up() {
    let Some(f) = Fixture::new() else { return };
    let id = f.id("etc/passwd");
    let stale = f.fs.open_file(id, libc::O_RDWR, true, &ROOT);
    assert!(matches!(stale, Err(super::FsError::Stale { .. })));
    // The copy was made: the next lookup finds the upper file.
    assert!(f.lookup("etc/passwd").unwrap().id.is_upper());
    assert_eq!(f.read("etc/passwd"), "root:x:0:0");
}

#[test]
fn overlay_xattrs_from_an_image_are_neither_copied_up_nor_settable() {
    let Some(f) = Fixture::new() else { return };
    let odd = f.id("odd");
    assert!(
        f.fs.listxattr(odd).unwrap().is_empty(),
        "hidden from the container"
    );
    let chmod = SetAttr {
        mode: Some(0o700),
        ..SetAttr::default()
    };
    f.fs.setattr(odd, &chmod, &ROOT).unwrap();
    let kept = crate::sys::xattrs(&f.upper("odd")).unwrap();
    assert!(kept.is_empty(), "copied up: {kept:?}");
    assert!(!f.fs.layers.upper.is_opaque(b"odd"));
    assert_eq!(f.read("odd/kid"), "k", "the lower child still shows");
    for name in [
        &b"trusted.overlay.opaque"[..],
        b"user.overlay.opaque",
        b"trusted.overlay.x",
    ] {
        let set = f.fs.setxattr(odd, name, Some(b"y"), 0);
        assert_eq!(set.unwrap_err().errno(), libc::EPERM);
    }
    assert!(!f.fs.layers.upper.is_opaque(b"odd"));
}
