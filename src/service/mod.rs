//! The device's service loop: capture → preprocess → backbone → head → prediction out; labels,
//! undo, rename and delete (from the control socket or the buttons) go to the [`Learner`], which
//! owns everything the device knows; periodic snapshots; systemd notifications.
//!
//! One thread owns the learner and runs every step in order, so there is no locking around the
//! model: the control socket and the buttons only send [`Command`]s into its channel, and it
//! serves them between frames (while waiting for the next frame, so a label is answered within
//! one frame).
//!
//! Unchanged frames (board key `source.skip_unchanged`): each frame is first reduced to a small grey
//! thumbnail ([`change`]); a frame that did not change since the last frame that ran the backbone
//! reuses that frame's features (its prediction is recomputed by the head, which costs
//! microseconds, so a label or retrain shows at once) and its prediction line says
//! `"reused": true`. Its pixels are kept, so a label of it embeds the frame itself: a label never
//! stores reused features.
//!
//! Faults: a transient source fault (bad frame, camera unplugged) is logged and retried with
//! back-off while commands are still served and systemd still pinged; an image that does not
//! decode is skipped. Shutdown (the `stop` flag, set by SIGTERM/SIGINT): the current step finishes,
//! STOPPING is sent, the head is snapshotted, and [`Service::run`] returns so every `Drop` runs.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use ndarray::ArrayView1;
use serde::Serialize;

use crate::board::Board;
use crate::button::{Action, ButtonThread, LedCommand};
use crate::control::{Incoming, Reply, Request};
use crate::embedder::Embedder;
use crate::head::{HeadKind, HyperParams};
use crate::learner::{Frame as LabelFrame, Learner, LearnerConfig, Polled};
use crate::mqtt::fleet::{FleetLink, Shared};
use crate::mqtt::MqttLink;
use crate::notify::Notifier;
use crate::source::{Backoff, Frame, FrameData, FrameSource, SourceError};
use crate::store::FrameHash;
use crate::web::{LiveFrame, LiveView};

pub mod change;
pub mod output;
pub mod rotate;
pub mod stats;

use change::ChangeDetector;

use output::{PredictionLine, PredictionOutput};
use stats::{FrameTimes, Stats};

/// What can stop the service with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// The frame source failed for good (not a transient fault).
    #[error("frame source: {0}")]
    Source(#[from] SourceError),
    /// The head does not fit the backbone's features.
    #[error("the saved head expects {head}-long features but the backbone gives {backbone}; the state was made with another model: move the state directory aside")]
    HeadMismatch { head: usize, backbone: usize },
}

/// Something the loop is asked to do.
#[derive(Debug)]
pub enum Command {
    /// A request from the control socket, with its reply channel.
    Control(Incoming),
    /// A button gesture.
    Button(Action),
}

impl Command {
    /// Wraps a control request (for [`crate::control::ControlServer::bind`]).
    pub fn control(incoming: Incoming) -> Self {
        Command::Control(incoming)
    }
    /// Wraps a button action (for [`crate::button::spawn`]).
    pub fn button(action: Action) -> Self {
        Command::Button(action)
    }
}

/// A processed frame kept for labelling: the latest few, so a label can cover the frames just
/// before the press and a client can label a frame it saw by its sequence number.
#[derive(Debug, Clone)]
struct Recent {
    seq: u64,
    origin: String,
    truth: Option<String>,
    hash: FrameHash,
    features: Arc<Vec<f32>>,
    predicted: Option<String>,
    probability: f32,
    /// The features are those of an earlier frame (the backbone was skipped).
    reused: bool,
    /// A reused frame's pixels, so a label can embed the frame itself (dropped for decoded camera
    /// frames once a newer frame arrives, to bound memory; encoded frames are small).
    pixels: Option<Arc<FrameData>>,
    /// The frame, for its thumbnail when it is labelled (None when thumbnails are off). Raw
    /// camera pixels are kept shrunk to the thumbnail's size, so the held frames stay small.
    data: Option<Arc<FrameData>>,
}

/// How many processed frames are held for labelling by sequence number (besides the context).
const RECENT_FRAMES: usize = 16;

/// Everything the loop is built from (the CLI builds these from a board; tests build them too).
pub struct Parts {
    pub board: Board,
    pub source: Box<dyn FrameSource>,
    pub embedder: Embedder,
    pub learner: Learner,
    pub output: PredictionOutput,
    pub notifier: Notifier,
    /// The command channel: give clones of the sender to the control socket and the buttons.
    pub commands: (Sender<Command>, Receiver<Command>),
    pub buttons: Option<ButtonThread>,
    /// Stop after this many frames (benchmarks); `None` = until stopped.
    pub max_frames: Option<u64>,
    /// Benchmarks: label every N-th frame with the class its folder gives, as a person would.
    pub auto_label_every: Option<u64>,
    /// Where each processed frame is published for the web page (None: no page).
    pub live: Option<Arc<LiveView>>,
}

