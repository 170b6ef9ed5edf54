//! Writing a directory tree as a layer tar: a rootfs as it is (`snap import DIR`), or a
//! container's upper directory as the OCI layer of its changes (`snap commit`), where
//! whiteouts become `.wh.NAME` entries, opaque directories get a `.wh..wh..opq` entry and
//! overlayfs's private xattrs are left out.
//!
//! The walk is sorted, so the same tree gives the same tar. Every regular file is read whole
//! and checked unchanged (size, mtime, ctime) after the read; one that changed is read again,
//! so the tar never holds half of a write made while it was being written.

use super::hashing::HashingWriter;
use super::{ImageError, Progress, TempFile, io_err};
use crate::layer::{ParsedLayer, TarDigest, overlay, parse_layer_with};
use crate::model::{Digest, DigestHasher};
use crate::store::Store;
use std::collections::{HashMap, HashSet};
use std::fs::{File, Metadata};
use std::io::{BufReader, Read, Seek, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

/// What the tree is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TreeKind {
    /// A root filesystem: every entry as it is.
    Rootfs,
    /// An overlayfs upper directory: whiteouts and opaque markers become OCI's.
    Upper,
}

/// Files up to this size are read into memory; bigger ones are streamed (or copied to tmp/
/// first, once they changed while being streamed).
const IN_MEMORY_LIMIT: u64 = 8 << 20;
/// How often a file that keeps changing is read again before the tar is given up.
const MAX_READS: usize = 20;

/// Writes `root` as a layer tar and parses that tar into `store`, in two threads joined by a
/// pipe, as layer `index` of its image (for errors).
pub fn store_tree(
    store: &Store,
    root: &Path,
    kind: TreeKind,
    index: usize,
    progress: &dyn Progress,
) -> Result<ParsedLayer, ImageError> {
    store_tree_with(store, root, kind, index, progress, false)
}

/// [`store_tree`] of an upper directory that is handed over: nobody writes it any more and
/// it is removed afterwards (containerd's unpack staging). Its files become objects by
/// being linked into the store, not copied ([`Store::link_object`]), unless they are setuid,
/// setgid or have file capabilities.
pub fn adopt_tree(
    store: &Store,
    root: &Path,
    index: usize,
    progress: &dyn Progress,
) -> Result<ParsedLayer, ImageError> {
    store_tree_with(store, root, TreeKind::Upper, index, progress, true)
}

fn store_tree_with(
    store: &Store,
    root: &Path,
    kind: TreeKind,
    index: usize,
    progress: &dyn Progress,
    adopt: bool,
) -> Result<ParsedLayer, ImageError> {
    // Big files are streamed as they are read; one that changes meanwhile spoils the attempt,
    // and the next attempt copies it to tmp/ first (what the spoiled one stored is garbage).
    let mut snapshot_first = HashSet::new();
    loop {
        match store_tree_once(store, root, kind, index, progress, &snapshot_first, adopt) {
            Err(ImageError::Io { path, source })
                if source
                    .get_ref()
                    .is_some_and(|e| e.is::<ChangedWhileStreamed>())
                    && snapshot_first.len() < MAX_READS =>
            {
                tracing::info!(
                    "{} changed while it was read; copying it first",
                    path.display()
                );
                snapshot_first.insert(path);
            }
            result => return result,
        }
    }
}

