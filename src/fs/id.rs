//! FUSE node ids, which fuser also reports as `st_ino`, and the one place they are mapped:
//!
//! - a lower-only entry, or a directory merged from upper and lower: its index inode number
//!   (stable across mounts and containers, below 2^32; lower hardlinks share it);
//! - an entry that lives in the upper directory: `UPPER_BIT | st_ino` of the upper file
//!   (stable too, and shared by upper hardlinks).

use crate::model::Ino;
use std::fmt;

/// Node ids of upper entries carry this bit; index inode numbers never do.
const UPPER_BIT: u64 = 1 << 62;

/// A node id as the kernel knows it.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct NodeId(u64);

impl NodeId {
    /// The root directory (FUSE's node 1, the index's root inode).
    pub const ROOT: NodeId = NodeId(1);

    /// The node of the lower (or merged) entry with index inode `ino`.
    pub fn lower(ino: Ino) -> Self {
        NodeId(ino.0)
    }

    /// The node of the upper entry whose file has inode number `st_ino`.
    pub fn upper(st_ino: u64) -> Self {
        NodeId(UPPER_BIT | st_ino)
    }

    pub fn is_upper(self) -> bool {
        self.0 & UPPER_BIT != 0
    }

    /// The id the kernel sent (the FUSE edge's only way in).
    pub fn from_raw(raw: u64) -> Self {
        NodeId(raw)
    }

    /// The id to tell the kernel.
    pub fn raw(self) -> u64 {
        self.0
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_upper() {
            write!(f, "upper:{}", self.0 & !UPPER_BIT)
        } else {
            write!(f, "{}", self.0)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lower_and_upper_ids_never_meet() {
        let lower = NodeId::lower(Ino(7));
        let upper = NodeId::upper(7);
        assert_ne!(lower, upper);
        assert!(!lower.is_upper());
        assert!(upper.is_upper());
        assert_eq!(NodeId::from_raw(upper.raw()), upper);
        assert_eq!(NodeId::lower(Ino::ROOT), NodeId::ROOT);
    }
}
