//! A real `fieldtune state soak` process labelling random features is killed with SIGKILL at random
//! moments (inside journal appends, snapshots, renames — wherever it happens to be). After each
//! kill, every label it printed as acknowledged must be in the recovered state, and the next run
//! must carry on from there.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use fieldtune::store::fs::RealFs;
use fieldtune::store::recovery::{detect_backbone, recover};
use fieldtune::store::{RecoveryReport, StoreConfig};
use rand::{Rng, SeedableRng};

fn recovered_ids(dir: &std::path::Path) -> (BTreeSet<u64>, RecoveryReport) {
    let backbone = detect_backbone(&RealFs, dir).expect("a state was written");
    let config = StoreConfig {
        max_samples_per_class: u32::MAX,
        max_feature_bytes: u64::MAX,
        ..StoreConfig::default()
    };
    let recovery = recover(&RealFs, dir, &backbone, &config).expect("recovery never fails");
    // Each recovered sample keeps its own whole thumbnail (the soak's stand-in, made from the
    // frame's hash), through every kill.
    for sample in &recovery.data.samples {
        assert_eq!(
            sample.thumbnail.0,
            fieldtune::cli::state::soak_thumbnail(&sample.frame_hash),
            "sample {}'s thumbnail",
            sample.id
        );
    }
    (
        recovery.data.samples.iter().map(|s| s.id).collect(),
        recovery.report,
    )
}

#[test]
fn every_acknowledged_label_survives_sigkill() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(42);
    let mut acknowledged = BTreeSet::new();
    // Recovered but never acknowledged: a label durable when the kill came, before its "ack" line
    // was printed. At most one per kill (the soak labels one at a time).
    let mut in_flight = BTreeSet::new();
    let mut previous: BTreeSet<u64> = BTreeSet::new();
    let mut from_snapshot = 0;
    let mut with_replay = 0;
    for round in 0..5u64 {
        let mut child = Command::new(env!("CARGO_BIN_EXE_fieldtune"))
            .args(["state", "soak", "--events", "1000000", "--seed"])
            .arg(round.to_string())
            .arg("--dir")
            .arg(dir.path())
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn fieldtune state soak");
        let stdout = child.stdout.take().expect("stdout");
        let (first_tx, first_rx) = mpsc::channel();
        let reader = std::thread::spawn(move || {
            let mut acks = Vec::new();
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(id) = line
                    .strip_prefix("ack ")
                    .and_then(|n| n.parse::<u64>().ok())
                {
                    if acks.is_empty() {
                        let _ = first_tx.send(id);
                    }
                    acks.push(id);
                }
            }
            acks
        });
        // Mid-work: the kill comes only once this run has recovered the state and is labelling
        // (its first acknowledgement), at a random moment after that.
        let first = first_rx.recv_timeout(Duration::from_secs(120));
        if first.is_err() {
            let _ = child.kill();
            panic!("round {round}: the soak acknowledged no label within 120 s");
        }
        std::thread::sleep(Duration::from_millis(rng.gen_range(0..1200)));
        child.kill().expect("SIGKILL");
        let status = child.wait().expect("wait");
        let acks = reader.join().expect("reader");
        // Killed by the signal while running: not an exit of its own (an error or the end).
        assert_eq!(
            status.signal(),
            Some(libc::SIGKILL),
            "round {round}: the soak was not killed by SIGKILL but ended by itself: {status:?}"
        );

        // The run carried on from the recovered state: its ids follow the last recovered one,
        // one after another (every sample is kept), never reusing an id.
        let expected_first = previous.last().map_or(acks[0], |last| last + 1);
        assert_eq!(
            acks[0], expected_first,
            "round {round}: first id after recovery"
        );
        assert!(
            acks.windows(2).all(|w| w[1] == w[0] + 1),
            "round {round}: acknowledged ids are not consecutive"
        );
        acknowledged.extend(acks.iter().copied());

        let (ids, report) = recovered_ids(dir.path());
        let missing: Vec<u64> = acknowledged.difference(&ids).copied().collect();
        assert!(
            missing.is_empty(),
            "round {round}: acknowledged labels lost after SIGKILL: {missing:?}\n{report}"
        );
        // Nothing invented: beyond the acknowledged labels, only the one in flight at this kill.
        let last_ack = *acks.last().expect("at least the first ack");
        let extra: BTreeSet<u64> = ids
            .difference(&acknowledged)
            .filter(|id| !in_flight.contains(*id))
            .copied()
            .collect();
        assert!(
            extra.is_empty() || extra == BTreeSet::from([last_ack + 1]),
            "round {round}: recovered ids never acknowledged: {extra:?}\n{report}"
        );
        in_flight.extend(extra);
        assert!(
            previous.is_subset(&ids),
            "round {round}: samples of earlier rounds lost\n{report}"
        );
        from_snapshot += usize::from(report.snapshot.is_some());
        with_replay += usize::from(report.replayed > 0);
        eprintln!(
            "round {round}: {} acknowledged this run, {} in total, {} recovered ({} in flight); {report}",
            acks.len(),
            acknowledged.len(),
            ids.len(),
            in_flight.len(),
        );
        previous = ids;
    }
    // The kills exercised recovery from snapshots and journal replay, not only a bare journal.
    assert!(from_snapshot > 0, "no recovery started from a snapshot");
    assert!(with_replay > 0, "no recovery replayed the journal");
}
