//! `snap ps`: containers with their image, mount and upper size.

use super::mount::{Daemon, daemon_at};
use super::{ContainerError, dir, open_db};
use crate::model::{ContainerName, ImageId};
use crate::store::Store;

#[derive(Debug, Clone, serde::Serialize)]
pub struct ContainerStatus {
    pub name: ContainerName,
    pub image: ImageId,
    pub image_names: Vec<String>,
    /// Where its daemon serves it; none while unmounted, or detached (see `pid`).
    pub mountpoint: Option<std::path::PathBuf>,
    /// Its daemon: it may run without a mount point when a bind of its mount outlived it.
    pub pid: Option<u32>,
    /// Bytes of the files in the upper directory.
    pub upper_bytes: u64,
}

pub fn list(store: &Store) -> Result<Vec<ContainerStatus>, ContainerError> {
    let db = open_db(store)?;
    let containers = db.containers()?;
    let tags = db.tags()?;
    drop(db);
    let mut out = Vec::new();
    for c in containers {
        let (mountpoint, pid) = match daemon_at(&dir(store, &c.name)) {
            Daemon::Mounted(state) => (Some(state.mountpoint), Some(state.pid)),
            Daemon::Detached(state) => (None, Some(state.pid)),
            Daemon::Gone => (None, None),
        };
        let upper = dir(store, &c.name).join("upper");
        let upper_bytes = walkdir::WalkDir::new(&upper)
            .into_iter()
            .flatten()
            .filter_map(|e| e.metadata().ok())
            .filter(|m| m.is_file())
            .map(|m| m.len())
            .sum();
        out.push(ContainerStatus {
            image_names: tags
                .iter()
                .filter(|(_, id)| *id == c.image)
                .map(|(n, _)| n.clone())
                .collect(),
            name: c.name,
            image: c.image,
            mountpoint,
            pid,
            upper_bytes,
        });
    }
    Ok(out)
}
