//! The records kept in the database. Versioned by field presence: new fields get defaults.

use crate::model::{ContainerName, Digest, ImageId, LayerId};
use serde::{Deserialize, Serialize};

/// The compressed blob a layer was imported from (what a manifest names).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlobRef {
    pub digest: Digest,
    pub media_type: String,
    pub size: u64,
}

/// One layer of an image: its diff_id and, when imported from a manifest, its blob.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageLayer {
    pub diff_id: LayerId,
    pub blob: Option<BlobRef>,
}

/// An image: its config (a store object whose digest is the image id) and its layers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageRecord {
    pub id: ImageId,
    /// Bottom layer first.
    pub layers: Vec<ImageLayer>,
    /// `created` from the config, as written there.
    #[serde(default)]
    pub created: Option<String>,
    /// Unix seconds of the import.
    pub imported: u64,
    #[serde(default)]
    pub os: String,
    #[serde(default)]
    pub architecture: String,
    /// Where it came from, for people: `oci-layout:/path`, `docker-archive:/path`, ...
    #[serde(default)]
    pub source: String,
}

/// A layer: the summary of its layer file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerRecord {
    pub id: LayerId,
    /// Bytes of the uncompressed tar.
    pub tar_size: u64,
    pub entries: u64,
    pub files: u64,
    /// Sum of the sizes of the layer's regular files (each hardlink counted once).
    pub content_bytes: u64,
}

/// A container: an image plus its own upper directory (created by `snap create`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerRecord {
    pub name: ContainerName,
    pub image: ImageId,
}

/// What a containerd snapshot is, as containerd's `Kind` (its `Unknown` is never stored).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SnapshotKind {
    View,
    Active,
    Committed,
}

/// Bytes and inodes a snapshot uses on its own (containerd's `Usage`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotUsage {
    pub size: u64,
    pub inodes: u64,
}

/// A snapshot served to containerd by `snap snapshotter`, under containerd's key for it.
///
/// Active and view snapshots own a directory `snapshots/<dir>/` (upper, work, mount state);
/// a committed snapshot is a layer in the store, and `layers` is its whole stack. An unpack
/// committed but not yet stored (`pending`) still owns its directory, whose upper becomes its
/// layer in the background.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotRecord {
    /// containerd's key (`<namespace>/<seq>/<name>`): an opaque string.
    pub key: String,
    pub kind: SnapshotKind,
    #[serde(default)]
    pub parent: Option<String>,
    #[serde(default)]
    pub labels: std::collections::BTreeMap<String, String>,
    pub created: std::time::SystemTime,
    pub updated: std::time::SystemTime,
    /// The number of the directory under `snapshots/` (active, view and pending snapshots).
    pub dir: u64,
    /// The layer stack, bottom first: the parent's, plus its own layer once committed. For a
    /// pending snapshot and an unpack on one, the stack below the pending snapshots.
    pub layers: Vec<LayerId>,
    /// An active snapshot that containerd unpacks a layer into: its mounts are plain (a bind
    /// of the upper, or one overlay), not a FUSE mount.
    #[serde(default)]
    pub staging: bool,
    /// A committed unpack whose upper is not yet a layer of the store (it is queued).
    #[serde(default)]
    pub pending: bool,
    /// For an unpack on pending snapshots: their directories, nearest first, whose uppers
    /// are the lower layers of its mount (above `layers`).
    #[serde(default)]
    pub lower_dirs: Vec<u64>,
    /// For committed snapshots: what their own layer holds.
    #[serde(default)]
    pub usage: SnapshotUsage,
}
