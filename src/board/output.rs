//! `[output]`: where prediction lines go and how often.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::{At, Result};

/// `[output]` as written.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawOutput {
    /// `stdout` (default), `none`, or a file path (appended to).
    pub predictions: Option<String>,
    /// Smallest interval between two prediction lines in milliseconds (default 0).
    pub min_interval_ms: Option<u64>,
    /// `[output.rotate]`: size and count of prediction files (src/service/rotate.rs).
    pub rotate: Option<crate::service::rotate::RawRotate>,
}

/// Where prediction lines go.
#[derive(Debug, Clone, PartialEq)]
pub enum PredictionSink {
    Stdout,
    File(PathBuf),
    Discard,
}

/// `[output]`, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct OutputConfig {
    pub predictions: PredictionSink,
    pub min_interval: Duration,
    /// How a prediction file is rotated.
    pub rotate: crate::service::rotate::Rotation,
}

/// Checks `[output]`.
///
/// # Errors
/// [`super::BoardError::Invalid`] for an empty `output.predictions`.
pub fn validate(raw: RawOutput, at: &At) -> Result<OutputConfig> {
    let predictions = match raw.predictions.as_deref().unwrap_or("stdout") {
        "stdout" => PredictionSink::Stdout,
        "none" => PredictionSink::Discard,
        "" => {
            return Err(at.bad(
                "output.predictions",
                "is empty; use \"stdout\", \"none\" or a file path".into(),
            ))
        }
        file => PredictionSink::File(PathBuf::from(file)),
    };
    Ok(OutputConfig {
        predictions,
        min_interval: Duration::from_millis(raw.min_interval_ms.unwrap_or(0)),
        rotate: crate::service::rotate::validate(raw.rotate, at.path)?,
    })
}
