//! Layer stacks that are not images: containerd's snapshots (`snap snapshotter`). A stack
//! is named by its id, the digest of its layer ids, and its flattened index is kept under
//! that id in `index/`, as an image's is under the image id, so a mount daemon serves both
//! alike.
//!
//! These functions write files only; the caller holds the store's write guard until the
//! database names what they wrote (else `snap gc` may take it first).

use super::stored::write_parsed_layer;
use super::tree_tar::{TreeKind, adopt_tree, store_tree};
use super::{ImageError, Progress};
use crate::db::LayerRecord;
use crate::index::{LayerInput, build, build_on};
use crate::model::{Digest, ImageId, LayerId};
use crate::store::Store;
use std::path::Path;

/// The id of the stack of `layers` (bottom first); the empty stack has one too.
pub fn stack_id(layers: &[LayerId]) -> ImageId {
    let text: Vec<String> = layers.iter().map(|l| l.to_string()).collect();
    ImageId(Digest::of(
        format!("snapfs-stack\n{}", text.join("\n")).as_bytes(),
    ))
}

/// Makes sure the index of the stack `layers` exists (building it from the layer files if
/// not) and returns the stack's id. Durable on return.
pub fn ensure_stack_index(store: &Store, layers: &[LayerId]) -> Result<ImageId, ImageError> {
    let id = stack_id(layers);
    if store.index_path(&id).exists() {
        return Ok(id);
    }
    let files = layers
        .iter()
        .map(|l| store.read_layer(l))
        .collect::<Result<Vec<_>, _>>()?;
    let inputs: Vec<LayerInput<'_>> = layers
        .iter()
        .zip(&files)
        .map(|(id, file)| LayerInput {
            id: *id,
            entries: &file.entries,
        })
        .collect();
    store.write_index(&id, &build(&inputs).map_err(ImageError::Index)?)?;
    store.sync()?;
    Ok(id)
}

/// How an upper directory becomes a layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handover {
    /// Its files are copied into the store; it stays as it was.
    Copy,
    /// Nobody writes it any more and it is removed afterwards: its files are linked into the
    /// store instead of copied.
    Adopt,
}

/// Stores `tree` (an overlayfs upper directory) as a new layer on the stack `parent`, and
/// the new stack's index. `quiesce` is held while `tree` is read. Durable on return.
pub fn store_upper_on_stack<G>(
    store: &Store,
    parent: &[LayerId],
    tree: &Path,
    handover: Handover,
    progress: &dyn Progress,
    quiesce: impl FnOnce() -> Result<G, ImageError>,
) -> Result<LayerRecord, ImageError> {
    let start = std::time::Instant::now();
    let parent_index = store.open_index(&ensure_stack_index(store, parent)?)?;
    let parsed = {
        let _quiet = quiesce()?;
        match handover {
            Handover::Copy => store_tree(store, tree, TreeKind::Upper, parent.len(), progress)?,
            Handover::Adopt => adopt_tree(store, tree, parent.len(), progress)?,
        }
    };
    let stored = start.elapsed();
    let (record, file) = write_parsed_layer(store, parsed)?;
    let index = build_on(
        &parent_index,
        &[LayerInput {
            id: record.id,
            entries: &file.entries,
        }],
    )
    .map_err(ImageError::Index)?;
    let mut layers = parent.to_vec();
    layers.push(record.id);
    store.write_index(&stack_id(&layers), &index)?;
    store.sync()?;
    tracing::debug!(
        "{}: stored as a layer in {stored:?}, indexed and synced in {:?}",
        tree.display(),
        start.elapsed() - stored
    );
    Ok(record)
}
