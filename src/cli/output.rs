//! Output helpers: human sizes and times, aligned tables, JSON documents, and [`outln!`],
//! which every command prints its stdout with.
//!
//! A reader that closes stdout early (`snap images | head -1`) is no error: the write fails
//! with `EPIPE` (Rust ignores `SIGPIPE`, so `println!` would panic there), [`line`] turns it
//! into [`StdoutClosed`], and `main` exits quietly with 141, the status a shell gives a
//! program that `SIGPIPE` ended. The daemons keep `SIGPIPE` ignored: a client hanging up on a
//! socket must not kill them.

use anyhow::Result;
use std::io::Write;

/// Stdout's reader went away: `main` exits 141 without a message.
#[derive(Debug, thiserror::Error)]
#[error("stdout was closed by its reader")]
pub struct StdoutClosed;

/// The exit status for [`StdoutClosed`]: 128 + SIGPIPE, what a shell reports for a program
/// killed by it.
pub const CLOSED_STATUS: i32 = 128 + 13;

/// Writes one line to stdout; `Err(StdoutClosed)` if its reader is gone.
pub fn line(args: std::fmt::Arguments<'_>) -> Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_fmt(args)
        .and_then(|()| out.write_all(b"\n"))
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::BrokenPipe => anyhow::Error::new(StdoutClosed),
            _ => anyhow::Error::new(e).context("writing to stdout"),
        })
}

/// `println!` for commands: writes a line to stdout and returns `anyhow::Result<()>`, an
/// [`StdoutClosed`] error once the reader is gone.
macro_rules! outln {
    ($($arg:tt)*) => {
        $crate::cli::output::line(format_args!($($arg)*))
    };
}
pub(crate) use outln;

/// `1536` → `1.5 KiB`.
pub fn size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// Prints rows as left-aligned columns under a header.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> Result<()> {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let row_line = |cells: Vec<String>| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        outln!("{}", padded.join("   ").trim_end())
    };
    row_line(header.iter().map(|h| h.to_string()).collect())?;
    for row in rows {
        row_line(row.clone())?;
    }
    Ok(())
}

/// Prints one JSON document on stdout.
pub fn json<T: serde::Serialize>(value: &T) -> Result<()> {
    outln!("{}", serde_json::to_string_pretty(value)?)
}
