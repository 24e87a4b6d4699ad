//! The persisted state in memory: classes, the replay set of stored samples, the undo history,
//! the head as opaque serde bytes, and how label events change them. Pure data and rules, no I/O,
//! no head maths.
//!
//! # Classes
//! A class keeps its index for life. Deleting it (or undoing the action that created it) leaves a
//! tombstone (`deleted`), so indices in the journal and in stored samples never shift. A deleted
//! class's samples stay hidden while the deletion can be undone, and are dropped once it falls off
//! the undo history. Names are unique among live classes only.
//!
//! # Undo
//! The undo history holds the last [`UNDO_DEPTH`] actions (a label with all its frames, a new
//! class, a rename, a deletion); [`LabelEvent::Undo`] takes back the newest.
//!
//! # Fleet
//! Samples merged from other devices of a fleet group ([`LabelEvent::Merge`]) are stored like
//! labels but are not in the undo history; `remote` remembers each one's fleet id (and those taken
//! back, [`LabelEvent::Unmerge`]) so none is merged twice. A label of a frame drops a merged sample
//! of the same frame (the device's own label wins), and undoing a label keeps the class it created
//! when merged samples have come into it since.
//!
//! # Eviction: a class-balanced reservoir
//! - Each class keeps at most `max_samples_per_class` samples. Once full, the class is a reservoir
//!   sample of everything it was ever taught: the n-th label of the class is stored with
//!   probability cap/n, replacing a random stored one, so old and new views of the class stay
//!   represented instead of only the latest ones.
//! - All classes together keep at most `max_feature_bytes` of samples (features, views and
//!   thumbnails: [`Sample::stored_bytes`]). Beyond it, a hidden sample of a deleted class goes
//!   first, else a random sample of the live class with the most stored samples, so small classes
//!   are never starved by a big one.
//! - "Random" is a hash of the sample id, not a generator: replaying the journal after a power cut
//!   makes exactly the same choices as the live run did.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::config::StoreConfig;
use super::events::{Action, ClassTarget, JournalEntry, LabelEvent, Sample};
use super::features::Blob;
use super::remote::{RemoteId, RemoteMark};
use super::{Result, StoreError};

/// How many recent actions `undo` can take back.
pub const UNDO_DEPTH: usize = 64;

/// One class.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassEntry {
    /// Its name.
    pub name: String,
    /// Labels ever given to it since it was created or cleared (drives the reservoir).
    pub seen: u64,
    /// Deleted (or its creation undone): a tombstone that keeps the indices of later classes.
    pub deleted: bool,
}

/// The head as its owner serialised it, and what it was trained on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeadBlob {
    /// The head's bytes.
    pub bytes: Blob,
    /// The owner's fingerprint of the samples and classes it was trained on (see
    /// [`StateData::basis`]): a head whose basis is the state's own needs no retraining.
    pub basis: u64,
}

/// Everything a snapshot holds.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct StateData {
    /// Sequence number of the last event applied (0: none).
    pub seq: u64,
    /// Classes, by index (tombstones included).
    pub classes: Vec<ClassEntry>,
    /// The replay set, oldest first (samples of deleted classes included, hidden).
    pub samples: Vec<Sample>,
    /// Id the next sample gets.
    pub next_sample_id: u64,
    /// Actions that can be undone, newest last.
    pub undo: Vec<Action>,
    /// The head, as of the last snapshot (None: retrain from the samples).
    pub head: Option<HeadBlob>,
    /// Bytes of stored samples: features, views and thumbnails (kept in step with `samples`;
    /// see [`Sample::stored_bytes`]).
    pub feature_bytes: u64,
    /// Samples of other devices of the fleet group seen so far: merged (as which local sample)
    /// or taken back. Since format 5.
    pub remote: BTreeMap<RemoteId, RemoteMark>,
}

/// What applying one event did, for the code that keeps the head in step.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Applied {
    /// Ids of the new samples that were stored in the replay set.
    pub stored: Vec<u64>,
    /// Ids of samples evicted to make room.
    pub evicted: Vec<u64>,
    /// The action an undo took back.
    pub undone: Option<Action>,
    /// Samples left the training set (undo, delete, clear, eviction): a head trained on them is
    /// out of date.
    pub removed: bool,
}

