//! An RGB picture to draw plots on: filled rectangles, straight lines (any slope, any width), small
//! markers and text in the embedded 5×7 font, saved as PNG through the `image` crate already used
//! to read photos.

use std::path::Path;

use image::{Rgb, RgbImage};

use super::font::{glyph, GLYPH_H, GLYPH_W};

/// A colour.
pub type Colour = [u8; 3];
/// White.
pub const WHITE: Colour = [255, 255, 255];
/// Black.
pub const BLACK: Colour = [0, 0, 0];
/// Light grey (grid lines).
pub const GRID: Colour = [225, 225, 225];
/// Mid grey (secondary text, ranges).
pub const GREY: Colour = [120, 120, 120];

/// Why a picture could not be written.
#[derive(Debug, thiserror::Error)]
#[error("cannot write the PNG picture {path}: check the directory exists and is writable")]
pub struct PlotError {
    path: std::path::PathBuf,
    #[source]
    source: image::ImageError,
}

/// A picture being drawn.
pub struct Canvas {
    img: RgbImage,
}

impl Canvas {
    /// A white picture of `w × h` pixels.
    pub fn new(w: u32, h: u32) -> Canvas {
        Canvas {
            img: RgbImage::from_pixel(w, h, Rgb(WHITE)),
        }
    }

    /// Width in pixels.
    pub fn width(&self) -> u32 {
        self.img.width()
    }

    /// Height in pixels.
    pub fn height(&self) -> u32 {
        self.img.height()
    }

    /// The picture drawn so far.
    pub fn image(&self) -> &RgbImage {
        &self.img
    }

    /// Sets one pixel (ignored outside the picture).
    pub fn dot(&mut self, x: i64, y: i64, c: Colour) {
        if x >= 0 && y >= 0 && (x as u32) < self.img.width() && (y as u32) < self.img.height() {
            self.img.put_pixel(x as u32, y as u32, Rgb(c));
        }
    }

    /// Fills the rectangle with corner `(x, y)` and size `w × h`.
    pub fn rect(&mut self, x: i64, y: i64, w: i64, h: i64, c: Colour) {
        for yy in y..y + h {
            for xx in x..x + w {
                self.dot(xx, yy, c);
            }
        }
    }

    /// Draws the outline of a rectangle, one pixel wide.
    pub fn frame(&mut self, x: i64, y: i64, w: i64, h: i64, c: Colour) {
        self.rect(x, y, w, 1, c);
        self.rect(x, y + h - 1, w, 1, c);
        self.rect(x, y, 1, h, c);
        self.rect(x + w - 1, y, 1, h, c);
    }

    /// A line from `(x0, y0)` to `(x1, y1)`, `width` pixels thick.
    pub fn line(&mut self, x0: f64, y0: f64, x1: f64, y1: f64, width: u32, c: Colour) {
        let steps = (x1 - x0).abs().max((y1 - y0).abs()).ceil().max(1.0) as i64;
        let half = width as i64 / 2;
        for i in 0..=steps {
            let t = i as f64 / steps as f64;
            let x = (x0 + t * (x1 - x0)).round() as i64;
            let y = (y0 + t * (y1 - y0)).round() as i64;
            self.rect(x - half, y - half, width as i64, width as i64, c);
        }
    }

    /// A filled square marker of side `size` centred on `(x, y)`.
    pub fn marker(&mut self, x: f64, y: f64, size: u32, c: Colour) {
        let h = size as i64 / 2;
        self.rect(
            x.round() as i64 - h,
            y.round() as i64 - h,
            size as i64,
            size as i64,
            c,
        );
    }

    /// Draws `text` with its top-left corner at `(x, y)`, each font pixel `scale × scale`.
    pub fn text(&mut self, x: i64, y: i64, text: &str, scale: u32, c: Colour) {
        let s = scale as i64;
        for (i, ch) in text.chars().enumerate() {
            let gx = x + i as i64 * (GLYPH_W as i64 + 1) * s;
            for (row, bits) in glyph(ch).iter().enumerate() {
                for col in 0..GLYPH_W {
                    if bits & (1 << (GLYPH_W - 1 - col)) != 0 {
                        self.rect(gx + col as i64 * s, y + row as i64 * s, s, s, c);
                    }
                }
            }
        }
    }

    /// Draws `text` rotated a quarter turn counter-clockwise (read bottom to top), its
    /// bottom-left corner at `(x, y)`.
    pub fn text_up(&mut self, x: i64, y: i64, text: &str, scale: u32, c: Colour) {
        let s = scale as i64;
        for (i, ch) in text.chars().enumerate() {
            let gy = y - i as i64 * (GLYPH_W as i64 + 1) * s;
            for (row, bits) in glyph(ch).iter().enumerate() {
                for col in 0..GLYPH_W {
                    if bits & (1 << (GLYPH_W - 1 - col)) != 0 {
                        self.rect(x + row as i64 * s, gy - (col as i64 + 1) * s, s, s, c);
                    }
                }
            }
        }
    }

    /// Height of one line of text at `scale`.
    pub fn line_height(scale: u32) -> i64 {
        ((GLYPH_H + 3) * scale) as i64
    }

    /// Saves the picture as PNG.
    ///
    /// # Errors
    /// [`PlotError`] naming the file.
    pub fn save_png(&self, path: &Path) -> Result<(), PlotError> {
        self.img
            .save_with_format(path, image::ImageFormat::Png)
            .map_err(|source| PlotError {
                path: path.to_path_buf(),
                source,
            })
    }
}
