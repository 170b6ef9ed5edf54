//! The thin layer over the kernel that `std` does not cover: file locks, `syncfs`, and mapping
//! immutable files into memory. The only module allowed `unsafe`.

#![allow(unsafe_code)]

use std::fs::File;
use std::io;
use std::os::fd::AsFd;

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
    _file: File,
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
    pub fn acquire(path: &std::path::Path, wait: &LockWait<'_>) -> io::Result<Option<Self>> {
        use std::io::{Read, Seek, Write};
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)?;
        let start = std::time::Instant::now();
        let mut told = false;
        loop {
            let got = if wait.exclusive {
                try_lock_exclusive(&file)?
            } else {
                try_lock_shared(&file)?
            };
            if got {
                if wait.exclusive {
                    file.set_len(0)?;
                    file.rewind()?;
                    write!(file, "{}", std::process::id())?;
                }
                return Ok(Some(FileLock { _file: file }));
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

/// Unmounts `path` unless something uses it (open files, a process's root or cwd, another
/// mount of the same filesystem, such as a bind mount of it): then returns false and leaves
/// it mounted.
pub fn unmount_unless_busy(path: &std::path::Path) -> io::Result<bool> {
    if mounted_elsewhere(path) {
        return Ok(false);
    }
    match rustix::mount::unmount(path, rustix::mount::UnmountFlags::empty()) {
        Ok(()) => Ok(true),
        Err(rustix::io::Errno::BUSY) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// Whether the filesystem mounted at `path` is mounted somewhere else too (in this mount
/// namespace): a bind mount of it, which keeps it alive after `path` is unmounted.
pub fn mounted_elsewhere(path: &std::path::Path) -> bool {
    let wanted = mountinfo_path(path);
    let mounts = mounts();
    let Some((device, _)) = mounts.iter().find(|(_, point)| *point == wanted) else {
        return false;
    };
    mounts
        .iter()
        .any(|(other, point)| other == device && *point != wanted)
}

/// The mounts of this mount namespace, as `(major:minor, mount point)` from
/// /proc/self/mountinfo (fields: id, parent id, major:minor, root, mount point, ...); none
/// if it cannot be read.
fn mounts() -> Vec<(String, String)> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    info.lines()
        .filter_map(|line| {
            let mut fields = line.split(' ').skip(2);
            let device = fields.next()?;
            Some((device.to_string(), fields.nth(1)?.to_string()))
        })
        .collect()
}

/// `path` as /proc/self/mountinfo writes it (spaces escaped).
fn mountinfo_path(path: &std::path::Path) -> String {
    path.to_string_lossy().replace(' ', "\\040")
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
pub fn is_mount_point(path: &std::path::Path) -> bool {
    let wanted = mountinfo_path(path);
    mounts().iter().any(|(_, point)| *point == wanted)
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
}
