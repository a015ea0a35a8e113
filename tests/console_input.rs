//! Bad console input gets `ok: false` with an error message, and the node carries on.

mod common;

use std::time::Duration;

use common::{txids_of, unique_network, NodeOptions, TestNode};
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

    // Mining bounds are the node's (NodeHandle's), reported under the command's word.
    for cmd in ["mine 0", "mine 100001", "mine 18446744073709551615"] {
        let e = node.err(cmd);
        assert!(e.contains("count must be 1 to 100000"), "{cmd}: {e}");
    }

    // Overspending: nothing to spend yet, then more than the one block reward.
    let e = node.err(&format!("tx {STRANGER} 1"));
    assert!(e.contains("insufficient funds"), "{e}");
    node.mine(1);
    assert_eq!(node.balance_of(&me), DEFAULT_REWARD);
    for cmd in [
        format!("tx {STRANGER} {}", DEFAULT_REWARD + 1),
        format!("tx {STRANGER} {DEFAULT_REWARD} 1"),
    ] {
        let e = node.err(&cmd);
        assert!(e.contains("insufficient funds"), "{cmd}: {e}");
    }
    let e = node.err(&format!("tx {STRANGER} {} {}", u64::MAX, u64::MAX));
    assert!(e.contains("overflows"), "{e}");
    let e = node.err(&format!("tx {STRANGER} 0"));
    assert!(e.contains("amount must be positive"), "{e}");
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
    assert!(txids_of(&tip_block["transactions"]).contains(&txid));

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

/// True when `v` is a lowercase hex string of `len` digits.
fn is_hex(v: &serde_json::Value, len: usize) -> bool {
    v.as_str().is_some_and(|s| {
        s.len() == len
            && s.chars()
                .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c))
    })
}

