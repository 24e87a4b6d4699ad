//! Fuzz target: arbitrary text as a board file; a board or an error, never a panic.
//!
//! Run: `cargo fuzz run board_parser -- -max_total_time=60`.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = fieldtune::board::Board::parse(text, std::path::Path::new("fuzz.toml"));
    }
});
