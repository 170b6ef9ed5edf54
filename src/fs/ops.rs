//! The union filesystem's operations, independent of FUSE's reply types.

use super::FsError;
use super::locks::{NamespaceGuard, NamespaceLocks};
use super::upper::{LowerMeta, Upper, is_private_xattr, join, parent_of, rel};
use crate::index::{Index, NodeKind};
use crate::model::Ino;
use crate::store::Store;
use crate::sys::Mapped;
use rustix::fs::{AtFlags, FileType, Mode, OFlags, Stat};
use std::collections::{HashMap, HashSet};
use std::ffi::OsStr;
use std::fs::File;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::sync::{Arc, OnceLock, RwLock};

/// Node ids of upper entries carry this bit; index inode numbers never do.
pub const UPPER_BIT: u64 = 1 << 62;

/// A node the kernel holds: where it is, and which lower inode (if any) shows through there.
#[derive(Debug, Clone)]
pub struct Node {
    /// Every path known for this node (hardlinks have several); the first is used.
    pub paths: Vec<Vec<u8>>,
    /// The lower inode visible at the path: a lower-only entry, or the lower side of a merged
    /// directory. `None` for upper entries and opaque directories.
    pub lower: Option<Ino>,
    pub lookups: u64,
    /// The upper file, held (`O_PATH`) from just before its last name was unlinked or
    /// replaced: opens of the node still reach it, as they would on a local filesystem.
    pub orphan: Option<Arc<OwnedFd>>,
}

/// A file opened for the kernel ([`UnionFs::open_file`]).
pub struct Opened {
    pub file: File,
    /// The store object of a lower file, opened for reading.
    pub lower: bool,
    /// Writes through this handle must drop setuid/setgid first, so they go through the
    /// daemon rather than passthrough ([`drop_setid`]).
    pub writes_drop_setid: bool,
}

/// Who made a request, as the kernel tells the daemon.
#[derive(Debug, Clone, Copy)]
pub struct Caller {
    pub uid: u32,
    pub gid: u32,
    pub pid: u32,
}

impl Caller {
    /// Whether the caller is in group `gid` (its own, or a supplementary one).
    fn in_group(&self, gid: u32) -> bool {
        self.gid == gid
            || std::fs::read_to_string(format!("/proc/{}/status", self.pid)).is_ok_and(|status| {
                status
                    .lines()
                    .find_map(|l| l.strip_prefix("Groups:"))
                    .is_some_and(|groups| groups.split_whitespace().any(|g| g == gid.to_string()))
            })
    }
}

/// The setuid/setgid bits that a write by `caller` clears on a file of mode `mode` and
/// group `gid`, as the kernel does: none for root (the daemon sees uids, not `CAP_FSETID`);
/// else setuid, and setgid if the file is group-executable or the caller not in its group.
pub fn setid_dropped_by_write(mode: u32, gid: u32, caller: &Caller) -> u32 {
    if caller.uid == 0 || mode & (libc::S_ISUID | libc::S_ISGID) == 0 {
        return 0;
    }
    let sgid = if mode & libc::S_IXGRP != 0 || !caller.in_group(gid) {
        libc::S_ISGID
    } else {
        0
    };
    mode & (libc::S_ISUID | sgid)
}

/// Clears on `fd` the setuid/setgid bits a write by `caller` clears.
pub fn drop_setid(fd: impl std::os::fd::AsFd, caller: &Caller) -> rustix::io::Result<()> {
    let st = rustix::fs::fstat(&fd)?;
    let drop = setid_dropped_by_write(st.st_mode, st.st_gid, caller);
    if drop != 0 {
        rustix::fs::fchmod(&fd, Mode::from_raw_mode(st.st_mode & 0o7777 & !drop))?;
    }
    Ok(())
}

/// A node's path and lower inode, read under the namespace locks held with them.
struct Locked<'a> {
    _guard: NamespaceGuard<'a>,
    path: Vec<u8>,
    lower: Option<Ino>,
}

/// What a name resolves to.
#[derive(Debug, Clone)]
pub struct Found {
    pub id: u64,
    pub path: Vec<u8>,
    pub lower: Option<Ino>,
    pub upper: Option<Stat>,
}

/// Attributes of an entry, independent of fuser's types.
#[derive(Debug, Clone)]
pub struct Attr {
    pub id: u64,
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

/// One container's union filesystem.
pub struct UnionFs {
    pub(super) index: Index<Mapped>,
    pub(super) store: Store,
    pub(super) upper: Upper,
    pub(super) nodes: RwLock<HashMap<u64, Node>>,
    /// Orders changes to the upper directory's namespace (create, unlink, rename, copy-up).
    locks: NamespaceLocks,
    /// Lower inode → every path of it, for lower hardlinks (built at the first copy-up of one).
    lower_links: OnceLock<HashMap<u64, Vec<Vec<u8>>>>,
}

fn errno(e: rustix::io::Errno, path: &[u8]) -> FsError {
    FsError::Io {
        path: String::from_utf8_lossy(path).into_owned(),
        errno: e.raw_os_error(),
    }
}

fn enoent(path: &[u8]) -> FsError {
    FsError::Io {
        path: String::from_utf8_lossy(path).into_owned(),
        errno: libc::ENOENT,
    }
}

fn kind_of(kind: &NodeKind<'_>) -> FileType {
    match kind {
        NodeKind::Dir { .. } => FileType::Directory,
        NodeKind::File { .. } => FileType::RegularFile,
        NodeKind::Symlink { .. } => FileType::Symlink,
        NodeKind::CharDevice { .. } => FileType::CharacterDevice,
        NodeKind::BlockDevice { .. } => FileType::BlockDevice,
        NodeKind::Fifo => FileType::Fifo,
    }
}

impl UnionFs {
    pub fn new(index: Index<Mapped>, store: Store, upper: Upper) -> Self {
        let mut nodes = HashMap::new();
        nodes.insert(
            1,
            Node {
                paths: vec![Vec::new()],
                lower: Some(Ino::ROOT),
                lookups: 1,
                orphan: None,
            },
        );
        UnionFs {
            index,
            store,
            upper,
            nodes: RwLock::new(nodes),
            locks: NamespaceLocks::default(),
            lower_links: OnceLock::new(),
        }
    }

    /// Holds every change that goes through the daemon (create, unlink, rename, copy-up,
    /// setattr, xattrs) until the guard is dropped: `snap commit` reads the upper meanwhile.
    /// Reads and writes of open files go through passthrough and are not held.
    pub fn freeze(&self) -> NamespaceGuard<'_> {
        self.locks.whole()
    }

    /// Adds to `dirs` what a change to the entries of the directory `dir` locks: `dir`, and
    /// the parent of each directory on the way to it that copy-up has yet to make.
    fn dirs_changed_in(&self, dir: &[u8], dirs: &mut Vec<Vec<u8>>) -> Result<(), FsError> {
        dirs.push(dir.to_vec());
        let mut missing = dir;
        while !missing.is_empty() && self.upper.stat(missing)?.is_none() {
            missing = parent_of(missing).0;
            dirs.push(missing.to_vec());
        }
        Ok(())
    }

