//! A writer that hashes and counts what goes through it: the digest and size of a tar or a
//! blob as it is written, without reading it back.

use crate::model::{Digest, DigestHasher};
use std::io::Write;

/// Counts and hashes what goes through it to `inner`.
pub(super) struct HashingWriter<W> {
    inner: W,
    hasher: DigestHasher,
    written: u64,
}

impl<W> HashingWriter<W> {
    pub fn new(inner: W) -> Self {
        HashingWriter {
            inner,
            hasher: DigestHasher::new(),
            written: 0,
        }
    }

    /// Bytes written so far.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// The digest of what was written.
    pub fn finish(self) -> Digest {
        self.hasher.finish()
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}
