//! `snap lowerdirs IMAGE DIR`: the image's layers as overlayfs lower dirs (for comparisons).

use super::output::outln;
use crate::image::{Silent, lowerdirs};
use crate::store::Store;
use anyhow::{Context, Result};
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct LowerdirsArgs {
    /// Image name or id.
    image: String,
    /// Where to write layer0, layer1, ... (bottom first).
    dir: PathBuf,
}

pub fn run(store: &Store, args: LowerdirsArgs) -> Result<i32> {
    let dirs = lowerdirs(store, &args.image, &args.dir, &Silent)
        .with_context(|| format!("writing the layers of {}", args.image))?;
    // Top first, ':'-separated: ready for `mount -t overlay -o lowerdir=...`.
    let joined: Vec<String> = dirs.iter().map(|d| d.display().to_string()).collect();
    outln!("{}", joined.join(":"))?;
    Ok(0)
}
