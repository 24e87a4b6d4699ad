//! Crash simulation at every write boundary: for every N, a save (journal append, snapshot,
//! several events, open-time repair) is stopped at its N-th disk operation (the write in progress
//! torn, nothing after it done), then the directory is recovered as a restarted process would.
//! The recovered state must be exactly the state before or after the save — never a mix, never
//! nothing.

use crate::store_support;

use std::sync::Arc;

use fieldtune::store::fs::{Fault, FaultyFs};
use fieldtune::store::Store;
use store_support::*;

/// Runs `op` on a store over `base` (a directory made by `prepare`) with the fault at every
/// operation index, checking recovery gives `before` or `after` reference state each time.
fn every_boundary(
    prepare: impl Fn(&std::path::Path),
    op: impl Fn(&mut Store),
    before: usize,
    after: usize,
) {
    let config = manual_config();
    let all = events(40, 1);
    let reference = reference_states(&all, &config);
    let base = tempfile::tempdir().expect("tempdir");
    prepare(base.path());
    // Count the operations of a clean run.
    let counting = FaultyFs::counting();
    let dir = tempfile::tempdir().expect("tempdir");
    copy_dir(base.path(), dir.path());
    let (mut store, _) = Store::open(
        Arc::new(counting.clone()),
        dir.path(),
        backbone(),
        config.clone(),
    )
    .expect("open");
    let start = counting.ops();
    op(&mut store);
    let steps = counting.ops() - start;
    assert!(steps > 0, "the operation wrote nothing");
    let mut outcomes = [0usize; 2];
    for fault in [Fault::Stop, Fault::FailOnce] {
        for n in 0..=steps {
            let dir = tempfile::tempdir().expect("tempdir");
            copy_dir(base.path(), dir.path());
            let fs = FaultyFs::counting();
            let (mut store, _) =
                Store::open(Arc::new(fs.clone()), dir.path(), backbone(), config.clone())
                    .expect("open");
            fs.arm(fault, n);
            op(&mut store);
            drop(store);
            let (recovered, opened) = reopen(dir.path(), &config);
            let got = comparable(recovered.data());
            if got == comparable(&reference[after]) {
                outcomes[1] += 1;
            } else {
                assert_eq!(
                    got,
                    comparable(&reference[before]),
                    "{fault:?} at op {n}/{steps}: neither old nor new state; report: {}",
                    opened.report
                );
                outcomes[0] += 1;
            }
            // And the directory keeps working after recovery.
            let mut store = recovered;
            let next = &all[after..after + 1];
            if store.data().seq == before as u64 {
                commit_all(&mut store, &all[before..before + 1]);
            } else {
                commit_all(&mut store, next);
            }
        }
    }
    // A clean run (n = steps) must give the new state; an early stop the old one.
    assert!(outcomes[1] > 0 && outcomes[0] > 0, "{outcomes:?}");
}

#[test]
fn journal_append_stopped_at_any_step_gives_old_or_new() {
    let config = manual_config();
    let all = events(40, 1);
    every_boundary(
        |dir| {
            let (mut store, _) = reopen(dir, &config);
            commit_all(&mut store, &all[..10]);
            store.snapshot().expect("snapshot");
            commit_all(&mut store, &all[10..20]);
        },
        |store| {
            let _ = store.commit(all[20].clone());
        },
        20,
        21,
    );
}

#[test]
fn snapshot_stopped_at_any_step_gives_the_same_state() {
    let config = manual_config();
    let all = events(40, 1);
    every_boundary(
        |dir| {
            let (mut store, _) = reopen(dir, &config);
            commit_all(&mut store, &all[..10]);
            store.snapshot().expect("snapshot");
            commit_all(&mut store, &all[10..20]);
            store.snapshot().expect("snapshot");
            commit_all(&mut store, &all[20..30]);
        },
        |store| {
            // Commit one more (durable), then snapshot: every stop of the snapshot must keep it.
            let _ = store.commit(all[30].clone());
            let _ = store.snapshot();
        },
        30,
        31,
    );
}

#[test]
fn a_stopped_first_save_into_an_empty_directory_gives_empty_or_one_event() {
    let all = events(5, 2);
    every_boundary(
        |_| {},
        |store| {
            let _ = store.commit(all[0].clone());
        },
        0,
        1,
    );
}

#[test]
fn a_torn_append_is_cut_before_the_next_one() {
    let config = manual_config();
    let all = events(30, 3);
    let reference = reference_states(&all, &config);
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut store, fs) = open_faulty_with(dir.path(), &config, &all[..10]);
    // The append is torn (half written) and reported; the event is not applied.
    fs.arm(Fault::NoSpace, 0);
    let error = store.commit(all[10].clone()).expect_err("torn");
    assert!(error.is_storage_failure(), "{error}");
    assert_eq!(comparable(store.data()), comparable(&reference[10]));
    fs.heal();
    // The same event again, and more: the torn bytes were cut off first.
    commit_all(&mut store, &all[10..20]);
    drop(store);
    let (recovered, opened) = reopen(dir.path(), &config);
    assert_eq!(comparable(recovered.data()), comparable(&reference[20]));
    assert!(opened.report.is_clean(), "{}", opened.report);
}
