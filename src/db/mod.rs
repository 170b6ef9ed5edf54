//! The metadata database: small records in sled, opened for one operation at a time.
//!
//! Trees (values are JSON, so dumps stay readable; tags hold the raw 32-byte id):
//!
//! ```text
//! images      image id (32 bytes)   → ImageRecord
//! layers      diff_id (32 bytes)    → LayerRecord
//! tags        name (utf-8)          → image id (32 bytes)
//! containers  name (utf-8)          → ContainerRecord
//! snapshots   containerd key (utf-8) → SnapshotRecord (only `snap snapshotter` writes these)
//! ```
//!
//! sled allows one open handle per database, so [`Db::open`] first takes the root's `lock`
//! file (waiting, and naming the holder's pid) and the handle lives only as long as one
//! command's operation. Every logical change is one sled transaction followed by `flush()`.
//! Per-file data never lives here: it is in the layer files the records name.
//!
//! sled cannot open a database read-only: a store on a read-only filesystem is read through a
//! private copy of its database ([`Db::open_copy`]), and a store that is not there through an
//! empty one ([`Db::open_empty`]); neither writes under the root.

mod copy;
mod records;

pub use records::{
    BlobRef, ContainerRecord, ImageLayer, ImageRecord, LayerRecord, SnapshotKind, SnapshotRecord,
    SnapshotUsage,
};

use crate::model::{ContainerName, Digest, ImageId, LayerId};
use crate::sys::{FileLock, LockWait};
use sled::Transactional;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Why a database operation failed.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("cannot open the database at {path}")]
    Open {
        path: PathBuf,
        #[source]
        source: sled::Error,
    },
    #[error("timed out after {seconds} s waiting for the store lock {path} (held by pid {holder})")]
    LockTimeout {
        path: PathBuf,
        seconds: u64,
        holder: String,
    },
    #[error("{path}")]
    Lock {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("copying the database of a read-only store to {path}")]
    Copy {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("database {tree} tree")]
    Sled {
        tree: &'static str,
        #[source]
        source: sled::Error,
    },
    #[error("database record {key} in {tree} is corrupt: {detail}")]
    Corrupt {
        tree: &'static str,
        key: String,
        detail: String,
    },
    #[error("no image named {0:?}")]
    NoSuchImage(String),
    #[error("{name:?} is ambiguous: it matches images {matches}")]
    Ambiguous { name: String, matches: String },
    #[error("image {image} is used by container(s) {containers}")]
    ImageInUse { image: String, containers: String },
    #[error("an image named {0:?} exists already")]
    NameTaken(String),
    #[error("snapshot {0:?} exists already")]
    SnapshotExists(String),
    #[error("no snapshot {0:?}")]
    NoSuchSnapshot(String),
}

/// An open database, holding the root's lock until dropped.
pub struct Db {
    images: sled::Tree,
    layers: sled::Tree,
    tags: sled::Tree,
    containers: sled::Tree,
    snapshots: sled::Tree,
    db: sled::Db,
    path: PathBuf,
    _lock: Option<FileLock>,
    /// The private copy this handle reads, removed when it is dropped (after `db`).
    _copy: Option<copy::TempDir>,
}

/// How long to wait for the root's lock before giving up.
pub const LOCK_TIMEOUT: Duration = Duration::from_secs(60);

fn sled_err(tree: &'static str) -> impl FnOnce(sled::Error) -> DbError {
    move |source| DbError::Sled { tree, source }
}

fn decode<T: serde::de::DeserializeOwned>(
    tree: &'static str,
    key: &[u8],
    value: &[u8],
) -> Result<T, DbError> {
    serde_json::from_slice(value).map_err(|e| DbError::Corrupt {
        tree,
        key: hex::encode(key),
        detail: e.to_string(),
    })
}

/// Every record of a tree.
fn all<T: serde::de::DeserializeOwned>(
    tree: &sled::Tree,
    name: &'static str,
) -> Result<Vec<T>, DbError> {
    tree.iter()
        .map(|kv| {
            let (k, v) = kv.map_err(sled_err(name))?;
            decode(name, &k, &v)
        })
        .collect()
}

/// The record under `key`, if any.
fn one<T: serde::de::DeserializeOwned>(
    tree: &sled::Tree,
    name: &'static str,
    key: &[u8],
) -> Result<Option<T>, DbError> {
    tree.get(key)
        .map_err(sled_err(name))?
        .map(|v| decode(name, key, &v))
        .transpose()
}

fn encode<T: serde::Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).unwrap_or_default()
}

