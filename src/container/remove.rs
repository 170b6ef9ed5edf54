//! `snap rm NAME [--force]`: drop a container's upper directory and record; the image stays.

use super::mount::{Daemon, daemon_at, detached};
use super::{ContainerError, dir, image_file, io_err, open_db, umount};
use crate::model::ContainerName;
use crate::store::Store;

pub fn remove(store: &Store, name: &ContainerName, force: bool) -> Result<(), ContainerError> {
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
            umount(store, name, false)?;
        }
        // Its upper is in use: not even --force removes it.
        Daemon::Detached(state) => return Err(detached(name.as_str(), state)),
    }
    let dir = dir(store, name);
    // The image file goes first: a crash right after it leaves the record, which `mount`
    // then reads from the database.
    let image_file = image_file(&dir);
    if let Err(e) = std::fs::remove_file(&image_file)
        && e.kind() != std::io::ErrorKind::NotFound
    {
        return Err(io_err(&image_file)(e));
    }
    // The record goes next: a crash after it leaves a directory that `create` replaces.
    open_db(store)?.remove_container(name)?;
    if dir.exists() {
        std::fs::remove_dir_all(&dir).map_err(io_err(&dir))?;
    }
    Ok(())
}
