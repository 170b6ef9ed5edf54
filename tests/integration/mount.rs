//! The FUSE union mount: merged views of real images, the write path compared operation by
//! operation with kernel overlayfs, copy-up of running binaries, killed daemons, many mounts.

use crate::util::{Layout, Mounted, Overlay, Root, Tree, diff, dump_dir, header, test_images};
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tar::EntryType;

fn without_root(mut tree: Tree) -> Tree {
    tree.remove("");
    tree
}

fn assert_mount_equals_unpack(source: &str, unpacked: &str) {
    let images = test_images();
    let root = Root::new();
    root.import_test_image(source, "img");
    let mnt = Mounted::new(&root, "img", "c");
    let ours = without_root(dump_dir(&mnt.dir));
    let theirs = without_root(dump_dir(&images.join(unpacked).join("rootfs")));
    let differences = diff("snapfs mount", &ours, "umoci", &theirs);
    assert!(
        differences.is_empty(),
        "{} differences:\n{}",
        differences.len(),
        differences.join("\n")
    );
    assert!(ours.len() > 1000);
}

#[test]
fn mounted_app_image_equals_umoci_unpack() {
    assert_mount_equals_unpack("app.oci.tar", "app.unpacked");
}

#[test]
fn mounted_python_image_equals_umoci_unpack() {
    assert_mount_equals_unpack("python.docker.tar", "python.unpacked");
}

