//! Head files: round trip, and each error a damaged or foreign file must give (not a fieldtune
//! file, corrupt, other backbone, newer format version, wrong kind), plus an atomic save that a
//! fault at any step leaves the previous file readable.

use std::path::Path;

use fieldtune::model::BackboneId;
use fieldtune::store::format::{FileKind, Header, HEADER_LEN};
use fieldtune::store::fs::{Fault, FaultyFs};
use fieldtune::store::head_file::save_head_with;
use fieldtune::store::{load_head, save_head, StoreError};
use serde::{Deserialize, Serialize};

/// Stands in for `head::Head`: the head file is generic over any serde type.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct TinyHead {
    classes: Vec<String>,
    weights: Vec<f32>,
}

fn backbone(seed: u8) -> BackboneId {
    BackboneId {
        sha256: [seed; 32],
        dim: 1280,
    }
}

fn head(n: usize) -> TinyHead {
    TinyHead {
        classes: (0..n).map(|i| format!("class-{i}")).collect(),
        weights: (0..n * 16).map(|i| i as f32 * 0.25 - 3.0).collect(),
    }
}

fn saved(dir: &Path) -> std::path::PathBuf {
    let path = dir.join("head.ft");
    save_head(&path, &head(3), &backbone(1)).expect("save");
    path
}

#[test]
fn round_trip_gives_back_the_same_head() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = saved(dir.path());
    let loaded: TinyHead = load_head(&path, &backbone(1)).expect("load");
    assert_eq!(loaded, head(3));
    assert!(!dir.path().join("head.ft.tmp").exists());
}

#[test]
fn a_file_that_is_not_fieldtunes_is_named_as_such() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("photo.jpg");
    std::fs::write(&path, b"\xff\xd8\xff\xe0 not a head").expect("write");
    let error = load_head::<TinyHead>(&path, &backbone(1)).expect_err("must refuse");
    assert!(matches!(error, StoreError::NotFieldtune { .. }), "{error}");
    assert!(error.to_string().contains("photo.jpg"), "{error}");
}

#[test]
fn a_flipped_payload_byte_is_a_checksum_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = saved(dir.path());
    let mut bytes = std::fs::read(&path).expect("read");
    let last = bytes.len() - 1;
    bytes[last] ^= 0x40;
    std::fs::write(&path, &bytes).expect("write");
    let error = load_head::<TinyHead>(&path, &backbone(1)).expect_err("must refuse");
    assert!(matches!(error, StoreError::Corrupt { .. }), "{error}");
    assert!(error.to_string().contains("checksum"), "{error}");
}

#[test]
fn every_truncation_is_refused_without_panic() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = saved(dir.path());
    let bytes = std::fs::read(&path).expect("read");
    let cut = dir.path().join("cut.ft");
    for len in 0..bytes.len() {
        std::fs::write(&cut, &bytes[..len]).expect("write");
        let error = load_head::<TinyHead>(&cut, &backbone(1)).expect_err("truncated");
        assert!(
            matches!(
                error,
                StoreError::NotFieldtune { .. } | StoreError::Corrupt { .. }
            ),
            "at {len}: {error}"
        );
    }
}

#[test]
fn another_backbones_head_is_refused_naming_both() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = saved(dir.path());
    let error = load_head::<TinyHead>(&path, &backbone(2)).expect_err("must refuse");
    assert!(matches!(error, StoreError::OtherBackbone { .. }), "{error}");
    let text = error.to_string();
    assert!(text.contains(&backbone(1).short_hex()), "{text}");
    assert!(text.contains(&backbone(2).short_hex()), "{text}");
    assert!(text.contains("head.ft"), "{text}");
}

#[test]
fn a_newer_format_version_asks_for_an_upgrade() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = saved(dir.path());
    let mut bytes = std::fs::read(&path).expect("read");
    let future = Header {
        version: fieldtune::store::format::FORMAT_VERSION + 1,
        kind: FileKind::Head,
        backbone: backbone(1),
    };
    bytes[..HEADER_LEN].copy_from_slice(&future.encode());
    std::fs::write(&path, &bytes).expect("write");
    let error = load_head::<TinyHead>(&path, &backbone(1)).expect_err("must refuse");
    assert!(matches!(error, StoreError::NewerVersion { .. }), "{error}");
    assert!(error.to_string().contains("upgrade"), "{error}");
}

#[test]
fn a_file_of_another_kind_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = saved(dir.path());
    let mut bytes = std::fs::read(&path).expect("read");
    bytes[..HEADER_LEN].copy_from_slice(&Header::new(FileKind::Journal, backbone(1)).encode());
    std::fs::write(&path, &bytes).expect("write");
    let error = load_head::<TinyHead>(&path, &backbone(1)).expect_err("must refuse");
    assert!(matches!(error, StoreError::WrongKind { .. }), "{error}");
}

#[test]
fn a_missing_file_is_an_io_error_naming_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("nothing-here.ft");
    let error = load_head::<TinyHead>(&path, &backbone(1)).expect_err("must refuse");
    assert!(error.to_string().contains("nothing-here.ft"), "{error}");
}

#[test]
fn a_fault_at_any_step_of_a_save_leaves_old_or_new() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = saved(dir.path());
    let counter = FaultyFs::counting();
    save_head_with(&counter, &path, &head(5), &backbone(1)).expect("counted save");
    let steps = counter.ops();
    assert!(steps >= 4, "write, fsync, rename, fsync dir: {steps}");
    for fault in [Fault::Stop, Fault::FailOnce, Fault::NoSpace] {
        for after in 0..steps {
            save_head(&path, &head(3), &backbone(1)).expect("reset");
            let fs = FaultyFs::new(fault, after);
            let result = save_head_with(&fs, &path, &head(5), &backbone(1));
            let loaded: TinyHead = load_head(&path, &backbone(1)).expect("old or new");
            assert!(
                loaded == head(3) || loaded == head(5),
                "{fault:?} after {after}"
            );
            if result.is_err() {
                // A failed save reports itself and the directory still holds a good head.
                assert!(fs.fired());
            }
        }
    }
}
