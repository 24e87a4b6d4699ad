//! Integration tests of what the device accepts and shows around its core: input parsers and
//! limits, the button state machine, frame sources and unchanged-frame skipping, label views,
//! prediction output rotation, MQTT and the fleet, the web page and HTTP API, and the few-shot
//! curve command.
//!
//! One test binary of several modules (each module is a former `tests/<name>.rs`, its tests named
//! `<name>::<test>`), because every test binary links tract: one link instead of twelve per
//! target and profile (`limits_cli` stays a binary of its own, see its docs). This code is the same on every target with nothing 32-bit specific in it,
//! so the cross CI runs it under emulation on aarch64 only (see `.ci/cross`). Run one module with
//! `cargo test --test interfaces web_device::`.

#[path = "../device_support/mod.rs"]
mod device_support;

mod device_buttons;
mod device_fleet;
mod device_label_views;
mod device_mqtt;
mod device_output_rotate;
mod device_skip;
mod device_sources;
mod fewshot_curve;
mod limits_device;
mod limits_properties;
mod web_browser;
mod web_device;
