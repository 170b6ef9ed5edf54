//! The test harness: a temporary store root per test, a runner for the built `snap`, the
//! real test images, OCI layouts built in code, and tree dumps with readable diffs.

use sha2::{Digest as _, Sha256};
use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

/// The `snap` binary the tests run: the one cargo built, or `SNAPFS_TEST_SNAP` (to run a test
/// against another build, e.g. to see a regression test fail on the code before its fix).
pub fn snap_binary() -> PathBuf {
    std::env::var_os("SNAPFS_TEST_SNAP")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_snap")))
}

/// A store root that lives as long as the test.
pub struct Root {
    pub dir: tempfile::TempDir,
}

impl Root {
    pub fn new() -> Self {
        let base = std::env::var_os("SNAPFS_TEST_TMP")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("/var/tmp"));
        Root {
            dir: tempfile::Builder::new()
                .prefix("snapfs-test-")
                .tempdir_in(base)
                .expect("temp dir"),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The store root itself (a subdirectory, so tests can put fixtures beside it).
    pub fn store(&self) -> PathBuf {
        self.dir.path().join("store")
    }

    /// Runs `snap` on this root.
    pub fn snap(&self, args: &[&str]) -> Run {
        let output = Command::new(snap_binary())
            .args(args)
            .env("SNAPFS_ROOT", self.store())
            .env("RUST_LOG", "warn")
            .output()
            .expect("run snap");
        Run {
            args: args.join(" "),
            output,
        }
    }

    /// Runs `snap` and samples its peak resident memory (`VmHWM`, in bytes) while it runs:
    /// the highest value read, so a lower bound of the true peak, within 20 ms of its end.
    pub fn snap_peak(&self, args: &[&str]) -> (Run, u64) {
        let child = Command::new(snap_binary())
            .args(args)
            .env("SNAPFS_ROOT", self.store())
            .env("RUST_LOG", "warn")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("run snap");
        let status = format!("/proc/{}/status", child.id());
        let waiting = std::thread::spawn(move || child.wait_with_output());
        let mut peak_kib = 0u64;
        while !waiting.is_finished() {
            let hwm = std::fs::read_to_string(&status).ok().and_then(|text| {
                let line = text.lines().find(|l| l.starts_with("VmHWM:"))?;
                line.split_whitespace().nth(1)?.parse::<u64>().ok()
            });
            peak_kib = peak_kib.max(hwm.unwrap_or(0));
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let output = waiting.join().expect("waiter").expect("wait for snap");
        let run = Run {
            args: args.join(" "),
            output,
        };
        (run, peak_kib * 1024)
    }

    /// Runs `snap` and requires success.
    pub fn ok(&self, args: &[&str]) -> String {
        self.snap(args).ok()
    }

    /// Imports `file` of the test images (`tools/make-test-images`) as `name`.
    pub fn import_test_image(&self, file: &str, name: &str) {
        let source = test_images().join(file);
        self.ok(&[
            "import",
            source.to_str().expect("utf-8 path"),
            "--name",
            name,
        ]);
    }

    /// `snap images --json`, parsed.
    pub fn images(&self) -> serde_json::Value {
        serde_json::from_str(&self.ok(&["images", "--json"])).expect("images json")
    }

    /// Requires `snap fsck` to find no problem; returns its JSON report.
    pub fn fsck_clean(&self) -> serde_json::Value {
        let run = self.snap(&["fsck", "--json"]);
        let report: serde_json::Value = serde_json::from_str(&run.stdout()).expect("fsck json");
        assert!(
            run.output.status.success(),
            "fsck found problems: {report:#}\n{}",
            run.stderr()
        );
        assert_eq!(
            report["problems"].as_array().map(Vec::len),
            Some(0),
            "{report:#}"
        );
        report
    }
}

pub struct Run {
    pub args: String,
    pub output: Output,
}

impl Run {
    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.output.stdout).into_owned()
    }
    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.output.stderr).into_owned()
    }
    pub fn ok(self) -> String {
        assert!(
            self.output.status.success(),
            "snap {} failed:\n{}\n{}",
            self.args,
            self.stdout(),
            self.stderr()
        );
        self.stdout()
    }
    /// Requires failure and returns stderr.
    pub fn fails(self) -> String {
        assert!(
            !self.output.status.success(),
            "snap {} should have failed:\n{}",
            self.args,
            self.stdout()
        );
        self.stderr()
    }
}

