//! The `geodyn` binary: parse the command line, run, map errors to exit codes.

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = geodyn::cli::Cli::parse();
    match geodyn::cli::run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
