//! Layer entries: one path of a layer with its kind and metadata.
//!
//! An [`EntryPath`] is always normalised and relative to the layer root, so whatever builds
//! one has already refused `..`, absolute paths, NUL bytes and names no filesystem can hold.

use super::Digest;
use serde::{Deserialize, Serialize};
use std::fmt;

/// A normalised path inside a layer: components separated by `/`, none empty, `.` or `..`,
/// no leading or trailing slash. The root directory is the empty path.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Serialize, Deserialize)]
pub struct EntryPath(Vec<u8>);

/// Why a path from an archive is not acceptable as an entry path.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("path {0:?} is absolute")]
    Absolute(String),
    #[error("path {0:?} contains a '..' component")]
    DotDot(String),
    #[error("path {0:?} contains a NUL byte")]
    Nul(String),
    #[error("path {path:?} has a name of {len} bytes; a name is at most {NAME_MAX} bytes")]
    NameTooLong { path: String, len: usize },
}

/// The longest name (one path component) Linux filesystems hold: a longer one could be stored
/// but never shown by a mount or written to a lower dir.
pub const NAME_MAX: usize = 255;

impl EntryPath {
    /// The root directory.
    pub fn root() -> Self {
        EntryPath(Vec::new())
    }

    /// Normalises a raw archive path: `./a//b/` becomes `a/b`; `.`, `./` and `` become the root.
    /// Absolute paths and `..` components are refused: a layer never names anything outside itself.
    /// So are names longer than [`NAME_MAX`] bytes.
    pub fn parse(raw: &[u8]) -> Result<Self, PathError> {
        let shown = || super::excerpt_bytes(raw);
        if raw.contains(&0) {
            return Err(PathError::Nul(shown()));
        }
        if raw.first() == Some(&b'/') {
            return Err(PathError::Absolute(shown()));
        }
        let mut out = Vec::with_capacity(raw.len());
        for component in raw.split(|&b| b == b'/') {
            match component {
                b"" | b"." => continue,
                b".." => return Err(PathError::DotDot(shown())),
                _ if component.len() > NAME_MAX => {
                    return Err(PathError::NameTooLong {
                        path: shown(),
                        len: component.len(),
                    });
                }
                _ => {
                    if !out.is_empty() {
                        out.push(b'/');
                    }
                    out.extend_from_slice(component);
                }
            }
        }
        Ok(EntryPath(out))
    }

    /// Builds a path from bytes already known to be normalised (from our own encoded files).
    pub fn from_normalised(bytes: Vec<u8>) -> Self {
        EntryPath(bytes)
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    pub fn is_root(&self) -> bool {
        self.0.is_empty()
    }

    /// The parent directory and the last component; `None` for the root.
    pub fn split_last(&self) -> Option<(EntryPath, &[u8])> {
        if self.is_root() {
            return None;
        }
        match self.0.iter().rposition(|&b| b == b'/') {
            Some(i) => Some((EntryPath(self.0[..i].to_vec()), &self.0[i + 1..])),
            None => Some((EntryPath::root(), &self.0[..])),
        }
    }

    /// The last component (empty for the root).
    pub fn file_name(&self) -> &[u8] {
        self.split_last().map(|(_, name)| name).unwrap_or(&[])
    }

    /// This path with `name` appended as a new last component.
    pub fn join(&self, name: &[u8]) -> EntryPath {
        let mut out = self.0.clone();
        if !out.is_empty() {
            out.push(b'/');
        }
        out.extend_from_slice(name);
        EntryPath(out)
    }

    /// Whether `self` is `other` or below it.
    pub fn starts_with(&self, other: &EntryPath) -> bool {
        other.is_root()
            || self.0 == other.0
            || (self.0.starts_with(&other.0) && self.0.get(other.0.len()) == Some(&b'/'))
    }

    /// The components from the root down.
    pub fn components(&self) -> impl Iterator<Item = &[u8]> {
        self.0.split(|&b| b == b'/').filter(|c| !c.is_empty())
    }
}

impl fmt::Display for EntryPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_root() {
            f.write_str("/")
        } else {
            write!(f, "/{}", String::from_utf8_lossy(&self.0))
        }
    }
}

