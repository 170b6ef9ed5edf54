//! Changes to the upper directory's namespace: new entries (made whole in the work directory
//! and exchanged in when a whiteout holds the name), hardlinks, renames, removals, whiteouts
//! and opaque marks. Each change that could let a crash show a hidden lower entry again is
//! one `renameat2` (`RENAME_WHITEOUT` or `RENAME_EXCHANGE`).

use super::{FsError, Upper, rel};
use crate::fs::path::{join, parent_of};
use crate::layer::overlay::OPAQUE_XATTR;
use rustix::fs::{AtFlags, FileType, Gid, Mode, OFlags, RenameFlags, Stat, Uid, XattrFlags};
use std::ffi::OsStr;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;

/// What [`Upper::create`] makes.
pub enum New<'a> {
    /// A device, fifo or socket: `mode` holds the file type and permission bits.
    Node {
        mode: u32,
        rdev: u64,
    },
    /// A directory (setgid when its parent is).
    Dir {
        mode: u32,
    },
    Symlink {
        target: &'a [u8],
    },
    /// Another name for the upper entry `existing` (not owned anew: it is the same inode).
    Link {
        existing: &'a [u8],
    },
}

/// Where a new entry is made: in the directory of its path, or under a fresh name in the
/// work directory when a whiteout holds the path (it is then exchanged in whole, so the
/// name never shows the lower entry the whiteout hides, not even after a crash).
struct Place<'u> {
    /// The directory of the path, resolved beneath the root; `None`: the work directory.
    parent: Option<OwnedFd>,
    work: BorrowedFd<'u>,
    name: Vec<u8>,
}

impl Place<'_> {
    fn dir(&self) -> BorrowedFd<'_> {
        self.parent.as_ref().map_or(self.work, |p| p.as_fd())
    }

    fn in_work(&self) -> bool {
        self.parent.is_none()
    }
}

fn no_flags_or(dir: bool, flag: AtFlags) -> AtFlags {
    if dir { flag } else { AtFlags::empty() }
}

