//! `snap commit`: a tree of changes (a container's upper directory, in overlayfs's format)
//! becomes one new layer on top of an image's layers, and so a new image.
//!
//! The upper is written as an OCI layer tar and parsed by the same code as an imported layer
//! (so export gives back that exact tar): contents are hashed and stored once, contents the
//! store has are not written again. The new config is the parent's with the new diff_id, a
//! history entry and the `-c` changes. Then, as for an import: index, one `syncfs`, one
//! database transaction. A failure or kill before it leaves no image, only files for `gc`;
//! the upper is only read.

use super::change::Change;
use super::finish::{ImportReport, NewImage, finish_import, now, now_rfc3339};
use super::stored::{StoredLayer, write_parsed_layer};
use super::tree_tar::{TreeKind, store_tree};
use super::{ImageError, Progress, check_name, open_db};
use crate::db::{ImageLayer, ImageRecord};
use crate::index::{LayerInput, build_on};
use crate::model::{Digest, ImageId, LayerId};
use crate::store::Store;
use serde_json::{Map, Value, json};
use std::path::Path;
use std::time::Duration;

/// What `snap commit` was asked.
#[derive(Debug, Clone, Default)]
pub struct CommitOptions {
    /// The new image's name.
    pub name: String,
    /// The history entry's comment (`-m`).
    pub message: Option<String>,
    /// The config's and history entry's author (`-a`).
    pub author: Option<String>,
    /// Dockerfile-style config changes (`-c`).
    pub changes: Vec<String>,
    /// The history entry's `created_by`.
    pub created_by: String,
}

/// What a commit made.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CommitReport {
    pub id: ImageId,
    pub name: String,
    pub layer: LayerId,
    /// Entries of the new layer (the root, directories, files, whiteouts, ...).
    pub entries: u64,
    pub files: u64,
    pub content_bytes: u64,
    /// Objects and bytes the store did not have (the new config included).
    pub new_objects: u64,
    pub new_bytes: u64,
}

/// How long a commit waits for a running `snap gc`.
const GC_WAIT: Duration = Duration::from_secs(600);

/// Commits `tree` (an upper directory) on top of image `parent` as a new image `options.name`.
/// `quiesce` is called once the checks are done, right before `tree` is read; what it
/// returns is held while `tree` is read (the container's freeze, for a mounted container).
pub fn commit<G>(
    store: &Store,
    parent: &ImageId,
    tree: &Path,
    options: &CommitOptions,
    progress: &dyn Progress,
    quiesce: impl FnOnce() -> Result<G, ImageError>,
) -> Result<CommitReport, ImageError> {
    check_name(&options.name)?;
    let changes = options
        .changes
        .iter()
        .map(|c| Change::parse(c))
        .collect::<Result<Vec<_>, _>>()?;
    let _guard = store.write_guard(GC_WAIT)?;
    let (parent, parent_layers) = {
        let db = open_db(store, progress)?;
        if db.tags()?.iter().any(|(name, _)| *name == options.name) {
            return Err(ImageError::NameTaken(options.name.clone()));
        }
        let image = db
            .image(parent)?
            .ok_or_else(|| ImageError::Db(crate::db::DbError::NoSuchImage(parent.to_string())))?;
        let mut layers = Vec::with_capacity(image.layers.len());
        for layer in &image.layers {
            let record = db.layer(&layer.diff_id)?.ok_or_else(|| {
                ImageError::Db(crate::db::DbError::Corrupt {
                    tree: "layers",
                    key: layer.diff_id.to_string(),
                    detail: "an image names this layer but it has no record".into(),
                })
            })?;
            layers.push(StoredLayer {
                record,
                blob: layer.blob.clone(),
                file: None,
                reused: true,
            });
        }
        (image, layers)
    };
    let parent_config = store.read_object(&parent.id.0)?;

    progress.start(1, 0);
    let parsed = {
        let _quiet = quiesce()?;
        store_tree(store, tree, TreeKind::Upper, parent.layers.len(), progress)?
    };
    let (record, file) = write_parsed_layer(store, parsed)?;
    progress.layer_done(parent.layers.len(), &record.id, false);

    // The parent's index plus the new layer: the parent's layers are not read again.
    progress.message("building the index");
    let index = build_on(
        &store.open_index(&parent.id)?,
        &[LayerInput {
            id: record.id,
            entries: &file.entries,
        }],
    )
    .map_err(ImageError::Index)?;
    let created = now_rfc3339();
    let config = child_config(&parent_config, &record.id, &created, options, &changes)?;
    let mut layers = parent.layers.clone();
    layers.push(ImageLayer {
        diff_id: record.id,
        blob: None,
    });
    let image = ImageRecord {
        id: ImageId(Digest::of(&config)),
        layers,
        created: Some(created),
        imported: now(),
        os: parent.os.clone(),
        architecture: parent.architecture.clone(),
        source: format!("commit:{}", tree.display()),
    };
    let mut stored = parent_layers;
    stored.push(StoredLayer {
        record: record.clone(),
        blob: None,
        file: Some(file),
        reused: false,
    });
    let ImportReport {
        id,
        new_objects,
        new_bytes,
        ..
    } = finish_import(
        store,
        NewImage {
            config: &config,
            record: image,
            layers: stored,
            index,
            name: Some(options.name.clone()),
            exclusive_name: true,
        },
        progress,
    )?;
    Ok(CommitReport {
        id,
        name: options.name.clone(),
        layer: record.id,
        entries: record.entries,
        files: record.files,
        content_bytes: record.content_bytes,
        new_objects,
        new_bytes,
    })
}

