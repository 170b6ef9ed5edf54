//! `snap fsck`: re-hash every object and check every reference the database makes.

use super::{ImageError, Progress, open_db};
use crate::error::Chain;
use crate::index::{Index, LayerInput, build};
use crate::model::{Digest, Kind};
use crate::store::Store;
use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// One thing fsck found wrong.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Problem {
    /// What is wrong (`object`, `image`, `layer`, `index`, `tag`).
    pub kind: &'static str,
    pub detail: String,
}

/// What fsck checked and found.
#[derive(Debug, Default, serde::Serialize)]
pub struct FsckReport {
    pub objects_checked: u64,
    pub images_checked: u64,
    pub layers_checked: u64,
    /// Objects nothing references: not a problem, `snap gc` removes them.
    pub unreferenced_objects: u64,
    pub problems: Vec<Problem>,
}

pub fn fsck(store: &Store, progress: &dyn Progress) -> Result<FsckReport, ImageError> {
    // Keep gc away so that nothing disappears between reading records and checking files.
    let _guard = store.write_guard(Duration::from_secs(600))?;
    let (images, tags, layer_records, snapshots) = {
        let db = open_db(store, progress)?;
        (db.images()?, db.tags()?, db.layers()?, db.snapshots()?)
    };
    let mut report = FsckReport::default();
    let mut problem = |kind, detail: String| report_problem(&mut report.problems, kind, detail);
    let ids: HashSet<_> = images.iter().map(|i| i.id).collect();
    for (name, id) in &tags {
        if !ids.contains(id) {
            problem(
                "tag",
                format!("{name} names image {id}, which does not exist"),
            );
        }
    }
    let layer_ids: HashSet<_> = layer_records.iter().map(|l| l.id).collect();
    // digest → size every layer expects
    let mut referenced: HashMap<Digest, u64> = HashMap::new();
    let mut layer_files = HashMap::new();
    for image in &images {
        referenced.insert(image.id.0, u64::MAX);
        for layer in &image.layers {
            // A layer blob kept at import (`--keep-blobs`) is optional, but referenced if there.
            if let Some(blob) = &layer.blob
                && store.has_object(&blob.digest)
            {
                referenced.entry(blob.digest).or_insert(blob.size);
            }
            if !layer_ids.contains(&layer.diff_id) {
                problem(
                    "layer",
                    format!(
                        "image {} names layer {}, which has no record",
                        image.id.0.short(),
                        layer.diff_id
                    ),
                );
            }
            if layer_files.contains_key(&layer.diff_id) {
                continue;
            }
            match store.read_layer(&layer.diff_id) {
                Ok(file) => {
                    for entry in &file.entries {
                        if let Kind::File { digest, size } = entry.kind {
                            referenced.insert(digest, size);
                        }
                    }
                    layer_files.insert(layer.diff_id, file);
                }
                Err(e) => problem(
                    "layer",
                    format!("image {}: {}", image.id.0.short(), Chain(&e)),
                ),
            }
        }
    }
    // containerd's snapshots (`snap snapshotter`): their layers and their stacks' indexes.
    for snapshot in &snapshots {
        for layer in &snapshot.layers {
            if layer_files.contains_key(layer) {
                continue;
            }
            match store.read_layer(layer) {
                Ok(file) => {
                    for entry in &file.entries {
                        if let Kind::File { digest, size } = entry.kind {
                            referenced.insert(digest, size);
                        }
                    }
                    layer_files.insert(*layer, file);
                }
                Err(e) => problem(
                    "layer",
                    format!("snapshot {:?}: {}", snapshot.key, Chain(&e)),
                ),
            }
        }
        if let Err(e) = store.open_index(&super::stack_id(&snapshot.layers)) {
            problem(
                "index",
                format!("snapshot {:?}: {}", snapshot.key, Chain(&e)),
            );
        }
    }
    report.layers_checked = layer_files.len() as u64;
    for image in &images {
        report.images_checked += 1;
        let short = image.id.0.short();
        match store.read_object(&image.id.0) {
            Ok(config) if Digest::of(&config) == image.id.0 => {}
            Ok(_) => problem(
                "image",
                format!("image {short}: config object does not hash to the image id"),
            ),
            Err(e) => problem("image", format!("image {short}: config: {}", Chain(&e))),
        }
        let files: Option<Vec<_>> = image
            .layers
            .iter()
            .map(|l| layer_files.get(&l.diff_id).map(|f| (l.diff_id, f)))
            .collect();
        let expected = files.and_then(|files| {
            let inputs: Vec<_> = files
                .iter()
                .map(|(id, f)| LayerInput {
                    id: *id,
                    entries: &f.entries,
                })
                .collect();
            build(&inputs).ok()
        });
        match (store.open_index(&image.id), expected) {
            (Ok(index), Some(expected)) if index_bytes(&index) == expected.as_slice() => {}
            (Ok(_), Some(_)) => problem(
                "index",
                format!("image {short}: index differs from its layers"),
            ),
            (Ok(_), None) => {}
            (Err(e), _) => problem("index", format!("image {short}: {}", Chain(&e))),
        }
    }
    let objects = store.list_objects()?;
    let mut present: HashMap<Digest, u64> = HashMap::new();
    for object in &objects {
        match object {
            Ok((digest, size)) => {
                present.insert(*digest, *size);
            }
            Err(path) => problem(
                "object",
                format!("{} is not named by a sha256 digest", path.display()),
            ),
        }
    }
    for (digest, size) in &referenced {
        match present.get(digest) {
            None => problem(
                "object",
                format!("object {digest} is referenced but missing"),
            ),
            Some(actual) if *size != u64::MAX && actual != size => problem(
                "object",
                format!("object {digest} has {actual} bytes, its layer says {size}"),
            ),
            Some(_) => {}
        }
    }
    report.unreferenced_objects = present
        .keys()
        .filter(|d| !referenced.contains_key(d))
        .count() as u64;
    let digests: Vec<Digest> = present.keys().copied().collect();
    report.objects_checked = digests.len() as u64;
    for bad in rehash(store, &digests) {
        report_problem(&mut report.problems, "object", bad);
    }
    report.problems.sort_by(|a, b| a.detail.cmp(&b.detail));
    Ok(report)
}

fn report_problem(problems: &mut Vec<Problem>, kind: &'static str, detail: String) {
    problems.push(Problem { kind, detail });
}

fn index_bytes<B: AsRef<[u8]>>(index: &Index<B>) -> &[u8] {
    index.bytes()
}

/// Re-hashes objects on every core; returns a line per object that fails.
fn rehash(store: &Store, digests: &[Digest]) -> Vec<String> {
    let next = AtomicUsize::new(0);
    let bad = Mutex::new(Vec::new());
    let workers = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2);
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| {
                while let Some(digest) = digests.get(next.fetch_add(1, Ordering::Relaxed)) {
                    let line = match store.verify_object(digest) {
                        Ok(true) => continue,
                        Ok(false) => {
                            format!("object {digest} does not match its content (corrupt)")
                        }
                        Err(e) => format!("object {digest}: {}", Chain(&e)),
                    };
                    if let Ok(mut bad) = bad.lock() {
                        bad.push(line);
                    }
                }
            });
        }
    });
    bad.into_inner().unwrap_or_default()
}
