//! The container's upper directory, in overlayfs's format, and its work directory: the only
//! door to either. Nothing else in `src/fs` makes a system call on an upper or work path;
//! what others do with a file this module opened (fstat, ftruncate, reads and writes of an
//! open file) goes through its descriptor, with no path resolved.
//!
//! Entries are named by path relative to the upper root; whiteouts are character devices
//! 0/0, opaque directories carry `trusted.overlay.opaque=y`, and new or copied-up entries
//! are built in the work directory (same filesystem) and renamed into place.
//!
//! The container can turn any directory of its tree into a symlink (to `/etc`, say) between
//! the moment the daemon reads a node's path and the moment it uses it. So the rule, which
//! this file keeps: every path is resolved from the root descriptor, which never leaves this
//! module, with `openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS)`
//! ([`Upper::open_beneath`]), or through its parent so resolved ([`Upper::parent_beneath`],
//! [`Upper::proc_path`]) with the last name never followed; a raced path fails instead of
//! reaching the host. The namespace calls of `names.rs` (mkdir, mknod, link, unlink, rename
//! from the root descriptor) follow no final symlink, and the directories above their names
//! are locked by the caller against the container's changes through the mount; a container
//! cannot change its upper directory but through the mount.
//!
//! - `names.rs`: namespace changes (new entries, links, renames, whiteouts, opaque marks);
//! - `meta.rs`: attributes and xattrs of entries, readlink, fsync, statfs;
//! - `copy.rs`: copy-up of lower entries through the work directory.

mod copy;
mod meta;
mod names;

pub use meta::SetTime;
pub use names::New;

use super::error::FsError;
use rustix::fs::{AtFlags, FileType, Mode, OFlags, ResolveFlags, Stat};
use std::ffi::OsStr;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// The upper and work directories of one container.
pub struct Upper {
    root_fd: OwnedFd,
    /// The daemon's umask, which every entry it makes gets on top of the caller's (already
    /// applied by the kernel): the bits it takes are given back after the entry is made.
    umask: u32,
    work: PathBuf,
    work_fd: OwnedFd,
    tmp_counter: AtomicU64,
}

/// A path through a held directory descriptor ([`Upper::proc_path`]).
struct ProcPath {
    _dir: OwnedFd,
    path: PathBuf,
}

/// The longest path resolved in one `openat2` ([`Upper::resolve`]): half of `PATH_MAX`.
const PIECE: usize = 2048;

/// A path relative to a directory descriptor, as rustix wants it ("." for the directory).
fn rel(path: &[u8]) -> &OsStr {
    if path.is_empty() {
        OsStr::new(".")
    } else {
        OsStr::from_bytes(path)
    }
}

/// `/proc/self/fd/N`: the inode `fd` holds, for calls that take only paths.
fn fd_path(fd: &OwnedFd) -> PathBuf {
    PathBuf::from(format!(
        "/proc/self/fd/{}",
        std::os::fd::AsRawFd::as_raw_fd(fd)
    ))
}

impl Upper {
    /// Opens the upper directory `root` and its work directory `work` (same filesystem).
    pub fn open(root: &Path, work: &Path) -> Result<Self, FsError> {
        let dir = |p: &Path| {
            rustix::fs::open(
                p,
                OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .map_err(|e| FsError::io(p.as_os_str().as_bytes(), e))
        };
        let umask =
            crate::sys::process_umask().map_err(|e| FsError::io(b"/proc/self/status", e))?;
        Ok(Upper {
            root_fd: dir(root)?,
            umask,
            work: work.to_path_buf(),
            work_fd: dir(work)?,
            tmp_counter: AtomicU64::new(0),
        })
    }

    /// Opens `path` beneath the upper root, following no symlink on the way or at the end.
    pub fn open_beneath(&self, path: &[u8], flags: OFlags, mode: Mode) -> Result<OwnedFd, FsError> {
        self.resolve(path, flags, mode)
            .map_err(|e| FsError::io(path, e))
    }

    /// The `openat2` behind [`Upper::open_beneath`], with the bare errno. A path longer
    /// than [`PIECE`] is resolved in pieces, each beneath the directory the one before led
    /// to, so no path handed to the kernel nears `PATH_MAX` however deep the tree.
    fn resolve(&self, path: &[u8], flags: OFlags, mode: Mode) -> rustix::io::Result<OwnedFd> {
        let beneath =
            ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS;
        let flags = flags | OFlags::CLOEXEC | OFlags::NOFOLLOW;
        let mut dir: Option<OwnedFd> = None;
        let mut rest = path;
        while rest.len() > PIECE {
            let cut = rest[..PIECE]
                .iter()
                .rposition(|&b| b == b'/')
                .ok_or(rustix::io::Errno::NAMETOOLONG)?;
            let base = dir.as_ref().map_or(self.root_fd.as_fd(), |d| d.as_fd());
            let piece = OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC | OFlags::NOFOLLOW;
            let next = rustix::fs::openat2(base, rel(&rest[..cut]), piece, Mode::empty(), beneath)?;
            dir = Some(next);
            rest = &rest[cut + 1..];
        }
        let base = dir.as_ref().map_or(self.root_fd.as_fd(), |d| d.as_fd());
        rustix::fs::openat2(base, rel(rest), flags, mode, beneath)
    }

    /// The directory that holds `path`, opened (`O_PATH`) beneath the upper root without
    /// following symlinks, and the entry's name in it; the root itself for the root.
    fn parent_beneath<'p>(&self, path: &'p [u8]) -> Result<(OwnedFd, &'p [u8]), FsError> {
        let (parent, name) = if path.is_empty() {
            (&[][..], &b"."[..])
        } else {
            super::path::parent_of(path)
        };
        let dir = self.open_beneath(parent, OFlags::PATH | OFlags::DIRECTORY, Mode::empty())?;
        Ok((dir, name))
    }

