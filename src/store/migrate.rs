//! Reading older format versions. Each bump keeps a reader for the previous layout here and turns
//! it into the current in-memory state; the next snapshot is then written in the current version
//! (files are migrated by rewriting, never in place).
//!
//! - Version 1 (the first release) had snapshots only: a `MetaV1` record (class names, head bytes,
//!   sample count) and samples as plain f32 vectors without ids.
//! - Version 2 added sample ids, per-class reservoir counters, f16 storage and the journal, where
//!   each stored frame was its own event (a label with context frames was several `AddSample`s)
//!   and undo named one sample.
//! - Version 3 journals a label action as one event with all its frames, keeps an undo history of
//!   actions (labels, new classes, renames, deletions), class tombstones, and the head with the
//!   fingerprint of what it was trained on.
//!
//! - Version 4 keeps a thumbnail (a small JPEG) and the features of augmented views with each
//!   sample, and journals the deletion of one sample. Version-3 samples come in without either.
//!
//! - Version 5 keeps the fleet's remote samples (merged, or taken back by their device) in the
//!   snapshot and journals merges; version-4 files are read as they are, with none known.
//!
//! A version-2 label becomes a one-frame label (the grouping of its frames was never written), and
//! its undo takes back the newest action. A version-1 or -2 head is not trusted: its fingerprint
//! is unknown, so the head is retrained from the samples on opening.
//! `tests/fixtures/store/v1/` to `v4/` hold states the current code must keep reading.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::checks::{corrupt, decode_samples, validate_sample};
use super::data::{ClassEntry, StateData};
use super::events::{Action, ClassTarget, FrameHash, JournalEntry, LabelEvent, Sample};
use super::features::{Blob, FeatureEncoding, StoredFeature};
use super::format;
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
        .map(|name| ClassEntry {
            name,
            seen: 0,
            deleted: false,
        })
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
            thumbnail: Blob::default(),
            views: Vec::new(),
        };
        validate_sample(&sample, classes.len(), backbone, path, i + 1)?;
        classes[sample.class as usize].seen += 1;
        feature_bytes += sample.stored_bytes();
        samples.push(sample);
    }
    Ok(StateData {
        seq: meta.seq,
        classes,
        next_sample_id: samples.len() as u64,
        samples,
        undo: Vec::new(),
        head: None,
        feature_bytes,
        remote: Default::default(),
    })
}

/// Version-2 class record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassV2 {
    /// Its name.
    pub name: String,
    /// Labels ever given to it.
    pub seen: u64,
}

/// Version-2 snapshot header record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetaV2 {
    /// Last event included.
    pub seq: u64,
    /// When it was written.
    pub created_ms: u64,
    /// Classes.
    pub classes: Vec<ClassV2>,
    /// Id the next sample gets.
    pub next_sample_id: u64,
    /// Sample ids of the latest labels, newest last.
    pub undo_stack: Vec<u64>,
    /// The head's bytes.
    pub head: Option<Blob>,
    /// Sample records that follow.
    pub samples: u64,
}

/// Turns a version-2 snapshot's records into the current state: each sample id of its undo stack
/// becomes a one-frame label action; the head is dropped (retrained on opening).
///
/// # Errors
/// [`super::StoreError::Corrupt`] for an undecodable or inconsistent record.
pub fn decode_v2(records: &[&[u8]], path: &Path, backbone: &BackboneId) -> Result<StateData> {
    let (first, rest) = records
        .split_first()
        .ok_or_else(|| corrupt(path, "no snapshot header record".into()))?;
    let meta: MetaV2 = format::decode_record(first, path, 0)?;
    let classes: Vec<ClassEntry> = meta
        .classes
        .into_iter()
        .map(|c| ClassEntry {
            name: c.name,
            seen: c.seen,
            deleted: false,
        })
        .collect();
    let samples = decode_samples(rest, meta.samples, &classes, backbone, path, sample_v3)?;
    let undo = meta
        .undo_stack
        .iter()
        .filter(|id| samples.iter().any(|s| s.id == **id))
        .map(|&id| Action::Label {
            seq: 0,
            samples: vec![id],
            created: None,
        })
        .collect();
    let feature_bytes = samples.iter().map(|s| s.stored_bytes()).sum();
    Ok(StateData {
        seq: meta.seq,
        classes,
        samples,
        next_sample_id: meta.next_sample_id,
        undo,
        head: None,
        feature_bytes,
        remote: Default::default(),
    })
}

