//! The thin layer over the kernel that `std` does not cover: file locks, `syncfs`, and mapping
//! immutable files into memory. The only module allowed `unsafe`.

#![allow(unsafe_code)]

use std::fs::File;
use std::io;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

/// Takes an exclusive `flock` without waiting; `Ok(false)` if another holder has it.
pub fn try_lock_exclusive(file: &File) -> io::Result<bool> {
    try_flock(file, rustix::fs::FlockOperation::NonBlockingLockExclusive)
}

/// Takes a shared `flock` without waiting; `Ok(false)` if an exclusive holder has it.
pub fn try_lock_shared(file: &File) -> io::Result<bool> {
    try_flock(file, rustix::fs::FlockOperation::NonBlockingLockShared)
}

fn try_flock(file: &File, op: rustix::fs::FlockOperation) -> io::Result<bool> {
    match rustix::fs::flock(file.as_fd(), op) {
        Ok(()) => Ok(true),
        Err(rustix::io::Errno::WOULDBLOCK) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// A pipe with a 1 MiB buffer (the default 64 KiB makes a thread hand-off per 64 KiB when one
/// thread streams a big file to another); the default size if the kernel refuses.
pub fn big_pipe() -> io::Result<(io::PipeReader, io::PipeWriter)> {
    let (reader, writer) = io::pipe()?;
    let _ = rustix::pipe::fcntl_setpipe_size(&writer, 1 << 20);
    Ok((reader, writer))
}

/// This process's umask, read from `/proc/self/status` (setting and restoring it would
/// change it for a moment under every other thread).
pub fn process_umask() -> io::Result<u32> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("Umask:"))
        .and_then(|v| u32::from_str_radix(v.trim(), 8).ok())
        .ok_or_else(|| io::Error::other("/proc/self/status has no Umask line"))
}

/// Flushes every dirty page and inode of the filesystem holding `file` to disk: one call
/// makes a whole batch of object writes durable.
pub fn syncfs(file: &File) -> io::Result<()> {
    rustix::fs::syncfs(file.as_fd()).map_err(Into::into)
}

/// An immutable file mapped read-only.
pub struct Mapped(memmap2::Mmap);

impl Mapped {
    /// Maps `file`, which the caller must never modify while mapped.
    pub fn map(file: &File) -> io::Result<Self> {
        // SAFETY: snapfs writes index and layer files once (tmp + rename) and never modifies a
        // file in place, so the mapped bytes cannot change under us; a truncation by someone
        // else would be store corruption, which fsck reports.
        let map = unsafe { memmap2::Mmap::map(file)? };
        Ok(Mapped(map))
    }
}

impl AsRef<[u8]> for Mapped {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

/// An advisory lock on a file under the root, released when dropped (or when the process dies).
pub struct FileLock {
    file: File,
}

/// How [`FileLock::acquire`] waits.
pub struct LockWait<'a> {
    pub exclusive: bool,
    pub timeout: std::time::Duration,
    /// Called once, with the pid written by the current holder (if any), when we must wait.
    pub on_wait: &'a dyn Fn(Option<u32>),
}

