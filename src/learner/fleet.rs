//! Merging what other devices of the fleet group labelled (`[fleet]`): each remote sample is one
//! journalled [`LabelEvent::Merge`], applied only once it is durable, and remembered by its fleet
//! id in the state ([`crate::store::remote`]), so a message the broker delivers again after a
//! crash or a restart is never merged twice. Taken-back samples are one [`LabelEvent::Unmerge`].
//!
//! Rules: classes are matched by name (a name not live here is created); a sample of a frame this
//! device labelled itself is left out (its own label wins, and a later own label of a frame drops
//! the merged sample); merges are not in this device's undo history (the device that labelled a
//! sample takes it back). The head learns a merged sample online at once and the retrain
//! scheduler refits it as for a label.

use super::{names, Learner, LearnerError};
use crate::store::events::{ClassTarget, FrameHash, LabelEvent, Sample};
use crate::store::features::{Blob, StoredFeature};
use crate::store::remote::{RemoteId, RemoteMark};

/// A sample another device labelled, as its message carried it (checked by the caller for its
/// backbone; checked here for its features and class name).
#[derive(Debug, Clone, Copy)]
pub struct RemoteLabel<'a> {
    /// Its fleet id.
    pub id: RemoteId,
    /// The class name on the device that labelled it.
    pub class: &'a str,
    /// Hash of the frame.
    pub frame_hash: FrameHash,
    /// When it was labelled there.
    pub time_ms: u64,
    /// Its features.
    pub features: &'a [f32],
    /// Its thumbnail (empty: none).
    pub thumbnail: &'a [u8],
}

/// What [`Learner::merge_remote`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MergeOutcome {
    /// Merged (journalled); `stored` false when the class's reservoir left it out.
    Merged {
        /// The local class name.
        class: String,
        /// The class was created by the merge.
        created: bool,
        /// Kept in the replay set.
        stored: bool,
    },
    /// Merged or taken back before: nothing done.
    AlreadySeen,
    /// This device labelled the same frame itself: nothing done.
    OwnFrame,
}

impl Learner {
    /// Merges one sample another device labelled (see the module doc). Durable when it returns.
    ///
    /// # Errors
    /// Bad features or class name, too many classes (nothing changed), or the storage failure.
    pub fn merge_remote(&mut self, label: &RemoteLabel) -> Result<MergeOutcome, LearnerError> {
        let dim = self.store.backbone().dim as usize;
        if label.features.len() != dim {
            return Err(LearnerError::BadFrames(format!(
                "a feature of {} values given to a state of {dim}-d features",
                label.features.len()
            )));
        }
        if label.features.iter().any(|v| !v.is_finite()) {
            return Err(LearnerError::BadFrames(
                "the features hold NaN or infinite values".into(),
            ));
        }
        let data = self.store.data();
        if data.remote.contains_key(&label.id) {
            return Ok(MergeOutcome::AlreadySeen);
        }
        let merged = data.merged_ids();
        if data
            .live_samples()
            .any(|s| s.frame_hash == label.frame_hash && !merged.contains(&s.id))
        {
            return Ok(MergeOutcome::OwnFrame);
        }
        let (target, index, class) = match self.find_live(label.class) {
            Some(i) => (
                ClassTarget::Existing(i),
                i,
                data.classes[i as usize].name.clone(),
            ),
            None => {
                let name = self.names.normalize(label.class)?;
                if data.live_classes().count() >= self.names.max_classes {
                    return Err(names::NameError::TooManyClasses {
                        shown: names::shown(&name),
                        max: self.names.max_classes,
                    }
                    .into());
                }
                let index = u32::try_from(data.classes.len()).unwrap_or(u32::MAX);
                (ClassTarget::New(name.clone()), index, name)
            }
        };
        let sample = Sample {
            id: data.next_sample_id,
            class: index,
            time_ms: label.time_ms,
            frame_hash: label.frame_hash,
            feature: StoredFeature::encode(label.features, self.store.config().feature_encoding),
            thumbnail: Blob(label.thumbnail.to_vec()),
            views: Vec::new(),
        };
        let values = vec![sample.feature.to_vec()];
        let created = matches!(target, ClassTarget::New(_));
        let committed = self.store.commit(LabelEvent::Merge {
            class: target,
            remote: label.id,
            sample,
        })?;
        let stored = !committed.applied.stored.is_empty();
        if stored {
            self.teach(index, &class, &values);
            self.changed();
        }
        Ok(MergeOutcome::Merged {
            class,
            created,
            stored,
        })
    }

    /// Takes out the samples other devices took back (and refuses them if they arrive later);
    /// returns how many stored samples left. Durable when it returns; ids already taken back
    /// change nothing (nothing is journalled when all are).
    ///
    /// # Errors
    /// The storage failure (nothing changed).
    pub fn unmerge_remote(&mut self, ids: &[RemoteId]) -> Result<usize, LearnerError> {
        let data = self.store.data();
        let fresh: Vec<RemoteId> = ids
            .iter()
            .filter(|id| data.remote.get(id) != Some(&RemoteMark::Removed))
            .copied()
            .collect();
        if fresh.is_empty() {
            return Ok(0);
        }
        let before = data.samples.len();
        self.store.commit(LabelEvent::Unmerge { remote: fresh })?;
        let removed = before.saturating_sub(self.store.data().samples.len());
        if removed > 0 {
            self.samples_removed();
        }
        Ok(removed)
    }
}
