//! Live fleet learning (`[fleet]`, needs `[mqtt]`): devices of one group share their label
//! actions through the broker and merge each other's into their replay sets.
//!
//! - **Out**: after each action a person takes (label, undo, deletion of a class or a sample),
//!   the service loop calls [`FleetLink::watch`] before and [`FleetLink::share`] after it; what
//!   changed among this device's own samples goes out as [`message::FleetAction`]s (new samples
//!   as labels, samples taken back as tombstones, a deleted class with its samples' ids), through
//!   a bounded queue (`try_send`: the loop never waits on the network; what does not fit is
//!   counted as dropped). A reservoir eviction is local and not shared.
//! - **In**: the fleet connection ([`link`], a persistent session so the broker keeps what the
//!   group said while the device was away) checks each message and hands the good ones to the
//!   service loop, which merges a few at a time between frames (at least every 50 ms) with
//!   [`FleetLink::merge_pending`] through the learner's journalled merge
//!   ([`crate::learner::fleet`]) and only then acknowledges them.
//!
//! Topics: `<topic_root>/fleet/<group>/<client id>` (each device publishes on its own, listens to
//! `<topic_root>/fleet/<group>/+`). Payloads: [`message`].

pub mod message;

#[cfg(feature = "mqtt")]
mod link;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, Sender, SyncSender, TrySendError};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::board::fleet::FleetConfig;
use crate::learner::fleet::{MergeOutcome, RemoteLabel};
use crate::learner::names::shown;
use crate::learner::Learner;
use crate::model::BackboneId;
use crate::store::remote::{RemoteId, RemoteMark};
use message::{FleetAction, FleetMessage, SharedSample, MESSAGE_VERSION};

use super::{MqttConfig, MqttError};

/// Messages waiting for the network at most (about 6 KB each with a thumbnail); more are dropped
/// and counted.
const OUT_QUEUE: usize = 256;
/// Checked messages waiting for the service loop.
const IN_QUEUE: usize = 64;
/// Messages merged per call of [`FleetLink::merge_pending`] (each turn of the loop's wait between
/// frames, at least every 50 ms, and once per frame).
const MERGES_PER_TURN: usize = 8;

/// A checked message for the service loop, with the token that acknowledges it.
#[derive(Debug)]
pub struct Received {
    pub message: FleetMessage,
    token: u64,
}

/// The fleet's counters, shared with its threads.
#[derive(Debug, Default)]
pub struct FleetCounters {
    pub published: AtomicU64,
    pub published_bytes: AtomicU64,
    pub dropped: AtomicU64,
    pub received: AtomicU64,
    pub refused: AtomicU64,
    pub merged: AtomicU64,
    pub removed: AtomicU64,
    pub duplicates: AtomicU64,
}

/// The fleet's figures, as `status` shows them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FleetStatus {
    /// The group.
    pub group: String,
    /// Messages handed to the broker connection.
    pub published: u64,
    /// Their bytes (payloads).
    pub published_bytes: u64,
    /// Messages dropped: the queue to the network was full.
    pub dropped: u64,
    /// Messages from other devices of the group.
    pub received: u64,
    /// Of them, refused (malformed, oversized, another backbone, a bad class name).
    pub refused: u64,
    /// Samples merged.
    pub merged: u64,
    /// Merged samples taken out again (their device took them back).
    pub removed: u64,
    /// Messages about samples already merged or taken back (delivered again).
    pub duplicates: u64,
}

/// What kind of action a person took, for [`FleetLink::share`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Shared {
    /// A label (new samples go out; evictions stay local).
    Label,
    /// An undo or a sample deletion (samples that left go out as tombstones).
    TakeBack,
    /// The deletion of this class (its samples' ids go out with its name).
    DeleteClass(String),
}

/// The live samples before an action: local id → (fleet id, class index); the fleet ids are
/// only worked out for an action that may take samples back.
#[derive(Debug, Default)]
pub struct Watch {
    samples: HashMap<u64, (RemoteId, u32)>,
}

/// The service loop's end of the fleet.
pub struct FleetLink {
    device: String,
    backbone: BackboneId,
    group: String,
    thumbnails: bool,
    outgoing: SyncSender<Vec<u8>>,
    incoming: Receiver<Received>,
    acks: Sender<u64>,
    counters: Arc<FleetCounters>,
    #[cfg(feature = "mqtt")]
    _worker: crate::mqtt::worker::Worker,
}

