//! The container every fieldtune file uses (head files, snapshots, journals, exports): a fixed
//! 52-byte header, then checksummed records.
//!
//! ```text
//! header  (little-endian, 52 bytes)
//!   0..8   magic  b"FLDTUNE\0"
//!   8..10  format version (u16)       — position fixed forever, so any version can be told apart
//!   10     file kind (u8)             — 1 head, 2 snapshot, 3 journal, 4 export
//!   11     reserved (0)
//!   12..44 backbone sha256
//!   44..48 feature dimension (u32)
//!   48..52 CRC32 of bytes 0..48
//! record (repeated to the end of the file)
//!   len    u32   payload length
//!   crc    u32   CRC32 of the 4 length bytes followed by the payload
//!   payload      postcard bytes
//! ```
//!
//! The CRC covers the length too, so a flipped length byte is caught instead of sending the reader
//! into the wrong place. Readers stop at the first record that is short or fails its checksum and
//! report exactly what they dropped ([`Damage`]); for a journal that is the torn last append of a
//! power cut, for files written atomically it means the file is corrupt.
//!
//! Version history (older ones read through [`super::migrate`]): 1 = features always f32, no
//! per-sample id; 2 = ids, f16, the journal; 3 = one event per label action; 4 = thumbnails and
//! views; 5 = current (the fleet's remote samples).

use std::path::Path;

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::{Result, StoreError};
use crate::model::BackboneId;

/// The first 8 bytes of every fieldtune file.
pub const MAGIC: [u8; 8] = *b"FLDTUNE\0";
/// The format version this build writes.
pub const FORMAT_VERSION: u16 = 5;
/// The oldest format version this build still reads.
pub const OLDEST_READABLE_VERSION: u16 = 1;
/// Length of the fixed header.
pub const HEADER_LEN: usize = 52;
/// Bytes of framing around each record's payload (length + CRC).
pub const RECORD_OVERHEAD: usize = 8;
/// No record is larger than this; a bigger length is corruption, not a real record.
pub const MAX_RECORD_LEN: u32 = 256 << 20;

/// What a fieldtune file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    /// A trained head alone (`fieldtune train` output).
    Head = 1,
    /// A full device-state snapshot.
    Snapshot = 2,
    /// A label-event journal segment.
    Journal = 3,
    /// A device state packed into one file to move between devices.
    Export = 4,
}

impl FileKind {
    fn from_byte(byte: u8) -> Option<Self> {
        match byte {
            1 => Some(Self::Head),
            2 => Some(Self::Snapshot),
            3 => Some(Self::Journal),
            4 => Some(Self::Export),
            _ => None,
        }
    }

    /// A word for messages.
    pub fn name(self) -> &'static str {
        match self {
            Self::Head => "head",
            Self::Snapshot => "snapshot",
            Self::Journal => "journal",
            Self::Export => "export",
        }
    }
}

/// The decoded header of a fieldtune file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Format version the file was written with.
    pub version: u16,
    /// What the file holds.
    pub kind: FileKind,
    /// The backbone whose features the file's content belongs to.
    pub backbone: BackboneId,
}

impl Header {
    /// A header for a new file in the current format version.
    pub fn new(kind: FileKind, backbone: BackboneId) -> Self {
        Self {
            version: FORMAT_VERSION,
            kind,
            backbone,
        }
    }

