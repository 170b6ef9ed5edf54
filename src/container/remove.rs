//! `snap rm NAME [--force]`: drop a container's upper directory and record; the image stays.

use super::mount::{Daemon, daemon_at, detached};
use super::{ContainerError, dir, io_err, open_db, umount};
use crate::store::Store;

pub fn remove(store: &Store, name: &str, force: bool) -> Result<(), ContainerError> {
    let db = open_db(store)?;
    db.container(name)?
        .ok_or_else(|| ContainerError::NoSuchContainer(name.to_string()))?;
    drop(db);
    match daemon_at(&dir(store, name)) {
        Daemon::Gone => {}
        Daemon::Mounted(state) if !force => {
            return Err(ContainerError::Mounted {
                name: name.to_string(),
                mountpoint: state.mountpoint,
                pid: state.pid,
            });
        }
        Daemon::Mounted(_) => {
            umount(store, name)?;
        }
        // Its upper is in use: not even --force removes it.
        Daemon::Detached(state) => return Err(detached(name, state)),
    }
    // The record goes first: a crash after it leaves a directory that `create` replaces.
    open_db(store)?.remove_container(name)?;
    let dir = dir(store, name);
    if dir.exists() {
        std::fs::remove_dir_all(&dir).map_err(io_err(&dir))?;
    }
    Ok(())
}