/// The fleet ids of `learner`'s live samples: their own for merged ones, derived for this
/// device's own.
fn fleet_ids(learner: &Learner, device: &str) -> HashMap<u64, (RemoteId, u32)> {
    let data = learner.data();
    let merged: HashMap<u64, RemoteId> = data
        .remote
        .iter()
        .filter_map(|(id, mark)| match mark {
            RemoteMark::Merged { sample } => Some((*sample, *id)),
            RemoteMark::Removed => None,
        })
        .collect();
    data.live_samples()
        .map(|s| {
            let id = merged
                .get(&s.id)
                .copied()
                .unwrap_or_else(|| RemoteId::of_own(device, s.id, s.time_ms));
            (s.id, (id, s.class))
        })
        .collect()
}

impl FleetLink {
    /// Starts the fleet connection for `backbone` (the model's identity the learner holds).
    ///
    /// # Errors
    /// [`MqttError`] when a file the board names cannot be read, or this build has no MQTT.
    pub fn start(
        mqtt: &MqttConfig,
        fleet: &FleetConfig,
        backbone: BackboneId,
    ) -> Result<FleetLink, MqttError> {
        let (outgoing, out_rx) = std::sync::mpsc::sync_channel::<Vec<u8>>(OUT_QUEUE);
        let (in_tx, incoming) = std::sync::mpsc::sync_channel::<Received>(IN_QUEUE);
        let (acks, acks_rx) = std::sync::mpsc::channel::<u64>();
        let counters = Arc::new(FleetCounters::default());
        #[cfg(feature = "mqtt")]
        {
            let worker = link::spawn(
                mqtt,
                fleet,
                backbone,
                link::Plumbing {
                    outgoing: out_rx,
                    incoming: in_tx,
                    acks: acks_rx,
                    counters: Arc::clone(&counters),
                },
            )?;
            Ok(FleetLink {
                device: mqtt.client_id.clone(),
                backbone,
                group: fleet.group.clone(),
                thumbnails: fleet.thumbnails,
                outgoing,
                incoming,
                acks,
                counters,
                _worker: worker,
            })
        }
        #[cfg(not(feature = "mqtt"))]
        {
            let _ = (
                mqtt, fleet, backbone, out_rx, in_tx, acks_rx, outgoing, incoming, acks, counters,
            );
            Err(MqttError::NotBuilt(
                "the board has [fleet] but this fieldtune was built without MQTT: build with the default features, or remove [fleet]",
            ))
        }
    }

    /// The live samples before an action `what` (call only before actions that are shared).
    pub fn watch(&self, learner: &Learner, what: &Shared) -> Watch {
        let samples = match what {
            Shared::Label => learner
                .data()
                .live_samples()
                .map(|s| (s.id, (RemoteId([0; 16]), s.class)))
                .collect(),
            Shared::TakeBack | Shared::DeleteClass(_) => fleet_ids(learner, &self.device),
        };
        Watch { samples }
    }

    /// Shares what the action `what` changed since `before` (see the module doc).
    pub fn share(&self, learner: &Learner, before: &Watch, what: &Shared) {
        let data = learner.data();
        let merged = data.merged_ids();
        match what {
            Shared::Label => {
                for sample in data.live_samples() {
                    if before.samples.contains_key(&sample.id) || merged.contains(&sample.id) {
                        continue;
                    }
                    let Some(class) = data.classes.get(sample.class as usize) else {
                        continue;
                    };
                    let thumbnail = if self.thumbnails {
                        sample.thumbnail.clone()
                    } else {
                        crate::store::features::Blob::default()
                    };
                    self.send(FleetAction::Label(SharedSample {
                        id: RemoteId::of_own(&self.device, sample.id, sample.time_ms),
                        class: class.name.clone(),
                        frame_hash: sample.frame_hash,
                        time_ms: sample.time_ms,
                        feature: sample.feature.clone(),
                        thumbnail,
                    }));
                }
            }
            Shared::TakeBack | Shared::DeleteClass(_) => {
                let now = fleet_ids(learner, &self.device);
                let gone: Vec<(RemoteId, u32)> = before
                    .samples
                    .iter()
                    .filter(|(local, _)| !now.contains_key(local))
                    .map(|(_, v)| *v)
                    .collect();
                if gone.is_empty() {
                    return;
                }
                match what {
                    Shared::DeleteClass(class) => self.send(FleetAction::DeleteClass {
                        class: class.clone(),
                        ids: gone.iter().map(|(id, _)| *id).collect(),
                    }),
                    _ => self.send(FleetAction::Remove {
                        ids: gone.iter().map(|(id, _)| *id).collect(),
                    }),
                }
            }
        }
    }

