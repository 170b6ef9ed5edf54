//! The FUSE filesystem: one container's union view of its image (the flattened index over
//! the store's objects) and its upper directory.
//!
//! Lookup goes to the upper directory first (a whiteout hides the name, an opaque directory
//! hides the lower tree below it), then to the index. Reads of lower files are passed through
//! to the store object, reads and writes of upper files to the upper file (FUSE passthrough,
//! one `BackingId` per inode), so data never crosses the daemon. The first change to a lower
//! entry copies it up (parents first, metadata kept). The upper directory uses overlayfs's
//! format, so kernel overlayfs can mount it too.
//!
//! FUSE node ids (which fuser also reports as `st_ino`) are mapped once, here:
//! a lower-only entry, or a directory merged from upper and lower, gets its index inode number
//! (stable across mounts, below 2^32); an entry that lives in the upper directory gets
//! `UPPER_BIT | st_ino` of the upper file (stable too, and shared by upper hardlinks).
//! Nodes are looked up by path, so a node keeps working after copy-up or rename.

mod dispatch;
mod locks;
mod ops;
mod upper;

pub use dispatch::Mounted;
pub use ops::UnionFs;
pub use upper::Upper;

/// Why a filesystem operation failed; [`FsError::errno`] is what the kernel is told.
#[derive(Debug, thiserror::Error)]
pub enum FsError {
    #[error("{path}: {}", std::io::Error::from_raw_os_error(*errno))]
    Io { path: String, errno: i32 },
    #[error("{what}: {}", std::io::Error::from_raw_os_error(*errno))]
    Refused { what: String, errno: i32 },
    #[error("unknown inode {0}")]
    UnknownInode(u64),
    #[error("index inode {0} is corrupt")]
    CorruptIndex(u64),
    #[error("store: {0}")]
    Store(String),
}

impl FsError {
    pub fn errno(&self) -> i32 {
        match self {
            FsError::Io { errno, .. } | FsError::Refused { errno, .. } => *errno,
            FsError::UnknownInode(_) => libc::ESTALE,
            FsError::CorruptIndex(_) | FsError::Store(_) => libc::EIO,
        }
    }

    pub(crate) fn refused(what: impl Into<String>, errno: i32) -> Self {
        FsError::Refused {
            what: what.into(),
            errno,
        }
    }
}

/// Mounts `fs` at `mountpoint` as a container rootfs (`dev`, `suid`, `allow_other`,
/// `default_permissions`; read-only if asked), calls `on_mounted` once the mount exists, and
/// serves requests until it is unmounted.
pub fn serve(
    fs: Mounted,
    mountpoint: &std::path::Path,
    read_only: bool,
    on_mounted: impl FnOnce(),
) -> Result<(), FsError> {
    use fuser::MountOption;
    let mut config = fuser::Config::default();
    config.mount_options = vec![
        MountOption::FSName("snapfs".into()),
        MountOption::Subtype("snapfs".into()),
        MountOption::DefaultPermissions,
        MountOption::Dev,
        MountOption::Suid,
        if read_only {
            MountOption::RO
        } else {
            MountOption::RW
        },
    ];
    config.acl = fuser::SessionACL::All;
    config.n_threads = Some(
        std::thread::available_parallelism()
            .map_or(2, |n| n.get())
            .clamp(2, 8),
    );
    config.clone_fd = true;
    let fail = |e: std::io::Error| FsError::Io {
        path: mountpoint.display().to_string(),
        errno: e.raw_os_error().unwrap_or(libc::EIO),
    };
    let session = fuser::Session::new(fs, mountpoint, &config).map_err(fail)?;
    on_mounted();
    session.run().map_err(fail)
}
