//! The latest frame, shared between the service loop (which publishes each processed frame) and
//! the web threads (which serve it as an image or stream it). The loop only swaps an `Arc` under a
//! mutex that no one holds for longer than a clone, and wakes the stream threads (a condition
//! variable's notify, which never blocks): it never waits on a client. Encoding happens on a web
//! thread, once per frame whoever asks first ([`LiveFrame::image`]), and only when someone asks.

use std::collections::VecDeque;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::Duration;

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
    /// The frame as a browser shows it, made by the first client that asks (see
    /// [`LiveFrame::image`]).
    pub image: OnceLock<Option<Image>>,
}

/// An image a browser shows: its content type and bytes.
pub type Image = (&'static str, Arc<Vec<u8>>);

impl LiveFrame {
    /// The frame as an image a browser shows (content type and bytes), encoded at most once
    /// however many clients ask; None for a format a browser cannot show.
    pub fn image(&self) -> Option<Image> {
        self.image
            .get_or_init(|| as_image(&self.data).map(|(kind, bytes)| (kind, Arc::new(bytes))))
            .clone()
    }
}

/// What the live streams did, for `/metrics`.
#[derive(Debug, Default)]
pub struct StreamCounters {
    /// Streams open now.
    pub open: AtomicU64,
    /// Frames written to stream clients.
    pub sent: AtomicU64,
    /// Frames a stream client never got because it was still reading an earlier one.
    pub skipped: AtomicU64,
}

/// The slot the loop publishes into.
#[derive(Debug, Default)]
pub struct LiveView {
    latest: Mutex<Option<Arc<LiveFrame>>>,
    /// Notified on every publish (stream threads wait on it with `latest`'s mutex).
    published: Condvar,
    /// The last frames a client was sent, oldest first.
    served: Mutex<VecDeque<Arc<LiveFrame>>>,
    /// What the live streams did.
    pub streams: StreamCounters,
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
        drop(slot);
        self.published.notify_all();
    }

    /// The latest frame once it is newer than `after` (a sequence number), waiting up to
    /// `timeout` for one; None when none came.
    pub fn wait_newer(&self, after: u64, timeout: Duration) -> Option<Arc<LiveFrame>> {
        let slot = self.latest.lock().unwrap_or_else(|e| e.into_inner());
        let (slot, _) = self
            .published
            .wait_timeout_while(slot, timeout, |f| f.as_ref().is_none_or(|f| f.seq <= after))
            .unwrap_or_else(|e| e.into_inner());
        slot.as_ref().filter(|f| f.seq > after).cloned()
    }

    /// Keeps `frame` as one a client was shown, so a label naming its `seq` finds it even after
    /// the service's ring of recent frames has moved on.
    pub fn mark_served(&self, frame: &Arc<LiveFrame>) {
        let mut served = self.served.lock().unwrap_or_else(|e| e.into_inner());
        // Several clients are shown the same frames: each is kept once.
        if served.iter().rev().any(|f| f.seq == frame.seq) {
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
