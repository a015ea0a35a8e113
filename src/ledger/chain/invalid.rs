//! The invalid-block memory: hashes of blocks found invalid, so they are refused at once when
//! offered again, and so are their descendants.
//!
//! Rules kept:
//! - only failures the block hash commits to are remembered: a broken context rule the header
//!   fixes (height, median time past; see [`is_committed_by_header`]) or a broken state rule
//!   found when connecting. Structural failures are not: the header does not commit to
//!   signatures, so remembering would let a peer ban a valid block by sending it broken;
//! - nothing is remembered before the block's proof of work checked out: otherwise headers
//!   nobody mined, naming a known-invalid parent, would flush the memory for free;
//! - the memory is bounded by [`MAX_INVALID`] hashes, oldest forgotten first.
//!
//! The chain (`mod.rs`) decides what to remember, with each block's descendants; this file
//! imports nothing from it.

use std::collections::VecDeque;

use crate::ledger::digest_map::DigestSet;

use crate::ledger::block::BlockError;
use crate::ledger::hash::BlockHash;

/// Cap on the number of block hashes remembered as invalid.
pub const MAX_INVALID: usize = 16_384;

/// Hashes of invalid blocks, bounded, oldest forgotten first.
#[derive(Debug, Default)]
pub(super) struct InvalidSet {
    set: DigestSet<BlockHash>,
    queue: VecDeque<BlockHash>,
}

impl InvalidSet {
    /// True if the hash is remembered as invalid.
    pub(super) fn contains(&self, hash: &BlockHash) -> bool {
        self.set.contains(hash)
    }

    /// Remembers a hash, forgetting the oldest past [`MAX_INVALID`].
    pub(super) fn remember(&mut self, hash: BlockHash) {
        if self.set.insert(hash) {
            self.queue.push_back(hash);
            while self.queue.len() > MAX_INVALID {
                if let Some(old) = self.queue.pop_front() {
                    self.set.remove(&old);
                }
            }
        }
    }
}

/// True for failures fixed by the block hash itself (the header commits to them), which can be
/// remembered as invalid without risk of banning a valid block sent in a broken form.
pub(super) fn is_committed_by_header(e: &BlockError) -> bool {
    matches!(
        e,
        BlockError::BadHeight { .. } | BlockError::TimestampTooOld { .. }
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::chain::fixtures::*;
    use crate::ledger::chain::{Chain, Placement};
    use crate::ledger::transaction::Transaction;

    #[test]
    fn the_memory_forgets_the_oldest_hash_past_its_cap() {
        let mut set = InvalidSet::default();
        let hash = |i: usize| {
            let mut bytes = [0u8; 32];
            bytes[..8].copy_from_slice(&(i as u64).to_le_bytes());
            BlockHash(bytes)
        };
        for i in 0..=MAX_INVALID {
            set.remember(hash(i));
        }
        set.remember(hash(MAX_INVALID));
        assert!(!set.contains(&hash(0)), "the oldest is forgotten");
        assert!(set.contains(&hash(1)));
        assert!(set.contains(&hash(MAX_INVALID)));
        assert_eq!(
            set.queue.len(),
            MAX_INVALID,
            "a repeat is not counted twice"
        );
    }

    #[test]
    fn only_failures_the_header_commits_to_are_remembered() {
        assert!(is_committed_by_header(&BlockError::BadHeight {
            expected: 1,
            got: 2
        }));
        assert!(is_committed_by_header(&BlockError::TimestampTooOld {
            median: 1,
            got: 1
        }));
        assert!(!is_committed_by_header(&BlockError::TimestampTooFarAhead {
            now: 1,
            got: 2
        }));
        assert!(!is_committed_by_header(&BlockError::BadTxRoot));
    }

    #[test]
    fn a_block_with_a_broken_signature_is_not_remembered_so_the_valid_one_still_enters() {
        let p = params();
        let alice = key(1);
        let mut chain = Chain::new(p.clone());
        let b1 = child(&p, &p.genesis(), addr_of(&alice), vec![]);
        accept(&mut chain, &b1);
        let good = child(
            &p,
            &b1,
            miner(2),
            vec![Transaction::sign_transfer(
                &alice,
                &p.network_id(),
                miner(3),
                5,
                0,
                0,
            )],
        );
        let mut broken = good.clone();
        if let Transaction::Transfer { signature, .. } = &mut broken.transactions[1] {
            signature.0[0] ^= 1;
        }
        assert_eq!(broken.block_hash(), good.block_hash(), "same header");
        assert!(chain.accept_block(broken, NOW).is_err());
        assert!(!chain.is_known_invalid(&good.block_hash()));
        assert_eq!(accept(&mut chain, &good).placement, Placement::MainChain);
    }

    #[test]
    fn a_block_on_a_known_invalid_parent_is_remembered_only_once_its_work_checks_out() {
        let p = crate::ledger::NetworkParams::for_tests("invalid-pow", 8);
        let mut chain = Chain::new(p.clone());
        let b1 = child(&p, &p.genesis(), miner(1), vec![]);
        accept(&mut chain, &b1);
        // Block 2 at the time of block 1: not after the median time past, so invalid for good.
        let bad = child_at(&p, &b1, miner(1), vec![], 0);
        assert!(matches!(
            chain.accept_block(bad.clone(), NOW),
            Err(BlockError::TimestampTooOld { .. })
        ));
        assert!(chain.is_known_invalid(&bad.block_hash()));
        // Children of it that nobody mined would flush the memory at no cost: refused, not
        // remembered.
        let mined = child(&p, &bad, miner(1), vec![]);
        let mut unmined = mined.clone();
        while crate::ledger::block::meets_difficulty(&unmined.block_hash(), p.difficulty) {
            unmined.header.nonce += 1;
        }
        assert_eq!(
            chain.accept_block(unmined.clone(), NOW),
            Err(BlockError::BadProofOfWork)
        );
        assert!(!chain.is_known_invalid(&unmined.block_hash()));
        // A mined one is remembered with its parent.
        assert_eq!(
            chain.accept_block(mined.clone(), NOW),
            Err(BlockError::KnownInvalid)
        );
        assert!(chain.is_known_invalid(&mined.block_hash()));
    }

    #[test]
    fn descendants_of_a_block_that_fails_on_connection_are_remembered_with_it() {
        let p = params();
        let mut chain = Chain::new(p.clone());
        let b1 = child(&p, &p.genesis(), miner(1), vec![]);
        let mut b2 = child(&p, &b1, miner(2), vec![]);
        set_coinbase(&mut b2, |cb| cb.amount += 1);
        let b2 = mine(reroot(b2));
        let b3 = child(&p, &b2, miner(2), vec![]);
        let b4 = child(&p, &b3, miner(2), vec![]);
        accept(&mut chain, &b1);
        accept(&mut chain, &b4);
        assert!(chain.is_orphan(&b4.block_hash()));
        accept(&mut chain, &b3);
        assert_eq!(
            chain.accept_block(b2.clone(), NOW).unwrap_err(),
            BlockError::BadCoinbaseAmount {
                expected: p.reward,
                got: p.reward + 1
            }
        );
        for h in [&b2, &b3, &b4].map(|b| b.block_hash()) {
            assert!(chain.is_known_invalid(&h));
            assert!(chain.block(&h).is_none() && !chain.is_orphan(&h));
        }
        assert_eq!(chain.tip(), b1.block_hash());
    }
}
