//! Journal segments: append-only files of label events, each record fsync'd before the event is
//! acknowledged. A segment is named after the sequence number it starts at
//! (`journal-00000000000000000042.ft`) and is created atomically (header written to a temporary
//! file, fsync, rename, directory fsync), so a segment on disk always has a whole header.
//!
//! A failed append (disk full, I/O error) may leave part of a record behind. The segment remembers
//! the length of its valid part and cuts the file back to it before the next append; until that
//! cut succeeds nothing more is appended, so a record is never written after garbage.

use std::path::{Path, PathBuf};

use super::events::JournalEntry;
use super::format::{self, FileKind, Header, HEADER_LEN};
use super::fs::{write_atomic, Fs};
use super::{migrate, Result, StoreError};
use crate::model::BackboneId;

/// File name of the segment starting at `start`.
pub fn segment_name(start: u64) -> String {
    format!("journal-{start:020}.ft")
}

/// The start sequence number in a segment's file name.
pub fn parse_segment_name(name: &str) -> Option<u64> {
    name.strip_prefix("journal-")?
        .strip_suffix(".ft")?
        .parse()
        .ok()
}

/// The segment new events are appended to.
#[derive(Debug)]
pub struct Segment {
    path: PathBuf,
    /// Bytes known to be whole records (where the next append goes).
    valid_len: u64,
    /// A failed append may have left bytes past `valid_len`.
    needs_cut: bool,
}

impl Segment {
    /// Creates a new, empty segment starting at `start` in `dir`.
    ///
    /// # Errors
    /// The failing I/O step, naming the file.
    pub fn create(fs: &dyn Fs, dir: &Path, start: u64, backbone: &BackboneId) -> Result<Self> {
        let path = dir.join(segment_name(start));
        write_atomic(
            fs,
            &path,
            &Header::new(FileKind::Journal, *backbone).encode(),
        )?;
        Ok(Self {
            path,
            valid_len: HEADER_LEN as u64,
            needs_cut: false,
        })
    }

    /// Continues an existing segment whose valid part is `valid_len` bytes and has nothing after.
    pub fn resume(path: PathBuf, valid_len: u64) -> Self {
        Self {
            path,
            valid_len,
            needs_cut: false,
        }
    }

    /// The segment's file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Bytes of records (without the header).
    pub fn record_bytes(&self) -> u64 {
        self.valid_len - HEADER_LEN as u64
    }

    /// Appends `entries` and fsyncs; when this returns Ok they survive a power cut.
    ///
    /// # Errors
    /// The failing I/O step, naming the file; the segment then cuts the partial write off before
    /// its next append.
    pub fn append(&mut self, fs: &dyn Fs, entries: &[JournalEntry]) -> Result<u64> {
        let mut bytes = Vec::new();
        for entry in entries {
            format::push_record(&mut bytes, entry, "a journal entry", &self.path)?;
        }
        if self.needs_cut {
            fs.truncate(&self.path, self.valid_len)
                .map_err(|e| StoreError::io("cut the torn end of", &self.path, e))?;
            fs.sync_file(&self.path)
                .map_err(|e| StoreError::io("fsync", &self.path, e))?;
            self.needs_cut = false;
        }
        self.needs_cut = true;
        fs.append(&self.path, &bytes)
            .map_err(|e| StoreError::io("append to", &self.path, e))?;
        fs.sync_file(&self.path)
            .map_err(|e| StoreError::io("fsync", &self.path, e))?;
        self.needs_cut = false;
        self.valid_len += bytes.len() as u64;
        Ok(bytes.len() as u64)
    }
}

/// What a segment on disk holds.
#[derive(Debug)]
pub struct SegmentRead {
    /// Entries of the valid records, in file order (older versions converted).
    pub entries: Vec<JournalEntry>,
    /// Length of the valid part.
    pub valid_len: u64,
    /// What was dropped after the valid part (a torn last append, a flipped bit, …).
    pub damage: Option<String>,
    /// Whole records after the damage: events that were acknowledged once and are now lost.
    pub lost_records: usize,
    /// The segment's format version (only a current one is appended to).
    pub version: u16,
}

/// Reads a segment, keeping its valid prefix.
///
/// # Errors
/// Header errors (not fieldtune, corrupt header, newer version, wrong kind, other backbone); bad
/// records are reported in [`SegmentRead::damage`].
pub fn read_segment(bytes: &[u8], path: &Path, backbone: &BackboneId) -> Result<SegmentRead> {
    let container = format::read_container(bytes, path, FileKind::Journal, backbone)?;
    let version = container.header.version;
    let mut entries = Vec::with_capacity(container.records.len());
    let mut damage = container.damage.as_ref().map(ToString::to_string);
    let mut lost_records = container.damage.as_ref().map_or(0, |d| d.valid_after);
    let mut valid_len = HEADER_LEN as u64;
    for (i, payload) in container.records.iter().enumerate() {
        let decoded = match version {
            ..=2 => migrate::journal_entry_v2(payload, path, i),
            3 => migrate::journal_entry_v3(payload, path, i),
            _ => format::decode_record::<JournalEntry>(payload, path, i),
        };
        match decoded {
            Ok(entry) => {
                entries.push(entry);
                valid_len += (format::RECORD_OVERHEAD + payload.len()) as u64;
            }
            Err(error) => {
                damage = Some(error.to_string());
                lost_records += container.records.len() - i - 1;
                break;
            }
        }
    }
    Ok(SegmentRead {
        entries,
        valid_len,
        damage,
        lost_records,
        version,
    })
}
