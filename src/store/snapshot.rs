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

use super::checks::{self, corrupt};
use super::data::{ClassEntry, HeadBlob, StateData};
use super::events::Action;
use super::format::{self, FileKind, Header};
use super::remote::{RemoteId, RemoteMark};
use super::{migrate, Result};
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

/// The first record of a snapshot (format version 5; 3 and 4: [`migrate::SnapshotMetaV4`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SnapshotMeta {
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
    pub head: Option<HeadBlob>,
    /// Sample records that follow.
    pub samples: u64,
    /// The fleet's remote samples seen: merged or taken back.
    pub remote: Vec<(RemoteId, RemoteMark)>,
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
        undo: data.undo.clone(),
        head: data.head.clone(),
        samples: data.samples.len() as u64,
        remote: data.remote.iter().map(|(k, v)| (*k, *v)).collect(),
    };
    let per_sample = data
        .samples
        .first()
        .map_or(0, |s| s.stored_bytes() as usize + 64);
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
    let version = container.header.version;
    let data = match version {
        1 => migrate::decode_v1(&container.records, path, backbone)?,
        2 => migrate::decode_v2(&container.records, path, backbone)?,
        3 => migrate::decode_v3(&container.records, path, backbone)?,
        4 => migrate::decode_v4(&container.records, path, backbone)?,
        _ => decode_current(&container.records, path, backbone)?,
    };
    Ok(Decoded { data, version })
}

/// Checks a snapshot file just written in the current format version, record by record, as
/// [`decode`] would read it, without building the state a second time beside the live one.
///
/// # Errors
/// As [`decode`].
pub fn verify(bytes: &[u8], path: &Path, kind: FileKind, backbone: &BackboneId) -> Result<()> {
    let container = format::read_whole(bytes, path, kind, backbone)?;
    if container.header.version != format::FORMAT_VERSION {
        return Err(corrupt(
            path,
            format!(
                "was written as version {} but reads back as version {}",
                format::FORMAT_VERSION,
                container.header.version
            ),
        ));
    }
    let (first, rest) = container
        .records
        .split_first()
        .ok_or_else(|| corrupt(path, "no snapshot header record".into()))?;
    let meta: SnapshotMeta = format::decode_record(first, path, 0)?;
    checks::check_samples(
        rest,
        meta.samples,
        &meta.classes,
        backbone,
        path,
        format::decode_record,
        drop,
    )
}

fn decode_current(records: &[&[u8]], path: &Path, backbone: &BackboneId) -> Result<StateData> {
    let (first, rest) = records
        .split_first()
        .ok_or_else(|| corrupt(path, "no snapshot header record".into()))?;
    let meta: SnapshotMeta = format::decode_record(first, path, 0)?;
    let samples = checks::decode_samples(
        rest,
        meta.samples,
        &meta.classes,
        backbone,
        path,
        format::decode_record,
    )?;
    let feature_bytes = samples.iter().map(|s| s.stored_bytes()).sum();
    Ok(StateData {
        seq: meta.seq,
        classes: meta.classes,
        samples,
        next_sample_id: meta.next_sample_id,
        undo: meta.undo,
        head: meta.head,
        feature_bytes,
        remote: meta.remote.into_iter().collect(),
    })
}

/// Milliseconds since the Unix epoch (0 if the clock is before it, as on a Pi without RTC at boot).
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}
