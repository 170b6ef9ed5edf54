//! The daemon's notifier thread: tells the kernel to drop the names and attributes it caches
//! of nodes that changed under it ([`super::stale`]). A thread of its own, because the kernel
//! takes a directory's lock to drop a name in it, which a request waiting for the daemon's
//! namespace locks may hold: sent from a request, the notice could wait for itself.

use super::id::NodeId;
use super::path::parent_of;
use super::union::UnionFs;
use fuser::{INodeNo, Notifier};
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::sync::Arc;

/// Starts the notifier of `fs`'s mount.
pub fn spawn(fs: Arc<UnionFs>, notifier: Notifier) -> std::io::Result<()> {
    let Some(queue) = fs.layers.stale.connect() else {
        return Ok(());
    };
    std::thread::Builder::new()
        .name("snapfs-notify".into())
        .spawn(move || {
            for stale in queue {
                // The old node's cached attributes and pages (its processes keep it open).
                let old = INodeNo(NodeId::lower(stale.lower).raw());
                if let Err(e) = notifier.inval_inode(old, 0, 0) {
                    tracing::debug!("invalidating node {}: {e}", stale.lower);
                }
                for path in &stale.paths {
                    let (dir, name) = parent_of(path);
                    // Dropping a name the kernel does not hold (or in a directory it does
                    // not hold) is refused harmlessly.
                    let sent = fs
                        .resolve(dir)
                        .map_err(|e| std::io::Error::other(e.to_string()))
                        .and_then(|dir| {
                            notifier.inval_entry(INodeNo(dir.id.raw()), OsStr::from_bytes(name))
                        });
                    if let Err(e) = sent {
                        tracing::debug!("invalidating {}: {e}", String::from_utf8_lossy(path));
                    }
                }
            }
        })
        .map(|_| ())
}
