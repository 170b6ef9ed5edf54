//! `snap mount NAME MOUNTPOINT` and `snap umount NAME`: the daemon that serves a container.
//!
//! The daemon serves any directory laid out as a container's (`upper`, `work`, and its
//! state files) over a layer stack's flattened index: a container made by `snap create`, or
//! an active or view snapshot of `snap snapshotter`. [`spawn`] starts it detached and returns
//! once the mount exists; the daemon writes `mount.json` when mounted and removes it when
//! unmounted. A daemon killed with SIGKILL leaves a dead mount and a stale `mount.json`:
//! [`daemon_at`] detects it (no process holds the directory's `daemon.lock`) and cleans it
//! up.

use super::{ContainerError, dir, image_of, io_err, open_db};
use crate::fs::{Mounted, Upper};
use crate::model::{ContainerName, ImageId};
use crate::store::Store;
use serde::{Deserialize, Serialize};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// What `mount.json` holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MountState {
    pub pid: u32,
    pub mountpoint: PathBuf,
}

fn state_path(dir: &Path) -> PathBuf {
    dir.join("mount.json")
}

/// The daemon of a directory, as far as this process sees it.
#[derive(Debug)]
pub enum Daemon {
    /// None runs (a stale state, if any, was cleaned up).
    Gone,
    /// It serves its mount point.
    Mounted(MountState),
    /// It runs, but its mount point was unmounted here: a bind of its mount (a container's
    /// rootfs, maybe in another mount namespace) keeps it serving, and its upper in use.
    Detached(MountState),
}

/// The daemon of directory `dir`, cleaning up after a dead one.
pub fn daemon_at(dir: &Path) -> Daemon {
    let path = state_path(dir);
    let Some(state) = std::fs::read(&path)
        .ok()
        .and_then(|bytes| serde_json::from_slice::<MountState>(&bytes).ok())
    else {
        return Daemon::Gone;
    };
    // The daemon holds the directory's lock while it runs (a dead one holds nothing): a pid
    // reused after a reboot does not.
    if crate::sys::exclusive_holder(&dir.join("daemon.lock")) == Some(state.pid) {
        return if crate::sys::is_mount_point(&state.mountpoint) {
            Daemon::Mounted(state)
        } else {
            Daemon::Detached(state)
        };
    }
    tracing::warn!(
        "{}: daemon {} is gone; cleaning up its mount at {}",
        dir.display(),
        state.pid,
        state.mountpoint.display()
    );
    if crate::sys::is_mount_point(&state.mountpoint) {
        let _ = crate::sys::unmount(&state.mountpoint);
    }
    let _ = std::fs::remove_file(&path);
    Daemon::Gone
}

/// The live mount of the daemon directory `dir`, cleaning up a stale one (dead daemon).
pub fn live_state_at(dir: &Path) -> Option<MountState> {
    match daemon_at(dir) {
        Daemon::Mounted(state) => Some(state),
        Daemon::Gone | Daemon::Detached(_) => None,
    }
}

/// Mounts container `name` at `mountpoint` with a background daemon; returns its pid.
pub fn mount(
    store: &Store,
    name: &ContainerName,
    mountpoint: &Path,
) -> Result<u32, ContainerError> {
    let image = match image_of(&dir(store, name)) {
        Some(image) => image,
        // A container made before the image file, or a create or rm cut short.
        None => {
            open_db(store)?
                .container(name)?
                .ok_or_else(|| ContainerError::NoSuchContainer(name.to_string()))?
                .image
        }
    };
    match daemon_at(&dir(store, name)) {
        Daemon::Gone => {}
        Daemon::Mounted(state) => {
            return Err(ContainerError::Mounted {
                name: name.to_string(),
                mountpoint: state.mountpoint,
                pid: state.pid,
            });
        }
        Daemon::Detached(state) => return Err(detached(name.as_str(), state)),
    }
    let mut args: Vec<std::ffi::OsString> = vec!["mount".into(), "--foreground".into()];
    args.extend([
        "--image".into(),
        image.to_string().into(),
        name.as_str().into(),
    ]);
    spawn(store, &dir(store, name), name.as_str(), &args, mountpoint)
}

