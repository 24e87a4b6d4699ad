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

/// Regenerates the fixture (`cargo test --test store_migration -- --ignored`); only ever needed
/// if the fixture is lost, since version 1 does not change.
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
