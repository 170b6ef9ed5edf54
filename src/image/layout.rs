//! OCI image layouts (a directory or an OCI archive tar): choosing one image by tag and
//! platform, verifying the index, manifest and config digests. Where a layout keeps a blob
//! ([`blob_path`]) is also what `export` writes.

use super::ImageError;
use super::archive::BlobSource;
use super::config::Platform;
use super::spec::{ImageSpec, LayerBlob};
use crate::model::Digest;
use oci_spec::image::{Descriptor, ImageIndex, ImageManifest, MediaType};

const REF_NAME: &str = "org.opencontainers.image.ref.name";
const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";

/// Where a layout keeps the blob `digest`: `blobs/sha256/<hex>`.
pub(super) fn blob_path(digest: &Digest) -> String {
    format!("blobs/sha256/{}", digest.hex())
}

fn parse_digest(d: &oci_spec::image::Digest, what: &str) -> Result<Digest, ImageError> {
    d.to_string()
        .parse()
        .map_err(|e: crate::model::DigestError| ImageError::Json {
            what: what.into(),
            detail: e.to_string(),
        })
}

/// Reads a blob named by digest and checks its bytes.
fn read_verified(
    source: &dyn BlobSource,
    digest: &Digest,
    what: &str,
) -> Result<Vec<u8>, ImageError> {
    let bytes = source.read(&blob_path(digest), &format!("{what} {digest}"))?;
    let actual = Digest::of(&bytes);
    if actual != *digest {
        return Err(ImageError::DigestMismatch {
            what: format!("{what} {}", blob_path(digest)),
            expected: *digest,
            actual,
        });
    }
    Ok(bytes)
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
    let index = ImageIndex::from_reader(&index_bytes[..]).map_err(|e| ImageError::Json {
        what: format!("{name} index.json"),
        detail: e.to_string(),
    })?;
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
            names.join(", ")
        }
    };
    let chosen: Vec<&Descriptor> = match tag {
        Some(tag) => all
            .iter()
            .filter(|d| ref_name(d).is_some_and(|n| tag_matches(n, tag)))
            .collect(),
        None => all.iter().collect(),
    };
    if chosen.is_empty() {
        return Err(ImageError::NoSuchTag {
            source_name: name,
            tag: tag.unwrap_or("").into(),
            tags: tags(),
        });
    }
    let mut names: Vec<Option<&str>> = chosen.iter().map(|d| ref_name(d)).collect();
    names.sort();
    names.dedup();
    if names.len() > 1 {
        return Err(ImageError::SeveralImages {
            source_name: name,
            tags: tags(),
        });
    }
    let ref_name = names.into_iter().next().flatten().map(str::to_string);
    let manifest = pick_platform(source, &chosen, platform, 0)?;
    let mut spec = read_manifest(source, &manifest)?;
    spec.ref_name = ref_name;
    Ok(spec)
}

/// Among descriptors (manifests or nested indexes), the one manifest for `platform`.
fn pick_platform(
    source: &dyn BlobSource,
    candidates: &[&Descriptor],
    platform: &Platform,
    depth: usize,
) -> Result<Descriptor, ImageError> {
    let name = source.name();
    let mut manifests: Vec<Descriptor> = Vec::new();
    for d in candidates {
        if is_index(d.media_type()) && depth < 4 {
            let digest = parse_digest(d.digest(), "index descriptor")?;
            let bytes = read_verified(source, &digest, "image index")?;
            let nested = ImageIndex::from_reader(&bytes[..]).map_err(|e| ImageError::Json {
                what: format!("image index {digest}"),
                detail: e.to_string(),
            })?;
            let inner: Vec<&Descriptor> = nested.manifests().iter().collect();
            manifests.push(pick_platform(source, &inner, platform, depth + 1)?);
        } else if is_manifest(d.media_type()) {
            manifests.push((*d).clone());
        } else {
            return Err(ImageError::UnknownMediaType {
                what: format!("{name} descriptor {}", d.digest()),
                media_type: d.media_type().to_string(),
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
    let available = manifests
        .iter()
        .map(describe)
        .collect::<Vec<_>>()
        .join(", ");
    let with_platform = manifests.iter().filter(|d| d.platform().is_some()).count();
    let chosen = if manifests.len() == 1 && with_platform == 0 {
        manifests.into_iter().next()
    } else {
        manifests
            .into_iter()
            .find(|d| d.platform().is_some() && fits(d))
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
    descriptor: &Descriptor,
) -> Result<ImageSpec, ImageError> {
    let digest = parse_digest(descriptor.digest(), "manifest descriptor")?;
    let bytes = read_verified(source, &digest, "manifest")?;
    let manifest = ImageManifest::from_reader(&bytes[..]).map_err(|e| ImageError::Json {
        what: format!("manifest {digest}"),
        detail: e.to_string(),
    })?;
    let config_digest = parse_digest(manifest.config().digest(), "config descriptor")?;
    let config = read_verified(source, &config_digest, "config")?;
    let layers = manifest
        .layers()
        .iter()
        .map(|l| {
            let digest = parse_digest(l.digest(), "layer descriptor")?;
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
            media_type: media_type.to_string(),
        })
    }
}
