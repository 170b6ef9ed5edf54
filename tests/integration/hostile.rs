//! Bad input: each archive is built here, must be refused with an error naming what is
//! wrong, and must leave the store as it was (`snap images` unchanged, `snap fsck` clean).

use crate::util::{Layout, Root, header, raw_entry_tar, small_layer, tar_dir};
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
