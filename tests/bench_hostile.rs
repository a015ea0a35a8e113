//! Hostile-peer benchmarks with whole nodes on 127.0.0.1 (issue 10, targets), ignored by
//! `cargo test`: `scripts/bench-hostile.sh` runs them in release and prints one table row per
//! target, with the figure, the target and whether it was met. `tests/flood.rs` runs the same
//! scenarios small, for CI, and asserts only what does not depend on timing.
//!
//! Environment: `BENCH_FLOOD` (`secs,blocks per second,transfers per block`, default
//! `20,20,2000`), `BENCH_UNREAD` (`secs,chain blocks,transfers per block`, default
//! `15,24,4500`), `BENCH_IDENTITIES` (default `1000`).

#[path = "common/attacks.rs"]
mod attacks;
mod common;
#[path = "common/http_client.rs"]
mod http_client;
#[path = "common/raw_peer.rs"]
mod raw_peer;

use attacks::{FloodKind, FloodSize};

fn numbers(var: &str, default: &str) -> Vec<u64> {
    std::env::var(var)
        .unwrap_or_else(|_| default.into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect()
}

fn verdict(met: bool) -> &'static str {
    if met {
        "met"
    } else {
        "MISSED"
    }
}

#[test]
#[ignore = "a benchmark: run by scripts/bench-hostile.sh"]
fn bench_a_flood_of_early_and_side_blocks() {
    let [secs, per_second, transfers] = numbers("BENCH_FLOOD", "20,20,2000")[..] else {
        panic!("BENCH_FLOOD is secs,blocks per second,transfers");
    };
    let size = FloodSize {
        secs,
        per_second,
        transfers: transfers as usize,
        pool: 20_000,
    };
    // A quarter of a core over the flood.
    let cpu_target = secs as f64 / 4.0;
    for (kind, what) in [
        (FloodKind::Early, "3 h ahead"),
        (FloodKind::Side, "side branch, unpayable"),
    ] {
        let r = attacks::flood_blocks(kind, size);
        let met = r.cpu_s < cpu_target
            && r.rss_growth_mb < 64.0
            && r.status_p99_ms < 100.0
            && r.honest_ms < 1000.0
            && r.flooder_connected;
        println!(
            "BENCH | A: {per_second} blocks/s x {transfers} transfers for {secs} s, {what} ({} blocks) \
             | CPU {:.2} s, RSS +{:.1} MB, status p99 {:.1} ms ({} samples), honest block {:.0} ms, \
             flooder kept: {}, side blocks kept {} | CPU < {cpu_target:.0} s, RSS < +64 MB, p99 < 100 ms, \
             honest block < 1 s | {} |",
            r.published,
            r.cpu_s,
            r.rss_growth_mb,
            r.status_p99_ms,
            r.status_samples,
            r.honest_ms,
            r.flooder_connected,
            r.side_blocks,
            verdict(met),
        );
    }
}

#[test]
#[ignore = "a benchmark: run by scripts/bench-hostile.sh"]
fn bench_b_block_requests_never_read() {
    let [secs, blocks, transfers] = numbers("BENCH_UNREAD", "15,24,4500")[..] else {
        panic!("BENCH_UNREAD is secs,chain blocks,transfers");
    };
    let r = attacks::unread_block_requests(secs, blocks, transfers, 40);
    let met = r.rss_growth_mb < 64.0 && r.honest_sync_s.is_finite();
    println!(
        "BENCH | B: one peer, 2 connections, GetBlocks of 128 x {transfers}-transfer blocks never read, {secs} s \
         | peak RSS +{:.1} MB ({} requests, {} failed, attacker kept: {}), honest fresh sync of {blocks} blocks {:.2} s \
         | peak RSS < +64 MB, honest peer syncs | {} |",
        r.rss_growth_mb,
        r.sent,
        r.failed,
        r.attacker_connected,
        r.honest_sync_s,
        verdict(met),
    );
}

#[test]
#[ignore = "a benchmark: run by scripts/bench-hostile.sh"]
fn bench_c_throwaway_identities() {
    let count = numbers("BENCH_IDENTITIES", "1000")
        .first()
        .copied()
        .unwrap_or(1000) as usize;
    let r = attacks::throwaway_identities(count, 16);
    println!(
        "BENCH | C: {count} throwaway identities ({} connected, {:.1} s), wrong genesis / garbage requests / hang-up \
         | --peer peer back and synced in {:.2} s, new peer synced in {:.2} s \
         | both connect, exchange status and sync | met |",
        r.connected, r.flood_s, r.configured_peer_s, r.new_peer_s,
    );
}
