//! Board files (`boards/*.toml`): what one device is made of and how it runs.
//!
//! Two layers, as in zincati: [`RawBoard`] mirrors the file with serde (every field optional, the
//! default documented next to it), and [`Board::validate`] turns it into typed values, with an error
//! that names the key and the fix. No system calls happen here: opening the camera, the GPIO chip or
//! the socket is the job of the modules that own them, so a board file can be checked anywhere.
//!
//! Relative paths in a board file are resolved against the current directory, so the desktop board
//! runs from a checkout; the boards for real devices use absolute paths.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

/// The desktop board, compiled in so `fieldtune run` works without `--board`.
pub const DESKTOP_BOARD: &str = include_str!("../boards/desktop.toml");

/// What can be wrong with a board file.
#[derive(Debug, thiserror::Error)]
pub enum BoardError {
    /// The file could not be read.
    #[error(
        "cannot read board file {path}: {source}; pass an existing file to --board (see boards/)"
    )]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The TOML does not parse or has a key of the wrong type or an unknown key.
    #[error("board file {path} is not valid: {message}; compare it with boards/desktop.toml")]
    Parse { path: PathBuf, message: String },
    /// A key has a value outside what fieldtune can use.
    #[error("board file {path}: key `{key}` {problem}")]
    Invalid {
        path: PathBuf,
        key: &'static str,
        problem: String,
    },
}

/// `Result` with [`BoardError`].
pub type Result<T> = std::result::Result<T, BoardError>;

/// The file as written: every field optional; defaults are applied in [`Board::validate`].
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBoard {
    /// Free-form name for logs and status (default: the file stem).
    pub name: Option<String>,
    #[serde(default)]
    pub source: RawSource,
    #[serde(default)]
    pub model: RawModel,
    #[serde(default)]
    pub head: RawHead,
    #[serde(default)]
    pub store: RawStore,
    #[serde(default)]
    pub learning: RawLearning,
    #[serde(default)]
    pub output: RawOutput,
    #[serde(default)]
    pub control: RawControl,
    #[serde(default)]
    pub buttons: RawButtons,
    /// Absent: no web page.
    pub web: Option<RawWeb>,
    /// Absent: no MQTT (src/mqtt/config.rs).
    pub mqtt: Option<crate::mqtt::config::RawMqtt>,
}

/// `[source]`: where frames come from.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSource {
    /// `folder` (default), `stdin` or `camera`.
    pub kind: Option<String>,
    /// Folder to replay (`folder`; default `tests/data/corn4-mini`).
    pub path: Option<PathBuf>,
    /// `sorted` (default) or `shuffled` (`folder`).
    pub order: Option<String>,
    /// Seed of the shuffle (default 42).
    pub seed: Option<u64>,
    /// Start again at the end of the folder (default true).
    #[serde(rename = "loop")]
    pub repeat: Option<bool>,
    /// Frames per second to pace the loop at; 0 = as fast as the backbone allows (default 0).
    pub fps: Option<f64>,
    /// Camera: `/dev/videoN` or an index (default 0).
    pub device: Option<toml::Value>,
    /// Camera frame width and height (default 640 × 480).
    pub width: Option<u32>,
    pub height: Option<u32>,
    /// Camera pixel format: `mjpeg` (default) or `yuyv`.
    pub format: Option<String>,
    /// Folder replay: show each image for this many consecutive frames, as a camera looking at
    /// one leaf would (default 1).
    pub repeat_each: Option<u32>,
    /// Run the backbone only when the frame changed: a frame whose small grey thumbnail differs
    /// from the last embedded frame's by no more than `skip_threshold` reuses its features
    /// (default false).
    pub skip_unchanged: Option<bool>,
    /// Mean absolute difference, in grey levels (0-255), of the 32 × 32 thumbnails up to which a
    /// frame counts as unchanged (default 3.0; no single thumbnail cell may differ by more than
    /// 8 times it either).
    pub skip_threshold: Option<f32>,
}

/// `[model]`: the backbone.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawModel {
    /// Model descriptor (default `models/efficientnet_lite0.toml`).
    pub descriptor: Option<PathBuf>,
    /// Inference threads (default: the number of cores).
    pub threads: Option<usize>,
}

