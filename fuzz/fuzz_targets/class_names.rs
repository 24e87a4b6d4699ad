//! Fuzz target: arbitrary text as a class name; refused, or NFC, bounded and printable.
//!
//! Run: `cargo fuzz run class_names -- -max_total_time=60`.

#![no_main]

use fieldtune::learner::names::{shown, NameRules};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(name) = std::str::from_utf8(data) {
        let rules = NameRules::DEFAULT;
        if let Ok(normal) = rules.normalize(name) {
            assert!(normal.chars().count() <= rules.max_chars);
            assert!(!normal.chars().any(char::is_control));
            assert_eq!(rules.normalize(&normal), Ok(normal.clone()));
        }
        assert!(!shown(name).chars().any(char::is_control));
    }
});
