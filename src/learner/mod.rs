//! The learner: the one owner of what the device knows. It holds the crash-safe store (classes,
//! stored samples, undo history, journal), the head that predicts, and the background retrainer,
//! and keeps them in step; the service loop only calls it.
//!
//! ```no_run
//! # use fieldtune::learner::{Frame, Learner, LearnerConfig};
//! # fn demo(dir: &std::path::Path, id: fieldtune::model::BackboneId, f: &[f32])
//! #     -> Result<(), fieldtune::learner::LearnerError> {
//! let (mut learner, report) = Learner::open(dir, id, LearnerConfig::default(), None)?;
//! let frame = Frame { features: f, hash: fieldtune::store::FrameHash::of(b"frame"), thumbnail: &[] };
//! learner.label("Blight", &[frame])?;   // durable when it returns: light the LED now
//! let seen = learner.predict(ndarray::ArrayView1::from(f));
//! learner.poll();                       // between frames: swap in a finished retrain
//! learner.undo()?;                      // takes back the whole label, frames and new class
//! # let _ = (report, seen); Ok(()) }
//! ```
//!
//! # What the head is
//! The head is always the one [`fit::fit_head`] fits to the stored samples of the live classes
//! (the same training as `fieldtune train`), plus online steps for labels given since that fit
//! started. Online steps rehearse one stored sample of each other class (up to
//! [`REHEARSAL_CLASSES`]) so a run of presses on one button does not swing the head. A
//! retrain is started after `retrain_every` labels, once labelling pauses for `settle_after`, and
//! at once after anything removed samples (undo, delete); labels given while it runs are taught
//! to its result online before it is swapped in.
//!
//! A label may carry views of its frames (mirror, crop: [`crate::augment`], made by the service
//! with `learning.label_views`); they are stored with the sample and join the refit's rows as
//! `fieldtune train` adds an image's views ([`fit::fit_split`]).
//!
//! A device started from a head trained elsewhere (`fieldtune state import --head`,
//! [`Learner::import_head`]) fits differently: its head is that imported head fine-tuned on the
//! stored samples ([`prior`]), so the imported head is the prior every retrain starts from.
//!
//! # What survives a restart
//! Every action is journalled as one event before it is applied or acknowledged. A snapshot
//! stores the head only when it is exactly the fit of the stored samples (its fingerprint says
//! which); otherwise opening refits it before the first prediction. So after any crash the
//! device predicts as it would have after settling, and undo takes back the same action.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ndarray::ArrayView1;
use tracing::{info, warn};

use crate::head::{Head, HeadKind, HyperParams};
use crate::model::BackboneId;
use crate::store::data::{HeadBlob, StateData};
use crate::store::events::{Action, ClassTarget, LabelEvent, Sample};
use crate::store::features::{Blob, StoredFeature};
use crate::store::fs::{Fs, RealFs};
use crate::store::lock::StateLock;
use crate::store::snapshot::now_ms;
use crate::store::{FrameHash, IfLost, RecoveryReport, Store, StoreConfig};

pub mod error;
pub mod fit;
pub mod fleet;
mod import;
pub mod names;
mod online;
pub mod prior;
pub mod retrain;
mod schedule;

pub use error::LearnerError;
pub use import::HeadImported;
use prior::Prior;
use retrain::Retrainer;

/// Exit status of `fieldtune run` when the saved state cannot be recovered (the unit's
/// `RestartPreventExitStatus=`): restarting would not help, a person must decide.
pub const EXIT_STATE_UNRECOVERABLE: u8 = 65;

pub use names::NameRules;

/// Other classes rehearsed by each online step (one stored sample each).
pub const REHEARSAL_CLASSES: usize = 8;

/// How the learner learns and stores.
#[derive(Debug, Clone)]
pub struct LearnerConfig {
    /// Bounds and compaction of the store.
    pub store: StoreConfig,
    /// The head's kind.
    pub kind: HeadKind,
    /// The head's hyper-parameters (the same defaults as `fieldtune train`).
    pub hyper: HyperParams,
    /// Retrain after this many labels even while labelling goes on (None: only when it pauses).
    pub retrain_every: Option<usize>,
    /// Retrain once no label came for this long.
    pub settle_after: Duration,
    /// What to do when saved events cannot be recovered.
    pub if_lost: IfLost,
    /// What a class name may be and how many classes there may be.
    pub names: NameRules,
}