/// The parent's config with the new layer, a history entry and the changes applied.
fn child_config(
    parent: &[u8],
    diff_id: &LayerId,
    created: &str,
    options: &CommitOptions,
    changes: &[Change],
) -> Result<Vec<u8>, ImageError> {
    let json_err = |detail: String| ImageError::Json {
        what: "the parent image's config".into(),
        detail,
    };
    let mut config: Map<String, Value> =
        serde_json::from_slice(parent).map_err(|e| json_err(e.to_string()))?;
    config.insert("created".into(), json!(created));
    if let Some(author) = &options.author {
        config.insert("author".into(), json!(author));
    }
    let mut rootfs = match config.remove("rootfs") {
        Some(Value::Object(rootfs)) => rootfs,
        _ => return Err(json_err("no rootfs object".into())),
    };
    let mut diff_ids = match rootfs.remove("diff_ids") {
        Some(Value::Array(ids)) => ids,
        _ => return Err(json_err("no rootfs.diff_ids".into())),
    };
    diff_ids.push(json!(diff_id.to_string()));
    rootfs.insert("diff_ids".into(), Value::Array(diff_ids));
    config.insert("rootfs".into(), Value::Object(rootfs));

    let mut entry = Map::new();
    entry.insert("created".into(), json!(created));
    entry.insert("created_by".into(), json!(options.created_by));
    if let Some(message) = &options.message {
        entry.insert("comment".into(), json!(message));
    }
    if let Some(author) = &options.author {
        entry.insert("author".into(), json!(author));
    }
    let mut history = match config.remove("history") {
        Some(Value::Array(history)) => history,
        _ => Vec::new(),
    };
    history.push(Value::Object(entry));
    config.insert("history".into(), Value::Array(history));

    let mut runtime = match config.remove("config") {
        Some(Value::Object(runtime)) => runtime,
        _ => Map::new(),
    };
    for change in changes {
        change.apply(&mut runtime);
    }
    config.insert("config".into(), Value::Object(runtime));
    serde_json::to_vec(&config).map_err(|e| json_err(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::config::{read_config, rootfs_config};

    #[test]
    fn child_config_adds_the_layer_history_and_changes() {
        let base = LayerId(Digest::of(b"base"));
        let top = LayerId(Digest::of(b"top"));
        let parent = rootfs_config(&base, "2026-01-01T00:00:00Z", "import");
        let options = CommitOptions {
            name: "x".into(),
            message: Some("add tools".into()),
            author: Some("ops <ops@example.com>".into()),
            changes: vec![],
            created_by: "snap commit c1".into(),
        };
        let changes = [Change::parse("ENV A=1").unwrap()];
        let bytes =
            child_config(&parent, &top, "2026-12-02T00:00:00Z", &options, &changes).unwrap();
        assert_eq!(read_config(&bytes, "c").unwrap().diff_ids, vec![base, top]);
        let value: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(value["author"], json!("ops <ops@example.com>"));
        assert_eq!(value["history"][1]["comment"], json!("add tools"));
        assert_eq!(value["history"][1]["created_by"], json!("snap commit c1"));
        assert_eq!(value["config"]["Env"], json!(["A=1"]));
        assert!(child_config(b"{}", &top, "now", &options, &[]).is_err());
    }
}
