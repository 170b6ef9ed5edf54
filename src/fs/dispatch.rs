//! fuser's `Filesystem` trait over [`UnionFs`]: each handler calls one operation and turns
//! its error into an errno, once, here. Open files and passthrough backing ids live here too.

use super::ops::{Attr, Caller, Found, Opened, UnionFs, drop_setid, setid_dropped_by_write};
use super::{FsError, upper::Upper};
use crate::index::Index;
use crate::store::Store;
use crate::sys::Mapped;
use fuser::{
    BackingId, Errno, FileAttr, FileHandle, FileType as FuseType, Filesystem, FopenFlags,
    Generation, INodeNo, InitFlags, KernelConfig, LockOwner, OpenFlags, RenameFlags, ReplyAttr,
    ReplyCreate, ReplyData, ReplyDirectory, ReplyDirectoryPlus, ReplyEmpty, ReplyEntry, ReplyOpen,
    ReplyStatfs, ReplyWrite, ReplyXattr, Request, TimeOrNow,
};
use rustix::fs::FileType;
use std::collections::HashMap;
use std::ffi::OsStr;
use std::fs::File;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Entries and attributes change only through this daemon, so the kernel may cache them long.
const TTL: Duration = Duration::from_secs(3600);

/// One open file.
enum Handle {
    // The backing id is held (not read) so that it stays registered while the file is open.
    File {
        file: Arc<File>,
        _backing: Option<Arc<BackingId>>,
        lower: bool,
    },
}

fn caller(req: &Request) -> Caller {
    Caller {
        uid: req.uid(),
        gid: req.gid(),
        pid: req.pid(),
    }
}

/// A node open on its lower object has been copied up: its next open must look it up again.
struct StaleLower;

/// The merged entries of a directory, sorted by name.
type Listing = Arc<Vec<(Vec<u8>, FileType)>>;

/// Listings kept between the readdir calls of one pass over a directory: at most this many.
const LISTINGS_KEPT: usize = 256;

/// The mounted filesystem: operations plus open handles.
pub struct Mounted {
    fs: Arc<UnionFs>,
    handles: Mutex<HashMap<u64, Handle>>,
    /// Directories are not opened (OPENDIR is answered ENOSYS once, so the kernel stops
    /// sending OPENDIR and RELEASEDIR and caches listings): a pass over a directory lists it
    /// at offset 0 and reads the rest of the same listing from here.
    listings: Mutex<HashMap<u64, Listing>>,
    /// Per node: its live backing id and whether it is a lower object.
    backing: Mutex<HashMap<u64, (Weak<BackingId>, bool)>>,
    next_fh: AtomicU64,
    passthrough: AtomicBool,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn time((s, n): (i64, u32)) -> SystemTime {
    // Times from an image can be anything a tar header holds: clamp instead of panicking.
    let since = Duration::new(s.unsigned_abs(), n.min(999_999_999));
    let t = if s >= 0 {
        UNIX_EPOCH.checked_add(since)
    } else {
        UNIX_EPOCH
            .checked_sub(Duration::from_secs(s.unsigned_abs()))
            .and_then(|t| t.checked_add(Duration::from_nanos(n as u64)))
    };
    t.unwrap_or(UNIX_EPOCH)
}

fn fuse_type(kind: FileType) -> FuseType {
    match kind {
        FileType::Directory => FuseType::Directory,
        FileType::Symlink => FuseType::Symlink,
        FileType::CharacterDevice => FuseType::CharDevice,
        FileType::BlockDevice => FuseType::BlockDevice,
        FileType::Fifo => FuseType::NamedPipe,
        FileType::Socket => FuseType::Socket,
        _ => FuseType::RegularFile,
    }
}

fn file_attr(a: &Attr) -> FileAttr {
    FileAttr {
        ino: INodeNo(a.id),
        size: a.size,
        blocks: a.blocks,
        atime: time(a.atime),
        mtime: time(a.mtime),
        ctime: time(a.ctime),
        crtime: time(a.ctime),
        kind: fuse_type(a.kind),
        perm: a.mode as u16,
        nlink: a.nlink,
        uid: a.uid,
        gid: a.gid,
        rdev: a.rdev as u32,
        blksize: 4096,
        flags: 0,
    }
}

fn err(e: &FsError) -> Errno {
    tracing::debug!("{e}");
    Errno::from_i32(e.errno())
}

fn to_time(t: TimeOrNow) -> Option<(i64, u32)> {
    match t {
        TimeOrNow::Now => None,
        TimeOrNow::SpecificTime(t) => match t.duration_since(UNIX_EPOCH) {
            Ok(d) => Some((d.as_secs() as i64, d.subsec_nanos())),
            Err(e) => Some((-(e.duration().as_secs() as i64), 0)),
        },
    }
}

impl Mounted {
    pub fn new(index: Index<Mapped>, store: Store, upper: Upper) -> Self {
        Mounted {
            fs: Arc::new(UnionFs::new(index, store, upper)),
            handles: Mutex::new(HashMap::new()),
            listings: Mutex::new(HashMap::new()),
            backing: Mutex::new(HashMap::new()),
            next_fh: AtomicU64::new(1),
            passthrough: AtomicBool::new(false),
        }
    }

