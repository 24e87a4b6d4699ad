//! The thin `fieldtune` binary: parse the command line, run it, print the error chain.

use std::process::ExitCode;

use clap::Parser;

/// The system allocator, with the backbone's big per-frame blocks kept for the next frame
/// (src/heap.rs says why and how much).
#[global_allocator]
static ALLOCATOR: fieldtune::heap::GlobalArena = fieldtune::heap::GlobalArena;

fn main() -> ExitCode {
    fieldtune::heap::keep_resident_memory_flat();
    fieldtune::cli::init_logging();
    match fieldtune::cli::run(fieldtune::cli::Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            let unrecoverable = error.chain().any(|cause| {
                matches!(
                    cause.downcast_ref::<fieldtune::store::StoreError>(),
                    Some(fieldtune::store::StoreError::Unrecoverable { .. })
                ) || cause
                    .downcast_ref::<fieldtune::learner::LearnerError>()
                    .is_some_and(fieldtune::learner::LearnerError::is_unrecoverable)
            });
            if unrecoverable {
                ExitCode::from(fieldtune::learner::EXIT_STATE_UNRECOVERABLE)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}
