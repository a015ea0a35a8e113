//! Nodes on one LAN find each other by mDNS with no configuration, share transactions and
//! blocks, agree on balances, and reconnect by themselves after a host is cut off and brought
//! back. The LAN is made of network namespaces (see `common::Lan`); without root these tests
//! print a skip message and return, except under CI (`CI` set), where they fail instead.

mod common;

use std::time::Duration;

use common::{txids_of, unique_network, Lan};
use gossipchain::ledger::params::DEFAULT_REWARD;

#[test]
fn three_nodes_find_each_other_by_mdns_alone_and_agree_on_balances() {
    let Some(lan) = Lan::create("trio", 11, 3) else {
        return;
    };
    let network = unique_network("mdns");
    let mut nodes: Vec<_> = (0..3)
        .map(|i| lan.start_node(i, &format!("host{i}"), &network))
        .collect();

    // No --peer, no dial: every node connects to both others.
    for node in &mut nodes {
        node.wait_until(|s| s["peers"] == 2, Duration::from_secs(20));
    }
    let addresses: Vec<String> = nodes.iter_mut().map(|n| n.address()).collect();
    let peer_ids: Vec<String> = nodes.iter_mut().map(|n| n.peer_id()).collect();
    for (i, node) in nodes.iter_mut().enumerate() {
        let reply = node.ok("peers");
        let listed = reply["peers"].as_array().cloned().unwrap_or_default();
        for (j, id) in peer_ids.iter().enumerate().filter(|(j, _)| *j != i) {
            let entry = listed.iter().find(|p| p["peer_id"] == id.as_str());
            let entry = entry.unwrap_or_else(|| panic!("host{i} does not list host{j}: {reply}"));
            assert!(
                entry["addresses"].as_array().is_some_and(|a| a
                    .iter()
                    .any(|x| x.as_str().is_some_and(|x| x.contains(&lan.host_ip(j))))),
                "host{i} lists host{j} without its LAN address: {entry}"
            );
        }
    }

    // Host 0 earns coins; the block reaches everyone.
    let first = nodes[0].mine(1);
    let first_hash = first["hash"].as_str().unwrap_or_default().to_string();
    for node in &mut nodes[1..] {
        node.wait_until(|s| s["tip"] == first_hash.as_str(), Duration::from_secs(15));
    }

    // A transfer posted on host 0 reaches host 1 and host 2's mempools.
    let txid = nodes[0].send_tx(&addresses[1], 10, 2);
    for node in &mut nodes[1..] {
        let t = txid.clone();
        node.wait_event(
            move |e| e["event"] == "tx_accepted" && e["txid"] == t.as_str(),
            Duration::from_secs(15),
        );
        assert_eq!(node.mempool_txids(), vec![txid.clone()]);
    }

    // Host 2 mines it; the block reaches everyone and empties every mempool.
    let second = nodes[2].mine(1);
    let second_hash = second["hash"].as_str().unwrap_or_default().to_string();
    let tip_block = nodes[2].chain().last().cloned().unwrap_or_default();
    assert!(txids_of(&tip_block["transactions"]).contains(&txid));
    for node in &mut nodes {
        node.wait_until(
            |s| s["tip"] == second_hash.as_str() && s["mempool"] == 0,
            Duration::from_secs(15),
        );
    }

    // Every node reports the same balances, and they are what the two blocks say.
    let expected = [DEFAULT_REWARD - 10 - 2, 10, DEFAULT_REWARD + 2];
    for node in &mut nodes {
        for (address, want) in addresses.iter().zip(expected) {
            assert_eq!(
                node.balance_of(address),
                want,
                "{} sees {address}",
                node.label
            );
        }
    }
    for node in &nodes {
        assert!(
            node.non_json_lines().is_empty(),
            "{:?}",
            node.non_json_lines()
        );
    }
    drop(nodes);
    drop(lan);
}

#[test]
fn a_host_cut_off_from_the_lan_reconnects_by_itself_and_catches_up() {
    let Some(lan) = Lan::create("cut", 12, 2) else {
        return;
    };
    let network = unique_network("mdns-cut");
    let mut stay = lan.start_node(0, "stay", &network);
    let mut away = lan.start_node(1, "away", &network);
    stay.wait_until(|s| s["peers"] == 1, Duration::from_secs(20));
    away.wait_until(|s| s["peers"] == 1, Duration::from_secs(20));
    stay.mine(1);
    let tip = stay.tip();
    away.wait_until(|s| s["tip"] == tip.as_str(), Duration::from_secs(15));

    // Cut off, the away host notices the dead connection (ping) and drops it.
    lan.cut(1);
    away.wait_until(|s| s["peers"] == 0, Duration::from_secs(60));
    stay.wait_until(|s| s["peers"] == 0, Duration::from_secs(60));

    // Meanwhile the LAN moves on.
    stay.mine(2);
    let tip = stay.tip();

    // Back on the LAN, it reconnects with no help (mDNS will not rediscover it for minutes)
    // and catches up.
    lan.restore(1);
    away.wait_until(|s| s["peers"] == 1, Duration::from_secs(30));
    away.wait_until(|s| s["tip"] == tip.as_str(), Duration::from_secs(20));
    drop(stay);
    drop(away);
    drop(lan);
}