    /// The union filesystem, shared with the daemon's control socket.
    pub fn union(&self) -> Arc<UnionFs> {
        self.fs.clone()
    }

    /// A lookup: a missing name is answered as a negative entry (node id 0) that the kernel
    /// may cache, since names appear only through this daemon.
    fn lookup_entry(&self, found: Result<Found, FsError>, reply: ReplyEntry) {
        match found {
            Err(e) if e.errno() == libc::ENOENT => {
                let attr = FileAttr {
                    ino: INodeNo(0),
                    size: 0,
                    blocks: 0,
                    atime: UNIX_EPOCH,
                    mtime: UNIX_EPOCH,
                    ctime: UNIX_EPOCH,
                    crtime: UNIX_EPOCH,
                    kind: FuseType::RegularFile,
                    perm: 0,
                    nlink: 0,
                    uid: 0,
                    gid: 0,
                    rdev: 0,
                    blksize: 4096,
                    flags: 0,
                };
                reply.entry(&TTL, &attr, Generation(0));
            }
            other => self.entry(other, reply),
        }
    }

    /// The merged entries of directory `ino` for a readdir at `offset`: listed afresh when a
    /// pass starts (offset 0), else the pass's listing. A pass that reached the end drops it.
    fn dir_entries(&self, ino: u64, offset: u64) -> Result<Listing, Errno> {
        if offset > 0 {
            let mut listings = lock(&self.listings);
            if let Some(listing) = listings.get(&ino).cloned() {
                // "." and ".." come first: offset len + 2 is past the end.
                if offset as usize >= listing.len() + 2 {
                    listings.remove(&ino);
                }
                return Ok(listing);
            }
        }
        let (path, lower) = self.fs.node(ino).map_err(|e| err(&e))?;
        let mut entries = self.fs.list_dir(&path, lower).map_err(|e| err(&e))?;
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        let listing = Arc::new(entries);
        let mut listings = lock(&self.listings);
        if listings.len() >= LISTINGS_KEPT {
            // Passes left unfinished (a reader that stopped early) are forgotten.
            listings.clear();
        }
        listings.insert(ino, listing.clone());
        Ok(listing)
    }

    fn entry(&self, found: Result<Found, FsError>, reply: ReplyEntry) {
        match found.and_then(|f| self.fs.attr_of(&f).map(|a| (f, a))) {
            Ok((found, attr)) => {
                self.fs.remember(&found);
                reply.entry(&TTL, &file_attr(&attr), Generation(0));
            }
            Err(e) => reply.error(err(&e)),
        }
    }

    fn add_handle(&self, handle: Handle) -> u64 {
        let fh = self.next_fh.fetch_add(1, Ordering::Relaxed);
        lock(&self.handles).insert(fh, handle);
        fh
    }

