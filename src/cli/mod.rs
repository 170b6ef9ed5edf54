//! The `snap` command line: argument parsing, one file per command, progress bars, tables
//! and JSON output. Errors get their context here (anyhow) and exit non-zero, printed with
//! each cause once ([`crate::error::Chain`]). Commands print through
//! `output::outln!`, never `println!`, so that a closed stdout ends them quietly.

#![deny(clippy::print_stdout)]

mod commit;
mod create;
mod df;
mod export;
mod fsck;
mod gc;
mod images;
mod import;
mod inspect;
mod lowerdirs;
mod mount;
mod output;
mod progress;
mod ps;
mod rmi;
mod snapshotter;

use crate::store::Store;
use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use std::path::PathBuf;

/// snapfs: a content-addressed layer store for container images.
#[derive(Parser)]
#[command(name = "snap", version, about, long_about = None)]
struct Args {
    /// The store's root directory.
    #[arg(
        long,
        global = true,
        env = "SNAPFS_ROOT",
        default_value = "/var/lib/snapfs"
    )]
    root: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Import an image: OCI layout dir, OCI archive, docker archive, or a rootfs dir/tar.
    Import(import::ImportArgs),
    /// Write an image as an OCI archive, OCI layout directory or docker-archive.
    Export(export::ExportArgs),
    /// List images.
    Images(images::ImagesArgs),
    /// Show an image's config, layers and history.
    Inspect(inspect::InspectArgs),
    /// Remove an image name, and the image once it has no name left.
    Rmi(rmi::RmiArgs),
    /// Show what the images take, logically and in the store.
    Df(df::DfArgs),
    /// Remove objects and files that no image references.
    Gc(gc::GcArgs),
    /// Re-hash every object and check every reference; exit 1 if anything is wrong.
    Fsck(fsck::FsckArgs),
    /// Create a container: an image plus its own writable upper directory.
    Create(create::CreateArgs),
    /// Mount a container's root filesystem (FUSE); returns once it is mounted.
    Mount(mount::MountArgs),
    /// Unmount a container; its daemon exits.
    Umount(mount::UmountArgs),
    /// Turn a container's changes into a new image (the container keeps running).
    Commit(commit::CommitArgs),
    /// List containers.
    Ps(ps::PsArgs),
    /// Remove containers and their changes (the image stays).
    Rm(ps::RmArgs),
    /// Write an image's layers as overlayfs lower dirs; prints the lowerdir= value.
    Lowerdirs(lowerdirs::LowerdirsArgs),
    /// Serve containerd's snapshots API (a proxy snapshotter) over the store.
    Snapshotter(snapshotter::SnapshotterArgs),
    /// The mount daemon of a snapshot (started by the snapshotter).
    #[command(hide = true)]
    ServeDir(snapshotter::ServeDirArgs),
}

/// Runs `snap` and exits.
pub fn main() {
    let filter =
        tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    match run(args) {
        Ok(code) => std::process::exit(code),
        Err(e) if e.chain().any(|cause| cause.is::<output::StdoutClosed>()) => {
            std::process::exit(output::CLOSED_STATUS)
        }
        Err(e) => {
            eprintln!("error: {}", crate::error::Chain(e.as_ref()));
            std::process::exit(1);
        }
    }
}

impl Command {
    /// Whether the command only reads the store: it then creates nothing, not even the root
    /// ([`Store::open_read_only`]), and works on a read-only store.
    fn reads_only(&self) -> bool {
        matches!(
            self,
            Command::Images(_)
                | Command::Inspect(_)
                | Command::Df(_)
                | Command::Fsck(_)
                | Command::Ps(_)
        )
    }
}

fn run(args: Args) -> Result<i32> {
    let store = if args.command.reads_only() {
        Store::open_read_only(&args.root)
    } else {
        Store::open(&args.root)
    }
    .with_context(|| format!("opening the store at {}", args.root.display()))?;
    match args.command {
        Command::Import(a) => import::run(&store, a),
        Command::Export(a) => export::run(&store, a),
        Command::Images(a) => images::run(&store, a),
        Command::Inspect(a) => inspect::run(&store, a),
        Command::Rmi(a) => rmi::run(&store, a),
        Command::Df(a) => df::run(&store, a),
        Command::Gc(a) => gc::run(&store, a),
        Command::Fsck(a) => fsck::run(&store, a),
        Command::Create(a) => create::run(&store, a),
        Command::Mount(a) => mount::run(&store, a),
        Command::Umount(a) => mount::run_umount(&store, a),
        Command::Commit(a) => commit::run(&store, a),
        Command::Ps(a) => ps::run(&store, a),
        Command::Rm(a) => ps::run_rm(&store, a),
        Command::Lowerdirs(a) => lowerdirs::run(&store, a),
        Command::Snapshotter(a) => snapshotter::run(&store, a),
        Command::ServeDir(a) => snapshotter::run_serve_dir(&store, a),
    }
}
