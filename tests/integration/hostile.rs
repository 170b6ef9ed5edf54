//! Bad input: each archive is built here, must be refused with an error naming what is
//! wrong, and must leave the store as it was (`snap images` unchanged, `snap fsck` clean).

use crate::util::{
    Layout, Root, dump_index, header, raw_entry_tar, small_layer, tar_dir, write_index,
};
use sha2::{Digest as _, Sha256};
use std::io::Write;
use std::path::Path;
use tar::EntryType;

/// A root holding one good image, and the `snap images` output to compare against.
fn root_with_an_image() -> (Root, serde_json::Value) {
    let root = Root::new();
    let good = Layout::new(vec![small_layer("good")]).write(&root.path().join("good"));
    root.ok(&["import", good.to_str().unwrap(), "--name", "good"]);
    let images = root.images();
    (root, images)
}

/// Imports `layout`, requires a refusal mentioning each of `expected`, and an unchanged store.
fn refused(layout: Layout, expected: &[&str]) {
    let (root, before) = root_with_an_image();
    let dir = layout.write(&root.path().join("bad"));
    let err = root
        .snap(&["import", dir.to_str().unwrap(), "--name", "bad"])
        .fails();
    for text in expected {
        assert!(err.contains(text), "error should mention {text:?}:\n{err}");
    }
    assert_eq!(
        root.images(),
        before,
        "a refused import changed the image list"
    );
    root.fsck_clean();
    // the good image is intact, and gc leaves a clean store
    root.ok(&["inspect", "good"]);
    root.ok(&["gc"]);
    let report = root.fsck_clean();
    assert_eq!(report["unreferenced_objects"], 0);
}

#[test]
fn entry_with_dotdot_is_refused() {
    let tar = raw_entry_tar(&[(b"../../etc/evil", EntryType::Regular, None, b"x")]);
    refused(Layout::new(vec![tar]), &["layer 0", "../../etc/evil", ".."]);
}

#[test]
fn absolute_entry_is_refused() {
    let tar = raw_entry_tar(&[(b"/etc/passwd", EntryType::Regular, None, b"x")]);
    refused(Layout::new(vec![tar]), &["/etc/passwd", "absolute"]);
}

#[test]
fn entry_through_a_symlink_is_refused() {
    let link = raw_entry_tar(&[(b"etc", EntryType::Symlink, Some(b"/host/etc"), b"")]);
    let file = raw_entry_tar(&[(b"etc/passwd", EntryType::Regular, None, b"root::0:0")]);
    refused(
        Layout::new(vec![link, file]),
        &["/etc/passwd", "symlink", "/etc"],
    );
}

#[test]
fn symlink_in_the_same_layer_cannot_be_walked_through() {
    let tar = raw_entry_tar(&[
        (b"x", EntryType::Symlink, Some(b"../../.."), b""),
        (b"x/escape", EntryType::Regular, None, b"!"),
    ]);
    refused(Layout::new(vec![tar]), &["/x/escape", "symlink"]);
}

#[test]
fn hardlink_outside_the_layer_is_refused() {
    let tar = raw_entry_tar(&[(b"shadow", EntryType::Link, Some(b"../../etc/shadow"), b"")]);
    refused(
        Layout::new(vec![tar]),
        &["/shadow", "hardlink", "../../etc/shadow"],
    );
}

#[test]
fn hardlink_to_a_later_entry_is_refused() {
    let tar = raw_entry_tar(&[
        (b"a", EntryType::Link, Some(b"b"), b""),
        (b"b", EntryType::Regular, None, b"x"),
    ]);
    refused(Layout::new(vec![tar]), &["/a", "hardlink"]);
}

#[test]
fn truncated_layer_blob_is_refused() {
    let mut big = tar::Builder::new(Vec::new());
    let body = vec![42u8; 200_000];
    big.append_data(
        &mut header(EntryType::Regular, 0o644, body.len() as u64),
        "big",
        &body[..],
    )
    .expect("append");
    let mut layout = Layout::new(vec![big.into_inner().expect("tar")]);
    layout.truncate_blob = Some((0, 100));
    refused(layout, &["layer 0"]);
}

