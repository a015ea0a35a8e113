//! The early-block memory: blocks whose only fault was a timestamp past the local clock's limit,
//! so that a copy sent again is refused by one lookup instead of being checked again.
//!
//! Rules kept:
//! - only a block whose header passed every other header rule (work, height, median time past)
//!   is remembered: an early block is nobody's fault, and remembering costs its sender a mined
//!   header;
//! - an entry is forgotten once its timestamp is no longer early, or [`EARLY_TTL_MS`] after it
//!   was remembered, whichever comes first: then the block is checked like any other;
//! - the memory is bounded by [`MAX_EARLY`] blocks, oldest forgotten first.
//!
//! Only hashes and timestamps are kept, never bodies. The chain (`mod.rs`) decides what to
//! remember; this file imports nothing from it.

use std::collections::VecDeque;

use super::context::MAX_FUTURE_DRIFT_MS;
use crate::ledger::block::BlockError;
use crate::ledger::hash::BlockHash;

/// Cap on the number of early blocks remembered.
pub const MAX_EARLY: usize = 256;

/// How long an early block is remembered: 10 minutes in milliseconds.
pub const EARLY_TTL_MS: u64 = 10 * 60 * 1000;

/// One remembered early block.
#[derive(Debug, Clone, Copy)]
struct Early {
    hash: BlockHash,
    timestamp: u64,
    seen_ms: u64,
}

/// Recently seen early blocks, bounded and time-limited.
#[derive(Debug, Default)]
pub(super) struct EarlySet {
    entries: VecDeque<Early>,
}

/// True while `timestamp` is past the local clock's limit at `now_ms`.
fn is_early(timestamp: u64, now_ms: u64) -> bool {
    timestamp > now_ms.saturating_add(MAX_FUTURE_DRIFT_MS)
}

impl EarlySet {
    /// The error to report again if `hash` is remembered and still early at `now_ms`. Entries
    /// no longer early, or older than [`EARLY_TTL_MS`], are forgotten first.
    pub(super) fn still_early(&mut self, hash: &BlockHash, now_ms: u64) -> Option<BlockError> {
        self.entries.retain(|e| {
            now_ms.saturating_sub(e.seen_ms) <= EARLY_TTL_MS && is_early(e.timestamp, now_ms)
        });
        self.entries
            .iter()
            .find(|e| e.hash == *hash)
            .map(|e| BlockError::TimestampTooFarAhead {
                now: now_ms,
                got: e.timestamp,
            })
    }

    /// Remembers an early block, forgetting the oldest past [`MAX_EARLY`].
    pub(super) fn remember(&mut self, hash: BlockHash, timestamp: u64, now_ms: u64) {
        if self.entries.iter().any(|e| e.hash == hash) {
            return;
        }
        self.entries.push_back(Early {
            hash,
            timestamp,
            seen_ms: now_ms,
        });
        while self.entries.len() > MAX_EARLY {
            self.entries.pop_front();
        }
    }

    /// Number of blocks remembered.
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.entries.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::chain::fixtures::{self, accept, addr_of, child, child_at, key, params};
    use crate::ledger::chain::{Chain, Placement};
    use crate::ledger::transaction::{Transaction, TxError};

    fn hash(i: usize) -> BlockHash {
        let mut bytes = [0u8; 32];
        bytes[..8].copy_from_slice(&(i as u64).to_le_bytes());
        BlockHash(bytes)
    }

    const NOW: u64 = 1_000_000_000;
    const AHEAD: u64 = NOW + MAX_FUTURE_DRIFT_MS + 60 * 60 * 1000;

    /// A chain at height 1, paying `alice`, and a child of it holding a transfer from her whose
    /// signature is broken, `gap` ms after block 1.
    fn chain_and_broken_child(gap: u64) -> (Chain, Block) {
        let p = params();
        let alice = key(1);
        let mut chain = Chain::new(p.clone());
        let b1 = child(&p, &p.genesis(), addr_of(&alice), vec![]);
        accept(&mut chain, &b1);
        let transfer =
            Transaction::sign_transfer(&alice, &p.network_id(), fixtures::miner(3), 5, 0, 0);
        let mut broken = child_at(&p, &b1, fixtures::miner(2), vec![transfer], gap);
        if let Transaction::Transfer { signature, .. } = &mut broken.transactions[1] {
            signature.0[0] ^= 1;
        }
        (chain, broken)
    }

    use crate::ledger::block::Block;

