//! A real `fieldtune state soak` process labelling random features is killed with SIGKILL at random
//! moments (inside journal appends, snapshots, renames — wherever it happens to be). After each
//! kill, every label it printed as acknowledged must be in the recovered state, and the next run
//! must carry on from there.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use fieldtune::store::fs::RealFs;
use fieldtune::store::recovery::{detect_backbone, recover};
use fieldtune::store::StoreConfig;
use rand::{Rng, SeedableRng};

fn recovered_ids(dir: &std::path::Path) -> (BTreeSet<u64>, String) {
    let backbone = detect_backbone(&RealFs, dir).expect("a state was written");
    let config = StoreConfig {
        max_samples_per_class: u32::MAX,
        max_feature_bytes: u64::MAX,
        ..StoreConfig::default()
    };
    let recovery = recover(&RealFs, dir, &backbone, &config).expect("recovery never fails");
    (
        recovery.data.samples.iter().map(|s| s.id).collect(),
        recovery.report.to_string(),
    )
}

#[test]
fn every_acknowledged_label_survives_sigkill() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(42);
    let mut acknowledged = BTreeSet::new();
    let mut kills = 0;
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
        let reader = std::thread::spawn(move || {
            let mut acks = Vec::new();
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(id) = line
                    .strip_prefix("ack ")
                    .and_then(|n| n.parse::<u64>().ok())
                {
                    acks.push(id);
                }
            }
            acks
        });
        std::thread::sleep(Duration::from_millis(rng.gen_range(300..1500)));
        child.kill().expect("SIGKILL");
        let status = child.wait().expect("wait");
        let acks = reader.join().expect("reader");
        if status.success() {
            panic!("the soak ended by itself before the kill");
        }
        kills += 1;
        acknowledged.extend(acks.iter().copied());
        let (ids, report) = recovered_ids(dir.path());
        let missing: Vec<u64> = acknowledged.difference(&ids).copied().collect();
        assert!(
            missing.is_empty(),
            "round {round}: acknowledged labels lost after SIGKILL: {missing:?}\n{report}"
        );
        eprintln!(
            "round {round}: {} acknowledged this run, {} in total, {} recovered",
            acks.len(),
            acknowledged.len(),
            ids.len()
        );
    }
    assert_eq!(kills, 5);
    assert!(
        !acknowledged.is_empty(),
        "the soak never acknowledged a label"
    );
}
