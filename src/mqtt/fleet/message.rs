//! What devices of a fleet group say to each other, as pure functions (no network here, so every
//! rule is unit-tested): one postcard-encoded [`FleetMessage`] per shared label action, on
//! `<topic_root>/fleet/<group>/<client id>` with QoS 1.
//!
//! - [`FleetAction::Label`]: one labelled sample: its fleet id (128 bits, unique across the
//!   fleet), class name, frame hash, time, features (in the sender's store encoding, f16 by
//!   default: 2 bytes a value) and thumbnail (a small JPEG, when `fleet.thumbnails`);
//! - [`FleetAction::Remove`]: the fleet ids of samples the sender took back (undo, sample
//!   deletion): tombstones;
//! - [`FleetAction::DeleteClass`]: a class the sender deleted, with the fleet ids of the samples
//!   it held.
//!
//! Every message names the sender's backbone (the model's SHA-256 and feature length): a sample
//! of another backbone means nothing to this head and is refused. A message longer than
//! `fleet.max_message_bytes`, not a fleet message, of another version or with features that are
//! not finite is refused too ([`decode`]).

use serde::{Deserialize, Serialize};

use crate::model::BackboneId;
use crate::store::events::FrameHash;
use crate::store::features::{Blob, StoredFeature};
use crate::store::format::describe_backbone;
use crate::store::remote::RemoteId;

/// The message layout this build writes and reads.
pub const MESSAGE_VERSION: u8 = 1;

/// One message between devices of a group.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FleetMessage {
    /// [`MESSAGE_VERSION`].
    pub version: u8,
    /// The sender's MQTT client id.
    pub device: String,
    /// The sender's backbone: sha256 of the model file.
    pub backbone: [u8; 32],
    /// Its feature length.
    pub dim: u32,
    /// What it did.
    pub action: FleetAction,
}

/// A label action as shared.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum FleetAction {
    /// One labelled sample.
    Label(SharedSample),
    /// Samples taken back (undo, deletion of a sample).
    Remove {
        /// Their fleet ids.
        ids: Vec<RemoteId>,
    },
    /// A class deleted, with the samples it held.
    DeleteClass {
        /// Its name.
        class: String,
        /// The fleet ids of its samples.
        ids: Vec<RemoteId>,
    },
}

/// A labelled sample as shared.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SharedSample {
    /// Its fleet id.
    pub id: RemoteId,
    /// The class name.
    pub class: String,
    /// Hash of the frame.
    pub frame_hash: FrameHash,
    /// When it was labelled, ms since the Unix epoch.
    pub time_ms: u64,
    /// The backbone's features.
    pub feature: StoredFeature,
    /// A small JPEG of the frame (empty: none).
    pub thumbnail: Blob,
}

/// Why a message was refused (nothing is stored then).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    /// Longer than `fleet.max_message_bytes`.
    #[error("{len} bytes, longer than fleet.max_message_bytes ({max})")]
    Oversized { len: usize, max: usize },
    /// Not a fleet message.
    #[error("not a fleet message ({0})")]
    Malformed(String),
    /// Another message version.
    #[error("message version {found}, this fieldtune reads version {MESSAGE_VERSION}: update the devices of the group to one release")]
    Version { found: u8 },
    /// Made with another backbone.
    #[error("sample of another backbone ({found}; this device runs {ours}): give the devices of a group the same model")]
    Backbone { found: String, ours: String },
    /// Features that do not fit.
    #[error("bad features: {0}")]
    Features(String),
}

/// Encodes a message.
pub fn encode(message: &FleetMessage) -> Vec<u8> {
    // Our own types always encode. Trimmed: it may wait in the queue while the broker is away.
    let mut bytes = postcard::to_allocvec(message).unwrap_or_default();
    bytes.shrink_to_fit();
    bytes
}