fn store_tree_once(
    store: &Store,
    root: &Path,
    kind: TreeKind,
    index: usize,
    progress: &dyn Progress,
    snapshot_first: &HashSet<PathBuf>,
    adopt: bool,
) -> Result<ParsedLayer, ImageError> {
    let (reader, writer) = crate::sys::big_pipe().map_err(io_err(root))?;
    let tmp = store.tmp_dir();
    // Adopting: the writer names each body's file, in tar order, for the parser's sink.
    let (bodies, body_paths) = crossbeam_channel::unbounded::<Option<BodySource>>();
    let bodies = adopt.then_some(bodies);
    // The writer hashes the tar as it writes it, on the other core.
    let (tar_digest, tar_digest_out) = crossbeam_channel::bounded(1);
    std::thread::scope(|scope| {
        let writing = scope.spawn(|| {
            // Owned here, so that a writer that fails drops it and the parser waiting for the
            // digest hears so instead of waiting forever.
            let tar_digest = tar_digest;
            let mut hashing = HashingWriter::new(writer);
            write_tree_tar(
                root,
                kind,
                &tmp,
                snapshot_first,
                progress,
                bodies,
                &mut hashing,
            )?;
            let _ = tar_digest.send(hashing.finish());
            Ok(())
        });
        let reader = BufReader::with_capacity(1 << 20, reader);
        let digest = TarDigest::Writer(Box::new(|| {
            tar_digest_out
                .recv()
                .map_err(|_| std::io::Error::other("the tar writer stopped"))
        }));
        let parsed = if adopt {
            let sink = AdoptingSink {
                store,
                paths: body_paths,
            };
            parse_layer_with(reader, &sink, digest)
        } else {
            parse_layer_with(reader, store, digest)
        };
        let written = writing.join().unwrap_or_else(|_| {
            Err(ImageError::Io {
                path: root.to_path_buf(),
                source: std::io::Error::other("the tar writer panicked"),
            })
        });
        let parsed = parsed.map_err(|source| ImageError::Layer {
            index,
            blob: root.display().to_string(),
            source,
        });
        match (written, parsed) {
            (Ok(()), parsed) => parsed,
            // The parser stopped reading: its error is the cause.
            (Err(ImageError::Io { source, .. }), Err(e))
                if source.kind() == std::io::ErrorKind::BrokenPipe =>
            {
                Err(e)
            }
            // The writer stopped: the parser only saw a short tar.
            (Err(e), _) => Err(e),
        }
    })
}

