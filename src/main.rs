//! The `sluice` binary: parse the command line, run the command (`sluice::commands`), print
//! an error and map it to the documented exit code. Nothing else.

use std::process::ExitCode;

use clap::Parser;

use sluice::cli::Cli;
use sluice::commands::{self, Failure};
use sluice::error::{EXIT_OK, EXIT_USAGE, Error};

/// mimalloc: the subset closure and the scanner make millions of small, short-lived
/// allocations (key texts, per-file buffers), where glibc's allocator spent about half the
/// closure's CPU consolidating free lists. Built without transparent huge pages (`no_thp`):
/// advising its first arena to use them made the kernel zero a 2 MiB page before `main`, a
/// millisecond of every `sluice run`.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let outcome = commands::run(Cli::parse());
    // A refresh that got SIGINT or SIGTERM ends on the signal thread, after its clean-up.
    sluice::data::refresh::interrupt::hold_if_signalled();
    let code = match outcome {
        Ok(code) => code,
        Err(Failure::Error(Error::Invalid { problems })) => {
            for p in &problems {
                eprintln!("error: {p}");
            }
            EXIT_USAGE
        }
        Err(Failure::Error(e)) => {
            eprintln!("error: {e}");
            e.exit_code()
        }
        Err(Failure::Io(e)) if e.kind() == std::io::ErrorKind::BrokenPipe => EXIT_OK,
        Err(Failure::Io(e)) => {
            eprintln!("error: cannot write output: {e}");
            EXIT_USAGE
        }
    };
    ExitCode::from(code as u8)
}
