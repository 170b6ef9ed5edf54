//! The tail every new image goes through (`snap import` of any source, `snap commit`): its
//! flattened index built from its stored layers, the config and index made durable with
//! everything written before, then one database transaction that records it.

use super::config::rfc3339;
use super::stored::StoredLayer;
use super::{ImageError, Progress, open_db};
use crate::db::{ImageRecord, LayerRecord};
use crate::index::{LayerInput, build};
use crate::model::ImageId;
use crate::store::Store;
use std::sync::atomic::Ordering;
use std::time::SystemTime;

/// What an import did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ImportReport {
    pub id: ImageId,
    pub name: Option<String>,
    pub layers: usize,
    pub reused_layers: usize,
    pub new_objects: u64,
    pub new_bytes: u64,
    pub existing_objects: u64,
    pub existing_bytes: u64,
}

/// Builds the flattened index of `layers` (bottom first), reading the layer files this
/// process did not just parse.
pub(super) fn build_index(store: &Store, layers: &[StoredLayer]) -> Result<Vec<u8>, ImageError> {
    let mut files = Vec::with_capacity(layers.len());
    for layer in layers {
        files.push(match &layer.file {
            Some(file) => file.clone(),
            None => store.read_layer(&layer.record.id)?,
        });
    }
    let inputs: Vec<LayerInput<'_>> = layers
        .iter()
        .zip(&files)
        .map(|(l, f)| LayerInput {
            id: l.record.id,
            entries: &f.entries,
        })
        .collect();
    build(&inputs).map_err(ImageError::Index)
}

/// An image whose layers are stored, ready to be made durable and recorded.
pub(super) struct NewImage<'a> {
    pub config: &'a [u8],
    pub record: ImageRecord,
    pub layers: Vec<StoredLayer>,
    pub index: Vec<u8>,
    pub name: Option<String>,
    /// Fail if `name` already names an image (commit) instead of moving the name (import).
    pub exclusive_name: bool,
}

/// Makes the config and the index durable with everything written before, then records the
/// image in one transaction.
pub(super) fn finish_import(
    store: &Store,
    image: NewImage<'_>,
    progress: &dyn Progress,
) -> Result<ImportReport, ImageError> {
    let NewImage {
        config,
        record,
        layers,
        index,
        name,
        exclusive_name,
    } = image;
    store.put_bytes(config)?;
    store.write_index(&record.id, &index)?;
    store.sync()?;
    let db = open_db(store, progress)?;
    let records: Vec<LayerRecord> = layers.iter().map(|l| l.record.clone()).collect();
    match db.add_image(&record, &records, name.as_deref(), exclusive_name) {
        Err(crate::db::DbError::NameTaken(name)) => return Err(ImageError::NameTaken(name)),
        other => other?,
    }
    drop(db);
    progress.finish();
    let stats = store.stats();
    Ok(ImportReport {
        id: record.id,
        name,
        layers: layers.len(),
        reused_layers: layers.iter().filter(|l| l.reused).count(),
        new_objects: stats.new_objects.load(Ordering::Relaxed),
        new_bytes: stats.new_bytes.load(Ordering::Relaxed),
        existing_objects: stats.existing_objects.load(Ordering::Relaxed),
        existing_bytes: stats.existing_bytes.load(Ordering::Relaxed),
    })
}

/// Seconds since the epoch: when an image is recorded (its `imported`).
pub(super) fn now() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The time now in RFC 3339: a new config's `created`.
pub(super) fn now_rfc3339() -> String {
    rfc3339(now())
}
