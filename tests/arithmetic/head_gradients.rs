//! The hand-written backward passes of both heads against central finite differences of the loss,
//! on random small problems (random sizes, weights, class weights and weight decay).

use fieldtune::head::batch::Workspace;
use fieldtune::head::fewshot::{prior_penalty_correction, pull_toward};
use fieldtune::head::kernels::{Rows, MAX_NARROW_OUTPUTS};
use fieldtune::head::params::{Layer, Params};
use fieldtune::head::sgd::Sgd;
use ndarray::{Array1, Array2};
use proptest::prelude::*;

/// Everything a random problem needs, drawn by proptest.
#[derive(Debug, Clone)]
struct Problem {
    x: Array2<f32>,
    labels: Vec<usize>,
    class_weights: Vec<f32>,
    weight_decay: f32,
    params: Params,
}

fn layer(out: usize, inp: usize, values: &[f32]) -> Layer {
    Layer {
        w: Array2::from_shape_fn((out, inp), |(i, j)| values[(i * inp + j) % values.len()]),
        b: Array1::from_shape_fn(out, |i| values[(i * 7 + 3) % values.len()] * 0.5),
    }
}

fn problem(hidden: Option<usize>) -> impl Strategy<Value = Problem> {
    (1usize..6, 2usize..5, 1usize..6, 1usize..6).prop_flat_map(move |(d, k, b, h)| {
        (
            prop::collection::vec(-2.0f32..2.0, b * d),
            prop::collection::vec(0..k, b),
            prop::collection::vec(0.2f32..3.0, k),
            0.0f32..0.5,
            prop::collection::vec(-1.0f32..1.0, 64),
        )
            .prop_map(move |(x, labels, class_weights, weight_decay, values)| {
                let params = match hidden {
                    None => Params {
                        layers: vec![layer(k, d, &values)],
                    },
                    Some(_) => Params {
                        layers: vec![layer(h, d, &values), layer(k, h, &values[17..])],
                    },
                };
                Problem {
                    x: Array2::from_shape_vec((b, d), x).expect("b × d values"),
                    labels,
                    class_weights,
                    weight_decay,
                    params,
                }
            })
    })
}

fn loss(p: &Problem, params: &Params) -> f64 {
    let mut scratch = params.zeros_like();
    params.loss_and_grad(
        p.x.view(),
        &p.labels,
        &p.class_weights,
        p.weight_decay,
        &mut scratch,
    ) as f64
}

/// Compares every analytic partial derivative with `(L(θ+ε) − L(θ−ε)) / 2ε`.
fn check_gradients(p: &Problem) -> Result<(), TestCaseError> {
    let mut grad = p.params.zeros_like();
    p.params.loss_and_grad(
        p.x.view(),
        &p.labels,
        &p.class_weights,
        p.weight_decay,
        &mut grad,
    );
    let eps = 1e-2f32;
    for l in 0..p.params.layers.len() {
        let (rows, cols) = p.params.layers[l].w.dim();
        for i in 0..rows {
            for j in 0..cols {
                let mut plus = p.params.clone();
                plus.layers[l].w[[i, j]] += eps;
                let mut minus = p.params.clone();
                minus.layers[l].w[[i, j]] -= eps;
                let fd = (loss(p, &plus) - loss(p, &minus)) / (2.0 * eps as f64);
                let an = grad.layers[l].w[[i, j]] as f64;
                prop_assert!(
                    (fd - an).abs() <= 2e-3 + 2e-2 * fd.abs(),
                    "layer {l} w[{i},{j}]: analytic {an} vs numeric {fd}"
                );
            }
            let mut plus = p.params.clone();
            plus.layers[l].b[i] += eps;
            let mut minus = p.params.clone();
            minus.layers[l].b[i] -= eps;
            let fd = (loss(p, &plus) - loss(p, &minus)) / (2.0 * eps as f64);
            let an = grad.layers[l].b[i] as f64;
            prop_assert!(
                (fd - an).abs() <= 2e-3 + 2e-2 * fd.abs(),
                "layer {l} b[{i}]: analytic {an} vs numeric {fd}"
            );
        }
    }
    Ok(())
}

