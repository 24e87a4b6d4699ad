//! Keeping the serving head in step between retrains: the bounded, rehearsed online step for each
//! label, imprinting a class the head does not have yet, and the head's class names.

use ndarray::{Array2, ArrayView1, Axis};
use tracing::warn;

use super::{Learner, REHEARSAL_CLASSES};
use crate::store::data::mix;
use crate::store::events::Sample;

impl Learner {
    /// Online update for a committed label: rehearsed steps for a class the head has, imprinting
    /// for a class it does not.
    pub(super) fn teach(&mut self, class: u32, name: &str, values: &[Vec<f32>]) {
        self.head_basis = None;
        match self.head_classes.iter().position(|&c| c == class) {
            Some(k) => {
                let (rows, labels) = self.rehearsal(k, values.len() as u64);
                for value in values {
                    let result = self.head.learn_rehearsed(
                        ArrayView1::from(&value[..]),
                        k,
                        rows.view(),
                        &labels,
                    );
                    if let Err(e) = result {
                        warn!("the head could not learn the label: {e}");
                    }
                }
            }
            None => {
                let dim = self.store.backbone().dim as usize;
                let flat: Vec<f32> = values.iter().flatten().copied().collect();
                let rows = Array2::from_shape_vec((values.len(), dim), flat);
                let name = self.unique_head_name(name);
                match rows.map(|rows| self.head.add_class(&name, rows.view())) {
                    Ok(Ok(_)) => self.head_classes.push(class),
                    Ok(Err(e)) => warn!("the head could not add class {name:?}: {e}"),
                    Err(e) => warn!("bad label rows: {e}"),
                }
            }
        }
    }

    /// One stored sample of each of up to [`REHEARSAL_CLASSES`] other head classes (picked by a
    /// hash, so replays make the same choice), with their head indices.
    pub(super) fn rehearsal(&self, except: usize, salt: u64) -> (Array2<f32>, Vec<usize>) {
        let data = self.store.data();
        let dim = self.store.backbone().dim as usize;
        let mut picked: Vec<(usize, &Sample)> = Vec::new();
        let others = self
            .head_classes
            .iter()
            .enumerate()
            .filter(|(k, _)| *k != except);
        for (k, &class) in others {
            let of_class: Vec<&Sample> = data.samples.iter().filter(|s| s.class == class).collect();
            if of_class.is_empty() || !data.is_live(class) {
                continue;
            }
            let n = (mix(data.next_sample_id ^ salt ^ u64::from(class)) % of_class.len() as u64)
                as usize;
            picked.push((k, of_class[n]));
        }
        // Spread over the classes when there are more than the budget.
        if picked.len() > REHEARSAL_CLASSES {
            let start = (mix(data.next_sample_id) % picked.len() as u64) as usize;
            picked.rotate_left(start);
            picked.truncate(REHEARSAL_CLASSES);
        }
        let mut rows = Array2::zeros((picked.len(), dim));
        for (mut row, (_, sample)) in rows.axis_iter_mut(Axis(0)).zip(&picked) {
            if let Some(slice) = row.as_slice_mut() {
                sample.feature.decode_into(slice);
            }
        }
        (rows, picked.iter().map(|(k, _)| *k).collect())
    }

    /// A name for a new head class: the state's, unless a stale head class (deleted, not yet
    /// retrained away) still holds it.
    pub(super) fn unique_head_name(&self, name: &str) -> String {
        let mut candidate = name.to_string();
        let mut n = 2;
        while self.head.classes().contains(&candidate) {
            candidate = format!("{name} ({n})");
            n += 1;
        }
        candidate
    }

    /// Gives every head class its state class's current name.
    pub(super) fn sync_head_names(&mut self) {
        for class in self.head_classes.clone() {
            self.sync_head_name(class);
        }
    }

    pub(super) fn sync_head_name(&mut self, class: u32) {
        let Some(k) = self.head_classes.iter().position(|&c| c == class) else {
            return;
        };
        let Some(entry) = self.store.data().classes.get(class as usize) else {
            return;
        };
        if self.head.classes()[k] == entry.name {
            return;
        }
        let name = self.unique_head_name(&entry.name);
        if let Err(e) = self.head.rename_class(k, &name) {
            warn!("the head could not rename class {k}: {e}");
        }
    }
}
