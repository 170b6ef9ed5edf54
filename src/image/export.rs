//! `snap export`: an image as an OCI archive, an OCI layout directory or a docker-archive,
//! loadable by `ctr image import`, `umoci`, `skopeo` and `docker load`.
//!
//! Layers are regenerated from their tar skeletons and the store's objects, so an imported
//! layer comes out as its original uncompressed tar and a committed one as the tar the commit
//! hashed: same diff_ids, and the config is the stored config, so the same image id. Output
//! is deterministic: JSON with sorted keys, gzip without a timestamp, archive members in a
//! fixed order with fixed owners and times. Everything is written to a temporary name beside
//! the output and renamed into place at the end: a failed export leaves no partial output.

use super::docker::ManifestEntry;
use super::gzip::ParallelGzip;
use super::hashing::HashingWriter;
use super::layout::blob_path;
use super::{ImageError, Progress, TempFile, io_err, open_db};
use crate::db::ImageRecord;
use crate::model::{Digest, ImageId};
use crate::store::Store;
use oci_spec::image::{
    Descriptor, DescriptorBuilder, ImageIndexBuilder, ImageManifestBuilder, MediaType,
};
use std::collections::HashMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

/// What `snap export` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ExportFormat {
    /// An OCI image layout in a tar (`oci-archive`).
    Oci,
    /// An OCI image layout directory.
    OciDir,
    /// A `docker save` tar: `manifest.json` with `RepoTags`, the config, the layer tars.
    Docker,
}

/// How layer tars are compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LayerCompression {
    None,
    Gzip,
    Zstd,
}

impl LayerCompression {
    fn media_type(self) -> MediaType {
        match self {
            LayerCompression::None => MediaType::ImageLayer,
            LayerCompression::Gzip => MediaType::ImageLayerGzip,
            LayerCompression::Zstd => MediaType::ImageLayerZstd,
        }
    }
}

/// What `snap export` was asked.
#[derive(Debug, Clone)]
pub struct ExportOptions {
    pub format: ExportFormat,
    pub compression: LayerCompression,
}

/// What an export wrote.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ExportReport {
    pub id: ImageId,
    /// The name written into the output (OCI `ref.name`, docker `RepoTags`).
    pub name: String,
    pub format: ExportFormat,
    pub compression: LayerCompression,
    pub manifest: Digest,
    /// The layer blobs' digests, bottom first.
    pub layers: Vec<Digest>,
    /// Bytes of layer blobs written.
    pub bytes: u64,
}

/// How long an export waits for a running `snap gc`.
const GC_WAIT: std::time::Duration = std::time::Duration::from_secs(600);

const REF_NAME: &str = "org.opencontainers.image.ref.name";
const CONTAINERD_NAME: &str = "io.containerd.image.name";
const OCI_LAYOUT: &[u8] = br#"{"imageLayoutVersion":"1.0.0"}"#;

/// One file of the output: its path in the layout and where its bytes are.
struct Member {
    path: String,
    body: Body,
}

enum Body {
    Bytes(Vec<u8>),
    File(PathBuf),
}