#[test]
fn truncated_uncompressed_layer_is_refused() {
    let tar = small_layer("cut");
    let cut = tar[..700].to_vec();
    let mut layout = Layout::new(vec![cut]);
    layout.compress = "none";
    refused(layout, &["layer 0"]);
}

#[test]
fn corrupt_gzip_is_refused() {
    let mut layout = Layout::new(vec![small_layer("corrupt")]);
    // Keep the gzip magic but garble the rest: the blob digest the manifest names still
    // matches, so the decompressor is what refuses it.
    layout.compress = "none";
    let mut garbage = vec![0x1f, 0x8b, 0x08, 0x00];
    garbage.extend(std::iter::repeat_n(0xAB, 600));
    layout.layers = vec![garbage];
    refused(layout, &["layer 0"]);
}

#[test]
fn blob_digest_mismatch_is_refused() {
    let mut layout = Layout::new(vec![small_layer("digest")]);
    layout.wrong_blob_digest = Some((0, format!("sha256:{}", "ab".repeat(32))));
    // the blob is stored under its real digest, so under the claimed one it is missing
    refused(layout, &["missing", "abababab"]);
}

#[test]
fn blob_content_not_matching_its_name_is_refused() {
    let (root, before) = root_with_an_image();
    let dir = Layout::new(vec![small_layer("swap")]).write(&root.path().join("bad"));
    // overwrite the layer blob (the largest blob) with another valid gzip layer
    let blobs = dir.join("blobs/sha256");
    let manifest_layer = std::fs::read_dir(&blobs)
        .expect("blobs")
        .map(|e| e.expect("entry").path())
        .find(|p| {
            std::fs::read(p)
                .map(|b| b.starts_with(&[0x1f, 0x8b]))
                .unwrap_or(false)
        })
        .expect("a gzip blob");
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut enc, &small_layer("other")).expect("gzip");
    std::fs::write(&manifest_layer, enc.finish().expect("gzip")).expect("write");
    let err = root.snap(&["import", dir.to_str().unwrap()]).fails();
    assert!(
        err.contains("digest mismatch") && err.contains("layer 0"),
        "{err}"
    );
    assert_eq!(root.images(), before);
    root.fsck_clean();
}

#[test]
fn diff_id_mismatch_is_refused() {
    let mut layout = Layout::new(vec![small_layer("diffid")]);
    layout.wrong_diff_id = Some((0, format!("sha256:{}", "cd".repeat(32))));
    refused(layout, &["diff_id mismatch", "cdcdcdcd"]);
}

#[test]
fn missing_blob_is_refused() {
    let mut layout = Layout::new(vec![small_layer("a"), small_layer("b")]);
    layout.missing_blob = Some(1);
    refused(layout, &["missing", "layer 1"]);
}

#[test]
fn unknown_media_type_is_refused() {
    let mut layout = Layout::new(vec![small_layer("media")]);
    layout.media_type = Some((0, "application/x-surprise".into()));
    refused(layout, &["unknown media type", "application/x-surprise"]);
}

#[test]
fn garbage_file_and_empty_layout_are_refused() {
    let (root, before) = root_with_an_image();
    let junk = root.path().join("junk.bin");
    std::fs::write(&junk, vec![0x5a; 3000]).expect("write");
    let err = root.snap(&["import", junk.to_str().unwrap()]).fails();
    assert!(err.contains("junk.bin"), "{err}");
    let empty = root.path().join("empty");
    std::fs::create_dir_all(&empty).expect("mkdir");
    crate::util::write_index(&empty, vec![]);
    let err = root.snap(&["import", empty.to_str().unwrap()]).fails();
    assert!(err.contains("holds no image"), "{err}");
    let err = root
        .snap(&["import", root.path().join("nowhere").to_str().unwrap()])
        .fails();
    assert!(err.contains("nowhere"), "{err}");
    assert_eq!(root.images(), before);
    root.fsck_clean();
}

