//! The root directory itself: the `snapfs-store` marker that makes a directory a store, the
//! format version it names, and the modes that keep other users out.
//!
//! ```text
//! <root>/snapfs-store   "snapfs store\nformat 1\n": written when the store is made
//! ```
//!
//! A root that holds files but no marker is refused: a mistyped `--root` must not become a
//! store (its `lock` overwritten, `snap gc` sweeping its `tmp/`). A store made before the
//! marker existed (it has sled's files in `db/` and `objects/sha256/`) is adopted by the first
//! command that writes: the marker is written. A marker
//! naming a newer format than [`FORMAT`] is refused too.
//!
//! Modes: the root and the directories below it that the store makes are 0700, and are made
//! so again when a store is opened. Upper dirs hold what containers wrote, as their root,
//! setuid-root binaries included, which another user could otherwise execute by their path
//! here; layer files, indexes and objects name and hold every image's files. Other users
//! reach a container only through its mount point (see `docs/format.md`).

use super::{StoreError, io_err};
use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::Path;

/// The marker's file name, directly under the root.
pub const MARKER: &str = "snapfs-store";

/// The newest store format this build reads and writes.
pub const FORMAT: u32 = 1;

/// The marker's first line.
const MAGIC: &str = "snapfs store";

/// The directories a store makes under its root, each 0700 (parents before children).
pub(super) const DIRS: [&str; 7] = [
    "objects",
    "objects/sha256",
    "layers",
    "index",
    "tmp",
    "containers",
    "snapshots",
];

/// The root's directories that may exist without the store having made them: sled makes
/// `db/`. Their modes are fixed like those of [`DIRS`].
const OTHER_DIRS: [&str; 1] = ["db"];

/// What a root directory holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Found {
    /// Nothing: no such directory.
    Missing,
    /// An empty directory.
    Empty,
    /// A store with its marker.
    Store,
    /// A store made before the marker existed: `db/` and `objects/`, no marker.
    Unmarked,
}

/// What is at `root`; refuses a directory that is neither empty nor a store.
pub(super) fn survey(root: &Path) -> Result<Found, StoreError> {
    let entries = match fs::read_dir(root) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Found::Missing),
        Err(e) => return Err(io_err(root)(e)),
    };
    let mut empty = true;
    for entry in entries {
        let name = entry.map_err(io_err(root))?.file_name();
        if name == MARKER {
            check_marker(&root.join(MARKER))?;
            return Ok(Found::Store);
        }
        // Another process making the store at this moment (see `mark`).
        if !name.as_encoded_bytes().starts_with(b".snapfs-store.tmp-") {
            empty = false;
        }
    }
    if empty {
        return Ok(Found::Empty);
    }
    if looks_like_an_old_store(root) {
        return Ok(Found::Unmarked);
    }
    Err(StoreError::NotAStore {
        root: root.to_path_buf(),
    })
}

/// Whether `root` holds what every store made before the marker holds: a sled database in
/// `db/` (its `conf` and `db` files) and `objects/sha256/`. A directory that merely has `db/`
/// and `objects/` is someone else's.
fn looks_like_an_old_store(root: &Path) -> bool {
    root.join("db/conf").is_file()
        && root.join("db/db").is_file()
        && root.join("objects/sha256").is_dir()
}

fn check_marker(path: &Path) -> Result<(), StoreError> {
    let text = fs::read_to_string(path).map_err(io_err(path))?;
    let bad = |detail: &str| StoreError::BadMarker {
        path: path.to_path_buf(),
        detail: detail.to_string(),
    };
    let mut lines = text.lines();
    if lines.next() != Some(MAGIC) {
        return Err(bad(&format!("its first line is not {MAGIC:?}")));
    }
    let format = lines
        .find_map(|line| line.strip_prefix("format "))
        .ok_or_else(|| bad("it names no format"))?;
    let format: u32 = format
        .trim()
        .parse()
        .map_err(|_| bad(&format!("format {format:?} is not a number")))?;
    if format > FORMAT {
        return Err(StoreError::NewerFormat {
            path: path.to_path_buf(),
            format,
            supported: FORMAT,
        });
    }
    Ok(())
}