/// The directory made by `tools/make-test-images` (built on first use; it is cached per machine).
pub fn test_images() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tools/make-test-images");
        let output = Command::new(&script)
            .output()
            .expect("run tools/make-test-images");
        assert!(
            output.status.success(),
            "tools/make-test-images failed:\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let stdout = String::from_utf8_lossy(&output.stdout);
        PathBuf::from(
            stdout
                .lines()
                .last()
                .expect("make-test-images prints its output dir")
                .trim(),
        )
    })
}

/// One path of a tree, as compared between snapfs and other tools.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub kind: &'static str,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub size: u64,
    pub content: Option<String>,
    pub target: Option<Vec<u8>>,
    pub rdev: Option<(u32, u32)>,
    pub xattrs: Vec<(Vec<u8>, Vec<u8>)>,
    pub mtime: (i64, u32),
    /// The first path (in sorted order) of the node's hardlink group, if it has several names.
    pub link_group: Option<String>,
}

pub type Tree = BTreeMap<String, Node>;

fn sha256_file(path: &Path) -> String {
    hex::encode(Sha256::digest(std::fs::read(path).expect("read file")))
}

/// Assigns each hardlink group the first of its paths.
fn group_links(tree: &mut Tree, keys: BTreeMap<String, u64>) {
    let mut first: BTreeMap<u64, String> = BTreeMap::new();
    for (path, key) in &keys {
        first.entry(*key).or_insert_with(|| path.clone());
    }
    let mut counts: BTreeMap<u64, usize> = BTreeMap::new();
    for key in keys.values() {
        *counts.entry(*key).or_default() += 1;
    }
    for (path, key) in keys {
        if counts[&key] > 1 {
            if let Some(node) = tree.get_mut(&path) {
                node.link_group = Some(first[&key].clone());
            }
        }
    }
}

/// Dumps a directory tree (not following symlinks). The root is the path "".
pub fn dump_dir(root: &Path) -> Tree {
    let mut tree = Tree::new();
    let mut inodes = BTreeMap::new();
    for item in walkdir::WalkDir::new(root).sort_by_file_name() {
        let item = item.expect("walk");
        let path = item.path();
        let rel = path
            .strip_prefix(root)
            .expect("under root")
            .to_string_lossy()
            .into_owned();
        let meta = std::fs::symlink_metadata(path).expect("stat");
        let ft = meta.file_type();
        let kind = if ft.is_dir() {
            "dir"
        } else if ft.is_file() {
            "file"
        } else if ft.is_symlink() {
            "symlink"
        } else if ft.is_char_device() {
            "char"
        } else if ft.is_block_device() {
            "block"
        } else if ft.is_fifo() {
            "fifo"
        } else {
            "socket"
        };
        if ft.is_file() {
            inodes.insert(rel.clone(), meta.ino());
        }
        let rdev = (ft.is_char_device() || ft.is_block_device()).then(|| {
            (
                rustix::fs::major(meta.rdev()),
                rustix::fs::minor(meta.rdev()),
            )
        });
        tree.insert(
            rel,
            Node {
                kind,
                mode: meta.mode() & 0o7777,
                uid: meta.uid(),
                gid: meta.gid(),
                size: if ft.is_file() || ft.is_symlink() {
                    meta.len()
                } else {
                    0
                },
                content: ft.is_file().then(|| sha256_file(path)),
                target: ft.is_symlink().then(|| {
                    std::fs::read_link(path)
                        .expect("readlink")
                        .into_os_string()
                        .into_encoded_bytes()
                }),
                rdev,
                xattrs: snapfs::sys::xattrs(path).expect("xattrs"),
                mtime: (meta.mtime(), meta.mtime_nsec() as u32),
                link_group: None,
            },
        );
    }
    group_links(&mut tree, inodes);
    tree
}