/// Exports image `image` (a name or id) to `out`.
pub fn export(
    store: &Store,
    image: &str,
    out: &Path,
    options: &ExportOptions,
    progress: &dyn Progress,
) -> Result<ExportReport, ImageError> {
    // gc must neither sweep the objects read nor the blobs staged in tmp/.
    let _guard = store.write_guard(GC_WAIT)?;
    let (record, name, tar_sizes) = {
        let db = open_db(store, progress)?;
        let record = db.resolve(image)?;
        // Progress counts the layer tars regenerated (compressed sizes are not known ahead).
        let tar_sizes = record
            .layers
            .iter()
            .map(|l| Ok(db.layer(&l.diff_id)?.map_or(0, |r| r.tar_size)))
            .collect::<Result<Vec<u64>, ImageError>>()?;
        let tags: Vec<String> = db
            .tags()?
            .into_iter()
            .filter(|(_, id)| *id == record.id)
            .map(|(tag, _)| tag)
            .collect();
        // The name it was asked by, else its first name, else its short id.
        let name = if tags.iter().any(|t| t == image) {
            image.to_string()
        } else {
            tags.into_iter()
                .next()
                .unwrap_or_else(|| record.id.0.short())
        };
        (record, name, tar_sizes)
    };
    let parent = out
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let partial = parent.join(format!(
        ".{}.partial-{}",
        out.file_name().unwrap_or_default().to_string_lossy(),
        std::process::id()
    ));
    // Refuse an unwritable destination before any work.
    if options.format == ExportFormat::OciDir {
        std::fs::create_dir(&partial).map_err(io_err(&partial))?;
    } else {
        File::create(&partial).map_err(io_err(&partial))?;
    }
    let cleanup = Partial(partial.clone());

    let blob_dir = match options.format {
        ExportFormat::OciDir => partial.join("blobs/sha256"),
        _ => store.tmp_dir(),
    };
    std::fs::create_dir_all(&blob_dir).map_err(io_err(&blob_dir))?;
    progress.start(record.layers.len(), tar_sizes.iter().sum());
    let mut blobs = write_layers(
        store,
        &record,
        &tar_sizes,
        &blob_dir,
        options.compression,
        progress,
    )?;
    if options.format == ExportFormat::OciDir {
        // A layout names its blobs by digest.
        for blob in &mut blobs {
            let named = blob_dir.join(blob.digest.hex());
            match blob.temp.take() {
                Some(temp) => std::fs::rename(&temp.0, &named),
                None => std::fs::copy(&blob.path, &named).map(|_| ()),
            }
            .map_err(io_err(&named))?;
            blob.path = named;
        }
    }

    let config = store.read_object(&record.id.0)?;
    let config_digest = record.id.0;
    let mut members = vec![Member {
        path: blob_path(&config_digest),
        body: Body::Bytes(config.clone()),
    }];
    let mut layer_descriptors = Vec::new();
    for blob in &blobs {
        layer_descriptors.push(descriptor(
            options.compression.media_type(),
            blob.size,
            &blob.digest,
            None,
        )?);
        // An image may hold one layer twice (empty layers): one blob file is enough.
        if !members.iter().any(|m| m.path == blob_path(&blob.digest)) {
            members.push(Member {
                path: blob_path(&blob.digest),
                body: Body::File(blob.path.clone()),
            });
        }
    }
    let manifest = ImageManifestBuilder::default()
        .schema_version(2u32)
        .media_type(MediaType::ImageManifest)
        .config(descriptor(
            MediaType::ImageConfig,
            config.len() as u64,
            &config_digest,
            None,
        )?)
        .layers(layer_descriptors)
        .build()
        .map_err(spec_err)?;
    let manifest = sorted_json(&manifest)?;
    let manifest_digest = Digest::of(&manifest);
    match options.format {
        ExportFormat::Oci | ExportFormat::OciDir => {
            let annotations = HashMap::from([
                (REF_NAME.to_string(), name.clone()),
                (CONTAINERD_NAME.to_string(), full_reference(&name)),
            ]);
            let index = ImageIndexBuilder::default()
                .schema_version(2u32)
                .media_type(MediaType::ImageIndex)
                .manifests(vec![descriptor(
                    MediaType::ImageManifest,
                    manifest.len() as u64,
                    &manifest_digest,
                    Some(annotations),
                )?])
                .build()
                .map_err(spec_err)?;
            members.push(Member {
                path: blob_path(&manifest_digest),
                body: Body::Bytes(manifest),
            });
            members.push(Member {
                path: "index.json".into(),
                body: Body::Bytes(sorted_json(&index)?),
            });
            members.push(Member {
                path: "oci-layout".into(),
                body: Body::Bytes(OCI_LAYOUT.to_vec()),
            });
        }
        ExportFormat::Docker => {
            let entry = ManifestEntry {
                config: blob_path(&config_digest),
                repo_tags: Some(vec![docker_tag(&name)]),
                layers: blobs.iter().map(|b| blob_path(&b.digest)).collect(),
            };
            members.push(Member {
                path: "manifest.json".into(),
                body: Body::Bytes(sorted_json(&[entry])?),
            });
        }
    }
    match options.format {
        ExportFormat::OciDir => write_dir(&partial, &members)?,
        _ => write_archive(&partial, &members)?,
    }
    if options.format == ExportFormat::OciDir && out.is_dir() {
        // Replace an earlier export of the same path (rename cannot replace a directory).
        std::fs::remove_dir_all(out).map_err(io_err(out))?;
    }
    std::fs::rename(&partial, out).map_err(io_err(out))?;
    drop(cleanup);
    progress.finish();
    Ok(ExportReport {
        id: record.id,
        name,
        format: options.format,
        compression: options.compression,
        manifest: manifest_digest,
        bytes: blobs.iter().map(|b| b.size).sum(),
        layers: blobs.iter().map(|b| b.digest).collect(),
    })
}

