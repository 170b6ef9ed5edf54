//! Gzip on every core: the input is cut into chunks of [`CHUNK`] bytes, each compressed on
//! its own thread into a complete gzip member (no timestamp, no name, level 6), and the
//! members are written in order. A gzip file may hold several members; every gzip reader
//! (Go's, zlib's, `gzip -d`, containerd, umoci, skopeo, docker) reads them as one stream.
//! The output depends only on the input, never on scheduling.

use std::collections::VecDeque;
use std::io::Write;
use std::thread::JoinHandle;

/// Bytes per gzip member.
pub const CHUNK: usize = 4 << 20;

/// A writer that gzips what it is given, a chunk per thread.
pub struct ParallelGzip<W: Write> {
    out: W,
    chunk: Vec<u8>,
    in_flight: VecDeque<JoinHandle<std::io::Result<Vec<u8>>>>,
    limit: usize,
    members: u64,
}

impl<W: Write> ParallelGzip<W> {
    pub fn new(out: W) -> Self {
        ParallelGzip {
            out,
            chunk: Vec::with_capacity(CHUNK),
            in_flight: VecDeque::new(),
            limit: std::thread::available_parallelism().map_or(2, |n| n.get()),
            members: 0,
        }
    }

    /// Hands the current chunk to a thread, first writing out the oldest member if as many
    /// are in flight as there are cores.
    fn send(&mut self) -> std::io::Result<()> {
        if self.chunk.is_empty() {
            return Ok(());
        }
        if self.in_flight.len() >= self.limit {
            self.write_oldest()?;
        }
        let chunk = std::mem::replace(&mut self.chunk, Vec::with_capacity(CHUNK));
        self.in_flight
            .push_back(std::thread::spawn(move || member(&chunk)));
        self.members += 1;
        Ok(())
    }

    fn write_oldest(&mut self) -> std::io::Result<()> {
        if let Some(worker) = self.in_flight.pop_front() {
            let bytes = worker
                .join()
                .map_err(|_| std::io::Error::other("a gzip thread panicked"))??;
            self.out.write_all(&bytes)?;
        }
        Ok(())
    }

    /// Compresses what is left and returns the inner writer. Empty input gives one empty
    /// member, so the output is always a gzip stream.
    pub fn finish(mut self) -> std::io::Result<W> {
        self.send()?;
        if self.members == 0 {
            self.out.write_all(&member(&[])?)?;
        }
        while !self.in_flight.is_empty() {
            self.write_oldest()?;
        }
        self.out.flush()?;
        Ok(self.out)
    }
}

impl<W: Write> Write for ParallelGzip<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = buf.len().min(CHUNK - self.chunk.len());
        self.chunk.extend_from_slice(&buf[..n]);
        if self.chunk.len() == CHUNK {
            self.send()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// One complete gzip member of `data`.
fn member(data: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut encoder = flate2::GzBuilder::new().mtime(0).write(
        Vec::with_capacity(data.len() / 2),
        flate2::Compression::default(),
    );
    encoder.write_all(data)?;
    encoder.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut gz = ParallelGzip::new(Vec::new());
        // Uneven writes, as a tar writer makes them.
        for piece in data.chunks(777_777) {
            gz.write_all(piece).unwrap();
        }
        gz.finish().unwrap()
    }

    #[test]
    fn round_trips_deterministically_across_members() {
        let data: Vec<u8> = (0..3 * CHUNK + 12_345)
            .map(|i| (i % 251) as u8 ^ (i / 4096) as u8)
            .collect();
        let packed = gzip(&data);
        assert_eq!(packed, gzip(&data), "the same input gives the same bytes");
        let mut unpacked = Vec::new();
        flate2::read::MultiGzDecoder::new(&packed[..])
            .read_to_end(&mut unpacked)
            .unwrap();
        assert_eq!(unpacked, data);
        let mut empty = Vec::new();
        flate2::read::MultiGzDecoder::new(&gzip(&[])[..])
            .read_to_end(&mut empty)
            .unwrap();
        assert!(empty.is_empty());
    }
}
