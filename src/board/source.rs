//! `[source]`: where frames come from — a folder replayed, MJPEG on stdin, or a camera — and how
//! often; validated into [`SourceConfig`].

use std::path::{Component, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use super::{At, Result};

/// `[source]` as written.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSource {
    /// `folder` (default), `stdin` or `camera`.
    pub kind: Option<SourceKindName>,
    /// Folder to replay (`folder`; default `tests/data/corn4-mini/train`).
    pub path: Option<PathBuf>,
    /// `sorted` (default) or `shuffled` (`folder`).
    pub order: Option<Order>,
    /// Seed of the shuffle (default 42).
    pub seed: Option<u64>,
    /// Start again at the end of the folder (default true).
    #[serde(rename = "loop")]
    pub repeat: Option<bool>,
    /// Frames per second to pace the loop at; 0 = as fast as the backbone allows (default 0).
    pub fps: Option<f64>,
    /// Camera: `/dev/videoN`, a stable link `/dev/v4l/by-id/…` or `/dev/v4l/by-path/…`, or an index
    /// (default 0).
    pub device: Option<toml::Value>,
    /// Camera frame width and height (default 640 × 480).
    pub width: Option<u32>,
    pub height: Option<u32>,
    /// Camera pixel format: `mjpeg` (default) or `yuyv`.
    pub format: Option<PixelFormat>,
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
    /// When the source is not there at start (a USB camera that enumerates late, a folder on a
    /// drive not mounted yet), keep trying with back-off instead of failing (default true for a
    /// camera, false for a folder; stdin is always there).
    pub wait: Option<bool>,
}

/// The value of `source.kind`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceKindName {
    Folder,
    Stdin,
    Camera,
}

/// The value of `source.order`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Order {
    Sorted,
    Shuffled,
}

/// Camera pixel formats fieldtune asks for (`source.format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PixelFormat {
    Mjpeg,
    Yuyv,
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

impl std::fmt::Display for CameraDevice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CameraDevice::Index(i) => write!(f, "/dev/video{i}"),
            CameraDevice::Path(p) => write!(f, "{}", p.display()),
        }
    }
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
    /// A source missing at start is waited for (retried with back-off) instead of failing.
    pub wait: bool,
}

/// Default of `source.skip_threshold`: the mean absolute difference, in grey levels, of two 32 × 32
/// grey thumbnails up to which a frame counts as unchanged.
pub const DEFAULT_SKIP_THRESHOLD: f32 = 3.0;

/// Checks `[source]`.
///
/// # Errors
/// [`super::BoardError::Invalid`] naming the first bad key.
pub fn validate(s: RawSource, at: &At) -> Result<SourceConfig> {
    let kind = match s.kind.unwrap_or(SourceKindName::Folder) {
        SourceKindName::Folder => SourceKind::Folder {
            path: s
                .path
                .clone()
                .unwrap_or_else(|| PathBuf::from("tests/data/corn4-mini/train")),
            shuffled: s.order == Some(Order::Shuffled),
            seed: s.seed.unwrap_or(42),
            repeat: s.repeat.unwrap_or(true),
        },
        SourceKindName::Stdin => SourceKind::Stdin,
        SourceKindName::Camera => camera(&s, at)?,
    };
    let fps = s.fps.unwrap_or(0.0);
    if !fps.is_finite() || !(0.0..=1000.0).contains(&fps) {
        return Err(at.bad(
            "source.fps",
            format!("is {fps}; use 0 (as fast as possible) or a rate up to 1000"),
        ));
    }
    let repeat_each = s.repeat_each.unwrap_or(1);
    if !(1..=10_000).contains(&repeat_each) {
        return Err(at.bad(
            "source.repeat_each",
            format!("is {repeat_each}; use 1 (every frame a new image) to 10000"),
        ));
    }
    if repeat_each > 1 && !matches!(kind, SourceKind::Folder { .. }) {
        return Err(at.bad(
            "source.repeat_each",
            "only applies to kind = \"folder\" (a camera repeats what it sees by itself); remove it"
                .into(),
        ));
    }
    let threshold = s.skip_threshold.unwrap_or(DEFAULT_SKIP_THRESHOLD);
    if !threshold.is_finite() || !(0.0..=255.0).contains(&threshold) {
        return Err(at.bad(
            "source.skip_threshold",
            format!(
                "is {threshold}; use a difference in grey levels from 0 to 255 (e.g. {DEFAULT_SKIP_THRESHOLD})"
            ),
        ));
    }
    let wait = s.wait.unwrap_or(matches!(kind, SourceKind::Camera { .. }));
    if wait && kind == SourceKind::Stdin {
        return Err(at.bad(
            "source.wait",
            "does not apply to kind = \"stdin\" (stdin is always there); remove it".into(),
        ));
    }
    Ok(SourceConfig {
        kind,
        frame_interval: (fps > 0.0).then(|| Duration::from_secs_f64(1.0 / fps)),
        repeat_each,
        skip_unchanged: s.skip_unchanged.unwrap_or(false).then_some(threshold),
        wait,
    })
}

