//! Writes `tests/fixtures/store/v2/`: a device state in format version 2 (today's format, before
//! label actions were journalled as one event). Run by hand once:
//! `cargo test --test store_v2_fixture_gen -- --ignored`.

use std::path::Path;
use std::sync::Arc;

use fieldtune::model::BackboneId;
use fieldtune::store::events::Sample;
use fieldtune::store::features::StoredFeature;
use fieldtune::store::{FeatureEncoding, FrameHash, LabelEvent, Store, StoreConfig};

fn sample(id: u64, class: u32) -> LabelEvent {
    let feature: Vec<f32> = (0..8).map(|j| (id * 8 + j) as f32 * 0.125 - 2.0 + class as f32).collect();
    LabelEvent::AddSample(Sample {
        id,
        class,
        time_ms: 1_700_000_000_000 + id,
        frame_hash: FrameHash([id as u8; 32]),
        feature: StoredFeature::encode(&feature, FeatureEncoding::F16),
    })
}

#[test]
#[ignore = "generator"]
fn write_v2_fixture() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/store/v2");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let backbone = BackboneId { sha256: [0x22; 32], dim: 8 };
    let config = StoreConfig {
        min_journal_bytes: u64::MAX,
        max_journal_bytes: u64::MAX,
        ..StoreConfig::default()
    };
    let (mut store, _) =
        Store::open(Arc::new(fieldtune::store::fs::RealFs), &dir, backbone, config).unwrap();
    let mut commit = |store: &mut Store, e: LabelEvent| store.commit(e).unwrap().durable.unwrap();
    commit(&mut store, LabelEvent::NewClass { name: "apple".into() });
    for id in 0..3 {
        commit(&mut store, sample(id, 0));
    }
    commit(&mut store, LabelEvent::NewClass { name: "pear".into() });
    for id in 3..5 {
        commit(&mut store, sample(id, 1));
    }
    store.snapshot().unwrap();
    // After the snapshot: a rename, two labels, an undo of the last, a new class with a label.
    commit(&mut store, LabelEvent::Rename { class: 1, name: "nashi".into() });
    commit(&mut store, sample(5, 0));
    commit(&mut store, sample(6, 1));
    commit(&mut store, LabelEvent::Undo { sample: 6 });
    commit(&mut store, LabelEvent::NewClass { name: "plum".into() });
    commit(&mut store, sample(7, 2));
    drop(store);
}
