//! Reading older format versions. Each bump keeps a reader for the previous layout here and turns
//! it into the current in-memory state; the next snapshot is then written in the current version
//! (files are migrated by rewriting, never in place).
//!
//! Version 1 (the first release) had snapshots only: a `MetaV1` record (class names, head bytes,
//! sample count) and samples as plain f32 vectors without ids. Version 2 added sample ids (so undo
//! names the label it takes back), per-class reservoir counters and f16 storage.
//! `tests/fixtures/store/v1/` holds a version-1 state that the current code must keep reading.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::data::{ClassEntry, StateData};
use super::events::{FrameHash, Sample};
use super::features::{FeatureEncoding, StoredFeature};
use super::format;
use super::snapshot::{corrupt, validate_sample};
use super::Result;
use crate::model::BackboneId;

/// Version-1 snapshot header record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetaV1 {
    /// Last event included.
    pub seq: u64,
    /// Class names.
    pub classes: Vec<String>,
    /// The head's bytes.
    pub head: Option<Vec<u8>>,
    /// Sample records that follow.
    pub samples: u64,
}

/// Version-1 sample record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SampleV1 {
    /// Class index.
    pub class: u32,
    /// When it was labelled, ms since the Unix epoch.
    pub time_ms: u64,
    /// sha256 of the frame.
    pub frame_hash: [u8; 32],
    /// The feature vector.
    pub feature: Vec<f32>,
}

/// Turns a version-1 snapshot's records into the current state: samples get ids in file order,
/// reservoir counters start at the stored counts, features stay f32 (exact, as they were).
///
/// # Errors
/// [`super::StoreError::Corrupt`] for an undecodable or inconsistent record.
pub fn decode_v1(records: &[&[u8]], path: &Path, backbone: &BackboneId) -> Result<StateData> {
    let (first, rest) = records
        .split_first()
        .ok_or_else(|| corrupt(path, "no snapshot header record".into()))?;
    let meta: MetaV1 = format::decode_record(first, path, 0)?;
    if meta.samples != rest.len() as u64 {
        return Err(corrupt(
            path,
            format!("says {} samples but holds {}", meta.samples, rest.len()),
        ));
    }
    let mut classes: Vec<ClassEntry> = meta
        .classes
        .into_iter()
        .map(|name| ClassEntry { name, seen: 0 })
        .collect();
    let mut samples = Vec::with_capacity(rest.len());
    let mut feature_bytes = 0;
    for (i, payload) in rest.iter().enumerate() {
        let old: SampleV1 = format::decode_record(payload, path, i + 1)?;
        let sample = Sample {
            id: i as u64,
            class: old.class,
            time_ms: old.time_ms,
            frame_hash: FrameHash(old.frame_hash),
            feature: StoredFeature::encode(&old.feature, FeatureEncoding::F32),
        };
        validate_sample(&sample, &classes, backbone, path, i + 1)?;
        classes[sample.class as usize].seen += 1;
        feature_bytes += sample.feature.byte_len() as u64;
        samples.push(sample);
    }
    Ok(StateData {
        seq: meta.seq,
        classes,
        next_sample_id: samples.len() as u64,
        samples,
        undo_stack: Vec::new(),
        head: meta.head.map(super::features::Blob),
        feature_bytes,
    })
}
