//! Thumbnails: the small JPEG kept with each stored sample, so a person can review what was
//! labelled, the images can go back to a laptop (`state export --images`), and a state can be
//! re-embedded for another backbone. About 112 px on the longer side at quality 75: 2-4 KB each.

use image::RgbImage;

use crate::source::FrameData;

/// Longer side of a thumbnail by default, in pixels.
pub const DEFAULT_SIZE: u32 = 112;

/// JPEG quality of thumbnails.
const QUALITY: u8 = 75;

/// What can go wrong making a thumbnail.
#[derive(Debug, thiserror::Error)]
pub enum ThumbnailError {
    /// The frame does not decode.
    #[error("the frame does not decode as an image: {0}")]
    Decode(String),
    /// JPEG encoding failed.
    #[error("cannot encode the thumbnail: {0}")]
    Encode(String),
}

/// A JPEG of `data` whose longer side is at most `size` pixels (smaller images keep their size).
///
/// # Errors
/// [`ThumbnailError`].
pub fn make(data: &FrameData, size: u32) -> Result<Vec<u8>, ThumbnailError> {
    let small = match data {
        FrameData::Encoded(bytes) => {
            let image = image::load_from_memory(bytes)
                .map_err(|e| ThumbnailError::Decode(e.to_string()))?;
            shrink(&image.to_rgb8(), size)
        }
        FrameData::Rgb(rgb) => shrink(rgb, size),
    };
    encode(&small)
}

/// `rgb` scaled down so its longer side is at most `size` (smaller images are copied as they are).
pub fn shrink(rgb: &RgbImage, size: u32) -> RgbImage {
    let (w, h) = rgb.dimensions();
    let longer = w.max(h).max(1);
    if longer <= size {
        return rgb.clone();
    }
    let nw = (u64::from(w) * u64::from(size) / u64::from(longer)).max(1) as u32;
    let nh = (u64::from(h) * u64::from(size) / u64::from(longer)).max(1) as u32;
    image::imageops::thumbnail(rgb, nw, nh)
}

fn encode(rgb: &RgbImage) -> Result<Vec<u8>, ThumbnailError> {
    let mut out = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, QUALITY)
        .encode_image(rgb)
        .map_err(|e| ThumbnailError::Encode(e.to_string()))?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_large_frame_becomes_a_small_jpeg_of_the_same_shape() {
        let rgb = RgbImage::from_fn(640, 480, |x, y| image::Rgb([x as u8, y as u8, 128]));
        let jpeg = make(&FrameData::Rgb(rgb), DEFAULT_SIZE).unwrap();
        let back = image::load_from_memory(&jpeg).unwrap();
        assert_eq!((back.width(), back.height()), (112, 84));
        assert!(jpeg.len() < 8 * 1024, "{} bytes", jpeg.len());
    }
}
