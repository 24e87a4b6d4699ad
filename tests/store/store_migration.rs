//! Format migration: a version-1 state committed under `tests/fixtures/store/v1/` (written by the
//! ignored `write_v1_fixture` below, kept byte for byte in git) must be read by the current code,
//! give the content it was written from, keep working, and be rewritten in the current version
//! at the next snapshot.

use std::path::{Path, PathBuf};

use fieldtune::model::BackboneId;
use fieldtune::store::format::{FileKind, Header, FORMAT_VERSION};
use fieldtune::store::migrate::{MetaV1, SampleV1};
use fieldtune::store::{Store, StoreConfig};
use std::sync::Arc;

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/store/v1")
}

const FIXTURE_NAME: &str = "snapshot-00000000000000000007.ft";

fn fixture_backbone() -> BackboneId {
    BackboneId {
        sha256: [0x11; 32],
        dim: 8,
    }
}

/// The content of the version-1 fixture: 2 classes, 5 samples.
fn v1_content() -> (MetaV1, Vec<SampleV1>) {
    let samples: Vec<SampleV1> = (0..5u32)
        .map(|i| SampleV1 {
            class: i % 2,
            time_ms: 1_650_000_000_000 + u64::from(i),
            frame_hash: [i as u8; 32],
            feature: (0..8).map(|j| (i * 8 + j) as f32 * 0.125).collect(),
        })
        .collect();
    let meta = MetaV1 {
        seq: 7,
        classes: vec!["apple".into(), "pear".into()],
        head: None,
        samples: samples.len() as u64,
    };
    (meta, samples)
}

/// Regenerates the fixture (`cargo test --test store store_migration::write_v1 -- --ignored`);
/// only ever needed if the fixture is lost, since version 1 does not change.
#[test]
#[ignore = "generator: rewrites the committed v1 fixture; run by hand only when the fixture must change"]
fn write_v1_fixture() {
    let (meta, samples) = v1_content();
    let path = fixture_dir().join(FIXTURE_NAME);
    let mut header = Header::new(FileKind::Snapshot, fixture_backbone());
    header.version = 1;
    let mut bytes = header.encode().to_vec();
    fieldtune::store::format::push_record(&mut bytes, &meta, "meta", &path).expect("meta");
    for sample in &samples {
        fieldtune::store::format::push_record(&mut bytes, sample, "sample", &path).expect("s");
    }
    std::fs::create_dir_all(fixture_dir()).expect("mkdir");
    std::fs::write(path, bytes).expect("write fixture");
}

#[test]
fn the_committed_v1_state_is_read_and_migrated() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::copy(
        fixture_dir().join(FIXTURE_NAME),
        dir.path().join(FIXTURE_NAME),
    )
    .expect("copy the committed fixture");
    let config = StoreConfig::default();
    let (mut store, opened) = Store::open(
        Arc::new(fieldtune::store::fs::RealFs),
        dir.path(),
        fixture_backbone(),
        config.clone(),
    )
    .expect("the current code reads format version 1");
    assert_eq!(opened.report.snapshot_version, Some(1));
    assert!(opened
        .report
        .to_string()
        .contains("migrated from format version 1"));

    let (meta, samples) = v1_content();
    let data = store.data();
    assert_eq!(data.seq, meta.seq);
    let names: Vec<&str> = data.classes.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(
        names,
        meta.classes.iter().map(String::as_str).collect::<Vec<_>>()
    );
    assert_eq!(data.samples.len(), samples.len());
    for (got, want) in data.samples.iter().zip(&samples) {
        assert_eq!(got.class, want.class);
        assert_eq!(got.time_ms, want.time_ms);
        assert_eq!(got.frame_hash.0, want.frame_hash);
        assert_eq!(got.feature.to_vec(), want.feature);
    }
    // Ids were given in file order, so undo and new labels work on migrated samples.
    assert_eq!(data.next_sample_id, samples.len() as u64);

    // The next snapshot is written in the current version and reads back the same.
    store.snapshot().expect("snapshot");
    let before = store.data().clone();
    drop(store);
    let (store, opened) = Store::open(
        Arc::new(fieldtune::store::fs::RealFs),
        dir.path(),
        fixture_backbone(),
        config,
    )
    .expect("reopen");
    assert_eq!(opened.report.snapshot_version, Some(FORMAT_VERSION));
    assert_eq!(store.data().samples, before.samples);
    assert_eq!(store.data().classes, before.classes);
}

fn v2_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/store/v2");
    for entry in std::fs::read_dir(fixture).expect("the committed v2 fixture") {
        let entry = entry.expect("entry");
        std::fs::copy(entry.path(), dir.path().join(entry.file_name())).expect("copy");
    }
    dir
}