/// `[head]`: the classifier trained on the device.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHead {
    /// `linear` (default) or `mlp`.
    pub kind: Option<String>,
    /// Hidden width of the MLP (default 128).
    pub hidden: Option<usize>,
}

/// `[store]`: the crash-safe state on flash.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStore {
    /// State directory (default `state`; systemd boards use `/var/lib/fieldtune`).
    pub dir: Option<PathBuf>,
    /// Seconds between snapshots when something changed (default 300).
    pub snapshot_interval_s: Option<u64>,
    /// Stored feature vectors kept per class (default 200).
    pub max_per_class: Option<usize>,
    /// Most classes (default 32); a label that would create one more is refused.
    pub max_classes: Option<usize>,
    /// Longest class name in characters (default 48).
    pub max_class_name_chars: Option<usize>,
    /// Longer side of the JPEG thumbnail kept with each sample, in pixels; 0 = keep none
    /// (default 112).
    pub thumbnail_px: Option<u32>,
}

/// `[learning]`: what a label does.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLearning {
    /// Frames before the current one that a label also covers (default 0).
    pub context_frames: Option<usize>,
    /// Labels between background retrains from the replay set; 0 = never (default 4).
    pub retrain_every: Option<usize>,
}

/// `[output]`: where predictions go.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawOutput {
    /// `stdout` (default), `none`, or a file path (appended to).
    pub predictions: Option<String>,
    /// Smallest interval between two prediction lines in milliseconds (default 0).
    pub min_interval_ms: Option<u64>,
    /// `[output.rotate]`: size and count of prediction files (src/service/rotate.rs).
    pub rotate: Option<crate::service::rotate::RawRotate>,
}

/// `[control]`: the local control socket.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawControl {
    /// Socket path (default `fieldtune.sock`); `none` turns the socket off.
    pub socket: Option<String>,
    /// Longest request line in bytes (default 4096).
    pub max_request_bytes: Option<usize>,
    /// Connections served at once (default 16); more are refused at once.
    pub max_connections: Option<usize>,
    /// Seconds a connection may stay without a complete request (default 20).
    pub idle_timeout_s: Option<u64>,
}

/// `[web]`: the web page and HTTP API.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawWeb {
    /// Address to listen on (default `127.0.0.1`); `none` turns the page off.
    pub address: Option<String>,
    /// Port (default 8080; 0 = any free port, shown in the log).
    pub port: Option<u16>,
    /// The token, written here (prefer `token_file`).
    pub token: Option<String>,
    /// A file holding the token, made with a new random one when missing.
    pub token_file: Option<PathBuf>,
    /// Serve clients on this machine (loopback) without a token (default true).
    pub trust_localhost: Option<bool>,
    /// Longest request, head and body, in bytes (default 8192).
    pub max_request_bytes: Option<usize>,
    /// Connections served at once (default 16).
    pub max_connections: Option<usize>,
    /// Seconds a client may take to send its request (default 20).
    pub idle_timeout_s: Option<u64>,
}

/// `[buttons]`: GPIO buttons and LEDs.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawButtons {
    /// `none` (default), `rpi` or `gpio-cdev`.
    pub backend: Option<String>,
    /// GPIO character device for `gpio-cdev` (default `/dev/gpiochip0`).
    pub chip: Option<PathBuf>,
    /// One pin per class button, in class order (BCM numbers / line offsets).
    pub class_pins: Option<Vec<u32>>,
    /// The mode button: long press = new class, double press = undo.
    pub mode_pin: Option<u32>,
    /// One LED pin per class, in class order.
    pub led_pins: Option<Vec<u32>>,
    /// Buttons pull the line low when pressed (default true: pull-up wiring).
    pub active_low: Option<bool>,
    /// Debounce time (default 30 ms).
    pub debounce_ms: Option<u64>,
    /// Hold this long for a long press (default 1500 ms).
    pub long_press_ms: Option<u64>,
    /// Two presses within this window are a double press (default 400 ms).
    pub double_press_ms: Option<u64>,
}

