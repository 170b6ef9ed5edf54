//! Layers: OCI layer tars to entries and back.
//!
//! A layer tar is parsed once, at import, into three things kept in one immutable file per
//! layer ([`LayerFile`]): the entries (paths, kinds, metadata, content digests), the sorted set
//! of content digests it references, and a tar skeleton — the original tar with every file body
//! replaced by a reference to its store object — so that an unchanged layer re-exports byte for
//! byte. File bodies go to an [`ObjectSink`] (the store, or a `Vec` in tests); this module opens
//! no path.
//!
//! Path safety is enforced here: `..`, absolute paths and hardlinks to anything but an earlier
//! regular file of the same layer are refused. Paths through symlinks are refused by the index,
//! which sees every layer. So are entries that cannot exist on a filesystem, and overlayfs's
//! private xattrs are stripped (see [`parse_layer`]).

mod file;
pub mod overlay;
mod parse;
mod skeleton;

pub use file::{LayerFile, decode_digests};
pub use parse::{
    KEPT_BYTES_FREE, KEPT_BYTES_PER_ENTRY, MAX_KEPT_BYTES, ParsedLayer, TarDigest, parse_layer,
    parse_layer_with,
};
pub use skeleton::{Segment, Skeleton};

use crate::model::{Digest, EntryPath, PathError};
use std::io::Read;

/// Where file bodies go while a layer is parsed. The store implements it; tests use memory.
pub trait ObjectSink: Sync {
    /// Stores `size` bytes read from `body` and returns their sha256.
    fn put(&self, body: &mut dyn Read, size: u64) -> Result<Digest, std::io::Error>;
}

/// Where in a tar something went wrong: after the entry it names, or at its start.
fn after_entry(after: &Option<String>) -> String {
    match after {
        Some(entry) => format!("after entry {entry:?}"),
        None => "in its first entry".to_string(),
    }
}

/// Why a layer tar or a layer file was refused.
#[derive(Debug, thiserror::Error)]
pub enum LayerError {
    #[error("corrupt or truncated layer tar {}: {source}", after_entry(after))]
    Tar {
        after: Option<String>,
        #[source]
        source: std::io::Error,
    },
    #[error("entry {path:?}: {source}")]
    BadPath {
        path: String,
        #[source]
        source: PathError,
    },
    #[error(
        "entry {path}: hardlink target {target:?} is not an earlier regular file of this layer"
    )]
    BadHardlink { path: EntryPath, target: String },
    #[error("entry {path:?}: unsupported tar entry type {kind:?}")]
    UnsupportedType { path: String, kind: char },
    #[error(
        "entry {path:?}: sparse files ({format}) are not supported; write the tar without --sparse"
    )]
    Sparse { path: String, format: String },
    #[error(
        "entry {path:?}: a {kind} entry with a body of {size} bytes; only regular files have bodies"
    )]
    UnkeptBody {
        path: String,
        kind: &'static str,
        size: u64,
    },
    #[error(
        "entry {path:?}: a .wh. name is a whiteout or an opaque marker, which holds no entries and is no directory"
    )]
    InsideWhiteout { path: String },
    #[error("entry {path:?}: a whiteout must hide a name, not {hidden:?}")]
    BadWhiteout { path: String, hidden: String },
    #[error(
        "entry {path}: a {was} earlier in this layer and a {now} here; within one layer a path is a directory or not"
    )]
    KindChanged {
        path: EntryPath,
        was: &'static str,
        now: &'static str,
    },
    #[error(
        "more than {limit} bytes of tar headers and extension records {} (only file bodies may be larger)",
        after_entry(after)
    )]
    TooMuchMetadata { after: Option<String>, limit: u64 },
    #[error("more than {limit} bytes of data after the tar's end-of-archive marker")]
    TrailingData { limit: u64 },
    #[error(
        "{kept} bytes of tar headers and extension records for {entries} entries: more than {} and {} an entry",
        crate::layer::KEPT_BYTES_FREE,
        crate::layer::KEPT_BYTES_PER_ENTRY
    )]
    MetadataOutgrowsEntries { entries: u64, kept: u64 },
    #[error("entry {path}: body is truncated: expected {expected} bytes, got {got}")]
    TruncatedBody {
        path: EntryPath,
        expected: u64,
        got: u64,
    },
    #[error("entry {path:?}: invalid {field} in the tar header: {detail}")]
    BadHeader {
        path: String,
        field: &'static str,
        detail: String,
    },
    #[error("entry {path}: storing the body failed: {source}")]
    Sink {
        path: EntryPath,
        #[source]
        source: std::io::Error,
    },
    #[error("layer file is corrupt: {0}")]
    CorruptFile(String),
    #[error("rebuilding the layer tar failed at object {digest}: {source}")]
    Reassemble {
        digest: Digest,
        #[source]
        source: std::io::Error,
    },
    #[error("writing the layer tar failed: {0}")]
    Write(#[source] std::io::Error),
}
