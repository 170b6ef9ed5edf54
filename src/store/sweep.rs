//! Garbage collection's sweep: removing objects and files that nothing references.
//!
//! Only what the store names as its own is removed: objects named
//! `objects/sha256/<2 hex>/<64 hex>`, layer and index files named by a digest, and tmp files
//! named `<what>-<pid>-<n>` ([`Store::tmp_path`]). Anything else under the root was not
//! written by snapfs; it is left alone and reported ([`SweepReport::unknown`]).

use super::{GcGuard, Store, StoreError, io_err};
use crate::model::{Digest, ImageId, LayerId};
use std::collections::HashSet;
use std::fs;
use std::path::PathBuf;

/// What a sweep removed, and what it left alone.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct SweepReport {
    pub objects: u64,
    pub layer_files: u64,
    pub index_files: u64,
    pub tmp_files: u64,
    pub bytes: u64,
    /// Files and directories that the store does not name so: not removed.
    pub unknown: Vec<PathBuf>,
}

impl Store {
    /// Removes every object, layer file, index file and tmp file not in the given live sets.
    ///
    /// The caller computes the live sets (from the database and the layer files) after taking
    /// the [`GcGuard`]: no import can then be between writing objects and naming them.
    pub fn sweep(
        &self,
        _guard: &GcGuard,
        objects: &HashSet<Digest>,
        layers: &HashSet<LayerId>,
        images: &HashSet<ImageId>,
    ) -> Result<SweepReport, StoreError> {
        let mut report = SweepReport::default();
        for object in self.list_objects()? {
            match object {
                Ok((digest, _)) if objects.contains(&digest) => {}
                Ok((digest, size)) => {
                    let path = self.object_path(&digest);
                    fs::remove_file(&path).map_err(io_err(&path))?;
                    report.objects += 1;
                    report.bytes += size;
                }
                Err(path) => report.unknown.push(path),
            }
        }
        report.layer_files += self.sweep_dir(
            "layers",
            |name| digest_named(name, |d| layers.contains(&LayerId(d))),
            &mut report,
        )?;
        report.index_files += self.sweep_dir(
            "index",
            |name| digest_named(name, |d| images.contains(&ImageId(d))),
            &mut report,
        )?;
        // Only gc-lock holders write under tmp/, and we hold it exclusively.
        report.tmp_files += self.sweep_dir(
            "tmp",
            |name| {
                if is_tmp_name(name) {
                    Name::Garbage
                } else {
                    Name::Unknown
                }
            },
            &mut report,
        )?;
        report.unknown.sort();
        Ok(report)
    }

    fn sweep_dir(
        &self,
        dir: &str,
        judge: impl Fn(&str) -> Name,
        report: &mut SweepReport,
    ) -> Result<u64, StoreError> {
        let base = self.root.join(dir);
        let mut removed = 0;
        for item in fs::read_dir(&base).map_err(io_err(&base))? {
            let item = item.map_err(io_err(&base))?;
            let path = item.path();
            match item.file_name().to_str().map(&judge) {
                Some(Name::Live) => continue,
                Some(Name::Garbage) => {}
                Some(Name::Unknown) | None => {
                    report.unknown.push(path);
                    continue;
                }
            }
            let meta = fs::symlink_metadata(&path).map_err(io_err(&path))?;
            report.bytes += meta.len();
            if meta.is_dir() {
                fs::remove_dir_all(&path).map_err(io_err(&path))?;
            } else {
                fs::remove_file(&path).map_err(io_err(&path))?;
            }
            removed += 1;
        }
        Ok(removed)
    }
}

/// What a name in a swept directory is.
enum Name {
    /// Named as the store names its files, and still referenced.
    Live,
    /// Named as the store names its files, and no longer referenced.
    Garbage,
    /// Not a name the store gives: someone else's file.
    Unknown,
}

/// A layer or index file's name: a digest, live if `live` says so.
fn digest_named(name: &str, live: impl Fn(Digest) -> bool) -> Name {
    match Digest::from_hex(name) {
        Ok(digest) if live(digest) => Name::Live,
        Ok(_) => Name::Garbage,
        Err(_) => Name::Unknown,
    }
}

/// Whether `name` is one [`Store::tmp_path`] (or a writer using its pattern) gives:
/// `<lowercase word>-<pid>-<n>`.
fn is_tmp_name(name: &str) -> bool {
    let mut parts = name.split('-');
    let word = parts.next().unwrap_or_default();
    let numbers: Vec<&str> = parts.collect();
    !word.is_empty()
        && word.bytes().all(|b| b.is_ascii_lowercase())
        && numbers.len() == 2
        && numbers
            .iter()
            .all(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tmp_names_are_the_stores_own() {
        for name in ["object-12-0", "file-1-22", "commit-4242-3", "export-9-1"] {
            assert!(is_tmp_name(name), "{name}");
        }
        for name in [
            "notes.txt",
            "object-12",
            "object-12-0-1",
            "Object-1-2",
            "-1-2",
            "x-1-",
        ] {
            assert!(!is_tmp_name(name), "{name}");
        }
    }
}