#[test]
fn corrupt_archive_is_refused() {
    let (root, before) = root_with_an_image();
    let dir = Layout::new(vec![small_layer("archive")]).write(&root.path().join("arch"));
    let archive = root.path().join("arch.tar");
    tar_dir(&dir, &archive);
    let bytes = std::fs::read(&archive).expect("read");
    let cut = root.path().join("cut.tar");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).expect("write");
    let err = root.snap(&["import", cut.to_str().unwrap()]).fails();
    assert!(err.contains("cut.tar"), "{err}");
    assert_eq!(root.images(), before);
    root.fsck_clean();
}

#[test]
fn devices_fifos_and_setuid_files_are_kept() {
    let root = Root::new();
    let mut b = tar::Builder::new(Vec::new());
    let mut dev = header(EntryType::Char, 0o666, 0);
    dev.set_device_major(1).expect("major");
    dev.set_device_minor(3).expect("minor");
    b.append_data(&mut dev, "dev/null", &[][..]).expect("dev");
    b.append_data(&mut header(EntryType::Fifo, 0o600, 0), "run/fifo", &[][..])
        .expect("fifo");
    b.append_data(
        &mut header(EntryType::Regular, 0o4755, 2),
        "bin/su",
        &b"su"[..],
    )
    .expect("suid");
    let dir = Layout::new(vec![b.into_inner().expect("tar")]).write(&root.path().join("devs"));
    let out: serde_json::Value =
        serde_json::from_str(&root.ok(&["import", dir.to_str().unwrap(), "--json"])).expect("json");
    let tree = crate::util::dump_index(&root.store(), out["id"].as_str().expect("id"));
    assert_eq!(tree["dev/null"].rdev, Some((1, 3)));
    assert_eq!(tree["run/fifo"].kind, "fifo");
    assert_eq!(tree["bin/su"].mode, 0o4755);
}

/// PAX records: key, value.
type Pax<'a> = [(&'a str, &'a [u8])];

/// A tar of one entry `name` preceded by the PAX records `pax`.
fn pax_tar(pax: &Pax<'_>, kind: EntryType, name: &str, body: &[u8]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    b.append_pax_extensions(pax.iter().copied()).expect("pax");
    b.append_data(&mut header(kind, 0o644, body.len() as u64), name, body)
        .expect("entry");
    b.into_inner().expect("tar")
}

fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// Writes `bytes` as a blob of the layout at `dir`; returns its descriptor fields.
fn put_blob(dir: &Path, bytes: &[u8]) -> (String, usize) {
    let digest = sha256(bytes);
    std::fs::write(dir.join("blobs/sha256").join(&digest[7..]), bytes).expect("write blob");
    (digest, bytes.len())
}

fn read_json(path: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(path).expect("read json")).expect("json")
}

/// Edits the manifest of the one image of the layout at `dir` (its blob and its descriptor
/// in `index.json` follow).
fn edit_manifest(dir: &Path, edit: impl FnOnce(&mut serde_json::Value)) {
    let mut index = read_json(&dir.join("index.json"));
    let digest = index["manifests"][0]["digest"]
        .as_str()
        .expect("digest")
        .to_string();
    let mut manifest = read_json(&dir.join("blobs/sha256").join(&digest[7..]));
    edit(&mut manifest);
    let (digest, size) = put_blob(dir, &serde_json::to_vec(&manifest).expect("manifest"));
    index["manifests"][0]["digest"] = digest.into();
    index["manifests"][0]["size"] = size.into();
    std::fs::write(
        dir.join("index.json"),
        serde_json::to_vec(&index).expect("index"),
    )
    .expect("write index");
}

/// Imports `dir` (any source) into a root holding one good image: requires a refusal that
/// mentions each of `expected` and an unchanged store; returns the error.
fn refused_source(
    root: &Root,
    before: &serde_json::Value,
    dir: &Path,
    expected: &[&str],
) -> String {
    let err = root.snap(&["import", dir.to_str().unwrap()]).fails();
    for text in expected {
        assert!(err.contains(text), "error should mention {text:?}:\n{err}");
    }
    assert_eq!(
        &root.images(),
        before,
        "a refused import changed the image list"
    );
    root.fsck_clean();
    err
}

