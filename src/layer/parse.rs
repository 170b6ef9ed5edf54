//! Parsing one uncompressed layer tar into entries, a skeleton and its diff_id.

use super::{LayerError, ObjectSink, Segment, Skeleton};
use crate::model::{Digest, DigestHasher, Entry, EntryPath, Kind, LayerId, Meta, Xattr};
use std::cell::RefCell;
use std::collections::HashMap;
use std::io::Read;
use std::rc::Rc;

const WHITEOUT_PREFIX: &[u8] = b".wh.";
const OPAQUE_MARKER: &[u8] = b".wh..wh..opq";

/// The result of parsing one layer tar.
#[derive(Debug)]
pub struct ParsedLayer {
    /// The sha256 of the uncompressed tar: the layer's diff_id.
    pub diff_id: LayerId,
    /// Entries in tar order (a later entry for the same path replaces an earlier one).
    pub entries: Vec<Entry>,
    pub skeleton: Skeleton,
    /// Bytes of the uncompressed tar.
    pub tar_size: u64,
}

/// Parses an uncompressed layer tar, sending each regular file's body to `sink`.
pub fn parse_layer<R: Read>(tar: R, sink: &dyn ObjectSink) -> Result<ParsedLayer, LayerError> {
    parse_layer_with(tar, sink, TarDigest::Parser)
}

/// Who computes the tar's digest (the layer's diff_id).
pub enum TarDigest<'a> {
    /// The parser, from the bytes it reads.
    Parser,
    /// Whoever writes the tar, in its own thread (so the two hashes run on two cores): asked
    /// once the tar has been read to its end. Only for a tar this process writes.
    Writer(Box<dyn FnOnce() -> std::io::Result<Digest> + 'a>),
}

/// [`parse_layer`], with the tar's digest computed as `digest` says.
pub fn parse_layer_with<R: Read>(
    tar: R,
    sink: &dyn ObjectSink,
    digest: TarDigest<'_>,
) -> Result<ParsedLayer, LayerError> {
    let recorder = Rc::new(RefCell::new(Recording {
        hash: matches!(digest, TarDigest::Parser),
        ..Recording::default()
    }));
    let mut archive = tar::Archive::new(RecordingReader {
        inner: tar,
        rec: recorder.clone(),
    });
    let mut entries = Vec::new();
    let mut files: HashMap<EntryPath, usize> = HashMap::new();
    let mut last: Option<String> = None;
    let tar_error = |after: &Option<String>, source| LayerError::Tar {
        after: after.clone(),
        source,
    };

    let iter = archive.entries().map_err(|e| tar_error(&last, e))?;
    for item in iter {
        let mut tar_entry = item.map_err(|e| tar_error(&last, e))?;
        let raw_path = tar_entry.path_bytes().into_owned();
        let shown = String::from_utf8_lossy(&raw_path).into_owned();
        let entry_type = tar_entry.header().entry_type();
        if entry_type == tar::EntryType::XGlobalHeader {
            last = Some(shown);
            continue;
        }
        let meta = read_meta(&mut tar_entry, &shown)?;
        let path = EntryPath::parse(&raw_path).map_err(|source| LayerError::BadPath {
            path: shown.clone(),
            source,
        })?;

        let (path, kind) = match whiteout_of(&path) {
            Some(marker) => marker,
            None => {
                let kind = match entry_type {
                    tar::EntryType::Regular | tar::EntryType::Continuous => {
                        let size = tar_entry.size();
                        recorder.borrow_mut().start_body();
                        let mut counted = CountingReader {
                            inner: &mut tar_entry,
                            count: 0,
                        };
                        let stored = sink.put(&mut counted, size);
                        let got = counted.count;
                        let digest = stored.map_err(|source| LayerError::Sink {
                            path: path.clone(),
                            source,
                        })?;
                        if got != size {
                            return Err(LayerError::TruncatedBody {
                                path,
                                expected: size,
                                got,
                            });
                        }
                        recorder.borrow_mut().end_body(digest, size);
                        files.insert(path.clone(), entries.len());
                        Kind::File { digest, size }
                    }
                    tar::EntryType::Directory => Kind::Dir,
                    tar::EntryType::Symlink => Kind::Symlink {
                        target: link_name(&tar_entry, &shown)?,
                    },
                    tar::EntryType::Link => {
                        let raw_target = link_name(&tar_entry, &shown)?;
                        let target = EntryPath::parse(&raw_target)
                            .ok()
                            .filter(|t| files.contains_key(t));
                        match target {
                            Some(target) => {
                                files.insert(path.clone(), entries.len());
                                Kind::Hardlink { target }
                            }
                            None => {
                                return Err(LayerError::BadHardlink {
                                    path,
                                    target: String::from_utf8_lossy(&raw_target).into_owned(),
                                });
                            }
                        }
                    }
                    tar::EntryType::Char => device(&tar_entry, &shown, |major, minor| {
                        Kind::CharDevice { major, minor }
                    })?,
                    tar::EntryType::Block => device(&tar_entry, &shown, |major, minor| {
                        Kind::BlockDevice { major, minor }
                    })?,
                    tar::EntryType::Fifo => Kind::Fifo,
                    other => {
                        return Err(LayerError::UnsupportedType {
                            path: shown,
                            kind: other.as_byte() as char,
                        });
                    }
                };
                (path, kind)
            }
        };
        if !matches!(kind, Kind::File { .. } | Kind::Hardlink { .. }) {
            files.remove(&path);
        }
        entries.push(Entry { path, kind, meta });
        last = Some(shown);
    }
    std::io::copy(&mut archive.into_inner(), &mut std::io::sink())
        .map_err(|e| tar_error(&last, e))?;
    let recording = Rc::try_unwrap(recorder)
        .map(RefCell::into_inner)
        .unwrap_or_default();
    let (mut diff_id, tar_size, skeleton) = recording.finish();
    if let TarDigest::Writer(writer) = digest {
        diff_id = writer().map_err(|e| tar_error(&last, e))?;
    }
    Ok(ParsedLayer {
        diff_id: LayerId(diff_id),
        entries,
        skeleton,
        tar_size,
    })
}

