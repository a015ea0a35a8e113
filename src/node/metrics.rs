//! The node's Prometheus metrics, owned by [`NodeState`](super::state::NodeState) and encoded
//! by it on request ([`super::Command::Metrics`]), so the one-owner rule holds: nothing outside
//! the event loop reads or writes them.
//!
//! Rules it keeps: counters move only at the node's decision points (an event emitted, a
//! gossip verdict pushed, a block or transfer refused); gauges are read from the node's state
//! at encoding time; every label takes values from a finite set (sources are `mined`, `local`
//! or `peer`, reasons are error variant names), so the series stay bounded.

use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use super::event::Event;
use crate::ledger::{BlockError, MempoolError};
use crate::net::{Acceptance, NetCommand};

/// A `source` label: who a block or transfer came from.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SourceLabel {
    source: String,
}

/// A `reason` label: the name of the broken rule.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabel {
    reason: String,
}

/// A `result` label: a gossip verdict.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabel {
    result: String,
}

/// What the node's state says at encoding time.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Gauges {
    /// Height of the tip.
    pub height: u64,
    /// Connected peers.
    pub peers: usize,
    /// Pending transactions.
    pub mempool: usize,
    /// Blocks on side branches.
    pub side_blocks: usize,
    /// Blocks waiting for their parent.
    pub orphans: usize,
    /// Whether a sync runs.
    pub syncing: bool,
}

/// Every metric of the node, in one registry.
#[derive(Debug)]
pub(super) struct Metrics {
    registry: Registry,
    height: Gauge,
    peers: Gauge,
    mempool: Gauge,
    side_blocks: Gauge,
    orphans: Gauge,
    syncing: Gauge,
    sync_target: Gauge,
    syncs: Counter,
    blocks_accepted: Family<SourceLabel, Counter>,
    blocks_rejected: Family<ReasonLabel, Counter>,
    transfers_accepted: Family<SourceLabel, Counter>,
    transfers_rejected: Family<ReasonLabel, Counter>,
    reorgs: Counter,
    reorg_depth: Histogram,
    gossip: Family<ResultLabel, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A registry with every metric at zero.
    pub(super) fn new() -> Self {
        let mut registry = Registry::with_prefix("gossipchain");
        let metrics = Self {
            registry: Registry::default(),
            height: Gauge::default(),
            peers: Gauge::default(),
            mempool: Gauge::default(),
            side_blocks: Gauge::default(),
            orphans: Gauge::default(),
            syncing: Gauge::default(),
            sync_target: Gauge::default(),
            syncs: Counter::default(),
            blocks_accepted: Family::default(),
            blocks_rejected: Family::default(),
            transfers_accepted: Family::default(),
            transfers_rejected: Family::default(),
            reorgs: Counter::default(),
            reorg_depth: Histogram::new([1.0, 2.0, 3.0, 5.0, 10.0, 20.0, 50.0, 100.0]),
            gossip: Family::default(),
        };
        let m = &metrics;
        registry.register("height", "Height of the main chain's tip", m.height.clone());
        registry.register("peers", "Connected peers", m.peers.clone());
        registry.register(
            "mempool_transactions",
            "Pending transactions",
            m.mempool.clone(),
        );
        registry.register(
            "side_blocks",
            "Blocks kept on side branches",
            m.side_blocks.clone(),
        );
        registry.register(
            "orphan_blocks",
            "Blocks waiting for their parent",
            m.orphans.clone(),
        );
        registry.register("syncing", "1 while a sync runs", m.syncing.clone());
        registry.register(
            "sync_target_height",
            "Height the peer of the latest sync claimed",
            m.sync_target.clone(),
        );
        registry.register("syncs", "Syncs started", m.syncs.clone());
        registry.register(
            "blocks_accepted",
            "Blocks that joined the main chain, by source (mined or peer)",
            m.blocks_accepted.clone(),
        );
        registry.register(
            "blocks_rejected",
            "Blocks refused, by the rule they broke",
            m.blocks_rejected.clone(),
        );
        registry.register(
            "transfers_accepted",
            "Transfers that entered the mempool, by source (local or peer)",
            m.transfers_accepted.clone(),
        );
        registry.register(
            "transfers_rejected",
            "Transfers the mempool refused, by the rule they broke",
            m.transfers_rejected.clone(),
        );
        registry.register("reorgs", "Reorgs of the main chain", m.reorgs.clone());
        registry.register(
            "reorg_depth",
            "Blocks disconnected by each reorg",
            m.reorg_depth.clone(),
        );
        registry.register(
            "gossip_validations",
            "Gossip messages judged, by verdict (accept, ignore, reject)",
            m.gossip.clone(),
        );
        // The series every node has start at zero, so that rates work from the first scrape.
        for source in ["mined", "peer"] {
            m.blocks_accepted
                .get_or_create(&SourceLabel {
                    source: source.into(),
                })
                .inc_by(0);
        }
        for source in ["local", "peer"] {
            m.transfers_accepted
                .get_or_create(&SourceLabel {
                    source: source.into(),
                })
                .inc_by(0);
        }
        for result in ["accept", "ignore", "reject"] {
            m.gossip
                .get_or_create(&ResultLabel {
                    result: result.into(),
                })
                .inc_by(0);
        }
        Self {
            registry,
            ..metrics
        }
    }

