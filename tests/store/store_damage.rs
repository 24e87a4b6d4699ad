//! Damage on disk: every state file truncated at every byte offset, random bit flips (proptest),
//! a deleted journal, a state from another backbone, files of a newer version. Each must be
//! detected, recovery must give a complete earlier state (a prefix of the event history, never a
//! mix) without panicking, damaged files must be set aside (not deleted), and the device must keep
//! working.

use crate::store_support;

use std::path::Path;

use fieldtune::store::data::StateData;
use fieldtune::store::state_dir::Opened;
use fieldtune::store::{IfLost, Store, StoreConfig, StoreError};
use proptest::prelude::*;
use store_support::*;

/// A directory with two snapshots and journal segments after each, plus the reference states.
fn prepared(config: &StoreConfig) -> (tempfile::TempDir, Vec<StateData>) {
    let all = events(24, 5);
    let reference = reference_states(&all, config);
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut store, _) = reopen(dir.path(), config);
    commit_all(&mut store, &all[..8]);
    store.snapshot().expect("snapshot");
    commit_all(&mut store, &all[8..16]);
    store.snapshot().expect("snapshot");
    commit_all(&mut store, &all[16..24]);
    (dir, reference)
}

/// A temporary directory, in memory (/dev/shm) when there is one: the every-byte loop recovers
/// thousands of directories and fsync on a disk would make it minutes long.
fn scratch_dir() -> tempfile::TempDir {
    let shm = Path::new("/dev/shm");
    if shm.is_dir() {
        if let Ok(dir) = tempfile::tempdir_in(shm) {
            return dir;
        }
    }
    tempfile::tempdir().expect("tempdir")
}

fn state_files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("read_dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".ft"))
        .collect();
    names.sort();
    names
}

/// Opens a damaged copy as the device would: either it recovers every event it has evidence of,
/// or it refuses ([`StoreError::Unrecoverable`]) without changing a byte; then it is opened again
/// the way `fieldtune run --start-fresh` does.
fn open_or_salvage(dir: &Path, config: &StoreConfig) -> (Store, Opened) {
    let files_before = listing(dir);
    match Store::open(real_fs(), dir, backbone(), config.clone()) {
        Ok(opened) => opened,
        Err(StoreError::Unrecoverable { detail, .. }) => {
            assert_eq!(
                listing(dir),
                files_before,
                "a refused open changed the directory"
            );
            assert!(detail.contains("LOST"), "{detail}");
            Store::open_with(
                real_fs(),
                dir,
                backbone(),
                config.clone(),
                IfLost::StartFromWhatIsLeft,
            )
            .expect("starting from what is left must not fail")
        }
        Err(e) => panic!("recovery failed: {e}"),
    }
}

/// File names and contents of a directory.
fn listing(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .expect("read_dir")
        .map(|e| {
            let e = e.expect("entry");
            let bytes = std::fs::read(e.path()).unwrap_or_default();
            (e.file_name().to_string_lossy().into_owned(), bytes)
        })
        .collect();
    files.sort();
    files
}

/// Recovers a damaged copy and checks the result is one of the reference states, that it still
/// accepts a label, and that no file vanished (damaged ones are renamed, not removed).
fn recover_checked(dir: &Path, config: &StoreConfig, reference: &[StateData]) -> u64 {
    let before = std::fs::read_dir(dir).expect("read_dir").count();
    let (mut store, opened) = open_or_salvage(dir, config);
    let seq = store.data().seq;
    assert_eq!(
        comparable(store.data()),
        comparable(&reference[seq as usize]),
        "not a state of the history; report: {}",
        opened.report
    );
    let after = std::fs::read_dir(dir).expect("read_dir").count();
    // Repair may remove superseded clean files, but a damaged one is renamed, so count only
    // the set-aside ones here.
    let corrupt = std::fs::read_dir(dir)
        .expect("read_dir")
        .filter(|e| {
            e.as_ref()
                .map(|e| e.file_name().to_string_lossy().contains(".corrupt"))
                .unwrap_or(false)
        })
        .count();
    assert!(corrupt >= opened.report.set_aside.len().min(1) || after >= before.min(1));
    let next = events(seq as usize + 1, 5);
    let mut last = seq;
    if let Some(event) = next.last().filter(|_| (seq as usize) < 24) {
        store
            .commit(event.clone())
            .expect("the device keeps working");
        last += 1;
    }
    // The repair snapshot (due after any damage) leaves a clean directory.
    store.snapshot_if_due().expect("repair snapshot");
    drop(store);
    let (again, report) = reopen(dir, config);
    assert_eq!(again.data().seq, last);
    assert!(
        report.report.is_clean(),
        "still damaged after repair: {}",
        report.report
    );
    seq
}