/// `.wh.NAME` and `.wh..wh..opq` become whiteout and opaque entries for the path they hide.
fn whiteout_of(path: &EntryPath) -> Option<(EntryPath, Kind)> {
    let (parent, name) = path.split_last()?;
    if name == OPAQUE_MARKER {
        return Some((parent, Kind::Opaque));
    }
    let hidden = name.strip_prefix(WHITEOUT_PREFIX)?;
    Some((parent.join(hidden), Kind::Whiteout))
}

fn link_name<R: Read>(entry: &tar::Entry<R>, shown: &str) -> Result<Vec<u8>, LayerError> {
    match entry.link_name_bytes() {
        Some(target) if !target.is_empty() => Ok(target.into_owned()),
        _ => Err(LayerError::BadHeader {
            path: shown.to_string(),
            field: "link name",
            detail: "empty".into(),
        }),
    }
}

fn device<R: Read>(
    entry: &tar::Entry<R>,
    shown: &str,
    make: impl Fn(u32, u32) -> Kind,
) -> Result<Kind, LayerError> {
    let header = entry.header();
    let bad = |field, e: std::io::Error| LayerError::BadHeader {
        path: shown.to_string(),
        field,
        detail: e.to_string(),
    };
    let major = header
        .device_major()
        .map_err(|e| bad("device major", e))?
        .unwrap_or(0);
    let minor = header
        .device_minor()
        .map_err(|e| bad("device minor", e))?
        .unwrap_or(0);
    Ok(make(major, minor))
}

/// Mode, owner, mtime (PAX `mtime` gives nanoseconds) and `SCHILY.xattr.*` records.
fn read_meta<R: Read>(entry: &mut tar::Entry<R>, shown: &str) -> Result<Meta, LayerError> {
    let bad = |field, detail: String| LayerError::BadHeader {
        path: shown.to_string(),
        field,
        detail,
    };
    let header = entry.header();
    let mut meta = Meta {
        mode: header.mode().map_err(|e| bad("mode", e.to_string()))? & 0o7777,
        uid: header.uid().map_err(|e| bad("uid", e.to_string()))? as u32,
        gid: header.gid().map_err(|e| bad("gid", e.to_string()))? as u32,
        mtime_sec: header.mtime().map_err(|e| bad("mtime", e.to_string()))? as i64,
        mtime_nsec: 0,
        xattrs: Vec::new(),
    };
    if let Some(extensions) = entry
        .pax_extensions()
        .map_err(|e| bad("pax", e.to_string()))?
    {
        for extension in extensions {
            let extension = extension.map_err(|e| bad("pax", e.to_string()))?;
            let key = extension.key_bytes();
            let value = extension.value_bytes();
            let text = || std::str::from_utf8(value).unwrap_or("");
            match key {
                b"mtime" => {
                    let (sec, nsec) = parse_pax_time(text())
                        .ok_or_else(|| bad("pax mtime", text().to_string()))?;
                    meta.mtime_sec = sec;
                    meta.mtime_nsec = nsec;
                }
                b"uid" => {
                    meta.uid = text()
                        .parse()
                        .map_err(|_| bad("pax uid", text().to_string()))?
                }
                b"gid" => {
                    meta.gid = text()
                        .parse()
                        .map_err(|_| bad("pax gid", text().to_string()))?
                }
                _ => {
                    if let Some(name) = key.strip_prefix(b"SCHILY.xattr.") {
                        meta.xattrs.push(Xattr {
                            name: name.to_vec(),
                            value: value.to_vec(),
                        });
                    }
                }
            }
        }
    }
    meta.xattrs.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(meta)
}