impl Upper {
    fn place(&self, path: &[u8], over_whiteout: bool) -> Result<Place<'_>, FsError> {
        let work = self.work_fd.as_fd();
        if over_whiteout {
            return Ok(Place {
                parent: None,
                work,
                name: self.tmp_name(),
            });
        }
        let (parent, name) = self.parent_beneath(path)?;
        Ok(Place {
            parent: Some(parent),
            work,
            name: name.to_vec(),
        })
    }

    /// Puts a finished new entry in place ([`Place`]); on failure, removes what is left of
    /// it in the work directory, which is nobody's.
    fn finish(
        &self,
        place: &Place<'_>,
        path: &[u8],
        dir: bool,
        done: Result<(), FsError>,
    ) -> Result<(), FsError> {
        let done = done.and_then(|()| match place.in_work() {
            true => self.swap_in(&place.name, path),
            false => Ok(()),
        });
        if done.is_err() && place.in_work() {
            // Best effort: the work directory is not visible in the container either way.
            let _ = rustix::fs::unlinkat(
                &self.work_fd,
                rel(&place.name),
                no_flags_or(dir, AtFlags::REMOVEDIR),
            );
        }
        done
    }

    /// Makes the new entry `new` at `path`, owned by `uid` and `gid` (the parent's group
    /// under a setgid parent), opaque if asked (a directory over a lower one). `over_whiteout`
    /// says a whiteout holds the name.
    pub fn create(
        &self,
        path: &[u8],
        over_whiteout: bool,
        new: New<'_>,
        (uid, gid): (u32, u32),
        opaque: bool,
    ) -> Result<(), FsError> {
        let place = self.place(path, over_whiteout)?;
        let (dir, name) = (place.dir(), rel(&place.name));
        match new {
            New::Node { mode, rdev } => rustix::fs::mknodat(
                dir,
                name,
                FileType::from_raw_mode(mode),
                Mode::from_raw_mode(mode & 0o7777),
                rdev,
            )
            .map_err(|e| FsError::io(&place.name, e))?,
            New::Dir { mode } => rustix::fs::mkdirat(dir, name, Mode::from_raw_mode(mode & 0o7777))
                .map_err(|e| FsError::io(path, e))?,
            New::Symlink { target } => rustix::fs::symlinkat(OsStr::from_bytes(target), dir, name)
                .map_err(|e| FsError::io(&place.name, e))?,
            New::Link { existing } => {
                let (from, from_name) = self.parent_beneath(existing)?;
                rustix::fs::linkat(&from, rel(from_name), dir, name, AtFlags::empty())
                    .map_err(|e| FsError::io(path, e))?
            }
        }
        let owned = match new {
            New::Link { .. } => Ok(()),
            New::Dir { mode } => self
                .set_mode(&place, path, mode, true)
                .and_then(|()| self.own(&place, path, uid, gid)),
            New::Node { mode, .. } => self
                .set_mode(&place, path, mode, false)
                .and_then(|()| self.own(&place, path, uid, gid)),
            New::Symlink { .. } => self.own(&place, path, uid, gid),
        };
        let done = owned.and_then(|()| match opaque {
            true => self.mark_opaque(place.dir(), &place.name),
            false => Ok(()),
        });
        self.finish(&place, path, matches!(new, New::Dir { .. }), done)
    }

    /// Creates the regular file `path` (see [`Upper::create`]) and returns it open
    /// read-write.
    pub fn create_file(
        &self,
        path: &[u8],
        over_whiteout: bool,
        mode: u32,
        (uid, gid): (u32, u32),
    ) -> Result<OwnedFd, FsError> {
        let place = self.place(path, over_whiteout)?;
        let bits = Mode::from_raw_mode(mode & 0o7777);
        let flags = OFlags::CREATE | OFlags::EXCL | OFlags::RDWR | OFlags::NOFOLLOW;
        let fd = rustix::fs::openat(place.dir(), rel(&place.name), flags | OFlags::CLOEXEC, bits)
            .map_err(|e| FsError::io(path, e))?;
        let done = (|| {
            let gid = self.owner_gid(&place, path, gid)?;
            rustix::fs::fchown(&fd, Some(Uid::from_raw(uid)), Some(Gid::from_raw(gid)))
                .map_err(|e| FsError::io(path, e))?;
            // chown cleared setuid/setgid, the daemon's umask took other bits: the caller
            // asked for them.
            if mode & (libc::S_ISUID | libc::S_ISGID | self.umask) != 0 {
                rustix::fs::fchmod(&fd, bits).map_err(|e| FsError::io(path, e))?;
            }
            Ok(())
        })();
        self.finish(&place, path, false, done)?;
        Ok(fd)
    }

    /// Gives the new entry at `place` (to become `path`) the mode its creator asked for:
    /// what the daemon's umask took back, and for a directory (`dir`) under a setgid parent
    /// the setgid bit too.
    fn set_mode(
        &self,
        place: &Place<'_>,
        path: &[u8],
        mode: u32,
        dir: bool,
    ) -> Result<(), FsError> {
        let setgid = dir
            && self
                .parent_stat(place, path)?
                .is_some_and(|st| st.st_mode & libc::S_ISGID != 0);
        if setgid || mode & self.umask != 0 {
            let mode = (mode & 0o7777) | if setgid { libc::S_ISGID } else { 0 };
            rustix::fs::chmodat(
                place.dir(),
                rel(&place.name),
                Mode::from_raw_mode(mode),
                AtFlags::empty(),
            )
            .map_err(|e| FsError::io(path, e))?;
        }
        Ok(())
    }

    /// The directory a new entry at `place` goes into (to become `path`): through the
    /// descriptor the place holds, else (made in the work directory) by its path.
    fn parent_stat(&self, place: &Place<'_>, path: &[u8]) -> Result<Option<Stat>, FsError> {
        match &place.parent {
            Some(parent) => rustix::fs::fstat(parent)
                .map(Some)
                .map_err(|e| FsError::io(parent_of(path).0, e)),
            None => self.stat(parent_of(path).0),
        }
    }

    /// The group a new entry at `place` (to become `path`) gets: its parent's under a setgid
    /// parent, else `gid`.
    fn owner_gid(&self, place: &Place<'_>, path: &[u8], gid: u32) -> Result<u32, FsError> {
        Ok(match self.parent_stat(place, path)? {
            Some(st) if st.st_mode & libc::S_ISGID != 0 => st.st_gid,
            _ => gid,
        })
    }

    /// Gives the new entry at `place` (to become `path`) to its creator.
    fn own(&self, place: &Place<'_>, path: &[u8], uid: u32, gid: u32) -> Result<(), FsError> {
        let gid = self.owner_gid(place, path, gid)?;
        let (dir, name) = (place.dir(), rel(&place.name));
        let before = rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW)
            .map_err(|e| FsError::io(path, e))?;
        rustix::fs::chownat(
            dir,
            name,
            Some(Uid::from_raw(uid)),
            Some(Gid::from_raw(gid)),
            AtFlags::SYMLINK_NOFOLLOW,
        )
        .map_err(|e| FsError::io(path, e))?;
        // chown clears setuid/setgid; the caller asked for them on a new entry.
        if before.st_mode & (libc::S_ISUID | libc::S_ISGID) != 0
            && FileType::from_raw_mode(before.st_mode) != FileType::Symlink
        {
            let mode = Mode::from_raw_mode(before.st_mode & 0o7777);
            rustix::fs::chmodat(dir, name, mode, AtFlags::empty())
                .map_err(|e| FsError::io(path, e))?;
        }
        Ok(())
    }

    /// Puts the work entry `tmp` at `path` in place of the whiteout there, in one step
    /// (`RENAME_EXCHANGE`), then removes the whiteout: the name never shows the lower entry.
    fn swap_in(&self, tmp: &[u8], path: &[u8]) -> Result<(), FsError> {
        let (dir, name) = self.parent_beneath(path)?;
        rustix::fs::renameat_with(
            &self.work_fd,
            rel(tmp),
            &dir,
            rel(name),
            RenameFlags::EXCHANGE,
        )
        .map_err(|e| FsError::io(path, e))?;
        rustix::fs::unlinkat(&self.work_fd, rel(tmp), AtFlags::empty())
            .map_err(|e| FsError::io(path, e))
    }

    /// Moves the upper entry `src` to `dst`, replacing what is there (a whiteout included)
    /// in the same step; with `leave_whiteout`, a whiteout takes `src`'s place in that step
    /// (a lower entry of that name must stay hidden).
    pub fn rename(&self, src: &[u8], dst: &[u8], leave_whiteout: bool) -> Result<(), FsError> {
        let flags = match leave_whiteout {
            true => RenameFlags::WHITEOUT,
            false => RenameFlags::empty(),
        };
        self.rename_with(src, dst, flags)
    }

    /// `renameat2` of the upper entries `src` and `dst`, each through its parent.
    fn rename_with(&self, src: &[u8], dst: &[u8], flags: RenameFlags) -> Result<(), FsError> {
        let (from, from_name) = self.parent_beneath(src)?;
        let (to, to_name) = self.parent_beneath(dst)?;
        rustix::fs::renameat_with(&from, rel(from_name), &to, rel(to_name), flags)
            .map_err(|e| FsError::io(src, e))
    }

    /// Swaps the upper entries at `a` and `b` in one step (`RENAME_EXCHANGE`).
    pub fn exchange(&self, a: &[u8], b: &[u8]) -> Result<(), FsError> {
        self.rename_with(a, b, RenameFlags::EXCHANGE)
    }

    pub fn unlink(&self, path: &[u8], dir: bool) -> Result<(), FsError> {
        let (parent, name) = self.parent_beneath(path)?;
        rustix::fs::unlinkat(&parent, rel(name), no_flags_or(dir, AtFlags::REMOVEDIR))
            .map_err(|e| FsError::io(path, e))
    }

    /// Empties the upper directory `path`, which is empty in the union, so holds at most
    /// whiteouts.
    pub fn clear_whiteouts(&self, path: &[u8]) -> Result<(), FsError> {
        for (child, _) in self.list(path)? {
            self.unlink(&join(path, &child), false)?;
        }
        Ok(())
    }

    /// Makes a whiteout at `path`, where nothing is.
    pub fn whiteout(&self, path: &[u8]) -> Result<(), FsError> {
        let (parent, name) = self.parent_beneath(path)?;
        rustix::fs::mknodat(
            &parent,
            rel(name),
            FileType::CharacterDevice,
            Mode::empty(),
            0,
        )
        .map_err(|e| FsError::io(path, e))
    }

    /// Replaces the entry at `path` (a file, or a directory that is empty in the union, so
    /// holds only whiteouts) with a whiteout in one step (`RENAME_WHITEOUT`): the entry moves
    /// to the work directory and is removed there. A crash never leaves the name showing
    /// the lower entry it hid.
    pub fn replace_with_whiteout(&self, path: &[u8], dir: bool) -> Result<(), FsError> {
        let tmp = self.tmp_name();
        let (parent, name) = self.parent_beneath(path)?;
        rustix::fs::renameat_with(
            &parent,
            rel(name),
            &self.work_fd,
            rel(&tmp),
            RenameFlags::WHITEOUT,
        )
        .map_err(|e| FsError::io(path, e))?;
        if dir {
            for (child, _) in self.list_work(&tmp)? {
                rustix::fs::unlinkat(&self.work_fd, rel(&join(&tmp, &child)), AtFlags::empty())
                    .map_err(|e| FsError::io(&child, e))?;
            }
        }
        rustix::fs::unlinkat(
            &self.work_fd,
            rel(&tmp),
            no_flags_or(dir, AtFlags::REMOVEDIR),
        )
        .map_err(|e| FsError::io(path, e))
    }

    /// Whether the upper directory `path` is opaque (hides the lower tree below it).
    pub fn is_opaque(&self, path: &[u8]) -> bool {
        let Ok(full) = self.proc_path(path) else {
            return false;
        };
        let mut buf = [0u8; 4];
        matches!(rustix::fs::lgetxattr(&full.path, OPAQUE_XATTR, &mut buf[..]), Ok(1) if buf[0] == b'y')
    }

    /// Marks the upper directory `path` opaque.
    pub fn set_opaque(&self, path: &[u8]) -> Result<(), FsError> {
        let fd = self.open_beneath(path, OFlags::DIRECTORY | OFlags::RDONLY, Mode::empty())?;
        rustix::fs::fsetxattr(&fd, OPAQUE_XATTR, b"y", XattrFlags::empty())
            .map_err(|e| FsError::io(path, e))
    }

    /// Marks the directory `name` in `dir` opaque.
    fn mark_opaque(&self, dir: BorrowedFd<'_>, name: &[u8]) -> Result<(), FsError> {
        let fd = rustix::fs::openat(
            dir,
            rel(name),
            OFlags::DIRECTORY | OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| FsError::io(name, e))?;
        rustix::fs::fsetxattr(&fd, OPAQUE_XATTR, b"y", XattrFlags::empty())
            .map_err(|e| FsError::io(name, e))
    }
}
