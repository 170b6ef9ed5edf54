//! The union's two layers, addressed by path: what a name resolves to (the upper directory
//! first, where a whiteout hides the name and an opaque directory hides the lower tree
//! below it; then the image's index), its attributes, a directory's merged entries, a
//! symlink's target. Nothing here changes either layer; `copy_up.rs` does, above this.

use super::attr::{Attr, file_type};
use super::error::FsError;
use super::id::NodeId;
use super::path::{components, join};
use super::stale::StaleQueue;
use super::upper::Upper;
use crate::index::{Index, NodeKind};
use crate::model::{Ino, Xattr};
use crate::store::Store;
use crate::sys::Mapped;
use rustix::fs::{FileType, Stat};
use std::collections::{HashMap, HashSet};
use std::sync::OnceLock;

/// The lower layer (the image's flattened index over the store's objects) and the upper
/// directory of one container.
pub struct Layers {
    pub index: Index<Mapped>,
    pub store: Store,
    pub upper: Upper,
    /// Lower inode → every path of it, for lower hardlinks (built at the first copy-up of one).
    pub(super) lower_links: OnceLock<HashMap<Ino, Vec<Vec<u8>>>>,
    /// Names copy-up gave a new node, for the kernel to drop.
    pub(super) stale: StaleQueue,
}

/// What a name resolves to.
#[derive(Debug, Clone)]
pub struct Found {
    pub id: NodeId,
    pub path: Vec<u8>,
    /// The lower inode visible there: a lower-only entry, or a merged directory's lower side.
    pub lower: Option<Ino>,
    /// The upper entry there, if any.
    pub upper: Option<Stat>,
}

