//! `snap fsck [--json]`: exit 1 when a problem is found.

use super::output;
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
        println!(
            "checked {} objects, {} layers, {} images; {} unreferenced objects (snap gc removes them)",
            report.objects_checked,
            report.layers_checked,
            report.images_checked,
            report.unreferenced_objects
        );
        for p in &report.problems {
            println!("{}: {}", p.kind, p.detail);
        }
        if report.problems.is_empty() {
            println!("no problems");
        } else {
            eprintln!("error: {} problem(s) found", report.problems.len());
        }
    }
    Ok(if report.problems.is_empty() { 0 } else { 1 })
}
