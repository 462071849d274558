//! Where the command line's words go. Standard output carries a command's
//! product (a report, a table), so every write to it returns an error that
//! ends the command: a reader that went away (`geodyn network | head`) is a
//! quiet success, as in ripgrep, and any other failure (`> /dev/full`) an
//! error exit with a message. Standard error carries progress and notes,
//! which are best-effort: the work's results are in files and on stdout, and
//! a full or closed log must not stop an hours-long encode.
//!
//! SIGPIPE stays ignored (Rust's default), so a broken pipe is an `EPIPE`
//! write error handled here rather than a signal that kills the process.

use std::fmt;
use std::io::{self, Write};
use std::process::ExitCode;

/// A write to standard output failed.
#[derive(Debug, thiserror::Error)]
#[error("cannot write to standard output")]
pub struct OutputError {
    #[source]
    source: io::Error,
}

impl OutputError {
    /// The reader of our output went away: not a failure of ours.
    fn is_broken_pipe(&self) -> bool {
        self.source.kind() == io::ErrorKind::BrokenPipe
    }
}

/// Standard output, as a sink whose writes return errors.
pub struct Out {
    stdout: io::Stdout,
}

impl Out {
    pub fn new() -> Out {
        Out {
            stdout: io::stdout(),
        }
    }

    /// Writes one line.
    pub fn line(&mut self, args: fmt::Arguments) -> Result<(), OutputError> {
        writeln!(self.stdout.lock(), "{args}").map_err(|source| OutputError { source })
    }

    /// Flushes what is buffered (a write error can surface only here).
    pub fn flush(&mut self) -> Result<(), OutputError> {
        self.stdout.flush().map_err(|source| OutputError { source })
    }
}

/// `outln!(out, "...", args)`: writes a line to `out` and returns from the
/// enclosing function on a write error.
macro_rules! outln {
    ($out:expr) => {
        $out.line(format_args!(""))?
    };
    ($out:expr, $($arg:tt)*) => {
        $out.line(format_args!($($arg)*))?
    };
}
pub(crate) use outln;

/// Writes a note line to standard error, best-effort (see the module doc):
/// its failure is ignored on purpose.
pub fn note(args: fmt::Arguments) {
    let _ = writeln!(io::stderr().lock(), "{args}");
}

/// `noteln!("...", args)`: a best-effort line on standard error.
macro_rules! noteln {
    ($($arg:tt)*) => {
        $crate::cli::output::note(format_args!($($arg)*))
    };
}
pub(crate) use noteln;

/// The error's message and its causes, `: `-separated, each once: a cause
/// whose text the previous message already ends with (a library that both
/// embeds its source in its message and returns it as `source()`) is skipped.
pub fn error_chain(e: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in e.chain() {
        let s = cause.to_string();
        if text.is_empty() {
            text = s;
        } else if !s.is_empty() && !text.ends_with(&s) {
            text.push_str(": ");
            text.push_str(&s);
        }
    }
    text
}

/// Whether `e` is a broken pipe on standard output.
fn reader_went_away(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<OutputError>()
            .is_some_and(|o| o.is_broken_pipe())
    })
}

/// The exit code of a failed command: 0 when the reader of standard output
/// went away, else 1 after the message on standard error (if it still works).
pub fn failure(e: &anyhow::Error) -> ExitCode {
    if reader_went_away(e) {
        return ExitCode::SUCCESS;
    }
    note(format_args!("error: {}", error_chain(e)));
    ExitCode::FAILURE
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chain_shows_each_cause_once() {
        let io = io::Error::new(io::ErrorKind::NotFound, "gone (os error 2)");
        // A cause already at the end of the message above it is not repeated.
        let e = anyhow::Error::new(io).context("x.idx: I/O error: gone (os error 2)");
        assert_eq!(error_chain(&e), "x.idx: I/O error: gone (os error 2)");
        let io = io::Error::new(io::ErrorKind::NotFound, "gone (os error 2)");
        let e = anyhow::Error::new(io).context("x.idx: I/O error");
        assert_eq!(error_chain(&e), "x.idx: I/O error: gone (os error 2)");
    }

    #[test]
    fn broken_pipe_is_a_quiet_success() {
        let pipe = OutputError {
            source: io::Error::from(io::ErrorKind::BrokenPipe),
        };
        assert!(reader_went_away(
            &anyhow::Error::new(pipe).context("summary")
        ));
        let full = OutputError {
            source: io::Error::from(io::ErrorKind::StorageFull),
        };
        assert!(!reader_went_away(&anyhow::Error::new(full)));
        // A broken pipe elsewhere (a file write) is an ordinary error.
        let elsewhere = io::Error::from(io::ErrorKind::BrokenPipe);
        assert!(!reader_went_away(&anyhow::Error::new(elsewhere)));
    }
}
