//! Bad console input gets `ok: false` with an error message, and the node carries on.

mod common;

use std::time::Duration;

use common::{unique_network, NodeOptions, TestNode};
use gossipchain::ledger::params::DEFAULT_REWARD;

/// An address nobody holds the key of.
const STRANGER: &str = "00112233445566778899aabbccddeeff00112233";

#[test]
fn malformed_commands_get_an_error_and_the_node_keeps_working() {
    let mut node = TestNode::start("console", NodeOptions::loopback(&unique_network("console")));
    let me = node.address();

    // Unknown commands reply with their own first word.
    for cmd in ["frobnicate", "FROBNICATE now", "statuss", "mine-all"] {
        node.err(cmd);
    }

    // Missing, malformed and out-of-range arguments.
    for cmd in [
        "tx",
        &format!("tx {STRANGER}"),
        "tx nothex 5",
        "tx 0011 5",
        &format!("tx {STRANGER}00 5"),
        &format!("tx {STRANGER} five"),
        &format!("tx {STRANGER} -5"),
        &format!("tx {STRANGER} 1.5"),
        &format!("tx {STRANGER} 18446744073709551616"),
        &format!("tx {STRANGER} 1 fee"),
        &format!("tx {STRANGER} 1 -1"),
        &format!("tx {STRANGER} 1 2 3"),
        "mine abc",
        "mine -1",
        "automine",
        "automine maybe",
        "chain x",
        "chain -3",
        "block",
        "block xyz",
        "block 999999",
        &format!("block {}", "ab".repeat(32)),
        "balance zz",
        &format!("balance {STRANGER}ff"),
        "dial",
        "dial not-a-multiaddr",
        "dial /ip4/999.0.0.1/tcp/1",
    ] {
        node.err(cmd);
    }

    // Overspending: nothing to spend yet, then more than the one block reward.
    let e = node.err(&format!("tx {STRANGER} 1"));
    assert!(!e.is_empty());
    node.mine(1);
    assert_eq!(node.balance_of(&me), DEFAULT_REWARD);
    node.err(&format!("tx {STRANGER} {}", DEFAULT_REWARD + 1));
    node.err(&format!("tx {STRANGER} {DEFAULT_REWARD} 1"));
    node.err(&format!("tx {STRANGER} {} {}", u64::MAX, u64::MAX));
    node.err(&format!("tx {STRANGER} 0"));
    assert!(
        node.mempool_txids().is_empty(),
        "refused transactions stay out of the mempool"
    );

    // A 100 KB line, once as a huge argument and once as a huge command word.
    let huge_arg = format!("tx {}", "a".repeat(100 * 1024));
    let reply = node.request_any(huge_arg.as_bytes(), Duration::from_secs(30));
    node.expect_error("100 KB tx line", &reply);
    let huge_word = "z".repeat(100 * 1024);
    let reply = node.request_any(huge_word.as_bytes(), Duration::from_secs(30));
    node.expect_error("100 KB word", &reply);

    // Bytes that are not UTF-8.
    let reply = node.request_any(&[0xff, 0xfe, b' ', 0x80], Duration::from_secs(30));
    node.expect_error("a line that is not UTF-8", &reply);

    // The node still answers and still works: a valid transfer is accepted and mined.
    let status = node.status();
    assert_eq!(status["height"], 1);
    let txid = node.send_tx(STRANGER, DEFAULT_REWARD - 1, 1);
    assert_eq!(node.mempool_txids(), vec![txid.clone()]);
    node.mine(1);
    assert_eq!(node.balance_of(STRANGER), DEFAULT_REWARD - 1);
    let tip_block = node.chain().last().cloned().unwrap_or_default();
    assert!(common::txids_of(&tip_block["transactions"]).contains(&txid));

    assert!(
        node.non_json_lines().is_empty(),
        "every stdout line must be one JSON object; got {:?}",
        node.non_json_lines()
    );
    node.quit(Duration::from_secs(10));
}

#[test]
fn the_node_keeps_running_after_stdin_closes_and_restarts_with_its_chain() {
    let mut node = TestNode::start("eof", NodeOptions::loopback(&unique_network("eof")));
    node.mine(2);
    let tip = node.tip();
    node.close_stdin();
    std::thread::sleep(Duration::from_millis(500));
    assert!(node.is_alive(), "EOF on stdin must not stop the node");
    node.kill_9();
    node.restart();
    assert_eq!(node.tip(), tip);
}
