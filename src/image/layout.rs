//! OCI image layouts (a directory or an OCI archive tar): choosing one image by tag and
//! platform, verifying the index, manifest and config digests. Where a layout keeps a blob
//! ([`blob_path`]) is also what `export` writes.

use super::ImageError;
use super::archive::BlobSource;
use super::config::Platform;
use super::json;
use super::spec::{ImageSpec, LayerBlob};
use crate::model::{Digest, excerpt, excerpt_list};
use oci_spec::image::{Descriptor, ImageIndex, ImageManifest, MediaType};
use std::collections::HashMap;

const REF_NAME: &str = "org.opencontainers.image.ref.name";
const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";

/// How deep indexes may nest below `index.json` (an index naming an index ...).
const MAX_NESTING: usize = 8;

/// Where a layout keeps the blob `digest`: `blobs/sha256/<hex>`.
pub(super) fn blob_path(digest: &Digest) -> String {
    format!("blobs/sha256/{}", digest.hex())
}

/// A descriptor, with where it is (`index.json manifests[3]`) for messages.
type Located<'a> = (String, &'a Descriptor);

/// The digest of the descriptor at `field` (snapfs reads sha256 blobs only).
fn parse_digest(d: &Descriptor, field: &str) -> Result<Digest, ImageError> {
    d.digest()
        .to_string()
        .parse()
        .map_err(|problem| ImageError::BadDigest {
            field: format!("{field}.digest"),
            problem,
        })
}

/// Reads the blob the descriptor at `field` names and checks its digest and size; `what`
/// says what the blob is.
fn read_verified(
    source: &dyn BlobSource,
    (field, descriptor): &Located<'_>,
    what: &str,
) -> Result<(Digest, Vec<u8>), ImageError> {
    let digest = parse_digest(descriptor, field)?;
    let bytes = source.read(&blob_path(&digest), &format!("{what} {digest}"))?;
    let actual = Digest::of(&bytes);
    if actual != digest {
        return Err(ImageError::DigestMismatch {
            what: format!("{what} {}", blob_path(&digest)),
            expected: digest,
            actual,
        });
    }
    if bytes.len() as u64 != descriptor.size() {
        return Err(ImageError::SizeMismatch {
            what: format!("{what} {}", blob_path(&digest)),
            expected: descriptor.size(),
            actual: bytes.len() as u64,
        });
    }
    Ok((digest, bytes))
}

fn ref_name(d: &Descriptor) -> Option<&str> {
    d.annotations().as_ref()?.get(REF_NAME).map(String::as_str)
}

fn is_index(media_type: &MediaType) -> bool {
    matches!(media_type, MediaType::ImageIndex) || media_type.to_string() == DOCKER_LIST
}

fn is_manifest(media_type: &MediaType) -> bool {
    matches!(media_type, MediaType::ImageManifest) || media_type.to_string() == DOCKER_MANIFEST
}

fn tag_matches(name: &str, tag: &str) -> bool {
    name == tag || name.rsplit_once(':').is_some_and(|(_, t)| t == tag)
}

/// Picks one image from the layout's `index.json`.
pub fn read_layout(
    source: &dyn BlobSource,
    tag: Option<&str>,
    platform: &Platform,
) -> Result<ImageSpec, ImageError> {
    let name = source.name();
    let index_bytes = source.read("index.json", "index.json")?;
    let index: ImageIndex = json::parse(&index_bytes, &format!("{name} index.json"))?;
    let all = index.manifests();
    if all.is_empty() {
        return Err(ImageError::Empty { source_name: name });
    }
    let tags = || {
        let mut names: Vec<&str> = all.iter().filter_map(ref_name).collect();
        names.dedup();
        if names.is_empty() {
            "(no tags)".to_string()
        } else {
            excerpt_list(names)
        }
    };
    let chosen: Vec<Located<'_>> = all
        .iter()
        .enumerate()
        .filter(|(_, d)| tag.is_none_or(|tag| ref_name(d).is_some_and(|n| tag_matches(n, tag))))
        .map(|(i, d)| (format!("{name} index.json manifests[{i}]"), d))
        .collect();
    if chosen.is_empty() {
        return Err(ImageError::NoSuchTag {
            source_name: name,
            tag: tag.unwrap_or("").into(),
            tags: tags(),
        });
    }
    let mut names: Vec<Option<&str>> = chosen.iter().map(|(_, d)| ref_name(d)).collect();
    names.sort();
    names.dedup();
    if names.len() > 1 {
        return Err(ImageError::SeveralImages {
            source_name: name,
            tags: tags(),
        });
    }
    let ref_name = names.into_iter().next().flatten().map(str::to_string);
    let mut nested = HashMap::new();
    let manifest = pick_platform(source, &chosen, platform, 0, &mut nested)?;
    let mut spec = read_manifest(source, (manifest.0, &manifest.1))?;
    spec.ref_name = ref_name;
    Ok(spec)
}