/// A validated board.
#[derive(Debug, Clone, PartialEq)]
pub struct Board {
    pub name: String,
    pub source: SourceConfig,
    pub model: ModelConfig,
    pub head: HeadConfig,
    pub store: StoreConfig,
    pub learning: LearningConfig,
    pub output: OutputConfig,
    /// `None` when the control socket is turned off.
    pub control_socket: Option<PathBuf>,
    /// Bounds on the control socket's clients.
    pub control_limits: crate::control::ControlLimits,
    pub buttons: ButtonsConfig,
    /// `None` when the web page is turned off.
    pub web: Option<crate::web::WebConfig>,
    /// `None` when MQTT is off (the default).
    pub mqtt: Option<crate::mqtt::MqttConfig>,
}

/// Where frames come from.
#[derive(Debug, Clone, PartialEq)]
pub enum SourceKind {
    Folder {
        path: PathBuf,
        shuffled: bool,
        seed: u64,
        repeat: bool,
    },
    Stdin,
    Camera {
        device: CameraDevice,
        width: u32,
        height: u32,
        format: PixelFormat,
    },
}

/// A camera named by index or by device node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CameraDevice {
    Index(u32),
    Path(PathBuf),
}

/// Camera pixel formats fieldtune asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PixelFormat {
    Mjpeg,
    Yuyv,
}

/// `[source]`, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceConfig {
    pub kind: SourceKind,
    /// `None` = as fast as possible.
    pub frame_interval: Option<Duration>,
    /// Folder replay: frames each image is shown for (1 = every frame a new image).
    pub repeat_each: u32,
    /// Skip the backbone on unchanged frames: `Some(threshold)` in grey levels, `None` = off.
    pub skip_unchanged: Option<f32>,
}

/// Default of `source.skip_threshold`: the mean absolute difference, in grey levels, of two 32 × 32
/// grey thumbnails up to which a frame counts as unchanged.
pub const DEFAULT_SKIP_THRESHOLD: f32 = 3.0;

/// `[model]`, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelConfig {
    pub descriptor: PathBuf,
    pub threads: usize,
}

/// Head kinds a board can ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeadChoice {
    Linear,
    Mlp { hidden: usize },
}

/// `[head]`, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct HeadConfig {
    pub kind: HeadChoice,
}

/// `[store]`, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct StoreConfig {
    pub dir: PathBuf,
    pub snapshot_interval: Duration,
    pub max_per_class: usize,
    /// What a class name may be and how many classes there may be.
    pub names: crate::learner::names::NameRules,
    /// Longer side of each sample's thumbnail; 0 = none.
    pub thumbnail_px: u32,
}

/// `[learning]`, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct LearningConfig {
    pub context_frames: usize,
    /// `None` = never retrain in the background.
    pub retrain_every: Option<usize>,
}

/// Where prediction lines go.
#[derive(Debug, Clone, PartialEq)]
pub enum PredictionSink {
    Stdout,
    File(PathBuf),
    Discard,
}

/// `[output]`, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct OutputConfig {
    pub predictions: PredictionSink,
    pub min_interval: Duration,
    /// How a prediction file is rotated.
    pub rotate: crate::service::rotate::Rotation,
}

/// Button hardware backends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ButtonBackend {
    None,
    Rpi,
    GpioCdev,
}

/// `[buttons]`, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct ButtonsConfig {
    pub backend: ButtonBackend,
    pub chip: PathBuf,
    pub class_pins: Vec<u32>,
    pub mode_pin: Option<u32>,
    pub led_pins: Vec<u32>,
    pub active_low: bool,
    pub debounce: Duration,
    pub long_press: Duration,
    pub double_press: Duration,
}

impl Board {
    /// Reads and validates a board file.
    ///
    /// # Errors
    /// [`BoardError`] naming the file, and for a bad value the key.
    pub fn load(path: &Path) -> Result<Self> {
        let text = crate::bounded_file::read_text(path, crate::bounded_file::MAX_CONFIG_BYTES)
            .map_err(|source| BoardError::Read {
                path: path.to_path_buf(),
                source,
            })?;
        Self::parse(&text, path)
    }

    /// The compiled-in desktop board.
    ///
    /// # Errors
    /// Only if the shipped file were broken (a test loads it).
    pub fn desktop() -> Result<Self> {
        Self::parse(DESKTOP_BOARD, Path::new("boards/desktop.toml"))
    }