/// `1700000000.5` → (1700000000, 500000000); negative times as `-1.5` → (-2, 500000000).
fn parse_pax_time(text: &str) -> Option<(i64, u32)> {
    let (whole, frac) = text.split_once('.').unwrap_or((text, ""));
    let negative = whole.starts_with('-');
    let sec: i64 = whole.parse().ok()?;
    if !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let digits: String = frac.chars().chain(std::iter::repeat('0')).take(9).collect();
    let nsec: u32 = digits.parse().ok()?;
    if negative && nsec > 0 {
        Some((sec - 1, 1_000_000_000 - nsec))
    } else {
        Some((sec, nsec))
    }
}

/// What the recording reader has seen so far.
#[derive(Default)]
struct Recording {
    /// Whether to hash the bytes (else the tar's writer does).
    hash: bool,
    hasher: DigestHasher,
    total: u64,
    in_body: bool,
    raw: Vec<u8>,
    segments: Vec<Segment>,
}

impl Recording {
    fn start_body(&mut self) {
        self.in_body = true;
        if !self.raw.is_empty() {
            self.segments
                .push(Segment::Raw(std::mem::take(&mut self.raw)));
        }
    }

    fn end_body(&mut self, digest: Digest, size: u64) {
        self.in_body = false;
        self.segments.push(Segment::Object { digest, size });
    }

    fn finish(mut self) -> (Digest, u64, Skeleton) {
        if !self.raw.is_empty() {
            self.segments
                .push(Segment::Raw(std::mem::take(&mut self.raw)));
        }
        (
            self.hasher.finish(),
            self.total,
            Skeleton {
                segments: self.segments,
            },
        )
    }
}

/// Hashes every byte of the tar and keeps all but file bodies for the skeleton.
struct RecordingReader<R> {
    inner: R,
    rec: Rc<RefCell<Recording>>,
}

impl<R: Read> Read for RecordingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        let mut rec = self.rec.borrow_mut();
        if rec.hash {
            rec.hasher.update(&buf[..n]);
        }
        rec.total += n as u64;
        if !rec.in_body {
            rec.raw.extend_from_slice(&buf[..n]);
        }
        Ok(n)
    }
}

struct CountingReader<R> {
    inner: R,
    count: u64,
}

