//! The store: every file under the root except the database.
//!
//! ```text
//! <root>/                     0700, like every directory the store makes (see `root`)
//!   snapfs-store              the marker: this is a store, of this format (see `root`)
//!   objects/sha256/ab/<hex>   one read-only file per distinct content, named by its sha256
//!   layers/<diff-id hex>      per layer: entries, object digests, tar skeleton (see layer::LayerFile)
//!   index/<image-id hex>      the flattened index of one image (see index::format)
//!   tmp/                      staging on the same filesystem; leftovers are garbage
//!   gc.lock                   shared by every writer of objects, exclusive for `snap gc`
//!   containers/, snapshots/   made here (0700), filled by `container` and `snapshot`
//! ```
//!
//! [`Store::open`] makes the store if the root is missing or empty; [`Store::open_read_only`]
//! (for `images`, `ps`, `inspect`, `df`, `fsck`) creates nothing: a missing root is an empty
//! store ([`Access::Absent`]), and a store on a read-only filesystem is read without writing
//! a lock file ([`Access::ReadOnly`]).
//!
//! Objects and files are written once: to `tmp/`, then `rename`d into place. Nothing is
//! fsynced per file; [`Store::sync`] makes a whole batch durable with one `syncfs`, and the
//! caller records it in the database only after that (see `docs/crash-safety.md`).
//! The store keeps no reference counts: `snap gc` marks from the database and the layer files.

mod objects;
mod root;
mod sweep;

pub use objects::{ObjectListing, PutStats};
pub use root::{FORMAT, MARKER};
pub use sweep::SweepReport;

use crate::index::Index;
use crate::layer::LayerFile;
use crate::model::{Digest, ImageId, LayerId};
use crate::sys::{FileLock, LockWait, Mapped};
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Why a store operation failed. Each variant names the file or digest concerned.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("object {digest} is missing from the store")]
    MissingObject { digest: Digest },
    #[error("layer file for {layer} is corrupt")]
    CorruptLayer {
        layer: LayerId,
        #[source]
        source: crate::layer::LayerError,
    },
    #[error("index of image {image} is corrupt")]
    CorruptIndex {
        image: ImageId,
        #[source]
        source: crate::index::IndexError,
    },
    #[error("timed out after {seconds} s waiting for `snap gc` or imports to finish ({path})")]
    GcBusy { seconds: u64, path: PathBuf },
    #[error(
        "{root} is not a snapfs store (no {MARKER} marker) and is not empty; give --root (or \
         SNAPFS_ROOT) a store, or a missing or empty directory to make one in"
    )]
    NotAStore { root: PathBuf },
    #[error("{path} is not a snapfs store marker: {detail}")]
    BadMarker { path: PathBuf, detail: String },
    #[error(
        "{path}: the store has format {format}, made by a newer snapfs; this one reads format \
         {supported} and older"
    )]
    NewerFormat {
        path: PathBuf,
        format: u32,
        supported: u32,
    },
}

/// What this process may do with the files of its store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Read and write: a store opened to write, or opened to read and writable.
    ReadWrite,
    /// Read only: a store on a read-only filesystem (or one this user may not write). Its
    /// lock files are taken shared and read-only where they exist; nothing is written.
    ReadOnly,
    /// No store there (a missing or empty root opened to read): it holds nothing, and
    /// nothing is created.
    Absent,
}

pub(crate) fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The files under one root.
pub struct Store {
    root: PathBuf,
    access: Access,
    stats: PutStats,
    tmp_counter: AtomicU64,
}

/// Held by every process that writes objects not yet named by the database; `snap gc`
/// takes the same lock exclusively, so it never sweeps an object an import is about to name.
/// (`snap fsck` holds it too, so that nothing disappears while it checks.) None is needed for
/// a store that is not there, or a read-only one whose `gc.lock` was never made.
pub struct WriteGuard {
    _lock: Option<FileLock>,
}

/// Held by `snap gc` while it marks and sweeps: no [`WriteGuard`] exists meanwhile.
pub struct GcGuard {
    _lock: FileLock,
}