    /// Parses and validates board text; `path` is used in messages and for the default name.
    ///
    /// # Errors
    /// [`BoardError::Parse`] or [`BoardError::Invalid`].
    pub fn parse(text: &str, path: &Path) -> Result<Self> {
        let raw: RawBoard = toml::from_str(text).map_err(|e| BoardError::Parse {
            path: path.to_path_buf(),
            message: e.to_string().trim().replace('\n', " "),
        })?;
        Self::validate(raw, path)
    }

    /// Turns the raw mirror into typed values.
    ///
    /// # Errors
    /// [`BoardError::Invalid`] naming the first bad key.
    pub fn validate(raw: RawBoard, path: &Path) -> Result<Self> {
        let bad = |key: &'static str, problem: String| BoardError::Invalid {
            path: path.to_path_buf(),
            key,
            problem,
        };
        let name = raw.name.unwrap_or_else(|| {
            path.file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_else(|| "board".into())
        });

        let s = raw.source;
        let kind = match s.kind.as_deref().unwrap_or("folder") {
            "folder" => SourceKind::Folder {
                path: s
                    .path
                    .unwrap_or_else(|| PathBuf::from("tests/data/corn4-mini/train")),
                shuffled: match s.order.as_deref().unwrap_or("sorted") {
                    "sorted" => false,
                    "shuffled" => true,
                    other => {
                        return Err(bad(
                            "source.order",
                            format!("is {other:?}; use \"sorted\" or \"shuffled\""),
                        ))
                    }
                },
                seed: s.seed.unwrap_or(42),
                repeat: s.repeat.unwrap_or(true),
            },
            "stdin" => SourceKind::Stdin,
            "camera" => {
                let device = match s.device {
                    None => CameraDevice::Index(0),
                    Some(toml::Value::Integer(i)) if (0..=u32::MAX as i64).contains(&i) => {
                        CameraDevice::Index(i as u32)
                    }
                    Some(toml::Value::String(p)) => CameraDevice::Path(PathBuf::from(p)),
                    Some(other) => {
                        return Err(bad(
                            "source.device",
                            format!(
                                "is a {}; use an index like 0 or a path like \"/dev/video0\"",
                                other.type_str()
                            ),
                        ))
                    }
                };
                let width = s.width.unwrap_or(640);
                let height = s.height.unwrap_or(480);
                if !(16..=8192).contains(&width) || !(16..=8192).contains(&height) {
                    return Err(bad(
                        "source.width",
                        format!("{width} × {height} is not a camera size; use e.g. 640 and 480"),
                    ));
                }
                // The frames of every source are held to the same decode limits as files.
                let limits = crate::preprocess::DecodeLimits::DEFAULT;
                if u64::from(width) * u64::from(height) > limits.max_pixels {
                    return Err(bad(
                        "source.width",
                        format!(
                            "{width} × {height} is more than the {} pixels a frame may have; \
                             use e.g. 1280 and 720 (the model sees 224 × 224)",
                            limits.max_pixels
                        ),
                    ));
                }
                let format = match s.format.as_deref().unwrap_or("mjpeg") {
                    "mjpeg" => PixelFormat::Mjpeg,
                    "yuyv" => PixelFormat::Yuyv,
                    other => {
                        return Err(bad(
                            "source.format",
                            format!("is {other:?}; use \"mjpeg\" or \"yuyv\""),
                        ))
                    }
                };
                SourceKind::Camera {
                    device,
                    width,
                    height,
                    format,
                }
            }
            other => {
                return Err(bad(
                    "source.kind",
                    format!("is {other:?}; use \"folder\", \"stdin\" or \"camera\""),
                ))
            }
        };
        let fps = s.fps.unwrap_or(0.0);
        if !fps.is_finite() || !(0.0..=1000.0).contains(&fps) {
            return Err(bad(
                "source.fps",
                format!("is {fps}; use 0 (as fast as possible) or a rate up to 1000"),
            ));
        }
        let frame_interval = (fps > 0.0).then(|| Duration::from_secs_f64(1.0 / fps));
        let repeat_each = s.repeat_each.unwrap_or(1);
        if !(1..=10_000).contains(&repeat_each) {
            return Err(bad(
                "source.repeat_each",
                format!("is {repeat_each}; use 1 (every frame a new image) to 10000"),
            ));
        }
        if repeat_each > 1 && !matches!(kind, SourceKind::Folder { .. }) {
            return Err(bad(
                "source.repeat_each",
                "only applies to kind = \"folder\" (a camera repeats what it sees by itself); remove it".into(),
            ));
        }
        let skip_threshold = s.skip_threshold.unwrap_or(DEFAULT_SKIP_THRESHOLD);
        if !skip_threshold.is_finite() || !(0.0..=255.0).contains(&skip_threshold) {
            return Err(bad(
                "source.skip_threshold",
                format!(
                    "is {skip_threshold}; use a difference in grey levels from 0 to 255 (e.g. {DEFAULT_SKIP_THRESHOLD})"
                ),
            ));
        }
        let skip_unchanged = s.skip_unchanged.unwrap_or(false).then_some(skip_threshold);

