//! Rootfs imports (as `docker import` takes them): a directory tree or a tar, possibly
//! compressed, becomes an image of one layer with a generated config.

use super::config::rootfs_config;
use super::import::{
    ImportOptions, ImportReport, StoredLayer, finish_import, layer_record, now, now_rfc3339,
};
use super::{ImageError, Progress, io_err};
use crate::db::{BlobRef, ImageLayer, ImageRecord};
use crate::layer::{LayerFile, parse_layer};
use crate::model::{Digest, ImageId};
use crate::store::Store;
use std::collections::HashMap;
use std::io::{BufReader, Read, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

/// A rootfs source: the directory itself, or an uncompressed tar to read (the source, or its
/// decompressed copy under tmp/).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RootfsKind {
    Dir,
    Tar(std::path::PathBuf),
}

pub fn import_rootfs(
    store: &Store,
    source: &Path,
    kind: &RootfsKind,
    options: &ImportOptions,
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
        RootfsKind::Dir => {
            let (reader, writer) = std::io::pipe().map_err(io_err(source))?;
            std::thread::scope(|scope| {
                let writing = scope.spawn(move || write_tree_tar(source, writer));
                let parsed = parse_layer(BufReader::with_capacity(1 << 20, reader), store);
                let written = writing.join().unwrap_or_else(|_| {
                    Err(ImageError::Io {
                        path: source.to_path_buf(),
                        source: std::io::Error::other("the tar writer panicked"),
                    })
                });
                // A parse error comes first: it is why the writer saw a closed pipe.
                let parsed = parsed.map_err(layer_err)?;
                written?;
                Ok::<_, ImageError>(parsed)
            })?
        }
        RootfsKind::Tar(tar) => {
            let file = std::fs::File::open(tar).map_err(io_err(tar))?;
            let counted = Counted {
                inner: file,
                progress,
            };
            parse_layer(BufReader::with_capacity(1 << 20, counted), store).map_err(layer_err)?
        }
    };
    let diff_id = parsed.diff_id;
    let record = layer_record(&parsed);
    let file = LayerFile {
        entries: parsed.entries,
        skeleton: parsed.skeleton,
    };
    store.write_layer(&diff_id, &file)?;
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
    let name = options.name.clone().or_else(|| {
        let stem = source.file_name()?.to_str()?.split('.').next()?.to_string();
        super::check_name(&stem).is_ok().then_some(stem)
    });
    let layers = vec![StoredLayer {
        record,
        blob: None,
        file: Some(file),
        reused: false,
    }];
    finish_import(store, &config, image, layers, name, progress)
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

/// Writes `root` as a layer tar: sorted walk, owners, modes, nanosecond mtimes and xattrs in
/// PAX records, hardlinks as links to their first name, devices and fifos; sockets skipped.
fn write_tree_tar(root: &Path, out: impl Write) -> Result<(), ImageError> {
    let mut builder = tar::Builder::new(out);
    builder.mode(tar::HeaderMode::Complete);
    let mut first_names: HashMap<(u64, u64), std::path::PathBuf> = HashMap::new();
    for item in walkdir::WalkDir::new(root)
        .follow_links(false)
        .sort_by_file_name()
    {
        let item = item.map_err(|e| ImageError::Io {
            path: e.path().unwrap_or(root).to_path_buf(),
            source: e
                .into_io_error()
                .unwrap_or_else(|| std::io::Error::other("filesystem loop")),
        })?;
        let path = item.path();
        let rel = path.strip_prefix(root).unwrap_or(path);
        let rel = if rel.as_os_str().is_empty() {
            Path::new(".")
        } else {
            rel
        };
        let meta = std::fs::symlink_metadata(path).map_err(io_err(path))?;
        let file_type = meta.file_type();
        if file_type.is_socket() {
            continue;
        }
        let mut pax: Vec<(String, Vec<u8>)> = Vec::new();
        if meta.mtime_nsec() != 0 {
            pax.push((
                "mtime".into(),
                format!("{}.{:09}", meta.mtime(), meta.mtime_nsec()).into_bytes(),
            ));
        }
        for (name, value) in crate::sys::xattrs(path).map_err(io_err(path))? {
            pax.push((
                format!("SCHILY.xattr.{}", String::from_utf8_lossy(&name)),
                value,
            ));
        }
        if !pax.is_empty() {
            builder
                .append_pax_extensions(pax.iter().map(|(k, v)| (k.as_str(), &v[..])))
                .map_err(io_err(path))?;
        }
        let mut header = tar::Header::new_gnu();
        header.set_metadata_in_mode(&meta, tar::HeaderMode::Complete);
        header.set_mode(meta.mode() & 0o7777);
        let written = if file_type.is_file() && meta.nlink() > 1 {
            match first_names.get(&(meta.dev(), meta.ino())) {
                Some(first) => {
                    header.set_entry_type(tar::EntryType::Link);
                    header.set_size(0);
                    builder.append_link(&mut header, rel, first)
                }
                None => {
                    first_names.insert((meta.dev(), meta.ino()), rel.to_path_buf());
                    let file = std::fs::File::open(path).map_err(io_err(path))?;
                    builder.append_data(&mut header, rel, file)
                }
            }
        } else if file_type.is_file() {
            let file = std::fs::File::open(path).map_err(io_err(path))?;
            builder.append_data(&mut header, rel, file)
        } else if file_type.is_symlink() {
            let target = std::fs::read_link(path).map_err(io_err(path))?;
            builder.append_link(&mut header, rel, target)
        } else {
            if file_type.is_char_device() || file_type.is_block_device() {
                let rdev = meta.rdev();
                header
                    .set_device_major(rustix::fs::major(rdev))
                    .map_err(io_err(path))?;
                header
                    .set_device_minor(rustix::fs::minor(rdev))
                    .map_err(io_err(path))?;
            }
            builder.append_data(&mut header, rel, std::io::empty())
        };
        written.map_err(io_err(path))?;
    }
    builder
        .into_inner()
        .map_err(io_err(root))?
        .flush()
        .map_err(io_err(root))
}
