//! Reading a flattened index in place.

use super::IndexError;
use super::format::*;
use crate::model::{Digest, Ino, Meta, Xattr};

/// A flattened index over its encoded bytes (a `Vec<u8>` or an mmap).
///
/// Every accessor checks bounds: a corrupt index gives errors or `None`, never a panic.
pub struct Index<B> {
    bytes: B,
    inode_count: u64,
    dirent_count: u64,
    inodes_at: usize,
    dirents_at: usize,
    blob_at: usize,
    blob_len: usize,
}

/// What an inode is, with the data that kind carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeKind<'a> {
    Dir { children: u64 },
    File { digest: Digest, size: u64 },
    Symlink { target: &'a [u8] },
    CharDevice { major: u32, minor: u32 },
    BlockDevice { major: u32, minor: u32 },
    Fifo,
}

/// One inode of the index.
#[derive(Debug, Clone)]
pub struct Inode<'a> {
    pub ino: Ino,
    pub kind: NodeKind<'a>,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub nlink: u32,
    pub mtime_sec: i64,
    pub mtime_nsec: u32,
    xattr_count: u32,
    xattrs_at: u64,
}

impl<'a> Inode<'a> {
    /// The size `stat` reports: content bytes for files, target length for symlinks.
    pub fn size(&self) -> u64 {
        match self.kind {
            NodeKind::File { size, .. } => size,
            NodeKind::Symlink { target } => target.len() as u64,
            _ => 0,
        }
    }
}

fn u32_at(bytes: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(bytes.get(at..at + 4)?.try_into().ok()?))
}

fn u64_at(bytes: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(bytes.get(at..at + 8)?.try_into().ok()?))
}

impl<B: AsRef<[u8]>> Index<B> {
    /// Checks the header and section bounds.
    pub fn open(bytes: B) -> Result<Self, IndexError> {
        let corrupt = |what: &str| IndexError::Corrupt(what.to_string());
        let b = bytes.as_ref();
        if b.get(..8) != Some(&MAGIC[..]) {
            return Err(corrupt("bad magic"));
        }
        if u32_at(b, 8) != Some(VERSION) {
            return Err(corrupt("unknown version"));
        }
        let field = |i: usize| u64_at(b, 16 + 8 * i).ok_or_else(|| corrupt("truncated header"));
        let (inode_count, dirent_count) = (field(0)?, field(1)?);
        let (inodes_at, dirents_at, blob_at, blob_len) =
            (field(2)?, field(3)?, field(4)?, field(5)?);
        let fits = inode_count
            .checked_mul(INODE_LEN as u64)
            .and_then(|n| n.checked_add(inodes_at))
            == Some(dirents_at)
            && dirent_count
                .checked_mul(DIRENT_LEN as u64)
                .and_then(|n| n.checked_add(dirents_at))
                == Some(blob_at)
            && blob_at.checked_add(blob_len) == Some(b.len() as u64)
            && inode_count >= 1;
        if !fits {
            return Err(corrupt("section bounds do not match the file size"));
        }
        Ok(Index {
            inode_count,
            dirent_count,
            inodes_at: inodes_at as usize,
            dirents_at: dirents_at as usize,
            blob_at: blob_at as usize,
            blob_len: blob_len as usize,
            bytes,
        })
    }

    /// The encoded bytes.
    pub fn bytes(&self) -> &[u8] {
        self.bytes.as_ref()
    }

    /// The number of inodes.
    pub fn len(&self) -> u64 {
        self.inode_count
    }

    pub fn is_empty(&self) -> bool {
        false
    }

    fn blob(&self, at: u64, len: u64) -> Option<&[u8]> {
        let end = at.checked_add(len)?;
        if end > self.blob_len as u64 {
            return None;
        }
        self.bytes
            .as_ref()
            .get(self.blob_at + at as usize..self.blob_at + end as usize)
    }

    fn record(&self, ino: Ino) -> Option<&[u8]> {
        if ino.0 == 0 || ino.0 > self.inode_count {
            return None;
        }
        let at = self.inodes_at + (ino.0 as usize - 1) * INODE_LEN;
        self.bytes.as_ref().get(at..at + INODE_LEN)
    }