/// Dumps the flattened index of an image in a store.
pub fn dump_index(store_root: &Path, image_id: &str) -> Tree {
    use snapfs::index::NodeKind;
    let store = snapfs::store::Store::open(store_root).expect("open store");
    let id = snapfs::model::ImageId(image_id.parse().expect("image id"));
    let index = store.open_index(&id).expect("open index");
    let mut tree = Tree::new();
    let mut inodes = BTreeMap::new();
    index.walk(|path, ino| {
        let inode = index.inode(ino).expect("inode");
        let rel = String::from_utf8_lossy(path).into_owned();
        let (kind, content, target, rdev) = match &inode.kind {
            NodeKind::Dir { .. } => ("dir", None, None, None),
            NodeKind::File { digest, .. } => ("file", Some(digest.hex()), None, None),
            NodeKind::Symlink { target } => ("symlink", None, Some(target.to_vec()), None),
            NodeKind::CharDevice { major, minor } => ("char", None, None, Some((*major, *minor))),
            NodeKind::BlockDevice { major, minor } => ("block", None, None, Some((*major, *minor))),
            NodeKind::Fifo => ("fifo", None, None, None),
        };
        if kind == "file" {
            inodes.insert(rel.clone(), ino.0);
        }
        let xattrs = index
            .xattrs(&inode)
            .expect("xattrs")
            .into_iter()
            .map(|x| (x.name, x.value))
            .collect();
        tree.insert(
            rel,
            Node {
                kind,
                mode: inode.mode,
                uid: inode.uid,
                gid: inode.gid,
                size: inode.size(),
                content,
                target,
                rdev,
                xattrs,
                mtime: (inode.mtime_sec, inode.mtime_nsec),
                link_group: None,
            },
        );
    });
    group_links(&mut tree, inodes);
    tree
}

/// A readable list of the differences between two trees (empty when equal).
pub fn diff(left_name: &str, left: &Tree, right_name: &str, right: &Tree) -> Vec<String> {
    let mut out = Vec::new();
    for (path, l) in left {
        match right.get(path) {
            None => out.push(format!("/{path}: only in {left_name} ({})", l.kind)),
            Some(r) if r != l => out.push(format!(
                "/{path}:\n    {left_name}: {l:?}\n    {right_name}: {r:?}"
            )),
            Some(_) => {}
        }
    }
    for (path, r) in right {
        if !left.contains_key(path) {
            out.push(format!("/{path}: only in {right_name} ({})", r.kind));
        }
    }
    out
}

/// Builds OCI layouts in test code, with knobs to make them wrong.
pub struct Layout {
    pub layers: Vec<Vec<u8>>,
    /// "gzip", "zstd" or "none".
    pub compress: &'static str,
    /// Replace the config's diff_id of layer i with this digest string.
    pub wrong_diff_id: Option<(usize, String)>,
    /// Replace the manifest's digest of layer i with this digest string.
    pub wrong_blob_digest: Option<(usize, String)>,
    /// Give layer i this media type.
    pub media_type: Option<(usize, String)>,
    /// Do not write layer i's blob.
    pub missing_blob: Option<usize>,
    /// Cut layer i's blob to this many bytes (after computing its digest).
    pub truncate_blob: Option<(usize, usize)>,
    pub platform: Option<(&'static str, &'static str)>,
    pub ref_name: String,
}

impl Layout {
    pub fn new(layers: Vec<Vec<u8>>) -> Self {
        Layout {
            layers,
            compress: "gzip",
            wrong_diff_id: None,
            wrong_blob_digest: None,
            media_type: None,
            missing_blob: None,
            truncate_blob: None,
            platform: None,
            ref_name: "test".into(),
        }
    }

    fn digest(bytes: &[u8]) -> String {
        format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
    }

    fn put_blob(dir: &Path, bytes: &[u8]) -> String {
        let digest = Self::digest(bytes);
        let path = dir.join("blobs/sha256").join(&digest[7..]);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(path, bytes).expect("write blob");
        digest
    }

