//! fuser's `Filesystem` trait over [`UnionFs`] and [`Handles`]: each handler translates
//! fuser's arguments, calls one operation, and hands its answer to `reply.rs`, where every
//! error goes through one path that logs its cause and answers its errno.

use super::handles::Handles;
use super::readdir::Listings;
use super::reply::{self, caller, node, to_time};
use super::setattr::SetAttr;
use super::union::UnionFs;
use super::upper::{New, Upper};
use crate::index::Index;
use crate::store::Store;
use crate::sys::Mapped;
use fuser::{
    Errno, FileHandle, Filesystem, INodeNo, InitFlags, KernelConfig, LockOwner, OpenFlags,
    RenameFlags, ReplyAttr, ReplyCreate, ReplyData, ReplyDirectory, ReplyDirectoryPlus, ReplyEmpty,
    ReplyEntry, ReplyOpen, ReplyStatfs, ReplyWrite, ReplyXattr, Request, TimeOrNow,
};
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::Arc;
use std::time::SystemTime;

/// The mounted filesystem: the union, its open files and its directory listings.
pub struct Mounted {
    fs: Arc<UnionFs>,
    handles: Handles,
    listings: Listings,
}

impl Mounted {
    pub fn new(index: Index<Mapped>, store: Store, upper: Upper) -> Self {
        Mounted {
            fs: Arc::new(UnionFs::new(index, store, upper)),
            handles: Handles::default(),
            listings: Listings::default(),
        }
    }

    /// The union filesystem, shared with the daemon's control socket.
    pub fn union(&self) -> Arc<UnionFs> {
        self.fs.clone()
    }

    /// Makes `new` named `name` in `parent` for the caller of `req`.
    fn make(&self, req: &Request, parent: INodeNo, name: &OsStr, new: New<'_>, reply: ReplyEntry) {
        let owner = (req.uid(), req.gid());
        reply::entry(
            &self.fs,
            self.fs.make(node(parent), name.as_bytes(), new, owner),
            reply,
        );
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
        self.handles.set_passthrough(passthrough);
        let _ = config.set_max_write(1 << 20);
        let _ = config.set_max_readahead(1 << 20);
        Ok(())
    }

    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        reply::lookup(
            &self.fs,
            self.fs.child(node(parent), name.as_bytes()),
            reply,
        );
    }

    fn forget(&self, _req: &Request, ino: INodeNo, nlookup: u64) {
        self.fs.forget(node(ino), nlookup);
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        reply::attr(self.fs.getattr(node(ino)), reply);
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
        let file = fh.and_then(|fh| self.handles.file(fh.0, true).ok());
        let change = SetAttr {
            mode,
            uid,
            gid,
            size,
            atime: atime.map(to_time),
            mtime: mtime.map(to_time),
            file: file.as_deref(),
        };
        reply::attr(self.fs.setattr(node(ino), &change, &caller(req)), reply);
    }

    fn readlink(&self, _req: &Request, ino: INodeNo, reply: ReplyData) {
        match self.fs.readlink(node(ino)) {
            Ok(t) => reply.data(&t),
            Err(e) => reply.error(reply::errno(&e)),
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
        let new = New::Node {
            mode,
            rdev: rdev as u64,
        };
        self.make(req, parent, name, new, reply);
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
        self.make(req, parent, name, New::Dir { mode }, reply);
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        reply::empty(self.fs.remove(node(parent), name.as_bytes(), false), reply);
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        reply::empty(self.fs.remove(node(parent), name.as_bytes(), true), reply);
    }

    fn symlink(
        &self,
        req: &Request,
        parent: INodeNo,
        link_name: &OsStr,
        target: &Path,
        reply: ReplyEntry,
    ) {
        let target = target.as_os_str().as_bytes();
        self.make(req, parent, link_name, New::Symlink { target }, reply);
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
        let (from, to) = (name.as_bytes(), newname.as_bytes());
        let result = self
            .fs
            .rename(node(parent), from, node(newparent), to, flags.bits());
        reply::empty(result, reply);
    }

    fn link(
        &self,
        _req: &Request,
        ino: INodeNo,
        newparent: INodeNo,
        newname: &OsStr,
        reply: ReplyEntry,
    ) {
        let found = self.fs.link(node(ino), node(newparent), newname.as_bytes());
        reply::entry(&self.fs, found, reply);
    }

    fn open(&self, req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        let caller = caller(req);
        let backing = |f: &std::fs::File| reply.open_backing(f);
        let opened = self
            .handles
            .open(&self.fs, node(ino), flags.0, &caller, backing);
        reply::opened(opened, reply);
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
        match self.handles.read(fh.0, offset, size) {
            Ok(data) => reply.data(&data),
            Err(e) => reply.error(reply::errno(&e)),
        }
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
        // The kernel asks for it when the writer lacks CAP_FSETID (FUSE_HANDLE_KILLPRIV_V2).
        let kill_setid = write_flags.contains(fuser::WriteFlags::FUSE_WRITE_KILL_SUIDGID);
        match self
            .handles
            .write(fh.0, offset, data, kill_setid, &caller(req))
        {
            Ok(n) => reply.written(n),
            Err(e) => reply.error(reply::errno(&e)),
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
        self.handles.release(fh.0);
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
        reply::empty(self.handles.fsync(fh.0, datasync), reply);
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
        reply::empty(self.handles.fallocate(fh.0, offset, length, mode), reply);
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
        reply: ReplyDirectory,
    ) {
        reply::dir(
            ino,
            offset,
            self.listings.entries(&self.fs, node(ino), offset),
            reply,
        );
    }

    fn readdirplus(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        reply: ReplyDirectoryPlus,
    ) {
        let entries = self.listings.entries(&self.fs, node(ino), offset);
        reply::dir_plus(&self.fs, ino, offset, entries, reply);
    }

    fn fsyncdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        reply::empty(self.fs.fsync_dir(node(ino)), reply);
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        reply::statfs(self.fs.statfs(), reply);
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
        let result = self
            .fs
            .setxattr(node(ino), name.as_bytes(), Some(value), flags);
        reply::empty(result, reply);
    }

    fn getxattr(&self, _req: &Request, ino: INodeNo, name: &OsStr, size: u32, reply: ReplyXattr) {
        reply::xattr(self.fs.getxattr(node(ino), name.as_bytes()), size, reply);
    }

    fn listxattr(&self, _req: &Request, ino: INodeNo, size: u32, reply: ReplyXattr) {
        reply::xattr(self.fs.listxattr(node(ino)), size, reply);
    }

    fn removexattr(&self, _req: &Request, ino: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        reply::empty(self.fs.setxattr(node(ino), name.as_bytes(), None, 0), reply);
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
        let (new, caller) = ((node(parent), name.as_bytes()), caller(req));
        let backing = |f: &std::fs::File| reply.open_backing(f);
        let created = self.handles.create(&self.fs, new, mode, &caller, backing);
        reply::created(created, reply);
    }
}