    /// A path that names `path`'s entry through its parent's descriptor, for the calls that
    /// take only paths (xattrs): `/proc/self/fd/N/name`. Use it with the `l*` calls, which do
    /// not follow the final name; the descriptor is held by the returned value.
    fn proc_path(&self, path: &[u8]) -> Result<ProcPath, FsError> {
        let (dir, name) = self.parent_beneath(path)?;
        let full = fd_path(&dir).join(OsStr::from_bytes(name));
        Ok(ProcPath {
            _dir: dir,
            path: full,
        })
    }

    /// The upper entry at `path`, if any (whiteouts included). Resolved beneath the root
    /// without symlinks on the way, like [`Upper::open_beneath`]: a path that runs through
    /// a symlink has no upper entry.
    pub fn stat(&self, path: &[u8]) -> Result<Option<Stat>, FsError> {
        let entry = self.resolve(path, OFlags::PATH, Mode::empty());
        match entry.and_then(|fd| rustix::fs::fstat(&fd)) {
            Ok(st) => Ok(Some(st)),
            Err(rustix::io::Errno::NOENT)
            | Err(rustix::io::Errno::NOTDIR)
            | Err(rustix::io::Errno::LOOP) => Ok(None),
            Err(e) => Err(FsError::io(path, e)),
        }
    }

    pub fn is_whiteout(st: &Stat) -> bool {
        crate::layer::overlay::is_whiteout(st.st_mode, st.st_rdev)
    }

    pub fn is_dir(st: &Stat) -> bool {
        FileType::from_raw_mode(st.st_mode) == FileType::Directory
    }

    pub fn is_regular(st: &Stat) -> bool {
        FileType::from_raw_mode(st.st_mode) == FileType::RegularFile
    }

    /// Lists an upper directory: (name, stat) per entry.
    pub fn list(&self, path: &[u8]) -> Result<Vec<(Vec<u8>, Stat)>, FsError> {
        let fd = self.open_beneath(path, OFlags::DIRECTORY | OFlags::RDONLY, Mode::empty())?;
        Self::list_fd(&fd, path)
    }

    /// Lists a directory of the work directory.
    fn list_work(&self, path: &[u8]) -> Result<Vec<(Vec<u8>, Stat)>, FsError> {
        let fd = rustix::fs::openat(
            &self.work_fd,
            rel(path),
            OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NOFOLLOW,
            Mode::empty(),
        )
        .map_err(|e| FsError::io(path, e))?;
        Self::list_fd(&fd, path)
    }

    fn list_fd(fd: &OwnedFd, path: &[u8]) -> Result<Vec<(Vec<u8>, Stat)>, FsError> {
        let dir = rustix::fs::Dir::read_from(fd).map_err(|e| FsError::io(path, e))?;
        let mut out = Vec::new();
        for entry in dir {
            let entry = entry.map_err(|e| FsError::io(path, e))?;
            let name = entry.file_name().to_bytes();
            if name == b"." || name == b".." {
                continue;
            }
            let st = rustix::fs::statat(fd, entry.file_name(), AtFlags::SYMLINK_NOFOLLOW)
                .map_err(|e| FsError::io(path, e))?;
            out.push((name.to_vec(), st));
        }
        Ok(out)
    }

    /// A fresh name in the work directory.
    fn tmp_name(&self) -> Vec<u8> {
        format!(
            "tmp-{}-{}",
            std::process::id(),
            self.tmp_counter.fetch_add(1, Ordering::Relaxed)
        )
        .into_bytes()
    }

