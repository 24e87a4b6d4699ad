//! Running figures for `fieldtune status` and the benchmark: frames per second, per-stage latency,
//! accuracy on labelled frames, uptime. Bounded memory whatever the uptime.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// How many recent outcomes an accuracy is computed over.
const WINDOW: usize = 100;

/// A rolling hit rate over the last [`WINDOW`] outcomes.
#[derive(Debug, Default, Clone)]
pub struct Rolling {
    hits: VecDeque<bool>,
}

impl Rolling {
    /// Records one outcome.
    pub fn push(&mut self, hit: bool) {
        if self.hits.len() == WINDOW {
            self.hits.pop_front();
        }
        self.hits.push_back(hit);
    }

    /// Fraction of hits, `None` before any outcome.
    pub fn rate(&self) -> Option<f64> {
        (!self.hits.is_empty())
            .then(|| self.hits.iter().filter(|&&h| h).count() as f64 / self.hits.len() as f64)
    }

    /// Outcomes in the window.
    pub fn len(&self) -> usize {
        self.hits.len()
    }

    /// No outcome yet.
    pub fn is_empty(&self) -> bool {
        self.hits.is_empty()
    }
}

/// Mean of a stage's durations, exponentially weighted so it follows the current behaviour.
#[derive(Debug, Default, Clone, Copy, Serialize, Deserialize)]
pub struct StageMeans {
    pub capture_ms: f64,
    pub decode_ms: f64,
    pub preprocess_ms: f64,
    pub backbone_ms: f64,
    pub head_ms: f64,
    pub output_ms: f64,
    /// A label: durable in the store and learned by the head (the next frame's prediction uses it).
    pub label_ms: f64,
}

/// Per-frame durations.
#[derive(Debug, Default, Clone, Copy)]
pub struct FrameTimes {
    pub capture: Duration,
    pub decode: Duration,
    pub preprocess: Duration,
    pub backbone: Duration,
    pub head: Duration,
    pub output: Duration,
    /// The frame reused earlier features: no preprocess or backbone time to average in.
    pub reused: bool,
}

/// The service's running figures.
#[derive(Debug)]
pub struct Stats {
    pub started: Instant,
    pub frames: u64,
    pub faults: u64,
    pub labels: u64,
    pub undos: u64,
    pub retrains: u64,
    /// Backbone runs (frames embedded, and reused frames embedded for a label).
    pub backbone_runs: u64,
    /// Frames that reused the last embedded frame's features.
    pub skipped: u64,
    /// Prediction made on a frame vs. the label a person then gave it.
    pub labelled: Rolling,
    /// Prediction vs. the source's own truth (folder replay), for classes the head knows.
    pub truth: Rolling,
    pub means: StageMeans,
    fps: f64,
    last_frame: Option<Instant>,
}

fn ewma(mean: &mut f64, value: Duration, first: bool) {
    let v = value.as_secs_f64() * 1000.0;
    *mean = if first { v } else { 0.9 * *mean + 0.1 * v };
}

impl Stats {
    /// Fresh figures; uptime counts from now.
    pub fn new() -> Self {
        Stats {
            started: Instant::now(),
            frames: 0,
            faults: 0,
            labels: 0,
            undos: 0,
            retrains: 0,
            backbone_runs: 0,
            skipped: 0,
            labelled: Rolling::default(),
            truth: Rolling::default(),
            means: StageMeans::default(),
            fps: 0.0,
            last_frame: None,
        }
    }

    /// Records one processed frame.
    pub fn frame(&mut self, times: &FrameTimes) {
        let now = Instant::now();
        let first = self.frames == 0;
        if let Some(last) = self.last_frame {
            let dt = now.duration_since(last).as_secs_f64();
            if dt > 0.0 {
                self.fps = if self.frames <= 1 {
                    1.0 / dt
                } else {
                    0.9 * self.fps + 0.1 / dt
                };
            }
        }
        self.last_frame = Some(now);
        self.frames += 1;
        let m = &mut self.means;
        ewma(&mut m.capture_ms, times.capture, first);
        ewma(&mut m.decode_ms, times.decode, first);
        // The means of preprocess and backbone are per run: frames that skipped them do not count.
        if !times.reused {
            let first_run = self.backbone_runs <= 1;
            ewma(&mut m.preprocess_ms, times.preprocess, first_run);
            ewma(&mut m.backbone_ms, times.backbone, first_run);
        }
        ewma(&mut m.head_ms, times.head, first);
        ewma(&mut m.output_ms, times.output, first);
    }

    /// Records how long a label took to become durable and learned.
    pub fn label_done(&mut self, took: Duration) {
        let first = self.labels == 0;
        ewma(&mut self.means.label_ms, took, first);
    }

    /// Frames per second, smoothed.
    pub fn fps(&self) -> f64 {
        self.fps
    }
}

impl Default for Stats {
    fn default() -> Self {
        Self::new()
    }
}
