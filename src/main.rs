//! The `geodyn` binary: parse the command line, run, map errors to exit codes.
//!
//! SIGPIPE keeps Rust's default (ignored): a reader that goes away
//! (`geodyn network | head`) makes our writes fail with `EPIPE`, which the
//! CLI's output sink turns into a quiet exit 0.

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = geodyn::cli::Cli::parse();
    match geodyn::cli::run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => geodyn::cli::failure(&e),
    }
}