#[test]
fn overlay_private_xattrs_from_an_image_are_stripped() {
    let root = Root::new();
    let tar = pax_tar(
        &[
            ("SCHILY.xattr.trusted.overlay.opaque", b"y"),
            ("SCHILY.xattr.trusted.overlay.redirect", b"/etc"),
            ("SCHILY.xattr.user.overlay.origin", b"\x00\x01"),
            ("SCHILY.xattr.user.kept", b"v"),
            // Of no namespace a filesystem stores: copy-up could never set it, and nothing
            // in the directory could ever change.
            ("SCHILY.xattr.TRUSTED.overlay.opaque", b"y"),
            ("SCHILY.xattr.user.", b"x"),
        ],
        EntryType::Directory,
        "etc/",
        b"",
    );
    let dir = Layout::new(vec![tar]).write(&root.path().join("overlay"));
    let out: serde_json::Value =
        serde_json::from_str(&root.ok(&["import", dir.to_str().unwrap(), "--json"])).expect("json");
    let tree = dump_index(&root.store(), out["id"].as_str().expect("id"));
    assert_eq!(
        tree["etc"].xattrs,
        vec![(b"user.kept".to_vec(), b"v".to_vec())],
        "only the image's own xattr is left on /etc"
    );
    root.fsck_clean();
}

#[test]
fn data_after_the_tars_end_is_refused_in_bounded_memory() {
    let (root, before) = root_with_an_image();
    // A tiny tar, then 1 GiB of zeros after its end-of-archive marker: about 1 MB gzipped.
    let bomb = root.path().join("bomb.tar.gz");
    let file = std::fs::File::create(&bomb).expect("create");
    let mut gz = flate2::write::GzEncoder::new(
        std::io::BufWriter::new(file),
        flate2::Compression::default(),
    );
    gz.write_all(&small_layer("bomb")).expect("gzip");
    let zeros = vec![0u8; 1 << 20];
    for _ in 0..1024 {
        gz.write_all(&zeros).expect("gzip");
    }
    gz.finish().expect("gzip").flush().expect("flush");
    let size = std::fs::metadata(&bomb).expect("stat").len();
    assert!(size < 4 << 20, "the bomb is small: {size} bytes");
    let (run, peak) = root.snap_peak(&["import", bomb.to_str().unwrap(), "--name", "bomb"]);
    let err = run.fails();
    assert!(
        err.contains("layer 0") && err.contains("after the tar's end-of-archive marker"),
        "{err}"
    );
    assert!(peak < 200 << 20, "import peaked at {} MiB", peak >> 20);
    assert_eq!(root.images(), before);
    let (run, peak) = root.snap_peak(&["fsck"]);
    run.ok();
    assert!(peak < 200 << 20, "fsck peaked at {} MiB", peak >> 20);
    root.fsck_clean();
}

#[test]
fn many_entries_with_large_pax_records_are_refused() {
    // Each entry's records stay under the bound for one entry; together they pass the bound
    // for the layer (32 MiB and 2 KiB an entry) long before 40 MiB.
    let big = vec![b'v'; (1 << 20) - 4096];
    let mut b = tar::Builder::new(Vec::new());
    for i in 0..40 {
        b.append_pax_extensions([("comment", &big[..])])
            .expect("pax");
        b.append_data(
            &mut header(EntryType::Regular, 0o644, 1),
            format!("f{i}"),
            &b"x"[..],
        )
        .expect("entry");
    }
    refused(
        Layout::new(vec![b.into_inner().expect("tar")]),
        &[
            "layer 0",
            "tar headers and extension records for 32 entries",
        ],
    );
}

