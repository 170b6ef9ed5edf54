//! `snap lowerdirs`: writes each layer of an image as a kernel overlayfs lower directory
//! (whiteouts as 0/0 character devices, opaque directories marked `trusted.overlay.opaque=y`),
//! so that overlayfs and fuse-overlayfs can mount the very layers snapfs mounts: the
//! reference for tests and benchmarks.

use super::{ImageError, Progress, io_err, open_db};
use crate::layer::overlay::is_private_xattr;
use crate::model::Kind;
use crate::store::Store;
use rustix::fs::{AtFlags, CWD, FileType, Gid, Mode, Timespec, Timestamps, Uid, XattrFlags};
use std::collections::HashSet;
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
    let mut out: Vec<PathBuf> = Vec::new();
    for (i, layer) in record.layers.iter().enumerate() {
        let base = dir.join(format!("layer{i}"));
        std::fs::create_dir_all(&base).map_err(io_err(&base))?;
        let file = store.read_layer(&layer.diff_id)?;
        for entry in &file.entries {
            write_entry(store, &base, entry)?;
        }
        // A directory the layer does not list (only its children) is the one below it, as
        // when the layers are applied in turn: it takes that one's metadata.
        let listed: HashSet<&[u8]> = file.entries.iter().map(|e| e.path.as_bytes()).collect();
        let mut times: Vec<(PathBuf, Timespec)> = Vec::new();
        for (rel, path) in unlisted_dirs(&base, &listed)? {
            if let Some(below) = out.iter().rev().map(|l| l.join(&rel)).find(|p| p.is_dir()) {
                times.push((path.clone(), copy_meta(&below, &path)?));
            }
        }
        times.extend(
            file.entries
                .iter()
                .filter(|e| !matches!(e.kind, Kind::Whiteout | Kind::Opaque))
                .map(|e| {
                    let t = Timespec {
                        tv_sec: e.meta.mtime_sec,
                        tv_nsec: e.meta.mtime_nsec as _,
                    };
                    (base.join(OsStr::from_bytes(e.path.as_bytes())), t)
                }),
        );
        // Times last, deepest first, so that creating children does not change them.
        times.sort_by(|a, b| b.0.cmp(&a.0));
        for (path, t) in times {
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

/// The directories below `base` (relative path, full path) that `listed` does not name.
fn unlisted_dirs(
    base: &Path,
    listed: &HashSet<&[u8]>,
) -> Result<Vec<(PathBuf, PathBuf)>, ImageError> {
    let mut out = Vec::new();
    let mut pending = vec![base.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).map_err(io_err(&dir))? {
            let entry = entry.map_err(io_err(&dir))?;
            if !entry.file_type().map_err(io_err(&dir))?.is_dir() {
                continue;
            }
            let path = entry.path();
            let rel = path.strip_prefix(base).unwrap_or(&path).to_path_buf();
            if !listed.contains(rel.as_os_str().as_bytes()) {
                out.push((rel, path.clone()));
            }
            pending.push(path);
        }
    }
    Ok(out)
}

/// Gives the directory `to` the owner, mode and xattrs of `from`; returns `from`'s mtime.
fn copy_meta(from: &Path, to: &Path) -> Result<Timespec, ImageError> {
    let st = rustix::fs::lstat(from).map_err(sys_err(from))?;
    let xattrs = crate::sys::xattrs(from).map_err(io_err(from))?;
    // Opaqueness belongs to the layer that marked it, not to the directory.
    let kept = xattrs
        .iter()
        .filter(|(n, _)| !is_private_xattr(n))
        .map(|(n, v)| (n.as_slice(), v.as_slice()));
    set_meta(to, st.st_uid, st.st_gid, Some(st.st_mode & 0o7777), kept)?;
    Ok(Timespec {
        tv_sec: st.st_mtime,
        tv_nsec: st.st_mtime_nsec as _,
    })
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
    // A symlink has no mode of its own.
    let mode = (!matches!(entry.kind, Kind::Symlink { .. })).then_some(meta.mode);
    let xattrs = meta
        .xattrs
        .iter()
        .map(|x| (x.name.as_slice(), x.value.as_slice()));
    set_meta(&path, meta.uid, meta.gid, mode, xattrs)
}

/// Gives `path` (not following a final symlink) these xattrs, owner and, if given, mode.
fn set_meta<'a>(
    path: &Path,
    uid: u32,
    gid: u32,
    mode: Option<u32>,
    xattrs: impl Iterator<Item = (&'a [u8], &'a [u8])>,
) -> Result<(), ImageError> {
    for (name, value) in xattrs {
        rustix::fs::lsetxattr(path, OsStr::from_bytes(name), value, XattrFlags::empty())
            .map_err(sys_err(path))?;
    }
    rustix::fs::chownat(
        CWD,
        path,
        Some(Uid::from_raw(uid)),
        Some(Gid::from_raw(gid)),
        AtFlags::SYMLINK_NOFOLLOW,
    )
    .map_err(sys_err(path))?;
    if let Some(mode) = mode {
        rustix::fs::chmodat(CWD, path, Mode::from_raw_mode(mode), AtFlags::empty())
            .map_err(sys_err(path))?;
    }
    Ok(())
}
