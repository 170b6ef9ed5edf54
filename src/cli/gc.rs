//! `snap gc [--json]`: what it removed, and the files it left alone because the store does
//! not name its own files so.

use super::output::{self, outln, size};
use crate::image::{Silent, gc};
use crate::store::Store;
use anyhow::Result;

#[derive(clap::Args)]
pub struct GcArgs {
    /// Print one JSON document.
    #[arg(long)]
    json: bool,
}

pub fn run(store: &Store, args: GcArgs) -> Result<i32> {
    let report = gc(store, &Silent)?;
    if args.json {
        output::json(&report)?;
    } else {
        outln!(
            "removed {} objects, {} layer files, {} indexes, {} tmp files: {} freed",
            report.objects,
            report.layer_files,
            report.index_files,
            report.tmp_files,
            size(report.bytes)
        )?;
        if !report.unknown.is_empty() {
            outln!(
                "left alone {} files that snapfs does not name so (not made by it):",
                report.unknown.len()
            )?;
            for path in &report.unknown {
                outln!("  {}", path.display())?;
            }
        }
    }
    Ok(0)
}