#[test]
fn record_padding_after_the_tars_end_reexports_byte_for_byte() {
    let root = Root::new();
    let mut tar = small_layer("padded");
    tar.resize(tar.len().div_ceil(10240) * 10240, 0);
    let dir = Layout::new(vec![tar.clone()]).write(&root.path().join("padded"));
    root.ok(&["import", dir.to_str().unwrap(), "--name", "padded"]);
    let out = root.path().join("out");
    root.ok(&[
        "export",
        "padded",
        "-o",
        out.to_str().unwrap(),
        "--format",
        "oci-dir",
        "--compress",
        "none",
    ]);
    let blob = out.join("blobs/sha256").join(&sha256(&tar)[7..]);
    assert_eq!(std::fs::read(&blob).expect("the layer's tar"), tar);
}

#[test]
fn pax_sparse_files_are_refused() {
    let forms: [(&str, &Pax<'_>); 3] = [
        (
            "0.0",
            &[
                ("GNU.sparse.size", b"1048576"),
                ("GNU.sparse.numblocks", b"1"),
                ("GNU.sparse.offset", b"0"),
                ("GNU.sparse.numbytes", b"5"),
            ],
        ),
        (
            "0.1",
            &[
                ("GNU.sparse.size", b"1048576"),
                ("GNU.sparse.numblocks", b"1"),
                ("GNU.sparse.map", b"0,5"),
            ],
        ),
        (
            "1.0",
            &[
                ("GNU.sparse.major", b"1"),
                ("GNU.sparse.minor", b"0"),
                ("GNU.sparse.name", b"big"),
                ("GNU.sparse.realsize", b"1048576"),
            ],
        ),
    ];
    for (version, pax) in forms {
        let tar = pax_tar(
            pax,
            EntryType::Regular,
            "GNUSparseFile.42/big",
            b"1\n0\n5\nhello",
        );
        let format = format!("PAX GNU.sparse {version}");
        refused(
            Layout::new(vec![tar]),
            &["layer 0", "big", "sparse files", &format],
        );
    }
}

#[test]
fn whiteouts_that_hide_no_name_are_refused() {
    for name in [&b".wh..."[..], b".wh..", b"dir/.wh."] {
        let tar = raw_entry_tar(&[(name, EntryType::Regular, None, b"")]);
        let shown = String::from_utf8_lossy(name).into_owned();
        refused(
            Layout::new(vec![tar]),
            &["layer 0", &shown, "a whiteout must hide a name"],
        );
    }
}

#[test]
fn entries_inside_or_as_directories_of_whiteout_names_are_refused() {
    for entries in [
        &[
            (&b"a/"[..], EntryType::Directory),
            (b"a/.wh.x/", EntryType::Directory),
        ][..],
        &[(b"a/.wh.x/f", EntryType::Regular)],
        &[(b"a/.wh..wh..opq/f", EntryType::Regular)],
    ] {
        let raw: Vec<_> = entries
            .iter()
            .map(|(name, kind)| (*name, *kind, None, &b""[..]))
            .collect();
        let shown = String::from_utf8_lossy(entries[entries.len() - 1].0).into_owned();
        refused(
            Layout::new(vec![raw_entry_tar(&raw)]),
            &["layer 0", &shown, "holds no entries"],
        );
    }
}

#[test]
fn path_that_is_a_file_then_a_dir_then_a_file_is_refused() {
    let tar = raw_entry_tar(&[
        (b"p", EntryType::Regular, None, b"1"),
        (b"p/", EntryType::Directory, None, b""),
        (b"p/inside", EntryType::Regular, None, b"2"),
        (b"p", EntryType::Regular, None, b"3"),
    ]);
    refused(
        Layout::new(vec![tar]),
        &[
            "layer 0",
            "/p",
            "a file earlier in this layer and a dir here",
        ],
    );
}

#[test]
fn pax_size_that_is_not_a_size_is_refused() {
    for size in ["1e23", "-5"] {
        let tar = pax_tar(
            &[("size", size.as_bytes())],
            EntryType::Regular,
            "f",
            b"hello",
        );
        refused(
            Layout::new(vec![tar]),
            &["layer 0", "\"f\"", "pax size", size],
        );
    }
}

#[test]
fn name_over_255_bytes_is_refused() {
    let name = format!("dir/{}", "n".repeat(256));
    let mut b = tar::Builder::new(Vec::new());
    b.append_data(&mut header(EntryType::Regular, 0o644, 1), &name, &b"x"[..])
        .expect("long name");
    refused(
        Layout::new(vec![b.into_inner().expect("tar")]),
        &["layer 0", &name, "a name of 256 bytes", "at most 255"],
    );
}

#[test]
fn malformed_tar_header_is_called_a_malformed_tar() {
    let (root, before) = root_with_an_image();
    let mut b = tar::Builder::new(Vec::new());
    for name in ["a", "b"] {
        b.append_data(&mut header(EntryType::Regular, 0o644, 1), name, &b"x"[..])
            .expect("entry");
    }
    let mut tar = b.into_inner().expect("tar");
    tar[1024] ^= 0x55; // the second header's name: its checksum no longer matches
    let bad = root.path().join("bad.tar");
    std::fs::write(&bad, &tar).expect("write");
    let err = refused_source(
        &root,
        &before,
        &bad,
        &["bad.tar", "malformed tar", "checksum"],
    );
    assert!(!err.contains("not an OCI layout"), "{err}");
}

#[test]
fn wrong_blob_of_a_stored_layer_is_refused() {
    let root = Root::new();
    let layer = small_layer("stored");
    let first = Layout::new(vec![layer.clone()]).write(&root.path().join("first"));
    root.ok(&["import", first.to_str().unwrap(), "--name", "first"]);
    let before = root.images();

    // The same diff_id, but the file named by the layer's digest holds another gzip of it.
    let dir = Layout::new(vec![layer.clone()]).write(&root.path().join("other-bytes"));
    let manifest_layer = |dir: &Path| {
        let index = read_json(&dir.join("index.json"));
        let digest = index["manifests"][0]["digest"]
            .as_str()
            .expect("digest")
            .to_string();
        let manifest = read_json(&dir.join("blobs/sha256").join(&digest[7..]));
        manifest["layers"][0]["digest"]
            .as_str()
            .expect("layer")
            .to_string()
    };
    let blob = manifest_layer(&dir);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    gz.write_all(&layer).expect("gzip");
    let other = gz.finish().expect("gzip");
    std::fs::write(dir.join("blobs/sha256").join(&blob[7..]), &other).expect("write");
    refused_source(
        &root,
        &before,
        &dir,
        &["layer 0", &blob[7..], "digest mismatch"],
    );

    // The right bytes, but a descriptor that gives another size.
    let dir = Layout::new(vec![layer]).write(&root.path().join("other-size"));
    edit_manifest(&dir, |m| {
        let size = m["layers"][0]["size"].as_u64().expect("size");
        m["layers"][0]["size"] = (size + 1).into();
    });
    let blob = manifest_layer(&dir);
    refused_source(
        &root,
        &before,
        &dir,
        &["layer 0", &blob[7..], "size mismatch"],
    );
}

/// A docker archive (`docker save` before Docker 25: no blob digests) of one image whose
/// config names the diff_id `diff_id` and whose one layer is `layer`.
fn docker_archive(path: &Path, layer: &[u8], diff_id: &str) {
    let config = serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
    });
    let manifest = serde_json::json!([{
        "Config": "config.json", "RepoTags": ["docker:latest"], "Layers": ["l0/layer.tar"],
    }]);
    let mut b = tar::Builder::new(Vec::new());
    for (name, body) in [
        (
            "manifest.json",
            serde_json::to_vec(&manifest).expect("json"),
        ),
        ("config.json", serde_json::to_vec(&config).expect("json")),
        ("l0/layer.tar", layer.to_vec()),
    ] {
        b.append_data(
            &mut header(EntryType::Regular, 0o644, body.len() as u64),
            name,
            &body[..],
        )
        .expect("member");
    }
    std::fs::write(path, b.into_inner().expect("tar")).expect("write archive");
}

