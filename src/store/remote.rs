//! What this state knows of samples labelled by other devices of its fleet group (`[fleet]`):
//! each remote sample's id and whether it was merged (and as which local sample) or taken back
//! by its device (a tombstone). Kept with the state (snapshot and journal, since format 5), so a
//! message the broker delivers again after a crash or a restart is never merged twice, and a
//! sample taken back is never merged afterwards.

use serde::{Deserialize, Serialize};

/// The id a sample has across the fleet: 128 bits, derived by the device that labelled it from
/// its client id and the sample's own id and time ([`RemoteId::of_own`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct RemoteId(pub [u8; 16]);

impl RemoteId {
    /// The fleet id of this device's own sample `sample` labelled at `time_ms` (a state started
    /// afresh reuses sample ids, never their times).
    pub fn of_own(device: &str, sample: u64, time_ms: u64) -> Self {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        h.update(b"fieldtune-fleet-sample\0");
        h.update(device.as_bytes());
        h.update([0]);
        h.update(sample.to_le_bytes());
        h.update(time_ms.to_le_bytes());
        let digest = h.finalize();
        let mut id = [0u8; 16];
        id.copy_from_slice(&digest[..16]);
        Self(id)
    }

    /// 32 hex digits, for logs.
    pub fn hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// What became of a remote sample here.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum RemoteMark {
    /// Merged as local sample `sample` (which the reservoir may have left out or evicted since).
    Merged {
        /// The local sample id it got.
        sample: u64,
    },
    /// Taken back by its device (undo, deletion): removed here, and never merged again.
    Removed,
}
