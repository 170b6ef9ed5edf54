//! Containers: an image plus its own upper directory, and the FUSE daemon that mounts them.
//!
//! ```text
//! <root>/containers/<name>/upper       the container's changes, in overlayfs's format
//! <root>/containers/<name>/work        scratch on the same filesystem, for atomic copy-up
//! <root>/containers/<name>/mount.json  {pid, mountpoint} while a daemon serves it
//! <root>/containers/<name>/daemon.log  the daemon's log
//! <root>/containers/<name>/control.sock  the daemon's control socket (freeze for commit)
//! ```
//!
//! The record (name → image) is in the database; the mount state is a file beside the upper
//! directory, so that daemons never touch the database after they start.

mod commit;
mod control;
mod create;
mod mount;
mod remove;
mod status;

pub use commit::commit;
pub use control::{Frozen, freeze};
pub use create::create;
pub use mount::{
    Daemon, MountState, daemon_at, detached, live_state_at, mount, serve, serve_dir, spawn, stop,
    stop_unless_busy, umount,
};
pub use remove::remove;
pub use status::{ContainerStatus, list};

use crate::db::DbError;
use crate::model::ContainerName;
use crate::store::Store;
use std::path::{Path, PathBuf};

/// Why a container operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ContainerError {
    #[error(transparent)]
    BadName(#[from] crate::model::NameError),
    #[error("container {0:?} already exists")]
    Exists(String),
    #[error("no container named {0:?}")]
    NoSuchContainer(String),
    #[error(
        "container {name} is mounted at {mountpoint} (daemon pid {pid}); unmount it first or use --force"
    )]
    Mounted {
        name: String,
        mountpoint: PathBuf,
        pid: u32,
    },
    #[error("container {0} is not mounted")]
    NotMounted(String),
    #[error("the daemon for {name} did not mount {mountpoint}: {detail}")]
    MountFailed {
        name: String,
        mountpoint: PathBuf,
        detail: String,
    },
    #[error(
        "{mountpoint} is already a mount point ({fs_type} {source_name}): unmount it first, or mount on another directory"
    )]
    MountPointTaken {
        mountpoint: PathBuf,
        fs_type: String,
        source_name: String,
    },
    #[error("{mountpoint} is not a directory: a container is mounted on a directory")]
    MountPointNotDirectory { mountpoint: PathBuf },
    #[error(
        "{mountpoint} is busy: {why}; stop what uses it, or detach it with `snap umount --lazy {name}` (its daemon then exits once nothing uses it)"
    )]
    Busy {
        name: String,
        mountpoint: PathBuf,
        why: String,
    },
    #[error(
        "{name} is unmounted here, but its daemon (pid {pid}) still serves a mount of it elsewhere (a container's rootfs?): stop what uses it first"
    )]
    Detached { name: String, pid: u32 },
    #[error("{mountpoint} is unmounted, but daemon pid {pid} has not exited after {seconds} s")]
    DaemonLingers {
        mountpoint: PathBuf,
        pid: u32,
        seconds: u64,
    },
    #[error("{path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Db(#[from] DbError),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error(transparent)]
    Fs(#[from] crate::fs::FsError),
    #[error(transparent)]
    Image(#[from] crate::image::ImageError),
}

pub(crate) fn io_err(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> ContainerError + '_ {
    move |source| ContainerError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The control socket of container `name`'s daemon.
pub fn control_path(store: &Store, name: &ContainerName) -> PathBuf {
    dir(store, name).join("control.sock")
}

/// The directory of container `name`.
pub fn dir(store: &Store, name: &ContainerName) -> PathBuf {
    store.root().join("containers").join(name.as_str())
}

/// The file in a container's directory naming its image (written once its record exists,
/// removed before the record goes), so that `snap mount` need not open the database:
/// opening it costs a cold mount about 20 ms.
fn image_file(dir: &Path) -> PathBuf {
    dir.join("image")
}

/// The image of the container whose directory is `dir`, from its [`image_file`].
fn image_of(dir: &Path) -> Option<crate::model::ImageId> {
    let text = std::fs::read_to_string(image_file(dir)).ok()?;
    Some(crate::model::ImageId(text.trim().parse().ok()?))
}

pub(crate) fn open_db(store: &Store) -> Result<crate::db::Db, ContainerError> {
    let on_wait = |pid: Option<u32>| {
        tracing::warn!(
            "waiting for the store lock held by pid {}",
            pid.map_or("?".into(), |p| p.to_string())
        )
    };
    Ok(crate::image::open_store_db(store, &on_wait)?)
}