/// Version-2 journal event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum LabelEventV2 {
    /// A new class.
    NewClass {
        /// Its name.
        name: String,
    },
    /// A rename.
    Rename {
        /// Class index.
        class: u32,
        /// New name.
        name: String,
    },
    /// One stored frame.
    AddSample(SampleV3),
    /// Takes back the label that stored this sample.
    Undo {
        /// Sample id.
        sample: u64,
    },
    /// Forgets one class's samples or everything.
    Clear {
        /// The class, or everything.
        class: Option<u32>,
    },
}

/// Version-2 journal record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JournalEntryV2 {
    /// Sequence number.
    pub seq: u64,
    /// The event.
    pub event: LabelEventV2,
}

/// Decodes a version-2 journal record as the current event with the same sequence number.
///
/// # Errors
/// [`super::StoreError::Corrupt`] when the record does not decode.
pub fn journal_entry_v2(payload: &[u8], path: &Path, index: usize) -> Result<JournalEntry> {
    let old: JournalEntryV2 = format::decode_record(payload, path, index)?;
    let event = match old.event {
        LabelEventV2::NewClass { name } => LabelEvent::NewClass { name },
        LabelEventV2::Rename { class, name } => LabelEvent::Rename { class, name },
        LabelEventV2::AddSample(sample) => LabelEvent::Label {
            class: ClassTarget::Existing(sample.class),
            samples: vec![sample.into()],
        },
        LabelEventV2::Undo { .. } => LabelEvent::Undo,
        LabelEventV2::Clear { class } => LabelEvent::Clear { class },
    };
    Ok(JournalEntry {
        seq: old.seq,
        event,
    })
}

/// Version-2 and -3 sample record (no thumbnail, no views).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SampleV3 {
    /// Unique, increasing id.
    pub id: u64,
    /// Class index.
    pub class: u32,
    /// When it was labelled, ms since the Unix epoch.
    pub time_ms: u64,
    /// Hash of the source frame.
    pub frame_hash: FrameHash,
    /// The feature vector.
    pub feature: StoredFeature,
}

impl From<SampleV3> for Sample {
    fn from(old: SampleV3) -> Self {
        Sample {
            id: old.id,
            class: old.class,
            time_ms: old.time_ms,
            frame_hash: old.frame_hash,
            feature: old.feature,
            thumbnail: Blob::default(),
            views: Vec::new(),
        }
    }
}

/// Decodes a version-2 or -3 sample record as a current sample.
///
/// # Errors
/// [`super::StoreError::Corrupt`] when the record does not decode.
pub fn sample_v3(payload: &[u8], path: &Path, index: usize) -> Result<Sample> {
    format::decode_record::<SampleV3>(payload, path, index).map(Sample::from)
}

/// The first record of a version-3 or -4 snapshot (version 5 added the fleet's remote samples).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SnapshotMetaV4 {
    /// Last event included.
    pub seq: u64,
    /// When it was written, ms since the Unix epoch.
    pub created_ms: u64,
    /// Classes (tombstones included).
    pub classes: Vec<ClassEntry>,
    /// Id the next sample gets.
    pub next_sample_id: u64,
    /// Actions that can be undone, newest last.
    pub undo: Vec<Action>,
    /// The head's bytes and what it was trained on.
    pub head: Option<super::data::HeadBlob>,
    /// Sample records that follow.
    pub samples: u64,
}

