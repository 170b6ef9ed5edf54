//! The tar skeleton: an imported layer tar with its file bodies cut out.
//!
//! Concatenating the segments, with each `Object` replaced by the object's bytes, gives the
//! original uncompressed tar byte for byte (headers, PAX records, padding, end blocks and any
//! trailing bytes included), hence the same diff_id.

use super::LayerError;
use crate::model::Digest;
use serde::{Deserialize, Serialize};
use std::io::{Read, Write};

/// One run of the original tar.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub enum Segment {
    /// Bytes kept as they were: headers, extension records, padding.
    Raw(Vec<u8>),
    /// The body of a regular file: `size` bytes of the store object `digest`.
    Object { digest: Digest, size: u64 },
}

/// The segments of one layer tar, in order.
#[derive(Clone, PartialEq, Eq, Debug, Default, Serialize, Deserialize)]
pub struct Skeleton {
    pub segments: Vec<Segment>,
}

impl Skeleton {
    /// The length of the reassembled tar.
    pub fn tar_size(&self) -> u64 {
        self.segments
            .iter()
            .map(|s| match s {
                Segment::Raw(bytes) => bytes.len() as u64,
                Segment::Object { size, .. } => *size,
            })
            .sum()
    }

    /// Writes the original tar to `out`, reading bodies through `open_object`.
    pub fn write_tar<W: Write, R: Read>(
        &self,
        out: &mut W,
        mut open_object: impl FnMut(&Digest) -> std::io::Result<R>,
    ) -> Result<(), LayerError> {
        for segment in &self.segments {
            match segment {
                Segment::Raw(bytes) => out.write_all(bytes).map_err(LayerError::Write)?,
                Segment::Object { digest, size } => {
                    let fail = |source| LayerError::Reassemble {
                        digest: *digest,
                        source,
                    };
                    let reader = open_object(digest).map_err(fail)?;
                    let copied = std::io::copy(&mut reader.take(*size), out).map_err(fail)?;
                    if copied != *size {
                        return Err(fail(std::io::Error::new(
                            std::io::ErrorKind::UnexpectedEof,
                            format!("object has {copied} bytes, the layer needs {size}"),
                        )));
                    }
                }
            }
        }
        Ok(())
    }
}
