//! Behaviour of the head API on seeded synthetic data: hyper-parameter validation, reproducibility,
//! imprinting, online learning, calibration, unknown detection, growing from empty, serde round trip
//! and the typed errors.

use crate::head_support;

use fieldtune::head::{Dataset, Head, HeadError, HeadKind, HyperParams, ValidationSource};
use head_support::{blob_splits, blobs, nearest_class_mean_accuracy, normal};
use ndarray::{Array1, Array2, Axis};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

fn quick() -> HyperParams {
    HyperParams::builder().epochs(15).check().expect("valid")
}

fn kinds() -> [HeadKind; 2] {
    [HeadKind::Linear, HeadKind::Mlp { hidden: 32 }]
}

#[test]
fn invalid_hyper_parameters_are_refused_with_their_own_error() {
    let b = HyperParams::builder;
    assert_eq!(
        b().learning_rate(0.0).check(),
        Err(HeadError::InvalidLearningRate(0.0))
    );
    assert!(matches!(
        b().learning_rate(f32::NAN).check(),
        Err(HeadError::InvalidLearningRate(_))
    ));
    assert_eq!(
        b().online_learning_rate(-1.0).check(),
        Err(HeadError::InvalidOnlineLearningRate(-1.0))
    );
    assert_eq!(
        b().momentum(1.0).check(),
        Err(HeadError::InvalidMomentum(1.0))
    );
    assert_eq!(
        b().weight_decay(-0.1).check(),
        Err(HeadError::InvalidWeightDecay(-0.1))
    );
    assert_eq!(
        b().batch_size(0).check(),
        Err(HeadError::InvalidBatchSize(0))
    );
    assert_eq!(b().epochs(0).check(), Err(HeadError::InvalidEpochs(0)));
    assert_eq!(
        b().epochs(3).warmup_epochs(3).check(),
        Err(HeadError::InvalidWarmup {
            warmup: 3,
            epochs: 3
        })
    );
    assert_eq!(
        b().validation_fraction(0.9).check(),
        Err(HeadError::InvalidValidationFraction(0.9))
    );
    assert_eq!(
        b().target_acceptance(0.0).check(),
        Err(HeadError::InvalidTargetAcceptance(0.0))
    );
    let msg = b().learning_rate(-2.0).check().unwrap_err().to_string();
    assert!(
        msg.contains("learning_rate"),
        "message names the key: {msg}"
    );
}

#[test]
fn same_seed_same_bits_other_seed_other_mlp() {
    let (train, val, _) = blob_splits(3, 24, 30, 3.0, 1);
    for kind in kinds() {
        let run = |seed| {
            let h = quick().to_builder().seed(seed).check().expect("valid");
            Head::train(&train, Some(&val), kind, &h, &mut |_| {})
                .expect("trains")
                .0
        };
        let (a, b) = (run(7), run(7));
        assert_eq!(a, b, "{kind:?}: two runs with one seed differ");
        let bits = |h: &Head| postcard::to_stdvec(h).expect("serialises");
        assert_eq!(bits(&a), bits(&b));
        if matches!(kind, HeadKind::Mlp { .. }) {
            assert_ne!(
                a,
                run(8),
                "the seed must matter for the MLP's initialisation"
            );
        }
    }
}

#[test]
fn trained_heads_classify_held_out_blobs_and_report_epochs() {
    let (train, val, test) = blob_splits(4, 32, 40, 2.5, 2);
    let ncm_acc = nearest_class_mean_accuracy(&train, &test);
    for kind in kinds() {
        let mut epochs = Vec::new();
        let (head, report) = Head::train(
            &train,
            Some(&val),
            kind,
            &HyperParams::default(),
            &mut |e| epochs.push(*e),
        )
        .expect("trains");
        assert_eq!(epochs.len(), report.epochs_run);
        assert!(epochs
            .iter()
            .all(|e| e.val_accuracy.is_some() && e.train_loss.is_finite()));
        assert!(report.best_epoch >= 1 && report.best_epoch <= report.epochs_run);
        // The final weights are refitted on training and validation data together.
        assert_eq!(report.fit_samples, train.len());
        assert_eq!(report.refit_samples, Some(train.len() + val.len()));
        let prototype_samples: u64 = head.class_sample_counts().iter().sum();
        assert_eq!(prototype_samples as usize, train.len() + val.len());
        let acc = head_support::accuracy(&head.predict_proba(test.features.view()), &test.labels);
        println!(
            "{kind:?}: test accuracy {acc:.3}, nearest class mean {ncm_acc:.3}, epochs {}",
            report.epochs_run
        );
        assert!(
            acc >= ncm_acc - 0.02,
            "{kind:?}: {acc} vs baseline {ncm_acc}"
        );
        assert!(acc > 0.9, "{kind:?}: {acc}");
    }
}

