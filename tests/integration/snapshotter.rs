//! `snap snapshotter` under a real containerd (its own root, state and socket; the Debian
//! `containerd` and `runc`): images unpacked and containers run on snapfs, commits through
//! containerd, containerd's garbage collection, and a snapshotter restart under a running
//! container.

use crate::ctrd::{Containerd, terminate};
use crate::util::{Root, test_images};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

const PYTHON: &str = "docker.io/snapfs/python:latest";

/// `snap snapshotter` on a test root, stopped (SIGTERM) when dropped.
struct Snapshotter {
    child: Child,
    socket: PathBuf,
    log: PathBuf,
    store: PathBuf,
}

impl Snapshotter {
    fn start(root: &Root) -> Self {
        let socket = root.path().join("snapfs.sock");
        Self::start_at(&root.store(), &socket, &root.path().join("snapshotter.log"))
    }

    fn start_at(store: &Path, socket: &Path, log: &Path) -> Self {
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .expect("snapshotter log");
        let child = Command::new(crate::util::snap_binary())
            .arg("--root")
            .arg(store)
            .arg("snapshotter")
            .arg("--address")
            .arg(socket)
            .env("RUST_LOG", "snapfs=debug")
            .stdout(out.try_clone().expect("log"))
            .stderr(out)
            .spawn()
            .expect("start snap snapshotter");
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::os::unix::net::UnixStream::connect(socket).is_err() {
            assert!(Instant::now() < deadline, "the snapshotter did not listen");
            std::thread::sleep(Duration::from_millis(20));
        }
        Snapshotter {
            child,
            socket: socket.to_path_buf(),
            log: log.to_path_buf(),
            store: store.to_path_buf(),
        }
    }

