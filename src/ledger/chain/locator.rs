//! Locators: how a node names its main chain to a peer, and how it answers a peer's.
//!
//! Rules kept (see `proto-notes/consensus.md`, "Block locator" and "Answering a locator"):
//! - a locator lists main-chain hashes newest first: the tip and the nine below it one by one,
//!   then steps that double, always ending at genesis, so its length is logarithmic in height;
//! - an answer starts after the first of at most [`MAX_LOCATOR_LEN`] locator hashes that is on
//!   our main chain (after genesis if none is), lists main-chain blocks in ascending height, and
//!   stops at the count and byte caps, except that the first block always goes.

use std::sync::Arc;

use super::Chain;
use crate::ledger::block::Block;
use crate::ledger::hash::BlockHash;

/// Locator entries looked at when answering a locator; the rest are ignored.
pub const MAX_LOCATOR_LEN: usize = 128;

/// Most recent main-chain hashes a locator lists one by one before it starts skipping.
const LOCATOR_DENSE: usize = 10;

impl Chain {
    /// The block locator: tip, about ten recent hashes, then exponentially back to genesis.
    ///
    /// Heights listed: the tip and the 9 below it one by one, then steps of 2, 4, 8, ...; the
    /// last entry is always genesis.
    pub fn locator(&self) -> Vec<BlockHash> {
        let mut out = Vec::new();
        let mut height = self.main.len().saturating_sub(1);
        let mut step = 1usize;
        loop {
            out.push(self.main[height]);
            if height == 0 {
                break;
            }
            if out.len() >= LOCATOR_DENSE {
                step = step.saturating_mul(2);
            }
            height = height.saturating_sub(step);
        }
        out
    }

    /// Main-chain blocks after the newest locator hash on our main chain, capped in count and bytes.
    ///
    /// The first of the (at most [`MAX_LOCATOR_LEN`]) locator hashes that is on our main chain
    /// is the starting point; if none is, the answer starts after genesis. Blocks are added in
    /// ascending height while the count stays within `max_blocks` and the encoded bytes within
    /// `max_bytes`, except that the first block is always included when `max_blocks > 0`.
    pub fn blocks_after_locator(
        &self,
        locator: &[BlockHash],
        max_blocks: usize,
        max_bytes: usize,
    ) -> Vec<Arc<Block>> {
        let start = locator
            .iter()
            .take(MAX_LOCATOR_LEN)
            .find(|h| self.is_on_main_chain(h))
            .map_or(0, |h| self.entry(h).height as usize)
            + 1;
        let mut out = Vec::new();
        let mut bytes = 0usize;
        for hash in self.main.iter().skip(start).take(max_blocks) {
            let e = self.entry(hash);
            if !out.is_empty() && bytes.saturating_add(e.bytes) > max_bytes {
                break;
            }
            bytes = bytes.saturating_add(e.bytes);
            out.push(Arc::clone(&e.block));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::chain::fixtures::*;

    #[test]
    fn a_locator_lists_ten_recent_hashes_then_doubles_back_to_genesis() {
        let p = params();
        let mut chain = Chain::new(p.clone());
        for blk in branch(&p, &p.genesis(), miner(1), 1_000) {
            accept(&mut chain, &blk);
        }
        let loc = chain.locator();
        let heights: Vec<u64> = loc.iter().map(|h| chain.height_of(h).unwrap()).collect();
        assert_eq!(
            heights[..10],
            [1000, 999, 998, 997, 996, 995, 994, 993, 992, 991]
        );
        assert_eq!(heights[10..14], [989, 985, 977, 961]);
        assert_eq!(*heights.last().unwrap(), 0);
        assert_eq!(*loc.last().unwrap(), p.genesis_hash());
        assert!(loc.len() <= 10 + 11, "logarithmic: {}", loc.len());
        assert!(heights.windows(2).all(|w| w[0] > w[1]));
        assert!(loc.iter().all(|h| chain.is_on_main_chain(h)));
    }

    #[test]
    fn blocks_after_a_locator_start_after_the_fork_and_respect_the_caps() {
        let p = params();
        let mut ours = Chain::new(p.clone());
        let mut theirs = Chain::new(p.clone());
        let shared = branch(&p, &p.genesis(), miner(1), 5);
        let our_tail = branch(&p, shared.last().unwrap(), miner(2), 20);
        let their_tail = branch(&p, shared.last().unwrap(), miner(3), 3);
        for blk in shared.iter().chain(&our_tail) {
            accept(&mut ours, blk);
        }
        for blk in shared.iter().chain(&their_tail) {
            accept(&mut theirs, blk);
        }
        let answer = ours.blocks_after_locator(&theirs.locator(), 100, usize::MAX);
        assert_eq!(hashes(&answer), hashes_of(&our_tail));
        // Count cap.
        let answer = ours.blocks_after_locator(&theirs.locator(), 7, usize::MAX);
        assert_eq!(hashes(&answer), hashes_of(&our_tail[..7]));
        // Byte cap: room for three blocks, and at least one even if none fits.
        let size = our_tail[0].encoded_len();
        let answer = ours.blocks_after_locator(&theirs.locator(), 100, 3 * size + size / 2);
        assert_eq!(answer.len(), 3);
        let answer = ours.blocks_after_locator(&theirs.locator(), 100, 1);
        assert_eq!(hashes(&answer), vec![our_tail[0].block_hash()]);
        assert!(ours
            .blocks_after_locator(&theirs.locator(), 0, usize::MAX)
            .is_empty());
        // Unknown hashes only: start after genesis.
        let answer = ours.blocks_after_locator(&[BlockHash([7; 32])], 2, usize::MAX);
        assert_eq!(hashes(&answer), hashes_of(&shared[..2]));
        // Our own locator: nothing is missing.
        assert!(ours
            .blocks_after_locator(&ours.locator(), 100, usize::MAX)
            .is_empty());
        // The answer lets them catch up.
        for blk in ours.blocks_after_locator(&theirs.locator(), 100, usize::MAX) {
            theirs.accept_block((*blk).clone(), NOW).unwrap();
        }
        assert_eq!(theirs.tip(), ours.tip());
    }
}