/// True when some hidden pre-activation sits so close to the ReLU kink that a finite difference
/// of size `margin` could cross it (the derivative is undefined there).
fn near_kink(p: &Problem, margin: f32) -> bool {
    let hidden = &p.params.layers[0];
    let pre = p.x.dot(&hidden.w.t()) + &hidden.b;
    // A weight step of ε moves a pre-activation by at most ε·max|x| (or ε for the bias).
    let reach = margin * p.x.iter().fold(1.0f32, |m, v| m.max(v.abs()));
    pre.iter().any(|v| v.abs() < 2.0 * reach)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn linear_gradient_matches_finite_differences(p in problem(None)) {
        check_gradients(&p)?;
    }

    #[test]
    fn mlp_gradient_matches_finite_differences(p in problem(Some(0))) {
        prop_assume!(!near_kink(&p, 1e-2));
        check_gradients(&p)?;
    }

    #[test]
    fn one_sample_step_equals_a_batch_of_one_gradient_step(p in problem(Some(0)), lr in 0.001f32..0.5) {
        // `sgd_step_one` (in place, used by `learn`) must be exactly θ − lr·∇L for a batch of one with weight 1.
        let x = p.x.row(0);
        let y = p.labels[0];
        let k = p.params.classes();
        let mut grad = p.params.zeros_like();
        p.params.loss_and_grad(x.insert_axis(ndarray::Axis(0)), &[y], &vec![1.0; k], p.weight_decay, &mut grad);
        let mut stepped = p.params.clone();
        stepped.sgd_step_one(x, y, lr, p.weight_decay);
        for (l, (s, g)) in stepped.layers.iter().zip(&grad.layers).enumerate() {
            let expect_w = &p.params.layers[l].w - &(&g.w * lr);
            let expect_b = &p.params.layers[l].b - &(&g.b * lr);
            for (a, b) in s.w.iter().zip(expect_w.iter()).chain(s.b.iter().zip(expect_b.iter())) {
                prop_assert!((a - b).abs() <= 1e-5 + 1e-4 * b.abs(), "layer {l}: {a} vs {b}");
            }
        }
    }
}

/// Problems with layers on both sides of the narrow-kernel bound (`kernels::MAX_NARROW_OUTPUTS`
/// outputs), batches longer than the grad kernel's 64-row blocks and rows longer than 8 lanes.
fn wide_problem(mlp: bool) -> impl Strategy<Value = Problem> {
    (9usize..40, 2usize..22, 1usize..80, 10usize..40).prop_flat_map(move |(d, k, b, h)| {
        (
            prop::collection::vec(-2.0f32..2.0, b * d),
            prop::collection::vec(0..k, b),
            prop::collection::vec(0.2f32..3.0, k),
            0.0f32..0.5,
            prop::collection::vec(-1.0f32..1.0, 97),
        )
            .prop_map(move |(x, labels, class_weights, weight_decay, values)| {
                let scaled: Vec<f32> = values.iter().map(|v| v * 0.3).collect();
                let params = if mlp {
                    Params {
                        layers: vec![layer(h, d, &scaled), layer(k, h, &scaled[17..])],
                    }
                } else {
                    Params {
                        layers: vec![layer(k, d, &scaled)],
                    }
                };
                Problem {
                    x: Array2::from_shape_vec((b, d), x).expect("b × d values"),
                    labels,
                    class_weights,
                    weight_decay,
                    params,
                }
            })
    })
}

