//! Recovery: what a state directory holds, worked out without changing anything. Takes the newest
//! snapshot that reads whole, replays the journal entries after it in sequence order, and stops at
//! the first gap or damaged record. Every file and event that is not used is named in the
//! [`RecoveryReport`]; [`super::Store::open`] then sets damaged files aside (renamed
//! `*.corrupt`), `fieldtune state inspect` only shows them.
//!
//! Never panics and changes nothing. Events that were saved once but cannot be rebuilt (a damaged
//! snapshot with no older one or journal to replace it, a gap, records lost mid-file) are listed
//! in [`RecoveryReport::lost`]; [`super::Store::open`] refuses such a state unless told to start
//! from what is left. The other refusals are a state made for another backbone and one written
//! by a newer fieldtune, where guessing would be wrong.

use std::fmt;
use std::path::{Path, PathBuf};

use tracing::warn;

use super::config::StoreConfig;
use super::data::StateData;
use super::events::JournalEntry;
use super::format::{FileKind, Header};
use super::fs::Fs;
use super::journal::{parse_segment_name, read_segment};
use super::snapshot::{self, parse_snapshot_name};
use super::{Result, StoreError};
use crate::model::BackboneId;

/// What recovery found, used and dropped. `Display` prints it as log lines.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RecoveryReport {
    /// The snapshot the state starts from (file name), if any.
    pub snapshot: Option<String>,
    /// Its last event.
    pub snapshot_seq: u64,
    /// Its format version (older ones were migrated).
    pub snapshot_version: Option<u16>,
    /// Journal events replayed after it.
    pub replayed: u64,
    /// Last event of the recovered state.
    pub last_seq: u64,
    /// Stored samples after recovery.
    pub samples: usize,
    /// Classes after recovery.
    pub classes: usize,
    /// Journal segments on disk and their record bytes.
    pub journal_segments: usize,
    /// Record bytes in the journal segments after the snapshot.
    pub journal_bytes: u64,
    /// What was not used and why, one line each.
    pub dropped: Vec<String>,
    /// Files to set aside (damaged or unreachable), with the reason.
    pub set_aside: Vec<(String, String)>,
    /// Leftover temporary files of interrupted saves.
    pub temporaries: Vec<String>,
    /// Events that were saved once and could not be recovered, one line each (a damaged
    /// snapshot with nothing to rebuild it from, a gap in the journal, records lost mid-file).
    /// Opening refuses such a state unless asked to start from what is left.
    pub lost: Vec<String>,
    /// Files in an older format version were read (the next snapshot rewrites them).
    pub migrated: bool,
}

impl RecoveryReport {
    /// Whether everything on disk was used (nothing dropped or set aside).
    pub fn is_clean(&self) -> bool {
        self.dropped.is_empty() && self.set_aside.is_empty()
    }

    /// What is lost and which files are damaged, for a refusal (nothing was set aside then).
    pub fn loss_summary(&self) -> String {
        let mut lines: Vec<String> = self.lost.iter().map(|l| format!("LOST: {l}")).collect();
        lines.extend(self.dropped.iter().map(|d| format!("damaged: {d}")));
        lines.join("\n  ")
    }

    /// Whether events that were once saved are missing from the recovered state.
    pub fn lost_events(&self) -> bool {
        !self.lost.is_empty()
    }
}

impl fmt::Display for RecoveryReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.snapshot {
            Some(name) => write!(
                f,
                "recovered from {name} (event {}{}) + {} journal events",
                self.snapshot_seq,
                self.snapshot_version
                    .filter(|v| *v < super::format::FORMAT_VERSION)
                    .map_or(String::new(), |v| format!(
                        ", migrated from format version {v}"
                    )),
                self.replayed
            )?,
            None => write!(f, "no snapshot; {} journal events replayed", self.replayed)?,
        }
        write!(
            f,
            ": {} classes, {} samples, up to event {}",
            self.classes, self.samples, self.last_seq
        )?;
        for line in &self.dropped {
            write!(f, "\n  dropped: {line}")?;
        }
        for (name, reason) in &self.set_aside {
            write!(f, "\n  set aside: {name}: {reason}")?;
        }
        for line in &self.lost {
            write!(f, "\n  LOST: {line}")?;
        }
        Ok(())
    }
}

