//! What the explorer's tree picture needs: where recent blocks came from, the recent reorgs,
//! and the recent block tree (main chain and side branches) built from them.
//!
//! Rules it keeps: memory is bounded ([`MAX_SOURCES`] block sources, [`MAX_REORGS`] reorgs,
//! oldest forgotten first); a tree answer holds blocks no deeper than the depth the handle
//! allows ([`super::command::MAX_TREE_DEPTH`]) below the tip; side-branch blocks are found
//! through the remembered sources, so the chain itself needs no new accessor.

use std::collections::{HashSet, VecDeque};

use serde::Serialize;

use super::command::Reply;
use super::metrics::Gauges;
use super::state::{now_ms, NodeState, Source};
use crate::ledger::{Accepted, Block, BlockHash};

/// Most block sources remembered.
pub const MAX_SOURCES: usize = 1_024;

/// Most reorgs remembered.
pub const MAX_REORGS: usize = 64;

/// One block of the recent tree.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TreeBlock {
    /// Its hash.
    pub hash: BlockHash,
    /// Its parent's hash.
    pub parent: BlockHash,
    /// Its height.
    pub height: u64,
    /// True when it is on the main chain now.
    pub on_main: bool,
    /// `mined`, or the id of the peer that sent it, when this node remembers.
    pub source: Option<String>,
    /// Milliseconds since the Unix epoch, as its miner stamped it.
    pub timestamp: u64,
    /// Number of transactions, the coinbase included.
    pub transactions: usize,
}

/// One reorg, as remembered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReorgView {
    /// Tip before.
    pub old_tip: BlockHash,
    /// Tip after.
    pub new_tip: BlockHash,
    /// Blocks disconnected.
    pub depth: usize,
    /// Height of the last block both chains share.
    pub fork_height: u64,
    /// When it happened, in milliseconds since the Unix epoch.
    pub at: u64,
    /// The blocks taken off the main chain, old tip first.
    pub disconnected: Vec<BlockHash>,
}

/// The answer to [`super::Command::Tree`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TreeView {
    /// The main chain's tip.
    pub tip: BlockHash,
    /// Its height.
    pub height: u64,
    /// The lowest height included.
    pub from_height: u64,
    /// The blocks from `from_height` up, lowest first, main chain before side branches at a
    /// height.
    pub blocks: Vec<TreeBlock>,
    /// Remembered reorgs, oldest first.
    pub reorgs: Vec<ReorgView>,
}

/// Block sources and reorgs, bounded, oldest forgotten first.
#[derive(Debug, Default)]
pub(super) struct History {
    order: VecDeque<BlockHash>,
    sources: crate::ledger::digest_map::DigestMap<BlockHash, String>,
    reorgs: VecDeque<ReorgView>,
}

impl History {
    /// Remembers where a block came from (the first source wins).
    fn remember(&mut self, hash: BlockHash, source: &str) {
        if self.sources.contains_key(&hash) {
            return;
        }
        if self.order.len() >= MAX_SOURCES {
            if let Some(old) = self.order.pop_front() {
                self.sources.remove(&old);
            }
        }
        self.order.push_back(hash);
        self.sources.insert(hash, source.to_string());
    }

    /// Remembers what the chain accepted: the offered block, every block the tip change
    /// connected, and the reorg if there was one.
    pub(super) fn record(&mut self, accepted: &Accepted, source: &str, now: u64) {
        if let Some(change) = &accepted.tip_change {
            for block in &change.connected {
                self.remember(block.block_hash(), source);
            }
            if change.depth() > 0 {
                if self.reorgs.len() >= MAX_REORGS {
                    self.reorgs.pop_front();
                }
                self.reorgs.push_back(ReorgView {
                    old_tip: change.old_tip,
                    new_tip: change.new_tip,
                    depth: change.depth(),
                    fork_height: change.fork_height,
                    at: now,
                    disconnected: change.disconnected.iter().map(|b| b.block_hash()).collect(),
                });
            }
        }
        self.remember(accepted.hash, source);
    }

    /// Where a block came from, if remembered.
    pub(super) fn source(&self, hash: &BlockHash) -> Option<&str> {
        self.sources.get(hash).map(String::as_str)
    }

    /// Every remembered block hash, oldest first.
    fn hashes(&self) -> impl Iterator<Item = &BlockHash> {
        self.order.iter()
    }
}

impl NodeState {
    /// Remembers and counts what `apply_accepted` stored (one call there).
    pub(super) fn observe_accepted(&mut self, accepted: &Accepted, source: Source) {
        self.history.record(accepted, &source.label(), now_ms());
        for (_, error) in &accepted.invalid {
            self.metrics.block_rejected(error);
        }
    }

    /// Answers [`super::Command::Tree`].
    pub(super) fn tree_command(&self, depth: u64, reply: Reply<TreeView>) {
        let _ = reply.send(Ok(self.tree_view(depth)));
    }

