//! `fieldtune state inspect|export|import` as a person runs them: a state made by the real binary
//! (`state soak`), inspected, exported, imported on "another device", damaged by hand.

use std::path::Path;
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

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn sample_ids(dir: &Path) -> Vec<u64> {
    let backbone = detect_backbone(&RealFs, dir).expect("a state");
    let recovery = recover(&RealFs, dir, &backbone, &StoreConfig::default()).expect("recover");
    recovery.data.samples.iter().map(|s| s.id).collect()
}

#[test]
fn inspect_export_import_and_hand_made_damage() {
    let root = tempfile::tempdir().expect("tempdir");
    let a = root.path().join("device-a");
    let a_str = a.to_str().expect("utf-8 path");
    let soak = fieldtune(&["state", "soak", "--dir", a_str, "--events", "40"]);
    assert!(soak.status.success(), "{}", text(&soak));

    let inspect = fieldtune(&["state", "inspect", a_str]);
    let shown = text(&inspect);
    assert!(inspect.status.success(), "{shown}");
    let version = format!(
        "format version    {}",
        fieldtune::store::format::FORMAT_VERSION
    );
    assert!(shown.contains(&version), "{shown}");
    assert!(shown.contains("health            ok"), "{shown}");
    assert!(shown.contains("class-"), "{shown}");

    // Move the state to another device.
    let export_file = root.path().join("a.export");
    let export = fieldtune(&[
        "state",
        "export",
        a_str,
        "--out",
        export_file.to_str().expect("utf-8"),
    ]);
    assert!(export.status.success(), "{}", text(&export));
    let b = root.path().join("device-b");
    let import = fieldtune(&[
        "state",
        "import",
        export_file.to_str().expect("utf-8"),
        "--into",
        b.to_str().expect("utf-8"),
    ]);
    assert!(import.status.success(), "{}", text(&import));
    assert_eq!(sample_ids(&a), sample_ids(&b));
    // The imported state keeps learning.
    let more = fieldtune(&[
        "state",
        "soak",
        "--dir",
        b.to_str().expect("utf-8"),
        "--events",
        "5",
    ]);
    assert!(more.status.success(), "{}", text(&more));
    assert_eq!(sample_ids(&b).len(), sample_ids(&a).len() + 5);

    // Import never overwrites a state.
    let again = fieldtune(&[
        "state",
        "import",
        export_file.to_str().expect("utf-8"),
        "--into",
        a_str,
    ]);
    assert!(!again.status.success());
    assert!(
        text(&again).contains("already holds a state"),
        "{}",
        text(&again)
    );

    // Hand-made damage: flip a byte in the newest journal segment; inspect says what goes.
    let mut journals: Vec<_> = std::fs::read_dir(&a)
        .expect("read_dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("journal-"))
        })
        .collect();
    journals.sort();
    let newest = journals.last().expect("a journal segment");
    let mut bytes = std::fs::read(newest).expect("read");
    let at = bytes.len() - 100;
    bytes[at] ^= 0xff;
    std::fs::write(newest, &bytes).expect("write");
    let inspect = fieldtune(&["state", "inspect", a_str]);
    let shown = text(&inspect);
    assert!(inspect.status.success(), "{shown}");
    assert!(shown.contains("damaged"), "{shown}");
    assert!(shown.contains("checksum"), "{shown}");
    // …and the device still starts and labels.
    let after = fieldtune(&["state", "soak", "--dir", a_str, "--events", "3"]);
    assert!(after.status.success(), "{}", text(&after));

    // A file that is not a state, given to inspect.
    let junk = root.path().join("junk.ft");
    std::fs::write(&junk, b"hello").expect("write");
    let inspect = fieldtune(&["state", "inspect", junk.to_str().expect("utf-8")]);
    assert!(!inspect.status.success());
    assert!(
        text(&inspect).contains("not a fieldtune file"),
        "{}",
        text(&inspect)
    );
}
