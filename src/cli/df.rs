//! `snap df [--json]`

use super::output::{self, outln, size};
use crate::image::{Silent, usage};
use crate::store::Store;
use anyhow::Result;

#[derive(clap::Args)]
pub struct DfArgs {
    /// Print one JSON document.
    #[arg(long)]
    json: bool,
}

pub fn run(store: &Store, args: DfArgs) -> Result<i32> {
    let u = usage(store, &Silent)?;
    if args.json {
        output::json(&u)?;
        return Ok(0);
    }
    outln!(
        "logical:   {:>12}  (every image's files, each image counted in full)",
        size(u.logical_bytes)
    )?;
    outln!(
        "contents:  {:>12}  (distinct file contents referenced)",
        size(u.content_bytes)
    )?;
    outln!(
        "stored:    {:>12}  (all files under {}, {} on disk)",
        size(u.stored_bytes),
        store.root().display(),
        size(u.allocated_bytes)
    )?;
    outln!("objects:   {:>12}", u.objects)?;
    outln!("dedup:     {:>11.2}x  (logical / contents)", u.dedup_ratio)?;
    outln!(
        "overhead:  {:>11.3}x  (stored / contents)",
        u.overhead_ratio
    )?;
    outln!("")?;
    let rows: Vec<Vec<String>> = u
        .images
        .iter()
        .map(|i| {
            vec![
                if i.names.is_empty() {
                    "<none>".into()
                } else {
                    i.names.join(",")
                },
                i.id.0.short(),
                i.layers.to_string(),
                size(i.logical_bytes),
                size(i.content_bytes),
                size(i.exclusive_bytes),
            ]
        })
        .collect();
    output::table(
        &["NAME", "ID", "LAYERS", "LOGICAL", "CONTENTS", "EXCLUSIVE"],
        &rows,
    )?;
    Ok(0)
}
