//! The snapshot directories (`<root>/snapshots/<n>`): where each is, which the records still
//! use, and discarding one (its daemons stopped first) once none does.

use super::state::Snapshots;
use crate::container::{Daemon, daemon_at, stop_unless_busy};
use crate::db::{SnapshotKind, SnapshotRecord};
use std::collections::HashSet;
use std::path::{Path, PathBuf};

impl Snapshots {
    pub(super) fn snapshots_dir(&self) -> PathBuf {
        self.store.root().join("snapshots")
    }

    pub(super) fn dir(&self, n: u64) -> PathBuf {
        self.snapshots_dir().join(n.to_string())
    }

    /// Discards those of snapshot directories `dirs` that no snapshot uses any more.
    pub(super) fn release_dirs(&self, dirs: &[u64]) {
        let in_use = match self.db().and_then(|db| Ok(db.snapshots()?)) {
            Ok(records) => dirs_in_use(&records),
            Err(e) => {
                tracing::warn!(
                    "keeping snapshot directories {dirs:?} for cleanup: {}",
                    crate::error::Chain(&e)
                );
                return;
            }
        };
        for &n in dirs {
            if !in_use.contains(&n) {
                self.discard_dir_in_background(n);
            }
        }
    }

    /// Stops the daemons of snapshot directory `n` and removes it, unless a container still
    /// runs on its mount (then `cleanup` removes it once that is over). Failures are logged,
    /// not returned: the record is already gone, and `cleanup` tries again.
    pub(super) fn discard_dir(&self, n: u64) {
        if self.stop_daemons(n) {
            let dir = self.dir(n);
            if let Err(e) = std::fs::remove_dir_all(&dir)
                && e.kind() != std::io::ErrorKind::NotFound
            {
                tracing::warn!("removing {}: {e}", dir.display());
            }
        }
    }

    /// [`Snapshots::discard_dir`], with the removal of the files in another thread: removing
    /// thousands of files (and discarding their blocks) need not delay containerd.
    pub(super) fn discard_dir_in_background(&self, n: u64) {
        if !self.stop_daemons(n) {
            return;
        }
        let dir = self.dir(n);
        let parked = dir.with_file_name(format!("{n}.removing"));
        if let Err(e) = std::fs::rename(&dir, &parked) {
            if e.kind() != std::io::ErrorKind::NotFound {
                tracing::warn!("moving {} aside: {e}", dir.display());
            }
            return self.discard_dir(n);
        }
        std::thread::spawn(move || {
            if let Err(e) = std::fs::remove_dir_all(&parked) {
                tracing::warn!("removing {}: {e}", parked.display());
            }
        });
    }

    /// Stops the daemons serving snapshot directory `n`; false if one of their mounts is
    /// still in use (its daemon then serves on).
    pub(super) fn stop_daemons(&self, n: u64) -> bool {
        let dir = self.dir(n);
        let mut stopped = true;
        for daemon_dir in [dir.join("parent"), dir] {
            let stop = match daemon_at(&daemon_dir) {
                Daemon::Gone => continue,
                Daemon::Mounted(state) => stop_unless_busy(&daemon_dir, state),
                // Its mount lives on only elsewhere: in use.
                Daemon::Detached(_) => Ok(false),
            };
            match stop {
                Ok(true) => {}
                Ok(false) => {
                    tracing::info!(
                        "{}: still in use; left for a later cleanup",
                        daemon_dir.display()
                    );
                    stopped = false;
                }
                Err(e) => {
                    tracing::warn!("{}", crate::error::Chain(&e));
                    stopped = false;
                }
            }
        }
        stopped
    }
}

/// The snapshot directories that `records` use: those of active, view and pending
/// snapshots, and the pending uppers that unpacks mount as lower layers.
pub(super) fn dirs_in_use(records: &[SnapshotRecord]) -> HashSet<u64> {
    records
        .iter()
        .filter(|s| s.kind != SnapshotKind::Committed || s.pending)
        .flat_map(|s| std::iter::once(s.dir).chain(s.lower_dirs.iter().copied()))
        .collect()
}

/// Makes the directories `subs` of the snapshot directory `dir` that are missing, with
/// modes of their own rather than the snapshotter's umask: an `upper` is the container's
/// `/` (`0755`, as containerd's overlayfs snapshotter makes it; under umask 000 it was
/// `0777`, and anyone reaching the mount could replace `/etc`), `work` is the daemon's
/// alone, `mnt` a mount point. Existing ones keep theirs: a container may have changed its
/// `/`.
pub(super) fn make_snapshot_dirs(dir: &Path, subs: &[&str]) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    for sub in subs {
        let path = dir.join(sub);
        if path.is_dir() {
            continue;
        }
        std::fs::create_dir_all(&path)?;
        let mode = if *sub == "work" { 0o700 } else { 0o755 };
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o7777
    }

    #[test]
    fn snapshot_dirs_get_their_own_modes_once() {
        let base = tempfile::tempdir().unwrap();
        let dir = base.path().join("7");
        make_snapshot_dirs(&dir, &["upper", "work", "mnt"]).unwrap();
        assert_eq!(mode(&dir.join("upper")), 0o755);
        assert_eq!(mode(&dir.join("work")), 0o700);
        assert_eq!(mode(&dir.join("mnt")), 0o755);
        // A container's own chmod of its / is kept across restarts.
        std::fs::set_permissions(dir.join("upper"), std::fs::Permissions::from_mode(0o750))
            .unwrap();
        make_snapshot_dirs(&dir, &["upper", "work"]).unwrap();
        assert_eq!(mode(&dir.join("upper")), 0o750);
    }
}
