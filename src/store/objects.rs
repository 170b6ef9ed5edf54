//! Content-addressed objects: put (dedup, atomic), list, verify.

use super::{Store, StoreError, io_err};
use crate::layer::ObjectSink;
use crate::model::{Digest, DigestHasher};
use std::fs::{self, File};
use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

/// Bodies up to this size are hashed in memory first, so a duplicate is never written at all.
const IN_MEMORY_LIMIT: u64 = 1 << 20;

/// The files under `objects/`: `Ok((digest, size))`, or `Err(path)` for a stray file.
pub type ObjectListing = Vec<Result<(Digest, u64), std::path::PathBuf>>;

/// What `put` did since the store was opened.
#[derive(Default, Debug)]
pub struct PutStats {
    pub new_objects: AtomicU64,
    pub new_bytes: AtomicU64,
    pub existing_objects: AtomicU64,
    pub existing_bytes: AtomicU64,
}

impl PutStats {
    fn count(&self, new: bool, bytes: u64) {
        let (objects, total) = if new {
            (&self.new_objects, &self.new_bytes)
        } else {
            (&self.existing_objects, &self.existing_bytes)
        };
        objects.fetch_add(1, Ordering::Relaxed);
        total.fetch_add(bytes, Ordering::Relaxed);
    }
}

impl Store {
    /// Stores `bytes` as an object (if not already there) and returns its digest.
    pub fn put_bytes(&self, bytes: &[u8]) -> Result<Digest, StoreError> {
        let digest = Digest::of(bytes);
        if self.has_complete(&self.object_path(&digest), bytes.len() as u64) {
            self.stats.count(false, bytes.len() as u64);
            return Ok(digest);
        }
        let tmp = self.tmp_path("object");
        let mut file = File::create(&tmp).map_err(io_err(&tmp))?;
        file.write_all(bytes).map_err(io_err(&tmp))?;
        self.install(file, &tmp, &digest, bytes.len() as u64)?;
        Ok(digest)
    }

    /// Stores a stream of `size` bytes as an object and returns its digest.
    pub fn put_stream(&self, body: &mut dyn Read, size: u64) -> Result<Digest, StoreError> {
        if size <= IN_MEMORY_LIMIT {
            let mut bytes = Vec::with_capacity(size as usize);
            body.take(size)
                .read_to_end(&mut bytes)
                .map_err(io_err(Path::new("<layer entry body>")))?;
            return self.put_bytes(&bytes);
        }
        let tmp = self.tmp_path("object");
        let mut file = File::create(&tmp).map_err(io_err(&tmp))?;
        let mut hasher = DigestHasher::new();
        let mut buf = vec![0u8; 256 * 1024];
        let mut written = 0u64;
        let result: std::io::Result<()> = (|| {
            loop {
                let n = body.read(&mut buf)?;
                if n == 0 {
                    return Ok(());
                }
                hasher.update(&buf[..n]);
                file.write_all(&buf[..n])?;
                written += n as u64;
            }
        })();
        if let Err(source) = result {
            let _ = fs::remove_file(&tmp);
            return Err(StoreError::Io { path: tmp, source });
        }
        let digest = hasher.finish();
        if self.has_complete(&self.object_path(&digest), written) {
            let _ = fs::remove_file(&tmp);
            self.stats.count(false, written);
            return Ok(digest);
        }
        self.install(file, &tmp, &digest, written)?;
        Ok(digest)
    }

    /// Installs `tmp` (a file under tmp/ whose bytes the caller hashed to `digest` while
    /// writing them) as an object, or removes it if the store has that object already.
    pub fn put_hashed_file(
        &self,
        tmp: &Path,
        digest: &Digest,
        size: u64,
    ) -> Result<(), StoreError> {
        if self.has_complete(&self.object_path(digest), size) {
            let _ = fs::remove_file(tmp);
            self.stats.count(false, size);
            return Ok(());
        }
        let file = File::open(tmp).map_err(io_err(tmp))?;
        self.install(file, tmp, digest, size)
    }

