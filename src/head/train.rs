//! Full training of a head from a labelled data set (also the device's `retrain`).
//!
//! Procedure:
//! 1. Validation data: the given `val`, else a stratified hold-out of `validation_fraction` of `train`
//!    when every class has at least [`MIN_PER_CLASS_FOR_HOLDOUT`] samples, else none (tiny data sets:
//!    every sample is needed for fitting). With a hold-out the head is kept as trained on the rest
//!    (no refit), so its calibration stays honest.
//! 2. Standardisation fitted on the fitting set (shrunk, see `standardize`).
//! 3. Mini-batch SGD (momentum, warm-up + cosine learning rate) on class-weighted cross-entropy + L2,
//!    shuffled each epoch by a ChaCha generator seeded from `seed`: same inputs, same bits.
//! 4. Early stopping: after each epoch the validation loss is measured; the weights of the best epoch
//!    are kept, and training stops after `patience` epochs without improvement.
//! 5. Prototypes from the fitting set; temperature and unknown threshold from the validation data, or
//!    without any, temperature 1 and a threshold from leave-one-out prototype scores on the fitting set.

use std::borrow::Cow;

use ndarray::{s, Array2, Axis};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::calibration::{acceptance_threshold, Calibration};
use super::classifier::{calibration_from, Head};
use super::dataset::Dataset;
use super::error::HeadError;
use super::hyper::HyperParams;
use super::loss::{class_weights, cross_entropy};
use super::params::{Layer, Params};
use super::prototypes::Prototypes;
use super::sgd::{learning_rate_at, Sgd};
use super::standardize::Standardizer;
use super::HeadKind;

/// A hold-out is only carved from `train` when every class has at least this many samples.
pub const MIN_PER_CLASS_FOR_HOLDOUT: usize = 8;

/// What one epoch did, passed to the `on_epoch` callback.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EpochReport {
    /// 1-based epoch number.
    pub epoch: usize,
    /// Mean training loss over the epoch (weighted cross-entropy + L2).
    pub train_loss: f32,
    /// Validation loss (weighted cross-entropy), if there is validation data.
    pub val_loss: Option<f32>,
    /// Validation accuracy, if there is validation data.
    pub val_accuracy: Option<f32>,
    /// Learning rate at the end of the epoch.
    pub learning_rate: f32,
}

/// Where the validation data came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValidationSource {
    /// The caller's `val` set.
    Given,
    /// A stratified hold-out of this many training samples.
    HeldOut(usize),
    /// None: the data set was too small to spare samples.
    None,
}

/// The outcome of a training run.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainReport {
    /// Epochs actually run (≤ `epochs`, fewer when stopped early).
    pub epochs_run: usize,
    /// 1-based epoch whose weights were kept.
    pub best_epoch: usize,
    /// Validation accuracy of the kept weights, if there is validation data.
    pub best_val_accuracy: Option<f32>,
    /// Validation loss of the kept weights, if there is validation data.
    pub best_val_loss: Option<f32>,
    /// Training loss of the last epoch run.
    pub final_train_loss: f32,
    /// Where the validation data came from.
    pub validation: ValidationSource,
    /// Samples the weights were fitted on.
    pub fit_samples: usize,
    /// The calibration stored in the head.
    pub calibration: Calibration,
}

impl HeadKind {
    /// Checks the kind's own parameters.
    ///
    /// # Errors
    /// [`HeadError::InvalidHiddenWidth`] for an MLP with 0 hidden units.
    pub fn check(self) -> Result<HeadKind, HeadError> {
        match self {
            HeadKind::Mlp { hidden: 0 } => Err(HeadError::InvalidHiddenWidth(0)),
            k => Ok(k),
        }
    }
}

fn accuracy(logits: &Array2<f32>, labels: &[usize]) -> f32 {
    let right = logits
        .axis_iter(Axis(0))
        .zip(labels)
        .filter(|(row, &y)| {
            let best = row
                .iter()
                .enumerate()
                .fold(
                    (0, f32::NEG_INFINITY),
                    |b, (i, &v)| if v > b.1 { (i, v) } else { b },
                );
            best.0 == y
        })
        .count();
    right as f32 / labels.len().max(1) as f32
}

