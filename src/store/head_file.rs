//! Head files: a trained head alone, in the fieldtune container (`fieldtune train` writes one,
//! `eval` and `predict` read it). One record: the head as postcard. Saved atomically, so a power
//! cut during a save leaves the previous file intact.

use std::path::Path;

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::format::{self, FileKind, Header};
use super::fs::{write_atomic, Fs, RealFs};
use super::{Result, StoreError};
use crate::model::BackboneId;

/// Saves `head` to `path` atomically (temporary file, fsync, rename, directory fsync).
///
/// # Errors
/// I/O errors naming the file (disk full and read-only are told apart), or an encoding error.
pub fn save_head<H: Serialize>(path: &Path, head: &H, backbone: &BackboneId) -> Result<()> {
    save_head_with(&RealFs, path, head, backbone)
}

/// [`save_head`] through a given file system (tests inject faults with it).
///
/// # Errors
/// As [`save_head`].
pub fn save_head_with<H: Serialize>(
    fs: &dyn Fs,
    path: &Path,
    head: &H,
    backbone: &BackboneId,
) -> Result<()> {
    let mut bytes = Header::new(FileKind::Head, *backbone).encode().to_vec();
    format::push_record(&mut bytes, head, "the head", path)?;
    write_atomic(fs, path, &bytes)
}

/// Loads a head saved by [`save_head`], refusing one made for another backbone.
///
/// # Errors
/// [`StoreError::Io`] (missing or unreadable file), [`StoreError::NotFieldtune`],
/// [`StoreError::Corrupt`] (checksum, truncation, undecodable), [`StoreError::NewerVersion`],
/// [`StoreError::WrongKind`] (e.g. a snapshot given as a head file), [`StoreError::OtherBackbone`].
pub fn load_head<H: DeserializeOwned>(path: &Path, expected: &BackboneId) -> Result<H> {
    let bytes = crate::bounded_file::read(path, crate::bounded_file::MAX_HEAD_BYTES)
        .map_err(|e| StoreError::io("read head file", path, e))?;
    let container = format::read_whole(&bytes, path, FileKind::Head, expected)?;
    match container.records.as_slice() {
        [payload] => format::decode_record(payload, path, 0),
        records => Err(StoreError::Corrupt {
            path: path.to_path_buf(),
            detail: format!("a head file holds 1 record, this one {}", records.len()),
        }),
    }
}
