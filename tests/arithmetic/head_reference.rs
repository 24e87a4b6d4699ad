//! The linear head trained by our mini-batch SGD against a naive reference solver of the same convex
//! problem (multinomial logistic regression on the standardised features, its weights decayed
//! toward the class-mean prior the training starts from, `head::fewshot`): full-batch gradient
//! descent run to convergence, written here independently of the library's maths.

use crate::head_support;

use fieldtune::head::standardize::Standardizer;
use fieldtune::head::{Head, HeadKind, HyperParams, ValidationSource};
use ndarray::{Array1, Array2};
use rand::SeedableRng;

/// Mean cross-entropy + λ/2‖W − W₀‖², computed naively in f64.
fn objective(
    z: &Array2<f64>,
    y: &[usize],
    (w, b): (&Array2<f64>, &Array1<f64>),
    w0: &Array2<f64>,
    lambda: f64,
) -> f64 {
    let mut total = 0.0;
    for (row, &label) in z.outer_iter().zip(y) {
        let logits: Vec<f64> = (0..w.nrows()).map(|c| w.row(c).dot(&row) + b[c]).collect();
        let max = logits.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let lse = logits.iter().map(|l| (l - max).exp()).sum::<f64>().ln() + max;
        total += lse - logits[label];
    }
    let penalty: f64 = w.iter().zip(w0).map(|(v, v0)| (v - v0) * (v - v0)).sum();
    total / z.nrows() as f64 + 0.5 * lambda * penalty
}

/// Plain full-batch gradient descent, many small steps, in f64.
fn reference_solve(
    z: &Array2<f64>,
    y: &[usize],
    k: usize,
    w0: &Array2<f64>,
    lambda: f64,
) -> (Array2<f64>, Array1<f64>) {
    let n = z.nrows();
    // From the prior, as the library's SGD starts (the optimum is the same from anywhere).
    let mut w = w0.clone();
    let mut b = Array1::<f64>::zeros(k);
    for _ in 0..200_000 {
        let mut gw = (&w - w0) * lambda;
        let mut gb = Array1::<f64>::zeros(k);
        for (row, &label) in z.outer_iter().zip(y) {
            let logits: Vec<f64> = (0..k).map(|c| w.row(c).dot(&row) + b[c]).collect();
            let max = logits.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let e: Vec<f64> = logits.iter().map(|l| (l - max).exp()).collect();
            let s: f64 = e.iter().sum();
            for c in 0..k {
                let g = (e[c] / s - if c == label { 1.0 } else { 0.0 }) / n as f64;
                gw.row_mut(c).scaled_add(g, &row);
                gb[c] += g;
            }
        }
        w.scaled_add(-0.05, &gw);
        b.scaled_add(-0.05, &gb);
    }
    (w, b)
}

#[test]
fn sgd_reaches_the_reference_optimum() {
    // 3 classes × 7 samples: below the hold-out minimum, so all samples fit and no early stopping.
    let data = head_support::blobs(3, 4, &[7, 7, 7], 1.5, 11);
    let lambda = 0.05f32;
    let l64 = f64::from(lambda);
    for batch_size in [21usize, 5] {
        let hyper = HyperParams::builder()
            .weight_decay(lambda)
            .class_balanced(false)
            .epochs(1000)
            .warmup_epochs(1)
            .batch_size(batch_size)
            .learning_rate(0.05)
            .check()
            .expect("valid hyper-parameters");
        let (head, report) =
            Head::train(&data, None, HeadKind::Linear, &hyper, &mut |_| {}).expect("training runs");
        assert_eq!(report.validation, ValidationSource::None);

        let z32 = Standardizer::fit(data.features.view()).transform(data.features.view());
        assert_eq!(&z32, &head.standardizer().transform(data.features.view()));
        let z = z32.mapv(f64::from);
        // The decay's target: the class-mean prior (the same for every seed: a linear prior
        // draws nothing at random).
        let prior = fieldtune::head::fewshot::prior(
            HeadKind::Linear,
            data.features.view(),
            &data.labels,
            3,
            &Standardizer::fit(data.features.view()),
            &mut rand_chacha::ChaCha8Rng::seed_from_u64(0),
        )
        .expect("a linear head always has a prior");
        let w0 = prior.target.layers[0].w.mapv(f64::from);
        let (w_ref, b_ref) = reference_solve(&z, &data.labels, 3, &w0, l64);
        let out = &head.params().layers[0];
        let (w, b) = (out.w.mapv(f64::from), out.b.mapv(f64::from));
        let ours = objective(&z, &data.labels, (&w, &b), &w0, l64);
        let reference = objective(&z, &data.labels, (&w_ref, &b_ref), &w0, l64);
        println!("batch {batch_size}: objective ours {ours:.6}, reference {reference:.6}");
        assert!(
            ours - reference < 2e-3 * reference.max(0.1),
            "ours {ours} vs reference {reference}"
        );

        // Same decisions and nearly the same probabilities on every sample.
        let proba = head
            .try_predict_proba(data.features.view())
            .expect("dims match");
        // The head's probabilities are temperature-1 here (no validation data to fit one on).
        assert_eq!(head.calibration().temperature, 1.0);
        for (i, row) in z.outer_iter().enumerate() {
            let logits: Vec<f64> = (0..3).map(|c| w_ref.row(c).dot(&row) + b_ref[c]).collect();
            let max = logits.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let s: f64 = logits.iter().map(|l| (l - max).exp()).sum();
            for c in 0..3 {
                let p_ref = (logits[c] - max).exp() / s;
                let p = proba[[i, c]] as f64;
                assert!(
                    (p - p_ref).abs() < 0.02,
                    "sample {i} class {c}: {p} vs {p_ref}"
                );
            }
        }
    }
}
