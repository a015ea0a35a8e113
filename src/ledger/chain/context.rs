//! The contextual header rules: what a block's header must meet given its parent and the local
//! clock, checked after the context-free rules and before the block enters the tree.
//!
//! Rules kept, in this order (see `proto-notes/consensus.md`, step 6):
//! - `BadHeight`: the height is the parent's plus one;
//! - `TimestampTooOld`: the timestamp is strictly greater than the median time past at the
//!   parent: the median of the timestamps of the parent and its ancestors, up to
//!   [`MEDIAN_TIME_SPAN`] blocks (fewer near genesis);
//! - `TimestampTooFarAhead`: the timestamp is at most [`MAX_FUTURE_DRIFT_MS`] ahead of the
//!   local clock (exactly that much is accepted).
//!
//! The functions here take the numbers they need and import nothing from the chain.

use crate::ledger::block::{BlockError, BlockHeader};

/// Number of blocks whose median timestamp a new block's timestamp must exceed.
pub const MEDIAN_TIME_SPAN: usize = 11;

/// How far ahead of the local clock a block's timestamp may be: 2 hours in milliseconds.
pub const MAX_FUTURE_DRIFT_MS: u64 = 2 * 60 * 60 * 1000;

/// The median of `times` (the parent's timestamp and its ancestors', at most
/// [`MEDIAN_TIME_SPAN`]): the element at index `len / 2` once sorted, or 0 for none.
pub(super) fn median_time(mut times: Vec<u64>) -> u64 {
    times.sort_unstable();
    times.get(times.len() / 2).copied().unwrap_or(0)
}

/// Checks `header` against its parent's height, the median time past at the parent and the
/// local clock `now_ms`.
///
/// # Errors
/// The [`BlockError`] of the first rule broken, in the order of the module doc.
pub(super) fn check_header_context(
    header: &BlockHeader,
    parent_height: u64,
    median: u64,
    now_ms: u64,
) -> Result<(), BlockError> {
    let expected = parent_height.saturating_add(1);
    if header.height != expected {
        return Err(BlockError::BadHeight {
            expected,
            got: header.height,
        });
    }
    if header.timestamp <= median {
        return Err(BlockError::TimestampTooOld {
            median,
            got: header.timestamp,
        });
    }
    check_not_early(header, now_ms)
}

/// The clock rule alone, for a block whose parent is not in the tree yet: the timestamp is at
/// most [`MAX_FUTURE_DRIFT_MS`] ahead of `now_ms`.
///
/// # Errors
/// [`BlockError::TimestampTooFarAhead`].
pub(super) fn check_not_early(header: &BlockHeader, now_ms: u64) -> Result<(), BlockError> {
    if header.timestamp > now_ms.saturating_add(MAX_FUTURE_DRIFT_MS) {
        return Err(BlockError::TimestampTooFarAhead {
            now: now_ms,
            got: header.timestamp,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::chain::fixtures::*;
    use crate::ledger::chain::{Chain, Placement};
    use crate::ledger::hash::{BlockHash, TxRoot};
    use crate::ledger::transaction::Transaction;

    fn header(height: u64, timestamp: u64) -> BlockHeader {
        BlockHeader {
            height,
            prev_hash: BlockHash::ZERO,
            tx_root: TxRoot::ZERO,
            timestamp,
            difficulty: 0,
            nonce: 0,
        }
    }

    #[test]
    fn the_median_is_the_middle_timestamp_whatever_their_order() {
        assert_eq!(median_time(vec![]), 0);
        assert_eq!(median_time(vec![5]), 5);
        assert_eq!(median_time(vec![9, 1, 5]), 5);
        assert_eq!(
            median_time(vec![4, 1, 3, 2]),
            3,
            "index len / 2 of the sorted list"
        );
    }

    #[test]
    fn the_height_rule_comes_before_the_time_rules() {
        assert_eq!(
            check_header_context(&header(5, 0), 3, 10, 0),
            Err(BlockError::BadHeight {
                expected: 4,
                got: 5
            })
        );
        assert_eq!(
            check_header_context(&header(4, 10), 3, 10, 0),
            Err(BlockError::TimestampTooOld {
                median: 10,
                got: 10
            })
        );
        assert_eq!(check_header_context(&header(4, 11), 3, 10, 11), Ok(()));
    }

    #[test]
    fn every_contextual_rule_is_reported_by_name() {
        let p = params();
        let mut chain = Chain::new(p.clone());
        let b = branch(&p, &p.genesis(), miner(1), 12);
        for blk in &b {
            accept(&mut chain, blk);
        }
        let tip = b.last().unwrap();
        let good = child(&p, tip, miner(2), vec![]);

        let mut bad_height = good.clone();
        bad_height.header.height += 1;
        if let Some(Transaction::Coinbase(cb)) = bad_height.transactions.first_mut() {
            cb.height += 1;
        }
        let bad_height = mine(reroot(bad_height));
        assert_eq!(
            chain.accept_block(bad_height.clone(), NOW),
            Err(BlockError::BadHeight {
                expected: 13,
                got: 14
            })
        );
        assert!(chain.is_known_invalid(&bad_height.block_hash()));
        let on_bad = child(&p, &bad_height, miner(2), vec![]);
        assert_eq!(
            chain.accept_block(on_bad, NOW),
            Err(BlockError::KnownInvalid)
        );

        let median = chain.median_time_past();
        assert_eq!(median, b[6].header.timestamp, "median of the last 11");
        let mut old = good.clone();
        old.header.timestamp = median;
        assert_eq!(
            chain.accept_block(mine(old), NOW),
            Err(BlockError::TimestampTooOld {
                median,
                got: median
            })
        );

        let mut ahead = good.clone();
        ahead.header.timestamp = NOW + MAX_FUTURE_DRIFT_MS + 1;
        let ahead = mine(ahead);
        assert_eq!(
            chain.accept_block(ahead.clone(), NOW),
            Err(BlockError::TimestampTooFarAhead {
                now: NOW,
                got: NOW + MAX_FUTURE_DRIFT_MS + 1
            })
        );
        assert!(!chain.knows(&ahead.block_hash()), "may be valid later");
        let later = NOW + 1_000;
        let acc = chain.accept_block(ahead.clone(), later).unwrap();
        assert_eq!(acc.placement, Placement::MainChain);

        let mut fake_genesis = p.genesis();
        fake_genesis.header.timestamp += 1;
        assert_eq!(
            chain.accept_block(fake_genesis, NOW),
            Err(BlockError::WrongGenesis)
        );
        assert_eq!(
            accept(&mut chain, &p.genesis()).placement,
            Placement::AlreadyKnown
        );
        assert_eq!(chain.tip(), ahead.block_hash());
    }

    #[test]
    fn the_exact_two_hour_limit_is_accepted() {
        let p = params();
        let mut chain = Chain::new(p.clone());
        let mut b1 = child(&p, &p.genesis(), miner(1), vec![]);
        let now = b1.header.timestamp;
        b1.header.timestamp = now + MAX_FUTURE_DRIFT_MS;
        let acc = chain.accept_block(mine(b1), now).unwrap();
        assert_eq!(acc.placement, Placement::MainChain);
    }
}
