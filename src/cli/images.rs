//! `snap images [--json]`

use super::output;
use crate::image::{Silent, list};
use crate::store::Store;
use anyhow::Result;

#[derive(clap::Args)]
pub struct ImagesArgs {
    /// Print one JSON document.
    #[arg(long)]
    json: bool,
}

#[derive(serde::Serialize)]
struct Row {
    names: Vec<String>,
    id: String,
    created: Option<String>,
    layers: usize,
    size: u64,
}

pub fn run(store: &Store, args: ImagesArgs) -> Result<i32> {
    let rows: Vec<Row> = list(store, &Silent)?
        .into_iter()
        .map(|(image, names, size)| Row {
            names,
            id: image.id.to_string(),
            created: image.created.clone(),
            layers: image.layers.len(),
            size,
        })
        .collect();
    if args.json {
        output::json(&rows)?;
        return Ok(0);
    }
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            vec![
                if r.names.is_empty() {
                    "<none>".into()
                } else {
                    r.names.join(",")
                },
                r.id.trim_start_matches("sha256:")[..12].to_string(),
                r.created.clone().unwrap_or_default(),
                r.layers.to_string(),
                output::size(r.size),
            ]
        })
        .collect();
    output::table(&["NAME", "ID", "CREATED", "LAYERS", "SIZE"], &cells)?;
    Ok(0)
}