        let threads = match raw.model.threads {
            Some(0) => return Err(bad("model.threads", "is 0; use 1 or more".into())),
            Some(n) if n > 256 => {
                return Err(bad("model.threads", format!("is {n}; use at most 256")))
            }
            Some(n) => n,
            None => all_cores(),
        };
        let model = ModelConfig {
            descriptor: raw
                .model
                .descriptor
                .unwrap_or_else(|| PathBuf::from("models/efficientnet_lite0.toml")),
            threads,
        };

        let head_kind = match raw.head.kind.as_deref().unwrap_or("linear") {
            "linear" => HeadChoice::Linear,
            "mlp" => match raw.head.hidden.unwrap_or(128) {
                0 => return Err(bad("head.hidden", "is 0; use a width like 128".into())),
                h if h > 65_536 => {
                    return Err(bad("head.hidden", format!("is {h}; use at most 65536")))
                }
                hidden => HeadChoice::Mlp { hidden },
            },
            other => {
                return Err(bad(
                    "head.kind",
                    format!("is {other:?}; use \"linear\" or \"mlp\""),
                ))
            }
        };

        let snapshot_s = raw.store.snapshot_interval_s.unwrap_or(300);
        if snapshot_s == 0 {
            return Err(bad(
                "store.snapshot_interval_s",
                "is 0; use a number of seconds like 300 (labels are journaled in between)".into(),
            ));
        }
        let max_per_class = raw.store.max_per_class.unwrap_or(200);
        if max_per_class == 0 {
            return Err(bad("store.max_per_class", "is 0; use 1 or more".into()));
        }
        let defaults = crate::learner::names::NameRules::DEFAULT;
        let max_classes = raw.store.max_classes.unwrap_or(defaults.max_classes);
        if !(2..=1024).contains(&max_classes) {
            return Err(bad(
                "store.max_classes",
                format!(
                    "is {max_classes}; use 2 to 1024 (each class costs retrain time and flash)"
                ),
            ));
        }
        let max_chars = raw.store.max_class_name_chars.unwrap_or(defaults.max_chars);
        if !(1..=crate::learner::names::NameRules::LONGEST).contains(&max_chars) {
            return Err(bad(
                "store.max_class_name_chars",
                format!(
                    "is {max_chars}; use 1 to {}",
                    crate::learner::names::NameRules::LONGEST
                ),
            ));
        }
        let store = StoreConfig {
            dir: raw.store.dir.unwrap_or_else(|| PathBuf::from("state")),
            snapshot_interval: Duration::from_secs(snapshot_s),
            max_per_class,
            names: crate::learner::names::NameRules {
                max_chars,
                max_classes,
            },
            thumbnail_px: match raw
                .store
                .thumbnail_px
                .unwrap_or(crate::thumbnail::DEFAULT_SIZE)
            {
                px @ (0 | 32..=512) => px,
                px => {
                    return Err(bad(
                        "store.thumbnail_px",
                        format!("is {px}; use 0 (no thumbnails) or 32 to 512"),
                    ))
                }
            },
        };

