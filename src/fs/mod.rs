//! The FUSE filesystem: one container's union view of its image (the flattened index over
//! the store's objects) and its upper directory.
//!
//! Lookup goes to the upper directory first (a whiteout hides the name, an opaque directory
//! hides the lower tree below it), then to the index. Reads of lower files are passed through
//! to the store object, reads and writes of upper files to the upper file (FUSE passthrough,
//! one `BackingId` per inode), so data never crosses the daemon. The first change to a lower
//! entry copies it up (parents first, metadata kept). The upper directory uses overlayfs's
//! format, so kernel overlayfs can mount it too.
//!
//! The files, each using only those listed before it (docs/mount.md draws the map):
//!
//! - `id.rs` (node ids: the one place index and upper inodes map to them), `error.rs`,
//!   `path.rs`, `stale.rs` (names whose node changed, for the kernel to drop); `attr.rs`, `setid.rs` (the caller and the setuid/setgid policy), `locks.rs`;
//! - `upper/`: the only door into the upper and work directories (every path resolved
//!   beneath the root, no symlink followed);
//! - `nodes.rs` (the node table), `lookup.rs` (the two layers by path: lookup, attributes,
//!   listings, readlink), `copy_up.rs`;
//! - `union.rs`: [`UnionFs`], the layers by node id, with the namespace locks;
//! - the operations: `open.rs`, `create.rs`, `rename.rs`, `setattr.rs`, `readdir.rs`;
//! - `handles.rs` (open files, backing ids, passthrough), `notify.rs` (the thread telling
//!   the kernel what to drop), `dispatch.rs` (fuser's trait).

mod attr;
mod copy_up;
mod create;
mod dispatch;
mod error;
mod handles;
mod id;
mod locks;
mod lookup;
mod nodes;
mod notify;
mod open;
mod path;
mod readdir;
mod rename;
mod reply;
mod setattr;
mod setid;
mod stale;
mod union;
mod upper;

#[cfg(test)]
mod tests;

pub use dispatch::Mounted;
pub use error::FsError;
pub use id::NodeId;
pub use union::UnionFs;
pub use upper::Upper;

/// Mounts `fs` at `mountpoint` as a container rootfs (`dev`, `suid`, `allow_other`,
/// `default_permissions`; read-only if asked), calls `on_mounted` once the mount exists, and
/// serves requests until it is unmounted.
pub fn serve(
    fs: Mounted,
    mountpoint: &std::path::Path,
    read_only: bool,
    on_mounted: impl FnOnce(),
) -> Result<(), FsError> {
    use fuser::MountOption;
    let mut config = fuser::Config::default();
    config.mount_options = vec![
        MountOption::FSName("snapfs".into()),
        MountOption::Subtype("snapfs".into()),
        MountOption::DefaultPermissions,
        MountOption::Dev,
        MountOption::Suid,
        if read_only {
            MountOption::RO
        } else {
            MountOption::RW
        },
    ];
    config.acl = fuser::SessionACL::All;
    config.n_threads = Some(
        std::thread::available_parallelism()
            .map_or(2, |n| n.get())
            .clamp(2, 8),
    );
    config.clone_fd = true;
    let fail = |e: std::io::Error| FsError::io(mountpoint.as_os_str().as_encoded_bytes(), e);
    let union = fs.union();
    let session = fuser::Session::new(fs, mountpoint, &config).map_err(fail)?;
    notify::spawn(union, session.notifier()).map_err(fail)?;
    on_mounted();
    session.run().map_err(fail)
}