    /// The header's 52 bytes.
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut out = [0u8; HEADER_LEN];
        out[0..8].copy_from_slice(&MAGIC);
        out[8..10].copy_from_slice(&self.version.to_le_bytes());
        out[10] = self.kind as u8;
        out[12..44].copy_from_slice(&self.backbone.sha256);
        out[44..48].copy_from_slice(&self.backbone.dim.to_le_bytes());
        let crc = crc32fast::hash(&out[..48]);
        out[48..52].copy_from_slice(&crc.to_le_bytes());
        out
    }

    /// Reads and checks a header: magic, version (not newer than this build), CRC.
    ///
    /// # Errors
    /// [`StoreError::NotFieldtune`], [`StoreError::NewerVersion`] or [`StoreError::Corrupt`],
    /// naming `path`.
    pub fn decode(bytes: &[u8], path: &Path) -> Result<Self> {
        let corrupt = |detail: String| StoreError::Corrupt {
            path: path.to_path_buf(),
            detail,
        };
        if bytes.len() < MAGIC.len() || bytes[..MAGIC.len()] != MAGIC {
            return Err(StoreError::NotFieldtune {
                path: path.to_path_buf(),
            });
        }
        if bytes.len() < HEADER_LEN {
            return Err(corrupt(format!(
                "the header is cut short ({} of {HEADER_LEN} bytes)",
                bytes.len()
            )));
        }
        let version = u16::from_le_bytes([bytes[8], bytes[9]]);
        let stored_crc = u32::from_le_bytes([bytes[48], bytes[49], bytes[50], bytes[51]]);
        let crc_ok = crc32fast::hash(&bytes[..48]) == stored_crc;
        // A newer version may lay out the rest of its header differently, so say "newer" before
        // judging its checksum; a damaged version field is caught by the CRC in that case too.
        if version > FORMAT_VERSION && crc_ok {
            return Err(StoreError::NewerVersion {
                path: path.to_path_buf(),
                found: version,
                supported: FORMAT_VERSION,
            });
        }
        if !crc_ok {
            return Err(corrupt("the header checksum does not match".into()));
        }
        if version < OLDEST_READABLE_VERSION {
            return Err(corrupt(format!("unknown format version {version}")));
        }
        let kind = FileKind::from_byte(bytes[10])
            .ok_or_else(|| corrupt(format!("unknown file kind {}", bytes[10])))?;
        let mut sha256 = [0u8; 32];
        sha256.copy_from_slice(&bytes[12..44]);
        let dim = u32::from_le_bytes([bytes[44], bytes[45], bytes[46], bytes[47]]);
        Ok(Self {
            version,
            kind,
            backbone: BackboneId { sha256, dim },
        })
    }

    /// Refuses a header of another kind or another backbone.
    ///
    /// # Errors
    /// [`StoreError::WrongKind`] or [`StoreError::OtherBackbone`], naming `path`.
    pub fn check(&self, path: &Path, kind: FileKind, backbone: &BackboneId) -> Result<()> {
        if self.kind != kind {
            return Err(StoreError::WrongKind {
                path: path.to_path_buf(),
                found: self.kind.name().into(),
                expected: kind.name().into(),
            });
        }
        if self.backbone != *backbone {
            return Err(StoreError::OtherBackbone {
                path: path.to_path_buf(),
                found: describe_backbone(&self.backbone),
                expected: describe_backbone(backbone),
            });
        }
        Ok(())
    }
}

/// "sha256 0123456789ab…, 1280-d features", for messages.
pub fn describe_backbone(backbone: &BackboneId) -> String {
    format!(
        "sha256 {}…, {}-d features",
        backbone.short_hex(),
        backbone.dim
    )
}

/// Appends one framed record holding `payload` to `out`.
pub fn push_raw_record(out: &mut Vec<u8>, payload: &[u8]) {
    let len = u32::try_from(payload.len())
        .unwrap_or(u32::MAX)
        .to_le_bytes();
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&len);
    hasher.update(payload);
    out.extend_from_slice(&len);
    out.extend_from_slice(&hasher.finalize().to_le_bytes());
    out.extend_from_slice(payload);
}

/// Appends one framed record holding `value` as postcard bytes to `out`.
///
/// # Errors
/// [`StoreError::Encode`] if postcard refuses the value (naming `path`, the file it is for).
pub fn push_record<T: Serialize>(
    out: &mut Vec<u8>,
    value: &T,
    what: &'static str,
    path: &Path,
) -> Result<()> {
    let payload = postcard::to_allocvec(value).map_err(|e| StoreError::Encode {
        what,
        path: path.to_path_buf(),
        detail: e.to_string(),
    })?;
    if payload.len() > MAX_RECORD_LEN as usize {
        return Err(StoreError::Encode {
            what,
            path: path.to_path_buf(),
            detail: format!("{} bytes is more than a record may hold", payload.len()),
        });
    }
    push_raw_record(out, &payload);
    Ok(())
}

/// Where and why a reader stopped before the end of a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Damage {
    /// Byte offset of the first record not read.
    pub offset: u64,
    /// Bytes from there to the end of the file, all dropped.
    pub dropped_bytes: u64,
    /// Index (0-based) of the first record not read.
    pub record: usize,
    /// What was wrong with it.
    pub reason: String,
    /// Valid records found after it (more than 0: the damage is not a torn last append, and
    /// events after it were lost).
    pub valid_after: usize,
}

impl std::fmt::Display for Damage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "record {} at byte {}: {} ({} bytes dropped)",
            self.record, self.offset, self.reason, self.dropped_bytes
        )
    }
}

