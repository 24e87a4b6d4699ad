//! The crash-safe on-flash store: the file container every fieldtune file uses, head files, and
//! the device state (replay set + label journal + snapshots) that survives power cuts.
//!
//! - [`format`]: the versioned, checksummed container (header + CRC32 records).
//! - [`head_file`]: save/load a trained head alone, atomically.
//! - [`fs`]: the file-system seam every write goes through, with a fault-injecting twin.
//! - [`config`], [`features`], [`events`], [`data`]: what the device state holds and the rules
//!   (bounds, eviction) that change it; pure, no I/O.
//! - [`journal`], [`snapshot`], [`migrate`], [`checks`], [`recovery`], [`state_dir`]: how it
//!   lives on flash.
//! - [`remote`]: samples merged from other devices of a fleet group, and their tombstones.
//! - [`lock`]: one process at a time per state directory.
//! - [`error`]: [`StoreError`], the one error type here.
//!
//! The store knows records and files, not heads: a head travels as opaque bytes with the
//! fingerprint of what it was trained on. [`crate::learner`] keeps a head in step with it.

pub mod checks;
pub mod config;
pub mod data;
pub mod error;
pub mod events;
pub mod features;
pub mod format;
pub mod fs;
pub mod head_file;
pub mod journal;
pub mod lock;
pub mod merge;
pub mod migrate;
pub mod recovery;
pub mod remote;
pub mod snapshot;
pub mod state_dir;

pub use config::StoreConfig;
pub use error::{Result, StoreError};
pub use events::{Action, ClassTarget, FrameHash, LabelEvent};
pub use features::FeatureEncoding;
pub use head_file::{load_head, save_head};
pub use recovery::RecoveryReport;
pub use state_dir::{IfLost, Store};