/// Deterministic 64-bit mix (splitmix64): the reservoir's "random" choice for a sample id.
pub fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

fn invalid(message: impl Into<String>) -> StoreError {
    StoreError::InvalidEvent(message.into())
}

impl StateData {
    /// Stored samples of class `class` (hidden ones of a deleted class included).
    pub fn class_count(&self, class: u32) -> usize {
        self.samples.iter().filter(|s| s.class == class).count()
    }

    /// Live classes: (index, entry), in index order.
    pub fn live_classes(&self) -> impl Iterator<Item = (u32, &ClassEntry)> {
        self.classes
            .iter()
            .enumerate()
            .filter(|(_, c)| !c.deleted)
            .map(|(i, c)| (i as u32, c))
    }

    /// Index of the live class named `name`.
    pub fn live_class(&self, name: &str) -> Option<u32> {
        self.live_classes()
            .find(|(_, c)| c.name == name)
            .map(|(i, _)| i)
    }

    /// Whether class `class` exists and is not deleted.
    pub fn is_live(&self, class: u32) -> bool {
        self.classes.get(class as usize).is_some_and(|c| !c.deleted)
    }

    /// Samples of live classes: the training set.
    pub fn live_samples(&self) -> impl Iterator<Item = &Sample> {
        self.samples.iter().filter(|s| self.is_live(s.class))
    }

    /// A fingerprint of the training set: which samples, in which classes, in which order. Two
    /// states with the same basis train the same head.
    pub fn basis(&self) -> u64 {
        let mut h = mix(0xB45E);
        for s in self.live_samples() {
            h = mix(h ^ s.id);
            h = mix(h ^ u64::from(s.class));
        }
        h
    }

    fn class_ok(&self, class: u32) -> Result<()> {
        if self.is_live(class) {
            Ok(())
        } else if (class as usize) < self.classes.len() {
            Err(invalid(format!("class {class} was deleted")))
        } else {
            Err(invalid(format!(
                "class {class} does not exist (the state has {} classes)",
                self.classes.len()
            )))
        }
    }

    fn name_free(&self, name: &str) -> Result<()> {
        if name.trim().is_empty() {
            return Err(invalid("a class name cannot be empty"));
        }
        if self.live_class(name).is_some() {
            return Err(invalid(format!("a class named {name:?} already exists")));
        }
        Ok(())
    }