    /// The path of `tmp` in the work directory, for the calls that take only paths.
    fn work_path(&self, tmp: &[u8]) -> PathBuf {
        self.work.join(OsStr::from_bytes(tmp))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_longer_than_a_piece_are_resolved_in_pieces_and_never_through_a_symlink() {
        let dir = tempfile::tempdir().unwrap();
        let (root, work) = (dir.path().join("upper"), dir.path().join("work"));
        std::fs::create_dir_all(&work).unwrap();
        let name = "n".repeat(200);
        // 14 levels: 2 800 bytes from the upper root, so two pieces.
        let mut deep = root.clone();
        let mut rel = Vec::new();
        for _ in 0..14 {
            deep.push(&name);
            rel = crate::fs::path::join(&rel, name.as_bytes());
        }
        std::fs::create_dir_all(&deep).unwrap();
        std::fs::write(deep.join("f"), b"deep").unwrap();
        let upper = Upper::open(&root, &work).unwrap();
        let file = crate::fs::path::join(&rel, b"f");
        assert!(file.len() > PIECE);
        let fd = upper
            .open_beneath(&file, OFlags::RDONLY, Mode::empty())
            .unwrap();
        assert_eq!(std::fs::read(fd_path(&fd)).unwrap(), b"deep");
        upper.unlink(&file, false).unwrap();
        assert!(upper.stat(&file).unwrap().is_none());

        // A directory of the second piece swapped for a symlink (to the first piece's
        // directory, or anywhere) stops the resolution there.
        let outside = dir.path().join("host");
        std::fs::create_dir_all(outside.join(&name)).unwrap();
        let mut swapped = root.clone();
        for _ in 0..12 {
            swapped.push(&name);
        }
        std::fs::rename(&swapped, dir.path().join("aside")).unwrap();
        std::os::unix::fs::symlink(&outside, &swapped).unwrap();
        std::fs::write(outside.join(&name).join("f"), b"host").unwrap();
        // The 12 levels down to the symlink, then what the host has below its target.
        let twelve = &rel[..12 * 201 - 1];
        let through = crate::fs::path::join(twelve, format!("{name}/f").as_bytes());
        assert!(through.len() > PIECE);
        assert_eq!(
            std::fs::read(swapped.join(&name).join("f")).unwrap(),
            b"host"
        );
        assert!(
            upper
                .open_beneath(&through, OFlags::RDONLY, Mode::empty())
                .is_err()
        );
        assert!(upper.stat(&through).unwrap().is_none());
        assert!(upper.set_xattr(&through, b"user.x", Some(b"y"), 0).is_err());
        assert!(upper.unlink(&through, false).is_err());
        assert_eq!(
            std::fs::read(outside.join(&name).join("f")).unwrap(),
            b"host"
        );
    }

    #[test]
    fn paths_through_a_symlink_never_leave_the_upper_directory() {
        let dir = tempfile::tempdir().unwrap();
        let (root, work, outside) = (
            dir.path().join("upper"),
            dir.path().join("work"),
            dir.path().join("host"),
        );
        for d in [&root, &work, &outside, &root.join("real")] {
            std::fs::create_dir_all(d).unwrap();
        }
        std::fs::write(outside.join("secret"), b"host").unwrap();
        std::fs::write(root.join("real/file"), b"upper").unwrap();
        // What a container can make between the daemon's look at a path and its use of it.
        std::os::unix::fs::symlink(&outside, root.join("d")).unwrap();
        std::os::unix::fs::symlink("real", root.join("rel")).unwrap();
        let upper = Upper::open(&root, &work).unwrap();

        for path in [&b"d/secret"[..], b"rel/file"] {
            assert!(
                upper
                    .open_beneath(path, OFlags::RDONLY, Mode::empty())
                    .is_err()
            );
            assert!(upper.parent_beneath(path).is_err());
            assert!(upper.proc_path(path).is_err());
            assert!(upper.chmod(path, 0o777).is_err());
            assert!(upper.chown(path, Some(1), Some(1)).is_err());
            assert!(upper.set_xattr(path, b"user.x", Some(b"y"), 0).is_err());
            assert!(upper.list(path).is_err());
        }
        assert_eq!(std::fs::read(outside.join("secret")).unwrap(), b"host");
        // A symlink as the last name is never followed either, but is an entry.
        let link = upper.stat(b"d").unwrap().expect("the symlink is an entry");
        assert_eq!(FileType::from_raw_mode(link.st_mode), FileType::Symlink);
        assert!(upper.stat(b"d/secret").unwrap().is_none());
        assert!(upper.stat(b"real/file").unwrap().is_some());
        assert!(
            upper
                .open_beneath(b"d", OFlags::RDONLY, Mode::empty())
                .is_err()
        );
        assert!(upper.list(b"d").is_err());

        let file = upper
            .open_beneath(b"real/file", OFlags::RDONLY, Mode::empty())
            .unwrap();
        assert_eq!(std::fs::read_to_string(fd_path(&file)).unwrap(), "upper");
        let (parent, name) = upper.parent_beneath(b"real/file").unwrap();
        assert_eq!(name, b"file");
        assert!(rustix::fs::statat(&parent, rel(name), AtFlags::SYMLINK_NOFOLLOW).is_ok());
        let root_parent = upper.parent_beneath(b"").unwrap();
        assert_eq!(root_parent.1, b".");
    }
}
