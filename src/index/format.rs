//! The on-disk format of a flattened index (`index/<image-id>`), read in place.
//!
//! All integers are little-endian. Inode `n` (from 1, the root) is record `n - 1`.
//!
//! ```text
//! header   (64 bytes)  "SNAPIDX1", u32 version = 1, u32 0,
//!                      u64 inode_count, u64 dirent_count,
//!                      u64 inodes_offset, u64 dirents_offset, u64 blob_offset, u64 blob_len
//! inodes   (112 bytes each)
//!     0  u8  kind (1 dir, 2 file, 3 symlink, 4 char, 5 block, 6 fifo), 3 bytes zero
//!     4  u32 mode (permission bits)      8  u32 uid      12 u32 gid      16 u32 nlink
//!    20  u32 rdev major                 24  u32 rdev minor               28 u32 xattr count
//!    32  i64 mtime seconds              40  u32 mtime nanoseconds        44 u32 zero
//!    48  u64 size (files: content bytes; symlinks: target length)
//!    56  u64 a   dir: first dirent      symlink: blob offset of the target
//!    64  u64 b   dir: dirent count
//!    72  u64 blob offset of the xattrs: per xattr u32 name len, name, u32 value len, value
//!    80  [u8; 32] sha256 of the content (files)
//! dirents  (16 bytes each), each directory's run sorted by name bytes
//!     0  u64 blob offset of the name     8  u32 name length     12  u32 inode number
//! blob     names, symlink targets, xattrs
//! ```

use super::IndexError;
use super::tree::Tree;
use crate::model::Kind;
use std::collections::HashMap;

pub const MAGIC: &[u8; 8] = b"SNAPIDX1";
pub const VERSION: u32 = 1;
pub const HEADER_LEN: usize = 64;
pub const INODE_LEN: usize = 112;
pub const DIRENT_LEN: usize = 16;

pub const KIND_DIR: u8 = 1;
pub const KIND_FILE: u8 = 2;
pub const KIND_SYMLINK: u8 = 3;
pub const KIND_CHAR: u8 = 4;
pub const KIND_BLOCK: u8 = 5;
pub const KIND_FIFO: u8 = 6;

/// Writes a merged tree in the format above.
pub(super) struct Encoder<'t> {
    tree: &'t Tree,
    /// Arena node id → inode number.
    inos: HashMap<usize, u32>,
    /// Inode number - 1 → arena node id.
    order: Vec<usize>,
    nlinks: Vec<u32>,
    blob: Vec<u8>,
}

impl<'t> Encoder<'t> {
    pub fn encode(tree: &'t Tree) -> Result<Vec<u8>, IndexError> {
        let mut enc = Encoder {
            tree,
            inos: HashMap::new(),
            order: Vec::new(),
            nlinks: Vec::new(),
            blob: Vec::new(),
        };
        enc.number()?;
        enc.write()
    }

    /// Assigns inode numbers: a directory's children get consecutive numbers in name order,
    /// then each child directory is numbered in turn (depth first). Counts links as it goes.
    fn number(&mut self) -> Result<(), IndexError> {
        let tree = self.tree;
        self.assign(0)?;
        let mut stack = vec![0usize];
        while let Some(id) = stack.pop() {
            let mut subdirs = Vec::new();
            for &child in tree.nodes[id].children.values() {
                match self.inos.get(&child) {
                    Some(&ino) => self.nlinks[ino as usize - 1] += 1,
                    None => {
                        self.assign(child)?;
                        if matches!(tree.nodes[child].kind, Kind::Dir) {
                            subdirs.push(child);
                        }
                    }
                }
            }
            let ino = self.inos[&id];
            self.nlinks[ino as usize - 1] = 2 + subdirs.len() as u32;
            stack.extend(subdirs.into_iter().rev());
        }
        Ok(())
    }

    fn assign(&mut self, id: usize) -> Result<(), IndexError> {
        let ino = u32::try_from(self.order.len() + 1)
            .map_err(|_| IndexError::TooLarge("more than 2^32 inodes"))?;
        self.inos.insert(id, ino);
        self.order.push(id);
        self.nlinks.push(1);
        Ok(())
    }