    /// Checks `event` can be applied (classes exist and are live, names are free, dimensions
    /// match) without changing anything, so a bad request is refused before it reaches the
    /// journal.
    ///
    /// # Errors
    /// [`StoreError::InvalidEvent`] saying what is wrong.
    pub fn check(&self, event: &LabelEvent, dim: u32) -> Result<()> {
        match event {
            LabelEvent::NewClass { name } => self.name_free(name),
            LabelEvent::Rename { class, name } => {
                self.class_ok(*class)?;
                if self.classes[*class as usize].name == *name {
                    return Ok(());
                }
                self.name_free(name)
            }
            LabelEvent::Label { class, samples } => {
                let index = match class {
                    ClassTarget::Existing(c) => {
                        self.class_ok(*c)?;
                        *c
                    }
                    ClassTarget::New(name) => {
                        self.name_free(name)?;
                        u32::try_from(self.classes.len()).unwrap_or(u32::MAX)
                    }
                };
                if samples.is_empty() {
                    return Err(invalid("a label needs at least one frame"));
                }
                let mut next = self.next_sample_id;
                for sample in samples {
                    if sample.class != index {
                        return Err(invalid(format!(
                            "a sample of class {} in a label of class {index}",
                            sample.class
                        )));
                    }
                    if sample.feature.dim() != dim as usize {
                        return Err(invalid(format!(
                            "a feature of {} values given to a state of {dim}-d features",
                            sample.feature.dim()
                        )));
                    }
                    if sample.id < next {
                        return Err(invalid(format!(
                            "sample id {} reused (next is {next})",
                            sample.id
                        )));
                    }
                    next = sample.id + 1;
                }
                Ok(())
            }
            LabelEvent::DeleteClass { class } => self.class_ok(*class),
            LabelEvent::DeleteSample { sample } => {
                match self.samples.iter().find(|s| s.id == *sample) {
                    None => Err(invalid(format!("sample {sample} is not stored"))),
                    Some(s) if !self.is_live(s.class) => Err(invalid(format!(
                        "sample {sample} belongs to a deleted class"
                    ))),
                    Some(_) => Ok(()),
                }
            }
            LabelEvent::MoveSample { sample, class } => {
                self.class_ok(*class)?;
                match self.samples.iter().find(|s| s.id == *sample) {
                    None => Err(invalid(format!("sample {sample} is not stored"))),
                    Some(s) if !self.is_live(s.class) => Err(invalid(format!(
                        "sample {sample} belongs to a deleted class"
                    ))),
                    Some(_) => Ok(()),
                }
            }
            LabelEvent::Undo => match self.undo.last() {
                None => Err(invalid("nothing to undo")),
                Some(Action::Rename { class, from }) => {
                    let taken = self.live_class(from).is_some_and(|other| other != *class);
                    if taken {
                        Err(invalid(format!(
                            "cannot undo the rename: another class is now named {from:?}"
                        )))
                    } else {
                        Ok(())
                    }
                }
                Some(Action::Delete { class }) => {
                    let name = &self.classes[*class as usize].name;
                    if self.live_class(name).is_some() {
                        Err(invalid(format!(
                            "cannot undo the deletion: another class is now named {name:?}"
                        )))
                    } else {
                        Ok(())
                    }
                }
                Some(Action::Move { sample, from }) => {
                    if !self.samples.iter().any(|s| s.id == *sample) {
                        Ok(()) // evicted since: nothing to move back
                    } else {
                        self.class_ok(*from)
                            .map_err(|e| invalid(format!("cannot undo the move: {e}")))
                    }
                }
                Some(_) => Ok(()),
            },
            LabelEvent::Clear { class } => class.map_or(Ok(()), |c| self.class_ok(c)),
            LabelEvent::Merge {
                class,
                remote,
                sample,
            } => {
                if self.remote.contains_key(remote) {
                    return Err(invalid(format!(
                        "remote sample {} was merged or taken back before",
                        remote.hex()
                    )));
                }
                self.check(
                    &LabelEvent::Label {
                        class: class.clone(),
                        samples: vec![sample.clone()],
                    },
                    dim,
                )
            }
            LabelEvent::Unmerge { remote } => {
                if remote.is_empty() {
                    Err(invalid("an unmerge names no remote sample"))
                } else {
                    Ok(())
                }
            }
        }
    }

