//! `snap create IMAGE NAME`

use super::output::outln;
use crate::model::ContainerName;
use crate::store::Store;
use anyhow::{Context, Result};

#[derive(clap::Args)]
pub struct CreateArgs {
    /// Image name or id.
    image: String,
    /// Container name (letters, digits, '-', '_', '.').
    name: ContainerName,
}

pub fn run(store: &Store, args: CreateArgs) -> Result<i32> {
    let record = crate::container::create(store, &args.image, &args.name)
        .with_context(|| format!("creating container {} from {}", args.name, args.image))?;
    outln!("{}", record.name)?;
    Ok(0)
}
