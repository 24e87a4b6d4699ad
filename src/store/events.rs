//! Label events: what a person did, as written to the journal, and the stored samples a label
//! becomes. Events carry everything needed to replay them (the samples' features, the class they
//! name), so replay never depends on anything but the state it starts from.
//!
//! One person's action is one event: a label with its context frames is one [`LabelEvent::Label`]
//! holding all of them, so "undo" takes back the same thing before and after a restart.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::features::{Blob, StoredFeature};
use super::remote::RemoteId;

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
    /// Class index (classes keep their index for life; a deleted class leaves a tombstone).
    pub class: u32,
    /// When it was labelled, milliseconds since the Unix epoch.
    pub time_ms: u64,
    /// Hash of the source frame.
    pub frame_hash: FrameHash,
    /// The backbone's feature vector.
    pub feature: StoredFeature,
    /// A small JPEG of the frame (about 112 px on its longer side) for review, export and
    /// re-embedding; empty when not kept (samples from before format 4). Since format 4.
    pub thumbnail: Blob,
    /// Features of augmented views of the same frame (same encoding as `feature`); empty when
    /// none were made. Since format 4.
    pub views: Vec<StoredFeature>,
}

impl Sample {
    /// The bytes it takes in the store's budget (`max_feature_bytes`): its features, the views'
    /// features and its thumbnail.
    pub fn stored_bytes(&self) -> u64 {
        let views: usize = self.views.iter().map(StoredFeature::byte_len).sum();
        (self.feature.byte_len() + views + self.thumbnail.0.len()) as u64
    }
}

/// Which class a label names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ClassTarget {
    /// An existing, live class (by index).
    Existing(u32),
    /// A new class with this name, appended after all classes; undoing the label removes it.
    New(String),
}

/// What a person (or the service on their behalf) did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum LabelEvent {
    /// A new class without samples yet (undoable).
    NewClass {
        /// Its name.
        name: String,
    },
    /// A class gets a new name (undoable).
    Rename {
        /// Class index.
        class: u32,
        /// The new name.
        name: String,
    },
    /// "These frames are class k": one label action and its samples (the labelled frame last,
    /// the context frames before it). Each sample's `class` is the index the class has (for
    /// [`ClassTarget::New`], the index it gets).
    Label {
        /// The class.
        class: ClassTarget,
        /// The samples, oldest frame first.
        samples: Vec<Sample>,
    },
    /// Deletes a live class and hides its samples (undoable: they come back with it; once the
    /// deletion falls off the undo history its samples are dropped for good).
    DeleteClass {
        /// Class index.
        class: u32,
    },
    /// Moves a stored sample to another live class (a label corrected afterwards; undoable).
    MoveSample {
        /// The sample's id.
        sample: u64,
        /// The class it belongs to now.
        class: u32,
    },
    /// Takes back the newest action still in the undo history.
    Undo,
    /// Forgets the stored samples of one class (`Some`) or everything: classes, samples and the
    /// head (`None`). Not undoable; empties the undo history.
    Clear {
        /// The class, or everything.
        class: Option<u32>,
    },
    /// Removes a stored sample (undoable: it comes back with its features and thumbnail). Since
    /// format 4.
    DeleteSample {
        /// The sample's id.
        sample: u64,
    },
    /// A sample another device of the fleet group labelled, merged into the replay set (not
    /// undoable here: its own device takes it back with [`LabelEvent::Unmerge`]). A class it
    /// names that is not live here is created. Since format 5.
    Merge {
        /// The class, by index or new.
        class: ClassTarget,
        /// Its fleet id.
        remote: RemoteId,
        /// The sample, with a local id.
        sample: Sample,
    },
    /// Samples other devices took back (undo, class deletion): removed here when merged, and
    /// refused when they arrive later. Since format 5.
    Unmerge {
        /// Their fleet ids.
        remote: Vec<RemoteId>,
    },
}

impl LabelEvent {
    /// A word for logs.
    pub fn name(&self) -> &'static str {
        match self {
            Self::NewClass { .. } => "new class",
            Self::Rename { .. } => "rename",
            Self::Label { .. } => "label",
            Self::DeleteClass { .. } => "delete class",
            Self::MoveSample { .. } => "move sample",
            Self::Undo => "undo",
            Self::Clear { .. } => "clear",
            Self::DeleteSample { .. } => "delete sample",
            Self::Merge { .. } => "merge",
            Self::Unmerge { .. } => "unmerge",
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

/// An action that can still be undone, newest last in [`super::data::StateData::undo`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Action {
    /// A label: the ids of its samples (those that were stored) and the class it created, if any.
    Label {
        /// Sequence number of the label event.
        seq: u64,
        /// Its stored samples (some may since have been evicted).
        samples: Vec<u64>,
        /// The class the label created (undo removes it).
        created: Option<u32>,
    },
    /// A class created without samples.
    NewClass {
        /// Its index.
        class: u32,
    },
    /// A rename, with the name before it.
    Rename {
        /// Class index.
        class: u32,
        /// The name it had.
        from: String,
    },
    /// A class deletion (its samples are kept hidden while this can be undone).
    Delete {
        /// Class index.
        class: u32,
    },
    /// A sample moved to another class, with the class it had.
    Move {
        /// The sample's id.
        sample: u64,
        /// The class it had.
        from: u32,
    },
    /// A deleted sample, kept whole so undo can put it back (since format 4).
    DeleteSample {
        /// The sample as it was.
        sample: Box<Sample>,
    },
}
