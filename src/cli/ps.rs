//! `snap ps [--json]` and `snap rm NAME [--force]`

use super::output::{self, outln, size};
use crate::model::ContainerName;
use crate::store::Store;
use anyhow::{Context, Result};

#[derive(clap::Args)]
pub struct PsArgs {
    /// Print one JSON document.
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args)]
pub struct RmArgs {
    /// Container names.
    #[arg(required = true)]
    names: Vec<ContainerName>,
    /// Unmount first if mounted.
    #[arg(long, short)]
    force: bool,
}

pub fn run(store: &Store, args: PsArgs) -> Result<i32> {
    let list = crate::container::list(store)?;
    if args.json {
        output::json(&list)?;
        return Ok(0);
    }
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|c| {
            vec![
                c.name.to_string(),
                c.image_names
                    .first()
                    .cloned()
                    .unwrap_or_else(|| c.image.0.short()),
                match (&c.mountpoint, c.pid) {
                    (Some(m), _) => m.display().to_string(),
                    (None, Some(_)) => "(detached: bound elsewhere)".into(),
                    (None, None) => "-".into(),
                },
                c.pid.map_or("-".into(), |p| p.to_string()),
                size(c.upper_bytes),
            ]
        })
        .collect();
    output::table(&["NAME", "IMAGE", "MOUNTED AT", "PID", "UPPER"], &rows)?;
    Ok(0)
}

pub fn run_rm(store: &Store, args: RmArgs) -> Result<i32> {
    for name in &args.names {
        crate::container::remove(store, name, args.force)
            .with_context(|| format!("removing container {name}"))?;
        outln!("{name}")?;
    }
    Ok(0)
}
