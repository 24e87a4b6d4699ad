//! The crash-safe on-flash store: the file container every fieldtune file uses, head files, and
//! the device state (replay set + label journal + snapshots) that survives power cuts.
//!
//! - [`format`]: the versioned, checksummed container (header + CRC32 records).
//! - [`head_file`]: save/load a trained head alone, atomically.
//! - [`fs`]: the file-system seam every write goes through, with a fault-injecting twin.
//! - [`error`]: [`StoreError`], the one error type here.

pub mod error;
pub mod format;
pub mod fs;
pub mod head_file;

pub use error::{Result, StoreError};
pub use head_file::{load_head, save_head};
