//! `fieldtune run` (being written).

/// Arguments of `fieldtune run`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Board file (boards/*.toml); the desktop board when absent.
    #[arg(long)]
    pub board: Option<std::path::PathBuf>,
}

/// Runs the service.
///
/// # Errors
/// Not written yet.
pub fn run(args: Args) -> anyhow::Result<()> {
    anyhow::bail!("{args:?}: not written yet")
}
