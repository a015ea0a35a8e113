//! A mining node whose data directory is on a small tmpfs that fills up says so (a
//! `node_halted` event naming the full disk, exit status 1) and stops: it announces no block it
//! did not store, to its console or to a peer, and a restart on the still full disk halts again
//! at its first block. Once space is freed it restarts on the same directory, `gossipchain
//! verify` passes and it carries on mining.
//!
//! Mounting needs root: not as root the test prints a skip message and passes, except under CI
//! (`CI` set), where it fails instead. The tmpfs is unmounted when the test ends, failed or not.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::{is_root, unique_network, NodeOptions, TestNode};
use serde_json::Value;

/// Size of the tmpfs.
const TMPFS_SIZE: &str = "2m";

/// Bytes of the filler file that takes half of it, deleted to free space.
const FILLER_BYTES: usize = 1 << 20;

/// How long the node may mine before the disk must be full (a bound, not a target).
const FILL_LIMIT: Duration = Duration::from_secs(120);

/// A tmpfs mounted on a temporary directory, unmounted (and the directory removed) on drop.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(size: &str) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("gossipchain-full-")
            .tempdir()
            .expect("a temp dir for the mount");
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .output()
            .expect("mount runs");
        assert!(
            out.status.success(),
            "mount -t tmpfs failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Self { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// `df`'s used and available bytes on the tmpfs, for the report.
    fn usage(&self) -> String {
        Command::new("df")
            .args(["--output=used,avail", "-B1"])
            .arg(self.path())
            .output()
            .ok()
            .and_then(|o| {
                String::from_utf8_lossy(&o.stdout)
                    .lines()
                    .nth(1)
                    .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" used, ") + " free")
            })
            .unwrap_or_default()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let umount = |lazy: bool| {
            let mut c = Command::new("umount");
            if lazy {
                c.arg("-l");
            }
            c.arg(self.dir.path()).status().is_ok_and(|s| s.success())
        };
        // A lazy unmount if something still holds it; the TempDir then removes the directory.
        if !umount(false) && !umount(true) {
            eprintln!("could not unmount {}", self.dir.path().display());
        }
    }
}

/// The highest `block_accepted` height among `events`.
fn highest_announced(events: &[Value]) -> u64 {
    events
        .iter()
        .filter(|e| e["event"] == "block_accepted")
        .filter_map(|e| e["height"].as_u64())
        .max()
        .unwrap_or(0)
}

/// Runs `verify` on the stopped node and returns its height.
#[track_caller]
fn verified_height(node: &mut TestNode) -> u64 {
    let out = node.maintain("verify");
    let line: Value =
        serde_json::from_str(String::from_utf8_lossy(&out.stdout).trim()).unwrap_or_default();
    assert!(
        out.status.success() && line["ok"] == true,
        "verify failed: {line} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    line["height"].as_u64().expect("verify reports a height")
}

/// Waits for the node to exit; checks that it exited with status 1 after a `node_halted` event
/// (among those after the first `since`) naming the full disk, and returns that reason.
#[track_caller]
fn expect_halt_on_full_disk(node: &mut TestNode, since: usize, within: Duration) -> String {
    let status = node
        .wait_exit(within)
        .unwrap_or_else(|| node.fail(&format!("still running after {within:?}")));
    let halted = node.events()[since..]
        .iter()
        .find(|e| e["event"] == "node_halted")
        .cloned()
        .unwrap_or_else(|| node.fail(&format!("exited ({status}) without node_halted")));
    let reason = halted["reason"].as_str().unwrap_or_default().to_string();
    assert!(
        reason.contains("No space left on device"),
        "the halt names the full disk: {halted}"
    );
    assert_eq!(status.code(), Some(1), "a halted node exits with status 1");
    reason
}

#[test]
fn a_node_whose_disk_fills_up_halts_without_announcing_and_carries_on_once_space_is_freed() {
    if !is_root() {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI is set but this process is not root: the full-disk test cannot mount a tmpfs"
        );
        eprintln!("SKIPPED: this test mounts a tmpfs as the data directory and must run as root");
        return;
    }
    // Declared first, so it is unmounted last, after every node on it has been killed.
    let tmpfs = Tmpfs::mount(TMPFS_SIZE);
    let filler: PathBuf = tmpfs.path().join("filler");
    std::fs::write(&filler, vec![0xa5u8; FILLER_BYTES]).expect("filler written");
    let network = unique_network("disk-full");

    // An observer on the ordinary disk, to see what the full node gossips.
    let mut observer = TestNode::start("observer", NodeOptions::loopback(&network));
    let mut opts = NodeOptions::loopback(&network);
    opts.data_dir = Some(tmpfs.path().join("data"));
    let mut full = TestNode::start("full", opts);
    let observer_addr = observer.dial_addr();
    full.dial(&observer_addr);
    full.wait_until(|s| s["peers"] == 1, Duration::from_secs(10));

    full.ok("automine on");
    let reason = expect_halt_on_full_disk(&mut full, 0, FILL_LIMIT);
    let announced = highest_announced(full.events());
    let usage = tmpfs.usage();
    let stored = verified_height(&mut full);
    assert!(announced > 0, "the node mined before the disk filled");
    assert!(
        announced <= stored,
        "block {announced} was announced, the store holds {stored}"
    );
    // Let gossip in flight arrive, then: the observer has nothing the full node did not store.
    std::thread::sleep(Duration::from_secs(1));
    let seen = observer.height();
    let seen_tip = observer.tip();
    assert!(
        seen <= stored,
        "a peer received block {seen}, the store holds {stored}"
    );

    // Restarted on the still full disk, it starts from the store and soon halts again (a
    // commit of a few mined blocks may still fit in the pages redb freed), again announcing
    // nothing it did not store.
    full.restart();
    assert_eq!(full.height(), stored, "restarts at the stored height");
    assert_eq!(full.hash_at(seen), seen_tip, "the peer's tip is stored");
    let since = full.events().len();
    full.ok("automine on");
    expect_halt_on_full_disk(&mut full, since, Duration::from_secs(30));
    let announced_again = highest_announced(full.events());
    let stored = verified_height(&mut full);
    assert!(
        announced_again <= stored,
        "block {announced_again} was announced on the full disk, the store holds {stored}"
    );

    // Space freed: it carries on from where it stopped, and the store still verifies.
    std::fs::remove_file(&filler).expect("filler removed");
    full.restart();
    assert_eq!(full.height(), stored, "restarts at the stored height");
    full.ok("automine on");
    let target = stored + 100;
    full.wait_until(
        |s| s["height"].as_u64() >= Some(target),
        Duration::from_secs(60),
    );
    full.ok("automine off");
    full.quit(Duration::from_secs(30));
    let after = verified_height(&mut full);
    assert!(after >= target, "verified {after} after freeing space");
    println!(
        "DISKFULL | tmpfs {TMPFS_SIZE} with a {FILLER_BYTES}-byte filler | halted at height {stored} ({usage}) | {reason} | exit 1 | peer at {seen} | after freeing: restarted at {stored}, mined to {after}, verify ok"
    );
    drop(full);
    drop(observer);
}
