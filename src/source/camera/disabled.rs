//! The camera source in a build without the `camera` feature: same signatures as the nokhwa
//! backend, and an error that says how to rebuild.

use crate::board::{CameraDevice, PixelFormat};
use crate::source::{Frame, FrameSource, SourceError};

/// A camera (not built in).
#[derive(Debug)]
pub struct CameraSource {
    _never: (),
}

impl CameraSource {
    /// Always fails: a missing device node first (the more useful message), then "not enabled".
    ///
    /// # Errors
    /// [`SourceError::CameraMissing`] or [`SourceError::NotEnabled`].
    pub fn open(
        device: &CameraDevice,
        _width: u32,
        _height: u32,
        _format: PixelFormat,
    ) -> Result<Self, SourceError> {
        crate::source::check_device_node(device)?;
        Err(SourceError::NotEnabled {
            what: "the camera source",
            feature: "camera",
        })
    }
}

impl FrameSource for CameraSource {
    fn next_frame(&mut self) -> Result<Frame, SourceError> {
        Err(SourceError::NotEnabled {
            what: "the camera source",
            feature: "camera",
        })
    }

    fn describe(&self) -> String {
        "camera (not built in)".into()
    }
}
