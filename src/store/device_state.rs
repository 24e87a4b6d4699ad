//! The device's learning state: a [`Store`] (replay set + journal + snapshots on flash) and the
//! [`Head`] kept in step with it. This is the one file that knows both; everything else in the
//! store sees the head as opaque bytes.
//!
//! # For the service
//! ```no_run
//! # use fieldtune::store::device_state::{DeviceConfig, DeviceState};
//! # use fieldtune::store::FrameHash;
//! # fn demo(dir: &std::path::Path, id: fieldtune::model::BackboneId, f: ndarray::ArrayView1<f32>,
//! #         frame: &[u8]) -> Result<(), fieldtune::store::StoreError> {
//! let (mut state, report) = DeviceState::open(dir, id, DeviceConfig::default())?;
//! tracing::info!("{report}");                       // what was recovered and dropped
//! let ack = state.record_label_named(f, "cat", FrameHash::of(frame))?;
//! // Ok: durable when it returns (journal fsync'd) — now light the "learned" LED.
//! let prediction = state.head().predict(f);
//! state.snapshot_if_due()?;                         // call when idle (after a label, every minute)
//! # let _ = (ack, prediction); Ok(()) }
//! ```
//! - Every mutating call returns `Err(e)` with `e.is_storage_failure()` when the flash refused the
//!   write (full, read-only, I/O error). The change is then **applied in memory** (the head learned,
//!   predictions use it) but not durable; it is queued and retried by the next call,
//!   [`DeviceState::flush`] or [`DeviceState::snapshot_if_due`]. Tell the user "not saved" and keep
//!   running. Any other error (unknown class, wrong dimension) changed nothing.
//! - [`StoreError::OtherBackbone`] from `open`: the directory holds another model's learning;
//!   point the service at another directory or run the model it was made with.
//!
//! # How the head follows the events
//! - A label of a class the head has: `head.learn` (one SGD step, online).
//! - The first label of a new class: `head.add_class(name, [feature])`.
//! - Rename: `head.rename_class`.
//! - Undo and clear: the head is retrained from the replay set (`Head::train` with the head's kind
//!   and hyper-parameters), since SGD cannot subtract a sample.
//! - After a power cut: the head of the newest snapshot, then the journal's events replayed the
//!   same way (one retrain at the end if any of them was an undo or clear). A head that does not
//!   decode (e.g. written by an incompatible head version) is retrained from the replay set.

use std::path::Path;
use std::sync::Arc;

use ndarray::{Array2, ArrayView1};
use tracing::{info, warn};

use super::config::StoreConfig;
use super::data::StateData;
use super::events::{FrameHash, LabelEvent, Sample};
use super::features::StoredFeature;
use super::fs::{Fs, RealFs};
use super::recovery::RecoveryReport;
use super::snapshot::now_ms;
use super::state_dir::Store;
use super::{Result, StoreError};
use crate::head::{Dataset, Head, HeadKind, HyperParams};
use crate::model::BackboneId;

/// What a device state needs besides its directory.
#[derive(Debug, Clone, Default)]
pub struct DeviceConfig {
    /// Bounds and compaction.
    pub store: StoreConfig,
    /// The kind of head to start with when the state has none.
    pub head_kind: Option<HeadKind>,
    /// Hyper-parameters of a new head (the head keeps its own afterwards).
    pub hyper: HyperParams,
}

/// What a label did.
#[derive(Debug, Clone, PartialEq)]
pub struct LabelAck {
    /// Sequence number of the label event (increasing over the state's life).
    pub seq: u64,
    /// Class index.
    pub class: usize,
    /// Id of the stored sample (what `undo` takes back).
    pub sample: u64,
    /// Whether the sample was kept in the replay set (the reservoir may skip it once a class is full).
    pub stored: bool,
    /// Samples evicted to make room.
    pub evicted: Vec<u64>,
}

/// The learning state of a device: replay set, classes, journal and the head, crash-safe.
#[derive(Debug)]
pub struct DeviceState {
    store: Store,
    head: Head,
    /// Undo leaves the retrain to the caller (see [`DeviceState::defer_undo_retrain`]).
    defer_undo_retrain: bool,
    /// The head still holds a label that was undone: it waits for [`DeviceState::replace_head`].
    head_stale: bool,
}

impl DeviceState {
    /// Opens (or creates) the state in `dir` on the real file system; see [`Self::open_with_fs`].
    ///
    /// # Errors
    /// As [`Store::open`].
    pub fn open(
        dir: &Path,
        backbone: BackboneId,
        config: DeviceConfig,
    ) -> Result<(Self, RecoveryReport)> {
        Self::open_with_fs(Arc::new(RealFs), dir, backbone, config)
    }

