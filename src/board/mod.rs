//! Board files (`boards/*.toml`): what one device is made of and how it runs.
//!
//! Two layers, as in zincati: [`RawBoard`] mirrors the file with serde (every field optional, the
//! default documented next to it; the kinds are enums, so a misspelt kind is refused by the parser
//! with the values it takes), and [`Board::validate`] turns it into typed values, once, with an
//! error that names the key and the fix. Command-line overrides (`fieldtune run --fps …`) are applied
//! to the raw board before that one validation ([`Overrides`]), so a flag is held to exactly the
//! rules of the key it overrides. No system calls happen here: opening the camera, the GPIO chip or
//! the socket is the job of the modules that own them, so a board file can be checked anywhere.
//!
//! One file per section (`source.rs`, `model.rs`, …), each with its raw mirror, its validated
//! type and its `validate`; a new section is a new file, a field in [`RawBoard`] and [`Board`], and
//! one line in [`Board::validate`].
//!
//! Relative paths in a board file are resolved against the current directory, so the desktop board
//! runs from a checkout; the boards for real devices use absolute paths.

use std::path::{Path, PathBuf};

use serde::Deserialize;

pub mod buttons;
pub mod control;
pub mod fleet;
pub mod head;
pub mod learning;
pub mod model;
pub mod output;
mod overrides;
pub mod source;
pub mod store;
pub mod web;

#[cfg(test)]
mod tests;

pub use buttons::{ButtonBackend, ButtonsConfig};
pub use learning::LearningConfig;
pub use model::ModelConfig;
pub use output::{OutputConfig, PredictionSink};
pub use overrides::Overrides;
pub use source::{CameraDevice, PixelFormat, SourceConfig, SourceKind, DEFAULT_SKIP_THRESHOLD};
pub use store::StoreSettings;

/// The desktop board, compiled in so `fieldtune run` works without `--board`.
pub const DESKTOP_BOARD: &str = include_str!("../../boards/desktop.toml");

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
    /// The TOML does not parse, or has an unknown key, a value of the wrong type or a kind that
    /// does not exist; `key` is the dotted key when the parser pointed at one.
    #[error("board file {path}{}: {message}; compare it with boards/desktop.toml", key.as_ref().map(|k| format!(": key `{k}`")).unwrap_or_else(|| " is not valid".into()))]
    Parse {
        path: PathBuf,
        key: Option<String>,
        message: String,
    },
    /// A key has a value outside what fieldtune can use.
    #[error("board file {path}: key `{key}` {problem}")]
    Invalid {
        path: PathBuf,
        key: &'static str,
        problem: String,
    },
    /// A command-line flag that overrides a board key has a value outside what the key takes.
    #[error("{flag} (it overrides `{key}` of board file {path}) {problem}")]
    Flag {
        path: PathBuf,
        flag: &'static str,
        key: &'static str,
        problem: String,
    },
}

/// `Result` with [`BoardError`].
pub type Result<T> = std::result::Result<T, BoardError>;

/// Where a board came from, for the errors of the section checks.
pub struct At<'a> {
    path: &'a Path,
}

impl At<'_> {
    /// An [`BoardError::Invalid`] for `key`.
    pub fn bad(&self, key: &'static str, problem: String) -> BoardError {
        BoardError::Invalid {
            path: self.path.to_path_buf(),
            key,
            problem,
        }
    }
}

/// The file as written: every field optional; defaults are applied in [`Board::validate`].
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBoard {
    /// Free-form name for logs and status (default: the file stem).
    pub name: Option<String>,
    #[serde(default)]
    pub source: source::RawSource,
    #[serde(default)]
    pub model: model::RawModel,
    #[serde(default)]
    pub head: head::RawHead,
    #[serde(default)]
    pub store: store::RawStore,
    #[serde(default)]
    pub learning: learning::RawLearning,
    #[serde(default)]
    pub output: output::RawOutput,
    #[serde(default)]
    pub control: control::RawControl,
    #[serde(default)]
    pub buttons: buttons::RawButtons,
    /// Absent: no web page.
    pub web: Option<web::RawWeb>,
    /// Absent: no MQTT (src/mqtt/config.rs).
    pub mqtt: Option<crate::mqtt::config::RawMqtt>,
    pub fleet: Option<fleet::RawFleet>,
}

