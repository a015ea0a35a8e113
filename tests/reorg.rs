//! Two nodes that mined apart meet: the one with less work reorganises to the other's chain, and
//! the transactions of the blocks it abandoned go back to its mempool and are mined later.

mod common;

use std::time::Duration;

use common::{block_at, txids_of, unique_network, NodeOptions, TestNode};
use gossipchain::ledger::params::DEFAULT_REWARD;

/// An address nobody holds the key of.
const STRANGER: &str = "0badc0ffee0badc0ffee0badc0ffee0badc0ffee";

#[test]
fn a_shorter_chain_reorganises_to_a_longer_one_and_its_transactions_return_to_the_mempool() {
    let network = unique_network("reorg");
    let mut short = TestNode::start("short", NodeOptions::loopback(&network));
    let mut long = TestNode::start("long", NodeOptions::loopback(&network));
    let short_address = short.address();

    // The long chain: 5 blocks, and in one of them 20 coins for the short node's account, so
    // that the short node's own transfer stays valid on the long chain.
    long.mine(1);
    let funding = long.send_tx(&short_address, 20, 0);
    long.mine(4);
    assert_eq!(long.height(), 5);
    let long_chain = long.chain();
    assert!(
        long_chain
            .iter()
            .any(|b| txids_of(&b["transactions"]).contains(&funding)),
        "the funding transfer is on the long chain"
    );

    // The short chain: 3 blocks, the second carrying the short node's own transfer.
    short.mine(1);
    let own = short.send_tx(STRANGER, 5, 1);
    short.mine(2);
    assert_eq!(short.height(), 3);
    let short_chain = short.chain();
    let block_2 = block_at(&short_chain, 2);
    assert!(
        txids_of(&block_2["transactions"]).contains(&own),
        "block 2 of the short chain carries its own transfer: {block_2}"
    );
    let old_tip = short.tip();
    assert!(short.mempool_txids().is_empty());

    // Connect them.
    let long_addr = long.dial_addr();
    short.dial(&long_addr);
    let long_tip = long.tip();
    short.wait_until(|s| s["tip"] == long_tip.as_str(), Duration::from_secs(30));
    assert_eq!(short.height(), 5);

    // The reorg event names the abandoned tip, 3 blocks disconnected, the fork at genesis, and
    // a new tip on the long chain.
    let reorg = short.wait_event(|e| e["event"] == "reorg", Duration::from_secs(5));
    assert_eq!(reorg["old_tip"], old_tip.as_str(), "{reorg}");
    assert_eq!(reorg["depth"], 3, "{reorg}");
    assert_eq!(reorg["fork_height"], 0, "{reorg}");
    let long_hashes: Vec<&str> = long_chain
        .iter()
        .filter_map(|b| b["hash"].as_str())
        .collect();
    assert!(
        reorg["new_tip"]
            .as_str()
            .is_some_and(|t| long_hashes.contains(&t)),
        "new tip {} is on the long chain",
        reorg["new_tip"]
    );

    // The long node never reorganised.
    assert_eq!(long.tip(), long_tip);
    assert!(!long.events().iter().any(|e| e["event"] == "reorg"));

    // The short node's own transfer is back in its mempool (coinbases are not).
    short.wait_until(|s| s["mempool"] == 1, Duration::from_secs(10));
    assert_eq!(short.mempool_txids(), vec![own.clone()]);

    // And it is mined later, visible on both nodes' chains.
    let mined = short.mine(1);
    assert_eq!(mined["height"], 6);
    let tip_block = short.chain().last().cloned().unwrap_or_default();
    assert!(
        txids_of(&tip_block["transactions"]).contains(&own),
        "block 6 carries the returned transfer: {tip_block}"
    );
    let new_tip = short.tip();
    long.wait_until(|s| s["tip"] == new_tip.as_str(), Duration::from_secs(20));
    assert_eq!(long.balance_of(STRANGER), 5);
    assert_eq!(short.balance_of(STRANGER), 5);
    assert_eq!(
        long.balance_of(&short_address),
        20 - (5 + 1) + DEFAULT_REWARD + 1,
        "funding, minus the transfer, plus block 6's reward and fee"
    );
    assert!(short.mempool_txids().is_empty());
}
