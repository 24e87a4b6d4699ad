//! `fieldtune state merge A B --out C` as a person runs it on two exported states made by the real
//! binary (`state soak`): B's labels join A's (classes matched by name), a frame A labelled keeps
//! A's label, merging the same file again adds nothing, and a state of another backbone is
//! refused.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use fieldtune::store::fs::RealFs;
use fieldtune::store::recovery::{detect_backbone, recover};
use fieldtune::store::StoreConfig;

fn fieldtune(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_fieldtune"))
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .expect("run fieldtune")
}

fn ok(args: &[&str]) -> String {
    let out = fieldtune(args);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "fieldtune {args:?}: {text}");
    text
}

/// A soaked state of `events` random labels, exported; returns the exported file.
fn exported(root: &Path, name: &str, seed: &str, dim: &str) -> PathBuf {
    let dir = root.join(name);
    let d = dir.to_str().unwrap();
    ok(&[
        "state", "soak", "--dir", d, "--events", "30", "--seed", seed, "--dim", dim,
    ]);
    let file = root.join(format!("{name}.export"));
    ok(&["state", "export", d, "--out", file.to_str().unwrap()]);
    file
}

/// Imports `file` into a new directory and returns its live samples' (class name, frame hash).
fn samples(root: &Path, file: &Path, name: &str) -> Vec<(String, [u8; 32])> {
    let dir = root.join(name);
    ok(&[
        "state",
        "import",
        file.to_str().unwrap(),
        "--into",
        dir.to_str().unwrap(),
    ]);
    let backbone = detect_backbone(&RealFs, &dir).expect("a state");
    let data = recover(&RealFs, &dir, &backbone, &StoreConfig::default())
        .expect("recover")
        .data;
    data.live_samples()
        .map(|s| (data.classes[s.class as usize].name.clone(), s.frame_hash.0))
        .collect()
}

#[test]
fn merge_adds_the_other_labels_once_and_refuses_another_backbone() {
    let root = tempfile::tempdir().unwrap();
    let r = root.path();
    let a = exported(r, "a", "1", "1280");
    let b = exported(r, "b", "2", "1280");
    let merged = r.join("ab.export");
    let said = ok(&[
        "state",
        "merge",
        a.to_str().unwrap(),
        b.to_str().unwrap(),
        "--out",
        merged.to_str().unwrap(),
    ]);
    println!("{said}");
    let own = samples(r, &a, "a-in");
    let theirs = samples(r, &b, "b-in");
    let both = samples(r, &merged, "ab-in");
    assert_eq!((own.len(), theirs.len()), (30, 30));
    assert_eq!(both.len(), 60, "{said}");
    for sample in own.iter().chain(&theirs) {
        assert!(both.contains(sample), "{sample:?} kept with its class name");
    }

    // Merging B again (or A into itself) adds nothing: every frame is already labelled here.
    let again = r.join("abb.export");
    let said = ok(&[
        "state",
        "merge",
        merged.to_str().unwrap(),
        b.to_str().unwrap(),
        "--out",
        again.to_str().unwrap(),
    ]);
    assert!(said.starts_with("merged 0 samples"), "{said}");
    assert_eq!(samples(r, &again, "abb-in").len(), 60);

    // Another backbone (64-long features): refused, naming both files, nothing written.
    let c = exported(r, "c", "3", "64");
    let refused_out = r.join("ac.export");
    let out = fieldtune(&[
        "state",
        "merge",
        a.to_str().unwrap(),
        c.to_str().unwrap(),
        "--out",
        refused_out.to_str().unwrap(),
    ]);
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        text.contains("backbone") && text.contains("rebase"),
        "{text}"
    );
    assert!(!refused_out.exists());
}