/// Status, as `fieldtune status` shows it.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct Status {
    pub board: String,
    pub source: String,
    pub classes: Vec<ClassStatus>,
    pub labels: u64,
    pub undos: u64,
    /// Prediction vs. the label a person gave, over the last 100 labels.
    pub labelled_accuracy: Option<f64>,
    /// Prediction vs. the folder's class, over the last 100 frames of known classes.
    pub replay_accuracy: Option<f64>,
    pub frames: u64,
    pub faults: u64,
    pub fps: f64,
    pub uptime_s: f64,
    pub retrains: u64,
    pub retraining: bool,
    /// The head is exactly the fit of the stored samples (what a restart brings back).
    #[serde(default)]
    pub settled: bool,
    pub latency: stats::StageMeans,
    /// Backbone runs: frames embedded, plus reused frames embedded for a label.
    #[serde(default)]
    pub backbone_runs: u64,
    /// Frames that reused the last features (`source.skip_unchanged`).
    #[serde(default)]
    pub skipped_frames: u64,
    /// `skipped_frames / frames` (0 before any frame).
    #[serde(default)]
    pub skipped_fraction: f64,
    /// The energy proxy: backbone runs per minute of uptime.
    #[serde(default)]
    pub backbone_runs_per_minute: f64,
    /// Predictions per class name ("unknown" when no class was sure enough), since start.
    #[serde(default)]
    pub predictions: BTreeMap<String, u64>,
    /// Bytes of the state directory's files.
    #[serde(default)]
    pub store_bytes: u64,
    /// The MQTT link's figures (`None` when `[mqtt]` is off).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mqtt: Option<crate::mqtt::MqttStatus>,
    /// The fleet's figures (`None` when `[fleet]` is off).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fleet: Option<crate::mqtt::fleet::FleetStatus>,
}

/// One class in the status.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct ClassStatus {
    pub name: String,
    /// Stored samples.
    pub samples: usize,
}

