//! `snap commit CONTAINER IMAGE`: the container's changes become a new image. The container
//! may be mounted and in use: its daemon holds namespace changes (creates, renames, unlinks,
//! copy-ups, setattr) while the upper is read (not during the checks before, nor while the
//! new index is written and synced after), and the container goes on afterwards on its own
//! upper, which the commit only reads.

use super::{ContainerError, dir, open_db};
use crate::image::{CommitOptions, CommitReport, Progress};
use crate::model::ContainerName;
use crate::store::Store;

pub fn commit(
    store: &Store,
    name: &ContainerName,
    options: &CommitOptions,
    progress: &dyn Progress,
) -> Result<CommitReport, ContainerError> {
    let record = open_db(store)?
        .container(name)?
        .ok_or_else(|| ContainerError::NoSuchContainer(name.to_string()))?;
    let upper = dir(store, name).join("upper");
    // A mounted container is frozen (namespace changes wait) while its upper is read.
    let control = super::control_path(store, name);
    let quiesce = || match super::mount::daemon_at(&dir(store, name)) {
        super::mount::Daemon::Gone => Ok(None),
        super::mount::Daemon::Mounted(state) | super::mount::Daemon::Detached(state) => {
            match super::freeze(&control) {
                Ok(frozen) => Ok(Some(frozen)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    tracing::warn!(
                        "container {name}: daemon {} has no control socket; committing without freezing it",
                        state.pid
                    );
                    Ok(None)
                }
                Err(source) => Err(crate::image::ImageError::Io {
                    path: control.clone(),
                    source,
                }),
            }
        }
    };
    Ok(crate::image::commit(
        store,
        &record.image,
        &upper,
        options,
        progress,
        quiesce,
    )?)
}
