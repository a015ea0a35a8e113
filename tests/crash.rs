//! A node killed with SIGKILL at random moments while it mines always leaves a store that
//! `gossipchain verify` accepts: tip, index, state and undo data describe the same main chain.

mod common;

use std::time::Duration;

use common::{unique_network, NodeOptions, TestNode};
use rand::Rng;

#[test]
fn a_node_killed_at_random_moments_while_mining_always_leaves_a_store_that_verifies() {
    let mut node = TestNode::start("crashy", NodeOptions::loopback(&unique_network("crash")));
    let stranger = "00112233445566778899aabbccddeeff00112233";
    let mut rng = rand::thread_rng();
    let mut height = 0;
    for round in 0..5 {
        if round > 0 {
            node.restart();
        }
        // Transfers too, so blocks change more than the miner's balance.
        let restarted_at = node.height();
        assert!(
            restarted_at >= height,
            "round {round}: the chain went back from {height} to {restarted_at}"
        );
        let me = node.address();
        if node.balance_of(&me) > 10 {
            node.send_tx(stranger, 1, 1);
        }
        node.ok("automine on");
        node.wait_until(
            |s| s["height"].as_u64() > Some(restarted_at),
            Duration::from_secs(30),
        );
        std::thread::sleep(Duration::from_millis(rng.gen_range(50..1_500)));
        node.kill_9();

        let out = node.maintain("verify");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success(),
            "round {round}: verify failed: {stderr}"
        );
        let line: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap_or_default();
        let verified = line["height"].as_u64().unwrap_or_default();
        assert!(verified > restarted_at, "round {round}: {line}");
        height = verified;
    }
    node.restart();
    assert_eq!(
        node.height(),
        height,
        "the node restarts at the verified height"
    );
}
