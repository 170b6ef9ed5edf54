//! The node table: every node the kernel holds (it looked it up and has not forgotten it),
//! with where it is now. Nodes are found by path, so a node keeps working after its entry is
//! copied up or renamed; `forget` drops them, so memory follows what the kernel caches.
//!
//! The table is one `RwLock<HashMap>` held only for map updates and reads, never across I/O.

use super::error::FsError;
use super::id::NodeId;
use super::path::{below, moved};
use crate::model::Ino;
use std::collections::HashMap;
use std::os::fd::OwnedFd;
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

/// A node the kernel holds: where it is, and which lower inode (if any) shows through there.
#[derive(Debug, Clone)]
struct Node {
    /// Every path known for this node (hardlinks have several); the first is used. A node
    /// left with none is unlinked: path operations on it fail from then on, so its old path
    /// can never lead somewhere else (a new entry, or a symlink).
    paths: Vec<Vec<u8>>,
    /// The lower inode visible at the path: a lower-only entry, or the lower side of a merged
    /// directory. `None` for upper entries and opaque directories.
    lower: Option<Ino>,
    lookups: u64,
    /// The upper file, held (`O_PATH`) from just before its last name was unlinked or
    /// replaced: opens of the node still reach it, as they would on a local filesystem.
    orphan: Option<Arc<OwnedFd>>,
}

/// The nodes of one mount.
pub struct Nodes(RwLock<HashMap<NodeId, Node>>);

impl Default for Nodes {
    /// A table holding the root, which the kernel never forgets.
    fn default() -> Self {
        let root = Node {
            paths: vec![Vec::new()],
            lower: Some(Ino::ROOT),
            lookups: 1,
            orphan: None,
        };
        Nodes(RwLock::new(HashMap::from([(NodeId::ROOT, root)])))
    }
}

impl Nodes {
    fn read(&self) -> RwLockReadGuard<'_, HashMap<NodeId, Node>> {
        // A panic in another request leaves the table as consistent as an error would.
        self.0.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, HashMap<NodeId, Node>> {
        self.0.write().unwrap_or_else(|p| p.into_inner())
    }

    /// Node `id`'s first path and its lower inode.
    pub fn get(&self, id: NodeId) -> Result<(Vec<u8>, Option<Ino>), FsError> {
        let nodes = self.read();
        let node = nodes.get(&id).ok_or(FsError::UnknownNode(id))?;
        let path = node.paths.first().cloned().ok_or(FsError::Unlinked(id))?;
        Ok((path, node.lower))
    }

    /// Whether node `id` still has the name `path`, and its lower inode.
    pub fn has_path(&self, id: NodeId, path: &[u8]) -> Result<(bool, Option<Ino>), FsError> {
        let nodes = self.read();
        let node = nodes.get(&id).ok_or(FsError::UnknownNode(id))?;
        Ok((node.paths.iter().any(|p| p.as_slice() == path), node.lower))
    }

    /// Whether the kernel holds node `id`.
    pub fn holds(&self, id: NodeId) -> bool {
        self.read().contains_key(&id)
    }

    /// Counts one more kernel reference to node `id`, found at `path`: that path becomes its
    /// first.
    pub fn remember(&self, id: NodeId, path: &[u8], lower: Option<Ino>) {
        let mut nodes = self.write();
        let node = nodes.entry(id).or_insert_with(|| Node {
            paths: Vec::new(),
            lower,
            lookups: 0,
            orphan: None,
        });
        node.lookups += 1;
        node.lower = lower;
        if let Some(i) = node.paths.iter().position(|p| p == path) {
            node.paths.swap(0, i);
        } else {
            node.paths.insert(0, path.to_vec());
        }
    }

    /// Drops `n` kernel references to node `id`, and the node with the last.
    pub fn forget(&self, id: NodeId, n: u64) {
        if id == NodeId::ROOT {
            return;
        }
        let mut nodes = self.write();
        if let Some(node) = nodes.get_mut(&id) {
            node.lookups = node.lookups.saturating_sub(n);
            if node.lookups == 0 {
                nodes.remove(&id);
            }
        }
    }

    /// Drops `path` from node `id`'s names (a hardlink keeps working through its others).
    pub fn forget_path(&self, id: NodeId, path: &[u8]) {
        if let Some(node) = self.write().get_mut(&id) {
            node.paths.retain(|p| p.as_slice() != path);
        }
    }

    /// Moves every node path at or below `from` to `to` (and, for an exchange, back).
    pub fn move_paths(&self, from: &[u8], to: &[u8], exchange: bool) {
        for node in self.write().values_mut() {
            for p in node.paths.iter_mut() {
                if let Some(new) = moved(p, from, to) {
                    *p = new;
                } else if exchange && let Some(new) = moved(p, to, from) {
                    *p = new;
                }
            }
        }
    }

    /// Nodes whose first path is at or below one of `dirs` no longer see lower entries (the
    /// directories were moved, so they are upper-only below).
    pub fn detach_lower_below(&self, dirs: &[&[u8]]) {
        for node in self.write().values_mut() {
            if node
                .paths
                .first()
                .is_some_and(|p| dirs.iter().any(|d| below(p, d)))
            {
                node.lower = None;
            }
        }
    }

    /// Keeps `file` (an `O_PATH` descriptor of its upper file) for node `id`, if the kernel
    /// still holds the node.
    pub fn keep_orphan(&self, id: NodeId, file: OwnedFd) {
        if let Some(node) = self.write().get_mut(&id) {
            node.orphan = Some(Arc::new(file));
        }
    }

    /// The upper file kept for node `id` ([`Nodes::keep_orphan`]).
    pub fn orphan(&self, id: NodeId) -> Result<Option<Arc<OwnedFd>>, FsError> {
        let nodes = self.read();
        let node = nodes.get(&id).ok_or(FsError::UnknownNode(id))?;
        Ok(node.orphan.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nodes_follow_renames_and_forget_drops_them() {
        let nodes = Nodes::default();
        let id = NodeId::upper(5);
        nodes.remember(id, b"a/f", None);
        nodes.remember(id, b"a/f", None);
        nodes.move_paths(b"a", b"b", false);
        assert_eq!(nodes.get(id).unwrap().0, b"b/f");
        nodes.forget(id, 1);
        assert!(nodes.holds(id));
        nodes.forget_path(id, b"b/f");
        assert!(matches!(nodes.get(id), Err(FsError::Unlinked(_))));
        nodes.forget(id, 1);
        assert!(matches!(nodes.get(id), Err(FsError::UnknownNode(_))));
        nodes.forget(NodeId::ROOT, 10);
        assert_eq!(nodes.get(NodeId::ROOT).unwrap().0, b"");
    }
}
