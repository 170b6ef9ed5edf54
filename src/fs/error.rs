//! Why a filesystem operation failed. Each variant keeps its cause; [`FsError::errno`] is
//! what the kernel is told, once, at the FUSE edge (`dispatch.rs`).

use super::id::NodeId;
use crate::index::IndexError;
use crate::model::Ino;

#[derive(Debug, thiserror::Error)]
pub enum FsError {
    /// A system call on an upper or work path (or a file opened from one) failed.
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// The union's rules refuse the operation (`EEXIST`, `ENOTEMPTY`, `EISDIR`, `EPERM`...).
    #[error("{what}: {}", std::io::Error::from_raw_os_error(*errno))]
    Refused { what: String, errno: i32 },
    /// No entry of that name in the union.
    #[error("{path}: no such entry")]
    NotFound { path: String },
    /// A node the kernel holds whose every name was unlinked or replaced.
    #[error("node {0} has no name left (unlinked)")]
    Unlinked(NodeId),
    /// The kernel must look the name up again (`ESTALE`): the node was copied up while open
    /// on its lower object, or its names are gone and nothing of it was kept.
    #[error("node {id} is stale: {why}")]
    Stale { id: NodeId, why: &'static str },
    /// A node id the kernel was never given, or has forgotten.
    #[error("unknown node {0}")]
    UnknownNode(NodeId),
    /// A file handle that is not open (or not open for writing).
    #[error("file handle {0} is not open for this")]
    BadHandle(u64),
    #[error("index inode {ino} is corrupt")]
    CorruptIndex {
        ino: Ino,
        #[source]
        source: Option<IndexError>,
    },
    #[error("store: {0}")]
    Store(#[from] crate::store::StoreError),
}

impl FsError {
    pub fn errno(&self) -> i32 {
        match self {
            FsError::Io { source, .. } => source.raw_os_error().unwrap_or(libc::EIO),
            FsError::Refused { errno, .. } => *errno,
            FsError::NotFound { .. } | FsError::Unlinked(_) => libc::ENOENT,
            FsError::Stale { .. } | FsError::UnknownNode(_) => libc::ESTALE,
            FsError::BadHandle(_) => libc::EBADF,
            FsError::CorruptIndex { .. } | FsError::Store(_) => libc::EIO,
        }
    }

    pub(crate) fn refused(what: impl Into<String>, errno: i32) -> Self {
        FsError::Refused {
            what: what.into(),
            errno,
        }
    }

    /// The union refuses `path` with `errno`.
    pub(crate) fn refused_at(path: &[u8], errno: i32) -> Self {
        Self::refused(String::from_utf8_lossy(path), errno)
    }

    pub(crate) fn not_found(path: &[u8]) -> Self {
        FsError::NotFound {
            path: String::from_utf8_lossy(path).into_owned(),
        }
    }

    /// A failed system call on `path`.
    pub(crate) fn io(path: &[u8], source: impl Into<std::io::Error>) -> Self {
        FsError::Io {
            path: String::from_utf8_lossy(path).into_owned(),
            source: source.into(),
        }
    }

    pub(crate) fn corrupt(ino: Ino, source: Option<IndexError>) -> Self {
        FsError::CorruptIndex { ino, source }
    }
}
