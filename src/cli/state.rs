//! `fieldtune state …` (being written).

/// The `state` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Classes, counts, sizes, format version, journal length and health of a state directory.
    Inspect {
        /// The state directory.
        path: std::path::PathBuf,
    },
}

/// Runs a `state` subcommand.
///
/// # Errors
/// Not written yet.
pub fn run(command: Command) -> anyhow::Result<()> {
    anyhow::bail!("{command:?}: not written yet")
}
