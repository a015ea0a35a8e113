//! Whole-node attack scenarios with figures (issue 10, targets), shared by the release
//! benchmark (`tests/bench_hostile.rs`, full size, run by `scripts/bench-hostile.sh`) and the
//! short CI test (`tests/flood.rs`, small size, checks only what does not depend on timing).
//!
//! Each scenario starts a node on 127.0.0.1, measures its process from `/proc` (CPU time,
//! VmRSS, VmHWM) while raw peers attack it, and checks on the way that honest peers still get
//! through. Nothing here asserts a timing; the callers decide what to assert.

#![allow(dead_code)] // Each test binary uses a different part of this module.

use std::thread;
use std::time::{Duration, Instant};

use ed25519_dalek::SigningKey;
use gossipchain::ledger::block::{compute_tx_root, meets_difficulty};
use gossipchain::ledger::encode::encode;
use gossipchain::ledger::{
    Address, Block, BlockHash, BlockHeader, NetworkParams, Transaction, TxId,
};
use gossipchain::net::protocol::{blocks_topic, txs_topic, Status, SyncRequest, SyncResponse};
use libp2p::{Multiaddr, PeerId};

use crate::common::chain_writer::extend_chain;
use crate::common::{
    now_ms, runtime, unique_network, NodeOptions, TestNode, DIFFICULTY, THREE_HOURS_MS,
};
use crate::raw_peer::{BlocksAnswer, PeerEvent, RawOptions, RawPeer};

const WAIT: Duration = Duration::from_secs(30);

// --- the node's process, from /proc ----------------------------------------------------------

/// CPU seconds (user + system) the process has used so far.
pub fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The fields after the command name (which is in parentheses and may hold spaces).
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    let ticks: u64 = [11, 12]
        .iter()
        .filter_map(|&i| fields.get(i).and_then(|f| f.parse::<u64>().ok()))
        .sum();
    ticks as f64 / clock_ticks()
}

fn clock_ticks() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}

/// A `/proc/<pid>/status` field in kB (`VmRSS`, `VmHWM`), as MB.
pub fn status_mb(pid: u32, field: &str) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

/// Resets the process's peak RSS (VmHWM) to its current RSS, so that a later VmHWM is the peak
/// of what came after (`clear_refs` 5, Linux 4.0 and later; the process is ours).
pub fn reset_peak(pid: u32) {
    let _ = std::fs::write(format!("/proc/{pid}/clear_refs"), "5");
}

fn pid_of(node: &TestNode) -> u32 {
    node.pid().expect("the node runs")
}

/// The 99th percentile of `samples` (milliseconds), 0 if there are none.
pub fn p99(samples: &mut [f64]) -> f64 {
    if samples.is_empty() {
        return 0.0;
    }
    samples.sort_by(f64::total_cmp);
    let i = ((samples.len() as f64) * 0.99).ceil() as usize;
    samples[i.clamp(1, samples.len()) - 1]
}

fn humble(genesis: BlockHash) -> Status {
    Status {
        genesis,
        height: 0,
        tip: genesis,
        total_work: 0,
    }
}

fn parse_hash(hex_str: &str) -> BlockHash {
    let bytes = hex::decode(hex_str).expect("hex hash");
    BlockHash(bytes.try_into().expect("32 bytes"))
}

// --- A: blocks that are early or on a side branch, 20 a second ---------------------------------

/// Which blocks the flooding peer sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FloodKind {
    /// On our tip's parent's parent, three hours ahead of the clock.
    Early,
    /// Siblings on block 1 while the main chain is longer: each a side branch with less work,
    /// its transfers from an account with nothing (no state could pay them).
    Side,
}

/// How big a flood is.
#[derive(Debug, Clone, Copy)]
pub struct FloodSize {
    /// Seconds the flood lasts.
    pub secs: u64,
    /// Blocks published a second.
    pub per_second: u64,
    /// Validly signed transfers in each block.
    pub transfers: usize,
    /// Distinct signed transfers the blocks draw their windows from.
    pub pool: usize,
}

