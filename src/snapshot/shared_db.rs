//! The snapshotter's database handle: opened on first use and closed once idle, so that a
//! burst of containerd's requests opens it once and `snap` commands (which need the root's
//! lock, held while it is open) get their turn in between (DESIGN.md, "Processes and the
//! database").

use super::SnapshotError;
use crate::db::Db;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// How long the database stays open after its last use.
const IDLE: Duration = Duration::from_millis(100);

/// The database of one root, open while in use.
pub(super) struct SharedDb {
    root: PathBuf,
    slot: Mutex<(Option<Db>, Instant)>,
}

/// The open database, for one step of one operation.
pub(super) struct DbGuard<'a>(MutexGuard<'a, (Option<Db>, Instant)>);

impl std::ops::Deref for DbGuard<'_> {
    type Target = Db;
    fn deref(&self) -> &Db {
        // SharedDb::lock opens it before it makes a guard, and only the closer empties it.
        self.0.0.as_ref().expect("the guard's database is open")
    }
}

impl Drop for DbGuard<'_> {
    fn drop(&mut self) {
        self.0.1 = Instant::now();
    }
}

impl SharedDb {
    pub(super) fn new(root: &Path) -> Self {
        SharedDb {
            root: root.to_path_buf(),
            slot: Mutex::new((None, Instant::now())),
        }
    }

    pub(super) fn lock(&self) -> Result<DbGuard<'_>, SnapshotError> {
        let mut slot = self.slot.lock().unwrap_or_else(|e| e.into_inner());
        if slot.0.is_none() {
            let on_wait = |pid: Option<u32>| {
                tracing::info!(
                    "waiting for the store lock held by pid {}",
                    pid.map_or("?".into(), |p| p.to_string())
                )
            };
            slot.0 = Some(Db::open(&self.root, crate::db::LOCK_TIMEOUT, &on_wait)?);
        }
        Ok(DbGuard(slot))
    }

    /// Closes the database if nothing used it for a while; call it periodically.
    pub(super) fn close_if_idle(&self) {
        if let Ok(mut slot) = self.slot.try_lock()
            && slot.0.is_some()
            && slot.1.elapsed() >= IDLE
        {
            slot.0 = None;
        }
    }
}
