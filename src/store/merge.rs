//! Merging another device's labels into a state, offline (`fieldtune state merge A B --out C`):
//! classes are matched by name (a class only the other device has is added), each of its live
//! samples is added with a new id unless this state already holds a sample of the same frame
//! (its own label wins), within the store's caps. The head is dropped so the device refits it to
//! the merged samples on start; the undo history stays this state's own.

use std::collections::HashSet;

use super::config::StoreConfig;
use super::data::{ClassEntry, StateData};
use super::events::{FrameHash, Sample};

/// What a merge did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MergeReport {
    /// Samples added.
    pub added: usize,
    /// Samples left out: this state already labelled the same frame.
    pub same_frame: usize,
    /// Samples left out: their class is at `max_samples_per_class`, or the features at
    /// `max_feature_bytes`.
    pub over_cap: usize,
    /// Classes added (the other state's names this one did not have).
    pub new_classes: Vec<String>,
}

/// Adds `other`'s live classes and samples to `into` (see the module doc).
pub fn merge(into: &mut StateData, other: &StateData, config: &StoreConfig) -> MergeReport {
    let mut report = MergeReport::default();
    let mut known: HashSet<FrameHash> = into.live_samples().map(|s| s.frame_hash).collect();
    for sample in other.live_samples() {
        let Some(class) = other.classes.get(sample.class as usize) else {
            continue;
        };
        if known.contains(&sample.frame_hash) {
            report.same_frame += 1;
            continue;
        }
        let size = sample.feature.byte_len() as u64;
        let target = into.live_class(&class.name);
        let over = target
            .is_some_and(|t| into.class_count(t) as u64 >= u64::from(config.max_samples_per_class))
            || into.feature_bytes + size > config.max_feature_bytes;
        if over {
            report.over_cap += 1;
            continue;
        }
        let target = match target {
            Some(t) => t,
            None => {
                into.classes.push(ClassEntry {
                    name: class.name.clone(),
                    seen: 0,
                    deleted: false,
                });
                report.new_classes.push(class.name.clone());
                (into.classes.len() - 1) as u32
            }
        };
        if let Some(entry) = into.classes.get_mut(target as usize) {
            entry.seen += 1;
        }
        into.samples.push(Sample {
            id: into.next_sample_id,
            class: target,
            ..sample.clone()
        });
        into.next_sample_id += 1;
        into.feature_bytes += size;
        known.insert(sample.frame_hash);
        report.added += 1;
    }
    if report.added > 0 {
        into.head = None;
    }
    report
}
