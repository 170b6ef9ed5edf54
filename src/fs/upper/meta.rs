//! Attributes, xattrs and contents of existing upper entries: opening them for the kernel,
//! chmod, chown, truncate, times, xattrs, readlink, fsync of a directory, statfs. Every call
//! goes through a descriptor resolved beneath the upper root (see the module above).

use super::{FsError, Upper, fd_path, rel};
use crate::fs::setid::{Caller, drop_setid};
use rustix::fs::{AtFlags, FileType, Gid, Mode, OFlags, Timespec, Timestamps, Uid, XattrFlags};
use std::ffi::OsStr;
use std::fs::File;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;

/// A time to set: `None` leaves it, `Some(None)` is now, `Some(Some((s, ns)))` that time.
pub type SetTime = Option<Option<(i64, u32)>>;

fn timespec(t: SetTime) -> Timespec {
    match t {
        None => Timespec {
            tv_sec: 0,
            tv_nsec: rustix::fs::UTIME_OMIT,
        },
        Some(None) => Timespec {
            tv_sec: 0,
            tv_nsec: rustix::fs::UTIME_NOW,
        },
        Some(Some((s, n))) => Timespec {
            tv_sec: s,
            tv_nsec: n as _,
        },
    }
}

impl Upper {
    /// Opens the upper file `path` for the kernel: read-write if it can be, else read-only.
    pub fn open_file(&self, path: &[u8]) -> Result<OwnedFd, FsError> {
        self.open_beneath(path, OFlags::RDWR, Mode::empty())
            .or_else(|_| self.open_beneath(path, OFlags::RDONLY, Mode::empty()))
    }

    /// Holds the upper entry `path` (`O_PATH`), so it stays reachable once unlinked.
    pub fn hold(&self, path: &[u8]) -> Result<OwnedFd, FsError> {
        self.open_beneath(path, OFlags::PATH, Mode::empty())
    }

    /// Opens for the kernel a file held with [`Upper::hold`] (read-write if it can be).
    pub fn reopen(held: &OwnedFd) -> Result<OwnedFd, FsError> {
        let reopen =
            |flags: OFlags| rustix::fs::open(fd_path(held), flags | OFlags::CLOEXEC, Mode::empty());
        reopen(OFlags::RDWR)
            .or_else(|_| reopen(OFlags::RDONLY))
            .map_err(|e| FsError::io(b"(unlinked)", e))
    }

    /// chmod of `path` through its descriptor (a symlink has no mode of its own to change).
    pub fn chmod(&self, path: &[u8], mode: u32) -> Result<(), FsError> {
        let target = self.open_beneath(path, OFlags::PATH, Mode::empty())?;
        let st = rustix::fs::fstat(&target).map_err(|e| FsError::io(path, e))?;
        if FileType::from_raw_mode(st.st_mode) == FileType::Symlink {
            return Ok(());
        }
        rustix::fs::chmod(fd_path(&target), Mode::from_raw_mode(mode & 0o7777))
            .map_err(|e| FsError::io(path, e))
    }

    pub fn chown(&self, path: &[u8], uid: Option<u32>, gid: Option<u32>) -> Result<(), FsError> {
        let (dir, name) = self.parent_beneath(path)?;
        rustix::fs::chownat(
            &dir,
            rel(name),
            uid.map(Uid::from_raw),
            gid.map(Gid::from_raw),
            AtFlags::SYMLINK_NOFOLLOW,
        )
        .map_err(|e| FsError::io(path, e))
    }

    /// Truncates the upper file `path` (through `file` if it is open) to `size`, and drops
    /// the setuid/setgid bits `caller`'s write would: the daemon truncates as root, which
    /// keeps them.
    pub fn truncate(
        &self,
        path: &[u8],
        size: u64,
        file: Option<&File>,
        caller: &Caller,
    ) -> Result<(), FsError> {
        let opened;
        let fd = match file {
            Some(f) => f.as_fd(),
            None => {
                opened = self.open_beneath(path, OFlags::WRONLY, Mode::empty())?;
                opened.as_fd()
            }
        };
        rustix::fs::ftruncate(fd, size).map_err(|e| FsError::io(path, e))?;
        drop_setid(fd, caller).map_err(|e| FsError::io(path, e))
    }

    /// Sets the access and modification times of `path` (not following a symlink).
    pub fn set_times(&self, path: &[u8], atime: SetTime, mtime: SetTime) -> Result<(), FsError> {
        let (dir, name) = self.parent_beneath(path)?;
        let times = Timestamps {
            last_access: timespec(atime),
            last_modification: timespec(mtime),
        };
        rustix::fs::utimensat(&dir, rel(name), &times, AtFlags::SYMLINK_NOFOLLOW)
            .map_err(|e| FsError::io(path, e))
    }

    pub fn readlink(&self, path: &[u8]) -> Result<Vec<u8>, FsError> {
        let (dir, name) = self.parent_beneath(path)?;
        let target = rustix::fs::readlinkat(&dir, rel(name), Vec::new())
            .map_err(|e| FsError::io(path, e))?;
        Ok(target.into_bytes())
    }

    pub fn get_xattr(&self, path: &[u8], name: &[u8]) -> Result<Vec<u8>, FsError> {
        let full = self.proc_path(path)?;
        let mut buf = vec![0u8; 64 * 1024];
        let n = rustix::fs::lgetxattr(&full.path, OsStr::from_bytes(name), &mut buf[..])
            .map_err(|e| FsError::io(path, e))?;
        buf.truncate(n);
        Ok(buf)
    }

    /// The names of `path`'s xattrs.
    pub fn xattr_names(&self, path: &[u8]) -> Result<Vec<Vec<u8>>, FsError> {
        let full = self.proc_path(path)?;
        let xattrs = crate::sys::xattrs(&full.path).map_err(|e| FsError::io(path, e))?;
        Ok(xattrs.into_iter().map(|(n, _)| n).collect())
    }

    /// Sets (`Some`) or removes (`None`) the xattr `name` of `path`.
    pub fn set_xattr(
        &self,
        path: &[u8],
        name: &[u8],
        value: Option<&[u8]>,
        flags: i32,
    ) -> Result<(), FsError> {
        let full = self.proc_path(path)?;
        let key = OsStr::from_bytes(name);
        match value {
            Some(v) => rustix::fs::lsetxattr(
                &full.path,
                key,
                v,
                XattrFlags::from_bits_retain(flags as u32),
            ),
            None => rustix::fs::lremovexattr(&full.path, key),
        }
        .map_err(|e| FsError::io(path, e))
    }

    /// fsync of the upper directory `path`.
    pub fn fsync_dir(&self, path: &[u8]) -> Result<(), FsError> {
        let fd = self.open_beneath(path, OFlags::RDONLY | OFlags::DIRECTORY, Mode::empty())?;
        rustix::fs::fsync(&fd).map_err(|e| FsError::io(path, e))
    }

    /// The upper directory's filesystem's statistics.
    pub fn statfs(&self) -> Result<rustix::fs::StatVfs, FsError> {
        rustix::fs::fstatvfs(&self.root_fd).map_err(|e| FsError::io(b"", e))
    }
}
