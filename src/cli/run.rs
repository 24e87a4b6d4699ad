//! `fieldtune run`: builds the device from a board file (the desktop board by default) and runs the
//! service loop until SIGTERM/SIGINT; `--bench-frames N` runs N frames and prints the loop's figures.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::board::{Board, Overrides};
use crate::button::{self, ButtonDriver};
use crate::control::ControlServer;
use crate::embedder::Embedder;
use crate::learner::Learner;
use crate::model::ModelDescriptor;
use crate::notify::Notifier;
use crate::service::output::PredictionOutput;
use crate::service::{self, Command, Parts, Service};
use crate::store::lock::{Holder, StateLock};
use crate::store::IfLost;

/// Arguments of `fieldtune run`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Board file (boards/*.toml); the desktop board when absent.
    #[arg(long, value_name = "FILE")]
    pub board: Option<PathBuf>,
    /// State directory (overrides store.dir).
    #[arg(long, value_name = "DIR")]
    pub state: Option<PathBuf>,
    /// Control socket path (overrides control.socket).
    #[arg(long, value_name = "PATH")]
    pub socket: Option<PathBuf>,
    /// Web page address `IP:PORT` (port 0: any free one), or `none` (overrides [web]).
    #[arg(long, value_name = "ADDR")]
    pub web: Option<String>,
    /// Replay this image folder instead of the board's source.
    #[arg(long, value_name = "DIR")]
    pub folder: Option<PathBuf>,
    /// Pace frames at this rate; 0 = as fast as possible (overrides source.fps).
    #[arg(long, value_name = "FPS")]
    pub fps: Option<f64>,
    /// Where predictions go: `stdout`, `none` or a file (overrides output.predictions).
    #[arg(long, value_name = "SINK")]
    pub predictions: Option<String>,
    /// Benchmark: run this many frames as fast as possible, label every 10th with its folder's
    /// class, and print frames per second, per-stage latency and memory.
    #[arg(long, value_name = "N")]
    pub bench_frames: Option<u64>,
    /// Folder replay: show each image for this many frames (overrides source.repeat_each).
    #[arg(long, value_name = "N")]
    pub repeat_each: Option<u32>,
    /// Skip the backbone on unchanged frames, `on` or `off` (overrides source.skip_unchanged;
    /// the threshold stays source.skip_threshold).
    #[arg(long, value_name = "on|off", value_parser = ["on", "off"])]
    pub skip_unchanged: Option<String>,
    /// When the saved state cannot be fully recovered, start from what can be (damaged files are
    /// kept aside as *.corrupt) instead of refusing to start.
    #[arg(long)]
    pub start_fresh: bool,
}

/// Resident and peak memory of this process in KiB, from /proc (Linux), for the benchmark.
fn rss_kib() -> (Option<u64>, Option<u64>) {
    let Ok(status) = std::fs::read_to_string("/proc/self/status") else {
        return (None, None);
    };
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// Samples the resident memory on its own thread while the benchmark runs, to show whether it
/// stays flat.
struct RssSampler {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<Vec<u64>>,
}

impl RssSampler {
    fn start(every: Duration) -> RssSampler {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            let mut series = Vec::new();
            let mut next = Instant::now() + every;
            while !flag.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(200));
                if Instant::now() >= next {
                    series.extend(rss_kib().0);
                    next += every;
                }
            }
            series
        });
        RssSampler { stop, thread }
    }

    fn finish(self) -> Vec<u64> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().unwrap_or_default()
    }
}

/// The board with the command line's overrides, validated once (src/board/overrides.rs).
fn load_board(args: &Args) -> anyhow::Result<Board> {
    let overrides = Overrides {
        state: args.state.clone(),
        socket: args.socket.clone(),
        web: args.web.clone(),
        folder: args.folder.clone(),
        fps: args.fps,
        predictions: args.predictions.clone(),
        repeat_each: args.repeat_each,
        skip_unchanged: args.skip_unchanged.as_deref().map(|s| s == "on"),
        bench: args.bench_frames.is_some(),
    };
    Ok(Board::load_with(args.board.as_deref(), &overrides)?)
}

fn load_descriptor(path: &Path) -> anyhow::Result<ModelDescriptor> {
    // The desktop board names the checkout's models/; from elsewhere, look in the usual places.
    if path.is_relative() && !path.exists() {
        return ModelDescriptor::load_default()
            .with_context(|| format!("model descriptor {} not found here", path.display()));
    }
    Ok(ModelDescriptor::load(path)?)
}

