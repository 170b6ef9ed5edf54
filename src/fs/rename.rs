//! rename(2) in the union, with `RENAME_NOREPLACE` and `RENAME_EXCHANGE`, in four steps: lock
//! and resolve both names, check what POSIX refuses, move the entries in the upper
//! directory (copying lower ones up first; a lower directory as a whole tree, made opaque),
//! and fix up the nodes the kernel holds.

use super::error::FsError;
use super::id::NodeId;
use super::locks::NamespaceGuard;
use super::lookup::{Found, found_or_none};
use super::path::join;
use super::union::UnionFs;
use super::upper::Upper;
use crate::model::Ino;

/// A rename's two sides, resolved under its locks.
struct Resolved<'a> {
    _locks: NamespaceGuard<'a>,
    src: Found,
    /// What the new name holds now, if anything.
    dst: Option<Found>,
    dst_parent: Vec<u8>,
    dst_path: Vec<u8>,
    /// Whether a lower entry has the old name; the lower entry with the new name.
    src_lower: bool,
    dst_lower: Option<Ino>,
}

impl UnionFs {
    pub fn rename(
        &self,
        parent: NodeId,
        name: &[u8],
        new_parent: NodeId,
        new_name: &[u8],
        flags: u32,
    ) -> Result<(), FsError> {
        let exchange = flags & libc::RENAME_EXCHANGE != 0;
        let r = self.lock_and_resolve(parent, name, new_parent, new_name, exchange)?;
        self.check_rename(&r, flags)?;
        self.move_upper(&r, exchange)?;
        self.renamed_nodes(&r, exchange);
        Ok(())
    }