    fn send(&self, action: FleetAction) {
        let bytes = message::encode(&FleetMessage {
            version: MESSAGE_VERSION,
            device: self.device.clone(),
            backbone: self.backbone.sha256,
            dim: self.backbone.dim,
            action,
        });
        match self.outgoing.try_send(bytes) {
            Ok(()) => {}
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                self.counters.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Merges up to a few messages the group sent (never waits); returns how many changed the
    /// state (the caller then treats it as dirty).
    pub fn merge_pending(&self, learner: &mut Learner) -> usize {
        let mut changed = 0;
        for _ in 0..MERGES_PER_TURN {
            let Ok(received) = self.incoming.try_recv() else {
                break;
            };
            let (ack, did) = self.merge_one(learner, &received.message);
            changed += usize::from(did);
            if ack {
                let _ = self.acks.send(received.token);
            }
        }
        changed
    }

    /// Merges one message; (acknowledge it, it changed the state).
    fn merge_one(&self, learner: &mut Learner, message: &FleetMessage) -> (bool, bool) {
        let c = &self.counters;
        let from = shown(&message.device);
        match &message.action {
            FleetAction::Label(sample) => {
                let features = sample.feature.to_vec();
                let label = RemoteLabel {
                    id: sample.id,
                    class: &sample.class,
                    frame_hash: sample.frame_hash,
                    time_ms: sample.time_ms,
                    features: &features,
                    thumbnail: &sample.thumbnail.0,
                };
                match learner.merge_remote(&label) {
                    Ok(MergeOutcome::Merged { class, created, .. }) => {
                        c.merged.fetch_add(1, Ordering::Relaxed);
                        tracing::info!(
                            "fleet: merged a label of {} from {from}{} (fleet id {})",
                            shown(&class),
                            if created { " (new class)" } else { "" },
                            sample.id.hex()
                        );
                        (true, true)
                    }
                    Ok(MergeOutcome::AlreadySeen) => {
                        c.duplicates.fetch_add(1, Ordering::Relaxed);
                        tracing::debug!("fleet: {} from {from} was seen before", sample.id.hex());
                        (true, false)
                    }
                    Ok(MergeOutcome::OwnFrame) => {
                        tracing::info!(
                            "fleet: left out a label of {} from {from}: this device labelled the same frame itself",
                            shown(&sample.class)
                        );
                        (true, false)
                    }
                    Err(e) if e.is_storage_failure() => {
                        // Not acknowledged: the broker delivers it again after a reconnection.
                        tracing::warn!("fleet: label from {from} not merged yet: {e}");
                        (false, false)
                    }
                    Err(e) => {
                        c.refused.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!("fleet: refused a label from {from}: {e}; nothing stored");
                        (true, false)
                    }
                }
            }
            FleetAction::Remove { ids } | FleetAction::DeleteClass { ids, .. } => {
                let what = match &message.action {
                    FleetAction::DeleteClass { class, .. } => {
                        format!("the deletion of class {}", shown(class))
                    }
                    _ => format!("{} samples taken back", ids.len()),
                };
                match learner.unmerge_remote(ids) {
                    Ok(removed) => {
                        c.removed.fetch_add(removed as u64, Ordering::Relaxed);
                        tracing::info!("fleet: {what} by {from}: {removed} merged samples removed");
                        (true, true)
                    }
                    Err(e) if e.is_storage_failure() => {
                        tracing::warn!("fleet: {what} by {from} not applied yet: {e}");
                        (false, false)
                    }
                    Err(e) => {
                        c.refused.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!("fleet: refused {what} by {from}: {e}; nothing stored");
                        (true, false)
                    }
                }
            }
        }
    }

    /// The fleet's figures.
    pub fn status(&self) -> FleetStatus {
        let c = &self.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        FleetStatus {
            group: self.group.clone(),
            published: get(&c.published),
            published_bytes: get(&c.published_bytes),
            dropped: get(&c.dropped),
            received: get(&c.received),
            refused: get(&c.refused),
            merged: get(&c.merged),
            removed: get(&c.removed),
            duplicates: get(&c.duplicates),
        }
    }
}
