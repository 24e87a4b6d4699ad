//! When the head is refitted to the stored samples: after `retrain_every` labels, once labelling
//! pauses, at once after samples were taken back; on the retrain thread, with the result swapped
//! in between frames and taught what was labelled meanwhile.

use std::time::Instant;

use ndarray::{Array2, Axis};
use tracing::warn;

use super::fit::TrainingData;
use super::retrain::{Job, Retrained};
use super::{Learner, Polled};
use crate::head::{Dataset, Head};
use crate::store::data::StateData;
use crate::store::events::Sample;

impl Learner {
    pub(super) fn changed(&mut self) {
        self.labels_since_retrain += 1;
        self.last_change = Instant::now();
    }

    pub(super) fn samples_removed(&mut self) {
        self.generation += 1;
        self.head_basis = None;
        self.last_change = Instant::now();
        // A retrain at once, not after the pause: the head still knows what was taken back.
        self.labels_since_retrain = usize::MAX / 2;
    }

    pub(super) fn retrain_due(&self) -> bool {
        if self.retrainer.busy() || self.is_settled() {
            return false;
        }
        let basis = self.basis();
        if self.failed_basis == Some(basis) {
            return false;
        }
        self.labels_since_retrain >= self.retrain_every.unwrap_or(usize::MAX)
            || self.last_change.elapsed() >= self.settle_after
    }

    /// The fingerprint of what the fitted head depends on: the training set (see
    /// [`StateData::basis`]) and, with an imported head, that head and which of its classes are
    /// live.
    pub(super) fn basis(&self) -> u64 {
        super::prior::head_basis(self.store.data(), self.prior.as_ref())
    }

    /// The state classes a fitted head has: live classes with samples, and the live classes of
    /// the imported head.
    pub(super) fn head_class_set(&self) -> Vec<u32> {
        let data = self.store.data();
        let mut classes = trained_classes(data);
        if let Some(prior) = &self.prior {
            for c in prior.live_classes(data) {
                if !classes.contains(&c) {
                    classes.push(c);
                }
            }
        }
        classes
    }

    /// The training set (live classes with samples) in canonical order (see
    /// [`Dataset::canonical`]: the head is the one `fieldtune train` fits to the same images),
    /// the job describing it, and the imported head to fine-tune (restricted to its live classes)
    /// when the device has one. The job's classes are in the order of the head the fit makes: the
    /// imported head's live classes, then the others by name. When samples carry views (and no
    /// imported head is fine-tuned), the views join the training rows by the split of
    /// [`crate::augment::with_views`], as `fieldtune train --augment` adds an image's views.
    pub(super) fn training_set(&self) -> (TrainingData, Job, Option<Head>) {
        let data = self.store.data();
        let mut classes = trained_classes(data);
        classes.sort_by(|&a, &b| {
            data.classes[a as usize]
                .name
                .cmp(&data.classes[b as usize].name)
        });
        let dim = self.store.backbone().dim as usize;
        let samples: Vec<&Sample> = data.live_samples().collect();
        let labels = samples
            .iter()
            .map(|s| classes.iter().position(|&c| c == s.class).unwrap_or(0))
            .collect();
        let names = classes
            .iter()
            .map(|&c| data.classes[c as usize].name.clone())
            .collect();
        let prior = self.prior.as_ref().and_then(|p| p.live(data));
        let view_of: Vec<usize> = samples
            .iter()
            .enumerate()
            .flat_map(|(i, s)| std::iter::repeat_n(i, s.views.len()))
            .collect();
        let write_sample = |i: usize, mut row: ndarray::ArrayViewMut1<f32>| {
            if let (Some(sample), Some(slice)) = (samples.get(i), row.as_slice_mut()) {
                sample.feature.decode_into(slice);
            }
        };
        let training = if view_of.is_empty() || prior.is_some() {
            let mut features = Array2::<f32>::zeros((samples.len(), dim));
            for (i, row) in features.axis_iter_mut(Axis(0)).enumerate() {
                write_sample(i, row);
            }
            let all = Dataset {
                features,
                labels,
                classes: names,
            };
            TrainingData {
                rows: all.into_canonical(),
                val_from: None,
            }
        } else {
            // Each stored sample and view is decoded straight into its training row: `all`
            // gives only the labels (no columns).
            let all = Dataset {
                features: Array2::zeros((samples.len(), 0)),
                labels,
                classes: names,
            };
            let stored: Vec<_> = samples.iter().flat_map(|s| &s.views).collect();
            let write_view = |j: usize, mut row: ndarray::ArrayViewMut1<f32>| {
                if let (Some(view), Some(slice)) = (stored.get(j), row.as_slice_mut()) {
                    view.decode_into(slice);
                }
            };
            let (rows, val_from) = crate::augment::with_views_from(
                &all,
                dim,
                write_sample,
                write_view,
                &view_of,
                None,
                &self.hyper,
            );
            let has_val = val_from < rows.len();
            TrainingData {
                rows: rows.into_canonical_split(val_from),
                val_from: has_val.then_some(val_from),
            }
        };
        let classes = match &prior {
            Some((_, imported)) => imported
                .iter()
                .copied()
                .chain(classes.into_iter().filter(|c| !imported.contains(c)))
                .collect(),
            None => classes,
        };
        let job = Job {
            generation: self.generation,
            last_sample: samples.iter().map(|s| s.id).max(),
            basis: self.basis(),
            classes,
        };
        (training, job, prior.map(|(head, _)| head))
    }

    pub(super) fn start_retrain(&mut self) {
        let (data, job, prior) = self.training_set();
        if self
            .retrainer
            .start(data, self.kind, self.hyper.clone(), prior, job)
        {
            self.labels_since_retrain = 0;
        }
    }

    pub(super) fn take_retrained(&mut self, done: Retrained) -> Polled {
        let head = match done.head {
            Ok(head) => head,
            Err(e) => {
                warn!("retrain failed, the online head keeps serving: {e}");
                self.failed_basis = Some(done.job.basis);
                return Polled::Dropped(e);
            }
        };
        if done.job.generation != self.generation {
            // Samples were removed meanwhile: this head still knows them.
            self.labels_since_retrain = usize::MAX / 2;
            return Polled::Dropped("samples were removed while it trained".into());
        }
        self.head = head;
        self.head_classes = done.job.classes.clone();
        self.head_basis = Some(done.job.basis);
        self.retrains += 1;
        self.sync_head_names();
        // Teach it what was labelled while it trained, one label action at a time.
        let after = done.job.last_sample;
        let later: Vec<(u32, Vec<f32>)> = self
            .store
            .data()
            .live_samples()
            .filter(|s| after.is_none_or(|last| s.id > last))
            .map(|s| (s.class, s.feature.to_vec()))
            .collect();
        for (class, value) in later {
            let name = self.store.data().classes[class as usize].name.clone();
            self.teach(class, &name, &[value]);
        }
        crate::heap::release_free_memory();
        Polled::Swapped
    }
}

/// Live classes that have samples, in index order: the classes a fitted head has (in name order).
pub(super) fn trained_classes(data: &StateData) -> Vec<u32> {
    data.live_classes()
        .map(|(i, _)| i)
        .filter(|&i| data.samples.iter().any(|s| s.class == i))
        .collect()
}
