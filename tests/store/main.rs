//! Integration tests of the persisted state: the store's crash safety (crashes, SIGKILL, damage,
//! a full or failing disk, the lock), migration of old formats, head files, the `state`
//! commands (export, merge, import of a head) and the learner's fleet merge on real files.
//!
//! One test binary of several modules (each module is a former `tests/<name>.rs`, its tests named
//! `<name>::<test>`), because every test binary links tract: one link instead of eleven per
//! target and profile. The cross CI runs this binary under emulation on every board target (file
//! offsets, sizes and the on-disk format are where 32-bit boards differ). Run one module with
//! `cargo test --test store store_crash::`.

#[path = "../device_support/mod.rs"]
mod device_support;
#[path = "../store_support/mod.rs"]
mod store_support;

mod learner_fleet;
mod state_import_head;
mod store_cli;
mod store_crash;
mod store_damage;
mod store_head_file;
mod store_kill;
mod store_lock;
mod store_merge;
mod store_migration;
mod store_storage_failure;
