//! `snap export IMAGE -o FILE [--format oci|docker|oci-dir] [--compress gzip|zstd|none]`

use super::output::{self, outln};
use super::progress::Bar;
use crate::image::{ExportFormat, ExportOptions, LayerCompression, export};
use crate::store::Store;
use anyhow::{Context, Result};
use std::path::PathBuf;

#[derive(Clone, Copy, clap::ValueEnum)]
enum Format {
    /// OCI image layout in a tar (ctr image import, skopeo oci-archive:, umoci after untar).
    Oci,
    /// docker-archive tar (docker load, ctr image import, skopeo docker-archive:).
    Docker,
    /// OCI image layout directory (umoci, skopeo oci:).
    OciDir,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum Compress {
    Gzip,
    Zstd,
    None,
}

#[derive(clap::Args)]
pub struct ExportArgs {
    /// Image name or id.
    image: String,
    /// Where to write the archive (or the directory, for oci-dir).
    #[arg(long, short)]
    output: PathBuf,
    #[arg(long, value_enum, default_value = "oci")]
    format: Format,
    /// Layer compression (default: gzip for OCI, none for docker, as `docker save` writes).
    #[arg(long, value_enum)]
    compress: Option<Compress>,
    /// No progress bar.
    #[arg(long, short)]
    quiet: bool,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

pub fn run(store: &Store, args: ExportArgs) -> Result<i32> {
    let format = match args.format {
        Format::Oci => ExportFormat::Oci,
        Format::Docker => ExportFormat::Docker,
        Format::OciDir => ExportFormat::OciDir,
    };
    let compression = match (args.compress, format) {
        (Some(Compress::Gzip), _) => LayerCompression::Gzip,
        (Some(Compress::Zstd), _) => LayerCompression::Zstd,
        (Some(Compress::None), _) | (None, ExportFormat::Docker) => LayerCompression::None,
        (None, _) => LayerCompression::Gzip,
    };
    let options = ExportOptions {
        format,
        compression,
    };
    let bar = Bar::new(args.quiet || args.json);
    let report = export(store, &args.image, &args.output, &options, &bar)
        .with_context(|| format!("exporting {} to {}", args.image, args.output.display()))?;
    if args.json {
        output::json(&report)?;
    } else if !args.quiet {
        outln!(
            "exported {} ({}) to {}: {} layer(s), {}",
            report.name,
            report.id.0.short(),
            args.output.display(),
            report.layers.len(),
            output::size(report.bytes),
        )?;
    }
    Ok(0)
}
