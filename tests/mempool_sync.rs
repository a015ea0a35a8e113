//! Pending transactions reach nodes that connect after they were gossiped: every new connection
//! asks the peer for its mempool over the sync protocol, and what comes back is checked exactly
//! like gossip (an invalid transaction is not kept and costs its sender).

mod common;
#[path = "common/raw_peer.rs"]
mod raw_peer;

use std::thread;
use std::time::{Duration, Instant};

use common::{block_at, txids_of, unique_network, NodeOptions, TestNode, DIFFICULTY};
use ed25519_dalek::SigningKey;
use gossipchain::ledger::encode::encode;
use gossipchain::ledger::{Address, NetworkParams, Transaction};
use gossipchain::net::protocol::{blocks_topic, txs_topic, Status, SyncResponse};
use libp2p::{identity, Multiaddr};
use raw_peer::{BlocksAnswer, PeerEvent, RawOptions, RawPeer};

/// An address nobody holds the key of.
const STRANGER: &str = "feedfacefeedfacefeedfacefeedfacefeedface";

const WAIT: Duration = Duration::from_secs(30);

/// Blocks mined before the late node starts: more than one sync batch (256), so that the
/// transactions spend coins the late node has only once it has caught up completely.
const CHAIN_LENGTH: u64 = 300;

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

fn tx_accepted_count(node: &TestNode, txid: &str) -> usize {
    node.events()
        .iter()
        .filter(|e| e["event"] == "tx_accepted" && e["txid"] == txid)
        .count()
}

#[test]
fn a_node_that_connects_late_learns_the_pending_transactions_and_mines_them() {
    let network = unique_network("mempool");
    let mut alone = TestNode::start("alone", NodeOptions::loopback(&network));
    alone.mine(CHAIN_LENGTH);
    let alone_id = alone.peer_id();
    let alone_address = alone.address();
    let funds = alone.balance_of(&alone_address);
    // Two transfers from one sender, the later nonce paying the higher fee: the answer must
    // still bring them in an order the receiver's mempool takes. Together they spend all but
    // one coin, most of it mined after the first sync batch.
    let first = alone.send_tx(STRANGER, funds - 10, 1);
    let second = alone.send_tx(STRANGER, 5, 3);
    let pending = sorted(vec![first.clone(), second.clone()]);
    assert_eq!(sorted(alone.mempool_txids()), pending);

    // Published while nobody listened; the late node learns of them by asking.
    let mut opts = NodeOptions::loopback(&network);
    opts.peers.push(alone.dial_addr());
    let mut late = TestNode::start("late", opts);
    let started = Instant::now();
    late.wait_until(|s| s["mempool"] == 2, WAIT);
    eprintln!(
        "pending transactions arrived {:?} after start",
        started.elapsed()
    );
    assert_eq!(sorted(late.mempool_txids()), pending);
    let accepted = late.wait_event(
        |e| e["event"] == "tx_accepted" && e["txid"] == first.as_str(),
        WAIT,
    );
    assert_eq!(accepted["source"], alone_id.as_str(), "{accepted}");
    assert_eq!(
        late.height(),
        CHAIN_LENGTH,
        "it synced the chain the transactions spend from"
    );

    // Restarted (its mempool is not stored), it asks again on its new connection.
    late.restart();
    late.wait_until(|s| s["mempool"] == 2, WAIT);
    assert_eq!(sorted(late.mempool_txids()), pending);
    assert_eq!(tx_accepted_count(&late, &first), 2);
    assert_eq!(tx_accepted_count(&late, &second), 2);

    // It mines them, and the node that had them sees them confirmed.
    let mined = late.mine(1);
    let hash = mined["hash"].as_str().unwrap_or_default().to_string();
    assert_eq!(mined["height"], CHAIN_LENGTH + 1);
    let block = block_at(&late.chain(), CHAIN_LENGTH + 1);
    let included = sorted(txids_of(&block["transactions"]));
    assert!(
        pending.iter().all(|t| included.contains(t)),
        "the block holds {included:?}, not all of {pending:?}"
    );
    alone.wait_until(|s| s["tip"] == hash.as_str() && s["mempool"] == 0, WAIT);
    assert_eq!(late.balance_of(STRANGER), funds - 5);
    assert_eq!(alone.balance_of(STRANGER), funds - 5);
    assert_eq!(alone.balance_of(&alone_address), 1);
}

/// A status that never tempts the node to sync: genesis only, no work.
fn humble_status(genesis: gossipchain::ledger::BlockHash) -> Status {
    Status {
        genesis,
        height: 0,
        tip: genesis,
        total_work: 0,
    }
}

#[test]
fn invalid_transactions_in_a_mempool_answer_are_not_kept_and_cost_the_peer() {
    let network = unique_network("mempool-bad");
    let params = NetworkParams::new(&network, DIFFICULTY).expect("valid test network");
    let genesis = params.genesis_hash();
    let topics = [blocks_topic(&genesis), txs_topic(&genesis)];
    let mut node = TestNode::start("honest", NodeOptions::loopback(&network));
    node.mine(1);
    let addr: Multiaddr = node.dial_addr().parse().expect("node multiaddr");
    let stranger: Address = STRANGER.parse().expect("address");

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let keypair = identity::Keypair::generate_ed25519();
    let empty_blocks = || BlocksAnswer::Bytes(encode(&SyncResponse::Blocks(Vec::new())));

    // First connection: the answer holds a coinbase, which no mempool takes, then a transfer.
    let key = SigningKey::from_bytes(&[3u8; 32]);
    let zero = Transaction::sign_transfer(&key, &genesis.into(), stranger, 0, 0, 0);
    let answer = SyncResponse::Mempool(vec![
        Transaction::coinbase(2, stranger, 50),
        Transaction::sign_transfer(&key, &genesis.into(), stranger, 1, 0, 0),
    ]);
    let mut liar = RawPeer::start_with(
        &rt,
        "liar",
        &topics,
        humble_status(genesis),
        empty_blocks(),
        RawOptions {
            mempool: encode(&answer),
            keypair: keypair.clone(),
            ..RawOptions::default()
        },
    );
    liar.dial(&addr);
    liar.wait(
        |e| {
            matches!(
                e,
                PeerEvent::Request {
                    kind: "get_mempool",
                    ..
                }
            )
        },
        WAIT,
    );
    thread::sleep(Duration::from_millis(500));
    assert_eq!(node.status()["mempool"], 0);
    assert_eq!(node.peer_count(), 1, "one invalid answer does not ban yet");

    // The same peer comes back on a new connection, is asked again, and its second invalid
    // answer (a zero-amount transfer) reaches the ban score.
    drop(liar);
    node.wait_until(|s| s["peers"] == 0, WAIT);
    let mut again = RawPeer::start_with(
        &rt,
        "liar-again",
        &topics,
        humble_status(genesis),
        empty_blocks(),
        RawOptions {
            mempool: encode(&SyncResponse::Mempool(vec![zero])),
            keypair,
            ..RawOptions::default()
        },
    );
    again.dial(&addr);
    again.wait(
        |e| {
            matches!(
                e,
                PeerEvent::Request {
                    kind: "get_mempool",
                    ..
                }
            )
        },
        WAIT,
    );
    again.wait(|e| matches!(e, PeerEvent::Disconnected(_)), WAIT);
    node.wait_until(|s| s["peers"] == 0 && s["mempool"] == 0, WAIT);
    node.drain();
    assert!(
        !node.events().iter().any(|e| e["event"] == "tx_accepted"),
        "nothing from the liar was accepted"
    );
    // The node keeps working.
    node.mine(1);
    assert_eq!(node.height(), 2);
}
