//! Prediction lines: one JSON object per prediction, to stdout or appended to a file (rotated by
//! size, [`super::rotate`]), at most one per `output.min_interval_ms`. A write failure (full disk,
//! closed pipe) is logged once and the service keeps classifying.

use std::io::Write;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::rotate::{RotatingFile, Rotation};
use crate::board::PredictionSink;

/// One prediction as written.
#[derive(Debug, Clone, Serialize)]
pub struct PredictionLine<'a> {
    /// Milliseconds since the Unix epoch.
    pub time_ms: u64,
    /// Frame sequence number (from 1).
    pub seq: u64,
    /// Where the frame came from.
    pub origin: &'a str,
    /// The predicted class, or `null` for unknown.
    pub class: Option<&'a str>,
    /// Its probability (0 when unknown).
    pub probability: f32,
    /// Capture to prediction, milliseconds.
    pub latency_ms: f64,
    /// What the source says the frame is (folder replay), if it knows.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub truth: Option<&'a str>,
    /// The frame did not change since the last frame that ran the backbone, whose features it
    /// reused (board key `source.skip_unchanged`); written only when true.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub reused: bool,
}

/// Where prediction lines go.
pub struct PredictionOutput {
    writer: Option<Box<dyn Write + Send>>,
    min_interval: Duration,
    last: Option<Instant>,
    failed: bool,
}

/// Could not open the predictions file.
#[derive(Debug, thiserror::Error)]
#[error(
    "cannot open predictions file {path}: {source}; check output.predictions in the board file"
)]
pub struct OutputError {
    pub path: std::path::PathBuf,
    #[source]
    pub source: std::io::Error,
}

impl PredictionOutput {
    /// Opens the sink.
    ///
    /// # Errors
    /// [`OutputError`] when the file cannot be opened for appending.
    pub fn open(sink: &PredictionSink, min_interval: Duration) -> Result<Self, OutputError> {
        Self::open_rotating(sink, min_interval, Rotation::default())
    }

    /// Opens the sink; a file is rotated as `rotation` says.
    ///
    /// # Errors
    /// [`OutputError`] when the file cannot be opened for appending.
    pub fn open_rotating(
        sink: &PredictionSink,
        min_interval: Duration,
        rotation: Rotation,
    ) -> Result<Self, OutputError> {
        let writer: Option<Box<dyn Write + Send>> = match sink {
            PredictionSink::Stdout => Some(Box::new(std::io::stdout())),
            PredictionSink::Discard => None,
            PredictionSink::File(path) => Some(Box::new(
                RotatingFile::open(path, rotation).map_err(|source| OutputError {
                    path: path.clone(),
                    source,
                })?,
            )),
        };
        Ok(PredictionOutput {
            writer,
            min_interval,
            last: None,
            failed: false,
        })
    }

    /// Writes a line unless the rate limit says to skip it.
    pub fn write(&mut self, line: &PredictionLine<'_>) {
        let Some(writer) = self.writer.as_mut() else {
            return;
        };
        let now = Instant::now();
        if self
            .last
            .is_some_and(|last| now.duration_since(last) < self.min_interval)
        {
            return;
        }
        self.last = Some(now);
        let result = serde_json::to_string(line)
            .map_err(std::io::Error::other)
            .and_then(|text| writeln!(writer, "{text}"))
            .and_then(|_| writer.flush());
        if let Err(e) = result {
            if !std::mem::replace(&mut self.failed, true) {
                tracing::warn!("cannot write predictions: {e} (going on without them)");
            }
        }
    }
}
