//! What the service needs from durable storage, as one narrow trait, and its implementation on the
//! crash-safe store ([`crate::store::DeviceState`]).
//!
//! The memory owns the head, so the head on flash and the head that predicts can never drift
//! apart: a label teaches it, an undo retrains it, a background retrain replaces it. Every
//! mutating call returns only once the change is durable, so a label acknowledged to a person (LED
//! blink, socket reply) survives a power cut.

use std::path::Path;

use ndarray::ArrayView1;

use crate::head::{Dataset, Head, HeadKind, HyperParams};
use crate::model::BackboneId;
use crate::store::{DeviceConfig, DeviceState, FrameHash, StoreConfig};

/// A failure of durable storage, with the store's own message (which names the file and the fix).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct MemoryError(pub String);

/// Durable state: classes, the replay set, and the head kept in step with them.
pub trait Memory: Send {
    /// Class names, by index (classes are only ever appended).
    fn classes(&self) -> Vec<String>;
    /// Stored samples per class, by index.
    fn class_counts(&self) -> Vec<usize>;
    /// The head that predicts.
    fn head(&self) -> &Head;
    /// The replay set, and the newest sample id in it (`None` when empty).
    fn replay(&self) -> Option<(Dataset, u64)>;
    /// Samples stored after sample id `after`: (class index, feature), oldest first.
    fn samples_after(&self, after: u64) -> Vec<(usize, Vec<f32>)>;
    /// "This frame is class `class`" (created when new): stores it durably and teaches the head.
    ///
    /// # Errors
    /// [`MemoryError`] when it could not be made durable (the head has still learned it).
    fn label(
        &mut self,
        class: &str,
        feature: &[f32],
        frame_hash: [u8; 32],
    ) -> Result<(), MemoryError>;
    /// Takes back the most recent label still undoable; `false` when there is none. The head
    /// keeps serving as it is, marked stale ([`Memory::head_stale`]), until a retrain replaces it
    /// ([`Memory::replace_head`] or [`Memory::retrain_now`]).
    ///
    /// # Errors
    /// [`MemoryError`] when it could not be made durable.
    fn undo(&mut self) -> Result<bool, MemoryError>;
    /// Whether the head still holds an undone label and waits for a retrain.
    fn head_stale(&self) -> bool;
    /// Retrains the head from the replay set on this thread (when no background retrain can).
    fn retrain_now(&mut self);
    /// Swaps in a head retrained from the replay set (same classes, same order).
    ///
    /// # Errors
    /// [`MemoryError`] when the head does not match the state.
    fn replace_head(&mut self, head: Head) -> Result<(), MemoryError>;
    /// Writes a snapshot if the store says one is due (journal size, pending retries).
    ///
    /// # Errors
    /// [`MemoryError`] when it could not be written (the previous snapshot and journal stay valid).
    fn snapshot_if_due(&mut self) -> Result<bool, MemoryError>;
    /// Writes a snapshot now (shutdown, or the board's snapshot interval).
    ///
    /// # Errors
    /// As [`Memory::snapshot_if_due`].
    fn snapshot(&mut self) -> Result<(), MemoryError>;
}

fn err(e: impl std::fmt::Display) -> MemoryError {
    MemoryError(e.to_string())
}

/// The device's memory: a [`DeviceState`] in the board's state directory.
pub struct StoreMemory {
    state: DeviceState,
}

impl StoreMemory {
    /// Opens the state a board names: its `[store]` directory and bound, its `[head]` kind.
    ///
    /// # Errors
    /// As [`StoreMemory::open`].
    pub fn open_for_board(
        board: &crate::board::Board,
        backbone: BackboneId,
    ) -> Result<Self, MemoryError> {
        let (kind, hyper) = super::head_settings(board);
        Self::open(
            &board.store.dir,
            backbone,
            kind,
            hyper,
            board.store.max_per_class,
        )
    }

    /// Opens (recovering) the state in `dir` for `backbone`; logs what was recovered.
    ///
    /// # Errors
    /// [`MemoryError`] with the store's message (another backbone's state, unreadable directory).
    pub fn open(
        dir: &Path,
        backbone: BackboneId,
        kind: HeadKind,
        hyper: HyperParams,
        max_per_class: usize,
    ) -> Result<Self, MemoryError> {
        let config = DeviceConfig {
            store: StoreConfig {
                max_samples_per_class: u32::try_from(max_per_class).unwrap_or(u32::MAX),
                ..StoreConfig::default()
            },
            head_kind: Some(kind),
            hyper,
        };
        std::fs::create_dir_all(dir).map_err(|e| {
            MemoryError(format!(
                "cannot create state directory {}: {e}; set store.dir (or --state) to a writable place",
                dir.display()
            ))
        })?;
        let (mut state, report) = DeviceState::open(dir, backbone, config).map_err(err)?;
        state.defer_undo_retrain(true);
        tracing::info!("state {}: {report}", dir.display());
        Ok(StoreMemory { state })
    }
}

impl Memory for StoreMemory {
    fn classes(&self) -> Vec<String> {
        self.state.classes()
    }

    fn class_counts(&self) -> Vec<usize> {
        let data = self.state.data();
        (0..data.classes.len())
            .map(|c| data.class_count(u32::try_from(c).unwrap_or(u32::MAX)))
            .collect()
    }

    fn head(&self) -> &Head {
        self.state.head()
    }

    fn replay(&self) -> Option<(Dataset, u64)> {
        let last = self.state.data().samples.iter().map(|s| s.id).max()?;
        Some((self.state.replay_dataset()?, last))
    }

    fn samples_after(&self, after: u64) -> Vec<(usize, Vec<f32>)> {
        self.state
            .data()
            .samples
            .iter()
            .filter(|s| s.id > after)
            .map(|s| (s.class as usize, s.feature.to_vec()))
            .collect()
    }

    fn label(
        &mut self,
        class: &str,
        feature: &[f32],
        frame_hash: [u8; 32],
    ) -> Result<(), MemoryError> {
        self.state
            .record_label_named(ArrayView1::from(feature), class, FrameHash(frame_hash))
            .map(|_| ())
            .map_err(err)
    }

    fn undo(&mut self) -> Result<bool, MemoryError> {
        self.state.undo().map(|u| u.is_some()).map_err(err)
    }

    fn head_stale(&self) -> bool {
        self.state.head_is_stale()
    }

    fn retrain_now(&mut self) {
        self.state.retrain_now();
    }

    fn replace_head(&mut self, head: Head) -> Result<(), MemoryError> {
        self.state.replace_head(head).map_err(err)
    }

    fn snapshot_if_due(&mut self) -> Result<bool, MemoryError> {
        self.state.snapshot_if_due().map_err(err)
    }

    fn snapshot(&mut self) -> Result<(), MemoryError> {
        self.state.snapshot_now().map_err(err)
    }
}