impl Db {
    /// Takes the root's lock (calling `on_wait` with the holder's pid if it must wait) and
    /// opens the database under `root/db`. The root must exist (`Store::open` makes it).
    pub fn open(
        root: &Path,
        timeout: Duration,
        on_wait: &dyn Fn(Option<u32>),
    ) -> Result<Self, DbError> {
        let lock_path = root.join("lock");
        let wait = LockWait {
            exclusive: true,
            timeout,
            on_wait,
        };
        let lock = FileLock::acquire(&lock_path, &wait)
            .map_err(|source| DbError::Lock {
                path: lock_path.clone(),
                source,
            })?
            .ok_or_else(|| DbError::LockTimeout {
                path: lock_path.clone(),
                seconds: timeout.as_secs(),
                holder: FileLock::holder(&lock_path).map_or("unknown".into(), |p| p.to_string()),
            })?;
        Self::open_at(root.join("db"), Some(lock), None)
    }

    /// Opens a private copy of the database under `root/db`, for a store this process may
    /// not write. The copy is taken under a shared lock on the root's `lock` file, opened
    /// read-only (none if the store has no such file), so no writer is midway through a
    /// change meanwhile; writes to the handle go to the copy, which is removed when the
    /// handle is dropped.
    pub fn open_copy(
        root: &Path,
        timeout: Duration,
        on_wait: &dyn Fn(Option<u32>),
    ) -> Result<Self, DbError> {
        let source = root.join("db");
        if !source.exists() {
            return Self::open_empty();
        }
        let lock_path = root.join("lock");
        let wait = LockWait {
            exclusive: false,
            timeout,
            on_wait,
        };
        let lock = match FileLock::acquire_shared_read_only(&lock_path, &wait) {
            Ok(Some(lock)) => Some(lock),
            Ok(None) => {
                return Err(DbError::LockTimeout {
                    path: lock_path.clone(),
                    seconds: timeout.as_secs(),
                    holder: FileLock::holder(&lock_path)
                        .map_or("unknown".into(), |p| p.to_string()),
                });
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(source) => {
                return Err(DbError::Lock {
                    path: lock_path,
                    source,
                });
            }
        };
        let copy = copy::TempDir::new().map_err(|source| DbError::Copy {
            path: std::env::temp_dir(),
            source,
        })?;
        let path = copy.path().join("db");
        copy::copy_tree(&source, &path).map_err(|source| DbError::Copy {
            path: path.clone(),
            source,
        })?;
        Self::open_at(path, lock, Some(copy))
    }

    /// An empty database of no store, in a temporary directory: what a store that is not
    /// there holds.
    pub fn open_empty() -> Result<Self, DbError> {
        let copy = copy::TempDir::new().map_err(|source| DbError::Copy {
            path: std::env::temp_dir(),
            source,
        })?;
        Self::open_at(copy.path().join("db"), None, Some(copy))
    }

    fn open_at(
        path: PathBuf,
        lock: Option<FileLock>,
        copy: Option<copy::TempDir>,
    ) -> Result<Self, DbError> {
        let db = sled::Config::new()
            .path(&path)
            .mode(sled::Mode::LowSpace)
            .open()
            .map_err(|source| DbError::Open {
                path: path.clone(),
                source,
            })?;
        let tree = |name: &'static str| db.open_tree(name).map_err(sled_err(name));
        Ok(Db {
            images: tree("images")?,
            layers: tree("layers")?,
            tags: tree("tags")?,
            containers: tree("containers")?,
            snapshots: tree("snapshots")?,
            db,
            path,
            _lock: lock,
            _copy: copy,
        })
    }

    /// Makes the last transaction durable: sled's `flush()` ends in `sync_file_range`, which
    /// does not sync metadata, so a `syncfs` of the database's filesystem follows it.
    fn flush(&self) -> Result<(), DbError> {
        self.db.flush().map_err(sled_err("flush"))?;
        let fail = |source| DbError::Lock {
            path: self.path.clone(),
            source,
        };
        let dir = std::fs::File::open(&self.path).map_err(fail)?;
        crate::sys::syncfs(&dir).map_err(fail)
    }

    pub fn images(&self) -> Result<Vec<ImageRecord>, DbError> {
        all(&self.images, "images")
    }

    pub fn image(&self, id: &ImageId) -> Result<Option<ImageRecord>, DbError> {
        one(&self.images, "images", id.0.as_bytes())
    }

    pub fn layers(&self) -> Result<Vec<LayerRecord>, DbError> {
        all(&self.layers, "layers")
    }

    pub fn layer(&self, id: &LayerId) -> Result<Option<LayerRecord>, DbError> {
        one(&self.layers, "layers", id.0.as_bytes())
    }

    /// Every (name, image id) pair, sorted by name.
    pub fn tags(&self) -> Result<Vec<(String, ImageId)>, DbError> {
        self.tags
            .iter()
            .map(|kv| {
                let (k, v) = kv.map_err(sled_err("tags"))?;
                let name = String::from_utf8_lossy(&k).into_owned();
                let id: [u8; 32] = v.as_ref().try_into().map_err(|_| DbError::Corrupt {
                    tree: "tags",
                    key: name.clone(),
                    detail: "value is not a 32-byte image id".into(),
                })?;
                Ok((name, ImageId(Digest::from_bytes(id))))
            })
            .collect()
    }

    pub fn containers(&self) -> Result<Vec<ContainerRecord>, DbError> {
        all(&self.containers, "containers")
    }

    /// Finds an image by name, full id (`sha256:…` or hex) or unique id prefix.
    pub fn resolve(&self, name: &str) -> Result<ImageRecord, DbError> {
        if let Some(id) = self.tags.get(name.as_bytes()).map_err(sled_err("tags"))? {
            let id: [u8; 32] = id.as_ref().try_into().map_err(|_| DbError::Corrupt {
                tree: "tags",
                key: name.to_string(),
                detail: "value is not a 32-byte image id".into(),
            })?;
            return self
                .image(&ImageId(Digest::from_bytes(id)))?
                .ok_or_else(|| DbError::NoSuchImage(name.to_string()));
        }
        let prefix = name.strip_prefix("sha256:").unwrap_or(name);
        if prefix.len() < 4 || !prefix.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(DbError::NoSuchImage(name.to_string()));
        }
        let matches: Vec<ImageRecord> = self
            .images()?
            .into_iter()
            .filter(|i| i.id.0.hex().starts_with(prefix))
            .collect();
        match matches.len() {
            0 => Err(DbError::NoSuchImage(name.to_string())),
            1 => Ok(matches
                .into_iter()
                .next()
                .ok_or_else(|| DbError::NoSuchImage(name.to_string()))?),
            _ => Err(DbError::Ambiguous {
                name: name.to_string(),
                matches: matches
                    .iter()
                    .map(|i| i.id.0.short())
                    .collect::<Vec<_>>()
                    .join(", "),
            }),
        }
    }

