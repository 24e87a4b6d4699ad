//! `fieldtune label|undo|status|class`: clients of a running service's control socket.

use crate::learner::names::{escaped, shown};

use std::path::PathBuf;

use anyhow::Context;

use crate::board::Board;
use crate::control::{ControlClient, Reply, Request};
use crate::service::Status;

/// The environment variable naming the service's runtime directory (default `/run/fieldtune`,
/// systemd's `RuntimeDirectory=fieldtune`); the tests point it elsewhere.
pub const RUNTIME_DIR_ENV: &str = "FIELDTUNE_RUNTIME_DIR";

/// Where the systemd service's socket is, if it is there: `$FIELDTUNE_RUNTIME_DIR/control.sock`,
/// by default `/run/fieldtune/control.sock`.
pub fn service_socket() -> PathBuf {
    std::env::var_os(RUNTIME_DIR_ENV)
        .map_or_else(|| PathBuf::from("/run/fieldtune"), PathBuf::from)
        .join("control.sock")
}

/// Where the service listens.
#[derive(Debug, Clone, clap::Args)]
pub struct SocketArgs {
    /// Control socket path [default: /run/fieldtune/control.sock when it exists (the installed
    /// service), else the desktop board's control.socket].
    #[arg(long, value_name = "PATH")]
    pub socket: Option<PathBuf>,
    /// Board file whose control.socket to use.
    #[arg(long, value_name = "FILE")]
    pub board: Option<PathBuf>,
}

impl SocketArgs {
    /// `--socket`, else `--board`'s socket, else the installed service's socket when it exists,
    /// else the desktop board's.
    fn path(&self) -> anyhow::Result<PathBuf> {
        if let Some(p) = &self.socket {
            return Ok(p.clone());
        }
        let board = match &self.board {
            Some(path) => Board::load(path)?,
            None => {
                let service = service_socket();
                if service.exists() {
                    return Ok(service);
                }
                Board::desktop()?
            }
        };
        board.control_socket.with_context(|| {
            format!(
                "board {} has no control socket (control.socket = \"none\")",
                board.name
            )
        })
    }

    fn ask(&self, request: &Request) -> anyhow::Result<serde_json::Value> {
        let path = self.path()?;
        let mut client = ControlClient::connect(&path).with_context(|| {
            if self.socket.is_none() && self.board.is_none() {
                format!(
                    "no service found: {} (the installed service's) does not exist and none listens at {} (the desktop board's); pass --socket PATH or --board FILE",
                    service_socket().display(),
                    path.display()
                )
            } else {
                format!("no service at {}", path.display())
            }
        })?;
        let Reply { ok, error, data } = client.request(request)?;
        if !ok {
            anyhow::bail!("{}", error.unwrap_or_else(|| "the service refused".into()));
        }
        Ok(data.unwrap_or(serde_json::Value::Null))
    }
}

/// Arguments of `fieldtune label`.
#[derive(Debug, clap::Args)]
pub struct LabelArgs {
    /// Class name (a new name starts a new class).
    pub class: String,
    /// Label this earlier frame (its `seq` in the prediction lines) instead of the current one.
    #[arg(long, value_name = "SEQ")]
    pub frame: Option<u64>,
    #[command(flatten)]
    pub socket: SocketArgs,
}
/// Arguments of `fieldtune undo`.
#[derive(Debug, clap::Args)]
pub struct UndoArgs {
    #[command(flatten)]
    pub socket: SocketArgs,
}
/// Arguments of `fieldtune status`.
#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    /// Print the status as one JSON object.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub socket: SocketArgs,
}

/// Labels the current frame.
///
/// # Errors
/// No service at the socket, or the service could not save the label.
pub fn label(args: LabelArgs) -> anyhow::Result<()> {
    let data = args.socket.ask(&Request::Label {
        class: args.class.clone(),
        frame: args.frame,
    })?;
    outln!(
        "labelled frame {} ({}) as {}{} — {} frame(s) — it was predicted {}",
        data["seq"],
        escaped(data["origin"].as_str().unwrap_or("?")),
        shown(data["class"].as_str().unwrap_or(&args.class)),
        if data["created"].as_bool() == Some(true) {
            " (a new class)"
        } else {
            ""
        },
        data["frames"],
        escaped(data["was_predicted"].as_str().unwrap_or("unknown"))
    );
    Ok(())
}

