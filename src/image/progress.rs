//! How long operations report progress: the CLI draws bars, tests pass [`Silent`].

use crate::model::LayerId;

/// Receives progress from an import (and later, commit and export).
pub trait Progress: Sync {
    /// The work ahead: `layers` layers totalling `bytes` bytes of blobs to read.
    fn start(&self, _layers: usize, _bytes: u64) {}
    /// `n` more blob bytes were read.
    fn bytes(&self, _n: u64) {}
    /// A layer is finished (`reused` when the store already had it).
    fn layer_done(&self, _index: usize, _layer: &LayerId, _reused: bool) {}
    /// A line for people (waiting for a lock, building the index, ...).
    fn message(&self, _text: &str) {}
    /// The work is over.
    fn finish(&self) {}
}

/// Reports nothing.
pub struct Silent;

impl Progress for Silent {}
