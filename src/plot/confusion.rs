//! The confusion matrix and per-class recall as a picture: a grid of cells, row = true class,
//! column = predicted class, each cell shaded by the share of its row it holds (white 0 %, dark
//! blue 100 %) and labelled with its count; to the right, one bar per class with its recall.

use std::path::Path;

use super::canvas::{Canvas, Colour, PlotError, BLACK, GRID, WHITE};
use super::font::text_width;
use crate::eval::Metrics;

/// Longest class name printed (longer ones are cut with a `.`).
const NAME_CHARS: usize = 16;

fn short(name: &str) -> String {
    if name.chars().count() <= NAME_CHARS {
        name.to_string()
    } else {
        let mut s: String = name.chars().take(NAME_CHARS - 1).collect();
        s.push('.');
        s
    }
}

fn shade(share: f64) -> Colour {
    let t = share.clamp(0.0, 1.0);
    let mix = |a: f64, b: f64| (a + (b - a) * t).round() as u8;
    [mix(255.0, 20.0), mix(255.0, 70.0), mix(255.0, 160.0)]
}

/// Draws the confusion matrix and recall bars of `m`, titled `title`.
pub fn draw_confusion(m: &Metrics, title: &str) -> Canvas {
    let k = m.per_class.len().max(1);
    let cell: i64 = if k <= 6 {
        70
    } else if k <= 12 {
        44
    } else {
        28
    };
    let names: Vec<String> = m.per_class.iter().map(|c| short(&c.name)).collect();
    let name_w = names.iter().map(|n| text_width(n, 2)).max().unwrap_or(0) as i64;
    let left = 30 + name_w + 12;
    let top = 90;
    let grid = cell * k as i64;
    let bar_w = 200;
    let width =
        (left + grid + 40 + name_w + 12 + bar_w + 120).max(text_width(title, 2) as i64 + 40);
    let height = top + grid + name_w + 30;
    let mut c = Canvas::new(width as u32, height as u32);
    c.text(20, 12, title, 2, BLACK);
    c.text(
        20,
        36,
        &format!(
            "accuracy {:.2} %, balanced {:.2} %, {} images",
            100.0 * m.accuracy,
            100.0 * m.balanced_accuracy,
            m.n
        ),
        2,
        BLACK,
    );
    c.text(left, top - 24, "predicted ->", 2, BLACK);
    c.text_up(
        8,
        top + grid / 2 + text_width("true", 2) as i64 / 2,
        "true",
        2,
        BLACK,
    );
    let scale = if cell >= 44 { 2 } else { 1 };
    for (i, row) in m.confusion.iter().enumerate() {
        let total: usize = row.iter().sum();
        let y = top + i as i64 * cell;
        c.text(
            left - 12 - text_width(&names[i], 2) as i64,
            y + cell / 2 - 7,
            &names[i],
            2,
            BLACK,
        );
        for (j, &n) in row.iter().enumerate() {
            let x = left + j as i64 * cell;
            let share = if total == 0 {
                0.0
            } else {
                n as f64 / total as f64
            };
            c.rect(x, y, cell, cell, shade(share));
            c.frame(x, y, cell, cell, GRID);
            let label = n.to_string();
            let colour = if share > 0.5 { WHITE } else { BLACK };
            let tw = text_width(&label, scale) as i64;
            c.text(
                x + (cell - tw) / 2,
                y + cell / 2 - 3 * scale as i64,
                &label,
                scale,
                colour,
            );
        }
    }
    c.frame(left, top, grid, grid, BLACK);
    for (j, name) in names.iter().enumerate() {
        let x = left + j as i64 * cell + cell / 2 - 7;
        c.text_up(
            x,
            top + grid + 10 + text_width(name, 2) as i64,
            name,
            2,
            BLACK,
        );
    }
    // Recall bars.
    let bx = left + grid + 40;
    c.text(bx, top - 24, "recall", 2, BLACK);
    for (i, cm) in m.per_class.iter().enumerate() {
        let y = top + i as i64 * cell + cell / 2 - 10;
        c.text(bx, y + 3, &names[i], 2, BLACK);
        let x0 = bx + name_w + 12;
        c.rect(x0, y, bar_w, 20, GRID);
        c.rect(
            x0,
            y,
            (cm.recall * bar_w as f64).round() as i64,
            20,
            shade(0.8),
        );
        c.text(
            x0 + bar_w + 6,
            y + 3,
            &format!("{:.1} %", 100.0 * cm.recall),
            2,
            BLACK,
        );
    }
    c
}

/// Draws the confusion matrix of `m` and saves it as a PNG file.
///
/// # Errors
/// [`PlotError`] naming the file.
pub fn save_confusion_png(m: &Metrics, title: &str, path: &Path) -> Result<(), PlotError> {
    draw_confusion(m, title).save_png(path)
}
