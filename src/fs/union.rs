//! One container's union filesystem by node id: the layers, the node table and the
//! namespace locks, and what joins them: resolving a node's name, locking what a change to
//! a node or a directory changes, and keeping an unlinked file reachable for its node. The
//! operations (`open.rs`, `create.rs`, `rename.rs`, `setattr.rs`, `readdir.rs`) build on it.

use super::attr::Attr;
use super::error::FsError;
use super::id::NodeId;
use super::locks::{NamespaceGuard, NamespaceLocks};
use super::lookup::{Found, Layers};
use super::nodes::Nodes;
use super::path::{join, parent_of};
use super::upper::Upper;
use crate::index::Index;
use crate::model::Ino;
use crate::store::Store;
use crate::sys::Mapped;
use rustix::fs::Stat;

/// One container's union filesystem.
pub struct UnionFs {
    pub(super) layers: Layers,
    pub(super) nodes: Nodes,
    /// Orders changes to the upper directory's namespace (create, unlink, rename, copy-up).
    pub(super) locks: NamespaceLocks,
}

/// A node's path and lower inode, read under the namespace locks held with them.
pub(super) struct Locked<'a> {
    pub(super) _guard: NamespaceGuard<'a>,
    pub(super) path: Vec<u8>,
    pub(super) lower: Option<Ino>,
}

impl UnionFs {
    pub fn new(index: Index<Mapped>, store: Store, upper: Upper) -> Self {
        UnionFs {
            layers: Layers::new(index, store, upper),
            nodes: Nodes::default(),
            locks: NamespaceLocks::default(),
        }
    }

