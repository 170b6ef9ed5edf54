//! Who makes a request, and the setuid/setgid policy of their writes.
//!
//! The daemon writes as root, which keeps setuid/setgid bits; a write by anyone else must
//! drop them, as the kernel does on other filesystems. This module decides which bits a
//! caller's write drops and drops them from an open file; `handles.rs` decides when.

use rustix::fs::Mode;
use std::os::fd::AsFd;

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

/// Clears on the open file `fd` the setuid/setgid bits a write by `caller` clears.
pub fn drop_setid(fd: impl AsFd, caller: &Caller) -> rustix::io::Result<()> {
    let st = rustix::fs::fstat(&fd)?;
    let drop = setid_dropped_by_write(st.st_mode, st.st_gid, caller);
    if drop != 0 {
        rustix::fs::fchmod(&fd, Mode::from_raw_mode(st.st_mode & 0o7777 & !drop))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_by_users_drop_setuid_and_setgid_as_the_kernel_does() {
        let root = Caller {
            uid: 0,
            gid: 0,
            pid: std::process::id(),
        };
        let user = Caller {
            uid: 1000,
            gid: 1000,
            pid: std::process::id(),
        };
        assert_eq!(setid_dropped_by_write(0o6755, 0, &root), 0);
        assert_eq!(
            setid_dropped_by_write(0o6755, 1000, &user),
            libc::S_ISUID | libc::S_ISGID
        );
        // Setgid without group-execute, writer in the group: a mandatory-locking file, kept.
        assert_eq!(setid_dropped_by_write(0o2644, 1000, &user), 0);
        assert_eq!(setid_dropped_by_write(0o0755, 1000, &user), 0);
    }
}
