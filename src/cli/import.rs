//! `snap import SOURCE [--name NAME] [--tag TAG] [--platform OS/ARCH]`

use super::output::{self, outln};
use super::progress::Bar;
use crate::image::{ImportOptions, import};
use crate::store::Store;
use anyhow::{Context, Result};
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct ImportArgs {
    /// OCI layout directory, OCI archive, docker archive, or rootfs directory/tar.
    source: PathBuf,
    /// Name the image (default: the name the source gives it, else the file name).
    #[arg(long)]
    name: Option<String>,
    /// Which image of a source holding several (OCI ref name or docker RepoTag).
    #[arg(long)]
    tag: Option<String>,
    /// Platform to pick from a multi-platform index (default: this machine's).
    #[arg(long, value_name = "OS/ARCH")]
    platform: Option<String>,
    /// Also keep the layers' compressed blobs, so that `snap export` gives the original layer
    /// digests (the blobs take their size again in the store).
    #[arg(long)]
    keep_blobs: bool,
    /// No progress bar.
    #[arg(long, short)]
    quiet: bool,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

pub fn run(store: &Store, args: ImportArgs) -> Result<i32> {
    let options = ImportOptions {
        name: args.name,
        tag: args.tag,
        platform: args.platform,
        keep_blobs: args.keep_blobs,
    };
    let bar = Bar::new(args.quiet || args.json);
    let report = import(store, &args.source, &options, &bar)
        .with_context(|| format!("importing {}", args.source.display()))?;
    if args.json {
        output::json(&report)?;
    } else if !args.quiet {
        outln!(
            "imported {} as {} ({} layer(s), {} reused): {} new objects ({}), {} already stored ({})",
            args.source.display(),
            report.name.as_deref().unwrap_or("<no name>"),
            report.layers,
            report.reused_layers,
            report.new_objects,
            output::size(report.new_bytes),
            report.existing_objects,
            output::size(report.existing_bytes),
        )?;
        outln!("{}", report.id)?;
    }
    Ok(0)
}
