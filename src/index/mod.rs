//! The flattened index of an image: every visible path of the merged layer stack, once.
//!
//! [`build`] merges an image's layers bottom-up (whiteouts and opaque directories applied,
//! hardlinks turned into shared inodes, inode numbers assigned in a deterministic walk) and
//! encodes the result; [`Index`] reads the encoding in place (from an mmap or a `Vec`) and
//! answers `lookup(parent, name)`, `inode(ino)` and `children(ino)` without touching the
//! layers. The cost of a lookup is one binary search in one directory, whatever the number of
//! layers. The format is specified in [`mod@format`].
//!
//! Pure: bytes and entries in, bytes and values out.

mod build;
pub mod format;
mod read;
mod tree;

pub use build::{LayerInput, build, build_on};
pub use read::{Index, Inode, NodeKind};

use crate::model::{EntryPath, LayerId};

/// Why an index could not be built or read.
#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    #[error(
        "layer {layer}: entry {path} resolves through the symlink {via}, outside the layer's tree"
    )]
    ThroughSymlink {
        layer: LayerId,
        path: EntryPath,
        via: EntryPath,
    },
    #[error("layer {layer}: entry {path} has a parent {parent} that is not a directory")]
    ParentNotDir {
        layer: LayerId,
        path: EntryPath,
        parent: EntryPath,
    },
    #[error("layer {layer}: hardlink {path} points at {target}, which is not a file of this layer")]
    BadHardlink {
        layer: LayerId,
        path: EntryPath,
        target: EntryPath,
    },
    #[error("layer {layer}: entry {path} replaces the root directory with a {kind}")]
    RootNotDir {
        layer: LayerId,
        path: EntryPath,
        kind: &'static str,
    },
    #[error("index is corrupt: {0}")]
    Corrupt(String),
    #[error("index is too large: {0}")]
    TooLarge(&'static str),
}