/// A parsed file: its header, the payloads of its valid records, and any damage after them.
#[derive(Debug)]
pub struct Container<'a> {
    /// The header.
    pub header: Header,
    /// Payloads of the records that passed their checks, in order.
    pub records: Vec<&'a [u8]>,
    /// Byte length of the valid part (header + valid records): where the next append goes.
    pub valid_len: u64,
    /// What follows the valid records, if anything.
    pub damage: Option<Damage>,
}

/// Parses a file's bytes: header, then records until the end or the first bad one.
///
/// # Errors
/// Header errors only (see [`Header::decode`] and [`Header::check`]); a bad record is reported
/// in [`Container::damage`], not as an error, so journals can keep their valid prefix.
pub fn read_container<'a>(
    bytes: &'a [u8],
    path: &Path,
    kind: FileKind,
    backbone: &BackboneId,
) -> Result<Container<'a>> {
    let header = Header::decode(bytes, path)?;
    header.check(path, kind, backbone)?;
    let mut records = Vec::new();
    let mut offset = HEADER_LEN;
    let mut damage = None;
    while offset < bytes.len() {
        match next_record(&bytes[offset..]) {
            Ok(payload) => {
                records.push(payload);
                offset += RECORD_OVERHEAD + payload.len();
            }
            Err(reason) => {
                damage = Some(Damage {
                    offset: offset as u64,
                    dropped_bytes: (bytes.len() - offset) as u64,
                    record: records.len(),
                    reason,
                    valid_after: valid_records_after(&bytes[offset..]),
                });
                break;
            }
        }
    }
    Ok(Container {
        header,
        records,
        valid_len: offset as u64,
        damage,
    })
}

/// Whole, checksum-valid records that follow a bad one whose length field still frames it: a sign
/// that the damage is in the middle of the file (bit rot), not a torn last append.
fn valid_records_after(rest: &[u8]) -> usize {
    if rest.len() < RECORD_OVERHEAD {
        return 0;
    }
    let len = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]);
    if len > MAX_RECORD_LEN {
        return 0;
    }
    let mut offset = RECORD_OVERHEAD + len as usize;
    let mut count = 0;
    while offset < rest.len() {
        match next_record(&rest[offset..]) {
            Ok(payload) => {
                count += 1;
                offset += RECORD_OVERHEAD + payload.len();
            }
            Err(_) => break,
        }
    }
    count
}

/// The payload of the record at the start of `rest`, or why it is not a valid record.
pub(crate) fn next_record(rest: &[u8]) -> std::result::Result<&[u8], String> {
    if rest.len() < RECORD_OVERHEAD {
        return Err(format!(
            "record framing cut short ({} of {RECORD_OVERHEAD} bytes)",
            rest.len()
        ));
    }
    let len_bytes = [rest[0], rest[1], rest[2], rest[3]];
    let len = u32::from_le_bytes(len_bytes);
    let stored_crc = u32::from_le_bytes([rest[4], rest[5], rest[6], rest[7]]);
    if len > MAX_RECORD_LEN {
        return Err(format!("implausible record length {len}"));
    }
    let available = rest.len() - RECORD_OVERHEAD;
    if (len as usize) > available {
        return Err(format!(
            "record of {len} bytes cut short ({available} bytes present)"
        ));
    }
    let payload = &rest[RECORD_OVERHEAD..RECORD_OVERHEAD + len as usize];
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&len_bytes);
    hasher.update(payload);
    if hasher.finalize() != stored_crc {
        return Err("record checksum does not match".into());
    }
    Ok(payload)
}

/// Decodes one record's postcard payload.
///
/// # Errors
/// [`StoreError::Corrupt`] naming `path` and the record index when the bytes are not a `T`.
pub fn decode_record<T: DeserializeOwned>(payload: &[u8], path: &Path, index: usize) -> Result<T> {
    postcard::from_bytes(payload).map_err(|e| StoreError::Corrupt {
        path: path.to_path_buf(),
        detail: format!("record {index} passed its checksum but does not decode ({e})"),
    })
}

/// A file's bytes with the damage treated as corruption: for files written atomically (head
/// files, snapshots, exports), where any bad record means the file cannot be trusted.
///
/// # Errors
/// Header errors, or [`StoreError::Corrupt`] describing the damage.
pub fn read_whole<'a>(
    bytes: &'a [u8],
    path: &Path,
    kind: FileKind,
    backbone: &BackboneId,
) -> Result<Container<'a>> {
    let container = read_container(bytes, path, kind, backbone)?;
    if let Some(damage) = &container.damage {
        return Err(StoreError::Corrupt {
            path: path.to_path_buf(),
            detail: damage.to_string(),
        });
    }
    Ok(container)
}
