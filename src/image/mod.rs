//! Images: import from OCI layouts and archives, docker archives and rootfs trees; listing,
//! inspection, removal, garbage collection, usage and consistency checks.
//!
//! Every operation here follows one order: contents (objects, layer files, index) are
//! written and made durable first, the database records naming them last, in one
//! transaction. A failure or a kill at any point leaves at worst unreferenced files, which
//! `gc` removes, never a record naming a missing file.

mod archive;
mod change;
mod commit;
mod config;
mod docker;
mod export;
mod finish;
mod fsck;
mod gc;
mod gzip;
mod hashing;
mod import;
mod inspect;
mod json;
mod layout;
mod lowerdirs;
mod progress;
mod remove;
mod rootfs;
mod spec;
mod stack;
mod stored;
mod tree_tar;
mod usage;

pub use commit::{CommitOptions, CommitReport, commit};
pub use export::{ExportFormat, ExportOptions, ExportReport, LayerCompression, export};
pub use finish::ImportReport;
pub use fsck::{FsckReport, Problem, fsck};
pub use gc::gc;
pub use import::{ImportOptions, import};
pub use inspect::{Inspection, inspect, list};
pub use lowerdirs::lowerdirs;
pub use progress::{Progress, Silent};
pub use remove::{RemoveReport, remove};
pub use stack::{Handover, ensure_stack_index, stack_id, store_upper_on_stack};
pub use usage::{ImageUsage, Usage, usage};

use crate::db::{Db, DbError};
use crate::model::{Digest, LayerId};
use crate::store::{Access, Store, StoreError};
use std::path::{Path, PathBuf};

/// Why an image operation failed. Each variant names the file, blob or layer concerned.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("{path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "{path}: not an OCI layout, OCI archive, docker archive, rootfs directory or rootfs tar"
    )]
    UnknownSource { path: PathBuf },
    #[error("{what}: invalid JSON: {detail}")]
    Json { what: String, detail: String },
    #[error("{field}: {problem}")]
    BadDigest {
        field: String,
        problem: crate::model::DigestError,
    },
    #[error("{source_name} holds several images; pick one with --tag: {tags}")]
    SeveralImages { source_name: String, tags: String },
    #[error("{source_name} has no image tagged {tag:?}; it has: {tags}")]
    NoSuchTag {
        source_name: String,
        tag: String,
        tags: String,
    },
    #[error("{source_name} has no image for platform {wanted}; it has: {available}")]
    NoPlatform {
        source_name: String,
        wanted: String,
        available: String,
    },
    #[error("{source_name} holds no image")]
    Empty { source_name: String },
    #[error("blob {what} is missing from {source_name}")]
    MissingBlob { source_name: String, what: String },
    #[error("{what}: digest mismatch: expected {expected}, got {actual}")]
    DigestMismatch {
        what: String,
        expected: Digest,
        actual: Digest,
    },
    #[error("{what}: size mismatch: the descriptor says {expected} bytes, the blob has {actual}")]
    SizeMismatch {
        what: String,
        expected: u64,
        actual: u64,
    },
    #[error("{what}: nested indexes are not supported deeper than {depth} levels")]
    NestedTooDeep { what: String, depth: usize },
    #[error("{path}: malformed tar: {detail}")]
    MalformedTar { path: PathBuf, detail: String },
    #[error(
        "layer {index} ({blob}): diff_id mismatch: the config says {expected}, the uncompressed tar is {actual}"
    )]
    DiffIdMismatch {
        index: usize,
        blob: String,
        expected: LayerId,
        actual: LayerId,
    },
    #[error("{what}: the manifest lists {layers} layers but the config lists {diff_ids} diff_ids")]
    LayerCount {
        what: String,
        layers: usize,
        diff_ids: usize,
    },
    #[error("{what}: unknown media type {media_type:?}")]
    UnknownMediaType { what: String, media_type: String },
    #[error("layer {index} ({blob})")]
    Layer {
        index: usize,
        blob: String,
        #[source]
        source: crate::layer::LayerError,
    },
    #[error("layer {index} ({blob}): decompression failed")]
    Decompress {
        index: usize,
        blob: String,
        #[source]
        source: std::io::Error,
    },
    #[error("building the index")]
    Index(#[source] crate::index::IndexError),
    #[error("an image named {0:?} exists already; pick another name or `snap rmi` it first")]
    NameTaken(String),
    #[error(
        "{path:?}: a file named .wh.* cannot be written into an OCI layer (readers take it for a whiteout); rename or remove it"
    )]
    WhiteoutName { path: PathBuf },
    #[error("invalid change {change:?}: {reason}")]
    BadChange { change: String, reason: String },
    #[error("invalid image name {name:?}: {reason}")]
    BadName { name: String, reason: &'static str },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Db(#[from] DbError),
}

/// A file under tmp/ removed when dropped.
pub(crate) struct TempFile(pub PathBuf);

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

pub(crate) fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> ImageError + '_ {
    move |source| ImageError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Opens the database under the store's root, telling `progress` when it must wait.
pub(crate) fn open_db(store: &Store, progress: &dyn Progress) -> Result<Db, ImageError> {
    let on_wait = |pid: Option<u32>| {
        progress.message(&format!(
            "waiting for the store lock held by pid {}",
            pid.map_or("?".into(), |p| p.to_string())
        ))
    };
    Ok(open_store_db(store, &on_wait)?)
}

/// Opens the database of `store` as its [`Access`] allows: in place, as a private copy (a
/// read-only store), or empty (no store there). `on_wait` hears the lock holder's pid.
pub(crate) fn open_store_db(store: &Store, on_wait: &dyn Fn(Option<u32>)) -> Result<Db, DbError> {
    let timeout = crate::db::LOCK_TIMEOUT;
    match store.access() {
        Access::ReadWrite => Db::open(store.root(), timeout, on_wait),
        Access::ReadOnly => Db::open_copy(store.root(), timeout, on_wait),
        Access::Absent => Db::open_empty(),
    }
}

/// Checks an image name: what `snap images` shows and `snap inspect` takes.
pub fn check_name(name: &str) -> Result<(), ImageError> {
    let bad = |reason| {
        Err(ImageError::BadName {
            name: name.to_string(),
            reason,
        })
    };
    if name.is_empty() {
        return bad("it is empty");
    }
    if name.len() > 255 {
        return bad("it is longer than 255 bytes");
    }
    if name.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return bad("it contains whitespace or control characters");
    }
    if name.starts_with("sha256:") {
        return bad("it looks like an image id");
    }
    Ok(())
}
