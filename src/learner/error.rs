//! [`LearnerError`]: everything a learning action can be refused for, each naming the fix.

use crate::store::lock::LockError;
use crate::store::StoreError;

/// Why the learner refused or failed an action. A refused action changed nothing.
#[derive(Debug, thiserror::Error)]
pub enum LearnerError {
    /// The store refused or could not save (full disk, read-only, damaged or foreign state).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Another process holds the state directory.
    #[error(transparent)]
    Lock(#[from] LockError),
    /// No live class has that name.
    #[error("there is no class named {name}; the classes are: {known}")]
    UnknownClass {
        /// The name asked for.
        name: String,
        /// The live classes, comma-separated.
        known: String,
    },
    /// A class name that cannot be shown safely, is too long or taken, or one class too many.
    #[error(transparent)]
    Name(#[from] super::names::NameError),
    /// Nothing left to undo.
    #[error("nothing to undo")]
    NothingToUndo,
    /// A label without frames, or with features that do not fit the state.
    #[error("cannot label: {0}")]
    BadFrames(String),
    /// The head could not be built from the stored samples.
    #[error("cannot rebuild the head from the stored samples: {0}")]
    Head(String),
}

impl LearnerError {
    /// Whether the saved state could not be recovered (the service then exits with
    /// [`super::EXIT_STATE_UNRECOVERABLE`]).
    pub fn is_unrecoverable(&self) -> bool {
        matches!(self, Self::Store(StoreError::Unrecoverable { .. }))
    }

    /// Whether the storage refused a write (full, read-only, I/O): the action was not applied.
    pub fn is_storage_failure(&self) -> bool {
        matches!(self, Self::Store(e) if e.is_storage_failure())
    }
}
