//! docker-archive tars (`docker save`): `manifest.json` with `Config`, `RepoTags`, `Layers`.

use super::ImageError;
use super::archive::BlobSource;
use super::json;
use super::spec::{ImageSpec, LayerBlob};
use crate::model::{Digest, excerpt_list};
use serde::{Deserialize, Serialize};

/// One image of `manifest.json`.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ManifestEntry {
    pub config: String,
    #[serde(default)]
    pub repo_tags: Option<Vec<String>>,
    pub layers: Vec<String>,
}

/// A digest named by a member path such as `blobs/sha256/<hex>` or `<hex>.json`, if any.
fn digest_in_path(path: &str) -> Option<Digest> {
    let file = path.rsplit('/').next()?;
    let hex = file.strip_suffix(".json").unwrap_or(file);
    Digest::from_hex(hex).ok()
}

/// Picks one image from `manifest.json` (by `tag` if given).
pub fn read_docker_archive(
    source: &dyn BlobSource,
    tag: Option<&str>,
) -> Result<ImageSpec, ImageError> {
    let name = source.name();
    let bytes = source.read("manifest.json", "manifest.json")?;
    let entries: Vec<ManifestEntry> = json::parse(&bytes, &format!("{name} manifest.json"))?;
    let all_tags = || {
        let tags: Vec<&str> = entries
            .iter()
            .flat_map(|e| e.repo_tags.iter().flatten())
            .map(String::as_str)
            .collect();
        if tags.is_empty() {
            "(no tags)".to_string()
        } else {
            excerpt_list(tags)
        }
    };
    let chosen: Vec<&ManifestEntry> = match tag {
        Some(tag) => entries
            .iter()
            .filter(|e| {
                e.repo_tags.iter().flatten().any(|t| {
                    t == tag
                        || t.rsplit_once(':')
                            .is_some_and(|(repo, t)| t == tag || repo == tag)
                })
            })
            .collect(),
        None => entries.iter().collect(),
    };
    let entry = match chosen.as_slice() {
        [] if entries.is_empty() => return Err(ImageError::Empty { source_name: name }),
        [] => {
            return Err(ImageError::NoSuchTag {
                source_name: name,
                tag: tag.unwrap_or("").into(),
                tags: all_tags(),
            });
        }
        [one] => *one,
        _ => {
            return Err(ImageError::SeveralImages {
                source_name: name,
                tags: all_tags(),
            });
        }
    };
    let config = source.read(&entry.config, "config")?;
    if let Some(expected) = digest_in_path(&entry.config) {
        let actual = Digest::of(&config);
        if actual != expected {
            return Err(ImageError::DigestMismatch {
                what: format!("config {}", entry.config),
                expected,
                actual,
            });
        }
    }
    let layers = entry
        .layers
        .iter()
        .map(|path| LayerBlob {
            path: path.clone(),
            digest: path
                .starts_with("blobs/")
                .then(|| digest_in_path(path))
                .flatten(),
            media_type: "application/vnd.docker.image.rootfs.diff.tar".into(),
            size: None,
        })
        .collect();
    let ref_name = match tag {
        Some(tag) => entry
            .repo_tags
            .iter()
            .flatten()
            .find(|t| t.as_str() == tag || t.ends_with(&format!(":{tag}")))
            .cloned(),
        None => entry.repo_tags.as_ref().and_then(|t| t.first().cloned()),
    };
    Ok(ImageSpec {
        config,
        layers,
        ref_name,
    })
}
