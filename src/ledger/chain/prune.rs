//! Bounds on side branches: what the tree forgets so a peer cannot grow it without limit.
//!
//! Rules kept (run after every activation of the best chain):
//! - a side branch whose leaf is more than [`PRUNE_DEPTH`] blocks below the tip is removed,
//!   leaf first, down to the main chain or to the first block with other children;
//! - then, while more than [`MAX_SIDE_BLOCKS`] side blocks remain, whole branches go, the leaf
//!   with the least cumulative work first (the newest first among equals);
//! - main-chain blocks are never pruned, and a pruned block is forgotten, not remembered as
//!   invalid (it may come back and win later).

use super::Chain;
use crate::ledger::hash::BlockHash;

/// Side-branch blocks more than this many blocks below the tip are pruned.
pub const PRUNE_DEPTH: u64 = 1_000;

/// Cap on the number of side-branch blocks kept in the tree.
pub const MAX_SIDE_BLOCKS: usize = 4_096;

impl Chain {
    /// Bounds the side branches: drops branches whose leaf is more than [`PRUNE_DEPTH`] below
    /// the tip, then the branches with the least work while there are more than
    /// [`MAX_SIDE_BLOCKS`] side blocks. Main-chain blocks are never pruned.
    pub(super) fn prune(&mut self) {
        if self.leaves.len() <= 1 {
            return;
        }
        let tip_height = self.height();
        let mut side_leaves: Vec<(u128, u64, BlockHash, u64)> = self
            .leaves
            .iter()
            .filter(|h| !self.is_on_main_chain(h))
            .map(|h| {
                let e = self.entry(h);
                (e.work, e.seq, *h, e.height)
            })
            .collect();
        side_leaves.retain(|&(_, _, hash, height)| {
            if height.saturating_add(PRUNE_DEPTH) < tip_height {
                self.prune_branch(hash);
                false
            } else {
                true
            }
        });
        if self.side_block_count() <= MAX_SIDE_BLOCKS {
            return;
        }
        // Least work first; among equals the newest goes first.
        side_leaves.sort_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)));
        for (_, _, hash, _) in side_leaves {
            if self.side_block_count() <= MAX_SIDE_BLOCKS {
                break;
            }
            self.prune_branch(hash);
        }
    }

    /// Removes a side-branch leaf and its ancestors down to the main chain or to the first
    /// ancestor with other children.
    fn prune_branch(&mut self, leaf: BlockHash) {
        let mut cursor = leaf;
        loop {
            if self.is_on_main_chain(&cursor) {
                break;
            }
            let Some(e) = self.tree.get(&cursor) else {
                break;
            };
            if !e.children.is_empty() {
                break;
            }
            let parent = e.parent;
            self.remove_subtree(cursor);
            cursor = parent;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::chain::fixtures::*;

    #[test]
    fn side_branches_far_below_the_tip_are_pruned_but_the_main_chain_never() {
        let p = params();
        let mut chain = Chain::new(p.clone());
        let main = branch(&p, &p.genesis(), miner(1), PRUNE_DEPTH as usize + 3);
        let side = branch(&p, &p.genesis(), miner(2), 2);
        accept(&mut chain, &main[0]);
        accept(&mut chain, &main[1]);
        for blk in &side {
            accept(&mut chain, blk);
        }
        assert_eq!(chain.side_block_count(), 2);
        for blk in &main[2..] {
            accept(&mut chain, blk);
        }
        assert_eq!(chain.side_block_count(), 0);
        assert!(!chain.knows(&side[0].block_hash()));
        assert_eq!(chain.main_chain().count(), main.len() + 1);
        assert_eq!(chain.leaves.len(), 1);
        assert_eq!(chain.tree.len(), main.len() + 1);
    }

    #[test]
    fn the_side_block_cap_drops_the_lightest_branches_first() {
        let p = params();
        let mut chain = Chain::new(p.clone());
        let main = branch(&p, &p.genesis(), miner(1), 3);
        for blk in &main {
            accept(&mut chain, blk);
        }
        // One long side branch of equal length to main, then many one-block side branches.
        let heavy = branch(&p, &p.genesis(), miner(2), 3);
        for blk in &heavy {
            accept(&mut chain, blk);
        }
        for i in 0..MAX_SIDE_BLOCKS as u64 {
            let light = child_at(&p, &main[1], miner(3), vec![], 1 + i);
            accept(&mut chain, &light);
        }
        assert!(chain.side_block_count() <= MAX_SIDE_BLOCKS);
        assert!(
            chain.knows(&heavy[2].block_hash()),
            "the heaviest branch stays"
        );
        assert_eq!(chain.tip(), main[2].block_hash());
    }
}