    /// Applies one journal entry, which must be the next in sequence.
    ///
    /// # Errors
    /// [`StoreError::InvalidEvent`] for an out-of-sequence entry or one [`Self::check`] refuses;
    /// the state is unchanged then.
    pub fn apply(
        &mut self,
        entry: &JournalEntry,
        dim: u32,
        config: &StoreConfig,
    ) -> Result<Applied> {
        if entry.seq != self.seq + 1 {
            return Err(invalid(format!(
                "event {} does not follow event {}",
                entry.seq, self.seq
            )));
        }
        self.check(&entry.event, dim)?;
        let mut applied = Applied::default();
        match &entry.event {
            LabelEvent::NewClass { name } => {
                let class = self.push_class(name);
                self.push_action(Action::NewClass { class }, &mut applied);
            }
            LabelEvent::Rename { class, name } => {
                let entry = &mut self.classes[*class as usize];
                let from = std::mem::replace(&mut entry.name, name.clone());
                self.push_action(
                    Action::Rename {
                        class: *class,
                        from,
                    },
                    &mut applied,
                );
            }
            LabelEvent::Label { class, samples } => {
                let created = match class {
                    ClassTarget::Existing(_) => None,
                    ClassTarget::New(name) => Some(self.push_class(name)),
                };
                for sample in samples {
                    self.add_sample(sample.clone(), config, &mut applied);
                }
                // This device's own label of a frame wins over a sample merged for it.
                let frames: Vec<_> = samples.iter().map(|s| s.frame_hash).collect();
                self.drop_merged_frames(&frames, &mut applied);
                self.push_action(
                    Action::Label {
                        seq: entry.seq,
                        samples: applied.stored.clone(),
                        created,
                    },
                    &mut applied,
                );
            }
            LabelEvent::DeleteClass { class } => {
                self.classes[*class as usize].deleted = true;
                applied.removed = true;
                self.push_action(Action::Delete { class: *class }, &mut applied);
            }
            LabelEvent::DeleteSample { sample } => {
                if let Some(at) = self.samples.iter().position(|s| s.id == *sample) {
                    let removed = self.samples.remove(at);
                    applied.removed = true;
                    self.recount();
                    self.push_action(
                        Action::DeleteSample {
                            sample: Box::new(removed),
                        },
                        &mut applied,
                    );
                }
            }
            LabelEvent::MoveSample { sample, class } => {
                let moved = self.samples.iter_mut().find(|s| s.id == *sample);
                if let Some(moved) = moved {
                    let from = std::mem::replace(&mut moved.class, *class);
                    applied.removed = true;
                    self.push_action(
                        Action::Move {
                            sample: *sample,
                            from,
                        },
                        &mut applied,
                    );
                }
            }
            LabelEvent::Undo => {
                if let Some(action) = self.undo.pop() {
                    self.take_back(&action);
                    applied.removed = true;
                    applied.undone = Some(action);
                }
            }
            LabelEvent::Clear { class: Some(class) } => {
                self.samples.retain(|s| s.class != *class);
                self.classes[*class as usize].seen = 0;
                self.forget_undo();
                applied.removed = true;
            }
            LabelEvent::Clear { class: None } => {
                let next = self.next_sample_id;
                // What was merged stays known: a message delivered again is not merged again.
                let remote = std::mem::take(&mut self.remote);
                *self = Self {
                    seq: self.seq,
                    next_sample_id: next,
                    remote,
                    ..Self::default()
                };
                applied.removed = true;
            }
            LabelEvent::Merge {
                class,
                remote,
                sample,
            } => {
                if let ClassTarget::New(name) = class {
                    self.push_class(name);
                }
                self.add_sample(sample.clone(), config, &mut applied);
                self.remote
                    .insert(*remote, RemoteMark::Merged { sample: sample.id });
            }
            LabelEvent::Unmerge { remote } => {
                for id in remote {
                    if let Some(RemoteMark::Merged { sample }) = self.remote.get(id).copied() {
                        if let Some(at) = self.samples.iter().position(|s| s.id == sample) {
                            self.remove_at(at);
                            applied.removed = true;
                        }
                    }
                    self.remote.insert(*id, RemoteMark::Removed);
                }
            }
        }
        self.seq = entry.seq;
        Ok(applied)
    }

    /// Local ids of the samples merged from other devices (stored or not).
    pub fn merged_ids(&self) -> std::collections::HashSet<u64> {
        self.remote
            .values()
            .filter_map(|m| match m {
                RemoteMark::Merged { sample } => Some(*sample),
                RemoteMark::Removed => None,
            })
            .collect()
    }

    /// Whether class `class` holds samples merged from other devices.
    fn holds_merged(&self, class: u32) -> bool {
        if self.remote.is_empty() {
            return false;
        }
        let merged = self.merged_ids();
        self.samples
            .iter()
            .any(|s| s.class == class && merged.contains(&s.id))
    }

    /// Removes merged samples of these frames (this device labelled them itself).
    fn drop_merged_frames(&mut self, frames: &[super::events::FrameHash], applied: &mut Applied) {
        if self.remote.is_empty() {
            return;
        }
        let merged = self.merged_ids();
        let before = self.samples.len();
        self.samples
            .retain(|s| !(merged.contains(&s.id) && frames.contains(&s.frame_hash)));
        if self.samples.len() != before {
            applied.removed = true;
            self.recount();
        }
    }

    fn push_class(&mut self, name: &str) -> u32 {
        self.classes.push(ClassEntry {
            name: name.to_string(),
            seen: 0,
            deleted: false,
        });
        u32::try_from(self.classes.len() - 1).unwrap_or(u32::MAX)
    }

    /// Pushes an undoable action; the oldest beyond [`UNDO_DEPTH`] is forgotten (a deletion that
    /// can no longer be undone drops its hidden samples).
    fn push_action(&mut self, action: Action, applied: &mut Applied) {
        self.undo.push(action);
        if self.undo.len() > UNDO_DEPTH {
            let oldest = self.undo.remove(0);
            if let Action::Delete { class } = oldest {
                let before = self.samples.len();
                self.purge_class(class);
                applied.removed |= self.samples.len() != before;
            }
        }
    }

