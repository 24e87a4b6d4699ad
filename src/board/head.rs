//! `[head]`: which classifier the device trains, as the head module's own [`HeadKind`].

use serde::Deserialize;

use super::{At, Result};
use crate::head::HeadKind;

/// `[head]` as written.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHead {
    /// `linear` (default) or `mlp`.
    pub kind: Option<HeadKindName>,
    /// Hidden width of the MLP (default 128).
    pub hidden: Option<usize>,
}

/// The value of `head.kind`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HeadKindName {
    Linear,
    Mlp,
}

/// Checks `[head]`.
///
/// # Errors
/// [`super::BoardError::Invalid`] for `head.hidden` out of 1..=65536.
pub fn validate(raw: RawHead, at: &At) -> Result<HeadKind> {
    Ok(match raw.kind.unwrap_or(HeadKindName::Linear) {
        HeadKindName::Linear => HeadKind::Linear,
        HeadKindName::Mlp => match raw.hidden.unwrap_or(HeadKind::DEFAULT_MLP_HIDDEN) {
            0 => return Err(at.bad("head.hidden", "is 0; use a width like 128".into())),
            h if h > 65_536 => {
                return Err(at.bad("head.hidden", format!("is {h}; use at most 65536")))
            }
            hidden => HeadKind::Mlp { hidden },
        },
    })
}
