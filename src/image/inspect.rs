//! `snap inspect`: an image's record, config, layers and history.

use super::{ImageError, Progress, open_db};
use crate::db::{ImageRecord, LayerRecord};
use crate::store::Store;

/// Everything `snap inspect` shows.
#[derive(Debug, serde::Serialize)]
pub struct Inspection {
    pub names: Vec<String>,
    #[serde(flatten)]
    pub image: ImageRecord,
    /// Per layer, bottom first: its record (entries, sizes), when the database has one.
    pub layer_details: Vec<Option<LayerRecord>>,
    /// The OCI config, as stored.
    pub config: serde_json::Value,
}

pub fn inspect(
    store: &Store,
    name: &str,
    progress: &dyn Progress,
) -> Result<Inspection, ImageError> {
    let db = open_db(store, progress)?;
    let image = db.resolve(name)?;
    let names = db
        .tags()?
        .into_iter()
        .filter(|(_, id)| *id == image.id)
        .map(|(n, _)| n)
        .collect();
    let layer_details = image
        .layers
        .iter()
        .map(|l| db.layer(&l.diff_id))
        .collect::<Result<_, _>>()?;
    drop(db);
    let bytes = store.read_object(&image.id.0)?;
    let config = serde_json::from_slice(&bytes).map_err(|e| ImageError::Json {
        what: format!("config of image {}", image.id),
        detail: e.to_string(),
    })?;
    Ok(Inspection {
        names,
        image,
        layer_details,
        config,
    })
}

/// Every image with its names, for `snap images`.
pub fn list(
    store: &Store,
    progress: &dyn Progress,
) -> Result<Vec<(ImageRecord, Vec<String>, u64)>, ImageError> {
    let db = open_db(store, progress)?;
    let tags = db.tags()?;
    let layers = db.layers()?;
    let mut out = Vec::new();
    for image in db.images()? {
        let names: Vec<String> = tags
            .iter()
            .filter(|(_, id)| *id == image.id)
            .map(|(n, _)| n.clone())
            .collect();
        let size = image
            .layers
            .iter()
            .map(|l| {
                layers
                    .iter()
                    .find(|r| r.id == l.diff_id)
                    .map_or(0, |r| r.content_bytes)
            })
            .sum();
        out.push((image, names, size));
    }
    out.sort_by(|a, b| b.0.imported.cmp(&a.0.imported).then(a.1.cmp(&b.1)));
    Ok(out)
}
