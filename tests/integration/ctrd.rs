//! A private containerd for tests: its own root, state, socket and config under a temporary
//! directory, the Debian `containerd` binary, stopped when dropped.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output};
use std::time::{Duration, Instant};

pub struct Containerd {
    child: Child,
    pub socket: PathBuf,
    pub log: PathBuf,
    /// Keeps the socket path short (containerd's sockets must fit in sun_path).
    _run: tempfile::TempDir,
}

impl Containerd {
    /// Starts containerd with its root under `base`, plus `extra_config` (TOML) appended to
    /// the config, and waits until it answers.
    pub fn start(base: &Path, extra_config: &str) -> Self {
        let run = tempfile::Builder::new()
            .prefix("snapfs-ctrd-")
            .tempdir_in("/tmp")
            .expect("containerd run dir");
        let root = base.join("containerd-root");
        std::fs::create_dir_all(&root).expect("containerd root");
        let socket = run.path().join("c.sock");
        let config = run.path().join("config.toml");
        std::fs::write(
            &config,
            format!(
                r#"version = 2
root = "{root}"
state = "{state}"
disabled_plugins = ["io.containerd.grpc.v1.cri"]

[grpc]
  address = "{socket}"

[ttrpc]
  address = "{socket}.ttrpc"

[debug]
  address = ""

[metrics]
  address = ""
{extra_config}
"#,
                root = root.display(),
                state = run.path().join("state").display(),
                socket = socket.display(),
            ),
        )
        .expect("containerd config");
        let log = base.join("containerd.log");
        let child = Command::new("containerd")
            .arg("--config")
            .arg(&config)
            .stdout(std::fs::File::create(&log).expect("log"))
            .stderr(std::fs::File::create(&log).expect("log"))
            .spawn()
            .expect("start containerd (apt install containerd)");
        let ctrd = Containerd {
            child,
            socket,
            log,
            _run: run,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if ctrd.socket.exists() && ctrd.ctr(&["version"]).status.success() {
                return ctrd;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!(
            "containerd did not come up:\n{}",
            std::fs::read_to_string(&ctrd.log).unwrap_or_default()
        );
    }

    /// Runs `ctr` against this containerd in the namespace `snapfs-test`.
    pub fn ctr(&self, args: &[&str]) -> Output {
        Command::new("ctr")
            .arg("--address")
            .arg(&self.socket)
            .args(["--namespace", "snapfs-test"])
            .args(args)
            .output()
            .expect("run ctr")
    }

    /// Runs `ctr` and requires success; returns stdout.
    pub fn ctr_ok(&self, args: &[&str]) -> String {
        let out = self.ctr(args);
        assert!(
            out.status.success(),
            "ctr {} failed:\n{}\n{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        terminate(&mut self.child);
    }
}

/// Stops a child process: SIGTERM, up to 10 s to exit, then SIGKILL. One that has exited
/// already is left alone.
pub fn terminate(child: &mut Child) {
    if let Ok(Some(_)) = child.try_wait() {
        return;
    }
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}