    #[test]
    fn an_early_block_is_refused_by_its_header_before_its_signatures_are_checked() {
        let (mut chain, broken) = chain_and_broken_child(0);
        let now = fixtures::NOW;
        let mut early = broken.clone();
        early.header.timestamp = now + MAX_FUTURE_DRIFT_MS + 3 * 60 * 60 * 1000;
        let early = fixtures::mine(early);
        assert_eq!(
            chain.accept_block(early.clone(), now),
            Err(BlockError::TimestampTooFarAhead {
                now,
                got: early.header.timestamp
            }),
            "the clock rule, not the broken signature"
        );
        assert_eq!(chain.early.len(), 1, "remembered as early");
        assert!(!chain.is_known_invalid(&early.block_hash()), "not invalid");
        // Sent again, it is refused from memory.
        assert!(matches!(
            chain.accept_block(early, now + 1_000),
            Err(BlockError::TimestampTooFarAhead { .. })
        ));
        assert_eq!(chain.early.len(), 1);
    }

    #[test]
    fn an_early_block_is_accepted_once_its_time_has_come() {
        let p = params();
        let mut chain = Chain::new(p.clone());
        let b1 = child(&p, &p.genesis(), fixtures::miner(1), vec![]);
        accept(&mut chain, &b1);
        let now = b1.header.timestamp;
        let b2 = child_at(
            &p,
            &b1,
            fixtures::miner(1),
            vec![],
            MAX_FUTURE_DRIFT_MS + 60_000,
        );
        assert!(matches!(
            chain.accept_block(b2.clone(), now),
            Err(BlockError::TimestampTooFarAhead { .. })
        ));
        let later = now + 60_000;
        assert_eq!(
            chain.accept_block(b2, later).map(|a| a.placement),
            Ok(Placement::MainChain)
        );
    }

    #[test]
    fn an_early_orphan_is_refused_by_its_header_too() {
        let p = params();
        let mut chain = Chain::new(p.clone());
        let b1 = child(&p, &p.genesis(), fixtures::miner(1), vec![]);
        let b2 = child_at(&p, &b1, fixtures::miner(1), vec![], 3 * MAX_FUTURE_DRIFT_MS);
        assert!(matches!(
            chain.accept_block(b2, b1.header.timestamp),
            Err(BlockError::TimestampTooFarAhead { .. })
        ));
        assert_eq!(chain.orphan_count(), 0);
        assert_eq!(chain.early.len(), 1);
    }

    #[test]
    fn a_block_under_the_median_time_is_refused_before_its_signatures_are_checked() {
        // Block 2 at the same time as block 1: not later than the median time past.
        let (mut chain, broken) = chain_and_broken_child(0);
        assert!(matches!(
            chain.accept_block(broken.clone(), fixtures::NOW),
            Err(BlockError::TimestampTooOld { .. })
        ));
        assert!(chain.is_known_invalid(&broken.block_hash()));
    }

    #[test]
    fn a_timely_block_with_a_broken_signature_still_fails_on_its_signature() {
        let (mut chain, broken) = chain_and_broken_child(1_000);
        assert_eq!(
            chain.accept_block(broken, fixtures::NOW),
            Err(BlockError::Transaction {
                index: 0,
                source: TxError::BadSignature
            })
        );
        assert_eq!(chain.early.len(), 0);
    }

    #[test]
    fn a_remembered_block_is_reported_early_again_without_a_check() {
        let mut set = EarlySet::default();
        set.remember(hash(1), AHEAD, NOW);
        assert_eq!(
            set.still_early(&hash(1), NOW + 1),
            Some(BlockError::TimestampTooFarAhead {
                now: NOW + 1,
                got: AHEAD
            })
        );
        assert_eq!(set.still_early(&hash(2), NOW + 1), None);
    }

    #[test]
    fn an_entry_is_forgotten_after_ten_minutes() {
        let mut set = EarlySet::default();
        set.remember(hash(1), AHEAD, NOW);
        assert!(set.still_early(&hash(1), NOW + EARLY_TTL_MS).is_some());
        assert_eq!(set.still_early(&hash(1), NOW + EARLY_TTL_MS + 1), None);
        assert_eq!(set.len(), 0);
    }

    #[test]
    fn an_entry_is_forgotten_once_its_time_has_come() {
        let mut set = EarlySet::default();
        let soon = NOW + MAX_FUTURE_DRIFT_MS + 1_000;
        set.remember(hash(1), soon, NOW);
        assert!(set.still_early(&hash(1), NOW).is_some());
        assert_eq!(set.still_early(&hash(1), NOW + 1_000), None);
    }

    #[test]
    fn the_memory_forgets_the_oldest_block_past_its_cap() {
        let mut set = EarlySet::default();
        for i in 0..=MAX_EARLY {
            set.remember(hash(i), AHEAD, NOW);
        }
        set.remember(hash(MAX_EARLY), AHEAD, NOW);
        assert_eq!(set.len(), MAX_EARLY, "a repeat is not counted twice");
        assert_eq!(set.still_early(&hash(0), NOW), None);
        assert!(set.still_early(&hash(1), NOW).is_some());
        assert!(set.still_early(&hash(MAX_EARLY), NOW).is_some());
    }
}
