//! The maths of the rehearsed online step (`Head::learn_rehearsed`), on random small problems of
//! both heads:
//! - with no bound, the step is `−lr` times the gradient of the class-sum loss
//!   `Σ_c mean_{i ∈ c} CE_i + weight_decay / 2 · Σ ‖W‖²`, checked against central finite
//!   differences of that loss written out naively here (f64, own forward pass), so the weights of
//!   `class_sum_weights` and the gradient of `loss_and_grad` are tested together;
//! - with a bound, the step stays along the gradient, shrinks only as much as needed (exactly onto
//!   the bound for the linear head) and never moves a logit difference of the batch by more;
//! - a batch of one with weight 1 and no bound is exactly `learn`'s `sgd_step_one`.

use fieldtune::head::loss::class_sum_weights;
use fieldtune::head::params::{logit_move, Layer, Params};
use ndarray::{Array1, Array2};
use proptest::prelude::*;

/// A random batch and head, drawn by proptest.
#[derive(Debug, Clone)]
struct Problem {
    x: Array2<f32>,
    labels: Vec<usize>,
    weight_decay: f32,
    params: Params,
}

impl Problem {
    fn classes(&self) -> usize {
        self.params.classes()
    }
    /// Per-class weights making every class present in the batch carry total weight 1.
    fn weights(&self) -> Vec<f32> {
        let mut counts = vec![0usize; self.classes()];
        for &l in &self.labels {
            counts[l] += 1;
        }
        class_sum_weights(&counts)
    }
}

fn layer(out: usize, inp: usize, values: &[f32]) -> Layer {
    Layer {
        w: Array2::from_shape_fn((out, inp), |(i, j)| values[(i * inp + j) % values.len()]),
        b: Array1::from_shape_fn(out, |i| values[(i * 7 + 3) % values.len()] * 0.5),
    }
}

/// Batches of 1-7 rows (a new sample plus up to 6 rehearsed ones) over 2-4 classes.
fn problem(mlp: bool) -> impl Strategy<Value = Problem> {
    (1usize..6, 2usize..5, 1usize..8, 1usize..6).prop_flat_map(move |(d, k, b, h)| {
        (
            prop::collection::vec(-2.0f32..2.0, b * d),
            prop::collection::vec(0..k, b),
            0.0f32..0.5,
            prop::collection::vec(-1.0f32..1.0, 64),
        )
            .prop_map(move |(x, labels, weight_decay, values)| {
                let layers = if mlp {
                    vec![layer(h, d, &values), layer(k, h, &values[17..])]
                } else {
                    vec![layer(k, d, &values)]
                };
                Problem {
                    x: Array2::from_shape_vec((b, d), x).expect("b × d values"),
                    labels,
                    weight_decay,
                    params: Params { layers },
                }
            })
    })
}

/// The weights as f64 `(W, b)` per layer.
type Weights64 = Vec<(Array2<f64>, Array1<f64>)>;

fn to64(p: &Params) -> Weights64 {
    p.layers
        .iter()
        .map(|l| (l.w.mapv(f64::from), l.b.mapv(f64::from)))
        .collect()
}

/// `Σ_c mean_{i ∈ c} −log softmax(f(x_i))_{y_i} + wd/2 · Σ ‖W‖²`, written out from the definition.
fn class_sum_loss(p: &Problem, w: &Weights64) -> f64 {
    let k = p.classes();
    let mut per_class = vec![(0.0f64, 0usize); k];
    for (row, &y) in p.x.outer_iter().zip(&p.labels) {
        let mut a: Vec<f64> = row.iter().map(|&v| f64::from(v)).collect();
        for (i, (lw, lb)) in w.iter().enumerate() {
            let mut next: Vec<f64> = (0..lw.nrows())
                .map(|o| lb[o] + (0..a.len()).map(|j| lw[[o, j]] * a[j]).sum::<f64>())
                .collect();
            if i + 1 < w.len() {
                next.iter_mut().for_each(|v| *v = v.max(0.0));
            }
            a = next;
        }
        let max = a.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let log_sum = a.iter().map(|v| (v - max).exp()).sum::<f64>().ln() + max;
        per_class[y].0 += log_sum - a[y];
        per_class[y].1 += 1;
    }
    let ce: f64 = per_class
        .iter()
        .filter(|(_, n)| *n > 0)
        .map(|(s, n)| s / *n as f64)
        .sum();
    let l2: f64 = w
        .iter()
        .map(|(lw, _)| lw.iter().map(|v| v * v).sum::<f64>())
        .sum();
    ce + 0.5 * f64::from(p.weight_decay) * l2
}

