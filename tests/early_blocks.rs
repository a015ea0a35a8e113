//! Blocks from the future cost the node a header check, not a signature check, and the peer
//! relaying them nothing (issue 10, findings 1 and 4): a raw peer gossips blocks three hours
//! ahead whose transfers carry broken signatures; the node ignores them without blame, and the
//! same peer's next valid block is still accepted from it.

mod common;
#[path = "common/raw_peer.rs"]
mod raw_peer;

use std::time::Duration;

use common::{now_ms, unique_network, NodeOptions, TestNode, DIFFICULTY, THREE_HOURS_MS};
use ed25519_dalek::SigningKey;
use gossipchain::ledger::block::{compute_tx_root, meets_difficulty};
use gossipchain::ledger::encode::encode;
use gossipchain::ledger::transaction::Signature;
use gossipchain::ledger::{Address, Block, BlockHash, BlockHeader, NetworkParams, Transaction};
use gossipchain::net::protocol::{blocks_topic, txs_topic, Status, SyncResponse};
use libp2p::Multiaddr;
use raw_peer::{BlocksAnswer, RawPeer};

const WAIT: Duration = Duration::from_secs(20);

/// A mined block on `parent` at `height` paying `miner`, holding `transfers`, at `timestamp`.
fn block(
    params: &NetworkParams,
    parent: BlockHash,
    height: u64,
    miner: Address,
    transfers: Vec<Transaction>,
    timestamp: u64,
) -> Block {
    let fees: u64 = transfers.iter().map(Transaction::fee).sum();
    let mut transactions = vec![Transaction::coinbase(height, miner, params.reward + fees)];
    transactions.extend(transfers);
    let txids: Vec<_> = transactions.iter().map(Transaction::compute_txid).collect();
    let mut header = BlockHeader {
        height,
        prev_hash: parent,
        tx_root: compute_tx_root(&txids),
        timestamp,
        difficulty: params.difficulty,
        nonce: 0,
    };
    while !meets_difficulty(&header.block_hash(), params.difficulty) {
        header.nonce += 1;
    }
    Block {
        header,
        transactions,
    }
}

/// A transfer from `key` whose signature has one bit flipped.
fn broken_transfer(key: &SigningKey, params: &NetworkParams, nonce: u64) -> Transaction {
    let to = Address([0xfe; 20]);
    match Transaction::sign_transfer(key, &params.network_id(), to, 1, 0, nonce) {
        Transaction::Transfer { body, signature } => {
            let mut sig = signature.0;
            sig[10] ^= 0x01;
            Transaction::Transfer {
                body,
                signature: Signature(sig),
            }
        }
        other => other,
    }
}

#[test]
fn a_peer_relaying_blocks_from_the_future_with_broken_signatures_is_not_blamed() {
    let network = unique_network("early");
    let params = NetworkParams::new(&network, DIFFICULTY).expect("valid test network");
    let genesis = params.genesis_hash();
    let blocks = blocks_topic(&genesis);
    let topics = [blocks.clone(), txs_topic(&genesis)];

    let mut node = TestNode::start("node", NodeOptions::loopback(&network));
    assert_eq!(node.hash_at(0), genesis.to_hex());
    let node_addr: Multiaddr = node.dial_addr().parse().expect("node multiaddr");
    let node_peer: libp2p::PeerId = node.peer_id().parse().expect("peer id");

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let humble = Status {
        genesis,
        height: 0,
        tip: genesis,
        total_work: 0,
    };
    let mut relay = RawPeer::start(
        &rt,
        "relay",
        &topics,
        humble,
        BlocksAnswer::Bytes(encode(&SyncResponse::Blocks(Vec::new()))),
    );
    relay.dial(&node_addr);
    relay.wait_subscribed(node_peer, &blocks, WAIT);
    let relay_id = relay.peer_id.to_string();
    let miner = Address([0x11; 20]);

    // Control: a valid block from the relay is accepted from it.
    let b1 = block(&params, genesis, 1, miner, Vec::new(), now_ms());
    relay.publish(&blocks, encode(&b1));
    let b1_hash = b1.block_hash().to_hex();
    let accepted = node.wait_event(
        |e| e["event"] == "block_accepted" && e["hash"] == b1_hash.as_str(),
        WAIT,
    );
    assert_eq!(accepted["source"], relay_id.as_str(), "{accepted}");

    // Twenty blocks three hours ahead, each with 200 transfers whose signatures are broken.
    // Checked signatures first, the first would ban the relay (an invalid block, 100).
    let key = SigningKey::from_bytes(&[9u8; 32]);
    let ahead = now_ms() + THREE_HOURS_MS;
    for i in 0..20u64 {
        let transfers = (0..200)
            .map(|n| broken_transfer(&key, &params, n))
            .collect();
        let early = block(&params, b1.block_hash(), 2, miner, transfers, ahead + i);
        relay.publish(&blocks, encode(&early));
    }

    // The relay is still a peer in good standing: its next valid block is accepted from it.
    let b2 = block(&params, b1.block_hash(), 2, miner, Vec::new(), now_ms());
    relay.publish(&blocks, encode(&b2));
    let b2_hash = b2.block_hash().to_hex();
    let accepted = node.wait_event(
        |e| e["event"] == "block_accepted" && e["hash"] == b2_hash.as_str(),
        WAIT,
    );
    assert_eq!(accepted["source"], relay_id.as_str(), "{accepted}");
    assert_eq!(node.height(), 2);
    assert_eq!(node.status()["peers"], 1, "the relay is still connected");
}