#[test]
fn replies_and_events_carry_the_documented_json_fields() {
    let mut node = TestNode::start("contract", NodeOptions::loopback(&unique_network("json")));
    node.ok("help");

    let s = node.status();
    assert!(s["network"].is_string(), "{s}");
    assert!(s["peer_id"].is_string(), "{s}");
    assert!(is_hex(&s["address"], 40), "{s}");
    assert_eq!(s["height"], 0, "{s}");
    assert!(is_hex(&s["tip"], 64), "{s}");
    assert_eq!(s["peers"], 0, "{s}");
    assert_eq!(s["mempool"], 0, "{s}");
    assert!(s["listen"].is_array(), "{s}");
    let me = s["address"].as_str().unwrap_or_default().to_string();
    assert!(node.dial_addr().starts_with("/ip4/127.0.0.1/tcp/"));

    let mined = node.mine(1);
    assert_eq!(mined["height"], 1);
    assert!(is_hex(&mined["hash"], 64), "{mined}");
    let hash = mined["hash"].as_str().unwrap_or_default().to_string();
    let e = node.wait_event(
        |e| e["event"] == "block_accepted" && e["hash"] == hash.as_str(),
        Duration::from_secs(5),
    );
    assert_eq!(e["height"], 1, "{e}");
    assert_eq!(e["source"], "mined", "{e}");

    let b = node.ok("balance");
    assert_eq!(b["address"], me.as_str(), "{b}");
    assert_eq!(b["balance"], DEFAULT_REWARD, "{b}");

    let tx = node.ok(&format!("tx {STRANGER} 7 2"));
    assert!(is_hex(&tx["txid"], 64), "{tx}");
    let txid = tx["txid"].as_str().unwrap_or_default().to_string();
    node.wait_event(
        |e| e["event"] == "tx_accepted" && e["txid"] == txid.as_str(),
        Duration::from_secs(5),
    );
    let pool = node.ok("mempool");
    let pending = &pool["transactions"][0];
    assert_eq!(pending["txid"], txid.as_str(), "{pool}");
    assert_eq!(pending["from"], me.as_str(), "{pool}");
    assert_eq!(pending["to"], STRANGER, "{pool}");
    assert_eq!(pending["amount"], 7, "{pool}");
    assert_eq!(pending["fee"], 2, "{pool}");
    assert_eq!(pending["nonce"], 0, "{pool}");

    node.mine(1);
    let chain = node.ok("chain");
    assert_eq!(chain["length"], 3, "genesis and two blocks: {chain}");
    assert_eq!(chain["from"], 0, "{chain}");
    let blocks = chain["blocks"].as_array().cloned().unwrap_or_default();
    assert_eq!(blocks.len(), 3);
    for (i, block) in blocks.iter().enumerate() {
        assert_eq!(block["height"], i as u64, "{block}");
        for field in ["hash", "prev_hash"] {
            assert!(is_hex(&block[field], 64), "{field} of {block}");
        }
        for field in ["timestamp", "nonce", "difficulty"] {
            assert!(block[field].is_u64(), "{field} of {block}");
        }
        assert!(block["transactions"].is_array(), "{block}");
        if i > 0 {
            assert_eq!(block["prev_hash"], blocks[i - 1]["hash"], "{block}");
        }
    }
    assert_eq!(blocks[1]["hash"], hash.as_str());
    let last = &blocks[2];
    assert_eq!(txids_of(&last["transactions"]).len(), 2, "{last}");
    assert!(txids_of(&last["transactions"]).contains(&txid), "{last}");
    let recent = node.ok("chain 1");
    assert_eq!(
        recent["blocks"].as_array().map(Vec::len),
        Some(1),
        "{recent}"
    );
    assert_eq!(recent["blocks"][0]["hash"], last["hash"], "{recent}");

    let by_height = node.ok("block 2");
    let by_hash = node.ok(&format!(
        "block {}",
        last["hash"].as_str().unwrap_or_default()
    ));
    assert_eq!(node.hash_at(2), last["hash"].as_str().unwrap_or_default());
    assert_eq!(by_height, by_hash);

    let peers = node.ok("peers");
    assert_eq!(peers["peers"].as_array().map(Vec::len), Some(0), "{peers}");

    node.ok("automine on");
    node.wait_until(|s| s["height"].as_u64() >= Some(5), Duration::from_secs(20));
    node.ok("automine off");
    // Mining stops: the height settles.
    std::thread::sleep(Duration::from_millis(300));
    let settled = node.status()["height"].clone();
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(node.status()["height"], settled);

    assert!(
        node.non_json_lines().is_empty(),
        "{:?}",
        node.non_json_lines()
    );
    node.quit(Duration::from_secs(10));
}

#[test]
fn chain_shows_the_latest_twenty_blocks_by_default_and_caps_a_count_or_range_at_a_thousand() {
    let mut node = TestNode::start("long", NodeOptions::loopback(&unique_network("chain-cap")));
    node.ok_within("mine 1050", Duration::from_secs(120));
    let length = 1_051;
    let blocks =
        |reply: &serde_json::Value| reply["blocks"].as_array().cloned().unwrap_or_default();

    let latest = node.ok("chain");
    assert_eq!(latest["length"], length, "{latest}");
    assert_eq!(latest["from"], length - 20, "{latest}");
    let shown = blocks(&latest);
    assert_eq!(shown.len(), 20);
    assert_eq!(shown[19]["height"], length - 1, "ends at the tip");

    let many = node.ok("chain 5000");
    assert_eq!(many["from"], length - 1_000, "the latest thousand");
    assert_eq!(blocks(&many).len(), 1_000);

    let range = node.ok("chain 0..");
    assert_eq!(
        (range["from"].clone(), range["length"].clone()),
        (0.into(), length.into())
    );
    let shown = blocks(&range);
    assert_eq!(shown.len(), 1_000, "capped");
    assert_eq!(shown[999]["height"], 999);

    let tail = node.ok("chain 1040..2000");
    assert_eq!(tail["from"], 1_040);
    let heights: Vec<_> = blocks(&tail).iter().map(|b| b["height"].clone()).collect();
    assert_eq!(heights.first(), Some(&1_040.into()));
    assert_eq!(heights.len(), 11);

    let past = node.ok("chain 2000..");
    assert_eq!(past["length"], length);
    assert!(blocks(&past).is_empty());
    node.quit(Duration::from_secs(10));
}
