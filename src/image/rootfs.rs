//! Rootfs imports (as `docker import` takes them): a directory tree or a tar, possibly
//! compressed, becomes an image of one layer with a generated config.

use super::config::rootfs_config;
use super::finish::{ImportReport, NewImage, build_index, finish_import, now, now_rfc3339};
use super::stored::{StoredLayer, write_parsed_layer};
use super::tree_tar::{TreeKind, store_tree};
use super::{ImageError, Progress, io_err};
use crate::db::{BlobRef, ImageLayer, ImageRecord};
use crate::layer::parse_layer;
use crate::model::{Digest, ImageId};
use crate::store::Store;
use std::io::{BufReader, Read};
use std::path::Path;

/// A rootfs source: the directory itself, or an uncompressed tar to read (the source, or its
/// decompressed copy under tmp/).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RootfsKind {
    Dir,
    Tar(std::path::PathBuf),
}

/// Imports the rootfs at `source` as a one-layer image named `name`.
pub fn import_rootfs(
    store: &Store,
    source: &Path,
    kind: &RootfsKind,
    name: Option<String>,
    progress: &dyn Progress,
) -> Result<ImportReport, ImageError> {
    let origin = match kind {
        RootfsKind::Dir => format!("rootfs-dir:{}", source.display()),
        _ => format!("rootfs-tar:{}", source.display()),
    };
    let total = match kind {
        RootfsKind::Dir => 0,
        RootfsKind::Tar(tar) => std::fs::metadata(tar).map_err(io_err(tar))?.len(),
    };
    progress.start(1, total);
    let layer_err = |source| ImageError::Layer {
        index: 0,
        blob: origin.clone(),
        source,
    };
    let parsed = match kind {
        RootfsKind::Dir => store_tree(store, source, TreeKind::Rootfs, 0, progress)?,
        RootfsKind::Tar(tar) => {
            let file = std::fs::File::open(tar).map_err(io_err(tar))?;
            let counted = Counted {
                inner: file,
                progress,
            };
            parse_layer(BufReader::with_capacity(1 << 20, counted), store).map_err(layer_err)?
        }
    };
    let (record, file) = write_parsed_layer(store, parsed)?;
    let diff_id = record.id;
    progress.layer_done(0, &diff_id, false);
    // The source's own mtime, not the clock: the same tree imports as the same image id.
    let mtime = std::fs::metadata(source)
        .map_err(io_err(source))?
        .modified()
        .ok();
    let created = mtime
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or_else(now_rfc3339, |d| super::config::rfc3339(d.as_secs()));
    let config = rootfs_config(
        &diff_id,
        &created,
        &format!("snap import {}", source.display()),
    );
    let blob = BlobRef {
        digest: diff_id.0,
        media_type: "application/vnd.oci.image.layer.v1.tar".into(),
        size: record.tar_size,
    };
    let image = ImageRecord {
        id: ImageId(Digest::of(&config)),
        layers: vec![ImageLayer {
            diff_id,
            blob: Some(blob),
        }],
        created: Some(created),
        imported: now(),
        os: "linux".into(),
        architecture: super::config::Platform::host().architecture,
        source: origin,
    };
    let layers = vec![StoredLayer {
        record,
        blob: None,
        file: Some(file),
        reused: false,
    }];
    let index = build_index(store, &layers)?;
    let image = NewImage {
        config: &config,
        record: image,
        layers,
        index,
        name,
        exclusive_name: false,
    };
    finish_import(store, image, progress)
}

struct Counted<'a, R> {
    inner: R,
    progress: &'a dyn Progress,
}

impl<R: Read> Read for Counted<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.progress.bytes(n as u64);
        Ok(n)
    }
}