/// The result of reading a state directory.
#[derive(Debug)]
pub struct Recovery {
    /// The recovered state (snapshot + replayed events).
    pub data: StateData,
    /// Events replayed after that snapshot, in order (to bring the head up to date).
    pub replayed: Vec<JournalEntry>,
    /// What was found and dropped.
    pub report: RecoveryReport,
    /// Snapshots on disk that are not set aside (ascending sequence).
    pub snapshots: Vec<u64>,
    /// Journal segments on disk that are not set aside (ascending start), with their damage flag.
    pub segments: Vec<(u64, bool)>,
    /// The segment to keep appending to: the last one, when it is whole and ends at the state's
    /// last event. `None`: a new segment must be started.
    pub resume: Option<(PathBuf, u64)>,
}

/// The backbone a state directory was made for (from its newest readable file), if any.
pub fn detect_backbone(fs: &dyn Fs, dir: &Path) -> Option<BackboneId> {
    let mut names = fs.list(dir).ok()?;
    names.sort();
    names.reverse();
    names
        .iter()
        .filter(|n| parse_snapshot_name(n).is_some() || parse_segment_name(n).is_some())
        .find_map(|n| {
            let bytes = fs.read(&dir.join(n)).ok()?;
            Header::decode(&bytes, &dir.join(n))
                .ok()
                .map(|h| h.backbone)
        })
}

