//! The daemon's control socket (`containers/<name>/control.sock`): `snap commit` asks the
//! daemon to freeze the container's namespace while it reads the upper directory.
//!
//! Protocol: the client sends `freeze\n`; the daemon locks the filesystem's whole namespace and
//! answers `frozen\n`; the freeze lasts until the client closes the connection (or dies: the
//! kernel closes it), so a killed commit never leaves a container frozen.

use crate::fs::UnionFs;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// Serves the control socket at `path` for `fs`, in a background thread.
pub fn listen(path: &Path, fs: Arc<UnionFs>) -> std::io::Result<()> {
    let _ = std::fs::remove_file(path);
    let listener = UnixListener::bind(path)?;
    std::thread::Builder::new()
        .name("control".into())
        .spawn(move || {
            for stream in listener.incoming() {
                match stream {
                    // One thread per connection: a client that says nothing holds up no other.
                    Ok(stream) => {
                        let fs = fs.clone();
                        std::thread::spawn(move || {
                            if let Err(e) = serve_one(stream, &fs) {
                                tracing::warn!("control connection: {e}");
                            }
                        });
                    }
                    Err(e) => tracing::warn!("control socket: {e}"),
                }
            }
        })?;
    Ok(())
}

fn serve_one(stream: UnixStream, fs: &UnionFs) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    if line.trim() != "freeze" {
        return Err(std::io::Error::other(format!("unknown request {line:?}")));
    }
    let guard = fs.freeze();
    tracing::info!("frozen for a commit");
    (&stream).write_all(b"frozen\n")?;
    // Until the client closes the connection (or sends anything).
    let _ = reader.read(&mut [0u8; 1]);
    drop(guard);
    tracing::info!("thawed");
    Ok(())
}

/// A frozen container: thawed when dropped.
pub struct Frozen {
    _stream: UnixStream,
}

/// Freezes the container served at `path`: changes through its daemon wait until the
/// returned guard is dropped.
pub fn freeze(path: &Path) -> std::io::Result<Frozen> {
    let stream = UnixStream::connect(path)?;
    // A daemon busy with a long copy-up holds the lock; waiting for it is right, forever is not.
    stream.set_read_timeout(Some(Duration::from_secs(60)))?;
    (&stream).write_all(b"freeze\n")?;
    let mut answer = String::new();
    BufReader::new(&stream).read_line(&mut answer)?;
    if answer.trim() != "frozen" {
        return Err(std::io::Error::other(format!(
            "the daemon answered {answer:?} to freeze"
        )));
    }
    Ok(Frozen { _stream: stream })
}