    /// The registry libp2p's own swarm, gossipsub, identify and ping metrics are added to
    /// (under `gossipchain_libp2p_`), so that one `/metrics` scrape shows both.
    pub(super) fn registry_for_libp2p(&mut self) -> &mut Registry {
        &mut self.registry
    }

    /// Counts what an event reports.
    pub(super) fn observe_event(&self, event: &Event) {
        match event {
            Event::BlockAccepted { source, .. } => {
                self.blocks_accepted
                    .get_or_create(&SourceLabel {
                        source: source_kind(source, "mined"),
                    })
                    .inc();
            }
            Event::TxAccepted { source, .. } => {
                self.transfers_accepted
                    .get_or_create(&SourceLabel {
                        source: source_kind(source, "local"),
                    })
                    .inc();
            }
            Event::Reorg { depth, .. } => {
                self.reorgs.inc();
                self.reorg_depth.observe(*depth as f64);
            }
            Event::SyncStarted { to_height, .. } => {
                self.syncs.inc();
                self.sync_target.set(clamp(*to_height));
            }
            _ => {}
        }
    }

    /// Counts a gossip verdict on its way to the network.
    pub(super) fn observe_command(&self, command: &NetCommand) {
        if let NetCommand::ReportValidation { acceptance, .. } = command {
            let result = match acceptance {
                Acceptance::Accept => "accept",
                Acceptance::Ignore => "ignore",
                Acceptance::Reject => "reject",
            };
            self.gossip
                .get_or_create(&ResultLabel {
                    result: result.into(),
                })
                .inc();
        }
    }

    /// Counts a block the chain refused.
    pub(super) fn block_rejected(&self, error: &BlockError) {
        self.blocks_rejected
            .get_or_create(&ReasonLabel {
                reason: variant(&format!("{error:?}")),
            })
            .inc();
    }

    /// Counts a transfer the mempool refused.
    pub(super) fn transfer_rejected(&self, error: &MempoolError) {
        let reason = match error {
            MempoolError::Invalid(inner) => variant(&format!("{inner:?}")),
            other => variant(&format!("{other:?}")),
        };
        self.transfers_rejected
            .get_or_create(&ReasonLabel { reason })
            .inc();
    }

