//! The merged tree of an image's layers, as `build` makes it and `format` encodes it: the
//! data only; the merging is `build`'s.

use crate::model::{Kind, Meta};
use std::collections::BTreeMap;

/// A node of the merged tree. Hardlinked names share one node, so one inode.
#[derive(Debug)]
pub(super) struct Node {
    pub kind: Kind,
    pub meta: Meta,
    /// For directories: name → node id, sorted by name.
    pub children: BTreeMap<Vec<u8>, usize>,
}

/// The merged tree as an arena; node 0 is the root. Detached nodes stay in the arena unused.
pub(super) struct Tree {
    pub nodes: Vec<Node>,
}
