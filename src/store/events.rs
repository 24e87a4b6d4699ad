//! Label events: what a person did, as written to the journal, and the stored sample a label
//! becomes. Events carry everything needed to replay them (the sample's features, the id an undo
//! removes), so replay never depends on anything but the state it starts from.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::features::StoredFeature;

/// sha256 of the source frame's bytes: ties a stored sample to the image it came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
pub struct FrameHash(pub [u8; 32]);

impl FrameHash {
    /// Hashes a frame's bytes (encoded image or raw pixels, as long as the caller is consistent).
    pub fn of(bytes: &[u8]) -> Self {
        Self(Sha256::digest(bytes).into())
    }
}

/// One labelled feature vector of the replay set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    /// Unique, increasing id (never reused, even after eviction or undo).
    pub id: u64,
    /// Class index.
    pub class: u32,
    /// When it was labelled, milliseconds since the Unix epoch.
    pub time_ms: u64,
    /// Hash of the source frame.
    pub frame_hash: FrameHash,
    /// The backbone's feature vector.
    pub feature: StoredFeature,
}

/// What a person (or the service on their behalf) did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum LabelEvent {
    /// A new class, appended after the existing ones.
    NewClass {
        /// Its name.
        name: String,
    },
    /// A class gets a new name.
    Rename {
        /// Class index.
        class: u32,
        /// The new name.
        name: String,
    },
    /// "This frame is class k": one stored sample.
    AddSample(Sample),
    /// Takes back the label that stored sample `sample` (the head is retrained without it).
    Undo {
        /// Id of the sample to remove.
        sample: u64,
    },
    /// Forgets the stored samples of one class (`Some`) or everything: classes, samples and the
    /// head (`None`).
    Clear {
        /// The class, or everything.
        class: Option<u32>,
    },
}

impl LabelEvent {
    /// A word for logs.
    pub fn name(&self) -> &'static str {
        match self {
            Self::NewClass { .. } => "new class",
            Self::Rename { .. } => "rename",
            Self::AddSample(_) => "label",
            Self::Undo { .. } => "undo",
            Self::Clear { .. } => "clear",
        }
    }
}

/// A journal record: an event and its sequence number (1, 2, 3, … over the state's life).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JournalEntry {
    /// Sequence number; replay applies exactly the entries after the snapshot's, in order.
    pub seq: u64,
    /// The event.
    pub event: LabelEvent,
}