impl Default for LearnerConfig {
    fn default() -> Self {
        Self {
            store: StoreConfig::default(),
            kind: HeadKind::Linear,
            hyper: HyperParams::defaults_for(HeadKind::Linear),
            retrain_every: Some(4),
            settle_after: Duration::from_secs(1),
            if_lost: IfLost::Refuse,
            names: NameRules::DEFAULT,
        }
    }
}

/// One frame to label: its features and the hash of its bytes.
#[derive(Debug, Clone, Copy)]
pub struct Frame<'a> {
    /// The backbone's features.
    pub features: &'a [f32],
    /// Hash of the frame's bytes.
    pub hash: FrameHash,
    /// A small JPEG of the frame kept with its sample (empty: none).
    pub thumbnail: &'a [u8],
}

/// What a label did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Labelled {
    /// Sequence number of the label event.
    pub seq: u64,
    /// The class's name.
    pub class: String,
    /// The label created the class.
    pub created: bool,
    /// Frames in the label.
    pub frames: usize,
    /// Frames kept in the replay set (the reservoir may skip some once a class is full).
    pub stored: usize,
}

/// What an undo took back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Undone {
    /// In words ("the label of 3 frames as \"Blight\"", …).
    pub what: String,
    /// Stored samples it removed.
    pub samples: usize,
}

/// A live class.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClassInfo {
    /// Its name.
    pub name: String,
    /// Stored samples.
    pub samples: usize,
}

/// A prediction in terms of the live classes.
#[derive(Debug, Clone, PartialEq)]
pub struct Seen {
    /// Position in [`Learner::classes`] of the predicted class (None: unknown, or no class).
    pub class: Option<usize>,
    /// Its name.
    pub name: Option<String>,
    /// Its calibrated probability (0 when unknown).
    pub probability: f32,
}

/// What [`Learner::poll`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Polled {
    /// Nothing finished.
    Idle,
    /// A retrained head is serving now.
    Swapped,
    /// A retrain finished but was out of date (samples were removed meanwhile) or failed.
    Dropped(String),
}

/// The device's learning state: store, head and retrainer, kept in step.
pub struct Learner {
    store: Store,
    head: Head,
    /// State class index of each head class, in head order.
    head_classes: Vec<u32>,
    /// Some(basis) when the head is exactly the fit of that training set.
    head_basis: Option<u64>,
    kind: HeadKind,
    hyper: HyperParams,
    retrain_every: Option<usize>,
    settle_after: Duration,
    retrainer: Retrainer,
    /// Bumped whenever samples leave the training set: a retrain started before is stale.
    generation: u64,
    labels_since_retrain: usize,
    last_change: Instant,
    /// A basis whose fit failed: not retried until the samples change.
    failed_basis: Option<u64>,
    retrains: u64,
    names: NameRules,
    /// The head the device was started from (`fieldtune state import --head`), if any: the prior
    /// every refit fine-tunes.
    prior: Option<Prior>,
    fs: Arc<dyn Fs>,
    _lock: Option<StateLock>,
}

impl std::fmt::Debug for Learner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Learner")
            .field("dir", &self.store.dir())
            .field("classes", &self.head.classes())
            .field("exact", &self.head_basis.is_some())
            .finish_non_exhaustive()
    }
}

impl Learner {
    /// Opens the state in `dir` on the real file system, holding `lock` (taken by the caller
    /// with [`StateLock::acquire`] so a second process is refused before anything is read).
    ///
    /// # Errors
    /// As [`Self::open_with_fs`].
    pub fn open(
        dir: &Path,
        backbone: BackboneId,
        config: LearnerConfig,
        lock: Option<StateLock>,
    ) -> Result<(Self, RecoveryReport), LearnerError> {
        Self::open_with_fs(Arc::new(RealFs), dir, backbone, config, lock)
    }

