//! `snap gc`: remove every object and file that no image or snapshot references.
//!
//! Mark: the database's images and layers, and each layer file's digest list (plus each
//! image's config object and kept layer blobs); containerd's snapshots, their layers and
//! their stacks' indexes. Sweep: everything else under objects/, layers/, index/ and tmp/ that
//! is named as the store names its files; what is not is left alone and reported.
//! Runs under the exclusive gc lock, so no import is between writing and naming objects.

use super::{ImageError, Progress, open_db};
use crate::model::{Digest, ImageId, LayerId};
use crate::store::{Store, SweepReport};
use std::collections::HashSet;
use std::time::Duration;

pub fn gc(store: &Store, progress: &dyn Progress) -> Result<SweepReport, ImageError> {
    let guard = store.gc_guard(Duration::from_secs(600))?;
    let (images, snapshots) = {
        let db = open_db(store, progress)?;
        (db.images()?, db.snapshots()?)
    };
    let mut objects: HashSet<Digest> = HashSet::new();
    let mut layers: HashSet<LayerId> = HashSet::new();
    let mut ids: HashSet<ImageId> = HashSet::new();
    for image in &images {
        ids.insert(image.id);
        objects.insert(image.id.0);
        for layer in &image.layers {
            // The original compressed blob, when the import kept it (`--keep-blobs`).
            objects.extend(layer.blob.as_ref().map(|b| b.digest));
            if layers.insert(layer.diff_id) {
                objects.extend(store.layer_digests(&layer.diff_id)?);
            }
        }
    }
    for snapshot in &snapshots {
        ids.insert(super::stack_id(&snapshot.layers));
        for layer in &snapshot.layers {
            if layers.insert(*layer) {
                objects.extend(store.layer_digests(layer)?);
            }
        }
    }
    Ok(store.sweep(&guard, &objects, &layers, &ids)?)
}