    /// Holds every change that goes through the daemon (create, unlink, rename, copy-up,
    /// setattr, xattrs) until the guard is dropped: `snap commit` reads the upper meanwhile.
    /// Reads and writes of open files go through passthrough and are not held.
    pub fn freeze(&self) -> NamespaceGuard<'_> {
        self.locks.whole()
    }

    /// Node `id`'s first path and its lower inode.
    pub fn node(&self, id: NodeId) -> Result<(Vec<u8>, Option<Ino>), FsError> {
        self.nodes.get(id)
    }

    /// Resolves `path` from the root.
    pub fn resolve(&self, path: &[u8]) -> Result<Found, FsError> {
        self.layers.resolve(path)
    }

    /// Resolves `name` in the directory node `parent`.
    pub fn child(&self, parent: NodeId, name: &[u8]) -> Result<Found, FsError> {
        let (parent_path, parent_lower) = self.node(parent)?;
        self.layers.child_of(&parent_path, parent_lower, name)
    }

    /// The attributes of a resolved entry.
    pub fn attr_of(&self, found: &Found) -> Result<Attr, FsError> {
        self.layers.attr_of(found)
    }

    /// Counts one more kernel reference to the node of `found`.
    pub fn remember(&self, found: &Found) {
        self.nodes.remember(found.id, &found.path, found.lower);
    }

    /// Drops `n` kernel references to node `id`.
    pub fn forget(&self, id: NodeId, n: u64) {
        self.nodes.forget(id, n);
    }

    /// The current attributes of node `id` (its path may have changed state since lookup).
    pub fn getattr(&self, id: NodeId) -> Result<Attr, FsError> {
        match self.node(id) {
            Ok((path, lower)) => self.layers.attr_at(id, &path, lower),
            // An unlinked file still open (`fstat` of a deleted log): what it kept of itself.
            Err(e @ FsError::Unlinked(_)) => self.orphan_attr(id).ok_or(e),
            Err(e) => Err(e),
        }
    }

    /// The attributes of node `id` whose names are gone, from its kept upper file.
    fn orphan_attr(&self, id: NodeId) -> Option<Attr> {
        let kept = self.nodes.orphan(id).ok()??;
        rustix::fs::fstat(&*kept)
            .ok()
            .map(|st| Attr::of_stat(id, &st))
    }

    pub fn readlink(&self, id: NodeId) -> Result<Vec<u8>, FsError> {
        let (path, lower) = self.node(id)?;
        self.layers.readlink(&path, lower)
    }

    /// Keeps the upper regular file at `path` reachable for node `id`, if the kernel holds
    /// that node, before its last name there is unlinked or replaced.
    pub(super) fn keep_orphan(&self, id: NodeId, path: &[u8], upper: Option<&Stat>) {
        if !upper.is_some_and(Upper::is_regular) || !self.nodes.holds(id) {
            return;
        }
        if let Ok(fd) = self.layers.upper.hold(path) {
            self.nodes.keep_orphan(id, fd);
        }
    }

    /// Adds to `dirs` what a change to the entries of the directory `dir` locks: `dir`, and
    /// the parent of each directory on the way to it that copy-up has yet to make.
    pub(super) fn dirs_changed_in(
        &self,
        dir: &[u8],
        dirs: &mut Vec<Vec<u8>>,
    ) -> Result<(), FsError> {
        dirs.push(dir.to_vec());
        let mut missing = dir;
        while !missing.is_empty() && self.layers.upper.stat(missing)?.is_none() {
            missing = parent_of(missing).0;
            dirs.push(missing.to_vec());
        }
        Ok(())
    }

    /// Whether changing the entry `found` needs the whole namespace: moving a directory
    /// moves every path below it, and copying up a lower hardlink links its other names in
    /// directories nobody locked.
    pub(super) fn needs_whole_namespace(&self, found: &Found) -> bool {
        self.layers.is_dir(found)
            || (found.upper.is_none() && self.layers.is_lower_hardlink(found.lower))
    }

    /// Locks what copying node `id` up changes (its parent directory, or the whole namespace
    /// for a lower hardlink), and the entries of the directory node `also_dir` if given;
    /// returns the node's path and lower inode as read under the locks.
    pub(super) fn lock_node(
        &self,
        id: NodeId,
        also_dir: Option<NodeId>,
    ) -> Result<Locked<'_>, FsError> {
        loop {
            let shared = self.locks.shared();
            let (path, lower) = self.node(id)?;
            if self.layers.in_upper(&path)?.is_none() && self.layers.is_lower_hardlink(lower) {
                drop(shared);
                let guard = self.locks.whole();
                let (path, lower) = self.node(id)?;
                return Ok(Locked {
                    _guard: guard,
                    path,
                    lower,
                });
            }
            // The node itself too: a copy-up into it (a directory) restores its times, which
            // a utimens on it must not see overwritten.
            let mut dirs = vec![path.clone()];
            self.dirs_changed_in(parent_of(&path).0, &mut dirs)?;
            if let Some(dir) = also_dir {
                self.dirs_changed_in(&self.node(dir)?.0, &mut dirs)?;
            }
            let guard = shared.lock_dirs(&dirs);
            // A file renamed away meanwhile is locked again where it went. (A lookup of a
            // hardlink's other name may have put that name first: this one still serves.)
            let (still, lower) = self.nodes.has_path(id, &path)?;
            if still {
                return Ok(Locked {
                    _guard: guard,
                    path,
                    lower,
                });
            }
        }
    }

    /// Locks the entries of the directory node `dir` (and what copying it up changes), plus
    /// the paths `below` in it (an rmdir changes the directory it removes); returns its
    /// path and lower inode as read under the locks.
    pub(super) fn lock_dir(
        &self,
        dir: NodeId,
        below: Option<&[u8]>,
    ) -> Result<Locked<'_>, FsError> {
        let shared = self.locks.shared();
        let (path, lower) = self.node(dir)?;
        let mut dirs = Vec::new();
        self.dirs_changed_in(&path, &mut dirs)?;
        if let Some(name) = below {
            dirs.push(join(&path, name));
        }
        Ok(Locked {
            _guard: shared.lock_dirs(&dirs),
            path,
            lower,
        })
    }
}
