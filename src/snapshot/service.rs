//! The snapshot operations, synchronous, with containerd's semantics: each takes the
//! (shared) database for its checks and its one write, and does file work (storing a layer,
//! mounting) outside the database's lock.
//!
//! Order, for crash safety: a new snapshot is recorded before its directory is made (a
//! record whose directory is missing gets it again from `mounts`), and removed before its
//! directory is (`cleanup` removes directories no record names). A commit of a container's
//! snapshot stores the layer and its stack's index durably before the one transaction that
//! swaps the active record for the committed one; a commit of an unpack swaps at once, to a
//! pending record whose upper is stored in the background (`ingest`).

use super::dirs::{dirs_in_use, make_snapshot_dirs};
use super::mounts::{MountSpec, is_unpack, mounts_of};
use super::queue::Job;
use super::state::{GC_WAIT, Snapshots};
use super::{Filters, SnapshotError, io_err};
use crate::container::{Daemon, daemon_at, detached, spawn};
use crate::db::{Db, SnapshotKind, SnapshotRecord, SnapshotUsage};
use crate::error::Chain;
use crate::image::{Handover, Silent, ensure_stack_index, stack_id, store_upper_on_stack};
use crate::model::LayerId;
use std::collections::{BTreeMap, HashSet};
use std::ffi::OsString;
use std::path::Path;
use std::time::SystemTime;

impl Snapshots {
    /// The snapshots of the store at `root`; those committed but not stored yet are queued
    /// (see [`Snapshots::run_ingester`]).
    pub fn open(root: &Path) -> Result<Self, SnapshotError> {
        let snapshots = Snapshots::new(root)?;
        snapshots.queue_pending()?;
        Ok(snapshots)
    }

    /// A new active (or view) snapshot `key` on the committed snapshot `parent` (none if
    /// empty); returns its mounts. A container's or a view's waits until `parent` is stored.
    pub fn prepare(
        &self,
        kind: SnapshotKind,
        key: &str,
        parent: &str,
        labels: BTreeMap<String, String>,
    ) -> Result<Vec<MountSpec>, SnapshotError> {
        if key.is_empty() {
            return Err(SnapshotError::InvalidArgument(
                "the snapshot key is empty".into(),
            ));
        }
        let staging = kind == SnapshotKind::Active && is_unpack(key, &labels);
        if !staging && !parent.is_empty() {
            self.wait_stored(parent)?;
        }
        let _dirs = self.shared_dirs();
        // The stack's index is written before the record names it: no gc in between.
        let guard = self.store.write_guard(GC_WAIT)?;
        // One database lock for the lot: no pending snapshot below is stored (and its
        // directory discarded) between the look at it and the record naming its directory.
        let db = self.db()?;
        if db.snapshot(key)?.is_some() {
            return Err(SnapshotError::AlreadyExists(key.to_string()));
        }
        let (layers, lower_dirs) = if parent.is_empty() {
            (Vec::new(), Vec::new())
        } else {
            let parent_record = Self::get(&db, parent)?;
            if parent_record.kind != SnapshotKind::Committed {
                return Err(SnapshotError::InvalidArgument(format!(
                    "parent {parent:?} is not a committed snapshot"
                )));
            }
            if parent_record.pending && !staging {
                return Err(SnapshotError::FailedPrecondition(format!(
                    "parent {parent:?} is not stored yet: try again"
                )));
            }
            Self::stack_under(&db, parent_record)?
        };
        let now = SystemTime::now();
        let record = SnapshotRecord {
            key: key.to_string(),
            kind,
            parent: (!parent.is_empty()).then(|| parent.to_string()),
            staging,
            labels,
            created: now,
            updated: now,
            dir: db.new_snapshot_dir()?,
            layers,
            pending: false,
            lower_dirs,
            usage: SnapshotUsage::default(),
        };
        ensure_stack_index(&self.store, &record.layers)?;
        db.put_snapshot(&record, None)?;
        drop((db, guard));
        if let Err(e) = self.start(&record) {
            tracing::warn!("prepare {key:?}: {}; removing it again", Chain(&e));
            if let Err(e) = self.db().and_then(|db| Ok(db.remove_snapshot(key)?)) {
                tracing::warn!("removing {key:?}: {}", Chain(&e));
            }
            self.discard_dir(record.dir);
            return Err(e);
        }
        Ok(mounts_of(&record, &self.snapshots_dir()))
    }

