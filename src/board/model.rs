//! `[model]`: the backbone's descriptor and how many threads run it.

use std::path::PathBuf;

use serde::Deserialize;

use super::{At, Result};

/// `[model]` as written.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawModel {
    /// Model descriptor (default `models/efficientnet_lite0.toml`).
    pub descriptor: Option<PathBuf>,
    /// Inference threads (default: the number of cores).
    pub threads: Option<usize>,
}

/// `[model]`, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelConfig {
    pub descriptor: PathBuf,
    pub threads: usize,
}

/// Checks `[model]`.
///
/// # Errors
/// [`super::BoardError::Invalid`] for `model.threads` out of 1..=256.
pub fn validate(raw: RawModel, at: &At) -> Result<ModelConfig> {
    let threads = match raw.threads {
        Some(0) => return Err(at.bad("model.threads", "is 0; use 1 or more".into())),
        Some(n) if n > 256 => {
            return Err(at.bad("model.threads", format!("is {n}; use at most 256")))
        }
        Some(n) => n,
        None => super::all_cores(),
    };
    Ok(ModelConfig {
        descriptor: raw
            .descriptor
            .unwrap_or_else(|| PathBuf::from("models/efficientnet_lite0.toml")),
        threads,
    })
}