    /// The inode `ino`, or `None` if there is no such inode or its record is corrupt.
    pub fn inode(&self, ino: Ino) -> Option<Inode<'_>> {
        let r = self.record(ino)?;
        let (a, b) = (u64_at(r, 56)?, u64_at(r, 64)?);
        let (major, minor) = (u32_at(r, 20)?, u32_at(r, 24)?);
        let kind = match r[0] {
            KIND_DIR => NodeKind::Dir { children: b },
            KIND_FILE => NodeKind::File {
                digest: Digest::from_bytes(r[80..112].try_into().ok()?),
                size: u64_at(r, 48)?,
            },
            KIND_SYMLINK => NodeKind::Symlink {
                target: self.blob(a, u64_at(r, 48)?)?,
            },
            KIND_CHAR => NodeKind::CharDevice { major, minor },
            KIND_BLOCK => NodeKind::BlockDevice { major, minor },
            KIND_FIFO => NodeKind::Fifo,
            _ => return None,
        };
        Some(Inode {
            ino,
            kind,
            mode: u32_at(r, 4)?,
            uid: u32_at(r, 8)?,
            gid: u32_at(r, 12)?,
            nlink: u32_at(r, 16)?,
            xattr_count: u32_at(r, 28)?,
            mtime_sec: i64::from_le_bytes(r[32..40].try_into().ok()?),
            mtime_nsec: u32_at(r, 40)?,
            xattrs_at: u64_at(r, 72)?,
        })
    }

    /// The owner, mode, mtime and xattrs of `inode`, as a layer entry has them.
    pub fn meta(&self, inode: &Inode<'_>) -> Result<Meta, IndexError> {
        Ok(Meta {
            mode: inode.mode,
            uid: inode.uid,
            gid: inode.gid,
            mtime_sec: inode.mtime_sec,
            mtime_nsec: inode.mtime_nsec,
            xattrs: self.xattrs(inode)?,
        })
    }

    /// The extended attributes of `inode`, sorted by name.
    pub fn xattrs(&self, inode: &Inode<'_>) -> Result<Vec<Xattr>, IndexError> {
        let corrupt = || IndexError::Corrupt(format!("xattrs of inode {}", inode.ino));
        let mut at = inode.xattrs_at;
        let mut out = Vec::with_capacity(inode.xattr_count as usize);
        for _ in 0..inode.xattr_count {
            let mut take = || -> Option<Vec<u8>> {
                let len = u32::from_le_bytes(self.blob(at, 4)?.try_into().ok()?) as u64;
                let bytes = self.blob(at + 4, len)?.to_vec();
                at += 4 + len;
                Some(bytes)
            };
            let name = take().ok_or_else(corrupt)?;
            let value = take().ok_or_else(corrupt)?;
            out.push(Xattr { name, value });
        }
        Ok(out)
    }

    /// (first dirent, count) of a directory.
    fn dir_range(&self, ino: Ino) -> Option<(u64, u64)> {
        let r = self.record(ino)?;
        if r[0] != KIND_DIR {
            return None;
        }
        let (first, count) = (u64_at(r, 56)?, u64_at(r, 64)?);
        (first.checked_add(count)? <= self.dirent_count).then_some((first, count))
    }

    fn dirent(&self, n: u64) -> Option<(&[u8], Ino)> {
        let at = self.dirents_at + n as usize * DIRENT_LEN;
        let d = self.bytes.as_ref().get(at..at + DIRENT_LEN)?;
        let name = self.blob(u64_at(d, 0)?, u32_at(d, 8)? as u64)?;
        Some((name, Ino(u32_at(d, 12)? as u64)))
    }

    /// The child `name` of the directory `parent`: one binary search.
    pub fn lookup(&self, parent: Ino, name: &[u8]) -> Option<Ino> {
        let (first, count) = self.dir_range(parent)?;
        let (mut lo, mut hi) = (first, first + count);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            let (mid_name, ino) = self.dirent(mid)?;
            match mid_name.cmp(name) {
                std::cmp::Ordering::Equal => return Some(ino),
                std::cmp::Ordering::Less => lo = mid + 1,
                std::cmp::Ordering::Greater => hi = mid,
            }
        }
        None
    }

    /// The entries of the directory `ino` in name order (without `.` and `..`), starting at
    /// position `offset`; `None` if `ino` is not a directory.
    pub fn children(&self, ino: Ino) -> Option<impl Iterator<Item = (&[u8], Ino)> + '_> {
        let (first, count) = self.dir_range(ino)?;
        Some((first..first + count).filter_map(move |n| self.dirent(n)))
    }

    /// Visits every path (parent before children, name order) with its inode number.
    /// Hardlinked inodes are visited once per name.
    pub fn walk(&self, mut visit: impl FnMut(&[u8], Ino)) {
        let mut stack = vec![(Vec::new(), Ino::ROOT)];
        while let Some((path, ino)) = stack.pop() {
            visit(&path, ino);
            if let Some(children) = self.children(ino) {
                let mut below: Vec<_> = children
                    .map(|(name, child)| {
                        let mut p = path.clone();
                        if !p.is_empty() {
                            p.push(b'/');
                        }
                        p.extend_from_slice(name);
                        (p, child)
                    })
                    .collect();
                below.reverse();
                stack.extend(below);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_garbage() {
        assert!(Index::open(b"nonsense".to_vec()).is_err());
        assert!(Index::open(Vec::new()).is_err());
        let mut bytes = MAGIC.to_vec();
        bytes.extend_from_slice(&[1, 0, 0, 0, 0, 0, 0, 0]);
        bytes.extend_from_slice(&[0xff; 48]);
        assert!(Index::open(bytes).is_err());
    }
}
