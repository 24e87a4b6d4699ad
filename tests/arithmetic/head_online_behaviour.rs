//! `Head::learn_rehearsed` on seeded synthetic data: it records the new sample exactly as `learn`
//! does, keeps every press within its logit bound, pulls a poorly fitted rehearsed sample towards
//! its class, and refuses bad input without changing the head.

use crate::head_support;

use fieldtune::head::classifier::ONLINE_MAX_LOGIT_MOVE;
use fieldtune::head::params::logit_move;
use fieldtune::head::{Head, HeadError, HeadKind, HyperParams};
use head_support::{blob_splits, blobs};
use ndarray::{Array2, Axis};

fn quick() -> HyperParams {
    HyperParams::builder().epochs(15).check().expect("valid")
}

fn kinds() -> [HeadKind; 2] {
    [HeadKind::Linear, HeadKind::Mlp { hidden: 32 }]
}

/// The bookkeeping fields of a head's serialised form (everything but the weights).
fn bookkeeping(head: &Head) -> Vec<serde_json::Value> {
    let v = serde_json::to_value(head).expect("serialises");
    [
        "prototypes",
        "center",
        "center_count",
        "online_scores",
        "calibration",
    ]
    .iter()
    .map(|k| v[*k].clone())
    .collect()
}

#[test]
fn the_new_sample_is_recorded_exactly_as_by_learn() {
    let data = blobs(3, 24, &[30, 30, 30], 3.0, 11);
    for kind in kinds() {
        // Grown from examples, never calibrated on data: 25 presses set the online threshold.
        let mut head = Head::new(24, kind, quick());
        for c in 0..3 {
            let first = data.labels.iter().position(|&l| l == c).expect("present");
            head.add_class(
                &format!("c{c}"),
                data.features.row(first).insert_axis(Axis(0)),
            )
            .expect("adds");
        }
        let stored = data.select(&[1, 31, 61]);
        let (mut learned, mut rehearsed) = (head.clone(), head.clone());
        for i in 0..25 {
            let row = 3 * i + 2;
            let (x, y) = (data.features.row(row), data.labels[row]);
            // One press from the same head: every recorded field agrees, for both kinds.
            let (mut a, mut b) = (head.clone(), head.clone());
            a.learn(x, y).expect("learns");
            b.learn_rehearsed(x, y, stored.features.view(), &stored.labels)
                .expect("learns rehearsed");
            assert_eq!(bookkeeping(&a), bookkeeping(&b), "{kind:?} press {i}");
            head = a;
            // Over a run, the fields that do not depend on the weights agree too.
            learned.learn(x, y).expect("learns");
            rehearsed
                .learn_rehearsed(x, y, stored.features.view(), &stored.labels)
                .expect("learns rehearsed");
        }
        assert_eq!(
            learned.class_sample_counts(),
            rehearsed.class_sample_counts()
        );
        let (a, b) = (learned.calibration(), rehearsed.calibration());
        assert_eq!(
            (a.unknown_threshold, a.accepted_fraction, a.samples),
            (b.unknown_threshold, b.accepted_fraction, b.samples)
        );
        assert!(rehearsed.calibration().unknown_threshold.is_finite());
    }
}

#[test]
fn no_press_moves_a_logit_difference_of_its_batch_by_more_than_the_bound() {
    let (train, val, test) = blob_splits(4, 32, 20, 2.0, 12);
    for kind in kinds() {
        let (mut head, _) =
            Head::train(&train, Some(&val), kind, &quick(), &mut |_| {}).expect("trains");
        let stored = test.select(&[1, 2, 3, 4, 5, 6]);
        for i in 0..20 {
            let x = test.features.row(10 + i);
            // A label it does not predict: the plain step would move the logits a lot.
            let y = (head.predict(x).top[0].0 + 1) % 4;
            let mut batch = Array2::zeros((1 + stored.len(), 32));
            batch.row_mut(0).assign(&x);
            batch
                .slice_mut(ndarray::s![1.., ..])
                .assign(&stored.features);
            let before = head.logits(batch.view()).expect("logits");
            let mut plain = head.clone();
            plain.learn(x, y).expect("learns");
            head.learn_rehearsed(x, y, stored.features.view(), &stored.labels)
                .expect("learns rehearsed");
            let moved = logit_move(before.view(), head.logits(batch.view()).expect("").view());
            let plain_moved =
                logit_move(before.view(), plain.logits(batch.view()).expect("").view());
            assert!(
                moved <= ONLINE_MAX_LOGIT_MOVE * 1.001,
                "{kind:?} press {i}: moved {moved} (learn: {plain_moved})"
            );
            assert!(moved > 0.0, "{kind:?} press {i}: no step");
        }
    }
}

