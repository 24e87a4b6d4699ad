//! Checks shared by every reader of stored samples (current and older formats): a checksum-valid
//! but inconsistent record must not reach the state.

use std::path::Path;

use super::data::ClassEntry;
use super::events::Sample;

use super::{Result, StoreError};
use crate::model::BackboneId;

/// A [`StoreError::Corrupt`] for `path`.
pub(crate) fn corrupt(path: &Path, detail: String) -> StoreError {
    StoreError::Corrupt {
        path: path.to_path_buf(),
        detail,
    }
}

/// Refuses a sample whose class or dimension does not fit the state.
pub(crate) fn validate_sample(
    sample: &Sample,
    classes: usize,
    backbone: &BackboneId,
    path: &Path,
    record: usize,
) -> Result<()> {
    if sample.class as usize >= classes {
        return Err(corrupt(
            path,
            format!(
                "record {record}: class {} of {classes} classes",
                sample.class
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

/// Decodes the sample records of a snapshot (records 1…), checking their count and contents.
pub(crate) fn decode_samples(
    records: &[&[u8]],
    expected: u64,
    classes: &[ClassEntry],
    backbone: &BackboneId,
    path: &Path,
    decode: fn(&[u8], &Path, usize) -> Result<Sample>,
) -> Result<Vec<Sample>> {
    if expected != records.len() as u64 {
        return Err(corrupt(
            path,
            format!("says {expected} samples but holds {}", records.len()),
        ));
    }
    let mut samples = Vec::with_capacity(records.len());
    for (i, payload) in records.iter().enumerate() {
        let sample = decode(payload, path, i + 1)?;
        validate_sample(&sample, classes.len(), backbone, path, i + 1)?;
        samples.push(sample);
    }
    Ok(samples)
}
