//! Fuzz target: arbitrary bytes as an MJPEG stream; frames within the cap, the stream ends,
//! never a panic.
//!
//! Run: `cargo fuzz run mjpeg_splitter -- -max_total_time=60`.

#![no_main]

use fieldtune::source::mjpeg::{MjpegStream, MAX_FRAME_BYTES};
use fieldtune::source::{FrameData, FrameSource, SourceError};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut stream = MjpegStream::new(std::io::Cursor::new(data.to_vec()), "fuzz");
    loop {
        match stream.next_frame() {
            Ok(frame) => {
                if let FrameData::Encoded(bytes) = frame.data {
                    assert!(bytes.len() <= MAX_FRAME_BYTES + 70_000);
                }
            }
            Err(SourceError::Ended { .. }) => break,
            Err(e) => assert!(e.is_transient()),
        }
    }
});