    /// Locks both directories and resolves both names. If what it finds would move a
    /// directory (or copy up a lower hardlink), it starts again with the whole namespace.
    fn lock_and_resolve(
        &self,
        parent: NodeId,
        name: &[u8],
        new_parent: NodeId,
        new_name: &[u8],
        exchange: bool,
    ) -> Result<Resolved<'_>, FsError> {
        let mut whole = false;
        let (locks, src, dst) = loop {
            let locks = if whole {
                self.locks.whole()
            } else {
                let shared = self.locks.shared();
                let mut dirs = Vec::new();
                self.dirs_changed_in(&self.node(parent)?.0, &mut dirs)?;
                self.dirs_changed_in(&self.node(new_parent)?.0, &mut dirs)?;
                shared.lock_dirs(&dirs)
            };
            let src = self.child(parent, name)?;
            let dst = found_or_none(self.child(new_parent, new_name))?;
            let moves_more = self.needs_whole_namespace(&src)
                || (exchange && dst.as_ref().is_some_and(|d| self.needs_whole_namespace(d)));
            if whole || !moves_more {
                break (locks, src, dst);
            }
            whole = true;
        };
        let lower_child =
            |dir: Option<Ino>, name: &[u8]| dir.and_then(|p| self.layers.index.lookup(p, name));
        let (_, src_parent_lower) = self.node(parent)?;
        let (dst_parent, dst_parent_lower) = self.node(new_parent)?;
        Ok(Resolved {
            _locks: locks,
            dst_path: join(&dst_parent, new_name),
            dst_parent,
            src_lower: lower_child(src_parent_lower, name).is_some(),
            dst_lower: lower_child(dst_parent_lower, new_name),
            src,
            dst,
        })
    }

    /// What rename(2) refuses: `EEXIST` under `RENAME_NOREPLACE`, `ENOENT` for an exchange
    /// with nothing, a file over a directory or back, a directory over a non-empty one.
    fn check_rename(&self, r: &Resolved<'_>, flags: u32) -> Result<(), FsError> {
        let dst_path = &r.dst_path;
        if flags & libc::RENAME_NOREPLACE != 0 && r.dst.is_some() {
            return Err(FsError::refused_at(dst_path, libc::EEXIST));
        }
        let Some(d) = &r.dst else {
            return match flags & libc::RENAME_EXCHANGE != 0 {
                true => Err(FsError::not_found(dst_path)),
                false => Ok(()),
            };
        };
        if flags & libc::RENAME_EXCHANGE != 0 {
            return Ok(());
        }
        match (self.layers.is_dir(&r.src), self.layers.is_dir(d)) {
            (false, true) => Err(FsError::refused_at(dst_path, libc::EISDIR)),
            (true, false) => Err(FsError::refused_at(dst_path, libc::ENOTDIR)),
            (true, true) if !self.layers.list_dir(&d.path, d.lower)?.is_empty() => {
                Err(FsError::refused_at(dst_path, libc::ENOTEMPTY))
            }
            _ => Ok(()),
        }
    }

    /// Makes the entry `f` an upper one: a directory as a whole tree (made opaque), else
    /// copied up with its data.
    fn make_upper(&self, f: &Found) -> Result<(), FsError> {
        if !self.layers.is_dir(f) {
            self.layers.copy_up(&f.path, f.lower, true)
        } else if f.lower.is_some() {
            self.layers.copy_up_tree(&f.path, f.lower)
        } else {
            Ok(())
        }
    }

    /// The rename in the upper directory, each change one step that a crash cannot leave
    /// showing a hidden lower entry.
    fn move_upper(&self, r: &Resolved<'_>, exchange: bool) -> Result<(), FsError> {
        let (src, dst_path) = (&r.src, r.dst_path.as_slice());
        let src_dir = self.layers.is_dir(src);
        self.make_upper(src)?;
        if exchange && let Some(d) = &r.dst {
            self.make_upper(d)?;
        }
        self.layers.ensure_upper_dir(&r.dst_parent)?;
        if let Some(d) = &r.dst
            && !exchange
            && d.id != src.id
        {
            self.keep_orphan(d.id, &d.path, d.upper.as_ref());
        }
        let upper = &self.layers.upper;
        // A directory landing on a lower directory's name is made opaque before it moves, so
        // the lower tree never shows through it.
        if src_dir && r.dst_lower.is_some() {
            upper.set_opaque(&src.path)?;
        }
        if exchange {
            if r.dst.as_ref().is_some_and(|d| self.layers.is_dir(d)) && r.src_lower {
                upper.set_opaque(dst_path)?;
            }
            return upper.exchange(&src.path, dst_path);
        }
        let dst_whiteout = match upper.stat(dst_path)? {
            Some(st) if Upper::is_whiteout(&st) => true,
            Some(st) if Upper::is_dir(&st) => {
                // An empty merged dir may still hold whiteouts: clear them so it can be
                // replaced.
                upper.clear_whiteouts(dst_path)?;
                false
            }
            _ => false,
        };
        if dst_whiteout && src_dir {
            // A directory cannot replace a whiteout: exchange them, so the name is never
            // without one or the other; the whiteout lands on the old name, which needs
            // one if a lower entry is there.
            upper.exchange(&src.path, dst_path)?;
            if !r.src_lower {
                upper.unlink(&src.path, false)?;
            }
            Ok(())
        } else {
            // A file replaces a whiteout (or anything else) in the same step.
            upper.rename(&src.path, dst_path, r.src_lower)
        }
    }

    /// The nodes the kernel holds after the move: the replaced entry loses its name, every
    /// path below the moved names moves, and what is below a moved directory is upper-only.
    fn renamed_nodes(&self, r: &Resolved<'_>, exchange: bool) {
        let (src, dst_path) = (&r.src, r.dst_path.as_slice());
        if !exchange
            && let Some(d) = &r.dst
            && d.id != src.id
        {
            self.nodes.forget_path(d.id, &d.path);
            if let Some(lower) = r.dst_lower {
                self.nodes.forget_path(NodeId::lower(lower), &d.path);
            }
        }
        self.nodes.move_paths(&src.path, dst_path, exchange);
        let moved: &[&[u8]] = if exchange {
            &[dst_path, &src.path]
        } else {
            &[dst_path]
        };
        self.nodes.detach_lower_below(moved);
    }
}
