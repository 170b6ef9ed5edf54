//! Attributes of entries as the union reports them, independent of fuser's types: from an
//! upper file's `stat`, or from a lower inode of the index.

use super::id::NodeId;
use crate::index::{Inode, NodeKind};
use rustix::fs::{FileType, Stat};

/// Attributes of an entry, reported under node id `id`.
#[derive(Debug, Clone)]
pub struct Attr {
    pub id: NodeId,
    pub kind: FileType,
    pub mode: u32,
    pub nlink: u32,
    pub uid: u32,
    pub gid: u32,
    pub size: u64,
    pub blocks: u64,
    pub rdev: u64,
    pub atime: (i64, u32),
    pub mtime: (i64, u32),
    pub ctime: (i64, u32),
}

impl Attr {
    /// From an upper file's `stat`.
    pub fn of_stat(id: NodeId, st: &Stat) -> Attr {
        Attr {
            id,
            kind: FileType::from_raw_mode(st.st_mode),
            mode: st.st_mode & 0o7777,
            nlink: st.st_nlink as u32,
            uid: st.st_uid,
            gid: st.st_gid,
            size: st.st_size as u64,
            blocks: st.st_blocks as u64,
            rdev: st.st_rdev,
            atime: (st.st_atime, st.st_atime_nsec as u32),
            mtime: (st.st_mtime, st.st_mtime_nsec as u32),
            ctime: (st.st_ctime, st.st_ctime_nsec as u32),
        }
    }

    /// From a lower inode (one time, the layer's mtime, for all three).
    pub fn of_inode(id: NodeId, inode: &Inode<'_>) -> Attr {
        let size = inode.size();
        let rdev = match inode.kind {
            NodeKind::CharDevice { major, minor } | NodeKind::BlockDevice { major, minor } => {
                rustix::fs::makedev(major, minor)
            }
            _ => 0,
        };
        let t = (inode.mtime_sec, inode.mtime_nsec);
        Attr {
            id,
            kind: file_type(&inode.kind),
            mode: inode.mode,
            nlink: inode.nlink,
            uid: inode.uid,
            gid: inode.gid,
            size,
            blocks: size.div_ceil(512),
            rdev,
            atime: t,
            mtime: t,
            ctime: t,
        }
    }
}

/// The file type of a lower inode.
pub fn file_type(kind: &NodeKind<'_>) -> FileType {
    match kind {
        NodeKind::Dir { .. } => FileType::Directory,
        NodeKind::File { .. } => FileType::RegularFile,
        NodeKind::Symlink { .. } => FileType::Symlink,
        NodeKind::CharDevice { .. } => FileType::CharacterDevice,
        NodeKind::BlockDevice { .. } => FileType::BlockDevice,
        NodeKind::Fifo => FileType::Fifo,
    }
}