/// What a flood cost the node.
#[derive(Debug, Clone)]
pub struct FloodReport {
    /// Blocks published.
    pub published: usize,
    /// CPU seconds the node used during the flood.
    pub cpu_s: f64,
    /// Peak RSS during the flood minus RSS before it, MB.
    pub rss_growth_mb: f64,
    /// 99th percentile of `status` round trips on the console during the flood, ms.
    pub status_p99_ms: f64,
    /// Status round trips measured.
    pub status_samples: usize,
    /// Slowest of the honest blocks mined during the flood, from the miner's reply to the
    /// flooded node's `block_accepted`, ms.
    pub honest_ms: f64,
    /// Whether the flooding peer was still connected at the end (it is not to blame).
    pub flooder_connected: bool,
    /// Side-branch blocks the node keeps at the end.
    pub side_blocks: u64,
    /// The node's height at the end (the honest blocks on top of the start).
    pub height: u64,
}

/// A mined block on `parent` at `height` with `transfers` at `timestamp`.
fn mined(
    params: &NetworkParams,
    parent: BlockHash,
    height: u64,
    transfers: &[Transaction],
    txids: &[TxId],
    timestamp: u64,
) -> Block {
    let miner = Address([0x11; 20]);
    let coinbase = Transaction::coinbase(height, miner, params.reward);
    let mut ids = Vec::with_capacity(txids.len() + 1);
    ids.push(coinbase.compute_txid());
    ids.extend_from_slice(txids);
    let mut header = BlockHeader {
        height,
        prev_hash: parent,
        tx_root: compute_tx_root(&ids),
        timestamp,
        difficulty: params.difficulty,
        nonce: 0,
    };
    while !meets_difficulty(&header.block_hash(), params.difficulty) {
        header.nonce += 1;
    }
    let mut transactions = Vec::with_capacity(transfers.len() + 1);
    transactions.push(coinbase);
    transactions.extend_from_slice(transfers);
    Block {
        header,
        transactions,
    }
}

/// `count` distinct transfers signed by an account that holds nothing, for `params`.
fn unpayable_transfers(params: &NetworkParams, count: usize) -> Vec<Transaction> {
    let key = SigningKey::from_bytes(&[0x5a; 32]);
    let network = params.network_id();
    (0..count as u64)
        .map(|n| Transaction::sign_transfer(&key, &network, Address([0xfe; 20]), 1_000, 1, n))
        .collect()
}