/// Writes the marker (tmp, fsync, rename: it is written once, and must not come back empty
/// after a crash).
pub(super) fn mark(root: &Path) -> Result<(), StoreError> {
    let tmp = root.join(format!(".{MARKER}.tmp-{}", std::process::id()));
    let mut file = fs::File::create(&tmp).map_err(io_err(&tmp))?;
    write!(file, "{MAGIC}\nformat {FORMAT}\n").map_err(io_err(&tmp))?;
    file.sync_all().map_err(io_err(&tmp))?;
    let path = root.join(MARKER);
    fs::rename(&tmp, &path).map_err(io_err(&path))
}

/// Makes `root` (0700) if it does not exist; its parents get the usual modes.
pub(super) fn make_root(root: &Path) -> Result<(), StoreError> {
    if let Some(parent) = root.parent().filter(|p| !p.as_os_str().is_empty()) {
        fs::create_dir_all(parent).map_err(io_err(parent))?;
    }
    match fs::DirBuilder::new().mode(0o700).create(root) {
        Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => Err(io_err(root)(e)),
        _ => Ok(()),
    }
}

/// Makes the store's directories that are missing (0700).
pub(super) fn make_dirs(root: &Path) -> Result<(), StoreError> {
    for dir in DIRS {
        let path = root.join(dir);
        match fs::DirBuilder::new().mode(0o700).create(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => {
                return Err(io_err(&path)(e));
            }
            _ => {}
        }
    }
    Ok(())
}

/// Gives the root and its directories mode 0700 where they have another (a store made by an
/// earlier version had 0755 ones).
pub(super) fn secure(root: &Path) -> Result<(), StoreError> {
    let dirs = DIRS.iter().chain(&OTHER_DIRS).map(|dir| root.join(dir));
    for path in std::iter::once(root.to_path_buf()).chain(dirs) {
        let mode = match fs::symlink_metadata(&path) {
            Ok(meta) if meta.is_dir() => meta.permissions().mode(),
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(io_err(&path)(e)),
        };
        if mode & 0o7777 != 0o700 {
            fs::set_permissions(&path, fs::Permissions::from_mode(0o700)).map_err(io_err(&path))?;
        }
    }
    Ok(())
}

/// Whether this process may write under `root` (false on a read-only filesystem).
pub(super) fn writable(root: &Path) -> bool {
    rustix::fs::access(root, rustix::fs::Access::WRITE_OK).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_directory_is_a_store_only_with_a_marker_or_as_an_old_store() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        assert_eq!(survey(&root).unwrap(), Found::Missing);
        make_root(&root).unwrap();
        assert_eq!(survey(&root).unwrap(), Found::Empty);
        fs::write(root.join("lock"), "").unwrap();
        assert!(matches!(survey(&root), Err(StoreError::NotAStore { .. })));
        fs::create_dir(root.join("db")).unwrap();
        fs::create_dir_all(root.join("objects/sha256")).unwrap();
        // Directories of those names are not enough: sled's files must be there.
        assert!(matches!(survey(&root), Err(StoreError::NotAStore { .. })));
        fs::write(root.join("db/conf"), "").unwrap();
        fs::write(root.join("db/db"), "").unwrap();
        assert_eq!(survey(&root).unwrap(), Found::Unmarked);
        mark(&root).unwrap();
        assert_eq!(survey(&root).unwrap(), Found::Store);
        fs::write(root.join(MARKER), "snapfs store\nformat 2\n").unwrap();
        assert!(matches!(
            survey(&root),
            Err(StoreError::NewerFormat { format: 2, .. })
        ));
        fs::write(root.join(MARKER), "something else\n").unwrap();
        assert!(matches!(survey(&root), Err(StoreError::BadMarker { .. })));
    }
}