    /// Opens (recovering) the state in `dir` through `fs`. The head is the snapshot's when it
    /// was fitted to exactly the recovered samples, and is refitted here otherwise, so the first
    /// prediction is already as good as before the restart.
    ///
    /// # Errors
    /// [`crate::store::StoreError::Unrecoverable`] (saved events lost; nothing changed),
    /// another backbone's state, a newer format, an unreadable directory, a bad configuration.
    pub fn open_with_fs(
        fs: Arc<dyn Fs>,
        dir: &Path,
        backbone: BackboneId,
        config: LearnerConfig,
        lock: Option<StateLock>,
    ) -> Result<(Self, RecoveryReport), LearnerError> {
        let (store, opened) = Store::open_with(
            Arc::clone(&fs),
            dir,
            backbone,
            config.store.clone(),
            config.if_lost,
        )?;
        let prior = match Prior::load(dir, &backbone) {
            Ok(prior) => prior,
            Err(e) => {
                warn!("{e}; going on without the imported head (its classes keep their samples; import it again with `fieldtune state import --head FILE --force`)");
                None
            }
        };
        let kind = config
            .kind
            .check()
            .map_err(|e| LearnerError::Head(e.to_string()))?;
        let mut learner = Learner {
            head: Head::new(backbone.dim as usize, kind, config.hyper.clone()),
            store,
            head_classes: Vec::new(),
            head_basis: None,
            kind,
            hyper: config.hyper,
            retrain_every: config.retrain_every,
            settle_after: config.settle_after,
            retrainer: Retrainer::default(),
            generation: 0,
            labels_since_retrain: 0,
            last_change: Instant::now(),
            failed_basis: None,
            retrains: 0,
            names: config.names,
            prior,
            fs,
            _lock: lock,
        };
        if !learner.adopt_saved_head() {
            if let Err(e) = learner.refit_now() {
                // Never a reason not to start: the samples are safe, labels still teach the head.
                warn!("{e}; starting with an empty head");
                learner.failed_basis = Some(learner.basis());
            }
        }
        if learner.store.snapshot_due() {
            if let Err(e) = learner.snapshot() {
                warn!("cannot write the repair snapshot yet ({e}); everything is in the journal");
            }
        }
        info!(
            "head ready: {} classes, {} stored samples",
            learner.head.classes().len(),
            learner.store.data().samples.len()
        );
        Ok((learner, opened.report))
    }

    /// Uses the snapshot's head when it was fitted to exactly the recovered training set.
    fn adopt_saved_head(&mut self) -> bool {
        let data = self.store.data();
        let Some(blob) = &data.head else {
            return false;
        };
        if blob.basis != self.basis() {
            info!("the saved head predates the last labels; refitting it");
            return false;
        }
        let head = match postcard::from_bytes::<Head>(&blob.bytes.0) {
            Ok(head) => head,
            Err(e) => {
                warn!("the saved head does not decode ({e}); refitting it");
                return false;
            }
        };
        // The head's classes by name (it was renamed with the state, so the names are current).
        let mapped: Option<Vec<u32>> = head.classes().iter().map(|n| data.live_class(n)).collect();
        let mut expected = self.head_class_set();
        let fits = mapped.as_ref().is_some_and(|m| {
            let mut m = m.clone();
            m.sort_unstable();
            expected.sort_unstable();
            m == expected
        });
        if head.dim() != self.store.backbone().dim as usize || !fits {
            warn!("the saved head does not fit the state; refitting it");
            return false;
        }
        self.head = head;
        self.head_classes = mapped.unwrap_or_default();
        self.head_basis = Some(blob.basis);
        true
    }

    /// Fits the head to the stored samples on this thread.
    fn refit_now(&mut self) -> Result<(), LearnerError> {
        let (data, job, prior) = self.training_set();
        let head = fit::fit_split(data, self.kind, &self.hyper, prior.as_ref())
            .map_err(|e| LearnerError::Head(e.to_string()))?;
        self.head = head;
        self.head_classes = job.classes;
        self.head_basis = Some(job.basis);
        self.labels_since_retrain = 0;
        Ok(())
    }

    /// The head that predicts.
    pub fn head(&self) -> &Head {
        &self.head
    }

    /// The persisted state (classes with tombstones, samples, undo history).
    pub fn data(&self) -> &StateData {
        self.store.data()
    }

    /// The store underneath (directory, write statistics).
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The live classes, in order, with their stored samples.
    pub fn classes(&self) -> Vec<ClassInfo> {
        let data = self.store.data();
        data.live_classes()
            .map(|(i, c)| ClassInfo {
                name: c.name.clone(),
                samples: data.class_count(i),
            })
            .collect()
    }

    /// Whether the head is exactly the fit of the stored samples (no retrain due or running).
    pub fn is_settled(&self) -> bool {
        self.head_basis == Some(self.basis()) && !self.retrainer.busy()
    }

    /// Whether a retrain is running.
    pub fn retraining(&self) -> bool {
        self.retrainer.busy()
    }