/// A peer publishes `size.per_second` blocks a second of `kind` for `size.secs` seconds at a
/// node that an honest node feeds a block every few seconds; the node's console is asked
/// `status` every 50 ms meanwhile.
pub fn flood_blocks(kind: FloodKind, size: FloodSize) -> FloodReport {
    let network = unique_network("flood");
    let params = NetworkParams::new(&network, DIFFICULTY).expect("valid test network");
    let genesis = params.genesis_hash();
    let blocks_t = blocks_topic(&genesis);
    let topics = [blocks_t.clone(), txs_topic(&genesis)];

    let mut node = TestNode::start("flooded", NodeOptions::loopback(&network));
    let node_addr: Multiaddr = node.dial_addr().parse().expect("node multiaddr");
    let node_peer: PeerId = node.peer_id().parse().expect("peer id");
    let mut honest = TestNode::start("honest", NodeOptions::loopback(&network));
    let node_addr_s = node_addr.to_string();
    honest.dial(&node_addr_s);

    let rt = runtime();
    let mut flooder = RawPeer::start(
        &rt,
        "flooder",
        &topics,
        humble(genesis),
        BlocksAnswer::Bytes(encode(&SyncResponse::Blocks(Vec::new()))),
    );
    flooder.dial(&node_addr);
    flooder.wait_subscribed(node_peer, &blocks_t, WAIT);

    // Three valid blocks from the flooder make the main chain; the honest node syncs them.
    let mut chain = vec![params.genesis()];
    for h in 1..=3u64 {
        let parent = chain.last().expect("genesis").block_hash();
        let b = mined(&params, parent, h, &[], &[], now_ms() - 10_000 + h);
        flooder.publish(&blocks_t, encode(&b));
        chain.push(b);
    }
    let tip = chain[3].block_hash().to_hex();
    node.wait_until(|s| s["tip"] == tip.as_str(), WAIT);
    honest.wait_until(|s| s["tip"] == tip.as_str(), WAIT);

    // The flood, built before it starts so that the node's figures hold only the node.
    let pool = unpayable_transfers(&params, size.pool.max(size.transfers));
    let pool_ids: Vec<TxId> = pool.iter().map(Transaction::compute_txid).collect();
    let total = (size.secs * size.per_second) as usize;
    let ahead = now_ms() + THREE_HOURS_MS;
    let stride = (pool.len() / total.max(1)).max(1);
    let flood: Vec<Vec<u8>> = (0..total)
        .map(|i| {
            let start = (i * stride) % (pool.len() - size.transfers + 1);
            let txs = &pool[start..start + size.transfers];
            let ids = &pool_ids[start..start + size.transfers];
            let b = match kind {
                FloodKind::Early => mined(
                    &params,
                    chain[3].block_hash(),
                    4,
                    txs,
                    ids,
                    ahead + i as u64,
                ),
                FloodKind::Side => mined(
                    &params,
                    chain[1].block_hash(),
                    2,
                    txs,
                    ids,
                    chain[1].header.timestamp + 1 + i as u64,
                ),
            };
            encode(&b)
        })
        .collect();

    let pid = pid_of(&node);
    reset_peak(pid);
    let rss_before = status_mb(pid, "VmRSS");
    let cpu_before = cpu_seconds(pid);

    // The honest node mines a block every few seconds, on its own thread.
    let (mined_tx, mined_rx) = std::sync::mpsc::channel::<(String, Instant)>();
    let every = Duration::from_secs((size.secs / 4).clamp(1, 5));
    let honest_blocks = (size.secs / every.as_secs()).max(1);
    let honest_thread = thread::spawn(move || {
        for _ in 0..honest_blocks {
            thread::sleep(every);
            let r = honest.mine(1);
            let hash = r["hash"].as_str().unwrap_or_default().to_string();
            let _ = mined_tx.send((hash, Instant::now()));
        }
        honest
    });

    let started = Instant::now();
    let pace = Duration::from_nanos(1_000_000_000 / size.per_second.max(1));
    let mut next_block = started;
    let mut next_status = started;
    let mut published = 0;
    let mut latencies = Vec::new();
    let mut honest_sent: Vec<(String, Instant)> = Vec::new();
    let mut accepted_at = std::collections::HashMap::new();
    let mut scanned = node.events().len();
    let end = started + Duration::from_secs(size.secs);
    while Instant::now() < end || published < flood.len() {
        let now = Instant::now();
        if published < flood.len() && now >= next_block {
            flooder.publish_nowait(&blocks_t, flood[published].clone());
            published += 1;
            next_block += pace;
        }
        if now >= next_status {
            let t = Instant::now();
            node.status();
            latencies.push(t.elapsed().as_secs_f64() * 1000.0);
            next_status += Duration::from_millis(50);
        }
        honest_sent.extend(mined_rx.try_iter());
        note_accepted(&node, &mut scanned, &mut accepted_at);
        // Keep the flooder's event queue short (publish outcomes, nothing to keep).
        let _ = flooder.take_new();
        let wake = next_block.min(next_status);
        if let Some(d) = wake.checked_duration_since(Instant::now()) {
            thread::sleep(d.min(Duration::from_millis(10)));
        }
        assert!(
            started.elapsed() < Duration::from_secs(size.secs * 3 + 30),
            "flood ran far too long"
        );
    }
    let cpu_s = cpu_seconds(pid) - cpu_before;
    let rss_growth_mb = status_mb(pid, "VmHWM") - rss_before;

    // Honest blocks mined near the end still count once they arrive.
    let honest = honest_thread.join().expect("honest miner thread");
    honest_sent.extend(mined_rx.try_iter());
    let deadline = Instant::now() + WAIT;
    let all_in = |seen: &std::collections::HashMap<String, Instant>| {
        honest_sent.iter().all(|(h, _)| seen.contains_key(h))
    };
    while !all_in(&accepted_at) && Instant::now() < deadline {
        node.status();
        note_accepted(&node, &mut scanned, &mut accepted_at);
        thread::sleep(Duration::from_millis(5));
    }
    assert!(
        all_in(&accepted_at),
        "every honest block reaches the flooded node"
    );
    let honest_ms = honest_sent
        .iter()
        .map(|(h, mined_at)| {
            accepted_at[h]
                .saturating_duration_since(*mined_at)
                .as_secs_f64()
                * 1000.0
        })
        .fold(0.0, f64::max);
    drop(honest);
    let status = node.status();
    let flooder_id = flooder.peer_id.to_string();
    let flooder_connected = node.ok("peers").to_string().contains(&flooder_id);
    let url = node.http_url();
    let side_blocks = side_blocks_of(&url);
    let status_samples = latencies.len();
    FloodReport {
        published,
        cpu_s,
        rss_growth_mb,
        status_p99_ms: p99(&mut latencies),
        status_samples,
        honest_ms,
        flooder_connected,
        side_blocks,
        height: status["height"].as_u64().unwrap_or(0),
    }
}

