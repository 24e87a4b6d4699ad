//! The camera source through nokhwa (V4L2 on Linux), built with `--features camera`.
//!
//! MJPEG frames are passed on still encoded (the embedder decodes once, straight to the size it
//! needs); YUYV frames are converted to RGB here. An unplugged camera or a bad frame is reported as
//! a transient [`SourceError::Camera`]; the next call reopens the device, so the service keeps
//! serving and picks the camera up again when it comes back.

use nokhwa::pixel_format::RgbFormat;
use nokhwa::utils::{
    CameraFormat, CameraIndex, FrameFormat, RequestedFormat, RequestedFormatType, Resolution,
};

use crate::board::{CameraDevice, PixelFormat};
use crate::source::{Frame, FrameData, FrameSource, SourceError};

/// A V4L2 camera.
pub struct CameraSource {
    device: CameraDevice,
    name: String,
    format: CameraFormat,
    camera: Option<nokhwa::Camera>,
}

fn index_of(device: &CameraDevice) -> Result<CameraIndex, SourceError> {
    match device {
        CameraDevice::Index(i) => Ok(CameraIndex::Index(*i)),
        // nokhwa's V4L2 backend takes the N of /dev/videoN; a by-id or by-path link is followed.
        CameraDevice::Path(path) => Ok(CameraIndex::Index(crate::source::video_index(path)?)),
    }
}

impl CameraSource {
    /// Opens the camera and starts streaming.
    ///
    /// # Errors
    /// [`SourceError::CameraMissing`] when the device node does not exist, [`SourceError::Camera`]
    /// when it cannot be opened (busy, no permission: add the user to the `video` group).
    pub fn open(
        device: &CameraDevice,
        width: u32,
        height: u32,
        format: PixelFormat,
    ) -> Result<Self, SourceError> {
        crate::source::check_device_node(device)?;
        let frame_format = match format {
            PixelFormat::Mjpeg => FrameFormat::MJPEG,
            PixelFormat::Yuyv => FrameFormat::YUYV,
        };
        let mut source = CameraSource {
            device: device.clone(),
            name: device.to_string(),
            format: CameraFormat::new(Resolution::new(width, height), frame_format, 30),
            camera: None,
        };
        source.reopen()?;
        Ok(source)
    }

    fn fault(&self, problem: impl std::fmt::Display) -> SourceError {
        SourceError::Camera {
            device: self.name.clone(),
            problem: problem.to_string(),
        }
    }

    fn reopen(&mut self) -> Result<(), SourceError> {
        self.camera = None;
        let requested =
            RequestedFormat::new::<RgbFormat>(RequestedFormatType::Closest(self.format));
        // Resolved again at each open: after a replug a by-id link may point at another videoN.
        let index = index_of(&self.device)?;
        let mut camera = nokhwa::Camera::new(index, requested).map_err(|e| self.fault(e))?;
        camera.open_stream().map_err(|e| self.fault(e))?;
        self.camera = Some(camera);
        Ok(())
    }
}

impl FrameSource for CameraSource {
    fn next_frame(&mut self) -> Result<Frame, SourceError> {
        if self.camera.is_none() {
            self.reopen()?;
        }
        let Some(camera) = self.camera.as_mut() else {
            return Err(self.fault("not open"));
        };
        let buffer = match camera.frame() {
            Ok(buffer) => buffer,
            Err(e) => {
                // Unplugged or stalled: drop the handle so the next call reopens the device.
                self.camera = None;
                return Err(self.fault(e));
            }
        };
        // The same bounds as every other source: the driver may deliver another size than the
        // one asked for, and a frame is refused before it is copied or decoded.
        let resolution = buffer.resolution();
        crate::preprocess::DecodeLimits::DEFAULT
            .check(resolution.width(), resolution.height())
            .map_err(|e| self.fault(format!("frame refused: {e}")))?;
        let data = if buffer.source_frame_format() == FrameFormat::MJPEG {
            let max = crate::source::mjpeg::MAX_FRAME_BYTES;
            if buffer.buffer().len() > max {
                return Err(self.fault(format!(
                    "an MJPEG frame of {} bytes is larger than {} MiB (the limit); skipped",
                    buffer.buffer().len(),
                    max >> 20
                )));
            }
            FrameData::Encoded(buffer.buffer().to_vec())
        } else {
            let decoded = buffer
                .decode_image::<RgbFormat>()
                .map_err(|e| self.fault(e))?;
            let (w, h) = (decoded.width(), decoded.height());
            let rgb = image::RgbImage::from_raw(w, h, decoded.into_raw())
                .ok_or_else(|| self.fault("decoded frame has the wrong size"))?;
            FrameData::Rgb(rgb)
        };
        Ok(Frame {
            data,
            origin: self.name.clone(),
            truth: None,
        })
    }

    fn describe(&self) -> String {
        format!(
            "camera {} {}x{} {:?}",
            self.name,
            self.format.width(),
            self.format.height(),
            self.format.format()
        )
    }
}
