//! `snap mount NAME MOUNTPOINT` and `snap umount NAME`: the daemon that serves a container.
//!
//! `mount` starts `snap mount --foreground` as a detached daemon and returns once the mount
//! exists; the daemon writes `mount.json` when mounted and removes it when unmounted. A
//! daemon killed with SIGKILL leaves a dead mount and a stale `mount.json`: `mount`, `umount`
//! and `ps` detect it (the pid is gone) and clean it up.

use super::{ContainerError, dir, io_err, open_db};
use crate::fs::{Mounted, Upper};
use crate::model::ImageId;
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

fn state_path(store: &Store, name: &str) -> PathBuf {
    dir(store, name).join("mount.json")
}

/// The live mount of `name`, cleaning up a stale one (dead daemon) on the way.
pub fn live_state(store: &Store, name: &str) -> Option<MountState> {
    let path = state_path(store, name);
    let state: MountState = serde_json::from_slice(&std::fs::read(&path).ok()?).ok()?;
    if crate::sys::process_alive(state.pid) {
        return Some(state);
    }
    tracing::warn!(
        "container {name}: daemon {} is gone; cleaning up its mount at {}",
        state.pid,
        state.mountpoint.display()
    );
    if crate::sys::is_mount_point(&state.mountpoint) {
        let _ = crate::sys::unmount(&state.mountpoint);
    }
    let _ = std::fs::remove_file(&path);
    None
}

/// Mounts container `name` at `mountpoint` with a background daemon; returns its pid.
pub fn mount(store: &Store, name: &str, mountpoint: &Path) -> Result<u32, ContainerError> {
    let record = open_db(store)?
        .container(name)?
        .ok_or_else(|| ContainerError::NoSuchContainer(name.to_string()))?;
    if let Some(state) = live_state(store, name) {
        return Err(ContainerError::Mounted {
            name: name.to_string(),
            mountpoint: state.mountpoint,
            pid: state.pid,
        });
    }
    let mountpoint = std::fs::canonicalize(mountpoint).map_err(io_err(mountpoint))?;
    if crate::sys::is_mount_point(&mountpoint) && std::fs::metadata(&mountpoint).is_err() {
        // A dead FUSE mount left there by a killed daemon.
        let _ = crate::sys::unmount(&mountpoint);
    }
    let log_path = dir(store, name).join("daemon.log");
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .map_err(io_err(&log_path))?;
    let exe = std::env::current_exe().map_err(io_err(Path::new("/proc/self/exe")))?;
    let mut child = Command::new(exe)
        .arg("--root")
        .arg(store.root())
        .args(["mount", "--foreground", "--image"])
        .arg(record.image.to_string())
        .arg(name)
        .arg(&mountpoint)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log.try_clone().map_err(io_err(&log_path))?)
        .process_group(0)
        .spawn()
        .map_err(io_err(&mountpoint))?;
    let start = Instant::now();
    loop {
        if let Some(state) = live_state(store, name)
            && state.pid == child.id()
        {
            return Ok(state.pid);
        }
        if let Ok(Some(status)) = child.try_wait() {
            let log = std::fs::read_to_string(&log_path).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(5).collect();
            let detail = format!(
                "the daemon exited ({status}): {}",
                tail.into_iter().rev().collect::<Vec<_>>().join(" | ")
            );
            return Err(ContainerError::MountFailed {
                name: name.to_string(),
                mountpoint,
                detail,
            });
        }
        if start.elapsed() > Duration::from_secs(30) {
            let _ = child.kill();
            return Err(ContainerError::MountFailed {
                name: name.to_string(),
                mountpoint,
                detail: "not mounted after 30 s".into(),
            });
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Runs the daemon in this process: mounts and serves until unmounted. `image` is the
/// container's image when the caller already read it (the background daemon is given it, so
/// that it never opens the database).
pub fn serve(
    store: Store,
    name: &str,
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
    let index = store.open_index(&image)?;
    let dir = dir(&store, name);
    let upper = Upper::open(&dir.join("upper"), &dir.join("work"))?;
    let state_file = state_path(&store, name);
    let mountpoint = std::fs::canonicalize(mountpoint).map_err(io_err(mountpoint))?;
    let state = MountState {
        pid: std::process::id(),
        mountpoint: mountpoint.clone(),
    };
    // One daemon per container: a second one on the same upper dir would corrupt it.
    let lock_path = dir.join("daemon.lock");
    let wait = crate::sys::LockWait {
        exclusive: true,
        timeout: Duration::ZERO,
        on_wait: &|_| {},
    };
    let _lock = crate::sys::FileLock::acquire(&lock_path, &wait)
        .map_err(io_err(&lock_path))?
        .ok_or_else(|| ContainerError::MountFailed {
            name: name.to_string(),
            mountpoint: mountpoint.clone(),
            detail: format!(
                "another daemon serves this container (pid in {})",
                lock_path.display()
            ),
        })?;
    let fs = Mounted::new(index, store, upper);
    let control = dir.join("control.sock");
    if let Err(e) = super::control::listen(&control, fs.union()) {
        // Commits of this container then read its upper without freezing it.
        tracing::warn!("no control socket at {}: {e}", control.display());
    }
    let mut written = Ok(());
    crate::fs::serve(fs, &mountpoint, || {
        tracing::info!("container {name} mounted at {}", mountpoint.display());
        let tmp = state_file.with_extension("json.tmp");
        written = std::fs::write(&tmp, serde_json::to_vec(&state).unwrap_or_default())
            .and_then(|()| std::fs::rename(&tmp, &state_file))
            .map_err(io_err(&state_file));
    })?;
    let _ = std::fs::remove_file(&state_file);
    let _ = std::fs::remove_file(&control);
    tracing::info!("container {name} unmounted");
    written
}

/// Unmounts container `name` and waits for its daemon to exit.
pub fn umount(store: &Store, name: &str) -> Result<MountState, ContainerError> {
    let state =
        live_state(store, name).ok_or_else(|| ContainerError::NotMounted(name.to_string()))?;
    crate::sys::unmount(&state.mountpoint).map_err(io_err(&state.mountpoint))?;
    let start = Instant::now();
    while crate::sys::process_alive(state.pid) {
        if start.elapsed() > Duration::from_secs(10) {
            return Err(ContainerError::MountFailed {
                name: name.to_string(),
                mountpoint: state.mountpoint,
                detail: format!(
                    "unmounted, but daemon pid {} has not exited after 10 s",
                    state.pid
                ),
            });
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    let _ = std::fs::remove_file(state_path(store, name));
    Ok(state)
}
