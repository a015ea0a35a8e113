//! A hostile peer sends garbage, oversized messages and well-encoded but invalid blocks and
//! transactions, over gossip and over the sync protocol. The honest nodes stay up, keep their
//! chains, forward nothing invalid (neither an honest node nor a passive libp2p observer behind
//! the first one ever sees it) and keep working: later valid blocks still propagate.

mod common;
#[path = "common/raw_peer.rs"]
mod raw_peer;

use std::str::FromStr;
use std::time::Duration;

use common::{now_ms, unique_network, NodeOptions, TestNode, DIFFICULTY};
use ed25519_dalek::SigningKey;
use gossipchain::ledger::block::{compute_tx_root, meets_difficulty};
use gossipchain::ledger::encode::encode;
use gossipchain::ledger::transaction::Signature;
use gossipchain::ledger::{Address, Block, BlockHash, BlockHeader, NetworkParams, Transaction};
use gossipchain::net::protocol::{
    blocks_topic, decode_gossip_block, decode_response, txs_topic, Status, SyncResponse,
    MAX_REQUEST_BYTES,
};
use libp2p::gossipsub::IdentTopic;
use libp2p::Multiaddr;
use raw_peer::{BlocksAnswer, PeerEvent, RawOptions, RawPeer};

/// An address nobody holds the key of.
const STRANGER: &str = "feedfacefeedfacefeedfacefeedfacefeedface";

const WAIT: Duration = Duration::from_secs(20);

/// Whether a built block's proof of work is made to hold or to fail.
#[derive(Clone, Copy, PartialEq)]
enum Pow {
    Valid,
    Invalid,
}

/// Builds blocks for one network, paying one miner.
struct Builder<'a> {
    params: &'a NetworkParams,
    miner: Address,
}

impl Builder<'_> {
    /// A block on `parent` at `height` with `transfers`; the coinbase pays the reward, the fees
    /// and `coinbase_extra`. `salt` shifts the timestamp so that every block built here is
    /// distinct.
    fn block(
        &self,
        parent: BlockHash,
        height: u64,
        transfers: Vec<Transaction>,
        coinbase_extra: u64,
        pow: Pow,
        salt: u64,
    ) -> Block {
        let fees: u64 = transfers.iter().map(Transaction::fee).sum();
        let mut transactions = vec![Transaction::coinbase(
            height,
            self.miner,
            self.params.reward + fees + coinbase_extra,
        )];
        transactions.extend(transfers);
        let txids: Vec<_> = transactions.iter().map(Transaction::compute_txid).collect();
        let mut header = BlockHeader {
            height,
            prev_hash: parent,
            tx_root: compute_tx_root(&txids),
            timestamp: now_ms() + salt,
            difficulty: self.params.difficulty,
            nonce: 0,
        };
        while meets_difficulty(&header.block_hash(), self.params.difficulty) != (pow == Pow::Valid)
        {
            header.nonce += 1;
        }
        Block {
            header,
            transactions,
        }
    }
}

/// `tx` with one bit of its signature flipped.
fn with_bad_signature(tx: Transaction) -> Transaction {
    match tx {
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

/// Pseudo-random bytes that decode as nothing in particular.
fn garbage(len: usize, seed: u8) -> Vec<u8> {
    let mut x = u32::from(seed).wrapping_mul(2_654_435_761) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            (x >> 24) as u8 | 0x80
        })
        .collect()
}

fn parse_hash(s: &str) -> BlockHash {
    BlockHash::from_str(s).unwrap_or_else(|e| panic!("bad hash {s:?}: {e:?}"))
}

/// A status that never tempts the node to sync: genesis only, no work.
fn humble_status(genesis: BlockHash) -> Status {
    Status {
        genesis,
        height: 0,
        tip: genesis,
        total_work: 0,
    }
}

/// A status claiming far more work than the node has, so that it asks for blocks.
fn boastful_status(genesis: BlockHash, height: u64) -> Status {
    Status {
        genesis,
        height: height + 50,
        tip: BlockHash([0x5a; 32]),
        total_work: u128::MAX / 4,
    }
}

