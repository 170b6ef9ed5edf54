//! `snap fsck [--json]`: exit 1 when a problem is found.

use super::output::{self, outln};
use crate::image::{Silent, fsck};
use crate::store::Store;
use anyhow::Result;

#[derive(clap::Args)]
pub struct FsckArgs {
    /// Print one JSON document.
    #[arg(long)]
    json: bool,
}

pub fn run(store: &Store, args: FsckArgs) -> Result<i32> {
    let report = fsck(store, &Silent)?;
    if args.json {
        output::json(&report)?;
    } else {
        outln!(
            "checked {} objects, {} layers, {} images; {} unreferenced objects (snap gc removes them)",
            report.objects_checked,
            report.layers_checked,
            report.images_checked,
            report.unreferenced_objects
        )?;
        for p in &report.problems {
            outln!("{}: {}", p.kind, p.detail)?;
        }
        if report.problems.is_empty() {
            outln!("no problems")?;
        } else {
            eprintln!("error: {} problem(s) found", report.problems.len());
        }
    }
    Ok(if report.problems.is_empty() { 0 } else { 1 })
}
