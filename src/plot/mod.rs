//! Pictures of results, as PNG files: the learning curve of `fieldtune curve` and the confusion
//! matrix with per-class recall of `fieldtune eval --plot`.
//!
//! Drawn directly on an RGB buffer of the `image` crate (already in the tree to read photos) with a
//! 5×7 pixel font embedded in [`font`]: no plotting or font crate, no system fonts, no display, and
//! nothing that does not cross-compile with the rest of the binary.
//!
//! Files: [`font`] (glyphs), [`canvas`] (rectangles, lines, markers, text, PNG output),
//! [`curve`] (the learning curve), [`confusion`] (confusion matrix and recall bars).

pub mod canvas;
pub mod confusion;
pub mod curve;
pub mod font;

pub use canvas::{Canvas, PlotError};

/// A head kind as the plots print it: `linear` or `MLP-128`.
pub fn kind_label(kind: crate::head::HeadKind) -> String {
    match kind {
        crate::head::HeadKind::Linear => "linear".to_string(),
        crate::head::HeadKind::Mlp { hidden } => format!("MLP-{hidden}"),
    }
}