/// Notes when each `block_accepted` the node printed since `scanned` was read.
fn note_accepted(
    node: &TestNode,
    scanned: &mut usize,
    accepted_at: &mut std::collections::HashMap<String, Instant>,
) {
    let events = node.events();
    for e in &events[*scanned..] {
        if let (true, Some(hash)) = (e["event"] == "block_accepted", e["hash"].as_str()) {
            accepted_at
                .entry(hash.to_string())
                .or_insert_with(Instant::now);
        }
    }
    *scanned = events.len();
}

/// The `gossipchain_side_blocks` gauge of the node serving `url`.
fn side_blocks_of(url: &str) -> u64 {
    let body = crate::http_client::get(url, "/metrics").body;
    String::from_utf8_lossy(&body)
        .lines()
        .find_map(|l| l.strip_prefix("gossipchain_side_blocks "))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .map_or(0, |v| v as u64)
}

// --- B: block requests whose answers are never read --------------------------------------------

/// What unread block requests cost the node.
#[derive(Debug, Clone)]
pub struct UnreadReport {
    /// Requests the peer sent.
    pub sent: usize,
    /// Requests that failed on the peer's side (declined, dropped or timed out).
    pub failed: usize,
    /// Peak RSS during the attack minus RSS before it, MB.
    pub rss_growth_mb: f64,
    /// Seconds a fresh honest node, dialing during the attack, took to sync the chain.
    pub honest_sync_s: f64,
    /// Whether the attacker was still connected at the end.
    pub attacker_connected: bool,
}

