//! `snap lowerdirs`: writes each layer of an image as a kernel overlayfs lower directory
//! (whiteouts as 0/0 character devices, opaque directories marked `trusted.overlay.opaque=y`),
//! so that overlayfs and fuse-overlayfs can mount the very layers snapfs mounts: the
//! reference for tests and benchmarks.

use super::{ImageError, Progress, io_err, open_db};
use crate::model::Kind;
use crate::store::Store;
use rustix::fs::{AtFlags, CWD, FileType, Gid, Mode, Timespec, Timestamps, Uid, XattrFlags};
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

fn sys_err(path: &Path) -> impl FnOnce(rustix::io::Errno) -> ImageError + '_ {
    move |e| ImageError::Io {
        path: path.to_path_buf(),
        source: e.into(),
    }
}

/// Writes `layer0`, `layer1`, ... under `dir` (bottom first) and returns them top first, as
/// overlayfs's `lowerdir=` wants them.
pub fn lowerdirs(
    store: &Store,
    image: &str,
    dir: &Path,
    progress: &dyn Progress,
) -> Result<Vec<PathBuf>, ImageError> {
    let record = open_db(store, progress)?.resolve(image)?;
    let mut out = Vec::new();
    for (i, layer) in record.layers.iter().enumerate() {
        let base = dir.join(format!("layer{i}"));
        std::fs::create_dir_all(&base).map_err(io_err(&base))?;
        let file = store.read_layer(&layer.diff_id)?;
        for entry in &file.entries {
            write_entry(store, &base, entry)?;
        }
        // Times last, deepest first, so that creating children does not change them.
        let mut entries: Vec<_> = file
            .entries
            .iter()
            .filter(|e| !matches!(e.kind, Kind::Whiteout | Kind::Opaque))
            .collect();
        entries.sort_by(|a, b| b.path.cmp(&a.path));
        for entry in entries {
            let path = base.join(OsStr::from_bytes(entry.path.as_bytes()));
            let t = Timespec {
                tv_sec: entry.meta.mtime_sec,
                tv_nsec: entry.meta.mtime_nsec as _,
            };
            rustix::fs::utimensat(
                CWD,
                &path,
                &Timestamps {
                    last_access: t,
                    last_modification: t,
                },
                AtFlags::SYMLINK_NOFOLLOW,
            )
            .map_err(sys_err(&path))?;
        }
        out.push(base);
    }
    out.reverse();
    Ok(out)
}

fn write_entry(store: &Store, base: &Path, entry: &crate::model::Entry) -> Result<(), ImageError> {
    let path = base.join(OsStr::from_bytes(entry.path.as_bytes()));
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(io_err(parent))?;
    }
    let remove = |p: &Path| {
        if let Ok(meta) = std::fs::symlink_metadata(p) {
            let _ = if meta.is_dir() && !matches!(entry.kind, Kind::Dir | Kind::Opaque) {
                std::fs::remove_dir_all(p)
            } else if meta.is_dir() {
                Ok(())
            } else {
                std::fs::remove_file(p)
            };
        }
    };
    remove(&path);
    let node = |ft: FileType, dev: u64| {
        rustix::fs::mknodat(CWD, &path, ft, Mode::from_raw_mode(0o600), dev).map_err(sys_err(&path))
    };
    match &entry.kind {
        Kind::Dir => std::fs::create_dir_all(&path).map_err(io_err(&path))?,
        Kind::File { digest, .. } => {
            std::fs::copy(store.object_path(digest), &path).map_err(io_err(&path))?;
        }
        Kind::Hardlink { target } => {
            let target = base.join(OsStr::from_bytes(target.as_bytes()));
            return std::fs::hard_link(&target, &path).map_err(io_err(&path));
        }
        Kind::Symlink { target } => {
            std::os::unix::fs::symlink(OsStr::from_bytes(target), &path).map_err(io_err(&path))?
        }
        Kind::CharDevice { major, minor } => node(
            FileType::CharacterDevice,
            rustix::fs::makedev(*major, *minor),
        )?,
        Kind::BlockDevice { major, minor } => {
            node(FileType::BlockDevice, rustix::fs::makedev(*major, *minor))?
        }
        Kind::Fifo => node(FileType::Fifo, 0)?,
        Kind::Whiteout => {
            if std::fs::symlink_metadata(&path).is_ok_and(|m| m.is_dir()) {
                std::fs::remove_dir_all(&path).map_err(io_err(&path))?;
            }
            return rustix::fs::mknodat(CWD, &path, FileType::CharacterDevice, Mode::empty(), 0)
                .map_err(sys_err(&path));
        }
        Kind::Opaque => {
            std::fs::create_dir_all(&path).map_err(io_err(&path))?;
            return rustix::fs::lsetxattr(
                &path,
                "trusted.overlay.opaque",
                b"y",
                XattrFlags::empty(),
            )
            .map_err(sys_err(&path));
        }
    }
    let meta = &entry.meta;
    for x in &meta.xattrs {
        rustix::fs::lsetxattr(
            &path,
            OsStr::from_bytes(&x.name),
            &x.value,
            XattrFlags::empty(),
        )
        .map_err(sys_err(&path))?;
    }
    rustix::fs::chownat(
        CWD,
        &path,
        Some(Uid::from_raw(meta.uid)),
        Some(Gid::from_raw(meta.gid)),
        AtFlags::SYMLINK_NOFOLLOW,
    )
    .map_err(sys_err(&path))?;
    if !matches!(entry.kind, Kind::Symlink { .. }) {
        rustix::fs::chmodat(CWD, &path, Mode::from_raw_mode(meta.mode), AtFlags::empty())
            .map_err(sys_err(&path))?;
    }
    Ok(())
}
