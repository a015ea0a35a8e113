//! Locators: how a node names its main chain to a peer, and which blocks answer a peer's.
//!
//! Rules kept (see `proto-notes/consensus.md`, "Block locator" and "Answering a locator"):
//! - a locator lists main-chain hashes newest first: the tip and the nine below it one by one,
//!   then steps that double, always ending at genesis, so its length is logarithmic in height;
//! - an answer starts after the first of at most [`MAX_LOCATOR_LEN`] locator hashes that is on
//!   our main chain (after genesis if none is), lists main-chain blocks in ascending height, and
//!   stops at the count and byte caps, except that the first block always goes.
//!
//! The functions here work on the main chain handed to them and import nothing from the chain;
//! [`Chain::locator`] and [`Chain::blocks_after_locator`] call them.
//!
//! [`Chain::locator`]: super::Chain::locator
//! [`Chain::blocks_after_locator`]: super::Chain::blocks_after_locator

use std::sync::Arc;

use crate::ledger::block::Block;
use crate::ledger::hash::BlockHash;

/// Locator entries looked at when answering a locator; the rest are ignored.
pub const MAX_LOCATOR_LEN: usize = 128;

/// Most recent main-chain hashes a locator lists one by one before it starts skipping.
const LOCATOR_DENSE: usize = 10;

/// The locator of the main chain `main` (genesis first): heights tip, tip - 1, ... one by one
/// for [`LOCATOR_DENSE`] entries, then in steps of 2, 4, 8, ...; the last entry is always
/// genesis. Empty only if `main` is.
pub(super) fn build_locator(main: &[BlockHash]) -> Vec<BlockHash> {
    let mut out = Vec::new();
    let Some(mut height) = main.len().checked_sub(1) else {
        return out;
    };
    let mut step = 1usize;
    loop {
        out.push(main[height]);
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

/// The height an answer to `locator` starts after: that of the first of its (at most
/// [`MAX_LOCATOR_LEN`]) hashes to which `main_height` gives a main-chain height, or 0
/// (genesis) if none has one.
pub(super) fn answer_start(
    locator: &[BlockHash],
    main_height: impl Fn(&BlockHash) -> Option<u64>,
) -> u64 {
    locator
        .iter()
        .take(MAX_LOCATOR_LEN)
        .find_map(main_height)
        .unwrap_or(0)
}

/// The leading `blocks` (each with its encoded size) that fit in `max_blocks` and `max_bytes`;
/// the first always fits when `max_blocks > 0`.
pub(super) fn take_capped(
    blocks: impl Iterator<Item = (Arc<Block>, usize)>,
    max_blocks: usize,
    max_bytes: usize,
) -> Vec<Arc<Block>> {
    let mut out = Vec::new();
    let mut bytes = 0usize;
    for (block, size) in blocks.take(max_blocks) {
        if !out.is_empty() && bytes.saturating_add(size) > max_bytes {
            break;
        }
        bytes = bytes.saturating_add(size);
        out.push(block);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::chain::fixtures::*;
    use crate::ledger::chain::Chain;

    fn fake_chain(len: u8) -> Vec<BlockHash> {
        (0..len).map(|i| BlockHash([i; 32])).collect()
    }

    #[test]
    fn a_short_chain_is_listed_in_full_newest_first_down_to_genesis() {
        assert_eq!(build_locator(&fake_chain(1)), fake_chain(1));
        let mut all = fake_chain(10);
        all.reverse();
        assert_eq!(build_locator(&fake_chain(10)), all);
        assert!(build_locator(&[]).is_empty());
    }

    #[test]
    fn an_answer_starts_after_the_first_known_hash_among_the_first_128() {
        let main = fake_chain(200);
        let height = |h: &BlockHash| main.iter().position(|m| m == h).map(|i| i as u64);
        let unknown = BlockHash([0xff; 32]);
        assert_eq!(answer_start(&[unknown, main[7], main[9]], height), 7);
        assert_eq!(answer_start(&[unknown], height), 0);
        let mut long = vec![unknown; MAX_LOCATOR_LEN];
        long.push(main[5]);
        assert_eq!(
            answer_start(&long, height),
            0,
            "entries past the cap are ignored"
        );
    }

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
