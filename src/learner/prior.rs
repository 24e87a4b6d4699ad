//! The imported head: a head trained by `fieldtune train` on a laptop that a device was started
//! from (`fieldtune state import --head`). It is kept in the state directory as
//! [`IMPORTED_HEAD_FILE`] (a head file of the device's backbone, saved atomically) together with
//! the state class each of its classes became, and it is the prior of every refit: the head the
//! device serves is the imported head fine-tuned on the stored samples
//! ([`crate::head::Head::fine_tune`]), so a device with few labels does not forget it, a class
//! without samples keeps its imported weights, and with no samples at all the device predicts
//! exactly as `fieldtune predict` with that head file.
//!
//! Classes are tied by their state index, not their name, so a rename keeps the imported weights
//! with the class; a deleted class (or one whose creation was undone) drops out of the prior and
//! comes back with an undo. The file is written once per import and never changed by the device.

use std::path::Path;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::head::Head;
use crate::model::BackboneId;
use crate::store::data::{mix, StateData};
use crate::store::fs::Fs;
use crate::store::{head_file, StoreError};

/// The imported head's file name in the state directory.
pub const IMPORTED_HEAD_FILE: &str = "imported-head.ft";

/// What [`IMPORTED_HEAD_FILE`] holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ImportedHead {
    /// The head as `fieldtune train` wrote it.
    pub head: Head,
    /// The state class index each of its classes became, in head order.
    pub classes: Vec<u32>,
}

/// A loaded imported head and a fingerprint of its bytes.
#[derive(Debug, Clone)]
pub struct Prior {
    imported: ImportedHead,
    fingerprint: u64,
}

impl Prior {
    /// Wraps an imported head.
    pub fn new(imported: ImportedHead) -> Prior {
        let bytes = postcard::to_allocvec(&imported).unwrap_or_default();
        let digest: [u8; 32] = Sha256::digest(&bytes).into();
        let mut first = [0u8; 8];
        first.copy_from_slice(&digest[..8]);
        Prior {
            imported,
            fingerprint: u64::from_le_bytes(first),
        }
    }

    /// Reads `dir`'s imported head, if it has one.
    ///
    /// # Errors
    /// A damaged or foreign file (named), or one whose shape does not fit.
    pub fn load(dir: &Path, backbone: &BackboneId) -> Result<Option<Prior>, StoreError> {
        let path = dir.join(IMPORTED_HEAD_FILE);
        if !path.exists() {
            return Ok(None);
        }
        let imported: ImportedHead = head_file::load_head(&path, backbone)?;
        if imported.classes.len() != imported.head.classes().len()
            || imported.head.dim() != backbone.dim as usize
        {
            return Err(StoreError::Corrupt {
                path,
                detail: "its class list does not fit its head".into(),
            });
        }
        Ok(Some(Prior::new(imported)))
    }

    /// Saves `imported` as `dir`'s imported head, atomically (temporary file, fsync, rename,
    /// directory fsync): the commit point of an import.
    ///
    /// # Errors
    /// The storage failure, naming the file.
    pub fn save(
        fs: &dyn Fs,
        dir: &Path,
        imported: &ImportedHead,
        backbone: &BackboneId,
    ) -> Result<(), StoreError> {
        head_file::save_head_with(fs, &dir.join(IMPORTED_HEAD_FILE), imported, backbone)
    }

    /// The imported head as written.
    pub fn imported(&self) -> &ImportedHead {
        &self.imported
    }

    /// The state classes of the imported head that are live now, in head order.
    pub fn live_classes(&self, data: &StateData) -> Vec<u32> {
        self.imported
            .classes
            .iter()
            .copied()
            .filter(|&c| data.is_live(c))
            .collect()
    }

    /// The imported head with only its live classes, under their current names, and the state
    /// class of each; `None` when none of its classes is live.
    pub fn live(&self, data: &StateData) -> Option<(Head, Vec<u32>)> {
        let mut keep = Vec::new();
        let mut names = Vec::new();
        let mut classes = Vec::new();
        for (k, &c) in self.imported.classes.iter().enumerate() {
            if let Some(entry) = data.classes.get(c as usize).filter(|e| !e.deleted) {
                keep.push(k);
                names.push(entry.name.clone());
                classes.push(c);
            }
        }
        if keep.is_empty() {
            return None;
        }
        match self.imported.head.select_classes(&keep, &names) {
            Ok(head) => Some((head, classes)),
            Err(e) => {
                tracing::warn!(
                    "the imported head cannot serve the live classes ({e}); ignoring it"
                );
                None
            }
        }
    }

    /// What the fitted head depends on besides the samples: this file and which of its classes
    /// are live (mixed into the learner's basis).
    pub fn basis(&self, data: &StateData) -> u64 {
        let mut h = mix(self.fingerprint);
        for c in self.live_classes(data) {
            h = mix(h ^ u64::from(c));
        }
        h
    }
}

/// The fingerprint of what a fitted head depends on: the training set ([`StateData::basis`]) and,
/// with an imported head, that head and which of its classes are live. A snapshot's head whose
/// basis is this needs no refit.
pub fn head_basis(data: &StateData, prior: Option<&Prior>) -> u64 {
    match prior {
        Some(prior) => mix(data.basis() ^ prior.basis(data)),
        None => data.basis(),
    }
}
