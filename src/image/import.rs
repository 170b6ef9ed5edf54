//! `snap import`: one image from an OCI layout, OCI archive, docker archive or rootfs, into
//! the store, all-or-nothing. This file recognises the source and hands it to `layout`,
//! `docker` (which choose the image) or `rootfs`, and stores the chosen image's layers.
//!
//! Order: layers are read, verified and stored in parallel (objects, then the layer file);
//! then, in `finish`, the index is built from all layers' entries, one `syncfs` makes it all
//! durable, and one database transaction names the image. A failure before that transaction
//! leaves only unreferenced files for `gc`; the database is untouched.

use super::archive::{BlobSource, DirSource, Member, TarSource};
use super::config::{Platform, read_config};
use super::finish::{ImportReport, NewImage, build_index, finish_import, now};
use super::hashing::HashingWriter;
use super::spec::{ImageSpec, LayerBlob};
use super::stored::{StoredLayer, write_parsed_layer};
use super::{ImageError, Progress, TempFile, check_name, docker, io_err, layout, open_db, rootfs};
use crate::db::{BlobRef, ImageLayer, ImageRecord, LayerRecord};
use crate::layer::parse_layer;
use crate::model::{Digest, DigestHasher, ImageId, LayerId};
use crate::store::Store;
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// What `snap import` was asked.
#[derive(Default, Clone)]
pub struct ImportOptions {
    pub name: Option<String>,
    pub tag: Option<String>,
    /// `os/arch[/variant]`; the host's platform when `None`.
    pub platform: Option<String>,
    /// Keep each layer's compressed blob as an object too, so that export can give the
    /// original layer digests (costs the blobs' size again).
    pub keep_blobs: bool,
}

/// How long an import waits for a running `snap gc` before giving up.
const GC_WAIT: Duration = Duration::from_secs(600);

/// Imports one image from `source` into `store`.
pub fn import(
    store: &Store,
    source: &Path,
    options: &ImportOptions,
    progress: &dyn Progress,
) -> Result<ImportReport, ImageError> {
    if let Some(name) = &options.name {
        check_name(name)?;
    }
    let platform = match &options.platform {
        Some(text) => Platform::parse(text).ok_or_else(|| ImageError::BadName {
            name: text.clone(),
            reason: "a platform is os/arch[/variant]",
        })?,
        None => Platform::host(),
    };
    let _guard = store.write_guard(GC_WAIT)?;
    let known: HashMap<LayerId, LayerRecord> = {
        let db = open_db(store, progress)?;
        db.layers()?
            .into_iter()
            .filter(|l| store.has_layer(&l.id))
            .map(|l| (l.id, l))
            .collect()
    };
    let (opened, _unpacked) = open_source(store, source)?;
    let (spec, blobs): (ImageSpec, &dyn BlobSource) = match &opened {
        Opened::Layout(s) => (
            layout::read_layout(s, options.tag.as_deref(), &platform)?,
            s,
        ),
        Opened::Docker(s) => (docker::read_docker_archive(s, options.tag.as_deref())?, s),
        Opened::Rootfs(kind) => {
            let name = options.name.clone().or_else(|| default_name(source));
            return rootfs::import_rootfs(store, source, kind, name, progress);
        }
    };
    let origin = blobs.name();
    let facts = read_config(&spec.config, &format!("{origin} config"))?;
    if facts.diff_ids.len() != spec.layers.len() {
        return Err(ImageError::LayerCount {
            what: origin,
            layers: spec.layers.len(),
            diff_ids: facts.diff_ids.len(),
        });
    }
    let name = options
        .name
        .clone()
        .or(spec.ref_name.clone())
        .or_else(|| default_name(source));
    if let Some(name) = &name {
        check_name(name)?;
    }
    let layers = store_layers(
        store,
        blobs,
        &spec.layers,
        &facts.diff_ids,
        &known,
        options.keep_blobs,
        progress,
    )?;
    let record = ImageRecord {
        id: ImageId(Digest::of(&spec.config)),
        layers: layers
            .iter()
            .map(|l| ImageLayer {
                diff_id: l.record.id,
                blob: l.blob.clone(),
            })
            .collect(),
        created: facts.created,
        imported: now(),
        os: facts.os,
        architecture: facts.architecture,
        source: origin,
    };
    progress.message("building the index");
    let index = build_index(store, &layers)?;
    let image = NewImage {
        config: &spec.config,
        record,
        layers,
        index,
        name,
        exclusive_name: false,
    };
    finish_import(store, image, progress)
}