/// A lookup's entry, `None` if it found nothing, the error for any other failure.
pub fn found_or_none(found: Result<Found, FsError>) -> Result<Option<Found>, FsError> {
    match found {
        Ok(found) => Ok(Some(found)),
        Err(FsError::NotFound { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

impl Layers {
    pub fn new(index: Index<Mapped>, store: Store, upper: Upper) -> Self {
        Layers {
            index,
            store,
            upper,
            lower_links: OnceLock::new(),
            stale: StaleQueue::default(),
        }
    }

    /// Resolves `path` from the root, name by name, as a walk of the kernel's would.
    pub fn resolve(&self, path: &[u8]) -> Result<Found, FsError> {
        let mut found = Found {
            id: NodeId::ROOT,
            path: Vec::new(),
            lower: Some(Ino::ROOT),
            upper: None,
        };
        for name in components(path) {
            found = self.child_of(&found.path, found.lower, name)?;
        }
        Ok(found)
    }

    /// Resolves `name` in the directory at `parent_path`, whose lower side is `parent_lower`.
    pub fn child_of(
        &self,
        parent_path: &[u8],
        parent_lower: Option<Ino>,
        name: &[u8],
    ) -> Result<Found, FsError> {
        self.child_in(parent_path, parent_lower, true, name)
    }

    /// Like [`Layers::child_of`]; `parent_in_upper` false (the parent directory has no upper
    /// side) skips the upper lookup, as readdirplus of a lower-only directory can.
    pub fn child_in(
        &self,
        parent_path: &[u8],
        parent_lower: Option<Ino>,
        parent_in_upper: bool,
        name: &[u8],
    ) -> Result<Found, FsError> {
        let path = join(parent_path, name);
        let lower_child = parent_lower.and_then(|p| self.index.lookup(p, name));
        let upper = if parent_in_upper {
            self.upper.stat(&path)?
        } else {
            None
        };
        match upper {
            Some(st) if Upper::is_whiteout(&st) => Err(FsError::not_found(&path)),
            Some(st) => {
                let merged = Upper::is_dir(&st)
                    && lower_child.is_some_and(|l| self.is_lower_dir(l))
                    && !self.upper.is_opaque(&path);
                let (id, lower) = match (merged, lower_child) {
                    (true, Some(l)) => (NodeId::lower(l), Some(l)),
                    _ => (NodeId::upper(st.st_ino), None),
                };
                Ok(Found {
                    id,
                    path,
                    lower,
                    upper: Some(st),
                })
            }
            None => match lower_child {
                Some(l) => Ok(Found {
                    id: NodeId::lower(l),
                    path,
                    lower: Some(l),
                    upper: None,
                }),
                None => Err(FsError::not_found(&path)),
            },
        }
    }

    /// The attributes of a resolved entry.
    pub fn attr_of(&self, found: &Found) -> Result<Attr, FsError> {
        match &found.upper {
            Some(st) => Ok(Attr::of_stat(found.id, st)),
            None => {
                let ino = found.lower.ok_or_else(|| FsError::not_found(&found.path))?;
                self.lower_attr(found.id, ino)
            }
        }
    }

    /// The current attributes of the entry at `path` (lower inode `lower`), as node `id`.
    pub fn attr_at(&self, id: NodeId, path: &[u8], lower: Option<Ino>) -> Result<Attr, FsError> {
        match self.upper.stat(path)? {
            Some(st) if !Upper::is_whiteout(&st) => Ok(Attr::of_stat(id, &st)),
            _ => match lower {
                Some(ino) => self.lower_attr(id, ino),
                None => Err(FsError::not_found(path)),
            },
        }
    }

    fn lower_attr(&self, id: NodeId, ino: Ino) -> Result<Attr, FsError> {
        let inode = self
            .index
            .inode(ino)
            .ok_or_else(|| FsError::corrupt(ino, None))?;
        Ok(Attr::of_inode(id, &inode))
    }

    /// Whether the upper directory holds (a non-whiteout) `path`.
    pub fn in_upper(&self, path: &[u8]) -> Result<Option<Stat>, FsError> {
        Ok(self.upper.stat(path)?.filter(|st| !Upper::is_whiteout(st)))
    }

    pub fn is_lower_dir(&self, ino: Ino) -> bool {
        matches!(
            self.index.inode(ino).map(|i| i.kind),
            Some(NodeKind::Dir { .. })
        )
    }

    /// Whether the lower inode `lower` is a regular file with more than one name.
    pub fn is_lower_hardlink(&self, lower: Option<Ino>) -> bool {
        lower
            .and_then(|l| self.index.inode(l))
            .is_some_and(|i| i.nlink > 1 && matches!(i.kind, NodeKind::File { .. }))
    }

    /// Whether the entry `found` is a directory.
    pub fn is_dir(&self, found: &Found) -> bool {
        found.upper.as_ref().map_or_else(
            || found.lower.is_some_and(|l| self.is_lower_dir(l)),
            Upper::is_dir,
        )
    }

    /// The lower inode a lower-only `path` has, walking the index from the root.
    pub fn lower_path(&self, path: &[u8]) -> Option<Ino> {
        components(path).try_fold(Ino::ROOT, |ino, name| self.index.lookup(ino, name))
    }

    /// The lower inode visible at `path` through the upper dir (None if the upper dir hides
    /// it, or has its own entry there).
    pub fn lower_visible(&self, path: &[u8]) -> Option<Ino> {
        let mut ino = Ino::ROOT;
        let mut walked: Vec<u8> = Vec::new();
        for name in components(path) {
            walked = join(&walked, name);
            ino = self.index.lookup(ino, name)?;
            match self.upper.stat(&walked).ok()? {
                None => {}
                Some(st)
                    if Upper::is_dir(&st)
                        && walked.len() < path.len()
                        && !self.upper.is_opaque(&walked) => {}
                Some(_) => return None,
            }
        }
        Some(ino)
    }

    /// The merged entries of the directory at `path` (lower side `lower`): name and type.
    pub fn list_dir(
        &self,
        path: &[u8],
        lower: Option<Ino>,
    ) -> Result<Vec<(Vec<u8>, FileType)>, FsError> {
        let mut out = Vec::new();
        let mut seen = HashSet::new();
        if self.in_upper(path)?.is_some() {
            for (name, st) in self.upper.list(path)? {
                if !Upper::is_whiteout(&st) {
                    out.push((name.clone(), FileType::from_raw_mode(st.st_mode)));
                }
                seen.insert(name);
            }
        }
        if let Some(ino) = lower {
            for (name, child) in self.index.children(ino).into_iter().flatten() {
                if !seen.contains(name)
                    && let Some(inode) = self.index.inode(child)
                {
                    out.push((name.to_vec(), file_type(&inode.kind)));
                }
            }
        }
        Ok(out)
    }

    /// The target of the symlink at `path` (lower inode `lower`).
    pub fn readlink(&self, path: &[u8], lower: Option<Ino>) -> Result<Vec<u8>, FsError> {
        if self.in_upper(path)?.is_some() {
            return self.upper.readlink(path);
        }
        let ino = lower.ok_or_else(|| FsError::not_found(path))?;
        match self.index.inode(ino).map(|i| i.kind) {
            Some(NodeKind::Symlink { target }) => Ok(target.to_vec()),
            _ => Err(FsError::refused_at(path, libc::EINVAL)),
        }
    }

    /// The xattrs of the lower inode `ino`.
    pub fn lower_xattrs(&self, ino: Ino) -> Result<Vec<Xattr>, FsError> {
        let inode = self
            .index
            .inode(ino)
            .ok_or_else(|| FsError::corrupt(ino, None))?;
        self.index
            .xattrs(&inode)
            .map_err(|e| FsError::corrupt(ino, Some(e)))
    }
}