impl fmt::Debug for EntryPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.to_string())
    }
}

/// One extended attribute.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct Xattr {
    pub name: Vec<u8>,
    pub value: Vec<u8>,
}

/// Ownership, permissions, time and xattrs of an entry.
#[derive(Clone, PartialEq, Eq, Debug, Default, Serialize, Deserialize)]
pub struct Meta {
    /// Permission bits including setuid, setgid and sticky (`0o7777`), never the file type.
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub mtime_sec: i64,
    pub mtime_nsec: u32,
    /// Sorted by name.
    pub xattrs: Vec<Xattr>,
}

/// What an entry is.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub enum Kind {
    Dir,
    /// A regular file whose content is the store object `digest`.
    File {
        digest: Digest,
        size: u64,
    },
    Symlink {
        target: Vec<u8>,
    },
    /// Another name for an earlier regular file of the same layer (layer entries only; the
    /// flattened index turns hardlinks into shared inodes).
    Hardlink {
        target: EntryPath,
    },
    CharDevice {
        major: u32,
        minor: u32,
    },
    BlockDevice {
        major: u32,
        minor: u32,
    },
    Fifo,
    /// Hides `path` and everything below it in the layers underneath (`.wh.NAME`).
    Whiteout,
    /// Hides everything below the directory `path` in the layers underneath (`.wh..wh..opq`).
    Opaque,
}

impl Kind {
    /// A short name for listings and errors.
    pub fn name(&self) -> &'static str {
        match self {
            Kind::Dir => "dir",
            Kind::File { .. } => "file",
            Kind::Symlink { .. } => "symlink",
            Kind::Hardlink { .. } => "hardlink",
            Kind::CharDevice { .. } => "char",
            Kind::BlockDevice { .. } => "block",
            Kind::Fifo => "fifo",
            Kind::Whiteout => "whiteout",
            Kind::Opaque => "opaque",
        }
    }
}

/// One path of a layer.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct Entry {
    pub path: EntryPath,
    pub kind: Kind,
    pub meta: Meta,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> EntryPath {
        EntryPath::parse(s.as_bytes()).unwrap()
    }

    #[test]
    fn normalises_paths() {
        assert_eq!(p("./a//b/"), p("a/b"));
        assert!(p(".").is_root());
        assert!(p("./").is_root());
        assert_eq!(p("a/./b").as_bytes(), b"a/b");
    }

    #[test]
    fn refuses_escaping_paths() {
        assert!(matches!(
            EntryPath::parse(b"../x"),
            Err(PathError::DotDot(_))
        ));
        assert!(matches!(
            EntryPath::parse(b"a/../../x"),
            Err(PathError::DotDot(_))
        ));
        assert!(matches!(
            EntryPath::parse(b"/etc/passwd"),
            Err(PathError::Absolute(_))
        ));
        assert!(matches!(EntryPath::parse(b"a\0b"), Err(PathError::Nul(_))));
    }

    #[test]
    fn refuses_names_no_filesystem_holds() {
        let longest = format!("d/{}", "n".repeat(NAME_MAX));
        assert!(EntryPath::parse(longest.as_bytes()).is_ok());
        let long = format!("d/{}/x", "n".repeat(NAME_MAX + 1));
        assert!(matches!(
            EntryPath::parse(long.as_bytes()),
            Err(PathError::NameTooLong { len: 256, .. })
        ));
    }

    #[test]
    fn splits_and_joins() {
        let (parent, name) = p("a/b/c")
            .split_last()
            .map(|(p, n)| (p, n.to_vec()))
            .unwrap();
        assert_eq!(parent, p("a/b"));
        assert_eq!(name, b"c");
        assert_eq!(p("a").split_last().unwrap().0, EntryPath::root());
        assert_eq!(EntryPath::root().join(b"x"), p("x"));
        assert!(p("a/b").starts_with(&p("a")));
        assert!(!p("ab").starts_with(&p("a")));
        assert!(p("a").starts_with(&EntryPath::root()));
    }
}
