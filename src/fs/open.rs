//! Opening a node's file: the store object for reads of a lower file, else the upper file
//! (copied up first for a write), or, for a node whose names are gone, the upper file it
//! kept. What the kernel is given for it (handle, passthrough) is `handles.rs`'s business.

use super::error::FsError;
use super::id::NodeId;
use super::setid::{Caller, drop_setid, setid_dropped_by_write};
use super::union::UnionFs;
use super::upper::Upper;
use crate::index::NodeKind;
use crate::model::Ino;
use std::fs::File;
use std::os::fd::OwnedFd;

/// A file opened for the kernel ([`UnionFs::open_file`]).
pub struct Opened {
    pub file: File,
    /// The store object of a lower file, opened for reading.
    pub lower: bool,
    /// Writes through this handle must drop setuid/setgid first, so they go through the
    /// daemon rather than passthrough ([`drop_setid`]).
    pub writes_drop_setid: bool,
}

impl UnionFs {
    /// Opens the file behind node `id` for the kernel with open `flags`. [`FsError::Stale`]
    /// asks the kernel to look the name up again: the node was copied up while it is open
    /// on its lower object (`lower_open`), or its name is gone and nothing of it was kept.
    pub fn open_file(
        &self,
        id: NodeId,
        flags: i32,
        lower_open: bool,
        caller: &Caller,
    ) -> Result<Opened, FsError> {
        let writes = flags & libc::O_ACCMODE != libc::O_RDONLY || flags & libc::O_TRUNC != 0;
        // A node whose name was unlinked or replaced since the kernel looked it up (a `cat
        // old` racing `mv new old`) is opened through what it kept of itself.
        let (path, lower) = match self.node(id) {
            Ok(found) => found,
            Err(FsError::Unlinked(_)) => return self.open_orphan(id, flags, writes, caller),
            Err(e) => return Err(e),
        };
        if !writes && self.layers.in_upper(&path)?.is_none() {
            // A read of a lower file: its store object, wherever its name goes meanwhile.
            return self.open_lower(&path, lower);
        }
        // Read again and opened under the locks: no rename in between can make the handle
        // open another file.
        let locked = match self.lock_node(id, None) {
            Ok(locked) => locked,
            Err(FsError::Unlinked(_)) => return self.open_orphan(id, flags, writes, caller),
            Err(e) => return Err(e),
        };
        let path = &locked.path;
        if self.layers.in_upper(path)?.is_none() {
            if !writes {
                return Err(FsError::Stale {
                    id,
                    why: "copied up since its lookup",
                });
            }
            self.layers
                .copy_up(path, locked.lower, flags & libc::O_TRUNC == 0)?;
            if lower_open {
                return Err(FsError::Stale {
                    id,
                    why: "copied up while open on its lower object",
                });
            }
        }
        let fd = self.layers.upper.open_file(path)?;
        finish_open(fd, path, flags, writes, caller)
    }

    /// The store object of the lower file `ino` (at `path`, for errors), opened for reading.
    fn open_lower(&self, path: &[u8], ino: Option<Ino>) -> Result<Opened, FsError> {
        let ino = ino.ok_or_else(|| FsError::not_found(path))?;
        let Some(NodeKind::File { digest, .. }) = self.layers.index.inode(ino).map(|i| i.kind)
        else {
            return Err(FsError::refused_at(path, libc::EINVAL));
        };
        Ok(Opened {
            file: self.layers.store.open_object(&digest)?,
            lower: true,
            writes_drop_setid: false,
        })
    }

    /// Opens node `id`, whose names are all gone, through the upper file it kept; stale if
    /// it kept none. (Not through its lower object: a node that was copied up would read its
    /// content from before.)
    fn open_orphan(
        &self,
        id: NodeId,
        flags: i32,
        writes: bool,
        caller: &Caller,
    ) -> Result<Opened, FsError> {
        let Some(kept) = self.nodes.orphan(id)? else {
            return Err(FsError::Stale {
                id,
                why: "unlinked, nothing of it kept",
            });
        };
        let fd = Upper::reopen(&kept)?;
        finish_open(fd, b"(unlinked)", flags, writes, caller)
    }
}

/// What an open of an upper file does after opening it: truncation, and the setuid/setgid
/// bits a user's writes drop.
fn finish_open(
    fd: OwnedFd,
    path: &[u8],
    flags: i32,
    writes: bool,
    caller: &Caller,
) -> Result<Opened, FsError> {
    if flags & libc::O_TRUNC != 0 && writes {
        rustix::fs::ftruncate(&fd, 0).map_err(|e| FsError::io(path, e))?;
    }
    // Passthrough writes run with the daemon's privileges, which keep setuid/setgid; a
    // write by anyone else must drop them, as the kernel does on other filesystems. A
    // truncation is that write; other writes to such a file go through the daemon.
    let mut writes_drop_setid = false;
    if writes && caller.uid != 0 {
        let st = rustix::fs::fstat(&fd).map_err(|e| FsError::io(path, e))?;
        if setid_dropped_by_write(st.st_mode, st.st_gid, caller) != 0 {
            if flags & libc::O_TRUNC != 0 {
                drop_setid(&fd, caller).map_err(|e| FsError::io(path, e))?;
            } else {
                writes_drop_setid = true;
            }
        }
    }
    Ok(Opened {
        file: File::from(fd),
        lower: false,
        writes_drop_setid,
    })
}
