//! `snap commit CONTAINER IMAGE`: the container's changes become a new image. The container
//! may be mounted and in use; it goes on running on its own upper, which is only read.

use super::{ContainerError, dir, open_db};
use crate::image::{CommitOptions, CommitReport, Progress};
use crate::store::Store;

pub fn commit(
    store: &Store,
    name: &str,
    options: &CommitOptions,
    progress: &dyn Progress,
) -> Result<CommitReport, ContainerError> {
    let record = open_db(store)?
        .container(name)?
        .ok_or_else(|| ContainerError::NoSuchContainer(name.to_string()))?;
    let upper = dir(store, name).join("upper");
    Ok(crate::image::commit(
        store,
        &record.image,
        &upper,
        options,
        progress,
    )?)
}