#[test]
fn a_hostile_peer_cannot_disturb_honest_nodes_or_get_anything_invalid_forwarded() {
    let network = unique_network("hostile");
    let params = NetworkParams::new(&network, DIFFICULTY).expect("valid test network");
    let genesis = params.genesis_hash();
    let blocks = blocks_topic(&genesis);
    let txs = txs_topic(&genesis);
    let topics = [blocks.clone(), txs.clone()];

    // Honest A, and honest C connected to A only.
    let mut a = TestNode::start("honest-a", NodeOptions::loopback(&network));
    let mut c = TestNode::start("honest-c", NodeOptions::loopback(&network));
    assert_eq!(
        a.hash_at(0),
        genesis.to_hex(),
        "the test derives the node's network parameters"
    );
    let a_dial = a.dial_addr();
    let a_addr: Multiaddr = a_dial.parse().expect("node multiaddr");
    c.dial(&a_dial);
    c.wait_until(|s| s["peers"] == 1, WAIT);
    a.mine(2);
    let tip = a.tip();
    c.wait_until(|s| s["tip"] == tip.as_str(), WAIT);
    let a_peer: libp2p::PeerId = a.peer_id().parse().expect("peer id");

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");

    // A passive observer behind A records everything A forwards.
    let mut observer = RawPeer::start(
        &rt,
        "observer",
        &topics,
        humble_status(genesis),
        BlocksAnswer::Bytes(encode(&SyncResponse::Blocks(Vec::new()))),
    );
    observer.dial(&a_addr);
    observer.wait_subscribed(a_peer, &blocks, WAIT);
    observer.wait_subscribed(a_peer, &txs, WAIT);
    a.wait_until(|s| s["peers"] == 2, WAIT);

    // Control: a valid block and a valid transaction from a raw peer are accepted and
    // forwarded, so the path the attacks take is open. The block pays key K, which then funds
    // the transactions below.
    let k = SigningKey::from_bytes(&[7u8; 32]);
    let k_addr = gossipchain::ledger::PublicKey(k.verifying_key().to_bytes()).address();
    let stranger: Address = STRANGER.parse().expect("address");
    let builder = Builder {
        params: &params,
        miner: k_addr,
    };
    let status = a.status();
    let height = status["height"].as_u64().expect("height");
    let v1 = builder.block(
        parse_hash(status["tip"].as_str().expect("tip")),
        height + 1,
        Vec::new(),
        0,
        Pow::Valid,
        0,
    );
    let v1_hash = v1.block_hash().to_hex();
    let mut friend = RawPeer::start(
        &rt,
        "friend",
        &topics,
        humble_status(genesis),
        BlocksAnswer::Hang,
    );
    friend.dial(&a_addr);
    friend.wait_subscribed(a_peer, &blocks, WAIT);
    friend.wait_subscribed(a_peer, &txs, WAIT);
    friend.publish(&blocks, encode(&v1));
    a.wait_until(|s| s["tip"] == v1_hash.as_str(), WAIT);
    c.wait_until(|s| s["tip"] == v1_hash.as_str(), WAIT);
    let friend_id = friend.peer_id.to_string();
    let accepted = a.wait_event(
        |e| e["event"] == "block_accepted" && e["hash"] == v1_hash.as_str(),
        WAIT,
    );
    assert_eq!(accepted["source"], friend_id.as_str(), "{accepted}");
    let v1_bytes = encode(&v1);
    observer.wait(
        |e| matches!(e, PeerEvent::Message { data, .. } if *data == v1_bytes),
        WAIT,
    );
    let good_tx = Transaction::sign_transfer(&k, &genesis.into(), stranger, 10, 1, 0);
    let good_txid = good_tx.compute_txid().to_hex();
    friend.publish(&txs, encode(&good_tx));
    c.wait_event(
        |e| e["event"] == "tx_accepted" && e["txid"] == good_txid.as_str(),
        WAIT,
    );
    let good_tx_bytes = encode(&good_tx);
    observer.wait(
        |e| matches!(e, PeerEvent::Message { data, .. } if *data == good_tx_bytes),
        WAIT,
    );

    // The attacks, each from a fresh identity (an honest node may ban a peer at its first
    // offence, which would stop the rest from reaching it).
    let parent = v1.block_hash();
    let h = v1.height() + 1;
    let k_spend =
        |amount, nonce| Transaction::sign_transfer(&k, &genesis.into(), stranger, amount, 1, nonce);
    let mut invalid_blocks: Vec<(&str, Block)> = vec![
        (
            "bad proof of work",
            builder.block(parent, h, vec![], 0, Pow::Invalid, 1),
        ),
        (
            "bad signature",
            builder.block(
                parent,
                h,
                vec![with_bad_signature(k_spend(5, 0))],
                0,
                Pow::Valid,
                2,
            ),
        ),
        (
            "overspend",
            builder.block(parent, h, vec![k_spend(1_000, 0)], 0, Pow::Valid, 3),
        ),
        (
            "coinbase pays too much",
            builder.block(parent, h, vec![], 1_000, Pow::Valid, 4),
        ),
    ];
    let mut gossip: Vec<(&str, IdentTopic, Vec<u8>)> = invalid_blocks
        .iter()
        .map(|(what, b)| (*what, blocks.clone(), encode(b)))
        .collect();
    gossip.extend([
        (
            "overspending transaction",
            txs.clone(),
            encode(&k_spend(1_000, 1)),
        ),
        (
            "transaction with a bad signature",
            txs.clone(),
            encode(&with_bad_signature(k_spend(3, 1))),
        ),
        ("garbage block", blocks.clone(), garbage(300, 1)),
        ("garbage transaction", txs.clone(), garbage(150, 2)),
        ("oversized transaction", txs.clone(), garbage(4 * 1024, 3)),
        (
            "block over the block cap",
            blocks.clone(),
            garbage(params.max_block_bytes + 300 * 1024, 4),
        ),
        (
            "message over the gossip cap",
            blocks.clone(),
            garbage(3 * params.max_block_bytes + 1024, 5),
        ),
    ]);
    let mut attackers = Vec::new();
    for (i, (what, _, _)) in gossip.iter().enumerate() {
        let p = RawPeer::start(
            &rt,
            &format!("gossip attacker {i} ({what})"),
            &topics,
            humble_status(genesis),
            BlocksAnswer::Hang,
        );
        p.dial(&a_addr);
        attackers.push(p);
    }
    for (p, (_, topic, data)) in attackers.iter_mut().zip(&gossip) {
        p.wait_subscribed(a_peer, topic, WAIT);
        p.publish(topic, data.clone());
    }

    // Over sync: each boasts more work, then answers A's block request with poison.
    let sync_blocks: Vec<(&str, Block)> = vec![
        (
            "sync: bad proof of work",
            builder.block(parent, h, vec![], 0, Pow::Invalid, 11),
        ),
        (
            "sync: bad signature",
            builder.block(
                parent,
                h,
                vec![with_bad_signature(k_spend(5, 0))],
                0,
                Pow::Valid,
                12,
            ),
        ),
        (
            "sync: overspend",
            builder.block(parent, h, vec![k_spend(2_000, 0)], 0, Pow::Valid, 13),
        ),
        (
            "sync: unknown parent",
            builder.block(BlockHash([0x77; 32]), h, vec![], 0, Pow::Valid, 14),
        ),
    ];
    // Headers first: the poisoned blocks' headers are announced (a bad proof of work or an
    // unknown parent is caught there), then their bodies are served.
    let mut answers: Vec<(String, BlocksAnswer, BlocksAnswer)> = sync_blocks
        .iter()
        .map(|(what, b)| {
            (
                what.to_string(),
                BlocksAnswer::Bytes(encode(&SyncResponse::Headers(vec![b.header.clone()]))),
                BlocksAnswer::Bytes(encode(&SyncResponse::Blocks(vec![b.clone().into()]))),
            )
        })
        .collect();
    for (what, answer) in [
        ("sync: garbage", BlocksAnswer::Bytes(garbage(500, 6))),
        (
            "sync: oversized",
            BlocksAnswer::Bytes(garbage(4 * params.max_block_bytes, 7)),
        ),
        ("sync: never answers", BlocksAnswer::Hang),
    ] {
        answers.push((what.into(), answer.clone(), answer));
    }
    let tip_height = v1.height();
    let mut sync_attackers = Vec::new();
    for (what, headers, answer) in answers {
        let mut p = RawPeer::start_with(
            &rt,
            &what,
            &topics,
            boastful_status(genesis, tip_height),
            answer,
            RawOptions {
                headers,
                ..RawOptions::default()
            },
        );
        p.dial(&a_addr);
        let asked = p.wait(
            |e| {
                matches!(
                    e,
                    PeerEvent::Request {
                        kind: "get_headers",
                        ..
                    }
                )
            },
            WAIT,
        );
        assert!(matches!(asked, PeerEvent::Request { .. }));
        // While a request hangs or poison is being checked, A keeps answering at once.
        a.request_within("status", Duration::from_secs(3));
        sync_attackers.push(p);
    }
    invalid_blocks.extend(sync_blocks);

    // Garbage and oversized sync requests get no answer, cost their sender 50 each (so two of
    // them ban it and A closes the connection), and A carries on.
    let mut asker = RawPeer::start(
        &rt,
        "sync: bad requests",
        &topics,
        humble_status(genesis),
        BlocksAnswer::Hang,
    );
    asker.dial(&a_addr);
    asker.wait(
        |e| matches!(e, PeerEvent::Connected(p) if *p == a_peer),
        WAIT,
    );
    for bad in [garbage(200, 8), garbage(MAX_REQUEST_BYTES * 8, 9)] {
        let answer = asker.request(a_peer, bad);
        assert!(
            answer
                .as_ref()
                .map_or(true, |b| decode_response(b, usize::MAX).is_err()),
            "A answered a bad request: {answer:?}"
        );
        a.request_within("status", Duration::from_secs(3));
    }
    asker.wait(
        |e| matches!(e, PeerEvent::Disconnected(p) if *p == a_peer),
        WAIT,
    );
    drop(asker);

    // A is unharmed: same tip, still answering.
    assert!(a.is_alive() && c.is_alive());
    assert_eq!(a.tip(), v1_hash);

    // A keeps working: it mines a block (with the valid transaction). Once the observer has
    // it, anything A wrongly forwarded before it has had time to arrive too.
    let v2 = a.mine(1);
    let v2_hash = v2["hash"].as_str().expect("hash").to_string();
    observer.wait(
        |e| {
            matches!(e, PeerEvent::Message { data, .. }
                if decode_gossip_block(data, &params).is_ok_and(|b| b.block_hash().to_hex() == v2_hash))
        },
        WAIT,
    );
    std::thread::sleep(Duration::from_millis(500));

    // Nothing invalid reached the observer behind A.
    let seen: Vec<Vec<u8>> = observer
        .received(&blocks)
        .into_iter()
        .chain(observer.received(&txs))
        .collect();
    for (what, _, data) in &gossip {
        assert!(
            !seen.contains(data),
            "A forwarded the {what} to the observer"
        );
    }
    for (what, block) in &invalid_blocks {
        assert!(
            !seen.contains(&encode(block)),
            "A forwarded the {what} block to the observer"
        );
    }

    // Nor the honest node behind A, which is still connected and follows A.
    assert!(
        c.peer_count() >= 1,
        "C lost its connection to A (did A forward something C found invalid?)"
    );
    c.wait_until(|s| s["tip"] == v2_hash.as_str(), WAIT);
    for (what, block) in &invalid_blocks {
        let hash = block.block_hash().to_hex();
        let reply = c.request(&format!("block {hash}"));
        assert_eq!(reply["ok"], false, "C knows the {what} block: {reply}");
        assert!(
            !c.events().iter().any(|e| e["hash"] == hash.as_str()),
            "C reported the {what} block"
        );
    }
    for e in c.events() {
        if e["event"] == "tx_accepted" {
            assert_eq!(
                e["txid"],
                good_txid.as_str(),
                "C accepted an invalid transaction: {e}"
            );
        }
    }

    // A adopted nothing invalid.
    let a_chain: Vec<String> = a
        .chain()
        .iter()
        .filter_map(|b| b["hash"].as_str().map(str::to_string))
        .collect();
    for (what, block) in &invalid_blocks {
        assert!(
            !a_chain.contains(&block.block_hash().to_hex()),
            "A adopted the {what} block"
        );
    }

    // A valid block from a well-behaved raw peer is still accepted and reaches C.
    let v3 = builder.block(parse_hash(&v2_hash), h + 1, Vec::new(), 0, Pow::Valid, 20);
    let v3_hash = v3.block_hash().to_hex();
    observer.publish(&blocks, encode(&v3));
    a.wait_until(|s| s["tip"] == v3_hash.as_str(), WAIT);
    c.wait_until(|s| s["tip"] == v3_hash.as_str(), WAIT);
    assert_eq!(c.balance_of(STRANGER), 10);
    assert_eq!(a.balance_of(STRANGER), 10);
    assert!(a.mempool_txids().is_empty() && c.mempool_txids().is_empty());
    assert!(a.non_json_lines().is_empty() && c.non_json_lines().is_empty());

    drop(sync_attackers);
    drop(attackers);
    drop(friend);
    drop(observer);
    rt.shutdown_timeout(Duration::from_secs(2));
}