        let context_frames = raw.learning.context_frames.unwrap_or(0);
        if context_frames > 64 {
            return Err(bad(
                "learning.context_frames",
                format!("is {context_frames}; use at most 64"),
            ));
        }
        let learning = LearningConfig {
            context_frames,
            retrain_every: match raw.learning.retrain_every.unwrap_or(4) {
                0 => None,
                n => Some(n),
            },
        };

        let output = OutputConfig {
            predictions: match raw.output.predictions.as_deref().unwrap_or("stdout") {
                "stdout" => PredictionSink::Stdout,
                "none" => PredictionSink::Discard,
                "" => {
                    return Err(bad(
                        "output.predictions",
                        "is empty; use \"stdout\", \"none\" or a file path".into(),
                    ))
                }
                file => PredictionSink::File(PathBuf::from(file)),
            },
            min_interval: Duration::from_millis(raw.output.min_interval_ms.unwrap_or(0)),
            rotate: crate::service::rotate::validate(raw.output.rotate, path)?,
        };

        let control_socket = match raw.control.socket.as_deref().unwrap_or("fieldtune.sock") {
            "none" => None,
            "" => {
                return Err(bad(
                    "control.socket",
                    "is empty; use a path like \"/run/fieldtune/control.sock\" or \"none\"".into(),
                ))
            }
            p => Some(PathBuf::from(p)),
        };

        let control_defaults = crate::control::ControlLimits::DEFAULT;
        let max_request_bytes = raw
            .control
            .max_request_bytes
            .unwrap_or(control_defaults.max_request_bytes);
        if !(256..=65_536).contains(&max_request_bytes) {
            return Err(bad(
                "control.max_request_bytes",
                format!("is {max_request_bytes}; use 256 to 65536"),
            ));
        }
        let max_connections = raw
            .control
            .max_connections
            .unwrap_or(control_defaults.max_connections);
        if !(1..=256).contains(&max_connections) {
            return Err(bad(
                "control.max_connections",
                format!("is {max_connections}; use 1 to 256"),
            ));
        }
        let idle_s = raw
            .control
            .idle_timeout_s
            .unwrap_or(control_defaults.idle_timeout.as_secs());
        if !(1..=3600).contains(&idle_s) {
            return Err(bad(
                "control.idle_timeout_s",
                format!("is {idle_s}; use 1 to 3600 seconds"),
            ));
        }
        let control_limits = crate::control::ControlLimits {
            max_request_bytes,
            max_connections,
            idle_timeout: Duration::from_secs(idle_s),
        };

        let web = match raw.web {
            Some(web) => web_config(web, &bad)?,
            None => None,
        };
        let mqtt = crate::mqtt::config::validate(raw.mqtt, path)?;

        let b = raw.buttons;
        let backend = match b.backend.as_deref().unwrap_or("none") {
            "none" => ButtonBackend::None,
            "rpi" => ButtonBackend::Rpi,
            "gpio-cdev" => ButtonBackend::GpioCdev,
            other => {
                return Err(bad(
                    "buttons.backend",
                    format!("is {other:?}; use \"none\", \"rpi\" or \"gpio-cdev\""),
                ))
            }
        };
        let class_pins = b.class_pins.unwrap_or_default();
        let led_pins = b.led_pins.unwrap_or_default();
        if backend != ButtonBackend::None && class_pins.is_empty() && b.mode_pin.is_none() {
            return Err(bad(
                "buttons.class_pins",
                "is empty and there is no mode_pin: list at least one button pin".into(),
            ));
        }
        let mut all_pins: Vec<u32> = class_pins.iter().chain(&led_pins).copied().collect();
        all_pins.extend(b.mode_pin);
        let mut sorted = all_pins.clone();
        sorted.sort_unstable();
        if let Some(w) = sorted.windows(2).find(|w| w[0] == w[1]) {
            return Err(bad(
                "buttons.class_pins",
                format!(
                    "pin {} is used twice among class_pins, mode_pin and led_pins",
                    w[0]
                ),
            ));
        }
        if backend == ButtonBackend::Rpi {
            if let Some(p) = all_pins.iter().find(|&&p| p > 27) {
                return Err(bad(
                    "buttons.class_pins",
                    format!("pin {p} is not a Raspberry Pi header GPIO (BCM 0..=27)"),
                ));
            }
        }
        let debounce = Duration::from_millis(b.debounce_ms.unwrap_or(30));
        let long_press = Duration::from_millis(b.long_press_ms.unwrap_or(1500));
        let double_press = Duration::from_millis(b.double_press_ms.unwrap_or(400));
        if debounce.is_zero() || debounce > Duration::from_millis(500) {
            return Err(bad(
                "buttons.debounce_ms",
                format!(
                    "is {}; use 1..=500 (30 suits most switches)",
                    debounce.as_millis()
                ),
            ));
        }
        if long_press <= debounce || double_press <= debounce {
            return Err(bad(
                "buttons.long_press_ms",
                "and double_press_ms must be longer than debounce_ms".into(),
            ));
        }
        let buttons = ButtonsConfig {
            backend,
            chip: b.chip.unwrap_or_else(|| PathBuf::from("/dev/gpiochip0")),
            class_pins,
            mode_pin: b.mode_pin,
            led_pins,
            active_low: b.active_low.unwrap_or(true),
            debounce,
            long_press,
            double_press,
        };