#[test]
fn every_truncation_of_every_file_recovers_a_complete_earlier_state() {
    let config = manual_config();
    let (base, reference) = prepared(&config);
    for name in state_files(base.path()) {
        let len = std::fs::metadata(base.path().join(&name))
            .expect("meta")
            .len();
        let mut lowest = u64::MAX;
        for cut in 0..len {
            let dir = scratch_dir();
            copy_dir(base.path(), dir.path());
            let file = std::fs::OpenOptions::new()
                .write(true)
                .open(dir.path().join(&name))
                .expect("open");
            file.set_len(cut).expect("truncate");
            drop(file);
            lowest = lowest.min(recover_checked(dir.path(), &config, &reference));
        }
        // Truncating a snapshot loses nothing (the older one + journal cover it); truncating a
        // journal segment loses at most what follows the cut.
        if name.starts_with("snapshot-") {
            assert_eq!(lowest, 24, "{name}");
        }
    }
}

#[test]
fn a_deleted_journal_gives_the_snapshot_state_with_a_report() {
    let config = manual_config();
    let (dir, reference) = prepared(&config);
    for name in state_files(dir.path()) {
        if name.starts_with("journal-") {
            std::fs::remove_file(dir.path().join(name)).expect("rm");
        }
    }
    let seq = recover_checked(dir.path(), &config, &reference);
    assert_eq!(seq, 16);
}

#[test]
fn another_backbones_state_is_refused_with_a_clear_message() {
    let config = manual_config();
    let (dir, _) = prepared(&config);
    let error =
        Store::open(real_fs(), dir.path(), other_backbone(), config).expect_err("must refuse");
    assert!(matches!(error, StoreError::OtherBackbone { .. }), "{error}");
    let text = error.to_string();
    assert!(text.contains(&backbone().short_hex()), "{text}");
    assert!(
        text.contains("snapshot-") || text.contains("journal-"),
        "{text}"
    );
}

#[test]
fn garbage_files_with_state_names_are_refused_until_the_person_starts_fresh() {
    let config = manual_config();
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("snapshot-00000000000000000005.ft"), b"junk").expect("w");
    std::fs::write(dir.path().join("journal-00000000000000000001.ft"), b"").expect("w");
    std::fs::write(
        dir.path().join("snapshot-00000000000000000009.ft.tmp"),
        b"x",
    )
    .expect("w");
    // A snapshot named for event 5 that does not read: five saved events are gone, so the
    // device does not start empty on its own.
    let error = Store::open(real_fs(), dir.path(), backbone(), config.clone())
        .expect_err("lost events are refused");
    let text = error.to_string();
    assert!(matches!(error, StoreError::Unrecoverable { .. }), "{text}");
    assert!(text.contains("snapshot-00000000000000000005.ft"), "{text}");
    assert!(text.contains("--start-fresh"), "{text}");
    assert!(text.contains("fieldtune state inspect"), "{text}");
    let (mut store, opened) = open_or_salvage(dir.path(), &config);
    assert_eq!(store.data().seq, 0);
    assert_eq!(opened.report.set_aside.len(), 2, "{}", opened.report);
    assert!(dir
        .path()
        .join("snapshot-00000000000000000005.ft.corrupt")
        .exists());
    assert!(!dir
        .path()
        .join("snapshot-00000000000000000009.ft.tmp")
        .exists());
    commit_all(&mut store, &events(3, 1));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn random_bit_flips_are_detected_and_an_earlier_state_is_used(
        file_pick in 0usize..100, offset_pick in 0.0f64..1.0, bit in 0u8..8, flips in 1usize..4
    ) {
        let config = manual_config();
        let (dir, reference) = prepared(&config);
        let names = state_files(dir.path());
        let _ = scratch_dir;
        let name = &names[file_pick % names.len()];
        let path = dir.path().join(name);
        let mut bytes = std::fs::read(&path).expect("read");
        for k in 0..flips {
            let at = ((offset_pick * bytes.len() as f64) as usize + k * 7) % bytes.len();
            bytes[at] ^= 1 << bit;
        }
        std::fs::write(&path, &bytes).expect("write");
        recover_checked(dir.path(), &config, &reference);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// The decoders' never-panic contract on arbitrary input (the fuzz target's check, in CI):
    /// random bytes, with or without a valid header in front.
    #[test]
    fn arbitrary_bytes_never_panic_the_decoders(
        body in proptest::collection::vec(any::<u8>(), 0..600), with_header in any::<bool>()
    ) {
        use fieldtune::store::format::{read_container, FileKind, Header};
        use fieldtune::store::{journal, snapshot};
        let path = Path::new("random.ft");
        let mut bytes = Vec::new();
        if with_header {
            bytes.extend_from_slice(&Header::new(FileKind::Snapshot, backbone()).encode());
        }
        bytes.extend_from_slice(&body);
        for kind in [FileKind::Head, FileKind::Snapshot, FileKind::Journal, FileKind::Export] {
            let _ = read_container(&bytes, path, kind, &backbone());
        }
        let decoded = snapshot::decode(&bytes, path, FileKind::Snapshot, &backbone());
        prop_assert!(decoded.is_err() || body.is_empty() || with_header);
        let _ = journal::read_segment(&bytes, path, &backbone());
    }
}