    /// Retrained heads swapped in since opening.
    pub fn retrains(&self) -> u64 {
        self.retrains
    }

    /// Predicts one feature vector, in terms of the live classes (a class deleted or undone a
    /// moment ago is never named, even before the retrain that forgets it is done).
    pub fn predict(&self, features: ArrayView1<f32>) -> Seen {
        let prediction = self.head.predict(features);
        let data = self.store.data();
        let live_position = |head_index: usize| -> Option<usize> {
            let class = *self.head_classes.get(head_index)?;
            if !data.is_live(class) {
                return None;
            }
            Some(data.live_classes().take_while(|(i, _)| *i != class).count())
        };
        let best = prediction.class.and_then(|top| {
            std::iter::once(top)
                .chain(prediction.top.iter().map(|(k, _)| *k))
                .find_map(|k| live_position(k).map(|pos| (k, pos)))
        });
        match best {
            Some((k, pos)) => Seen {
                class: Some(pos),
                name: data
                    .classes
                    .get(self.head_classes[k] as usize)
                    .map(|c| c.name.clone()),
                probability: prediction
                    .top
                    .iter()
                    .find(|(c, _)| *c == k)
                    .map_or(0.0, |(_, p)| *p),
            },
            None => Seen {
                class: None,
                name: None,
                probability: 0.0,
            },
        }
    }

    /// "These frames are class `class`" (created when new): one durable label action. The
    /// head learns it at once; a retrain follows when due.
    ///
    /// # Errors
    /// A bad name or frames (nothing changed), or the storage failure that kept it from the
    /// journal (nothing changed: the label was not applied).
    pub fn label(&mut self, class: &str, frames: &[Frame]) -> Result<Labelled, LearnerError> {
        self.label_with_views(class, frames, &[])
    }

    /// [`Self::label`] with the features of extra views of the frames (their mirror image, a
    /// crop: [`crate::augment`]): `views[i]` are views of `frames[i]` (missing or empty: none).
    /// The views are stored with their frame's sample (counted in the byte budget, undone,
    /// moved and deleted with it), and refits train on them as `fieldtune train` does on an
    /// image's views once every class has [`crate::augment::MIN_PER_CLASS_FOR_VIEWS`] samples.
    ///
    /// # Errors
    /// As [`Self::label`]; views of the wrong length or with non-finite values are bad frames.
    pub fn label_with_views(
        &mut self,
        class: &str,
        frames: &[Frame],
        views: &[Vec<Vec<f32>>],
    ) -> Result<Labelled, LearnerError> {
        let dim = self.store.backbone().dim as usize;
        if frames.is_empty() {
            return Err(LearnerError::BadFrames("no frames given".into()));
        }
        if views.len() > frames.len() {
            return Err(LearnerError::BadFrames(format!(
                "views of {} frames given with {} frames",
                views.len(),
                frames.len()
            )));
        }
        let given = frames
            .iter()
            .map(|f| f.features)
            .chain(views.iter().flatten().map(Vec::as_slice));
        for features in given {
            if features.len() != dim {
                return Err(LearnerError::BadFrames(format!(
                    "a feature of {} values given to a state of {dim}-d features",
                    features.len()
                )));
            }
            if features.iter().any(|v| !v.is_finite()) {
                return Err(LearnerError::BadFrames(
                    "the features hold NaN or infinite values; check the backbone output".into(),
                ));
            }
        }
        let data = self.store.data();
        let existing = self.find_live(class);
        let (target, index, class) = match existing {
            Some(i) => (
                ClassTarget::Existing(i),
                i,
                data.classes[i as usize].name.clone(),
            ),
            None => {
                let name = self.names.normalize(class)?;
                if data.live_classes().count() >= self.names.max_classes {
                    return Err(names::NameError::TooManyClasses {
                        shown: names::shown(&name),
                        max: self.names.max_classes,
                    }
                    .into());
                }
                let index = u32::try_from(data.classes.len()).unwrap_or(u32::MAX);
                (ClassTarget::New(name.clone()), index, name)
            }
        };
        let class = class.as_str();
        let encoding = self.store.config().feature_encoding;
        let first_id = data.next_sample_id;
        let time_ms = now_ms();
        let samples: Vec<Sample> = frames
            .iter()
            .zip(first_id..)
            .enumerate()
            .map(|(i, (frame, id))| Sample {
                id,
                class: index,
                time_ms,
                frame_hash: frame.hash,
                feature: StoredFeature::encode(frame.features, encoding),
                thumbnail: Blob(frame.thumbnail.to_vec()),
                views: views
                    .get(i)
                    .map(|v| {
                        v.iter()
                            .map(|f| StoredFeature::encode(f, encoding))
                            .collect()
                    })
                    .unwrap_or_default(),
            })
            .collect();
        // The head learns the stored (possibly f16) values: exactly what a refit will see. The
        // views are left to the refit, which uses them once every class has enough samples
        // (`crate::augment::views_pay`): online, a label teaches its frames as without views.
        let values: Vec<Vec<f32>> = samples.iter().map(|s| s.feature.to_vec()).collect();
        let committed = self.store.commit(LabelEvent::Label {
            class: target.clone(),
            samples,
        })?;
        // A sample the reservoir evicted was a real label, not a mistake: a retrain running now
        // is still good and is swapped in; the next one goes without it.
        self.teach(index, class, &values);
        self.changed();
        Ok(Labelled {
            seq: committed.seq,
            class: class.to_string(),
            created: matches!(target, ClassTarget::New(_)),
            frames: frames.len(),
            stored: committed.applied.stored.len(),
        })
    }