        Ok(Board {
            name,
            source: SourceConfig {
                kind,
                frame_interval,
                repeat_each,
                skip_unchanged,
            },
            model,
            head: HeadConfig { kind: head_kind },
            store,
            learning,
            output,
            control_socket,
            control_limits,
            buttons,
            web,
            mqtt,
        })
    }
}

/// `[web]`, checked.
fn web_config(
    raw: RawWeb,
    bad: &dyn Fn(&'static str, String) -> BoardError,
) -> Result<Option<crate::web::WebConfig>> {
    use crate::web::{TokenSource, WebConfig};
    let address = match raw.address.as_deref().unwrap_or("127.0.0.1") {
        "none" => return Ok(None),
        text => text.parse::<std::net::IpAddr>().map_err(|_| {
            bad(
                "web.address",
                format!(
                    "is {text:?}; use an IP address like \"127.0.0.1\" or \"0.0.0.0\", or \"none\""
                ),
            )
        })?,
    };
    let token = match (raw.token, raw.token_file) {
        (Some(_), Some(_)) => {
            return Err(bad(
                "web.token",
                "and web.token_file are both set; keep one".into(),
            ))
        }
        (Some(token), None) => {
            if token.len() < 16 || !token.chars().all(|c| c.is_ascii_graphic()) {
                return Err(bad(
                    "web.token",
                    "must be 16 or more printable ASCII characters without spaces".into(),
                ));
            }
            TokenSource::Inline(token)
        }
        (None, Some(file)) => TokenSource::File(file),
        (None, None) => TokenSource::None,
    };
    if token == TokenSource::None && !address.is_loopback() {
        return Err(bad(
            "web.address",
            format!("is {address}, reachable from other machines, but there is no token: set web.token_file"),
        ));
    }
    let max_request_bytes = raw.max_request_bytes.unwrap_or(8192);
    if !(1024..=65_536).contains(&max_request_bytes) {
        return Err(bad(
            "web.max_request_bytes",
            format!("is {max_request_bytes}; use 1024 to 65536"),
        ));
    }
    let max_connections = raw.max_connections.unwrap_or(16);
    if !(1..=256).contains(&max_connections) {
        return Err(bad(
            "web.max_connections",
            format!("is {max_connections}; use 1 to 256"),
        ));
    }
    let idle_s = raw.idle_timeout_s.unwrap_or(20);
    if !(1..=3600).contains(&idle_s) {
        return Err(bad(
            "web.idle_timeout_s",
            format!("is {idle_s}; use 1 to 3600 seconds"),
        ));
    }
    Ok(Some(WebConfig {
        address,
        port: raw.port.unwrap_or(8080),
        token,
        trust_localhost: raw.trust_localhost.unwrap_or(true),
        limits: crate::control::ControlLimits {
            max_request_bytes,
            max_connections,
            idle_timeout: Duration::from_secs(idle_s),
        },
    }))
}

/// The number of cores this process may use (1 when the system cannot tell): the default of
/// `model.threads` and of every command's worker threads.
pub fn all_cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}
