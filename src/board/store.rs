//! `[store]`: the crash-safe state on flash — where it lives, how often it is snapshotted, and the
//! limits the store and the learner enforce. The store's own limits are the store's
//! [`crate::store::StoreConfig`], not a copy of it.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::{At, Result};
use crate::learner::names::NameRules;

/// `[store]` as written.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStore {
    /// State directory (default `state`; systemd boards use `/var/lib/fieldtune`).
    pub dir: Option<PathBuf>,
    /// Seconds between snapshots when something changed (default 300).
    pub snapshot_interval_s: Option<u64>,
    /// Stored feature vectors kept per class (default 200).
    pub max_per_class: Option<u32>,
    /// Most classes (default 32); a label that would create one more is refused.
    pub max_classes: Option<usize>,
    /// Longest class name in characters (default 48).
    pub max_class_name_chars: Option<usize>,
    /// Longer side of the JPEG thumbnail kept with each sample, in pixels; 0 = keep none
    /// (default 112).
    pub thumbnail_px: Option<u32>,
}

/// `[store]`, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct StoreSettings {
    pub dir: PathBuf,
    pub snapshot_interval: Duration,
    /// The store's limits (`max_per_class` is its `max_samples_per_class`; the rest are the
    /// store's defaults).
    pub limits: crate::store::StoreConfig,
    /// What a class name may be and how many classes there may be.
    pub names: NameRules,
    /// Longer side of each sample's thumbnail; 0 = none.
    pub thumbnail_px: u32,
}

/// Checks `[store]`.
///
/// # Errors
/// [`super::BoardError::Invalid`] naming the first bad key.
pub fn validate(raw: RawStore, at: &At) -> Result<StoreSettings> {
    let snapshot_s = raw.snapshot_interval_s.unwrap_or(300);
    if snapshot_s == 0 {
        return Err(at.bad(
            "store.snapshot_interval_s",
            "is 0; use a number of seconds like 300 (labels are journaled in between)".into(),
        ));
    }
    let max_per_class = raw.max_per_class.unwrap_or(200);
    if max_per_class == 0 {
        return Err(at.bad("store.max_per_class", "is 0; use 1 or more".into()));
    }
    let defaults = NameRules::DEFAULT;
    let max_classes = raw.max_classes.unwrap_or(defaults.max_classes);
    if !(2..=1024).contains(&max_classes) {
        return Err(at.bad(
            "store.max_classes",
            format!("is {max_classes}; use 2 to 1024 (each class costs retrain time and flash)"),
        ));
    }
    let max_chars = raw.max_class_name_chars.unwrap_or(defaults.max_chars);
    if !(1..=NameRules::LONGEST).contains(&max_chars) {
        return Err(at.bad(
            "store.max_class_name_chars",
            format!("is {max_chars}; use 1 to {}", NameRules::LONGEST),
        ));
    }
    let thumbnail_px = match raw.thumbnail_px.unwrap_or(crate::thumbnail::DEFAULT_SIZE) {
        px @ (0 | 32..=512) => px,
        px => {
            return Err(at.bad(
                "store.thumbnail_px",
                format!("is {px}; use 0 (no thumbnails) or 32 to 512"),
            ))
        }
    };
    Ok(StoreSettings {
        dir: raw.dir.unwrap_or_else(|| PathBuf::from("state")),
        snapshot_interval: Duration::from_secs(snapshot_s),
        limits: crate::store::StoreConfig {
            max_samples_per_class: max_per_class,
            ..crate::store::StoreConfig::default()
        },
        names: NameRules {
            max_chars,
            max_classes,
        },
        thumbnail_px,
    })
}