/// True when a hidden pre-activation sits within a finite difference's reach of the ReLU kink.
fn near_kink(p: &Problem, eps: f64) -> bool {
    if p.params.layers.len() < 2 {
        return false;
    }
    let hidden = &p.params.layers[0];
    let pre = p.x.dot(&hidden.w.t()) + &hidden.b;
    let reach = eps as f32 * p.x.iter().fold(1.0f32, |m, v| m.max(v.abs()));
    pre.iter().any(|v| v.abs() < 4.0 * reach)
}

/// The unbounded rehearsed step, divided by `−lr`, against finite differences of the loss.
fn check_step_is_the_gradient(p: &Problem, lr: f32) -> Result<(), TestCaseError> {
    let mut stepped = p.params.clone();
    let report = stepped.bounded_step(
        p.x.view(),
        &p.labels,
        &p.weights(),
        lr,
        p.weight_decay,
        f32::INFINITY,
    );
    prop_assert_eq!(report.scale, 1.0);
    let base = to64(&p.params);
    prop_assert!((f64::from(report.loss) - class_sum_loss(p, &base)).abs() < 1e-3);
    let eps = 1e-4f64;
    let fd = |l: usize, w: bool, i: usize, j: usize| {
        let (mut plus, mut minus) = (base.clone(), base.clone());
        if w {
            plus[l].0[[i, j]] += eps;
            minus[l].0[[i, j]] -= eps;
        } else {
            plus[l].1[i] += eps;
            minus[l].1[i] -= eps;
        }
        (class_sum_loss(p, &plus) - class_sum_loss(p, &minus)) / (2.0 * eps)
    };
    for (l, (before, after)) in p.params.layers.iter().zip(&stepped.layers).enumerate() {
        let (rows, cols) = before.w.dim();
        for i in 0..rows {
            for j in 0..cols {
                let an = f64::from(before.w[[i, j]] - after.w[[i, j]]) / f64::from(lr);
                let num = fd(l, true, i, j);
                prop_assert!(
                    (num - an).abs() <= 1e-3 + 1e-2 * num.abs(),
                    "layer {l} w[{i},{j}]: step/lr {an} vs numeric gradient {num}"
                );
            }
            let an = f64::from(before.b[i] - after.b[i]) / f64::from(lr);
            let num = fd(l, false, i, 0);
            prop_assert!(
                (num - an).abs() <= 1e-3 + 1e-2 * num.abs(),
                "layer {l} b[{i}]: step/lr {an} vs numeric gradient {num}"
            );
        }
    }
    Ok(())
}

