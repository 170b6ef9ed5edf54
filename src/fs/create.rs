//! Names made and removed: create, mkdir, mknod, symlink, link, unlink and rmdir. A new
//! entry over a lower name hidden by a whiteout replaces the whiteout in one step; a removed
//! name with a lower entry under it leaves a whiteout.

use super::error::FsError;
use super::id::NodeId;
use super::lookup::{Found, found_or_none};
use super::path::join;
use super::union::UnionFs;
use super::upper::{New, Upper};
use crate::model::Ino;
use std::fs::File;

impl UnionFs {
    /// Checks that `name` is free in `parent` and makes the parent an upper directory.
    /// Returns the new path, whether a lower entry of that name exists (hidden by a
    /// whiteout, or in a directory made opaque), and whether a whiteout is at the path.
    fn prepare_new(
        &self,
        parent_path: &[u8],
        parent_lower: Option<Ino>,
        name: &[u8],
    ) -> Result<(Vec<u8>, bool, bool), FsError> {
        if found_or_none(self.layers.child_of(parent_path, parent_lower, name))?.is_some() {
            return Err(FsError::refused_at(&join(parent_path, name), libc::EEXIST));
        }
        self.layers.ensure_upper_dir(parent_path)?;
        let path = join(parent_path, name);
        let over_whiteout = self
            .layers
            .upper
            .stat(&path)?
            .is_some_and(|st| Upper::is_whiteout(&st));
        let lower_exists = parent_lower
            .and_then(|p| self.layers.index.lookup(p, name))
            .is_some();
        Ok((path, lower_exists, over_whiteout))
    }

    /// Makes the entry `new` (a directory, device, fifo or symlink) named `name` in
    /// `parent`, owned by `owner` (uid, gid), and resolves it. A directory over a lower
    /// entry is opaque.
    pub fn make(
        &self,
        parent: NodeId,
        name: &[u8],
        new: New<'_>,
        owner: (u32, u32),
    ) -> Result<Found, FsError> {
        if let New::Node { mode, rdev: 0 } = new
            && mode & libc::S_IFMT == libc::S_IFCHR
        {
            // A character device 0/0 is a whiteout: overlayfs refuses to make one too.
            return Err(FsError::refused_at(name, libc::EPERM));
        }
        let parent = self.lock_dir(parent, None)?;
        let (path, lower_exists, over_whiteout) =
            self.prepare_new(&parent.path, parent.lower, name)?;
        let opaque = matches!(new, New::Dir { .. }) && lower_exists;
        self.layers
            .upper
            .create(&path, over_whiteout, new, owner, opaque)?;
        self.layers.child_of(&parent.path, parent.lower, name)
    }

    /// Creates a regular file `name` in `parent`, owned by `owner` (uid, gid), and returns
    /// it open read-write: one `openat`, no second lookup.
    pub fn create_file(
        &self,
        parent: NodeId,
        name: &[u8],
        mode: u32,
        owner: (u32, u32),
    ) -> Result<(Found, File), FsError> {
        let parent = self.lock_dir(parent, None)?;
        let path = join(&parent.path, name);
        let lower_visible = parent
            .lower
            .and_then(|p| self.layers.index.lookup(p, name))
            .is_some();
        let over_whiteout = match self.layers.upper.stat(&path)? {
            Some(st) if Upper::is_whiteout(&st) => true,
            Some(_) => return Err(FsError::refused_at(&path, libc::EEXIST)),
            None if lower_visible => return Err(FsError::refused_at(&path, libc::EEXIST)),
            None => false,
        };
        self.layers.ensure_upper_dir(&parent.path)?;
        let fd = self
            .layers
            .upper
            .create_file(&path, over_whiteout, mode, owner)?;
        let st = rustix::fs::fstat(&fd).map_err(|e| FsError::io(&path, e))?;
        let found = Found {
            id: NodeId::upper(st.st_ino),
            path,
            lower: None,
            upper: Some(st),
        };
        Ok((found, File::from(fd)))
    }

    /// A new name for node `id`: `new_name` in `new_parent`.
    pub fn link(&self, id: NodeId, new_parent: NodeId, new_name: &[u8]) -> Result<Found, FsError> {
        let locked = self.lock_node(id, Some(new_parent))?;
        let path = &locked.path;
        self.layers.copy_up(path, locked.lower, true)?;
        let (parent_path, parent_lower) = self.node(new_parent)?;
        let (new_path, _, over_whiteout) =
            self.prepare_new(&parent_path, parent_lower, new_name)?;
        let new = New::Link { existing: path };
        self.layers
            .upper
            .create(&new_path, over_whiteout, new, (0, 0), false)?;
        // The new name is the same kernel inode as the old one.
        let st = self.layers.in_upper(&new_path)?;
        Ok(Found {
            id,
            path: new_path,
            lower: None,
            upper: st,
        })
    }

    /// Removes a name (`dir`: rmdir); a lower entry under it is then hidden by a whiteout.
    pub fn remove(&self, parent: NodeId, name: &[u8], dir: bool) -> Result<(), FsError> {
        let parent = self.lock_dir(parent, Some(name))?;
        let found = self.layers.child_of(&parent.path, parent.lower, name)?;
        match (dir, self.layers.is_dir(&found)) {
            (true, false) => return Err(FsError::refused_at(&found.path, libc::ENOTDIR)),
            (false, true) => return Err(FsError::refused_at(&found.path, libc::EISDIR)),
            _ => {}
        }
        if dir && !self.layers.list_dir(&found.path, found.lower)?.is_empty() {
            return Err(FsError::refused_at(&found.path, libc::ENOTEMPTY));
        }
        let lower_child = parent.lower.and_then(|p| self.layers.index.lookup(p, name));
        self.keep_orphan(found.id, &found.path, found.upper.as_ref());
        let upper = &self.layers.upper;
        match (found.upper.is_some(), lower_child.is_some()) {
            // One step, so a crash never shows the lower entry again.
            (true, true) => upper.replace_with_whiteout(&found.path, dir)?,
            (true, false) => {
                if dir {
                    upper.clear_whiteouts(&found.path)?;
                }
                upper.unlink(&found.path, dir)?;
            }
            (false, true) => {
                self.layers.ensure_upper_dir(&parent.path)?;
                upper.whiteout(&found.path)?;
            }
            (false, false) => {}
        }
        self.nodes.forget_path(found.id, &found.path);
        // The lower entry's node (still held for files opened before a copy-up) loses the
        // name too.
        if let Some(lower) = lower_child {
            self.nodes.forget_path(NodeId::lower(lower), &found.path);
        }
        Ok(())
    }
}
