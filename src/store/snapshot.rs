//! Snapshots: the whole state in one file, `snapshot-<seq>.ft`, named after the last event it
//! includes. Records: a [`SnapshotMeta`] first (classes, counters, the head's bytes, how many
//! samples follow), then one record per stored sample, so a cut anywhere is caught by the count.
//!
//! # Why new file + rename, not an A/B pair
//! A snapshot is written to `snapshot-<seq>.ft.tmp`, fsync'd, renamed to its final name and the
//! directory fsync'd. Rename is atomic on every Linux file system a device uses (ext4, f2fs,
//! btrfs), so a reader sees a whole snapshot or none, without having to compare sequence numbers
//! of two half-trusted slots. Because files are named by sequence number, keeping the previous
//! snapshot (and the journal segments after it) is free, which is what an A/B pair would have
//! bought: a snapshot damaged later (bit rot, a bad block) falls back to the older one plus the
//! journal, losing nothing. Flash cost is the same as A/B: one full write per snapshot.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::data::{ClassEntry, StateData};
use super::events::Sample;
use super::features::Blob;
use super::format::{self, FileKind, Header};
use super::{migrate, Result, StoreError};
use crate::model::BackboneId;

/// File name of the snapshot including events up to `seq`.
pub fn snapshot_name(seq: u64) -> String {
    format!("snapshot-{seq:020}.ft")
}

/// The sequence number in a snapshot's file name.
pub fn parse_snapshot_name(name: &str) -> Option<u64> {
    name.strip_prefix("snapshot-")?
        .strip_suffix(".ft")?
        .parse()
        .ok()
}

/// The first record of a snapshot (format version 2).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SnapshotMeta {
    /// Last event included.
    pub seq: u64,
    /// When it was written, ms since the Unix epoch.
    pub created_ms: u64,
    /// Classes.
    pub classes: Vec<ClassEntry>,
    /// Id the next sample gets.
    pub next_sample_id: u64,
    /// Latest labels, for undo.
    pub undo_stack: Vec<u64>,
    /// The head's serialised bytes.
    pub head: Option<Blob>,
    /// Sample records that follow.
    pub samples: u64,
}

/// Encodes `data` as a snapshot (or export) file in the current format version.
///
/// # Errors
/// [`StoreError::Encode`] (not expected for fieldtune's own types).
pub fn encode(
    data: &StateData,
    kind: FileKind,
    backbone: &BackboneId,
    path: &Path,
) -> Result<Vec<u8>> {
    let meta = SnapshotMeta {
        seq: data.seq,
        created_ms: now_ms(),
        classes: data.classes.clone(),
        next_sample_id: data.next_sample_id,
        undo_stack: data.undo_stack.clone(),
        head: data.head.clone(),
        samples: data.samples.len() as u64,
    };
    let per_sample = data
        .samples
        .first()
        .map_or(0, |s| s.feature.byte_len() + 64);
    let mut bytes = Vec::with_capacity(1024 + per_sample * data.samples.len());
    bytes.extend_from_slice(&Header::new(kind, *backbone).encode());
    format::push_record(&mut bytes, &meta, "the snapshot header", path)?;
    for sample in &data.samples {
        format::push_record(&mut bytes, sample, "a stored sample", path)?;
    }
    Ok(bytes)
}

/// A decoded snapshot and the format version it was written in.
#[derive(Debug)]
pub struct Decoded {
    /// The state.
    pub data: StateData,
    /// Format version of the file (older ones were migrated on reading).
    pub version: u16,
}

/// Decodes a whole snapshot (or export) file, checking every record and the sample count.
///
/// # Errors
/// Header errors, or [`StoreError::Corrupt`] for any damaged, undecodable or missing record.
pub fn decode(bytes: &[u8], path: &Path, kind: FileKind, backbone: &BackboneId) -> Result<Decoded> {
    let container = format::read_whole(bytes, path, kind, backbone)?;
    if container.header.version < format::FORMAT_VERSION {
        let data = migrate::decode_v1(&container.records, path, backbone)?;
        return Ok(Decoded {
            data,
            version: container.header.version,
        });
    }
    let (first, rest) = container
        .records
        .split_first()
        .ok_or_else(|| corrupt(path, "no snapshot header record".into()))?;
    let meta: SnapshotMeta = format::decode_record(first, path, 0)?;
    if meta.samples != rest.len() as u64 {
        return Err(corrupt(
            path,
            format!("says {} samples but holds {}", meta.samples, rest.len()),
        ));
    }
    let mut samples = Vec::with_capacity(rest.len());
    let mut feature_bytes = 0u64;
    for (i, payload) in rest.iter().enumerate() {
        let sample: Sample = format::decode_record(payload, path, i + 1)?;
        validate_sample(&sample, &meta.classes, backbone, path, i + 1)?;
        feature_bytes += sample.feature.byte_len() as u64;
        samples.push(sample);
    }
    Ok(Decoded {
        data: StateData {
            seq: meta.seq,
            classes: meta.classes,
            samples,
            next_sample_id: meta.next_sample_id,
            undo_stack: meta.undo_stack,
            head: meta.head,
            feature_bytes,
        },
        version: format::FORMAT_VERSION,
    })
}

/// Refuses a sample whose class or dimension does not fit the state (a checksum-valid but
/// inconsistent file must not reach the head).
pub(crate) fn validate_sample(
    sample: &Sample,
    classes: &[ClassEntry],
    backbone: &BackboneId,
    path: &Path,
    record: usize,
) -> Result<()> {
    if sample.class as usize >= classes.len() {
        return Err(corrupt(
            path,
            format!(
                "record {record}: class {} of {} classes",
                sample.class,
                classes.len()
            ),
        ));
    }
    if sample.feature.dim() != backbone.dim as usize {
        return Err(corrupt(
            path,
            format!(
                "record {record}: a feature of {} values, expected {}",
                sample.feature.dim(),
                backbone.dim
            ),
        ));
    }
    Ok(())
}

pub(crate) fn corrupt(path: &Path, detail: String) -> StoreError {
    StoreError::Corrupt {
        path: path.to_path_buf(),
        detail,
    }
}

/// Milliseconds since the Unix epoch (0 if the clock is before it, as on a Pi without RTC at boot).
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}