impl FileLock {
    /// Takes the lock on `path` (created if missing), waiting up to `wait.timeout`.
    /// An exclusive holder writes its pid into the file so that waiters can name it.
    /// Returns `Ok(None)` on timeout.
    pub fn acquire(path: &Path, wait: &LockWait<'_>) -> io::Result<Option<Self>> {
        use std::io::{Seek, Write};
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)?;
        let Some(mut lock) = Self::wait_for(file, wait)? else {
            return Ok(None);
        };
        if wait.exclusive {
            lock.file.set_len(0)?;
            lock.file.rewind()?;
            write!(lock.file, "{}", std::process::id())?;
        }
        Ok(Some(lock))
    }

    /// Takes a shared lock on the existing file `path`, opened read-only (`flock` needs no
    /// write access): for a store on a read-only filesystem, or one opened to read only,
    /// which must create nothing. Fails with `NotFound` if there is no such file; returns
    /// `Ok(None)` on timeout.
    pub fn acquire_shared_read_only(path: &Path, wait: &LockWait<'_>) -> io::Result<Option<Self>> {
        let shared = LockWait {
            exclusive: false,
            timeout: wait.timeout,
            on_wait: wait.on_wait,
        };
        Self::wait_for(File::open(path)?, &shared)
    }

    fn wait_for(mut file: File, wait: &LockWait<'_>) -> io::Result<Option<Self>> {
        use std::io::{Read, Seek};
        let start = std::time::Instant::now();
        let mut told = false;
        loop {
            let got = if wait.exclusive {
                try_lock_exclusive(&file)?
            } else {
                try_lock_shared(&file)?
            };
            if got {
                return Ok(Some(FileLock { file }));
            }
            if start.elapsed() >= wait.timeout {
                return Ok(None);
            }
            if !told {
                let mut text = String::new();
                file.rewind()?;
                file.read_to_string(&mut text)?;
                (wait.on_wait)(text.trim().parse().ok());
                told = true;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    /// The pid an exclusive holder wrote into `path`, if any.
    pub fn holder(path: &std::path::Path) -> Option<u32> {
        std::fs::read_to_string(path).ok()?.trim().parse().ok()
    }
}

/// The extended attributes of `path` (not following a final symlink), sorted by name.
pub fn xattrs(path: &std::path::Path) -> io::Result<Vec<(Vec<u8>, Vec<u8>)>> {
    let mut names = vec![0u8; 4096];
    let len = loop {
        match rustix::fs::llistxattr(path, &mut names[..]) {
            Ok(len) => break len,
            Err(rustix::io::Errno::RANGE) => names.resize(names.len() * 4, 0),
            Err(rustix::io::Errno::NOTSUP) => return Ok(Vec::new()),
            Err(e) => return Err(e.into()),
        }
    };
    let mut out = Vec::new();
    for name in names[..len].split(|&b| b == 0).filter(|n| !n.is_empty()) {
        let cname = std::ffi::CString::new(name).map_err(io::Error::other)?;
        let mut value = vec![0u8; 256];
        loop {
            match rustix::fs::lgetxattr(path, cname.as_c_str(), &mut value[..]) {
                Ok(n) => {
                    value.truncate(n);
                    break;
                }
                Err(rustix::io::Errno::RANGE) => value.resize(value.len() * 16, 0),
                Err(rustix::io::Errno::NODATA) => {
                    value.clear();
                    break;
                }
                Err(e) => return Err(e.into()),
            }
        }
        out.push((name.to_vec(), value));
    }
    out.sort();
    Ok(out)
}

/// Detaches the mount at `path` (lazily: busy files keep working until closed).
pub fn unmount(path: &std::path::Path) -> io::Result<()> {
    rustix::mount::unmount(path, rustix::mount::UnmountFlags::DETACH).map_err(Into::into)
}

/// Unmounts `path` now: `EBUSY` if a process has a file, its working directory or its root
/// under it (or another mount sits on it).
pub fn unmount_now(path: &Path) -> io::Result<()> {
    rustix::mount::unmount(path, rustix::mount::UnmountFlags::empty()).map_err(Into::into)
}

/// Unmounts `path` unless something uses it (open files, a process's root or cwd, another
/// mount of the same filesystem, such as a bind mount of it): then returns false and leaves
/// it mounted.
pub fn unmount_unless_busy(path: &Path) -> io::Result<bool> {
    if !mounted_elsewhere(path).is_empty() {
        return Ok(false);
    }
    match rustix::mount::unmount(path, rustix::mount::UnmountFlags::empty()) {
        Ok(()) => Ok(true),
        Err(rustix::io::Errno::BUSY) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// The other mount points (in this mount namespace) of the filesystem mounted at `path`: bind
/// mounts of it, which keep it alive after `path` is unmounted.
pub fn mounted_elsewhere(path: &Path) -> Vec<PathBuf> {
    let mounts = mounts();
    let Some(mount) = mounts.iter().rev().find(|m| m.point == path) else {
        return Vec::new();
    };
    mounts
        .iter()
        .filter(|other| other.device == mount.device && other.point != path)
        .map(|other| other.point.clone())
        .collect()
}

/// One line of /proc/self/mountinfo.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountEntry {
    /// `major:minor` of the mounted filesystem.
    pub device: String,
    pub point: PathBuf,
    /// The filesystem type (`ext4`, `fuse.snapfs`, `tmpfs`...).
    pub fs_type: String,
    /// What was mounted (a device, `snapfs`, `overlay`...).
    pub source: String,
}

/// The mounts of this mount namespace, in mount order, from /proc/self/mountinfo (fields: id,
/// parent id, major:minor, root, mount point, options, optional fields, `-`, type, source,
/// super options); none if it cannot be read.
pub fn mounts() -> Vec<MountEntry> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    info.lines().filter_map(parse_mountinfo_line).collect()
}

fn parse_mountinfo_line(line: &str) -> Option<MountEntry> {
    let (mount, filesystem) = line.split_once(" - ")?;
    let mut fields = mount.split(' ').skip(2);
    let device = fields.next()?.to_string();
    let point = unescape_mountinfo(fields.nth(1)?);
    let mut filesystem = filesystem.split(' ');
    Some(MountEntry {
        device,
        point,
        fs_type: filesystem.next()?.to_string(),
        source: String::from_utf8_lossy(
            unescape_mountinfo(filesystem.next()?)
                .as_os_str()
                .as_encoded_bytes(),
        )
        .into_owned(),
    })
}

/// A path as /proc/self/mountinfo writes it: space, tab, newline and backslash as `\ooo`.
fn unescape_mountinfo(field: &str) -> PathBuf {
    use std::os::unix::ffi::OsStringExt;
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes.get(i + 1..i + 4).and_then(|digits| {
            let text = std::str::from_utf8(digits).ok()?;
            u8::from_str_radix(text, 8).ok()
        });
        match (bytes[i], octal) {
            (b'\\', Some(byte)) => {
                out.push(byte);
                i += 4;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    PathBuf::from(std::ffi::OsString::from_vec(out))
}

/// The pid written in `path` by the holder of an exclusive [`FileLock`] on it, if one holds
/// it now. Probed by taking a shared lock without waiting and dropping it at once (a holder
/// never waits for that; one taking the lock at that instant waits for it): /proc/locks would
/// tell too, but reading it waits for an RCU grace period, 10 to 20 ms.
pub fn exclusive_holder(path: &std::path::Path) -> Option<u32> {
    let file = File::open(path).ok()?;
    if try_lock_shared(&file).unwrap_or(true) {
        return None;
    }
    FileLock::holder(path)
}

/// Whether a process with this pid exists.
pub fn process_alive(pid: u32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
        && std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map(|s| {
                !s.rsplit(')')
                    .next()
                    .is_some_and(|rest| rest.trim_start().starts_with('Z'))
            })
            .unwrap_or(false)
}

/// Whether `path` is a mount point (listed in /proc/self/mountinfo).
pub fn is_mount_point(path: &Path) -> bool {
    mount_at(path).is_some()
}

/// The mount at `path`, the topmost if several are stacked there.
pub fn mount_at(path: &Path) -> Option<MountEntry> {
    mounts().into_iter().rev().find(|m| m.point == path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exclusive_holder_names_the_pid_while_the_lock_is_held() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("daemon.lock");
        let wait = LockWait {
            exclusive: true,
            timeout: std::time::Duration::ZERO,
            on_wait: &|_| {},
        };
        let lock = FileLock::acquire(&path, &wait).unwrap().expect("free");
        assert_eq!(exclusive_holder(&path), Some(std::process::id()));
        assert_eq!(exclusive_holder(&dir.path().join("other")), None);
        drop(lock);
        assert_eq!(exclusive_holder(&path), None);
        assert!(
            std::fs::metadata(&path).is_ok(),
            "the probe leaves the file"
        );
    }

    #[test]
    fn mountinfo_lines_are_parsed_and_unescaped() {
        let line = "36 35 0:52 / /var/tmp/a\\040b\\134c rw,nosuid shared:1 - fuse.snapfs snapfs rw,user_id=0";
        let entry = parse_mountinfo_line(line).expect("parsed");
        assert_eq!(entry.device, "0:52");
        assert_eq!(entry.point, Path::new("/var/tmp/a b\\c"));
        assert_eq!(entry.fs_type, "fuse.snapfs");
        assert_eq!(entry.source, "snapfs");
        assert!(is_mount_point(Path::new("/")));
        assert!(!is_mount_point(Path::new("/proc/self")));
    }
}