    /// Takes back the newest action (a label with all its frames and the class it created, a new
    /// class, a rename or a deletion). Durable when it returns; the head that forgets it is
    /// retrained in the background while predictions go on (never naming a removed class).
    ///
    /// # Errors
    /// [`LearnerError::NothingToUndo`], or the storage failure (nothing changed).
    pub fn undo(&mut self) -> Result<Undone, LearnerError> {
        let Some(action) = self.store.data().undo.last().cloned() else {
            return Err(LearnerError::NothingToUndo);
        };
        let what = self.describe(&action);
        let before = self.store.data().samples.len();
        let committed = self.store.commit(LabelEvent::Undo)?;
        let removed = before.saturating_sub(self.store.data().samples.len());
        if let Some(Action::Rename { class, .. }) = committed.applied.undone {
            self.sync_head_name(class);
        } else {
            self.samples_removed();
        }
        Ok(Undone {
            what,
            samples: removed,
        })
    }

    /// Renames class `from` to `to` (undoable).
    ///
    /// # Errors
    /// No such class, a bad or taken name, or the storage failure (nothing changed).
    pub fn rename_class(&mut self, from: &str, to: &str) -> Result<(), LearnerError> {
        let class = self.live_class(from)?;
        let to = self.names.normalize(to)?;
        let data = self.store.data();
        names::check_unique(
            &to,
            data.live_classes()
                .filter(|(i, _)| *i != class)
                .map(|(_, c)| c.name.as_str()),
        )?;
        self.store.commit(LabelEvent::Rename { class, name: to })?;
        self.sync_head_name(class);
        Ok(())
    }

    /// Deletes class `name` and hides its samples (undoable); returns how many it had.
    ///
    /// # Errors
    /// No such class, or the storage failure (nothing changed).
    pub fn delete_class(&mut self, name: &str) -> Result<usize, LearnerError> {
        let class = self.live_class(name)?;
        let samples = self.store.data().class_count(class);
        self.store.commit(LabelEvent::DeleteClass { class })?;
        self.samples_removed();
        Ok(samples)
    }

    /// Creates class `name` without samples (undoable); the head learns it with its first label.
    ///
    /// # Errors
    /// A bad or taken name, too many classes, or the storage failure (nothing changed).
    pub fn new_class(&mut self, name: &str) -> Result<String, LearnerError> {
        let name = self.names.normalize(name)?;
        let data = self.store.data();
        names::check_unique(&name, data.live_classes().map(|(_, c)| c.name.as_str()))?;
        if data.live_classes().count() >= self.names.max_classes {
            return Err(names::NameError::TooManyClasses {
                shown: names::shown(&name),
                max: self.names.max_classes,
            }
            .into());
        }
        self.store
            .commit(LabelEvent::NewClass { name: name.clone() })?;
        Ok(name)
    }

    /// Deletes stored sample `sample` (undoable: it comes back whole).
    ///
    /// # Errors
    /// No such sample, or the storage failure (nothing changed).
    pub fn delete_sample(&mut self, sample: u64) -> Result<(), LearnerError> {
        self.store.commit(LabelEvent::DeleteSample { sample })?;
        self.samples_removed();
        Ok(())
    }

