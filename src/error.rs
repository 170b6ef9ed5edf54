//! How an error is told to a person: its message, then each of its causes once.
//!
//! The crate's error variants name what they concern and keep the error that caused them as
//! their `source()`, without repeating it in their own message: printing both made `snap`
//! say "No such file or directory (os error 2): No such file or directory (os error 2)".
//! [`Chain`] prints the whole chain, joined by `: `, wherever an error leaves the crate as
//! text: `main`, logs, fsck's problems, the snapshotter's gRPC statuses. It also skips a
//! cause whose text the message so far already quotes, for the errors of other crates (and
//! of variants that quote their cause inside their message) that do print their source.

use std::fmt;

/// Displays an error and its causes (`source()` chain), each once.
pub struct Chain<'a>(pub &'a (dyn std::error::Error + 'static));

impl fmt::Display for Chain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut text = self.0.to_string();
        let mut cause = self.0.source();
        while let Some(error) = cause {
            let more = error.to_string();
            if !more.is_empty() && !text.contains(&more) {
                text.push_str(": ");
                text.push_str(&more);
            }
            cause = error.source();
        }
        f.write_str(&text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("{path}")]
    struct Quiet {
        path: &'static str,
        #[source]
        source: std::io::Error,
    }

    #[derive(Debug, thiserror::Error)]
    #[error("{path}: {source}")]
    struct Loud {
        path: &'static str,
        #[source]
        source: Quiet,
    }

    fn not_found() -> std::io::Error {
        std::io::Error::from(std::io::ErrorKind::NotFound)
    }

    #[test]
    fn each_cause_is_printed_once() {
        let quiet = Quiet {
            path: "/r/objects",
            source: not_found(),
        };
        assert_eq!(
            Chain(&quiet).to_string(),
            format!("/r/objects: {}", not_found())
        );
        // A message that repeats its source (another crate's) is not followed by it again.
        let loud = Loud {
            path: "/r",
            source: quiet,
        };
        assert_eq!(
            Chain(&loud).to_string(),
            format!("/r: /r/objects: {}", not_found())
        );
        // A cause quoted inside the message above it is not said again either.
        let e = anyhow::Error::new(std::io::Error::other("bad size"))
            .context("layer 0: entry f: bad size (pax)")
            .context("importing /x");
        assert_eq!(
            Chain(e.as_ref()).to_string(),
            "importing /x: layer 0: entry f: bad size (pax)"
        );
    }
}
