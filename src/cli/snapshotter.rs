//! `snap snapshotter --address SOCKET`: containerd's proxy snapshotter over the store, and
//! `snap serve-dir` (hidden): the mount daemon of one of its snapshots.

use crate::store::Store;
use anyhow::{Context, Result};
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct SnapshotterArgs {
    /// The unix socket containerd's `proxy_plugins` entry names.
    #[arg(long, default_value = "/run/snapfs/snapfs.sock")]
    address: PathBuf,
}

#[derive(clap::Args)]
pub struct ServeDirArgs {
    /// The flattened index to serve (a layer stack's id).
    #[arg(long)]
    index: String,
    /// Mount read-only (a view).
    #[arg(long)]
    read_only: bool,
    /// The directory holding `upper` and `work`.
    dir: PathBuf,
    mountpoint: PathBuf,
}

pub fn run(store: &Store, args: SnapshotterArgs) -> Result<i32> {
    crate::snapshot::serve(store.root(), &args.address)
        .with_context(|| format!("serving snapshots on {}", args.address.display()))?;
    Ok(0)
}

pub fn run_serve_dir(store: &Store, args: ServeDirArgs) -> Result<i32> {
    let index = crate::model::ImageId(args.index.parse().context("--index")?);
    crate::container::serve_dir(
        Store::open(store.root())?,
        &args.dir,
        &index,
        &args.mountpoint,
        args.read_only,
    )
    .with_context(|| {
        format!(
            "serving {} at {}",
            args.dir.display(),
            args.mountpoint.display()
        )
    })?;
    Ok(0)
}