impl Store {
    /// Opens the store under `root` to write: makes it if `root` is missing or empty, adopts
    /// one made before the marker existed, refuses any other directory
    /// ([`StoreError::NotAStore`]). Gives the root and its directories mode 0700.
    pub fn open(root: &Path) -> Result<Self, StoreError> {
        let mut found = root::survey(root)?;
        if found == root::Found::Missing {
            root::make_root(root)?;
            found = root::survey(root)?;
        }
        match found {
            root::Found::Store => {}
            root::Found::Missing | root::Found::Empty | root::Found::Unmarked => root::mark(root)?,
        }
        root::secure(root)?;
        root::make_dirs(root)?;
        Ok(Self::with_access(root, Access::ReadWrite))
    }

    /// Opens the store under `root` to read, creating nothing: a missing or empty root is an
    /// empty store; a store this process may not write (a read-only filesystem), or an old
    /// store without its marker, is read without writing anything (the first command that
    /// writes adopts an old store). A writable marked store is opened as by [`Store::open`],
    /// but not made: its modes are fixed, its directories are not created.
    pub fn open_read_only(root: &Path) -> Result<Self, StoreError> {
        let access = match root::survey(root)? {
            root::Found::Missing | root::Found::Empty => Access::Absent,
            root::Found::Unmarked => Access::ReadOnly,
            _ if !root::writable(root) => Access::ReadOnly,
            root::Found::Store => {
                root::secure(root)?;
                Access::ReadWrite
            }
        };
        Ok(Self::with_access(root, access))
    }

    fn with_access(root: &Path, access: Access) -> Self {
        Store {
            root: root.to_path_buf(),
            access,
            stats: PutStats::default(),
            tmp_counter: AtomicU64::new(0),
        }
    }

