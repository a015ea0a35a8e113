//! A node killed with SIGKILL at random moments, while it mines, while a fresh node syncs a few
//! thousand blocks and while a node on a shorter branch reorganises to a longer one, always
//! leaves a store that `gossipchain verify` accepts (tip, index, state and undo data describe the
//! same main chain), holding at least every block the node had reported as accepted before the
//! kill (in its `block_accepted`, `sync_progress` and `sync_finished` events and its `status`
//! replies), and restarts from it.
//!
//! `CRASH_KILLS` sets the number of kills in each situation (default 5, which keeps this file
//! short enough for CI); `scripts/bench-crash.sh` runs 50 of each and prints the table from the
//! `CRASH | ...` lines each test prints.

mod common;

use std::time::{Duration, Instant};

use common::chain_writer::extend_chain;
use common::{unique_network, NodeOptions, TestNode};
use rand::Rng;
use serde_json::Value;

/// Kills per situation unless `CRASH_KILLS` says otherwise.
const DEFAULT_KILLS: usize = 5;

/// Blocks of the chain a fresh node syncs (one signed transfer in each after the first).
const SYNC_BLOCKS: u64 = 3_000;

/// Blocks both branches of the reorg share above genesis.
const FORK_PREFIX: u64 = 50;

/// Blocks of the shorter branch above the shared ones (all disconnected by the reorg: deeper
/// than the 2,048 bodies a node keeps in memory, so most are read back from the store).
const SHORT_BRANCH: u64 = 2_500;

/// Blocks of the longer branch above the shared ones.
const LONG_BRANCH: u64 = 3_000;

/// How long a sync or a reorg may take before a round fails (a bound, not a target).
const CONVERGE_LIMIT: Duration = Duration::from_secs(60);

fn kills() -> usize {
    std::env::var("CRASH_KILLS")
        .ok()
        .and_then(|k| k.parse().ok())
        .unwrap_or(DEFAULT_KILLS)
}

/// Difficulty 1, so that chains of thousands of blocks are written in moments.
fn fast_opts(network: &str) -> NodeOptions {
    let mut o = NodeOptions::loopback(network);
    o.difficulty = 1;
    o
}

/// What the kills of one situation found; [`Tally::finish`] prints it as a table row and fails
/// the test if any kill lost or broke something.
struct Tally {
    situation: &'static str,
    kills: usize,
    verify_ok: usize,
    lost_accepted: usize,
    failures: Vec<String>,
    notes: String,
}

impl Tally {
    fn new(situation: &'static str) -> Self {
        Self {
            situation,
            kills: 0,
            verify_ok: 0,
            lost_accepted: 0,
            failures: Vec::new(),
            notes: String::new(),
        }
    }

