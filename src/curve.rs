//! The learning curve: how accurate a head is when taught with `k` labelled images per class,
//! next to the nearest-class-mean baseline taught with the very same images.
//!
//! For every `k` of `shots` and every draw, `k` images per class are drawn at random from the
//! training pool and `⌈k/2⌉` per class from the validation pool (all of a class when it has fewer);
//! the head is trained on them exactly as `fieldtune train` and the device train it
//! ([`Head::train`] on the canonical order, with the drawn validation images), and the baseline is
//! the nearest class mean of the same `k + ⌈k/2⌉` images per class, in raw feature space. Both are
//! scored on the whole test set (closed-set top-1 accuracy, as `fieldtune eval` reports it).
//! Draws are seeded: the same inputs and seed give the same curve.
//!
//! With `device`, the head is trained as a device trains it from its labels: the drawn training
//! and validation images together, with no validation set given (the head holds out its own part
//! when every class has enough images, else trains on all of them without early stopping).
//!
//! With views ([`learning_curve_with_views`]; `fieldtune curve --augment`), each drawn image
//! brings its extra views ([`crate::augment`]) as `fieldtune train --augment` and a device's
//! labels (`[learning] label_views`) do: through [`crate::augment::with_views`], so a view never
//! trains while its image validates. The baseline stays the class means of the images alone.

use ndarray::{Array2, ArrayView2, Axis};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use crate::head::baseline::NearestClassMean;
use crate::head::{Dataset, Head, HeadError, HeadKind, HyperParams};

/// Accuracies of one number of labels per class, one entry per draw.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CurvePoint {
    /// Training images per class (`k`).
    pub shots: usize,
    /// Validation images per class (`⌈k/2⌉`).
    pub val_shots: usize,
    /// Test accuracy of the head, per draw.
    pub head: Vec<f64>,
    /// Test accuracy of the nearest class mean of the same images, per draw.
    pub baseline: Vec<f64>,
}

/// Mean of a list (NaN when empty).
pub fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len() as f64
}

impl CurvePoint {
    /// Mean head accuracy over the draws.
    pub fn head_mean(&self) -> f64 {
        mean(&self.head)
    }
    /// Mean baseline accuracy over the draws.
    pub fn baseline_mean(&self) -> f64 {
        mean(&self.baseline)
    }
}

/// A learning curve.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Curve {
    /// Which head.
    pub kind: HeadKind,
    /// Class names.
    pub classes: Vec<String>,
    /// Test images.
    pub test_samples: usize,
    /// Draws per point.
    pub draws: usize,
    /// Seed of the draws.
    pub seed: u64,
    /// Trained as a device trains (no validation set given).
    pub device: bool,
    /// One point per number of labels per class, in the order asked.
    pub points: Vec<CurvePoint>,
}

/// `k` random indices per class of `data` (all of a class with fewer).
fn draw_per_class(data: &Dataset, k: usize, rng: &mut ChaCha8Rng) -> Vec<usize> {
    let mut by_class: Vec<Vec<usize>> = vec![Vec::new(); data.classes.len()];
    for (i, &y) in data.labels.iter().enumerate() {
        by_class[y].push(i);
    }
    let mut picked = Vec::new();
    for mut members in by_class {
        members.shuffle(rng);
        picked.extend(members.into_iter().take(k));
    }
    picked.sort_unstable();
    picked
}

/// Closed-set accuracy of predicted classes.
fn accuracy(predicted: &[Option<usize>], labels: &[usize]) -> f64 {
    let right = predicted
        .iter()
        .zip(labels)
        .filter(|(p, &y)| **p == Some(y))
        .count();
    right as f64 / labels.len().max(1) as f64
}

/// The head's closed-set predictions (its most probable class, unknown or not).
pub fn head_top(head: &Head, features: ArrayView2<f32>) -> Vec<Option<usize>> {
    head.predict_batch(features)
        .iter()
        .map(|p| p.top.first().map(|t| t.0))
        .collect()
}

/// Computes the curve (see the module docs); `on_point` is called after every draw with
/// `(k, draw, head accuracy, baseline accuracy)`.
///
/// # Errors
/// The three data sets must share their class list and feature length; training errors pass
/// through.
#[allow(clippy::too_many_arguments)]
pub fn learning_curve(
    pool: &Dataset,
    val_pool: &Dataset,
    test: &Dataset,
    shots: &[usize],
    draws: usize,
    kind: HeadKind,
    hyper: &HyperParams,
    device: bool,
    on_point: &mut dyn FnMut(usize, usize, f64, f64),
) -> Result<Curve, HeadError> {
    learning_curve_with_views(
        pool,
        val_pool,
        test,
        (&[], &[]),
        shots,
        draws,
        kind,
        hyper,
        device,
        on_point,
    )
}

