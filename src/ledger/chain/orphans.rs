//! The orphan pool: checked blocks whose parent is not in the tree yet, waiting for it.
//!
//! Rules kept:
//! - only blocks that passed [`Block::validate`] enter (the pool holds [`CheckedBlock`]s);
//! - the pool is bounded by [`MAX_ORPHANS`] blocks and [`MAX_ORPHAN_BYTES`] encoded bytes;
//!   past either, the oldest entered orphan is evicted and forgotten (it may be fetched again);
//! - the block to fetch for a new orphan is the first ancestor the pool lacks too: the parent
//!   of its oldest ancestor in the pool;
//! - when a parent arrives, its waiting children leave the pool together
//!   ([`OrphanPool::take_children`]); when a block is found invalid, everything waiting on it
//!   leaves the pool ([`OrphanPool::remove_descendants`]) for the chain to remember as invalid.
//!
//! [`Block::validate`]: crate::ledger::block::Block::validate

use std::collections::VecDeque;

use crate::ledger::digest_map::DigestMap;

use crate::ledger::block::CheckedBlock;
use crate::ledger::hash::BlockHash;

/// Cap on the number of blocks held in the orphan pool.
pub const MAX_ORPHANS: usize = 512;

/// Cap on the total encoded size of the blocks held in the orphan pool.
pub const MAX_ORPHAN_BYTES: usize = 64 * 1024 * 1024;

/// A block whose parent is not in the tree yet.
#[derive(Debug)]
struct Orphan {
    block: CheckedBlock,
    /// Entry order, to find the oldest for eviction.
    seq: u64,
    bytes: usize,
}

/// Blocks waiting for their parent, bounded in count and bytes.
#[derive(Debug, Default)]
pub(super) struct OrphanPool {
    orphans: DigestMap<BlockHash, Orphan>,
    by_parent: DigestMap<BlockHash, Vec<BlockHash>>,
    /// Orphans in entry order (entries of orphans that already left are skipped lazily).
    queue: VecDeque<(u64, BlockHash)>,
    bytes: usize,
    next_seq: u64,
}

impl OrphanPool {
    /// True if the block waits in the pool.
    pub(super) fn contains(&self, hash: &BlockHash) -> bool {
        self.orphans.contains_key(hash)
    }

    /// True if some orphan waits for `parent`.
    pub(super) fn has_children(&self, parent: &BlockHash) -> bool {
        self.by_parent.contains_key(parent)
    }

    /// Number of blocks in the pool.
    pub(super) fn len(&self) -> usize {
        self.orphans.len()
    }

    /// Puts a block into the pool, evicting the oldest past the caps, and returns the missing
    /// ancestor to fetch.
    pub(super) fn insert(&mut self, hash: BlockHash, block: CheckedBlock) -> BlockHash {
        let parent = block.header.prev_hash;
        let bytes = block.encoded_len();
        let seq = self.next_seq;
        self.next_seq += 1;
        self.orphans.insert(hash, Orphan { block, seq, bytes });
        self.by_parent.entry(parent).or_default().push(hash);
        self.queue.push_back((seq, hash));
        self.bytes += bytes;
        while self.orphans.len() > MAX_ORPHANS || self.bytes > MAX_ORPHAN_BYTES {
            let Some((seq, oldest)) = self.queue.pop_front() else {
                break;
            };
            if self.orphans.get(&oldest).is_some_and(|o| o.seq == seq) {
                if let Some(o) = self.take(&oldest) {
                    let p = o.block.header.prev_hash;
                    if let Some(siblings) = self.by_parent.get_mut(&p) {
                        siblings.retain(|h| *h != oldest);
                        if siblings.is_empty() {
                            self.by_parent.remove(&p);
                        }
                    }
                }
            }
        }
        if self.queue.len() > 2 * MAX_ORPHANS {
            let live = &self.orphans;
            self.queue
                .retain(|(s, h)| live.get(h).is_some_and(|o| o.seq == *s));
        }
        // The block to fetch is the parent of the oldest orphan ancestor in the pool.
        let mut missing = parent;
        for _ in 0..MAX_ORPHANS {
            match self.orphans.get(&missing) {
                Some(o) => missing = o.block.header.prev_hash,
                None => break,
            }
        }
        missing
    }

    /// Takes the orphans waiting for `parent` out of the pool, in the order they entered.
    pub(super) fn take_children(&mut self, parent: &BlockHash) -> Vec<(BlockHash, CheckedBlock)> {
        let children = self.by_parent.remove(parent).unwrap_or_default();
        children
            .into_iter()
            .filter_map(|child| self.take(&child).map(|o| (child, o.block)))
            .collect()
    }

    /// Takes every orphan descending from `root` out of the pool and returns their hashes,
    /// parents before children.
    pub(super) fn remove_descendants(&mut self, root: BlockHash) -> Vec<BlockHash> {
        let mut removed = Vec::new();
        let mut stack = vec![root];
        while let Some(parent) = stack.pop() {
            for child in self.by_parent.remove(&parent).unwrap_or_default() {
                if self.take(&child).is_some() {
                    removed.push(child);
                    stack.push(child);
                }
            }
        }
        removed
    }

