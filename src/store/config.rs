//! How big the stored state may grow and when it is compacted. Every field has a default chosen for
//! an SD card: bounded RAM and flash, and at most about twice the journal's bytes written per label
//! once snapshots are amortised.

use serde::{Deserialize, Serialize};

use super::features::FeatureEncoding;
use super::{Result, StoreError};

/// Limits and compaction policy of a device state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StoreConfig {
    /// Stored samples per class at most (default 200). Beyond it, a class-balanced reservoir
    /// decides which sample goes (see [`super::data`]).
    pub max_samples_per_class: u32,
    /// Bytes of stored samples at most over all classes, counting each sample's features, its
    /// views' features and its thumbnail (default 32 MiB). Beyond it, a sample of the class
    /// holding the most samples goes.
    pub max_feature_bytes: u64,
    /// How features are stored (default f16: half the bytes, no measurable accuracy cost).
    pub feature_encoding: FeatureEncoding,
    /// A snapshot is due once the journal holds this many bytes times the last snapshot's size
    /// (default 1.0). The cost of a snapshot is then spread over as many journal bytes as it
    /// rewrites, so flash writes per label stay ≤ about 2× the label's own record.
    pub journal_to_snapshot_ratio: f64,
    /// …but never for a journal smaller than this (default 256 KiB): a snapshot of a nearly empty
    /// state after every label would wear the card for nothing.
    pub min_journal_bytes: u64,
    /// A snapshot is due whatever the ratio once the journal holds this many bytes (default
    /// 64 MiB): bounds recovery time.
    pub max_journal_bytes: u64,
    /// A snapshot is also due after this many events (0, the default: only by size).
    pub snapshot_every_events: u64,
    /// Snapshots kept (default 2, at least 2). A snapshot damaged after it was written costs
    /// nothing: the older one plus the journal segments kept since rebuild the same state.
    pub keep_snapshots: u32,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            max_samples_per_class: 200,
            max_feature_bytes: 32 << 20,
            feature_encoding: FeatureEncoding::F16,
            journal_to_snapshot_ratio: 1.0,
            min_journal_bytes: 256 << 10,
            max_journal_bytes: 64 << 20,
            snapshot_every_events: 0,
            keep_snapshots: 2,
        }
    }
}

impl StoreConfig {
    /// Checks the values are usable.
    ///
    /// # Errors
    /// [`StoreError::Config`] naming the field and its allowed range.
    pub fn validate(&self) -> Result<()> {
        if self.max_samples_per_class == 0 {
            return Err(StoreError::Config(
                "max_samples_per_class must be at least 1".into(),
            ));
        }
        if self.keep_snapshots < 2 {
            return Err(StoreError::Config(format!(
                "keep_snapshots is {}; it must be at least 2 (the older snapshot is what a damaged newer one is rebuilt from)",
                self.keep_snapshots
            )));
        }
        if !(self.journal_to_snapshot_ratio.is_finite() && self.journal_to_snapshot_ratio >= 0.0) {
            return Err(StoreError::Config(format!(
                "journal_to_snapshot_ratio must be a number ≥ 0, not {}",
                self.journal_to_snapshot_ratio
            )));
        }
        Ok(())
    }
}
