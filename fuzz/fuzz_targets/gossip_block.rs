//! `cargo +nightly fuzz run gossip_block`: see `gossipchain::fuzzing::gossip_block`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| gossipchain::fuzzing::gossip_block(data));
