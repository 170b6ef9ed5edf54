//! `snap rmi`: untag an image, and remove it once no name is left (or when named by id).

use super::{ImageError, Progress, open_db};
use crate::model::ImageId;
use crate::store::Store;

/// What `remove` did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RemoveReport {
    pub id: ImageId,
    pub untagged: Vec<String>,
    pub removed: bool,
}

/// Removes the name `name`; removes the image when it was its last name, or when `name` is an
/// image id (then with all its names). Refused while a container uses the image. Its files
/// stay until `snap gc`.
pub fn remove(
    store: &Store,
    name: &str,
    progress: &dyn Progress,
) -> Result<RemoveReport, ImageError> {
    let db = open_db(store, progress)?;
    let image = db.resolve(name)?;
    let names: Vec<String> = db
        .tags()?
        .into_iter()
        .filter(|(_, id)| *id == image.id)
        .map(|(n, _)| n)
        .collect();
    let by_name = names.iter().any(|n| n == name);
    let (untag, remove_image) = if by_name {
        (vec![name.to_string()], names.len() == 1)
    } else {
        (names.clone(), true)
    };
    db.remove_image(&image.id, &untag, remove_image)?;
    Ok(RemoveReport {
        id: image.id,
        untagged: untag,
        removed: remove_image,
    })
}
