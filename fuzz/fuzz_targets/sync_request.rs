//! `cargo +nightly fuzz run sync_request`: see `gossipchain::fuzzing::sync_request`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| gossipchain::fuzzing::sync_request(data));