fn v2_backbone() -> BackboneId {
    BackboneId {
        sha256: [0x22; 32],
        dim: 8,
    }
}

#[test]
fn the_committed_v2_state_is_read_and_migrated() {
    use fieldtune::store::{Action, LabelEvent};
    let dir = v2_dir();
    let config = StoreConfig::default();
    let (mut store, opened) = Store::open(
        Arc::new(fieldtune::store::fs::RealFs),
        dir.path(),
        v2_backbone(),
        config.clone(),
    )
    .expect("the current code reads format version 2");
    assert!(opened.report.migrated, "{}", opened.report);
    assert_eq!(opened.report.snapshot_version, Some(2));
    assert_eq!(opened.report.replayed, 6, "{}", opened.report);
    let data = store.data();
    assert_eq!(data.seq, 13);
    let live: Vec<&str> = data.live_classes().map(|(_, c)| c.name.as_str()).collect();
    assert_eq!(live, ["apple", "nashi", "plum"]);
    let ids: Vec<u64> = data.samples.iter().map(|s| s.id).collect();
    assert_eq!(ids, [0, 1, 2, 3, 4, 5, 7], "sample 6 was undone");
    assert_eq!(data.next_sample_id, 8);
    // The undo history: the five labels of the snapshot, then the journal's rename, label 5,
    // new class plum, label 7 (label 6 was undone).
    assert_eq!(data.undo.len(), 9, "{:?}", data.undo);
    assert!(matches!(
        &data.undo[5],
        Action::Rename { class: 1, from } if from == "pear"
    ));
    assert!(matches!(data.undo[7], Action::NewClass { class: 2 }));

    // Undo works on migrated actions: label 7, then the class plum, then label 5, then the rename.
    for _ in 0..4 {
        store.commit(LabelEvent::Undo).expect("undo");
    }
    let data = store.data();
    let live: Vec<&str> = data.live_classes().map(|(_, c)| c.name.as_str()).collect();
    assert_eq!(live, ["apple", "pear"]);
    let ids: Vec<u64> = data.samples.iter().map(|s| s.id).collect();
    assert_eq!(ids, [0, 1, 2, 3, 4]);

    // Rewritten in the current version, it reads back the same.
    store.snapshot().expect("snapshot");
    let before = store.data().clone();
    drop(store);
    let (store, opened) = Store::open(
        Arc::new(fieldtune::store::fs::RealFs),
        dir.path(),
        v2_backbone(),
        config,
    )
    .expect("reopen");
    assert_eq!(opened.report.snapshot_version, Some(FORMAT_VERSION));
    assert_eq!(store.data().samples, before.samples);
    assert_eq!(store.data().classes, before.classes);
    assert_eq!(store.data().undo, before.undo);
}

#[test]
fn a_learner_opens_the_v2_state_and_keeps_learning() {
    use fieldtune::learner::{Frame, Learner, LearnerConfig};
    let dir = v2_dir();
    let (mut learner, _) =
        Learner::open(dir.path(), v2_backbone(), LearnerConfig::default(), None).expect("open");
    // The v2 head is not trusted: the learner refitted it to the migrated samples.
    assert!(learner.is_settled());
    let names: Vec<String> = learner.head().classes().to_vec();
    assert_eq!(names, ["apple", "nashi", "plum"]);
    let feature = [0.5f32; 8];
    let done = learner
        .label(
            "plum",
            &[Frame {
                features: &feature,
                hash: fieldtune::store::FrameHash::of(b"x"),
                thumbnail: &[],
            }],
        )
        .expect("label");
    assert_eq!(done.stored, 1);
    learner.settle();
    assert!(learner.is_settled());
}

fn v3_dir() -> tempfile::TempDir {
    fixture_copy("v3")
}

/// A copy of the committed fixture `tests/fixtures/store/<name>/`.
fn fixture_copy(name: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/store")
        .join(name);
    for entry in std::fs::read_dir(fixture).expect("the committed fixture") {
        let entry = entry.expect("entry");
        std::fs::copy(entry.path(), dir.path().join(entry.file_name())).expect("copy");
    }
    dir
}

/// The v3 fixture was written by `fieldtune run` with the real model: its backbone identity.
fn v3_backbone() -> BackboneId {
    let descriptor = fieldtune::model::ModelDescriptor::load(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("models/efficientnet_lite0.toml"),
    )
    .expect("the model descriptor");
    descriptor.backbone_id()
}

