//! `snap df`: what the images would take unpacked, and what the store takes.

use super::{ImageError, Progress, open_db};
use crate::model::{Digest, ImageId};
use crate::store::Store;
use std::collections::{HashMap, HashSet};
use std::path::Path;

/// Space used by one image.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ImageUsage {
    pub id: ImageId,
    pub names: Vec<String>,
    pub layers: usize,
    /// Sum of the file sizes of its layers: what unpacking its layers would write.
    pub logical_bytes: u64,
    /// Sum of the sizes of the distinct objects it references.
    pub content_bytes: u64,
    /// Of those, the bytes of objects no other image references.
    pub exclusive_bytes: u64,
}

/// Space used by the whole store.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Usage {
    /// Sum over images of their logical bytes: what the images take stored one by one.
    pub logical_bytes: u64,
    /// Sizes of the distinct contents the images reference.
    pub content_bytes: u64,
    /// Every file under the root (objects, layer files, indexes, database), apparent sizes.
    pub stored_bytes: u64,
    /// The same in allocated blocks (`du`).
    pub allocated_bytes: u64,
    pub objects: u64,
    /// logical_bytes / content_bytes.
    pub dedup_ratio: f64,
    /// stored_bytes / content_bytes: what the store costs above the distinct contents.
    pub overhead_ratio: f64,
    pub images: Vec<ImageUsage>,
}

pub fn usage(store: &Store, progress: &dyn Progress) -> Result<Usage, ImageError> {
    let (images, tags, layers) = {
        let db = open_db(store, progress)?;
        (db.images()?, db.tags()?, db.layers()?)
    };
    let layer_bytes: HashMap<_, _> = layers.iter().map(|l| (l.id, l.content_bytes)).collect();
    let mut sizes: HashMap<Digest, u64> = HashMap::new();
    for object in store.list_objects()?.into_iter().flatten() {
        sizes.insert(object.0, object.1);
    }
    let mut per_image: Vec<(ImageId, HashSet<Digest>)> = Vec::new();
    let mut users: HashMap<Digest, u32> = HashMap::new();
    for image in &images {
        let mut digests = HashSet::new();
        for layer in &image.layers {
            digests.extend(store.layer_digests(&layer.diff_id)?);
            // A layer blob kept at import (`--keep-blobs`).
            digests.extend(
                layer
                    .blob
                    .as_ref()
                    .map(|b| b.digest)
                    .filter(|d| sizes.contains_key(d)),
            );
        }
        for d in &digests {
            *users.entry(*d).or_default() += 1;
        }
        per_image.push((image.id, digests));
    }
    let mut out = Vec::new();
    let mut logical_total = 0;
    for (image, (_, digests)) in images.iter().zip(&per_image) {
        let logical: u64 = image
            .layers
            .iter()
            .map(|l| layer_bytes.get(&l.diff_id).copied().unwrap_or(0))
            .sum();
        logical_total += logical;
        let size = |d: &Digest| sizes.get(d).copied().unwrap_or(0);
        out.push(ImageUsage {
            id: image.id,
            names: tags
                .iter()
                .filter(|(_, id)| *id == image.id)
                .map(|(n, _)| n.clone())
                .collect(),
            layers: image.layers.len(),
            logical_bytes: logical,
            content_bytes: digests.iter().map(size).sum(),
            exclusive_bytes: digests
                .iter()
                .filter(|d| users.get(*d) == Some(&1))
                .map(size)
                .sum(),
        });
    }
    let live: HashSet<&Digest> = per_image.iter().flat_map(|(_, d)| d.iter()).collect();
    let content_bytes: u64 = live
        .iter()
        .map(|d| sizes.get(*d).copied().unwrap_or(0))
        .sum();
    let (stored_bytes, allocated_bytes) = tree_size(store.root());
    let ratio = |a: u64, b: u64| if b == 0 { 0.0 } else { a as f64 / b as f64 };
    Ok(Usage {
        logical_bytes: logical_total,
        content_bytes,
        stored_bytes,
        allocated_bytes,
        objects: sizes.len() as u64,
        dedup_ratio: ratio(logical_total, content_bytes),
        overhead_ratio: ratio(stored_bytes, content_bytes),
        images: out,
    })
}

/// (apparent bytes, allocated bytes) of every file under `root`, not counting containers'
/// and snapshots' own directories.
fn tree_size(root: &Path) -> (u64, u64) {
    use std::os::unix::fs::MetadataExt;
    let mut apparent = 0;
    let mut allocated = 0;
    let walk = walkdir::WalkDir::new(root).into_iter().filter_entry(|e| {
        e.path() != root.join("containers") && e.path() != root.join("snapshots")
    });
    for entry in walk.flatten() {
        if let Ok(meta) = entry.metadata()
            && meta.is_file()
        {
            apparent += meta.len();
            allocated += meta.blocks() * 512;
        }
    }
    (apparent, allocated)
}
