//! `[learning]`: what a label covers and how often the head is refitted in the background.

use serde::Deserialize;

use super::{At, Result};

/// `[learning]` as written.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLearning {
    /// Frames before the current one that a label also covers (default 0).
    pub context_frames: Option<usize>,
    /// Labels between background retrains from the replay set; 0 = never (default 4).
    pub retrain_every: Option<usize>,
}

/// `[learning]`, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct LearningConfig {
    pub context_frames: usize,
    /// `None` = never retrain in the background.
    pub retrain_every: Option<usize>,
}

/// Checks `[learning]`.
///
/// # Errors
/// [`super::BoardError::Invalid`] for `learning.context_frames` above 64.
pub fn validate(raw: RawLearning, at: &At) -> Result<LearningConfig> {
    let context_frames = raw.context_frames.unwrap_or(0);
    if context_frames > 64 {
        return Err(at.bad(
            "learning.context_frames",
            format!("is {context_frames}; use at most 64"),
        ));
    }
    Ok(LearningConfig {
        context_frames,
        retrain_every: match raw.retrain_every.unwrap_or(4) {
            0 => None,
            n => Some(n),
        },
    })
}
