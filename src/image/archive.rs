//! Where an image's blobs come from: a directory (OCI layout) or an uncompressed tar
//! (OCI archive, docker archive), read in place through an index of its members.

use super::{ImageError, io_err};
use std::collections::HashMap;
use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

/// An opened member of a source: its reader and its size.
pub type Member<'a> = (Box<dyn Read + Send + 'a>, u64);

/// Random access to the files of an image source, by relative path.
pub trait BlobSource: Sync {
    /// A name for messages (`oci-layout:/path`, ...).
    fn name(&self) -> String;
    /// Opens `path` (relative, `/`-separated); `Ok(None)` if it is not there.
    fn open(&self, path: &str) -> Result<Option<Member<'_>>, ImageError>;

    /// Reads a whole (small) member.
    fn read(&self, path: &str, what: &str) -> Result<Vec<u8>, ImageError> {
        let (mut reader, _) = self.open(path)?.ok_or_else(|| ImageError::MissingBlob {
            source_name: self.name(),
            what: format!("{what} ({path})"),
        })?;
        let mut bytes = Vec::new();
        reader
            .read_to_end(&mut bytes)
            .map_err(|source| ImageError::Io {
                path: PathBuf::from(path),
                source,
            })?;
        Ok(bytes)
    }
}

/// A directory: an OCI image layout.
pub struct DirSource {
    pub root: PathBuf,
    pub kind: &'static str,
}

impl BlobSource for DirSource {
    fn name(&self) -> String {
        format!("{}:{}", self.kind, self.root.display())
    }

    fn open(&self, path: &str) -> Result<Option<Member<'_>>, ImageError> {
        let clean = normalise(path).ok_or_else(|| ImageError::MissingBlob {
            source_name: self.name(),
            what: path.into(),
        })?;
        let full = self.root.join(clean);
        match File::open(&full) {
            Ok(file) => {
                let size = file.metadata().map_err(io_err(&full))?.len();
                Ok(Some((
                    Box::new(BufReader::with_capacity(1 << 20, file)),
                    size,
                )))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(ImageError::Io {
                path: full,
                source: e,
            }),
        }
    }
}

/// An uncompressed tar whose members are read in place (one seek each).
pub struct TarSource {
    path: PathBuf,
    kind: &'static str,
    /// member path → (offset of the body, size)
    members: HashMap<String, (u64, u64)>,
    /// member path → symlink target (docker save links duplicate layer.tar files)
    links: HashMap<String, String>,
}

impl TarSource {
    /// Lists the members of `path` (seeking over bodies, not reading them). A file that is
    /// not a tar is an [`ImageError::UnknownSource`], a tar that cannot be read to its end a
    /// [`ImageError::MalformedTar`]; both name `shown` (the source, when `path` is its
    /// decompressed copy).
    pub fn open(path: &Path, shown: &Path, kind: &'static str) -> Result<Self, ImageError> {
        let file = File::open(path).map_err(io_err(path))?;
        let malformed = |e: std::io::Error| match starts_like_a_tar(path) {
            Ok(true) => ImageError::MalformedTar {
                path: shown.to_path_buf(),
                detail: crate::model::excerpt(&e.to_string()),
            },
            Ok(false) => ImageError::UnknownSource {
                path: shown.to_path_buf(),
            },
            Err(e) => e,
        };
        let mut archive = tar::Archive::new(file);
        let mut members = HashMap::new();
        let mut links = HashMap::new();
        for entry in archive.entries_with_seek().map_err(malformed)? {
            let entry = entry.map_err(malformed)?;
            let name = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
            let Some(name) = normalise(&name) else {
                continue;
            };
            match entry.header().entry_type() {
                tar::EntryType::Regular | tar::EntryType::Continuous => {
                    members.insert(name, (entry.raw_file_position(), entry.size()));
                }
                tar::EntryType::Symlink | tar::EntryType::Link => {
                    if let Some(target) = entry.link_name_bytes() {
                        let target = String::from_utf8_lossy(&target).into_owned();
                        let target = if entry.header().entry_type() == tar::EntryType::Symlink {
                            let dir = name.rsplit_once('/').map(|(d, _)| d).unwrap_or("");
                            format!("{dir}/{target}")
                        } else {
                            target
                        };
                        if let Some(target) = normalise(&target) {
                            links.insert(name, target);
                        }
                    }
                }
                _ => {}
            }
        }
        Ok(TarSource {
            path: path.to_path_buf(),
            kind,
            members,
            links,
        })
    }

    /// The same listing under another kind name (`oci-archive`, `docker-archive`).
    pub fn relabel(self, kind: &'static str) -> Self {
        TarSource { kind, ..self }
    }

    pub fn has(&self, member: &str) -> bool {
        self.members.contains_key(member)
    }
}

impl BlobSource for TarSource {
    fn name(&self) -> String {
        format!("{}:{}", self.kind, self.path.display())
    }

    fn open(&self, member: &str) -> Result<Option<Member<'_>>, ImageError> {
        let Some(mut name) = normalise(member) else {
            return Ok(None);
        };
        for _ in 0..8 {
            match self.links.get(&name) {
                Some(target) => name = target.clone(),
                None => break,
            }
        }
        let Some(&(offset, size)) = self.members.get(&name) else {
            return Ok(None);
        };
        let mut file = File::open(&self.path).map_err(io_err(&self.path))?;
        file.seek(SeekFrom::Start(offset))
            .map_err(io_err(&self.path))?;
        Ok(Some((
            Box::new(BufReader::with_capacity(1 << 20, file).take(size)),
            size,
        )))
    }
}

/// Whether the first block of `path` is a tar header: it has the `ustar` magic (POSIX and GNU
/// tars), or its checksum is right (old V7 tars have no magic).
fn starts_like_a_tar(path: &Path) -> Result<bool, ImageError> {
    let mut block = [0u8; 512];
    let mut file = File::open(path).map_err(io_err(path))?;
    let mut got = 0;
    while got < block.len() {
        match file.read(&mut block[got..]).map_err(io_err(path))? {
            0 => return Ok(false),
            n => got += n,
        }
    }
    if &block[257..262] == b"ustar" {
        return Ok(true);
    }
    let mut header = tar::Header::new_old();
    header.as_mut_bytes().copy_from_slice(&block);
    let sum: u32 = block[..148]
        .iter()
        .chain(&block[156..])
        .map(|&b| u32::from(b))
        .sum::<u32>()
        + 8 * u32::from(b' ');
    Ok(header.cksum().is_ok_and(|c| c == sum) && block.iter().any(|&b| b != 0))
}

/// `./a/../b` style paths inside an image source: resolves `.` and `..` lexically and refuses
/// anything that would leave the source.
fn normalise(path: &str) -> Option<String> {
    let mut parts: Vec<&str> = Vec::new();
    if path.starts_with('/') {
        return None;
    }
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            p => parts.push(p),
        }
    }
    (!parts.is_empty()).then(|| parts.join("/"))
}

#[cfg(test)]
mod tests {
    use super::normalise;

    #[test]
    fn normalises_member_paths() {
        assert_eq!(
            normalise("./blobs/sha256/ab").as_deref(),
            Some("blobs/sha256/ab")
        );
        assert_eq!(
            normalise("a/../b/layer.tar").as_deref(),
            Some("b/layer.tar")
        );
        assert_eq!(normalise("../x"), None);
        assert_eq!(normalise("/etc/passwd"), None);
    }
}