    /// The live backing id of node `id`, or a new one for `file` (one per inode at a time).
    /// `Err` when the node already has a backing of the other kind (lower vs upper).
    fn backing_for(
        &self,
        id: u64,
        file: &File,
        lower: bool,
        open: impl FnOnce(&File) -> std::io::Result<BackingId>,
    ) -> Result<Option<Arc<BackingId>>, StaleLower> {
        if !self.passthrough.load(Ordering::Relaxed) {
            return Ok(None);
        }
        let mut map = lock(&self.backing);
        if let Some((weak, was_lower)) = map.get(&id)
            && let Some(live) = weak.upgrade()
        {
            return if *was_lower == lower {
                Ok(Some(live))
            } else {
                Err(StaleLower)
            };
        }
        match open(file) {
            Ok(id_) => {
                let arc = Arc::new(id_);
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

    /// The open file of handle `fh` (an upper one if `writable`), shared, so that no lock is
    /// held while it is used.
    fn file(&self, fh: FileHandle, writable: bool) -> Option<Arc<File>> {
        match lock(&self.handles).get(&fh.0) {
            Some(Handle::File { file, lower, .. }) if !(writable && *lower) => Some(file.clone()),
            _ => None,
        }
    }

    /// Registers an opened file of node `id`: its handle, the backing id the kernel passes
    /// reads and writes through to (none: they come to the daemon), and the open flags.
    /// Writes that must drop setuid/setgid come to the daemon as direct I/O: the node's page
    /// cache must not keep a copy that other handles' passthrough writes would leave stale.
    fn register(
        &self,
        id: u64,
        opened: Opened,
        open_backing: impl FnOnce(&File) -> std::io::Result<BackingId>,
    ) -> Result<(u64, Option<Arc<BackingId>>, FopenFlags), StaleLower> {
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
        let fh = self.add_handle(Handle::File {
            file: Arc::new(opened.file),
            _backing: backing.clone(),
            lower: opened.lower,
        });
        Ok((fh, backing, flags))
    }

    /// Whether node `id` is open through passthrough: `Some(true)` on its lower object,
    /// `Some(false)` on its upper file.
    fn live_backing(&self, id: u64) -> Option<bool> {
        lock(&self.backing)
            .get(&id)
            .filter(|(w, _)| w.strong_count() > 0)
            .map(|(_, lower)| *lower)
    }
}

impl Filesystem for Mounted {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> std::io::Result<()> {
        for flag in [
            InitFlags::FUSE_PARALLEL_DIROPS,
            InitFlags::FUSE_DO_READDIRPLUS,
            InitFlags::FUSE_CACHE_SYMLINKS,
            InitFlags::FUSE_HANDLE_KILLPRIV_V2,
        ] {
            if config.add_capabilities(flag).is_err() {
                tracing::info!("kernel lacks {flag:?}");
            }
        }
        let passthrough = config.add_capabilities(InitFlags::FUSE_PASSTHROUGH).is_ok()
            && config.set_max_stack_depth(1).is_ok();
        if !passthrough {
            tracing::warn!(
                "FUSE passthrough unavailable: reads go through the daemon with keep_cache"
            );
        }
        self.passthrough.store(passthrough, Ordering::Relaxed);
        let _ = config.set_max_write(1 << 20);
        let _ = config.set_max_readahead(1 << 20);
        Ok(())
    }

    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        self.lookup_entry(self.fs.child(parent.0, name.as_bytes()), reply);
    }

    fn forget(&self, _req: &Request, ino: INodeNo, nlookup: u64) {
        self.fs.forget(ino.0, nlookup);
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        match self.fs.getattr(ino.0) {
            Ok(a) => reply.attr(&TTL, &file_attr(&a)),
            Err(e) => reply.error(err(&e)),
        }
    }

    fn setattr(
        &self,
        req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let file = fh.and_then(|fh| self.file(fh, true));
        let result = self.fs.setattr(
            ino.0,
            mode,
            uid,
            gid,
            size,
            atime.map(to_time),
            mtime.map(to_time),
            file.as_deref(),
            &caller(req),
        );
        match result {
            Ok(a) => reply.attr(&TTL, &file_attr(&a)),
            Err(e) => reply.error(err(&e)),
        }
    }

    fn readlink(&self, _req: &Request, ino: INodeNo, reply: ReplyData) {
        match self.fs.readlink(ino.0) {
            Ok(t) => reply.data(&t),
            Err(e) => reply.error(err(&e)),
        }
    }

    fn mknod(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        rdev: u32,
        reply: ReplyEntry,
    ) {
        let mode = mode & !(umask & 0o777);
        let found = self.fs.create_entry(
            parent.0,
            name.as_bytes(),
            req.uid(),
            req.gid(),
            |fs, dir, name, _| fs.mknod_at(dir, name, mode, rdev as u64),
            false,
        );
        self.entry(found, reply);
    }

    fn mkdir(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        reply: ReplyEntry,
    ) {
        let mode = mode & !(umask & 0o777);
        let found = self.fs.create_entry(
            parent.0,
            name.as_bytes(),
            req.uid(),
            req.gid(),
            |fs, dir, name, path| fs.mkdir_at(dir, name, path, mode),
            true,
        );
        self.entry(found, reply);
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        match self.fs.remove(parent.0, name.as_bytes(), false) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(err(&e)),
        }
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        match self.fs.remove(parent.0, name.as_bytes(), true) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(err(&e)),
        }
    }

