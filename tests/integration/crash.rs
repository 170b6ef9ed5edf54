//! kill -9 of `snap import` at many moments: the store stays consistent, earlier images stay
//! intact, and `snap gc` reclaims what the killed import left.

use crate::util::{Root, test_images};
use std::process::Command;
use std::time::Duration;

#[test]
fn killed_import_leaves_fsck_clean_and_earlier_images_intact() {
    let images = test_images();
    let root = Root::new();
    root.import_test_image("python.docker.tar", "python");
    let before = root.images();
    let app = images.join("app.oci.tar");
    // Random moments over an import (opening, reading layers, writing objects, the index,
    // the database transaction); SNAPFS_CRASH_SEED replays a run.
    let seed: u64 = std::env::var("SNAPFS_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64)
                | 1
        });
    eprintln!("crash test seed: SNAPFS_CRASH_SEED={seed}");
    let mut state = seed;
    let mut delays: Vec<u64> = (0..8)
        .map(|_| {
            // xorshift64
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state % 6000
        })
        .collect();
    delays.sort();
    for delay_ms in delays {
        let mut child = Command::new(crate::util::snap_binary())
            .args(["import", app.to_str().unwrap(), "--name", "app", "--quiet"])
            .env("SNAPFS_ROOT", root.store())
            .spawn()
            .expect("spawn import");
        std::thread::sleep(Duration::from_millis(delay_ms));
        let _ = child.kill(); // SIGKILL
        let status = child.wait().expect("wait");
        root.fsck_clean();
        let now = root.images();
        let names: Vec<String> = now
            .as_array()
            .expect("list")
            .iter()
            .flat_map(|i| i["names"].as_array().cloned().unwrap_or_default())
            .map(|n| n.to_string())
            .collect();
        assert!(
            names.iter().any(|n| n.contains("python")),
            "python lost after kill at {delay_ms} ms: {now:#}"
        );
        if !status.success() && !names.iter().any(|n| n.contains("\"app\"")) {
            assert_eq!(now, before, "a killed import changed the image list");
        }
        root.ok(&["inspect", "python"]);
        if names.iter().any(|n| n.contains("\"app\"")) {
            // The import finished before the kill: the next round starts from scratch.
            root.ok(&["rmi", "app"]);
        }
    }
    root.ok(&["gc"]);
    let report = root.fsck_clean();
    assert_eq!(
        report["unreferenced_objects"], 0,
        "gc reclaims what killed imports left"
    );
    let leftovers = std::fs::read_dir(root.store().join("tmp"))
        .expect("tmp")
        .count();
    assert_eq!(leftovers, 0, "gc empties tmp/");
    // And a complete import still works afterwards.
    root.ok(&["import", app.to_str().unwrap(), "--name", "app"]);
    root.fsck_clean();
}
