//! Files open for the kernel: the one owner of handles, passthrough backing ids and the
//! choice between passthrough and the daemon's own reads and writes.
//!
//! An open or create gets a handle and, where the kernel offers passthrough, a `BackingId`
//! of its file, one per node at a time and reused by every open of the node while any is
//! live, so reads and writes never enter the daemon. A handle whose writes must drop
//! setuid/setgid is direct I/O through the daemon instead ([`Opened::writes_drop_setid`]);
//! without passthrough lower files are read by the daemon with the kernel's cache kept.

use super::attr::Attr;
use super::error::FsError;
use super::id::NodeId;
use super::open::Opened;
use super::setid::{Caller, drop_setid, setid_dropped_by_write};
use super::union::UnionFs;
use fuser::{BackingId, FopenFlags};
use std::collections::HashMap;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};

/// One open file.
struct OpenFile {
    file: Arc<File>,
    /// Held (not read) so that the backing id stays registered while the file is open.
    _backing: Option<Arc<BackingId>>,
    lower: bool,
}

/// What the kernel is told of an open: its handle, the backing id its reads and writes go
/// through (none: they come to the daemon), and the open flags.
pub struct KernelOpen {
    pub fh: u64,
    pub backing: Option<Arc<BackingId>>,
    pub flags: FopenFlags,
}

/// The open files of one mount.
pub struct Handles {
    files: Mutex<HashMap<u64, OpenFile>>,
    /// Per node: its live backing id and whether it is a lower object.
    backing: Mutex<HashMap<NodeId, (Weak<BackingId>, bool)>>,
    next_fh: AtomicU64,
    passthrough: AtomicBool,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A failed call on the open file `fh`.
fn handle_err(fh: u64, e: std::io::Error) -> FsError {
    FsError::io(format!("file handle {fh}").as_bytes(), e)
}

impl Default for Handles {
    fn default() -> Self {
        Handles {
            files: Mutex::default(),
            backing: Mutex::default(),
            next_fh: AtomicU64::new(1),
            passthrough: AtomicBool::new(false),
        }
    }
}

impl Handles {
    /// Whether the kernel granted passthrough (at `init`).
    pub fn set_passthrough(&self, on: bool) {
        self.passthrough.store(on, Ordering::Relaxed);
    }

    /// Opens node `id` for the kernel; `open_backing` registers a backing id for a file.
    pub fn open(
        &self,
        fs: &UnionFs,
        id: NodeId,
        flags: i32,
        caller: &Caller,
        open_backing: impl FnOnce(&File) -> std::io::Result<BackingId>,
    ) -> Result<KernelOpen, FsError> {
        let lower_open = self.live_backing(id) == Some(true);
        let mut opened = fs.open_file(id, flags, lower_open, caller)?;
        if opened.writes_drop_setid && self.live_backing(id).is_some() {
            // The kernel refuses a direct-I/O open of an inode open through passthrough: the
            // bits go now, as the write would drop them.
            drop_setid(&opened.file, caller).map_err(|e| FsError::io(b"(opened file)", e))?;
            opened.writes_drop_setid = false;
        }
        self.register(id, opened, open_backing)
    }

    /// Creates the regular file `name` in `parent` for `caller` and opens it for the kernel;
    /// returns its attributes too. The kernel now holds its node.
    pub fn create(
        &self,
        fs: &UnionFs,
        (parent, name): (NodeId, &[u8]),
        mode: u32,
        caller: &Caller,
        open_backing: impl FnOnce(&File) -> std::io::Result<BackingId>,
    ) -> Result<(Attr, KernelOpen), FsError> {
        let (found, file) = fs.create_file(parent, name, mode, (caller.uid, caller.gid))?;
        let attr = fs.attr_of(&found)?;
        fs.remember(&found);
        // A new setuid/setgid file: its creator's writes drop those bits too (see `open`).
        let opened = Opened {
            file,
            lower: false,
            writes_drop_setid: setid_dropped_by_write(attr.mode, attr.gid, caller) != 0,
        };
        Ok((attr, self.register(found.id, opened, open_backing)?))
    }

    /// The live backing id of node `id`, or a new one for `file` (one per inode at a time).
    /// Stale when the node already has a backing of the other kind (lower vs upper): it is
    /// open on its lower object and now lives upper, so it must be looked up again.
    fn backing_for(
        &self,
        id: NodeId,
        file: &File,
        lower: bool,
        open: impl FnOnce(&File) -> std::io::Result<BackingId>,
    ) -> Result<Option<Arc<BackingId>>, FsError> {
        if !self.passthrough.load(Ordering::Relaxed) {
            return Ok(None);
        }
        let mut map = lock(&self.backing);
        if let Some((weak, was_lower)) = map.get(&id)
            && let Some(live) = weak.upgrade()
        {
            return match *was_lower == lower {
                true => Ok(Some(live)),
                false => Err(FsError::Stale {
                    id,
                    why: "open through passthrough on its other side",
                }),
            };
        }
        match open(file) {
            Ok(backing) => {
                let arc = Arc::new(backing);
                if map.len() > 4096 {
                    map.retain(|_, (w, _)| w.strong_count() > 0);
                }
                map.insert(id, (Arc::downgrade(&arc), lower));
                Ok(Some(arc))
            }
            Err(e) => {
                tracing::warn!("passthrough unavailable ({e}); reading through the daemon");
                self.passthrough.store(false, Ordering::Relaxed);
                Ok(None)
            }
        }
    }

