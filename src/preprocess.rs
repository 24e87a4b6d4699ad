//! Image → backbone input: decode (with EXIF orientation), resize the shorter side, centre-crop,
//! normalise and lay out as NCHW f32, exactly as the model descriptor says.
//!
//! This is what a device pays per frame besides the backbone, so it avoids needless work: the
//! resizer and its buffers are reused across frames, an image already at the target size is not
//! resized, and the crop, normalisation and NCHW layout happen in one pass.

use std::io::{Cursor, Read};
use std::path::Path;

use fast_image_resize::{
    images::{Image, ImageRef},
    FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer,
};
use image::metadata::Orientation;
use image::{DynamicImage, ImageDecoder, ImageFormat, ImageReader, RgbImage};

use crate::model::{ChannelOrder, Preprocessing, ResizeFilter};

/// Bounds on what one image may cost to decode. Checked against the image's header before any
/// pixel buffer is allocated, so a tiny file that claims to be huge costs nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodeLimits {
    /// Widest image accepted, in pixels.
    pub max_width: u32,
    /// Tallest image accepted, in pixels.
    pub max_height: u32,
    /// Most pixels accepted (width × height); the decoded RGB image takes 3 bytes per pixel.
    pub max_pixels: u64,
    /// Largest image file read, in bytes.
    pub max_file_bytes: u64,
}

impl DecodeLimits {
    /// The defaults: 8192 px a side, 16 megapixels (48 MB of RGB; a 4K frame is 8.3), 64 MiB a file.
    pub const DEFAULT: DecodeLimits = DecodeLimits {
        max_width: 8192,
        max_height: 8192,
        max_pixels: 16_000_000,
        max_file_bytes: 64 << 20,
    };

    /// Checks a size read from an image header.
    ///
    /// # Errors
    /// [`PreprocessError::TooLarge`] naming the bound that is exceeded.
    pub fn check(&self, width: u32, height: u32) -> Result<(), PreprocessError> {
        let too_large = |limit: String| PreprocessError::TooLarge {
            width,
            height,
            limit,
        };
        if width > self.max_width {
            return Err(too_large(format!("{} px wide", self.max_width)));
        }
        if height > self.max_height {
            return Err(too_large(format!("{} px high", self.max_height)));
        }
        if u64::from(width) * u64::from(height) > self.max_pixels {
            return Err(too_large(format!("{} pixels", self.max_pixels)));
        }
        if width == 0 || height == 0 {
            return Err(PreprocessError::Empty { width, height });
        }
        Ok(())
    }
}

