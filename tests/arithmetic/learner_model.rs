//! A model-based property test of the learner: random sequences of labels (with context frames),
//! undo, rename, delete, fleet merges and take-backs (some delivered twice), retrain swaps,
//! settles, snapshots, crashes at any write boundary and restarts, run on a learner over a fault-injecting file system and on a reference learner
//! that never crashes. The reference applies exactly what the subject acknowledged (and, after a
//! crash, an unacknowledged action the subject's disk turned out to hold). After every restart
//! both must hold the same classes, counts, undo history and fleet ids, and, once settled, make the same
//! predictions on fixed features.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use fieldtune::learner::fleet::RemoteLabel;
use fieldtune::learner::{Frame, Learner, LearnerConfig, LearnerError};
use fieldtune::model::BackboneId;
use fieldtune::store::fs::{Fault, FaultyFs, RealFs};
use fieldtune::store::remote::RemoteId;
use fieldtune::store::{FeatureEncoding, FrameHash, StoreConfig};
use ndarray::ArrayView1;
use proptest::prelude::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const DIM: usize = 16;

fn backbone() -> BackboneId {
    BackboneId {
        sha256: [0x5A; 32],
        dim: DIM as u32,
    }
}

fn config() -> LearnerConfig {
    LearnerConfig {
        store: StoreConfig {
            // Snapshots now and then by size too, so crashes land in them.
            min_journal_bytes: 2048,
            feature_encoding: FeatureEncoding::F32,
            max_samples_per_class: 12,
            ..StoreConfig::default()
        },
        retrain_every: Some(3),
        settle_after: Duration::from_millis(0),
        ..LearnerConfig::default()
    }
}

/// A feature of class `class`: its own direction plus noise.
fn feature(class: usize, rng: &mut ChaCha8Rng) -> Vec<f32> {
    (0..DIM)
        .map(|j| {
            let centre = if j % 6 == class % 6 { 3.0 } else { 0.5 };
            centre + rng.gen_range(-0.6f32..0.6)
        })
        .collect()
}

#[derive(Debug, Clone)]
enum Op {
    Label {
        class: usize,
        frames: usize,
        seed: u64,
    },
    Undo,
    Rename {
        pick: usize,
        suffix: u8,
    },
    Delete {
        pick: usize,
    },
    Move {
        pick_sample: usize,
        pick_class: usize,
    },
    /// A sample another device of the fleet labelled (fleet id `n`: small, so some come twice).
    Merge {
        n: u8,
        class: usize,
        seed: u64,
    },
    /// Another device took back its sample `n`.
    Unmerge {
        n: u8,
    },
    Poll,
    Settle,
    Snapshot,
    /// The next mutating action is stopped at its `after`-th disk operation (power cut).
    Crash {
        after: u64,
        then: Box<Op>,
    },
    Restart,
}

fn op() -> impl Strategy<Value = Op> {
    let action = prop_oneof![
        6 => (0usize..5, 1usize..4, any::<u64>())
            .prop_map(|(class, frames, seed)| Op::Label { class, frames, seed }),
        2 => Just(Op::Undo),
        1 => (0usize..8, any::<u8>()).prop_map(|(pick, suffix)| Op::Rename { pick, suffix }),
        1 => (0usize..8).prop_map(|pick| Op::Delete { pick }),
        1 => (0usize..64, 0usize..8)
            .prop_map(|(pick_sample, pick_class)| Op::Move { pick_sample, pick_class }),
        1 => Just(Op::Snapshot),
        2 => (0u8..12, 0usize..5, any::<u64>()).prop_map(|(n, class, seed)| Op::Merge { n, class, seed }),
        1 => (0u8..12).prop_map(|n| Op::Unmerge { n }),
    ];
    prop_oneof![
        10 => action.clone(),
        2 => Just(Op::Poll),
        1 => Just(Op::Settle),
        2 => (0u64..12, action).prop_map(|(after, then)| Op::Crash { after, then: Box::new(then) }),
        1 => Just(Op::Restart),
    ]
}