    /// Moves stored sample `sample` to class `to` (a label corrected afterwards; undoable).
    ///
    /// # Errors
    /// No such sample or class, or the storage failure (nothing changed).
    pub fn move_sample(&mut self, sample: u64, to: &str) -> Result<(), LearnerError> {
        let class = self.live_class(to)?;
        self.store
            .commit(LabelEvent::MoveSample { sample, class })?;
        self.samples_removed();
        Ok(())
    }

    /// Call between frames: swaps in a finished retrain (teaching it the labels given while it
    /// ran) and starts one when due. Never blocks.
    pub fn poll(&mut self) -> Polled {
        let outcome = match self.retrainer.poll(false) {
            Some(done) => self.take_retrained(done),
            None => Polled::Idle,
        };
        if self.retrain_due() {
            self.start_retrain();
        }
        outcome
    }

    /// Waits until the head is exactly the fit of the stored samples (retrains run and are
    /// swapped in as needed). For shutdown, tools and tests.
    pub fn settle(&mut self) {
        for _ in 0..8 {
            if let Some(done) = self.retrainer.poll(true) {
                self.take_retrained(done);
            }
            if self.is_settled() || self.failed_basis == Some(self.basis()) {
                return;
            }
            self.start_retrain();
        }
    }

    /// Writes a snapshot if the store says one is due.
    ///
    /// # Errors
    /// The storage failure (everything acknowledged is still in the journal).
    pub fn snapshot_if_due(&mut self) -> Result<bool, LearnerError> {
        if !self.store.snapshot_due() {
            return Ok(false);
        }
        self.snapshot()?;
        Ok(true)
    }

    /// Writes a snapshot now, with the head when it is exactly the fit of the samples.
    ///
    /// # Errors
    /// The storage failure (everything acknowledged is still in the journal).
    pub fn snapshot(&mut self) -> Result<(), LearnerError> {
        let basis = self.basis();
        let head = (self.head_basis == Some(basis))
            .then(|| postcard::to_allocvec(&self.head))
            .and_then(|bytes| match bytes {
                Ok(bytes) => Some(HeadBlob {
                    bytes: crate::store::features::Blob(bytes),
                    basis,
                }),
                Err(e) => {
                    warn!("cannot encode the head ({e}); the next start refits it");
                    None
                }
            });
        self.store.set_head(head);
        self.store.snapshot()?;
        Ok(())
    }

    /// The live class called `name`, exactly or after NFC.
    fn find_live(&self, name: &str) -> Option<u32> {
        let data = self.store.data();
        data.live_class(name).or_else(|| {
            data.live_classes()
                .find(|(_, c)| names::same_name(&c.name, name))
                .map(|(i, _)| i)
        })
    }

    fn live_class(&self, name: &str) -> Result<u32, LearnerError> {
        let data = self.store.data();
        self.find_live(name)
            .ok_or_else(|| LearnerError::UnknownClass {
                name: names::shown(name),
                known: data
                    .live_classes()
                    .map(|(_, c)| names::shown(&c.name))
                    .collect::<Vec<_>>()
                    .join(", "),
            })
    }

    fn describe(&self, action: &Action) -> String {
        let data = self.store.data();
        let name = |class: &u32| {
            data.classes
                .get(*class as usize)
                .map_or_else(|| format!("#{class}"), |c| names::shown(&c.name))
        };
        match action {
            Action::Label {
                samples, created, ..
            } => {
                let class = data
                    .samples
                    .iter()
                    .find(|s| samples.contains(&s.id))
                    .map(|s| s.class)
                    .or(*created);
                let class = class.map_or_else(|| "a class".into(), |c| name(&c));
                let created = if created.is_some() {
                    " (and the class it created)"
                } else {
                    ""
                };
                let frames = match samples.len() {
                    1 => "1 frame".to_string(),
                    n => format!("{n} frames"),
                };
                format!("the label of {frames} as {class}{created}")
            }
            Action::NewClass { class } => format!("the new class {}", name(class)),
            Action::Rename { class, from } => {
                format!("the rename of {} to {}", names::shown(from), name(class))
            }
            Action::Delete { class } => format!("the deletion of {}", name(class)),
            Action::Move { sample, from } => {
                format!("the move of sample {sample} out of {}", name(from))
            }
            Action::DeleteSample { sample } => {
                format!(
                    "the deletion of sample {} of {}",
                    sample.id,
                    name(&sample.class)
                )
            }
        }
    }
}