    /// Registers an opened file of node `id`: its handle, backing id and open flags.
    /// Writes that must drop setuid/setgid come to the daemon as direct I/O: the node's page
    /// cache must not keep a copy that other handles' passthrough writes would leave stale.
    fn register(
        &self,
        id: NodeId,
        opened: Opened,
        open_backing: impl FnOnce(&File) -> std::io::Result<BackingId>,
    ) -> Result<KernelOpen, FsError> {
        let backing = if opened.writes_drop_setid {
            None
        } else {
            self.backing_for(id, &opened.file, opened.lower, open_backing)?
        };
        let flags = FopenFlags::FOPEN_NOFLUSH
            | if opened.writes_drop_setid {
                FopenFlags::FOPEN_DIRECT_IO
            } else if backing.is_none() && opened.lower {
                FopenFlags::FOPEN_KEEP_CACHE
            } else {
                FopenFlags::empty()
            };
        let fh = self.next_fh.fetch_add(1, Ordering::Relaxed);
        let file = OpenFile {
            file: Arc::new(opened.file),
            _backing: backing.clone(),
            lower: opened.lower,
        };
        lock(&self.files).insert(fh, file);
        Ok(KernelOpen { fh, backing, flags })
    }

    /// Whether node `id` is open through passthrough: `Some(true)` on its lower object,
    /// `Some(false)` on its upper file.
    fn live_backing(&self, id: NodeId) -> Option<bool> {
        lock(&self.backing)
            .get(&id)
            .filter(|(w, _)| w.strong_count() > 0)
            .map(|(_, lower)| *lower)
    }

    /// The open file of handle `fh` (an upper one if `writable`), shared, so that no lock is
    /// held while it is used.
    pub fn file(&self, fh: u64, writable: bool) -> Result<Arc<File>, FsError> {
        match lock(&self.files).get(&fh) {
            Some(open) if !(writable && open.lower) => Ok(open.file.clone()),
            _ => Err(FsError::BadHandle(fh)),
        }
    }

    /// Closes handle `fh`.
    pub fn release(&self, fh: u64) {
        lock(&self.files).remove(&fh);
    }

    /// Reads up to `size` bytes at `offset` (without passthrough, or through direct I/O).
    pub fn read(&self, fh: u64, offset: u64, size: u32) -> Result<Vec<u8>, FsError> {
        let file = self.file(fh, false)?;
        let mut buf = vec![0u8; size as usize];
        let mut got = 0;
        while got < buf.len() {
            match file.read_at(&mut buf[got..], offset + got as u64) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) => return Err(handle_err(fh, e)),
            }
        }
        buf.truncate(got);
        Ok(buf)
    }

    /// Writes `data` at `offset`, first dropping the setuid/setgid bits `caller`'s write
    /// drops if the kernel says the writer lacks `CAP_FSETID` (`kill_setid`).
    pub fn write(
        &self,
        fh: u64,
        offset: u64,
        data: &[u8],
        kill_setid: bool,
        caller: &Caller,
    ) -> Result<u32, FsError> {
        let file = self.file(fh, true)?;
        if kill_setid {
            drop_setid(&*file, caller).map_err(|e| handle_err(fh, e.into()))?;
        }
        file.write_all_at(data, offset)
            .map_err(|e| handle_err(fh, e))?;
        Ok(data.len() as u32)
    }

    /// fsync (or fdatasync) of handle `fh`; a handle that is gone has nothing to sync.
    pub fn fsync(&self, fh: u64, datasync: bool) -> Result<(), FsError> {
        let Ok(file) = self.file(fh, false) else {
            return Ok(());
        };
        match datasync {
            true => file.sync_data(),
            false => file.sync_all(),
        }
        .map_err(|e| handle_err(fh, e))
    }

    pub fn fallocate(&self, fh: u64, offset: u64, length: u64, mode: i32) -> Result<(), FsError> {
        let file = self.file(fh, true)?;
        let mode = rustix::fs::FallocateFlags::from_bits_retain(mode as u32);
        rustix::fs::fallocate(&*file, mode, offset, length).map_err(|e| handle_err(fh, e.into()))
    }
}