/// Writes `root` as a layer tar to `out`: sorted walk, owners, modes, nanosecond mtimes and
/// xattrs in PAX records, hardlinks as links to their first name, devices and fifos; sockets
/// are skipped. `tmp` is a directory on any filesystem for snapshots of the big files in
/// `snapshot_first`; other big files are streamed.
fn write_tree_tar(
    root: &Path,
    kind: TreeKind,
    tmp: &Path,
    snapshot_first: &HashSet<PathBuf>,
    progress: &dyn Progress,
    bodies: Option<crossbeam_channel::Sender<Option<BodySource>>>,
    out: impl Write,
) -> Result<(), ImageError> {
    // Big writes: a pipe fed 8 KiB at a time costs a thread wake-up per write.
    let mut builder = tar::Builder::new(std::io::BufWriter::with_capacity(1 << 20, out));
    builder.mode(tar::HeaderMode::Complete);
    let mut first_names: HashMap<(u64, u64), PathBuf> = HashMap::new();
    let mut snapshots = 0u64;
    let pid = std::process::id();
    for item in walkdir::WalkDir::new(root)
        .follow_links(false)
        .sort_by_file_name()
    {
        let item = item.map_err(|e| ImageError::Io {
            path: e.path().unwrap_or(root).to_path_buf(),
            source: e
                .into_io_error()
                .unwrap_or_else(|| std::io::Error::other("filesystem loop")),
        })?;
        let path = item.path();
        let rel = path.strip_prefix(root).unwrap_or(path);
        let rel = if rel.as_os_str().is_empty() {
            Path::new(".")
        } else {
            rel
        };
        // OCI gives `.wh.` names to whiteouts and opaque markers only: a file of that name
        // would be read back as one, and hide what it names in the layers below.
        if rel
            .file_name()
            .is_some_and(|n| n.as_encoded_bytes().starts_with(b".wh."))
        {
            return Err(ImageError::WhiteoutName {
                path: rel.to_path_buf(),
            });
        }
        let meta = std::fs::symlink_metadata(path).map_err(io_err(path))?;
        let file_type = meta.file_type();
        if file_type.is_socket() {
            continue;
        }
        if kind == TreeKind::Upper && overlay::is_whiteout(meta.mode(), meta.rdev()) {
            let name = whiteout_name(rel, b".wh.", rel.file_name().unwrap_or_default());
            append_marker(&mut builder, &name, &meta)?;
            continue;
        }
        let mut xattrs = crate::sys::xattrs(path).map_err(io_err(path))?;
        let opaque = kind == TreeKind::Upper
            && file_type.is_dir()
            && xattrs.iter().any(|(n, v)| overlay::is_opaque_marker(n, v));
        if kind == TreeKind::Upper {
            xattrs.retain(|(name, _)| !overlay::is_private_xattr(name));
        }
        // A further name of a file already in the tar is a tar hardlink: no body to read.
        let link_to = (file_type.is_file() && meta.nlink() > 1)
            .then(|| first_names.get(&(meta.dev(), meta.ino())).cloned())
            .flatten();
        let body = if !file_type.is_file() || link_to.is_some() {
            None
        } else if meta.len() > IN_MEMORY_LIMIT && !snapshot_first.contains(path) {
            let file = File::open(path).map_err(io_err(path))?;
            let meta = file.metadata().map_err(io_err(path))?;
            Some(StableBody {
                meta,
                data: BodyData::Streamed(file),
            })
        } else {
            snapshots += 1;
            let snapshot = tmp.join(format!("commit-{pid}-{snapshots}"));
            Some(read_stable(path, &snapshot)?)
        };
        // A file's header describes the state its body was read in.
        let (meta, body) = match body {
            Some(StableBody { meta, data }) => (meta, Some(data)),
            None => (meta, None),
        };
        let meta = &meta;
        append_pax(&mut builder, path, meta, &xattrs)?;
        let mut header = tar::Header::new_gnu();
        header.set_metadata_in_mode(meta, tar::HeaderMode::Complete);
        header.set_mode(meta.mode() & 0o7777);
        let written = if let Some(first) = link_to {
            header.set_entry_type(tar::EntryType::Link);
            header.set_size(0);
            builder.append_link(&mut header, rel, first)
        } else if let Some(body) = body {
            if meta.nlink() > 1 {
                first_names.insert((meta.dev(), meta.ino()), rel.to_path_buf());
            }
            progress.bytes(meta.len());
            if let Some(bodies) = &bodies {
                // Read from a copy: the file itself changed, so it is not adopted.
                let source = (!snapshot_first.contains(path)).then(|| BodySource {
                    path: path.to_path_buf(),
                    read_as: meta.clone(),
                    privileged: meta.mode() & 0o6000 != 0
                        || xattrs.iter().any(|(n, _)| n == b"security.capability"),
                });
                // The parser outlives the writer; a send fails only if it stopped early.
                let _ = bodies.send(source);
            }
            let reader = body.reader(meta).map_err(io_err(path))?;
            builder.append_data(&mut header, rel, reader)
        } else if file_type.is_symlink() {
            let target = std::fs::read_link(path).map_err(io_err(path))?;
            builder.append_link(&mut header, rel, target)
        } else {
            if file_type.is_char_device() || file_type.is_block_device() {
                let rdev = meta.rdev();
                header
                    .set_device_major(rustix::fs::major(rdev))
                    .map_err(io_err(path))?;
                header
                    .set_device_minor(rustix::fs::minor(rdev))
                    .map_err(io_err(path))?;
            }
            builder.append_data(&mut header, rel, std::io::empty())
        };
        written.map_err(io_err(path))?;
        if opaque {
            let name = whiteout_name(&rel.join("x"), b".wh..wh..opq", Default::default());
            append_marker(&mut builder, &name, meta)?;
        }
    }
    builder
        .into_inner()
        .map_err(io_err(root))?
        .flush()
        .map_err(io_err(root))
}

/// The file a body was read from, and its metadata when it was read.
struct BodySource {
    path: PathBuf,
    read_as: Metadata,
    /// setuid, setgid or with file capabilities: never an object as it is.
    privileged: bool,
}