    /// containerd's config for this snapshotter.
    fn proxy_config(&self) -> String {
        format!(
            "[proxy_plugins]\n  [proxy_plugins.snapfs]\n    type = \"snapshot\"\n    address = \"{}\"\n",
            self.socket.display()
        )
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    fn restart(&mut self) {
        self.kill();
        *self = Self::start_at(&self.store, &self.socket, &self.log);
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Snapshotter {
    fn drop(&mut self) {
        terminate(&mut self.child);
    }
}

/// Unmounts every mount under `dir` (snapshot mounts left by a failed test).
fn unmount_under(dir: &Path) {
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
    let prefix = dir.to_string_lossy().into_owned();
    for line in mounts.lines().rev() {
        if let Some(target) = line.split(' ').nth(1)
            && target.starts_with(&prefix)
        {
            let _ = Command::new("umount").arg("-l").arg(target).status();
        }
    }
}

/// containerd with the snapfs snapshotter, torn down in order (containerd first).
struct Setup {
    ctrd: Option<Containerd>,
    snapshotter: Snapshotter,
    root: Root,
}

impl Setup {
    fn new() -> Self {
        let root = Root::new();
        let snapshotter = Snapshotter::start(&root);
        let ctrd = Containerd::start(root.path(), &snapshotter.proxy_config());
        Setup {
            ctrd: Some(ctrd),
            snapshotter,
            root,
        }
    }

    fn ctrd(&self) -> &Containerd {
        self.ctrd.as_ref().expect("containerd runs")
    }

    fn import_python(&self) {
        let archive = test_images().join("python.docker.tar");
        self.ctrd().ctr_ok(&[
            "images",
            "import",
            "--snapshotter",
            "snapfs",
            archive.to_str().expect("utf-8"),
        ]);
    }

    /// Kills the snapshotter, starts it again and waits until containerd reaches it (it
    /// redials the socket after its gRPC backoff).
    fn restart_snapshotter(&mut self) {
        self.snapshotter.restart();
        wait_until("containerd reaches the restarted snapshotter", || {
            self.ctrd()
                .ctr(&["snapshots", "--snapshotter", "snapfs", "ls"])
                .status
                .success()
        });
    }

    /// `ctr snapshots --snapshotter snapfs ARGS`.
    fn snapshots(&self, args: &[&str]) -> String {
        let mut all = vec!["snapshots", "--snapshotter", "snapfs"];
        all.extend_from_slice(args);
        self.ctrd().ctr_ok(&all)
    }

    /// The directories of active and view snapshots in the store.
    fn snapshot_dirs(&self) -> Vec<String> {
        std::fs::read_dir(self.root.store().join("snapshots"))
            .map(|dir| {
                dir.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| !n.ends_with(".removing"))
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl Drop for Setup {
    fn drop(&mut self) {
        // A failed test may leave containers running: their processes outlive containerd and
        // even their shims, so they are killed through containerd first.
        if let Some(ctrd) = &self.ctrd {
            let tasks = String::from_utf8_lossy(&ctrd.ctr(&["tasks", "ls"]).stdout).into_owned();
            for id in tasks
                .lines()
                .skip(1)
                .filter_map(|l| l.split_whitespace().next())
            {
                let _ = ctrd.ctr(&["tasks", "kill", "--all", "--signal", "KILL", id]);
            }
            let _ = Command::new("pkill")
                .arg("-KILL")
                .arg("-f")
                .arg(format!(
                    "containerd-shim.* -address {}",
                    ctrd.socket.display()
                ))
                .status();
        }
        self.ctrd = None;
        unmount_under(self.root.path());
        if std::thread::panicking() {
            eprintln!("snapshotter log:\n{}", self.snapshotter.log_text());
        }
    }
}

/// A container id no other test uses: runc's state directory is shared by every containerd
/// on the machine (per namespace).
fn unique(name: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    format!(
        "{name}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn containerd_unpacks_runs_and_commits_on_snapfs_and_its_gc_spares_cli_images() {
    let setup = Setup::new();
    // What the CLI owns: an image and a container, never shown to containerd.
    setup.root.import_test_image("app.oci.tar", "cli-app");
    setup.root.ok(&["create", "cli-app", "cli-box"]);
    let ctrd = setup.ctrd();

    let plugins = ctrd.ctr_ok(&["plugins", "ls"]);
    assert!(
        plugins.lines().any(|l| {
            let fields: Vec<&str> = l.split_whitespace().collect();
            fields.first() == Some(&"io.containerd.snapshotter.v1")
                && fields.get(1) == Some(&"snapfs")
                && fields.last() == Some(&"ok")
        }),
        "{plugins}"
    );

    setup.import_python();
    let listed = setup.snapshots(&["ls"]);
    assert_eq!(
        listed.lines().filter(|l| l.contains("Committed")).count(),
        2,
        "{listed}"
    );

    let (py, writer, reader) = (unique("py"), unique("writer"), unique("reader"));
    let out = ctrd.ctr_ok(&[
        "run",
        "--rm",
        "--snapshotter",
        "snapfs",
        PYTHON,
        &py,
        "python3",
        "-c",
        "import sys, os; print('python', sys.version_info[0], os.path.exists('/usr/bin/python3'))",
    ]);
    assert_eq!(out.trim(), "python 3 True");

    // A container's changes, committed by containerd, are what a second container sees.
    ctrd.ctr_ok(&[
        "run",
        "--snapshotter",
        "snapfs",
        PYTHON,
        &writer,
        "sh",
        "-c",
        "echo kept > /kept.txt && rm /etc/debian_version && mkdir -p /srv/app && echo 1 > /srv/app/v",
    ]);
    setup.snapshots(&["commit", "written", &writer]);
    ctrd.ctr_ok(&["containers", "rm", &writer]);
    setup.snapshots(&["prepare", "reader", "written"]);
    let rootfs = setup.root.path().join("reader-rootfs");
    std::fs::create_dir_all(&rootfs).expect("rootfs dir");
    let mount = setup.snapshots(&["mounts", rootfs.to_str().expect("utf-8"), "reader"]);
    assert!(mount.starts_with("mount -t bind "), "{mount}");
    let status = Command::new("sh")
        .arg("-c")
        .arg(&mount)
        .status()
        .expect("mount");
    assert!(status.success(), "{mount}");
    let seen = ctrd.ctr_ok(&[
        "run",
        "--rm",
        "--rootfs",
        rootfs.to_str().expect("utf-8"),
        &reader,
        "/bin/sh",
        "-c",
        "cat /kept.txt /srv/app/v; test -e /etc/debian_version && echo resurrected || echo gone",
    ]);
    assert_eq!(seen, "kept\n1\ngone\n");
    assert!(
        Command::new("umount")
            .arg(&rootfs)
            .status()
            .expect("umount")
            .success()
    );
    setup.snapshots(&["rm", "reader"]);
    setup.snapshots(&["rm", "written"]);

    // containerd's gc removes the image's snapshots; `snap gc` then frees their layers.
    ctrd.ctr_ok(&["images", "rm", "--sync", PYTHON]);
    wait_until("containerd removed the snapshots", || {
        !setup.snapshots(&["ls"]).contains("Committed")
    });
    wait_until("the snapshot directories are gone", || {
        setup.snapshot_dirs().is_empty()
    });
    let gc: serde_json::Value =
        serde_json::from_str(&setup.root.ok(&["gc", "--json"])).expect("gc json");
    assert!(gc["layer_files"].as_u64() >= Some(3), "{gc}");
    assert!(gc["index_files"].as_u64() >= Some(3), "{gc}");
    // (Most of python's objects stay: the CLI's app image is built on the same base.)
    assert!(gc["bytes"].as_u64() > Some(0), "{gc}");

    // The CLI's image and container went through all of it untouched.
    let images = setup.root.images();
    assert_eq!(images.as_array().map(|a| a.len()), Some(1), "{images}");
    assert!(setup.root.ok(&["ps"]).contains("cli-box"));
    setup.root.fsck_clean();
    let mnt = setup.root.path().join("cli-mnt");
    std::fs::create_dir_all(&mnt).expect("mountpoint");
    setup
        .root
        .ok(&["mount", "cli-box", mnt.to_str().expect("utf-8")]);
    assert!(mnt.join("etc/os-release").exists());
    setup.root.ok(&["umount", "cli-box"]);
}

#[test]
fn a_running_container_outlives_a_snapshotter_restart() {
    let mut setup = Setup::new();
    setup.import_python();
    // Killed at once, while it stores the unpacked layers in the background: restarted, it
    // stores them again, and the container below runs on them.
    setup.restart_snapshotter();
    let long = unique("long");
    setup.ctrd().ctr_ok(&[
        "run",
        "-d",
        "--snapshotter",
        "snapfs",
        PYTHON,
        &long,
        "sh",
        "-c",
        "i=0; while :; do i=$((i+1)); echo $i > /count.new; mv /count.new /count; sleep 0.05; done",
    ]);
    let count = |ctrd: &Containerd, exec_id: &str| -> u64 {
        let out = ctrd.ctr_ok(&[
            "tasks",
            "exec",
            "--exec-id",
            exec_id,
            &long,
            "cat",
            "/count",
        ]);
        out.trim().parse().unwrap_or(0)
    };
    wait_until("the container counts", || count(setup.ctrd(), "e0") > 0);

    // Killed: the container's FUSE daemon is its own process and serves on.
    setup.snapshotter.kill();
    let before = count(setup.ctrd(), "e1");
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        count(setup.ctrd(), "e2") > before,
        "the container stopped writing"
    );

    setup.restart_snapshotter();
    let listed = setup.snapshots(&["ls"]);
    assert!(listed.contains(&long), "{listed}");
    let usage = setup.snapshots(&["usage", &long]);
    assert!(usage.contains(&long), "{usage}");
    let before = count(setup.ctrd(), "e3");
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        count(setup.ctrd(), "e4") > before,
        "the container stopped writing"
    );

    let ctrd = setup.ctrd();
    ctrd.ctr_ok(&["tasks", "kill", "-s", "KILL", &long]);
    wait_until("the task stopped", || {
        ctrd.ctr_ok(&["tasks", "ls"])
            .lines()
            .all(|l| !l.starts_with(&long) || l.contains("STOPPED"))
    });
    ctrd.ctr_ok(&["tasks", "rm", &long]);
    ctrd.ctr_ok(&["containers", "rm", &long]);
    wait_until("the container's snapshot is removed", || {
        !setup.snapshots(&["ls"]).contains(&long)
    });
    wait_until("its directory and daemon are gone", || {
        setup.snapshot_dirs().is_empty()
    });
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
    let store = setup.root.store().display().to_string();
    assert!(!mounts.contains(&store), "{mounts}");
}