    /// What a snapshot on committed snapshot `record` stands on: the stored layer stack, and
    /// the directories of the pending snapshots above it, nearest first.
    fn stack_under(
        db: &Db,
        mut record: SnapshotRecord,
    ) -> Result<(Vec<LayerId>, Vec<u64>), SnapshotError> {
        let mut pending = Vec::new();
        while record.pending {
            pending.push(record.dir);
            match &record.parent {
                Some(parent) => record = Self::get(db, parent)?,
                None => return Ok((Vec::new(), pending)),
            }
        }
        Ok((record.layers, pending))
    }

    /// The mounts of an active or view snapshot; its daemon is started again if it is gone
    /// (killed, or the machine restarted).
    pub fn mounts(&self, key: &str) -> Result<Vec<MountSpec>, SnapshotError> {
        let _dirs = self.shared_dirs();
        let record = self.stat(key)?;
        if record.kind == SnapshotKind::Committed {
            return Err(SnapshotError::FailedPrecondition(format!(
                "snapshot {key:?} is committed: only active and view snapshots have mounts"
            )));
        }
        self.start(&record)?;
        Ok(mounts_of(&record, &self.snapshots_dir()))
    }

    /// Makes the directories of an active or view snapshot and starts the daemon that its
    /// mounts need, unless it runs: its own FUSE mount, or for an unpack on a parent, a
    /// read-only view of the parent.
    fn start(&self, record: &SnapshotRecord) -> Result<(), SnapshotError> {
        let _starting = self.starting.lock().unwrap_or_else(|e| e.into_inner());
        let dir = self.dir(record.dir);
        let (daemon_dir, read_only) = match (record.staging, record.layers.is_empty()) {
            (true, true) => (None, false),
            (true, false) => (Some(dir.join("parent")), true),
            (false, _) => (Some(dir.clone()), record.kind == SnapshotKind::View),
        };
        make_snapshot_dirs(&dir, &["upper", "work"]).map_err(io_err(&dir))?;
        let Some(daemon_dir) = daemon_dir else {
            return Ok(());
        };
        match daemon_at(&daemon_dir) {
            Daemon::Mounted(_) => return Ok(()),
            Daemon::Detached(state) => return Err(detached(&record.key, state).into()),
            Daemon::Gone => {}
        }
        make_snapshot_dirs(&daemon_dir, &["upper", "work", "mnt"]).map_err(io_err(&daemon_dir))?;
        let mut args: Vec<OsString> = vec![
            "serve-dir".into(),
            "--index".into(),
            stack_id(&record.layers).to_string().into(),
        ];
        if read_only {
            args.push("--read-only".into());
        }
        args.push(daemon_dir.clone().into());
        spawn(
            &self.store,
            &daemon_dir,
            &record.key,
            &args,
            &daemon_dir.join("mnt"),
        )?;
        Ok(())
    }