/// See the module docs.
pub(super) fn train(
    train: &Dataset,
    val: Option<&Dataset>,
    kind: HeadKind,
    hyper: &HyperParams,
    on_epoch: &mut dyn FnMut(&EpochReport),
) -> Result<(Head, TrainReport), HeadError> {
    train.check("train")?;
    let kind = kind.check()?;
    let dim = train.dim();
    if let Some(v) = val {
        v.check("val")?;
        if v.dim() != dim {
            return Err(HeadError::DimensionMismatch {
                expected: dim,
                got: v.dim(),
            });
        }
        if v.classes != train.classes {
            return Err(HeadError::ClassListMismatch {
                train: train.classes.clone(),
                val: v.classes.clone(),
            });
        }
    }
    let mut rng = ChaCha8Rng::seed_from_u64(hyper.seed());
    let k = train.classes.len();

    // 1. Which rows fit the weights, which validate.
    let holdout;
    let (fit, val, source): (Cow<Dataset>, Option<Cow<Dataset>>, _) = match val {
        Some(v) => (
            Cow::Borrowed(train),
            Some(Cow::Borrowed(v)),
            ValidationSource::Given,
        ),
        None if train
            .class_counts()
            .iter()
            .all(|&c| c >= MIN_PER_CLASS_FOR_HOLDOUT) =>
        {
            let (rest, held) = train.stratified_split(hyper.validation_fraction(), &mut rng);
            holdout = held.len();
            (
                Cow::Owned(train.select(&rest)),
                Some(Cow::Owned(train.select(&held))),
                ValidationSource::HeldOut(holdout),
            )
        }
        None => (Cow::Borrowed(train), None, ValidationSource::None),
    };

    // 2. Standardise.
    let standardizer = Standardizer::fit(fit.features.view());
    let z = standardizer.transform(fit.features.view());
    let zv = val
        .as_ref()
        .map(|v| standardizer.transform(v.features.view()));
    let weights = class_weights(&fit.class_counts(), hyper.class_balanced());
    let val_weights = val
        .as_ref()
        .map(|v| class_weights(&v.class_counts(), hyper.class_balanced()));

    // 3. Initialise.
    let mut params = match kind {
        HeadKind::Linear => Params {
            layers: vec![Layer::zeros(k, dim)],
        },
        HeadKind::Mlp { hidden } => Params {
            layers: vec![
                Layer::he(hidden, dim, &mut rng),
                Layer::he(k, hidden, &mut rng),
            ],
        },
    };
    let mut grad = params.zeros_like();
    let mut sgd = Sgd::new(&params, hyper.momentum(), hyper.nesterov());
    let n = z.nrows();
    let bs = hyper.batch_size().min(n);
    let batches = n.div_ceil(bs);
    let mut order: Vec<usize> = (0..n).collect();
    let mut xb = Array2::<f32>::zeros((bs, dim));
    let mut yb = vec![0usize; bs];

    let mut best: Option<(f32, f32, usize, Params)> = None; // (val loss, val acc, epoch, weights)
    let mut since_best = 0;
    let mut epochs_run = 0;
    let mut final_train_loss = f32::NAN;
    let mut lr = 0.0;
    for epoch in 0..hyper.epochs() {
        order.shuffle(&mut rng);
        let mut loss_sum = 0.0f64;
        for (bi, chunk) in order.chunks(bs).enumerate() {
            let m = chunk.len();
            for (r, &i) in chunk.iter().enumerate() {
                xb.row_mut(r).assign(&z.row(i));
                yb[r] = fit.labels[i];
            }
            let loss = params.loss_and_grad(
                xb.slice(s![..m, ..]),
                &yb[..m],
                &weights,
                hyper.weight_decay(),
                &mut grad,
            );
            lr = learning_rate_at(
                epoch as f32 + bi as f32 / batches as f32,
                hyper.learning_rate(),
                hyper.warmup_epochs(),
                hyper.epochs(),
            );
            sgd.step(&mut params, &grad, lr);
            loss_sum += loss as f64 * m as f64;
        }
        epochs_run = epoch + 1;
        final_train_loss = (loss_sum / n as f64) as f32;
        if !final_train_loss.is_finite() {
            return Err(HeadError::Diverged {
                epoch: epochs_run,
                learning_rate: hyper.learning_rate(),
            });
        }
        let (val_loss, val_acc) = match (&val, &zv, &val_weights) {
            (Some(v), Some(zv), Some(w)) => {
                let logits = params.logits(zv.view());
                (
                    Some(cross_entropy(logits.view(), &v.labels, w)),
                    Some(accuracy(&logits, &v.labels)),
                )
            }
            _ => (None, None),
        };
        on_epoch(&EpochReport {
            epoch: epochs_run,
            train_loss: final_train_loss,
            val_loss,
            val_accuracy: val_acc,
            learning_rate: lr,
        });
        if let (Some(vl), Some(va)) = (val_loss, val_acc) {
            if best.as_ref().is_none_or(|b| vl < b.0) {
                best = Some((vl, va, epochs_run, params.clone()));
                since_best = 0;
            } else {
                since_best += 1;
                if hyper.patience() > 0 && since_best >= hyper.patience() {
                    break;
                }
            }
        }
    }
    let (best_val_loss, best_val_accuracy, best_epoch) = match best {
        Some((vl, va, e, p)) => {
            params = p;
            (Some(vl), Some(va), e)
        }
        None => (None, None, epochs_run),
    };

    // 5. Prototypes and calibration.
    let prototypes = Prototypes::fit(z.view(), &fit.labels, k);
    let calibration = match (&val, &zv) {
        (Some(v), Some(zv)) => {
            let logits = params.logits(zv.view());
            let scores: Vec<f32> = zv
                .axis_iter(Axis(0))
                .map(|r| prototypes.nearest(r).0)
                .collect();
            calibration_from(logits.view(), &v.labels, &scores, hyper.target_acceptance())
        }
        _ => {
            let scores: Vec<f32> = z
                .axis_iter(Axis(0))
                .zip(&fit.labels)
                .map(|(r, &y)| prototypes.nearest_excluding(r, Some(y)).0)
                .collect();
            let (unknown_threshold, accepted_fraction) =
                acceptance_threshold(&scores, hyper.target_acceptance());
            Calibration {
                unknown_threshold,
                accepted_fraction,
                samples: scores.len(),
                ..Calibration::default()
            }
        }
    };
    let center = params
        .penultimate(z.view())
        .mean_axis(Axis(0))
        .unwrap_or_else(|| {
            ndarray::Array1::zeros(match kind {
                HeadKind::Linear => dim,
                HeadKind::Mlp { hidden } => hidden,
            })
        });
    let head = Head {
        dim,
        kind,
        hyper: hyper.clone(),
        classes: train.classes.clone(),
        standardizer,
        params,
        prototypes,
        calibration,
        online_scores: Vec::new(),
        center,
        center_count: n as u64,
    };
    let report = TrainReport {
        epochs_run,
        best_epoch,
        best_val_accuracy,
        best_val_loss,
        final_train_loss,
        validation: source,
        fit_samples: n,
        calibration,
    };
    Ok((head, report))
}
