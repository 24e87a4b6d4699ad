//! Whether a frame changed enough to run the backbone again (board key `source.skip_unchanged`).
//!
//! Each frame is reduced to a 32 × 32 grey thumbnail (box averages over the whole frame: one pass
//! over the pixels, no allocation after the first frame). A frame is *unchanged* when its thumbnail
//! differs from the thumbnail of the last frame that ran the backbone by at most `threshold` grey
//! levels on average and by at most [`CELL_FACTOR`] × `threshold` in every cell (so a small object
//! entering one corner still counts as a change). Comparing against the last *embedded* frame, not
//! the previous frame, means a slow drift (light, a leaf turning) adds up until the backbone runs.
//!
//! Box averages over hundreds of pixels per cell wash out sensor noise (a noise of σ grey levels per
//! pixel leaves about σ / 17 per cell at 640 × 480), while a different leaf moves the mean by tens
//! of grey levels.

use image::RgbImage;

/// Thumbnail side in cells.
pub const SIDE: usize = 32;

/// No single cell may differ by more than this many times the threshold.
pub const CELL_FACTOR: f32 = 8.0;

/// A 32 × 32 grey thumbnail, grey levels 0-255 as `f32`.
#[derive(Debug, Clone, PartialEq)]
pub struct Thumbnail {
    cells: Vec<f32>,
}

impl Thumbnail {
    /// An all-black thumbnail (to be filled by [`Thumbnail::fill_from`]).
    pub fn new() -> Thumbnail {
        Thumbnail {
            cells: vec![0.0; SIDE * SIDE],
        }
    }

    /// The thumbnail of `rgb` (grey = (R + 2G + B) / 4, averaged over each cell's pixels).
    pub fn of(rgb: &RgbImage) -> Thumbnail {
        let mut t = Thumbnail::new();
        t.fill_from(rgb);
        t
    }

    /// Overwrites this thumbnail with that of `rgb`. An image smaller than 32 px on a side repeats
    /// its pixels over several cells.
    pub fn fill_from(&mut self, rgb: &RgbImage) {
        let (w, h) = (rgb.width() as usize, rgb.height() as usize);
        self.cells.fill(0.0);
        if w == 0 || h == 0 {
            return;
        }
        let mut counts = [0u32; SIDE * SIDE];
        let raw = rgb.as_raw();
        for y in 0..h {
            let cy = y * SIDE / h;
            let row = &raw[y * w * 3..(y + 1) * w * 3];
            let cells = &mut self.cells[cy * SIDE..(cy + 1) * SIDE];
            let counts = &mut counts[cy * SIDE..(cy + 1) * SIDE];
            for (x, px) in row.chunks_exact(3).enumerate() {
                let cx = x * SIDE / w;
                let grey = (u32::from(px[0]) + 2 * u32::from(px[1]) + u32::from(px[2])) as f32;
                cells[cx] += grey * 0.25;
                counts[cx] += 1;
            }
        }
        for (cy, row) in self.cells.chunks_exact_mut(SIDE).enumerate() {
            for (cx, cell) in row.iter_mut().enumerate() {
                let (sy, sx) = (cy * h / SIDE, cx * w / SIDE);
                match counts[cy * SIDE + cx] {
                    // Smaller than the thumbnail: this cell takes its one pixel.
                    0 => {
                        let px = rgb.get_pixel(sx as u32, sy as u32).0;
                        *cell = (u32::from(px[0]) + 2 * u32::from(px[1]) + u32::from(px[2])) as f32
                            * 0.25;
                    }
                    n => *cell /= n as f32,
                }
            }
        }
    }

    /// Mean and largest absolute difference of the cells, in grey levels.
    pub fn difference(&self, other: &Thumbnail) -> (f32, f32) {
        let mut sum = 0.0f32;
        let mut largest = 0.0f32;
        for (a, b) in self.cells.iter().zip(&other.cells) {
            let d = (a - b).abs();
            sum += d;
            largest = largest.max(d);
        }
        (sum / self.cells.len() as f32, largest)
    }
}