/// The parser's object sink when adopting a tree: each body is hashed as it comes and its
/// file, named by the writer in the same order, is linked into the store if it is still the
/// file that was read; otherwise the body itself is stored.
struct AdoptingSink<'a> {
    store: &'a Store,
    paths: crossbeam_channel::Receiver<Option<BodySource>>,
}

impl crate::layer::ObjectSink for AdoptingSink<'_> {
    fn put(&self, body: &mut dyn Read, size: u64) -> std::io::Result<Digest> {
        let source = self
            .paths
            .recv()
            .map_err(|_| std::io::Error::other("the tar writer named no file for a body"))?;
        let Some(source) = source else {
            return self
                .store
                .put_stream(body, size)
                .map_err(std::io::Error::other);
        };
        // Small bodies are kept, to be stored if the file cannot be adopted.
        let (digest, bytes) = if size <= 1 << 20 {
            let mut bytes = Vec::with_capacity(size as usize);
            body.read_to_end(&mut bytes)?;
            (Digest::of(&bytes), Some(bytes))
        } else {
            let mut hasher = DigestHasher::new();
            let mut buf = vec![0u8; 256 * 1024];
            loop {
                let n = body.read(&mut buf)?;
                if n == 0 {
                    break;
                }
                hasher.update(&buf[..n]);
            }
            (hasher.finish(), None)
        };
        let same_file = source.read_as.len() == size
            && std::fs::symlink_metadata(&source.path)
                .is_ok_and(|now| unchanged(&now, &source.read_as));
        if same_file
            && !source.privileged
            && self
                .store
                .link_object(&source.path, &digest, size)
                .map_err(std::io::Error::other)?
        {
            return Ok(digest);
        }
        let stored = match bytes {
            Some(bytes) => self.store.put_bytes(&bytes),
            None => self.store.put_stream(&mut File::open(&source.path)?, size),
        }
        .map_err(std::io::Error::other)?;
        if stored != digest {
            return Err(std::io::Error::other(format!(
                "{} changed while it was stored",
                source.path.display()
            )));
        }
        Ok(digest)
    }
}

/// `dir/<prefix><name>`: the tar name of a whiteout (`.wh.NAME`) or an opaque marker.
fn whiteout_name(rel: &Path, prefix: &[u8], name: &std::ffi::OsStr) -> PathBuf {
    use std::os::unix::ffi::OsStrExt;
    let mut marker = prefix.to_vec();
    marker.extend_from_slice(name.as_bytes());
    rel.parent()
        .unwrap_or(Path::new(""))
        .join(std::ffi::OsStr::from_bytes(&marker))
}

/// A whiteout or opaque marker: an empty regular file with mode 0, owned and dated like the
/// upper entry it stands for.
fn append_marker<W: Write>(
    builder: &mut tar::Builder<W>,
    name: &Path,
    meta: &Metadata,
) -> Result<(), ImageError> {
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(tar::EntryType::Regular);
    header.set_mode(0);
    header.set_uid(meta.uid().into());
    header.set_gid(meta.gid().into());
    header.set_mtime(meta.mtime().max(0) as u64);
    header.set_size(0);
    builder
        .append_data(&mut header, name, std::io::empty())
        .map_err(io_err(name))
}

/// PAX records for what a plain header cannot hold: nanosecond mtimes and xattrs.
fn append_pax<W: Write>(
    builder: &mut tar::Builder<W>,
    path: &Path,
    meta: &Metadata,
    xattrs: &[(Vec<u8>, Vec<u8>)],
) -> Result<(), ImageError> {
    let mut pax: Vec<(String, Vec<u8>)> = Vec::new();
    if meta.mtime_nsec() != 0 {
        pax.push((
            "mtime".into(),
            format!("{}.{:09}", meta.mtime(), meta.mtime_nsec()).into_bytes(),
        ));
    }
    for (name, value) in xattrs {
        pax.push((
            format!("SCHILY.xattr.{}", String::from_utf8_lossy(name)),
            value.clone(),
        ));
    }
    if !pax.is_empty() {
        builder
            .append_pax_extensions(pax.iter().map(|(k, v)| (k.as_str(), &v[..])))
            .map_err(io_err(path))?;
    }
    Ok(())
}

