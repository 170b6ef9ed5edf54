//! The container's upper directory, in overlayfs's format: entries by path relative to the
//! upper root, whiteouts (char device 0/0), opaque markers (`trusted.overlay.opaque=y`), and
//! copy-up of lower entries through the work directory (same filesystem, atomic rename).
//!
//! The container can turn any directory of its tree into a symlink (to `/etc`, say) between
//! the moment the daemon reads a node's path and the moment it uses it. Paths that give the
//! container a descriptor or change an inode are therefore resolved with `openat2` beneath
//! the upper root and without following any symlink ([`Upper::open_beneath`],
//! [`Upper::parent_beneath`]): a raced path fails instead of reaching the host.

use super::FsError;
use crate::index::{Index, NodeKind};
use crate::model::Ino;
use crate::store::Store;
use crate::sys::Mapped;
use rustix::fs::{
    AtFlags, FileType, Mode, OFlags, RenameFlags, ResolveFlags, Stat, Timespec, Timestamps,
};
use std::ffi::OsStr;
use std::fs::File;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

pub use crate::layer::overlay::{OPAQUE_XATTR, is_private_xattr};

/// A path through a held directory descriptor ([`Upper::proc_path`]).
pub struct ProcPath {
    _dir: OwnedFd,
    pub path: PathBuf,
}

/// The upper and work directories of one container.
pub struct Upper {
    pub root: PathBuf,
    root_fd: OwnedFd,
    work_fd: OwnedFd,
    tmp_counter: AtomicU64,
}

/// A path relative to the upper root, as rustix wants it ("." for the root).
pub fn rel(path: &[u8]) -> &OsStr {
    if path.is_empty() {
        OsStr::new(".")
    } else {
        OsStr::from_bytes(path)
    }
}

pub fn join(parent: &[u8], name: &[u8]) -> Vec<u8> {
    let mut out = parent.to_vec();
    if !out.is_empty() {
        out.push(b'/');
    }
    out.extend_from_slice(name);
    out
}

pub fn parent_of(path: &[u8]) -> (&[u8], &[u8]) {
    match path.iter().rposition(|&b| b == b'/') {
        Some(i) => (&path[..i], &path[i + 1..]),
        None => (&[][..], path),
    }
}

fn io(path: &[u8], e: rustix::io::Errno) -> FsError {
    FsError::Io {
        path: String::from_utf8_lossy(path).into_owned(),
        errno: e.raw_os_error(),
    }
}

impl Upper {
    pub fn open(root: &Path, work: &Path) -> Result<Self, FsError> {
        let dir = |p: &Path| {
            rustix::fs::open(
                p,
                OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .map_err(|e| io(p.as_os_str().as_bytes(), e))
        };
        Ok(Upper {
            root: root.to_path_buf(),
            root_fd: dir(root)?,
            work_fd: dir(work)?,
            tmp_counter: AtomicU64::new(0),
        })
    }

    pub fn root_fd(&self) -> impl AsFd + '_ {
        self.root_fd.as_fd()
    }

    /// Opens `path` beneath the upper root, following no symlink on the way or at the end.
    pub fn open_beneath(&self, path: &[u8], flags: OFlags, mode: Mode) -> Result<OwnedFd, FsError> {
        self.resolve(path, flags, mode).map_err(|e| io(path, e))
    }

    /// The `openat2` behind [`Upper::open_beneath`], with the bare errno.
    fn resolve(&self, path: &[u8], flags: OFlags, mode: Mode) -> rustix::io::Result<OwnedFd> {
        rustix::fs::openat2(
            &self.root_fd,
            rel(path),
            flags | OFlags::CLOEXEC | OFlags::NOFOLLOW,
            mode,
            ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS,
        )
    }

