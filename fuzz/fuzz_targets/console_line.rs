//! `cargo +nightly fuzz run console_line`: see `gossipchain::fuzzing::console_line`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| gossipchain::fuzzing::console_line(data));
