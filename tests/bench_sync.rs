//! Sync benchmarks with whole nodes on 127.0.0.1, ignored by `cargo test` (performance targets
//! live in `scripts/bench-sync.sh`, which runs these in release and prints the table; no timing
//! here is asserted).
//!
//! Environment: `BENCH_BLOCKS` (comma-separated chain lengths, default `20000`),
//! `BENCH_FORK` (`short,long`, default `10000,12000`; empty to skip), `BENCH_SIGNED`
//! (comma-separated `blocks x transfers` shapes of signed chains, default `20000x1,1000x1000`;
//! empty to skip).

mod common;

use std::time::{Duration, Instant};

use common::chain_writer::extend_chain;
use common::{unique_network, NodeOptions, TestNode};

fn opts(network: &str) -> NodeOptions {
    let mut o = NodeOptions::loopback(network);
    o.difficulty = 1;
    o
}

fn mine_many(node: &mut TestNode, count: u64) {
    let mut left = count;
    while left > 0 {
        let n = left.min(1_000);
        node.mine(n);
        left -= n;
    }
}

#[test]
#[ignore = "a benchmark: run by scripts/bench-sync.sh"]
fn bench_a_fresh_node_syncing_a_chain() {
    let lengths = std::env::var("BENCH_BLOCKS").unwrap_or_else(|_| "20000".into());
    for n in lengths
        .split(',')
        .filter_map(|s| s.trim().parse::<u64>().ok())
    {
        let network = unique_network("bench-sync");
        let mut source = TestNode::start("source", opts(&network));
        mine_many(&mut source, n);
        let secs = time_fresh_sync(&mut source, &network);
        println!(
            "BENCH | fresh sync | {n} blocks | {secs:.2} s | {:.0} blocks/s",
            n as f64 / secs
        );
    }
}

#[test]
#[ignore = "a benchmark: run by scripts/bench-sync.sh"]
fn bench_a_deep_fork_converging() {
    let fork = std::env::var("BENCH_FORK").unwrap_or_else(|_| "10000,12000".into());
    let sizes: Vec<u64> = fork
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let [short_n, long_n] = sizes[..] else {
        return;
    };
    let network = unique_network("bench-fork");
    let mut short = TestNode::start("short", opts(&network));
    let mut long = TestNode::start("long", opts(&network));
    mine_many(&mut short, short_n);
    mine_many(&mut long, long_n);
    let tip = long.tip();
    let addr = long.dial_addr();
    let started = Instant::now();
    short.dial(&addr);
    let secs = time_until_tip(&mut short, &tip, long_n, started);
    let reorg = short.wait_event(|e| e["event"] == "reorg", Duration::from_secs(5));
    println!(
        "BENCH | deep fork | {short_n} vs {long_n} blocks | {secs:.2} s to converge | reorg depth {}",
        reorg["depth"]
    );
}

/// Seconds a fresh node on `network` takes to catch up with `source`, timed from its `dial`
/// of a node that is already running, as the seed's `/nodes/resolve` is timed on a running node.
fn time_fresh_sync(source: &mut TestNode, network: &str) -> f64 {
    let tip = source.tip();
    let height = source.height();
    let mut fresh = TestNode::start("fresh", opts(network));
    fresh.height();
    let addr = source.dial_addr();
    let started = Instant::now();
    fresh.dial(&addr);
    time_until_tip(&mut fresh, &tip, height, started)
}

/// Seconds from `started` until `node` has `tip` at `height`: until the `sync_finished` event that reaches
/// its height, the moment the last batch is stored (a `status` poll every few milliseconds
/// would itself cost the node a store commit each, as every command does), then checked
/// against the node's status.
fn time_until_tip(node: &mut TestNode, tip: &str, height: u64, started: Instant) -> f64 {
    node.wait_event(
        |e| e["event"] == "sync_finished" && e["to_height"].as_u64() >= Some(height),
        Duration::from_secs(900),
    );
    let secs = started.elapsed().as_secs_f64();
    assert_eq!(
        node.status()["tip"],
        tip,
        "{} synced to the tip",
        node.label
    );
    secs
}

/// Parses `BENCH_SIGNED`: shapes such as `20000x1,1000x1000`.
fn signed_shapes() -> Vec<(u64, u64)> {
    let spec = std::env::var("BENCH_SIGNED").unwrap_or_else(|_| "20000x1,1000x1000".into());
    spec.split(',')
        .filter_map(|shape| {
            let (b, t) = shape.trim().split_once('x')?;
            Some((b.parse().ok()?, t.parse().ok()?))
        })
        .collect()
}

#[test]
#[ignore = "a benchmark: run by scripts/bench-sync.sh"]
fn bench_a_fresh_node_syncing_signed_transfers() {
    for (blocks, per_block) in signed_shapes() {
        let network = unique_network("bench-signed");
        let mut source = TestNode::start("source", opts(&network));
        source.quit(Duration::from_secs(30));
        let transfers = extend_chain(source.data_dir(), &network, 1, blocks, per_block, 42);
        source.restart();
        assert_eq!(source.height(), blocks);
        let secs = time_fresh_sync(&mut source, &network);
        println!(
            "BENCH | fresh sync, signed | {blocks} blocks x {per_block} transfers | {secs:.2} s | {:.0} blocks/s, {:.0} transfers/s",
            blocks as f64 / secs,
            transfers as f64 / secs
        );
    }
}
