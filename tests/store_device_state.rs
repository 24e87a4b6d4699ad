//! The device state with the real backbone and the real head: corn4-mini photos embedded by
//! EfficientNet-Lite0, labelled through `DeviceState`, then the process "restarts" (the state is
//! dropped and reopened). The recovered head must predict exactly as the live one did, through
//! journal replay, after a snapshot, and after an undo (retrain). Also measures that f16 feature
//! storage costs no accuracy.

use std::path::Path;
use std::sync::OnceLock;

use fieldtune::dataset::ImageFolder;
use fieldtune::embedder::Embedder;
use fieldtune::head::{Dataset, Head, HeadKind, HyperParams};
use fieldtune::model::{BackboneId, ModelDescriptor};
use fieldtune::store::features::{FeatureEncoding, StoredFeature};
use fieldtune::store::{DeviceConfig, DeviceState, FrameHash, StoreConfig};
use ndarray::{Array2, ArrayView1};

struct Split {
    features: Vec<Vec<f32>>,
    labels: Vec<usize>,
    hashes: Vec<FrameHash>,
}

struct Embedded {
    backbone: BackboneId,
    classes: Vec<String>,
    train: Split,
    test: Split,
}

fn embed(embedder: &mut Embedder, root: &Path) -> (Vec<String>, Split) {
    let folder = ImageFolder::scan(root).expect("corn4-mini folder");
    let mut split = Split {
        features: Vec::new(),
        labels: Vec::new(),
        hashes: Vec::new(),
    };
    for item in &folder.items {
        let bytes = std::fs::read(&item.path).expect("read image");
        split
            .features
            .push(embedder.embed_bytes(&bytes).expect("embed"));
        split.labels.push(item.label);
        split.hashes.push(FrameHash::of(&bytes));
    }
    (folder.classes, split)
}

fn embedded() -> &'static Embedded {
    static CELL: OnceLock<Embedded> = OnceLock::new();
    CELL.get_or_init(|| {
        let descriptor = ModelDescriptor::load_default().expect("models/ descriptor");
        let mut embedder = Embedder::load(&descriptor).expect("load the backbone");
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/corn4-mini");
        let (classes, train) = embed(&mut embedder, &root.join("train"));
        let (_, test) = embed(&mut embedder, &root.join("test"));
        Embedded {
            backbone: embedder.backbone_id(),
            classes,
            train,
            test,
        }
    })
}

fn predictions(state: &DeviceState, split: &Split) -> Vec<Option<usize>> {
    head_predictions(state.head(), split)
}

fn head_predictions(head: &Head, split: &Split) -> Vec<Option<usize>> {
    split
        .features
        .iter()
        .map(|f| {
            head.predict(ArrayView1::from(f.as_slice())).top[0..1]
                .first()
                .map(|(c, _)| *c)
        })
        .collect()
}

/// The head a retrain from the state's replay set gives (what recovery and the service do).
fn retrained_from_replay(state: &DeviceState) -> Head {
    let replay = state.replay_dataset().expect("samples left");
    Head::train(
        &replay,
        None,
        HeadKind::Linear,
        &HyperParams::default(),
        &mut |_| {},
    )
    .expect("train")
    .0
}

fn config() -> DeviceConfig {
    DeviceConfig {
        store: StoreConfig {
            // Only explicit snapshots, so the first reopen replays the whole journal.
            min_journal_bytes: u64::MAX,
            max_journal_bytes: u64::MAX,
            ..StoreConfig::default()
        },
        head_kind: Some(HeadKind::Linear),
        hyper: HyperParams::default(),
    }
}

#[test]
fn the_recovered_head_predicts_exactly_as_the_live_one() {
    let data = embedded();
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut state, report) = DeviceState::open(dir.path(), data.backbone, config()).expect("open");
    assert_eq!(report.last_seq, 0);
    // Photos in turn from each class, as a person walking the field would label them.
    let mut order: Vec<usize> = (0..data.train.features.len()).collect();
    order.sort_by_key(|&i| {
        let rank = data.train.labels[..i]
            .iter()
            .filter(|&&l| l == data.train.labels[i])
            .count();
        (rank, data.train.labels[i])
    });
    for i in order {
        let name = &data.classes[data.train.labels[i]];
        let feature = ArrayView1::from(data.train.features[i].as_slice());
        state
            .record_label_named(feature, name, data.train.hashes[i])
            .expect("durable label");
    }
    let live = predictions(&state, &data.test);
    let correct = live
        .iter()
        .zip(&data.test.labels)
        .filter(|(p, l)| p.map(|c| state.classes()[c].clone()) == Some(data.classes[**l].clone()))
        .count();
    eprintln!("live head: {correct}/{} test photos right", live.len());
    // Better than chance (4 classes) is all this asks: the point here is recovery, not accuracy.
    assert!(correct * 4 > live.len(), "the head learned nothing useful");
    drop(state);

    // Restart 1: snapshot-less, the whole journal is replayed into a fresh head.
    let (mut state, report) =
        DeviceState::open(dir.path(), data.backbone, config()).expect("reopen");
    assert_eq!(report.replayed as usize, data.train.features.len() + 4);
    assert_eq!(predictions(&state, &data.test), live);

    // Restart 2: from a snapshot holding the head.
    state.snapshot_now().expect("snapshot");
    drop(state);
    let (mut state, report) =
        DeviceState::open(dir.path(), data.backbone, config()).expect("reopen");
    assert_eq!(report.replayed, 0);
    assert_eq!(predictions(&state, &data.test), live);

    // Undo retrains from the replay set; the recovered head is retrained the same way.
    let samples = state.data().samples.len();
    let undone = state.undo().expect("undo").expect("something to undo");
    assert_eq!(state.data().samples.len(), samples - 1);
    assert!(state.data().samples.iter().all(|s| s.id != undone));
    let after_undo = predictions(&state, &data.test);
    state.rename_class(0, "blight").expect("rename");
    drop(state);
    let (state, _) = DeviceState::open(dir.path(), data.backbone, config()).expect("reopen");
    assert_eq!(state.classes()[0], "blight");
    assert_eq!(state.head().classes()[0], "blight");
    assert_eq!(predictions(&state, &data.test), after_undo);
}

