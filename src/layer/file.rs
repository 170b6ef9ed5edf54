//! The per-layer file under `layers/<diff-id>`: entries, object digests and tar skeleton.
//!
//! Format (all integers little-endian):
//!
//! ```text
//! "SNAPLYR1"
//! then three sections, each: u64 compressed length, u64 plain length, the zstd bytes of
//!   postcard(Vec<Entry>)      entries in tar order
//!   postcard(Vec<Digest>)     distinct object digests, sorted (what gc marks)
//!   postcard(Skeleton)        the tar skeleton
//! ```
//!
//! Each section is compressed on its own so that `snap gc` reads only the digests.

use super::{LayerError, Skeleton};
use crate::model::{Digest, Entry, Kind};
use serde::Serialize;
use serde::de::DeserializeOwned;

const MAGIC: &[u8; 8] = b"SNAPLYR1";
const ZSTD_LEVEL: i32 = 3;

/// Everything snapfs keeps about one layer besides its contents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerFile {
    pub entries: Vec<Entry>,
    pub skeleton: Skeleton,
}

impl LayerFile {
    /// The distinct content digests the entries reference, sorted.
    pub fn digests(&self) -> Vec<Digest> {
        let mut out: Vec<Digest> = self
            .entries
            .iter()
            .filter_map(|e| match e.kind {
                Kind::File { digest, .. } => Some(digest),
                _ => None,
            })
            .collect();
        out.sort();
        out.dedup();
        out
    }

    pub fn encode(&self) -> Result<Vec<u8>, LayerError> {
        let mut out = MAGIC.to_vec();
        put_section(&mut out, &self.entries)?;
        put_section(&mut out, &self.digests())?;
        put_section(&mut out, &self.skeleton)?;
        Ok(out)
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, LayerError> {
        let [entries, _, skeleton] = sections(bytes)?;
        Ok(LayerFile {
            entries: get_section(entries)?,
            skeleton: get_section(skeleton)?,
        })
    }
}

/// Reads only the digest section of an encoded layer file.
pub fn decode_digests(bytes: &[u8]) -> Result<Vec<Digest>, LayerError> {
    let [_, digests, _] = sections(bytes)?;
    get_section(digests)
}

fn put_section<T: Serialize>(out: &mut Vec<u8>, value: &T) -> Result<(), LayerError> {
    let plain =
        postcard::to_stdvec(value).map_err(|e| LayerError::CorruptFile(format!("encode: {e}")))?;
    let packed = zstd::bulk::compress(&plain, ZSTD_LEVEL)
        .map_err(|e| LayerError::CorruptFile(format!("compress: {e}")))?;
    out.extend_from_slice(&(packed.len() as u64).to_le_bytes());
    out.extend_from_slice(&(plain.len() as u64).to_le_bytes());
    out.extend_from_slice(&packed);
    Ok(())
}

/// One section: (uncompressed length, compressed bytes).
type Section<'a> = (usize, &'a [u8]);

fn sections(bytes: &[u8]) -> Result<[Section<'_>; 3], LayerError> {
    let corrupt = |what: &str| LayerError::CorruptFile(what.to_string());
    let mut rest = bytes
        .strip_prefix(MAGIC)
        .ok_or_else(|| corrupt("bad magic"))?;
    let take_u64 = |rest: &mut &[u8]| -> Result<u64, LayerError> {
        let (head, tail) = rest
            .split_at_checked(8)
            .ok_or_else(|| corrupt("truncated section header"))?;
        *rest = tail;
        Ok(u64::from_le_bytes(
            head.try_into().map_err(|_| corrupt("section header"))?,
        ))
    };
    let mut out = [(0usize, &[][..]); 3];
    for slot in &mut out {
        let packed_len = take_u64(&mut rest)? as usize;
        let plain_len = take_u64(&mut rest)? as usize;
        let (packed, tail) = rest
            .split_at_checked(packed_len)
            .ok_or_else(|| corrupt("truncated section"))?;
        *slot = (plain_len, packed);
        rest = tail;
    }
    if !rest.is_empty() {
        return Err(corrupt("trailing bytes"));
    }
    Ok(out)
}

fn get_section<T: DeserializeOwned>((plain_len, packed): Section<'_>) -> Result<T, LayerError> {
    let plain = zstd::bulk::decompress(packed, plain_len)
        .map_err(|e| LayerError::CorruptFile(format!("decompress: {e}")))?;
    postcard::from_bytes(&plain).map_err(|e| LayerError::CorruptFile(format!("decode: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layer::parse::tests::{MemorySink, sample_tar};
    use crate::layer::parse_layer;

    #[test]
    fn round_trips() {
        let layer = parse_layer(&sample_tar()[..], &MemorySink::default()).unwrap();
        let file = LayerFile {
            entries: layer.entries,
            skeleton: layer.skeleton,
        };
        let bytes = file.encode().unwrap();
        assert_eq!(LayerFile::decode(&bytes).unwrap(), file);
        assert_eq!(decode_digests(&bytes).unwrap(), file.digests());
        assert!(LayerFile::decode(&bytes[..bytes.len() - 1]).is_err());
        assert!(LayerFile::decode(b"nonsense").is_err());
    }
}
