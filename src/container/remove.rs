//! `snap rm NAME [--force]`: drop a container's upper directory and record; the image stays.

use super::{ContainerError, dir, io_err, mount::live_state, open_db, umount};
use crate::store::Store;

pub fn remove(store: &Store, name: &str, force: bool) -> Result<(), ContainerError> {
    let db = open_db(store)?;
    db.container(name)?
        .ok_or_else(|| ContainerError::NoSuchContainer(name.to_string()))?;
    drop(db);
    if let Some(state) = live_state(store, name) {
        if !force {
            return Err(ContainerError::Mounted {
                name: name.to_string(),
                mountpoint: state.mountpoint,
                pid: state.pid,
            });
        }
        umount(store, name)?;
    }
    // The record goes first: a crash after it leaves a directory that `create` replaces.
    open_db(store)?.remove_container(name)?;
    let dir = dir(store, name);
    if dir.exists() {
        std::fs::remove_dir_all(&dir).map_err(io_err(&dir))?;
    }
    Ok(())
}