fn default_name(source: &Path) -> Option<String> {
    let stem = source.file_name()?.to_str()?;
    let stem = stem.split('.').next().filter(|s| !s.is_empty())?;
    check_name(stem).is_ok().then(|| stem.to_string())
}

/// What kind of source a path is.
enum Opened {
    Layout(Box<dyn BlobSource>),
    Docker(Box<dyn BlobSource>),
    Rootfs(rootfs::RootfsKind),
}

impl BlobSource for Box<dyn BlobSource> {
    fn name(&self) -> String {
        (**self).name()
    }
    fn open(&self, path: &str) -> Result<Option<Member<'_>>, ImageError> {
        (**self).open(path)
    }
}

/// Recognises the source: a directory with `oci-layout`/`index.json` is an OCI layout, any
/// other directory a rootfs; a tar with `manifest.json` is a docker archive, one with
/// `index.json` an OCI archive, any other tar (compressed or not) a rootfs.
fn open_source(store: &Store, path: &Path) -> Result<(Opened, Option<TempFile>), ImageError> {
    let meta = std::fs::metadata(path).map_err(io_err(path))?;
    if meta.is_dir() {
        if path.join("index.json").is_file() {
            return Ok((
                Opened::Layout(Box::new(DirSource {
                    root: path.to_path_buf(),
                    kind: "oci-layout",
                })),
                None,
            ));
        }
        return Ok((Opened::Rootfs(rootfs::RootfsKind::Dir), None));
    }
    let compression = sniff(path)?;
    let mut unpacked = None;
    let (tar_path, kind): (PathBuf, _) = match compression {
        Compression::None => (
            path.to_path_buf(),
            rootfs::RootfsKind::Tar(path.to_path_buf()),
        ),
        _ => {
            // Archives are read in place, which needs an uncompressed tar: a compressed one is
            // unpacked to tmp/ once, and read from there whatever it turns out to hold.
            let tmp = store.tmp_path("archive");
            unpacked = Some(TempFile(tmp.clone()));
            let mut out = std::fs::File::create(&tmp).map_err(io_err(&tmp))?;
            let file = std::fs::File::open(path).map_err(io_err(path))?;
            let mut reader = decompressor(BufReader::new(file)).map_err(io_err(path))?;
            std::io::copy(&mut reader, &mut out).map_err(io_err(path))?;
            (tmp.clone(), rootfs::RootfsKind::Tar(tmp))
        }
    };
    let tar = TarSource::open(&tar_path, path, "archive")?;
    // docker save from Docker 25+ writes both files; its manifest.json names the RepoTags.
    let opened = if tar.has("manifest.json") {
        Opened::Docker(Box::new(tar.relabel("docker-archive")))
    } else if tar.has("index.json") {
        Opened::Layout(Box::new(tar.relabel("oci-archive")))
    } else {
        Opened::Rootfs(kind)
    };
    Ok((opened, unpacked))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Compression {
    None,
    Gzip,
    Zstd,
}

impl Compression {
    fn detect(head: &[u8]) -> Self {
        if head.starts_with(&[0x1f, 0x8b]) {
            Compression::Gzip
        } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Compression::Zstd
        } else {
            Compression::None
        }
    }

    fn media_type(self) -> &'static str {
        match self {
            Compression::None => "application/vnd.oci.image.layer.v1.tar",
            Compression::Gzip => "application/vnd.oci.image.layer.v1.tar+gzip",
            Compression::Zstd => "application/vnd.oci.image.layer.v1.tar+zstd",
        }
    }
}

fn sniff(path: &Path) -> Result<Compression, ImageError> {
    let mut head = [0u8; 4];
    let mut file = std::fs::File::open(path).map_err(io_err(path))?;
    let n = file.read(&mut head).map_err(io_err(path))?;
    Ok(Compression::detect(&head[..n]))
}

/// Wraps a reader in the decompressor its first bytes call for.
pub(super) fn decompressor<'a, R: BufRead + Send + 'a>(
    mut reader: R,
) -> std::io::Result<Box<dyn Read + Send + 'a>> {
    Ok(match Compression::detect(reader.fill_buf()?) {
        Compression::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(reader)),
        Compression::Zstd => Box::new(zstd::stream::read::Decoder::with_buffer(reader)?),
        Compression::None => Box::new(reader),
    })
}