    /// Reverses one action.
    fn take_back(&mut self, action: &Action) {
        match action {
            Action::Label {
                samples, created, ..
            } => {
                self.samples.retain(|s| !samples.contains(&s.id));
                // The class it created goes too, unless samples merged from the fleet group
                // have come into it since: those are not this device's to take back.
                if let Some(class) = created.filter(|c| !self.holds_merged(*c)) {
                    self.classes[class as usize].deleted = true;
                    self.purge_class(class);
                }
            }
            Action::NewClass { class } => {
                self.classes[*class as usize].deleted = true;
                self.purge_class(*class);
            }
            Action::Rename { class, from } => self.classes[*class as usize].name = from.clone(),
            Action::Delete { class } => self.classes[*class as usize].deleted = false,
            Action::Move { sample, from } => {
                if let Some(moved) = self.samples.iter_mut().find(|s| s.id == *sample) {
                    moved.class = *from;
                }
            }
            Action::DeleteSample { sample } => {
                // Back in id order, where it was.
                let at = self.samples.partition_point(|s| s.id < sample.id);
                self.samples.insert(at, (**sample).clone());
            }
        }
        self.recount();
    }

    /// Drops the samples of a deleted class for good.
    fn purge_class(&mut self, class: u32) {
        if self.is_live(class) {
            return;
        }
        self.samples.retain(|s| s.class != class);
        self.recount();
    }

    /// Forgets the undo history (after a clear): deletions become final.
    fn forget_undo(&mut self) {
        for action in std::mem::take(&mut self.undo) {
            if let Action::Delete { class } = action {
                self.purge_class(class);
            }
        }
        self.recount();
    }

    fn add_sample(&mut self, sample: Sample, config: &StoreConfig, applied: &mut Applied) {
        let class = sample.class;
        self.next_sample_id = sample.id + 1;
        let entry = &mut self.classes[class as usize];
        entry.seen += 1;
        let seen = entry.seen;
        let cap = u64::from(config.max_samples_per_class);
        if self.class_count(class) as u64 >= cap {
            // Reservoir: keep the n-th label with probability cap/n, in place of a random one.
            let slot = mix(sample.id) % seen.max(1);
            if slot >= cap {
                return;
            }
            let victim = self.nth_of_class(class, slot as usize);
            if let Some(i) = victim {
                applied.evicted.push(self.samples[i].id);
                applied.removed = true;
                self.remove_at(i);
            }
        }
        let size = sample.stored_bytes();
        if size > config.max_feature_bytes {
            return;
        }
        while self.feature_bytes + size > config.max_feature_bytes {
            let Some(i) = self.byte_cap_victim(sample.id) else {
                return;
            };
            applied.evicted.push(self.samples[i].id);
            applied.removed = true;
            self.remove_at(i);
        }
        self.feature_bytes += size;
        applied.stored.push(sample.id);
        self.samples.push(sample);
    }

    /// Index in `samples` of the `n`-th stored sample of `class`.
    fn nth_of_class(&self, class: u32, n: usize) -> Option<usize> {
        self.samples
            .iter()
            .enumerate()
            .filter(|(_, s)| s.class == class)
            .nth(n)
            .map(|(i, _)| i)
    }

