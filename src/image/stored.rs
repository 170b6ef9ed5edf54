//! A layer in the store: a parsed layer's file written, and the record a new image or stack
//! keeps of it. Used by every way of making a layer (import, rootfs import, commit, stacks).

use super::ImageError;
use crate::db::{BlobRef, LayerRecord};
use crate::layer::{LayerFile, ParsedLayer};
use crate::model::Kind;
use crate::store::Store;

/// A layer ready to be recorded.
pub(super) struct StoredLayer {
    pub record: LayerRecord,
    pub blob: Option<BlobRef>,
    /// The decoded layer file, when this import parsed it (else read back from the store).
    pub file: Option<LayerFile>,
    pub reused: bool,
}

/// Writes the file of a parsed layer (its entries and tar skeleton) into the store; returns
/// the layer's record and its file (for the index). Not durable until the next sync.
pub(super) fn write_parsed_layer(
    store: &Store,
    parsed: ParsedLayer,
) -> Result<(LayerRecord, LayerFile), ImageError> {
    let record = layer_record(&parsed);
    let file = LayerFile {
        entries: parsed.entries,
        skeleton: parsed.skeleton,
    };
    store.write_layer(&record.id, &file)?;
    Ok((record, file))
}

/// Summarises a parsed layer.
fn layer_record(parsed: &ParsedLayer) -> LayerRecord {
    let mut content_bytes = 0;
    let mut files = 0;
    for e in &parsed.entries {
        if let Kind::File { size, .. } = e.kind {
            content_bytes += size;
            files += 1;
        }
    }
    LayerRecord {
        id: parsed.diff_id,
        tar_size: parsed.tar_size,
        entries: parsed.entries.len() as u64,
        files,
        content_bytes,
    }
}