/// [`learning_curve`] with extra views of the images: `views.0[v]` holds view `v` of every row
/// of `pool`, `views.1[v]` of every row of `val_pool` (empty: no views).
///
/// # Errors
/// As [`learning_curve`].
#[allow(clippy::too_many_arguments)]
pub fn learning_curve_with_views(
    pool: &Dataset,
    val_pool: &Dataset,
    test: &Dataset,
    views: (&[Array2<f32>], &[Array2<f32>]),
    shots: &[usize],
    draws: usize,
    kind: HeadKind,
    hyper: &HyperParams,
    device: bool,
    on_point: &mut dyn FnMut(usize, usize, f64, f64),
) -> Result<Curve, HeadError> {
    pool.check("train")?;
    val_pool.check("val")?;
    test.check("test")?;
    for other in [val_pool, test] {
        if other.classes != pool.classes {
            return Err(HeadError::ClassListMismatch {
                train: pool.classes.clone(),
                val: other.classes.clone(),
            });
        }
        if other.dim() != pool.dim() {
            return Err(HeadError::DimensionMismatch {
                expected: pool.dim(),
                got: other.dim(),
            });
        }
    }
    let seed = hyper.seed();
    let mut points = Vec::with_capacity(shots.len());
    for &k in shots {
        let val_k = k.div_ceil(2);
        let mut point = CurvePoint {
            shots: k,
            val_shots: val_k,
            head: Vec::with_capacity(draws),
            baseline: Vec::with_capacity(draws),
        };
        for d in 0..draws {
            let mut rng = ChaCha8Rng::seed_from_u64(
                seed ^ (k as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ (d as u64) << 48,
            );
            let train_rows = draw_per_class(pool, k, &mut rng);
            let val_rows = draw_per_class(val_pool, val_k, &mut rng);
            let train = pool.select(&train_rows);
            let val = val_pool.select(&val_rows);
            let (head, _) = if !views.0.is_empty() {
                fit_with_views(
                    (&train, &train_rows),
                    (&val, &val_rows),
                    views,
                    kind,
                    hyper,
                    device,
                )?
            } else if device {
                let all = train.concat(&val).canonical();
                Head::train(&all, None, kind, hyper, &mut |_| {})?
            } else {
                Head::train(
                    &train.canonical(),
                    Some(&val.canonical()),
                    kind,
                    hyper,
                    &mut |_| {},
                )?
            };
            // The head's classes are in canonical (sorted) order: map them back by name.
            let to_pool: Vec<usize> = head
                .classes()
                .iter()
                .map(|n| {
                    pool.classes
                        .iter()
                        .position(|c| c == n)
                        .unwrap_or(usize::MAX)
                })
                .collect();
            let predicted: Vec<Option<usize>> = head_top(&head, test.features.view())
                .into_iter()
                .map(|p| p.map(|c| to_pool[c]))
                .collect();
            let head_acc = accuracy(&predicted, &test.labels);
            let ncm = NearestClassMean::fit(&train.concat(&val))?;
            let base_acc = accuracy(&ncm.predict_batch(test.features.view()), &test.labels);
            on_point(k, d, head_acc, base_acc);
            point.head.push(head_acc);
            point.baseline.push(base_acc);
        }
        points.push(point);
    }
    Ok(Curve {
        kind,
        classes: pool.classes.clone(),
        test_samples: test.len(),
        draws,
        seed,
        device,
        points,
    })
}

/// Trains on the drawn images with their views (see the module docs): as a device does with
/// `device` (validation images and their views join the pool it splits itself), else with the
/// drawn validation images given.
fn fit_with_views(
    (train, train_rows): (&Dataset, &[usize]),
    (val, val_rows): (&Dataset, &[usize]),
    (pool_views, val_views): (&[Array2<f32>], &[Array2<f32>]),
    kind: HeadKind,
    hyper: &HyperParams,
    device: bool,
) -> Result<(Head, crate::head::TrainReport), HeadError> {
    // (source matrix, row) of every view row.
    let mut rows: Vec<(&Array2<f32>, usize)> = Vec::new();
    let mut view_of = Vec::new();
    for (v, m) in pool_views.iter().enumerate() {
        rows.extend(train_rows.iter().map(|&r| (m, r)));
        view_of.extend(0..train_rows.len());
        if let (true, Some(mv)) = (device, val_views.get(v)) {
            rows.extend(val_rows.iter().map(|&r| (mv, r)));
            view_of.extend(train_rows.len()..train_rows.len() + val_rows.len());
        }
    }
    let mut stacked = Array2::<f32>::zeros((rows.len(), train.dim()));
    for (mut out, (m, r)) in stacked.axis_iter_mut(Axis(0)).zip(rows) {
        out.assign(&m.row(r));
    }
    let (all, given) = if device {
        (train.concat(val), None)
    } else {
        (train.clone(), Some(val.clone()))
    };
    let (fit, val) = crate::augment::with_views(&all, stacked.view(), &view_of, given, hyper);
    let fit = fit.canonical();
    let val = val.map(|v| v.canonical());
    Head::train(&fit, val.as_ref(), kind, hyper, &mut |_| {})
}

impl Curve {
    /// The curve as a Markdown table: per `k`, head and baseline mean (min–max) and the gap.
    pub fn table(&self) -> String {
        let mut s = String::from(
            "| labels/class (+val) | head % (min–max) | class means % (min–max) | gap (points) |\n|---|---|---|---|\n",
        );
        let range = |v: &[f64]| {
            let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
            let hi = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            format!("{:.1}–{:.1}", 100.0 * lo, 100.0 * hi)
        };
        for p in &self.points {
            s.push_str(&format!(
                "| {} (+{}) | {:.2} ({}) | {:.2} ({}) | {:+.2} |\n",
                p.shots,
                p.val_shots,
                100.0 * p.head_mean(),
                range(&p.head),
                100.0 * p.baseline_mean(),
                range(&p.baseline),
                100.0 * (p.head_mean() - p.baseline_mean())
            ));
        }
        s
    }
}
