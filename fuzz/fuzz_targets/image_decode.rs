//! Fuzz target: arbitrary bytes through image decoding with limits; an error or an image within
//! the limits, never a panic or an allocation past them.
//!
//! Run: `cargo fuzz run image_decode -- -max_total_time=60 -rss_limit_mb=512`.

#![no_main]

use fieldtune::preprocess::{decode_with, DecodeLimits};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let limits = DecodeLimits {
        max_width: 4096,
        max_height: 4096,
        max_pixels: 4_000_000,
        max_file_bytes: 1 << 20,
    };
    if let Ok(rgb) = decode_with(data, &limits) {
        assert!(u64::from(rgb.width()) * u64::from(rgb.height()) <= 4_000_000);
    }
});
