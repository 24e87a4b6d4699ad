//! Frame sources: where the device's images come from, behind one narrow trait.
//!
//! - [`folder::FolderSource`]: a folder of images replayed in order or shuffled (the desktop board
//!   and the tests).
//! - [`mjpeg::MjpegStream`]: JPEG frames back to back on stdin or a pipe, so
//!   `rpicam-vid --codec mjpeg -o -` can feed a Pi 5 / Camera Module 3, whose V4L2 node gives raw Bayer.
//! - [`camera::CameraSource`]: a V4L2 camera through nokhwa (cargo feature `camera`; without it the
//!   same type exists and says how to rebuild).
//! - [`fake::FlakySource`]: wraps any source and fails on a schedule, for tests of the retry path.
//! - [`waiting::WaitingSource`]: a source that is not there yet at start (`source.wait`), opened
//!   when it appears.
//!
//! A source never decides what a fault means for the service: it returns a [`SourceError`], and
//! [`SourceError::is_transient`] tells the loop to log, back off ([`Backoff`]) and try again.
//!
//! # Troubleshooting
//! - "camera ... not found": check `ls /dev/video*` and `v4l2-ctl --list-devices`; the service user
//!   must be in the `video` group.
//! - A Pi 5 Camera Module 3 gives raw Bayer on /dev/video0: use the `stdin` source with rpicam-vid
//!   (boards/rpi5.toml).

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::board::{SourceConfig, SourceKind};

pub mod fake;
pub mod folder;
pub mod mjpeg;
pub mod waiting;

// The camera backend is picked here and only here; both twins have the same signatures.
#[cfg(feature = "camera")]
#[path = "camera/enabled.rs"]
pub mod camera;
#[cfg(not(feature = "camera"))]
#[path = "camera/disabled.rs"]
pub mod camera;

/// The pixels of one frame, as the source delivered them: decoding is the embedder's job (it knows
/// EXIF orientation and can decode straight to the size it needs).
#[derive(Debug, Clone)]
pub enum FrameData {
    /// An encoded image file (JPEG or PNG bytes).
    Encoded(Vec<u8>),
    /// Decoded RGB pixels (a camera delivering YUYV, after conversion).
    Rgb(image::RgbImage),
}

/// One captured frame.
#[derive(Debug, Clone)]
pub struct Frame {
    pub data: FrameData,
    /// Where it came from: a file path, `stdin#N` or the camera device.
    pub origin: String,
    /// The class the source knows this frame to be (folder replay of `<class>/<image>`), used only to
    /// report accuracy; `None` for cameras.
    pub truth: Option<String>,
}

/// What can go wrong getting a frame.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The folder holds no images.
    #[error("folder {path} holds no .jpg/.jpeg/.png images; point source.path at an image folder (e.g. tests/data/corn4-mini)")]
    EmptyFolder { path: PathBuf },
    /// The folder cannot be listed.
    #[error("cannot list folder {path}: {source}; check source.path in the board file")]
    ListFolder {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// One image file cannot be read (skipped; the next one is tried).
    #[error("cannot read image {path}: {source}")]
    ReadImage {
        path: PathBuf,
        #[source]
        source: crate::preprocess::PreprocessError,
    },
    /// The stream ended (stdin closed, or a folder played once without `loop`).
    #[error("the frame stream ended ({what})")]
    Ended { what: String },
    /// Reading the stream failed, or it holds something that is not a JPEG frame.
    #[error("frame stream {what}: {problem}")]
    Stream { what: String, problem: String },
    /// The camera device node does not exist.
    #[error("camera {path} not found: plug the camera in, check `ls /dev/video*`, or set source.device in the board file")]
    CameraMissing { path: PathBuf },
    /// The camera failed (unplugged, busy, bad frame).
    #[error("camera {device}: {problem}")]
    Camera { device: String, problem: String },
    /// A hardware backend that this build does not have.
    #[error("{what} is not enabled in this build: rebuild with --features {feature}")]
    NotEnabled {
        what: &'static str,
        feature: &'static str,
    },
    /// The source is not there yet ([`waiting::WaitingSource`]): tried again with back-off.
    #[error("waiting for {what}: {cause}")]
    Waiting {
        what: String,
        #[source]
        cause: Box<SourceError>,
    },
    /// `source.device` resolves to something that is not a V4L2 capture node `/dev/videoN`.
    #[error("camera {path} resolves to {resolved}, which is not a video device /dev/videoN; set source.device to /dev/videoN, /dev/v4l/by-id/… or /dev/v4l/by-path/… (`v4l2-ctl --list-devices`)")]
    NotAVideoDevice { path: PathBuf, resolved: PathBuf },
    /// A fault injected by [`fake::FlakySource`].
    #[error("injected fault at frame {index} (fake source)")]
    Injected { index: u64 },
}

