//! `cargo +nightly fuzz run stored_record`: see `gossipchain::fuzzing::stored_record`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| gossipchain::fuzzing::stored_record(data));
