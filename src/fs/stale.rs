//! Names whose node changed under the kernel: the names of a lower hardlink, which copy-up
//! turns into one upper inode with a new node id while the kernel still caches the old node
//! (and its attributes and pages) for each of them. Copy-up queues them here; the daemon's
//! notifier thread (`notify.rs`) tells the kernel to drop them once the change's locks are
//! released, so the next lookup of every name finds the one upper inode.

use crate::model::Ino;
use std::sync::OnceLock;

/// The names of the lower inode `lower`, now one upper inode.
#[derive(Debug)]
pub struct StaleNames {
    pub lower: Ino,
    pub paths: Vec<Vec<u8>>,
}

/// The queue of stale names, open once a notifier reads it (never in tests without a mount).
#[derive(Default)]
pub struct StaleQueue(OnceLock<crossbeam_channel::Sender<StaleNames>>);

impl StaleQueue {
    /// Queues `names` for the notifier, if one reads the queue.
    pub fn push(&self, names: StaleNames) {
        if let Some(sender) = self.0.get() {
            // The notifier ends only with the daemon.
            let _ = sender.send(names);
        }
    }

    /// The queue's reading end, for the one notifier (`None` if it has one already).
    pub fn connect(&self) -> Option<crossbeam_channel::Receiver<StaleNames>> {
        let (sender, receiver) = crossbeam_channel::unbounded();
        self.0.set(sender).ok().map(|()| receiver)
    }
}