impl Default for Thumbnail {
    fn default() -> Self {
        Thumbnail::new()
    }
}

/// The decision and its reference: the thumbnail of the last frame that ran the backbone.
#[derive(Debug, Clone)]
pub struct ChangeDetector {
    threshold: f32,
    reference: Option<Thumbnail>,
    current: Thumbnail,
}

impl ChangeDetector {
    /// A detector that calls a frame unchanged up to `threshold` grey levels of mean difference.
    pub fn new(threshold: f32) -> ChangeDetector {
        ChangeDetector {
            threshold,
            reference: None,
            current: Thumbnail::new(),
        }
    }

    /// Takes the thumbnail of a new frame and says whether it is unchanged from the reference
    /// (never for the first frame). Follow with [`ChangeDetector::embedded`] when the backbone runs
    /// on it.
    pub fn unchanged(&mut self, rgb: &RgbImage) -> bool {
        self.current.fill_from(rgb);
        let Some(reference) = &self.reference else {
            return false;
        };
        let (mean, largest) = self.current.difference(reference);
        mean <= self.threshold && largest <= CELL_FACTOR * self.threshold
    }

    /// The frame last given to [`ChangeDetector::unchanged`] ran the backbone: it becomes the
    /// reference.
    pub fn embedded(&mut self) {
        match &mut self.reference {
            Some(r) => r.cells.copy_from_slice(&self.current.cells),
            None => self.reference = Some(self.current.clone()),
        }
    }

    /// Makes `rgb` the reference (a frame embedded outside the loop's order, e.g. for a label).
    pub fn embedded_frame(&mut self, rgb: &RgbImage) {
        let reference = self.reference.get_or_insert_with(Thumbnail::new);
        reference.fill_from(rgb);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flat(w: u32, h: u32, v: u8) -> RgbImage {
        RgbImage::from_pixel(w, h, image::Rgb([v, v, v]))
    }

    #[test]
    fn a_flat_image_gives_a_flat_thumbnail() {
        for (w, h) in [(640, 480), (31, 7), (1, 1), (33, 65)] {
            let t = Thumbnail::of(&flat(w, h, 100));
            assert!(t.cells.iter().all(|&c| (c - 100.0).abs() < 1e-3), "{w}×{h}");
        }
    }

    #[test]
    fn the_first_frame_always_runs_and_a_copy_is_unchanged() {
        let mut d = ChangeDetector::new(3.0);
        let a = flat(64, 48, 80);
        assert!(!d.unchanged(&a));
        d.embedded();
        assert!(d.unchanged(&a.clone()));
        assert!(d.unchanged(&flat(64, 48, 82)), "2 grey levels is within 3");
        assert!(
            !d.unchanged(&flat(64, 48, 90)),
            "10 grey levels is a change"
        );
    }

    #[test]
    fn a_small_local_change_counts() {
        let mut d = ChangeDetector::new(3.0);
        let a = flat(320, 320, 50);
        assert!(!d.unchanged(&a));
        d.embedded();
        // One cell (10 × 10 px) turns white: the mean moves by about 0.2, that cell by 205.
        let mut b = a.clone();
        for y in 0..10 {
            for x in 0..10 {
                b.put_pixel(x, y, image::Rgb([255, 255, 255]));
            }
        }
        assert!(!d.unchanged(&b));
    }

    #[test]
    fn drift_adds_up_against_the_last_embedded_frame() {
        let mut d = ChangeDetector::new(3.0);
        assert!(!d.unchanged(&flat(32, 32, 100)));
        d.embedded();
        assert!(d.unchanged(&flat(32, 32, 102)));
        assert!(d.unchanged(&flat(32, 32, 103)));
        assert!(
            !d.unchanged(&flat(32, 32, 104)),
            "4 levels from the reference"
        );
    }
}