#[test]
fn python_runs_from_the_mount() {
    let root = Root::new();
    root.import_test_image("app.oci.tar", "app");
    let mnt = Mounted::new(&root, "app", "c");
    let out = Command::new("chroot")
        .arg(&mnt.dir)
        .args(["python3", "/app/hello.py"])
        .output()
        .expect("chroot");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "hello from snapfs\n",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A small image built here, with what union semantics care about: nested dirs, hardlinks,
/// xattrs, symlinks, devices, fifos, an executable, a whiteout and an opaque dir.
fn ops_image(root: &Root) {
    let mut b = tar::Builder::new(Vec::new());
    let dir = |b: &mut tar::Builder<Vec<u8>>, p: &str| {
        b.append_data(&mut header(EntryType::Directory, 0o755, 0), p, &[][..])
            .expect("dir")
    };
    let file = |b: &mut tar::Builder<Vec<u8>>, p: &str, body: &str, mode: u32| {
        b.append_data(
            &mut header(EntryType::Regular, mode, body.len() as u64),
            p,
            body.as_bytes(),
        )
        .expect("file")
    };
    for d in [
        "etc/",
        "bin/",
        "srv/",
        "mnt/",
        "usr/",
        "usr/share/",
        "usr/share/doc/",
        "usr/share/doc/a/",
        "usr/share/doc/b/",
        "usr/share/doc/b/sub/",
        "usr/share/doc/c/",
        "var/",
        "var/lib/",
    ] {
        dir(&mut b, d);
    }
    file(&mut b, "etc/hostname", "image\n", 0o644);
    file(&mut b, "etc/config", "key=value\n", 0o600);
    file(&mut b, "etc/big", &"0123456789".repeat(5000), 0o644);
    file(&mut b, "bin/tool", "#!/bin/sh\necho tool\n", 0o755);
    file(&mut b, "bin/suid", "x", 0o4755);
    for d in ["a", "b", "b/sub", "c"] {
        for f in 0..3 {
            file(
                &mut b,
                &format!("usr/share/doc/{d}/f{f}"),
                &format!("{d} {f}\n"),
                0o644,
            );
        }
    }
    file(&mut b, "var/lib/h1", "hardlinked\n", 0o644);
    b.append_link(
        &mut header(EntryType::Link, 0o644, 0),
        "var/lib/h2",
        "var/lib/h1",
    )
    .expect("link");
    b.append_pax_extensions([("SCHILY.xattr.user.tag", &b"lower"[..])])
        .expect("pax");
    file(&mut b, "etc/tagged", "has an xattr\n", 0o644);
    b.append_link(
        &mut header(EntryType::Symlink, 0o777, 0),
        "etc/link",
        "hostname",
    )
    .expect("symlink");
    b.append_data(&mut header(EntryType::Fifo, 0o644, 0), "var/fifo", &[][..])
        .expect("fifo");
    let mut dev = header(EntryType::Char, 0o666, 0);
    dev.set_device_major(1).expect("major");
    dev.set_device_minor(3).expect("minor");
    b.append_data(&mut dev, "var/null", &[][..]).expect("dev");
    let base = b.into_inner().expect("tar");
    let mut b = tar::Builder::new(Vec::new());
    // Parents are listed, as image builders write them (their metadata equals the lower's).
    for d in [
        "etc/",
        "usr/",
        "usr/share/",
        "usr/share/doc/",
        "usr/share/doc/a/",
    ] {
        dir(&mut b, d);
    }
    file(&mut b, "etc/hostname", "layer two\n", 0o644);
    file(&mut b, "usr/share/doc/a/.wh.f0", "", 0o644);
    dir(&mut b, "usr/share/doc/c/");
    file(&mut b, "usr/share/doc/c/.wh..wh..opq", "", 0o644);
    file(&mut b, "usr/share/doc/c/new", "replaced dir\n", 0o644);
    let top = b.into_inner().expect("tar");
    let layout = Layout::new(vec![base, top]).write(&root.path().join("ops-layout"));
    root.ok(&["import", layout.to_str().unwrap(), "--name", "ops"]);
}

/// Runs one operation on a mounted tree; returns a comparable outcome.
type Op = (&'static str, fn(&Path) -> std::io::Result<()>);

fn rename_flags(from: &Path, to: &Path, flags: rustix::fs::RenameFlags) -> std::io::Result<()> {
    rustix::fs::renameat_with(rustix::fs::CWD, from, rustix::fs::CWD, to, flags).map_err(Into::into)
}

fn ops() -> Vec<Op> {
    use std::io::Write;
    vec![
        ("create a file", |m| fs::write(m.join("new.txt"), "new\n")),
        ("append to a lower file", |m| {
            fs::OpenOptions::new()
                .append(true)
                .open(m.join("etc/hostname"))?
                .write_all(b"more\n")
        }),
        ("truncate a lower file", |m| {
            fs::OpenOptions::new()
                .write(true)
                .open(m.join("etc/big"))?
                .set_len(1000)
        }),
        ("overwrite a lower file", |m| {
            fs::write(m.join("usr/share/doc/a/f1"), "overwritten\n")
        }),
        ("chmod a lower file", |m| {
            fs::set_permissions(m.join("etc/config"), fs::Permissions::from_mode(0o640))
        }),
        ("chown a lower file", |m| {
            std::os::unix::fs::lchown(m.join("usr/share/doc/a/f2"), Some(1000), Some(1000))
        }),
        ("utimens a lower file", |m| {
            let t = rustix::fs::Timespec {
                tv_sec: 1_600_000_000,
                tv_nsec: 5,
            };
            rustix::fs::utimensat(
                rustix::fs::CWD,
                m.join("usr/share/doc/b/f0"),
                &rustix::fs::Timestamps {
                    last_access: t,
                    last_modification: t,
                },
                rustix::fs::AtFlags::empty(),
            )
            .map_err(Into::into)
        }),
        ("setxattr on a lower file", |m| {
            rustix::fs::setxattr(
                m.join("usr/share/doc/b/f1"),
                "user.new",
                b"1",
                rustix::fs::XattrFlags::empty(),
            )
            .map_err(Into::into)
        }),
        ("removexattr on a lower file", |m| {
            rustix::fs::removexattr(m.join("etc/tagged"), "user.tag").map_err(Into::into)
        }),
        ("mkdir nested", |m| fs::create_dir_all(m.join("srv/x/y/z"))),
        ("create in a lower dir", |m| {
            fs::write(m.join("usr/share/doc/b/sub/added"), "added\n")
        }),
        ("rmdir an empty lower dir", |m| {
            fs::remove_dir(m.join("mnt"))
        }),
        ("rmdir a non-empty lower dir", |m| {
            fs::remove_dir(m.join("usr/share/doc/b"))
        }),
        ("unlink a lower file", |m| {
            fs::remove_file(m.join("usr/share/doc/a/f2"))
        }),
        ("unlink a whiteout name", |m| {
            fs::remove_file(m.join("usr/share/doc/a/f0"))
        }),
        ("delete and recreate a lower file", |m| {
            fs::remove_file(m.join("etc/config"))?;
            fs::write(m.join("etc/config"), "recreated\n")
        }),
        ("rm -r a lower tree", |m| {
            fs::remove_dir_all(m.join("usr/share/doc/b"))
        }),
        ("recreate the removed dir (opaque)", |m| {
            fs::create_dir(m.join("usr/share/doc/b"))?;
            fs::write(m.join("usr/share/doc/b/only"), "only\n")
        }),
        ("rename a lower file in its dir", |m| {
            fs::rename(
                m.join("usr/share/doc/a/f1"),
                m.join("usr/share/doc/a/f1-renamed"),
            )
        }),
        ("rename a lower file across dirs", |m| {
            fs::rename(m.join("etc/tagged"), m.join("srv/tagged"))
        }),
        ("rename a lower dir", |m| {
            fs::rename(m.join("usr/share/doc/a"), m.join("usr/share/doc/a2"))
        }),
        ("rename a merged dir into a new dir", |m| {
            fs::rename(m.join("usr/share/doc/c"), m.join("srv/x/c"))
        }),
        ("rename an upper dir", |m| {
            fs::rename(m.join("srv/x"), m.join("srv/x2"))
        }),
        ("rename with NOREPLACE onto a file", |m| {
            rename_flags(
                &m.join("etc/hostname"),
                &m.join("etc/big"),
                rustix::fs::RenameFlags::NOREPLACE,
            )
        }),
        ("rename EXCHANGE two lower files", |m| {
            rename_flags(
                &m.join("etc/hostname"),
                &m.join("etc/big"),
                rustix::fs::RenameFlags::EXCHANGE,
            )
        }),
        ("rename a file over a lower file", |m| {
            fs::rename(m.join("new.txt"), m.join("bin/tool"))
        }),
        ("symlink", |m| {
            std::os::unix::fs::symlink("../etc/hostname", m.join("srv/sym"))
        }),
        ("hardlink a lower file", |m| {
            fs::hard_link(m.join("etc/big"), m.join("srv/big-link"))
        }),
        ("write through one name of a lower hardlink", |m| {
            fs::OpenOptions::new()
                .append(true)
                .open(m.join("var/lib/h1"))?
                .write_all(b"changed\n")
        }),
        ("unlink one name of a lower hardlink", |m| {
            fs::remove_file(m.join("var/lib/h2"))
        }),
        (
            "a symlink and a hard link where lower files were deleted",
            |m| {
                // Each name is a whiteout first: the new entry is swapped in over it.
                fs::remove_file(m.join("bin/suid"))?;
                std::os::unix::fs::symlink("elsewhere", m.join("bin/suid"))?;
                fs::remove_file(m.join("var/lib/h1"))?;
                fs::hard_link(m.join("bin/tool"), m.join("var/lib/h1"))
            },
        ),
        ("mkfifo", |m| {
            rustix::fs::mknodat(
                rustix::fs::CWD,
                m.join("srv/fifo"),
                rustix::fs::FileType::Fifo,
                rustix::fs::Mode::from_raw_mode(0o640),
                0,
            )
            .map_err(Into::into)
        }),
        ("mknod a char device", |m| {
            rustix::fs::mknodat(
                rustix::fs::CWD,
                m.join("srv/zero"),
                rustix::fs::FileType::CharacterDevice,
                rustix::fs::Mode::from_raw_mode(0o666),
                rustix::fs::makedev(1, 5),
            )
            .map_err(Into::into)
        }),
        ("fallocate", |m| {
            let f = fs::File::create(m.join("srv/alloc"))?;
            rustix::fs::fallocate(&f, rustix::fs::FallocateFlags::empty(), 0, 1 << 20)
                .map_err(Into::into)
        }),
        ("write and fsync", |m| {
            let mut f = fs::File::create(m.join("srv/synced"))?;
            f.write_all(b"durable\n")?;
            f.sync_all()
        }),
        ("chmod a dir and set setgid", |m| {
            fs::set_permissions(m.join("var/lib"), fs::Permissions::from_mode(0o2775))
        }),
        ("create in a setgid dir", |m| {
            fs::write(m.join("var/lib/in-sgid"), "x")
        }),
        ("unlink a lower device and fifo", |m| {
            fs::remove_file(m.join("var/null"))?;
            fs::remove_file(m.join("var/fifo"))
        }),
        ("a fifo where the lower fifo was deleted", |m| {
            rustix::fs::mknodat(
                rustix::fs::CWD,
                m.join("var/fifo"),
                rustix::fs::FileType::Fifo,
                rustix::fs::Mode::from_raw_mode(0o600),
                0,
            )
            .map_err(Into::into)
        }),
        ("rmdir a recreated upper dir", |m| {
            fs::remove_dir_all(m.join("srv/x2"))
        }),
        ("rename a file onto a deleted lower name", |m| {
            fs::remove_file(m.join("etc/link"))?;
            fs::write(m.join("srv/moved-file"), "moved\n")?;
            fs::rename(m.join("srv/moved-file"), m.join("etc/link"))
        }),
        ("rename a dir onto a deleted lower name", |m| {
            fs::remove_file(m.join("bin/tool"))?;
            fs::create_dir(m.join("srv/moved-dir"))?;
            fs::write(m.join("srv/moved-dir/in"), "in\n")?;
            fs::rename(m.join("srv/moved-dir"), m.join("bin/tool"))
        }),
        (
            "rename a new dir onto a lower dir renamed away (a whiteout)",
            |m| {
                fs::create_dir(m.join("srv/fresh"))?;
                fs::write(m.join("srv/fresh/only"), "fresh\n")?;
                fs::rename(m.join("srv/fresh"), m.join("usr/share/doc/c"))
            },
        ),
    ]
}

/// Trees equal up to times set by the clock during the test (both sides set "now").
fn compare(step: &str, ours: &Path, theirs: &Path, since: i64) {
    let clean = |mut t: Tree| {
        t.remove("");
        for node in t.values_mut() {
            if node.mtime.0 >= since {
                node.mtime = (0, 0);
            }
            if node.kind == "dir" {
                node.size = 0;
            }
        }
        t
    };
    let differences = diff(
        "snapfs",
        &clean(dump_dir(ours)),
        "overlayfs",
        &clean(dump_dir(theirs)),
    );
    assert!(
        differences.is_empty(),
        "after {step}: {} differences:\n{}",
        differences.len(),
        differences.join("\n")
    );
}

#[test]
fn operations_match_kernel_overlayfs_before_and_after_remount() {
    let root = Root::new();
    ops_image(&root);
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64
        - 1;
    let overlay = Overlay::new(&root.store(), "ops", &root.path().join("overlay"));
    let mut mnt = Mounted::new(&root, "ops", "c");
    compare("mount", &mnt.dir, &overlay.dir, since);
    let ops = ops();
    assert!(ops.len() >= 30);
    for (i, (name, op)) in ops.iter().enumerate() {
        let ours = op(&mnt.dir).map_err(|e| e.raw_os_error());
        let theirs = op(&overlay.dir).map_err(|e| e.raw_os_error());
        assert_eq!(
            ours, theirs,
            "step {i} ({name}): snapfs and overlayfs disagree on the result"
        );
        compare(name, &mnt.dir, &overlay.dir, since);
    }
    drop(mnt);
    overlay.remount();
    mnt = Mounted::mount(&root, "c");
    compare("remount", &mnt.dir, &overlay.dir, since);
}

#[test]
fn copy_up_of_open_binary_keeps_running() {
    let root = Root::new();
    root.import_test_image("python.docker.tar", "py");
    let mnt = Mounted::new(&root, "py", "c");
    let mut running = Command::new("chroot")
        .arg(&mnt.dir)
        .args(["/usr/bin/sleep", "2"])
        .spawn()
        .expect("run sleep");
    std::thread::sleep(Duration::from_millis(300));
    // chmod copies the running binary up: the name gets a new inode in the upper dir, while
    // the running process keeps its lower copy open.
    fs::set_permissions(mnt.path("usr/bin/sleep"), fs::Permissions::from_mode(0o750))
        .expect("chmod running binary");
    let upper = root.store().join("containers/c/upper/usr/bin/sleep");
    assert_eq!(
        fs::metadata(&upper)
            .expect("copied up")
            .permissions()
            .mode()
            & 0o777,
        0o750
    );
    // New opens and execs of the name go to the copy (the kernel is told ESTALE and looks up again).
    let lower_bytes = fs::read(mnt.path("usr/bin/sleep")).expect("read the copied-up binary");
    assert_eq!(lower_bytes, fs::read(&upper).expect("upper"));
    let again = Command::new("chroot")
        .arg(&mnt.dir)
        .args(["/usr/bin/sleep", "0.1"])
        .status()
        .expect("run the copy");
    assert!(again.success());
    let status = running.wait().expect("wait");
    assert!(
        status.success(),
        "the running binary died after its copy-up: {status}"
    );
    // Once nothing runs it, it can be written like any file.
    let mut f = fs::OpenOptions::new()
        .append(true)
        .open(mnt.path("usr/bin/sleep"))
        .expect("open for write");
    std::io::Write::write_all(&mut f, b"\n# appended").expect("append");
    drop(f);
    assert!(
        fs::read(&upper)
            .expect("upper copy")
            .ends_with(b"\n# appended")
    );
}

#[test]
fn killed_daemon_loses_no_fsynced_data_and_mount_recovers() {
    let root = Root::new();
    ops_image(&root);
    let mnt = Mounted::new(&root, "ops", "c");
    {
        use std::io::Write;
        let mut f = fs::File::create(mnt.path("srv/durable")).expect("create");
        f.write_all(b"fsynced\n").expect("write");
        f.sync_all().expect("fsync");
    }
    let ps: serde_json::Value = serde_json::from_str(&root.ok(&["ps", "--json"])).expect("ps json");
    let pid = ps[0]["pid"].as_u64().expect("daemon pid") as i32;
    rustix::process::kill_process(
        rustix::process::Pid::from_raw(pid).expect("pid"),
        rustix::process::Signal::KILL,
    )
    .expect("kill");
    std::thread::sleep(Duration::from_millis(200));
    let ps: serde_json::Value = serde_json::from_str(&root.ok(&["ps", "--json"])).expect("ps json");
    assert!(ps[0]["pid"].is_null(), "ps sees the daemon is gone: {ps:#}");
    let again = Mounted::mount(&root, "c");
    assert_eq!(
        fs::read_to_string(again.path("srv/durable")).expect("read"),
        "fsynced\n"
    );
    assert_eq!(
        fs::read_to_string(again.path("etc/hostname")).expect("read"),
        "layer two\n"
    );
    std::mem::forget(mnt); // its mount is gone; `again` unmounts
}

#[test]
fn many_containers_of_one_image_are_independent() {
    let root = Root::new();
    ops_image(&root);
    let mounts: Vec<Mounted> = (0..4)
        .map(|i| Mounted::new(&root, "ops", &format!("c{i}")))
        .collect();
    for (i, m) in mounts.iter().enumerate() {
        fs::write(m.path("etc/hostname"), format!("container {i}\n")).expect("write");
    }
    for (i, m) in mounts.iter().enumerate() {
        assert_eq!(
            fs::read_to_string(m.path("etc/hostname")).expect("read"),
            format!("container {i}\n")
        );
        assert_eq!(
            fs::read_to_string(m.path("etc/link")).expect("read"),
            format!("container {i}\n")
        );
    }
    let ps: serde_json::Value = serde_json::from_str(&root.ok(&["ps", "--json"])).expect("ps");
    assert_eq!(ps.as_array().map(Vec::len), Some(4));
    let err = root.snap(&["rmi", "ops"]).fails();
    assert!(err.contains("used by container"), "{err}");
    let err = root.snap(&["rm", "c0"]).fails();
    assert!(err.contains("is mounted"), "{err}");
    drop(mounts);
    root.ok(&["rm", "c0", "c1", "c2", "c3"]);
    root.ok(&["rmi", "ops"]);
    root.fsck_clean();
}

#[test]
fn writes_and_truncation_drop_file_capabilities() {
    let root = Root::new();
    ops_image(&root);
    let mounted = Mounted::new(&root, "ops", "caps");
    let file = mounted.path("etc/hostname");
    // vfs_cap_data, revision 2, effective: cap_net_raw permitted.
    let cap: [u8; 20] = [
        0x01, 0x00, 0x00, 0x02, 0x00, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    ];
    let has_cap = || {
        let mut buf = [0u8; 64];
        rustix::fs::getxattr(&file, "security.capability", &mut buf[..]).is_ok()
    };
    let set_cap = || {
        rustix::fs::setxattr(
            &file,
            "security.capability",
            &cap,
            rustix::fs::XattrFlags::empty(),
        )
        .expect("setxattr security.capability");
        assert!(has_cap());
    };
    // As on overlayfs (and any local filesystem): a write, by root too, drops them.
    set_cap();
    let mut f = fs::OpenOptions::new()
        .append(true)
        .open(&file)
        .expect("open");
    std::io::Write::write_all(&mut f, b"more\n").expect("write");
    drop(f);
    assert!(!has_cap(), "a write kept security.capability");
    set_cap();
    fs::OpenOptions::new()
        .write(true)
        .open(&file)
        .and_then(|f| f.set_len(3))
        .expect("truncate");
    assert!(!has_cap(), "a truncation kept security.capability");
}

#[test]
fn a_mount_detached_but_bound_elsewhere_keeps_its_container() {
    let root = Root::new();
    ops_image(&root);
    let mounted = Mounted::new(&root, "ops", "d");
    fs::write(mounted.path("etc/hostname"), "kept\n").expect("write");
    // A bind of the mount (as a container's rootfs is), then the mount point unmounted: the
    // daemon serves on, for the bind.
    let bind = root.path().join("bind");
    fs::create_dir_all(&bind).expect("mkdir");
    let status = std::process::Command::new("mount")
        .arg("--bind")
        .arg(&mounted.dir)
        .arg(&bind)
        .status()
        .expect("mount --bind");
    assert!(status.success());
    snapfs::sys::unmount(&mounted.dir).expect("unmount the mount point");
    let elsewhere = mounted.dir.to_str().expect("utf-8");
    for args in [
        &["rm", "--force", "d"][..],
        &["umount", "d"],
        &["mount", "d", elsewhere],
    ] {
        let err = root.snap(args).fails();
        assert!(err.contains("still serves a mount"), "{args:?}: {err}");
    }
    let ps: serde_json::Value = serde_json::from_str(&root.ok(&["ps", "--json"])).expect("ps");
    assert!(
        ps[0]["mountpoint"].is_null() && ps[0]["pid"].is_u64(),
        "{ps}"
    );
    let upper = root.store().join("containers/d/upper/etc/hostname");
    assert_eq!(
        fs::read_to_string(upper).expect("the upper is kept"),
        "kept\n"
    );
    assert_eq!(
        fs::read_to_string(bind.join("etc/hostname")).expect("read"),
        "kept\n"
    );
    // Once the bind goes, so does the daemon, and the container can be removed.
    snapfs::sys::unmount(&bind).expect("unmount the bind");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !root.snap(&["rm", "d"]).output.status.success() {
        assert!(
            std::time::Instant::now() < deadline,
            "the daemon did not exit"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

#[test]
fn container_names_and_missing_things_get_clear_errors() {
    let root = Root::new();
    ops_image(&root);
    for bad in ["../x", "a/b", ".hidden", ""] {
        let err = root.snap(&["create", "ops", bad]).fails();
        assert!(err.contains("invalid container name"), "{bad}: {err}");
    }
    let err = root.snap(&["create", "nope", "c"]).fails();
    assert!(err.contains("no image named"), "{err}");
    root.ok(&["create", "ops", "c"]);
    let err = root.snap(&["create", "ops", "c"]).fails();
    assert!(err.contains("already exists"), "{err}");
    let err = root.snap(&["umount", "c"]).fails();
    assert!(err.contains("not mounted"), "{err}");
    let err = root
        .snap(&["mount", "zz", root.path().to_str().unwrap()])
        .fails();
    assert!(err.contains("no container named"), "{err}");
    root.ok(&["rm", "c"]);
}

#[test]
fn mount_reads_the_image_from_the_container_directory_or_else_the_database() {
    let root = Root::new();
    ops_image(&root);
    root.ok(&["create", "ops", "c"]);
    let image_file = root.store().join("containers/c/image");
    let image = fs::read_to_string(&image_file).expect("create writes the image file");
    let id = root.images()[0]["id"]
        .as_str()
        .map(str::to_owned)
        .expect("image id");
    assert_eq!(image.trim(), id);
    drop(Mounted::mount(&root, "c"));
    // A container made before the file (or an rm cut short after removing it): the record.
    fs::remove_file(&image_file).expect("rm image file");
    let mnt = Mounted::mount(&root, "c");
    assert!(mnt.path("bin/tool").exists());
    drop(mnt);
    // An rm cut short after the record went: the directory alone is no container.
    root.ok(&["rm", "c"]);
    fs::create_dir_all(root.store().join("containers/c/upper")).expect("leftover dir");
    let err = root
        .snap(&["mount", "c", root.path().to_str().unwrap()])
        .fails();
    assert!(err.contains("no container named"), "{err}");
}

#[test]
fn rename_onto_a_name_that_prefixes_others_keeps_them_visible() {
    let root = Root::new();
    ops_image(&root);
    let mnt = Mounted::new(&root, "ops", "c");
    assert!(mnt.path("bin/tool").exists());
    fs::create_dir(mnt.path("x")).expect("mkdir");
    fs::rename(mnt.path("x"), mnt.path("b")).expect("rename");
    assert!(
        fs::metadata(mnt.path("bin/tool")).is_ok(),
        "/bin vanished after mv /x /b"
    );
    assert_eq!(
        fs::read_to_string(mnt.path("bin/tool")).expect("read"),
        "#!/bin/sh\necho tool\n"
    );
}

#[test]
fn new_files_keep_setuid_and_deleted_open_files_stay_deleted() {
    use std::os::unix::fs::OpenOptionsExt;
    let root = Root::new();
    ops_image(&root);
    let mnt = Mounted::new(&root, "ops", "c");
    let f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o4755)
        .open(mnt.path("srv/suid"))
        .expect("create");
    drop(f);
    assert_eq!(
        fs::metadata(mnt.path("srv/suid"))
            .expect("stat")
            .permissions()
            .mode()
            & 0o7777,
        0o4755
    );
    // An open lower file, deleted, then changed through its descriptor: the name stays gone.
    let held = fs::File::open(mnt.path("etc/config")).expect("open");
    fs::remove_file(mnt.path("etc/config")).expect("rm");
    let _ = held.set_permissions(fs::Permissions::from_mode(0o644));
    drop(held);
    drop(mnt);
    let again = Mounted::mount(&root, "c");
    assert!(
        !again.path("etc/config").exists(),
        "a deleted file came back"
    );
}

/// Modes of setuid/setgid files after a user other than root opened, wrote and truncated
/// them in the tree at `base` (files made by root first).
fn setid_after_user_writes(base: &Path) -> Vec<(&'static str, u32)> {
    fs::set_permissions(base.join("bin/suid"), fs::Permissions::from_mode(0o4777))
        .expect("chmod a lower file");
    let files = [
        ("srv/opened", 0o4777),
        ("srv/written", 0o4777),
        ("srv/sgid-exec", 0o2777),
        ("srv/sgid-no-exec", 0o2767),
        ("srv/sgid-no-exec-users-group", 0o2767),
        ("srv/truncated", 0o4777),
        ("srv/o-trunc", 0o4777),
        ("srv/held-open", 0o4777),
    ];
    for (name, mode) in files {
        fs::write(base.join(name), "data\n").expect("create");
        if name.ends_with("users-group") {
            std::os::unix::fs::chown(base.join(name), Some(0), Some(65534)).expect("chown");
        }
        fs::set_permissions(base.join(name), fs::Permissions::from_mode(mode)).expect("chmod");
    }
    let script = "exec 3>> srv/opened; exec 3>&-; \
                  printf x >> srv/written; printf x >> bin/suid; \
                  printf x >> srv/sgid-exec; printf x >> srv/sgid-no-exec; \
                  printf x >> srv/sgid-no-exec-users-group; \
                  truncate -s 1 srv/truncated; : > srv/o-trunc; \
                  printf x >> srv/held-open";
    // Open for reading (through passthrough on snapfs) while the user writes it.
    let held = fs::File::open(base.join("srv/held-open")).expect("open held-open");
    let status = Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "sh",
            "-ec",
            script,
        ])
        .current_dir(base)
        .status()
        .expect("setpriv");
    assert!(
        status.success(),
        "the user's writes failed in {}",
        base.display()
    );
    drop(held);
    ["bin/suid"]
        .into_iter()
        .chain(files.iter().map(|(name, _)| *name))
        .map(|name| {
            let mode = fs::symlink_metadata(base.join(name))
                .expect("stat")
                .permissions()
                .mode();
            (name, mode & 0o7777)
        })
        .collect()
}

#[test]
fn setid_bits_go_at_a_users_first_write_as_on_overlayfs() {
    let root = Root::new();
    ops_image(&root);
    let overlay = Overlay::new(&root.store(), "ops", &root.path().join("overlay"));
    let mnt = Mounted::new(&root, "ops", "c");
    let theirs = setid_after_user_writes(&overlay.dir);
    let ours = setid_after_user_writes(&mnt.dir);
    assert_eq!(ours, theirs, "snapfs, then overlayfs");
    assert_eq!(
        ours,
        [
            ("bin/suid", 0o777),
            ("srv/opened", 0o4777),
            ("srv/written", 0o777),
            ("srv/sgid-exec", 0o777),
            // Not group-executable: kept only for a writer in the file's group.
            ("srv/sgid-no-exec", 0o767),
            ("srv/sgid-no-exec-users-group", 0o2767),
            ("srv/truncated", 0o777),
            ("srv/o-trunc", 0o777),
            ("srv/held-open", 0o777),
        ]
    );
}

/// One worker's share of [`concurrent_changes_in_many_directories_match_kernel_overlayfs`]:
/// changes to lower files and new entries, confined to the directories `dirs` (so the end
/// state does not depend on how workers interleave), their copied-up parents shared.
fn change_directories(base: &Path, worker: usize, dirs: &[String]) -> std::io::Result<()> {
    for dir in dirs {
        let d = base.join(dir);
        let mut lower = single_link_files(&d);
        lower.sort();
        fs::write(d.join(format!("new-{worker}")), format!("{dir} {worker}\n"))?;
        fs::set_permissions(d.join(&lower[0]), fs::Permissions::from_mode(0o600))?;
        fs::rename(d.join(&lower[1]), d.join("renamed"))?;
        fs::remove_file(d.join(&lower[2]))?;
        fs::create_dir(d.join("sub"))?;
        fs::rename(d.join(format!("new-{worker}")), d.join("sub/moved"))?;
        fs::hard_link(d.join("sub/moved"), d.join("linked"))?;
        std::os::unix::fs::symlink("sub/moved", d.join("symlink"))?;
        fs::write(d.join("sub/gone"), "x")?;
        fs::remove_file(d.join("sub/gone"))?;
    }
    Ok(())
}

/// The files in `dir` with one name (a lower hardlink's copy-up changes its other names too,
/// which would make the end state depend on the order of workers).
fn single_link_files(dir: &Path) -> Vec<std::ffi::OsString> {
    use std::os::unix::fs::MetadataExt;
    fs::read_dir(dir)
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .filter(|e| e.metadata().is_ok_and(|m| m.is_file() && m.nlink() == 1))
        .map(|e| e.file_name())
        .collect()
}

/// Directories below `dir` (relative to `base`) with no subdirectory and three or more
/// files of one name.
fn leaf_dirs(base: &Path, dir: &Path, out: &mut Vec<String>) {
    let subdirs: Vec<_> = fs::read_dir(dir)
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| e.path())
        .collect();
    for sub in &subdirs {
        leaf_dirs(base, sub, out);
    }
    if subdirs.is_empty() && single_link_files(dir).len() >= 3 {
        let rel = dir.strip_prefix(base).expect("below the base");
        out.push(rel.to_string_lossy().into_owned());
    }
}

/// The worker that moves directories (which locks the whole namespace) while the others change
/// entries in theirs.
fn move_directories(base: &Path, dirs: &[String]) -> std::io::Result<()> {
    for (i, dir) in dirs.iter().enumerate() {
        let moved = format!("{dir}-moved");
        fs::rename(base.join(dir), base.join(&moved))?;
        fs::create_dir_all(base.join(format!("tmp/tree-{i}/a/b")))?;
        fs::write(base.join(format!("tmp/tree-{i}/a/b/f")), "tree")?;
        fs::rename(
            base.join(format!("tmp/tree-{i}")),
            base.join(&moved).join("tree"),
        )?;
        if i % 2 == 0 {
            fs::rename(base.join(&moved), base.join(dir))?;
        }
    }
    Ok(())
}

#[test]
fn concurrent_changes_in_many_directories_match_kernel_overlayfs() {
    let root = Root::new();
    root.import_test_image("python.docker.tar", "py");
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64
        - 1;
    let overlay = Overlay::new(&root.store(), "py", &root.path().join("overlay"));
    let mnt = Mounted::new(&root, "py", "c");
    // Leaf directories with three files or more. The workers start at once in siblings
    // below the parent with the most of them, whose ancestors nobody has copied up yet.
    let mut dirs = Vec::new();
    leaf_dirs(&overlay.dir, &overlay.dir, &mut dirs);
    dirs.sort();
    let parent = |d: &String| Path::new(d).parent().map(Path::to_path_buf);
    let busiest = dirs
        .iter()
        .filter_map(&parent)
        .max_by_key(|p| {
            dirs.iter()
                .filter(|d| parent(d).as_ref() == Some(p))
                .count()
        })
        .expect("leaf directories");
    let (mut order, others): (Vec<String>, Vec<String>) = dirs
        .into_iter()
        .partition(|d| parent(d).as_ref() == Some(&busiest));
    order.extend(others);
    const WORKERS: usize = 6;
    const EACH: usize = 4;
    assert!(
        order.len() >= WORKERS * EACH + 4,
        "only {} directories",
        order.len()
    );
    let shares: Vec<Vec<String>> = (0..WORKERS)
        .map(|w| {
            order
                .iter()
                .skip(w)
                .step_by(WORKERS)
                .take(EACH)
                .cloned()
                .collect()
        })
        .collect();
    let moved: Vec<String> = order.iter().rev().take(4).cloned().collect();

    // On overlayfs one after the other, on snapfs all at once.
    for (w, share) in shares.iter().enumerate() {
        change_directories(&overlay.dir, w, share).expect("changes on overlayfs");
    }
    move_directories(&overlay.dir, &moved).expect("moves on overlayfs");
    let base = mnt.dir.as_path();
    let start = &std::sync::Barrier::new(WORKERS + 1);
    std::thread::scope(|s| {
        let workers: Vec<_> = shares
            .iter()
            .enumerate()
            .map(|(w, share)| {
                s.spawn(move || {
                    start.wait();
                    change_directories(base, w, share)
                })
            })
            .collect();
        let mover = s.spawn(|| {
            start.wait();
            move_directories(base, &moved)
        });
        for (w, worker) in workers.into_iter().enumerate() {
            let result = worker.join().expect("worker panicked");
            assert!(result.is_ok(), "worker {w} on snapfs: {result:?}");
        }
        let result = mover.join().expect("mover panicked");
        assert!(result.is_ok(), "mover on snapfs: {result:?}");
    });
    compare("concurrent changes", &mnt.dir, &overlay.dir, since);
    drop(mnt);
    let mnt = Mounted::mount(&root, "c");
    compare("remount", &mnt.dir, &overlay.dir, since);
}

#[test]
fn reads_racing_renames_over_the_name_always_find_a_file() {
    let root = Root::new();
    ops_image(&root);
    let mnt = Mounted::new(&root, "ops", "c");
    let (new, name) = (mnt.path("srv/count.new"), mnt.path("srv/count"));
    fs::write(&name, "0").expect("first count");
    let done = std::sync::atomic::AtomicBool::new(false);
    let (reads, misses) = std::thread::scope(|s| {
        let reader = s.spawn(|| {
            let (mut reads, mut misses) = (0u32, Vec::new());
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                match fs::read_to_string(&name) {
                    Ok(_) => reads += 1,
                    Err(e) => misses.push(e.to_string()),
                }
            }
            (reads, misses)
        });
        // As a container's `echo $i > count.new; mv count.new count` loop does, flat out.
        for i in 0..3000 {
            fs::write(&new, i.to_string()).expect("write");
            fs::rename(&new, &name).expect("rename");
        }
        done.store(true, std::sync::atomic::Ordering::Relaxed);
        reader.join().expect("reader")
    });
    assert!(reads > 0);
    assert!(
        misses.is_empty(),
        "{} of {} reads failed: {:?}",
        misses.len(),
        reads + misses.len() as u32,
        &misses[..misses.len().min(3)]
    );
}