/// The bytes of one file as they were at one moment, and its metadata at that moment.
struct StableBody {
    meta: Metadata,
    data: BodyData,
}

enum BodyData {
    Memory(Vec<u8>),
    /// A copy in tmp/, removed when dropped.
    Snapshot(File, TempFile),
    /// The file itself, checked unchanged once read to the end.
    Streamed(File),
}

impl BodyData {
    /// The body of a file whose header was made from `meta`.
    fn reader(self, meta: &Metadata) -> std::io::Result<Box<dyn Read>> {
        let size = meta.len();
        Ok(match self {
            BodyData::Streamed(file) => Box::new(CheckedReader {
                file: file.take(size),
                before: meta.clone(),
                got: 0,
            }),
            BodyData::Memory(bytes) => Box::new(std::io::Cursor::new(bytes)),
            BodyData::Snapshot(mut file, temp) => {
                file.rewind()?;
                Box::new(SnapshotReader {
                    file: file.take(size),
                    _temp: temp,
                })
            }
        })
    }
}

struct SnapshotReader {
    file: std::io::Take<File>,
    _temp: TempFile,
}

impl Read for SnapshotReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.file.read(buf)
    }
}

/// A big file that changed while it was streamed into the tar.
#[derive(Debug)]
struct ChangedWhileStreamed;

impl std::fmt::Display for ChangedWhileStreamed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the file changed while it was read")
    }
}

impl std::error::Error for ChangedWhileStreamed {}

/// Reads a file to its size and fails, instead of ending, if it changed meanwhile.
struct CheckedReader {
    file: std::io::Take<File>,
    before: Metadata,
    got: u64,
}

impl Read for CheckedReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.file.read(buf)?;
        self.got += n as u64;
        if n == 0 && !buf.is_empty() {
            let after = self.file.get_ref().metadata()?;
            if self.got != self.before.len() || !unchanged(&self.before, &after) {
                return Err(std::io::Error::other(ChangedWhileStreamed));
            }
        }
        Ok(n)
    }
}

/// Whether two stats of one file show the same content.
fn unchanged(a: &Metadata, b: &Metadata) -> bool {
    (
        a.ino(),
        a.len(),
        a.mtime(),
        a.mtime_nsec(),
        a.ctime(),
        a.ctime_nsec(),
    ) == (
        b.ino(),
        b.len(),
        b.mtime(),
        b.mtime_nsec(),
        b.ctime(),
        b.ctime_nsec(),
    )
}

/// Reads `path` until one read sees no change from start to end.
fn read_stable(path: &Path, snapshot: &Path) -> Result<StableBody, ImageError> {
    for _ in 0..MAX_READS {
        let mut file = File::open(path).map_err(io_err(path))?;
        let before = file.metadata().map_err(io_err(path))?;
        let (data, got) = if before.len() <= IN_MEMORY_LIMIT {
            let mut bytes = Vec::with_capacity(before.len() as usize);
            (&mut file)
                .take(before.len() + 1)
                .read_to_end(&mut bytes)
                .map_err(io_err(path))?;
            let got = bytes.len() as u64;
            (BodyData::Memory(bytes), got)
        } else {
            let temp = TempFile(snapshot.to_path_buf());
            let mut copy = File::options()
                .read(true)
                .write(true)
                .create_new(true)
                .open(snapshot)
                .map_err(io_err(snapshot))?;
            // std's copy uses copy_file_range: the kernel copies, or reflinks where it can.
            let got = std::io::copy(&mut (&mut file).take(before.len() + 1), &mut copy)
                .map_err(io_err(path))?;
            (BodyData::Snapshot(copy, temp), got)
        };
        let after = file.metadata().map_err(io_err(path))?;
        if got == before.len() && unchanged(&before, &after) {
            return Ok(StableBody { meta: before, data });
        }
    }
    Err(ImageError::Io {
        path: path.to_path_buf(),
        source: std::io::Error::other(format!(
            "the file changed during each of {MAX_READS} reads; stop its writer and try again"
        )),
    })
}