    fn symlink(
        &self,
        req: &Request,
        parent: INodeNo,
        link_name: &OsStr,
        target: &Path,
        reply: ReplyEntry,
    ) {
        let target = target.as_os_str().as_bytes().to_vec();
        let found = self.fs.create_entry(
            parent.0,
            link_name.as_bytes(),
            req.uid(),
            req.gid(),
            |fs, dir, name, _| fs.symlink_at(dir, name, &target),
            false,
        );
        self.entry(found, reply);
    }

    fn rename(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        match self.fs.rename(
            parent.0,
            name.as_bytes(),
            newparent.0,
            newname.as_bytes(),
            flags.bits(),
        ) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(err(&e)),
        }
    }

    fn link(
        &self,
        _req: &Request,
        ino: INodeNo,
        newparent: INodeNo,
        newname: &OsStr,
        reply: ReplyEntry,
    ) {
        self.entry(self.fs.link(ino.0, newparent.0, newname.as_bytes()), reply);
    }

    fn open(&self, req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        let lower_open = self.live_backing(ino.0) == Some(true);
        let mut opened = match self.fs.open_file(ino.0, flags.0, lower_open, &caller(req)) {
            Ok(Some(opened)) => opened,
            Ok(None) => return reply.error(Errno::from_i32(libc::ESTALE)),
            Err(e) => return reply.error(err(&e)),
        };
        if opened.writes_drop_setid && self.live_backing(ino.0).is_some() {
            // The kernel refuses a direct-I/O open of an inode open through passthrough: the
            // bits go now, as the write would drop them.
            if let Err(e) = drop_setid(&opened.file, &caller(req)) {
                return reply.error(Errno::from_i32(e.raw_os_error()));
            }
            opened.writes_drop_setid = false;
        }
        match self.register(ino.0, opened, |f| reply.open_backing(f)) {
            Ok((fh, Some(backing), flags)) => {
                reply.opened_passthrough(FileHandle(fh), flags, &backing)
            }
            Ok((fh, None, flags)) => reply.opened(FileHandle(fh), flags),
            // The node is open on its lower object and now lives upper: look it up again.
            Err(StaleLower) => reply.error(Errno::from_i32(libc::ESTALE)),
        }
    }

