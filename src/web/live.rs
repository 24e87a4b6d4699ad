//! The latest frame, shared between the service loop (which publishes each processed frame) and
//! the web threads (which serve it as an image). The loop only swaps an `Arc` under a mutex that
//! no one holds for longer than a clone: it never waits on a client. Encoding happens on the web
//! thread, and only when someone asks.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use crate::source::FrameData;
use crate::store::FrameHash;

/// Frames served to clients that are kept for labelling by `seq` (16 s of a page polling twice
/// a second), whatever the frame rate.
pub const SERVED_FRAMES: usize = 32;

/// A processed frame and what the head said about it.
#[derive(Debug)]
pub struct LiveFrame {
    /// The service's sequence number of the frame (what a label by `frame` names).
    pub seq: u64,
    /// The frame as captured.
    pub data: Arc<FrameData>,
    /// The predicted class (None: unknown or no class yet).
    pub class: Option<String>,
    /// Its probability.
    pub probability: f32,
    /// Where it came from.
    pub origin: String,
    /// Hash of its bytes.
    pub hash: FrameHash,
    /// Its features (shared with the service's ring of recent frames).
    pub features: Arc<Vec<f32>>,
}

/// The slot the loop publishes into.
#[derive(Debug, Default)]
pub struct LiveView {
    latest: Mutex<Option<Arc<LiveFrame>>>,
    /// The last frames a client was sent, oldest first.
    served: Mutex<VecDeque<Arc<LiveFrame>>>,
}

impl LiveView {
    /// An empty view.
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Publishes `frame` as the latest.
    pub fn publish(&self, frame: LiveFrame) {
        let frame = Arc::new(frame);
        // A poisoned lock only means a web thread panicked mid-clone: the slot is still fine.
        let mut slot = self.latest.lock().unwrap_or_else(|e| e.into_inner());
        *slot = Some(frame);
    }

    /// Keeps `frame` as one a client was shown, so a label naming its `seq` finds it even after
    /// the service's ring of recent frames has moved on.
    pub fn mark_served(&self, frame: &Arc<LiveFrame>) {
        let mut served = self.served.lock().unwrap_or_else(|e| e.into_inner());
        if served.back().is_some_and(|f| f.seq == frame.seq) {
            return;
        }
        if served.len() == SERVED_FRAMES {
            served.pop_front();
        }
        served.push_back(Arc::clone(frame));
    }

    /// The served frame with sequence number `seq`, if still kept.
    pub fn served(&self, seq: u64) -> Option<Arc<LiveFrame>> {
        self.served
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .rev()
            .find(|f| f.seq == seq)
            .cloned()
    }

    /// The latest frame, if any.
    pub fn latest(&self) -> Option<Arc<LiveFrame>> {
        self.latest
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

/// The frame as an image a browser shows: encoded frames as they are (JPEG or PNG), raw pixels
/// encoded as JPEG. Returns the content type and the bytes.
pub fn as_image(data: &FrameData) -> Option<(&'static str, Vec<u8>)> {
    match data {
        FrameData::Encoded(bytes) if bytes.starts_with(&[0xFF, 0xD8]) => {
            Some(("image/jpeg", bytes.clone()))
        }
        FrameData::Encoded(bytes) if bytes.starts_with(b"\x89PNG") => {
            Some(("image/png", bytes.clone()))
        }
        FrameData::Encoded(_) => None,
        FrameData::Rgb(rgb) => {
            let mut out = Vec::new();
            image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 80)
                .encode_image(rgb)
                .ok()?;
            Some(("image/jpeg", out))
        }
    }
}
