//! Integration tests of the arithmetic: the real backbone against its reference features, the
//! heads (batch and online: behaviour, gradients checked by finite differences, rehearsal, the
//! reference implementation, real features) and the learner's model.
//!
//! One test binary of several modules (each module is a former `tests/<name>.rs`, its tests named
//! `<name>::<test>`), because every test binary links tract: one link instead of ten per target
//! and profile. The cross CI runs this binary under emulation on every board target (the
//! arithmetic is what differs between them). Run one module with
//! `cargo test --test arithmetic head_gradients::`.

#[path = "../head_support/mod.rs"]
mod head_support;

mod backbone;
mod head_behaviour;
mod head_gradients;
mod head_online_behaviour;
mod head_online_gradients;
mod head_online_rehearsal;
mod head_real_features;
mod head_reference;
mod learner_model;
mod learner_real_features;
