//! Command-line overrides of board keys (`fieldtune run --fps 3 --folder DIR …`), applied to the
//! raw board before its one validation, so a flag takes exactly the values its key takes and is
//! refused with the same message — naming the flag instead of the key.

use std::path::{Path, PathBuf};

use super::source::SourceKindName;
use super::{BoardError, RawBoard, Result};

/// The flags of `fieldtune run` that override board keys; `None`/`false` leaves the key alone.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// `--state DIR`: `store.dir`.
    pub state: Option<PathBuf>,
    /// `--socket PATH`: `control.socket`.
    pub socket: Option<PathBuf>,
    /// `--web IP:PORT|none`: `web.address` and `web.port` (a page with the `[web]` defaults when
    /// the board has none), or no page.
    pub web: Option<String>,
    /// `--folder DIR`: `source.kind = "folder"`, `source.path` (order, seed and loop stay the
    /// board's).
    pub folder: Option<PathBuf>,
    /// `--fps N`: `source.fps`.
    pub fps: Option<f64>,
    /// `--predictions SINK`: `output.predictions`.
    pub predictions: Option<String>,
    /// `--repeat-each N`: `source.repeat_each`.
    pub repeat_each: Option<u32>,
    /// `--skip-unchanged on|off`: `source.skip_unchanged`.
    pub skip_unchanged: Option<bool>,
    /// `--bench-frames`: as fast as possible (`source.fps = 0`) and, unless `--predictions` says
    /// otherwise, no prediction lines.
    pub bench: bool,
}

/// Which flag sets which key, for the errors.
const FLAGS: &[(&str, &str)] = &[
    ("store.dir", "--state"),
    ("control.socket", "--socket"),
    ("web.address", "--web"),
    ("web.port", "--web"),
    ("source.path", "--folder"),
    ("source.fps", "--fps"),
    ("output.predictions", "--predictions"),
    ("source.repeat_each", "--repeat-each"),
    ("source.skip_unchanged", "--skip-unchanged"),
];

impl Overrides {
    /// Writes the flags into the raw board.
    ///
    /// # Errors
    /// [`BoardError::Flag`] for a value that is not even of the key's type (`--web` that is not
    /// IP:PORT, a socket path that is not UTF-8).
    pub fn apply(&self, raw: &mut RawBoard, path: &Path) -> Result<()> {
        let flag = |flag, key, problem: String| BoardError::Flag {
            path: path.to_path_buf(),
            flag,
            key,
            problem,
        };
        if let Some(dir) = &self.state {
            raw.store.dir = Some(dir.clone());
        }
        if let Some(socket) = &self.socket {
            let text = socket.to_str().ok_or_else(|| {
                flag(
                    "--socket",
                    "control.socket",
                    format!("is {socket:?}, not UTF-8; use a plain path"),
                )
            })?;
            raw.control.socket = Some(text.to_string());
        }
        if let Some(folder) = &self.folder {
            raw.source.kind = Some(SourceKindName::Folder);
            raw.source.path = Some(folder.clone());
        }
        if let Some(fps) = self.fps {
            raw.source.fps = Some(fps);
        }
        if let Some(n) = self.repeat_each {
            raw.source.repeat_each = Some(n);
        }
        if let Some(on) = self.skip_unchanged {
            raw.source.skip_unchanged = Some(on);
        }
        if let Some(sink) = &self.predictions {
            raw.output.predictions = Some(sink.clone());
        }
        if self.bench {
            raw.source.fps = Some(0.0);
            if self.predictions.is_none() {
                raw.output.predictions = Some("none".into());
            }
        }
        match self.web.as_deref() {
            None => {}
            Some("none") => raw.web = None,
            Some(text) => {
                let address: std::net::SocketAddr = text.parse().map_err(|_| {
                    flag(
                        "--web",
                        "web.address",
                        format!("is {text:?}; use IP:PORT, e.g. 127.0.0.1:8080, or none"),
                    )
                })?;
                let web = raw.web.get_or_insert_with(Default::default);
                web.address = Some(address.ip().to_string());
                web.port = Some(address.port());
            }
        }
        Ok(())
    }

    /// Turns an error about a key a flag set into one naming the flag.
    pub fn blame(&self, error: BoardError) -> BoardError {
        match error {
            BoardError::Invalid { path, key, problem } => match self.flag_for(key) {
                Some(flag) => BoardError::Flag {
                    path,
                    flag,
                    key,
                    problem,
                },
                None => BoardError::Invalid { path, key, problem },
            },
            other => other,
        }
    }

    /// The flag that set `key`, if one did.
    fn flag_for(&self, key: &str) -> Option<&'static str> {
        let (_, flag) = FLAGS.iter().find(|(k, _)| *k == key)?;
        let given = match *flag {
            "--state" => self.state.is_some(),
            "--socket" => self.socket.is_some(),
            "--web" => self.web.is_some(),
            "--folder" => self.folder.is_some(),
            "--fps" => self.fps.is_some(),
            "--predictions" => self.predictions.is_some(),
            "--repeat-each" => self.repeat_each.is_some(),
            "--skip-unchanged" => self.skip_unchanged.is_some(),
            _ => false,
        };
        given.then_some(*flag)
    }
}
