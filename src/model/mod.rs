//! The domain vocabulary shared by every module: content digests, ids, inode numbers,
//! container names, the layer entry model (`Entry`, `Kind`, `Meta`), and how errors quote
//! input (`excerpt`).
//!
//! Pure types only: nothing here opens a path or performs I/O.

mod digest;
mod entry;
mod excerpt;
mod name;

pub use digest::{Digest, DigestError, DigestHasher, ImageId, LayerId};
pub use entry::{Entry, EntryPath, Kind, Meta, NAME_MAX, PathError, Xattr};
pub use excerpt::{MAX_LISTED, MAX_QUOTED, excerpt, excerpt_bytes, excerpt_list};
pub use name::{ContainerName, NameError};

/// An inode number in a flattened image index (root is 1).
///
/// The index assigns these once, at build time, in a deterministic walk of the merged tree,
/// so the same image always gets the same numbers.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub struct Ino(pub u64);

impl Ino {
    /// The inode number of the root directory of every index.
    pub const ROOT: Ino = Ino(1);
}

impl std::fmt::Display for Ino {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}
