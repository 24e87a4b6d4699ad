//! Image → backbone input: decode (with EXIF orientation), resize the shorter side, centre-crop,
//! normalise and lay out as NCHW f32, exactly as the model descriptor says.
//!
//! This is what a device pays per frame besides the backbone, so it avoids needless work: the
//! resizer and its buffers are reused across frames, an image already at the target size is not
//! resized, and the crop, normalisation and NCHW layout happen in one pass.

use std::io::Cursor;

use fast_image_resize::{
    images::{Image, ImageRef},
    FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer,
};
use image::{DynamicImage, ImageDecoder, ImageReader, RgbImage};

use crate::model::{ChannelOrder, Preprocessing, ResizeFilter};

/// Why an image could not be turned into a tensor.
#[derive(Debug, thiserror::Error)]
pub enum PreprocessError {
    /// The bytes are not an image this build decodes (JPEG, PNG), or the file is truncated.
    #[error("not a readable JPEG/PNG image ({0}); the file may be truncated or of another format")]
    Decode(#[from] image::ImageError),
    /// A JPEG without its end marker.
    #[error("JPEG is truncated (no end-of-image marker); the file was cut short: copy it again")]
    Truncated,
    /// The image is empty.
    #[error("image has no pixels ({width}×{height})")]
    Empty { width: u32, height: u32 },
    /// The resizer refused the image (should not happen for valid sizes).
    #[error("resizing failed: {0}")]
    Resize(String),
}

/// Decodes JPEG or PNG bytes to 8-bit RGB, applying the EXIF orientation.
///
/// # Errors
/// [`PreprocessError::Decode`] for anything that is not a complete image.
pub fn decode(bytes: &[u8]) -> Result<RgbImage, PreprocessError> {
    check_jpeg_complete(bytes)?;
    let mut decoder = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(image::ImageError::IoError)?
        .into_decoder()?;
    let orientation = decoder.orientation()?;
    let mut image = DynamicImage::from_decoder(decoder)?;
    image.apply_orientation(orientation);
    Ok(match image {
        DynamicImage::ImageRgb8(rgb) => rgb,
        other => other.to_rgb8(),
    })
}

/// Turns images into backbone input tensors; keeps its buffers between calls.
pub struct Preprocessor {
    spec: Preprocessing,
    resizer: Resizer,
    options: ResizeOptions,
}

impl Preprocessor {
    /// A preprocessor for one model's recipe.
    pub fn new(spec: Preprocessing) -> Self {
        let filter = match spec.filter {
            ResizeFilter::Bilinear => FilterType::Bilinear,
            ResizeFilter::Bicubic => FilterType::CatmullRom,
            ResizeFilter::Lanczos3 => FilterType::Lanczos3,
        };
        Self {
            spec,
            resizer: Resizer::new(),
            options: ResizeOptions::new().resize_alg(ResizeAlg::Convolution(filter)),
        }
    }

    /// The recipe in use.
    pub fn spec(&self) -> &Preprocessing {
        &self.spec
    }

    /// Number of f32 values in one tensor (3 × crop × crop).
    pub fn tensor_len(&self) -> usize {
        3 * (self.spec.crop as usize).pow(2)
    }

    /// Decodes `bytes` and writes the tensor into `out` (resized to [`Self::tensor_len`]).
    ///
    /// # Errors
    /// [`PreprocessError`] if the bytes are not a complete image.
    pub fn bytes_to_tensor(
        &mut self,
        bytes: &[u8],
        out: &mut Vec<f32>,
    ) -> Result<(), PreprocessError> {
        let rgb = decode(bytes)?;
        self.rgb_to_tensor(&rgb, out)
    }

