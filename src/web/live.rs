//! The latest frame, shared between the service loop (which publishes each processed frame) and
//! the web threads (which serve it as an image). The loop only swaps an `Arc` under a mutex that
//! no one holds for longer than a clone: it never waits on a client. Encoding happens on the web
//! thread, and only when someone asks.

use std::sync::{Arc, Mutex};

use crate::source::FrameData;

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
}

/// The slot the loop publishes into.
#[derive(Debug, Default)]
pub struct LiveView {
    latest: Mutex<Option<Arc<LiveFrame>>>,
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