/// Reads, verifies and stores every layer not already in the store, in parallel. A layer
/// already stored is not parsed again, but its blob is still read and checked against its
/// descriptor (digest and size), or, when the source names no digest, its tar against the
/// diff_id: what an import accepts does not depend on what the store holds.
fn store_layers(
    store: &Store,
    source: &dyn BlobSource,
    blobs: &[LayerBlob],
    diff_ids: &[LayerId],
    known: &HashMap<LayerId, LayerRecord>,
    keep_blobs: bool,
    progress: &dyn Progress,
) -> Result<Vec<StoredLayer>, ImageError> {
    // A known layer is not stored again, unless its blob is to be kept and is not stored yet.
    let blob_stored = |i: usize| blobs[i].digest.is_some_and(|d| store.has_object(&d));
    let reused = |i: usize| {
        known
            .get(&diff_ids[i])
            .filter(|_| !keep_blobs || blob_stored(i))
    };
    let total: u64 = blobs.iter().map(|b| b.size.unwrap_or(0)).sum();
    progress.start(blobs.len(), total);
    let workers = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2)
        .min(blobs.len())
        .max(1);
    let next = AtomicUsize::new(0);
    let done = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= blobs.len() {
                        break;
                    }
                    let result = match reused(i) {
                        Some(record) => verify_stored_layer(source, i, &blobs[i], record, progress),
                        None => store_layer(
                            store,
                            source,
                            i,
                            &blobs[i],
                            &diff_ids[i],
                            keep_blobs,
                            progress,
                        ),
                    };
                    let failed = result.is_err();
                    if let Ok(layer) = &result {
                        progress.layer_done(i, &layer.record.id, layer.reused);
                    }
                    if let Ok(mut done) = done.lock() {
                        done.push((i, result));
                    }
                    if failed {
                        // Stop handing out work; the first error is reported.
                        next.store(blobs.len(), Ordering::Relaxed);
                    }
                }
            });
        }
    });
    let mut results: Vec<Option<Result<StoredLayer, ImageError>>> =
        (0..blobs.len()).map(|_| None).collect();
    for (i, result) in done.into_inner().unwrap_or_default() {
        results[i] = Some(result);
    }
    // Report the lowest failing layer, or every layer in order.
    let mut out = Vec::with_capacity(blobs.len());
    for (i, result) in results.into_iter().enumerate() {
        match result {
            Some(Ok(layer)) => out.push(layer),
            Some(Err(e)) => return Err(e),
            None => {
                return Err(ImageError::MissingBlob {
                    source_name: source.name(),
                    what: format!("layer {i} (not processed)"),
                });
            }
        }
    }
    Ok(out)
}

/// Checks the blob of layer `index`, already stored as `record`, without storing it again:
/// its digest and size against the descriptor's, or its tar's digest against the diff_id
/// when the source names no blob digest (an old docker archive).
fn verify_stored_layer(
    source: &dyn BlobSource,
    index: usize,
    blob: &LayerBlob,
    record: &LayerRecord,
    progress: &dyn Progress,
) -> Result<StoredLayer, ImageError> {
    let mut counted = open_blob(source, index, blob, progress, None)?;
    let decompress_err = |source| ImageError::Decompress {
        index,
        blob: blob.path.clone(),
        source,
    };
    if blob.digest.is_some() {
        std::io::copy(&mut counted, &mut std::io::sink()).map_err(decompress_err)?;
    } else {
        let mut buffered = BufReader::with_capacity(1 << 20, &mut counted);
        let mut tar = decompressor(&mut buffered).map_err(decompress_err)?;
        let mut hashed = HashingWriter::new(std::io::sink());
        std::io::copy(&mut tar, &mut hashed).map_err(decompress_err)?;
        drop(tar);
        std::io::copy(&mut buffered, &mut std::io::sink()).map_err(decompress_err)?;
        let actual = LayerId(hashed.finish());
        if actual != record.id {
            return Err(ImageError::DiffIdMismatch {
                index,
                blob: blob.path.clone(),
                expected: record.id,
                actual,
            });
        }
    }
    let actual = check_blob(index, blob, counted)?;
    Ok(StoredLayer {
        record: record.clone(),
        blob: blob.digest.map(|digest| BlobRef {
            digest,
            media_type: blob.media_type.clone(),
            size: actual.size,
        }),
        file: None,
        reused: true,
    })
}