/// Reads a state directory. A missing directory is an empty state.
///
/// # Errors
/// [`StoreError::OtherBackbone`] or [`StoreError::NewerVersion`] for any state file; an I/O error
/// listing the directory.
pub fn recover(
    fs: &dyn Fs,
    dir: &Path,
    backbone: &BackboneId,
    config: &StoreConfig,
) -> Result<Recovery> {
    let names = match fs.list(dir) {
        Ok(names) => names,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(StoreError::io("list", dir, e)),
    };
    let mut report = RecoveryReport::default();
    let mut snapshots: Vec<(u64, String)> = Vec::new();
    let mut segments: Vec<(u64, String)> = Vec::new();
    for name in names {
        if name.ends_with(".tmp") {
            report.temporaries.push(name);
        } else if let Some(seq) = parse_snapshot_name(&name) {
            snapshots.push((seq, name));
        } else if let Some(start) = parse_segment_name(&name) {
            segments.push((start, name));
        }
    }
    snapshots.sort();
    segments.sort();

    // Events known to have been saved once: a snapshot's name, a journal's last record.
    let mut claimed = 0u64;
    for (seq, _) in &snapshots {
        claimed = claimed.max(*seq);
    }

    // Newest snapshot that reads whole; an older one (or none, and the journal from event 1)
    // when it does not.
    let mut data = StateData::default();
    let mut kept_snapshots = Vec::new();
    let mut base_found = false;
    for (seq, name) in snapshots.iter().rev() {
        if base_found {
            kept_snapshots.push(*seq);
            continue;
        }
        let path = dir.join(name);
        let decoded = fs
            .read(&path)
            .map_err(|e| StoreError::io("read", &path, e))
            .and_then(|bytes| snapshot::decode(&bytes, &path, FileKind::Snapshot, backbone));
        match decoded {
            Ok(decoded) if decoded.data.seq == *seq => {
                report.snapshot = Some(name.clone());
                report.snapshot_seq = *seq;
                report.snapshot_version = Some(decoded.version);
                report.migrated |= decoded.version < super::format::FORMAT_VERSION;
                data = decoded.data;
                kept_snapshots.push(*seq);
                base_found = true;
            }
            Ok(decoded) => {
                let reason = format!(
                    "holds event {} but is named for event {seq}",
                    decoded.data.seq
                );
                report.dropped.push(format!("{name}: {reason}"));
                report.set_aside.push((name.clone(), reason));
            }
            Err(e @ (StoreError::OtherBackbone { .. } | StoreError::NewerVersion { .. })) => {
                return Err(e)
            }
            Err(e) => {
                warn!("{e}");
                report.dropped.push(format!("{name}: {e}"));
                report.set_aside.push((name.clone(), e.to_string()));
            }
        }
    }
    kept_snapshots.sort_unstable();

    // Journal entries after it, in sequence.
    let mut replayed = Vec::new();
    let mut kept_segments = Vec::new();
    let mut resume = None;
    let mut broken = false;
    let dim = backbone.dim;
    let last_index = segments.len().checked_sub(1);
    for (index, (start, name)) in segments.iter().enumerate() {
        let path = dir.join(name);
        if broken || *start > data.seq + 1 {
            let reason = format!(
                "starts at event {start} but the state stops at event {}",
                data.seq
            );
            report.dropped.push(format!("{name}: {reason}"));
            report.set_aside.push((name.clone(), reason));
            broken = true;
            claimed = claimed.max(start.saturating_sub(1));
            let last = fs
                .read(&path)
                .ok()
                .and_then(|bytes| read_segment(&bytes, &path, backbone).ok())
                .and_then(|read| read.entries.last().map(|e| e.seq));
            claimed = claimed.max(last.unwrap_or(0));
            continue;
        }
        let read = fs
            .read(&path)
            .map_err(|e| StoreError::io("read", &path, e))
            .and_then(|bytes| read_segment(&bytes, &path, backbone));
        let read = match read {
            Ok(read) => read,
            Err(e @ (StoreError::OtherBackbone { .. } | StoreError::NewerVersion { .. })) => {
                return Err(e)
            }
            Err(e) => {
                report.dropped.push(format!("{name}: {e}"));
                report.set_aside.push((name.clone(), e.to_string()));
                continue;
            }
        };
        let mut damaged = read.damage.is_some();
        report.migrated |= read.version < super::format::FORMAT_VERSION;
        if let Some(last) = read.entries.last() {
            claimed = claimed.max(last.seq);
        }
        if read.lost_records > 0 {
            // Whole records after a damaged one: events up to this one were saved once.
            claimed = claimed.max(*start + read.entries.len() as u64 + read.lost_records as u64);
        }
        let total = read.entries.len();
        for (i, entry) in read.entries.into_iter().enumerate() {
            if entry.seq <= data.seq {
                continue;
            }
            let outcome = if entry.seq == data.seq + 1 {
                data.apply(&entry, dim, config).map(|_| ())
            } else {
                Err(StoreError::InvalidEvent(format!(
                    "event {} follows event {}",
                    entry.seq, data.seq
                )))
            };
            if let Err(e) = outcome {
                report.dropped.push(format!(
                    "{name}: {} events from event {} ({e})",
                    total - i,
                    entry.seq
                ));
                damaged = true;
                break;
            }
            replayed.push(entry);
        }
        if let Some(damage) = &read.damage {
            report.dropped.push(format!(
                "{name}: {damage} (never acknowledged if it was the last append)"
            ));
        }
        report.journal_bytes += read.valid_len - super::format::HEADER_LEN as u64;
        kept_segments.push((*start, damaged));
        let current = read.version == super::format::FORMAT_VERSION;
        if Some(index) == last_index && !damaged && current {
            resume = Some((path, read.valid_len));
        }
    }
    if claimed > data.seq {
        report.lost.push(format!(
            "events {} to {claimed} were saved but neither a readable snapshot nor the journal \
             holds them (the state stops at event {})",
            data.seq + 1,
            data.seq
        ));
    }
    report.journal_segments = kept_segments.len();
    report.replayed = replayed.len() as u64;
    report.last_seq = data.seq;
    report.samples = data.samples.len();
    report.classes = data.classes.len();
    Ok(Recovery {
        data,
        replayed,
        report,
        snapshots: kept_snapshots,
        segments: kept_segments,
        resume,
    })
}