/// The running service.
pub struct Service {
    board: Board,
    source: Box<dyn FrameSource>,
    embedder: Embedder,
    learner: Learner,
    output: PredictionOutput,
    notifier: Notifier,
    commands: Receiver<Command>,
    // Held so the channel never closes while the loop waits on it.
    _commands_tx: Sender<Command>,
    buttons: Option<ButtonThread>,
    max_frames: Option<u64>,
    auto_label_every: Option<u64>,
    recent: VecDeque<Recent>,
    live: Option<Arc<LiveView>>,
    predictions: BTreeMap<String, u64>,
    seq: u64,
    stats: Stats,
    dirty: bool,
    last_snapshot: Instant,
    /// `Some` when the board skips unchanged frames.
    change: Option<ChangeDetector>,
    /// Features of the last frame that ran the backbone (what an unchanged frame reuses).
    last_embedded: Option<Vec<f32>>,
    /// The MQTT link (`[mqtt]`), and the class names it last heard of.
    mqtt: Option<MqttLink>,
    mqtt_classes: Vec<String>,
    /// Labels shared with the fleet group (`[fleet]`).
    fleet: Option<FleetLink>,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl Service {
    /// Builds the service around a memory already recovered.
    ///
    /// # Errors
    /// [`ServiceError::HeadMismatch`] when the recovered head does not fit the backbone.
    pub fn new(parts: Parts) -> Result<Self, ServiceError> {
        let dim = parts.embedder.dim();
        let head_dim = parts.learner.head().dim();
        if head_dim != dim {
            return Err(ServiceError::HeadMismatch {
                head: head_dim,
                backbone: dim,
            });
        }
        let (tx, rx) = parts.commands;
        let change = parts.board.source.skip_unchanged.map(ChangeDetector::new);
        Ok(Service {
            board: parts.board,
            source: parts.source,
            embedder: parts.embedder,
            learner: parts.learner,
            output: parts.output,
            notifier: parts.notifier,
            commands: rx,
            _commands_tx: tx,
            buttons: parts.buttons,
            max_frames: parts.max_frames,
            auto_label_every: parts.auto_label_every,
            recent: VecDeque::new(),
            live: parts.live,
            predictions: BTreeMap::new(),
            seq: 0,
            stats: Stats::new(),
            dirty: false,
            last_snapshot: Instant::now(),
            change,
            last_embedded: None,
            mqtt: None,
            mqtt_classes: Vec::new(),
            fleet: None,
        })
    }

    /// Publishes predictions and events on `link`, which also feeds commands into this loop.
    #[must_use]
    pub fn with_mqtt(mut self, link: MqttLink) -> Self {
        self.mqtt = Some(link);
        self
    }

    /// Shares label actions with the fleet group through `link`, and merges the group's.
    #[must_use]
    pub fn with_fleet(mut self, link: FleetLink) -> Self {
        self.fleet = Some(link);
        self
    }

    /// The current figures.
    pub fn status(&self) -> Status {
        let uptime_s = self.stats.started.elapsed().as_secs_f64();
        Status {
            board: self.board.name.clone(),
            source: self.source.describe(),
            classes: self
                .learner
                .classes()
                .into_iter()
                .map(|c| ClassStatus {
                    name: c.name,
                    samples: c.samples,
                })
                .collect(),
            labels: self.stats.labels,
            undos: self.stats.undos,
            labelled_accuracy: self.stats.labelled.rate(),
            replay_accuracy: self.stats.truth.rate(),
            frames: self.stats.frames,
            faults: self.stats.faults,
            fps: self.stats.fps(),
            uptime_s,
            retrains: self.learner.retrains(),
            retraining: self.learner.retraining(),
            settled: self.learner.is_settled(),
            latency: self.stats.means,
            backbone_runs: self.stats.backbone_runs,
            skipped_frames: self.stats.skipped,
            skipped_fraction: if self.stats.frames > 0 {
                self.stats.skipped as f64 / self.stats.frames as f64
            } else {
                0.0
            },
            backbone_runs_per_minute: self.stats.backbone_runs as f64 * 60.0 / uptime_s.max(1e-9),
            predictions: self.predictions.clone(),
            store_bytes: dir_bytes(self.learner.store().dir()),
            mqtt: self.mqtt.as_ref().map(MqttLink::status),
            fleet: self.fleet.as_ref().map(FleetLink::status),
        }
    }

    /// Runs until `stop` is set, the source ends, or `max_frames` frames were processed.
    ///
    /// # Errors
    /// [`ServiceError::Source`] when the source fails for good.
    pub fn run(mut self, stop: &AtomicBool) -> Result<Status, ServiceError> {
        // READY even while the camera is not there yet: the socket, the page and the watchdog
        // work, and systemd must not time the start out waiting for a USB camera.
        self.notifier.ready(&self.systemd_status());
        let classes = self.learner.classes();
        tracing::info!(
            "ready: board {}, source {}, {} classes, {} stored samples",
            self.board.name,
            self.source.describe(),
            classes.len(),
            classes.iter().map(|c| c.samples).sum::<usize>()
        );
        self.mqtt_classes_changed();
        let result = self.main_loop(stop);
        self.notifier.stopping();
        tracing::info!("stopping after {} frames", self.stats.frames);
        // The next start then finds a head fitted to exactly the saved samples and serves it
        // without refitting.
        self.learner.settle();
        if self.dirty || self.learner.store().snapshot_due() {
            self.snapshot();
        }
        let status = self.status();
        // Dropping `self` here joins the button thread (LEDs off) and closes the output.
        result.map(|()| status)
    }

    /// The line `systemctl status` shows.
    fn systemd_status(&self) -> String {
        if self.source.waiting() {
            // "waiting for camera /dev/video0".
            self.source.describe()
        } else {
            format!(
                "classifying {} with {} classes",
                self.source.describe(),
                self.learner.classes().len()
            )
        }
    }

    fn main_loop(&mut self, stop: &AtomicBool) -> Result<(), ServiceError> {
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));
        let mut next_due = Instant::now();
        // The source answered "waiting" since the last frame.
        let mut waited = false;
        while !stop.load(Ordering::Relaxed) {
            // Serve commands until the next frame is due.
            loop {
                while let Ok(command) = self.commands.try_recv() {
                    self.handle(command);
                }
                let now = Instant::now();
                if now >= next_due || stop.load(Ordering::Relaxed) {
                    break;
                }
                let wait = (next_due - now).min(Duration::from_millis(50));
                match self.commands.recv_timeout(wait) {
                    Ok(command) => self.handle(command),
                    Err(RecvTimeoutError::Timeout) => {}
                    Err(RecvTimeoutError::Disconnected) => std::thread::sleep(wait),
                }
                self.merge_fleet();
                self.notifier.watchdog();
            }
            if stop.load(Ordering::Relaxed) {
                break;
            }
            self.notifier.watchdog();
            self.poll_learner();

            let capture_start = Instant::now();
            match self.source.next_frame() {
                Ok(frame) => {
                    let failures = backoff.succeeded();
                    if failures > 0 {
                        tracing::info!("frame source back after {failures} failed attempts");
                    }
                    if std::mem::take(&mut waited) {
                        self.notifier.status(&self.systemd_status());
                    }
                    self.process(frame, capture_start);
                    self.auto_label();
                }
                Err(SourceError::Waiting { what, cause }) => {
                    // Not a fault: the source is not there yet. Said once at warn (and at start by
                    // the waiting source), then at debug, so an hour without a camera is not
                    // thousands of journal lines.
                    let wait = backoff.failed();
                    let line = format!(
                        "still waiting for {what} ({}); next try in {} ms",
                        crate::learner::names::escaped(&cause.to_string()),
                        wait.as_millis()
                    );
                    if waited {
                        tracing::debug!("{line}");
                    } else {
                        tracing::warn!("{line}");
                        self.notifier.status(&self.systemd_status());
                        waited = true;
                    }
                    next_due = Instant::now() + wait;
                    continue;
                }
                Err(e) if e.is_transient() => {
                    self.stats.faults += 1;
                    let wait = backoff.failed();
                    // Escaped: a file name in the message is outside input.
                    tracing::warn!(
                        "{}; retrying in {} ms",
                        crate::learner::names::escaped(&e.to_string()),
                        wait.as_millis()
                    );
                    next_due = Instant::now() + wait;
                    continue;
                }
                Err(SourceError::Ended { what }) => {
                    tracing::info!("{what}");
                    return Ok(());
                }
                Err(e) => return Err(e.into()),
            }
            if self.max_frames.is_some_and(|max| self.stats.frames >= max) {
                return Ok(());
            }
            next_due = match self.board.source.frame_interval {
                // Pace from the schedule, not from now, but never try to catch up a backlog.
                Some(interval) => (next_due + interval).max(Instant::now()),
                None => Instant::now(),
            };
            if self.dirty && self.last_snapshot.elapsed() >= self.board.store.snapshot_interval {
                self.snapshot();
            }
        }
        Ok(())
    }

    fn process(&mut self, frame: Frame, capture_start: Instant) {
        let captured = Instant::now();
        let mut times = FrameTimes {
            capture: captured - capture_start,
            ..FrameTimes::default()
        };
        let decoded = match &frame.data {
            FrameData::Encoded(bytes) => match crate::preprocess::decode(bytes) {
                Ok(rgb) => Some(rgb),
                Err(e) => {
                    self.stats.faults += 1;
                    tracing::warn!(
                        "skipping frame {}: {e}",
                        crate::learner::names::escaped(&frame.origin)
                    );
                    return;
                }
            },
            FrameData::Rgb(_) => None,
        };
        times.decode = captured.elapsed();
        let hash = match &frame.data {
            FrameData::Encoded(bytes) => FrameHash::of(bytes),
            FrameData::Rgb(rgb) => FrameHash::of(rgb.as_raw()),
        };
        let rgb = match (&decoded, &frame.data) {
            (Some(rgb), _) | (None, FrameData::Rgb(rgb)) => rgb,
            (None, FrameData::Encoded(_)) => unreachable!("encoded frames are decoded above"),
        };
        let reuse = match (&mut self.change, &self.last_embedded) {
            (Some(change), Some(last)) => change.unchanged(rgb).then(|| last.clone()),
            (Some(change), None) => {
                change.unchanged(rgb);
                None
            }
            (None, _) => None,
        };
        let reused = reuse.is_some();
        times.reused = reused;
        let features = match reuse {
            Some(features) => {
                self.stats.skipped += 1;
                features
            }
            None => match self.embedder.embed_rgb(rgb) {
                Ok(f) => {
                    self.stats.backbone_runs += 1;
                    let stage = self.embedder.last_times();
                    times.preprocess = stage.preprocess;
                    times.backbone = stage.backbone;
                    if let Some(change) = &mut self.change {
                        change.embedded();
                        self.last_embedded = Some(f.clone());
                    }
                    f
                }
                Err(e) => {
                    self.stats.faults += 1;
                    tracing::warn!(
                        "skipping frame {}: {e}",
                        crate::learner::names::escaped(&frame.origin)
                    );
                    return;
                }
            },
        };
        drop(decoded);

        let head_start = Instant::now();
        let seen = self.learner.predict(ArrayView1::from(&features[..]));
        let predicted = seen.name.clone();
        let probability = seen.probability;
        times.head = head_start.elapsed();

        self.seq += 1;
        let name = predicted.as_deref().unwrap_or("unknown");
        match self.predictions.get_mut(name) {
            Some(n) => *n += 1,
            None => {
                self.predictions.insert(name.to_string(), 1);
            }
        }
        if let Some(truth) = &frame.truth {
            // Per frame: a name lookup, not the class list with its sample counts.
            if self.learner.data().live_class(truth).is_some() {
                self.stats.truth.push(predicted.as_deref() == Some(truth));
            }
        }
        let output_start = Instant::now();
        let time_ms = now_ms();
        if let Some(mqtt) = &mut self.mqtt {
            mqtt.prediction(predicted.as_deref(), probability, self.seq, time_ms);
        }
        self.output.write(&PredictionLine {
            time_ms,
            seq: self.seq,
            origin: &frame.origin,
            class: predicted.as_deref(),
            probability,
            latency_ms: (Instant::now() - capture_start).as_secs_f64() * 1000.0,
            truth: frame.truth.as_deref(),
            reused,
        });
        if let Some(buttons) = &self.buttons {
            buttons.led(LedCommand::Show(seen.class));
        }
        times.output = output_start.elapsed();
        self.stats.frame(&times);

        let keep = RECENT_FRAMES.max(self.board.learning.context_frames + 1);
        if self.recent.len() == keep {
            self.recent.pop_front();
        }
        if let Some(previous) = self.recent.back_mut() {
            if matches!(previous.pixels.as_deref(), Some(FrameData::Rgb(_))) {
                previous.pixels = None;
            }
        }
        let data = Arc::new(frame.data);
        let size = self.board.store.thumbnail_px;
        let kept = match &*data {
            _ if size == 0 => None,
            FrameData::Encoded(_) => Some(Arc::clone(&data)),
            FrameData::Rgb(rgb) => Some(Arc::new(FrameData::Rgb(crate::thumbnail::shrink(
                rgb, size,
            )))),
        };
        let features = Arc::new(features);
        if let Some(live) = &self.live {
            live.publish(LiveFrame {
                seq: self.seq,
                data: Arc::clone(&data),
                class: predicted.clone(),
                probability,
                origin: frame.origin.clone(),
                hash,
                features: Arc::clone(&features),
                image: Default::default(),
            });
        }
        self.recent.push_back(Recent {
            seq: self.seq,
            origin: frame.origin,
            truth: frame.truth,
            hash,
            features,
            predicted,
            probability,
            reused,
            // Kept for a label's views too (the newest raw frame only, see above).
            pixels: (reused || self.board.learning.label_views > 0).then(|| Arc::clone(&data)),
            data: kept,
        });
    }

    /// Embeds the reused frames among `recent[range]` from their own pixels, so a label stores
    /// features of the frames themselves. A reused frame whose pixels are gone (a decoded camera
    /// frame older than the newest) is left out of the label, unless it is the one labelled.
    ///
    /// # Errors
    /// A message for the reply when the labelled frame cannot be embedded.
    fn embed_reused(&mut self, first: usize, target: usize) -> Result<Vec<usize>, String> {
        let mut keep = Vec::with_capacity(target + 1 - first);
        for i in first..=target {
            if !self.recent[i].reused {
                keep.push(i);
                continue;
            }
            let newest = i + 1 == self.recent.len();
            let embedded = match self.recent[i].pixels.clone() {
                None => Err("its pixels are no longer held".to_string()),
                Some(data) => {
                    let rgb = match &*data {
                        FrameData::Encoded(bytes) => {
                            crate::preprocess::decode(bytes).map(std::borrow::Cow::Owned)
                        }
                        FrameData::Rgb(rgb) => Ok(std::borrow::Cow::Borrowed(rgb)),
                    };
                    match rgb {
                        Err(e) => Err(e.to_string()),
                        Ok(rgb) => match self.embedder.embed_rgb(&rgb) {
                            Err(e) => Err(e.to_string()),
                            Ok(features) => {
                                self.stats.backbone_runs += 1;
                                if newest {
                                    // The newest frame is now the unchanged frames' reference.
                                    if let Some(change) = &mut self.change {
                                        change.embedded_frame(&rgb);
                                    }
                                    self.last_embedded = Some(features.clone());
                                }
                                Ok(features)
                            }
                        },
                    }
                }
            };
            match embedded {
                Ok(features) => {
                    let r = &mut self.recent[i];
                    r.features = Arc::new(features);
                    r.reused = false;
                    keep.push(i);
                }
                Err(why) if i == target => {
                    return Err(format!(
                        "frame {} reused the features of an earlier frame and cannot be embedded itself ({why}); label the current frame",
                        self.recent[i].seq
                    ))
                }
                Err(why) => tracing::info!(
                    "frame {} left out of the label: it reused an earlier frame's features and {why}",
                    self.recent[i].seq
                ),
            }
        }
        Ok(keep)
    }

    fn auto_label(&mut self) {
        let Some(every) = self.auto_label_every else {
            return;
        };
        if !self.stats.frames.is_multiple_of(every.max(1)) {
            return;
        }
        if let Some(truth) = self.recent.back().and_then(|r| r.truth.clone()) {
            let watch = self.fleet_watch(Some(&Shared::Label));
            let reply = self.label(&truth, None);
            self.fleet_share(watch, Some(Shared::Label), &reply);
            if let Some(e) = reply.error {
                tracing::warn!("automatic label: {e}");
            }
        }
    }

    fn handle(&mut self, command: Command) {
        match command {
            Command::Control(Incoming { request, reply }) => {
                let event = event_of(&request);
                let shared = fleet_shared(&request);
                let watch = self.fleet_watch(shared.as_ref());
                let answer = match request {
                    Request::Label { class, frame } => self.label(&class, frame),
                    Request::Undo => self.undo(),
                    Request::Rename { from, to } => self.rename(&from, &to),
                    Request::Delete { class } => self.delete(&class),
                    Request::Status => Reply::ok(self.status()),
                    Request::Current => match self.recent.back() {
                        None => Reply::error("no frame processed yet"),
                        Some(r) => Reply::ok(serde_json::json!({
                            "seq": r.seq,
                            "origin": r.origin,
                            "truth": r.truth,
                            "class": r.predicted,
                            "probability": r.probability,
                            "reused": r.reused,
                            "recent": self.recent.iter().rev().take(8).map(|r| serde_json::json!({
                                "seq": r.seq,
                                "class": r.predicted,
                                "probability": r.probability,
                            })).collect::<Vec<_>>(),
                        })),
                    },
                    Request::NewClass { name } => self.new_class(&name),
                    Request::MoveSample { sample, to } => self.move_sample(sample, &to),
                    Request::DeleteSample { sample } => self.delete_sample(sample),
                    Request::Samples { class } => self.samples(&class),
                    Request::Thumbnail { sample } => self.thumbnail(sample),
                };
                if let Some(event) = event {
                    self.announce(event, &answer);
                }
                self.fleet_share(watch, shared, &answer);
                // The client may have gone; nothing to do then.
                let _ = reply.send(answer);
            }
            Command::Button(action) => {
                let event = if matches!(action, Action::Undo) {
                    "undo"
                } else {
                    "label"
                };
                let shared = Some(if matches!(action, Action::Undo) {
                    Shared::TakeBack
                } else {
                    Shared::Label
                });
                let watch = self.fleet_watch(shared.as_ref());
                let answer = match action {
                    Action::Label(i) => match self.learner.classes().get(i) {
                        Some(class) => {
                            let name = class.name.clone();
                            self.label(&name, None)
                        }
                        None => Reply::error(format!(
                            "button {} has no class yet: long-press the mode button to start one",
                            i + 1
                        )),
                    },
                    Action::NewClass => {
                        let name = self.next_class_name();
                        self.label(&name, None)
                    }
                    Action::Undo => self.undo(),
                };
                self.announce(event, &answer);
                self.fleet_share(watch, shared, &answer);
                if let Some(e) = answer.error {
                    tracing::warn!("button: {e}");
                }
            }
        }
    }

    /// The live samples before an action the fleet hears of (None: no fleet, or not shared).
    fn fleet_watch(&self, shared: Option<&Shared>) -> Option<crate::mqtt::fleet::Watch> {
        Some(self.fleet.as_ref()?.watch(&self.learner, shared?))
    }

    /// Shares with the fleet group what a successful action changed.
    fn fleet_share(
        &self,
        watch: Option<crate::mqtt::fleet::Watch>,
        shared: Option<Shared>,
        answer: &Reply,
    ) {
        if let (Some(fleet), Some(watch), Some(shared), true) =
            (&self.fleet, watch, shared, answer.ok)
        {
            fleet.share(&self.learner, &watch, &shared);
        }
    }

    /// Tells the MQTT link about a change the person made (`event`), when it was made.
    fn announce(&mut self, event: &str, answer: &Reply) {
        if !answer.ok || self.mqtt.is_none() {
            return;
        }
        if let Some(mqtt) = &self.mqtt {
            mqtt.event(event, answer.data.as_ref());
        }
        self.mqtt_classes_changed();
    }

    /// Sends the class names to the MQTT link when they changed (its Home Assistant buttons).
    fn mqtt_classes_changed(&mut self) {
        let Some(mqtt) = &self.mqtt else { return };
        let names: Vec<String> = self.learner.classes().into_iter().map(|c| c.name).collect();
        if names != self.mqtt_classes {
            mqtt.classes(names.clone());
            self.mqtt_classes = names;
        }
    }

    /// `class-N` for the smallest N not taken (a button's new class).
    fn next_class_name(&self) -> String {
        let classes = self.learner.classes();
        (classes.len() + 1..)
            .map(|n| format!("class-{n}"))
            .find(|name| !classes.iter().any(|c| c.name == *name))
            .unwrap_or_else(|| "class".into())
    }

    fn label(&mut self, class: &str, frame: Option<u64>) -> Reply {
        // Not trimmed: a name is taken as given and held to the name rules, the same for every
        // way of naming a class (a name with surrounding space is refused, saying so).
        if class.is_empty() {
            return Reply::error("the class name is empty");
        }
        let target = match frame {
            None => self.recent.len().checked_sub(1),
            Some(seq) => self.recent.iter().position(|r| r.seq == seq),
        };
        let chosen: Vec<Recent> = match target {
            Some(target) => {
                let first = target.saturating_sub(self.board.learning.context_frames);
                // Frames that reused an earlier frame's features are embedded from their own
                // pixels first: a label always stores the features of the frames themselves.
                match self.embed_reused(first, target) {
                    Ok(held) => held.iter().map(|&i| self.recent[i].clone()).collect(),
                    Err(e) => {
                        return Reply::error(format!("label not saved, nothing changed: {e}"))
                    }
                }
            }
            // A frame the page showed a while ago (at a high frame rate it has left the ring):
            // the web server keeps the frames it served, so the frame seen is the frame labelled.
            None => frame
                .and_then(|seq| self.live.as_ref()?.served(seq))
                .map(|f| Recent {
                    seq: f.seq,
                    origin: f.origin.clone(),
                    truth: None,
                    hash: f.hash,
                    features: Arc::clone(&f.features),
                    predicted: f.class.clone(),
                    probability: f.probability,
                    reused: false,
                    pixels: Some(Arc::clone(&f.data)),
                    data: Some(Arc::clone(&f.data)),
                })
                .into_iter()
                .collect(),
        };
        let Some(target) = chosen.last().cloned() else {
            return Reply::error(match frame {
                None => "no frame processed yet: wait for the first prediction".to_string(),
                Some(seq) => format!(
                    "frame {seq} is no longer held (only the last {} are); label the current frame",
                    self.recent.len()
                ),
            });
        };
        let started = Instant::now();
        let size = self.board.store.thumbnail_px;
        let thumbnails: Vec<Vec<u8>> = chosen
            .iter()
            .map(|r| {
                let Some(data) = r.data.as_deref().filter(|_| size > 0) else {
                    return Vec::new();
                };
                crate::thumbnail::make(data, size).unwrap_or_else(|e| {
                    tracing::warn!("frame {}: no thumbnail kept: {e}", r.seq);
                    Vec::new()
                })
            })
            .collect();
        let frames: Vec<LabelFrame> = chosen
            .iter()
            .zip(&thumbnails)
            .map(|(r, thumbnail)| LabelFrame {
                features: &r.features,
                hash: r.hash,
                thumbnail,
            })
            .collect();
        // The labelled frame's views (not the context frames'): a bounded cost per label.
        let mut views = vec![Vec::new(); frames.len()];
        if let Some(last) = views.last_mut() {
            *last = self.label_views(&target);
        }
        let result = self.learner.label_with_views(class, &frames, &views);
        match result {
            Ok(done) => {
                // The learner's name: the request's, normalised (NFC), or the existing class's.
                let class = done.class.as_str();
                self.stats.label_done(started.elapsed());
                self.stats.labels += 1;
                self.stats
                    .labelled
                    .push(target.predicted.as_deref() == Some(class));
                self.dirty = true;
                self.snapshot_if_due();
                let index = self.learner.classes().iter().position(|c| c.name == class);
                if let (Some(buttons), Some(i)) = (&self.buttons, index) {
                    buttons.led(LedCommand::Acknowledge(i));
                }
                tracing::info!(
                    "labelled frame {} ({}) as {}{}",
                    target.seq,
                    target.origin,
                    crate::learner::names::shown(class),
                    if done.created { " (new class)" } else { "" }
                );
                Reply::ok(serde_json::json!({
                    "seq": target.seq,
                    "origin": target.origin,
                    "class": class,
                    "frames": done.frames,
                    "stored": done.stored,
                    "created": done.created,
                    "was_predicted": target.predicted,
                }))
            }
            Err(e) => {
                tracing::warn!(
                    "label of frame {} as {} not saved: {e}",
                    target.seq,
                    crate::learner::names::shown(class)
                );
                Reply::error(format!("label not saved, nothing changed: {e}"))
            }
        }
    }

    /// The features of `[learning] label_views` extra views of the labelled frame (its mirror
    /// image, then crops; [`crate::augment`]), embedded here, on the service thread while the
    /// label is handled: a label costs that many more backbone runs, and the next frame waits for
    /// them (bounded by [`crate::board::learning::MAX_LABEL_VIEWS`]). None when the frame's
    /// pixels are no longer held (a raw camera frame older than the newest) or a view fails: the
    /// label is stored without views, as with `label_views = 0`.
    fn label_views(&mut self, target: &Recent) -> Vec<Vec<f32>> {
        let n = self.board.learning.label_views;
        let Some(data) = target.pixels.as_deref().filter(|_| n > 0) else {
            if n > 0 {
                tracing::info!(
                    "frame {}: its pixels are no longer held, so the label stores no views",
                    target.seq
                );
            }
            return Vec::new();
        };
        let started = Instant::now();
        let rgb = match data {
            FrameData::Encoded(bytes) => match crate::preprocess::decode(bytes) {
                Ok(rgb) => std::borrow::Cow::Owned(rgb),
                Err(e) => {
                    tracing::warn!("frame {}: no views stored: {e}", target.seq);
                    return Vec::new();
                }
            },
            FrameData::Rgb(rgb) => std::borrow::Cow::Borrowed(rgb),
        };
        let views = crate::augment::views(n);
        match crate::augment::embed_views(&mut self.embedder, &rgb, &target.hash.0, &views) {
            Ok(features) => {
                self.stats.backbone_runs += features.len() as u64;
                tracing::debug!(
                    "frame {}: {} views embedded in {:.1} ms",
                    target.seq,
                    features.len(),
                    started.elapsed().as_secs_f64() * 1000.0
                );
                features
            }
            Err(e) => {
                tracing::warn!("frame {}: no views stored: {e}", target.seq);
                Vec::new()
            }
        }
    }

    fn undo(&mut self) -> Reply {
        match self.learner.undo() {
            Ok(undone) => {
                self.stats.undos += 1;
                self.dirty = true;
                tracing::info!("undid {} ({} stored frames)", undone.what, undone.samples);
                Reply::ok(serde_json::json!({
                    "undone": undone.what,
                    "samples": undone.samples,
                }))
            }
            Err(e) => Reply::error(format!("undo not done: {e}")),
        }
    }

    fn rename(&mut self, from: &str, to: &str) -> Reply {
        match self.learner.rename_class(from, to) {
            Ok(()) => {
                self.dirty = true;
                tracing::info!(
                    "renamed class {} to {}",
                    crate::learner::names::shown(from),
                    crate::learner::names::shown(to)
                );
                Reply::ok(serde_json::json!({ "from": from, "to": to }))
            }
            Err(e) => Reply::error(format!("rename not done: {e}")),
        }
    }

    fn delete(&mut self, class: &str) -> Reply {
        match self.learner.delete_class(class) {
            Ok(samples) => {
                self.dirty = true;
                tracing::info!(
                    "deleted class {class:?} ({samples} stored samples; undo brings it back)"
                );
                Reply::ok(serde_json::json!({ "deleted": class, "samples": samples }))
            }
            Err(e) => Reply::error(format!("delete not done: {e}")),
        }
    }

    fn new_class(&mut self, name: &str) -> Reply {
        match self.learner.new_class(name) {
            Ok(name) => {
                self.dirty = true;
                tracing::info!("new class {}", crate::learner::names::shown(&name));
                Reply::ok(serde_json::json!({ "class": name }))
            }
            Err(e) => Reply::error(format!("new class not made: {e}")),
        }
    }

    fn move_sample(&mut self, sample: u64, to: &str) -> Reply {
        match self.learner.move_sample(sample, to) {
            Ok(()) => {
                self.dirty = true;
                tracing::info!(
                    "moved sample {sample} to {}",
                    crate::learner::names::shown(to)
                );
                Reply::ok(serde_json::json!({ "sample": sample, "to": to }))
            }
            Err(e) => Reply::error(format!("move not done: {e}")),
        }
    }

    fn delete_sample(&mut self, sample: u64) -> Reply {
        match self.learner.delete_sample(sample) {
            Ok(()) => {
                self.dirty = true;
                tracing::info!("deleted sample {sample} (undo brings it back)");
                Reply::ok(serde_json::json!({ "deleted": sample }))
            }
            Err(e) => Reply::error(format!("delete not done: {e}")),
        }
    }

    fn samples(&self, class: &str) -> Reply {
        let data = self.learner.data();
        let Some(index) = data.live_class(class) else {
            return Reply::error(format!("no class {}", crate::learner::names::shown(class)));
        };
        let mut samples: Vec<_> = data
            .live_samples()
            .filter(|s| s.class == index)
            .map(|s| {
                serde_json::json!({
                    "id": s.id,
                    "time_ms": s.time_ms,
                    "thumbnail": !s.thumbnail.is_empty(),
                })
            })
            .collect();
        samples.reverse();
        Reply::ok(serde_json::json!({ "class": class, "samples": samples }))
    }

    fn thumbnail(&self, sample: u64) -> Reply {
        let data = self.learner.data();
        match data.samples.iter().find(|s| s.id == sample) {
            None => Reply::error(format!("no stored sample {sample}")),
            Some(s) if s.thumbnail.is_empty() => Reply::error(format!(
                "sample {sample} has no thumbnail (labelled before format 4)"
            )),
            Some(s) => Reply::ok(serde_json::json!({
                "jpeg_hex": s.thumbnail.0.iter().map(|b| format!("{b:02x}")).collect::<String>(),
            })),
        }
    }

    /// Merges a few of the labels the fleet group sent (never waits).
    fn merge_fleet(&mut self) {
        if let Some(fleet) = &self.fleet {
            if fleet.merge_pending(&mut self.learner) > 0 {
                self.dirty = true;
                self.snapshot_if_due();
                self.mqtt_classes_changed();
            }
        }
    }

    fn poll_learner(&mut self) {
        self.merge_fleet();
        match self.learner.poll() {
            Polled::Idle => {}
            Polled::Swapped => {
                self.stats.retrains += 1;
                if let Some(mqtt) = &self.mqtt {
                    let retrains = serde_json::json!({ "retrains": self.learner.retrains() });
                    mqtt.event("retrain", Some(&retrains));
                }
                tracing::debug!("swapped in a retrained head");
            }
            Polled::Dropped(why) => tracing::info!("dropped a retrain: {why}"),
        }
    }

    fn snapshot_if_due(&mut self) {
        match self.learner.snapshot_if_due() {
            Ok(true) => {
                self.dirty = false;
                self.last_snapshot = Instant::now();
                crate::heap::release_free_memory();
            }
            Ok(false) => {}
            Err(e) => tracing::warn!("snapshot failed (every label is in the journal): {e}"),
        }
    }

    fn snapshot(&mut self) {
        match self.learner.snapshot() {
            Ok(()) => {
                self.dirty = false;
                tracing::info!("snapshot written");
                crate::heap::release_free_memory();
            }
            // Labels are already durable in the journal; try again at the next interval.
            Err(e) => {
                tracing::warn!("snapshot failed (will retry; every label is in the journal): {e}")
            }
        }
        self.last_snapshot = Instant::now();
    }
}

