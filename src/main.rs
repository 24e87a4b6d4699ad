//! The thin `fieldtune` binary: parse the command line, run it, print the error chain.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    fieldtune::heap::keep_resident_memory_flat();
    fieldtune::cli::init_logging();
    match fieldtune::cli::run(fieldtune::cli::Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
