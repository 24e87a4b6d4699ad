//! The learner's fleet merge ([`Learner::merge_remote`], [`Learner::unmerge_remote`]) on the real
//! file system: a merge is durable when it returns and survives a crash (the learner dropped
//! without a snapshot, as SIGKILL leaves it), is never applied twice (before or after the
//! restart), a taken-back sample leaves and is refused when it comes again, classes are matched
//! by name (created when missing), this device's own label of a frame wins over a merged one,
//! and bad features change nothing.

use std::path::Path;

use fieldtune::learner::fleet::{MergeOutcome, RemoteLabel};
use fieldtune::learner::{Frame, Learner, LearnerConfig, LearnerError};
use fieldtune::model::BackboneId;
use fieldtune::store::remote::{RemoteId, RemoteMark};
use fieldtune::store::FrameHash;

const DIM: usize = 8;

fn backbone() -> BackboneId {
    BackboneId {
        sha256: [0x3C; 32],
        dim: DIM as u32,
    }
}

fn open(dir: &Path) -> Learner {
    Learner::open(dir, backbone(), LearnerConfig::default(), None)
        .expect("open")
        .0
}

/// Class `k`'s direction.
fn feature(k: usize) -> Vec<f32> {
    (0..DIM).map(|i| if i == k { 1.0 } else { 0.05 }).collect()
}

fn remote<'a>(n: u64, class: &'a str, frame: &[u8], features: &'a [f32]) -> RemoteLabel<'a> {
    RemoteLabel {
        id: RemoteId::of_own("cam-a", n, 1_000 + n),
        class,
        frame_hash: FrameHash::of(frame),
        time_ms: 1_000 + n,
        features,
        thumbnail: &[],
    }
}

fn counts(learner: &Learner) -> Vec<(String, usize)> {
    learner
        .classes()
        .into_iter()
        .map(|c| (c.name, c.samples))
        .collect()
}

#[test]
fn merges_survive_a_crash_and_are_never_applied_twice() {
    let dir = tempfile::tempdir().unwrap();
    let (f0, f1) = (feature(0), feature(1));
    {
        let mut learner = open(dir.path());
        let own = learner
            .label(
                "Blight",
                &[Frame {
                    features: &f0,
                    hash: FrameHash::of(b"own"),
                    thumbnail: &[],
                }],
            )
            .expect("label");
        assert!(own.created);
        // Matched by name; a new name is a new class.
        assert_eq!(
            learner
                .merge_remote(&remote(1, "Blight", b"a1", &f0))
                .unwrap(),
            MergeOutcome::Merged {
                class: "Blight".into(),
                created: false,
                stored: true
            }
        );
        assert!(matches!(
            learner
                .merge_remote(&remote(2, "Rust", b"a2", &f1))
                .unwrap(),
            MergeOutcome::Merged { created: true, .. }
        ));
        // The same message again: nothing.
        assert_eq!(
            learner
                .merge_remote(&remote(2, "Rust", b"a2", &f1))
                .unwrap(),
            MergeOutcome::AlreadySeen
        );
        // A frame this device labelled itself: its own label wins.
        assert_eq!(
            learner
                .merge_remote(&remote(3, "Rust", b"own", &f1))
                .unwrap(),
            MergeOutcome::OwnFrame
        );
        // Bad features: refused, nothing changed.
        let nan = vec![f32::NAN; DIM];
        assert!(matches!(
            learner.merge_remote(&remote(4, "Rust", b"a4", &nan)),
            Err(LearnerError::BadFrames(_))
        ));
        assert!(learner
            .merge_remote(&remote(5, "Rust", b"a5", &f1[..4]))
            .is_err());
        assert_eq!(counts(&learner), [("Blight".into(), 2), ("Rust".into(), 1)]);
        // Merges are not this device's to undo: undo takes back its own label.
        learner.undo().expect("undo");
        assert_eq!(counts(&learner), [("Blight".into(), 1), ("Rust".into(), 1)]);
        // Dropped without a snapshot: what SIGKILL leaves.
    }
    let mut learner = open(dir.path());
    assert_eq!(counts(&learner), [("Blight".into(), 1), ("Rust".into(), 1)]);
    assert_eq!(
        learner
            .merge_remote(&remote(1, "Blight", b"a1", &f0))
            .unwrap(),
        MergeOutcome::AlreadySeen,
        "delivered again after the restart"
    );
    // Taken back by its device: it leaves, and is refused if it comes again.
    let gone = [RemoteId::of_own("cam-a", 2, 1_002)];
    assert_eq!(learner.unmerge_remote(&gone).unwrap(), 1);
    assert_eq!(learner.unmerge_remote(&gone).unwrap(), 0);
    assert_eq!(
        learner.data().remote.get(&gone[0]),
        Some(&RemoteMark::Removed)
    );
    // A tombstone that arrives before its sample keeps the sample out.
    let early = [RemoteId::of_own("cam-a", 6, 1_006)];
    learner.unmerge_remote(&early).unwrap();
    assert_eq!(
        learner
            .merge_remote(&remote(6, "Rust", b"a6", &f1))
            .unwrap(),
        MergeOutcome::AlreadySeen
    );
    learner.settle();
    drop(learner);
    let mut learner = open(dir.path());
    assert_eq!(
        learner
            .merge_remote(&remote(2, "Rust", b"a2", &f1))
            .unwrap(),
        MergeOutcome::AlreadySeen
    );
    assert_eq!(
        learner.classes().iter().map(|c| c.samples).sum::<usize>(),
        1
    );
    // This device labelling a frame it had merged: its own label replaces the merged sample.
    let before = learner.data().samples.len();
    learner
        .label(
            "Blight",
            &[Frame {
                features: &f0,
                hash: FrameHash::of(b"a1"),
                thumbnail: &[],
            }],
        )
        .expect("label");
    assert_eq!(learner.data().samples.len(), before);
    learner.settle();
    assert!(learner.is_settled());
}