    /// Writes the layout under `dir` (created) and returns the manifest descriptor JSON.
    pub fn write_manifest(&self, dir: &Path) -> serde_json::Value {
        std::fs::create_dir_all(dir.join("blobs/sha256")).expect("mkdir");
        std::fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#)
            .expect("oci-layout");
        let mut diff_ids = Vec::new();
        let mut descriptors = Vec::new();
        for (i, tar) in self.layers.iter().enumerate() {
            diff_ids.push(match &self.wrong_diff_id {
                Some((n, d)) if *n == i => d.clone(),
                _ => Self::digest(tar),
            });
            let blob = match self.compress {
                "gzip" => {
                    let mut enc =
                        flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
                    enc.write_all(tar).expect("gzip");
                    enc.finish().expect("gzip")
                }
                "zstd" => zstd::encode_all(&tar[..], 3).expect("zstd"),
                _ => tar.clone(),
            };
            let mut digest = Self::digest(&blob);
            let stored = match self.truncate_blob {
                Some((n, len)) if n == i => blob[..len.min(blob.len())].to_vec(),
                _ => blob.clone(),
            };
            if self.missing_blob != Some(i) {
                let path = dir.join("blobs/sha256").join(&digest[7..]);
                std::fs::write(path, &stored).expect("write layer");
            }
            if let Some((n, d)) = &self.wrong_blob_digest
                && *n == i
            {
                digest = d.clone();
            }
            let media_type = match &self.media_type {
                Some((n, m)) if *n == i => m.clone(),
                _ => match self.compress {
                    "gzip" => "application/vnd.oci.image.layer.v1.tar+gzip".into(),
                    "zstd" => "application/vnd.oci.image.layer.v1.tar+zstd".into(),
                    _ => "application/vnd.oci.image.layer.v1.tar".into(),
                },
            };
            descriptors.push(
                serde_json::json!({"mediaType": media_type, "digest": digest, "size": blob.len()}),
            );
        }
        let (os, arch) = self.platform.unwrap_or(("linux", "amd64"));
        let config = serde_json::json!({
            "architecture": arch, "os": os, "created": "2026-01-01T00:00:00Z",
            "config": {"Cmd": ["/bin/sh"]},
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
            "history": [{"created": "2026-01-01T00:00:00Z", "created_by": "test"}],
        });
        let config_bytes = serde_json::to_vec(&config).expect("config");
        let config_digest = Self::put_blob(dir, &config_bytes);
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": config_bytes.len()},
            "layers": descriptors,
        });
        let manifest_bytes = serde_json::to_vec(&manifest).expect("manifest");
        let manifest_digest = Self::put_blob(dir, &manifest_bytes);
        let mut descriptor = serde_json::json!({
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": manifest_digest, "size": manifest_bytes.len(),
            "annotations": {"org.opencontainers.image.ref.name": self.ref_name},
        });
        if let Some((os, arch)) = self.platform {
            descriptor["platform"] = serde_json::json!({"os": os, "architecture": arch});
        }
        descriptor
    }

    /// Writes a complete layout with one image under `dir`.
    pub fn write(&self, dir: &Path) -> PathBuf {
        let descriptor = self.write_manifest(dir);
        write_index(dir, vec![descriptor]);
        dir.to_path_buf()
    }
}

/// Writes `index.json` listing `manifests`.
pub fn write_index(dir: &Path, manifests: Vec<serde_json::Value>) {
    let index = serde_json::json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": manifests});
    std::fs::write(
        dir.join("index.json"),
        serde_json::to_vec(&index).expect("index"),
    )
    .expect("write index");
}

/// Tars a directory (for OCI archives built in tests).
pub fn tar_dir(dir: &Path, out: &Path) {
    let file = std::fs::File::create(out).expect("create tar");
    let mut b = tar::Builder::new(file);
    b.append_dir_all(".", dir).expect("tar dir");
    b.finish().expect("finish tar");
}

/// A header for test tars.
pub fn header(kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_size(size);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(1_700_000_000);
    h
}

/// A layer tar with a few ordinary files, `tag` making contents distinct.
pub fn small_layer(tag: &str) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    b.append_data(
        &mut header(tar::EntryType::Directory, 0o755, 0),
        "etc/",
        &[][..],
    )
    .expect("dir");
    let body = format!("hello {tag}\n");
    b.append_data(
        &mut header(tar::EntryType::Regular, 0o644, body.len() as u64),
        "etc/hello",
        body.as_bytes(),
    )
    .expect("file");
    b.append_data(
        &mut header(tar::EntryType::Regular, 0o644, 6),
        "etc/same",
        &b"same!\n"[..],
    )
    .expect("file");
    b.into_inner().expect("tar")
}

/// One entry of [`raw_entry_tar`]: raw name, type, raw link name, body.
pub type RawEntry<'a> = (&'a [u8], tar::EntryType, Option<&'a [u8]>, &'a [u8]);