/// A peer with two connections keeps as many `GetBlocks` of 128 hashes (each answered with
/// about 2 MiB of blocks) open as the node lets it, never reading an answer, for `secs`
/// seconds; a fresh honest node dials meanwhile and syncs. The node holds `blocks` blocks of
/// `transfers` signed transfers (difficulty 1).
pub fn unread_block_requests(secs: u64, blocks: u64, transfers: u64, open: usize) -> UnreadReport {
    let network = unique_network("unread");
    let mut opts = NodeOptions::loopback(&network);
    opts.difficulty = 1;
    let mut node = TestNode::start("served", opts.clone());
    node.quit(WAIT);
    extend_chain(node.data_dir(), &network, 1, blocks, transfers, 42);
    node.restart();
    assert_eq!(node.height(), blocks);
    let tip = node.tip();
    let hashes: Vec<BlockHash> = (1..=blocks).map(|h| parse_hash(&node.hash_at(h))).collect();
    let node_addr: Multiaddr = node.dial_addr().parse().expect("node multiaddr");
    let node_peer: PeerId = node.peer_id().parse().expect("peer id");
    let genesis = NetworkParams::new(&network, 1)
        .expect("valid network")
        .genesis_hash();

    let rt = runtime();
    let mut attacker = RawPeer::start_with(
        &rt,
        "unread",
        &[],
        humble(genesis),
        BlocksAnswer::Bytes(encode(&SyncResponse::Blocks(Vec::new()))),
        RawOptions {
            read_answers: false,
            ..RawOptions::default()
        },
    );
    // Two connections: as many as the node allows one peer.
    attacker.dial(&node_addr);
    attacker.wait(|e| matches!(e, PeerEvent::Connected(_)), WAIT);
    attacker.dial(&node_addr);
    thread::sleep(Duration::from_millis(500));

    let pid = pid_of(&node);
    reset_peak(pid);
    let rss_before = status_mb(pid, "VmRSS");
    let started = Instant::now();
    let end = started + Duration::from_secs(secs);
    let mut sent = 0;
    let mut failed = 0;
    let mut fresh: Option<(TestNode, Instant)> = None;
    let mut honest_sync_s = f64::NAN;
    while Instant::now() < end {
        for e in attacker.take_new() {
            if matches!(e, PeerEvent::Answered(Err(_))) {
                failed += 1;
            }
        }
        // As many open as allowed (16 streams on each of two connections), refilled as the
        // node gives up on them, at a pace the peer's request budget allows.
        let outstanding = sent - failed;
        if outstanding < open {
            let from = sent % hashes.len();
            let ask: Vec<BlockHash> = hashes
                .iter()
                .cycle()
                .skip(from)
                .take(128)
                .copied()
                .collect();
            let request =
                gossipchain::net::protocol::RequestFrame::encode(&SyncRequest::GetBlocks {
                    hashes: ask,
                });
            attacker.send_request(node_peer, request.0);
            sent += 1;
        }
        if fresh.is_none() && started.elapsed() >= Duration::from_secs(secs / 3) {
            let mut f = TestNode::start("fresh", opts.clone());
            f.height();
            let addr = node.dial_addr();
            let t = Instant::now();
            f.dial(&addr);
            fresh = Some((f, t));
        }
        if let Some((f, t)) = fresh.as_mut() {
            if honest_sync_s.is_nan() && f.status()["tip"] == tip.as_str() {
                honest_sync_s = t.elapsed().as_secs_f64();
            }
        }
        thread::sleep(Duration::from_millis(if outstanding < open {
            40
        } else {
            20
        }));
    }
    let rss_growth_mb = status_mb(pid, "VmHWM") - rss_before;
    if let Some((mut f, t)) = fresh {
        if honest_sync_s.is_nan() {
            f.wait_until(|s| s["tip"] == tip.as_str(), Duration::from_secs(120));
            honest_sync_s = t.elapsed().as_secs_f64();
        }
    }
    let attacker_connected = node
        .ok("peers")
        .to_string()
        .contains(&attacker.peer_id.to_string());
    UnreadReport {
        sent,
        failed,
        rss_growth_mb,
        honest_sync_s,
        attacker_connected,
    }
}

// --- C: throwaway identities -------------------------------------------------------------------