    /// Opens the state through `fs`: recovers the store, then rebuilds the head (snapshot head +
    /// replayed events, or a retrain).
    ///
    /// # Errors
    /// As [`Store::open`].
    pub fn open_with_fs(
        fs: Arc<dyn Fs>,
        dir: &Path,
        backbone: BackboneId,
        config: DeviceConfig,
    ) -> Result<(Self, RecoveryReport)> {
        let (store, opened) = Store::open(fs, dir, backbone, config.store.clone())?;
        let kind = config.head_kind.unwrap_or(HeadKind::Linear);
        let fresh = || Head::new(backbone.dim as usize, kind, config.hyper.clone());
        let base = opened.base_head.as_ref().and_then(|blob| {
            match postcard::from_bytes::<Head>(&blob.0) {
                Ok(head) if head.dim() == backbone.dim as usize => Some(head),
                Ok(_) => {
                    warn!("the stored head has another feature length; retraining it");
                    None
                }
                Err(e) => {
                    warn!("the stored head does not decode ({e}); retraining it");
                    None
                }
            }
        });
        let mut state = Self {
            head: base.clone().unwrap_or_else(fresh),
            store,
            defer_undo_retrain: false,
            head_stale: false,
        };
        // Undo and clear cannot be replayed on a head (SGD cannot subtract): one retrain instead.
        // A snapshot whose head is missing or unreadable: rebuild from its replay set. No
        // snapshot at all: the journal starts at event 1 and replays onto a fresh head.
        let mut retrain = (base.is_none() && opened.report.snapshot.is_some())
            || opened
                .replayed
                .iter()
                .any(|e| matches!(e.event, LabelEvent::Undo { .. } | LabelEvent::Clear { .. }));
        if !retrain {
            // Without undo or clear, classes only grow: the recovered state's names are the final
            // ones, so replay adds classes under them and renames at the end.
            for entry in &opened.replayed {
                if !matches!(entry.event, LabelEvent::Rename { .. })
                    && state.follow(&entry.event, false).is_err()
                {
                    retrain = true;
                    break;
                }
            }
            if !retrain && state.sync_class_names().is_err() {
                retrain = true;
            }
        }
        if retrain {
            state.retrain();
        }
        state.store.set_head(state.head_bytes());
        if let Err(e) = state.store.snapshot_if_due() {
            warn!("cannot write a snapshot yet ({e}); the state serves from memory and retries");
        }
        info!(
            "head ready: {} classes, {} stored samples",
            state.head.classes().len(),
            state.store.data().samples.len()
        );
        Ok((state, opened.report))
    }

    /// The head, up to date with every label (durable or not yet).
    pub fn head(&self) -> &Head {
        &self.head
    }

    /// The persisted state (classes, replay set).
    pub fn data(&self) -> &StateData {
        self.store.data()
    }

    /// The store underneath (statistics, pending count, directory).
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Class names in index order.
    pub fn classes(&self) -> Vec<String> {
        self.data().classes.iter().map(|c| c.name.clone()).collect()
    }

    /// Index of the class named `name`.
    pub fn class_index(&self, name: &str) -> Option<usize> {
        self.data().classes.iter().position(|c| c.name == name)
    }

    /// "This frame is class `name`": creates the class when new, stores the sample, teaches the
    /// head. Durable when it returns Ok.
    ///
    /// # Errors
    /// A storage failure (applied in memory, queued; see the module doc), or an invalid label
    /// (empty name, wrong feature length, non-finite values), which changed nothing.
    pub fn record_label_named(
        &mut self,
        feature: ArrayView1<f32>,
        name: &str,
        frame: FrameHash,
    ) -> Result<LabelAck> {
        let class = match self.class_index(name) {
            Some(class) => class,
            None => {
                self.check_feature(feature)?;
                let committed = self
                    .store
                    .commit(LabelEvent::NewClass { name: name.into() })?;
                if let Err(e) = committed.durable {
                    warn!("new class {name:?} kept in memory only: {e}");
                }
                self.data().classes.len() - 1
            }
        };
        self.record_label(feature, class, frame)
    }

