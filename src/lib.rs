//! snapfs: a content-addressed layer store and snapshotter for containers.
//!
//! An image is an ordered stack of read-only layers plus an OCI config; a container is an
//! image plus its own writable upper directory. snapfs imports layers into one store where
//! every distinct file content is kept once (sha256-addressed), records each layer's entries
//! and tar skeleton in an immutable per-layer file, and merges an image's layers once into a
//! flattened index that a mount reads without walking the layers.
//!
//! Modules, from the bottom up (a module uses only those below it):
//!
//! - [`model`], [`layer`], [`index`]: the pure core — ids and entries, OCI tar parsing and
//!   skeletons, the flattened index. Bytes in, values out; nothing opens a path.
//! - [`store`] (objects and files under the root) and [`db`] (sled records, taken per
//!   operation under the root's lock).
//! - [`image`]: import from OCI layouts, OCI archives, docker archives and rootfs trees;
//!   listing, removal, garbage collection and consistency checks.
//! - [`container`]: containers and the FUSE mount daemon; [`snapshot`]: containerd's
//!   snapshots over the same store and daemon (`snap snapshotter`).
//! - [`cli`]: the `snap` command line.
//! - [`error`]: how an error and its causes are printed, each cause once.
//! - [`sys`]: the only module allowed `unsafe` code (the crate denies `unsafe_code`
//!   elsewhere): mmap, plus file locks, syncfs, xattr reads and unmounting. It is not the only
//!   one to call the kernel: [`fs`] and [`image`] (writing lowerdirs) use rustix's safe calls
//!   directly.
//!
//! The on-disk format is described in `docs/format.md`; what is durable when, in
//! `docs/crash-safety.md`.

pub mod cli;
pub mod container;
pub mod db;
pub mod error;
pub mod fs;
pub mod image;
pub mod index;
pub mod layer;
pub mod model;
pub mod snapshot;
pub mod store;
pub mod sys;