/// The MQTT event a request makes when it succeeds (`None`: it changes nothing).
/// How the fleet hears of a request (None: not shared).
fn fleet_shared(request: &Request) -> Option<Shared> {
    match request {
        Request::Label { .. } => Some(Shared::Label),
        Request::Undo | Request::DeleteSample { .. } => Some(Shared::TakeBack),
        Request::Delete { class } => Some(Shared::DeleteClass(class.clone())),
        _ => None,
    }
}

fn event_of(request: &Request) -> Option<&'static str> {
    match request {
        Request::Label { .. } => Some("label"),
        Request::Undo => Some("undo"),
        Request::Rename { .. } => Some("rename"),
        Request::Delete { .. } => Some("delete"),
        Request::NewClass { .. } => Some("new_class"),
        Request::MoveSample { .. } => Some("move_sample"),
        Request::DeleteSample { .. } => Some("delete_sample"),
        Request::Status
        | Request::Current
        | Request::Samples { .. }
        | Request::Thumbnail { .. } => None,
    }
}

/// Bytes of the files directly in `dir` (the state directory has no subdirectories that matter).
fn dir_bytes(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir).map_or(0, |entries| {
        entries
            .filter_map(|e| e.ok()?.metadata().ok())
            .filter(|m| m.is_file())
            .map(|m| m.len())
            .sum()
    })
}

/// The learner settings a board asks for (everything but the state directory).
pub fn learner_config(board: &Board) -> LearnerConfig {
    let (kind, hyper) = head_settings(board);
    LearnerConfig {
        store: board.store.limits.clone(),
        kind,
        hyper,
        retrain_every: board.learning.retrain_every,
        names: board.store.names,
        ..LearnerConfig::default()
    }
}

/// The head kind and hyper-parameters a board asks for.
pub fn head_settings(board: &Board) -> (HeadKind, HyperParams) {
    (board.head, HyperParams::defaults_for(board.head))
}

/// A shared stop flag, set by SIGTERM and SIGINT.
///
/// # Errors
/// When the signal handlers cannot be installed.
pub fn stop_on_signals() -> std::io::Result<Arc<AtomicBool>> {
    let stop = Arc::new(AtomicBool::new(false));
    signal_hook::flag::register(signal_hook::consts::SIGTERM, Arc::clone(&stop))?;
    signal_hook::flag::register(signal_hook::consts::SIGINT, Arc::clone(&stop))?;
    Ok(stop)
}
