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
use super::fs::{self, Fs};
use super::remote::{RemoteId, RemoteMark};
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
    let meta = meta_of(data);
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

/// The first record of a snapshot of `data`.
fn meta_of(data: &StateData) -> SnapshotMeta {
    SnapshotMeta {
        seq: data.seq,
        created_ms: now_ms(),
        classes: data.classes.clone(),
        next_sample_id: data.next_sample_id,
        undo: data.undo.clone(),
        head: data.head.clone(),
        samples: data.samples.len() as u64,
        remote: data.remote.iter().map(|(k, v)| (*k, *v)).collect(),
    }
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

/// Bytes of records gathered before they are appended to a snapshot being written, and read at
/// a time when one is checked: a device's snapshot (megabytes of stored features) is never held
/// whole in memory beside the live state and a retrain's training rows.
const WINDOW: usize = 256 << 10;

/// Writes `data` as a snapshot file at `path` through `fs`, atomically (to `<name>.tmp`, fsync,
/// rename, fsync of the directory), encoding and appending its records a window at a time.
/// Returns the file's length.
///
/// # Errors
/// The storage failure (the temporary file is removed; `path` is untouched), or
/// [`StoreError::Encode`].
pub fn write(
    fs: &dyn Fs,
    data: &StateData,
    kind: FileKind,
    backbone: &BackboneId,
    path: &Path,
) -> Result<u64> {
    fs::write_atomic_with(fs, path, |tmp| {
        write_records(fs, data, kind, backbone, path, tmp)
    })
}

/// The records of `data` (as [`encode`] makes them) written into `tmp` a window at a time.
fn write_records(
    fs: &dyn Fs,
    data: &StateData,
    kind: FileKind,
    backbone: &BackboneId,
    path: &Path,
    tmp: &Path,
) -> Result<u64> {
    let mut window = Vec::with_capacity(WINDOW + 1024);
    window.extend_from_slice(&Header::new(kind, *backbone).encode());
    format::push_record(&mut window, &meta_of(data), "the snapshot header", path)?;
    fs.write_new(tmp, &window)
        .map_err(|e| StoreError::io("write", tmp, e))?;
    let mut written = window.len() as u64;
    window.clear();
    for sample in &data.samples {
        format::push_record(&mut window, sample, "a stored sample", path)?;
        if window.len() >= WINDOW {
            fs.append(tmp, &window)
                .map_err(|e| StoreError::io("write", tmp, e))?;
            written += window.len() as u64;
            window.clear();
        }
    }
    if !window.is_empty() {
        fs.append(tmp, &window)
            .map_err(|e| StoreError::io("write", tmp, e))?;
        written += window.len() as u64;
    }
    Ok(written)
}

/// Checks the snapshot file at `path`, just written in the current format version, record by
/// record as [`decode`] would read it, a window of the file at a time: neither its bytes nor a
/// second decoded state are held beside the live one.
///
/// # Errors
/// The read's failure, or what [`decode`] would report.
pub fn verify(fs: &dyn Fs, path: &Path, kind: FileKind, backbone: &BackboneId) -> Result<()> {
    let read = |offset: u64, len: usize| {
        fs.read_at(path, offset, len)
            .map_err(|e| StoreError::io("read back", path, e))
    };
    let header = Header::decode(&read(0, format::HEADER_LEN)?, path)?;
    header.check(path, kind, backbone)?;
    if header.version != format::FORMAT_VERSION {
        return Err(corrupt(
            path,
            format!(
                "was written as version {} but reads back as version {}",
                format::FORMAT_VERSION,
                header.version
            ),
        ));
    }
    let mut offset = format::HEADER_LEN as u64;
    let mut window: Vec<u8> = Vec::new();
    let mut meta: Option<SnapshotMeta> = None;
    let mut samples = 0u64;
    loop {
        let chunk = read(offset, WINDOW)?;
        let at_end = chunk.len() < WINDOW;
        offset += chunk.len() as u64;
        window.extend_from_slice(&chunk);
        let mut used = 0;
        while used < window.len() {
            let payload = match format::next_record(&window[used..]) {
                Ok(payload) => payload,
                // The rest of this record is in the next window.
                Err(_) if !at_end => break,
                Err(reason) => {
                    return Err(corrupt(path, format!("record {}: {reason}", samples + 1)));
                }
            };
            match &meta {
                None => meta = Some(format::decode_record(payload, path, 0)?),
                Some(meta) => {
                    let index = samples as usize + 1;
                    let sample: crate::store::events::Sample =
                        format::decode_record(payload, path, index)?;
                    checks::validate_sample(&sample, meta.classes.len(), backbone, path, index)?;
                    samples += 1;
                }
            }
            used += format::RECORD_OVERHEAD + payload.len();
        }
        window.drain(..used);
        if at_end {
            break;
        }
    }
    let meta = meta.ok_or_else(|| corrupt(path, "no snapshot header record".into()))?;
    if meta.samples != samples {
        return Err(corrupt(
            path,
            format!("says {} samples but holds {samples}", meta.samples),
        ));
    }
    Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::config::StoreConfig;
    use crate::store::events::{ClassTarget, FrameHash, JournalEntry, LabelEvent, Sample};
    use crate::store::features::{Blob, FeatureEncoding, StoredFeature};
    use crate::store::fs::RealFs;

    const DIM: u32 = 8;

    /// A state whose snapshot spans several windows: 200 samples with 4 KiB thumbnails.
    fn state() -> StateData {
        let mut data = StateData::default();
        let config = StoreConfig::default();
        for (seq, id) in (1..=200u64).enumerate() {
            let class = if seq == 0 {
                ClassTarget::New("leaf".into())
            } else {
                ClassTarget::Existing(0)
            };
            let sample = Sample {
                id,
                class: 0,
                time_ms: id,
                frame_hash: FrameHash::default(),
                feature: StoredFeature::encode(&[id as f32; DIM as usize], FeatureEncoding::F16),
                thumbnail: Blob(vec![(id % 251) as u8; 4096]),
                views: Vec::new(),
            };
            let entry = JournalEntry {
                seq: seq as u64 + 1,
                event: LabelEvent::Label {
                    class,
                    samples: vec![sample],
                },
            };
            data.apply(&entry, DIM, &config).expect("a valid label");
        }
        data
    }

    fn backbone() -> BackboneId {
        BackboneId {
            sha256: [7; 32],
            dim: DIM,
        }
    }

    /// A snapshot written a window at a time reads back as the state, passes its check, and a
    /// flipped byte or a cut end anywhere in it fails the check.
    #[test]
    fn a_windowed_snapshot_reads_back_and_damage_is_caught() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let path = dir.path().join(snapshot_name(200));
        let data = state();
        let written =
            write(&RealFs, &data, FileKind::Snapshot, &backbone(), &path).expect("written");
        let bytes = std::fs::read(&path).expect("read");
        assert_eq!(bytes.len() as u64, written);
        assert!(
            bytes.len() > 2 * WINDOW,
            "spans windows: {} bytes",
            bytes.len()
        );
        assert!(!fs::tmp_path(&path).exists());
        verify(&RealFs, &path, FileKind::Snapshot, &backbone()).expect("checks");
        let decoded = decode(&bytes, &path, FileKind::Snapshot, &backbone()).expect("decodes");
        assert_eq!(decoded.data.samples, data.samples);
        assert_eq!(decoded.data.classes, data.classes);

        for at in [
            format::HEADER_LEN + 3,
            WINDOW - 2,
            WINDOW + 5,
            bytes.len() - 1,
        ] {
            let mut bad = bytes.clone();
            bad[at] ^= 0x40;
            std::fs::write(&path, &bad).expect("write");
            assert!(
                verify(&RealFs, &path, FileKind::Snapshot, &backbone()).is_err(),
                "byte {at} flipped"
            );
        }
        std::fs::write(&path, &bytes[..bytes.len() - 10]).expect("write");
        assert!(verify(&RealFs, &path, FileKind::Snapshot, &backbone()).is_err());
        std::fs::write(&path, &bytes[..WINDOW]).expect("write");
        assert!(verify(&RealFs, &path, FileKind::Snapshot, &backbone()).is_err());
    }
}