/// A tar whose entries have raw names (and link names) written byte for byte.
pub fn raw_entry_tar(entries: &[RawEntry<'_>]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, kind, link, body) in entries {
        let mut h = header(*kind, 0o644, body.len() as u64);
        h.as_old_mut().name[..name.len()].copy_from_slice(name);
        if let Some(link) = link {
            h.as_old_mut().linkname[..link.len()].copy_from_slice(link);
        }
        h.set_cksum();
        b.append(&h, *body).expect("append");
    }
    b.into_inner().expect("tar")
}

/// A mounted container, unmounted when dropped (also on panic).
pub struct Mounted<'a> {
    pub root: &'a Root,
    pub name: String,
    pub dir: PathBuf,
}

impl<'a> Mounted<'a> {
    /// Creates container `name` from `image` and mounts it under the test's directory.
    pub fn new(root: &'a Root, image: &str, name: &str) -> Self {
        root.ok(&["create", image, name]);
        Self::mount(root, name)
    }

    /// Mounts an existing container.
    pub fn mount(root: &'a Root, name: &str) -> Self {
        let dir = root.path().join(format!("mnt-{name}"));
        std::fs::create_dir_all(&dir).expect("mountpoint");
        root.ok(&["mount", name, dir.to_str().expect("utf-8")]);
        Mounted {
            root,
            name: name.to_string(),
            dir,
        }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.join(rel)
    }
}

impl Drop for Mounted<'_> {
    fn drop(&mut self) {
        let run = self.root.snap(&["umount", &self.name]);
        if !run.output.status.success() && snapfs::sys::is_mount_point(&self.dir) {
            let _ = snapfs::sys::unmount(&self.dir);
        }
    }
}

/// A kernel overlayfs mount of the layers of an image in a store, with its own upper dir,
/// unmounted when dropped: the reference the union semantics are compared against.
pub struct Overlay {
    pub dir: PathBuf,
    pub upper: PathBuf,
    base: PathBuf,
}

impl Overlay {
    /// Writes each layer of `image` as an overlayfs lower dir (`snap lowerdirs`) and mounts
    /// them under `base`.
    pub fn new(store_root: &Path, image: &str, base: &Path) -> Self {
        let store = snapfs::store::Store::open(store_root).expect("store");
        let lowers =
            snapfs::image::lowerdirs(&store, image, &base.join("layers"), &snapfs::image::Silent)
                .expect("lowerdirs");
        let upper = base.join("upper");
        let work = base.join("work");
        let dir = base.join("merged");
        for d in [&upper, &work, &dir] {
            std::fs::create_dir_all(d).expect("overlay dirs");
        }
        let lowerdir: Vec<String> = lowers.iter().map(|p| p.display().to_string()).collect();
        let options = format!(
            "lowerdir={},upperdir={},workdir={},index=on,redirect_dir=on",
            lowerdir.join(":"),
            upper.display(),
            work.display()
        );
        let status = Command::new("mount")
            .args(["-t", "overlay", "overlay", "-o", &options])
            .arg(&dir)
            .status()
            .expect("mount overlay");
        assert!(status.success(), "mount -t overlay failed");
        Overlay {
            dir,
            upper,
            base: base.to_path_buf(),
        }
    }

    /// Unmounts and mounts again on the same dirs.
    pub fn remount(&self) {
        let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
        let line = mountinfo
            .lines()
            .find(|l| l.split(' ').nth(4) == Some(self.dir.to_str().expect("utf-8")))
            .expect("overlay mounted");
        let super_options = line.rsplit(' ').next().expect("options").to_string();
        let lowerdir = super_options
            .split(',')
            .find(|o| o.starts_with("lowerdir="))
            .expect("lowerdir")
            .to_string();
        snapfs::sys::unmount(&self.dir).expect("umount overlay");
        let options = format!(
            "{lowerdir},upperdir={},workdir={},index=on,redirect_dir=on",
            self.upper.display(),
            self.base.join("work").display()
        );
        let status = Command::new("mount")
            .args(["-t", "overlay", "overlay", "-o", &options])
            .arg(&self.dir)
            .status()
            .expect("mount overlay");
        assert!(status.success(), "remount of overlay failed");
    }
}

impl Drop for Overlay {
    fn drop(&mut self) {
        let _ = snapfs::sys::unmount(&self.dir);
    }
}
