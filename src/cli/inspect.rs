//! `snap inspect IMAGE [--json]`

use super::output::{self, outln};
use crate::image::{Silent, inspect};
use crate::store::Store;
use anyhow::{Context, Result};

#[derive(clap::Args)]
pub struct InspectArgs {
    /// Image name or id (a unique prefix is enough).
    image: String,
    /// Print one JSON document.
    #[arg(long)]
    json: bool,
}

pub fn run(store: &Store, args: InspectArgs) -> Result<i32> {
    let found = inspect(store, &args.image, &Silent)
        .with_context(|| format!("inspecting {}", args.image))?;
    if args.json {
        output::json(&found)?;
        return Ok(0);
    }
    let image = &found.image;
    outln!("Id:       {}", image.id)?;
    outln!("Names:    {}", found.names.join(", "))?;
    outln!("Created:  {}", image.created.as_deref().unwrap_or("-"))?;
    outln!("Platform: {}/{}", image.os, image.architecture)?;
    outln!("Source:   {}", image.source)?;
    let config = &found.config["config"];
    for key in ["Entrypoint", "Cmd", "Env", "WorkingDir", "User"] {
        if let Some(value) = config.get(key).filter(|v| !v.is_null()) {
            outln!("{key:<9} {value}")?;
        }
    }
    outln!("Layers:")?;
    let rows: Vec<Vec<String>> = image
        .layers
        .iter()
        .zip(&found.layer_details)
        .enumerate()
        .map(|(i, (layer, detail))| {
            vec![
                i.to_string(),
                layer.diff_id.to_string(),
                layer
                    .blob
                    .as_ref()
                    .map_or("-".into(), |b| b.digest.to_string()),
                layer
                    .blob
                    .as_ref()
                    .map_or("-".into(), |b| output::size(b.size)),
                detail
                    .as_ref()
                    .map_or("-".into(), |d| output::size(d.tar_size)),
                detail
                    .as_ref()
                    .map_or("-".into(), |d| d.entries.to_string()),
            ]
        })
        .collect();
    output::table(
        &["#", "DIFF_ID", "BLOB", "BLOB SIZE", "TAR SIZE", "ENTRIES"],
        &rows,
    )?;
    if let Some(history) = found.config["history"].as_array() {
        outln!("History:")?;
        for h in history {
            let created = h["created"].as_str().unwrap_or("-");
            let by = h["created_by"].as_str().unwrap_or("");
            let empty = if h["empty_layer"].as_bool() == Some(true) {
                " (no layer)"
            } else {
                ""
            };
            outln!("  {created}  {by}{empty}")?;
        }
    }
    Ok(0)
}
