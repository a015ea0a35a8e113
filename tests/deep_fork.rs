//! Two nodes that mined thousands of blocks apart meet: the one with less work downloads the
//! other's headers, then its bodies, and reorganises once to it, however deep the fork; neither
//! drops the other, and the transfer of the abandoned branch goes back to a mempool.

mod common;

use std::time::{Duration, Instant};

use common::{txids_of, unique_network, NodeOptions, TestNode};

/// Blocks the short node mines since genesis (deeper than the side-branch prune depth).
const SHORT: u64 = 3_000;
/// Blocks the long node mines since genesis.
const LONG: u64 = 3_500;

/// An address nobody holds the key of.
const STRANGER: &str = "0badc0ffee0badc0ffee0badc0ffee0badc0ffee";

fn mine_many(node: &mut TestNode, count: u64) {
    let mut left = count;
    while left > 0 {
        let n = left.min(500);
        node.mine(n);
        left -= n;
    }
}

#[test]
fn two_nodes_three_thousand_blocks_apart_converge_on_the_longer_chain_with_one_reorg() {
    let network = unique_network("deep-fork");
    let mut short = TestNode::start("short", NodeOptions::loopback(&network));
    let mut long = TestNode::start("long", NodeOptions::loopback(&network));
    let short_address = short.address();

    // The long chain funds the short node's account, so its own transfer stays valid there.
    long.mine(1);
    long.send_tx(&short_address, 20, 0);
    mine_many(&mut long, LONG - 1);
    assert_eq!(long.height(), LONG);

    // The short chain carries the short node's own transfer in its second block.
    short.mine(1);
    let own = short.send_tx(STRANGER, 5, 1);
    mine_many(&mut short, SHORT - 1);
    assert_eq!(short.height(), SHORT);
    let block_2 = short.ok("block 2");
    assert!(
        txids_of(&block_2["transactions"]).contains(&own),
        "{block_2}"
    );
    let old_tip = short.tip();
    let long_tip = long.tip();

    let started = Instant::now();
    let long_addr = long.dial_addr();
    short.dial(&long_addr);
    short.wait_until(|s| s["tip"] == long_tip.as_str(), Duration::from_secs(60));
    eprintln!(
        "converged {SHORT} vs {LONG} blocks in {:?}",
        started.elapsed()
    );

    // One reorg, from the old tip all the way down to genesis.
    let reorg = short.wait_event(|e| e["event"] == "reorg", Duration::from_secs(5));
    assert_eq!(reorg["old_tip"], old_tip.as_str(), "{reorg}");
    assert_eq!(reorg["depth"], SHORT, "{reorg}");
    assert_eq!(reorg["fork_height"], 0, "{reorg}");
    short.wait_event(|e| e["event"] == "sync_finished", Duration::from_secs(5));
    let reorgs = short
        .events()
        .iter()
        .filter(|e| e["event"] == "reorg")
        .count();
    assert_eq!(reorgs, 1, "exactly one reorg");
    assert!(!long.events().iter().any(|e| e["event"] == "reorg"));

    // Synced blocks were reported as progress, not one by one.
    let synced_one_by_one = short
        .events()
        .iter()
        .filter(|e| e["event"] == "block_accepted" && e["source"] == long.peer_id().as_str())
        .count();
    assert_eq!(synced_one_by_one, 0);

    // Both still connected: nobody was penalised for the deep fork.
    assert_eq!(short.peer_count(), 1);
    assert_eq!(long.peer_count(), 1);
    assert!(!short
        .events()
        .iter()
        .any(|e| e["event"] == "peer_disconnected"));

    // The abandoned branch's transfer is back in the short node's mempool.
    short.wait_until(|s| s["mempool"] == 1, Duration::from_secs(10));
    assert_eq!(short.mempool_txids(), vec![own]);
}
