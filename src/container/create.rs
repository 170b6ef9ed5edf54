//! `snap create IMAGE NAME`: a container record and its upper and work directories.

use super::{ContainerError, dir, image_file, io_err, open_db};
use crate::db::ContainerRecord;
use crate::model::ContainerName;
use crate::store::Store;

pub fn create(
    store: &Store,
    image: &str,
    name: &ContainerName,
) -> Result<ContainerRecord, ContainerError> {
    let db = open_db(store)?;
    let image = db.resolve(image)?;
    if db.container(name)?.is_some() {
        return Err(ContainerError::Exists(name.to_string()));
    }
    let dir = dir(store, name);
    // Leftovers of an interrupted create (no record) are replaced.
    if dir.exists() {
        std::fs::remove_dir_all(&dir).map_err(io_err(&dir))?;
    }
    for sub in ["upper", "work"] {
        let path = dir.join(sub);
        std::fs::create_dir_all(&path).map_err(io_err(&path))?;
    }
    give_upper_the_image_root(store, &image.id, &dir)?;
    let record = ContainerRecord {
        name: name.clone(),
        image: image.id,
    };
    db.add_container(&record)?;
    let image_file = image_file(&dir);
    std::fs::write(&image_file, format!("{}\n", record.image)).map_err(io_err(&image_file))?;
    Ok(record)
}

/// The upper directory's root is the container's `/` (overlayfs shows it for the merged
/// root): it gets the owner and mode of the image's root, not whatever the caller's umask
/// left (0777 under umask 000: anyone reaching the mount could replace `/etc`). The work
/// directory is the daemon's alone.
fn give_upper_the_image_root(
    store: &Store,
    image: &crate::model::ImageId,
    dir: &std::path::Path,
) -> Result<(), ContainerError> {
    use std::os::unix::fs::PermissionsExt;
    let index = store.open_index(image)?;
    let (mode, uid, gid) = index
        .inode(crate::model::Ino::ROOT)
        .map_or((0o755, 0, 0), |root| (root.mode, root.uid, root.gid));
    let upper = dir.join("upper");
    std::os::unix::fs::chown(&upper, Some(uid), Some(gid)).map_err(io_err(&upper))?;
    let modes = [(upper, mode & 0o7777), (dir.join("work"), 0o700)];
    for (path, mode) in modes {
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode))
            .map_err(io_err(&path))?;
    }
    Ok(())
}
