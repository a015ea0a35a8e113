//! `cargo +nightly fuzz run gossip_transfer`: see `gossipchain::fuzzing::gossip_transfer`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| gossipchain::fuzzing::gossip_transfer(data));