impl<R: Read> Read for CountingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::sync::Mutex;

    /// An in-memory object sink for tests.
    #[derive(Default)]
    pub struct MemorySink(pub Mutex<HashMap<Digest, Vec<u8>>>);

    impl ObjectSink for MemorySink {
        fn put(&self, body: &mut dyn Read, _size: u64) -> Result<Digest, std::io::Error> {
            let mut bytes = Vec::new();
            body.read_to_end(&mut bytes)?;
            let digest = Digest::of(&bytes);
            self.0.lock().unwrap().insert(digest, bytes);
            Ok(digest)
        }
    }

    fn header(kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_size(size);
        h.set_mtime(1_700_000_000);
        h.set_uid(0);
        h.set_gid(0);
        h
    }

    pub fn sample_tar() -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        b.append_data(
            &mut header(tar::EntryType::Directory, 0o755, 0),
            "etc/",
            &[][..],
        )
        .unwrap();
        b.append_pax_extensions([
            ("SCHILY.xattr.user.k", &b"v"[..]),
            ("mtime", &b"1700000001.25"[..]),
        ])
        .unwrap();
        b.append_data(
            &mut header(tar::EntryType::Regular, 0o4755, 5),
            "etc/a",
            &b"hello"[..],
        )
        .unwrap();
        let mut link = header(tar::EntryType::Link, 0o644, 0);
        b.append_link(&mut link, "etc/b", "etc/a").unwrap();
        let mut sym = header(tar::EntryType::Symlink, 0o777, 0);
        b.append_link(&mut sym, "etc/s", "/etc/a").unwrap();
        b.append_data(
            &mut header(tar::EntryType::Regular, 0o600, 0),
            "etc/.wh.gone",
            &[][..],
        )
        .unwrap();
        b.append_data(
            &mut header(tar::EntryType::Regular, 0o600, 0),
            "opq/.wh..wh..opq",
            &[][..],
        )
        .unwrap();
        let mut dev = header(tar::EntryType::Char, 0o600, 0);
        dev.set_device_major(1).unwrap();
        dev.set_device_minor(3).unwrap();
        b.append_data(&mut dev, "dev/null", &[][..]).unwrap();
        b.append_data(
            &mut header(tar::EntryType::Fifo, 0o600, 0),
            "run/fifo",
            &[][..],
        )
        .unwrap();
        let long = format!("deep/{}/file", "x".repeat(200));
        b.append_data(
            &mut header(tar::EntryType::Regular, 0o644, 5),
            long,
            &b"hello"[..],
        )
        .unwrap();
        b.into_inner().unwrap()
    }

    #[test]
    fn parses_every_kind() {
        let sink = MemorySink::default();
        let tar = sample_tar();
        let layer = parse_layer(&tar[..], &sink).unwrap();
        assert_eq!(layer.diff_id.0, Digest::of(&tar));
        assert_eq!(layer.tar_size, tar.len() as u64);
        let kinds: Vec<_> = layer
            .entries
            .iter()
            .map(|e| (e.path.to_string(), e.kind.name()))
            .collect();
        assert_eq!(
            kinds,
            [
                ("/etc".to_string(), "dir"),
                ("/etc/a".into(), "file"),
                ("/etc/b".into(), "hardlink"),
                ("/etc/s".into(), "symlink"),
                ("/etc/gone".into(), "whiteout"),
                ("/opq".into(), "opaque"),
                ("/dev/null".into(), "char"),
                ("/run/fifo".into(), "fifo"),
                (format!("/deep/{}/file", "x".repeat(200)), "file"),
            ]
        );
        let a = &layer.entries[1];
        assert_eq!(a.meta.mode, 0o4755);
        assert_eq!(
            (a.meta.mtime_sec, a.meta.mtime_nsec),
            (1_700_000_001, 250_000_000)
        );
        assert_eq!(
            a.meta.xattrs,
            vec![Xattr {
                name: b"user.k".to_vec(),
                value: b"v".to_vec()
            }]
        );
        assert_eq!(
            layer.entries[6].kind,
            Kind::CharDevice { major: 1, minor: 3 }
        );
        // one object for two files with the same content
        assert_eq!(
            sink.0.lock().unwrap().len(),
            1,
            "two files with one content make one object"
        );
    }

    #[test]
    fn skeleton_rebuilds_the_exact_tar() {
        let sink = MemorySink::default();
        let tar = sample_tar();
        let layer = parse_layer(&tar[..], &sink).unwrap();
        let objects = sink.0.lock().unwrap();
        let mut out = Vec::new();
        layer
            .skeleton
            .write_tar(&mut out, |d| Ok(&objects[d][..]))
            .unwrap();
        assert_eq!(out, tar);
        assert_eq!(layer.skeleton.tar_size(), tar.len() as u64);
    }

    fn refused(tar: &[u8]) -> LayerError {
        parse_layer(tar, &MemorySink::default()).unwrap_err()
    }

    fn tar_with_raw_name(name: &[u8], kind: tar::EntryType, link: Option<&[u8]>) -> Vec<u8> {
        let mut h = header(kind, 0o644, 0);
        h.as_old_mut().name[..name.len()].copy_from_slice(name);
        if let Some(link) = link {
            h.as_old_mut().linkname[..link.len()].copy_from_slice(link);
        }
        h.set_cksum();
        let mut b = tar::Builder::new(Vec::new());
        b.append(&h, &[][..]).unwrap();
        b.into_inner().unwrap()
    }

    #[test]
    fn refuses_dotdot_and_absolute_paths() {
        let e = refused(&tar_with_raw_name(
            b"../evil",
            tar::EntryType::Regular,
            None,
        ));
        assert!(matches!(e, LayerError::BadPath { .. }), "{e}");
        assert!(e.to_string().contains("../evil"));
        let e = refused(&tar_with_raw_name(
            b"/etc/passwd",
            tar::EntryType::Regular,
            None,
        ));
        assert!(e.to_string().contains("absolute"), "{e}");
    }

    #[test]
    fn refuses_hardlinks_outside_the_layer() {
        let e = refused(&tar_with_raw_name(
            b"x",
            tar::EntryType::Link,
            Some(b"../../etc/shadow"),
        ));
        assert!(matches!(e, LayerError::BadHardlink { .. }), "{e}");
        let e = refused(&tar_with_raw_name(
            b"x",
            tar::EntryType::Link,
            Some(b"later"),
        ));
        assert!(matches!(e, LayerError::BadHardlink { .. }), "{e}");
    }

    #[test]
    fn refuses_truncated_tars() {
        let tar = sample_tar();
        for cut in [100, 600, 1200, 1600] {
            let e = refused(&tar[..cut]);
            assert!(
                matches!(e, LayerError::Tar { .. } | LayerError::TruncatedBody { .. }),
                "cut {cut}: {e}"
            );
        }
    }

    #[test]
    fn parses_pax_times() {
        assert_eq!(parse_pax_time("12"), Some((12, 0)));
        assert_eq!(parse_pax_time("12.000000001"), Some((12, 1)));
        assert_eq!(parse_pax_time("-1.5"), Some((-2, 500_000_000)));
        assert_eq!(parse_pax_time("x"), None);
    }
}
