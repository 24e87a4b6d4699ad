//! Full training of a head from a labelled data set (also the device's `retrain`).
//!
//! Procedure:
//! 1. Validation data: the given `val`, else a stratified hold-out of `validation_fraction` of `train`
//!    when every class has at least [`MIN_PER_CLASS_FOR_HOLDOUT`] samples, else none (tiny data sets:
//!    every sample is needed for fitting).
//! 2. Standardisation fitted on the fitting set (shrunk, see `standardize`).
//! 3. Mini-batch SGD (momentum, warm-up + cosine learning rate) on class-weighted cross-entropy + L2,
//!    shuffled each epoch by a ChaCha generator seeded from `seed`: same inputs, same bits.
//! 4. Epochs: by default (`patience` 0) the schedule runs to its end and its end is kept (the fit
//!    converges; the weight decay, not the stopping epoch, regularises). The hold-out run then
//!    chooses nothing: it is the shorter calibration run ([`CALIBRATION_EPOCHS`], a schedule of
//!    the same shape), whose weights give the temperature and the report's validation figures,
//!    and the refit of step 6, whose epoch count is known, runs beside it on a thread of its own.
//!    Both read one matrix, every row standardised for the refit; the calibration run maps the
//!    rows it reads onto its own standardisation (see `calibrated`), so a retrain holds its
//!    training rows once ([`Head::train_joined`] takes them already in one matrix).
//!    With `patience` > 0, early
//!    stopping: after each epoch the validation loss is measured; the epoch with the lowest one
//!    is the best, and training stops after `patience` epochs without improvement.
//!    The SGD starts from the class-mean prior (`fewshot`: the imprinted prototype head) and its
//!    weight decay pulls toward that prior, which is also epoch 0 of early stopping: with few
//!    labels the head stays the class means unless validation says moving away pays; with fewer
//!    than [`MIN_VAL_PER_CLASS_TO_MOVE`] validation samples in some class it stays them.
//! 5. Prototypes from the fitting set; temperature and unknown threshold from the validation data
//!    (data those weights never saw), or without any, temperature 1 and a threshold from
//!    leave-one-out prototype scores on the fitting set. With fewer than
//!    [`MIN_CALIBRATION_SAMPLES`] validation samples the temperature stays 1 and the threshold is
//!    set on validation and leave-one-out scores together.
//! 6. Refit: with validation data, the weights are trained again from the prior on fitting and
//!    validation data together, for the best epoch count of the same schedule (the whole schedule
//!    with `patience` 0), drawing the shuffles it would draw after a full-length hold-out run
//!    (so the weights are the bits they were when the hold-out run was that long), with standardisation
//!    and prototypes refitted on the union. The refit's weights are the mean of its iterates over
//!    the second half of its epochs (tail averaging): at the best epoch the schedule's learning rate
//!    has not decayed, so the last iterate alone carries the shuffle's noise. Chosen on corn4's
//!    validation split (train with a held-out part, judged on val, seeds 1-6): linear 93.53 % mean
//!    (92.65-94.45) without, 93.80 % (93.10-94.30) with; MLP 94.08 % / 94.10 %. The validation
//!    samples are labelled data a device or a user paid for; leaving them out of the final weights
//!    costs accuracy (on corn4 a few tenths of a percent). The calibration of step 5 is kept: measuring it on samples the final weights were
//!    fitted on would make the unknown threshold too tight.

use std::borrow::Cow;
use std::sync::Arc;

use ndarray::{s, Array1, Array2, ArrayView1, ArrayView2, ArrayViewMut1, Axis};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::batch::Workspace;
use super::calibration::{acceptance_threshold, calibration_from, Calibration};
use super::classifier::Head;
use super::dataset::Dataset;
use super::error::HeadError;
use super::fewshot::{prior as class_mean_prior, Prior};
use super::hyper::HyperParams;
use super::kernels::{Rows, MAX_NARROW_OUTPUTS};
use super::loss::{class_weights, cross_entropy};
use super::params::{Layer, Params};
use super::pool::{Pool, MAX_THREADS};
use super::prototypes::Prototypes;
use super::sgd::{learning_rate_at, Sgd};
use super::standardize::Standardizer;
use super::wide;
use super::HeadKind;

/// A hold-out is only carved from `train` when every class has at least this many samples.
pub const MIN_PER_CLASS_FOR_HOLDOUT: usize = 8;

/// With fewer validation samples than this in some class, the head is the class-mean prior
/// (validation that small cannot show that training beyond it helps; measured with `curve` at one
/// label per class, training on it lost up to 0.4 points to the class means on two of three data
/// sets and gained on the third).
pub const MIN_VAL_PER_CLASS_TO_MOVE: usize = 2;

/// With fewer validation samples than this, the temperature is not fitted (left at 1) and the
/// unknown threshold is set on the validation scores pooled with the fitting set's leave-one-out
/// scores: a 95 % quantile of four numbers is their maximum.
pub const MIN_CALIBRATION_SAMPLES: usize = 20;

