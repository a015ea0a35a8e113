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

/// A `verify` or `reindex` run: exit status, its JSON line, its stderr.
fn run(node: &mut TestNode, subcommand: &str) -> (bool, serde_json::Value, String) {
    let out = node.maintain(subcommand);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let line = serde_json::from_str(stdout.trim()).unwrap_or(serde_json::Value::Null);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    (out.status.success(), line, stderr)
}

/// Opens the node's store with redb itself, behind gossipchain's back.
fn raw_store(node: &TestNode) -> redb::Database {
    redb::Database::open(node.data_dir().join("chain.redb")).expect("the store opens with redb")
}

#[test]
fn verify_passes_on_a_node_store_names_a_forged_account_and_reindex_repairs_it() {
    let mut node = TestNode::start("verified", NodeOptions::loopback(&unique_network("verify")));
    node.mine(3);
    node.send_tx("00112233445566778899aabbccddeeff00112233", 7, 1);
    node.mine(2);
    let (address, tip) = (node.address(), node.tip());
    let balance = node.balance_of(&address);
    node.quit(Duration::from_secs(10));

    let (ok, line, stderr) = run(&mut node, "verify");
    assert!(ok, "verify failed on a good store: {stderr}");
    assert_eq!(line["result"], "verified", "{line}");
    assert_eq!(line["height"], 5, "{line}");
    assert_eq!(line["tip"], tip.as_str(), "{line}");

    // Forge this node's balance in the stored state.
    {
        let db = raw_store(&node);
        let txn = db.begin_write().expect("write");
        {
            let table: redb::TableDefinition<[u8; 20], [u8; 16]> =
                redb::TableDefinition::new("accounts");
            let mut accounts = txn.open_table(table).expect("accounts table");
            let mut key = [0u8; 20];
            hex::decode_to_slice(&address, &mut key).expect("hex address");
            let mut value = [0u8; 16];
            value[..8].copy_from_slice(&(balance + 1_000_000).to_le_bytes());
            value[8..].copy_from_slice(&1u64.to_le_bytes());
            accounts.insert(key, value).expect("insert");
        }
        txn.commit().expect("commit");
    }
    // The node reads the state as stored: the forged balance shows (nothing is replayed).
    node.restart();
    assert_eq!(node.balance_of(&address), balance + 1_000_000);
    node.quit(Duration::from_secs(10));

    let (ok, _, stderr) = run(&mut node, "verify");
    assert!(!ok, "verify passed a forged account");
    assert!(
        stderr.contains("stored account of") && stderr.contains(&address),
        "{stderr}"
    );

    let (ok, line, stderr) = run(&mut node, "reindex");
    assert!(ok, "reindex failed: {stderr}");
    assert_eq!(line["result"], "reindexed", "{line}");
    let (ok, _, stderr) = run(&mut node, "verify");
    assert!(ok, "verify after reindex: {stderr}");
    node.restart();
    assert_eq!(node.balance_of(&address), balance);
    assert_eq!(node.tip(), tip);
}

#[test]
fn a_format_one_data_directory_is_refused_with_advice_and_reindex_upgrades_it() {
    let network = unique_network("format1");
    let mut node = TestNode::start("old", NodeOptions::loopback(&network));
    node.mine(4);
    let (address, tip) = (node.address(), node.tip());
    let balance = node.balance_of(&address);
    node.quit(Duration::from_secs(10));
    // Back to format 1: no accounts, no undo data.
    {
        let db = raw_store(&node);
        let txn = db.begin_write().expect("write");
        for name in ["accounts", "undo"] {
            let table: redb::TableDefinition<[u8; 1], [u8; 1]> = redb::TableDefinition::new(name);
            txn.delete_table(table).expect("delete");
        }
        {
            let meta: redb::TableDefinition<&str, &[u8]> = redb::TableDefinition::new("meta");
            let mut meta = txn.open_table(meta).expect("meta");
            meta.insert("format", 1u32.to_le_bytes().as_slice())
                .expect("format");
        }
        txn.commit().expect("commit");
    }
    let (ok, _, stderr) = run(&mut node, "verify");
    assert!(!ok);
    assert!(stderr.contains("gossipchain reindex"), "{stderr}");
    // The node itself refuses to start on it, with the same advice, and exit status 1.
    let refused = std::process::Command::new(common::binary())
        .arg("--data-dir")
        .arg(node.data_dir())
        .args(["--network", &network, "--difficulty"])
        .arg(common::DIFFICULTY.to_string())
        .args(["--no-mdns", "--no-http", "--listen", "/ip4/127.0.0.1/tcp/0"])
        .stdin(std::process::Stdio::null())
        .output()
        .expect("the node runs");
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("format 1")
            && stderr.contains("gossipchain reindex")
            && !stderr.contains("panicked"),
        "{stderr}"
    );
    let (ok, line, stderr) = run(&mut node, "reindex");
    assert!(ok, "reindex failed: {stderr}");
    assert_eq!(line["height"], 4, "{line}");
    node.restart();
    assert_eq!(node.tip(), tip);
    assert_eq!(node.balance_of(&address), balance);
}