    /// After a kill of `node`: `gossipchain verify` on its data directory must pass with a height
    /// of at least everything it had reported (its events, and `reported` from its replies).
    /// Returns the verified height and tip, or `None` when verify failed.
    fn check_kill(&mut self, node: &mut TestNode, reported: u64) -> Option<(u64, String)> {
        self.kills += 1;
        let round = self.kills;
        let reported = reported.max(highest_reported(node.events()));
        let out = node.maintain("verify");
        let line: Value =
            serde_json::from_str(String::from_utf8_lossy(&out.stdout).trim()).unwrap_or_default();
        if !out.status.success() || line["ok"] != true {
            self.failures.push(format!(
                "kill {round}: verify failed: {line} {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
            return None;
        }
        self.verify_ok += 1;
        let height = line["height"].as_u64().unwrap_or_default();
        if height < reported {
            self.lost_accepted += 1;
            self.failures.push(format!(
                "kill {round}: height {reported} was reported as accepted, the store holds {height}"
            ));
        }
        Some((height, line["tip"].as_str().unwrap_or_default().to_string()))
    }

    /// After the restart that follows a kill: the node must start at the verified height.
    fn check_restart(&mut self, node: &mut TestNode, verified: u64) {
        let height = node.height();
        if height != verified {
            self.failures.push(format!(
                "kill {}: verified height {verified}, the restarted node is at {height}",
                self.kills
            ));
        }
    }

    fn finish(self) {
        println!(
            "CRASH | {} | {} | {} | {} | {}",
            self.situation, self.kills, self.verify_ok, self.lost_accepted, self.notes
        );
        assert!(
            self.failures.is_empty(),
            "{}: {} of {} kills failed:\n{}",
            self.situation,
            self.failures.len(),
            self.kills,
            self.failures.join("\n")
        );
    }
}

/// The highest height any of `events` reports as joined to the main chain.
fn highest_reported(events: &[Value]) -> u64 {
    events
        .iter()
        .filter_map(|e| match e["event"].as_str() {
            Some("block_accepted") => e["height"].as_u64(),
            Some("sync_progress") => e["height"].as_u64(),
            Some("sync_finished") => e["to_height"].as_u64(),
            _ => None,
        })
        .max()
        .unwrap_or(0)
}

/// Polls `node` every few milliseconds (the 100 ms waits of `wait_until` would blur a sync of a
/// tenth of a second) until its tip is `tip`, for at most [`CONVERGE_LIMIT`]; returns the seconds
/// since `started`.
fn wait_for_tip(node: &mut TestNode, tip: &str, started: Instant) -> f64 {
    while node.status()["tip"] != tip {
        if started.elapsed() > CONVERGE_LIMIT {
            node.fail(&format!("never reached {tip} within {CONVERGE_LIMIT:?}"));
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    started.elapsed().as_secs_f64()
}

/// A random moment within a sync that took `secs` when nothing killed it.
fn random_moment(rng: &mut impl Rng, secs: f64) -> Duration {
    let ms = (secs * 1_000.0).ceil() as u64;
    Duration::from_millis(rng.gen_range(0..=ms.max(1)))
}

#[test]
fn a_node_killed_at_random_moments_while_mining_always_leaves_a_store_that_verifies() {
    let mut tally = Tally::new("mining");
    let mut node = TestNode::start("crashy", NodeOptions::loopback(&unique_network("crash")));
    let stranger = "00112233445566778899aabbccddeeff00112233";
    let mut rng = rand::thread_rng();
    let mut height = 0;
    for round in 0..kills() {
        if round > 0 {
            node.restart();
            tally.check_restart(&mut node, height);
        }
        // Transfers too, so blocks change more than the miner's balance.
        let restarted_at = node.height();
        let me = node.address();
        if node.balance_of(&me) > 10 {
            node.send_tx(stranger, 1, 1);
        }
        node.ok("automine on");
        let status = node.wait_until(
            |s| s["height"].as_u64() > Some(restarted_at),
            Duration::from_secs(30),
        );
        std::thread::sleep(Duration::from_millis(rng.gen_range(50..1_500)));
        node.kill_9_and_read_rest();
        let seen = status["height"].as_u64().unwrap_or_default();
        let Some((verified, _)) = tally.check_kill(&mut node, seen) else {
            break; // nothing to restart from
        };
        if verified <= restarted_at {
            tally.failures.push(format!(
                "kill {}: no block mined since the restart",
                round + 1
            ));
        }
        height = verified;
    }
    tally.notes = format!("difficulty 10, height {height} at the end");
    tally.finish();
}

#[test]
fn a_fresh_node_killed_at_random_moments_while_it_syncs_always_leaves_a_store_that_verifies() {
    let network = unique_network("crash-sync");
    let mut source = TestNode::start("source", fast_opts(&network));
    source.quit(Duration::from_secs(30));
    extend_chain(source.data_dir(), &network, 1, SYNC_BLOCKS, 1, 7);
    source.restart();
    assert_eq!(source.height(), SYNC_BLOCKS);
    let tip = source.tip();
    let addr = source.dial_addr();

    // Control: without a kill, a fresh node syncs the whole chain; its time bounds the kills.
    let mut control = TestNode::start("control", fast_opts(&network));
    control.height();
    let started = Instant::now();
    control.dial(&addr);
    let full = wait_for_tip(&mut control, &tip, started);
    drop(control);

    let mut tally = Tally::new("sync");
    let mut rng = rand::thread_rng();
    let mut mid_sync = 0;
    for _ in 0..kills() {
        let mut fresh = TestNode::start("fresh", fast_opts(&network));
        fresh.height();
        fresh.dial(&addr);
        fresh.wait_event(|e| e["event"] == "sync_started", CONVERGE_LIMIT);
        std::thread::sleep(random_moment(&mut rng, full));
        fresh.kill_9_and_read_rest();
        let Some((verified, _)) = tally.check_kill(&mut fresh, 0) else {
            continue;
        };
        if verified < SYNC_BLOCKS {
            mid_sync += 1;
        }
        // The restarted node starts where the store is and finishes the sync.
        fresh.restart();
        tally.check_restart(&mut fresh, verified);
        fresh.dial(&addr);
        wait_for_tip(&mut fresh, &tip, Instant::now());
    }
    tally.notes = format!(
        "{SYNC_BLOCKS} blocks, full sync {full:.2} s; {mid_sync} kills before the sync ended, each finished after the restart"
    );
    tally.finish();
}

#[test]
fn a_node_killed_at_random_moments_while_it_reorganises_always_leaves_a_store_that_verifies() {
    let network = unique_network("crash-reorg");
    // Both branches share FORK_PREFIX blocks written with one key; each then grows with its own.
    let short_branch = |node: &mut TestNode| {
        node.quit(Duration::from_secs(30));
        extend_chain(node.data_dir(), &network, 1, FORK_PREFIX, 1, 1);
        extend_chain(node.data_dir(), &network, 1, SHORT_BRANCH, 1, 3);
        node.restart();
        assert_eq!(node.height(), FORK_PREFIX + SHORT_BRANCH);
    };
    let mut long = TestNode::start("long", fast_opts(&network));
    long.quit(Duration::from_secs(30));
    extend_chain(long.data_dir(), &network, 1, FORK_PREFIX, 1, 1);
    extend_chain(long.data_dir(), &network, 1, LONG_BRANCH, 1, 2);
    long.restart();
    let tip = long.tip();
    let first_long = long.hash_at(FORK_PREFIX + 1);
    let addr = long.dial_addr();

    // Control: without a kill, the short node reorganises at the fork and reaches the long tip.
    let mut control = TestNode::start("control", fast_opts(&network));
    short_branch(&mut control);
    assert_ne!(control.hash_at(FORK_PREFIX + 1), first_long);
    let started = Instant::now();
    control.dial(&addr);
    let full = wait_for_tip(&mut control, &tip, started);
    let reorg = control.wait_event(|e| e["event"] == "reorg", Duration::from_secs(5));
    assert_eq!(reorg["fork_height"], FORK_PREFIX, "{reorg}");
    assert_eq!(reorg["depth"], SHORT_BRANCH, "{reorg}");
    drop(control);

    let mut tally = Tally::new("reorg");
    let mut rng = rand::thread_rng();
    let (mut before, mut after_unfinished) = (0, 0);
    for _ in 0..kills() {
        let mut short = TestNode::start("short", fast_opts(&network));
        short_branch(&mut short);
        short.dial(&addr);
        short.wait_event(|e| e["event"] == "sync_started", CONVERGE_LIMIT);
        std::thread::sleep(random_moment(&mut rng, full));
        short.kill_9_and_read_rest();
        let reorganised = short.events().iter().any(|e| e["event"] == "reorg");
        let Some((verified, verified_tip)) = tally.check_kill(&mut short, 0) else {
            continue;
        };
        short.restart();
        tally.check_restart(&mut short, verified);
        let on_long = short.hash_at(FORK_PREFIX + 1) == first_long;
        if reorganised && !on_long {
            tally.lost_accepted += 1;
            tally.failures.push(format!(
                "kill {}: the reorg was reported, the restarted node is on the short branch",
                tally.kills
            ));
        }
        match (on_long, verified_tip == tip) {
            (false, _) => before += 1,
            (true, false) => after_unfinished += 1,
            (true, true) => {}
        }
        // The restarted node carries on to the long tip.
        short.dial(&addr);
        wait_for_tip(&mut short, &tip, Instant::now());
    }
    tally.notes = format!(
        "{SHORT_BRANCH} vs {LONG_BRANCH} blocks above a shared {FORK_PREFIX}, full reorg {full:.2} s; kills before the reorg {before}, after it but before the tip {after_unfinished}; each reached the tip after the restart"
    );
    tally.finish();
}
