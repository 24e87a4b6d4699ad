//! The command-line front end: argument parsing and one file per subcommand. The binary
//! (`src/main.rs`) only parses and calls [`run`]; everything here reports errors with `anyhow`.

use clap::{Parser, Subcommand};

/// `println!` for the command line: when stdout is closed (`fieldtune predict … | head -1`), the
/// command ends quietly with status 0, as a Unix tool does, instead of panicking.
macro_rules! outln {
    ($($arg:tt)*) => {
        $crate::cli::write_stdout(format_args!($($arg)*))
    };
}

/// Writes one line to stdout; a closed pipe ends the process quietly (nothing is lost: the reader
/// asked for no more), any other write error ends it with a message.
pub fn write_stdout(args: std::fmt::Arguments) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_fmt(args).and_then(|()| out.write_all(b"\n")) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("error: cannot write to stdout: {e}");
        std::process::exit(74); // EX_IOERR
    }
}

pub mod bench;
pub mod client;
pub mod common;
pub mod curve;
pub mod embed;
pub mod eval;
pub mod journal;
pub mod predict;
pub mod run;
pub mod state;
pub mod train;

/// fieldtune: a field device that learns on the spot.
#[derive(Debug, Parser)]
#[command(name = "fieldtune", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Compute the features of an image folder (DIR/<class>/*.jpg) into the feature cache.
    Embed(embed::Args),
    /// Train a head on an image folder (with --val or a held-out part) and save it.
    Train(train::Args),
    /// Evaluate a head on a labelled image folder, next to the nearest-class-mean baseline.
    Eval(eval::Args),
    /// Learning curve: head vs nearest class mean when taught with k labelled images per class.
    Curve(curve::Args),
    /// Predict the class of images (or unknown).
    Predict(predict::Args),
    /// Measure decode, preprocess, backbone, head predict, online learn and retrain times.
    Bench(bench::Args),
    /// Run the device service loop (camera/folder → backbone → head; labels → learning).
    Run(run::Args),
    /// Label the current frame of a running service as CLASS (through its control socket).
    Label(client::LabelArgs),
    /// Undo the last label of a running service.
    Undo(client::UndoArgs),
    /// Show a running service's classes, counts, accuracy, fps and uptime.
    Status(client::StatusArgs),
    /// Rename or delete a class of a running service.
    #[command(subcommand)]
    Class(client::ClassCommand),
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
        Command::Embed(args) => embed::run(args),
        Command::Bench(args) => bench::run(args),
        Command::Train(args) => train::run(args),
        Command::Eval(args) => eval::run(args),
        Command::Curve(args) => curve::run(args),
        Command::Predict(args) => predict::run(args),
        Command::Run(args) => run::run(args),
        Command::Label(args) => client::label(args),
        Command::Undo(args) => client::undo(args),
        Command::Status(args) => client::status(args),
        Command::Class(command) => client::class(command),
        Command::State(command) => state::run(command),
    }
}

/// Logs through `tracing` to stderr as plain lines; under systemd without the time (journald adds
/// its own) and with each line's priority as an sd-daemon `<N>` prefix ([`journal`]).
/// `RUST_LOG` picks the level; the default is `info`.
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false);
    if journal::stderr_is_journal() {
        // journald stamps the time itself; the `<N>` prefix gives each line its priority.
        let format = tracing_subscriber::fmt::format().without_time();
        builder.event_format(journal::PriorityPrefix(format)).init();
    } else {
        builder.init();
    }
}
