//! Parsing one uncompressed layer tar into entries, a skeleton and its diff_id; what is
//! refused or stripped on the way is listed at [`parse_layer`].

use super::{LayerError, ObjectSink, Segment, Skeleton, overlay};
use crate::model::{
    Digest, DigestHasher, Entry, EntryPath, Kind, LayerId, Meta, Xattr, excerpt_bytes,
};
use std::cell::RefCell;
use std::collections::HashMap;
use std::io::Read;
use std::rc::Rc;

const WHITEOUT_PREFIX: &[u8] = b".wh.";
const OPAQUE_MARKER: &[u8] = b".wh..wh..opq";

/// The most bytes of headers and extension records (PAX, GNU long names) one entry may have,
/// and the most bytes that may follow the end-of-archive marker (zero padding to a 10240-byte
/// record is normal). All bytes outside file bodies are kept for the skeleton, in memory: an
/// unbounded run of them would let a small compressed blob fill memory (1 GiB of zeros
/// compress to 1 MB).
pub const MAX_KEPT_BYTES: u64 = 1 << 20;

/// What a whole layer may keep outside file bodies: [`KEPT_BYTES_FREE`], and
/// [`KEPT_BYTES_PER_ENTRY`] more for each entry. Real layers keep about 512 bytes an entry
/// (a ustar header; 1.5 KiB with a PAX record); without this bound, a layer of many entries
/// each with a large PAX record would fill memory as trailing data did.
pub const KEPT_BYTES_FREE: u64 = 32 << 20;
/// See [`KEPT_BYTES_FREE`].
pub const KEPT_BYTES_PER_ENTRY: u64 = 2 << 10;

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
///
/// Besides unsafe paths (`..`, absolute, hardlinks out of the layer), it refuses what no
/// filesystem can hold or what tar readers disagree on: names over 255 bytes, symlink
/// targets over 4095, whiteouts of `.`, `..` or an empty name, a path that is a directory and
/// a non-directory in one layer, PAX `size` records that are not the entry's size, sparse
/// files (GNU `S` entries and PAX `GNU.sparse.*` records, formats 0.0, 0.1 and 1.0), a body on
/// an entry that is not a regular file, one xattr given twice, more than [`MAX_KEPT_BYTES`] of
/// headers for one entry or after the end-of-archive marker, and more than [`KEPT_BYTES_FREE`]
/// and [`KEPT_BYTES_PER_ENTRY`] an entry of headers in the layer. It strips
/// overlayfs's private xattrs (`trusted.overlay.*`, `user.overlay.*`) from the entries, since
/// a container's upper dir would obey them; the skeleton keeps the tar as it was.
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
    let mut entries: Vec<Entry> = Vec::new();
    // path → index in `entries` of its latest entry (whiteouts and opaque markers aside)
    let mut latest: HashMap<EntryPath, usize> = HashMap::new();
    let mut stripped = Stripped::default();
    let mut last: Option<String> = None;
    let tar_error = |after: &Option<String>, source| {
        let rec = recorder.borrow();
        match rec.over {
            Over::Trailing => LayerError::TrailingData {
                limit: MAX_KEPT_BYTES,
            },
            Over::Entry => LayerError::TooMuchMetadata {
                after: after.clone(),
                limit: MAX_KEPT_BYTES,
            },
            Over::Layer => LayerError::MetadataOutgrowsEntries {
                entries: rec.entries,
                kept: rec.kept,
            },
            Over::No => LayerError::Tar {
                after: after.clone(),
                source,
            },
        }
    };

    let iter = archive.entries().map_err(|e| tar_error(&last, e))?;
    for item in iter {
        let mut tar_entry = item.map_err(|e| tar_error(&last, e))?;
        let raw_path = tar_entry.path_bytes().into_owned();
        let shown = excerpt_bytes(&raw_path);
        let entry_type = tar_entry.header().entry_type();
        if entry_type == tar::EntryType::XGlobalHeader {
            recorder.borrow_mut().mark();
            last = Some(shown);
            continue;
        }
        let meta = read_meta(&mut tar_entry, &shown, &mut stripped)?;
        let path = EntryPath::parse(&raw_path).map_err(|source| LayerError::BadPath {
            path: shown.clone(),
            source,
        })?;

        // `.wh.` names are whiteouts and opaque markers, which hold nothing: one that has
        // entries below it, or is a directory, would show as a file of that name.
        let below_marker = path
            .split_last()
            .is_some_and(|(parent, _)| parent.components().any(|c| c.starts_with(WHITEOUT_PREFIX)));
        let marker_dir = entry_type == tar::EntryType::Directory
            && path.file_name().starts_with(WHITEOUT_PREFIX);
        if below_marker || marker_dir {
            return Err(LayerError::InsideWhiteout { path: shown });
        }
        let (path, kind) = match whiteout_of(&path, &shown)? {
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
                        Kind::File { digest, size }
                    }
                    tar::EntryType::Directory => Kind::Dir,
                    tar::EntryType::Symlink => Kind::Symlink {
                        target: link_name(&tar_entry, &shown)?,
                    },
                    tar::EntryType::Link => {
                        let raw_target = link_name(&tar_entry, &shown)?;
                        let target = EntryPath::parse(&raw_target).ok().filter(|t| {
                            latest.get(t).is_some_and(|&i| {
                                matches!(entries[i].kind, Kind::File { .. } | Kind::Hardlink { .. })
                            })
                        });
                        match target {
                            Some(target) => Kind::Hardlink { target },
                            None => {
                                return Err(LayerError::BadHardlink {
                                    path,
                                    target: excerpt_bytes(&raw_target),
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
                    tar::EntryType::GNUSparse => {
                        return Err(LayerError::Sparse {
                            path: shown,
                            format: "GNU type 'S'".into(),
                        });
                    }
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
        // Only a regular file's body is stored; any other entry's would be kept in memory.
        if !matches!(kind, Kind::File { .. }) && tar_entry.size() > 0 {
            return Err(LayerError::UnkeptBody {
                path: shown,
                kind: kind.name(),
                size: tar_entry.size(),
            });
        }
        if !matches!(kind, Kind::Whiteout | Kind::Opaque) {
            let is_dir = matches!(kind, Kind::Dir);
            if let Some(&earlier) = latest.get(&path)
                && matches!(entries[earlier].kind, Kind::Dir) != is_dir
            {
                return Err(LayerError::KindChanged {
                    path,
                    was: entries[earlier].kind.name(),
                    now: kind.name(),
                });
            }
            latest.insert(path.clone(), entries.len());
        }
        entries.push(Entry { path, kind, meta });
        recorder.borrow_mut().mark();
        last = Some(shown);
    }
    // What follows the end-of-archive marker is part of the tar (and of its diff_id), and is
    // kept for the skeleton: within a bound.
    recorder.borrow_mut().start_trailing();
    std::io::copy(&mut archive.into_inner(), &mut std::io::sink())
        .map_err(|e| tar_error(&last, e))?;
    let recording = Rc::try_unwrap(recorder)
        .map(RefCell::into_inner)
        .unwrap_or_default();
    let (mut diff_id, tar_size, skeleton) = recording.finish();
    if let TarDigest::Writer(writer) = digest {
        diff_id = writer().map_err(|e| LayerError::Tar {
            after: last.clone(),
            source: e,
        })?;
    }
    if let Some(first) = &stripped.first {
        tracing::warn!(
            "layer {diff_id}: stripped {} overlayfs-private or unstorable xattr(s) from its \
             entries (first on {first}): a container's upper dir would obey them, or refuse them",
            stripped.count
        );
    }
    Ok(ParsedLayer {
        diff_id: LayerId(diff_id),
        entries,
        skeleton,
        tar_size,
    })
}

/// Whether Linux filesystems store an xattr of this name: one of the four namespaces.
fn is_storable_xattr(name: &[u8]) -> bool {
    [&b"user."[..], b"trusted.", b"security.", b"system."]
        .iter()
        .any(|ns| name.starts_with(ns) && name.len() > ns.len())
}

/// The overlayfs-private (and unstorable) xattrs left out of a layer's entries.
#[derive(Default)]
struct Stripped {
    count: u64,
    first: Option<String>,
}

/// `.wh.NAME` and `.wh..wh..opq` become whiteout and opaque entries for the path they hide.
/// A whiteout must hide a name: `.wh.`, `.wh..` and `.wh...` hide none.
fn whiteout_of(path: &EntryPath, shown: &str) -> Result<Option<(EntryPath, Kind)>, LayerError> {
    let Some((parent, name)) = path.split_last() else {
        return Ok(None);
    };
    if name == OPAQUE_MARKER {
        return Ok(Some((parent, Kind::Opaque)));
    }
    let Some(hidden) = name.strip_prefix(WHITEOUT_PREFIX) else {
        return Ok(None);
    };
    if matches!(hidden, b"" | b"." | b"..") {
        return Err(LayerError::BadWhiteout {
            path: shown.to_string(),
            hidden: String::from_utf8_lossy(hidden).into_owned(),
        });
    }
    Ok(Some((parent.join(hidden), Kind::Whiteout)))
}

/// The longest symlink target Linux can create (`PATH_MAX` less the NUL).
const MAX_SYMLINK_TARGET: usize = 4095;

fn link_name<R: Read>(entry: &tar::Entry<R>, shown: &str) -> Result<Vec<u8>, LayerError> {
    let bad = |detail: String| LayerError::BadHeader {
        path: shown.to_string(),
        field: "link name",
        detail,
    };
    match entry.link_name_bytes() {
        Some(target) if target.len() > MAX_SYMLINK_TARGET => Err(bad(format!(
            "{} bytes; a link target is at most {MAX_SYMLINK_TARGET}",
            target.len()
        ))),
        Some(target) if !target.is_empty() => Ok(target.into_owned()),
        _ => Err(bad("empty".into())),
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

/// Mode, owner, mtime (PAX `mtime` gives nanoseconds) and `SCHILY.xattr.*` records, less
/// overlayfs's private xattrs (counted in `stripped`). Refuses PAX sparse files and PAX
/// `size` records that are not the entry's size.
fn read_meta<R: Read>(
    entry: &mut tar::Entry<R>,
    shown: &str,
    stripped: &mut Stripped,
) -> Result<Meta, LayerError> {
    let bad = |field, detail: String| LayerError::BadHeader {
        path: shown.to_string(),
        field,
        detail,
    };
    let size = entry.size();
    let header = entry.header();
    let mut meta = Meta {
        mode: header.mode().map_err(|e| bad("mode", e.to_string()))? & 0o7777,
        uid: header.uid().map_err(|e| bad("uid", e.to_string()))? as u32,
        gid: header.gid().map_err(|e| bad("gid", e.to_string()))? as u32,
        mtime_sec: header.mtime().map_err(|e| bad("mtime", e.to_string()))? as i64,
        mtime_nsec: 0,
        xattrs: Vec::new(),
    };
    let mut sparse = Sparse::default();
    // Tar readers that cannot parse a PAX size fall back to the header's, others refuse: an
    // entry whose size depends on the reader is refused.
    let mut bad_size = None;
    if let Some(extensions) = entry
        .pax_extensions()
        .map_err(|e| bad("pax", e.to_string()))?
    {
        for extension in extensions {
            let extension = extension.map_err(|e| bad("pax", e.to_string()))?;
            let key = extension.key_bytes();
            let value = extension.value_bytes();
            let text = || std::str::from_utf8(value).unwrap_or("");
            let shown_value = || excerpt_bytes(value);
            match key {
                b"mtime" => {
                    let (sec, nsec) =
                        parse_pax_time(text()).ok_or_else(|| bad("pax mtime", shown_value()))?;
                    meta.mtime_sec = sec;
                    meta.mtime_nsec = nsec;
                }
                b"uid" => meta.uid = text().parse().map_err(|_| bad("pax uid", shown_value()))?,
                b"gid" => meta.gid = text().parse().map_err(|_| bad("pax gid", shown_value()))?,
                b"size" => match text().parse::<u64>() {
                    Ok(pax) if pax == size => {}
                    Ok(pax) => {
                        bad_size = Some(format!("{pax}, but the entry's size in effect is {size}"))
                    }
                    Err(_) => {
                        bad_size = Some(format!("{:?} is not a size in bytes", shown_value()))
                    }
                },
                _ => {
                    if let Some(name) = key.strip_prefix(b"SCHILY.xattr.") {
                        // overlayfs's own, or of no namespace a filesystem stores (copy-up
                        // could never set it, and the directory could never change).
                        if overlay::is_private_xattr(name) || !is_storable_xattr(name) {
                            stripped.count += 1;
                            stripped.first.get_or_insert_with(|| shown.to_string());
                            continue;
                        }
                        meta.xattrs.push(Xattr {
                            name: name.to_vec(),
                            value: value.to_vec(),
                        });
                    } else if let Some(field) = key.strip_prefix(b"GNU.sparse.") {
                        sparse.note(field, value);
                    }
                }
            }
        }
    }
    if sparse.seen {
        let format = format!("PAX GNU.sparse {}", sparse.version());
        return Err(LayerError::Sparse {
            path: sparse.name.unwrap_or_else(|| shown.to_string()),
            format,
        });
    }
    if let Some(detail) = bad_size {
        return Err(bad("pax size", detail));
    }
    meta.xattrs.sort_by(|a, b| a.name.cmp(&b.name));
    if let Some(twice) = meta.xattrs.windows(2).find(|w| w[0].name == w[1].name) {
        return Err(bad(
            "pax xattr",
            format!("{} is given twice", excerpt_bytes(&twice[0].name)),
        ));
    }
    Ok(meta)
}

/// What an entry's `GNU.sparse.*` PAX records say: GNU tar's sparse formats 0.0
/// (`offset`/`numbytes` pairs), 0.1 (`map`) and 1.0 (`major`/`minor`, the map in the body).
#[derive(Default)]
struct Sparse {
    seen: bool,
    major: Option<String>,
    minor: Option<String>,
    map: bool,
    /// The file's real name (0.1 and 1.0 put a made-up one in the header).
    name: Option<String>,
}

impl Sparse {
    fn note(&mut self, field: &[u8], value: &[u8]) {
        self.seen = true;
        let text = || excerpt_bytes(value);
        match field {
            b"major" => self.major = Some(text()),
            b"minor" => self.minor = Some(text()),
            b"map" => self.map = true,
            b"name" => self.name = Some(text()),
            _ => {}
        }
    }

    fn version(&self) -> String {
        match (&self.major, &self.minor) {
            (Some(major), minor) => format!("{major}.{}", minor.as_deref().unwrap_or("0")),
            (None, _) if self.map => "0.1".into(),
            (None, _) => "0.0".into(),
        }
    }
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
    /// Bytes kept (read outside file bodies) since the last [`Recording::mark`].
    since_mark: u64,
    /// Bytes kept in all.
    kept: u64,
    /// Entries done (marks).
    entries: u64,
    /// Whether the reader is past the end-of-archive marker.
    trailing: bool,
    /// Which bound on kept bytes a read went over (that read failed).
    over: Over,
}

/// Which bound on the bytes kept outside file bodies was passed.
#[derive(Default, Clone, Copy)]
enum Over {
    #[default]
    No,
    /// [`MAX_KEPT_BYTES`] for one entry.
    Entry,
    /// [`MAX_KEPT_BYTES`] after the end-of-archive marker.
    Trailing,
    /// [`KEPT_BYTES_FREE`] and [`KEPT_BYTES_PER_ENTRY`] for the layer.
    Layer,
}

impl Recording {
    /// An entry is done: what is kept from here on belongs to the next one.
    fn mark(&mut self) {
        self.since_mark = 0;
        self.entries += 1;
    }

    /// Counts `n` more bytes kept; which bound that passes, if any.
    fn keep(&mut self, n: u64) -> Over {
        self.since_mark += n;
        self.kept += n;
        if self.since_mark > MAX_KEPT_BYTES {
            if self.trailing {
                Over::Trailing
            } else {
                Over::Entry
            }
        } else if self.kept > KEPT_BYTES_FREE + KEPT_BYTES_PER_ENTRY * self.entries {
            Over::Layer
        } else {
            Over::No
        }
    }

    /// The tar's entries are done: what follows is trailing data.
    fn start_trailing(&mut self) {
        self.since_mark = 0;
        self.trailing = true;
    }

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

/// Hashes every byte of the tar and keeps all but file bodies for the skeleton, within
/// [`MAX_KEPT_BYTES`] per entry and [`KEPT_BYTES_FREE`] + [`KEPT_BYTES_PER_ENTRY`] per layer.
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
            rec.over = rec.keep(n as u64);
            if !matches!(rec.over, Over::No) {
                return Err(std::io::Error::other("too many bytes outside file bodies"));
            }
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

    /// A tar of one entry preceded by the PAX records `pax`.
    fn pax_tar(pax: &[(&str, &[u8])], kind: tar::EntryType, name: &str, body: &[u8]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        b.append_pax_extensions(pax.iter().copied()).unwrap();
        b.append_data(&mut header(kind, 0o644, body.len() as u64), name, body)
            .unwrap();
        b.into_inner().unwrap()
    }

    #[test]
    fn strips_overlay_private_xattrs() {
        let tar = pax_tar(
            &[
                ("SCHILY.xattr.trusted.overlay.opaque", b"y"),
                ("SCHILY.xattr.trusted.overlay.redirect", b"/etc"),
                ("SCHILY.xattr.user.overlay.origin", b"x"),
                ("SCHILY.xattr.user.kept", b"v"),
            ],
            tar::EntryType::Directory,
            "d/",
            b"",
        );
        let layer = parse_layer(&tar[..], &MemorySink::default()).unwrap();
        let names: Vec<&[u8]> = layer.entries[0]
            .meta
            .xattrs
            .iter()
            .map(|x| &x.name[..])
            .collect();
        assert_eq!(names, [&b"user.kept"[..]]);
        // the skeleton still rebuilds the tar as it was
        let mut out = Vec::new();
        layer.skeleton.write_tar(&mut out, |_| Ok(&[][..])).unwrap();
        assert_eq!(out, tar);
    }

    #[test]
    fn refuses_sparse_files() {
        let forms: [&[(&str, &[u8])]; 3] = [
            &[
                ("GNU.sparse.size", b"1048576"),
                ("GNU.sparse.numblocks", b"1"),
                ("GNU.sparse.offset", b"0"),
                ("GNU.sparse.numbytes", b"5"),
            ],
            &[
                ("GNU.sparse.size", b"1048576"),
                ("GNU.sparse.numblocks", b"1"),
                ("GNU.sparse.map", b"0,5"),
                ("GNU.sparse.name", b"big"),
            ],
            &[
                ("GNU.sparse.major", b"1"),
                ("GNU.sparse.minor", b"0"),
                ("GNU.sparse.name", b"big"),
                ("GNU.sparse.realsize", b"1048576"),
            ],
        ];
        for (pax, version) in forms.iter().zip(["0.0", "0.1", "1.0"]) {
            let tar = pax_tar(
                pax,
                tar::EntryType::Regular,
                "GNUSparseFile.1/big",
                b"hello",
            );
            let e = refused(&tar);
            assert!(matches!(e, LayerError::Sparse { .. }), "{e}");
            assert!(
                e.to_string().contains(&format!("GNU.sparse {version}")),
                "{e}"
            );
            assert!(e.to_string().contains("big"), "{e}");
        }
        let mut gnu = header(tar::EntryType::GNUSparse, 0o644, 0);
        gnu.set_path("sparse").unwrap();
        gnu.as_gnu_mut().unwrap().set_real_size(0);
        gnu.set_cksum();
        let mut b = tar::Builder::new(Vec::new());
        b.append(&gnu, &[][..]).unwrap();
        let e = refused(&b.into_inner().unwrap());
        assert!(matches!(e, LayerError::Sparse { .. }), "{e}");
        assert!(e.to_string().contains("GNU type 'S'"), "{e}");
    }

    #[test]
    fn refuses_whiteouts_that_hide_no_name() {
        for name in [&b".wh..."[..], b".wh..", b"dir/.wh."] {
            let e = refused(&tar_with_raw_name(name, tar::EntryType::Regular, None));
            assert!(matches!(e, LayerError::BadWhiteout { .. }), "{e}");
        }
    }

    #[test]
    fn refuses_a_path_that_is_a_dir_and_a_file() {
        let mut b = tar::Builder::new(Vec::new());
        let file = |b: &mut tar::Builder<Vec<u8>>| {
            b.append_data(
                &mut header(tar::EntryType::Regular, 0o644, 1),
                "p",
                &b"x"[..],
            )
            .unwrap()
        };
        file(&mut b);
        b.append_data(
            &mut header(tar::EntryType::Directory, 0o755, 0),
            "p/",
            &[][..],
        )
        .unwrap();
        file(&mut b);
        let e = refused(&b.into_inner().unwrap());
        assert!(matches!(e, LayerError::KindChanged { .. }), "{e}");
        assert!(e.to_string().contains("/p"), "{e}");
        // the same kind twice is an update, and a whiteout beside a new entry is allowed
        let mut b = tar::Builder::new(Vec::new());
        file(&mut b);
        file(&mut b);
        b.append_data(
            &mut header(tar::EntryType::Regular, 0o644, 0),
            ".wh.p",
            &[][..],
        )
        .unwrap();
        parse_layer(&b.into_inner().unwrap()[..], &MemorySink::default()).unwrap();
    }

    #[test]
    fn refuses_pax_sizes_that_are_not_the_size() {
        for size in [&b"1e23"[..], b"-5", b"99999999999999999999999", b" 5"] {
            let tar = pax_tar(&[("size", size)], tar::EntryType::Regular, "f", b"hello");
            let e = refused(&tar);
            assert!(e.to_string().contains("pax size"), "{e}");
        }
        let tar = pax_tar(&[("size", b"5")], tar::EntryType::Regular, "f", b"hello");
        parse_layer(&tar[..], &MemorySink::default()).unwrap();
    }

    #[test]
    fn refuses_bodies_of_entries_that_keep_none() {
        for (name, kind) in [
            ("d", tar::EntryType::Directory),
            ("s", tar::EntryType::Symlink),
            (".wh.gone", tar::EntryType::Regular),
        ] {
            let mut h = header(kind, 0o644, 4);
            h.set_path(name).unwrap();
            if kind == tar::EntryType::Symlink {
                h.set_link_name("t").unwrap();
            }
            h.set_cksum();
            let mut b = tar::Builder::new(Vec::new());
            b.append(&h, &b"junk"[..]).unwrap();
            let e = refused(&b.into_inner().unwrap());
            assert!(matches!(e, LayerError::UnkeptBody { size: 4, .. }), "{e}");
        }
    }

    #[test]
    fn refuses_an_xattr_given_twice() {
        // two records with one key: PAX readers disagree on which wins
        let mut b = tar::Builder::new(Vec::new());
        let records = b"25 SCHILY.xattr.user.a=1\n25 SCHILY.xattr.user.a=2\n";
        let mut x = header(tar::EntryType::XHeader, 0o644, records.len() as u64);
        x.set_path("PaxHeaders/f").unwrap();
        x.set_cksum();
        b.append(&x, &records[..]).unwrap();
        b.append_data(&mut header(tar::EntryType::Regular, 0o644, 0), "f", &[][..])
            .unwrap();
        let e = refused(&b.into_inner().unwrap());
        assert!(e.to_string().contains("given twice"), "{e}");
    }

    #[test]
    fn keeps_record_padding_and_refuses_more_trailing_data() {
        let mut tar = sample_tar();
        let padded = tar.len().div_ceil(10240) * 10240;
        tar.resize(padded, 0);
        let sink = MemorySink::default();
        let layer = parse_layer(&tar[..], &sink).unwrap();
        let objects = sink.0.lock().unwrap();
        let mut out = Vec::new();
        layer
            .skeleton
            .write_tar(&mut out, |d| Ok(&objects[d][..]))
            .unwrap();
        assert_eq!(out, tar, "padding re-exports byte for byte");
        let mut tar = sample_tar();
        tar.resize(tar.len() + MAX_KEPT_BYTES as usize + 1, 0);
        let e = refused(&tar);
        assert!(matches!(e, LayerError::TrailingData { .. }), "{e}");
    }

    #[test]
    fn refuses_more_headers_than_the_entries_account_for() {
        // 40 entries, each with a PAX record just under the bound for one entry
        let big = vec![b'v'; MAX_KEPT_BYTES as usize - 4096];
        let mut b = tar::Builder::new(Vec::new());
        for i in 0..40 {
            b.append_pax_extensions([("comment", &big[..])]).unwrap();
            b.append_data(
                &mut header(tar::EntryType::Regular, 0o644, 1),
                format!("f{i}"),
                &b"x"[..],
            )
            .unwrap();
        }
        let e = refused(&b.into_inner().unwrap());
        assert!(
            matches!(e, LayerError::MetadataOutgrowsEntries { entries: 32, .. }),
            "{e}"
        );
    }

    #[test]
    fn refuses_headers_larger_than_the_bound() {
        let big = vec![b'v'; MAX_KEPT_BYTES as usize];
        let tar = pax_tar(&[("comment", &big)], tar::EntryType::Regular, "f", b"x");
        let e = refused(&tar);
        assert!(matches!(e, LayerError::TooMuchMetadata { .. }), "{e}");
    }

    #[test]
    fn parses_pax_times() {
        assert_eq!(parse_pax_time("12"), Some((12, 0)));
        assert_eq!(parse_pax_time("12.000000001"), Some((12, 1)));
        assert_eq!(parse_pax_time("-1.5"), Some((-2, 500_000_000)));
        assert_eq!(parse_pax_time("x"), None);
    }
}