    /// Makes `path` the object `digest` by hard-linking it into place, without a copy. The
    /// caller vouches that the file holds exactly the `size` bytes hashed to `digest`, that
    /// nobody writes it any more (a staging directory being ingested and then removed), and
    /// that it grants nothing (no setuid or setgid bit, no file capabilities): objects are
    /// shared by every image. True if the store has the object now; false, changing nothing,
    /// if a link cannot be made (another filesystem, a short object in the way) and the
    /// caller must copy.
    pub fn link_object(&self, path: &Path, digest: &Digest, size: u64) -> Result<bool, StoreError> {
        let object = self.object_path(digest);
        let mut linked = fs::hard_link(path, &object);
        if linked
            .as_ref()
            .is_err_and(|e| e.kind() == std::io::ErrorKind::NotFound)
            && let Some(dir) = object.parent()
        {
            fs::create_dir_all(dir).map_err(io_err(dir))?;
            linked = fs::hard_link(path, &object);
        }
        match linked {
            Ok(()) => {
                self.stats.count(true, size);
                Ok(true)
            }
            // Stored already, or a short object left by a crash, which a copy replaces.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                let whole = self.has_complete(&object, size);
                if whole {
                    self.stats.count(false, size);
                }
                Ok(whole)
            }
            Err(e) if e.raw_os_error() == Some(libc::EXDEV) => Ok(false),
            Err(source) => Err(StoreError::Io {
                path: path.to_path_buf(),
                source,
            }),
        }
    }

    /// Makes a finished tmp file read-only and renames it to its object path.
    fn install(
        &self,
        file: File,
        tmp: &Path,
        digest: &Digest,
        size: u64,
    ) -> Result<(), StoreError> {
        file.set_permissions(fs::Permissions::from_mode(0o444))
            .map_err(io_err(tmp))?;
        drop(file);
        let path = self.object_path(digest);
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir).map_err(io_err(dir))?;
        }
        fs::rename(tmp, &path).map_err(io_err(&path))?;
        self.stats.count(true, size);
        Ok(())
    }

    /// Every object file in the store: (digest, size). What is not named as the store names
    /// objects (a file or directory that is not `objects/sha256/<2 hex>/<64 hex>`, with the
    /// shard the name's first two digits, or that is not a regular file) is reported as
    /// `Err(path)`. A store without `objects/` (one opened to read, not there) has none.
    pub fn list_objects(&self) -> Result<ObjectListing, StoreError> {
        let base = self.root.join("objects/sha256");
        let mut out = Vec::new();
        let shards = match fs::read_dir(&base) {
            Ok(shards) => shards,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(io_err(&base)(e)),
        };
        for shard in shards {
            let shard = shard.map_err(io_err(&base))?;
            let shard_name = shard.file_name();
            let is_shard = shard.file_type().is_ok_and(|t| t.is_dir())
                && shard_name.len() == 2
                && shard_name
                    .as_encoded_bytes()
                    .iter()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b));
            let shard = shard.path();
            if !is_shard {
                out.push(Err(shard));
                continue;
            }
            for object in fs::read_dir(&shard).map_err(io_err(&shard))? {
                let object = object.map_err(io_err(&shard))?;
                let path = object.path();
                let meta = fs::symlink_metadata(&path).map_err(io_err(&path))?;
                let name = object.file_name();
                match name.to_str().map(Digest::from_hex) {
                    Some(Ok(d)) if meta.is_file() && shard_name.to_str() == Some(&d.hex()[..2]) => {
                        out.push(Ok((d, meta.len())))
                    }
                    _ => out.push(Err(path)),
                }
            }
        }
        Ok(out)
    }

    /// Re-hashes an object; `Ok(false)` if its bytes no longer match its name.
    pub fn verify_object(&self, digest: &Digest) -> Result<bool, StoreError> {
        let path = self.object_path(digest);
        let mut file = self.open_object(digest)?;
        let mut hasher = DigestHasher::new();
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            let n = file.read(&mut buf).map_err(io_err(&path))?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
        }
        Ok(hasher.finish() == *digest)
    }
}

impl ObjectSink for Store {
    fn put(&self, body: &mut dyn Read, size: u64) -> Result<Digest, std::io::Error> {
        self.put_stream(body, size).map_err(std::io::Error::other)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stores_each_content_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let a = store.put_bytes(b"hello").unwrap();
        let b = store.put_stream(&mut &b"hello"[..], 5).unwrap();
        assert_eq!(a, b);
        assert_eq!(store.read_object(&a).unwrap(), b"hello");
        assert_eq!(store.stats().new_objects.load(Ordering::Relaxed), 1);
        assert_eq!(store.stats().existing_objects.load(Ordering::Relaxed), 1);
        let big = vec![7u8; 3 << 20];
        let c = store.put_stream(&mut &big[..], big.len() as u64).unwrap();
        assert_eq!(c, Digest::of(&big));
        assert!(store.verify_object(&c).unwrap());
        assert_eq!(store.list_objects().unwrap().len(), 2);
        assert_eq!(fs::read_dir(store.tmp_dir()).unwrap().count(), 0);
    }

    #[test]
    fn links_files_as_objects() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("store")).unwrap();
        let staged = dir.path().join("store/staged");
        fs::write(&staged, b"layer file").unwrap();
        let digest = Digest::of(b"layer file");
        assert!(store.link_object(&staged, &digest, 10).unwrap());
        let object = store.object_path(&digest);
        assert_eq!(
            fs::metadata(&object).unwrap().ino(),
            fs::metadata(&staged).unwrap().ino()
        );
        // Already there: nothing to link, and it counts as stored.
        let again = dir.path().join("store/again");
        fs::write(&again, b"layer file").unwrap();
        assert!(store.link_object(&again, &digest, 10).unwrap());
        assert_eq!(fs::metadata(&object).unwrap().nlink(), 2);
        assert_eq!(store.stats().new_objects.load(Ordering::Relaxed), 1);
        assert_eq!(store.stats().existing_objects.load(Ordering::Relaxed), 1);
        // A short object in the way (a crash before the sync) is not trusted.
        let short = Digest::of(b"0123456789abcdef");
        fs::create_dir_all(store.object_path(&short).parent().unwrap()).unwrap();
        fs::write(store.object_path(&short), b"0123").unwrap();
        assert!(!store.link_object(&again, &short, 16).unwrap());
    }
}