#[test]
fn a_poorly_fitted_rehearsed_sample_is_pulled_towards_its_class() {
    let (train, val, test) = blob_splits(3, 16, 20, 1.0, 13);
    for kind in kinds() {
        let (head, _) =
            Head::train(&train, Some(&val), kind, &quick(), &mut |_| {}).expect("trains");
        let p = head.predict_proba(test.features.view());
        let true_p = |p: &Array2<f32>, i: usize| p[[i, test.labels[i]]];
        // The test sample the head fits worst, and a press of another class.
        let worst = (0..test.len())
            .min_by(|&a, &b| true_p(&p, a).total_cmp(&true_p(&p, b)))
            .expect("samples");
        let c = test.labels[worst];
        let press = (0..test.len())
            .find(|&i| test.labels[i] != c)
            .expect("another class");
        let row = test.features.slice(ndarray::s![worst..worst + 1, ..]);
        let (mut alone, mut rehearsed) = (head.clone(), head.clone());
        alone
            .learn_rehearsed(
                test.features.row(press),
                test.labels[press],
                Array2::zeros((0, 16)).view(),
                &[],
            )
            .expect("learns");
        rehearsed
            .learn_rehearsed(test.features.row(press), test.labels[press], row, &[c])
            .expect("learns rehearsed");
        let after = |h: &Head| h.predict_proba(row)[[0, c]];
        assert!(
            after(&rehearsed) > after(&alone),
            "{kind:?}: p(true) of the rehearsed sample {} -> {} (without rehearsal {})",
            true_p(&p, worst),
            after(&rehearsed),
            after(&alone)
        );
    }
}

#[test]
fn bad_rehearsal_input_is_refused_and_changes_nothing() {
    let (train, _, test) = blob_splits(3, 8, 10, 2.0, 14);
    let (mut head, _) =
        Head::train(&train, None, HeadKind::Linear, &quick(), &mut |_| {}).expect("trains");
    let original = head.clone();
    let x = test.features.row(0);
    let rows = test.features.slice(ndarray::s![1..3, ..]);
    assert_eq!(
        head.learn_rehearsed(x, 0, rows, &[1]),
        Err(HeadError::LabelCountMismatch {
            name: "rehearsal",
            rows: 2,
            labels: 1
        })
    );
    assert_eq!(
        head.learn_rehearsed(x, 0, Array2::zeros((1, 5)).view(), &[1]),
        Err(HeadError::DimensionMismatch {
            expected: 8,
            got: 5
        })
    );
    let mut nan = rows.to_owned();
    nan[[1, 3]] = f32::NAN;
    assert_eq!(
        head.learn_rehearsed(x, 0, nan.view(), &[1, 2]),
        Err(HeadError::NonFiniteFeature {
            name: "rehearsal",
            row: 1
        })
    );
    assert_eq!(
        head.learn_rehearsed(x, 0, rows, &[1, 3]),
        Err(HeadError::LabelOutOfRange {
            label: 3,
            classes: 3
        })
    );
    assert_eq!(
        head.learn_rehearsed(x, 7, rows, &[1, 2]),
        Err(HeadError::LabelOutOfRange {
            label: 7,
            classes: 3
        })
    );
    assert_eq!(
        head.learn_rehearsed(ndarray::Array1::zeros(3).view(), 0, rows, &[1, 2]),
        Err(HeadError::DimensionMismatch {
            expected: 8,
            got: 3
        })
    );
    assert_eq!(head, original, "a refused press changes nothing");
    // Rows of the pressed class itself are allowed (they share its weight), and an empty
    // rehearsal of any width is fine.
    head.learn_rehearsed(x, 0, rows, &[0, 1]).expect("learns");
    head.learn_rehearsed(x, 0, Array2::zeros((0, 0)).view(), &[])
        .expect("learns");
}
