//! `snap ps`: containers with their image, mount and upper size.

use super::{ContainerError, dir, mount::live_state, open_db};
use crate::model::ImageId;
use crate::store::Store;

#[derive(Debug, Clone, serde::Serialize)]
pub struct ContainerStatus {
    pub name: String,
    pub image: ImageId,
    pub image_names: Vec<String>,
    pub mountpoint: Option<std::path::PathBuf>,
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
        let state = live_state(store, &c.name);
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
            mountpoint: state.as_ref().map(|s| s.mountpoint.clone()),
            pid: state.map(|s| s.pid),
            upper_bytes,
        });
    }
    Ok(out)
}
