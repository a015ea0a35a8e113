//! `cargo +nightly fuzz run sync_response`: see `gossipchain::fuzzing::sync_response`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| gossipchain::fuzzing::sync_response(data));
