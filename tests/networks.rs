//! Nodes of different networks (different genesis) never adopt each other's blocks.

mod common;

use std::time::Duration;

use common::{unique_network, NodeOptions, TestNode};

#[test]
fn nodes_of_different_networks_never_adopt_each_others_blocks() {
    let mut alpha = TestNode::start("alpha", NodeOptions::loopback(&unique_network("alpha")));
    let mut beta = TestNode::start("beta", NodeOptions::loopback(&unique_network("beta")));
    assert_ne!(alpha.status()["network"], beta.status()["network"]);

    alpha.mine(2);
    beta.mine(3);
    let alpha_tip = alpha.tip();
    let beta_tip = beta.tip();

    // Beta dials alpha; whatever happens on the wire, they end up disconnected.
    let alpha_addr = alpha.dial_addr();
    let reply = beta.request(&format!("dial {alpha_addr}"));
    assert!(reply["ok"].is_boolean(), "{reply}");
    std::thread::sleep(Duration::from_secs(2));
    beta.wait_until(|s| s["peers"] == 0, Duration::from_secs(15));
    alpha.wait_until(|s| s["peers"] == 0, Duration::from_secs(15));

    // New blocks on either side stay on that side.
    alpha.mine(2);
    beta.mine(1);
    let alpha_tip_2 = alpha.tip();
    let beta_tip_2 = beta.tip();
    std::thread::sleep(Duration::from_secs(2));

    let a = alpha.status();
    let b = beta.status();
    assert_eq!(a["height"], 4, "{a}");
    assert_eq!(b["height"], 4, "{b}");
    assert_eq!(a["tip"], alpha_tip_2.as_str());
    assert_eq!(b["tip"], beta_tip_2.as_str());
    assert_ne!(alpha.hash_at(2), beta.hash_at(2));
    assert_eq!(alpha.hash_at(2), alpha_tip);
    assert_eq!(beta.hash_at(3), beta_tip);
    for (node, name) in [(&alpha, "alpha"), (&beta, "beta")] {
        for e in node.events() {
            assert!(
                !(e["event"] == "block_accepted" && e["source"] != "mined"),
                "{name} accepted a block from a peer: {e}"
            );
            assert_ne!(e["event"], "reorg", "{name} reorganised: {e}");
            assert_ne!(
                e["event"], "sync_started",
                "{name} synced from another network: {e}"
            );
        }
    }
}