/// `name:tag` as `docker load` wants it (`:latest` added when there is no tag).
fn docker_tag(name: &str) -> String {
    let last = name.rsplit('/').next().unwrap_or(name);
    if last.contains(':') {
        name.to_string()
    } else {
        format!("{name}:latest")
    }
}

/// The full reference containerd names an imported image by (`docker.io/library/x:latest`).
fn full_reference(name: &str) -> String {
    let tagged = docker_tag(name);
    let first = tagged.split('/').next().unwrap_or("");
    let has_registry = tagged.contains('/')
        && (first.contains('.') || first.contains(':') || first == "localhost");
    if has_registry {
        tagged
    } else if tagged.contains('/') {
        format!("docker.io/{tagged}")
    } else {
        format!("docker.io/library/{tagged}")
    }
}

fn spec_err(e: oci_spec::OciSpecError) -> ImageError {
    ImageError::Json {
        what: "the exported manifest".into(),
        detail: e.to_string(),
    }
}

fn descriptor(
    media_type: MediaType,
    size: u64,
    digest: &Digest,
    annotations: Option<HashMap<String, String>>,
) -> Result<Descriptor, ImageError> {
    let digest: oci_spec::image::Digest = digest.to_string().parse().map_err(spec_err)?;
    let mut builder = DescriptorBuilder::default()
        .media_type(media_type)
        .size(size)
        .digest(digest);
    if let Some(annotations) = annotations {
        builder = builder.annotations(annotations);
    }
    builder.build().map_err(spec_err)
}

/// JSON with object keys sorted (annotations are a HashMap in oci-spec), so that the same
/// image always gives the same bytes.
fn sorted_json<T: serde::Serialize>(value: &T) -> Result<Vec<u8>, ImageError> {
    let fail = |e: serde_json::Error| ImageError::Json {
        what: "the exported manifest".into(),
        detail: e.to_string(),
    };
    serde_json::to_vec(&serde_json::to_value(value).map_err(fail)?).map_err(fail)
}

/// A layer blob in a file: one written for this export, or a blob kept at import.
struct Blob {
    digest: Digest,
    size: u64,
    path: PathBuf,
    /// Set when `path` is this export's own file, removed when dropped.
    temp: Option<TempFile>,
}

/// Regenerates and compresses every layer, in parallel, into files under `dir`.
fn write_layers(
    store: &Store,
    record: &ImageRecord,
    tar_sizes: &[u64],
    dir: &Path,
    compression: LayerCompression,
    progress: &dyn Progress,
) -> Result<Vec<Blob>, ImageError> {
    let count = record.layers.len();
    let workers = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2)
        .min(count)
        .max(1);
    let next = AtomicUsize::new(0);
    let done: Mutex<Vec<(usize, Result<Blob, ImageError>)>> = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(layer) = record.layers.get(i) else {
                        break;
                    };
                    let path = dir.join(format!("export-{}-{i}", std::process::id()));
                    let result = match kept_blob(store, layer, compression) {
                        Some(blob) => Ok(blob),
                        None => write_layer(store, i, &layer.diff_id, &path, compression),
                    };
                    if result.is_ok() {
                        progress.layer_done(i, &layer.diff_id, false);
                        progress.bytes(tar_sizes.get(i).copied().unwrap_or(0));
                    } else {
                        next.store(count, Ordering::Relaxed);
                    }
                    if let Ok(mut done) = done.lock() {
                        done.push((i, result));
                    }
                }
            });
        }
    });
    let mut done = done.into_inner().unwrap_or_default();
    done.sort_by_key(|(i, _)| *i);
    let mut blobs = Vec::with_capacity(count);
    for (_, result) in done {
        blobs.push(result?);
    }
    if blobs.len() != count {
        return Err(ImageError::Io {
            path: dir.to_path_buf(),
            source: std::io::Error::other("a layer was not written"),
        });
    }
    Ok(blobs)
}

/// The layer's original compressed blob, if the import kept it (`--keep-blobs`) and it has the
/// compression asked for: exporting it gives the original layer digest.
fn kept_blob(
    store: &Store,
    layer: &crate::db::ImageLayer,
    compression: LayerCompression,
) -> Option<Blob> {
    let blob = layer.blob.as_ref()?;
    let media_type = &blob.media_type;
    let kind = if media_type.ends_with("gzip") {
        LayerCompression::Gzip
    } else if media_type.ends_with("zstd") {
        LayerCompression::Zstd
    } else {
        LayerCompression::None
    };
    (kind == compression && store.has_object(&blob.digest)).then(|| Blob {
        digest: blob.digest,
        size: blob.size,
        path: store.object_path(&blob.digest),
        temp: None,
    })
}

