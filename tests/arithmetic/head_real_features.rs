//! The head on real backbone features: the committed corn4-mini images are embedded with the real
//! model (models/efficientnet_lite0_features.onnx through tract), a head is trained on them, and the
//! four unrelated reference photos (cat, coffee cup, palace, daisy; features committed in
//! tests/data/reference) must come out "unknown" while the calibrated threshold still accepts
//! ≥ 95 % of the validation images.
//!
//! An ignored test (`cargo test --release --test arithmetic head_real_features:: -- --ignored
//! --nocapture`) trains on the full corn4 features exported to `$FIELDTUNE_CORN4_FEATURES`
//! (default /work/feats/corn4: `{split}.features.f32`, `{split}.labels.txt`, `classes.txt`, or
//! `{split}/features.f32` etc.) and prints accuracy and retrain time per head kind.

use crate::head_support;

use std::path::{Path, PathBuf};

use fieldtune::embedder::Embedder;
use fieldtune::head::{Dataset, Head, HeadKind, HyperParams};
use fieldtune::model::ModelDescriptor;
use ndarray::Array2;

const REFERENCE_PHOTOS: [&str; 4] = ["chelsea", "coffee", "china", "flower"];

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Embeds `tests/data/corn4-mini/<split>/<class>/*` with the real backbone.
fn embed_split(embedder: &mut Embedder, split: &str) -> Dataset {
    let root = repo().join("tests/data/corn4-mini").join(split);
    let mut classes: Vec<String> = std::fs::read_dir(&root)
        .expect("corn4-mini split")
        .filter_map(|e| e.ok())
        .filter(|e| e.path().is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    classes.sort();
    let (mut rows, mut labels) = (Vec::new(), Vec::new());
    for (c, class) in classes.iter().enumerate() {
        let mut files: Vec<PathBuf> = std::fs::read_dir(root.join(class))
            .expect("class folder")
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect();
        files.sort();
        for f in files {
            let bytes = std::fs::read(&f).expect("image bytes");
            rows.extend(embedder.embed_bytes(&bytes).expect("embeds"));
            labels.push(c);
        }
    }
    let n = labels.len();
    let dim = rows.len() / n;
    Dataset::new(
        Array2::from_shape_vec((n, dim), rows).expect("n × dim"),
        labels,
        classes,
    )
    .expect("valid")
}

fn reference_features() -> Array2<f32> {
    let mut out = Array2::zeros((REFERENCE_PHOTOS.len(), 1280));
    for (i, name) in REFERENCE_PHOTOS.iter().enumerate() {
        let f = head_support::read_f32(
            &repo().join(format!("tests/data/reference/{name}.features.f32")),
            1280,
        );
        out.row_mut(i).assign(&f.row(0));
    }
    out
}

#[test]
fn unrelated_photos_are_unknown_to_a_head_trained_on_corn_leaves() {
    let descriptor = ModelDescriptor::load_default().expect("shipped model descriptor");
    let mut embedder = Embedder::load(&descriptor).expect("real backbone loads");
    let (train, val) = (
        embed_split(&mut embedder, "train"),
        embed_split(&mut embedder, "val"),
    );
    let photos = reference_features();
    for kind in [HeadKind::Linear, HeadKind::default_mlp()] {
        let (head, report) = Head::train(
            &train,
            Some(&val),
            kind,
            &HyperParams::default(),
            &mut |_| {},
        )
        .expect("trains");
        let accepted = head
            .predict_batch(val.features.view())
            .iter()
            .filter(|p| p.class.is_some())
            .count() as f32
            / val.len() as f32;
        println!(
            "{kind:?}: val accuracy {:?}, accepted {accepted:.3}, threshold {:.3}",
            report.best_val_accuracy, report.calibration.unknown_threshold
        );
        assert!(
            accepted >= 0.95,
            "{kind:?}: only {accepted} of validation accepted"
        );
        for (name, p) in REFERENCE_PHOTOS
            .iter()
            .zip(head.predict_batch(photos.view()))
        {
            println!("  {name}: unknown score {:.3}", p.unknown_score);
            assert_eq!(
                p.class,
                None,
                "{kind:?}: {name} should be unknown, got {:?}",
                p.top.first()
            );
        }
    }
}

fn corn4_dir() -> PathBuf {
    std::env::var_os("FIELDTUNE_CORN4_FEATURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/work/feats/corn4"))
}

/// Loads a split in either export layout (`{split}.features.f32` or `{split}/features.f32`).
fn load_corn4(dir: &Path, split: &str) -> Dataset {
    let sub = dir.join(split);
    if sub.join("features.f32").is_file() {
        let features = head_support::read_f32(&sub.join("features.f32"), 1280);
        let read_lines = |p: PathBuf| -> Vec<String> {
            std::fs::read_to_string(p)
                .expect("text file")
                .lines()
                .map(|l| l.trim().to_string())
                .filter(|l| !l.is_empty())
                .collect()
        };
        let labels = read_lines(sub.join("labels.txt"))
            .iter()
            .map(|l| l.parse().expect("label"))
            .collect();
        Dataset::new(features, labels, read_lines(sub.join("classes.txt"))).expect("valid split")
    } else {
        head_support::load_split(dir, split, 1280)
    }
}

#[test]
#[ignore = "needs the full corn4 features; prints figures"]
fn corn4_accuracy_and_retrain_time() {
    let dir = corn4_dir();
    let (train, val, test) = (
        load_corn4(&dir, "train"),
        load_corn4(&dir, "val"),
        load_corn4(&dir, "test"),
    );
    let ncm_acc = head_support::nearest_class_mean_accuracy(&train, &test);
    println!(
        "train {} val {} test {}; nearest class mean test accuracy {:.4}",
        train.len(),
        val.len(),
        test.len(),
        ncm_acc
    );
    let photos = reference_features();
    for kind in [HeadKind::Linear, HeadKind::default_mlp()] {
        let start = std::time::Instant::now();
        let (mut head, report) = Head::train(
            &train,
            Some(&val),
            kind,
            &HyperParams::default(),
            &mut |_| {},
        )
        .expect("trains");
        let seconds = start.elapsed().as_secs_f64();
        let acc = head_support::accuracy(&head.predict_proba(test.features.view()), &test.labels);
        let preds = head.predict_batch(test.features.view());
        let accepted =
            preds.iter().filter(|p| p.class.is_some()).count() as f32 / test.len() as f32;
        let unknown_photos = head
            .predict_batch(photos.view())
            .iter()
            .filter(|p| p.class.is_none())
            .count();
        println!(
            "{kind:?}: test accuracy {acc:.4}, retrain {seconds:.3} s, epochs {} (best {}), val acc {:?}, T {:.3}, test accepted {accepted:.3}, reference photos unknown {unknown_photos}/4",
            report.epochs_run, report.best_epoch, report.best_val_accuracy, report.calibration.temperature
        );
        let x = test.features.row(0);
        let start = std::time::Instant::now();
        for i in 0..1000 {
            head.learn(x, i % 4).expect("learns");
        }
        println!(
            "  learn: {:.1} µs per call",
            start.elapsed().as_secs_f64() * 1e3
        );
        let start = std::time::Instant::now();
        for _ in 0..1000 {
            std::hint::black_box(head.predict(x));
        }
        println!(
            "  predict: {:.1} µs per call",
            start.elapsed().as_secs_f64() * 1e3
        );
        assert!(acc > ncm_acc);
    }
}
