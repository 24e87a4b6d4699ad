//! Fine-tuning a head someone else trained: a device started from a head made by `fieldtune train`
//! (`fieldtune state import --head`) keeps that head as its prior and lets its own labels move it
//! only as far as they pay for.
//!
//! - The imported head's standardisation, calibration (temperature, unknown threshold) and, for the
//!   MLP, its hidden layer are kept: a handful of device samples cannot re-estimate them.
//! - A class the device has and the imported head lacks is imprinted into it
//!   ([`Head::add_class`]), so a device can add classes to an imported head.
//! - The output layer is then trained on the device's samples (the class-weighted cross-entropy
//!   of `Head::train`, the same learning-rate schedule and momentum) together with the imported
//!   head's own evidence, and pulled toward the starting weights:
//!   - each imported class's mean (its prototype, kept in the head) joins the rows as
//!     [`PRIOR_SAMPLES`] samples of that class, so what the imported head was trained to say
//!     stays in the loss: a class the device never labels is not swallowed by those it does;
//!   - the pull `λ/2 · (‖W − W₀‖² + ‖b − b₀‖²)` (as [`super::fewshot`] pulls a fresh head toward
//!     its class-mean prior, and on the biases too) has `λ = weight_decay · (1 + P / n)` for `n`
//!     device samples and `P` = [`PRIOR_SAMPLES`] per imported class: the imported head counts
//!     as `P` samples, so a handful of labels moves it a little and hundreds move it freely.
//! - A class without a single device sample keeps its imported row exactly (its weights and bias
//!   are not trained): the device has no evidence about it, only against it.
//! - The unknown threshold is raised, when needed, to accept `target_acceptance` of the device's
//!   own samples (scored leave-one-out against the class means, which absorb them): what the
//!   device was taught is known by definition, even when it looks unlike anything the imported
//!   head was trained on (a field photo against lab pictures). It is never lowered.
//! - With no device samples at all the result is the imported head itself (restricted to the
//!   classes kept), so it predicts exactly as `fieldtune predict` with that head file.

use ndarray::{s, Array2, Axis};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::batch::Workspace;
use super::calibration::acceptance_threshold;
use super::classifier::Head;
use super::dataset::Dataset;
use super::error::HeadError;
use super::fewshot::{pull_toward, PRIOR_SAMPLES};
use super::hyper::HyperParams;
use super::loss::class_weights;
use super::params::Layer;
use super::sgd::{learning_rate_at, Sgd};
use super::HeadKind;

impl Head {
    /// This head with only the classes `keep` (indices into [`Head::classes`], in the order
    /// given), class `keep[i]` named `names[i]`. Predictions among the kept classes are unchanged.
    ///
    /// # Errors
    /// [`HeadError::LabelOutOfRange`] for an index past the classes, [`HeadError::DuplicateClass`]
    /// for a name or index given twice, [`HeadError::EmptyClassName`].
    pub fn select_classes(&self, keep: &[usize], names: &[String]) -> Result<Head, HeadError> {
        let mut head = self.clone();
        let k = self.classes.len();
        for (i, &c) in keep.iter().enumerate() {
            if c >= k {
                return Err(HeadError::LabelOutOfRange {
                    label: c,
                    classes: k,
                });
            }
            if keep[..i].contains(&c) {
                return Err(HeadError::DuplicateClass(self.classes[c].clone()));
            }
        }
        let out = self.params.output();
        let mut w = Array2::zeros((keep.len(), out.w.ncols()));
        let mut b = ndarray::Array1::zeros(keep.len());
        for (row, &c) in keep.iter().enumerate() {
            w.row_mut(row).assign(&out.w.row(c));
            b[row] = out.b[c];
        }
        *head.params.output_mut() = Layer { w, b };
        head.prototypes = self.prototypes.select(keep);
        head.classes = Vec::with_capacity(keep.len());
        for (i, name) in names.iter().take(keep.len()).enumerate() {
            if name.trim().is_empty() {
                return Err(HeadError::EmptyClassName);
            }
            if names[..i].contains(name) {
                return Err(HeadError::DuplicateClass(name.clone()));
            }
            head.classes.push(name.clone());
        }
        if head.classes.len() != keep.len() {
            return Err(HeadError::EmptyClassName);
        }
        Ok(head)
    }

