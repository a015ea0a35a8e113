//! A node killed with SIGKILL restarts from its data directory with its chain and its identity,
//! and catches up with the blocks it missed, also when it was killed in the middle of a sync.

mod common;

use std::time::Duration;

use common::{unique_network, NodeOptions, TestNode};

#[test]
fn a_node_killed_with_sigkill_comes_back_with_its_chain_and_catches_up() {
    let network = unique_network("restart");
    let mut steady = TestNode::start("steady", NodeOptions::loopback(&network));
    let mut victim = TestNode::start("victim", NodeOptions::loopback(&network));
    let steady_addr = steady.dial_addr();
    victim.dial(&steady_addr);
    victim.wait_until(|s| s["peers"] == 1, Duration::from_secs(15));

    // Both build a chain together: 3 blocks from one, then 1 from the victim itself.
    steady.mine(3);
    let tip = steady.tip();
    victim.wait_until(|s| s["tip"] == tip.as_str(), Duration::from_secs(20));
    let own = victim.mine(1);
    let own_hash = own["hash"].as_str().unwrap_or_default().to_string();
    assert_eq!(own["height"], 4);
    let peer_id = victim.peer_id();
    let address = victim.address();

    // Killed right after its own block was mined: nothing is flushed on the way out.
    victim.kill_9();
    steady.wait_until(|s| s["tip"] == own_hash.as_str(), Duration::from_secs(20));

    // The network moves on without it.
    steady.mine(5);
    let tip = steady.tip();
    assert_eq!(steady.height(), 9);

    // It comes back with the same identity, account and chain, its own block included.
    victim.restart();
    assert_eq!(victim.peer_id(), peer_id, "the peer id survives restarts");
    assert_eq!(victim.address(), address, "the account survives restarts");
    assert!(victim.height() >= 4);
    assert_eq!(victim.hash_at(4), own_hash);

    // And catches up with what it missed once it meets the network again.
    let steady_addr = steady.dial_addr();
    victim.dial(&steady_addr);
    victim.wait_until(|s| s["tip"] == tip.as_str(), Duration::from_secs(30));
    assert_eq!(victim.balance_of(&address), steady.balance_of(&address));

    // The store is still good after a clean shutdown too.
    victim.quit(Duration::from_secs(10));
    victim.restart();
    assert_eq!(victim.tip(), tip);
}

#[test]
fn a_node_killed_with_sigkill_in_the_middle_of_a_sync_restarts_and_finishes_it() {
    let network = unique_network("restart-sync");
    let mut source = TestNode::start("source", NodeOptions::loopback(&network));
    for _ in 0..4 {
        source.mine(500);
    }
    let tip = source.tip();
    let source_addr = source.dial_addr();

    let mut opts = NodeOptions::loopback(&network);
    opts.peers.push(source_addr);
    let mut victim = TestNode::start("victim", opts);
    // Killed as soon as the download begins: whatever batches were committed stay.
    victim.wait_event(|e| e["event"] == "sync_started", Duration::from_secs(20));
    victim.kill_9();
    victim.restart();
    victim.wait_until(|s| s["tip"] == tip.as_str(), Duration::from_secs(60));
    assert_eq!(victim.height(), 2_000);
    assert_eq!(victim.hash_at(1_000), source.hash_at(1_000));
}
