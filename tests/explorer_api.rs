//! The explorer's routes on a real node over real HTTP: the page itself, the block tree with
//! a side branch and a reorg, and `/metrics` as Prometheus text whose counters move.

mod common;
#[path = "common/http_client.rs"]
mod http_client;

use std::collections::HashMap;
use std::time::Duration;

use common::{eventually, unique_network, NodeOptions, TestNode};
use http_client::{get, post_json};
use serde_json::Value;

/// Parses Prometheus text: every sample line as `name{labels}` -> value; panics on a line that
/// is not a comment, a sample, or `# EOF` at the end.
fn parse_metrics(text: &str) -> HashMap<String, f64> {
    let mut samples = HashMap::new();
    let mut lines = text.lines().peekable();
    while let Some(line) = lines.next() {
        if line == "# EOF" {
            assert!(lines.peek().is_none(), "# EOF is not the last line");
            continue;
        }
        if let Some(comment) = line.strip_prefix("# ") {
            assert!(
                comment.starts_with("HELP ")
                    || comment.starts_with("TYPE ")
                    || comment.starts_with("UNIT "),
                "bad comment line: {line}"
            );
            continue;
        }
        let (series, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("bad sample line: {line}"));
        let name_end = series.find('{').unwrap_or(series.len());
        assert!(
            series[..name_end]
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
            "bad metric name: {line}"
        );
        let value: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("bad sample value: {line}"));
        samples.insert(series.to_string(), value);
    }
    assert!(text.ends_with("# EOF\n"), "no # EOF at the end");
    samples
}

fn metrics(url: &str) -> HashMap<String, f64> {
    let response = get(url, "/metrics");
    assert_eq!(response.status, 200);
    assert!(response
        .header("content-type")
        .unwrap_or_default()
        .starts_with("text/plain; version=0.0.4"));
    parse_metrics(&String::from_utf8_lossy(&response.body))
}

#[test]
fn metrics_parse_as_prometheus_text_and_move_when_blocks_are_mined() {
    let network = unique_network("metrics");
    let mut node = TestNode::start("m", NodeOptions::loopback(&network));
    let url = node.http_url();
    let before = metrics(&url);
    assert_eq!(before["gossipchain_height"], 0.0);
    assert_eq!(
        before[r#"gossipchain_blocks_accepted_total{source="mined"}"#],
        0.0
    );

    let mined = post_json(&url, "/api/v1/mine", r#"{"count":3}"#);
    assert_eq!(mined.status, 200);
    let bad = post_json(
        &url,
        "/api/v1/transactions",
        &format!(r#"{{"to":"{}","amount":1000000000}}"#, node.address()),
    );
    assert_eq!(bad.status, 400);
    let after = metrics(&url);
    assert_eq!(after["gossipchain_height"], 3.0);
    assert_eq!(
        after[r#"gossipchain_blocks_accepted_total{source="mined"}"#],
        3.0
    );
    assert_eq!(
        after[r#"gossipchain_transfers_rejected_total{reason="InsufficientFunds"}"#],
        1.0
    );
    assert_eq!(after["gossipchain_peers"], 0.0);
    assert_eq!(after["gossipchain_reorgs_total"], 0.0);
}

#[test]
fn the_tree_shows_the_losing_branch_and_the_reorg_after_two_nodes_meet() {
    let network = unique_network("tree");
    let mut a = TestNode::start("a", NodeOptions::loopback(&network));
    let mut b = TestNode::start("b", NodeOptions::loopback(&network));
    let url = a.http_url();
    a.ok_within("mine 2", Duration::from_secs(60));
    b.ok_within("mine 4", Duration::from_secs(60));
    let ours: Vec<Value> = get(&url, "/api/v1/tree?depth=10").json()["blocks"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(ours.len(), 3, "genesis and two mined blocks");
    assert!(ours[1..]
        .iter()
        .all(|blk| blk["source"] == "mined" && blk["on_main"] == true));

    let b_peer = b.peer_id();
    let b_addr = b.dial_addr();
    a.dial(&b_addr);
    let tree = eventually("a reorg to b's chain", Duration::from_secs(30), || {
        let tree = get(&url, "/api/v1/tree?depth=10").json();
        (tree["height"] == 4).then_some(tree)
    });
    let blocks = tree["blocks"].as_array().cloned().unwrap_or_default();
    let side: Vec<&Value> = blocks
        .iter()
        .filter(|blk| blk["on_main"] == false)
        .collect();
    assert_eq!(
        side.len(),
        2,
        "our two blocks stay, off the main chain: {tree}"
    );
    assert!(side.iter().all(|blk| blk["source"] == "mined"));
    // From b, by gossip or by sync: a gossiped block of b's that was lighter than our chain
    // when it came is dropped unchecked, and the sync brings it (labelled "sync").
    let main_from_b = blocks
        .iter()
        .filter(|blk| {
            blk["on_main"] == true && (blk["source"] == b_peer.as_str() || blk["source"] == "sync")
        })
        .count();
    assert_eq!(main_from_b, 4, "b's four blocks, from b: {tree}");
    assert_eq!(tree["reorgs"][0]["depth"], 2);
    assert_eq!(tree["reorgs"][0]["fork_height"], 0);

    let m = metrics(&url);
    assert_eq!(m["gossipchain_reorgs_total"], 1.0);
    assert_eq!(m["gossipchain_reorg_depth_sum"], 2.0);
    assert_eq!(m["gossipchain_side_blocks"], 2.0);
    // libp2p's own metrics ride along: the connection to b is counted, and its pings timed.
    let established: f64 = m
        .iter()
        .filter(|(k, _)| k.starts_with("gossipchain_libp2p_swarm_connections_established_total"))
        .map(|(_, v)| *v)
        .sum();
    assert!(established >= 1.0, "no libp2p connection counted: {m:?}");
    assert!(
        m.keys()
            .any(|k| k.starts_with("gossipchain_libp2p_ping_rtt_seconds_count")),
        "no libp2p ping timed: {m:?}"
    );

    let shallow = get(&url, "/api/v1/tree?depth=1").json();
    assert_eq!(shallow["from_height"], 3);
    let too_deep = get(&url, "/api/v1/tree?depth=513");
    assert_eq!(too_deep.status, 400);
    assert_eq!(too_deep.error(), "depth must be 0 to 512");
}

#[test]
fn the_explorer_page_is_served_at_the_root_with_its_assets() {
    let network = unique_network("page");
    let mut node = TestNode::start("p", NodeOptions::loopback(&network));
    let url = node.http_url();
    let page = get(&url, "/");
    assert_eq!(page.status, 200);
    assert!(String::from_utf8_lossy(&page.body).contains("<svg id=\"tree\""));
    for asset in ["/explorer/app.js", "/explorer/app.css"] {
        assert_eq!(get(&url, asset).status, 200, "{asset}");
    }
}