    pub fn container(&self, name: &ContainerName) -> Result<Option<ContainerRecord>, DbError> {
        one(&self.containers, "containers", name.as_str().as_bytes())
    }

    /// Records a new container; its directories must already exist.
    pub fn add_container(&self, record: &ContainerRecord) -> Result<(), DbError> {
        self.containers
            .insert(record.name.as_str().as_bytes(), encode(record))
            .map_err(sled_err("containers"))?;
        self.flush()
    }

    pub fn remove_container(&self, name: &ContainerName) -> Result<(), DbError> {
        self.containers
            .remove(name.as_str().as_bytes())
            .map_err(sled_err("containers"))?;
        self.flush()
    }

    /// Records an imported image, its new layers and its name, in one transaction, then flushes.
    /// The objects, layer files and index it names must already be durable. With `exclusive`,
    /// a name that already names an image fails with [`DbError::NameTaken`] and changes nothing.
    pub fn add_image(
        &self,
        image: &ImageRecord,
        layers: &[LayerRecord],
        name: Option<&str>,
        exclusive: bool,
    ) -> Result<(), DbError> {
        (&self.images, &self.layers, &self.tags)
            .transaction(|(images, layer_tree, tags)| {
                if exclusive
                    && let Some(name) = name
                    && tags.get(name.as_bytes())?.is_some()
                {
                    return Err(sled::transaction::ConflictableTransactionError::Abort(
                        name.to_string(),
                    ));
                }
                for layer in layers {
                    layer_tree.insert(layer.id.0.as_bytes(), encode(layer))?;
                }
                // Importing an image again (from another source) keeps what the first import
                // knew and fills in what it lacked, such as blob digests.
                let mut merged = image.clone();
                if let Some(old) = images.get(image.id.0.as_bytes())?
                    && let Ok(old) = serde_json::from_slice::<ImageRecord>(&old)
                {
                    for (layer, old_layer) in merged.layers.iter_mut().zip(old.layers) {
                        if old_layer.blob.is_some() {
                            layer.blob = old_layer.blob;
                        }
                    }
                    merged.imported = old.imported;
                    merged.source = old.source;
                }
                images.insert(image.id.0.as_bytes(), encode(&merged))?;
                if let Some(name) = name {
                    tags.insert(name.as_bytes(), image.id.0.as_bytes())?;
                }
                Ok(())
            })
            .map_err(|e: sled::transaction::TransactionError<String>| match e {
                sled::transaction::TransactionError::Storage(source) => DbError::Sled {
                    tree: "images",
                    source,
                },
                sled::transaction::TransactionError::Abort(name) => DbError::NameTaken(name),
            })?;
        self.flush()
    }