impl Default for DecodeLimits {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// Why an image could not be turned into a tensor.
#[derive(Debug, thiserror::Error)]
pub enum PreprocessError {
    /// The bytes are not an image this build decodes (JPEG, PNG), or the file is damaged.
    #[error("not a readable JPEG/PNG image ({0}); the file may be damaged or of another format")]
    Decode(#[from] image::ImageError),
    /// A JPEG whose compressed data ends before the image is whole (the last row of a sequential
    /// JPEG, the last refinement of a progressive one).
    #[error("JPEG is truncated: its compressed data ends before the image is complete; the file was cut short, copy it again")]
    Truncated,
    /// A JPEG the decoder refused.
    #[error("not a readable JPEG image ({0}); the file may be damaged")]
    Jpeg(String),
    /// The header claims more pixels than the limits allow: refused before decoding.
    #[error("image of {width}×{height} px exceeds the limit of {limit}; scale it down (e.g. to 1024 px on the longer side) before giving it to fieldtune")]
    TooLarge {
        width: u32,
        height: u32,
        limit: String,
    },
    /// The file is larger than the limits allow: refused before reading.
    #[error("image file of {bytes} bytes exceeds the limit of {limit} bytes; scale it down or recompress it")]
    FileTooLarge { bytes: u64, limit: u64 },
    /// Not a regular file (a FIFO, socket or device named like an image).
    #[error("not a regular file but a {kind}; only image files are read")]
    NotAFile { kind: &'static str },
    /// The file cannot be read.
    #[error("cannot read the file: {0}")]
    Read(#[source] std::io::Error),
    /// The image is empty.
    #[error("image has no pixels ({width}×{height})")]
    Empty { width: u32, height: u32 },
    /// The resizer refused the image (should not happen for valid sizes).
    #[error("resizing failed: {0}")]
    Resize(String),
}

/// Reads an image file: refuses anything that is not a regular file (a FIFO would block for ever,
/// a device would never end) and files above `limits.max_file_bytes`, without reading them.
///
/// # Errors
/// [`PreprocessError::NotAFile`], [`PreprocessError::FileTooLarge`] or [`PreprocessError::Read`].
pub fn read_image_file(path: &Path, limits: &DecodeLimits) -> Result<Vec<u8>, PreprocessError> {
    use std::os::unix::fs::OpenOptionsExt;
    // O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer.
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(PreprocessError::Read)?;
    let meta = file.metadata().map_err(PreprocessError::Read)?;
    if let Some(kind) = crate::bounded_file::not_regular(&meta.file_type()) {
        return Err(PreprocessError::NotAFile { kind });
    }
    if meta.len() > limits.max_file_bytes {
        return Err(PreprocessError::FileTooLarge {
            bytes: meta.len(),
            limit: limits.max_file_bytes,
        });
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    // The file may grow while it is read: never take more than the limit.
    file.take(limits.max_file_bytes + 1)
        .read_to_end(&mut bytes)
        .map_err(PreprocessError::Read)?;
    if bytes.len() as u64 > limits.max_file_bytes {
        return Err(PreprocessError::FileTooLarge {
            bytes: bytes.len() as u64,
            limit: limits.max_file_bytes,
        });
    }
    Ok(bytes)
}

/// Decodes JPEG or PNG bytes to 8-bit RGB within the default [`DecodeLimits`], applying the EXIF
/// orientation.
///
/// # Errors
/// As [`decode_with`].
pub fn decode(bytes: &[u8]) -> Result<RgbImage, PreprocessError> {
    decode_with(bytes, &DecodeLimits::DEFAULT)
}

/// Decodes JPEG or PNG bytes to 8-bit RGB, applying the EXIF orientation. The size in the header
/// is checked against `limits` before any pixel buffer is allocated.
///
/// # Errors
/// [`PreprocessError::TooLarge`] over the limits, [`PreprocessError::Truncated`] for a JPEG cut
/// short (even with an end marker appended), [`PreprocessError::Decode`] / [`PreprocessError::Jpeg`]
/// for anything else that is not a complete image.
pub fn decode_with(bytes: &[u8], limits: &DecodeLimits) -> Result<RgbImage, PreprocessError> {
    let format = image::guess_format(bytes)?;
    if format == ImageFormat::Jpeg {
        return decode_jpeg(bytes, limits);
    }
    let mut reader = ImageReader::with_format(Cursor::new(bytes), format);
    // The header is read without limits so that a size over ours is reported in our words; the
    // decoder's own limits then hold for everything it allocates.
    reader.no_limits();
    let mut decoder = reader.into_decoder()?;
    let (width, height) = decoder.dimensions();
    limits.check(width, height)?;
    let mut image_limits = image::Limits::default();
    image_limits.max_image_width = Some(limits.max_width);
    image_limits.max_image_height = Some(limits.max_height);
    // Worst case 16-bit RGBA (8 bytes a pixel), plus the RGB copy.
    image_limits.max_alloc = Some(limits.max_pixels.saturating_mul(11));
    decoder.set_limits(image_limits)?;
    let orientation = decoder.orientation()?;
    let mut image = DynamicImage::from_decoder(decoder)?;
    image.apply_orientation(orientation);
    Ok(match image {
        DynamicImage::ImageRgb8(rgb) => rgb,
        other => other.to_rgb8(),
    })
}

/// JPEG through zune-jpeg in strict mode, so that compressed data that ends early is an error
/// rather than grey rows (the `image` crate decodes leniently, and a cut file with an end marker
/// appended would pass as whole).
fn decode_jpeg(bytes: &[u8], limits: &DecodeLimits) -> Result<RgbImage, PreprocessError> {
    match decode_jpeg_with(bytes, limits, true) {
        // Strict mode also refuses harmless oddities some cameras write (stray bytes between
        // segments): those files are decoded leniently. Data that ends early never is.
        Err(PreprocessError::Jpeg(strict)) => {
            decode_jpeg_with(bytes, limits, false).map_err(|e| match e {
                PreprocessError::Jpeg(_) => PreprocessError::Jpeg(strict),
                other => other,
            })
        }
        other => other,
    }
}

fn decode_jpeg_with(
    bytes: &[u8],
    limits: &DecodeLimits,
    strict: bool,
) -> Result<RgbImage, PreprocessError> {
    use zune_core::bytestream::ZCursor;
    use zune_core::colorspace::ColorSpace;
    use zune_core::options::DecoderOptions;
    let options = DecoderOptions::default()
        .set_strict_mode(strict)
        // Our limits are checked right after the header, in our words, before any pixel buffer.
        .set_max_width(usize::MAX)
        .set_max_height(usize::MAX)
        .jpeg_set_out_colorspace(ColorSpace::RGB);
    let mut decoder = zune_jpeg::JpegDecoder::new_with_options(ZCursor::new(bytes), options);
    let jpeg_error = |e: zune_jpeg::errors::DecodeErrors| {
        let text = e.to_string();
        if is_truncation(&text) {
            PreprocessError::Truncated
        } else {
            PreprocessError::Jpeg(text)
        }
    };
    decoder.decode_headers().map_err(jpeg_error)?;
    let (width, height) = decoder
        .dimensions()
        .ok_or_else(|| PreprocessError::Jpeg("no frame header".into()))?;
    let (width, height) = (
        u32::try_from(width).unwrap_or(u32::MAX),
        u32::try_from(height).unwrap_or(u32::MAX),
    );
    limits.check(width, height)?;
    if strict
        && crate::jpeg_check::completeness(bytes) == crate::jpeg_check::Completeness::Truncated
    {
        return Err(PreprocessError::Truncated);
    }
    let pixels = decoder.decode().map_err(jpeg_error)?;
    let orientation = decoder
        .exif()
        .and_then(|exif| Orientation::from_exif_chunk(exif))
        .unwrap_or(Orientation::NoTransforms);
    let rgb = RgbImage::from_raw(width, height, pixels).ok_or_else(|| {
        PreprocessError::Jpeg("the decoder gave fewer pixels than the header says".into())
    })?;
    if orientation == Orientation::NoTransforms {
        return Ok(rgb);
    }
    let mut image = DynamicImage::ImageRgb8(rgb);
    image.apply_orientation(orientation);
    Ok(image.into_rgb8())
}

/// Whether a zune-jpeg error means the compressed data ran out before the image was complete.
fn is_truncation(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    [
        "premature end",
        "no more bytes",
        "end of buffer",
        "eof",
        "not enough",
    ]
    .iter()
    .any(|needle| m.contains(needle))
}

/// Longest side, as a multiple of the shorter, that is resized whole: beyond it only the centre
/// part that the crop can keep is resized, so a 1×100000 image costs no more than a 1×4 one.
pub const MAX_RESIZED_ASPECT: u32 = 4;

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
        // A very thin image: resize only its centre (MAX_RESIZED_ASPECT × the shorter side), which
        // holds everything the centre crop keeps, so the buffer stays a bounded multiple of the
        // model input whatever the aspect ratio.
        let (short, long) = (width.min(height), width.max(height));
        let (options, new_w, new_h) =
            if u64::from(long) > u64::from(short) * u64::from(MAX_RESIZED_ASPECT) {
                // Below `long`, so it fits in a u32.
                let kept = (u64::from(short) * u64::from(MAX_RESIZED_ASPECT)) as u32;
                let offset = f64::from(long - kept) / 2.0;
                let (kw, kh, left, top) = if width > height {
                    (kept, height, offset, 0.0)
                } else {
                    (width, kept, 0.0, offset)
                };
                let (new_w, new_h) = shorter_side_to(kw, kh, self.spec.resize_shorter);
                let options = self.options.crop(left, top, f64::from(kw), f64::from(kh));
                (options, new_w, new_h)
            } else {
                (self.options, new_w, new_h)
            };
        let mut dst = Image::new(new_w, new_h, PixelType::U8x3);
        self.resizer
            .resize(&src, &mut dst, &options)
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

    #[test]
    fn a_jpeg_claiming_a_huge_size_is_refused_from_its_header() {
        let mut bytes = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/data/reference/china.jpg"
        ))
        .expect("reference JPEG");
        let sof = bytes
            .windows(2)
            .position(|w| w == [0xFF, 0xC0])
            .expect("a baseline frame header");
        bytes[sof + 5..sof + 9].copy_from_slice(&[0xEA, 0x60, 0xEA, 0x60]); // 60000 × 60000
        let error = decode(&bytes).expect_err("refused");
        assert!(
            matches!(
                error,
                PreprocessError::TooLarge {
                    width: 60000,
                    height: 60000,
                    ..
                }
            ),
            "{error}"
        );
    }

    #[test]
    fn limits_name_the_bound() {
        let limits = DecodeLimits::DEFAULT;
        let e = limits.check(1, 100_000).unwrap_err().to_string();
        assert!(
            e.contains("1×100000 px exceeds the limit of 8192 px high"),
            "{e}"
        );
        let e = limits.check(5000, 5000).unwrap_err().to_string();
        assert!(e.contains("16000000 pixels"), "{e}");
        assert!(limits.check(4000, 4000).is_ok());
    }
}
