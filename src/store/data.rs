//! The persisted state in memory: classes, the replay set of stored samples, the head as opaque
//! serde bytes, and how label events change them. Pure data and rules, no I/O, no head maths.
//!
//! # Eviction: a class-balanced reservoir
//! - Each class keeps at most `max_samples_per_class` samples. Once full, the class is a reservoir
//!   sample of everything it was ever taught: the n-th label of the class is stored with
//!   probability cap/n, replacing a random stored one, so old and new views of the class stay
//!   represented instead of only the latest ones.
//! - All classes together keep at most `max_feature_bytes` of features. Beyond it, a random sample
//!   of the class with the most stored samples goes, so small classes are never starved by a big
//!   one.
//! - "Random" is a hash of the sample id, not a generator: replaying the journal after a power cut
//!   makes exactly the same choices as the live run did.
//!
//! A label whose sample is not kept still taught the head (it learned online when it happened);
//! only a retrain (after undo or clear) forgets it.

use serde::{Deserialize, Serialize};

use super::config::StoreConfig;
use super::events::{JournalEntry, LabelEvent, Sample};
use super::features::Blob;
use super::{Result, StoreError};

/// How many recent labels `undo` can take back.
pub const UNDO_DEPTH: usize = 64;

/// One class.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassEntry {
    /// Its name.
    pub name: String,
    /// Labels ever given to it since it was created or cleared (drives the reservoir).
    pub seen: u64,
}

/// Everything a snapshot holds.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct StateData {
    /// Sequence number of the last event applied (0: none).
    pub seq: u64,
    /// Classes, by index.
    pub classes: Vec<ClassEntry>,
    /// The replay set, oldest first.
    pub samples: Vec<Sample>,
    /// Id the next sample gets.
    pub next_sample_id: u64,
    /// Ids of the latest labels, newest last, for undo.
    pub undo_stack: Vec<u64>,
    /// The head as its owner serialised it, as of the last snapshot (None: no head yet).
    pub head: Option<Blob>,
    /// Bytes of stored features (kept in step with `samples`).
    pub feature_bytes: u64,
}

/// What applying one event did, for the code that keeps the head in step.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Applied {
    /// The new sample was stored in the replay set.
    pub stored: bool,
    /// Ids of samples evicted to make room.
    pub evicted: Vec<u64>,
    /// The head must be retrained from the replay set (undo, clear).
    pub needs_retrain: bool,
    /// Everything was cleared: the head must start over.
    pub reset: bool,
}

/// Deterministic 64-bit mix (splitmix64): the reservoir's "random" choice for a sample id.
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

impl StateData {
    /// Stored samples of class `class`.
    pub fn class_count(&self, class: u32) -> usize {
        self.samples.iter().filter(|s| s.class == class).count()
    }

    /// Checks `event` can be applied (class indices exist, names are new, dimensions match) without
    /// changing anything, so a bad request is refused before it reaches the journal.
    ///
    /// # Errors
    /// [`StoreError::InvalidEvent`] saying what is wrong.
    pub fn check(&self, event: &LabelEvent, dim: u32) -> Result<()> {
        let class_ok = |class: u32| -> Result<()> {
            if (class as usize) < self.classes.len() {
                Ok(())
            } else {
                Err(StoreError::InvalidEvent(format!(
                    "class {class} does not exist (the state has {} classes)",
                    self.classes.len()
                )))
            }
        };
        let name_ok = |name: &str| -> Result<()> {
            if name.trim().is_empty() {
                return Err(StoreError::InvalidEvent(
                    "a class name cannot be empty".into(),
                ));
            }
            if self.classes.iter().any(|c| c.name == name) {
                return Err(StoreError::InvalidEvent(format!(
                    "a class named {name:?} already exists"
                )));
            }
            Ok(())
        };
        match event {
            LabelEvent::NewClass { name } => name_ok(name),
            LabelEvent::Rename { class, name } => {
                class_ok(*class)?;
                name_ok(name)
            }
            LabelEvent::AddSample(sample) => {
                class_ok(sample.class)?;
                if sample.feature.dim() != dim as usize {
                    return Err(StoreError::InvalidEvent(format!(
                        "a feature of {} values given to a state of {dim}-d features",
                        sample.feature.dim()
                    )));
                }
                if sample.id < self.next_sample_id {
                    return Err(StoreError::InvalidEvent(format!(
                        "sample id {} reused (next is {})",
                        sample.id, self.next_sample_id
                    )));
                }
                Ok(())
            }
            LabelEvent::Undo { .. } => Ok(()),
            LabelEvent::Clear { class } => class.map_or(Ok(()), class_ok),
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
            return Err(StoreError::InvalidEvent(format!(
                "event {} does not follow event {}",
                entry.seq, self.seq
            )));
        }
        self.check(&entry.event, dim)?;
        let mut applied = Applied::default();
        match &entry.event {
            LabelEvent::NewClass { name } => self.classes.push(ClassEntry {
                name: name.clone(),
                seen: 0,
            }),
            LabelEvent::Rename { class, name } => self.classes[*class as usize].name = name.clone(),
            LabelEvent::AddSample(sample) => self.add_sample(sample.clone(), config, &mut applied),
            LabelEvent::Undo { sample } => {
                self.undo_stack.retain(|id| id != sample);
                if let Some(i) = self.samples.iter().position(|s| s.id == *sample) {
                    self.remove_at(i);
                }
                applied.needs_retrain = true;
            }
            LabelEvent::Clear { class: Some(class) } => {
                self.samples.retain(|s| s.class != *class);
                self.classes[*class as usize].seen = 0;
                self.recount();
                applied.needs_retrain = true;
            }
            LabelEvent::Clear { class: None } => {
                let next = self.next_sample_id;
                *self = Self {
                    seq: self.seq,
                    next_sample_id: next,
                    ..Self::default()
                };
                applied.reset = true;
                applied.needs_retrain = true;
            }
        }
        self.seq = entry.seq;
        Ok(applied)
    }

    fn add_sample(&mut self, sample: Sample, config: &StoreConfig, applied: &mut Applied) {
        let class = sample.class;
        self.next_sample_id = sample.id + 1;
        self.undo_stack.push(sample.id);
        if self.undo_stack.len() > UNDO_DEPTH {
            self.undo_stack.remove(0);
        }
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
                self.remove_at(i);
            }
        }
        let size = sample.feature.byte_len() as u64;
        if size > config.max_feature_bytes {
            return;
        }
        while self.feature_bytes + size > config.max_feature_bytes {
            let Some(i) = self.victim_of_largest_class(sample.id) else {
                return;
            };
            applied.evicted.push(self.samples[i].id);
            self.remove_at(i);
        }
        self.feature_bytes += size;
        self.samples.push(sample);
        applied.stored = true;
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

    /// A pseudo-random sample of the class with the most stored samples (lowest index on ties).
    fn victim_of_largest_class(&self, salt: u64) -> Option<usize> {
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
        self.feature_bytes = self
            .feature_bytes
            .saturating_sub(removed.feature.byte_len() as u64);
    }

    fn recount(&mut self) {
        self.feature_bytes = self
            .samples
            .iter()
            .map(|s| s.feature.byte_len() as u64)
            .sum();
    }
}