    /// Stores active snapshot `key` as committed snapshot `name`: its upper becomes a layer,
    /// at once for a container's snapshot, in the background for an unpack.
    pub fn commit(
        &self,
        name: &str,
        key: &str,
        labels: BTreeMap<String, String>,
    ) -> Result<(), SnapshotError> {
        let _dirs = self.shared_dirs();
        if name.is_empty() {
            return Err(SnapshotError::InvalidArgument(
                "the committed snapshot's name is empty".into(),
            ));
        }
        let active = {
            let db = self.db()?;
            if db.snapshot(name)?.is_some() {
                return Err(SnapshotError::AlreadyExists(name.to_string()));
            }
            let active = Self::get(&db, key)?;
            if active.kind != SnapshotKind::Active {
                return Err(SnapshotError::FailedPrecondition(format!(
                    "snapshot {key:?} is not active"
                )));
            }
            active
        };
        let now = SystemTime::now();
        let mut committed = SnapshotRecord {
            key: name.to_string(),
            kind: SnapshotKind::Committed,
            parent: active.parent.clone(),
            labels,
            created: now,
            updated: now,
            dir: active.dir,
            layers: active.layers.clone(),
            staging: false,
            pending: false,
            lower_dirs: Vec::new(),
            usage: SnapshotUsage::default(),
        };
        if active.staging {
            // The view of the parent served the applier; nothing reads it any more.
            self.stop_daemons(active.dir);
            committed.pending = true;
            self.db()?.put_snapshot(&committed, Some(key))?;
            self.ingests.push(Job {
                key: name.to_string(),
                dir: active.dir,
            });
            self.release_dirs(&active.lower_dirs);
            return Ok(());
        }
        let guard = self.store.write_guard(GC_WAIT)?;
        let dir = self.dir(active.dir);
        // A snapshot in use is frozen (its namespace changes wait) while its upper is read.
        let control = dir.join("control.sock");
        let quiesce = || match daemon_at(&dir) {
            Daemon::Gone => Ok(None),
            Daemon::Mounted(_) | Daemon::Detached(_) => crate::container::freeze(&control)
                .map(Some)
                .map_err(|source| crate::image::ImageError::Io {
                    path: control.clone(),
                    source,
                }),
        };
        // A container's upper is copied: it may still be mounted.
        let layer = store_upper_on_stack(
            &self.store,
            &active.layers,
            &dir.join("upper"),
            Handover::Copy,
            &Silent,
            quiesce,
        )?;
        committed.layers.push(layer.id);
        committed.usage = SnapshotUsage {
            size: layer.content_bytes,
            inodes: layer.entries,
        };
        self.db()?.put_snapshot(&committed, Some(key))?;
        drop(guard);
        // Removing thousands of files (and discarding their blocks) need not delay containerd.
        self.discard_dir_in_background(active.dir);
        Ok(())
    }

    /// Removes snapshot `key`, which no other snapshot may have as its parent. A committed
    /// snapshot's layer stays in the store until `snap gc` finds nothing using it.
    pub fn remove(&self, key: &str) -> Result<(), SnapshotError> {
        let _dirs = self.shared_dirs();
        let record = {
            let db = self.db()?;
            let record = Self::get(&db, key)?;
            if let Some(child) = db
                .snapshots()?
                .into_iter()
                .find(|s| s.parent.as_deref() == Some(key))
            {
                return Err(SnapshotError::FailedPrecondition(format!(
                    "cannot remove snapshot {key:?}: snapshot {:?} is its child",
                    child.key
                )));
            }
            db.remove_snapshot(key)?;
            record
        };
        // A pending snapshot's directory is the ingester's to discard (it may be reading it).
        if record.kind != SnapshotKind::Committed {
            self.discard_dir(record.dir);
        }
        self.release_dirs(&record.lower_dirs);
        Ok(())
    }

    /// Replaces the labels (`fieldpaths` empty or `labels`) or the named ones (`labels.KEY`)
    /// of snapshot `key`; returns the updated record.
    pub fn update(
        &self,
        key: &str,
        labels: BTreeMap<String, String>,
        fieldpaths: &[String],
    ) -> Result<SnapshotRecord, SnapshotError> {
        let db = self.db()?;
        let mut record = Self::get(&db, key)?;
        if fieldpaths.is_empty() {
            record.labels = labels;
        } else {
            for path in fieldpaths {
                if path == "labels" {
                    record.labels = labels.clone();
                } else if let Some(label) = path.strip_prefix("labels.") {
                    // As containerd: a label named but not given (or empty) is removed.
                    match labels.get(label).filter(|v| !v.is_empty()) {
                        Some(value) => record.labels.insert(label.to_string(), value.clone()),
                        None => record.labels.remove(label),
                    };
                } else {
                    return Err(SnapshotError::InvalidArgument(format!(
                        "cannot update field {path:?} of snapshot {key:?}"
                    )));
                }
            }
        }
        record.updated = SystemTime::now();
        db.update_snapshot(&record)?;
        Ok(record)
    }

    /// What snapshot `key` uses on its own: its layer's content if committed and stored, its
    /// upper's allocated bytes and inodes if not.
    pub fn usage(&self, key: &str) -> Result<SnapshotUsage, SnapshotError> {
        let record = self.stat(key)?;
        if record.kind == SnapshotKind::Committed && !record.pending {
            return Ok(record.usage);
        }
        Ok(tree_usage(&self.dir(record.dir).join("upper")))
    }

