//! Changes to a node's attributes and xattrs (after copying it up), reads of its xattrs,
//! fsync of a directory and statfs. Overlay-private xattrs are neither shown nor set.

use super::attr::Attr;
use super::error::FsError;
use super::id::NodeId;
use super::setid::Caller;
use super::union::UnionFs;
use super::upper::SetTime;
use crate::layer::overlay::is_private_xattr;
use std::fs::File;

/// What a setattr changes: each field `None` is left as it is.
#[derive(Default)]
pub struct SetAttr<'f> {
    pub mode: Option<u32>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub size: Option<u64>,
    pub atime: SetTime,
    pub mtime: SetTime,
    /// The open file the change came through, if any (a truncation uses it).
    pub file: Option<&'f File>,
}

impl UnionFs {
    /// chmod, chown, truncate and utimens, after copying the entry up.
    pub fn setattr(
        &self,
        id: NodeId,
        change: &SetAttr<'_>,
        caller: &Caller,
    ) -> Result<Attr, FsError> {
        // Held to the end: no rename moves the path meanwhile, and a freeze for `snap commit`
        // waits for the whole change.
        let locked = self.lock_node(id, None)?;
        self.layers
            .copy_up(&locked.path, locked.lower, change.size != Some(0))?;
        let (upper, path) = (&self.layers.upper, locked.path.as_slice());
        if let Some(mode) = change.mode {
            upper.chmod(path, mode)?;
        }
        if change.uid.is_some() || change.gid.is_some() {
            upper.chown(path, change.uid, change.gid)?;
        }
        if let Some(size) = change.size {
            upper.truncate(path, size, change.file, caller)?;
        }
        if change.atime.is_some() || change.mtime.is_some() {
            upper.set_times(path, change.atime, change.mtime)?;
        }
        self.getattr(id)
    }

    pub fn getxattr(&self, id: NodeId, name: &[u8]) -> Result<Vec<u8>, FsError> {
        let (path, lower) = self.node(id)?;
        if is_private_xattr(name) {
            return Err(FsError::refused("overlay xattr", libc::ENODATA));
        }
        if self.layers.in_upper(&path)?.is_some() {
            return self.layers.upper.get_xattr(&path, name);
        }
        let ino = lower.ok_or_else(|| FsError::not_found(&path))?;
        self.layers
            .lower_xattrs(ino)?
            .into_iter()
            .find(|x| x.name == name)
            .map(|x| x.value)
            .ok_or_else(|| FsError::refused("xattr", libc::ENODATA))
    }

    /// The names of node `id`'s xattrs, each followed by a NUL, as listxattr(2) gives them.
    pub fn listxattr(&self, id: NodeId) -> Result<Vec<u8>, FsError> {
        let (path, lower) = self.node(id)?;
        let names: Vec<Vec<u8>> = if self.layers.in_upper(&path)?.is_some() {
            self.layers.upper.xattr_names(&path)?
        } else {
            let ino = lower.ok_or_else(|| FsError::not_found(&path))?;
            let xattrs = self.layers.lower_xattrs(ino)?;
            xattrs.into_iter().map(|x| x.name).collect()
        };
        let mut out = Vec::new();
        for name in names.into_iter().filter(|n| !is_private_xattr(n)) {
            out.extend_from_slice(&name);
            out.push(0);
        }
        Ok(out)
    }

    /// Sets (`Some`) or removes (`None`) the xattr `name` of node `id`, after copying it up.
    pub fn setxattr(
        &self,
        id: NodeId,
        name: &[u8],
        value: Option<&[u8]>,
        flags: i32,
    ) -> Result<(), FsError> {
        if is_private_xattr(name) {
            return Err(FsError::refused("overlay xattr", libc::EPERM));
        }
        // Held to the end, as in `setattr`.
        let locked = self.lock_node(id, None)?;
        self.layers.copy_up(&locked.path, locked.lower, true)?;
        self.layers
            .upper
            .set_xattr(&locked.path, name, value, flags)
    }

    /// fsync of a directory: the upper directory, if it has one (a lower one never changes).
    pub fn fsync_dir(&self, id: NodeId) -> Result<(), FsError> {
        let (path, _) = self.node(id)?;
        if self.layers.in_upper(&path)?.is_none() {
            return Ok(());
        }
        self.layers.upper.fsync_dir(&path)
    }

    pub fn statfs(&self) -> Result<rustix::fs::StatVfs, FsError> {
        self.layers.upper.statfs()
    }
}