/// Runs one mutating action on a learner; the class picked by index among its live classes.
fn act(learner: &mut Learner, op: &Op) -> Result<(), LearnerError> {
    match op {
        Op::Label {
            class,
            frames,
            seed,
        } => {
            let mut rng = ChaCha8Rng::seed_from_u64(*seed);
            let values: Vec<Vec<f32>> = (0..*frames).map(|_| feature(*class, &mut rng)).collect();
            let frames: Vec<Frame> = values
                .iter()
                .enumerate()
                .map(|(i, v)| Frame {
                    features: v,
                    hash: FrameHash::of(&[*seed as u8, i as u8]),
                    thumbnail: &[],
                })
                .collect();
            learner.label(&format!("c{class}"), &frames).map(|_| ())
        }
        Op::Undo => learner.undo().map(|_| ()),
        Op::Rename { pick, suffix } => {
            let classes = learner.classes();
            if classes.is_empty() {
                return Ok(());
            }
            let from = classes[pick % classes.len()].name.clone();
            learner.rename_class(&from, &format!("{from}-{suffix}"))
        }
        Op::Delete { pick } => {
            let classes = learner.classes();
            if classes.is_empty() {
                return Ok(());
            }
            let name = classes[pick % classes.len()].name.clone();
            learner.delete_class(&name).map(|_| ())
        }
        Op::Move {
            pick_sample,
            pick_class,
        } => {
            let classes = learner.classes();
            let data = learner.data();
            let live: Vec<u64> = data.live_samples().map(|s| s.id).collect();
            if classes.is_empty() || live.is_empty() {
                return Ok(());
            }
            let sample = live[pick_sample % live.len()];
            let to = classes[pick_class % classes.len()].name.clone();
            learner.move_sample(sample, &to)
        }
        Op::Merge { n, class, seed } => {
            let mut rng = ChaCha8Rng::seed_from_u64(*seed);
            let features = feature(*class, &mut rng);
            let name = format!("c{class}");
            let label = RemoteLabel {
                id: RemoteId::of_own("peer", u64::from(*n), u64::from(*n)),
                class: &name,
                frame_hash: FrameHash::of(&[0xEE, *n]),
                time_ms: u64::from(*n),
                features: &features,
                thumbnail: &[],
            };
            learner.merge_remote(&label).map(|_| ())
        }
        Op::Unmerge { n } => learner
            .unmerge_remote(&[RemoteId::of_own("peer", u64::from(*n), u64::from(*n))])
            .map(|_| ()),
        Op::Snapshot => learner.snapshot(),
        _ => Ok(()),
    }
}

fn open(dir: &Path, fs: Arc<dyn fieldtune::store::fs::Fs>) -> Learner {
    let learner = Learner::open_with_fs(fs, dir, backbone(), config(), None)
        .expect("a crashed state must reopen")
        .0;
    // The first prediction after a restart already comes from a head fitted to every sample.
    assert!(
        learner.is_settled(),
        "a reopened learner serves a stale head"
    );
    learner
}

fn probes() -> Vec<Vec<f32>> {
    let mut rng = ChaCha8Rng::seed_from_u64(99);
    (0..20).map(|i| feature(i % 6, &mut rng)).collect()
}

/// What must match between the subject and the reference after a restart: classes with their
/// counts, the undo history, and the predictions (class, probability) on the probes.
type Knowledge = (Vec<(String, usize)>, String, Vec<(Option<String>, f32)>);

fn knowledge(learner: &mut Learner) -> Knowledge {
    learner.settle();
    let classes = learner
        .classes()
        .into_iter()
        .map(|c| (c.name, c.samples))
        .collect();
    let undo = format!("{:?} {:?}", learner.data().undo, learner.data().remote);
    let predictions = probes()
        .iter()
        .map(|p| {
            let seen = learner.predict(ArrayView1::from(p.as_slice()));
            (seen.name, seen.probability)
        })
        .collect();
    (classes, undo, predictions)
}