/// With a bound: along the gradient, within the bound, and no smaller than needed.
fn check_bound(p: &Problem, lr: f32, max_move: f32) -> Result<(), TestCaseError> {
    let mut full = p.params.clone();
    full.bounded_step(
        p.x.view(),
        &p.labels,
        &p.weights(),
        lr,
        p.weight_decay,
        f32::INFINITY,
    );
    let mut bounded = p.params.clone();
    let report = bounded.bounded_step(
        p.x.view(),
        &p.labels,
        &p.weights(),
        lr,
        p.weight_decay,
        max_move,
    );
    let s = report.scale;
    prop_assert!((0.0..=1.0).contains(&s), "scale {s}");
    // θ − s·(θ − θ_full): the same direction, a fraction of the length.
    for ((b, f), o) in bounded
        .layers
        .iter()
        .zip(&full.layers)
        .zip(&p.params.layers)
    {
        let pairs = b.w.iter().zip(f.w.iter()).zip(o.w.iter());
        let pairs = pairs.chain(b.b.iter().zip(f.b.iter()).zip(o.b.iter()));
        for ((&b, &f), &o) in pairs {
            let expect = o - s * (o - f);
            prop_assert!(
                (b - expect).abs() <= 1e-5 + 1e-4 * expect.abs(),
                "{b} vs {expect} (scale {s})"
            );
        }
    }
    let before = p.params.logits(p.x.view());
    let moved = logit_move(before.view(), bounded.logits(p.x.view()).view());
    prop_assert!(
        moved <= max_move * 1.001 + 1e-5,
        "moved {moved} > {max_move}"
    );
    let full_move = logit_move(before.view(), full.logits(p.x.view()).view());
    if full_move <= max_move {
        prop_assert_eq!(s, 1.0, "shrunk a step that was within the bound");
    } else if p.params.layers.len() == 1 {
        // Logits are affine in the linear head's weights: one rescaling lands on the bound.
        prop_assert!(
            (moved - max_move).abs() <= 1e-3 * max_move + 1e-5,
            "moved {moved}, bound {max_move}"
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn linear_rehearsed_step_is_minus_lr_times_the_gradient(p in problem(false), lr in 0.05f32..0.5) {
        check_step_is_the_gradient(&p, lr)?;
    }

    #[test]
    fn mlp_rehearsed_step_is_minus_lr_times_the_gradient(p in problem(true), lr in 0.05f32..0.5) {
        prop_assume!(!near_kink(&p, 1e-4));
        check_step_is_the_gradient(&p, lr)?;
    }

    #[test]
    fn linear_bounded_step_stays_within_its_bound(
        p in problem(false), lr in 0.1f32..5.0, max_move in 0.01f32..2.0
    ) {
        check_bound(&p, lr, max_move)?;
    }

    #[test]
    fn mlp_bounded_step_stays_within_its_bound(
        p in problem(true), lr in 0.1f32..5.0, max_move in 0.01f32..2.0
    ) {
        check_bound(&p, lr, max_move)?;
    }

    #[test]
    fn a_batch_of_one_unbounded_is_the_one_sample_step(p in problem(true), lr in 0.001f32..0.5) {
        let (x, y) = (p.x.row(0), p.labels[0]);
        let mut one = p.params.clone();
        one.sgd_step_one(x, y, lr, p.weight_decay);
        let mut batch = p.params.clone();
        let k = p.classes();
        batch.bounded_step(
            x.insert_axis(ndarray::Axis(0)),
            &[y],
            &class_sum_weights(&{
                let mut c = vec![0; k];
                c[y] = 1;
                c
            }),
            lr,
            p.weight_decay,
            f32::INFINITY,
        );
        for (a, b) in one.layers.iter().zip(&batch.layers) {
            for (u, v) in a.w.iter().zip(b.w.iter()).chain(a.b.iter().zip(b.b.iter())) {
                prop_assert!((u - v).abs() <= 1e-5 + 1e-4 * v.abs(), "{u} vs {v}");
            }
        }
    }
}

#[test]
fn logit_move_ignores_a_common_shift_and_takes_the_worst_row() {
    let before = ndarray::array![[0.0f32, 1.0, 2.0], [5.0, 5.0, 5.0]];
    let shifted = &before + 3.0;
    assert_eq!(logit_move(before.view(), shifted.view()), 0.0);
    let after = ndarray::array![[0.5f32, 1.0, 1.5], [5.0, 7.0, 5.0]];
    assert!((logit_move(before.view(), after.view()) - 2.0).abs() < 1e-6);
    let nan = ndarray::array![[f32::NAN, 1.0, 2.0], [5.0, 5.0, 5.0]];
    assert!(logit_move(before.view(), nan.view()).is_nan());
}
