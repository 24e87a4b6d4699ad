//! The one error type of the store: every way reading or writing fieldtune's files can fail, each
//! message naming the file and what to do about it.

use std::io;
use std::path::PathBuf;

/// Result alias for the store.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Everything that can go wrong reading or writing a fieldtune file or state directory.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The storage is full (ENOSPC). Nothing already saved was touched.
    #[error("no space left to {op} {path}: free space on that file system (old exports, logs, the predictions file), or lower store.max_per_class in the board file; nothing already saved was changed")]
    NoSpace {
        /// What was being done.
        op: &'static str,
        /// The file or directory.
        path: PathBuf,
    },
    /// The file system or directory is read-only (EROFS / EACCES).
    #[error("cannot {op} {path}: the directory is read-only ({source}); remount it read-write or fix its permissions; nothing already saved was changed")]
    ReadOnly {
        /// What was being done.
        op: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// Any other I/O failure.
    #[error("cannot {op} {path}: {source}; check the storage device and the path")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// The file does not start with fieldtune's magic bytes.
    #[error("{path} is not a fieldtune file (no fieldtune header); point at a file written by fieldtune")]
    NotFieldtune {
        /// The file.
        path: PathBuf,
    },
    /// A checksum, length or encoding check failed.
    #[error("{path} is corrupt: {detail}; restore it from an export or delete it to start over (fieldtune state keeps damaged state files aside as *.corrupt)")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What exactly was wrong and where.
        detail: String,
    },
    /// The file was written by a newer fieldtune.
    #[error("{path} has format version {found} but this fieldtune reads versions up to {supported}; upgrade fieldtune on this device")]
    NewerVersion {
        /// The file.
        path: PathBuf,
        /// Version in the file.
        found: u16,
        /// Newest version this build reads.
        supported: u16,
    },
    /// The file holds another kind of content (e.g. a journal where a head file was expected).
    #[error("{path} is a fieldtune {found} file, not a {expected} file; pass the right file")]
    WrongKind {
        /// The file.
        path: PathBuf,
        /// Kind in the file.
        found: String,
        /// Kind wanted.
        expected: String,
    },
    /// The file was made for another backbone: its features mean nothing to this model.
    #[error("{path} was made for backbone {found} but this device runs backbone {expected}; its features mean nothing to this model: retrain for this backbone, or run the model it was made with")]
    OtherBackbone {
        /// The file.
        path: PathBuf,
        /// Backbone in the file (short sha256 and dimension).
        found: String,
        /// Backbone expected.
        expected: String,
    },
    /// A value could not be encoded (should not happen for fieldtune's own types).
    #[error("cannot encode {what} for {path}: {detail}")]
    Encode {
        /// What was encoded.
        what: &'static str,
        /// The file it was meant for.
        path: PathBuf,
        /// The encoder's message.
        detail: String,
    },
    /// Events that were saved once cannot be recovered: opening refuses, changing nothing.
    #[error("the saved state in {dir} cannot be fully recovered:\n  {detail}\nNothing was changed. See which files are damaged with `fieldtune state inspect {dir}`; restore them from a backup or an export (`fieldtune state import`), or move the damaged files aside; or start from what can be recovered with `fieldtune run --start-fresh` (damaged files are then kept as *.corrupt)")]
    Unrecoverable {
        /// The state directory.
        dir: PathBuf,
        /// The recovery report, with what is lost.
        detail: String,
    },
    /// A label event refers to something the state does not have.
    #[error("{0}")]
    InvalidEvent(String),
    /// A configuration value is out of range.
    #[error("invalid store configuration: {0}")]
    Config(String),
    /// The head could not be rebuilt or updated.
    #[error("head: {0}")]
    Head(String),
}

impl StoreError {
    /// Wraps an I/O error, sorting out "disk full" and "read-only", which callers treat as
    /// "keep serving from memory and retry later".
    pub fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        let path = path.into();
        match source.kind() {
            io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded => Self::NoSpace { op, path },
            io::ErrorKind::ReadOnlyFilesystem | io::ErrorKind::PermissionDenied => {
                Self::ReadOnly { op, path, source }
            }
            _ => Self::Io { op, path, source },
        }
    }

    /// Whether this error is the storage refusing writes (full, read-only or an I/O error), as
    /// opposed to bad data: the in-memory state is still good and the save can be retried.
    pub fn is_storage_failure(&self) -> bool {
        matches!(
            self,
            Self::NoSpace { .. } | Self::ReadOnly { .. } | Self::Io { .. }
        )
    }
}
