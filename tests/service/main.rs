//! Integration tests of the device service and the core commands end to end, through the real
//! binary: `fieldtune run` with its control socket, buttons and notifications, across crashes and
//! restarts, and the core commands (`train`, `predict`, `eval`, ...) as a user runs them.
//!
//! One test binary of several modules (each module is a former `tests/<name>.rs`, its tests named
//! `<name>::<test>`), because every test binary links tract. The cross CI runs this binary under
//! emulation on every board target. Run one module with `cargo test --test service device_restart::`.

#[path = "../device_support/mod.rs"]
mod device_support;

mod cli_core;
mod device_restart;
mod device_service;
mod device_service_buttons;