/// Turns a version-4 snapshot's records into the current state: no remote samples were known
/// (fleet learning came with version 5); samples and journal events are unchanged.
///
/// # Errors
/// [`super::StoreError::Corrupt`] for an undecodable or inconsistent record.
pub fn decode_v4(records: &[&[u8]], path: &Path, backbone: &BackboneId) -> Result<StateData> {
    decode_meta_v4(records, path, backbone, format::decode_record)
}

fn decode_meta_v4(
    records: &[&[u8]],
    path: &Path,
    backbone: &BackboneId,
    sample: fn(&[u8], &Path, usize) -> Result<Sample>,
) -> Result<StateData> {
    let (first, rest) = records
        .split_first()
        .ok_or_else(|| corrupt(path, "no snapshot header record".into()))?;
    let meta: SnapshotMetaV4 = format::decode_record(first, path, 0)?;
    let samples = decode_samples(rest, meta.samples, &meta.classes, backbone, path, sample)?;
    let feature_bytes = samples.iter().map(|s| s.stored_bytes()).sum();
    Ok(StateData {
        seq: meta.seq,
        classes: meta.classes,
        samples,
        next_sample_id: meta.next_sample_id,
        undo: meta.undo,
        head: meta.head,
        feature_bytes,
        remote: Default::default(),
    })
}

/// Turns a version-3 snapshot's records into the current state: the header record is unchanged
/// (version 4 only added an undo action); samples come in without thumbnails or views.
///
/// # Errors
/// [`super::StoreError::Corrupt`] for an undecodable or inconsistent record.
pub fn decode_v3(records: &[&[u8]], path: &Path, backbone: &BackboneId) -> Result<StateData> {
    decode_meta_v4(records, path, backbone, sample_v3)
}

/// Version-3 journal event (the current one without `DeleteSample`, with version-3 samples).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum LabelEventV3 {
    /// A new class.
    NewClass {
        /// Its name.
        name: String,
    },
    /// A rename.
    Rename {
        /// Class index.
        class: u32,
        /// New name.
        name: String,
    },
    /// A label action.
    Label {
        /// The class.
        class: ClassTarget,
        /// Its samples.
        samples: Vec<SampleV3>,
    },
    /// A class deletion.
    DeleteClass {
        /// Class index.
        class: u32,
    },
    /// A sample moved.
    MoveSample {
        /// Sample id.
        sample: u64,
        /// Its new class.
        class: u32,
    },
    /// An undo.
    Undo,
    /// A clear.
    Clear {
        /// The class, or everything.
        class: Option<u32>,
    },
}

/// Version-3 journal record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JournalEntryV3 {
    /// Sequence number.
    pub seq: u64,
    /// The event.
    pub event: LabelEventV3,
}

/// Decodes a version-3 journal record as the current event with the same sequence number.
///
/// # Errors
/// [`super::StoreError::Corrupt`] when the record does not decode.
pub fn journal_entry_v3(payload: &[u8], path: &Path, index: usize) -> Result<JournalEntry> {
    let old: JournalEntryV3 = format::decode_record(payload, path, index)?;
    let event = match old.event {
        LabelEventV3::NewClass { name } => LabelEvent::NewClass { name },
        LabelEventV3::Rename { class, name } => LabelEvent::Rename { class, name },
        LabelEventV3::Label { class, samples } => LabelEvent::Label {
            class,
            samples: samples.into_iter().map(Sample::from).collect(),
        },
        LabelEventV3::DeleteClass { class } => LabelEvent::DeleteClass { class },
        LabelEventV3::MoveSample { sample, class } => LabelEvent::MoveSample { sample, class },
        LabelEventV3::Undo => LabelEvent::Undo,
        LabelEventV3::Clear { class } => LabelEvent::Clear { class },
    };
    Ok(JournalEntry {
        seq: old.seq,
        event,
    })
}
