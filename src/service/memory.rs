//! What the service needs from durable storage, as one narrow trait: the crash-safe store
//! (`crate::store`) implements it for the device; the service never sees file formats.
//!
//! Every mutating call returns only once the change is durable, so a label acknowledged to a
//! person (LED blink, socket reply) survives a power cut.

use crate::head::Head;

/// A failure of durable storage, with the store's own message (which names the file and the fix).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct MemoryError(pub String);

/// One stored, labelled feature vector.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredSample {
    /// Unique, increasing id.
    pub id: u64,
    /// Index into [`Memory::classes`].
    pub class: usize,
    pub feature: Vec<f32>,
}

/// Durable state: classes, the replay set, and the last saved head.
pub trait Memory: Send {
    /// Class names, by index (classes are only ever appended).
    fn classes(&self) -> Vec<String>;
    /// The replay set, oldest first.
    fn samples(&self) -> Vec<StoredSample>;
    /// The head saved by the last [`Memory::save_head`], if any and if it still decodes.
    fn saved_head(&self) -> Option<Head>;
    /// Appends a class; returns its index.
    ///
    /// # Errors
    /// [`MemoryError`] when it could not be made durable.
    fn new_class(&mut self, name: &str) -> Result<usize, MemoryError>;
    /// Stores a labelled feature; returns the sample id.
    ///
    /// # Errors
    /// [`MemoryError`] when it could not be made durable.
    fn add_sample(
        &mut self,
        class: usize,
        feature: &[f32],
        frame_hash: [u8; 32],
    ) -> Result<u64, MemoryError>;
    /// Takes back the most recent label still undoable; `false` when there is none.
    ///
    /// # Errors
    /// [`MemoryError`] when it could not be made durable.
    fn undo(&mut self) -> Result<bool, MemoryError>;
    /// Writes a snapshot including `head`.
    ///
    /// # Errors
    /// [`MemoryError`] when it could not be written (the previous snapshot and journal stay valid).
    fn save_head(&mut self, head: &Head) -> Result<(), MemoryError>;
}
