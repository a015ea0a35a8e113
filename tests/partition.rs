//! A LAN split in two while miners run on both sides heals: once the cut host is back, every
//! node settles on one chain (the one with more work) and every peer stays connected. This is
//! the measured failure: three hosts found by mDNS, `automine on` on two of them at the
//! cluster's default difficulty, one miner cut off for 15 s, then brought back.
//!
//! The LAN is made of network namespaces (see `common::Lan`); without root this test prints a
//! skip message and returns, except under CI (`CI` set), where it fails instead.
//! `PARTITION_SECS` sets the length of the cut (default 15).

mod common;

use std::time::{Duration, Instant};

use common::{eventually, unique_network, Lan, NodeOptions, TestNode};

/// The cluster script's default difficulty: hundreds of blocks a second on each miner here.
const DIFFICULTY: u32 = 16;

/// How long the cut host stays cut unless `PARTITION_SECS` says otherwise.
const DEFAULT_PARTITION_SECS: u64 = 15;

/// How long the nodes may take to agree after the heal before the test fails (the issue's
/// target is 2 s; this bound only keeps a regression from hanging the suite).
const HEAL_LIMIT: Duration = Duration::from_secs(30);

/// How far below the lowest tip the nodes must agree while the miners still run: blocks that
/// young may still be racing between the two miners.
const SETTLE_DEPTH: u64 = 10;

/// The hash each node has at `height`, or `None` for a node below it.
fn hashes_at(nodes: &mut [TestNode], height: u64) -> Vec<Option<String>> {
    nodes
        .iter_mut()
        .map(|n| {
            let r = n.request(&format!("block {height}"));
            r["hash"].as_str().map(str::to_string)
        })
        .collect()
}

#[test]
fn a_partition_with_miners_on_both_sides_heals_when_the_cut_host_returns() {
    let Some(lan) = Lan::create("part", 13, 3) else {
        return;
    };
    let partition = Duration::from_secs(
        std::env::var("PARTITION_SECS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(DEFAULT_PARTITION_SECS),
    );
    let network = unique_network("partition");
    let mut nodes: Vec<TestNode> = (0..3)
        .map(|i| {
            let opts = NodeOptions {
                mdns: true,
                listen: "/ip4/0.0.0.0/tcp/0".to_string(),
                difficulty: DIFFICULTY,
                ..NodeOptions::loopback(&network)
            };
            lan.start_node_with(i, &format!("host{i}"), opts)
        })
        .collect();
    for node in &mut nodes {
        node.wait_until(|s| s["peers"] == 2, Duration::from_secs(20));
    }

    // Miners on host 0 and host 2; host 2 is then cut off with its miner running.
    nodes[0].ok("automine on");
    nodes[2].ok("automine on");
    std::thread::sleep(Duration::from_secs(1));
    lan.cut(2);
    let at_cut = nodes[0].height();
    std::thread::sleep(partition);
    let heights_at_heal: Vec<u64> = nodes.iter_mut().map(|n| n.height()).collect();
    lan.restore(2);
    let healed_at = Instant::now();

    // Healed: every node has the same block at a height above everything mined apart.
    let top = *heights_at_heal.iter().max().unwrap_or(&0);
    let mut agreed = None;
    let mut reconnected = None;
    while healed_at.elapsed() < HEAL_LIMIT {
        if reconnected.is_none() && nodes.iter_mut().all(|n| n.peer_count() == 2) {
            reconnected = Some(healed_at.elapsed());
        }
        let lowest = nodes.iter_mut().map(|n| n.height()).min().unwrap_or(0);
        let probe = lowest.saturating_sub(SETTLE_DEPTH);
        if probe > top {
            let hashes = hashes_at(&mut nodes, probe);
            if hashes[0].is_some() && hashes.iter().all(|h| *h == hashes[0]) {
                agreed = Some(healed_at.elapsed());
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    nodes[0].ok("automine off");
    nodes[2].ok("automine off");
    let Some(heal) = agreed else {
        let heights: Vec<u64> = nodes.iter_mut().map(|n| n.height()).collect();
        nodes[2].fail(&format!(
            "no agreement {HEAL_LIMIT:?} after the heal (heights at heal {heights_at_heal:?}, now {heights:?})"
        ));
    };

    // With the miners stopped, the last blocks may tie (equal work: each node keeps the one it
    // saw first), and the stopped miners' last blocks may still be on their way: a block mined
    // on host 0 now and then breaks any tie, and every node ends on one tip, still connected
    // to both others.
    let mut tie_broken_at = Instant::now();
    nodes[0].mine(1);
    let tip = eventually("one tip everywhere", Duration::from_secs(30), || {
        let tips: Vec<String> = nodes.iter_mut().map(|n| n.tip()).collect();
        if tips.iter().all(|t| *t == tips[0]) {
            return Some(tips[0].clone());
        }
        if tie_broken_at.elapsed() > Duration::from_secs(3) {
            nodes[0].mine(1);
            tie_broken_at = Instant::now();
        }
        None
    });
    for node in &mut nodes {
        assert_eq!(node.peer_count(), 2, "{} lost a peer", node.label);
    }
    println!(
        "BENCH | partition | {}s cut, heights at heal {:?} (cut at about {}) | all peers back {} | agreed {:.2} s after the heal | tip {}",
        partition.as_secs(),
        heights_at_heal,
        at_cut,
        reconnected.map_or("later".to_string(), |d| format!("{:.2} s", d.as_secs_f64())),
        heal.as_secs_f64(),
        &tip[..12.min(tip.len())]
    );
    drop(nodes);
    drop(lan);
}