    /// The registry in Prometheus text format, with the gauges set from `gauges`.
    pub(super) fn encode(&self, gauges: Gauges) -> String {
        self.height.set(clamp(gauges.height));
        self.peers.set(clamp(gauges.peers as u64));
        self.mempool.set(clamp(gauges.mempool as u64));
        self.side_blocks.set(clamp(gauges.side_blocks as u64));
        self.orphans.set(clamp(gauges.orphans as u64));
        self.syncing.set(i64::from(gauges.syncing));
        let mut text = String::new();
        // Writing to a String cannot fail.
        let _ = encode(&mut text, &self.registry);
        text
    }
}

/// `mined` and `local` stay as they are; a peer id becomes `peer`, so labels stay bounded.
fn source_kind(source: &str, own: &str) -> String {
    if source == own {
        own.to_string()
    } else {
        "peer".to_string()
    }
}

/// The variant name at the start of a `Debug` rendering: `BadNonce { .. }` -> `BadNonce`.
fn variant(debug: &str) -> String {
    debug
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect()
}

fn clamp(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::{BlockHash, TxError, TxId};

    #[test]
    fn a_fresh_registry_encodes_every_metric_with_its_help_and_an_eof() {
        let text = Metrics::new().encode(Gauges {
            height: 7,
            ..Gauges::default()
        });
        for name in [
            "gossipchain_height 7",
            "# HELP gossipchain_peers",
            "# TYPE gossipchain_blocks_accepted counter",
            r#"gossipchain_gossip_validations_total{result="reject"} 0"#,
            "# TYPE gossipchain_reorg_depth histogram",
            "gossipchain_syncing 0",
        ] {
            assert!(text.contains(name), "{name} missing from\n{text}");
        }
        assert!(text.ends_with("# EOF\n"));
    }

    #[test]
    fn accepted_blocks_and_transfers_are_counted_by_kind_of_source() {
        let metrics = Metrics::new();
        let block = |source: &str| Event::BlockAccepted {
            height: 1,
            hash: BlockHash([0; 32]),
            source: source.into(),
        };
        metrics.observe_event(&block("mined"));
        metrics.observe_event(&block("12D3KooWpeer"));
        metrics.observe_event(&block("12D3KooWother"));
        metrics.observe_event(&Event::TxAccepted {
            txid: TxId([0; 32]),
            source: "local".into(),
        });
        let text = metrics.encode(Gauges::default());
        assert!(text.contains(r#"gossipchain_blocks_accepted_total{source="mined"} 1"#));
        assert!(text.contains(r#"gossipchain_blocks_accepted_total{source="peer"} 2"#));
        assert!(text.contains(r#"gossipchain_transfers_accepted_total{source="local"} 1"#));
    }

    #[test]
    fn refusals_are_counted_by_the_name_of_the_broken_rule() {
        let metrics = Metrics::new();
        metrics.transfer_rejected(&MempoolError::Invalid(TxError::InsufficientFunds {
            balance: 1,
            needed: 2,
        }));
        metrics.transfer_rejected(&MempoolError::Coinbase);
        metrics.block_rejected(&BlockError::UnknownParent(BlockHash([0; 32])));
        let text = metrics.encode(Gauges::default());
        assert!(
            text.contains(r#"gossipchain_transfers_rejected_total{reason="InsufficientFunds"} 1"#)
        );
        assert!(text.contains(r#"gossipchain_transfers_rejected_total{reason="Coinbase"} 1"#));
        assert!(text.contains(r#"gossipchain_blocks_rejected_total{reason="UnknownParent"} 1"#));
    }

    #[test]
    fn a_reorg_is_counted_with_its_depth() {
        let metrics = Metrics::new();
        metrics.observe_event(&Event::Reorg {
            old_tip: BlockHash([1; 32]),
            new_tip: BlockHash([2; 32]),
            depth: 3,
            fork_height: 4,
        });
        let text = metrics.encode(Gauges::default());
        assert!(text.contains("gossipchain_reorgs_total 1"));
        assert!(text.contains("gossipchain_reorg_depth_sum 3.0"));
    }
}