    /// Removes an orphan from the map and the byte count (not from its parent's list).
    fn take(&mut self, hash: &BlockHash) -> Option<Orphan> {
        let orphan = self.orphans.remove(hash)?;
        self.bytes = self.bytes.saturating_sub(orphan.bytes);
        Some(orphan)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::block::Block;
    use crate::ledger::chain::fixtures::*;
    use crate::ledger::chain::{Chain, Placement};

    fn checked(block: &Block) -> CheckedBlock {
        block.clone().validate(&params()).unwrap()
    }

    #[test]
    fn the_block_to_fetch_is_the_parent_of_the_oldest_waiting_ancestor() {
        let p = params();
        let b = branch(&p, &p.genesis(), miner(1), 4);
        let mut pool = OrphanPool::default();
        assert_eq!(
            pool.insert(b[3].block_hash(), checked(&b[3])),
            b[2].block_hash()
        );
        assert_eq!(
            pool.insert(b[1].block_hash(), checked(&b[1])),
            b[0].block_hash()
        );
        // b2 links b1 and b3: everything waits on b0 now.
        assert_eq!(
            pool.insert(b[2].block_hash(), checked(&b[2])),
            b[0].block_hash()
        );
        assert_eq!(pool.len(), 3);
    }

    #[test]
    fn removing_descendants_takes_the_whole_waiting_subtree_and_nothing_else() {
        let p = params();
        let b = branch(&p, &p.genesis(), miner(1), 3);
        let other = child(&p, &p.genesis(), miner(2), vec![]);
        let other_child = child(&p, &other, miner(2), vec![]);
        let mut pool = OrphanPool::default();
        for blk in [&b[1], &b[2], &other_child] {
            pool.insert(blk.block_hash(), checked(blk));
        }
        assert_eq!(
            pool.remove_descendants(b[0].block_hash()),
            vec![b[1].block_hash(), b[2].block_hash()]
        );
        assert_eq!(pool.len(), 1);
        assert!(pool.contains(&other_child.block_hash()));
        assert!(pool.take_children(&b[0].block_hash()).is_empty());
        let adopted = pool.take_children(&other.block_hash());
        assert_eq!(adopted.len(), 1);
        assert_eq!(adopted[0].0, other_child.block_hash());
        assert_eq!(pool.bytes, 0, "the byte count follows the blocks out");
    }

    #[test]
    fn an_orphan_is_adopted_when_its_parent_arrives() {
        let p = params();
        let mut chain = Chain::new(p.clone());
        let b = branch(&p, &p.genesis(), miner(1), 3);
        let acc = accept(&mut chain, &b[2]);
        assert_eq!(
            acc.placement,
            Placement::Orphan {
                missing: b[1].block_hash()
            }
        );
        assert!(chain.is_orphan(&b[2].block_hash()));
        assert!(chain.knows(&b[2].block_hash()));
        // With b2 in the pool too, the block to fetch is the one below both.
        assert_eq!(
            accept(&mut chain, &b[1]).placement,
            Placement::Orphan {
                missing: b[0].block_hash()
            }
        );
        assert_eq!(chain.orphan_count(), 2);
        assert_eq!(chain.height(), 0);
        let acc = accept(&mut chain, &b[0]);
        assert_eq!(acc.placement, Placement::MainChain);
        let change = acc.tip_change.unwrap();
        assert_eq!(hashes(&change.connected), hashes_of(&b));
        assert_eq!(chain.tip(), b[2].block_hash());
        assert_eq!(chain.orphan_count(), 0);
    }

    #[test]
    fn a_valid_parent_that_brings_an_invalid_orphan_is_not_itself_reported_invalid() {
        let p = params();
        let mut chain = Chain::new(p.clone());
        let b1 = child(&p, &p.genesis(), miner(1), vec![]);
        let mut b2 = child(&p, &b1, miner(2), vec![]);
        set_coinbase(&mut b2, |cb| cb.amount += 1);
        let b2 = mine(reroot(b2));
        assert!(!accept(&mut chain, &b2).offered_block_invalid());
        let acc = accept(&mut chain, &b1);
        assert_eq!(acc.placement, Placement::MainChain);
        assert_eq!(acc.invalid.len(), 1, "the orphan b2 failed on connection");
        assert!(!acc.offered_block_invalid(), "b1 itself is valid");
    }

    #[test]
    fn the_orphan_pool_evicts_the_oldest_past_its_cap() {
        let p = params();
        let mut chain = Chain::new(p.clone());
        // Children of one unknown parent, distinguished by their miner and timestamp.
        let unknown = child(&p, &p.genesis(), miner(1), vec![]);
        let orphans: Vec<Block> = (0..MAX_ORPHANS + 5)
            .map(|i| child_at(&p, &unknown, miner(2), vec![], 1 + i as u64))
            .collect();
        for o in &orphans {
            accept(&mut chain, o);
        }
        assert_eq!(chain.orphan_count(), MAX_ORPHANS);
        for o in &orphans[..5] {
            assert!(!chain.knows(&o.block_hash()), "oldest evicted");
        }
        assert!(chain.is_orphan(&orphans[MAX_ORPHANS + 4].block_hash()));
        assert!(chain.orphans.queue.len() <= 2 * MAX_ORPHANS + 1);
        // The parent adopts those left; they compete at equal work and the first seen wins.
        accept(&mut chain, &unknown);
        assert_eq!(chain.side_block_count(), MAX_ORPHANS - 1);
        assert!(orphans[5..]
            .iter()
            .all(|o| chain.block(&o.block_hash()).is_some()));
        assert_eq!(chain.tip(), orphans[5].block_hash());
        assert_eq!(chain.orphan_count(), 0);
    }
}
