//! Copy-up of one lower entry: built in the work directory with the lower entry's owner,
//! mode, xattrs and mtime (and a file's data from its store object, made durable), then
//! renamed into place. Which entries to copy, and in what order, is `copy_up.rs`'s business.

use super::{FsError, Upper, rel};
use crate::fs::path::parent_of;
use crate::index::NodeKind;
use crate::model::Meta;
use crate::store::Store;
use rustix::fs::{AtFlags, FileType, Gid, Mode, OFlags, Timespec, Timestamps, Uid, XattrFlags};
use std::ffi::OsStr;
use std::fs::File;
use std::os::unix::ffi::OsStrExt;

impl Upper {
    /// Moves a finished entry from the work directory to `path`. A copy-up is not a change
    /// the user made to the parent directory, so the parent keeps its times.
    fn install(&self, tmp: &[u8], path: &[u8]) -> Result<(), FsError> {
        let (dir, name) = self.parent_beneath(path)?;
        self.keeping_parent_times(path, || {
            rustix::fs::renameat(&self.work_fd, rel(tmp), &dir, rel(name))
                .map_err(|e| FsError::io(path, e))
        })
    }

    /// Links the copied-up upper file `existing` at `new` too (the other names of a lower
    /// hardlink); `new`'s directory keeps its times, as for [`Upper::copy_up_entry`].
    pub fn link_copied(&self, existing: &[u8], new: &[u8]) -> Result<(), FsError> {
        let (from, from_name) = self.parent_beneath(existing)?;
        let (to, to_name) = self.parent_beneath(new)?;
        self.keeping_parent_times(new, || {
            rustix::fs::linkat(&from, rel(from_name), &to, rel(to_name), AtFlags::empty())
                .map_err(|e| FsError::io(new, e))
        })
    }

    /// Runs `change`, which adds the entry `path`, and gives its directory back the times it
    /// had before.
    fn keeping_parent_times(
        &self,
        path: &[u8],
        change: impl FnOnce() -> Result<(), FsError>,
    ) -> Result<(), FsError> {
        let (parent, _) = parent_of(path);
        let before = self.stat(parent)?;
        change()?;
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
            let (above, parent_name) = self.parent_beneath(parent)?;
            let flags = AtFlags::SYMLINK_NOFOLLOW;
            rustix::fs::utimensat(&above, rel(parent_name), &times, flags)
                .map_err(|e| FsError::io(parent, e))?;
        }
        Ok(())
    }

    /// Applies owner, mode, xattrs and mtime to the work entry `tmp` (of type `kind`).
    fn apply_meta(&self, tmp: &[u8], meta: &Meta, kind: FileType) -> Result<(), FsError> {
        let dir = &self.work_fd;
        let fail = |e| FsError::io(tmp, e);
        rustix::fs::chownat(
            dir,
            rel(tmp),
            Some(Uid::from_raw(meta.uid)),
            Some(Gid::from_raw(meta.gid)),
            AtFlags::SYMLINK_NOFOLLOW,
        )
        .map_err(fail)?;
        if kind != FileType::Symlink {
            rustix::fs::chmodat(
                dir,
                rel(tmp),
                Mode::from_raw_mode(meta.mode),
                AtFlags::empty(),
            )
            .map_err(fail)?;
        }
        let full = self.work_path(tmp);
        for x in &meta.xattrs {
            rustix::fs::lsetxattr(
                &full,
                OsStr::from_bytes(&x.name),
                &x.value,
                XattrFlags::empty(),
            )
            .map_err(fail)?;
        }
        let t = Timespec {
            tv_sec: meta.mtime_sec,
            tv_nsec: meta.mtime_nsec as _,
        };
        let times = Timestamps {
            last_access: t,
            last_modification: t,
        };
        rustix::fs::utimensat(dir, rel(tmp), &times, AtFlags::SYMLINK_NOFOLLOW).map_err(fail)
    }

    /// Creates the upper directory `path` with the metadata of its lower directory.
    pub fn mkdir_like(&self, path: &[u8], meta: &Meta) -> Result<(), FsError> {
        let tmp = self.tmp_name();
        rustix::fs::mkdirat(&self.work_fd, rel(&tmp), Mode::from_raw_mode(0o700))
            .map_err(|e| FsError::io(path, e))?;
        self.apply_meta(&tmp, meta, FileType::Directory)?;
        self.install(&tmp, path)
    }

    /// Copies a lower entry to `path` (metadata kept; file data from its store object unless
    /// `with_data` is false, as before a truncation to zero).
    pub fn copy_up_entry(
        &self,
        path: &[u8],
        kind: &NodeKind<'_>,
        meta: &Meta,
        store: &Store,
        with_data: bool,
    ) -> Result<(), FsError> {
        let tmp = self.tmp_name();
        let node = |ft: FileType, dev: u64| {
            rustix::fs::mknodat(
                &self.work_fd,
                rel(&tmp),
                ft,
                Mode::from_raw_mode(0o600),
                dev,
            )
            .map_err(|e| FsError::io(path, e))
            .map(|()| ft)
        };
        let ft = match kind {
            NodeKind::File { digest, .. } => {
                let out = rustix::fs::openat(
                    &self.work_fd,
                    rel(&tmp),
                    OFlags::CREATE | OFlags::EXCL | OFlags::WRONLY | OFlags::CLOEXEC,
                    Mode::from_raw_mode(0o600),
                )
                .map_err(|e| FsError::io(path, e))?;
                if with_data {
                    let mut src = store.open_object(digest)?;
                    let mut dst = File::from(out);
                    // Durable before it is renamed over nothing: a copy lost to a crash must
                    // not leave an empty file hiding the lower one.
                    std::io::copy(&mut src, &mut dst)
                        .and_then(|_| dst.sync_all())
                        .map_err(|e| FsError::io(path, e))?;
                }
                FileType::RegularFile
            }
            NodeKind::Symlink { target } => {
                rustix::fs::symlinkat(OsStr::from_bytes(target), &self.work_fd, rel(&tmp))
                    .map_err(|e| FsError::io(path, e))?;
                FileType::Symlink
            }
            NodeKind::CharDevice { major, minor } => node(
                FileType::CharacterDevice,
                rustix::fs::makedev(*major, *minor),
            )?,
            NodeKind::BlockDevice { major, minor } => {
                node(FileType::BlockDevice, rustix::fs::makedev(*major, *minor))?
            }
            NodeKind::Fifo => node(FileType::Fifo, 0)?,
            NodeKind::Dir { .. } => return self.mkdir_like(path, meta),
        };
        self.apply_meta(&tmp, meta, ft)?;
        self.install(&tmp, path)
    }
}
