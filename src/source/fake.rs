//! A source that fails on a schedule: the stand-in for a camera that is unplugged and comes back,
//! behind the same [`FrameSource`] trait as the real ones. It wraps a real source (a folder replay
//! in the tests), so the frames that do come through are real images.

use std::ops::Range;

use super::{Frame, FrameSource, SourceError};

/// Wraps a source; calls whose index (from 0) falls in one of the `outages` fail with
/// [`SourceError::Injected`] without consuming a frame of the inner source.
pub struct FlakySource {
    inner: Box<dyn FrameSource>,
    outages: Vec<Range<u64>>,
    calls: u64,
}

impl FlakySource {
    /// Fails the calls in `outages`.
    pub fn new(inner: Box<dyn FrameSource>, outages: Vec<Range<u64>>) -> Self {
        FlakySource {
            inner,
            outages,
            calls: 0,
        }
    }

    /// How many times `next_frame` was called.
    pub fn calls(&self) -> u64 {
        self.calls
    }
}

impl FrameSource for FlakySource {
    fn next_frame(&mut self) -> Result<Frame, SourceError> {
        let index = self.calls;
        self.calls += 1;
        if self.outages.iter().any(|r| r.contains(&index)) {
            return Err(SourceError::Injected { index });
        }
        self.inner.next_frame()
    }

    fn describe(&self) -> String {
        format!("flaky({})", self.inner.describe())
    }
}
