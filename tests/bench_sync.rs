//! Sync benchmarks with whole nodes on 127.0.0.1, ignored by `cargo test` (performance targets
//! live in `scripts/bench-sync.sh`, which runs these in release and prints the table; no timing
//! here is asserted).
//!
//! Environment: `BENCH_BLOCKS` (comma-separated chain lengths, default `20000`),
//! `BENCH_FORK` (`short,long`, default `10000,12000`; empty to skip).

mod common;

use std::time::{Duration, Instant};

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
        let tip = source.tip();
        let mut o = opts(&network);
        o.peers.push(source.dial_addr());
        let started = Instant::now();
        let mut fresh = TestNode::start("fresh", o);
        fresh.wait_until(|s| s["tip"] == tip.as_str(), Duration::from_secs(600));
        let secs = started.elapsed().as_secs_f64();
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
    short.wait_until(|s| s["tip"] == tip.as_str(), Duration::from_secs(600));
    let secs = started.elapsed().as_secs_f64();
    let reorg = short.wait_event(|e| e["event"] == "reorg", Duration::from_secs(5));
    println!(
        "BENCH | deep fork | {short_n} vs {long_n} blocks | {secs:.2} s to converge | reorg depth {}",
        reorg["depth"]
    );
}