    fn read(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock: Option<LockOwner>,
        reply: ReplyData,
    ) {
        let Some(file) = self.file(fh, false) else {
            return reply.error(Errno::from_i32(libc::EBADF));
        };
        let mut buf = vec![0u8; size as usize];
        let mut got = 0;
        while got < buf.len() {
            match file.read_at(&mut buf[got..], offset + got as u64) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) => return reply.error(Errno::from(e)),
            }
        }
        reply.data(&buf[..got]);
    }

    fn write(
        &self,
        req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        data: &[u8],
        write_flags: fuser::WriteFlags,
        _flags: OpenFlags,
        _lock: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        let Some(file) = self.file(fh, true) else {
            return reply.error(Errno::from_i32(libc::EBADF));
        };
        // The kernel asks for it when the writer lacks CAP_FSETID (FUSE_HANDLE_KILLPRIV_V2).
        if write_flags.contains(fuser::WriteFlags::FUSE_WRITE_KILL_SUIDGID)
            && let Err(e) = drop_setid(&*file, &caller(req))
        {
            return reply.error(Errno::from_i32(e.raw_os_error()));
        }
        match file.write_all_at(data, offset) {
            Ok(()) => reply.written(data.len() as u32),
            Err(e) => reply.error(Errno::from(e)),
        }
    }

    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _lock: LockOwner,
        reply: ReplyEmpty,
    ) {
        reply.ok();
    }

    fn release(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        lock(&self.handles).remove(&fh.0);
        reply.ok();
    }

    fn fsync(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        datasync: bool,
        reply: ReplyEmpty,
    ) {
        let result = match self.file(fh, false) {
            Some(file) if datasync => file.sync_data(),
            Some(file) => file.sync_all(),
            None => Ok(()),
        };
        match result {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(Errno::from(e)),
        }
    }

    fn fallocate(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        length: u64,
        mode: i32,
        reply: ReplyEmpty,
    ) {
        let Some(file) = self.file(fh, true) else {
            return reply.error(Errno::from_i32(libc::EBADF));
        };
        match rustix::fs::fallocate(
            &*file,
            rustix::fs::FallocateFlags::from_bits_retain(mode as u32),
            offset,
            length,
        ) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(Errno::from_i32(e.raw_os_error())),
        }
    }

    /// ENOSYS: the kernel then opens every directory itself (no fh, its listing kept in the
    /// page cache) and never sends OPENDIR or RELEASEDIR again, two round trips less per
    /// directory visit.
    fn opendir(&self, _req: &Request, _ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        reply.error(Errno::from_i32(libc::ENOSYS));
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        let entries = match self.dir_entries(ino.0, offset) {
            Ok(entries) => entries,
            Err(e) => return reply.error(e),
        };
        let dots = [
            (b".".to_vec(), FileType::Directory),
            (b"..".to_vec(), FileType::Directory),
        ];
        for (i, (name, kind)) in dots
            .iter()
            .chain(entries.iter())
            .enumerate()
            .skip(offset as usize)
        {
            if reply.add(
                INodeNo(if i < 2 { ino.0 } else { 0 } | 1),
                (i + 1) as u64,
                fuse_type(*kind),
                OsStr::from_bytes(name),
            ) {
                break;
            }
        }
        reply.ok();
    }

    fn readdirplus(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectoryPlus,
    ) {
        let entries = match self.dir_entries(ino.0, offset) {
            Ok(entries) => entries,
            Err(e) => return reply.error(e),
        };
        let parent = match self.fs.node(ino.0) {
            Ok(p) => p,
            Err(e) => return reply.error(err(&e)),
        };
        // One upper lookup for the directory instead of one per entry when it has no upper side.
        let parent_in_upper = !matches!(self.fs.in_upper(&parent.0), Ok(None));
        let this = match self.fs.getattr(ino.0) {
            Ok(a) => file_attr(&a),
            Err(e) => return reply.error(err(&e)),
        };
        for (i, name) in [b".".to_vec(), b"..".to_vec()]
            .iter()
            .chain(entries.iter().map(|(n, _)| n))
            .enumerate()
            .skip(offset as usize)
        {
            if i < 2 {
                if reply.add(
                    ino,
                    (i + 1) as u64,
                    OsStr::from_bytes(name),
                    &TTL,
                    &this,
                    Generation(0),
                ) {
                    break;
                }
                continue;
            }
            let Ok(found) = self.fs.child_in(&parent.0, parent.1, parent_in_upper, name) else {
                continue;
            };
            let Ok(attr) = self.fs.attr_of(&found) else {
                continue;
            };
            if reply.add(
                INodeNo(found.id),
                (i + 1) as u64,
                OsStr::from_bytes(name),
                &TTL,
                &file_attr(&attr),
                Generation(0),
            ) {
                break;
            }
            self.fs.remember(&found);
        }
        reply.ok();
    }

    fn fsyncdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        match self.fs.fsync_dir(ino.0) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(err(&e)),
        }
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        match self.fs.statfs() {
            Ok(s) => reply.statfs(
                s.f_blocks,
                s.f_bfree,
                s.f_bavail,
                s.f_files,
                s.f_ffree,
                s.f_bsize as u32,
                s.f_namemax as u32,
                s.f_frsize as u32,
            ),
            Err(e) => reply.error(err(&e)),
        }
    }

    fn setxattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        name: &OsStr,
        value: &[u8],
        flags: i32,
        _position: u32,
        reply: ReplyEmpty,
    ) {
        match self.fs.setxattr(ino.0, name.as_bytes(), Some(value), flags) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(err(&e)),
        }
    }

    fn getxattr(&self, _req: &Request, ino: INodeNo, name: &OsStr, size: u32, reply: ReplyXattr) {
        xattr_reply(self.fs.getxattr(ino.0, name.as_bytes()), size, reply);
    }

    fn listxattr(&self, _req: &Request, ino: INodeNo, size: u32, reply: ReplyXattr) {
        xattr_reply(self.fs.listxattr(ino.0), size, reply);
    }

    fn removexattr(&self, _req: &Request, ino: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        match self.fs.setxattr(ino.0, name.as_bytes(), None, 0) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(err(&e)),
        }
    }

    /// No ioctl is supported: `ENOTTY` at once and quietly (Python's `open()` asks every
    /// file whether it is a terminal).
    fn ioctl(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _flags: fuser::IoctlFlags,
        _cmd: u32,
        _in_data: &[u8],
        _out_size: u32,
        reply: fuser::ReplyIoctl,
    ) {
        reply.error(Errno::from_i32(libc::ENOTTY));
    }

    fn create(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        _flags: i32,
        reply: ReplyCreate,
    ) {
        let mode = mode & !(umask & 0o777);
        let (found, file) =
            match self
                .fs
                .create_file(parent.0, name.as_bytes(), mode, req.uid(), req.gid())
            {
                Ok(created) => created,
                Err(e) => return reply.error(err(&e)),
            };
        let attr = match self.fs.attr_of(&found) {
            Ok(a) => file_attr(&a),
            Err(e) => return reply.error(err(&e)),
        };
        self.fs.remember(&found);
        // A new setuid/setgid file: its creator's writes drop those bits too (see `open`).
        let writes_drop_setid =
            setid_dropped_by_write(attr.perm.into(), attr.gid, &caller(req)) != 0;
        let opened = Opened {
            file,
            lower: false,
            writes_drop_setid,
        };
        match self.register(found.id, opened, |f| reply.open_backing(f)) {
            Ok((fh, Some(backing), flags)) => reply.created_passthrough(
                &TTL,
                &attr,
                Generation(0),
                FileHandle(fh),
                flags,
                &backing,
            ),
            Ok((fh, None, flags)) => {
                reply.created(&TTL, &attr, Generation(0), FileHandle(fh), flags)
            }
            Err(StaleLower) => reply.error(Errno::from_i32(libc::ESTALE)),
        }
    }
}

fn xattr_reply(value: Result<Vec<u8>, FsError>, size: u32, reply: ReplyXattr) {
    match value {
        Ok(v) if size == 0 => reply.size(v.len() as u32),
        Ok(v) if v.len() > size as usize => reply.error(Errno::from_i32(libc::ERANGE)),
        Ok(v) => reply.data(&v),
        Err(e) => reply.error(err(&e)),
    }
}
