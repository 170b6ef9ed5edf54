//! Storing committed unpacks in the background.
//!
//! containerd's unpacker commits a layer and goes straight on with the next one. So `Commit`
//! of an unpack does not store the upper there and then: it records the snapshot as
//! committed and `pending`, and queues it. One ingester at a time (the background worker of
//! [`Snapshots::run_ingester`], or an operation that needs the layer now) turns queued uppers
//! into layers, in commit order, so a parent is stored before its children. Until then an
//! unpack on a pending snapshot mounts the pending uppers as lower layers, and a container
//! or view on one waits ([`Snapshots::wait_stored`]).
//!
//! A crash loses nothing: the record stays pending with its directory, and the queue is
//! filled again from the database when the snapshotter starts.

use super::SnapshotError;
use super::queue::Job;
use super::state::{GC_WAIT, Snapshots};
use crate::db::{SnapshotRecord, SnapshotUsage};
use crate::image::{Handover, ImageError, Silent, store_upper_on_stack};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

impl Snapshots {
    /// Stores queued snapshots in a thread of their own, for as long as the process lives.
    pub fn run_ingester(self: &Arc<Self>) {
        let snapshots = Arc::clone(self);
        let worker = std::thread::Builder::new()
            .name("ingest".into())
            .spawn(move || {
                loop {
                    snapshots.ingests.wait_for_work();
                    snapshots.ingest_next();
                }
            });
        if let Err(e) = worker {
            // Containers and views then store what they need themselves (`wait_stored`).
            tracing::warn!("no background ingest thread: {e}");
        }
    }

    /// Stores the next queued snapshot, unless another thread is storing one; false if it
    /// did nothing.
    pub fn ingest_next(&self) -> bool {
        let Some(job) = self.ingests.take() else {
            return false;
        };
        let result = self.ingest(&job).map_err(|e| {
            let reason = crate::error::Chain(&e).to_string();
            tracing::error!("storing snapshot {:?} as a layer: {reason}", job.key);
            reason
        });
        self.ingests.finish(&job, result);
        true
    }

    /// Stores the upper of pending snapshot `job` as a layer on its parent's stack and
    /// records it stored; its directory goes once no unpack mounts it as a lower layer.
    fn ingest(&self, job: &Job) -> Result<(), SnapshotError> {
        let _dirs = self.shared_dirs();
        let guard = self.store.write_guard(GC_WAIT)?;
        let is_job = |r: &SnapshotRecord| r.pending && r.dir == job.dir;
        let parent_layers = {
            let db = self.db()?;
            match db.snapshot(&job.key)? {
                Some(record) if is_job(&record) => match &record.parent {
                    None => Vec::new(),
                    Some(parent) => {
                        let parent = Self::get(&db, parent)?;
                        if parent.pending {
                            return Err(SnapshotError::FailedPrecondition(format!(
                                "its parent {:?} is not stored",
                                parent.key
                            )));
                        }
                        parent.layers
                    }
                },
                // Removed while it waited (or stored already, by a job queued twice).
                _ => {
                    drop((db, guard));
                    self.release_dirs(&[job.dir]);
                    return Ok(());
                }
            }
        };
        let start = std::time::Instant::now();
        let layer = store_upper_on_stack(
            &self.store,
            &parent_layers,
            &self.dir(job.dir).join("upper"),
            Handover::Adopt,
            &Silent,
            || Ok::<(), ImageError>(()),
        )?;
        {
            let db = self.db()?;
            match db.snapshot(&job.key)? {
                Some(mut record) if is_job(&record) => {
                    record.pending = false;
                    record.layers = parent_layers;
                    record.layers.push(layer.id);
                    record.usage = SnapshotUsage {
                        size: layer.content_bytes,
                        inodes: layer.entries,
                    };
                    db.update_snapshot(&record)?;
                }
                _ => tracing::info!(
                    "snapshot {:?} was removed while it was stored; `snap gc` frees its layer",
                    job.key
                ),
            }
        }
        drop(guard);
        tracing::debug!("stored snapshot {:?} in {:?}", job.key, start.elapsed());
        self.release_dirs(&[job.dir]);
        Ok(())
    }

    /// Committed snapshot `key`, once its layer is stored: stores queued snapshots itself
    /// while no other thread does, else waits for them. Failed ingests are tried once more
    /// (the disk may have room again) before their error is returned.
    pub(super) fn wait_stored(&self, key: &str) -> Result<SnapshotRecord, SnapshotError> {
        let mut retried = false;
        loop {
            let record = self.stat(key)?;
            if !record.pending {
                return Ok(record);
            }
            if let Some(reason) = self.ingests.failure(record.dir) {
                if retried {
                    return Err(SnapshotError::NotStored {
                        key: key.to_string(),
                        reason,
                    });
                }
                retried = true;
                self.ingests.retry_failed();
            }
            if self.ingests.idle() {
                // Nothing queued, yet it is pending (which should not happen; a wait must
                // not be endless): queue it.
                self.ingests.push(Job {
                    key: record.key.clone(),
                    dir: record.dir,
                });
            }
            if !self.ingest_next() {
                self.ingests.wait(Duration::from_millis(100));
            }
        }
    }

