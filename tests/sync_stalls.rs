//! Peers that cannot stall a sync: raw libp2p peers that claim enormous work and then show
//! nothing new (headers we know, no headers, no answer at all) do not keep a node from catching
//! up with an honest peer; a peer whose headers are valid but whose bodies are not is banned and
//! the bodies come from the honest peer.

mod common;
#[path = "common/http_client.rs"]
mod http_client;
#[path = "common/raw_peer.rs"]
mod raw_peer;

use std::time::Duration;

use common::{runtime, unique_network, NodeOptions, TestNode};
use gossipchain::ledger::encode::{decode, encode};
use gossipchain::ledger::{Block, BlockHash, BlockHeader, NetworkParams};
use gossipchain::net::protocol::{
    blocks_topic, txs_topic, Status, SyncRequest, SyncResponse, MAX_HEADERS_PER_RESPONSE,
};
use libp2p::{Multiaddr, PeerId};
use raw_peer::{BlocksAnswer, PeerEvent, RawOptions, RawPeer};

const WAIT: Duration = Duration::from_secs(20);

fn status(genesis: BlockHash, height: u64, tip: BlockHash, total_work: u128) -> Status {
    Status {
        genesis,
        height,
        tip,
        total_work,
    }
}

/// A raw peer that only asks: it fetches `node`'s headers from genesis and the first blocks.
fn fetch_chain(
    rt: &tokio::runtime::Runtime,
    node: &mut TestNode,
    genesis: BlockHash,
    topics: &[libp2p::gossipsub::IdentTopic],
    bodies: usize,
) -> (Vec<BlockHeader>, Vec<Block>) {
    let node_peer: PeerId = node.peer_id().parse().expect("peer id");
    let addr: Multiaddr = node.dial_addr().parse().expect("multiaddr");
    let mut probe = RawPeer::start(
        rt,
        "probe",
        topics,
        status(genesis, 0, genesis, 1),
        BlocksAnswer::Hang,
    );
    probe.dial(&addr);
    probe.wait(
        |e| matches!(e, PeerEvent::Connected(p) if *p == node_peer),
        WAIT,
    );
    let ask = SyncRequest::GetHeaders {
        locator: vec![genesis],
        max_headers: MAX_HEADERS_PER_RESPONSE,
    };
    let bytes = probe.request(node_peer, encode(&ask)).expect("headers");
    let Ok(SyncResponse::Headers(headers)) = decode(&bytes, usize::MAX) else {
        panic!("a headers answer");
    };
    let hashes = headers
        .iter()
        .take(bodies)
        .map(BlockHeader::block_hash)
        .collect();
    let bytes = probe
        .request(node_peer, encode(&SyncRequest::GetBlocks { hashes }))
        .expect("blocks");
    let Ok(SyncResponse::Blocks(blocks)) = decode(&bytes, usize::MAX) else {
        panic!("a blocks answer");
    };
    (
        headers,
        blocks
            .into_iter()
            .map(std::sync::Arc::unwrap_or_clone)
            .collect(),
    )
}