/// Starts `snap --root ROOT ARGS… MOUNTPOINT` as a detached daemon serving `dir` and waits
/// until it has mounted; returns its pid. `what` names the served thing in errors.
pub fn spawn(
    store: &Store,
    dir: &Path,
    what: &str,
    args: &[std::ffi::OsString],
    mountpoint: &Path,
) -> Result<u32, ContainerError> {
    let failed = |mountpoint: &Path, detail: String| ContainerError::MountFailed {
        name: what.to_string(),
        mountpoint: mountpoint.to_path_buf(),
        detail,
    };
    let mountpoint = std::fs::canonicalize(mountpoint).map_err(io_err(mountpoint))?;
    check_mountpoint(&mountpoint)?;
    let log_path = dir.join("daemon.log");
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .map_err(io_err(&log_path))?;
    // This very binary, even if a newer one replaced it on disk since it started.
    let exe = Path::new("/proc/self/exe");
    let mut child = Command::new(exe)
        .arg0("snap")
        .arg("--root")
        .arg(store.root())
        .args(args)
        .arg(&mountpoint)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log.try_clone().map_err(io_err(&log_path))?)
        .process_group(0)
        .spawn()
        .map_err(io_err(exe))?;
    let start = Instant::now();
    loop {
        if let Some(state) = live_state_at(dir)
            && state.pid == child.id()
        {
            // Reaped when it exits, so a long-lived parent (the snapshotter) keeps no zombies.
            std::thread::spawn(move || child.wait());
            return Ok(state.pid);
        }
        if let Ok(Some(status)) = child.try_wait() {
            let log = std::fs::read_to_string(&log_path).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(5).collect();
            let detail = format!(
                "the daemon exited ({status}): {}",
                tail.into_iter().rev().collect::<Vec<_>>().join(" | ")
            );
            return Err(failed(&mountpoint, detail));
        }
        if start.elapsed() > Duration::from_secs(30) {
            let _ = child.kill();
            let _ = child.wait();
            if crate::sys::is_mount_point(&mountpoint) {
                let _ = crate::sys::unmount(&mountpoint);
            }
            return Err(failed(&mountpoint, "not mounted after 30 s".into()));
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Refuses a mount point that is not a directory, or that is a mount point already (of
/// another container, or of anything): a second mount there would hide the first, and
/// unmounting "one" of them unmounts the other's. A dead FUSE mount left there by a killed
/// daemon is cleaned up instead.
fn check_mountpoint(mountpoint: &Path) -> Result<(), ContainerError> {
    if crate::sys::is_mount_point(mountpoint) && std::fs::metadata(mountpoint).is_err() {
        let _ = crate::sys::unmount(mountpoint);
    }
    if let Some(mount) = crate::sys::mount_at(mountpoint) {
        return Err(ContainerError::MountPointTaken {
            mountpoint: mountpoint.to_path_buf(),
            fs_type: mount.fs_type,
            source_name: mount.source,
        });
    }
    if !std::fs::metadata(mountpoint)
        .map_err(io_err(mountpoint))?
        .is_dir()
    {
        return Err(ContainerError::MountPointNotDirectory {
            mountpoint: mountpoint.to_path_buf(),
        });
    }
    Ok(())
}

/// Runs the daemon of container `name` in this process: mounts and serves until unmounted.
/// `image` is the container's image when the caller already read it (the background daemon
/// is given it, so that it never opens the database).
pub fn serve(
    store: Store,
    name: &ContainerName,
    image: Option<ImageId>,
    mountpoint: &Path,
) -> Result<(), ContainerError> {
    let image = match image {
        Some(image) => image,
        None => {
            open_db(&store)?
                .container(name)?
                .ok_or_else(|| ContainerError::NoSuchContainer(name.to_string()))?
                .image
        }
    };
    let dir = dir(&store, name);
    serve_dir(store, &dir, &image, mountpoint, false)
}

/// Runs a daemon in this process: mounts the union of the index `index` (an image's, or a
/// snapshot stack's) and `dir`'s upper at `mountpoint`, read-only if asked, and serves until
/// unmounted.
pub fn serve_dir(
    store: Store,
    dir: &Path,
    index: &ImageId,
    mountpoint: &Path,
    read_only: bool,
) -> Result<(), ContainerError> {
    let what = dir.display().to_string();
    let index = store.open_index(index)?;
    let upper = Upper::open(&dir.join("upper"), &dir.join("work"))?;
    let state_file = state_path(dir);
    let mountpoint = std::fs::canonicalize(mountpoint).map_err(io_err(mountpoint))?;
    // Again here: `snap mount --foreground` comes here without `spawn`.
    check_mountpoint(&mountpoint)?;
    let state = MountState {
        pid: std::process::id(),
        mountpoint: mountpoint.clone(),
    };
    // One daemon per directory: a second one on the same upper dir would corrupt it.
    let lock_path = dir.join("daemon.lock");
    // Waiting a little lets a `daemon_at` probe (a shared lock held for an instant) pass.
    let wait = crate::sys::LockWait {
        exclusive: true,
        timeout: Duration::from_millis(500),
        on_wait: &|_| {},
    };
    let _lock = crate::sys::FileLock::acquire(&lock_path, &wait)
        .map_err(io_err(&lock_path))?
        .ok_or_else(|| ContainerError::MountFailed {
            name: what.clone(),
            mountpoint: mountpoint.clone(),
            detail: format!(
                "another daemon serves this directory (pid in {})",
                lock_path.display()
            ),
        })?;
    let fs = Mounted::new(index, store, upper);
    let control = dir.join("control.sock");
    if let Err(e) = super::control::listen(&control, fs.union()) {
        // Commits then read the upper without freezing it.
        tracing::warn!("no control socket at {}: {e}", control.display());
    }
    let mut written = Ok(());
    crate::fs::serve(fs, &mountpoint, read_only, || {
        tracing::info!("{what} mounted at {}", mountpoint.display());
        let tmp = state_file.with_extension("json.tmp");
        written = std::fs::write(&tmp, serde_json::to_vec(&state).unwrap_or_default())
            .and_then(|()| std::fs::rename(&tmp, &state_file))
            .map_err(io_err(&state_file));
    })?;
    let _ = std::fs::remove_file(&state_file);
    let _ = std::fs::remove_file(&control);
    tracing::info!("{what} unmounted");
    written
}

/// How long `umount` waits for a daemon to exit once its mount is gone.
const EXIT_WAIT: Duration = Duration::from_secs(10);

/// Unmounts container `name` and waits for its daemon to exit. Refuses while the mount is in
/// use, unless `lazy`: then it is detached, and the daemon serves what still uses it and exits
/// when that is over (`Ok(None)`: it still runs).
pub fn umount(
    store: &Store,
    name: &ContainerName,
    lazy: bool,
) -> Result<Option<MountState>, ContainerError> {
    let dir = dir(store, name);
    if !dir.exists() && open_db(store)?.container(name)?.is_none() {
        return Err(ContainerError::NoSuchContainer(name.to_string()));
    }
    stop(&dir, name.as_str(), lazy)
}

/// Unmounts the daemon serving `dir` and waits for it to exit. `what` names it in errors.
/// Refuses a mount in use ([`ContainerError::Busy`]), unless `lazy`: then the mount is
/// detached and `Ok(None)` returned if the daemon still serves what uses it.
pub fn stop(dir: &Path, what: &str, lazy: bool) -> Result<Option<MountState>, ContainerError> {
    let state = match daemon_at(dir) {
        Daemon::Mounted(state) => state,
        Daemon::Gone => return Err(ContainerError::NotMounted(what.to_string())),
        Daemon::Detached(state) => return Err(detached(what, state)),
    };
    let busy = |why: String| ContainerError::Busy {
        name: what.to_string(),
        mountpoint: state.mountpoint.clone(),
        why,
    };
    if lazy {
        crate::sys::unmount(&state.mountpoint).map_err(io_err(&state.mountpoint))?;
        let start = Instant::now();
        while crate::sys::process_alive(state.pid) {
            if start.elapsed() > Duration::from_secs(1) {
                return Ok(None);
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        let _ = std::fs::remove_file(state_path(dir));
        return Ok(Some(state));
    }
    let elsewhere = crate::sys::mounted_elsewhere(&state.mountpoint);
    if !elsewhere.is_empty() {
        let points: Vec<String> = elsewhere.iter().map(|p| p.display().to_string()).collect();
        return Err(busy(format!("it is also mounted at {}", points.join(", "))));
    }
    match crate::sys::unmount_now(&state.mountpoint) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {
            return Err(busy(
                "a process has a file, its working directory or its root under it, or \
                 something is mounted under it"
                    .into(),
            ));
        }
        Err(e) => return Err(io_err(&state.mountpoint)(e)),
    }
    wait_for_exit(dir, state).map(Some)
}

/// [`stop`] for the daemon of `dir` mounted as `state` (from [`daemon_at`]), unless the mount
/// is in use (a container still runs on it): then false, and the daemon serves on.
pub fn stop_unless_busy(dir: &Path, state: MountState) -> Result<bool, ContainerError> {
    if !crate::sys::unmount_unless_busy(&state.mountpoint).map_err(io_err(&state.mountpoint))? {
        return Ok(false);
    }
    wait_for_exit(dir, state).map(|_| true)
}

/// The error for a daemon that serves only a mount elsewhere.
pub fn detached(what: &str, state: MountState) -> ContainerError {
    ContainerError::Detached {
        name: what.to_string(),
        pid: state.pid,
    }
}

fn wait_for_exit(dir: &Path, state: MountState) -> Result<MountState, ContainerError> {
    let start = Instant::now();
    while crate::sys::process_alive(state.pid) {
        if start.elapsed() > EXIT_WAIT {
            return Err(ContainerError::DaemonLingers {
                mountpoint: state.mountpoint,
                pid: state.pid,
                seconds: EXIT_WAIT.as_secs(),
            });
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    let _ = std::fs::remove_file(state_path(dir));
    Ok(state)
}