    /// Fine-tunes this head (the prior) on `train` (see the module docs). Classes of `train` this
    /// head lacks are appended, in `train`'s order; the result's classes are this head's followed
    /// by those. `hyper` gives the schedule, momentum, weight decay, class balance and seed.
    ///
    /// # Errors
    /// An invalid `train` (other feature length, non-finite values), or divergence.
    pub fn fine_tune(&self, train: &Dataset, hyper: &HyperParams) -> Result<Head, HeadError> {
        let mut head = self.clone();
        if train.is_empty() {
            return Ok(head);
        }
        train.check("train")?;
        if train.dim() != self.dim {
            return Err(HeadError::DimensionMismatch {
                expected: self.dim,
                got: train.dim(),
            });
        }
        // Classes the prior lacks: imprinted from their samples.
        for (c, name) in train.classes.iter().enumerate() {
            if head.classes.contains(name) {
                continue;
            }
            let rows: Vec<usize> = (0..train.len()).filter(|&i| train.labels[i] == c).collect();
            if rows.is_empty() {
                continue;
            }
            head.add_class(name, train.select(&rows).features.view())?;
        }
        let labels: Vec<usize> = train
            .labels
            .iter()
            .map(|&y| {
                head.classes
                    .iter()
                    .position(|n| *n == train.classes[y])
                    .unwrap_or(0)
            })
            .collect();
        let k = head.classes.len();
        let device = head.standardizer.transform(train.features.view());
        let mut counts = vec![0usize; k];
        for &y in &labels {
            counts[y] += 1;
        }
        let trained_rows: Vec<bool> = counts.iter().map(|&c| c > 0).collect();
        // The imported classes' means, each as PRIOR_SAMPLES rows (before the device's samples
        // join the prototypes).
        let imported = self.classes.len();
        let repeats = PRIOR_SAMPLES as usize;
        let anchors: Vec<usize> = (0..imported)
            .filter(|&c| head.prototypes.counts()[c] > 0)
            .collect();
        let n_device = device.nrows();
        let mut z = Array2::<f32>::zeros((n_device + anchors.len() * repeats, self.dim));
        z.slice_mut(s![..n_device, ..]).assign(&device);
        let mut labels = labels;
        for (i, &c) in anchors.iter().enumerate() {
            let mean = head.prototypes.mean(c);
            for r in 0..repeats {
                z.row_mut(n_device + i * repeats + r).assign(&mean);
                labels.push(c);
                counts[c] += 1;
            }
        }
        for (row, &y) in device.axis_iter(Axis(0)).zip(&labels) {
            let h = head.params.penultimate(row.insert_axis(Axis(0)));
            head.absorb_center(h.view());
            head.prototypes.add(row, y);
        }
        let weights = class_weights(&counts, hyper.class_balanced());
        let pull = hyper.weight_decay()
            * (1.0 + (PRIOR_SAMPLES * imported as f32) / n_device.max(1) as f32);
        let last = head.params.layers.len() - 1;

        let start = head.params.clone();
        let mut params = start.clone();
        let mut grad = params.zeros_like();
        let mut sgd = Sgd::new(&params, hyper.momentum(), hyper.nesterov());
        let mut rng = ChaCha8Rng::seed_from_u64(hyper.seed());
        let n = z.nrows();
        let bs = hyper.batch_size().min(n).max(1);
        let batches = n.div_ceil(bs);
        let mut order: Vec<usize> = (0..n).collect();
        let mut xb = Array2::<f32>::zeros((bs, self.dim));
        let mut yb = vec![0usize; bs];
        let mut ws = Workspace::new();
        ws.fit(&params, bs);
        for epoch in 0..hyper.epochs() {
            order.shuffle(&mut rng);
            let mut loss_sum = 0.0f64;
            for (bi, chunk) in order.chunks(bs).enumerate() {
                let m = chunk.len();
                for (r, &i) in chunk.iter().enumerate() {
                    xb.row_mut(r).assign(&z.row(i));
                    yb[r] = labels[i];
                }
                let loss = params.loss_and_grad_in(
                    xb.slice(s![..m, ..]),
                    &yb[..m],
                    &weights,
                    hyper.weight_decay(),
                    &mut grad,
                    &mut ws,
                );
                pull_toward(&mut grad, &start, hyper.weight_decay());
                // Only the output rows of classes with device samples learn, pulled by `pull`.
                for (i, layer) in grad.layers.iter_mut().enumerate() {
                    if i != last {
                        layer.w.fill(0.0);
                        layer.b.fill(0.0);
                        continue;
                    }
                    let (now, from) = (&params.layers[i], &start.layers[i]);
                    layer.w.scaled_add(pull - hyper.weight_decay(), &now.w);
                    layer.w.scaled_add(-(pull - hyper.weight_decay()), &from.w);
                    layer.b.scaled_add(pull, &now.b);
                    layer.b.scaled_add(-pull, &from.b);
                    for (c, trained) in trained_rows.iter().enumerate() {
                        if !trained {
                            layer.w.row_mut(c).fill(0.0);
                            layer.b[c] = 0.0;
                        }
                    }
                }
                let lr = learning_rate_at(
                    epoch as f32 + bi as f32 / batches as f32,
                    hyper.learning_rate(),
                    hyper.warmup_epochs(),
                    hyper.epochs(),
                );
                sgd.step(&mut params, &grad, lr);
                loss_sum += f64::from(loss) * m as f64;
            }
            if !loss_sum.is_finite() {
                return Err(HeadError::Diverged {
                    epoch: epoch + 1,
                    learning_rate: hyper.learning_rate(),
                });
            }
        }
        head.params = params;
        let scores: Vec<f32> = device
            .axis_iter(Axis(0))
            .zip(&labels)
            .map(|(row, &y)| head.prototypes.nearest_excluding(row, Some(y)).0)
            .filter(|s| s.is_finite())
            .collect();
        if !scores.is_empty() {
            let (threshold, _) = acceptance_threshold(&scores, hyper.target_acceptance());
            if threshold.is_finite() && threshold > head.calibration.unknown_threshold {
                head.calibration.unknown_threshold = threshold;
            }
        }
        if let HeadKind::Mlp { .. } = head.kind {
            debug_assert_eq!(head.params.layers[0], start.layers[0]);
        }
        Ok(head)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array1;
    use rand::Rng;

    /// `n` samples a class around well-separated centres in 16-d.
    fn blobs(classes: &[&str], n: usize, seed: u64) -> Dataset {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let dim = 16;
        let mut features = Array2::zeros((classes.len() * n, dim));
        let mut labels = Vec::new();
        for c in 0..classes.len() {
            for i in 0..n {
                let mut row = features.row_mut(c * n + i);
                for (d, v) in row.iter_mut().enumerate() {
                    let centre = if d % classes.len().max(1) == c {
                        3.0
                    } else {
                        0.0
                    };
                    *v = centre + rng.gen_range(-1.0f32..1.0);
                }
                labels.push(c);
            }
        }
        Dataset::new(
            features,
            labels,
            classes.iter().map(|c| c.to_string()).collect(),
        )
        .expect("valid")
    }

    fn trained(kind: HeadKind) -> Head {
        let data = blobs(&["a", "b", "c"], 20, 1);
        let hyper = HyperParams::defaults_for(kind);
        Head::train(&data, None, kind, &hyper, &mut |_| {})
            .expect("train")
            .0
    }

    #[test]
    fn without_samples_the_fine_tuned_head_is_the_imported_one() {
        for kind in [HeadKind::Linear, HeadKind::Mlp { hidden: 16 }] {
            let head = trained(kind);
            let empty = Dataset {
                features: Array2::zeros((0, 16)),
                labels: Vec::new(),
                classes: Vec::new(),
            };
            assert_eq!(
                head.fine_tune(&empty, head.hyper()).expect("fine-tune"),
                head
            );
        }
    }

    #[test]
    fn a_class_without_samples_keeps_its_imported_weights() {
        for kind in [HeadKind::Linear, HeadKind::Mlp { hidden: 16 }] {
            let head = trained(kind);
            // Device samples of "a" only, from elsewhere.
            let full = blobs(&["a", "b", "c"], 5, 9);
            let rows: Vec<usize> = (0..5).collect();
            let mut only_a = full.select(&rows);
            only_a.classes = vec!["a".into()];
            let tuned = head.fine_tune(&only_a, head.hyper()).expect("fine-tune");
            assert_eq!(tuned.classes(), head.classes());
            let (before, after) = (head.params.output(), tuned.params.output());
            assert_ne!(before.w.row(0), after.w.row(0), "{kind:?}: a learned");
            for c in 1..3 {
                assert_eq!(before.w.row(c), after.w.row(c), "{kind:?}: class {c}");
                assert_eq!(before.b[c], after.b[c], "{kind:?}: class {c}");
            }
            if let HeadKind::Mlp { .. } = kind {
                assert_eq!(head.params.layers[0], tuned.params.layers[0]);
            }
            assert_eq!(tuned.standardizer, head.standardizer);
            assert_eq!(tuned.calibration.temperature, head.calibration.temperature);
            assert!(tuned.calibration.unknown_threshold >= head.calibration.unknown_threshold);
        }
    }

    #[test]
    fn a_new_class_is_added_and_the_old_ones_are_kept() {
        let head = trained(HeadKind::Linear);
        let test = blobs(&["a", "b", "c", "d"], 10, 5);
        let device = blobs(&["a", "b", "c", "d"], 3, 7);
        let rows: Vec<usize> = (9..12).collect();
        let mut only_d = device.select(&rows);
        only_d.labels = vec![0; 3];
        only_d.classes = vec!["d".into()];
        let tuned = head.fine_tune(&only_d, head.hyper()).expect("fine-tune");
        assert_eq!(tuned.classes(), ["a", "b", "c", "d"]);
        let right = |h: &Head, range: std::ops::Range<usize>| {
            range
                .filter(|&i| {
                    let p = h.predict(test.features.row(i));
                    p.top.first().map(|t| t.0) == Some(test.labels[i])
                })
                .count()
        };
        assert!(right(&tuned, 30..40) >= 8, "d is learned from 3 samples");
        assert!(
            right(&tuned, 0..30) >= right(&head, 0..30).saturating_sub(3),
            "the imported classes are kept"
        );
    }

    #[test]
    fn selecting_classes_keeps_their_logits() {
        let head = trained(HeadKind::Linear);
        let picked = head
            .select_classes(&[2, 0], &["C".into(), "A".into()])
            .expect("select");
        assert_eq!(picked.classes(), ["C", "A"]);
        let x = Array1::from_elem(16, 0.5);
        let all = head.logits(x.view().insert_axis(Axis(0))).expect("logits");
        let some = picked
            .logits(x.view().insert_axis(Axis(0)))
            .expect("logits");
        assert_eq!(some[[0, 0]], all[[0, 2]]);
        assert_eq!(some[[0, 1]], all[[0, 0]]);
        assert!(head
            .select_classes(&[0, 0], &["x".into(), "y".into()])
            .is_err());
        assert!(head.select_classes(&[5], &["x".into()]).is_err());
    }
}