#[test]
fn without_validation_a_stratified_part_is_held_out_and_calibrated_on() {
    let (train, _, _) = blob_splits(3, 16, 40, 3.0, 3);
    let (head, report) =
        Head::train(&train, None, HeadKind::Linear, &quick(), &mut |_| {}).expect("trains");
    let ValidationSource::HeldOut(n) = report.validation else {
        panic!("expected a hold-out, got {:?}", report.validation)
    };
    assert_eq!(n, 18, "15 % of 40 per class, 3 classes");
    assert_eq!(report.fit_samples, train.len() - n);
    assert_eq!(report.refit_samples, Some(train.len()));
    assert!(report.best_val_accuracy.is_some());
    // Calibrated on the hold-out, before the refit folded it in; a hold-out under
    // MIN_CALIBRATION_SAMPLES is pooled with the fitting set's leave-one-out scores.
    let expected = if n < fieldtune::head::train::MIN_CALIBRATION_SAMPLES {
        n + report.fit_samples
    } else {
        n
    };
    assert_eq!(head.calibration().samples, expected);
}

#[test]
fn calibration_accepts_at_least_the_target_share_of_validation() {
    let (train, val, test) = blob_splits(4, 32, 50, 2.5, 4);
    for kind in kinds() {
        let (head, report) = Head::train(
            &train,
            Some(&val),
            kind,
            &HyperParams::default(),
            &mut |_| {},
        )
        .expect("trains");
        let accepted = |d: &Dataset| {
            head.predict_batch(d.features.view())
                .iter()
                .filter(|p| p.class.is_some())
                .count() as f32
                / d.len() as f32
        };
        let (on_val, on_test) = (accepted(&val), accepted(&test));
        println!(
            "{kind:?}: accepted val {on_val:.3} test {on_test:.3}, T = {}",
            report.calibration.temperature
        );
        assert!(on_val >= 0.95, "{kind:?}: {on_val}");
        assert!(report.calibration.nll_after <= report.calibration.nll_before);
    }
}

#[test]
fn inputs_unlike_every_class_are_unknown() {
    let (train, val, _) = blob_splits(3, 64, 60, 3.0, 5);
    let (head, _) = Head::train(
        &train,
        Some(&val),
        HeadKind::Linear,
        &HyperParams::default(),
        &mut |_| {},
    )
    .expect("trains");
    // Other blobs: same offset and noise, class means drawn afresh (a new seed).
    let strangers = blobs(5, 64, &[4; 5], 3.0, 99);
    let unknown = head
        .predict_batch(strangers.features.view())
        .iter()
        .filter(|p| p.class.is_none())
        .count();
    println!(
        "strangers reported unknown: {unknown} / {}",
        strangers.len()
    );
    assert!(unknown as f32 >= 0.8 * strangers.len() as f32);
}

