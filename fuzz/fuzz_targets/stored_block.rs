//! `cargo +nightly fuzz run stored_block`: see `gossipchain::fuzzing::stored_block`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| gossipchain::fuzzing::stored_block(data));