    /// What this process may do with the store's files.
    pub fn access(&self) -> Access {
        self.access
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Counts of what `put` wrote and found already present since the store was opened.
    pub fn stats(&self) -> &PutStats {
        &self.stats
    }

    /// Blocks `snap gc` while the guard lives; waits (up to `timeout`) for a running gc.
    pub fn write_guard(&self, timeout: Duration) -> Result<WriteGuard, StoreError> {
        let lock = match self.access {
            Access::ReadWrite => Some(self.gc_lock(false, timeout)?),
            Access::ReadOnly => self.gc_lock_read_only(timeout)?,
            Access::Absent => None,
        };
        Ok(WriteGuard { _lock: lock })
    }

    /// Waits (up to `timeout`) until no process writes objects, and keeps it so: for `snap gc`.
    pub fn gc_guard(&self, timeout: Duration) -> Result<GcGuard, StoreError> {
        self.gc_lock(true, timeout)
            .map(|lock| GcGuard { _lock: lock })
    }

    fn gc_lock(&self, exclusive: bool, timeout: Duration) -> Result<FileLock, StoreError> {
        let path = self.root.join("gc.lock");
        // Writers hold this lock shared and write no pid, so none is named here.
        let on_wait = |_pid: Option<u32>| {
            let other = if exclusive { "imports" } else { "snap gc" };
            tracing::warn!("waiting for running {other} to finish");
        };
        let wait = LockWait {
            exclusive,
            timeout,
            on_wait: &on_wait,
        };
        FileLock::acquire(&path, &wait)
            .map_err(io_err(&path))?
            .ok_or_else(|| StoreError::GcBusy {
                seconds: timeout.as_secs(),
                path: path.clone(),
            })
    }

    /// The shared gc lock of a read-only store, taken without writing (none if the store has
    /// no `gc.lock`).
    fn gc_lock_read_only(&self, timeout: Duration) -> Result<Option<FileLock>, StoreError> {
        let path = self.root.join("gc.lock");
        let on_wait = |_pid: Option<u32>| tracing::warn!("waiting for running snap gc to finish");
        let wait = LockWait {
            exclusive: false,
            timeout,
            on_wait: &on_wait,
        };
        match FileLock::acquire_shared_read_only(&path, &wait) {
            Ok(Some(lock)) => Ok(Some(lock)),
            Ok(None) => Err(StoreError::GcBusy {
                seconds: timeout.as_secs(),
                path,
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_err(&path)(e)),
        }
    }

    pub fn tmp_dir(&self) -> PathBuf {
        self.root.join("tmp")
    }

    /// A fresh path under `tmp/`.
    pub fn tmp_path(&self, what: &str) -> PathBuf {
        let n = self.tmp_counter.fetch_add(1, Ordering::Relaxed);
        self.tmp_dir()
            .join(format!("{what}-{}-{n}", std::process::id()))
    }

    pub fn object_path(&self, digest: &Digest) -> PathBuf {
        let hex = digest.hex();
        self.root.join("objects/sha256").join(&hex[..2]).join(hex)
    }

    pub fn layer_path(&self, layer: &LayerId) -> PathBuf {
        self.root.join("layers").join(layer.0.hex())
    }

    pub fn index_path(&self, image: &ImageId) -> PathBuf {
        self.root.join("index").join(image.0.hex())
    }

    pub fn has_object(&self, digest: &Digest) -> bool {
        self.object_path(digest).exists()
    }

    pub fn open_object(&self, digest: &Digest) -> Result<File, StoreError> {
        File::open(self.object_path(digest)).map_err(|source| match source.kind() {
            std::io::ErrorKind::NotFound => StoreError::MissingObject { digest: *digest },
            _ => StoreError::Io {
                path: self.object_path(digest),
                source,
            },
        })
    }

    /// Reads a whole (small) object.
    pub fn read_object(&self, digest: &Digest) -> Result<Vec<u8>, StoreError> {
        let path = self.object_path(digest);
        fs::read(&path).map_err(|source| match source.kind() {
            std::io::ErrorKind::NotFound => StoreError::MissingObject { digest: *digest },
            _ => StoreError::Io { path, source },
        })
    }

    /// Whether `path` exists with `size` bytes. A file renamed into place but lost to a power
    /// failure before the batch's `syncfs` can come back short; such a file is written again
    /// rather than trusted.
    pub(crate) fn has_complete(&self, path: &Path, size: u64) -> bool {
        fs::metadata(path).is_ok_and(|m| m.len() == size)
    }

    /// Writes `bytes` to `path` atomically (tmp + rename), unless it is already there whole.
    /// Not durable until [`Store::sync`].
    fn write_once(&self, path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
        if self.has_complete(path, bytes.len() as u64) {
            return Ok(());
        }
        let tmp = self.tmp_path("file");
        let mut file = File::create(&tmp).map_err(io_err(&tmp))?;
        file.write_all(bytes).map_err(io_err(&tmp))?;
        drop(file);
        fs::rename(&tmp, path).map_err(io_err(path))
    }

    pub fn write_layer(&self, layer: &LayerId, file: &LayerFile) -> Result<(), StoreError> {
        let bytes = file.encode().map_err(|source| StoreError::CorruptLayer {
            layer: *layer,
            source,
        })?;
        self.write_once(&self.layer_path(layer), &bytes)
    }

    pub fn has_layer(&self, layer: &LayerId) -> bool {
        self.layer_path(layer).exists()
    }

    pub fn read_layer(&self, layer: &LayerId) -> Result<LayerFile, StoreError> {
        let path = self.layer_path(layer);
        let bytes = fs::read(&path).map_err(io_err(&path))?;
        LayerFile::decode(&bytes).map_err(|source| StoreError::CorruptLayer {
            layer: *layer,
            source,
        })
    }

    /// The object digests a layer references, without decoding its entries.
    pub fn layer_digests(&self, layer: &LayerId) -> Result<Vec<Digest>, StoreError> {
        let path = self.layer_path(layer);
        let bytes = fs::read(&path).map_err(io_err(&path))?;
        crate::layer::decode_digests(&bytes).map_err(|source| StoreError::CorruptLayer {
            layer: *layer,
            source,
        })
    }

    pub fn write_index(&self, image: &ImageId, bytes: &[u8]) -> Result<(), StoreError> {
        self.write_once(&self.index_path(image), bytes)
    }

    /// Maps the index of `image`.
    pub fn open_index(&self, image: &ImageId) -> Result<Index<Mapped>, StoreError> {
        let path = self.index_path(image);
        let file = File::open(&path).map_err(io_err(&path))?;
        let map = Mapped::map(&file).map_err(io_err(&path))?;
        Index::open(map).map_err(|source| StoreError::CorruptIndex {
            image: *image,
            source,
        })
    }

    /// Makes everything written so far durable: one `syncfs` of the store's filesystem.
    pub fn sync(&self) -> Result<(), StoreError> {
        let file = File::open(&self.root).map_err(io_err(&self.root))?;
        crate::sys::syncfs(&file).map_err(io_err(&self.root))
    }
}