/// Epochs of the calibration run: when the schedule runs to its end (`patience` 0), the hold-out
/// run no longer chooses the refit's epoch count; what is left of its work is the softmax
/// temperature (fitted on its logits of the validation data) and the validation figures of the
/// report, and a shorter schedule of the same shape gives those. (The unknown threshold comes
/// from the prototypes, which need no run.)
pub const CALIBRATION_EPOCHS: usize = 10;

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
    /// Samples the weights were fitted on while the validation data chose the epoch count.
    pub fit_samples: usize,
    /// Samples of the final refit (fitting plus validation data), when there was validation data.
    pub refit_samples: Option<usize>,
    /// Epochs of the final refit, when there was one: the best epoch of early stopping, or the
    /// whole schedule when it runs to its end (then the hold-out run was the shorter
    /// calibration run, `epochs_run` epochs).
    pub refit_epochs: Option<usize>,
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

fn accuracy(logits: ArrayView2<f32>, labels: &[usize]) -> f32 {
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

impl Head {
    /// Trains a head from scratch on `train` (see [`super::train`] for the procedure),
    /// calling `on_epoch` after every epoch. This is also the device's full `retrain` from stored
    /// features.
    ///
    /// # Errors
    /// Invalid data sets or kind, mismatched validation set, or divergence.
    pub fn train(
        train: &Dataset,
        val: Option<&Dataset>,
        kind: HeadKind,
        hyper: &HyperParams,
        on_epoch: &mut dyn FnMut(&EpochReport),
    ) -> Result<(Head, TrainReport), HeadError> {
        train_head(
            Cow::Borrowed(train),
            val.map(Cow::Borrowed),
            kind,
            hyper,
            1,
            on_epoch,
        )
    }

    /// [`Head::train`] with the MLP's hidden layer split over `threads` threads (at most
    /// [`MAX_THREADS`]; [`Head::train`] takes one, beside the refit's own thread): its products
    /// and update, on a processor with AVX-512, each thread taking its own hidden units, so the
    /// result is the same bits whatever `threads`. A step lasts about a quarter of a
    /// millisecond, so the threads meet thousands of times a retrain: on cores shared with other
    /// work that costs more than it gains (README, "Retrain speed"); see `fieldtune bench`.
    ///
    /// # Errors
    /// As [`Head::train`].
    pub fn train_on_threads(
        train: &Dataset,
        val: Option<&Dataset>,
        kind: HeadKind,
        hyper: &HyperParams,
        threads: usize,
        on_epoch: &mut dyn FnMut(&EpochReport),
    ) -> Result<(Head, TrainReport), HeadError> {
        train_head(
            Cow::Borrowed(train),
            val.map(Cow::Borrowed),
            kind,
            hyper,
            threads.min(MAX_THREADS),
            on_epoch,
        )
    }

    /// Same as [`Head::train`]: the name the device uses for retraining from its stored features.
    ///
    /// # Errors
    /// As [`Head::train`].
    pub fn retrain(
        train: &Dataset,
        val: Option<&Dataset>,
        kind: HeadKind,
        hyper: &HyperParams,
        on_epoch: &mut dyn FnMut(&EpochReport),
    ) -> Result<(Head, TrainReport), HeadError> {
        Self::train(train, val, kind, hyper, on_epoch)
    }

    /// [`Head::train`] on one matrix of the training rows then the validation rows, which it
    /// consumes: `rows[..val_from]` are fitted on and `rows[val_from..]` validate (with
    /// `val_from` at the end there are none, and [`Head::train`]'s hold-out rules apply). The
    /// same head, bit for bit, as [`Head::train`] given the two parts apart, without the copy of
    /// every row that joining them takes: the device's retrain, whose training set is the largest
    /// matrix it holds, is held once while it trains.
    ///
    /// # Errors
    /// As [`Head::train`]; `val_from` 0 is an empty training set.
    pub fn train_joined(
        rows: Dataset,
        val_from: usize,
        kind: HeadKind,
        hyper: &HyperParams,
    ) -> Result<(Head, TrainReport), HeadError> {
        if val_from >= rows.len() {
            return train_head(Cow::Owned(rows), None, kind, hyper, 1, &mut |_| {});
        }
        rows.check("train")?;
        let kind = kind.check()?;
        if val_from == 0 {
            return Err(HeadError::EmptyDataset("train"));
        }
        let split = Split {
            rows: Cow::Owned(rows),
            fit: val_from,
            source: ValidationSource::Given,
        };
        let rng = ChaCha8Rng::seed_from_u64(hyper.seed());
        train_split(split, kind, hyper, 1, rng, &mut |_| {})
    }
}

/// See the module docs.
fn train_head(
    train: Cow<'_, Dataset>,
    val: Option<Cow<'_, Dataset>>,
    kind: HeadKind,
    hyper: &HyperParams,
    threads: usize,
    on_epoch: &mut dyn FnMut(&EpochReport),
) -> Result<(Head, TrainReport), HeadError> {
    train.check("train")?;
    let kind = kind.check()?;
    if let Some(v) = &val {
        v.check("val")?;
        if v.dim() != train.dim() {
            return Err(HeadError::DimensionMismatch {
                expected: train.dim(),
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

    // 1. Which rows fit the weights, which validate: one matrix of the fitting rows then the
    // validation rows, the order the refit takes them in.
    let split = match val {
        Some(v) => Split {
            fit: train.len(),
            rows: Cow::Owned(train.concat(&v)),
            source: ValidationSource::Given,
        },
        None if train
            .class_counts()
            .iter()
            .all(|&c| c >= MIN_PER_CLASS_FOR_HOLDOUT) =>
        {
            let (rest, held) = train.stratified_split(hyper.validation_fraction(), &mut rng);
            let order: Vec<usize> = rest.iter().chain(&held).copied().collect();
            Split {
                fit: rest.len(),
                rows: Cow::Owned(train.select(&order)),
                source: ValidationSource::HeldOut(held.len()),
            }
        }
        None => Split {
            fit: train.len(),
            rows: train,
            source: ValidationSource::None,
        },
    };
    train_split(split, kind, hyper, threads, rng, on_epoch)
}

/// The rows of a training run in one matrix: `rows[..fit]` are fitted on, the rest validate
/// (none: no validation), and the refit takes them all in this order.
struct Split<'a> {
    rows: Cow<'a, Dataset>,
    fit: usize,
    source: ValidationSource,
}

/// Steps 2-6 on rows already split (see the module docs), with `rng` where step 1 left it.
fn train_split(
    split: Split<'_>,
    kind: HeadKind,
    hyper: &HyperParams,
    threads: usize,
    rng: ChaCha8Rng,
    on_epoch: &mut dyn FnMut(&EpochReport),
) -> Result<(Head, TrainReport), HeadError> {
    if split.fit < split.rows.len() && hyper.patience() == 0 {
        calibrated(split, kind, hyper, threads, rng, on_epoch)
    } else {
        early_stopping(split, kind, hyper, threads, rng, on_epoch)
    }
}

/// Samples per class of `labels` (classes `0..k`).
fn counts_of(labels: &[usize], k: usize) -> Vec<usize> {
    let mut counts = vec![0; k];
    for &y in labels {
        if let Some(c) = counts.get_mut(y) {
            *c += 1;
        }
    }
    counts
}

/// Whether some class has too few validation rows for the head to move away from the prior
/// (step 4a).
fn too_few_to_move(val_labels: &[usize], k: usize) -> bool {
    counts_of(val_labels, k)
        .iter()
        .any(|&c| c < MIN_VAL_PER_CLASS_TO_MOVE)
}

/// Steps 2-6 when the schedule runs to its end (`patience` 0) and there are validation rows: the
/// calibration run (step 4, [`CALIBRATION_EPOCHS`]) and the refit on every row (step 6) run side
/// by side, on ONE matrix: the rows standardised by the refit's statistics. The calibration run
/// reads them through the per-dimension affine map onto its own standardisation (fitted on the
/// fitting rows: `z_cal = z_all · a + c`, the same values up to rounding), so a retrain holds its
/// training rows once. Everything the calibration needs from its own standardisation without
/// the run (validation rows, prior, prototypes, leave-one-out scores) is made from the raw rows
/// before they are standardised in place. The refit's weights do not depend on the calibration
/// run: its generator is the one the sequential order would hand it (the hold-out run's
/// shuffles drawn, see [`skip_shuffles`]).
fn calibrated(
    split: Split<'_>,
    kind: HeadKind,
    hyper: &HyperParams,
    threads: usize,
    mut rng: ChaCha8Rng,
    on_epoch: &mut dyn FnMut(&EpochReport),
) -> Result<(Head, TrainReport), HeadError> {
    let Split {
        rows,
        fit: fit_len,
        source,
    } = split;
    let Dataset {
        features,
        labels,
        classes,
    } = rows.into_owned();
    let k = classes.len();
    let dim = features.ncols();
    let (fit_labels, val_labels) = labels.split_at(fit_len);

    // 2. The calibration run's standardisation and everything made from it, from the raw rows.
    let (calibration_std, zv, prior, prototypes, loo_scores) = {
        let x_fit = features.slice(s![..fit_len, ..]);
        let x_val = features.slice(s![fit_len.., ..]);
        let standardizer = Standardizer::fit(x_fit);
        let zv = standardizer.transform(x_val);
        let prior = class_mean_prior(kind, x_fit, fit_labels, k, &standardizer, &mut rng);
        let mut z = Array1::<f32>::zeros(dim);
        let mut prototypes = Prototypes::fit(Array2::<f32>::zeros((0, dim)).view(), &[], k);
        for (row, &y) in x_fit.axis_iter(Axis(0)).zip(fit_labels) {
            standardizer.transform_into(row, z.view_mut());
            prototypes.add(z.view(), y);
        }
        // With a few validation rows the threshold also takes the fitting rows' leave-one-out
        // scores (step 5).
        let loo_scores = (val_labels.len() < MIN_CALIBRATION_SAMPLES).then(|| {
            x_fit
                .axis_iter(Axis(0))
                .zip(fit_labels)
                .map(|(row, &y)| {
                    standardizer.transform_into(row, z.view_mut());
                    prototypes.nearest_excluding(z.view(), Some(y)).0
                })
                .collect::<Vec<f32>>()
        });
        (standardizer, zv, prior, prototypes, loo_scores)
    };
    let weights = class_weights(&counts_of(fit_labels, k), hyper.class_balanced());
    let val_weights = class_weights(&counts_of(val_labels, k), hyper.class_balanced());
    // Step 4a below: with too little validation data the head stays the class-mean prior.
    let stays_prior = too_few_to_move(val_labels, k) && prior.is_some();

    // 6 (ahead). The refit's generator, standardisation, weights and prior, then every row
    // standardised in place: the one matrix both runs read.
    let refit_epochs = if stays_prior { 0 } else { hyper.epochs() };
    let mut refit_rng = rng.clone();
    skip_shuffles(&mut refit_rng, fit_len, hyper.epochs());
    let refit_std = Standardizer::fit(features.view());
    let refit_weights = class_weights(&counts_of(&labels, k), hyper.class_balanced());
    let refit_prior = class_mean_prior(
        kind,
        features.view(),
        &labels,
        k,
        &refit_std,
        &mut refit_rng,
    );
    let z = refit_std.transform_owned(features);
    let to_calibration = Affine::between(&refit_std, &calibration_std);

    let refit_run = |rng: &mut ChaCha8Rng| {
        sgd_run(
            FitData {
                z: z.view(),
                labels: &labels,
                weights: &refit_weights,
                affine: None,
            },
            None,
            kind,
            k,
            refit_prior.as_ref(),
            hyper,
            Schedule::full(hyper).cut(refit_epochs),
            true,
            threads,
            rng,
            &mut |_| {},
        )
    };
    let (first, refit) = std::thread::scope(|scope| -> Result<_, HeadError> {
        let background = std::thread::Builder::new()
            .name("fieldtune-refit".into())
            .spawn_scoped(scope, || {
                let mut rng = refit_rng.clone();
                refit_run(&mut rng)
            })
            .ok();
        let first = sgd_run(
            FitData {
                z: z.slice(s![..fit_len, ..]),
                labels: fit_labels,
                weights: &weights,
                affine: Some(&to_calibration),
            },
            Some(FitData {
                z: zv.view(),
                labels: val_labels,
                weights: &val_weights,
                affine: None,
            }),
            kind,
            k,
            prior.as_ref(),
            hyper,
            Schedule::calibration(hyper, if stays_prior { 0 } else { CALIBRATION_EPOCHS }),
            false,
            threads,
            &mut rng,
            on_epoch,
        )?;
        let refit = match background {
            Some(handle) => match handle.join() {
                Ok(refit) => refit?,
                Err(panic) => std::panic::resume_unwind(panic),
            },
            // No thread to be had: the refit runs after the calibration run.
            None => refit_run(&mut refit_rng.clone())?,
        };
        Ok((first, refit))
    })?;
    let epochs_run = first.epochs_run;
    let final_train_loss = first.final_train_loss;
    let stay = prior.as_ref().filter(|_| stays_prior).map(|p| {
        let val = FitData {
            z: zv.view(),
            labels: val_labels,
            weights: &val_weights,
            affine: None,
        };
        (p, val)
    });
    let Kept {
        params,
        best_val_loss,
        best_val_accuracy,
        best_epoch,
    } = Kept::of(first, stay);
    // 5. Calibration, measured on data these weights never saw.
    let calibration = calibrate(
        &params,
        zv.view(),
        val_labels,
        &prototypes,
        loo_scores,
        hyper,
    );
    let refit_prototypes = Prototypes::fit(z.view(), &labels, k);
    let center = center_of(&refit.params, z.view(), kind, dim);
    let head = Head {
        dim,
        kind,
        hyper: hyper.clone(),
        classes,
        standardizer: refit_std,
        params: refit.params,
        prototypes: refit_prototypes,
        calibration,
        online_scores: Vec::new(),
        center,
        center_count: z.nrows() as u64,
    };
    let report = TrainReport {
        epochs_run,
        best_epoch,
        best_val_accuracy,
        best_val_loss,
        final_train_loss,
        validation: source,
        fit_samples: fit_len,
        refit_samples: Some(labels.len()),
        refit_epochs: Some(refit_epochs),
        calibration,
    };
    Ok((head, report))
}

/// The weights a hold-out run keeps and their validation figures (step 4a included).
struct Kept {
    params: Params,
    best_val_loss: Option<f32>,
    best_val_accuracy: Option<f32>,
    /// 1-based epoch of the kept weights; 0 for the prior.
    best_epoch: usize,
}

impl Kept {
    /// The run's kept weights, or, with `stay` (the prior and the validation rows), the
    /// class-mean prior itself: 4a. A single validation image of a
    /// class cannot tell a move away from the class means from luck, so with so little
    /// validation data the head stays the prior, measured on those rows.
    fn of(run: SgdRun, stay: Option<(&Prior, FitData)>) -> Kept {
        if let Some((prior, val)) = stay {
            let logits = prior.start.logits(val.z);
            return Kept {
                best_val_loss: Some(cross_entropy(logits.view(), val.labels, val.weights)),
                best_val_accuracy: Some(accuracy(logits.view(), val.labels)),
                best_epoch: 0,
                params: prior.start.clone(),
            };
        }
        let (best_val_loss, best_val_accuracy, best_epoch) = match run.best {
            Some((vl, va, e)) => (Some(vl), Some(va), e),
            None => (None, None, run.epochs_run),
        };
        Kept {
            params: run.params,
            best_val_loss,
            best_val_accuracy,
            best_epoch,
        }
    }
}

/// Step 5 with validation rows: temperature and unknown threshold from the validation rows `zv`
/// (standardised like the fitting rows) and the weights `params` fitted without them; with
/// `loo_scores` (fewer than [`MIN_CALIBRATION_SAMPLES`] validation rows: the fitting rows'
/// leave-one-out prototype scores), the temperature stays 1 and the threshold is set on both.
fn calibrate(
    params: &Params,
    zv: ArrayView2<f32>,
    val_labels: &[usize],
    prototypes: &Prototypes,
    loo_scores: Option<Vec<f32>>,
    hyper: &HyperParams,
) -> Calibration {
    let mut scores: Vec<f32> = zv
        .axis_iter(Axis(0))
        .map(|r| prototypes.nearest(r).0)
        .collect();
    match loo_scores {
        // A few validation samples: their quantile is noise, so the leave-one-out scores of the
        // fitting set join them; and the temperature stays 1 (the class-mean prior's scale was
        // already fitted on leave-one-out logits).
        Some(loo) => {
            scores.extend(loo);
            let (unknown_threshold, accepted_fraction) =
                acceptance_threshold(&scores, hyper.target_acceptance());
            Calibration {
                unknown_threshold,
                accepted_fraction,
                samples: scores.len(),
                ..Calibration::default()
            }
        }
        None => {
            let logits = params.logits(zv);
            calibration_from(
                logits.view(),
                val_labels,
                &scores,
                hyper.target_acceptance(),
            )
        }
    }
}

/// Steps 2-6 with early stopping (`patience` > 0) or without validation rows: the hold-out run
/// on the fitting rows' own standardised copy, then (with validation rows) the refit on every
/// row for the best epoch count.
fn early_stopping(
    split: Split<'_>,
    kind: HeadKind,
    hyper: &HyperParams,
    threads: usize,
    mut rng: ChaCha8Rng,
    on_epoch: &mut dyn FnMut(&EpochReport),
) -> Result<(Head, TrainReport), HeadError> {
    let Split {
        rows,
        fit: fit_len,
        source,
    } = split;
    let k = rows.classes.len();
    let dim = rows.dim();
    let has_val = fit_len < rows.len();
    let (fit_labels, val_labels) = rows.labels.split_at(fit_len);
    let x_fit = rows.features.slice(s![..fit_len, ..]);

    // 2. Standardise on the fitting rows.
    let standardizer = Standardizer::fit(x_fit);
    let zv = has_val.then(|| standardizer.transform(rows.features.slice(s![fit_len.., ..])));
    let weights = class_weights(&counts_of(fit_labels, k), hyper.class_balanced());
    let val_weights = class_weights(&counts_of(val_labels, k), hyper.class_balanced());
    let prior = class_mean_prior(kind, x_fit, fit_labels, k, &standardizer, &mut rng);
    let z = standardizer.transform(x_fit);

    // 3 and 4. SGD from the class-mean prior, with early stopping on the validation rows.
    let first = sgd_run(
        FitData {
            z: z.view(),
            labels: fit_labels,
            weights: &weights,
            affine: None,
        },
        zv.as_ref().map(|zv| FitData {
            z: zv.view(),
            labels: val_labels,
            weights: &val_weights,
            affine: None,
        }),
        kind,
        k,
        prior.as_ref(),
        hyper,
        Schedule::full(hyper),
        false,
        threads,
        &mut rng,
        on_epoch,
    )?;
    let epochs_run = first.epochs_run;
    let final_train_loss = first.final_train_loss;
    let stay = prior
        .as_ref()
        .zip(zv.as_ref())
        .filter(|_| too_few_to_move(val_labels, k))
        .map(|(p, zv)| {
            let val = FitData {
                z: zv.view(),
                labels: val_labels,
                weights: &val_weights,
                affine: None,
            };
            (p, val)
        });
    let Kept {
        params,
        best_val_loss,
        best_val_accuracy,
        best_epoch,
    } = Kept::of(first, stay);
    // 5. Prototypes and calibration, measured on data these weights never saw.
    let prototypes = Prototypes::fit(z.view(), fit_labels, k);
    let calibration = match &zv {
        Some(zv) => {
            let loo_scores = (val_labels.len() < MIN_CALIBRATION_SAMPLES).then(|| {
                z.axis_iter(Axis(0))
                    .zip(fit_labels)
                    .map(|(r, &y)| prototypes.nearest_excluding(r, Some(y)).0)
                    .collect()
            });
            calibrate(
                &params,
                zv.view(),
                val_labels,
                &prototypes,
                loo_scores,
                hyper,
            )
        }
        None => {
            let scores: Vec<f32> = z
                .axis_iter(Axis(0))
                .zip(fit_labels)
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

    // 6. Refit on every row for the epoch count the validation rows chose.
    let refit = if has_val {
        Some(refit_on(
            rows.as_ref(),
            kind,
            hyper,
            best_epoch,
            threads,
            &mut rng,
        )?)
    } else {
        None
    };
    let (standardizer, params, prototypes, center, center_count, refit_samples) = match refit {
        Some(r) => (
            r.standardizer,
            r.params,
            r.prototypes,
            r.center,
            r.samples,
            Some(r.samples),
        ),
        None => {
            let center = center_of(&params, z.view(), kind, dim);
            (standardizer, params, prototypes, center, z.nrows(), None)
        }
    };
    let head = Head {
        dim,
        kind,
        hyper: hyper.clone(),
        classes: rows.classes.clone(),
        standardizer,
        params,
        prototypes,
        calibration,
        online_scores: Vec::new(),
        center,
        center_count: center_count as u64,
    };
    let report = TrainReport {
        epochs_run,
        best_epoch,
        best_val_accuracy,
        best_val_loss,
        final_train_loss,
        validation: source,
        fit_samples: fit_len,
        refit_samples,
        refit_epochs: refit_samples.map(|_| best_epoch),
        calibration,
    };
    Ok((head, report))
}

/// The per-dimension map `z · scale + offset` from one standardisation's values onto another's,
/// for the same raw rows: `(x − m₁)·s₁ · (s₂/s₁) + (m₁ − m₂)·s₂ = (x − m₂)·s₂`.
struct Affine {
    scale: Array1<f32>,
    offset: Array1<f32>,
}

impl Affine {
    /// The map from `from`'s standardised values onto `to`'s.
    fn between(from: &Standardizer, to: &Standardizer) -> Affine {
        let scale = to.inv_std() / from.inv_std();
        let offset = (from.mean() - to.mean()) * to.inv_std();
        Affine { scale, offset }
    }

    /// Writes row `z` mapped into `out` (same length).
    fn apply_into(&self, z: ArrayView1<f32>, mut out: ArrayViewMut1<f32>) {
        ndarray::Zip::from(&mut out)
            .and(&z)
            .and(&self.scale)
            .and(&self.offset)
            .for_each(|o, &z, &a, &c| *o = z * a + c);
    }
}

/// Standardised rows, their labels and the per-class loss weights; with `affine`, the rows the
/// SGD sees are `z` mapped by it (see [`calibrated`]).
struct FitData<'a> {
    z: ArrayView2<'a, f32>,
    labels: &'a [usize],
    weights: &'a [f32],
    affine: Option<&'a Affine>,
}

/// What one SGD run produced.
struct SgdRun {
    /// The weights kept: those of the best validation epoch, else the last epoch's.
    params: Params,
    epochs_run: usize,
    /// (validation loss, validation accuracy, 1-based epoch) of the kept weights.
    best: Option<(f32, f32, usize)>,
    final_train_loss: f32,
}

/// Fresh weights for a head of `kind` with `k` classes on `dim` inputs.
fn initial_params(kind: HeadKind, k: usize, dim: usize, rng: &mut ChaCha8Rng) -> Params {
    match kind {
        HeadKind::Linear => Params {
            layers: vec![Layer::zeros(k, dim)],
        },
        HeadKind::Mlp { hidden } => Params {
            layers: vec![Layer::he(hidden, dim, rng), Layer::he(k, hidden, rng)],
        },
    }
}

/// The mean penultimate activation of the head's fitting rows `z` (the drift detector's centre).
fn center_of(params: &Params, z: ArrayView2<f32>, kind: HeadKind, dim: usize) -> Array1<f32> {
    params.penultimate_mean(z).unwrap_or_else(|| {
        Array1::zeros(match kind {
            HeadKind::Linear => dim,
            HeadKind::Mlp { hidden } => hidden,
        })
    })
}

/// What the refit on every row made.
struct Refit {
    standardizer: Standardizer,
    params: Params,
    prototypes: Prototypes,
    center: Array1<f32>,
    samples: usize,
}

/// Step 6 (with early stopping): standardisation, prior, `epochs` epochs of SGD (tail-averaged),
/// prototypes and centre on every row of `all` (the fitting rows then the validation rows).
fn refit_on(
    all: &Dataset,
    kind: HeadKind,
    hyper: &HyperParams,
    epochs: usize,
    threads: usize,
    rng: &mut ChaCha8Rng,
) -> Result<Refit, HeadError> {
    let k = all.classes.len();
    let standardizer = Standardizer::fit(all.features.view());
    let weights = class_weights(&all.class_counts(), hyper.class_balanced());
    let prior = class_mean_prior(
        kind,
        all.features.view(),
        &all.labels,
        k,
        &standardizer,
        rng,
    );
    let z = standardizer.transform(all.features.view());
    let refit = sgd_run(
        FitData {
            z: z.view(),
            labels: &all.labels,
            weights: &weights,
            affine: None,
        },
        None,
        kind,
        k,
        prior.as_ref(),
        hyper,
        Schedule::full(hyper).cut(epochs),
        true,
        threads,
        rng,
        &mut |_| {},
    )?;
    let prototypes = Prototypes::fit(z.view(), &all.labels, k);
    let center = center_of(&refit.params, z.view(), kind, z.ncols());
    Ok(Refit {
        standardizer,
        params: refit.params,
        prototypes,
        center,
        samples: all.len(),
    })
}

/// Which epochs of which learning-rate schedule an SGD run takes.
#[derive(Debug, Clone, Copy)]
struct Schedule {
    /// Epochs the schedule spans (warm-up, then cosine decay to 0 at its end).
    span: usize,
    /// Warm-up epochs.
    warmup: usize,
    /// Epochs run (at most `span`; fewer cuts the schedule short).
    run: usize,
}

impl Schedule {
    /// The hyper-parameters' schedule, run to its end.
    fn full(hyper: &HyperParams) -> Schedule {
        Schedule {
            span: hyper.epochs(),
            warmup: hyper.warmup_epochs(),
            run: hyper.epochs(),
        }
    }

    /// The first `run` epochs of this schedule.
    fn cut(self, run: usize) -> Schedule {
        Schedule { run, ..self }
    }

    /// The calibration run's schedule: the same peak rate over `epochs` epochs (at most the
    /// hyper-parameters' own), warm-up shortened in proportion, run to its end.
    fn calibration(hyper: &HyperParams, epochs: usize) -> Schedule {
        let span = epochs.min(hyper.epochs());
        let warmup = (hyper.warmup_epochs() * span).div_ceil(hyper.epochs());
        Schedule {
            span,
            warmup: warmup.min(span.saturating_sub(1)),
            run: span,
        }
    }
}

/// Draws from `rng` what `epochs` shuffles of `n` indices draw (a shuffle's draws depend on the
/// length only), without training.
fn skip_shuffles(rng: &mut ChaCha8Rng, n: usize, epochs: usize) {
    let mut order: Vec<usize> = (0..n).collect();
    for _ in 0..epochs {
        order.shuffle(rng);
    }
}

/// Mini-batch SGD for at most `max_epochs` epochs of the schedule that spans `hyper.epochs()`,
/// from `prior` with weight decay toward it when given (the prior is then epoch 0, a candidate of
/// early stopping), else from fresh weights with decay toward zero; with early stopping when `val`
/// is given; with `average_tail` (and no `val`), the result is the mean of the iterates over the
/// second half of the epochs.
#[allow(clippy::too_many_arguments)]
fn sgd_run(
    data: FitData,
    val: Option<FitData>,
    kind: HeadKind,
    k: usize,
    prior: Option<&Prior>,
    hyper: &HyperParams,
    schedule: Schedule,
    average_tail: bool,
    threads: usize,
    rng: &mut ChaCha8Rng,
    on_epoch: &mut dyn FnMut(&EpochReport),
) -> Result<SgdRun, HeadError> {
    let max_epochs = schedule.run;
    let dim = data.z.ncols();
    let mut params = match prior {
        // No epoch to run (the refit of a head that stayed the prior): the prior itself.
        Some(p) if max_epochs == 0 => p.start.clone(),
        Some(p) => p.init.clone(),
        None => initial_params(kind, k, dim, rng),
    };
    let mut grad = params.zeros_like();
    let mut sgd = Sgd::new(&params, hyper.momentum(), hyper.nesterov());
    let n = data.z.nrows();
    let bs = hyper.batch_size().min(n);
    let batches = n.div_ceil(bs);
    let mut order: Vec<usize> = (0..n).collect();
    // Every buffer of a step is made here once and reused: the batch's rows and labels, the
    // layers' outputs and deltas (`ws`), the gradient and the momentum.
    // Rows mapped by an affine map are always written into the batch matrix.
    let gather = data.affine.is_some()
        || (params.layers[0].w.nrows() > MAX_NARROW_OUTPUTS && !wide::available());
    let mut xb = Array2::<f32>::zeros((if gather { bs } else { 0 }, dim));
    let mut yb = vec![0usize; bs];
    let mut ws = Workspace::new();
    ws.fit(&params, bs);
    // The wide first layer's products and update split over `threads` threads (the AVX-512
    // kernels only: each thread takes its own hidden units, so the bits are the same).
    let pool = (threads > 1 && !gather && params.layers[0].w.nrows() > MAX_NARROW_OUTPUTS)
        .then(|| Pool::new(threads))
        .flatten()
        .map(Arc::new);
    ws.set_pool(pool.clone());
    sgd.set_pool(pool);
    let mut val_ws = Workspace::new();

    let mut tail_sum = params.zeros_like();
    let mut tail_epochs = 0usize;
    let mut best: Option<(f32, f32, usize, Params)> = None;
    if let (Some(p), Some(v)) = (prior, val.as_ref()) {
        let logits = p.start.logits(v.z);
        let vl = cross_entropy(logits.view(), v.labels, v.weights);
        best = Some((vl, accuracy(logits.view(), v.labels), 0, p.start.clone()));
    }
    let mut since_best = 0;
    let mut epochs_run = 0;
    let mut final_train_loss = f32::NAN;
    let mut lr = 0.0;
    for epoch in 0..max_epochs.min(schedule.span) {
        order.shuffle(rng);
        let mut loss_sum = 0.0f64;
        for (bi, chunk) in order.chunks(bs).enumerate() {
            let m = chunk.len();
            for (r, &i) in chunk.iter().enumerate() {
                yb[r] = data.labels[i];
            }
            // A narrow first layer (the linear head) reads the batch's rows where they are, and so
            // does a wide one (the MLP) with AVX-512; otherwise the MLP gets them copied into one
            // matrix for ndarray's matrix product.
            let picked = Rows::picked(data.z, chunk);
            let rows = match (data.affine, gather, picked) {
                (Some(affine), _, _) => {
                    for (r, &i) in chunk.iter().enumerate() {
                        affine.apply_into(data.z.row(i), xb.row_mut(r));
                    }
                    Rows::all(xb.slice(s![..m, ..])).expect("a fresh matrix is contiguous")
                }
                (None, false, Some(rows)) => rows,
                (None, true, Some(rows)) => {
                    rows.gather_into(&mut xb.slice_mut(s![..m, ..]));
                    Rows::all(xb.slice(s![..m, ..])).expect("a fresh matrix is contiguous")
                }
                (None, _, None) => {
                    for (r, &i) in chunk.iter().enumerate() {
                        xb.row_mut(r).assign(&data.z.row(i));
                    }
                    Rows::all(xb.slice(s![..m, ..])).expect("a fresh matrix is contiguous")
                }
            };
            let loss = params.train_grad_in(rows, &yb[..m], data.weights, &mut grad, &mut ws);
            lr = learning_rate_at(
                epoch as f32 + bi as f32 / batches as f32,
                hyper.learning_rate(),
                schedule.warmup,
                schedule.span,
            );
            let penalty = sgd.step_decayed(
                &mut params,
                &grad,
                lr,
                hyper.weight_decay(),
                prior.map(|p| &p.target),
            );
            loss_sum += (loss + penalty) as f64 * m as f64;
        }
        epochs_run = epoch + 1;
        if average_tail && epoch >= max_epochs / 2 {
            tail_sum.add_scaled(&params, 1.0);
            tail_epochs += 1;
        }
        final_train_loss = (loss_sum / n as f64) as f32;
        if !final_train_loss.is_finite() {
            return Err(HeadError::Diverged {
                epoch: epochs_run,
                learning_rate: hyper.learning_rate(),
            });
        }
        let measured = val.as_ref().map(|v| {
            let logits = params.logits_in(v.z, &mut val_ws);
            (
                cross_entropy(logits, v.labels, v.weights),
                accuracy(logits, v.labels),
            )
        });
        on_epoch(&EpochReport {
            epoch: epochs_run,
            train_loss: final_train_loss,
            val_loss: measured.map(|m| m.0),
            val_accuracy: measured.map(|m| m.1),
            learning_rate: lr,
        });
        if let Some((vl, va)) = measured {
            // Patience 0: the schedule runs to its end and its end is kept (see `HyperParams::patience`).
            if best.as_ref().is_none_or(|b| vl < b.0) || hyper.patience() == 0 {
                match &mut best {
                    // The kept copy's buffers are reused.
                    Some(b) => {
                        for (kept, now) in b.3.layers.iter_mut().zip(&params.layers) {
                            kept.w.assign(&now.w);
                            kept.b.assign(&now.b);
                        }
                        (b.0, b.1, b.2) = (vl, va, epochs_run);
                    }
                    None => best = Some((vl, va, epochs_run, params.clone())),
                }
                since_best = 0;
            } else {
                since_best += 1;
                if hyper.patience() > 0 && since_best >= hyper.patience() {
                    break;
                }
            }
        }
    }
    let (params, best) = match best {
        Some((vl, va, e, p)) => (p, Some((vl, va, e))),
        None if tail_epochs > 0 => {
            let mut mean = params.zeros_like();
            mean.add_scaled(&tail_sum, 1.0 / tail_epochs as f32);
            (mean, None)
        }
        None => (params, None),
    };
    Ok(SgdRun {
        params,
        epochs_run,
        best,
        final_train_loss,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::Rng;

    /// Four noisy classes of 60 samples in 48 dimensions.
    fn blobs(seed: u64) -> Dataset {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let (k, per, dim) = (4, 60, 48);
        let labels: Vec<usize> = (0..k * per).map(|i| i % k).collect();
        let features = Array2::from_shape_fn((k * per, dim), |(i, j)| {
            let centre = if j % k == labels[i] { 1.5 } else { 0.0 };
            centre + rng.gen_range(-1.0f32..1.0)
        });
        Dataset::new(features, labels, (0..k).map(|c| format!("c{c}")).collect())
            .expect("a valid data set")
    }

    /// The MLP's hidden layer split over threads trains the same bits as one thread.
    #[test]
    fn split_hidden_layer_trains_the_same_bits() {
        let data = blobs(3);
        let kind = HeadKind::Mlp { hidden: 40 };
        let hyper = HyperParams::builder().epochs(6).check().expect("valid");
        let run = |threads| {
            Head::train_on_threads(&data, None, kind, &hyper, threads, &mut |_| {})
                .expect("trains")
                .0
        };
        let one = run(1);
        for threads in [2, 3] {
            assert_eq!(run(threads), one, "{threads} threads");
        }
    }

    /// The calibration run is shorter than the schedule and the refit runs the whole schedule.
    #[test]
    fn the_hold_out_run_is_the_calibration_run() {
        let data = blobs(4);
        let hyper = HyperParams::builder().epochs(30).check().expect("valid");
        let mut epochs = 0;
        let (_, report) = Head::train(&data, None, HeadKind::Linear, &hyper, &mut |_| epochs += 1)
            .expect("trains");
        assert_eq!(report.epochs_run, CALIBRATION_EPOCHS);
        assert_eq!(epochs, CALIBRATION_EPOCHS);
        assert_eq!(report.refit_epochs, Some(30));
        assert!(report.calibration.temperature.is_finite() && report.calibration.samples > 0);
    }

    /// Training on the rows joined in one matrix gives the same head and report as training
    /// on the two sets apart, with validation rows given and without.
    #[test]
    fn joined_training_gives_the_same_bits() {
        let train = blobs(5);
        let val = blobs(6);
        let hyper = HyperParams::builder().epochs(12).check().expect("valid");
        for kind in [HeadKind::Linear, HeadKind::Mlp { hidden: 24 }] {
            for given in [true, false] {
                let v = given.then_some(&val);
                let (borrowed, report) =
                    Head::train(&train, v, kind, &hyper, &mut |_| {}).expect("trains");
                let (owned, owned_report) = match v {
                    Some(v) => Head::train_joined(train.concat(v), train.len(), kind, &hyper),
                    None => Head::train_joined(train.clone(), train.len(), kind, &hyper),
                }
                .expect("trains");
                assert_eq!(owned, borrowed, "{kind:?}, validation given: {given}");
                assert_eq!(owned_report.refit_samples, report.refit_samples);
                assert_eq!(owned_report.calibration, report.calibration);
            }
        }
    }
}