impl SourceError {
    /// Whether the loop should log, back off and retry (a bad frame, an unplugged camera, whose node
    /// or by-id link disappears until it is plugged back), as opposed
    /// to stopping (no such folder, the stream ended, a backend not built in).
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            SourceError::ReadImage { .. }
                | SourceError::Camera { .. }
                | SourceError::CameraMissing { .. }
                | SourceError::Waiting { .. }
                | SourceError::Injected { .. }
        )
    }

    /// Whether the source is not there (yet) rather than broken: a camera node that does not exist
    /// or cannot be opened yet, a folder that is missing or still empty. A board with `source.wait`
    /// waits for these at start ([`waiting::open_or_wait`]).
    pub fn is_absent(&self) -> bool {
        match self {
            SourceError::CameraMissing { .. }
            | SourceError::Camera { .. }
            | SourceError::EmptyFolder { .. } => true,
            SourceError::ListFolder { source, .. } => source.kind() == std::io::ErrorKind::NotFound,
            _ => false,
        }
    }
}

/// A source of frames. Blocking: `next_frame` waits for the next frame. Not `Send`: a camera
/// handle (nokhwa's V4L2 backend) must stay on the thread that opened it, and the service loop
/// never moves its source.
pub trait FrameSource {
    /// The next frame.
    ///
    /// # Errors
    /// A [`SourceError`]; transient ones may succeed on the next call.
    fn next_frame(&mut self) -> Result<Frame, SourceError>;

    /// A short description for logs and status.
    fn describe(&self) -> String;

    /// Whether the source is still waiting for its device or folder to appear
    /// ([`waiting::WaitingSource`]); the service says so in its status.
    fn waiting(&self) -> bool {
        false
    }
}

/// Opens the source a board asks for.
///
/// # Errors
/// [`SourceError`] when the folder is empty or missing, the camera is missing, or the camera backend
/// is not built in.
pub fn open(config: &SourceConfig) -> Result<Box<dyn FrameSource>, SourceError> {
    Ok(match &config.kind {
        SourceKind::Folder {
            path,
            shuffled,
            seed,
            repeat,
        } => Box::new(
            folder::FolderSource::open(path, folder::Order::from_flags(*shuffled, *seed), *repeat)?
                .repeat_each(config.repeat_each),
        ),
        SourceKind::Stdin => Box::new(mjpeg::MjpegStream::new(std::io::stdin(), "stdin")),
        SourceKind::Camera {
            device,
            width,
            height,
            format,
        } => Box::new(camera::CameraSource::open(
            device, *width, *height, *format,
        )?),
    })
}

/// Fails with [`SourceError::CameraMissing`] when the camera is named by a device node that does not
/// exist, so a missing camera is reported the same way in every build.
///
/// # Errors
/// [`SourceError::CameraMissing`].
pub fn check_device_node(device: &crate::board::CameraDevice) -> Result<(), SourceError> {
    match device {
        crate::board::CameraDevice::Path(path) if !path.exists() => {
            Err(SourceError::CameraMissing { path: path.clone() })
        }
        crate::board::CameraDevice::Index(i) if cfg!(target_os = "linux") => {
            let path = PathBuf::from(format!("/dev/video{i}"));
            if path.exists() {
                Ok(())
            } else {
                Err(SourceError::CameraMissing { path })
            }
        }
        _ => Ok(()),
    }
}

/// The N of the V4L2 node `/dev/videoN` a camera path names, following symlinks: `/dev/videoN`
/// itself, or a stable udev link such as `/dev/v4l/by-id/usb-…-video-index0` or
/// `/dev/v4l/by-path/platform-…-video-index0` (which point at `../../videoN`). Resolved at each
/// open, so a camera that comes back as another N after a replug is still found by its stable link.
///
/// # Errors
/// [`SourceError::CameraMissing`] when the path (or the node a link points at) does not exist,
/// [`SourceError::NotAVideoDevice`] when it resolves to something else than `videoN`.
pub fn video_index(path: &Path) -> Result<u32, SourceError> {
    let resolved = std::fs::canonicalize(path).map_err(|_| SourceError::CameraMissing {
        path: path.to_path_buf(),
    })?;
    resolved
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.strip_prefix("video"))
        .filter(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|n| n.parse::<u32>().ok())
        .ok_or_else(|| SourceError::NotAVideoDevice {
            path: path.to_path_buf(),
            resolved: resolved.clone(),
        })
}

/// Retry delays after transient faults: doubles from `first` up to `max`, back to `first` after a
/// success, so a camera that is unplugged for an hour is polled every `max` and not in a busy loop.
#[derive(Debug, Clone)]
pub struct Backoff {
    first: Duration,
    max: Duration,
    next: Duration,
    failures: u64,
}

impl Backoff {
    /// A back-off from `first` doubling to `max`.
    pub fn new(first: Duration, max: Duration) -> Self {
        Backoff {
            first,
            max,
            next: first,
            failures: 0,
        }
    }

    /// Records a failure and returns how long to wait before the next try.
    pub fn failed(&mut self) -> Duration {
        let wait = self.next;
        self.next = (self.next * 2).min(self.max);
        self.failures += 1;
        wait
    }

    /// Records a success; returns how many failures came before it.
    pub fn succeeded(&mut self) -> u64 {
        self.next = self.first;
        std::mem::take(&mut self.failures)
    }
}