    /// The directory that holds `path`, opened (`O_PATH`) beneath the upper root without
    /// following symlinks, and the entry's name in it; the root itself for the root.
    pub fn parent_beneath<'p>(&self, path: &'p [u8]) -> Result<(OwnedFd, &'p [u8]), FsError> {
        let (parent, name) = if path.is_empty() {
            (&[][..], &b"."[..])
        } else {
            parent_of(path)
        };
        let dir = self.open_beneath(parent, OFlags::PATH | OFlags::DIRECTORY, Mode::empty())?;
        Ok((dir, name))
    }

    /// `/proc/self/fd/N`: the inode `fd` holds, for calls that take only paths.
    pub fn fd_path(fd: &OwnedFd) -> PathBuf {
        PathBuf::from(format!(
            "/proc/self/fd/{}",
            std::os::fd::AsRawFd::as_raw_fd(fd)
        ))
    }

    /// A path that names `path`'s entry through its parent's descriptor, for the calls that
    /// take only paths (xattrs): `/proc/self/fd/N/name`. Use it with the `l*` calls, which do
    /// not follow the final name; the descriptor is held by the returned value.
    pub fn proc_path(&self, path: &[u8]) -> Result<ProcPath, FsError> {
        let (dir, name) = self.parent_beneath(path)?;
        let full = Self::fd_path(&dir).join(OsStr::from_bytes(name));
        Ok(ProcPath {
            _dir: dir,
            path: full,
        })
    }

    /// Where a new entry for `path` is made: `path` itself in the upper directory, or a fresh
    /// name in the work directory when `over_whiteout` (it is then put in place with
    /// [`Upper::swap_in`], so the name never shows the lower entry the whiteout hides).
    pub fn new_entry_at(&self, path: &[u8], over_whiteout: bool) -> (BorrowedFd<'_>, Vec<u8>) {
        if over_whiteout {
            (self.work_fd.as_fd(), self.tmp_name())
        } else {
            (self.root_fd.as_fd(), path.to_vec())
        }
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
            Err(e) => Err(io(path, e)),
        }
    }

    pub fn is_whiteout(st: &Stat) -> bool {
        crate::layer::overlay::is_whiteout(st.st_mode, st.st_rdev)
    }

    pub fn is_dir(st: &Stat) -> bool {
        FileType::from_raw_mode(st.st_mode) == FileType::Directory
    }

    pub fn is_opaque(&self, path: &[u8]) -> bool {
        let Ok(full) = self.proc_path(path) else {
            return false;
        };
        let mut buf = [0u8; 4];
        matches!(rustix::fs::lgetxattr(&full.path, OPAQUE_XATTR, &mut buf[..]), Ok(1) if buf[0] == b'y')
    }

    pub fn set_opaque(&self, path: &[u8]) -> Result<(), FsError> {
        self.set_opaque_at(self.root_fd.as_fd(), path)
    }

    /// Marks the directory `name` (relative to `dir`) opaque.
    pub fn set_opaque_at(&self, dir: BorrowedFd<'_>, name: &[u8]) -> Result<(), FsError> {
        let fd = rustix::fs::openat(
            dir,
            rel(name),
            OFlags::DIRECTORY | OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| io(name, e))?;
        rustix::fs::fsetxattr(&fd, OPAQUE_XATTR, b"y", rustix::fs::XattrFlags::empty())
            .map_err(|e| io(name, e))
    }

    pub fn whiteout(&self, path: &[u8]) -> Result<(), FsError> {
        rustix::fs::mknodat(
            &self.root_fd,
            rel(path),
            FileType::CharacterDevice,
            Mode::empty(),
            0,
        )
        .map_err(|e| io(path, e))
    }

    /// Replaces the entry at `path` (a file, or a directory that is empty in the union, so
    /// holds only whiteouts) with a whiteout in one step (`RENAME_WHITEOUT`): the entry moves
    /// to the work directory and is removed there. A crash never leaves the name showing
    /// the lower entry it hid.
    pub fn replace_with_whiteout(&self, path: &[u8], dir: bool) -> Result<(), FsError> {
        let tmp = self.tmp_name();
        rustix::fs::renameat_with(
            &self.root_fd,
            rel(path),
            &self.work_fd,
            rel(&tmp),
            RenameFlags::WHITEOUT,
        )
        .map_err(|e| io(path, e))?;
        if dir {
            for (child, _) in self.list_work(&tmp)? {
                rustix::fs::unlinkat(&self.work_fd, rel(&join(&tmp, &child)), AtFlags::empty())
                    .map_err(|e| io(&child, e))?;
            }
        }
        let flags = if dir {
            AtFlags::REMOVEDIR
        } else {
            AtFlags::empty()
        };
        rustix::fs::unlinkat(&self.work_fd, rel(&tmp), flags).map_err(|e| io(path, e))
    }

    /// Creates an empty regular file in the work directory, to be put in place with
    /// [`Upper::swap_in`].
    pub fn create_in_work(&self, mode: Mode) -> Result<(Vec<u8>, OwnedFd), FsError> {
        let tmp = self.tmp_name();
        let fd = rustix::fs::openat(
            &self.work_fd,
            rel(&tmp),
            OFlags::CREATE | OFlags::EXCL | OFlags::RDWR | OFlags::CLOEXEC,
            mode,
        )
        .map_err(|e| io(&tmp, e))?;
        Ok((tmp, fd))
    }

    /// Puts the work entry `tmp` at `path` in place of the whiteout there, in one step
    /// (`RENAME_EXCHANGE`), then removes the whiteout: the name never shows the lower entry.
    pub fn swap_in(&self, tmp: &[u8], path: &[u8]) -> Result<(), FsError> {
        rustix::fs::renameat_with(
            &self.work_fd,
            rel(tmp),
            &self.root_fd,
            rel(path),
            RenameFlags::EXCHANGE,
        )
        .map_err(|e| io(path, e))?;
        rustix::fs::unlinkat(&self.work_fd, rel(tmp), AtFlags::empty()).map_err(|e| io(path, e))
    }

    /// Swaps the upper entries at `a` and `b` in one step (`RENAME_EXCHANGE`).
    pub fn exchange(&self, a: &[u8], b: &[u8]) -> Result<(), FsError> {
        rustix::fs::renameat_with(
            &self.root_fd,
            rel(a),
            &self.root_fd,
            rel(b),
            RenameFlags::EXCHANGE,
        )
        .map_err(|e| io(a, e))
    }

    /// Removes an entry made in the work directory that was not put in place (best effort:
    /// the work directory is not visible in the container either way).
    pub fn discard_work(&self, tmp: &[u8], dir: bool) {
        let flags = if dir {
            AtFlags::REMOVEDIR
        } else {
            AtFlags::empty()
        };
        let _ = rustix::fs::unlinkat(&self.work_fd, rel(tmp), flags);
    }

    /// Removes whatever is at `path` if it is a whiteout.
    pub fn remove_whiteout(&self, path: &[u8]) -> Result<bool, FsError> {
        match self.stat(path)? {
            Some(st) if Self::is_whiteout(&st) => {
                rustix::fs::unlinkat(&self.root_fd, rel(path), AtFlags::empty())
                    .map_err(|e| io(path, e))?;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    pub fn unlink(&self, path: &[u8], dir: bool) -> Result<(), FsError> {
        let flags = if dir {
            AtFlags::REMOVEDIR
        } else {
            AtFlags::empty()
        };
        rustix::fs::unlinkat(&self.root_fd, rel(path), flags).map_err(|e| io(path, e))
    }

    /// Lists an upper directory: (name, stat) per entry.
    pub fn list(&self, path: &[u8]) -> Result<Vec<(Vec<u8>, Stat)>, FsError> {
        self.list_in(&self.root_fd, path)
    }

    /// Lists a directory of the work directory.
    fn list_work(&self, path: &[u8]) -> Result<Vec<(Vec<u8>, Stat)>, FsError> {
        self.list_in(&self.work_fd, path)
    }

    fn list_in(&self, base: &OwnedFd, path: &[u8]) -> Result<Vec<(Vec<u8>, Stat)>, FsError> {
        let fd = rustix::fs::openat(
            base,
            rel(path),
            OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| io(path, e))?;
        let dir = rustix::fs::Dir::read_from(&fd).map_err(|e| io(path, e))?;
        let mut out = Vec::new();
        for entry in dir {
            let entry = entry.map_err(|e| io(path, e))?;
            let name = entry.file_name().to_bytes();
            if name == b"." || name == b".." {
                continue;
            }
            let st = rustix::fs::statat(&fd, entry.file_name(), AtFlags::SYMLINK_NOFOLLOW)
                .map_err(|e| io(path, e))?;
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

    /// Moves a finished entry from the work directory to `path`. A copy-up is not a change
    /// the user made to the parent directory, so the parent keeps its times.
    fn install(&self, tmp: &[u8], path: &[u8]) -> Result<(), FsError> {
        let (parent, _) = parent_of(path);
        let before = self.stat(parent)?;
        rustix::fs::renameat(&self.work_fd, rel(tmp), &self.root_fd, rel(path))
            .map_err(|e| io(path, e))?;
        if let Some(st) = before {
            let times = Timestamps {
                last_access: Timespec {
                    tv_sec: st.st_atime,
                    tv_nsec: st.st_atime_nsec as _,
                },
                last_modification: Timespec {
                    tv_sec: st.st_mtime,
                    tv_nsec: st.st_mtime_nsec as _,
                },
            };
            rustix::fs::utimensat(&self.root_fd, rel(parent), &times, AtFlags::empty())
                .map_err(|e| io(parent, e))?;
        }
        Ok(())
    }

    /// Applies owner, mode, xattrs and mtime to an entry at `path` under `dirfd`.
    fn apply_meta(
        &self,
        dirfd: impl AsFd,
        name: &[u8],
        full: &Path,
        meta: &LowerMeta,
        kind: FileType,
    ) -> Result<(), FsError> {
        let dirfd = dirfd.as_fd();
        rustix::fs::chownat(
            dirfd,
            rel(name),
            Some(rustix::fs::Uid::from_raw(meta.uid)),
            Some(rustix::fs::Gid::from_raw(meta.gid)),
            AtFlags::SYMLINK_NOFOLLOW,
        )
        .map_err(|e| io(name, e))?;
        if kind != FileType::Symlink {
            rustix::fs::chmodat(
                dirfd,
                rel(name),
                Mode::from_raw_mode(meta.mode),
                AtFlags::empty(),
            )
            .map_err(|e| io(name, e))?;
        }
        for (k, v) in &meta.xattrs {
            let key = OsStr::from_bytes(k);
            rustix::fs::lsetxattr(full, key, v, rustix::fs::XattrFlags::empty())
                .map_err(|e| io(name, e))?;
        }
        let t = Timespec {
            tv_sec: meta.mtime_sec,
            tv_nsec: meta.mtime_nsec as _,
        };
        rustix::fs::utimensat(
            dirfd,
            rel(name),
            &Timestamps {
                last_access: t,
                last_modification: t,
            },
            AtFlags::SYMLINK_NOFOLLOW,
        )
        .map_err(|e| io(name, e))
    }

    /// Creates the upper directory `path` with the metadata of its lower directory.
    pub fn mkdir_like(&self, path: &[u8], meta: &LowerMeta) -> Result<(), FsError> {
        let tmp = self.tmp_name();
        rustix::fs::mkdirat(&self.work_fd, rel(&tmp), Mode::from_raw_mode(0o700))
            .map_err(|e| io(path, e))?;
        let full = self.work_path(&tmp);
        self.apply_meta(&self.work_fd, &tmp, &full, meta, FileType::Directory)?;
        self.install(&tmp, path)
    }

    fn work_path(&self, tmp: &[u8]) -> PathBuf {
        // The work dir sits beside the upper dir (containers/<name>/work).
        self.root
            .parent()
            .unwrap_or(&self.root)
            .join("work")
            .join(OsStr::from_bytes(tmp))
    }

    /// Copies a lower non-directory entry to `path` (metadata kept; file data from its store
    /// object unless `with_data` is false, as before a truncation to zero).
    pub fn copy_up_entry(
        &self,
        path: &[u8],
        kind: &NodeKind<'_>,
        meta: &LowerMeta,
        store: &Store,
        with_data: bool,
    ) -> Result<(), FsError> {
        let tmp = self.tmp_name();
        let full = self.work_path(&tmp);
        let ft = match kind {
            NodeKind::File { digest, .. } => {
                let out = rustix::fs::openat(
                    &self.work_fd,
                    rel(&tmp),
                    OFlags::CREATE | OFlags::EXCL | OFlags::WRONLY | OFlags::CLOEXEC,
                    Mode::from_raw_mode(0o600),
                )
                .map_err(|e| io(path, e))?;
                if with_data {
                    let mut src = store
                        .open_object(digest)
                        .map_err(|e| FsError::Store(e.to_string()))?;
                    let mut dst = File::from(out);
                    // Durable before it is renamed over nothing: a copy lost to a crash must
                    // not leave an empty file hiding the lower one.
                    std::io::copy(&mut src, &mut dst)
                        .and_then(|_| dst.sync_all())
                        .map_err(|e| FsError::Io {
                            path: String::from_utf8_lossy(path).into_owned(),
                            errno: e.raw_os_error().unwrap_or(libc::EIO),
                        })?;
                }
                FileType::RegularFile
            }
            NodeKind::Symlink { target } => {
                rustix::fs::symlinkat(OsStr::from_bytes(target), &self.work_fd, rel(&tmp))
                    .map_err(|e| io(path, e))?;
                FileType::Symlink
            }
            NodeKind::CharDevice { major, minor } => {
                let dev = rustix::fs::makedev(*major, *minor);
                rustix::fs::mknodat(
                    &self.work_fd,
                    rel(&tmp),
                    FileType::CharacterDevice,
                    Mode::from_raw_mode(0o600),
                    dev,
                )
                .map_err(|e| io(path, e))?;
                FileType::CharacterDevice
            }
            NodeKind::BlockDevice { major, minor } => {
                let dev = rustix::fs::makedev(*major, *minor);
                rustix::fs::mknodat(
                    &self.work_fd,
                    rel(&tmp),
                    FileType::BlockDevice,
                    Mode::from_raw_mode(0o600),
                    dev,
                )
                .map_err(|e| io(path, e))?;
                FileType::BlockDevice
            }
            NodeKind::Fifo => {
                rustix::fs::mknodat(
                    &self.work_fd,
                    rel(&tmp),
                    FileType::Fifo,
                    Mode::from_raw_mode(0o600),
                    0,
                )
                .map_err(|e| io(path, e))?;
                FileType::Fifo
            }
            NodeKind::Dir { .. } => return self.mkdir_like(path, meta),
        };
        self.apply_meta(&self.work_fd, &tmp, &full, meta, ft)?;
        self.install(&tmp, path)
    }
}

/// The metadata of a lower entry, as copy-up applies it.
pub struct LowerMeta {
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub mtime_sec: i64,
    pub mtime_nsec: u32,
    pub xattrs: Vec<(Vec<u8>, Vec<u8>)>,
}

impl LowerMeta {
    pub fn of(index: &Index<Mapped>, ino: Ino) -> Result<(Self, NodeKind<'_>), FsError> {
        let inode = index.inode(ino).ok_or(FsError::CorruptIndex(ino.0))?;
        let xattrs = index
            .xattrs(&inode)
            .map_err(|_| FsError::CorruptIndex(ino.0))?;
        Ok((
            LowerMeta {
                mode: inode.mode,
                uid: inode.uid,
                gid: inode.gid,
                mtime_sec: inode.mtime_sec,
                mtime_nsec: inode.mtime_nsec,
                xattrs: xattrs.into_iter().map(|x| (x.name, x.value)).collect(),
            },
            inode.kind,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        }
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

        let file = upper
            .open_beneath(b"real/file", OFlags::RDONLY, Mode::empty())
            .unwrap();
        assert_eq!(
            std::fs::read_to_string(format!(
                "/proc/self/fd/{}",
                std::os::fd::AsRawFd::as_raw_fd(&file)
            ))
            .unwrap(),
            "upper"
        );
        let (parent, name) = upper.parent_beneath(b"real/file").unwrap();
        assert_eq!(name, b"file");
        assert!(rustix::fs::statat(&parent, rel(name), AtFlags::SYMLINK_NOFOLLOW).is_ok());
        let root_parent = upper.parent_beneath(b"").unwrap();
        assert_eq!(root_parent.1, b".");
    }
}
