//! Writes the long chains that `scripts/bench-store.sh` restarts a node on, ignored by
//! `cargo test` (no timing here is asserted; the script prints the table).
//!
//! Environment: `BENCH_STORE_DIR` (the data directory to fill, required), `BENCH_STORE_BLOCKS`
//! (how many coinbase-only blocks to append, default 100000), `BENCH_STORE_NETWORK` (default
//! `bench-store`) at difficulty 8, the script's mining difficulty.

mod common;

use std::path::PathBuf;
use std::time::Instant;

use common::chain_writer::extend_chain;

#[test]
#[ignore = "a benchmark's fixture: run by scripts/bench-store.sh"]
fn bench_write_a_long_chain_into_a_data_directory() {
    let Some(dir) = std::env::var_os("BENCH_STORE_DIR").map(PathBuf::from) else {
        panic!("BENCH_STORE_DIR names the data directory to fill");
    };
    let blocks: u64 = std::env::var("BENCH_STORE_BLOCKS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(100_000);
    let network = std::env::var("BENCH_STORE_NETWORK").unwrap_or_else(|_| "bench-store".into());
    let began = Instant::now();
    extend_chain(&dir, &network, 8, blocks, 0, 7);
    let seconds = began.elapsed().as_secs_f64();
    println!(
        "BENCH | store writer | {blocks} blocks | {seconds:.1} s | {:.0} blocks/s",
        blocks as f64 / seconds
    );
}