#[test]
fn wrong_layer_tar_of_a_stored_layer_in_a_docker_archive_is_refused() {
    let root = Root::new();
    let layer = small_layer("docker");
    let good = root.path().join("good.tar");
    docker_archive(&good, &layer, &sha256(&layer));
    root.ok(&["import", good.to_str().unwrap()]);
    let before = root.images();
    // The same config (so the same, stored, diff_id), another layer tar: nothing names the
    // blob's digest, so its tar is what must match the diff_id.
    let bad = root.path().join("bad.tar");
    docker_archive(&bad, &small_layer("not docker"), &sha256(&layer));
    refused_source(
        &root,
        &before,
        &bad,
        &["layer 0", "l0/layer.tar", "diff_id mismatch"],
    );
}

#[test]
fn bad_digest_strings_name_their_field() {
    let (root, before) = root_with_an_image();
    let dir = Layout::new(vec![small_layer("digest")]).write(&root.path().join("layer-digest"));
    edit_manifest(&dir, |m| m["layers"][0]["digest"] = "sha256:not-hex".into());
    let err = refused_source(&root, &before, &dir, &["layers[0].digest"]);
    assert!(!err.contains("serde failed"), "{err}");

    let dir = Layout::new(vec![small_layer("digest")]).write(&root.path().join("index-digest"));
    let mut index = read_json(&dir.join("index.json"));
    index["manifests"][0]["digest"] = "md5:1234".into();
    std::fs::write(dir.join("index.json"), index.to_string()).expect("write");
    let err = refused_source(&root, &before, &dir, &["index.json", "manifests[0].digest"]);
    assert!(!err.contains("serde failed"), "{err}");
}

