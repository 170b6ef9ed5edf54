//! Copy-up: making a lower entry an upper one before it changes. Parents first (with their
//! lower metadata), then the entry; the other names of a lower hardlink are linked to the
//! copy at once, so the file stays one inode; a directory moved by a rename is copied as a
//! whole tree and made opaque. The caller holds the locks of what changes (`union.rs`).

use super::error::FsError;
use super::lookup::Layers;
use super::path::{join, parent_of};
use super::stale::StaleNames;
use super::upper::Upper;
use crate::index::NodeKind;
use crate::layer::overlay::is_private_xattr;
use crate::model::{Ino, Meta};
use std::collections::HashMap;

impl Layers {
    /// The metadata copy-up gives the lower inode `ino`, and its kind.
    fn lower_meta(&self, ino: Ino) -> Result<(Meta, NodeKind<'_>), FsError> {
        let inode = self
            .index
            .inode(ino)
            .ok_or_else(|| FsError::corrupt(ino, None))?;
        let mut meta = (self.index.meta(&inode)).map_err(|e| FsError::corrupt(ino, Some(e)))?;
        // overlayfs's own xattrs are never a file's: obeyed in the upper directory, an
        // image's `trusted.overlay.opaque` would hide the lower tree below it.
        meta.xattrs.retain(|x| !is_private_xattr(&x.name));
        Ok((meta, inode.kind))
    }

    /// Makes sure the directory `path` exists in the upper dir, copying up its parents first.
    pub fn ensure_upper_dir(&self, path: &[u8]) -> Result<(), FsError> {
        if let Some(st) = self.upper.stat(path)? {
            return if Upper::is_dir(&st) {
                Ok(())
            } else {
                Err(FsError::refused_at(path, libc::ENOTDIR))
            };
        }
        let (parent, _) = parent_of(path);
        self.ensure_upper_dir(parent)?;
        let ino = self
            .lower_path(path)
            .ok_or_else(|| FsError::not_found(path))?;
        let (meta, _) = self.lower_meta(ino)?;
        self.upper.mkdir_like(path, &meta)
    }

    /// Copies the lower entry `ino` at `path` up, unless the upper dir already has it; the
    /// other names of a lower hardlink are linked to the copy, so it stays one inode. The
    /// caller holds the locks of the parent directory (and of missing ancestors), or the
    /// whole namespace for a lower hardlink.
    pub fn copy_up(&self, path: &[u8], ino: Option<Ino>, with_data: bool) -> Result<(), FsError> {
        if self.in_upper(path)?.is_some() {
            return Ok(());
        }
        let ino = ino.ok_or_else(|| FsError::not_found(path))?;
        let (parent, _) = parent_of(path);
        self.ensure_upper_dir(parent)?;
        let (meta, kind) = self.lower_meta(ino)?;
        if self.upper.stat(path)?.is_some() {
            // A whiteout: the name was deleted; nothing visible to copy up.
            return Err(FsError::not_found(path));
        }
        self.upper
            .copy_up_entry(path, &kind, &meta, &self.store, with_data)?;
        if matches!(kind, NodeKind::File { .. }) && self.is_lower_hardlink(Some(ino)) {
            let links = self.lower_links.get_or_init(|| self.collect_lower_links());
            let mut names = vec![path.to_vec()];
            for other in links.get(&ino).into_iter().flatten() {
                if other.as_slice() != path && self.lower_visible(other) == Some(ino) {
                    self.ensure_upper_dir(parent_of(other).0)?;
                    self.upper.link_copied(path, other)?;
                    names.push(other.clone());
                }
            }
            // Each name is the upper inode now, a node the kernel has not seen for it.
            self.stale.push(StaleNames {
                lower: ino,
                paths: names,
            });
        }
        Ok(())
    }

    /// Every path of every lower hardlink, by inode.
    fn collect_lower_links(&self) -> HashMap<Ino, Vec<Vec<u8>>> {
        let mut out: HashMap<Ino, Vec<Vec<u8>>> = HashMap::new();
        self.index.walk(|path, ino| {
            if self.is_lower_hardlink(Some(ino)) {
                out.entry(ino).or_default().push(path.to_vec());
            }
        });
        out
    }

    /// Copies a whole lower (or merged) directory tree up, then marks it opaque: what a
    /// rename of a lower directory needs.
    pub fn copy_up_tree(&self, path: &[u8], ino: Option<Ino>) -> Result<(), FsError> {
        self.ensure_upper_dir(path)?;
        if let Some(ino) = ino
            && !self.upper.is_opaque(path)
        {
            let children: Vec<(Vec<u8>, Ino)> = self
                .index
                .children(ino)
                .into_iter()
                .flatten()
                .map(|(n, i)| (n.to_vec(), i))
                .collect();
            for (name, child) in children {
                let child_path = join(path, &name);
                let is_dir = self.is_lower_dir(child);
                match self.upper.stat(&child_path)? {
                    Some(st)
                        if Upper::is_dir(&st) && is_dir && !self.upper.is_opaque(&child_path) =>
                    {
                        self.copy_up_tree(&child_path, Some(child))?
                    }
                    Some(_) => {}
                    None if is_dir => self.copy_up_tree(&child_path, Some(child))?,
                    None => self.copy_up(&child_path, Some(child), true)?,
                }
            }
        }
        self.upper.set_opaque(path)
    }
}
