//! fieldtune: a field device that learns on the spot.
//!
//! A frozen, pretrained ONNX backbone (run by tract) turns camera frames into feature vectors; a small
//! pure-Rust head, trained on the device by hand-written SGD, turns features into classes. The head,
//! its classes and the stored features persist to flash and survive power cuts.
//!
//! Module map (one job each):
//! - [`model`]: model descriptors (`models/*.toml`) and the backbone identity.
//! - [`preprocess`]: image bytes → normalised NCHW tensor, within [`preprocess::DecodeLimits`];
//!   [`jpeg_check`]: whether a JPEG's compressed data covers every block.
//! - [`backbone`]: the only module that knows tract: ONNX file → runnable plan → feature vector.
//! - [`embedder`]: preprocessing + backbone of one model, with per-stage times.
//! - [`head`]: linear and MLP heads, SGD, calibration and "unknown" detection.
//! - [`dataset`], [`cache`], [`featurize`]: image folders, the feature cache, folder → features;
//!   [`augment`]: extra views of labelled images (mirror, crops), cached per view.
//! - [`eval`], [`bench`], [`curve`]: metrics, benchmarks and learning curves; [`plot`]: PNG pictures
//!   of them.
//! - [`store`]: the crash-safe on-flash state (snapshots + label journal).
//! - [`source`], [`button`], [`board`], [`notify`], [`control`], [`service`]: the device.
//! - [`mqtt`]: predictions, events and Home Assistant discovery to an MQTT broker; commands from it.
//! - [`cli`]: the command-line front end used by the thin binary; [`bounded_file`]: reading a
//!   file the operator names, within a bound.

pub mod augment;
pub mod backbone;
pub mod bench;
pub mod board;
pub mod bounded_file;
pub mod button;
pub mod cache;
pub mod cli;
pub mod control;
pub mod curve;
pub mod dataset;
pub mod embedder;
pub mod eval;
pub mod featurize;
pub mod head;
pub mod heap;
pub mod jpeg_check;
pub mod learner;
pub mod model;
pub mod mqtt;
pub mod notify;
pub mod plot;
pub mod preprocess;
pub mod service;
pub mod source;
pub mod store;
pub mod thumbnail;
pub mod web;
