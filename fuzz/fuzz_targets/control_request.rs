//! Fuzz target: arbitrary bytes on a control connection go through the bounded line reader and
//! the request parser; never a panic, never a line over the limit.
//!
//! Run: `cargo fuzz run control_request -- -max_total_time=60`.

#![no_main]

use std::io::{BufReader, Cursor};

use fieldtune::control::{parse_request, read_bounded_line, Line};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut reader = BufReader::with_capacity(64, Cursor::new(data));
    let mut buf = Vec::new();
    loop {
        match read_bounded_line(&mut reader, 256, &mut buf) {
            Ok(Line::Text(text)) => {
                assert!(text.len() <= 256);
                let _ = parse_request(&text);
            }
            Ok(Line::Closed) | Err(_) => break,
            Ok(_) => {}
        }
        assert!(buf.len() <= 256);
        buf.clear();
    }
});
