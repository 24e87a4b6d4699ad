//! Disk full (injected ENOSPC) and a read-only directory (injected EROFS): a commit the storage
//! refuses is not applied (the state stays at the last durable event), the error names the file
//! and a real fix, no temporary file is left behind, nothing already saved is damaged, and once
//! the storage is back the same events commit. A real full file system is exercised through the
//! release binary in `tests/service/device_restart.rs` (a full tmpfs).

use crate::store_support;

use fieldtune::store::fs::Fault;
use store_support::*;

fn storage_failure_then_recovery(fault: Fault) {
    let config = manual_config();
    let all = events(30, 8);
    let reference = reference_states(&all, &config);
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut store, fs) = open_faulty_with(dir.path(), &config, &all[..10]);
    store.snapshot().expect("snapshot");
    commit_all(&mut store, &all[10..15]);

    fs.arm(fault, 0);
    for event in &all[15..20] {
        let error = store.commit(event.clone()).expect_err("storage refuses");
        assert!(error.is_storage_failure(), "{error}");
        let text = error.to_string();
        assert!(text.contains("journal-"), "names the file: {text}");
        assert!(
            text.contains("nothing already saved was changed"),
            "says what happened: {text}"
        );
        assert!(
            !text.contains("max_total_bytes"),
            "names no setting that does not exist: {text}"
        );
        // Not applied: the state is still the last durable one.
        assert_eq!(comparable(store.data()), comparable(&reference[15]));
    }
    assert!(store.snapshot().is_err(), "snapshot refused too");
    let leftovers: Vec<String> = std::fs::read_dir(dir.path())
        .expect("read_dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tmp"))
        .collect();
    assert!(
        leftovers.is_empty(),
        "temporary files left behind: {leftovers:?}"
    );

    // Nothing saved is damaged: a restart now recovers exactly the acknowledged state.
    let probe = tempfile::tempdir().expect("tempdir");
    copy_dir(dir.path(), probe.path());
    let (durable, opened) = reopen(probe.path(), &config);
    assert_eq!(
        comparable(durable.data()),
        comparable(&reference[15]),
        "{}",
        opened.report
    );

    // Storage back: the refused events commit now, after the torn bytes are cut off.
    fs.heal();
    commit_all(&mut store, &all[15..25]);
    assert_eq!(comparable(store.data()), comparable(&reference[25]));
    drop(store);
    let (recovered, _) = reopen(dir.path(), &config);
    assert_eq!(comparable(recovered.data()), comparable(&reference[25]));
}

#[test]
fn disk_full_refuses_the_event_and_keeps_what_was_saved() {
    storage_failure_then_recovery(Fault::NoSpace);
}

#[test]
fn read_only_storage_refuses_the_event_and_keeps_what_was_saved() {
    storage_failure_then_recovery(Fault::ReadOnly);
}