/// Undoes the last label.
///
/// # Errors
/// No service at the socket, or nothing to undo.
pub fn undo(args: UndoArgs) -> anyhow::Result<()> {
    let data = args.socket.ask(&Request::Undo)?;
    outln!(
        "undone: {} ({} stored frame(s) removed)",
        escaped(data["undone"].as_str().unwrap_or("?")),
        data["samples"]
    );
    Ok(())
}

/// `fieldtune class …`: rename or delete a class of a running service.
#[derive(Debug, clap::Subcommand)]
pub enum ClassCommand {
    /// Renames class OLD to NEW (undoable with `fieldtune undo`).
    Rename {
        /// The class's name now.
        old: String,
        /// Its new name.
        new: String,
        #[command(flatten)]
        socket: SocketArgs,
    },
    /// Deletes class NAME and its stored samples (undoable with `fieldtune undo`).
    Delete {
        /// The class.
        name: String,
        #[command(flatten)]
        socket: SocketArgs,
    },
}

/// Renames or deletes a class.
///
/// # Errors
/// No service at the socket, no such class, a taken name, or the change could not be saved.
pub fn class(command: ClassCommand) -> anyhow::Result<()> {
    match command {
        ClassCommand::Rename { old, new, socket } => {
            socket.ask(&Request::Rename {
                from: old.clone(),
                to: new.clone(),
            })?;
            outln!(
                "renamed class {} to {} (`fieldtune undo` takes it back)",
                shown(&old),
                shown(&new)
            );
        }
        ClassCommand::Delete { name, socket } => {
            let data = socket.ask(&Request::Delete {
                class: name.clone(),
            })?;
            outln!(
                "deleted class {} with {} stored samples (`fieldtune undo` brings it back)",
                shown(&name),
                data["samples"]
            );
        }
    }
    Ok(())
}

fn percent(x: Option<f64>) -> String {
    x.map_or_else(|| "-".into(), |v| format!("{:.0} %", v * 100.0))
}

/// Shows the service's status.
///
/// # Errors
/// No service at the socket.
pub fn status(args: StatusArgs) -> anyhow::Result<()> {
    let data = args.socket.ask(&Request::Status)?;
    if args.json {
        outln!("{data}");
        return Ok(());
    }
    let s: Status =
        serde_json::from_value(data).context("the service sent an unexpected status")?;
    outln!("board     {}", escaped(&s.board));
    outln!("source    {}", escaped(&s.source));
    outln!(
        "uptime    {:.0} s, {} frames, {:.1} fps, {} faults",
        s.uptime_s,
        s.frames,
        s.fps,
        s.faults
    );
    outln!(
        "labels    {} ({} undone), {} retrains{}",
        s.labels,
        s.undos,
        s.retrains,
        if s.retraining { ", retraining now" } else { "" }
    );
    outln!(
        "accuracy  {} on labelled frames, {} on replayed frames of known classes",
        percent(s.labelled_accuracy),
        percent(s.replay_accuracy)
    );
    outln!(
        "latency   backbone {:.1} ms, decode {:.1} ms, preprocess {:.1} ms, head {:.2} ms, label {:.1} ms",
        s.latency.backbone_ms, s.latency.decode_ms, s.latency.preprocess_ms, s.latency.head_ms, s.latency.label_ms
    );
    outln!(
        "backbone  {} runs, {:.1} per minute; {} frames unchanged and skipped ({:.1} %)",
        s.backbone_runs,
        s.backbone_runs_per_minute,
        s.skipped_frames,
        s.skipped_fraction * 100.0
    );
    if let Some(f) = &s.fleet {
        outln!(
            "fleet     group {}: {} messages shared ({} dropped), {} received, {} merged, {} taken out, {} refused",
            escaped(&f.group),
            f.published,
            f.dropped,
            f.received,
            f.merged,
            f.removed,
            f.refused
        );
    }
    if s.classes.is_empty() {
        outln!("classes   none yet: label a frame (fieldtune label CLASS)");
    } else {
        outln!("classes");
    }
    for c in &s.classes {
        outln!(
            "  {:<20} {} stored",
            c.name.escape_debug().to_string(),
            c.samples
        );
    }
    Ok(())
}
