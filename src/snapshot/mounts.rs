//! The mounts a snapshot is given to containerd as: where its tree is, how to mount it.

use crate::db::{SnapshotKind, SnapshotRecord};
use std::path::Path;

/// One mount, as containerd's `Mount` message: `mount -t KIND -o OPTIONS SOURCE TARGET`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountSpec {
    pub kind: String,
    pub source: String,
    pub options: Vec<String>,
}

/// The mounts of `snapshot`; snapshot directories are under `snapshots_dir`:
/// - a view, or an active snapshot a container runs on: a bind of its FUSE mount (`mnt`);
/// - an active snapshot being unpacked into with no parent: a bind of its upper;
/// - one being unpacked into on a parent: one overlay of its upper on the uppers of the
///   pending snapshots below it (nearest first) and the view of the stored stack under
///   them, which containerd's applier does not mount but writes into the upper directly.
pub fn mounts_of(snapshot: &SnapshotRecord, snapshots_dir: &Path) -> Vec<MountSpec> {
    let dir = snapshots_dir.join(snapshot.dir.to_string());
    let path = |sub: &str| dir.join(sub).display().to_string();
    let bind = |source: String, access: &str| MountSpec {
        kind: "bind".into(),
        source,
        options: vec![access.into(), "rbind".into()],
    };
    match (snapshot.kind, snapshot.staging) {
        (SnapshotKind::View, _) => vec![bind(path("mnt"), "ro")],
        (_, true) if snapshot.layers.is_empty() && snapshot.lower_dirs.is_empty() => {
            vec![bind(path("upper"), "rw")]
        }
        (_, true) => {
            let mut lowers: Vec<String> = snapshot
                .lower_dirs
                .iter()
                .map(|n| {
                    snapshots_dir
                        .join(n.to_string())
                        .join("upper")
                        .display()
                        .to_string()
                })
                .collect();
            if !snapshot.layers.is_empty() {
                lowers.push(path("parent/mnt"));
            }
            vec![MountSpec {
                kind: "overlay".into(),
                source: "overlay".into(),
                options: vec![
                    format!("workdir={}", path("work")),
                    format!("upperdir={}", path("upper")),
                    format!("lowerdir={}", lowers.join(":")),
                ],
            }]
        }
        (_, false) => vec![bind(path("mnt"), "rw")],
    }
}

/// Whether containerd prepares `key` to unpack a layer into (its unpacker's keys are
/// `<namespace>/<n>/extract-…`; CRI-style pulls label the target chain id).
pub fn is_unpack(key: &str, labels: &std::collections::BTreeMap<String, String>) -> bool {
    let name = key.splitn(3, '/').nth(2).unwrap_or(key);
    name.starts_with("extract-") || labels.contains_key("containerd.io/snapshot.ref")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Digest, LayerId};
    use std::time::SystemTime;

    fn record(kind: SnapshotKind, staging: bool, layers: usize) -> SnapshotRecord {
        SnapshotRecord {
            key: "k".into(),
            kind,
            parent: None,
            labels: Default::default(),
            created: SystemTime::UNIX_EPOCH,
            updated: SystemTime::UNIX_EPOCH,
            dir: 7,
            layers: vec![LayerId(Digest::of(b"l")); layers],
            staging,
            pending: false,
            lower_dirs: Vec::new(),
            usage: Default::default(),
        }
    }

    #[test]
    fn unpacks_get_plain_mounts_and_containers_the_fuse_mount() {
        let dir = Path::new("/r/snapshots");
        let run = mounts_of(&record(SnapshotKind::Active, false, 2), dir);
        assert_eq!(run[0].kind, "bind");
        assert_eq!(run[0].source, "/r/snapshots/7/mnt");
        assert_eq!(run[0].options, ["rw", "rbind"]);
        let view = mounts_of(&record(SnapshotKind::View, false, 2), dir);
        assert_eq!(view[0].options, ["ro", "rbind"]);
        let first = mounts_of(&record(SnapshotKind::Active, true, 0), dir);
        assert_eq!(first[0].source, "/r/snapshots/7/upper");
        let next = mounts_of(&record(SnapshotKind::Active, true, 1), dir);
        assert_eq!(next.len(), 1);
        assert_eq!(next[0].kind, "overlay");
        assert!(
            next[0]
                .options
                .contains(&"upperdir=/r/snapshots/7/upper".to_string())
        );
        assert!(
            next[0]
                .options
                .contains(&"lowerdir=/r/snapshots/7/parent/mnt".to_string())
        );
        // On pending snapshots 5 (its parent) and 3: their uppers, then the stored stack.
        let mut on_pending = record(SnapshotKind::Active, true, 1);
        on_pending.lower_dirs = vec![5, 3];
        let lowerdir =
            "lowerdir=/r/snapshots/5/upper:/r/snapshots/3/upper:/r/snapshots/7/parent/mnt";
        assert!(
            mounts_of(&on_pending, dir)[0]
                .options
                .contains(&lowerdir.to_string())
        );
        on_pending.layers.clear();
        let lowerdir = "lowerdir=/r/snapshots/5/upper:/r/snapshots/3/upper";
        assert!(
            mounts_of(&on_pending, dir)[0]
                .options
                .contains(&lowerdir.to_string())
        );
    }

    #[test]
    fn recognises_unpack_keys() {
        let none = Default::default();
        assert!(is_unpack(
            "default/3/extract-296805028-fdsQ sha256:5b01",
            &none
        ));
        assert!(!is_unpack("default/5/c1", &none));
        assert!(!is_unpack("default/5/my-extract-", &none));
        let labelled = [("containerd.io/snapshot.ref".to_string(), "x".to_string())].into();
        assert!(is_unpack("k8s.io/9/abc", &labelled));
    }
}