    /// The blocks of the tree at most `depth` below the tip, and the remembered reorgs.
    pub(super) fn tree_view(&self, depth: u64) -> TreeView {
        let height = self.chain.height();
        let from_height = height.saturating_sub(depth);
        let view = |block: &Block, on_main: bool| TreeBlock {
            hash: block.block_hash(),
            parent: block.header.prev_hash,
            height: block.header.height,
            on_main,
            source: self.history.source(&block.block_hash()).map(str::to_string),
            timestamp: block.header.timestamp,
            transactions: block.transactions.len(),
        };
        let mut blocks: Vec<TreeBlock> = (from_height..=height)
            .filter_map(|h| self.chain.block_at_height(h))
            .map(|b| view(&b, true))
            .collect();
        let mut seen: HashSet<BlockHash> = blocks.iter().map(|b| b.hash).collect();
        for hash in self.history.hashes() {
            if seen.contains(hash) || self.chain.is_on_main_chain(hash) {
                continue;
            }
            if let Some(block) = self.chain.block(hash) {
                if block.header.height >= from_height {
                    seen.insert(*hash);
                    blocks.push(view(&block, false));
                }
            }
        }
        blocks.sort_by_key(|b| (b.height, !b.on_main));
        TreeView {
            tip: self.chain.tip(),
            height,
            from_height,
            blocks,
            reorgs: self.history.reorgs.iter().cloned().collect(),
        }
    }

    /// Answers [`super::Command::Metrics`]: the registry in Prometheus text format.
    pub(super) fn metrics_command(&self, reply: Reply<String>) {
        let text = self.metrics.encode(Gauges {
            height: self.chain.height(),
            peers: self.book.connected_count(),
            mempool: self.mempool.len(),
            side_blocks: self.chain.side_block_count(),
            orphans: self.chain.orphan_count(),
            syncing: self.sync.active_peer().is_some(),
        });
        let _ = reply.send(Ok(text));
    }
}

#[cfg(test)]
mod tests {
    use super::super::state::fixtures::{mined_child, TestNode};
    use super::*;
    use crate::ledger::pow::MiningOutcome;
    use crate::ledger::Address;

    #[test]
    fn the_source_memory_forgets_the_oldest_block_first() {
        let mut history = History::default();
        for i in 0..=MAX_SOURCES {
            let mut bytes = [0; 32];
            bytes[..8].copy_from_slice(&(i as u64).to_le_bytes());
            history.remember(BlockHash(bytes), "mined");
        }
        assert_eq!(history.order.len(), MAX_SOURCES);
        assert_eq!(history.sources.len(), MAX_SOURCES);
        assert_eq!(history.source(&BlockHash([0; 32])), None);
    }

    #[test]
    fn the_tree_shows_a_side_branch_and_the_reorg_that_left_it_behind() {
        let mut node = TestNode::new();
        let params = node.state.params.clone();
        let genesis = params.genesis();
        let ours = mined_child(&params, &genesis, node.state.address, params.reward);
        node.state.on_mined(0, MiningOutcome::Found(ours.clone()));
        let peer = node.connected_peer();
        let theirs_1 = mined_child(&params, &genesis, Address([9; 20]), params.reward);
        let theirs_2 = mined_child(&params, &theirs_1, Address([9; 20]), params.reward);
        // The child first (it waits as an orphan), then its parent, which ties our block but
        // brings the child with it.
        for block in [theirs_2.clone(), theirs_1.clone()] {
            node.feed(crate::net::NetEvent::GossipBlock {
                from: peer,
                message: crate::net::MessageToken(vec![1; 32]),
                block,
            });
        }
        let tree = node.state.tree_view(10);
        assert_eq!(tree.height, 2);
        assert_eq!(tree.tip, theirs_2.block_hash());
        let ours_view = tree
            .blocks
            .iter()
            .find(|b| b.hash == ours.block_hash())
            .expect("the losing block stays in the tree");
        assert!(!ours_view.on_main);
        assert_eq!(ours_view.source.as_deref(), Some("mined"));
        let theirs_view = tree
            .blocks
            .iter()
            .find(|b| b.hash == theirs_1.block_hash())
            .expect("the winning branch is in the tree");
        assert!(theirs_view.on_main);
        assert_eq!(theirs_view.source, Some(peer.to_string()));
        assert_eq!(tree.reorgs.len(), 1);
        assert_eq!(tree.reorgs[0].disconnected, vec![ours.block_hash()]);
    }

    #[test]
    fn the_tree_holds_no_block_deeper_than_asked() {
        let mut node = TestNode::new();
        let params = node.state.params.clone();
        let mut parent = params.genesis();
        for _ in 0..5 {
            let block = mined_child(&params, &parent, node.state.address, params.reward);
            node.state.on_mined(0, MiningOutcome::Found(block.clone()));
            parent = block;
        }
        let tree = node.state.tree_view(2);
        assert_eq!(tree.from_height, 3);
        assert_eq!(tree.blocks.len(), 3);
        assert!(tree.blocks.iter().all(|b| b.height >= 3 && b.on_main));
    }
}