#[test]
fn a_deferred_undo_keeps_serving_and_a_cut_before_its_retrain_recovers_without_the_label() {
    let data = embedded();
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut state, _) = DeviceState::open(dir.path(), data.backbone, config()).expect("open");
    state.defer_undo_retrain(true);
    for i in 0..data.train.features.len() {
        let name = &data.classes[data.train.labels[i]];
        let feature = ArrayView1::from(data.train.features[i].as_slice());
        state
            .record_label_named(feature, name, data.train.hashes[i])
            .expect("label");
    }
    let before = predictions(&state, &data.test);
    let undone = state.undo().expect("undo").expect("something to undo");
    // The old head keeps answering until the caller's retrain replaces it.
    assert!(state.head_is_stale());
    assert_eq!(predictions(&state, &data.test), before);
    // A snapshot now must not keep the head that still holds the undone label.
    state.snapshot_now().expect("snapshot");
    drop(state); // the power goes before the retrain lands

    let (mut state, _) = DeviceState::open(dir.path(), data.backbone, config()).expect("reopen");
    assert!(state.data().samples.iter().all(|s| s.id != undone));
    assert!(!state.head_is_stale());
    let expected = head_predictions(&retrained_from_replay(&state), &data.test);
    assert_eq!(predictions(&state, &data.test), expected);

    // Live, the caller's retrain clears the mark.
    state.defer_undo_retrain(true);
    state.undo().expect("undo").expect("something to undo");
    assert!(state.head_is_stale());
    state
        .replace_head(retrained_from_replay(&state))
        .expect("same classes");
    assert!(!state.head_is_stale());
}

#[test]
fn clear_forgets_everything_and_survives_restart() {
    let data = embedded();
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut state, _) = DeviceState::open(dir.path(), data.backbone, config()).expect("open");
    for i in 0..8 {
        let name = &data.classes[data.train.labels[i * 6]];
        let feature = ArrayView1::from(data.train.features[i * 6].as_slice());
        state
            .record_label_named(feature, name, data.train.hashes[i * 6])
            .expect("label");
    }
    state.clear(None).expect("clear");
    assert!(state.classes().is_empty());
    assert!(state.head().classes().is_empty());
    drop(state);
    let (state, _) = DeviceState::open(dir.path(), data.backbone, config()).expect("reopen");
    assert!(state.classes().is_empty());
    assert!(state.data().samples.is_empty());
    assert!(state.head().classes().is_empty());
}

fn dataset(split: &Split, classes: &[String], encoding: FeatureEncoding) -> Dataset {
    let dim = split.features[0].len();
    let mut features = Array2::<f32>::zeros((split.features.len(), dim));
    for (mut row, f) in features.rows_mut().into_iter().zip(&split.features) {
        let stored = StoredFeature::encode(f, encoding).to_vec();
        row.assign(&ArrayView1::from(stored.as_slice()));
    }
    Dataset {
        features,
        labels: split.labels.clone(),
        classes: classes.to_vec(),
    }
}

fn accuracy(head: &Head, test: &Dataset) -> f64 {
    let right = test
        .features
        .rows()
        .into_iter()
        .zip(&test.labels)
        .filter(|(row, label)| head.predict(*row).top.first().map(|(c, _)| *c) == Some(**label))
        .count();
    right as f64 / test.labels.len() as f64
}

#[test]
fn f16_costs_no_accuracy() {
    let data = embedded();
    let hyper = HyperParams::default();
    let mut worst = 0.0f32;
    for f in &data.train.features {
        let back = StoredFeature::encode(f, FeatureEncoding::F16).to_vec();
        for (a, b) in f.iter().zip(&back) {
            worst = worst.max((a - b).abs() / a.abs().max(1e-3));
        }
    }
    let test32 = dataset(&data.test, &data.classes, FeatureEncoding::F32);
    let mut accuracies = Vec::new();
    for encoding in [FeatureEncoding::F32, FeatureEncoding::F16] {
        let train = dataset(&data.train, &data.classes, encoding);
        let (head, _) =
            Head::train(&train, None, HeadKind::Linear, &hyper, &mut |_| {}).expect("train");
        accuracies.push(accuracy(&head, &test32));
    }
    eprintln!(
        "test accuracy trained on f32 {:.3}, on f16 {:.3}; worst relative f16 error {worst:.2e}",
        accuracies[0], accuracies[1]
    );
    assert!(worst < 1e-3, "f16 relative error {worst}");
    // One test photo is 1/24 of the set: f16 may not cost even one.
    assert!(
        accuracies[1] + 1e-9 >= accuracies[0],
        "f16 storage lost accuracy: {accuracies:?}"
    );
}
