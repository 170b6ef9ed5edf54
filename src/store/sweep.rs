//! Garbage collection's sweep: removing objects and files that nothing references.

use super::{GcGuard, Store, StoreError, io_err};
use crate::model::{Digest, ImageId, LayerId};
use std::collections::HashSet;
use std::fs;

/// What a sweep removed.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct SweepReport {
    pub objects: u64,
    pub layer_files: u64,
    pub index_files: u64,
    pub tmp_files: u64,
    pub bytes: u64,
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
            let (path, size) = match object {
                Ok((digest, _)) if objects.contains(&digest) => continue,
                Ok((digest, size)) => (self.object_path(&digest), size),
                Err(path) => {
                    let size = fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
                    (path, size)
                }
            };
            fs::remove_file(&path).map_err(io_err(&path))?;
            report.objects += 1;
            report.bytes += size;
        }
        report.layer_files += self.sweep_dir(
            "layers",
            |hex| Digest::from_hex(hex).is_ok_and(|d| layers.contains(&LayerId(d))),
            &mut report.bytes,
        )?;
        report.index_files += self.sweep_dir(
            "index",
            |hex| Digest::from_hex(hex).is_ok_and(|d| images.contains(&ImageId(d))),
            &mut report.bytes,
        )?;
        // Only gc-lock holders write under tmp/, and we hold it exclusively.
        report.tmp_files += self.sweep_dir("tmp", |_| false, &mut report.bytes)?;
        Ok(report)
    }

    fn sweep_dir(
        &self,
        dir: &str,
        keep: impl Fn(&str) -> bool,
        bytes: &mut u64,
    ) -> Result<u64, StoreError> {
        let base = self.root.join(dir);
        let mut removed = 0;
        for item in fs::read_dir(&base).map_err(io_err(&base))? {
            let item = item.map_err(io_err(&base))?;
            if item.file_name().to_str().is_some_and(&keep) {
                continue;
            }
            let path = item.path();
            let meta = fs::symlink_metadata(&path).map_err(io_err(&path))?;
            *bytes += meta.len();
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
