//! `snap rmi IMAGE...`

use super::output::outln;
use crate::image::{Silent, remove};
use crate::store::Store;
use anyhow::{Context, Result};

#[derive(clap::Args)]
pub struct RmiArgs {
    /// Image names or ids.
    #[arg(required = true)]
    images: Vec<String>,
}

pub fn run(store: &Store, args: RmiArgs) -> Result<i32> {
    for name in &args.images {
        let report = remove(store, name, &Silent).with_context(|| format!("removing {name}"))?;
        for tag in &report.untagged {
            outln!("untagged: {tag}")?;
        }
        if report.removed {
            outln!("deleted: {}", report.id)?;
        }
    }
    Ok(0)
}
