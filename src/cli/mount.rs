//! `snap mount NAME MOUNTPOINT [--foreground]` and `snap umount [--lazy] NAME`

use super::output::outln;
use crate::model::ContainerName;
use crate::store::Store;
use anyhow::{Context, Result};
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct MountArgs {
    /// Container name.
    name: ContainerName,
    /// Where to mount its root filesystem.
    mountpoint: PathBuf,
    /// Serve in this process until unmounted (the background daemon runs this).
    #[arg(long)]
    foreground: bool,
    /// The container's image id, when already known (given to the background daemon).
    #[arg(long, hide = true)]
    image: Option<String>,
}

#[derive(clap::Args)]
pub struct UmountArgs {
    /// Container name.
    name: ContainerName,
    /// Detach the mount even while processes use it; its daemon serves them and exits once
    /// they are done (without it, a mount in use is refused).
    #[arg(long, short)]
    lazy: bool,
}

pub fn run(store: &Store, args: MountArgs) -> Result<i32> {
    if args.foreground {
        let store = Store::open(store.root())?;
        let image = match &args.image {
            Some(text) => Some(crate::model::ImageId(text.parse().context("--image")?)),
            None => None,
        };
        crate::container::serve(store, &args.name, image, &args.mountpoint).with_context(|| {
            format!(
                "serving container {} at {}",
                args.name,
                args.mountpoint.display()
            )
        })?;
        return Ok(0);
    }
    let pid = crate::container::mount(store, &args.name, &args.mountpoint)
        .with_context(|| format!("mounting container {}", args.name))?;
    outln!(
        "mounted {} at {} (daemon pid {pid})",
        args.name,
        args.mountpoint.display()
    )?;
    Ok(0)
}

pub fn run_umount(store: &Store, args: UmountArgs) -> Result<i32> {
    let state = crate::container::umount(store, &args.name, args.lazy)
        .with_context(|| format!("unmounting container {}", args.name))?;
    match state {
        Some(state) => outln!(
            "unmounted {} from {}",
            args.name,
            state.mountpoint.display()
        )?,
        None => outln!(
            "detached {}; its daemon exits once the processes using it are done",
            args.name
        )?,
    }
    Ok(0)
}