#[test]
fn a_class_imprinted_from_one_example_predicts_that_example() {
    let data = blobs(5, 32, &[40, 40, 40, 40, 2], 3.0, 6);
    let idx_new: Vec<usize> = (0..data.len()).filter(|&i| data.labels[i] == 4).collect();
    let idx_old: Vec<usize> = (0..data.len()).filter(|&i| data.labels[i] < 4).collect();
    let mut old = data.select(&idx_old);
    old.classes.truncate(4);
    for kind in kinds() {
        let (mut head, _) = Head::train(&old, None, kind, &quick(), &mut |_| {}).expect("trains");
        let before: Vec<_> = head
            .predict_batch(old.features.view())
            .iter()
            .map(|p| p.top[0].0)
            .collect();
        let example = data.features.row(idx_new[0]);
        let c = head
            .add_class("newcomer", example.insert_axis(Axis(0)))
            .expect("adds");
        assert_eq!(c, 4);
        assert_eq!(head.classes().len(), 5);
        assert_eq!(head.predict(example).top[0].0, 4, "{kind:?}");
        // The second, unseen example of the new class also lands there (linear head: imprinting in the
        // standardised space generalises; the MLP's hidden layer was shaped by the old classes only,
        // so there one example is not enough and `learn` has to follow).
        if kind == HeadKind::Linear {
            assert_eq!(head.predict(data.features.row(idx_new[1])).top[0].0, 4);
        }
        // Old classes mostly keep their predictions.
        let after: Vec<_> = head
            .predict_batch(old.features.view())
            .iter()
            .map(|p| p.top[0].0)
            .collect();
        let kept = before.iter().zip(&after).filter(|(a, b)| a == b).count();
        assert!(
            kept as f32 >= 0.95 * before.len() as f32,
            "{kind:?}: kept {kept}/{}",
            before.len()
        );
    }
}

#[test]
fn learn_moves_the_prediction_towards_the_label() {
    let (train, val, test) = blob_splits(3, 16, 20, 1.0, 7);
    for kind in kinds() {
        let (mut head, _) =
            Head::train(&train, Some(&val), kind, &quick(), &mut |_| {}).expect("trains");
        for i in 0..10 {
            let x = test.features.row(i);
            // Teach it a label it does not currently predict.
            let now = head.predict(x).top[0].0;
            let target = (now + 1) % 3;
            let p = |h: &Head| {
                h.predict(x)
                    .top
                    .iter()
                    .find(|t| t.0 == target)
                    .map(|t| t.1)
                    .unwrap_or(0.0)
            };
            let before = p(&head);
            head.learn(x, target).expect("learns");
            let after = p(&head);
            assert!(after > before, "{kind:?} sample {i}: {before} -> {after}");
        }
    }
}

#[test]
fn an_empty_head_grows_on_the_device() {
    let data = blobs(3, 48, &[30, 30, 30], 3.0, 8);
    for kind in kinds() {
        let mut head = Head::new(48, kind, HyperParams::default());
        assert!(head.classes().is_empty());
        assert_eq!(head.predict(data.features.row(0)).class, None);
        assert_eq!(
            head.try_predict(data.features.row(0)),
            Err(HeadError::NoClasses)
        );
        // One example per class, then a stream of button presses.
        for c in 0..3 {
            let first = data
                .labels
                .iter()
                .position(|&l| l == c)
                .expect("class present");
            let i = head
                .add_class(
                    &format!("c{c}"),
                    data.features.row(first).insert_axis(Axis(0)),
                )
                .expect("adds");
            assert_eq!(i, c);
            assert_eq!(
                head.predict(data.features.row(first)).class,
                Some(c),
                "{kind:?} class {c}"
            );
        }
        let mut order: Vec<usize> = (0..data.len()).collect();
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        rand::seq::SliceRandom::shuffle(&mut order[..], &mut rng);
        let (stream, holdout) = order.split_at(60);
        for &i in stream {
            head.learn(data.features.row(i), data.labels[i])
                .expect("learns");
        }
        let right = holdout
            .iter()
            .filter(|&&i| head.predict(data.features.row(i)).top[0].0 == data.labels[i])
            .count();
        println!(
            "{kind:?}: grown from empty, {right}/{} right",
            holdout.len()
        );
        assert!(right as f32 >= 0.9 * holdout.len() as f32);
        assert!(
            head.calibration().unknown_threshold.is_finite(),
            "online threshold set after 60 presses"
        );
        assert!(head
            .predict(data.features.row(holdout[0]))
            .top
            .iter()
            .all(|t| t.1.is_finite()));
    }
}