fn same_knowledge(subject: &mut Learner, reference: &mut Learner) {
    let (s_classes, s_undo, s_pred) = knowledge(subject);
    let (r_classes, r_undo, r_pred) = knowledge(reference);
    assert_eq!(s_classes, r_classes, "classes and counts");
    assert_eq!(s_undo, r_undo, "undo history");
    assert_eq!(subject.data().seq, reference.data().seq, "events");
    for (i, ((s_name, s_p), (r_name, r_p))) in s_pred.iter().zip(&r_pred).enumerate() {
        assert_eq!(s_name, r_name, "prediction {i}");
        assert!((s_p - r_p).abs() < 1e-4, "probability {i}: {s_p} vs {r_p}");
    }
}

fn run(ops: &[Op]) {
    let subject_dir = tempfile::tempdir().expect("tempdir");
    let reference_dir = tempfile::tempdir().expect("tempdir");
    let mut fs = FaultyFs::counting();
    let mut subject = open(subject_dir.path(), Arc::new(fs.clone()));
    let mut reference = open(reference_dir.path(), Arc::new(RealFs));
    for op in ops {
        match op {
            Op::Poll => {
                subject.poll();
                reference.poll();
            }
            Op::Settle => {
                subject.settle();
                reference.settle();
                assert!(subject.is_settled() || subject.classes().is_empty());
            }
            Op::Restart => {
                drop(subject);
                fs = FaultyFs::counting();
                subject = open(subject_dir.path(), Arc::new(fs.clone()));
                same_knowledge(&mut subject, &mut reference);
            }
            Op::Crash { after, then } => {
                let seq_before = subject.data().seq;
                fs.arm(Fault::Stop, *after);
                let result = act(&mut subject, then);
                drop(subject);
                fs = FaultyFs::counting();
                subject = open(subject_dir.path(), Arc::new(fs.clone()));
                let seq_after = subject.data().seq;
                match result {
                    // Acknowledged: it must be there.
                    Ok(()) => {
                        act(&mut reference, then).ok();
                    }
                    // Not acknowledged: it may have reached the disk whole before the cut.
                    Err(_) if seq_after > seq_before => {
                        act(&mut reference, then).expect("the reference takes what the disk kept");
                    }
                    Err(_) => {}
                }
                same_knowledge(&mut subject, &mut reference);
            }
            action => {
                let s = act(&mut subject, action);
                let r = act(&mut reference, action);
                assert_eq!(s.is_ok(), r.is_ok(), "{action:?}: {s:?} vs {r:?}");
            }
        }
    }
    drop(subject);
    let mut subject = open(subject_dir.path(), Arc::new(RealFs));
    same_knowledge(&mut subject, &mut reference);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn a_learner_that_crashes_anywhere_knows_what_one_that_never_crashed_knows(
        ops in proptest::collection::vec(op(), 5..40)
    ) {
        run(&ops);
    }
}

#[test]
fn a_fixed_history_with_every_kind_of_action_and_crash() {
    let label = |class, frames, seed| Op::Label {
        class,
        frames,
        seed,
    };
    let ops = vec![
        label(0, 3, 1),
        label(1, 1, 2),
        label(2, 2, 3),
        Op::Poll,
        label(0, 1, 4),
        Op::Crash {
            after: 1,
            then: Box::new(label(1, 2, 5)),
        },
        Op::Merge {
            n: 1,
            class: 1,
            seed: 8,
        },
        Op::Crash {
            after: 1,
            then: Box::new(Op::Merge {
                n: 2,
                class: 3,
                seed: 9,
            }),
        },
        Op::Merge {
            n: 1,
            class: 1,
            seed: 8,
        },
        Op::Rename { pick: 1, suffix: 7 },
        Op::Crash {
            after: 1,
            then: Box::new(Op::Unmerge { n: 1 }),
        },
        Op::Delete { pick: 0 },
        Op::Restart,
        Op::Undo,
        Op::Undo,
        Op::Crash {
            after: 3,
            then: Box::new(Op::Snapshot),
        },
        label(3, 3, 6),
        Op::Undo,
        Op::Restart,
        Op::Settle,
    ];
    run(&ops);
}
