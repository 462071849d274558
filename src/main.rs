//! The `geodyn` binary: parse the command line, run, map errors to exit codes.

use clap::Parser;

fn main() -> std::process::ExitCode {
    // Like other Unix tools, stop quietly when the reader of our output goes
    // away (`geodyn network | head`) instead of panicking on a broken pipe.
    #[cfg(unix)]
    // SAFETY: restoring the default disposition of one signal, before any thread starts.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let cli = geodyn::cli::Cli::parse();
    match geodyn::cli::run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