    /// Writes the tensor of an RGB image into `out` (resized to [`Self::tensor_len`]).
    ///
    /// # Errors
    /// [`PreprocessError::Empty`] for an image without pixels.
    pub fn rgb_to_tensor(
        &mut self,
        rgb: &RgbImage,
        out: &mut Vec<f32>,
    ) -> Result<(), PreprocessError> {
        let (width, height) = rgb.dimensions();
        if width == 0 || height == 0 {
            return Err(PreprocessError::Empty { width, height });
        }
        let (new_w, new_h) = shorter_side_to(width, height, self.spec.resize_shorter);
        if (new_w, new_h) == (width, height) {
            self.crop_normalise(rgb.as_raw(), new_w, new_h, out);
            return Ok(());
        }
        let src = ImageRef::new(width, height, rgb.as_raw(), PixelType::U8x3)
            .map_err(|e| PreprocessError::Resize(e.to_string()))?;
        let mut dst = Image::new(new_w, new_h, PixelType::U8x3);
        self.resizer
            .resize(&src, &mut dst, &self.options)
            .map_err(|e| PreprocessError::Resize(e.to_string()))?;
        self.crop_normalise(dst.buffer(), new_w, new_h, out);
        Ok(())
    }

    /// Centre-crops an interleaved RGB buffer, normalises and writes NCHW.
    fn crop_normalise(&self, rgb: &[u8], width: u32, height: u32, out: &mut Vec<f32>) {
        let crop = self.spec.crop as usize;
        let (width, height) = (width as usize, height as usize);
        let left = (width - crop) / 2;
        let top = (height - crop) / 2;
        out.clear();
        out.resize(3 * crop * crop, 0.0);
        let plane = crop * crop;
        let order: [usize; 3] = match self.spec.channel_order {
            ChannelOrder::Rgb => [0, 1, 2],
            ChannelOrder::Bgr => [2, 1, 0],
        };
        // One lookup table per tensor channel (mean/std are given in tensor order): 256 entries turn the subtraction and division into a load.
        let mut table = [[0f32; 256]; 3];
        for (c, t) in table.iter_mut().enumerate() {
            for (v, entry) in t.iter_mut().enumerate() {
                *entry = (v as f32 - self.spec.mean[c]) / self.spec.std[c];
            }
        }
        let (planes_r, rest) = out.split_at_mut(plane);
        let (planes_g, planes_b) = rest.split_at_mut(plane);
        let planes = [planes_r, planes_g, planes_b];
        for y in 0..crop {
            let row = &rgb[((top + y) * width + left) * 3..((top + y) * width + left + crop) * 3];
            for (x, px) in row.chunks_exact(3).enumerate() {
                for (src_channel, &dst_channel) in order.iter().enumerate() {
                    planes[dst_channel][y * crop + x] =
                        table[dst_channel][px[src_channel] as usize];
                }
            }
        }
    }
}

/// Size after resizing the shorter side to `target`, keeping the aspect ratio (the longer side is
/// rounded to the nearest pixel, as the reference tensors in `models/PROVENANCE.md` were made).
pub fn shorter_side_to(width: u32, height: u32, target: u32) -> (u32, u32) {
    let scaled = |long: u32, short: u32| {
        let long =
            (u64::from(target) * u64::from(long) * 2 + u64::from(short)) / (2 * u64::from(short));
        (long as u32).max(target)
    };
    if width <= height {
        (target, scaled(height, width))
    } else {
        (scaled(width, height), target)
    }
}

/// A JPEG whose end-of-image marker is missing was cut short (a partial copy, a torn write):
/// decoders fill the missing part with grey, which would silently poison training, so it is refused.
fn check_jpeg_complete(bytes: &[u8]) -> Result<(), PreprocessError> {
    if !bytes.starts_with(&[0xFF, 0xD8]) {
        return Ok(());
    }
    // Some cameras pad frames or append metadata after the marker: look near the end only.
    let tail = &bytes[bytes.len().saturating_sub(4096)..];
    if tail.windows(2).any(|w| w == [0xFF, 0xD9]) {
        Ok(())
    } else {
        Err(PreprocessError::Truncated)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shorter_side_keeps_aspect() {
        assert_eq!(shorter_side_to(256, 256, 256), (256, 256));
        assert_eq!(shorter_side_to(640, 480, 256), (341, 256));
        assert_eq!(shorter_side_to(451, 300, 256), (385, 256));
        assert_eq!(shorter_side_to(640, 427, 256), (384, 256));
        assert_eq!(shorter_side_to(480, 640, 256), (256, 341));
        assert_eq!(shorter_side_to(10, 2000, 256), (256, 51200));
    }
}