/// Among descriptors (manifests or nested indexes), the one manifest for `platform`. A nested
/// index is read once (`nested` keeps what was chosen in it), and at most [`MAX_NESTING`]
/// levels deep.
fn pick_platform(
    source: &dyn BlobSource,
    candidates: &[Located<'_>],
    platform: &Platform,
    depth: usize,
    nested: &mut HashMap<Digest, (String, Descriptor)>,
) -> Result<(String, Descriptor), ImageError> {
    let name = source.name();
    let mut manifests: Vec<(String, Descriptor)> = Vec::new();
    for (field, d) in candidates {
        if is_index(d.media_type()) {
            let digest = parse_digest(d, field)?;
            if let Some(chosen) = nested.get(&digest) {
                manifests.push(chosen.clone());
                continue;
            }
            if depth >= MAX_NESTING {
                return Err(ImageError::NestedTooDeep {
                    what: format!("{name} image index {digest}"),
                    depth: MAX_NESTING,
                });
            }
            let (digest, bytes) = read_verified(source, &(field.clone(), d), "image index")?;
            let index: ImageIndex = json::parse(&bytes, &format!("image index {digest}"))?;
            let inner: Vec<Located<'_>> = index
                .manifests()
                .iter()
                .enumerate()
                .map(|(i, d)| (format!("image index {digest} manifests[{i}]"), d))
                .collect();
            let chosen = pick_platform(source, &inner, platform, depth + 1, nested)?;
            nested.insert(digest, chosen.clone());
            manifests.push(chosen);
        } else if is_manifest(d.media_type()) {
            manifests.push((field.clone(), (*d).clone()));
        } else {
            return Err(ImageError::UnknownMediaType {
                what: field.clone(),
                media_type: excerpt(d.media_type().as_ref()),
            });
        }
    }
    let fits = |d: &Descriptor| match d.platform() {
        Some(p) => platform.matches(
            &p.os().to_string(),
            &p.architecture().to_string(),
            p.variant().as_deref(),
        ),
        None => true,
    };
    let describe = |d: &Descriptor| {
        d.platform()
            .as_ref()
            .map_or("(unspecified)".to_string(), |p| {
                format!("{}/{}", p.os(), p.architecture())
            })
    };
    let described: Vec<String> = manifests.iter().map(|(_, d)| describe(d)).collect();
    let available = excerpt_list(described.iter().map(String::as_str));
    let with_platform = manifests
        .iter()
        .filter(|(_, d)| d.platform().is_some())
        .count();
    let chosen = if manifests.len() == 1 && with_platform == 0 {
        manifests.into_iter().next()
    } else {
        manifests
            .into_iter()
            .find(|(_, d)| d.platform().is_some() && fits(d))
    };
    chosen.ok_or_else(|| ImageError::NoPlatform {
        source_name: name,
        wanted: platform.to_string(),
        available,
    })
}

/// Reads and verifies a manifest and its config; lists its layer blobs.
fn read_manifest(
    source: &dyn BlobSource,
    descriptor: Located<'_>,
) -> Result<ImageSpec, ImageError> {
    let (digest, bytes) = read_verified(source, &descriptor, "manifest")?;
    let manifest: ImageManifest = json::parse(&bytes, &format!("manifest {digest}"))?;
    let config_field = format!("manifest {digest} config");
    let (_, config) = read_verified(source, &(config_field, manifest.config()), "config")?;
    let layers = manifest
        .layers()
        .iter()
        .enumerate()
        .map(|(i, l)| {
            let digest = parse_digest(l, &format!("manifest {digest} layers[{i}]"))?;
            check_layer_media_type(l.media_type().as_ref(), &format!("layer {digest}"))?;
            Ok(LayerBlob {
                path: blob_path(&digest),
                digest: Some(digest),
                media_type: l.media_type().to_string(),
                size: Some(l.size()),
            })
        })
        .collect::<Result<Vec<_>, ImageError>>()?;
    Ok(ImageSpec {
        config,
        layers,
        ref_name: None,
    })
}

/// Layer media types snapfs reads (compression is detected from the bytes).
pub fn check_layer_media_type(media_type: &str, what: &str) -> Result<(), ImageError> {
    const KNOWN: &[&str] = &[
        "application/vnd.oci.image.layer.v1.tar",
        "application/vnd.oci.image.layer.v1.tar+gzip",
        "application/vnd.oci.image.layer.v1.tar+zstd",
        "application/vnd.oci.image.layer.nondistributable.v1.tar",
        "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
        "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd",
        "application/vnd.docker.image.rootfs.diff.tar",
        "application/vnd.docker.image.rootfs.diff.tar.gzip",
        "application/vnd.docker.image.rootfs.diff.tar.zstd",
        "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
    ];
    if KNOWN.contains(&media_type) {
        Ok(())
    } else {
        Err(ImageError::UnknownMediaType {
            what: what.to_string(),
            media_type: excerpt(media_type),
        })
    }
}