    /// What the byte cap evicts: the oldest hidden sample of a deleted class, else a
    /// pseudo-random sample of the class with the most stored samples (lowest index on ties).
    fn byte_cap_victim(&self, salt: u64) -> Option<usize> {
        if let Some(i) = self.samples.iter().position(|s| !self.is_live(s.class)) {
            return Some(i);
        }
        let mut counts = vec![0usize; self.classes.len()];
        for s in &self.samples {
            if let Some(c) = counts.get_mut(s.class as usize) {
                *c += 1;
            }
        }
        let (class, &count) = counts
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.cmp(b.1).then(b.0.cmp(&a.0)))?;
        if count == 0 {
            return None;
        }
        let n = (mix(salt ^ 0x5EED) % count as u64) as usize;
        self.nth_of_class(class as u32, n)
    }

    fn remove_at(&mut self, i: usize) {
        let removed = self.samples.remove(i);
        self.feature_bytes = self.feature_bytes.saturating_sub(removed.stored_bytes());
    }

    fn recount(&mut self) {
        self.feature_bytes = self.samples.iter().map(|s| s.stored_bytes()).sum();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::events::FrameHash;
    use crate::store::features::{FeatureEncoding, StoredFeature};

    const DIM: u32 = 4;

    struct Run {
        data: StateData,
        config: StoreConfig,
        /// Bytes of the thumbnail each labelled frame carries.
        thumbnail_bytes: usize,
    }

    impl Run {
        fn new(config: StoreConfig) -> Self {
            Self {
                data: StateData::default(),
                config,
                thumbnail_bytes: 0,
            }
        }

        fn apply(&mut self, event: LabelEvent) -> Applied {
            let entry = JournalEntry {
                seq: self.data.seq + 1,
                event,
            };
            self.data.apply(&entry, DIM, &self.config).expect("valid")
        }

        /// One label of `frames` frames; the class is created when the name is new.
        fn label(&mut self, name: &str, frames: usize) -> Applied {
            let class = match self.data.live_class(name) {
                Some(i) => ClassTarget::Existing(i),
                None => ClassTarget::New(name.into()),
            };
            let index = match &class {
                ClassTarget::Existing(i) => *i,
                ClassTarget::New(_) => self.data.classes.len() as u32,
            };
            let first = self.data.next_sample_id;
            let samples = (first..first + frames as u64)
                .map(|id| Sample {
                    id,
                    class: index,
                    time_ms: id,
                    frame_hash: FrameHash::default(),
                    feature: StoredFeature::encode(
                        &[id as f32; DIM as usize],
                        FeatureEncoding::F32,
                    ),
                    thumbnail: crate::store::features::Blob(vec![0xD8; self.thumbnail_bytes]),
                    views: Vec::new(),
                })
                .collect();
            self.apply(LabelEvent::Label { class, samples })
        }

        fn ids_of(&self, name: &str) -> Vec<u64> {
            let class = self.data.live_class(name).expect("class");
            self.data
                .samples
                .iter()
                .filter(|s| s.class == class)
                .map(|s| s.id)
                .collect()
        }
    }

    #[test]
    fn a_full_class_is_a_reservoir_of_everything_it_was_taught() {
        let config = StoreConfig {
            max_samples_per_class: 20,
            ..StoreConfig::default()
        };
        let mut run = Run::new(config.clone());
        for _ in 0..1000 {
            run.label("a", 1);
        }
        let kept = run.ids_of("a");
        assert_eq!(kept.len(), 20);
        assert_eq!(run.data.classes[0].seen, 1000);
        // Old and new views both stay: a uniform sample of 0..1000 has its mean near 500 and
        // reaches into both the first and the last fifth.
        let mean = kept.iter().sum::<u64>() as f64 / kept.len() as f64;
        assert!(
            (300.0..700.0).contains(&mean),
            "mean kept id {mean}: {kept:?}"
        );
        assert!(kept.iter().any(|&id| id < 200), "{kept:?}");
        assert!(kept.iter().any(|&id| id >= 800), "{kept:?}");
        // Replaying the same events makes exactly the same choices (recovery after a power cut).
        let mut again = Run::new(config);
        for _ in 0..1000 {
            again.label("a", 1);
        }
        assert_eq!(again.ids_of("a"), kept);
    }

    #[test]
    fn the_byte_cap_evicts_from_the_largest_class_and_never_starves_a_small_one() {
        let one = StoredFeature::encode(&[0.0; DIM as usize], FeatureEncoding::F32).byte_len();
        let config = StoreConfig {
            max_feature_bytes: (10 * one) as u64,
            ..StoreConfig::default()
        };
        let mut run = Run::new(config);
        for _ in 0..8 {
            run.label("big", 1);
        }
        run.label("small", 2);
        let evicted: Vec<u64> = (0..5).flat_map(|_| run.label("other", 1).evicted).collect();
        assert_eq!(evicted.len(), 5);
        assert!(run.data.feature_bytes <= (10 * one) as u64);
        assert_eq!(run.data.samples.len(), 10);
        // Each eviction took from the class holding the most samples at that moment (the lower
        // index on a tie): big 8 → 3 while other grew 0 → 5; small was never touched.
        assert_eq!(run.ids_of("small").len(), 2);
        assert_eq!(run.ids_of("big").len(), 3);
        assert_eq!(run.ids_of("other").len(), 5);
    }

    #[test]
    fn thumbnails_count_in_the_byte_cap() {
        let one = StoredFeature::encode(&[0.0; DIM as usize], FeatureEncoding::F32).byte_len();
        // Room for 10 bare samples: with a thumbnail as large as the features, for 5.
        let config = StoreConfig {
            max_feature_bytes: (10 * one) as u64,
            ..StoreConfig::default()
        };
        let mut run = Run::new(config);
        run.thumbnail_bytes = one;
        for _ in 0..12 {
            run.label("a", 1);
        }
        let with_thumbnails =
            |data: &StateData| data.samples.iter().map(Sample::stored_bytes).sum::<u64>();
        assert_eq!(run.data.feature_bytes, with_thumbnails(&run.data));
        assert!(run.data.feature_bytes <= (10 * one) as u64);
        assert_eq!(run.data.samples.len(), 5);
    }

    #[test]
    fn a_deleted_classes_hidden_samples_go_first_and_for_good_once_undo_forgets_it() {
        let one = StoredFeature::encode(&[0.0; DIM as usize], FeatureEncoding::F32).byte_len();
        let config = StoreConfig {
            max_feature_bytes: (6 * one) as u64,
            ..StoreConfig::default()
        };
        let mut run = Run::new(config);
        run.label("gone", 3);
        run.label("kept", 3);
        run.apply(LabelEvent::DeleteClass { class: 0 });
        // Room is needed: the hidden samples of the deleted class make it, not the live ones.
        run.label("kept", 2);
        assert_eq!(run.ids_of("kept").len(), 5);
        assert_eq!(run.data.class_count(0), 1);
        // Once the deletion falls off the undo history its last hidden sample is dropped.
        for _ in 0..UNDO_DEPTH {
            run.apply(LabelEvent::Rename {
                class: 1,
                name: format!("kept-{}", run.data.seq),
            });
        }
        assert_eq!(run.data.class_count(0), 0);
    }

    #[test]
    fn undo_takes_back_whole_actions_newest_first() {
        let mut run = Run::new(StoreConfig::default());
        run.label("a", 3);
        run.label("b", 2); // creates b
        run.apply(LabelEvent::Rename {
            class: 0,
            name: "a2".into(),
        });
        run.apply(LabelEvent::DeleteClass { class: 1 });
        assert_eq!(run.data.live_classes().count(), 1);
        let undone = run.apply(LabelEvent::Undo).undone;
        assert_eq!(undone, Some(Action::Delete { class: 1 }));
        assert_eq!(run.ids_of("b"), [3, 4]);
        run.apply(LabelEvent::Undo);
        assert!(run.data.live_class("a").is_some());
        run.apply(LabelEvent::Undo);
        assert!(
            run.data.live_class("b").is_none(),
            "the class b's label created"
        );
        assert_eq!(run.data.samples.len(), 3);
        run.apply(LabelEvent::Undo);
        assert!(run.data.samples.is_empty());
        assert_eq!(run.data.live_classes().count(), 0);
        let entry = JournalEntry {
            seq: run.data.seq + 1,
            event: LabelEvent::Undo,
        };
        assert!(
            run.data.apply(&entry, DIM, &run.config).is_err(),
            "nothing left"
        );
        // A moved sample goes back with undo.
        run.label("x", 2);
        run.label("y", 1);
        run.apply(LabelEvent::MoveSample {
            sample: run.ids_of("x")[0],
            class: run.data.live_class("y").expect("y"),
        });
        assert_eq!(run.ids_of("x").len(), 1);
        assert_eq!(run.ids_of("y").len(), 2);
        run.apply(LabelEvent::Undo);
        assert_eq!(run.ids_of("x").len(), 2);
        run.apply(LabelEvent::Undo);
        run.apply(LabelEvent::Undo);
        // A name freed by an undo can be used again.
        run.label("b", 1);
        assert_eq!(
            run.data.live_class("b"),
            Some(run.data.classes.len() as u32 - 1)
        );
    }
}
