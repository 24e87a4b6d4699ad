//! `[learning]`: what a label covers (its frames, and the extra views of the labelled frame it
//! embeds) and how often the head is refitted in the background.

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
    /// Extra views of the labelled frame a label embeds and stores with it (its mirror image,
    /// then crops: `fieldtune train --augment`'s views); 0 = none (default 2).
    pub label_views: Option<usize>,
}

/// Views a label embeds unless the board says otherwise: the mirror image and one crop.
pub const DEFAULT_LABEL_VIEWS: usize = 2;

/// Most views a label may embed (each is one backbone run while the label is handled).
pub const MAX_LABEL_VIEWS: usize = 4;

/// `[learning]`, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct LearningConfig {
    pub context_frames: usize,
    /// `None` = never retrain in the background.
    pub retrain_every: Option<usize>,
    /// Extra views of the labelled frame embedded and stored with it (0: none).
    pub label_views: usize,
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
    let label_views = raw.label_views.unwrap_or(DEFAULT_LABEL_VIEWS);
    if label_views > MAX_LABEL_VIEWS {
        return Err(at.bad(
            "learning.label_views",
            format!(
                "is {label_views}; use 0 (no views) to {MAX_LABEL_VIEWS} (each view is one backbone run per label)"
            ),
        ));
    }
    Ok(LearningConfig {
        context_frames,
        label_views,
        retrain_every: match raw.retrain_every.unwrap_or(4) {
            0 => None,
            n => Some(n),
        },
    })
}