fn write_layer(
    store: &Store,
    index: usize,
    diff_id: &crate::model::LayerId,
    path: &Path,
    compression: LayerCompression,
) -> Result<Blob, ImageError> {
    let file = TempFile(path.to_path_buf());
    let layer = store.read_layer(diff_id)?;
    let mut out = HashingWriter::new(BufWriter::with_capacity(
        1 << 20,
        File::create(path).map_err(io_err(path))?,
    ));
    let open = |d: &Digest| store.open_object(d).map_err(std::io::Error::other);
    let layer_err = |source| ImageError::Layer {
        index,
        blob: diff_id.to_string(),
        source,
    };
    match compression {
        LayerCompression::None => layer
            .skeleton
            .write_tar(&mut out, open)
            .map_err(layer_err)?,
        LayerCompression::Gzip => {
            let mut gz = ParallelGzip::new(&mut out);
            layer.skeleton.write_tar(&mut gz, open).map_err(layer_err)?;
            gz.finish().map_err(io_err(path))?;
        }
        LayerCompression::Zstd => {
            let mut zst = zstd::stream::write::Encoder::new(&mut out, 3).map_err(io_err(path))?;
            layer
                .skeleton
                .write_tar(&mut zst, open)
                .map_err(layer_err)?;
            zst.finish().map_err(io_err(path))?;
        }
    }
    out.flush().map_err(io_err(path))?;
    let size = out.written();
    Ok(Blob {
        digest: out.finish(),
        size,
        path: path.to_path_buf(),
        temp: Some(file),
    })
}

fn write_dir(dir: &Path, members: &[Member]) -> Result<(), ImageError> {
    for member in members {
        let path = dir.join(&member.path);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(io_err(parent))?;
        }
        match &member.body {
            Body::Bytes(bytes) => std::fs::write(&path, bytes).map_err(io_err(&path))?,
            Body::File(file) if *file == path => {}
            Body::File(file) => {
                std::fs::copy(file, &path).map_err(io_err(&path))?;
            }
        }
    }
    let synced = File::open(dir).and_then(|d| crate::sys::syncfs(&d));
    synced.map_err(io_err(dir))
}

/// Writes `members` as a tar: directories first, fixed owner, mode and time.
fn write_archive(path: &Path, members: &[Member]) -> Result<(), ImageError> {
    let file = File::create(path).map_err(io_err(path))?;
    let mut builder = tar::Builder::new(BufWriter::with_capacity(1 << 20, file));
    let header = |kind: tar::EntryType, mode: u32, size: u64| {
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_size(size);
        h.set_mtime(0);
        h.set_uid(0);
        h.set_gid(0);
        h
    };
    for dir in ["blobs/", "blobs/sha256/"] {
        builder
            .append_data(
                &mut header(tar::EntryType::Directory, 0o755, 0),
                dir,
                std::io::empty(),
            )
            .map_err(io_err(path))?;
    }
    for member in members {
        let mut h = header(tar::EntryType::Regular, 0o644, 0);
        match &member.body {
            Body::Bytes(bytes) => {
                h.set_size(bytes.len() as u64);
                builder.append_data(&mut h, &member.path, &bytes[..])
            }
            Body::File(file) => {
                let source = File::open(file).map_err(io_err(file))?;
                h.set_size(source.metadata().map_err(io_err(file))?.len());
                builder.append_data(&mut h, &member.path, source)
            }
        }
        .map_err(io_err(path))?;
    }
    let mut out = builder.into_inner().map_err(io_err(path))?;
    out.flush().map_err(io_err(path))?;
    let file = out.into_inner().map_err(|e| ImageError::Io {
        path: path.to_path_buf(),
        source: e.into_error(),
    })?;
    file.sync_all().map_err(io_err(path))
}

/// Removes a partial output (file or directory), if it is still there.
struct Partial(PathBuf);

impl Drop for Partial {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
        let _ = std::fs::remove_file(&self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_docker_references() {
        assert_eq!(docker_tag("app"), "app:latest");
        assert_eq!(docker_tag("app:v1"), "app:v1");
        assert_eq!(docker_tag("reg:5000/app"), "reg:5000/app:latest");
        assert_eq!(full_reference("app"), "docker.io/library/app:latest");
        assert_eq!(full_reference("me/app:v1"), "docker.io/me/app:v1");
        assert_eq!(
            full_reference("reg.example/me/app"),
            "reg.example/me/app:latest"
        );
    }
}
