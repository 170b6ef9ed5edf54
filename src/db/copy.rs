//! A private copy of a database that this process may not open in place (sled opens its
//! files for writing), in a temporary directory removed when dropped.

use std::fs;
use std::io;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// A directory of this process under the system's temporary directory (0700), removed with
/// everything in it when dropped.
pub(super) struct TempDir(PathBuf);

impl TempDir {
    pub(super) fn new() -> io::Result<Self> {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        // The temp directory is shared with every user: the name is made exclusively (mkdir
        // fails if anything is there, whoever put it there), never removed first, and one
        // taken already is passed over for the next.
        let clock = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        for _ in 0..100 {
            let n = COUNTER.fetch_add(1, Ordering::Relaxed);
            let name = format!("snapfs-db-{}-{clock:x}-{n}", std::process::id());
            let path = std::env::temp_dir().join(name);
            match fs::DirBuilder::new().mode(0o700).create(&path) {
                Ok(()) => return Ok(TempDir(path)),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e),
            }
        }
        Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            "no free name for a database copy in the temp directory",
        ))
    }

    pub(super) fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// Copies the directory tree `from` (regular files and directories: what sled keeps) to `to`.
pub(super) fn copy_tree(from: &Path, to: &Path) -> io::Result<()> {
    fs::DirBuilder::new().mode(0o700).create(to)?;
    for entry in fs::read_dir(from)? {
        let entry = entry?;
        let kind = entry.file_type()?;
        let target = to.join(entry.file_name());
        if kind.is_dir() {
            copy_tree(&entry.path(), &target)?;
        } else if kind.is_file() {
            fs::copy(entry.path(), &target)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copies_a_tree_and_removes_the_copy_when_dropped() {
        let source = tempfile::tempdir().unwrap();
        fs::create_dir(source.path().join("blobs")).unwrap();
        fs::write(source.path().join("conf"), b"conf").unwrap();
        fs::write(source.path().join("blobs/1"), b"blob").unwrap();
        let copy = TempDir::new().unwrap();
        let path = copy.path().to_path_buf();
        copy_tree(source.path(), &path.join("db")).unwrap();
        assert_eq!(fs::read(path.join("db/blobs/1")).unwrap(), b"blob");
        assert_eq!(fs::read(path.join("db/conf")).unwrap(), b"conf");
        drop(copy);
        assert!(!path.exists());
    }
}