#[test]
fn postcard_round_trip_predicts_identically() {
    let (train, val, test) = blob_splits(3, 24, 20, 2.0, 9);
    for kind in kinds() {
        let (mut head, _) =
            Head::train(&train, Some(&val), kind, &quick(), &mut |_| {}).expect("trains");
        head.add_class("extra", test.features.slice(ndarray::s![..2, ..]))
            .expect("adds");
        let bytes = postcard::to_stdvec(&head).expect("serialises");
        let back: Head = postcard::from_bytes(&bytes).expect("deserialises");
        assert_eq!(back, head);
        assert_eq!(
            back.predict_batch(test.features.view()),
            head.predict_batch(test.features.view())
        );
        // A truncated file is an error, not a panic.
        assert!(postcard::from_bytes::<Head>(&bytes[..bytes.len() / 2]).is_err());
    }
}

#[test]
fn bad_inputs_get_typed_errors() {
    let (train, val, _) = blob_splits(3, 8, 10, 2.0, 10);
    let hyper = quick();
    let (mut head, _) =
        Head::train(&train, Some(&val), HeadKind::Linear, &hyper, &mut |_| {}).expect("trains");
    let short = Array1::<f32>::zeros(5);
    assert_eq!(
        head.learn(short.view(), 0),
        Err(HeadError::DimensionMismatch {
            expected: 8,
            got: 5
        })
    );
    assert_eq!(head.predict(short.view()).class, None);
    let x = train.features.row(0);
    assert_eq!(
        head.learn(x, 3),
        Err(HeadError::LabelOutOfRange {
            label: 3,
            classes: 3
        })
    );
    let mut nan = x.to_owned();
    nan[2] = f32::NAN;
    assert!(matches!(
        head.learn(nan.view(), 0),
        Err(HeadError::NonFiniteFeature { .. })
    ));
    assert_eq!(
        head.add_class("class1", x.insert_axis(Axis(0))),
        Err(HeadError::DuplicateClass("class1".into()))
    );
    assert_eq!(
        head.add_class(" ", x.insert_axis(Axis(0))),
        Err(HeadError::EmptyClassName)
    );
    assert_eq!(
        head.add_class("z", Array2::<f32>::zeros((0, 8)).view()),
        Err(HeadError::NoExamples("z".into()))
    );
    assert_eq!(
        head.rename_class(9, "q"),
        Err(HeadError::LabelOutOfRange {
            label: 9,
            classes: 3
        })
    );
    head.rename_class(0, "renamed").expect("renames");
    assert_eq!(head.classes()[0], "renamed");

    let mut other = val.clone();
    other.classes[1] = "different".into();
    assert!(matches!(
        Head::train(&train, Some(&other), HeadKind::Linear, &hyper, &mut |_| {}),
        Err(HeadError::ClassListMismatch { .. })
    ));
    assert!(matches!(
        Head::train(
            &train,
            None,
            HeadKind::Mlp { hidden: 0 },
            &hyper,
            &mut |_| {}
        ),
        Err(HeadError::InvalidHiddenWidth(0))
    ));
    let empty = Dataset {
        features: Array2::zeros((0, 8)),
        labels: vec![],
        classes: train.classes.clone(),
    };
    assert_eq!(
        Head::train(&empty, None, HeadKind::Linear, &hyper, &mut |_| {}).unwrap_err(),
        HeadError::EmptyDataset("train")
    );
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let wide = Array2::from_shape_simple_fn((val.len(), 9), || normal(&mut rng));
    let wrong = Dataset {
        features: wide,
        ..val.clone()
    };
    assert_eq!(
        Head::train(&train, Some(&wrong), HeadKind::Linear, &hyper, &mut |_| {}).unwrap_err(),
        HeadError::DimensionMismatch {
            expected: 8,
            got: 9
        }
    );
    let big_lr = hyper
        .to_builder()
        .learning_rate(1e30)
        .check()
        .expect("valid, if silly");
    assert!(matches!(
        Head::train(&train, Some(&val), HeadKind::Linear, &big_lr, &mut |_| {}),
        Err(HeadError::Diverged { .. })
    ));
}
