//! Translations between fuser's types and the union's: node ids, attributes, times, the
//! caller, and the replies (entries, attributes, opens, listings, xattrs). Every error
//! answered to the kernel goes through [`errno`].

use super::attr::Attr;
use super::error::FsError;
use super::handles::KernelOpen;
use super::id::NodeId;
use super::lookup::Found;
use super::readdir::Listing;
use super::setid::Caller;
use super::union::UnionFs;
use fuser::{
    Errno, FileAttr, FileHandle, FileType as FuseType, Generation, INodeNo, ReplyAttr, ReplyCreate,
    ReplyDirectory, ReplyDirectoryPlus, ReplyEmpty, ReplyEntry, ReplyOpen, ReplyStatfs, ReplyXattr,
    Request, TimeOrNow,
};
use rustix::fs::FileType;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Entries and attributes change only through this daemon, so the kernel may cache them long.
pub const TTL: Duration = Duration::from_secs(3600);

/// The errno to answer for `e`, whose cause is logged here and only here.
pub fn errno(e: &FsError) -> Errno {
    tracing::debug!("{e}");
    Errno::from_i32(e.errno())
}

pub fn caller(req: &Request) -> Caller {
    Caller {
        uid: req.uid(),
        gid: req.gid(),
        pid: req.pid(),
    }
}

pub fn node(ino: INodeNo) -> NodeId {
    NodeId::from_raw(ino.0)
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

pub fn to_time(t: TimeOrNow) -> Option<(i64, u32)> {
    match t {
        TimeOrNow::Now => None,
        TimeOrNow::SpecificTime(t) => match t.duration_since(UNIX_EPOCH) {
            Ok(d) => Some((d.as_secs() as i64, d.subsec_nanos())),
            Err(e) => Some((-(e.duration().as_secs() as i64), 0)),
        },
    }
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
        ino: INodeNo(a.id.raw()),
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

/// What a lookup that found nothing answers: a negative entry (node id 0) that the kernel
/// may cache, since names appear only through this daemon.
fn negative_entry() -> FileAttr {
    FileAttr {
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
    }
}

pub fn empty(result: Result<(), FsError>, reply: ReplyEmpty) {
    match result {
        Ok(()) => reply.ok(),
        Err(e) => reply.error(errno(&e)),
    }
}

pub fn xattr(value: Result<Vec<u8>, FsError>, size: u32, reply: ReplyXattr) {
    match value {
        Ok(v) if size == 0 => reply.size(v.len() as u32),
        Ok(v) if v.len() > size as usize => reply.error(Errno::from_i32(libc::ERANGE)),
        Ok(v) => reply.data(&v),
        Err(e) => reply.error(errno(&e)),
    }
}

/// Answers a resolved entry, which the kernel then holds.
pub fn entry(fs: &UnionFs, found: Result<Found, FsError>, reply: ReplyEntry) {
    match found.and_then(|f| fs.attr_of(&f).map(|a| (f, a))) {
        Ok((found, attr)) => {
            fs.remember(&found);
            reply.entry(&TTL, &file_attr(&attr), Generation(0));
        }
        Err(e) => reply.error(errno(&e)),
    }
}

/// Answers a lookup: a missing name is a negative entry.
pub fn lookup(fs: &UnionFs, found: Result<Found, FsError>, reply: ReplyEntry) {
    match found {
        Err(e) if e.errno() == libc::ENOENT => reply.entry(&TTL, &negative_entry(), Generation(0)),
        found => entry(fs, found, reply),
    }
}

pub fn attr(attr: Result<Attr, FsError>, reply: ReplyAttr) {
    match attr {
        Ok(a) => reply.attr(&TTL, &file_attr(&a)),
        Err(e) => reply.error(errno(&e)),
    }
}

pub fn opened(opened: Result<KernelOpen, FsError>, reply: ReplyOpen) {
    match opened {
        Ok(open) => match &open.backing {
            Some(backing) => reply.opened_passthrough(FileHandle(open.fh), open.flags, backing),
            None => reply.opened(FileHandle(open.fh), open.flags),
        },
        Err(e) => reply.error(errno(&e)),
    }
}

pub fn created(created: Result<(Attr, KernelOpen), FsError>, reply: ReplyCreate) {
    let (attr, open) = match created {
        Ok(created) => created,
        Err(e) => return reply.error(errno(&e)),
    };
    let (attr, fh) = (file_attr(&attr), FileHandle(open.fh));
    match &open.backing {
        Some(backing) => {
            reply.created_passthrough(&TTL, &attr, Generation(0), fh, open.flags, backing)
        }
        None => reply.created(&TTL, &attr, Generation(0), fh, open.flags),
    }
}

/// Fills a readdir reply for directory `ino` from `offset`: "." and ".." first, then the
/// listing's entries; an entry's offset is its position plus one.
pub fn dir(
    ino: INodeNo,
    offset: u64,
    entries: Result<Listing, FsError>,
    mut reply: ReplyDirectory,
) {
    let entries = match entries {
        Ok(entries) => entries,
        Err(e) => return reply.error(errno(&e)),
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
        let ino = INodeNo(if i < 2 { ino.0 } else { 0 } | 1);
        if reply.add(
            ino,
            (i + 1) as u64,
            fuse_type(*kind),
            OsStr::from_bytes(name),
        ) {
            break;
        }
    }
    reply.ok();
}

/// Fills a readdirplus reply as [`dir`] does, each entry resolved as a lookup; the kernel
/// holds the node of each entry the reply takes.
pub fn dir_plus(
    fs: &UnionFs,
    ino: INodeNo,
    offset: u64,
    entries: Result<Listing, FsError>,
    mut reply: ReplyDirectoryPlus,
) {
    let dir = NodeId::from_raw(ino.0);
    let entries = match entries {
        Ok(entries) => entries,
        Err(e) => return reply.error(errno(&e)),
    };
    let this = match fs.getattr(dir) {
        Ok(a) => file_attr(&a),
        Err(e) => return reply.error(errno(&e)),
    };
    for (i, name) in [&b"."[..], b".."]
        .into_iter()
        .enumerate()
        .skip(offset as usize)
    {
        let name = OsStr::from_bytes(name);
        if reply.add(ino, (i + 1) as u64, name, &TTL, &this, Generation(0)) {
            return reply.ok();
        }
    }
    let skip = (offset as usize).saturating_sub(2);
    let names = entries.iter().skip(skip).map(|(n, _)| n.as_slice());
    let resolved = match fs.resolve_entries(dir, names) {
        Ok(resolved) => resolved,
        Err(e) => return reply.error(errno(&e)),
    };
    for (i, (name, entry)) in entries.iter().skip(skip).zip(resolved).enumerate() {
        let Some((found, attr)) = entry else {
            continue;
        };
        let (id, cookie) = (INodeNo(found.id.raw()), (skip + i + 3) as u64);
        let name = OsStr::from_bytes(&name.0);
        if reply.add(id, cookie, name, &TTL, &file_attr(&attr), Generation(0)) {
            break;
        }
        fs.remember(&found);
    }
    reply.ok();
}

pub fn statfs(stats: Result<rustix::fs::StatVfs, FsError>, reply: ReplyStatfs) {
    match stats {
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
        Err(e) => reply.error(errno(&e)),
    }
}