/// How honest peers fared after the throwaway identities.
#[derive(Debug, Clone)]
pub struct IdentityReport {
    /// Identities that connected.
    pub connected: usize,
    /// Seconds the run of identities took.
    pub flood_s: f64,
    /// Seconds from the `--peer` peer's restart (after the flood) until the node had synced
    /// the blocks it mined meanwhile.
    pub configured_peer_s: f64,
    /// Seconds from a new honest node's dial until it had synced the node's chain.
    pub new_peer_s: f64,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// `count` throwaway identities connect to a node, `workers` at a time, and misbehave in
/// turn: a status for another genesis, two undecodable requests, or a polite status and an
/// immediate hang-up. Then a `--peer` peer of the node (restarted after the flood on its port,
/// with new blocks) and a new honest node must still connect, exchange status and sync.
pub fn throwaway_identities(count: usize, workers: usize) -> IdentityReport {
    let network = unique_network("sybil");
    let params = NetworkParams::new(&network, DIFFICULTY).expect("valid test network");
    let genesis = params.genesis_hash();
    let port = free_port();
    let mut friend_opts = NodeOptions::loopback(&network);
    friend_opts.listen = format!("/ip4/127.0.0.1/tcp/{port}");
    let mut friend = TestNode::start("friend", friend_opts);
    let friend_addr = friend.dial_addr();
    friend.mine(2);
    let mut node_opts = NodeOptions::loopback(&network);
    node_opts.peers.push(friend_addr.clone());
    let mut node = TestNode::start("target", node_opts);
    let friend_tip = friend.tip();
    node.wait_until(|s| s["tip"] == friend_tip.as_str(), WAIT);
    let node_addr: Multiaddr = node.dial_addr().parse().expect("node multiaddr");
    let node_peer: PeerId = node.peer_id().parse().expect("peer id");

    // The friend goes away during the flood and comes back after it.
    friend.quit(WAIT);

    let rt = runtime();
    let started = Instant::now();
    let connected = std::sync::atomic::AtomicUsize::new(0);
    thread::scope(|s| {
        for w in 0..workers {
            let (rt, node_addr, connected) = (&rt, &node_addr, &connected);
            s.spawn(move || {
                for i in (w..count).step_by(workers) {
                    let other = BlockHash([(i % 251) as u8 + 1; 32]);
                    let status = match i % 3 {
                        0 => humble(other),
                        _ => humble(genesis),
                    };
                    let mut p = RawPeer::start(
                        rt,
                        &format!("sybil-{i}"),
                        &[],
                        status,
                        BlocksAnswer::Bytes(encode(&SyncResponse::Blocks(Vec::new()))),
                    );
                    p.dial(node_addr);
                    let deadline = Instant::now() + Duration::from_secs(5);
                    let mut up = false;
                    while Instant::now() < deadline {
                        let events = p.take_new();
                        if events.iter().any(|e| matches!(e, PeerEvent::Connected(_))) {
                            up = true;
                            break;
                        }
                        thread::sleep(Duration::from_millis(5));
                    }
                    if !up {
                        continue;
                    }
                    connected.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    match i % 3 {
                        // Wrong genesis: answering the node's status request is enough.
                        0 => thread::sleep(Duration::from_millis(300)),
                        1 => {
                            for _ in 0..2 {
                                p.send_request(node_peer, vec![0xff; 64]);
                            }
                            thread::sleep(Duration::from_millis(300));
                        }
                        _ => thread::sleep(Duration::from_millis(100)),
                    }
                }
            });
        }
    });
    let flood_s = started.elapsed().as_secs_f64();

    // The configured peer returns with two new blocks.
    friend.restart();
    let t = Instant::now();
    friend.mine(2);
    let friend_tip = friend.tip();
    node.wait_until(|s| s["tip"] == friend_tip.as_str(), Duration::from_secs(60));
    let configured_peer_s = t.elapsed().as_secs_f64();

    // A new honest node dials in and syncs.
    let mut newcomer = TestNode::start("newcomer", NodeOptions::loopback(&network));
    let addr = node.dial_addr();
    let t = Instant::now();
    newcomer.dial(&addr);
    newcomer.wait_until(|s| s["tip"] == friend_tip.as_str(), Duration::from_secs(60));
    let new_peer_s = t.elapsed().as_secs_f64();
    IdentityReport {
        connected: connected.into_inner(),
        flood_s,
        configured_peer_s,
        new_peer_s,
    }
}