#[test]
fn the_committed_v3_state_is_read_and_migrated() {
    use fieldtune::store::{Action, LabelEvent};
    let dir = v3_dir();
    let config = StoreConfig::default();
    let (mut store, opened) = Store::open(
        Arc::new(fieldtune::store::fs::RealFs),
        dir.path(),
        v3_backbone(),
        config.clone(),
    )
    .expect("the current code reads format version 3");
    assert!(opened.report.migrated, "{}", opened.report);
    assert_eq!(opened.report.snapshot_version, Some(3));
    assert_eq!(opened.report.replayed, 6, "{}", opened.report);
    let data = store.data();
    assert_eq!(data.seq, 9);
    let live: Vec<(&str, usize)> = data
        .live_classes()
        .map(|(i, c)| (c.name.as_str(), data.class_count(i)))
        .collect();
    assert_eq!(live, [("Blight", 3), ("Nashi", 1)]);
    let ids: Vec<u64> = data.samples.iter().map(|s| s.id).collect();
    assert_eq!(ids, [0, 1, 2, 3], "sample 4 was undone");
    assert!(data.samples.iter().all(|s| s.feature.dim() == 1280));
    // Format 3 kept no thumbnails or views: they come in empty.
    assert!(data
        .samples
        .iter()
        .all(|s| s.thumbnail.is_empty() && s.views.is_empty()));
    assert!(matches!(
        data.undo.last(),
        Some(Action::Label { samples, .. }) if samples == &[3]
    ));

    // A sample deletion (new in format 4) on the migrated state, undone, then rewritten in
    // format 4: it reads back the same.
    store
        .commit(LabelEvent::DeleteSample { sample: 1 })
        .expect("delete sample");
    assert_eq!(store.data().class_count(0), 2);
    store.commit(LabelEvent::Undo).expect("undo");
    assert_eq!(store.data().class_count(0), 3);
    store.snapshot().expect("snapshot");
    let before = store.data().clone();
    drop(store);
    let (store, opened) = Store::open(
        Arc::new(fieldtune::store::fs::RealFs),
        dir.path(),
        v3_backbone(),
        config,
    )
    .expect("reopen");
    assert_eq!(opened.report.snapshot_version, Some(FORMAT_VERSION));
    assert_eq!(store.data().samples, before.samples);
    assert_eq!(store.data().classes, before.classes);
    assert_eq!(store.data().undo, before.undo);
}

#[test]
fn the_committed_v4_state_is_read_and_migrated_and_keeps_merged_fleet_samples() {
    use fieldtune::store::events::{ClassTarget, Sample};
    use fieldtune::store::remote::{RemoteId, RemoteMark};
    use fieldtune::store::LabelEvent;
    let dir = fixture_copy("v4");
    let config = StoreConfig::default();
    let open = || {
        Store::open(
            Arc::new(fieldtune::store::fs::RealFs),
            dir.path(),
            v3_backbone(),
            config.clone(),
        )
    };
    let (mut store, opened) = open().expect("the current code reads format version 4");
    assert!(opened.report.migrated, "{}", opened.report);
    assert_eq!(opened.report.snapshot_version, Some(4));
    assert_eq!(opened.report.replayed, 4, "{}", opened.report);
    let data = store.data();
    assert_eq!(data.seq, 7);
    let live: Vec<(&str, usize)> = data
        .live_classes()
        .map(|(i, c)| (c.name.as_str(), data.class_count(i)))
        .collect();
    assert_eq!(live, [("Blight", 3), ("Nashi", 1)]);
    let ids: Vec<u64> = data.samples.iter().map(|s| s.id).collect();
    assert_eq!(ids, [0, 1, 2, 3], "sample 4 was undone");
    // Format 4 kept thumbnails; it knew no fleet.
    assert!(data.samples.iter().all(|s| !s.thumbnail.is_empty()));
    assert!(data.remote.is_empty());

    // A merge (new in format 5) on the migrated state, rewritten in format 5: it reads back.
    let remote = RemoteId::of_own("cam-a", 9, 1);
    let sample = Sample {
        id: data.next_sample_id,
        class: 1,
        ..data.samples[0].clone()
    };
    let merged_id = sample.id;
    store
        .commit(LabelEvent::Merge {
            class: ClassTarget::Existing(1),
            remote,
            sample,
        })
        .expect("merge");
    store.snapshot().expect("snapshot");
    let before = store.data().clone();
    drop(store);
    let (store, opened) = open().expect("reopen");
    assert_eq!(opened.report.snapshot_version, Some(FORMAT_VERSION));
    assert_eq!(store.data().samples, before.samples);
    assert_eq!(
        store.data().remote.get(&remote),
        Some(&RemoteMark::Merged { sample: merged_id })
    );
}