#[test]
fn an_open_file_unlinked_or_replaced_keeps_its_data_and_attributes() {
    use std::io::Read;
    use std::os::unix::fs::MetadataExt;
    let root = Root::new();
    ops_image(&root);
    let mnt = Mounted::new(&root, "ops", "c");
    let check = |mut f: fs::File, body: &str| {
        let meta = f.metadata().expect("fstat of the unlinked file");
        assert_eq!((meta.len(), meta.nlink()), (body.len() as u64, 0));
        let mut text = String::new();
        f.read_to_string(&mut text).expect("read");
        assert_eq!(text, body);
    };
    fs::write(mnt.path("srv/log"), "first").expect("write");
    let log = fs::File::open(mnt.path("srv/log")).expect("open");
    fs::remove_file(mnt.path("srv/log")).expect("rm");
    check(log, "first");
    fs::write(mnt.path("srv/a"), "old").expect("write");
    let old = fs::File::open(mnt.path("srv/a")).expect("open");
    fs::write(mnt.path("srv/b"), "newer").expect("write");
    fs::rename(mnt.path("srv/b"), mnt.path("srv/a")).expect("rename over");
    check(old, "old");
    assert_eq!(
        fs::read_to_string(mnt.path("srv/a")).expect("read"),
        "newer"
    );
}