#[test]
fn peers_that_claim_enormous_work_and_show_nothing_new_do_not_keep_a_node_from_catching_up() {
    let network = unique_network("stall");
    let params = NetworkParams::new(&network, common::DIFFICULTY).expect("test network");
    let genesis = params.genesis_hash();
    let topics = [blocks_topic(&genesis), txs_topic(&genesis)];
    let rt = runtime();

    let mut late = TestNode::start("late", NodeOptions::loopback(&network));
    late.mine(5);
    let (known, _) = fetch_chain(&rt, &mut late, genesis, &topics, 1);
    assert_eq!(known.len(), 5);
    let late_addr: Multiaddr = late.dial_addr().parse().expect("multiaddr");

    // Each claims enormous work, then: headers the node has, no headers, or no answer at all.
    let liars = [
        (
            "known headers",
            BlocksAnswer::Bytes(encode(&SyncResponse::Headers(known))),
        ),
        (
            "empty headers",
            BlocksAnswer::Bytes(encode(&SyncResponse::Headers(Vec::new()))),
        ),
        ("never answers", BlocksAnswer::Hang),
    ];
    let mut peers = Vec::new();
    for (what, headers) in liars {
        let mut p = RawPeer::start_with(
            &rt,
            what,
            &topics,
            status(genesis, 1_000_000, BlockHash([9; 32]), u128::MAX / 4),
            BlocksAnswer::Hang,
            RawOptions {
                headers,
                ..RawOptions::default()
            },
        );
        p.dial(&late_addr);
        p.wait(
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
        peers.push(p);
    }

    // An honest node with a heavier chain of its own.
    let mut honest = TestNode::start("honest", NodeOptions::loopback(&network));
    honest.mine(300);
    let tip = honest.tip();
    let honest_addr = honest.dial_addr();
    late.dial(&honest_addr);
    late.wait_until(|s| s["tip"] == tip.as_str(), Duration::from_secs(30));
    late.wait_event(|e| e["event"] == "sync_finished", WAIT);
    assert!(late.peer_count() >= 1);
    drop(peers);
    rt.shutdown_timeout(Duration::from_secs(2));
}

#[test]
fn a_peer_with_valid_headers_and_invalid_bodies_is_banned_and_the_bodies_come_from_another() {
    let network = unique_network("bad-bodies");
    let params = NetworkParams::new(&network, common::DIFFICULTY).expect("test network");
    let genesis = params.genesis_hash();
    let topics = [blocks_topic(&genesis), txs_topic(&genesis)];
    let rt = runtime();

    let mut honest = TestNode::start("honest", NodeOptions::loopback(&network));
    honest.mine(200);
    let (mut headers, mut blocks) = fetch_chain(&rt, &mut honest, genesis, &topics, 128);
    assert_eq!((headers.len(), blocks.len()), (200, 128));
    // The liar shows one run of headers, so it is asked for one run of bodies: its fixed
    // answer fits that request, and the broken body is what gets it banned.
    headers.truncate(blocks.len());
    // Same header, broken body: an extra coinbase in the first block.
    let extra = blocks[0].transactions[0].clone();
    blocks[0].transactions.push(extra);
    let last = headers.last().expect("headers").clone();
    let work: u128 = 1 + headers.iter().map(BlockHeader::work).sum::<u128>();

    let mut late = TestNode::start("late", NodeOptions::loopback(&network));
    let late_peer: PeerId = late.peer_id().parse().expect("peer id");
    let late_addr: Multiaddr = late.dial_addr().parse().expect("multiaddr");
    let mut liar = RawPeer::start_with(
        &rt,
        "liar",
        &topics,
        status(genesis, last.height, last.block_hash(), work),
        BlocksAnswer::Bytes(encode(&SyncResponse::Blocks(
            blocks.into_iter().map(std::sync::Arc::new).collect(),
        ))),
        RawOptions {
            headers: BlocksAnswer::Bytes(encode(&SyncResponse::Headers(headers))),
            ..RawOptions::default()
        },
    );
    liar.dial(&late_addr);
    liar.wait(
        |e| {
            matches!(
                e,
                PeerEvent::Request {
                    kind: "get_blocks",
                    ..
                }
            )
        },
        WAIT,
    );
    liar.wait(
        |e| matches!(e, PeerEvent::Disconnected(p) if *p == late_peer),
        WAIT,
    );
    assert_eq!(late.height(), 0, "nothing of the broken body was kept");
    // The refusal is counted in /metrics under the rule the body broke.
    let url = late.http_url();
    let metrics = String::from_utf8_lossy(&http_client::get(&url, "/metrics").body).into_owned();
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("gossipchain_blocks_rejected_total{") && !l.ends_with(" 0")),
        "no rejected block counted: {metrics}"
    );

    let tip = honest.tip();
    let honest_addr = honest.dial_addr();
    late.dial(&honest_addr);
    late.wait_until(|s| s["tip"] == tip.as_str(), Duration::from_secs(30));
    drop(liar);
    rt.shutdown_timeout(Duration::from_secs(2));
}
