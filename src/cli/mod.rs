//! The command-line front end: argument parsing and one file per subcommand. The binary
//! (`src/main.rs`) only parses and calls [`run`]; everything here reports errors with `anyhow`.

use clap::{Parser, Subcommand};

pub mod client;
pub mod run;
pub mod state;

/// fieldtune: a field device that learns on the spot.
#[derive(Debug, Parser)]
#[command(name = "fieldtune", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the device service loop (camera/folder → backbone → head; labels → learning).
    Run(run::Args),
    /// Label the current frame of a running service as CLASS (through its control socket).
    Label(client::LabelArgs),
    /// Undo the last label of a running service.
    Undo(client::UndoArgs),
    /// Show a running service's classes, counts, accuracy, fps and uptime.
    Status(client::StatusArgs),
    /// Inspect, export or import a device state.
    #[command(subcommand)]
    State(state::Command),
}

/// Runs one parsed command line.
///
/// # Errors
/// Whatever the subcommand reports, with context naming the file and the fix.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Run(args) => run::run(args),
        Command::Label(args) => client::label(args),
        Command::Undo(args) => client::undo(args),
        Command::Status(args) => client::status(args),
        Command::State(command) => state::run(command),
    }
}

/// Logs through `tracing` to stderr as plain lines (journald adds its own timestamps under systemd).
/// `RUST_LOG` picks the level; the default is `info`.
pub fn init_logging() {
    let under_systemd = std::env::var_os("JOURNAL_STREAM").is_some();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false);
    if under_systemd {
        builder.without_time().init();
    } else {
        builder.init();
    }
}