    /// Queues the pending snapshots of the database, parents before children (at start).
    pub(super) fn queue_pending(&self) -> Result<(), SnapshotError> {
        let records = self.db()?.snapshots()?;
        for job in in_commit_order(&records) {
            tracing::info!("snapshot {:?} is not stored yet: queued", job.key);
            self.ingests.push(job);
        }
        Ok(())
    }
}

/// The pending snapshots among `records`, each after its pending parent.
fn in_commit_order(records: &[SnapshotRecord]) -> Vec<Job> {
    let pending: HashMap<&str, &SnapshotRecord> = records
        .iter()
        .filter(|s| s.pending)
        .map(|s| (s.key.as_str(), s))
        .collect();
    let depth = |record: &SnapshotRecord| {
        let mut depth = 0;
        let mut parent = record.parent.as_deref();
        // Bounded: a loop of parents (which containerd cannot make) must not hang the start.
        while let Some(p) = parent.and_then(|p| pending.get(p))
            && depth <= pending.len()
        {
            depth += 1;
            parent = p.parent.as_deref();
        }
        depth
    };
    let mut ordered: Vec<(usize, &SnapshotRecord)> =
        pending.values().map(|s| (depth(s), *s)).collect();
    ordered.sort_by_key(|(depth, s)| (*depth, s.created));
    ordered
        .into_iter()
        .map(|(_, s)| Job {
            key: s.key.clone(),
            dir: s.dir,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::SnapshotKind;
    use crate::model::Ino;
    use crate::snapshot::MountSpec;
    use std::collections::BTreeMap;
    use std::path::{Path, PathBuf};

    fn prepare_unpack(snapshots: &Snapshots, key: &str, parent: &str) -> MountSpec {
        let mut mounts = snapshots
            .prepare(SnapshotKind::Active, key, parent, BTreeMap::new())
            .unwrap();
        assert_eq!(mounts.len(), 1);
        mounts.remove(0)
    }

    /// The upper directory of an unpack's mount, and its lower directories.
    fn dirs_of(mount: &MountSpec) -> (PathBuf, Vec<PathBuf>) {
        if mount.kind == "bind" {
            return (PathBuf::from(&mount.source), Vec::new());
        }
        let option = |name: &str| {
            mount
                .options
                .iter()
                .find_map(|o| o.strip_prefix(name))
                .unwrap_or_default()
                .to_string()
        };
        let lowers = option("lowerdir=").split(':').map(PathBuf::from).collect();
        (PathBuf::from(option("upperdir=")), lowers)
    }

    fn write(upper: &Path, path: &str, bytes: &[u8]) {
        std::fs::write(upper.join(path), bytes).unwrap();
    }

    #[test]
    fn unpacks_stack_on_pending_snapshots_until_they_are_stored() {
        let root = tempfile::tempdir().unwrap();
        let snapshots = Snapshots::open(root.path()).unwrap();
        let base = prepare_unpack(&snapshots, "ns/1/extract-1 a", "");
        let (base_upper, _) = dirs_of(&base);
        write(&base_upper, "a", b"base");
        snapshots
            .commit("ns/2/a", "ns/1/extract-1 a", BTreeMap::new())
            .unwrap();

        // On a pending parent: an overlay on the parent's upper, which is kept.
        let (child_upper, lowers) =
            dirs_of(&prepare_unpack(&snapshots, "ns/3/extract-2 b", "ns/2/a"));
        assert_eq!(lowers, std::slice::from_ref(&base_upper));
        write(&child_upper, "b", b"child");
        snapshots
            .commit("ns/4/b", "ns/3/extract-2 b", BTreeMap::new())
            .unwrap();
        assert!(base_upper.is_dir());
        let (_, lowers) = dirs_of(&prepare_unpack(&snapshots, "ns/5/extract-3 c", "ns/4/b"));
        assert_eq!(lowers, [child_upper.clone(), base_upper.clone()]);

        // Storing both leaves the uppers to the unpack that still mounts them.
        let child = snapshots.wait_stored("ns/4/b").unwrap();
        assert_eq!(child.layers.len(), 2);
        assert_eq!(child.layers[0], snapshots.stat("ns/2/a").unwrap().layers[0]);
        assert!(base_upper.is_dir() && child_upper.is_dir());
        let index = snapshots
            .store
            .open_index(&crate::image::stack_id(&child.layers))
            .unwrap();
        for name in ["a", "b"] {
            assert!(index.lookup(Ino::ROOT, name.as_bytes()).is_some(), "{name}");
        }
        snapshots.remove("ns/5/extract-3 c").unwrap();
        assert!(!base_upper.exists() && !child_upper.exists());
    }

    /// Prepares an unpack, writes `file` into it and commits it as `name`.
    fn unpack(snapshots: &Snapshots, name: &str, parent: &str, file: &str) -> PathBuf {
        let key = format!("ns/k/extract-{name}");
        let (upper, _) = dirs_of(&prepare_unpack(snapshots, &key, parent));
        write(&upper, file, file.as_bytes());
        snapshots.commit(name, &key, BTreeMap::new()).unwrap();
        upper
    }

    #[test]
    fn pending_snapshots_outlive_a_restart_and_go_when_removed() {
        let root = tempfile::tempdir().unwrap();
        let removed_upper = {
            let snapshots = Snapshots::open(root.path()).unwrap();
            unpack(&snapshots, "ns/extract-1/a", "", "a");
            unpack(&snapshots, "ns/extract-2/b", "ns/extract-1/a", "b");
            let upper = unpack(&snapshots, "ns/extract-3/c", "", "c");
            snapshots.remove("ns/extract-3/c").unwrap();
            upper
            // Dropped with three jobs queued: as if killed.
        };
        let snapshots = Snapshots::open(root.path()).unwrap();
        let b = snapshots.wait_stored("ns/extract-2/b").unwrap();
        assert_eq!(b.layers.len(), 2);
        assert!(
            !snapshots.ingest_next(),
            "only the two pending ones were queued again"
        );
        assert!(
            removed_upper.is_dir(),
            "no record names it, nobody queued it"
        );
        snapshots.cleanup().unwrap();
        assert!(!removed_upper.exists());

        // Removed while queued: the ingester discards it.
        let upper = unpack(&snapshots, "ns/extract-4/d", "", "d");
        snapshots.remove("ns/extract-4/d").unwrap();
        assert!(upper.is_dir());
        assert!(snapshots.ingest_next());
        assert!(!upper.exists());
    }

    #[test]
    fn a_failed_ingest_is_tried_again_by_the_next_container() {
        let root = tempfile::tempdir().unwrap();
        let snapshots = Snapshots::open(root.path()).unwrap();
        let upper = unpack(&snapshots, "ns/extract-1/a", "", "a");
        unpack(&snapshots, "ns/extract-2/b", "ns/extract-1/a", "b");
        // The parent's upper is unreadable (as on a failing disk): both fail.
        let aside = upper.with_file_name("upper.aside");
        std::fs::rename(&upper, &aside).unwrap();
        assert!(snapshots.ingest_next() && snapshots.ingest_next());
        assert!(snapshots.stat("ns/extract-2/b").unwrap().pending);
        let failed = snapshots.wait_stored("ns/extract-2/b").unwrap_err();
        assert!(
            matches!(failed, SnapshotError::NotStored { .. }),
            "{failed}"
        );
        // Once it is readable again, the next wait stores both, parent first.
        std::fs::rename(&aside, &upper).unwrap();
        let b = snapshots.wait_stored("ns/extract-2/b").unwrap();
        assert_eq!(b.layers.len(), 2);
    }

    #[test]
    fn an_unpack_holding_a_file_named_like_a_whiteout_is_never_stored() {
        let root = tempfile::tempdir().unwrap();
        let snapshots = Snapshots::open(root.path()).unwrap();
        // Read back from an OCI layer, the file would hide the parent's /etc.
        unpack(&snapshots, "ns/extract-1/a", "", ".wh.etc");
        assert!(snapshots.ingest_next());
        assert!(snapshots.stat("ns/extract-1/a").unwrap().pending);
        let refused = snapshots.wait_stored("ns/extract-1/a").unwrap_err();
        assert!(refused.to_string().contains(".wh.etc"), "{refused}");
    }

    #[test]
    fn pending_snapshots_are_queued_parents_first() {
        let now = std::time::SystemTime::now();
        let record = |key: &str, parent: Option<&str>, dir: u64, pending: bool| SnapshotRecord {
            key: key.into(),
            kind: SnapshotKind::Committed,
            parent: parent.map(String::from),
            labels: BTreeMap::new(),
            // Newer records first: creation order alone would be wrong.
            created: now - Duration::from_secs(dir),
            updated: now,
            dir,
            layers: Vec::new(),
            staging: false,
            pending,
            lower_dirs: Vec::new(),
            usage: SnapshotUsage::default(),
        };
        let records = [
            record("c", Some("b"), 1, true),
            record("b", Some("a"), 2, true),
            record("a", Some("stored"), 3, true),
            record("stored", None, 4, false),
            record("x", None, 5, true),
        ];
        let keys: Vec<String> = in_commit_order(&records)
            .into_iter()
            .map(|j| j.key)
            .collect();
        assert_eq!(keys, ["x", "a", "b", "c"]);
    }
}