    /// Whether changing the entry `found` needs the whole namespace: moving a directory
    /// moves every path below it, and copying up a lower hardlink links its other names in
    /// directories nobody locked.
    fn needs_whole_namespace(&self, found: &Found) -> bool {
        self.is_dir(found) || (found.upper.is_none() && self.is_lower_hardlink(found.lower))
    }

    fn is_lower_hardlink(&self, lower: Option<Ino>) -> bool {
        lower
            .and_then(|l| self.index.inode(l))
            .is_some_and(|i| i.nlink > 1 && matches!(i.kind, NodeKind::File { .. }))
    }

    fn is_dir(&self, found: &Found) -> bool {
        found.upper.as_ref().map_or_else(
            || {
                matches!(
                    found
                        .lower
                        .and_then(|l| self.index.inode(l))
                        .map(|i| i.kind),
                    Some(NodeKind::Dir { .. })
                )
            },
            Upper::is_dir,
        )
    }

    /// Locks what copying node `id` up changes (its parent directory, or the whole namespace
    /// for a lower hardlink), and the entries of the directory node `also_dir` if given;
    /// returns the node's path and lower inode as read under the locks.
    fn lock_node(&self, id: u64, also_dir: Option<u64>) -> Result<Locked<'_>, FsError> {
        loop {
            let shared = self.locks.shared();
            let (path, lower) = self.node(id)?;
            if self.in_upper(&path)?.is_none() && self.is_lower_hardlink(lower) {
                drop(shared);
                let guard = self.locks.whole();
                let (path, lower) = self.node(id)?;
                return Ok(Locked {
                    _guard: guard,
                    path,
                    lower,
                });
            }
            // The node itself too: a copy-up into it (a directory) restores its times, which
            // a utimens on it must not see overwritten.
            let mut dirs = vec![path.clone()];
            self.dirs_changed_in(parent_of(&path).0, &mut dirs)?;
            if let Some(dir) = also_dir {
                self.dirs_changed_in(&self.node(dir)?.0, &mut dirs)?;
            }
            let guard = shared.lock_dirs(&dirs);
            // A file renamed away meanwhile is locked again where it went. (A lookup of a
            // hardlink's other name may have put that name first: this one still serves.)
            let (still, lower) = self.node_has_path(id, &path)?;
            if still {
                return Ok(Locked {
                    _guard: guard,
                    path,
                    lower,
                });
            }
        }
    }

    /// Whether node `id` still has the name `path`, and its lower inode.
    fn node_has_path(&self, id: u64, path: &[u8]) -> Result<(bool, Option<Ino>), FsError> {
        let nodes = self.nodes.read().unwrap_or_else(|p| p.into_inner());
        let node = nodes.get(&id).ok_or(FsError::UnknownInode(id))?;
        Ok((node.paths.iter().any(|p| p.as_slice() == path), node.lower))
    }

    /// Locks the entries of the directory node `dir` (and what copying it up changes), plus
    /// the paths `below` in it (an rmdir changes the directory it removes); returns its
    /// path and lower inode as read under the locks.
    fn lock_dir(&self, dir: u64, below: Option<&[u8]>) -> Result<Locked<'_>, FsError> {
        let shared = self.locks.shared();
        let (path, lower) = self.node(dir)?;
        let mut dirs = Vec::new();
        self.dirs_changed_in(&path, &mut dirs)?;
        if let Some(name) = below {
            dirs.push(join(&path, name));
        }
        Ok(Locked {
            _guard: shared.lock_dirs(&dirs),
            path,
            lower,
        })
    }

    /// The node `id`: its first path and its lower inode.
    pub fn node(&self, id: u64) -> Result<(Vec<u8>, Option<Ino>), FsError> {
        let nodes = self.nodes.read().unwrap_or_else(|p| p.into_inner());
        let node = nodes.get(&id).ok_or(FsError::UnknownInode(id))?;
        let path = node
            .paths
            .first()
            .cloned()
            .ok_or_else(|| FsError::refused(format!("inode {id} (unlinked)"), libc::ENOENT))?;
        Ok((path, node.lower))
    }

    /// Resolves `name` in the directory node `parent`.
    pub fn child(&self, parent: u64, name: &[u8]) -> Result<Found, FsError> {
        let (parent_path, parent_lower) = self.node(parent)?;
        self.child_of(&parent_path, parent_lower, name)
    }

    pub(super) fn child_of(
        &self,
        parent_path: &[u8],
        parent_lower: Option<Ino>,
        name: &[u8],
    ) -> Result<Found, FsError> {
        self.child_in(parent_path, parent_lower, true, name)
    }

    /// Like [`UnionFs::child_of`]; `parent_in_upper` false (the parent directory has no upper
    /// side) skips the upper lookup, as readdirplus of a lower-only directory can.
    pub(super) fn child_in(
        &self,
        parent_path: &[u8],
        parent_lower: Option<Ino>,
        parent_in_upper: bool,
        name: &[u8],
    ) -> Result<Found, FsError> {
        let path = join(parent_path, name);
        let lower_child = parent_lower.and_then(|p| self.index.lookup(p, name));
        let upper = if parent_in_upper {
            self.upper.stat(&path)?
        } else {
            None
        };
        match upper {
            Some(st) if Upper::is_whiteout(&st) => Err(enoent(&path)),
            Some(st) => {
                let merged = Upper::is_dir(&st)
                    && lower_child.is_some_and(|l| {
                        matches!(
                            self.index.inode(l).map(|i| i.kind),
                            Some(NodeKind::Dir { .. })
                        )
                    })
                    && !self.upper.is_opaque(&path);
                let (id, lower) = match (merged, lower_child) {
                    (true, Some(l)) => (l.0, Some(l)),
                    _ => (UPPER_BIT | st.st_ino, None),
                };
                Ok(Found {
                    id,
                    path,
                    lower,
                    upper: Some(st),
                })
            }
            None => match lower_child {
                Some(l) => Ok(Found {
                    id: l.0,
                    path,
                    lower: Some(l),
                    upper: None,
                }),
                None => Err(enoent(&path)),
            },
        }
    }

    /// Counts one more kernel reference to the node of `found`.
    pub fn remember(&self, found: &Found) {
        let mut nodes = self.nodes.write().unwrap_or_else(|p| p.into_inner());
        let node = nodes.entry(found.id).or_insert_with(|| Node {
            paths: Vec::new(),
            lower: found.lower,
            lookups: 0,
            orphan: None,
        });
        node.lookups += 1;
        node.lower = found.lower;
        if let Some(i) = node.paths.iter().position(|p| *p == found.path) {
            node.paths.swap(0, i);
        } else {
            node.paths.insert(0, found.path.clone());
        }
    }

    pub fn forget(&self, id: u64, n: u64) {
        if id == 1 {
            return;
        }
        let mut nodes = self.nodes.write().unwrap_or_else(|p| p.into_inner());
        if let Some(node) = nodes.get_mut(&id) {
            node.lookups = node.lookups.saturating_sub(n);
            if node.lookups == 0 {
                nodes.remove(&id);
            }
        }
    }

    /// The attributes of a resolved entry.
    pub fn attr_of(&self, found: &Found) -> Result<Attr, FsError> {
        match &found.upper {
            Some(st) => Ok(stat_attr(found.id, st)),
            None => {
                let ino = found.lower.ok_or_else(|| enoent(&found.path))?;
                self.lower_attr(found.id, ino)
            }
        }
    }

    fn lower_attr(&self, id: u64, ino: Ino) -> Result<Attr, FsError> {
        let inode = self.index.inode(ino).ok_or(FsError::CorruptIndex(ino.0))?;
        let size = inode.size();
        let rdev = match inode.kind {
            NodeKind::CharDevice { major, minor } | NodeKind::BlockDevice { major, minor } => {
                rustix::fs::makedev(major, minor)
            }
            _ => 0,
        };
        let t = (inode.mtime_sec, inode.mtime_nsec);
        Ok(Attr {
            id,
            kind: kind_of(&inode.kind),
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
        })
    }

    /// The current attributes of node `id` (its path may have changed state since lookup).
    pub fn getattr(&self, id: u64) -> Result<Attr, FsError> {
        let (path, lower) = match self.node(id) {
            Ok(found) => found,
            // An unlinked file still open (`fstat` of a deleted log): what it kept of itself.
            Err(e) if e.errno() == libc::ENOENT => return self.orphan_attr(id).ok_or(e),
            Err(e) => return Err(e),
        };
        match self.upper.stat(&path)? {
            Some(st) if !Upper::is_whiteout(&st) => Ok(stat_attr(id, &st)),
            _ => match lower {
                Some(ino) => self.lower_attr(id, ino),
                None => Err(enoent(&path)),
            },
        }
    }

    /// The attributes of node `id` whose names are gone, from its kept upper file.
    fn orphan_attr(&self, id: u64) -> Option<Attr> {
        let nodes = self.nodes.read().unwrap_or_else(|p| p.into_inner());
        let kept = nodes.get(&id)?.orphan.clone()?;
        drop(nodes);
        rustix::fs::fstat(&*kept).ok().map(|st| stat_attr(id, &st))
    }

    /// Whether the upper directory holds (a non-whiteout) `path`.
    pub fn in_upper(&self, path: &[u8]) -> Result<Option<Stat>, FsError> {
        Ok(self.upper.stat(path)?.filter(|st| !Upper::is_whiteout(st)))
    }

    /// The lower inode a lower-only `path` has, walking the index from the root.
    fn lower_path(&self, path: &[u8]) -> Option<Ino> {
        path.split(|&b| b == b'/')
            .filter(|c| !c.is_empty())
            .try_fold(Ino::ROOT, |ino, name| self.index.lookup(ino, name))
    }

    /// Makes sure the directory `path` exists in the upper dir, copying up its parents first.
    pub(super) fn ensure_upper_dir(&self, path: &[u8]) -> Result<(), FsError> {
        if let Some(st) = self.upper.stat(path)? {
            return if Upper::is_dir(&st) {
                Ok(())
            } else {
                Err(FsError::refused(
                    String::from_utf8_lossy(path),
                    libc::ENOTDIR,
                ))
            };
        }
        let (parent, _) = parent_of(path);
        self.ensure_upper_dir(parent)?;
        let ino = self.lower_path(path).ok_or_else(|| enoent(path))?;
        let (meta, _) = LowerMeta::of(&self.index, ino)?;
        self.upper.mkdir_like(path, &meta)
    }

    /// Copies the lower entry `ino` at `path` up, unless the upper dir already has it; the
    /// other names of a lower hardlink are linked to the copy, so it stays one inode. The
    /// caller holds the locks of the parent directory (and of missing ancestors), or the
    /// whole namespace for a lower hardlink.
    pub(super) fn copy_up(
        &self,
        path: &[u8],
        ino: Option<Ino>,
        with_data: bool,
    ) -> Result<(), FsError> {
        if self.in_upper(path)?.is_some() {
            return Ok(());
        }
        let ino = ino.ok_or_else(|| enoent(path))?;
        let (parent, _) = parent_of(path);
        self.ensure_upper_dir(parent)?;
        let (meta, kind) = LowerMeta::of(&self.index, ino)?;
        if self.upper.stat(path)?.is_some() {
            // A whiteout: the name was deleted; nothing visible to copy up.
            return Err(enoent(path));
        }
        self.upper
            .copy_up_entry(path, &kind, &meta, &self.store, with_data)?;
        let nlink = self.index.inode(ino).map_or(1, |i| i.nlink);
        if matches!(kind, NodeKind::File { .. }) && nlink > 1 {
            let links = self.lower_links.get_or_init(|| self.collect_lower_links());
            for other in links.get(&ino.0).into_iter().flatten() {
                if other.as_slice() != path && self.lower_visible(other) == Some(ino) {
                    let (other_parent, _) = parent_of(other);
                    self.ensure_upper_dir(other_parent)?;
                    rustix::fs::linkat(
                        self.upper.root_fd(),
                        rel(path),
                        self.upper.root_fd(),
                        rel(other),
                        AtFlags::empty(),
                    )
                    .map_err(|e| errno(e, other))?;
                }
            }
        }
        Ok(())
    }

    fn collect_lower_links(&self) -> HashMap<u64, Vec<Vec<u8>>> {
        let mut out: HashMap<u64, Vec<Vec<u8>>> = HashMap::new();
        self.index.walk(|path, ino| {
            if let Some(inode) = self.index.inode(ino)
                && inode.nlink > 1
                && matches!(inode.kind, NodeKind::File { .. })
            {
                out.entry(ino.0).or_default().push(path.to_vec());
            }
        });
        out
    }

    /// The lower inode visible at `path` through the upper dir (None if the upper dir hides
    /// it, or has its own entry there).
    fn lower_visible(&self, path: &[u8]) -> Option<Ino> {
        let mut ino = Ino::ROOT;
        let mut walked: Vec<u8> = Vec::new();
        for name in path.split(|&b| b == b'/').filter(|c| !c.is_empty()) {
            walked = join(&walked, name);
            ino = self.index.lookup(ino, name)?;
            match self.upper.stat(&walked).ok()? {
                None => {}
                Some(st)
                    if Upper::is_dir(&st)
                        && walked.len() < path.len()
                        && !self.upper.is_opaque(&walked) => {}
                Some(_) => return None,
            }
        }
        Some(ino)
    }

    /// Copies a whole lower (or merged) directory tree up, then marks it opaque: what a
    /// rename of a lower directory needs.
    pub(super) fn copy_up_tree(&self, path: &[u8], ino: Option<Ino>) -> Result<(), FsError> {
        self.ensure_upper_dir(path)?;
        if let Some(ino) = ino
            && !self.upper.is_opaque(path)
        {
            let children: Vec<(Vec<u8>, Ino)> = self
                .index
                .children(ino)
                .into_iter()
                .flatten()
                .map(|(n, i)| (n.to_vec(), i))
                .collect();
            for (name, child) in children {
                let child_path = join(path, &name);
                let is_dir = matches!(
                    self.index.inode(child).map(|i| i.kind),
                    Some(NodeKind::Dir { .. })
                );
                match self.upper.stat(&child_path)? {
                    Some(st)
                        if Upper::is_dir(&st) && is_dir && !self.upper.is_opaque(&child_path) =>
                    {
                        self.copy_up_tree(&child_path, Some(child))?
                    }
                    Some(_) => {}
                    None if is_dir => self.copy_up_tree(&child_path, Some(child))?,
                    None => self.copy_up(&child_path, Some(child), true)?,
                }
            }
        }
        self.upper.set_opaque(path)
    }

    /// The merged entries of the directory at `path`: (name, kind, lower inode if lower-only).
    pub fn list_dir(
        &self,
        path: &[u8],
        lower: Option<Ino>,
    ) -> Result<Vec<(Vec<u8>, FileType)>, FsError> {
        let mut out = Vec::new();
        let mut seen = HashSet::new();
        if self.in_upper(path)?.is_some() {
            for (name, st) in self.upper.list(path)? {
                if !Upper::is_whiteout(&st) {
                    out.push((name.clone(), FileType::from_raw_mode(st.st_mode)));
                }
                seen.insert(name);
            }
        }
        if let Some(ino) = lower {
            for (name, child) in self.index.children(ino).into_iter().flatten() {
                if !seen.contains(name)
                    && let Some(inode) = self.index.inode(child)
                {
                    out.push((name.to_vec(), kind_of(&inode.kind)));
                }
            }
        }
        Ok(out)
    }

    pub fn readlink(&self, id: u64) -> Result<Vec<u8>, FsError> {
        let (path, lower) = self.node(id)?;
        if self.in_upper(&path)?.is_some() {
            let (dir, name) = self.upper.parent_beneath(&path)?;
            let target =
                rustix::fs::readlinkat(&dir, rel(name), Vec::new()).map_err(|e| errno(e, &path))?;
            return Ok(target.into_bytes());
        }
        let ino = lower.ok_or_else(|| enoent(&path))?;
        match self.index.inode(ino).map(|i| i.kind) {
            Some(NodeKind::Symlink { target }) => Ok(target.to_vec()),
            _ => Err(FsError::refused(
                String::from_utf8_lossy(&path),
                libc::EINVAL,
            )),
        }
    }

    /// Opens the file behind node `id` for the kernel: the store object for reads of a lower
    /// file, else the upper file (copied up first for a write). `Ok(None)` means "answer
    /// ESTALE so the kernel looks the name up again": the node was copied up while lower
    /// handles are open, or its name is gone and nothing of it can be opened.
    pub fn open_file(
        &self,
        id: u64,
        flags: i32,
        lower_open: bool,
        caller: &Caller,
    ) -> Result<Option<Opened>, FsError> {
        let writes = flags & libc::O_ACCMODE != libc::O_RDONLY || flags & libc::O_TRUNC != 0;
        // A node whose name was unlinked or replaced since the kernel looked it up (a `cat
        // old` racing `mv new old`) is opened through what it kept of itself.
        let (path, lower) = match self.node(id) {
            Ok(found) => found,
            Err(e) if e.errno() == libc::ENOENT => {
                return self.open_orphan(id, flags, writes, caller);
            }
            Err(e) => return Err(e),
        };
        if !writes && self.in_upper(&path)?.is_none() {
            // A read of a lower file: its store object, wherever its name goes meanwhile.
            return self.open_lower(&path, lower).map(Some);
        }
        // Read again and opened under the locks: no rename in between can make the handle
        // open another file.
        let locked = match self.lock_node(id, None) {
            Ok(locked) => locked,
            Err(e) if e.errno() == libc::ENOENT => {
                return self.open_orphan(id, flags, writes, caller);
            }
            Err(e) => return Err(e),
        };
        let path = &locked.path;
        if self.in_upper(path)?.is_none() {
            if !writes {
                return Ok(None);
            }
            self.copy_up(path, locked.lower, flags & libc::O_TRUNC == 0)?;
            if lower_open {
                return Ok(None);
            }
        }
        let fd: OwnedFd = self
            .upper
            .open_beneath(path, OFlags::RDWR, Mode::empty())
            .or_else(|_| self.upper.open_beneath(path, OFlags::RDONLY, Mode::empty()))?;
        self.finish_open(fd, path, flags, writes, caller).map(Some)
    }

    /// The store object of the lower file `ino` (at `path`, for errors), opened for reading.
    fn open_lower(&self, path: &[u8], ino: Option<Ino>) -> Result<Opened, FsError> {
        let ino = ino.ok_or_else(|| enoent(path))?;
        let Some(NodeKind::File { digest, .. }) = self.index.inode(ino).map(|i| i.kind) else {
            return Err(FsError::refused(
                String::from_utf8_lossy(path),
                libc::EINVAL,
            ));
        };
        let file = self
            .store
            .open_object(&digest)
            .map_err(|e| FsError::Store(e.to_string()))?;
        Ok(Opened {
            file,
            lower: true,
            writes_drop_setid: false,
        })
    }

    /// Opens node `id`, whose names are all gone, through the upper file it kept
    /// ([`Node::orphan`]); `Ok(None)` (ESTALE) if it kept none. (Not through its lower
    /// object: a node that was copied up would read its content from before.)
    fn open_orphan(
        &self,
        id: u64,
        flags: i32,
        writes: bool,
        caller: &Caller,
    ) -> Result<Option<Opened>, FsError> {
        let kept = {
            let nodes = self.nodes.read().unwrap_or_else(|p| p.into_inner());
            let node = nodes.get(&id).ok_or(FsError::UnknownInode(id))?;
            node.orphan.clone()
        };
        let Some(kept) = kept else {
            return Ok(None);
        };
        let what = b"(unlinked)";
        let reopen = |flags: OFlags| {
            rustix::fs::open(
                Upper::fd_path(&kept),
                flags | OFlags::CLOEXEC,
                Mode::empty(),
            )
        };
        let fd = reopen(OFlags::RDWR)
            .or_else(|_| reopen(OFlags::RDONLY))
            .map_err(|e| errno(e, what))?;
        self.finish_open(fd, what, flags, writes, caller).map(Some)
    }

    /// What an open of an upper file does after opening it: truncation, and the setuid/setgid
    /// bits a user's writes drop.
    fn finish_open(
        &self,
        fd: OwnedFd,
        path: &[u8],
        flags: i32,
        writes: bool,
        caller: &Caller,
    ) -> Result<Opened, FsError> {
        if flags & libc::O_TRUNC != 0 && writes {
            rustix::fs::ftruncate(&fd, 0).map_err(|e| errno(e, path))?;
        }
        // Passthrough writes run with the daemon's privileges, which keep setuid/setgid; a
        // write by anyone else must drop them, as the kernel does on other filesystems. A
        // truncation is that write; other writes to such a file go through the daemon.
        let mut writes_drop_setid = false;
        if writes && caller.uid != 0 {
            let st = rustix::fs::fstat(&fd).map_err(|e| errno(e, path))?;
            if setid_dropped_by_write(st.st_mode, st.st_gid, caller) != 0 {
                if flags & libc::O_TRUNC != 0 {
                    drop_setid(&fd, caller).map_err(|e| errno(e, path))?;
                } else {
                    writes_drop_setid = true;
                }
            }
        }
        Ok(Opened {
            file: File::from(fd),
            lower: false,
            writes_drop_setid,
        })
    }

    /// Keeps the upper regular file at `path` reachable for node `id`, if the kernel holds
    /// that node, before its last name there is unlinked or replaced ([`Node::orphan`]).
    fn keep_orphan(&self, id: u64, path: &[u8], upper: Option<&Stat>) {
        let regular =
            upper.is_some_and(|st| FileType::from_raw_mode(st.st_mode) == FileType::RegularFile);
        if !regular
            || !self
                .nodes
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .contains_key(&id)
        {
            return;
        }
        if let Ok(fd) = self.upper.open_beneath(path, OFlags::PATH, Mode::empty())
            && let Some(node) = self
                .nodes
                .write()
                .unwrap_or_else(|p| p.into_inner())
                .get_mut(&id)
        {
            node.orphan = Some(Arc::new(fd));
        }
    }

    /// Gives the new entry `name` (relative to `dir`, to become `path`) to its creator, with
    /// the group of a setgid parent.
    fn own(
        &self,
        dir: BorrowedFd<'_>,
        name: &[u8],
        path: &[u8],
        uid: u32,
        gid: u32,
    ) -> Result<(), FsError> {
        let (parent, _) = parent_of(path);
        let gid = match self.upper.stat(parent)? {
            Some(st) if st.st_mode & libc::S_ISGID != 0 => st.st_gid,
            _ => gid,
        };
        let before = rustix::fs::statat(dir, rel(name), AtFlags::SYMLINK_NOFOLLOW)
            .map_err(|e| errno(e, path))?;
        rustix::fs::chownat(
            dir,
            rel(name),
            Some(rustix::fs::Uid::from_raw(uid)),
            Some(rustix::fs::Gid::from_raw(gid)),
            AtFlags::SYMLINK_NOFOLLOW,
        )
        .map_err(|e| errno(e, path))?;
        // chown clears setuid/setgid; the caller asked for them on a new entry.
        if before.st_mode & (libc::S_ISUID | libc::S_ISGID) != 0
            && FileType::from_raw_mode(before.st_mode) != FileType::Symlink
        {
            rustix::fs::chmodat(
                dir,
                rel(name),
                Mode::from_raw_mode(before.st_mode & 0o7777),
                AtFlags::empty(),
            )
            .map_err(|e| errno(e, path))?;
        }
        Ok(())
    }

    /// Checks that `name` is free in `parent` and makes the parent an upper directory.
    /// Returns the new path, whether a lower entry of that name exists (hidden by a
    /// whiteout, or in a directory made opaque), and whether a whiteout is at the path.
    fn prepare_new(
        &self,
        parent_path: &[u8],
        parent_lower: Option<Ino>,
        name: &[u8],
    ) -> Result<(Vec<u8>, bool, bool), FsError> {
        if found_or_none(self.child_of(parent_path, parent_lower, name))?.is_some() {
            return Err(FsError::refused(
                String::from_utf8_lossy(&join(parent_path, name)),
                libc::EEXIST,
            ));
        }
        self.ensure_upper_dir(parent_path)?;
        let path = join(parent_path, name);
        let over_whiteout = self
            .upper
            .stat(&path)?
            .is_some_and(|st| Upper::is_whiteout(&st));
        let lower_exists = parent_lower
            .and_then(|p| self.index.lookup(p, name))
            .is_some();
        Ok((path, lower_exists, over_whiteout))
    }

    /// Creates a new entry with `make` (given the directory and name to make it at, and its
    /// final path), owns it, and resolves it. Over a whiteout the entry is made in the work
    /// directory and swapped in whole.
    pub fn create_entry(
        &self,
        parent: u64,
        name: &[u8],
        uid: u32,
        gid: u32,
        make: impl FnOnce(&Self, BorrowedFd<'_>, &[u8], &[u8]) -> Result<(), FsError>,
        dir: bool,
    ) -> Result<Found, FsError> {
        let parent = self.lock_dir(parent, None)?;
        let (path, lower_exists, over_whiteout) =
            self.prepare_new(&parent.path, parent.lower, name)?;
        let (at_dir, at_name) = self.upper.new_entry_at(&path, over_whiteout);
        make(self, at_dir, &at_name, &path)?;
        let finished = self.own(at_dir, &at_name, &path, uid, gid).and_then(|()| {
            if dir && lower_exists {
                self.upper.set_opaque_at(at_dir, &at_name)?;
            }
            if over_whiteout {
                self.upper.swap_in(&at_name, &path)?;
            }
            Ok(())
        });
        if finished.is_err() && over_whiteout {
            // Whatever is left in the work directory is nobody's.
            self.upper.discard_work(&at_name, dir);
        }
        finished?;
        self.child_of(&parent.path, parent.lower, name)
    }

    pub fn mknod_at(
        &self,
        dir: BorrowedFd<'_>,
        name: &[u8],
        mode: u32,
        rdev: u64,
    ) -> Result<(), FsError> {
        let ft = FileType::from_raw_mode(mode);
        rustix::fs::mknodat(dir, rel(name), ft, Mode::from_raw_mode(mode & 0o7777), rdev)
            .map_err(|e| errno(e, name))
    }

    /// Makes a directory `name` in `dir` that will be at `path` (setgid when its parent is).
    pub fn mkdir_at(
        &self,
        dir: BorrowedFd<'_>,
        name: &[u8],
        path: &[u8],
        mode: u32,
    ) -> Result<(), FsError> {
        rustix::fs::mkdirat(dir, rel(name), Mode::from_raw_mode(mode & 0o7777))
            .map_err(|e| errno(e, path))?;
        let (parent, _) = parent_of(path);
        if let Some(st) = self.upper.stat(parent)?
            && st.st_mode & libc::S_ISGID != 0
        {
            rustix::fs::chmodat(
                dir,
                rel(name),
                Mode::from_raw_mode((mode & 0o7777) | libc::S_ISGID),
                AtFlags::empty(),
            )
            .map_err(|e| errno(e, path))?;
        }
        Ok(())
    }

    pub fn symlink_at(
        &self,
        dir: BorrowedFd<'_>,
        name: &[u8],
        target: &[u8],
    ) -> Result<(), FsError> {
        rustix::fs::symlinkat(OsStr::from_bytes(target), dir, rel(name)).map_err(|e| errno(e, name))
    }

    /// Creates a regular file `name` in `parent`, owned by the caller, and returns it open
    /// read-write: one `openat`, no second lookup.
    pub fn create_file(
        &self,
        parent: u64,
        name: &[u8],
        mode: u32,
        uid: u32,
        gid: u32,
    ) -> Result<(Found, File), FsError> {
        let parent = self.lock_dir(parent, None)?;
        let (parent_path, parent_lower) = (&parent.path, parent.lower);
        let path = join(parent_path, name);
        let lower_visible = parent_lower
            .and_then(|p| self.index.lookup(p, name))
            .is_some();
        let over_whiteout = match self.upper.stat(&path)? {
            Some(st) if Upper::is_whiteout(&st) => true,
            Some(_) => {
                return Err(FsError::refused(
                    String::from_utf8_lossy(&path),
                    libc::EEXIST,
                ));
            }
            None if lower_visible => {
                return Err(FsError::refused(
                    String::from_utf8_lossy(&path),
                    libc::EEXIST,
                ));
            }
            None => false,
        };
        self.ensure_upper_dir(parent_path)?;
        let mode_bits = Mode::from_raw_mode(mode & 0o7777);
        // Over a whiteout, the file is made in the work directory and swapped in, so the
        // name never shows the lower entry the whiteout hides (not even after a crash).
        let (fd, work_name) = if over_whiteout {
            let (tmp, fd) = self.upper.create_in_work(mode_bits)?;
            (fd, Some(tmp))
        } else {
            let fd = self.upper.open_beneath(
                &path,
                OFlags::CREATE | OFlags::EXCL | OFlags::RDWR,
                mode_bits,
            )?;
            (fd, None)
        };
        let finished = (|| {
            let gid = match self.upper.stat(parent_path)? {
                Some(st) if st.st_mode & libc::S_ISGID != 0 => st.st_gid,
                _ => gid,
            };
            rustix::fs::fchown(
                &fd,
                Some(rustix::fs::Uid::from_raw(uid)),
                Some(rustix::fs::Gid::from_raw(gid)),
            )
            .map_err(|e| errno(e, &path))?;
            if mode & (libc::S_ISUID | libc::S_ISGID) != 0 {
                // chown cleared them; the caller asked for them.
                rustix::fs::fchmod(&fd, mode_bits).map_err(|e| errno(e, &path))?;
            }
            if let Some(tmp) = &work_name {
                self.upper.swap_in(tmp, &path)?;
            }
            Ok(())
        })();
        if finished.is_err()
            && let Some(tmp) = &work_name
        {
            // Whatever is left in the work directory is nobody's.
            self.upper.discard_work(tmp, false);
        }
        finished?;
        let st = rustix::fs::fstat(&fd).map_err(|e| errno(e, &path))?;
        Ok((
            Found {
                id: UPPER_BIT | st.st_ino,
                path,
                lower: None,
                upper: Some(st),
            },
            File::from(fd),
        ))
    }

    /// Removes a name; a lower entry under it is then hidden by a whiteout.
    pub fn remove(&self, parent: u64, name: &[u8], dir: bool) -> Result<(), FsError> {
        let parent = self.lock_dir(parent, Some(name))?;
        let (parent_path, parent_lower) = (&parent.path, parent.lower);
        let found = self.child_of(parent_path, parent_lower, name)?;
        match (dir, self.is_dir(&found)) {
            (true, false) => {
                return Err(FsError::refused(
                    String::from_utf8_lossy(&found.path),
                    libc::ENOTDIR,
                ));
            }
            (false, true) => {
                return Err(FsError::refused(
                    String::from_utf8_lossy(&found.path),
                    libc::EISDIR,
                ));
            }
            _ => {}
        }
        if dir && !self.list_dir(&found.path, found.lower)?.is_empty() {
            return Err(FsError::refused(
                String::from_utf8_lossy(&found.path),
                libc::ENOTEMPTY,
            ));
        }
        let lower_child = parent_lower.and_then(|p| self.index.lookup(p, name));
        self.keep_orphan(found.id, &found.path, found.upper.as_ref());
        match (found.upper.is_some(), lower_child.is_some()) {
            // One step, so a crash never shows the lower entry again.
            (true, true) => self.upper.replace_with_whiteout(&found.path, dir)?,
            (true, false) => {
                if dir {
                    // An empty directory in the union holds at most whiteouts.
                    for (child, _) in self.upper.list(&found.path)? {
                        self.upper.unlink(&join(&found.path, &child), false)?;
                    }
                }
                self.upper.unlink(&found.path, dir)?;
            }
            (false, true) => {
                self.ensure_upper_dir(parent_path)?;
                self.upper.whiteout(&found.path)?;
            }
            (false, false) => {}
        }
        self.forget_path(found.id, &found.path);
        // The lower entry's node (still held for files opened before a copy-up) loses the
        // name too.
        if let Some(lower) = lower_child {
            self.forget_path(lower.0, &found.path);
        }
        Ok(())
    }

    /// Drops `path` from node `id`'s names, if it has others (a hardlink keeps working
    /// through them).
    fn forget_path(&self, id: u64, path: &[u8]) {
        let mut nodes = self.nodes.write().unwrap_or_else(|p| p.into_inner());
        if let Some(node) = nodes.get_mut(&id) {
            // A node left with no name is unlinked: path operations on it fail from now on,
            // so its old path can never lead somewhere else (a new entry or a symlink).
            node.paths.retain(|p| p.as_slice() != path);
        }
    }

    /// Moves node paths from `from` (and below) to `to`.
    fn move_paths(&self, from: &[u8], to: &[u8], exchange: bool) {
        let mut nodes = self.nodes.write().unwrap_or_else(|p| p.into_inner());
        let swap = |p: &Vec<u8>, a: &[u8], b: &[u8]| -> Option<Vec<u8>> {
            if p.as_slice() == a {
                Some(b.to_vec())
            } else if p.starts_with(a) && p.get(a.len()) == Some(&b'/') {
                let mut out = b.to_vec();
                out.extend_from_slice(&p[a.len()..]);
                Some(out)
            } else {
                None
            }
        };
        for node in nodes.values_mut() {
            for p in node.paths.iter_mut() {
                if let Some(moved) = swap(p, from, to) {
                    *p = moved;
                } else if exchange && let Some(moved) = swap(p, to, from) {
                    *p = moved;
                }
            }
        }
    }

    pub fn rename(
        &self,
        parent: u64,
        name: &[u8],
        new_parent: u64,
        new_name: &[u8],
        flags: u32,
    ) -> Result<(), FsError> {
        let exchange = flags & libc::RENAME_EXCHANGE != 0;
        // A file's rename locks both directories; if what it finds under them would move a
        // directory (or copy up a lower hardlink), it starts again with the whole namespace.
        let mut whole = false;
        let (_locks, src, dst) = loop {
            let locks = if whole {
                self.locks.whole()
            } else {
                let shared = self.locks.shared();
                let mut dirs = Vec::new();
                self.dirs_changed_in(&self.node(parent)?.0, &mut dirs)?;
                self.dirs_changed_in(&self.node(new_parent)?.0, &mut dirs)?;
                shared.lock_dirs(&dirs)
            };
            let src = self.child(parent, name)?;
            let dst = found_or_none(self.child(new_parent, new_name))?;
            let moves_more = self.needs_whole_namespace(&src)
                || (exchange && dst.as_ref().is_some_and(|d| self.needs_whole_namespace(d)));
            if whole || !moves_more {
                break (locks, src, dst);
            }
            whole = true;
        };
        let src_parent_lower = self.node(parent)?.1;
        let (dst_parent, dst_parent_lower) = self.node(new_parent)?;
        if flags & libc::RENAME_NOREPLACE != 0 && dst.is_some() {
            return Err(FsError::refused(
                String::from_utf8_lossy(&join(&dst_parent, new_name)),
                libc::EEXIST,
            ));
        }
        if exchange && dst.is_none() {
            return Err(enoent(&join(&dst_parent, new_name)));
        }
        let dst_path = join(&dst_parent, new_name);
        let src_dir = self.is_dir(&src);
        let make_upper = |f: &Found| -> Result<(), FsError> {
            if self.is_dir(f) {
                if f.lower.is_some() {
                    self.copy_up_tree(&f.path, f.lower)
                } else {
                    Ok(())
                }
            } else {
                self.copy_up(&f.path, f.lower, true)
            }
        };
        if let Some(d) = &dst
            && !exchange
        {
            match (src_dir, self.is_dir(d)) {
                (false, true) => {
                    return Err(FsError::refused(
                        String::from_utf8_lossy(&dst_path),
                        libc::EISDIR,
                    ));
                }
                (true, false) => {
                    return Err(FsError::refused(
                        String::from_utf8_lossy(&dst_path),
                        libc::ENOTDIR,
                    ));
                }
                (true, true) if !self.list_dir(&d.path, d.lower)?.is_empty() => {
                    return Err(FsError::refused(
                        String::from_utf8_lossy(&dst_path),
                        libc::ENOTEMPTY,
                    ));
                }
                _ => {}
            }
        }
        make_upper(&src)?;
        if exchange && let Some(d) = &dst {
            make_upper(d)?;
        }
        self.ensure_upper_dir(&dst_parent)?;
        let src_lower = src_parent_lower
            .and_then(|p| self.index.lookup(p, name))
            .is_some();
        let dst_lower = dst_parent_lower
            .and_then(|p| self.index.lookup(p, new_name))
            .is_some();
        if let Some(d) = &dst
            && !exchange
            && d.id != src.id
        {
            self.keep_orphan(d.id, &d.path, d.upper.as_ref());
        }
        let root = self.upper.root_fd();
        // A directory landing on a lower directory's name is made opaque before it moves, so
        // the lower tree never shows through it.
        if src_dir && dst_lower {
            self.upper.set_opaque(&src.path)?;
        }
        if exchange {
            if dst.as_ref().is_some_and(|d| self.is_dir(d)) && src_lower {
                self.upper.set_opaque(&dst_path)?;
            }
            self.upper.exchange(&src.path, &dst_path)?;
        } else {
            let dst_whiteout = match self.upper.stat(&dst_path)? {
                Some(st) if Upper::is_whiteout(&st) => true,
                Some(st) if Upper::is_dir(&st) => {
                    // An empty merged dir may still hold whiteouts: clear them so it can be replaced.
                    for (child, _) in self.upper.list(&dst_path)? {
                        self.upper.unlink(&join(&dst_path, &child), false)?;
                    }
                    false
                }
                _ => false,
            };
            if dst_whiteout && src_dir {
                // A directory cannot replace a whiteout: exchange them, so the name is never
                // without one or the other; the whiteout lands on the old name, which needs
                // one if a lower entry is there.
                self.upper.exchange(&src.path, &dst_path)?;
                if !src_lower {
                    self.upper.unlink(&src.path, false)?;
                }
            } else {
                // A file replaces a whiteout (or anything else) in the same step.
                let flags = if src_lower {
                    rustix::fs::RenameFlags::WHITEOUT
                } else {
                    rustix::fs::RenameFlags::empty()
                };
                rustix::fs::renameat_with(&root, rel(&src.path), &root, rel(&dst_path), flags)
                    .map_err(|e| errno(e, &src.path))?;
            }
        }
        if !exchange
            && let Some(d) = &dst
            && d.id != src.id
        {
            self.forget_path(d.id, &d.path);
            if let Some(lower) = dst_parent_lower.and_then(|p| self.index.lookup(p, new_name)) {
                self.forget_path(lower.0, &d.path);
            }
        }
        self.move_paths(&src.path, &dst_path, exchange);
        // A moved directory is now upper-only below: its nodes no longer see lower entries.
        let mut nodes = self.nodes.write().unwrap_or_else(|p| p.into_inner());
        for node in nodes.values_mut() {
            if node
                .paths
                .first()
                .is_some_and(|p| below(p, &dst_path) || (exchange && below(p, &src.path)))
            {
                node.lower = None;
            }
        }
        Ok(())
    }

    /// A new name for node `id`.
    pub fn link(&self, id: u64, new_parent: u64, new_name: &[u8]) -> Result<Found, FsError> {
        let locked = self.lock_node(id, Some(new_parent))?;
        let path = &locked.path;
        self.copy_up(path, locked.lower, true)?;
        let (parent_path, parent_lower) = self.node(new_parent)?;
        let (new_path, _, over_whiteout) =
            self.prepare_new(&parent_path, parent_lower, new_name)?;
        let (at_dir, at_name) = self.upper.new_entry_at(&new_path, over_whiteout);
        rustix::fs::linkat(
            self.upper.root_fd(),
            rel(path),
            at_dir,
            rel(&at_name),
            AtFlags::empty(),
        )
        .map_err(|e| errno(e, &new_path))?;
        if over_whiteout {
            self.upper.swap_in(&at_name, &new_path)?;
        }
        // The new name is the same kernel inode as the old one.
        let st = self.in_upper(&new_path)?;
        Ok(Found {
            id,
            path: new_path,
            lower: None,
            upper: st,
        })
    }

    /// chmod, chown, truncate and utimens, after copying the entry up.
    #[allow(clippy::too_many_arguments)]
    pub fn setattr(
        &self,
        id: u64,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        atime: Option<Option<(i64, u32)>>,
        mtime: Option<Option<(i64, u32)>>,
        file: Option<&File>,
        caller: &Caller,
    ) -> Result<Attr, FsError> {
        // Held to the end: no rename moves the path meanwhile, and a freeze for `snap commit`
        // waits for the whole change.
        let locked = self.lock_node(id, None)?;
        self.copy_up(&locked.path, locked.lower, size != Some(0))?;
        let path = locked.path.as_slice();
        // Every call goes through descriptors opened beneath the upper root (see `Upper`).
        let (dir, name) = self.upper.parent_beneath(path)?;
        if let Some(mode) = mode {
            let target = self.upper.open_beneath(path, OFlags::PATH, Mode::empty())?;
            let st = rustix::fs::fstat(&target).map_err(|e| errno(e, path))?;
            // A symlink has no mode of its own to change; anything else is changed through
            // its descriptor.
            if FileType::from_raw_mode(st.st_mode) != FileType::Symlink {
                rustix::fs::chmod(Upper::fd_path(&target), Mode::from_raw_mode(mode & 0o7777))
                    .map_err(|e| errno(e, path))?;
            }
        }
        if uid.is_some() || gid.is_some() {
            rustix::fs::chownat(
                &dir,
                rel(name),
                uid.map(rustix::fs::Uid::from_raw),
                gid.map(rustix::fs::Gid::from_raw),
                AtFlags::SYMLINK_NOFOLLOW,
            )
            .map_err(|e| errno(e, path))?;
        }
        if let Some(size) = size {
            let opened;
            let fd = match file {
                Some(f) => f.as_fd(),
                None => {
                    opened = self
                        .upper
                        .open_beneath(path, OFlags::WRONLY, Mode::empty())?;
                    opened.as_fd()
                }
            };
            rustix::fs::ftruncate(fd, size).map_err(|e| errno(e, path))?;
            // The daemon truncates as root, which keeps setuid/setgid (see `open_file`).
            drop_setid(fd, caller).map_err(|e| errno(e, path))?;
        }
        if atime.is_some() || mtime.is_some() {
            let spec = |t: Option<Option<(i64, u32)>>| match t {
                None => rustix::fs::Timespec {
                    tv_sec: 0,
                    tv_nsec: rustix::fs::UTIME_OMIT,
                },
                Some(None) => rustix::fs::Timespec {
                    tv_sec: 0,
                    tv_nsec: rustix::fs::UTIME_NOW,
                },
                Some(Some((s, n))) => rustix::fs::Timespec {
                    tv_sec: s,
                    tv_nsec: n as _,
                },
            };
            let times = rustix::fs::Timestamps {
                last_access: spec(atime),
                last_modification: spec(mtime),
            };
            rustix::fs::utimensat(&dir, rel(name), &times, AtFlags::SYMLINK_NOFOLLOW)
                .map_err(|e| errno(e, path))?;
        }
        self.getattr(id)
    }

    pub fn getxattr(&self, id: u64, name: &[u8]) -> Result<Vec<u8>, FsError> {
        let (path, lower) = self.node(id)?;
        if is_private_xattr(name) {
            return Err(FsError::refused("overlay xattr", libc::ENODATA));
        }
        if self.in_upper(&path)?.is_some() {
            let full = self.upper.proc_path(&path)?;
            let mut buf = vec![0u8; 64 * 1024];
            let n = rustix::fs::lgetxattr(&full.path, OsStr::from_bytes(name), &mut buf[..])
                .map_err(|e| errno(e, &path))?;
            buf.truncate(n);
            return Ok(buf);
        }
        let ino = lower.ok_or_else(|| enoent(&path))?;
        let inode = self.index.inode(ino).ok_or(FsError::CorruptIndex(ino.0))?;
        let xattrs = self
            .index
            .xattrs(&inode)
            .map_err(|_| FsError::CorruptIndex(ino.0))?;
        xattrs
            .into_iter()
            .find(|x| x.name == name)
            .map(|x| x.value)
            .ok_or_else(|| FsError::refused("xattr", libc::ENODATA))
    }

    pub fn listxattr(&self, id: u64) -> Result<Vec<u8>, FsError> {
        let (path, lower) = self.node(id)?;
        let names: Vec<Vec<u8>> = if self.in_upper(&path)?.is_some() {
            crate::sys::xattrs(&self.upper.proc_path(&path)?.path)
                .map_err(|e| FsError::Io {
                    path: String::from_utf8_lossy(&path).into_owned(),
                    errno: e.raw_os_error().unwrap_or(libc::EIO),
                })?
                .into_iter()
                .map(|(n, _)| n)
                .collect()
        } else {
            let ino = lower.ok_or_else(|| enoent(&path))?;
            let inode = self.index.inode(ino).ok_or(FsError::CorruptIndex(ino.0))?;
            self.index
                .xattrs(&inode)
                .map_err(|_| FsError::CorruptIndex(ino.0))?
                .into_iter()
                .map(|x| x.name)
                .collect()
        };
        let mut out = Vec::new();
        for name in names.into_iter().filter(|n| !is_private_xattr(n)) {
            out.extend_from_slice(&name);
            out.push(0);
        }
        Ok(out)
    }

    pub fn setxattr(
        &self,
        id: u64,
        name: &[u8],
        value: Option<&[u8]>,
        flags: i32,
    ) -> Result<(), FsError> {
        if is_private_xattr(name) {
            return Err(FsError::refused("overlay xattr", libc::EPERM));
        }
        // Held to the end, as in `setattr`.
        let locked = self.lock_node(id, None)?;
        self.copy_up(&locked.path, locked.lower, true)?;
        let path = locked.path.as_slice();
        let full = self.upper.proc_path(path)?;
        let key = OsStr::from_bytes(name);
        match value {
            Some(v) => rustix::fs::lsetxattr(
                &full.path,
                key,
                v,
                rustix::fs::XattrFlags::from_bits_retain(flags as u32),
            ),
            None => rustix::fs::lremovexattr(&full.path, key),
        }
        .map_err(|e| errno(e, path))
    }

    /// fsync of a directory: the upper directory, if it has one (a lower one never changes).
    pub fn fsync_dir(&self, id: u64) -> Result<(), FsError> {
        let (path, _) = self.node(id)?;
        if self.in_upper(&path)?.is_none() {
            return Ok(());
        }
        let fd =
            self.upper
                .open_beneath(&path, OFlags::RDONLY | OFlags::DIRECTORY, Mode::empty())?;
        rustix::fs::fsync(&fd).map_err(|e| errno(e, &path))
    }

    pub fn statfs(&self) -> Result<rustix::fs::StatVfs, FsError> {
        rustix::fs::fstatvfs(self.upper.root_fd()).map_err(|e| errno(e, b""))
    }
}

/// Whether `p` is `dir` or below it.
fn below(p: &[u8], dir: &[u8]) -> bool {
    p == dir || (p.starts_with(dir) && p.get(dir.len()) == Some(&b'/'))
}

/// A lookup's entry, `None` if it found nothing, the error for any other failure.
fn found_or_none(found: Result<Found, FsError>) -> Result<Option<Found>, FsError> {
    match found {
        Ok(found) => Ok(Some(found)),
        Err(e) if e.errno() == libc::ENOENT => Ok(None),
        Err(e) => Err(e),
    }
}

/// Attributes from an upper `stat`, reported under node id `id`.
pub fn stat_attr(id: u64, st: &Stat) -> Attr {
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