/// Decodes and checks a message from the group for this device's backbone.
///
/// # Errors
/// [`Refused`], saying why.
pub fn decode(payload: &[u8], max: usize, backbone: &BackboneId) -> Result<FleetMessage, Refused> {
    if payload.len() > max {
        return Err(Refused::Oversized {
            len: payload.len(),
            max,
        });
    }
    let (message, rest) = postcard::take_from_bytes::<FleetMessage>(payload)
        .map_err(|e| Refused::Malformed(e.to_string()))?;
    if !rest.is_empty() {
        return Err(Refused::Malformed(format!(
            "{} bytes after the message",
            rest.len()
        )));
    }
    if message.version != MESSAGE_VERSION {
        return Err(Refused::Version {
            found: message.version,
        });
    }
    let theirs = BackboneId {
        sha256: message.backbone,
        dim: message.dim,
    };
    if theirs != *backbone {
        return Err(Refused::Backbone {
            found: describe_backbone(&theirs),
            ours: describe_backbone(backbone),
        });
    }
    if let FleetAction::Label(sample) = &message.action {
        if sample.feature.dim() != backbone.dim as usize {
            return Err(Refused::Features(format!(
                "{} values, the backbone gives {}",
                sample.feature.dim(),
                backbone.dim
            )));
        }
        if sample.feature.to_vec().iter().any(|v| !v.is_finite()) {
            return Err(Refused::Features("NaN or infinite values".into()));
        }
    }
    Ok(message)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::features::FeatureEncoding;

    fn backbone() -> BackboneId {
        BackboneId {
            sha256: [7; 32],
            dim: 1280,
        }
    }

    fn label(values: &[f32], thumbnail: usize) -> FleetMessage {
        FleetMessage {
            version: MESSAGE_VERSION,
            device: "cam-a".into(),
            backbone: [7; 32],
            dim: 1280,
            action: FleetAction::Label(SharedSample {
                id: RemoteId::of_own("cam-a", 3, 1_700_000_000_000),
                class: "Blight".into(),
                frame_hash: FrameHash::of(b"frame"),
                time_ms: 1_700_000_000_000,
                feature: StoredFeature::encode(values, FeatureEncoding::F16),
                thumbnail: Blob(vec![0xD8; thumbnail]),
            }),
        }
    }

    #[test]
    fn a_label_goes_round_and_its_size_is_the_features_plus_a_little() {
        let message = label(&[0.25; 1280], 0);
        let bytes = encode(&message);
        assert_eq!(decode(&bytes, 65_536, &backbone()), Ok(message));
        // f16 features (2 bytes a value) and about a hundred bytes of the rest.
        assert!(
            bytes.len() > 2560 && bytes.len() < 2560 + 160,
            "{}",
            bytes.len()
        );
    }

    #[test]
    fn bad_messages_are_refused_saying_why() {
        let ok = encode(&label(&[0.5; 1280], 3000));
        assert!(matches!(
            decode(&ok, 4096, &backbone()),
            Err(Refused::Oversized { .. })
        ));
        assert!(matches!(
            decode(b"{\"cmd\":\"label\"}", 65_536, &backbone()),
            Err(Refused::Malformed(_))
        ));
        assert!(matches!(
            decode(&ok[..ok.len() - 10], 65_536, &backbone()),
            Err(Refused::Malformed(_))
        ));
        let other = BackboneId {
            sha256: [8; 32],
            dim: 1280,
        };
        let refused = decode(&ok, 65_536, &other).unwrap_err();
        assert!(matches!(refused, Refused::Backbone { .. }));
        assert!(refused.to_string().contains("another backbone"));
        let mut nan = label(&[0.5; 1280], 0);
        if let FleetAction::Label(s) = &mut nan.action {
            s.feature = StoredFeature::encode(&[f32::NAN; 1280], FeatureEncoding::F32);
        }
        assert!(matches!(
            decode(&encode(&nan), 65_536, &backbone()),
            Err(Refused::Features(_))
        ));
        let mut short = label(&[0.5; 1280], 0);
        short.dim = 4;
        assert!(matches!(
            decode(&encode(&short), 65_536, &backbone()),
            Err(Refused::Backbone { .. })
        ));
    }
}
