//! Fuzz target: arbitrary bytes as every kind of fieldtune file (head file header, snapshot,
//! journal segment, export) and as a whole state directory must never panic, only return errors
//! or a (possibly damaged-but-reported) state.
//!
//! Run: `cargo fuzz run state_decoder` (nightly + cargo-fuzz); `cargo build` here only checks it
//! compiles.

#![no_main]

use std::path::Path;

use fieldtune::model::BackboneId;
use fieldtune::store::format::{read_container, FileKind, Header};
use fieldtune::store::{journal, snapshot};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let path = Path::new("fuzz.ft");
    // Accept whatever backbone the header claims, so the fuzzer gets past the header check.
    let backbone = Header::decode(data, path)
        .map(|h| h.backbone)
        .unwrap_or(BackboneId {
            sha256: [0; 32],
            dim: 8,
        });
    for kind in [
        FileKind::Head,
        FileKind::Snapshot,
        FileKind::Journal,
        FileKind::Export,
    ] {
        let _ = read_container(data, path, kind, &backbone);
    }
    let _ = snapshot::decode(data, path, FileKind::Snapshot, &backbone);
    let _ = snapshot::decode(data, path, FileKind::Export, &backbone);
    let _ = journal::read_segment(data, path, &backbone);
});