    /// "This frame is class `class`" (an existing class index). Durable when it returns Ok.
    ///
    /// # Errors
    /// As [`Self::record_label_named`].
    pub fn record_label(
        &mut self,
        feature: ArrayView1<f32>,
        class: usize,
        frame: FrameHash,
    ) -> Result<LabelAck> {
        self.check_feature(feature)?;
        let values: Vec<f32> = feature.iter().copied().collect();
        let sample = Sample {
            id: self.data().next_sample_id,
            class: u32::try_from(class).unwrap_or(u32::MAX),
            time_ms: now_ms(),
            frame_hash: frame,
            feature: StoredFeature::encode(&values, self.store.config().feature_encoding),
        };
        let id = sample.id;
        // The head learns the stored (possibly f16) values, exactly what a replay after a power
        // cut or a retrain will see, so the recovered head is the live head bit for bit.
        let stored = sample.feature.to_vec();
        let event = LabelEvent::AddSample(sample);
        let committed = self.store.commit(event.clone())?;
        if let Err(e) = self.follow_live(&event, &stored) {
            warn!("the head could not learn label {id}: {e}");
        }
        committed.durable?;
        Ok(LabelAck {
            seq: committed.seq,
            class,
            sample: id,
            stored: committed.applied.stored,
            evicted: committed.applied.evicted,
        })
    }

    /// Takes back the latest label not yet undone; returns its sample id (None: nothing to undo).
    /// The head is retrained from the replay set.
    ///
    /// # Errors
    /// A storage failure (applied in memory, queued).
    pub fn undo(&mut self) -> Result<Option<u64>> {
        let Some(&sample) = self.data().undo_stack.last() else {
            return Ok(None);
        };
        self.commit_and_follow(LabelEvent::Undo { sample })?;
        Ok(Some(sample))
    }

    /// Renames class `class`.
    ///
    /// # Errors
    /// Unknown class or taken name (nothing changed), or a storage failure.
    pub fn rename_class(&mut self, class: usize, name: &str) -> Result<()> {
        let class = u32::try_from(class).unwrap_or(u32::MAX);
        self.commit_and_follow(LabelEvent::Rename {
            class,
            name: name.into(),
        })
    }

    /// Forgets the samples of one class (`Some`, the head is retrained) or everything (`None`:
    /// classes, samples, head).
    ///
    /// # Errors
    /// Unknown class (nothing changed), or a storage failure.
    pub fn clear(&mut self, class: Option<usize>) -> Result<()> {
        let class = class.map(|c| u32::try_from(c).unwrap_or(u32::MAX));
        self.commit_and_follow(LabelEvent::Clear { class })
    }

    /// Retries writing labels that the storage refused earlier.
    ///
    /// # Errors
    /// The storage failure, if it persists.
    pub fn flush(&mut self) -> Result<()> {
        self.store.flush()
    }

    /// Writes a snapshot if one is due (journal grown past its budget, a repair or a retry
    /// pending). Call it when idle. Returns whether one was written.
    ///
    /// # Errors
    /// The storage failure; nothing already saved is touched.
    pub fn snapshot_if_due(&mut self) -> Result<bool> {
        self.store.set_head(self.head_bytes());
        self.store.snapshot_if_due()
    }

    /// Writes a snapshot now (e.g. at shutdown, to make the next start instant).
    ///
    /// # Errors
    /// The storage failure.
    pub fn snapshot_now(&mut self) -> Result<()> {
        self.store.set_head(self.head_bytes());
        self.store.snapshot().map(|_| ())
    }

    /// Swaps in a head retrained elsewhere (the service's background retrain). It must have the
    /// state's feature length and exactly its classes, in order, or nothing changes.
    ///
    /// # Errors
    /// [`StoreError::InvalidEvent`] when the head does not match the state.
    pub fn replace_head(&mut self, head: Head) -> Result<()> {
        if head.dim() != self.store.backbone().dim as usize || head.classes() != self.classes() {
            return Err(StoreError::InvalidEvent(
                "a replacement head must have the state's feature length and classes".into(),
            ));
        }
        self.head = head;
        self.head_stale = false;
        self.store.set_head(self.head_bytes());
        Ok(())
    }

    /// With `true`, [`DeviceState::undo`] records the undo durably but leaves the head as it is,
    /// marked stale ([`DeviceState::head_is_stale`]): the caller retrains from
    /// [`DeviceState::replay_dataset`] where it does not hold up predictions (the service: on its
    /// retrain thread) and hands the result to [`DeviceState::replace_head`], or calls
    /// [`DeviceState::retrain_now`]. Until then snapshots hold no head, so a power cut in between
    /// recovers by retraining from the replay set, never with the undone label.
    pub fn defer_undo_retrain(&mut self, defer: bool) {
        self.defer_undo_retrain = defer;
    }

    /// Whether the head still holds an undone label (only with deferred undo retrains).
    pub fn head_is_stale(&self) -> bool {
        self.head_stale
    }

    /// Rebuilds the head from the replay set now, on this thread.
    pub fn retrain_now(&mut self) {
        self.retrain();
        self.store.set_head(self.head_bytes());
    }

