//! What every snapshot operation shares: the [`Snapshots`] of one store, with its database,
//! the lock on the snapshot directories and the ingest queue, and the accessors the
//! operations (`service`), the directories (`dirs`) and the ingester (`ingest`) use.

use super::SnapshotError;
use super::queue::IngestQueue;
use super::shared_db::{DbGuard, SharedDb};
use crate::db::{Db, SnapshotRecord};
use crate::store::Store;
use std::path::Path;
use std::sync::{Mutex, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;

/// How long an operation waits for a running `snap gc`.
pub(super) const GC_WAIT: Duration = Duration::from_secs(600);

/// containerd's snapshots in one store.
pub struct Snapshots {
    pub(super) store: Store,
    db: SharedDb,
    /// Held shared by operations that make or use snapshot directories, exclusively by
    /// `cleanup`, which must not take a directory whose record is being written.
    dirs: RwLock<()>,
    /// One daemon start at a time: two `Mounts` of one snapshot must not both start one.
    pub(super) starting: Mutex<()>,
    /// Committed unpacks whose uppers are still to be stored as layers.
    pub(super) ingests: IngestQueue,
}

impl Snapshots {
    /// The snapshots of the store at `root`, with nothing queued yet.
    pub(super) fn new(root: &Path) -> Result<Self, SnapshotError> {
        Ok(Snapshots {
            store: Store::open(root)?,
            db: SharedDb::new(root),
            dirs: RwLock::new(()),
            starting: Mutex::new(()),
            ingests: IngestQueue::default(),
        })
    }

    pub(super) fn db(&self) -> Result<DbGuard<'_>, SnapshotError> {
        self.db.lock()
    }

    pub(super) fn shared_dirs(&self) -> RwLockReadGuard<'_, ()> {
        self.dirs.read().unwrap_or_else(|e| e.into_inner())
    }

    pub(super) fn exclusive_dirs(&self) -> RwLockWriteGuard<'_, ()> {
        self.dirs.write().unwrap_or_else(|e| e.into_inner())
    }

    /// Closes the database if no operation used it for a while; call it periodically.
    pub fn close_idle_db(&self) {
        self.db.close_if_idle();
    }

    pub(super) fn get(db: &Db, key: &str) -> Result<SnapshotRecord, SnapshotError> {
        db.snapshot(key)?
            .ok_or_else(|| SnapshotError::NotFound(key.to_string()))
    }

    pub fn stat(&self, key: &str) -> Result<SnapshotRecord, SnapshotError> {
        let db = self.db()?;
        Self::get(&db, key)
    }
}
