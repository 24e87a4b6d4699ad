//! Shared helpers of the store tests: a small backbone, deterministic label events, and the
//! reference states obtained by applying those events one by one in memory.

#![allow(dead_code)]

use std::path::Path;
use std::sync::Arc;

use fieldtune::model::BackboneId;
use fieldtune::store::data::StateData;
use fieldtune::store::events::{JournalEntry, Sample};
use fieldtune::store::features::StoredFeature;
use fieldtune::store::fs::{FaultyFs, Fs, RealFs};
use fieldtune::store::{ClassTarget, FeatureEncoding, FrameHash, LabelEvent, Store, StoreConfig};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Feature length used by the store tests (small keeps "every byte offset" loops quick).
pub const DIM: u32 = 16;

pub fn backbone() -> BackboneId {
    BackboneId {
        sha256: [7; 32],
        dim: DIM,
    }
}

pub fn other_backbone() -> BackboneId {
    BackboneId {
        sha256: [9; 32],
        dim: DIM,
    }
}

/// A config that snapshots only when told to.
pub fn manual_config() -> StoreConfig {
    StoreConfig {
        min_journal_bytes: u64::MAX,
        max_journal_bytes: u64::MAX,
        feature_encoding: FeatureEncoding::F32,
        ..StoreConfig::default()
    }
}

/// `n` events: two classes, then label actions of 1-3 frames (with undos and renames along the
/// way).
pub fn events(n: usize, seed: u64) -> Vec<LabelEvent> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut out = vec![
        LabelEvent::NewClass { name: "cat".into() },
        LabelEvent::NewClass { name: "dog".into() },
    ];
    let mut next_id = 0u64;
    while out.len() < n {
        match out.len() % 11 {
            7 if next_id > 0 => out.push(LabelEvent::Undo),
            9 => out.push(LabelEvent::Rename {
                class: 1,
                name: format!("dog-{}", out.len()),
            }),
            _ => {
                let class = rng.gen_range(0..2);
                let frames = rng.gen_range(1..=3);
                let samples = (0..frames)
                    .map(|_| {
                        let feature: Vec<f32> = (0..DIM).map(|_| rng.gen_range(0.0..6.0)).collect();
                        let sample = Sample {
                            id: next_id,
                            class,
                            time_ms: 1_700_000_000_000 + next_id,
                            frame_hash: FrameHash::of(&next_id.to_le_bytes()),
                            feature: StoredFeature::encode(&feature, FeatureEncoding::F32),
                            thumbnail: Default::default(),
                            views: Vec::new(),
                        };
                        next_id += 1;
                        sample
                    })
                    .collect();
                out.push(LabelEvent::Label {
                    class: ClassTarget::Existing(class),
                    samples,
                });
            }
        }
    }
    out.truncate(n);
    out
}

/// `states[k]` = the state after the first `k` events.
pub fn reference_states(events: &[LabelEvent], config: &StoreConfig) -> Vec<StateData> {
    let mut state = StateData::default();
    let mut out = vec![state.clone()];
    for (i, event) in events.iter().enumerate() {
        let entry = JournalEntry {
            seq: i as u64 + 1,
            event: event.clone(),
        };
        state.apply(&entry, DIM, config).expect("reference apply");
        out.push(state.clone());
    }
    out
}

/// The part of a state that must match a reference exactly (the head bytes are set by the owner
/// of the head and are not part of the event history).
pub fn comparable(state: &StateData) -> StateData {
    StateData {
        head: None,
        ..state.clone()
    }
}

pub fn real_fs() -> Arc<dyn Fs> {
    Arc::new(RealFs)
}

/// Opens `dir` on the real disk (as a restarted process would).
pub fn reopen(dir: &Path, config: &StoreConfig) -> (Store, fieldtune::store::state_dir::Opened) {
    Store::open(real_fs(), dir, backbone(), config.clone()).expect("recovery must not fail")
}

/// Opens `dir` through a counting [`FaultyFs`] (to arm faults on later) and commits `events`.
pub fn open_faulty_with(
    dir: &Path,
    config: &StoreConfig,
    events: &[LabelEvent],
) -> (Store, FaultyFs) {
    let fs = FaultyFs::counting();
    let (mut store, _) =
        Store::open(Arc::new(fs.clone()), dir, backbone(), config.clone()).expect("open");
    commit_all(&mut store, events);
    (store, fs)
}

/// Commits every event durably through `store`.
pub fn commit_all(store: &mut Store, events: &[LabelEvent]) {
    for event in events {
        store
            .commit(event.clone())
            .expect("valid and durable event");
    }
}

/// Copies every file of `from` into `to`.
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read_dir") {
        let entry = entry.expect("entry");
        std::fs::copy(entry.path(), to.join(entry.file_name())).expect("copy");
    }
}
