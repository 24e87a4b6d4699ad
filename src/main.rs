//! The thin `fieldtune` binary: parse the command line, run it, print the error chain, and exit with
//! a status that tells systemd whether a restart can help.
//!
//! # Exit statuses
//! The unit (`boards/fieldtune.service`) lists the three "a restart cannot fix this" statuses in
//! `RestartPreventExitStatus=`, so the service stays down with the message in the journal instead of
//! restart-looping into `StartLimitBurst=`. The numbers are the BSD `sysexits.h` ones.
//!
//! | status | meaning | what a person does |
//! |---|---|---|
//! | 0 | clean stop (SIGTERM) | — |
//! | 1 | any other error: a busy state directory or socket, a full disk, a camera backend fault | often transient: systemd restarts |
//! | 2 | bad command line (clap) | fix the command |
//! | 65 (`EX_DATAERR`) | the saved state is damaged beyond recovery, or was written by a newer fieldtune | `fieldtune state inspect DIR`, restore, or `--start-fresh` |
//! | 66 (`EX_NOINPUT`) | wrong model: the descriptor or ONNX file is missing, damaged or does not match, or the state was made with another backbone | restore `models/`, or move the state aside |
//! | 78 (`EX_CONFIG`) | the board file cannot be read or is invalid | fix the key the message names |

use std::process::ExitCode;

use clap::Parser;

use fieldtune::backbone::BackboneError;
use fieldtune::store::StoreError;

/// The system allocator, with the backbone's big per-frame blocks kept for the next frame
/// (src/heap.rs says why and how much).
#[global_allocator]
static ALLOCATOR: fieldtune::heap::GlobalArena = fieldtune::heap::GlobalArena;

/// The saved state is damaged beyond recovery (or newer than this build).
const EXIT_STATE: u8 = fieldtune::learner::EXIT_STATE_UNRECOVERABLE;
/// The model is missing, damaged, or not the one the state was made with.
const EXIT_MODEL: u8 = 66;
/// The board file is unreadable or invalid.
const EXIT_CONFIG: u8 = 78;

/// The status a store error asks for, if a restart cannot fix it.
fn store_status(e: &StoreError) -> Option<u8> {
    match e {
        StoreError::Unrecoverable { .. } | StoreError::NewerVersion { .. } => Some(EXIT_STATE),
        StoreError::OtherBackbone { .. } => Some(EXIT_MODEL),
        _ => None,
    }
}

/// Whether a backbone error is the model file's fault (not a failed run).
fn bad_model(e: &BackboneError) -> bool {
    matches!(
        e,
        BackboneError::Read { .. }
            | BackboneError::Checksum { .. }
            | BackboneError::NotOnnx { .. }
            | BackboneError::Graph { .. }
            | BackboneError::OutputShape { .. }
    )
}

/// The exit status for an error: the first cause in the chain that a restart cannot fix decides.
/// (`#[error(transparent)]` wrappers hide their inner error from the chain: they are opened here.)
fn exit_status(error: &anyhow::Error) -> u8 {
    use fieldtune::embedder::EmbedError;
    use fieldtune::learner::LearnerError;
    use fieldtune::service::ServiceError;
    for cause in error.chain() {
        let store = cause.downcast_ref::<StoreError>().or_else(|| {
            match cause.downcast_ref::<LearnerError>() {
                Some(LearnerError::Store(e)) => Some(e),
                _ => None,
            }
        });
        if let Some(status) = store.and_then(store_status) {
            return status;
        }
        let backbone = cause.downcast_ref::<BackboneError>().or_else(|| {
            match cause.downcast_ref::<EmbedError>() {
                Some(EmbedError::Backbone(e)) => Some(e),
                _ => None,
            }
        });
        if cause.is::<fieldtune::model::ModelError>()
            || backbone.is_some_and(bad_model)
            || matches!(
                cause.downcast_ref::<ServiceError>(),
                Some(ServiceError::HeadMismatch { .. })
            )
        {
            return EXIT_MODEL;
        }
        if cause.is::<fieldtune::board::BoardError>() {
            return EXIT_CONFIG;
        }
    }
    1
}

fn main() -> ExitCode {
    fieldtune::heap::keep_resident_memory_flat();
    fieldtune::cli::init_logging();
    match fieldtune::cli::run(fieldtune::cli::Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            let text = format!("error: {error:#}\n");
            if fieldtune::cli::journal::stderr_is_journal() {
                // Every line at priority err, so `journalctl -p err` shows why the service stopped.
                eprint!("{}", fieldtune::cli::journal::prefix_lines(3, &text));
            } else {
                eprint!("{text}");
            }
            ExitCode::from(exit_status(&error))
        }
    }
}
