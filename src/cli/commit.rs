//! `snap commit CONTAINER IMAGE [-m MESSAGE] [-a AUTHOR] [-c CHANGE]...`

use super::output::{self, outln};
use super::progress::Bar;
use crate::image::CommitOptions;
use crate::model::ContainerName;
use crate::store::Store;
use anyhow::{Context, Result};

#[derive(clap::Args)]
pub struct CommitArgs {
    /// The container whose changes become the new layer.
    container: ContainerName,
    /// The new image's name.
    image: String,
    /// A comment for the new layer's history entry.
    #[arg(long, short)]
    message: Option<String>,
    /// The author (`Name <email>`).
    #[arg(long, short)]
    author: Option<String>,
    /// A config change, as `docker commit --change` takes it: CMD, ENTRYPOINT, ENV, WORKDIR,
    /// USER, LABEL or EXPOSE (repeatable).
    #[arg(long = "change", short = 'c', value_name = "INSTRUCTION")]
    changes: Vec<String>,
    /// No progress bar.
    #[arg(long, short)]
    quiet: bool,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

pub fn run(store: &Store, args: CommitArgs) -> Result<i32> {
    let options = CommitOptions {
        name: args.image.clone(),
        message: args.message,
        author: args.author,
        changes: args.changes,
        created_by: format!("snap commit {}", args.container),
    };
    let bar = Bar::new(args.quiet || args.json);
    let report = crate::container::commit(store, &args.container, &options, &bar)
        .with_context(|| format!("committing container {} as {}", args.container, args.image))?;
    if args.json {
        output::json(&report)?;
    } else if !args.quiet {
        outln!(
            "committed {} as {}: {} entries, {} files ({}), {} new objects ({})",
            args.container,
            report.name,
            report.entries,
            report.files,
            output::size(report.content_bytes),
            report.new_objects,
            output::size(report.new_bytes),
        )?;
        outln!("{}", report.id)?;
    }
    Ok(0)
}
