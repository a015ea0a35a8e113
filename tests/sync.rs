//! A node that joins late fetches the whole chain it missed, in bounded time.

mod common;

use std::time::{Duration, Instant};

use common::{unique_network, NodeOptions, TestNode};

/// Blocks mined before the late node starts.
const CHAIN_LENGTH: u64 = 1_000;

#[test]
fn a_node_started_late_catches_up_a_chain_of_a_thousand_blocks() {
    let network = unique_network("sync");
    let mut early = TestNode::start("early", NodeOptions::loopback(&network));
    let started = Instant::now();
    for _ in 0..CHAIN_LENGTH / 100 {
        early.mine(100);
    }
    eprintln!("mined {CHAIN_LENGTH} blocks in {:?}", started.elapsed());
    let status = early.status();
    assert_eq!(status["height"], CHAIN_LENGTH);
    let tip = status["tip"].as_str().unwrap_or_default().to_string();
    let miner = early.address();

    // The late node learns of the early one from --peer alone.
    let mut opts = NodeOptions::loopback(&network);
    opts.peers.push(early.dial_addr());
    let mut late = TestNode::start("late", opts);
    let started = Instant::now();
    late.wait_until(|s| s["tip"] == tip.as_str(), Duration::from_secs(90));
    eprintln!("caught up {CHAIN_LENGTH} blocks in {:?}", started.elapsed());

    // It announced the sync, and now holds the very same chain.
    let finished = late.wait_event(|e| e["event"] == "sync_finished", Duration::from_secs(5));
    assert!(finished["to_height"].as_u64().is_some(), "{finished}");
    assert!(late.events().iter().any(|e| e["event"] == "sync_started"));
    assert_eq!(late.height(), CHAIN_LENGTH);
    for h in [1, 2, CHAIN_LENGTH / 2, CHAIN_LENGTH - 1] {
        assert_eq!(late.hash_at(h), early.hash_at(h), "block {h}");
    }
    assert_eq!(late.balance_of(&miner), early.balance_of(&miner));

    // Caught up, it follows new blocks as they are gossiped.
    let next = early.mine(1);
    let next_hash = next["hash"].as_str().unwrap_or_default().to_string();
    late.wait_until(|s| s["tip"] == next_hash.as_str(), Duration::from_secs(20));
}