/// Runs the service.
///
/// # Errors
/// A bad board file, a missing model, camera or state directory, a busy socket: each with the
/// file and the fix.
pub fn run(args: Args) -> anyhow::Result<()> {
    let board = load_board(&args)?;
    let notifier = Notifier::from_env().unwrap_or_else(|e| {
        tracing::warn!("{e}");
        Notifier::disabled()
    });
    // Install the handlers first: a SIGTERM during the slow start is then a clean stop too.
    let stop = service::stop_on_signals().context("cannot install the SIGTERM/SIGINT handlers")?;
    // One process per state directory, refused before anything else is opened.
    let holder = Holder::this_process(board.control_socket.as_deref());
    let lock = StateLock::acquire(&board.store.dir, &holder)?;

    let source = crate::source::waiting::open_or_wait(&board.source)
        .with_context(|| format!("board {}: cannot open the frame source", board.name))?;
    let (commands_tx, commands_rx) = mpsc::channel::<Command>();
    let control = match &board.control_socket {
        Some(path) => Some(ControlServer::bind(
            path,
            board.control_limits,
            commands_tx.clone(),
            Command::control,
        )?),
        None => None,
    };
    let live = board.web.as_ref().map(|_| crate::web::LiveView::new());
    let web = match (&board.web, &live) {
        (Some(config), Some(live)) => match crate::web::WebServer::bind(
            config,
            commands_tx.clone(),
            Command::control,
            std::sync::Arc::clone(live),
        ) {
            Ok(server) => {
                tracing::info!("web page at http://{}/", server.address());
                Some(server)
            }
            // The device's job is to classify: a page that cannot start is reported, not fatal.
            Err(e) => {
                tracing::warn!("no web page: {e}");
                None
            }
        },
        _ => None,
    };
    // Connects in the background: a broker that is down is retried, never waited for.
    let mqtt = match &board.mqtt {
        Some(config) => Some(
            crate::mqtt::MqttLink::start(
                config,
                &board.name,
                commands_tx.clone(),
                Command::control,
            )
            .with_context(|| format!("board {}: cannot start MQTT", board.name))?,
        ),
        None => None,
    };
    let buttons = match button::open(&board.buttons)? {
        Some(panel) => {
            let driver = ButtonDriver::new(panel, board.buttons.class_pins.len(), &board.buttons);
            Some(button::spawn(driver, commands_tx.clone(), Command::button))
        }
        None => None,
    };

    let load_start = Instant::now();
    let descriptor = load_descriptor(&board.model.descriptor)?;
    let embedder = Embedder::load_with_threads(&descriptor, board.model.threads)?;
    tracing::info!(
        "model {} loaded in {:.1} s ({} inference threads)",
        descriptor.name,
        load_start.elapsed().as_secs_f64(),
        board.model.threads
    );
    let mut config = service::learner_config(&board);
    if args.start_fresh {
        config.if_lost = IfLost::StartFromWhatIsLeft;
    }
    let (learner, report) =
        Learner::open(&board.store.dir, embedder.backbone_id(), config, Some(lock))?;
    // The fleet's persistent session: what the group said while this device was away comes now.
    let fleet = match (&board.mqtt, &board.fleet) {
        (Some(mqtt), Some(fleet)) => Some(
            crate::mqtt::fleet::FleetLink::start(mqtt, fleet, embedder.backbone_id())
                .with_context(|| format!("board {}: cannot start the fleet link", board.name))?,
        ),
        _ => None,
    };
    tracing::info!("state {}: {report}", board.store.dir.display());
    let output = PredictionOutput::open_rotating(
        &board.output.predictions,
        board.output.min_interval,
        board.output.rotate,
    )?;
    // Loading and optimising the model freed far more than the loop will ever hold.
    crate::heap::release_free_memory();
    // So did its code: most of it never runs again (src/heap.rs).
    crate::heap::release_startup_code();
    let (rss_start, _) = rss_kib();
    let bench = args.bench_frames;
    let service = Service::new(Parts {
        board,
        source,
        embedder,
        learner,
        output,
        notifier,
        commands: (commands_tx, commands_rx),
        buttons,
        max_frames: bench,
        auto_label_every: bench.map(|_| 10),
        live,
    })?;
    let service = match mqtt {
        Some(link) => service.with_mqtt(link),
        None => service,
    };
    let service = match fleet {
        Some(link) => service.with_fleet(link),
        None => service,
    };
    let started = Instant::now();
    let sampler = bench.map(|_| RssSampler::start(Duration::from_secs(30)));
    let status = service.run(&stop)?;
    let elapsed = started.elapsed();
    let rss_series = sampler.map(RssSampler::finish).unwrap_or_default();
    drop(control);
    drop(web);
    if bench.is_some() {
        let (rss_end, rss_peak) = rss_kib();
        let l = status.latency;
        let frame_ms =
            l.capture_ms + l.decode_ms + l.preprocess_ms + l.backbone_ms + l.head_ms + l.output_ms;
        let report = serde_json::json!({
            "frames": status.frames,
            "seconds": elapsed.as_secs_f64(),
            "fps": status.frames as f64 / elapsed.as_secs_f64().max(1e-9),
            "latency_ms": l,
            "non_backbone_fraction": if frame_ms > 0.0 { 1.0 - l.backbone_ms / frame_ms } else { 0.0 },
            "labels": status.labels,
            "backbone_runs": status.backbone_runs,
            "skipped_frames": status.skipped_frames,
            "skipped_fraction": status.skipped_fraction,
            "backbone_runs_per_minute": status.backbone_runs as f64 * 60.0 / elapsed.as_secs_f64().max(1e-9),
            "label_to_updated_prediction_ms": l.label_ms + frame_ms,
            "replay_accuracy": status.replay_accuracy,
            "labelled_accuracy": status.labelled_accuracy,
            "rss_kib_start": rss_start,
            "rss_kib_end": rss_end,
            "rss_kib_peak": rss_peak,
            "rss_kib_every_30_s": rss_series,
            "arena": crate::heap::ARENA.stats(),
            "mqtt": status.mqtt,
            "fleet": status.fleet,
        });
        outln!("{}", serde_json::to_string_pretty(&report)?);
    }
    Ok(())
}