    /// The replay set as a training data set (None when empty).
    pub fn replay_dataset(&self) -> Option<Dataset> {
        let data = self.data();
        if data.samples.is_empty() {
            return None;
        }
        let dim = self.store.backbone().dim as usize;
        let mut features = Array2::<f32>::zeros((data.samples.len(), dim));
        for (mut row, sample) in features.rows_mut().into_iter().zip(&data.samples) {
            if let Some(slice) = row.as_slice_mut() {
                sample.feature.decode_into(slice);
            }
        }
        Some(Dataset {
            features,
            labels: data.samples.iter().map(|s| s.class as usize).collect(),
            classes: self.classes(),
        })
    }

    fn check_feature(&self, feature: ArrayView1<f32>) -> Result<()> {
        let dim = self.store.backbone().dim as usize;
        if feature.len() != dim {
            return Err(StoreError::InvalidEvent(format!(
                "a feature of {} values given to a state of {dim}-d features",
                feature.len()
            )));
        }
        if feature.iter().any(|v| !v.is_finite()) {
            return Err(StoreError::InvalidEvent(
                "the feature holds NaN or infinite values; check the backbone output".into(),
            ));
        }
        Ok(())
    }

    fn commit_and_follow(&mut self, event: LabelEvent) -> Result<()> {
        let committed = self.store.commit(event.clone())?;
        if let Err(e) = self.follow(&event, true) {
            warn!("the head could not follow {}: {e}", event.name());
        }
        committed.durable
    }

    /// Brings the head up to date with an event already applied to the store. `live`: retrain
    /// now when needed (during recovery the caller retrains once at the end instead).
    fn follow(&mut self, event: &LabelEvent, live: bool) -> Result<()> {
        match event {
            LabelEvent::AddSample(sample) => self.follow_live(event, &sample.feature.to_vec()),
            LabelEvent::NewClass { .. } => Ok(()),
            LabelEvent::Rename { class, name } => {
                if (*class as usize) < self.head.classes().len() {
                    self.head
                        .rename_class(*class as usize, name)
                        .map_err(|e| StoreError::Head(e.to_string()))?;
                }
                Ok(())
            }
            LabelEvent::Undo { .. } if live && self.defer_undo_retrain => {
                self.head_stale = true;
                Ok(())
            }
            LabelEvent::Undo { .. } | LabelEvent::Clear { .. } => {
                if live {
                    self.retrain();
                    Ok(())
                } else {
                    Err(StoreError::Head("needs a retrain".into()))
                }
            }
        }
    }

    fn follow_live(&mut self, event: &LabelEvent, values: &[f32]) -> Result<()> {
        let LabelEvent::AddSample(sample) = event else {
            return Ok(());
        };
        let class = sample.class as usize;
        let view = ArrayView1::from(values);
        let known = self.head.classes().len();
        let result = if class < known {
            self.head.learn(view, class)
        } else if class == known {
            let Some(name) = self.data().classes.get(class).map(|c| c.name.clone()) else {
                return Err(StoreError::Head(format!(
                    "class {class} is not in the state"
                )));
            };
            let row = view.insert_axis(ndarray::Axis(0));
            self.head.add_class(&name, row).map(|_| ())
        } else {
            // A class created without a label (a cut between the two events): rebuild.
            self.retrain();
            Ok(())
        };
        result.map_err(|e| StoreError::Head(e.to_string()))
    }

    /// Gives the head's classes the state's names.
    fn sync_class_names(&mut self) -> Result<()> {
        let names = self.classes();
        for (i, name) in names.iter().enumerate().take(self.head.classes().len()) {
            if self.head.classes()[i] != *name {
                self.head
                    .rename_class(i, name)
                    .map_err(|e| StoreError::Head(e.to_string()))?;
            }
        }
        Ok(())
    }

    /// Rebuilds the head from the replay set (a fresh head when it is empty).
    fn retrain(&mut self) {
        self.head_stale = false;
        let kind = self.head.kind();
        let hyper = self.head.hyper().clone();
        let dim = self.store.backbone().dim as usize;
        self.head = match self.replay_dataset() {
            None => Head::new(dim, kind, hyper),
            Some(dataset) => match Head::train(&dataset, None, kind, &hyper, &mut |_| {}) {
                Ok((head, _)) => head,
                Err(e) => {
                    warn!("retraining the head from the replay set failed ({e}); keeping the old head");
                    return;
                }
            },
        };
    }

    fn head_bytes(&self) -> Option<Vec<u8>> {
        if self.head_stale {
            return None;
        }
        match postcard::to_allocvec(&self.head) {
            Ok(bytes) => Some(bytes),
            Err(e) => {
                warn!("cannot encode the head ({e}); the snapshot keeps only the replay set");
                None
            }
        }
    }
}
