//! The locks that order changes to a container's upper directory.
//!
//! A change locks the directories whose entries it changes (a create, unlink or copy-up
//! locks the parent; a copy-up of missing parents locks their parents too; an rmdir also
//! locks the directory it removes), so changes in different directories run at once, as the
//! kernel's own per-directory locks let them. Directories are locked by path, hashed onto a
//! fixed set of mutexes and taken in one order, so no two changes deadlock.
//!
//! Node paths of directories stay put while any change holds its directories: a change that
//! moves a directory (and with it the paths of everything below) takes the whole namespace,
//! as does the copy-up of a lower hardlink (it adds names in directories it cannot know in
//! advance) and `snap commit`'s freeze.

use std::hash::{BuildHasher, Hasher};
use std::sync::{Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};

/// How many mutexes directory paths are hashed onto: enough that two busy directories
/// rarely share one on a machine with a few dozen FUSE threads at most.
const STRIPES: usize = 64;

/// The namespace locks of one mounted container.
pub struct NamespaceLocks {
    tree: RwLock<()>,
    dirs: Vec<Mutex<()>>,
    hasher: std::hash::RandomState,
}

/// A held lock on the whole namespace, or on some of its directories.
pub enum NamespaceGuard<'a> {
    Whole(#[allow(dead_code)] RwLockWriteGuard<'a, ()>),
    Dirs {
        _tree: RwLockReadGuard<'a, ()>,
        _dirs: Vec<MutexGuard<'a, ()>>,
    },
}

/// The namespace held against moves of directories, before the directories to lock are known
/// (their paths are read under it).
pub struct Shared<'a> {
    tree: RwLockReadGuard<'a, ()>,
    locks: &'a NamespaceLocks,
}

fn relock<T>(r: std::sync::LockResult<T>) -> T {
    // A panic in another request leaves the upper directory as consistent as an error would.
    r.unwrap_or_else(|p| p.into_inner())
}

impl Default for NamespaceLocks {
    fn default() -> Self {
        NamespaceLocks {
            tree: RwLock::new(()),
            dirs: (0..STRIPES).map(|_| Mutex::new(())).collect(),
            hasher: std::hash::RandomState::new(),
        }
    }
}

impl NamespaceLocks {
    /// Every change waits until the guard is dropped.
    pub fn whole(&self) -> NamespaceGuard<'_> {
        NamespaceGuard::Whole(relock(self.tree.write()))
    }

    /// Holds off changes that move directories; then [`Shared::lock_dirs`].
    pub fn shared(&self) -> Shared<'_> {
        Shared {
            tree: relock(self.tree.read()),
            locks: self,
        }
    }

    fn stripe(&self, path: &[u8]) -> usize {
        let mut h = self.hasher.build_hasher();
        h.write(path);
        (h.finish() % STRIPES as u64) as usize
    }
}

impl<'a> Shared<'a> {
    /// Locks the directories `dirs` (paths relative to the upper root).
    pub fn lock_dirs<P: AsRef<[u8]>>(self, dirs: &[P]) -> NamespaceGuard<'a> {
        let mut stripes: Vec<usize> = dirs.iter().map(|d| self.locks.stripe(d.as_ref())).collect();
        stripes.sort_unstable();
        stripes.dedup();
        let held = stripes
            .into_iter()
            .map(|i| relock(self.locks.dirs[i].lock()))
            .collect();
        NamespaceGuard::Dirs {
            _tree: self.tree,
            _dirs: held,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;
    use std::time::Duration;

    /// Two paths that hash onto different mutexes.
    fn distinct_pair(locks: &NamespaceLocks) -> (Vec<u8>, Vec<u8>) {
        let a = b"etc".to_vec();
        let b = (0..)
            .map(|i| format!("usr/{i}").into_bytes())
            .find(|b| locks.stripe(b) != locks.stripe(&a))
            .unwrap_or_default();
        (a, b)
    }

    #[test]
    fn changes_in_other_directories_go_ahead_and_the_same_directory_waits() {
        let locks = &NamespaceLocks::default();
        let (a, b) = distinct_pair(locks);
        let (a, b) = (&a, &b);
        let held = locks.shared().lock_dirs(&[a]);
        std::thread::scope(|s| {
            let (done_b, b_locked) = mpsc::channel();
            s.spawn(move || {
                let _g = locks.shared().lock_dirs(&[b, b]);
                done_b.send(()).ok();
            });
            assert!(b_locked.recv_timeout(Duration::from_secs(30)).is_ok());

            let (done_a, a_locked) = mpsc::channel();
            s.spawn(move || {
                let _g = locks.shared().lock_dirs(&[b, a]);
                done_a.send(()).ok();
            });
            assert!(a_locked.recv_timeout(Duration::from_millis(200)).is_err());
            drop(held);
            assert!(a_locked.recv_timeout(Duration::from_secs(30)).is_ok());
        });
    }

    #[test]
    fn the_whole_namespace_waits_for_directory_locks_and_holds_them_off() {
        let locks = &NamespaceLocks::default();
        let held = locks.shared().lock_dirs(&[b"etc"]);
        std::thread::scope(|s| {
            let (done, whole_locked) = mpsc::channel();
            let (release, released) = mpsc::channel::<()>();
            s.spawn(move || {
                let _whole = locks.whole();
                done.send(()).ok();
                released.recv().ok();
            });
            assert!(
                whole_locked
                    .recv_timeout(Duration::from_millis(200))
                    .is_err()
            );
            drop(held);
            assert!(whole_locked.recv_timeout(Duration::from_secs(30)).is_ok());

            let (done, dir_locked) = mpsc::channel();
            s.spawn(move || {
                let _g = locks.shared().lock_dirs(&[b"usr"]);
                done.send(()).ok();
            });
            assert!(dir_locked.recv_timeout(Duration::from_millis(200)).is_err());
            release.send(()).ok();
            assert!(dir_locked.recv_timeout(Duration::from_secs(30)).is_ok());
        });
    }
}