    /// Removes `names` (tags); removes the image itself too when `remove_image`, and then
    /// every layer record no other image uses. One transaction.
    pub fn remove_image(
        &self,
        image: &ImageId,
        names: &[String],
        remove_image: bool,
    ) -> Result<(), DbError> {
        let mut dead_layers = Vec::new();
        if remove_image {
            let users: Vec<_> = self
                .containers()?
                .into_iter()
                .filter(|c| c.image == *image)
                .map(|c| c.name.to_string())
                .collect();
            if !users.is_empty() {
                return Err(DbError::ImageInUse {
                    image: image.0.short(),
                    containers: users.join(", "),
                });
            }
            let others = self.images()?;
            let record = self
                .image(image)?
                .ok_or_else(|| DbError::NoSuchImage(image.to_string()))?;
            for layer in &record.layers {
                let shared = others
                    .iter()
                    .any(|o| o.id != *image && o.layers.iter().any(|l| l.diff_id == layer.diff_id));
                if !shared && !dead_layers.contains(&layer.diff_id) {
                    dead_layers.push(layer.diff_id);
                }
            }
        }
        (&self.images, &self.layers, &self.tags)
            .transaction(|(images, layers, tags)| {
                for name in names {
                    tags.remove(name.as_bytes())?;
                }
                if remove_image {
                    images.remove(image.0.as_bytes())?;
                    for layer in &dead_layers {
                        layers.remove(layer.0.as_bytes())?;
                    }
                }
                Ok(())
            })
            .map_err(|e: sled::transaction::TransactionError<()>| match e {
                sled::transaction::TransactionError::Storage(source) => DbError::Sled {
                    tree: "images",
                    source,
                },
                sled::transaction::TransactionError::Abort(()) => DbError::Corrupt {
                    tree: "images",
                    key: image.to_string(),
                    detail: "transaction aborted".into(),
                },
            })?;
        self.flush()
    }

    pub fn snapshots(&self) -> Result<Vec<SnapshotRecord>, DbError> {
        all(&self.snapshots, "snapshots")
    }

    pub fn snapshot(&self, key: &str) -> Result<Option<SnapshotRecord>, DbError> {
        one(&self.snapshots, "snapshots", key.as_bytes())
    }

    /// A number no other snapshot directory has (sled's monotonic id generator).
    pub fn new_snapshot_dir(&self) -> Result<u64, DbError> {
        self.db.generate_id().map_err(sled_err("snapshots"))
    }

    /// Records snapshot `record` in place of `replaces` (a commit: the active key goes, the
    /// committed name comes), in one transaction. Fails with [`DbError::SnapshotExists`] if
    /// `record.key` is taken and with [`DbError::NoSuchSnapshot`] if `replaces` or the
    /// record's parent is gone.
    pub fn put_snapshot(
        &self,
        record: &SnapshotRecord,
        replaces: Option<&str>,
    ) -> Result<(), DbError> {
        use sled::transaction::{ConflictableTransactionError::Abort, TransactionError};
        self.snapshots
            .transaction(|tree| {
                if tree.get(record.key.as_bytes())?.is_some() {
                    return Err(Abort(DbError::SnapshotExists(record.key.clone())));
                }
                if let Some(old) = replaces
                    && tree.remove(old.as_bytes())?.is_none()
                {
                    return Err(Abort(DbError::NoSuchSnapshot(old.to_string())));
                }
                // The parent may have been removed since the caller looked at it.
                if let Some(parent) = &record.parent
                    && tree.get(parent.as_bytes())?.is_none()
                {
                    return Err(Abort(DbError::NoSuchSnapshot(parent.clone())));
                }
                tree.insert(record.key.as_bytes(), encode(record))?;
                Ok(())
            })
            .map_err(|e: TransactionError<DbError>| match e {
                TransactionError::Storage(source) => DbError::Sled {
                    tree: "snapshots",
                    source,
                },
                TransactionError::Abort(e) => e,
            })?;
        self.flush()
    }

    /// Replaces the record of an existing snapshot (labels, times).
    pub fn update_snapshot(&self, record: &SnapshotRecord) -> Result<(), DbError> {
        self.snapshots
            .insert(record.key.as_bytes(), encode(record))
            .map_err(sled_err("snapshots"))?;
        self.flush()
    }

    pub fn remove_snapshot(&self, key: &str) -> Result<(), DbError> {
        self.snapshots
            .remove(key.as_bytes())
            .map_err(sled_err("snapshots"))?
            .ok_or_else(|| DbError::NoSuchSnapshot(key.to_string()))?;
        self.flush()
    }
}