    /// The snapshots that match `filters` (containerd's syntax; all if none).
    pub fn list(&self, filters: &[String]) -> Result<Vec<SnapshotRecord>, SnapshotError> {
        let filters = Filters::parse(filters)?;
        Ok(self
            .db()?
            .snapshots()?
            .into_iter()
            .filter(|s| filters.matches(s))
            .collect())
    }

    /// Removes snapshot directories that no record names (left by a crash or a failed
    /// removal) and directories a crash left half removed, stopping their daemons.
    pub fn cleanup(&self) -> Result<(), SnapshotError> {
        let _dirs = self.exclusive_dirs();
        let named = dirs_in_use(&self.db()?.snapshots()?);
        let root = self.snapshots_dir();
        let entries = match std::fs::read_dir(&root) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(io_err(&root)(e)),
        };
        for entry in entries {
            let entry = entry.map_err(io_err(&root))?;
            match entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<u64>().ok())
            {
                Some(n) if named.contains(&n) => {}
                Some(n) => {
                    tracing::info!("cleanup: removing unused snapshot directory {n}");
                    self.discard_dir(n);
                }
                // Left by a crash while it was removed in the background.
                None if entry.file_name().to_string_lossy().ends_with(".removing") => {
                    if let Err(e) = std::fs::remove_dir_all(entry.path()) {
                        tracing::debug!("cleanup: {}: {e}", entry.path().display());
                    }
                }
                None => tracing::warn!("cleanup: leaving {} alone", entry.path().display()),
            }
        }
        Ok(())
    }
}

