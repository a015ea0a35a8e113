//! `cargo +nightly fuzz run stored_undo`: see `gossipchain::fuzzing::stored_undo`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| gossipchain::fuzzing::stored_undo(data));