/// A validated board.
#[derive(Debug, Clone, PartialEq)]
pub struct Board {
    pub name: String,
    pub source: SourceConfig,
    pub model: ModelConfig,
    /// The head the device trains.
    pub head: crate::head::HeadKind,
    pub store: StoreSettings,
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
    pub fleet: Option<fleet::FleetConfig>,
}

impl Board {
    /// Reads and validates a board file.
    ///
    /// # Errors
    /// [`BoardError`] naming the file, and for a bad value the key.
    pub fn load(path: &Path) -> Result<Self> {
        let text = read(path)?;
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
        Self::validate(parse_raw(text, path)?, path)
    }

    /// The board file at `path` (the desktop board when `None`) with the command line's
    /// overrides applied to it, validated once.
    ///
    /// # Errors
    /// As [`Board::parse`]; a bad overriding value is a [`BoardError::Flag`] naming the flag.
    pub fn load_with(path: Option<&Path>, overrides: &Overrides) -> Result<Self> {
        match path {
            Some(path) => Self::parse_with(&read(path)?, path, overrides),
            None => Self::parse_with(DESKTOP_BOARD, Path::new("boards/desktop.toml"), overrides),
        }
    }

    /// As [`Board::load_with`], on board text.
    ///
    /// # Errors
    /// As [`Board::load_with`].
    pub fn parse_with(text: &str, path: &Path, overrides: &Overrides) -> Result<Self> {
        let mut raw = parse_raw(text, path)?;
        overrides.apply(&mut raw, path)?;
        Self::validate(raw, path).map_err(|e| overrides.blame(e))
    }

    /// Turns the raw mirror into typed values, one section at a time.
    ///
    /// # Errors
    /// [`BoardError::Invalid`] naming the first bad key.
    pub fn validate(raw: RawBoard, path: &Path) -> Result<Self> {
        let at = At { path };
        let name = raw.name.unwrap_or_else(|| {
            path.file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_else(|| "board".into())
        });
        let (control_socket, control_limits) = control::validate(raw.control, &at)?;
        let mqtt = crate::mqtt::config::validate(raw.mqtt, path)?;
        Ok(Board {
            name,
            source: source::validate(raw.source, &at)?,
            model: model::validate(raw.model, &at)?,
            head: head::validate(raw.head, &at)?,
            store: store::validate(raw.store, &at)?,
            learning: learning::validate(raw.learning, &at)?,
            output: output::validate(raw.output, &at)?,
            fleet: fleet::validate(raw.fleet, mqtt.is_some(), &at)?,
            mqtt,
            control_socket,
            control_limits,
            buttons: buttons::validate(raw.buttons, &at)?,
            web: match raw.web {
                Some(w) => web::validate(w, &at)?,
                None => None,
            },
        })
    }
}

fn read(path: &Path) -> Result<String> {
    crate::bounded_file::read_text(path, crate::bounded_file::MAX_CONFIG_BYTES).map_err(|source| {
        BoardError::Read {
            path: path.to_path_buf(),
            source,
        }
    })
}

/// The raw mirror of board text; a parse error names the key it points at.
fn parse_raw(text: &str, path: &Path) -> Result<RawBoard> {
    toml::from_str(text).map_err(|e| BoardError::Parse {
        path: path.to_path_buf(),
        key: e.span().and_then(|span| key_at(text, span.start)),
        message: e.message().trim().replace('\n', " "),
    })
}

/// The dotted key (`section.key`) of the line holding byte `offset` of TOML text: the key before
/// `=` on that line, under the last `[section]` header above it.
fn key_at(text: &str, offset: usize) -> Option<String> {
    let before = text.get(..offset)?;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let line = text[line_start..].lines().next()?;
    let key = line.split_once('=')?.0.trim().trim_matches('"');
    if key.is_empty() || key.starts_with('[') {
        return None;
    }
    let section = text[..line_start].lines().rev().find_map(|l| {
        let l = l.trim();
        let inner = l.strip_prefix('[')?.split_once(']')?.0.trim();
        (!inner.starts_with('[')).then(|| inner.to_string())
    });
    Some(match section {
        Some(section) => format!("{section}.{key}"),
        None => key.to_string(),
    })
}

/// The number of cores this process may use (1 when the system cannot tell): the default of
/// `model.threads` and of every command's worker threads.
pub fn all_cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}