/// Allocated bytes and inodes under `root`, each inode counted once.
fn tree_usage(root: &Path) -> SnapshotUsage {
    use std::os::unix::fs::MetadataExt;
    let mut seen = HashSet::new();
    let mut usage = SnapshotUsage::default();
    for entry in walkdir::WalkDir::new(root)
        .min_depth(1)
        .into_iter()
        .flatten()
    {
        if let Ok(meta) = entry.metadata()
            && seen.insert(meta.ino())
        {
            usage.inodes += 1;
            usage.size += meta.blocks() * 512;
        }
    }
    usage
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Kind;
    use crate::snapshot::ErrorCode;
    use crate::store::Store;

    fn code<T: std::fmt::Debug>(result: Result<T, SnapshotError>) -> ErrorCode {
        result.expect_err("the operation should fail").code()
    }

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// An unpack with no parent, as containerd's unpacker makes it: a bind of the upper,
    /// written to, then committed as `name`.
    fn unpack(snapshots: &Snapshots, key: &str, name: &str, files: &[(&str, &[u8])]) {
        let mounts = snapshots
            .prepare(SnapshotKind::Active, key, "", BTreeMap::new())
            .unwrap();
        assert_eq!(mounts.len(), 1);
        assert_eq!(mounts[0].kind, "bind");
        let upper = Path::new(&mounts[0].source);
        for (path, bytes) in files {
            let path = upper.join(path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, bytes).unwrap();
        }
        snapshots.commit(name, key, labels(&[("l", "1")])).unwrap();
        snapshots.wait_stored(name).unwrap();
    }

    #[test]
    fn commit_turns_an_unpack_into_a_layer_of_the_store() {
        let root = tempfile::tempdir().unwrap();
        let snapshots = Snapshots::open(root.path()).unwrap();
        let key = "ns/1/extract-1-abc sha256:0123";
        let mounts = snapshots
            .prepare(SnapshotKind::Active, key, "", BTreeMap::new())
            .unwrap();
        let upper = Path::new(&mounts[0].source);
        std::fs::create_dir_all(upper.join("etc")).unwrap();
        std::fs::write(upper.join("etc/hostname"), b"box\n").unwrap();
        std::fs::create_dir_all(upper.join("bin")).unwrap();
        std::fs::write(upper.join("bin/tool"), [7u8; 100_000]).unwrap();
        snapshots
            .commit("ns/2/sha256:0123", key, labels(&[("l", "1")]))
            .unwrap();
        assert_eq!(code(snapshots.stat(key)), ErrorCode::NotFound);
        // Committed at once, stored in the background: pending until then.
        let pending = snapshots.stat("ns/2/sha256:0123").unwrap();
        assert_eq!(pending.kind, SnapshotKind::Committed);
        assert!(pending.pending && pending.layers.is_empty());
        assert!(snapshots.usage("ns/2/sha256:0123").unwrap().size >= 100_004);
        assert!(snapshots.ingest_next());
        assert!(!snapshots.ingest_next(), "one job was queued");
        assert!(!upper.exists(), "the stored upper is discarded");
        let committed = snapshots.stat("ns/2/sha256:0123").unwrap();
        assert!(!committed.pending);
        assert_eq!(committed.kind, SnapshotKind::Committed);
        assert_eq!(committed.parent, None);
        assert_eq!(committed.labels, labels(&[("l", "1")]));
        assert_eq!(committed.layers.len(), 1);
        let usage = snapshots.usage("ns/2/sha256:0123").unwrap();
        assert_eq!(usage.size, 100_004);
        let store = Store::open(root.path()).unwrap();
        let layer = store.read_layer(&committed.layers[0]).unwrap();
        let tool = layer
            .entries
            .iter()
            .find(|e| e.path.to_string().trim_start_matches(['.', '/']) == "bin/tool")
            .expect("bin/tool is in the layer");
        let Kind::File { digest, size } = tool.kind else {
            panic!("bin/tool is not a file: {tool:?}");
        };
        assert_eq!(size, 100_000);
        assert_eq!(store.read_object(&digest).unwrap(), vec![7u8; 100_000]);
        assert!(store.open_index(&stack_id(&committed.layers)).is_ok());
        assert_eq!(snapshots.list(&[]).unwrap().len(), 1);
        // Committed snapshots have no mounts of their own.
        assert_eq!(
            code(snapshots.mounts("ns/2/sha256:0123")),
            ErrorCode::FailedPrecondition
        );
    }

    #[test]
    fn unpacked_files_are_linked_into_the_store_but_privileged_ones_copied() {
        use std::os::unix::fs::PermissionsExt;
        let root = tempfile::tempdir().unwrap();
        let snapshots = Snapshots::open(root.path()).unwrap();
        let key = "ns/1/extract-1 a";
        let mounts = snapshots
            .prepare(SnapshotKind::Active, key, "", BTreeMap::new())
            .unwrap();
        let upper = Path::new(&mounts[0].source);
        std::fs::create_dir_all(upper.join("bin")).unwrap();
        std::fs::write(upper.join("bin/plain"), b"plain tool").unwrap();
        std::fs::set_permissions(
            upper.join("bin/plain"),
            std::fs::Permissions::from_mode(0o640),
        )
        .unwrap();
        std::fs::write(upper.join("bin/su"), b"setuid tool").unwrap();
        std::fs::set_permissions(
            upper.join("bin/su"),
            std::fs::Permissions::from_mode(0o4755),
        )
        .unwrap();
        snapshots.commit("ns/2/base", key, BTreeMap::new()).unwrap();
        snapshots.wait_stored("ns/2/base").unwrap();
        let store = Store::open(root.path()).unwrap();
        let mode = |bytes: &[u8]| {
            std::fs::metadata(store.object_path(&crate::model::Digest::of(bytes)))
                .unwrap()
                .permissions()
                .mode()
                & 0o7777
        };
        // Linked: the object is the unpacked file itself, its mode included.
        assert_eq!(mode(b"plain tool"), 0o640);
        // Copied: objects never carry setuid.
        assert_eq!(mode(b"setuid tool"), 0o444);
    }

    #[test]
    fn errors_are_containerds() {
        let root = tempfile::tempdir().unwrap();
        let snapshots = Snapshots::open(root.path()).unwrap();
        unpack(&snapshots, "ns/1/extract-1 a", "ns/2/base", &[("a", b"a")]);
        let active = "ns/3/extract-2 b";
        snapshots
            .prepare(SnapshotKind::Active, active, "", BTreeMap::new())
            .unwrap();
        let prepare = |key: &str, parent: &str| {
            snapshots.prepare(SnapshotKind::Active, key, parent, BTreeMap::new())
        };
        assert_eq!(code(prepare(active, "")), ErrorCode::AlreadyExists);
        assert_eq!(code(prepare("", "")), ErrorCode::InvalidArgument);
        assert_eq!(code(prepare("ns/4/x", "ns/9/missing")), ErrorCode::NotFound);
        assert_eq!(code(prepare("ns/4/x", active)), ErrorCode::InvalidArgument);
        let commit = |name: &str, key: &str| snapshots.commit(name, key, BTreeMap::new());
        assert_eq!(
            code(commit("ns/5/c", "ns/2/base")),
            ErrorCode::FailedPrecondition
        );
        assert_eq!(code(commit("ns/2/base", active)), ErrorCode::AlreadyExists);
        assert_eq!(code(commit("ns/5/c", "ns/9/missing")), ErrorCode::NotFound);
        assert_eq!(code(snapshots.remove("ns/9/missing")), ErrorCode::NotFound);
        assert_eq!(code(snapshots.stat("ns/9/missing")), ErrorCode::NotFound);
        // A parent goes only after its children.
        let now = SystemTime::now();
        let child = SnapshotRecord {
            key: "ns/6/child".into(),
            kind: SnapshotKind::Committed,
            parent: Some("ns/2/base".into()),
            labels: BTreeMap::new(),
            created: now,
            updated: now,
            dir: 0,
            layers: snapshots.stat("ns/2/base").unwrap().layers,
            staging: false,
            pending: false,
            lower_dirs: vec![],
            usage: SnapshotUsage::default(),
        };
        snapshots.db().unwrap().put_snapshot(&child, None).unwrap();
        assert_eq!(
            code(snapshots.remove("ns/2/base")),
            ErrorCode::FailedPrecondition
        );
        snapshots.remove("ns/6/child").unwrap();
        snapshots.remove("ns/2/base").unwrap();
        snapshots.remove(active).unwrap();
        assert!(snapshots.list(&[]).unwrap().is_empty());
    }

    #[test]
    fn update_and_list_follow_containerds_field_paths_and_filters() {
        let root = tempfile::tempdir().unwrap();
        let snapshots = Snapshots::open(root.path()).unwrap();
        unpack(&snapshots, "ns/1/extract-1 a", "ns/2/base", &[("a", b"a")]);
        let key = "ns/2/base";
        let updated = snapshots
            .update(key, labels(&[("x", "1"), ("y", "2")]), &[])
            .unwrap();
        assert_eq!(updated.labels, labels(&[("x", "1"), ("y", "2")]));
        let updated = snapshots
            .update(
                key,
                labels(&[("x", "9"), ("y", "no")]),
                &["labels.x".into()],
            )
            .unwrap();
        assert_eq!(updated.labels, labels(&[("x", "9"), ("y", "2")]));
        assert_eq!(
            code(snapshots.update(key, BTreeMap::new(), &["parent".into()])),
            ErrorCode::InvalidArgument
        );
        assert_eq!(snapshots.stat(key).unwrap().labels, updated.labels);
        assert!(updated.updated > updated.created);
        let list = |f: &str| snapshots.list(&[f.to_string()]).unwrap().len();
        assert_eq!(list("labels.x==9"), 1);
        assert_eq!(list("labels.x==1"), 0);
        assert_eq!(list("kind==committed"), 1);
        assert_eq!(list("kind==active"), 0);
        assert_eq!(
            code(snapshots.list(&["kind=".into()])),
            ErrorCode::InvalidArgument
        );
    }

    #[test]
    fn cleanup_removes_directories_no_snapshot_names() {
        let root = tempfile::tempdir().unwrap();
        let snapshots = Snapshots::open(root.path()).unwrap();
        let key = "ns/1/extract-1 a";
        let mounts = snapshots
            .prepare(SnapshotKind::Active, key, "", BTreeMap::new())
            .unwrap();
        let kept = Path::new(&mounts[0].source).parent().unwrap().to_path_buf();
        let base = root.path().join("snapshots");
        for orphan in ["424242/upper", "7.removing/upper/x"] {
            std::fs::create_dir_all(base.join(orphan)).unwrap();
        }
        snapshots.cleanup().unwrap();
        assert!(kept.join("upper").is_dir());
        assert!(!base.join("424242").exists());
        assert!(!base.join("7.removing").exists());
    }
}