    fn put_blob(&mut self, bytes: &[u8]) -> u64 {
        let at = self.blob.len() as u64;
        self.blob.extend_from_slice(bytes);
        at
    }

    fn write(mut self) -> Result<Vec<u8>, IndexError> {
        let count = self.order.len();
        let mut inodes = Vec::with_capacity(count * INODE_LEN);
        let mut dirents = Vec::new();
        let mut dirent_count = 0u64;
        for index in 0..count {
            let node = &self.tree.nodes[self.order[index]];
            let mut rec = [0u8; INODE_LEN];
            let (kind, size, a, b, major, minor) = match &node.kind {
                Kind::Dir => {
                    let first = dirent_count;
                    for (name, child) in &node.children {
                        let at = self.put_blob(name);
                        dirents.extend_from_slice(&at.to_le_bytes());
                        let len =
                            u32::try_from(name.len()).map_err(|_| IndexError::TooLarge("name"))?;
                        dirents.extend_from_slice(&len.to_le_bytes());
                        dirents.extend_from_slice(&self.inos[child].to_le_bytes());
                        dirent_count += 1;
                    }
                    (KIND_DIR, 0, first, node.children.len() as u64, 0, 0)
                }
                Kind::File { digest, size } => {
                    rec[80..112].copy_from_slice(digest.as_bytes());
                    (KIND_FILE, *size, 0, 0, 0, 0)
                }
                Kind::Symlink { target } => {
                    let at = self.put_blob(target);
                    (KIND_SYMLINK, target.len() as u64, at, 0, 0, 0)
                }
                Kind::CharDevice { major, minor } => (KIND_CHAR, 0, 0, 0, *major, *minor),
                Kind::BlockDevice { major, minor } => (KIND_BLOCK, 0, 0, 0, *major, *minor),
                Kind::Fifo => (KIND_FIFO, 0, 0, 0, 0, 0),
                Kind::Hardlink { .. } | Kind::Whiteout | Kind::Opaque => {
                    return Err(IndexError::Corrupt(format!(
                        "a {} node in the merged tree",
                        node.kind.name()
                    )));
                }
            };
            let mut xattrs = Vec::new();
            for x in &node.meta.xattrs {
                xattrs.extend_from_slice(&(x.name.len() as u32).to_le_bytes());
                xattrs.extend_from_slice(&x.name);
                xattrs.extend_from_slice(&(x.value.len() as u32).to_le_bytes());
                xattrs.extend_from_slice(&x.value);
            }
            let xattr_at = self.put_blob(&xattrs);
            let meta = &node.meta;
            rec[0] = kind;
            put32(&mut rec, 4, meta.mode);
            put32(&mut rec, 8, meta.uid);
            put32(&mut rec, 12, meta.gid);
            put32(&mut rec, 16, self.nlinks[index]);
            put32(&mut rec, 20, major);
            put32(&mut rec, 24, minor);
            put32(&mut rec, 28, meta.xattrs.len() as u32);
            rec[32..40].copy_from_slice(&meta.mtime_sec.to_le_bytes());
            put32(&mut rec, 40, meta.mtime_nsec);
            put64(&mut rec, 48, size);
            put64(&mut rec, 56, a);
            put64(&mut rec, 64, b);
            put64(&mut rec, 72, xattr_at);
            inodes.extend_from_slice(&rec);
        }
        let inodes_at = HEADER_LEN as u64;
        let dirents_at = inodes_at + inodes.len() as u64;
        let blob_at = dirents_at + dirents.len() as u64;
        let mut out = Vec::with_capacity(blob_at as usize + self.blob.len());
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&VERSION.to_le_bytes());
        out.extend_from_slice(&0u32.to_le_bytes());
        for v in [
            count as u64,
            dirent_count,
            inodes_at,
            dirents_at,
            blob_at,
            self.blob.len() as u64,
        ] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        out.extend_from_slice(&inodes);
        out.extend_from_slice(&dirents);
        out.extend_from_slice(&self.blob);
        Ok(out)
    }
}

fn put32(rec: &mut [u8], at: usize, v: u32) {
    rec[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

fn put64(rec: &mut [u8], at: usize, v: u64) {
    rec[at..at + 8].copy_from_slice(&v.to_le_bytes());
}