#[test]
fn index_with_300000_tags_gives_a_short_error() {
    let (root, before) = root_with_an_image();
    let dir = root.path().join("tags");
    let descriptor = Layout::new(vec![small_layer("tags")]).write_manifest(&dir);
    let (digest, size) = (&descriptor["digest"], &descriptor["size"]);
    let mut index = String::from(
        r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":["#,
    );
    for i in 0..300_000 {
        if i > 0 {
            index.push(',');
        }
        index.push_str(&format!(
            r#"{{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":{digest},"size":{size},"annotations":{{"org.opencontainers.image.ref.name":"tag{i}"}}}}"#
        ));
    }
    index.push_str("]}");
    std::fs::write(dir.join("index.json"), index).expect("write index");
    let err = refused_source(&root, &before, &dir, &["--tag", "tag0", "and 299990 more"]);
    assert!(err.len() < 10_000, "{} bytes of error", err.len());
    let err = root
        .snap(&["import", dir.to_str().unwrap(), "--tag", "nope"])
        .fails();
    assert!(
        err.contains("no image tagged") && err.len() < 10_000,
        "{err}"
    );
    root.ok(&[
        "import",
        dir.to_str().unwrap(),
        "--tag",
        "tag299999",
        "--name",
        "last",
    ]);
}

#[test]
fn nested_indexes_are_followed_or_refused_by_name() {
    let (root, before) = root_with_an_image();
    let dir = root.path().join("nested");
    let mut layout = Layout::new(vec![small_layer("nested")]);
    layout.platform = Some(("linux", "amd64"));
    let mut descriptor = layout.write_manifest(&dir);
    let nest = |descriptor: serde_json::Value| {
        let inner = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": [descriptor],
        });
        let (digest, size) = put_blob(&dir, &serde_json::to_vec(&inner).expect("index"));
        serde_json::json!({
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "digest": digest,
            "size": size,
        })
    };
    // index.json → index → manifest: followed
    descriptor = nest(descriptor);
    write_index(&dir, vec![descriptor.clone()]);
    root.ok(&["import", dir.to_str().unwrap(), "--name", "nested"]);
    root.ok(&["rmi", "nested"]);
    root.ok(&["gc"]);
    // nine indexes deep: refused by name
    for _ in 0..8 {
        descriptor = nest(descriptor);
    }
    write_index(&dir, vec![descriptor]);
    let err = refused_source(&root, &before, &dir, &["nested indexes are not supported"]);
    assert!(!err.contains("unknown media type"), "{err}");
}
