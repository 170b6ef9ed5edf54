//! containerd's snapshots over the store: what `snap snapshotter` serves as a proxy plugin.
//!
//! ```text
//! <root>/snapshots/<n>/upper        an active (or pending) snapshot's changes (overlayfs's format)
//! <root>/snapshots/<n>/work         scratch for atomic copy-up (or for overlay, when unpacking)
//! <root>/snapshots/<n>/mnt          the FUSE mount of an active or view snapshot
//! <root>/snapshots/<n>/parent/      when unpacking on a parent: a read-only view of it
//! ```
//!
//! A committed snapshot is a layer in the store and its record names its whole layer stack,
//! whose flattened index is kept like an image's ([`crate::image::stack_id`]). An active
//! snapshot that a container runs on is a FUSE mount of that stack's index and its own upper
//! (the same daemon as `snap mount`), returned to containerd as a bind mount; a view is the
//! same, read-only. An active snapshot that containerd unpacks a layer into gets plain mounts
//! instead (a bind of the empty upper, or one overlay on a view of the parent), so
//! containerd's applier writes at native speed; after `Commit` a background ingester stores
//! the upper as a layer, deduplicated against the whole store (`ingest`).
//!
//! The records live in the database's `snapshots` tree, which nothing else lists: images and
//! containers made with the CLI never appear to containerd, so its garbage collector cannot
//! remove them, and no key containerd sends can name them.

mod dirs;
mod filter;
mod grpc;
mod ingest;
mod mounts;
mod queue;
mod service;
mod shared_db;
mod state;

pub use filter::{FilterError, Filters};
pub use grpc::serve;
pub use mounts::MountSpec;
pub use state::Snapshots;

use crate::container::ContainerError;
use crate::db::DbError;
use crate::image::ImageError;
use std::path::PathBuf;

/// Why a snapshot operation failed; [`SnapshotError::code`] is what containerd is told.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("snapshot {0:?} does not exist")]
    NotFound(String),
    #[error("snapshot {0:?} already exists")]
    AlreadyExists(String),
    #[error("{0}")]
    FailedPrecondition(String),
    #[error("{0}")]
    InvalidArgument(String),
    #[error("snapshot {key:?} could not be stored as a layer: {reason}")]
    NotStored { key: String, reason: String },
    #[error(transparent)]
    Filter(#[from] FilterError),
    #[error("{path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Db(Box<DbError>),
    #[error(transparent)]
    Image(Box<ImageError>),
    #[error(transparent)]
    Container(Box<ContainerError>),
    #[error(transparent)]
    Store(Box<crate::store::StoreError>),
}

impl From<ImageError> for SnapshotError {
    fn from(e: ImageError) -> Self {
        SnapshotError::Image(Box::new(e))
    }
}

impl From<ContainerError> for SnapshotError {
    fn from(e: ContainerError) -> Self {
        SnapshotError::Container(Box::new(e))
    }
}

impl From<crate::store::StoreError> for SnapshotError {
    fn from(e: crate::store::StoreError) -> Self {
        SnapshotError::Store(Box::new(e))
    }
}

impl From<DbError> for SnapshotError {
    fn from(e: DbError) -> Self {
        match e {
            DbError::SnapshotExists(key) => SnapshotError::AlreadyExists(key),
            DbError::NoSuchSnapshot(key) => SnapshotError::NotFound(key),
            e => SnapshotError::Db(Box::new(e)),
        }
    }
}

/// The gRPC status codes containerd maps to its errors (errdefs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    NotFound,
    AlreadyExists,
    FailedPrecondition,
    InvalidArgument,
    Internal,
}

impl SnapshotError {
    pub fn code(&self) -> ErrorCode {
        match self {
            SnapshotError::NotFound(_) => ErrorCode::NotFound,
            SnapshotError::AlreadyExists(_) => ErrorCode::AlreadyExists,
            SnapshotError::FailedPrecondition(_) => ErrorCode::FailedPrecondition,
            SnapshotError::InvalidArgument(_) | SnapshotError::Filter(_) => {
                ErrorCode::InvalidArgument
            }
            _ => ErrorCode::Internal,
        }
    }
}

pub(crate) fn io_err(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> SnapshotError + '_ {
    move |source| SnapshotError::Io {
        path: path.to_path_buf(),
        source,
    }
}