/// Opens layer `index`'s blob for reading through a [`BlobReader`].
fn open_blob<'a>(
    source: &'a dyn BlobSource,
    index: usize,
    blob: &LayerBlob,
    progress: &'a dyn Progress,
    keep: Option<std::io::BufWriter<std::fs::File>>,
) -> Result<BlobReader<'a, Box<dyn Read + Send + 'a>>, ImageError> {
    let (reader, _size) = source
        .open(&blob.path)?
        .ok_or_else(|| ImageError::MissingBlob {
            source_name: source.name(),
            what: format!("layer {index} ({})", blob.path),
        })?;
    Ok(BlobReader {
        inner: reader,
        hasher: DigestHasher::new(),
        read: 0,
        progress,
        keep,
    })
}

/// What a blob turned out to be, read to its end.
struct ReadBlob {
    digest: Digest,
    size: u64,
    keep: Option<std::io::BufWriter<std::fs::File>>,
}

/// Checks a blob read to its end against the digest and size its descriptor gives.
fn check_blob<R>(
    index: usize,
    blob: &LayerBlob,
    counted: BlobReader<'_, R>,
) -> Result<ReadBlob, ImageError> {
    let actual = counted.hasher.finish();
    let what = || format!("layer {index} blob {}", blob.path);
    if let Some(expected) = blob.digest
        && expected != actual
    {
        return Err(ImageError::DigestMismatch {
            what: what(),
            expected,
            actual,
        });
    }
    if let Some(expected) = blob.size
        && expected != counted.read
    {
        return Err(ImageError::SizeMismatch {
            what: what(),
            expected,
            actual: counted.read,
        });
    }
    Ok(ReadBlob {
        digest: actual,
        size: counted.read,
        keep: counted.keep,
    })
}

/// Counts and hashes the compressed bytes of a blob as they are read, and copies them to
/// `keep` when the blob is to be kept.
struct BlobReader<'a, R> {
    inner: R,
    hasher: DigestHasher,
    read: u64,
    progress: &'a dyn Progress,
    keep: Option<std::io::BufWriter<std::fs::File>>,
}

impl<R: Read> Read for BlobReader<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        if let Some(keep) = &mut self.keep {
            std::io::Write::write_all(keep, &buf[..n])?;
        }
        self.read += n as u64;
        self.progress.bytes(n as u64);
        Ok(n)
    }
}

fn store_layer(
    store: &Store,
    source: &dyn BlobSource,
    index: usize,
    blob: &LayerBlob,
    diff_id: &LayerId,
    keep_blob: bool,
    progress: &dyn Progress,
) -> Result<StoredLayer, ImageError> {
    let kept = TempFile(store.tmp_path("blob"));
    let keep = if keep_blob {
        let file = std::fs::File::create(&kept.0).map_err(io_err(&kept.0))?;
        Some(std::io::BufWriter::with_capacity(1 << 20, file))
    } else {
        None
    };
    let mut counted = open_blob(source, index, blob, progress, keep)?;
    let decompress_err = |source| ImageError::Decompress {
        index,
        blob: blob.path.clone(),
        source,
    };
    let mut buffered = BufReader::with_capacity(1 << 20, &mut counted);
    let compression = Compression::detect(buffered.fill_buf().map_err(decompress_err)?);
    let tar = decompressor(&mut buffered).map_err(decompress_err)?;
    let parsed = parse_layer(tar, store).map_err(|source| ImageError::Layer {
        index,
        blob: blob.path.clone(),
        source,
    })?;
    // Whatever follows the compressed stream still belongs to the blob.
    std::io::copy(&mut buffered, &mut std::io::sink()).map_err(decompress_err)?;
    drop(buffered);
    let read = check_blob(index, blob, counted)?;
    if parsed.diff_id != *diff_id {
        return Err(ImageError::DiffIdMismatch {
            index,
            blob: blob.path.clone(),
            expected: *diff_id,
            actual: parsed.diff_id,
        });
    }
    if let Some(mut keep) = read.keep {
        std::io::Write::flush(&mut keep).map_err(io_err(&kept.0))?;
        store.put_hashed_file(&kept.0, &read.digest, read.size)?;
    }
    let (record, file) = write_parsed_layer(store, parsed)?;
    let media_type =
        if blob.media_type.starts_with("application/vnd.docker") && blob.digest.is_none() {
            compression.media_type().to_string()
        } else {
            blob.media_type.clone()
        };
    let blob = BlobRef {
        digest: blob.digest.unwrap_or(read.digest),
        media_type,
        size: read.size,
    };
    Ok(StoredLayer {
        record,
        blob: Some(blob),
        file: Some(file),
        reused: false,
    })
}
