//! `fieldtune label|undo|status` (being written).

/// Arguments of `fieldtune label`.
#[derive(Debug, clap::Args)]
pub struct LabelArgs {
    /// Class name.
    pub class: String,
}
/// Arguments of `fieldtune undo`.
#[derive(Debug, clap::Args)]
pub struct UndoArgs {}
/// Arguments of `fieldtune status`.
#[derive(Debug, clap::Args)]
pub struct StatusArgs {}

/// Sends a label.
///
/// # Errors
/// Not written yet.
pub fn label(args: LabelArgs) -> anyhow::Result<()> {
    anyhow::bail!("{args:?}: not written yet")
}
/// Sends an undo.
///
/// # Errors
/// Not written yet.
pub fn undo(args: UndoArgs) -> anyhow::Result<()> {
    anyhow::bail!("{args:?}: not written yet")
}
/// Asks for status.
///
/// # Errors
/// Not written yet.
pub fn status(args: StatusArgs) -> anyhow::Result<()> {
    anyhow::bail!("{args:?}: not written yet")
}
