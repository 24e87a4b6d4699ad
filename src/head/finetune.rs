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
//! - With no device samples at all the result is the imported head itself (restricted to the
//!   classes kept), so it predicts exactly as `fieldtune predict` with that head file.

use ndarray::{s, Array2, Axis};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::batch::Workspace;
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
        if let HeadKind::Mlp { .. } = head.kind {
            debug_assert_eq!(head.params.layers[0], start.layers[0]);
        }
        Ok(head)
    }
}
