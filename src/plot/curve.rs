//! The learning curve as a picture: test accuracy (%) against labelled images per class (log
//! scale), the head's mean over the draws in blue and the nearest class mean's in orange, each draw's
//! range as a vertical bar, the head's mean printed at every point.

use std::path::Path;

use super::canvas::{Canvas, Colour, PlotError, BLACK, GREY, GRID};
use super::font::text_width;
use crate::curve::Curve;

/// Colour of the head.
pub const HEAD: Colour = [31, 90, 180];
/// Colour of the class-mean baseline.
pub const BASELINE: Colour = [230, 120, 20];

const W: u32 = 760;
const H: u32 = 500;
const LEFT: i64 = 80;
const RIGHT: i64 = 70;
const TOP: i64 = 60;
const BOTTOM: i64 = 70;

/// Draws `curve` (see the module docs).
pub fn draw_curve(curve: &Curve) -> Canvas {
    let mut c = Canvas::new(W, H);
    let (pw, ph) = (W as i64 - LEFT - RIGHT, H as i64 - TOP - BOTTOM);
    let all: Vec<f64> = curve
        .points
        .iter()
        .flat_map(|p| p.head.iter().chain(&p.baseline))
        .map(|v| 100.0 * v)
        .collect();
    let lo = all.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = all.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let step = if hi - lo > 40.0 { 10.0 } else { 5.0 };
    let y_lo = ((lo - 1.0) / step).floor() * step;
    let y_hi = (((hi + 1.0) / step).ceil() * step)
        .min(100.0)
        .max(y_lo + step);
    let shots: Vec<f64> = curve.points.iter().map(|p| p.shots as f64).collect();
    let (s_lo, s_hi) = (
        shots.iter().copied().fold(f64::INFINITY, f64::min).ln(),
        shots.iter().copied().fold(f64::NEG_INFINITY, f64::max).ln(),
    );
    let px = |k: f64| -> f64 {
        if s_hi - s_lo < 1e-9 {
            LEFT as f64 + pw as f64 / 2.0
        } else {
            LEFT as f64 + 20.0 + (k.ln() - s_lo) / (s_hi - s_lo) * (pw as f64 - 40.0)
        }
    };
    let py = |acc: f64| -> f64 { TOP as f64 + (y_hi - acc) / (y_hi - y_lo) * ph as f64 };

    // Grid and y axis labels.
    let mut g = y_lo;
    while g <= y_hi + 1e-9 {
        let y = py(g).round() as i64;
        c.rect(LEFT, y, pw, 1, GRID);
        let label = format!("{g:.0}");
        c.text(
            LEFT - 10 - text_width(&label, 2) as i64,
            y - 7,
            &label,
            2,
            BLACK,
        );
        g += step;
    }
    c.frame(LEFT, TOP, pw, ph + 1, BLACK);
    for &k in &shots {
        let x = px(k).round() as i64;
        c.rect(x, TOP + ph - 5, 1, 6, BLACK);
        let label = format!("{k:.0}");
        c.text(
            x - text_width(&label, 2) as i64 / 2,
            TOP + ph + 10,
            &label,
            2,
            BLACK,
        );
    }
    let xl = "labelled images per class (log scale)";
    c.text(
        LEFT + (pw - text_width(xl, 2) as i64) / 2,
        H as i64 - 30,
        xl,
        2,
        BLACK,
    );
    c.text_up(
        18,
        TOP + ph / 2 + text_width("test accuracy %", 2) as i64 / 2,
        "test accuracy %",
        2,
        BLACK,
    );

    // Title and legend.
    let title = format!(
        "{} head vs class means, {} draws, {} test images",
        super::kind_label(curve.kind),
        curve.draws,
        curve.test_samples
    );
    c.text(20, 12, &title, 2, BLACK);
    c.rect(LEFT, 38, 24, 4, HEAD);
    c.text(LEFT + 32, 33, "head", 2, HEAD);
    c.rect(LEFT + 110, 38, 24, 4, BASELINE);
    c.text(LEFT + 142, 33, "nearest class mean", 2, BASELINE);

    // Ranges, lines, markers.
    for (series, colour, dx) in [(0, BASELINE, 4.0), (1, HEAD, -4.0)] {
        let pts: Vec<(f64, f64)> = curve
            .points
            .iter()
            .map(|p| {
                let v = if series == 1 { &p.head } else { &p.baseline };
                (px(p.shots as f64) + dx, py(100.0 * crate::curve::mean(v)))
            })
            .collect();
        for (p, &(x, _)) in curve.points.iter().zip(&pts) {
            let v = if series == 1 { &p.head } else { &p.baseline };
            let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
            let hi = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            c.line(x, py(100.0 * lo), x, py(100.0 * hi), 1, colour);
            c.line(x - 3.0, py(100.0 * lo), x + 3.0, py(100.0 * lo), 1, colour);
            c.line(x - 3.0, py(100.0 * hi), x + 3.0, py(100.0 * hi), 1, colour);
        }
        for w in pts.windows(2) {
            c.line(w[0].0, w[0].1, w[1].0, w[1].1, 3, colour);
        }
        for &(x, y) in &pts {
            c.marker(x, y, 9, colour);
        }
    }
    for p in &curve.points {
        let label = format!("{:.1}", 100.0 * p.head_mean());
        let x = px(p.shots as f64) - 4.0 - text_width(&label, 2) as f64 - 8.0;
        let y = py(100.0 * p.head_mean()) - 20.0;
        c.text(x.max(LEFT as f64 + 2.0) as i64, y as i64, &label, 2, HEAD);
        let label = format!("{:.1}", 100.0 * p.baseline_mean());
        let y = py(100.0 * p.baseline_mean()) + 8.0;
        c.text(px(p.shots as f64) as i64 + 10, y as i64, &label, 2, GREY);
    }
    c
}

/// Draws `curve` and saves it as a PNG file.
///
/// # Errors
/// [`PlotError`] naming the file.
pub fn save_curve_png(curve: &Curve, path: &Path) -> Result<(), PlotError> {
    draw_curve(curve).save_png(path)
}