/// The batched gradient (one matrix product per layer, buffers reused from a larger batch) equals
/// the mean of the per-sample gradients (each a batch of one, computed from scratch): the batch
/// loss is the mean of the samples' weighted losses plus the same L2 term.
fn check_batch_is_mean_of_samples(p: &Problem) -> Result<(), TestCaseError> {
    let b = p.x.nrows();
    let mut ws = fieldtune::head::batch::Workspace::new();
    // Dirty the reused buffers with a larger batch first.
    let big =
        ndarray::concatenate(ndarray::Axis(0), &[p.x.view(), p.x.view()]).expect("same width");
    let big_labels: Vec<usize> = p.labels.iter().chain(&p.labels).copied().collect();
    let mut grad = p.params.zeros_like();
    p.params.loss_and_grad_in(
        big.view(),
        &big_labels,
        &p.class_weights,
        p.weight_decay,
        &mut grad,
        &mut ws,
    );
    let batch_loss = p.params.loss_and_grad_in(
        p.x.view(),
        &p.labels,
        &p.class_weights,
        p.weight_decay,
        &mut grad,
        &mut ws,
    );
    let mut sum = p.params.zeros_like();
    let mut loss_sum = 0.0f64;
    let mut one = p.params.zeros_like();
    for i in 0..b {
        let row = p.x.slice(ndarray::s![i..i + 1, ..]);
        loss_sum += p.params.loss_and_grad(
            row,
            &p.labels[i..i + 1],
            &p.class_weights,
            p.weight_decay,
            &mut one,
        ) as f64;
        sum.add_scaled(&one, 1.0 / b as f32);
    }
    let mean_loss = loss_sum / b as f64;
    prop_assert!(
        (batch_loss as f64 - mean_loss).abs() <= 1e-4 + 1e-4 * mean_loss.abs(),
        "loss {batch_loss} vs mean of samples {mean_loss}"
    );
    for (l, (g, s)) in grad.layers.iter().zip(&sum.layers).enumerate() {
        for (a, e) in g.w.iter().zip(&s.w).chain(g.b.iter().zip(&s.b)) {
            prop_assert!(
                (a - e).abs() <= 1e-4 + 1e-3 * e.abs(),
                "layer {l}: batched {a} vs per-sample mean {e}"
            );
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn batched_linear_gradient_is_the_mean_of_per_sample_gradients(p in wide_problem(false)) {
        check_batch_is_mean_of_samples(&p)?;
    }

    #[test]
    fn batched_mlp_gradient_is_the_mean_of_per_sample_gradients(p in wide_problem(true)) {
        check_batch_is_mean_of_samples(&p)?;
    }

    #[test]
    fn wide_linear_gradient_matches_finite_differences(p in wide_problem(false)) {
        check_gradients(&p)?;
    }

    #[test]
    fn fused_linear_training_step_equals_the_three_pass_step(
        p in wide_problem(false), toward in any::<bool>(), lr in 0.001f32..0.3,
    ) {
        check_fused_step(&p, toward, lr)?;
    }

    #[test]
    fn fused_mlp_training_step_equals_the_three_pass_step(
        p in wide_problem(true), toward in any::<bool>(), lr in 0.001f32..0.3,
    ) {
        check_fused_step(&p, toward, lr)?;
    }
}

/// The training loop's step (`train_grad_in` on rows read in place, then `Sgd::step_decayed`)
/// against the step it replaces (`loss_and_grad` on a copy of the rows, `pull_toward` when
/// decaying toward a prior, then `Sgd::step`): the same loss and, over two steps (so the
/// momentum counts), the same weights.
fn check_fused_step(p: &Problem, toward: bool, lr: f32) -> Result<(), TestCaseError> {
    let b = p.x.nrows();
    // The batch: the rows in reverse order, the first one twice.
    let rows: Vec<usize> = (0..b).rev().chain(std::iter::once(0)).collect();
    let batch = p.x.select(ndarray::Axis(0), &rows);
    let labels: Vec<usize> = rows.iter().map(|&i| p.labels[i]).collect();
    let wd = p.weight_decay;
    let target = toward.then(|| {
        let mut t = p.params.clone();
        for l in &mut t.layers {
            l.w.mapv_inplace(|v| 0.5 * v - 0.1);
        }
        t
    });
    let mut three = p.params.clone();
    let mut fused = p.params.clone();
    let mut sgd3 = Sgd::new(&three, 0.9, true);
    let mut sgd_f = Sgd::new(&fused, 0.9, true);
    let mut g3 = three.zeros_like();
    let mut gf = fused.zeros_like();
    let mut ws = Workspace::new();
    let narrow = p.params.layers[0].w.nrows() <= MAX_NARROW_OUTPUTS;
    for step in 0..2 {
        let mut want = three.loss_and_grad(batch.view(), &labels, &p.class_weights, wd, &mut g3);
        if let Some(t) = &target {
            pull_toward(&mut g3, t, wd);
            want += prior_penalty_correction(&three, t, wd);
        }
        sgd3.step(&mut three, &g3, lr);

        let input = if narrow {
            Rows::picked(p.x.view(), &rows)
        } else {
            Rows::all(batch.view())
        }
        .expect("standard layout");
        let ce = fused.train_grad_in(input, &labels, &p.class_weights, &mut gf, &mut ws);
        let got = ce + sgd_f.step_decayed(&mut fused, &gf, lr, wd, target.as_ref());
        prop_assert!(
            (got - want).abs() <= 1e-4 + 1e-4 * want.abs(),
            "step {step}: loss {got} vs {want}"
        );
        for (l, (a, e)) in fused.layers.iter().zip(&three.layers).enumerate() {
            for (x, y) in a.w.iter().zip(&e.w).chain(a.b.iter().zip(&e.b)) {
                prop_assert!(
                    (x - y).abs() <= 1e-4 + 1e-4 * y.abs(),
                    "step {step}, layer {l}: fused {x} vs three-pass {y}"
                );
            }
        }
    }
    Ok(())
}