/// The camera keys of `[source]`.
fn camera(s: &RawSource, at: &At) -> Result<SourceKind> {
    let device = match &s.device {
        None => CameraDevice::Index(0),
        Some(toml::Value::Integer(i)) if (0..=i64::from(u32::MAX)).contains(i) => {
            CameraDevice::Index(*i as u32)
        }
        Some(toml::Value::String(p)) => CameraDevice::Path(
            camera_path(p)
                .map_err(|problem| at.bad("source.device", format!("is {p:?}: {problem}")))?,
        ),
        Some(toml::Value::Integer(i)) => {
            return Err(at.bad(
                "source.device",
                format!(
                    "is {i}; use an index from 0 to {} or a path like \"/dev/video0\"",
                    u32::MAX
                ),
            ))
        }
        Some(other) => {
            return Err(at.bad(
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
        return Err(at.bad(
            "source.width",
            format!("{width} × {height} is not a camera size; use e.g. 640 and 480"),
        ));
    }
    // The frames of every source are held to the same decode limits as files.
    let limits = crate::preprocess::DecodeLimits::DEFAULT;
    if u64::from(width) * u64::from(height) > limits.max_pixels {
        return Err(at.bad(
            "source.width",
            format!(
                "{width} × {height} is more than the {} pixels a frame may have; \
                 use e.g. 1280 and 720 (the model sees 224 × 224)",
                limits.max_pixels
            ),
        ));
    }
    Ok(SourceKind::Camera {
        device,
        width,
        height,
        format: s.format.unwrap_or(PixelFormat::Mjpeg),
    })
}

/// A camera's device path: `/dev/videoN`, or a stable udev link —
/// `/dev/v4l/by-id/…` (the same camera whatever port it is in) or `/dev/v4l/by-path/…` (whatever
/// camera is in that port). Links are followed when the camera is opened
/// ([`crate::source::video_index`]), not here: the board file is checked without the device.
fn camera_path(text: &str) -> std::result::Result<PathBuf, String> {
    const USE: &str = "use /dev/videoN, /dev/v4l/by-id/NAME or /dev/v4l/by-path/NAME (`ls -l /dev/v4l/by-id`), or an index like 0";
    let path = PathBuf::from(text);
    let Ok(rest) = path.strip_prefix("/dev") else {
        return Err(format!("not a device path under /dev; {USE}"));
    };
    let parts: Vec<_> = rest.components().collect();
    let ok = match parts.as_slice() {
        [Component::Normal(name)] => name
            .to_str()
            .and_then(|n| n.strip_prefix("video"))
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit())),
        [Component::Normal(v4l), Component::Normal(kind), Component::Normal(_)] => {
            *v4l == "v4l" && (*kind == "by-id" || *kind == "by-path")
        }
        _ => false,
    };
    if ok {
        Ok(path)
    } else {
        Err(format!("not a camera node or a stable camera link; {USE}"))
    }
}
