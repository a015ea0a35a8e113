//! A peer's chain learned as headers: checked one by one as they arrive, its work summed,
//! before any body is downloaded.
//!
//! Rules kept (see `proto-notes/consensus.md`, "Header chains"), for each header in order:
//! - `Unlinked`: its `prev_hash` is the hash of the header before it (the first one's is the
//!   base, a block in our tree);
//! - `BadHeight`: its height is the previous one's plus one;
//! - `WrongDifficulty`: its difficulty is the network's;
//! - `BadProofOfWork`: its hash meets that difficulty;
//! - `TimestampTooOld`: its timestamp is above the median time past over its ancestry (our tree
//!   up to the base, then the headers before it);
//! - a timestamp more than [`MAX_FUTURE_DRIFT_MS`] ahead of the local clock is not an error: the
//!   run stops before that header and [`Extended::early`] says so (the peer is not at fault).
//!
//! A header chain is bounded by [`MAX_HEADER_CHAIN`]. It imports only `context` from the chain.

use crate::ledger::digest_map::DigestMap;

use super::context::{median_time, MAX_FUTURE_DRIFT_MS, MEDIAN_TIME_SPAN};
use crate::ledger::block::{meets_difficulty, BlockHeader};
use crate::ledger::hash::BlockHash;
use crate::ledger::params::NetworkParams;

/// Most headers one peer's header chain may hold above its base; more is cut off.
pub const MAX_HEADER_CHAIN: usize = 1_000_000;

/// A block of our tree that a header chain starts from, with what the header rules need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Anchor {
    /// Its hash.
    pub hash: BlockHash,
    /// Its height.
    pub height: u64,
    /// Cumulative work from genesis up to and including it.
    pub work: u128,
    /// Timestamps of it and its ancestors, oldest first, at most [`MEDIAN_TIME_SPAN`].
    pub times: Vec<u64>,
}

/// Why a run of headers was refused: one variant per header rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    /// The header does not name the previous one as its parent.
    #[error("header {index} does not link to the header before it")]
    Unlinked {
        /// Position in the run.
        index: usize,
    },
    /// Height is not the parent's plus one.
    #[error("header {index}: height {got}, expected {expected}")]
    BadHeight {
        /// Position in the run.
        index: usize,
        /// Parent height plus one.
        expected: u64,
        /// The header's.
        got: u64,
    },
    /// The header's difficulty is not the network's.
    #[error("header {index}: difficulty {got} is not the network's")]
    WrongDifficulty {
        /// Position in the run.
        index: usize,
        /// The header's.
        got: u32,
    },
    /// The hash does not meet the difficulty.
    #[error("header {index}: proof of work does not meet the difficulty")]
    BadProofOfWork {
        /// Position in the run.
        index: usize,
    },
    /// Timestamp not above the median time past.
    #[error("header {index}: timestamp {got} is not after the median time past {median}")]
    TimestampTooOld {
        /// Position in the run.
        index: usize,
        /// Median time past.
        median: u64,
        /// The header's.
        got: u64,
    },
    /// The chain would grow over [`MAX_HEADER_CHAIN`].
    #[error("header chain over the cap of {MAX_HEADER_CHAIN} headers")]
    TooLong,
}

/// What one run added to a header chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Extended {
    /// Headers added.
    pub added: usize,
    /// True if the run stopped at a header too far in the future (not the peer's fault).
    pub early: bool,
}

/// A checked run of headers above an [`Anchor`] in our tree, with its cumulative work.
#[derive(Debug, Clone)]
pub struct HeaderChain {
    base: Anchor,
    headers: Vec<BlockHeader>,
    hashes: Vec<BlockHash>,
    index: DigestMap<BlockHash, usize>,
    work: u128,
}

impl HeaderChain {
    /// An empty header chain on `base`.
    pub fn new(base: Anchor) -> Self {
        let work = base.work;
        Self {
            base,
            headers: Vec::new(),
            hashes: Vec::new(),
            index: DigestMap::default(),
            work,
        }
    }

    /// The block of our tree it starts from.
    pub fn base(&self) -> &Anchor {
        &self.base
    }

    /// Cumulative work at its last header (the base's if it has none).
    pub fn work(&self) -> u128 {
        self.work
    }

    /// Hash of its last header (the base's if it has none).
    pub fn tip_hash(&self) -> BlockHash {
        self.hashes.last().copied().unwrap_or(self.base.hash)
    }

    /// Height of its last header.
    pub fn tip_height(&self) -> u64 {
        self.base.height + self.headers.len() as u64
    }

    /// Hashes above the base, lowest first.
    pub fn hashes(&self) -> &[BlockHash] {
        &self.hashes
    }

    /// Number of headers above the base.
    pub fn len(&self) -> usize {
        self.headers.len()
    }

    /// True if it holds no header above the base.
    pub fn is_empty(&self) -> bool {
        self.headers.is_empty()
    }

    /// Position of `hash` among the headers above the base.
    pub fn position(&self, hash: &BlockHash) -> Option<usize> {
        self.index.get(hash).copied()
    }

    /// Cuts the chain back to its first `len` headers (the peer answered from a lower point).
    pub fn truncate(&mut self, len: usize) {
        for hash in self.hashes.drain(len.min(self.hashes.len())..) {
            self.index.remove(&hash);
        }
        self.headers.truncate(len);
        self.work = self
            .headers
            .iter()
            .fold(self.base.work, |w, h| w.saturating_add(h.work()));
    }

    /// The timestamps the next header's median is taken over: the last [`MEDIAN_TIME_SPAN`] of
    /// the base's ancestry followed by the headers.
    fn window(&self) -> Vec<u64> {
        let mut times: Vec<u64> = self.base.times.clone();
        let skip = self.headers.len().saturating_sub(MEDIAN_TIME_SPAN);
        times.extend(self.headers[skip..].iter().map(|h| h.timestamp));
        let excess = times.len().saturating_sub(MEDIAN_TIME_SPAN);
        times.drain(..excess);
        times
    }

    /// Checks `run` header by header on top of the chain's last header and appends the valid
    /// ones. A header too far ahead of `now_ms` stops the run without an error.
    ///
    /// # Errors
    /// The [`HeaderError`] of the first rule broken; the headers before it are kept.
    pub fn extend(
        &mut self,
        run: &[BlockHeader],
        params: &NetworkParams,
        now_ms: u64,
    ) -> Result<Extended, HeaderError> {
        let mut window = self.window();
        let mut added = 0;
        for (index, header) in run.iter().enumerate() {
            if self.headers.len() >= MAX_HEADER_CHAIN {
                return Err(HeaderError::TooLong);
            }
            if header.prev_hash != self.tip_hash() {
                return Err(HeaderError::Unlinked { index });
            }
            let expected = self.tip_height() + 1;
            if header.height != expected {
                return Err(HeaderError::BadHeight {
                    index,
                    expected,
                    got: header.height,
                });
            }
            if header.difficulty != params.difficulty {
                return Err(HeaderError::WrongDifficulty {
                    index,
                    got: header.difficulty,
                });
            }
            let hash = header.block_hash();
            if !meets_difficulty(&hash, header.difficulty) {
                return Err(HeaderError::BadProofOfWork { index });
            }
            let median = median_time(window.clone());
            if header.timestamp <= median {
                return Err(HeaderError::TimestampTooOld {
                    index,
                    median,
                    got: header.timestamp,
                });
            }
            if header.timestamp > now_ms.saturating_add(MAX_FUTURE_DRIFT_MS) {
                return Ok(Extended { added, early: true });
            }
            window.push(header.timestamp);
            if window.len() > MEDIAN_TIME_SPAN {
                window.remove(0);
            }
            self.work = self.work.saturating_add(header.work());
            self.index.insert(hash, self.hashes.len());
            self.hashes.push(hash);
            self.headers.push(header.clone());
            added += 1;
        }
        Ok(Extended {
            added,
            early: false,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::chain::fixtures::*;
    use crate::ledger::chain::Chain;

    fn headers_of(blocks: &[crate::ledger::Block]) -> Vec<BlockHeader> {
        blocks.iter().map(|b| b.header.clone()).collect()
    }

    fn genesis_chain() -> (NetworkParams, HeaderChain) {
        let p = params();
        let chain = Chain::new(p.clone());
        let base = chain.anchor(&p.genesis_hash()).expect("genesis anchors");
        (p, HeaderChain::new(base))
    }

    #[test]
    fn a_valid_run_is_added_and_its_work_summed() {
        let (p, mut headers) = genesis_chain();
        let blocks = branch(&p, &p.genesis(), miner(1), 5);
        let out = headers.extend(&headers_of(&blocks), &p, NOW).unwrap();
        assert_eq!(
            out,
            Extended {
                added: 5,
                early: false
            }
        );
        assert_eq!(headers.tip_hash(), blocks[4].block_hash());
        assert_eq!(headers.tip_height(), 5);
        assert_eq!(headers.work(), 6);
        assert_eq!(headers.position(&blocks[2].block_hash()), Some(2));
    }

    #[test]
    fn a_run_that_does_not_link_is_unlinked_and_keeps_what_came_before() {
        let (p, mut headers) = genesis_chain();
        let blocks = branch(&p, &p.genesis(), miner(1), 4);
        let mut run = headers_of(&blocks);
        run.remove(2);
        assert_eq!(
            headers.extend(&run, &p, NOW),
            Err(HeaderError::Unlinked { index: 2 })
        );
        assert_eq!(headers.len(), 2);
    }

    #[test]
    fn a_header_without_its_proof_of_work_is_refused() {
        let p = NetworkParams::for_tests("headers-pow", 4);
        let chain = Chain::new(p.clone());
        let mut headers = HeaderChain::new(chain.anchor(&p.genesis_hash()).expect("genesis"));
        let mut run = headers_of(&branch(&p, &p.genesis(), miner(1), 1));
        while meets_difficulty(&run[0].block_hash(), run[0].difficulty) {
            run[0].nonce += 1;
        }
        assert_eq!(
            headers.extend(&run, &p, NOW),
            Err(HeaderError::BadProofOfWork { index: 0 })
        );
    }

    #[test]
    fn a_header_with_the_wrong_height_or_an_old_timestamp_is_refused() {
        let (p, mut headers) = genesis_chain();
        let mut run = headers_of(&branch(&p, &p.genesis(), miner(1), 1));
        run[0].height = 2;
        assert_eq!(
            headers.extend(&run, &p, NOW),
            Err(HeaderError::BadHeight {
                index: 0,
                expected: 1,
                got: 2
            })
        );
        let mut run = headers_of(&branch(&p, &p.genesis(), miner(1), 1));
        run[0].timestamp = p.genesis().header.timestamp;
        assert!(matches!(
            headers.extend(&run, &p, NOW),
            Err(HeaderError::TimestampTooOld { index: 0, .. })
        ));
        assert!(headers.is_empty());
    }

    #[test]
    fn a_header_from_the_future_stops_the_run_without_an_error() {
        let (p, mut headers) = genesis_chain();
        let blocks = branch(&p, &p.genesis(), miner(1), 3);
        let clock = blocks[1].header.timestamp - MAX_FUTURE_DRIFT_MS - 1;
        let out = headers.extend(&headers_of(&blocks), &p, clock).unwrap();
        assert_eq!(
            out,
            Extended {
                added: 1,
                early: true
            }
        );
    }

    #[test]
    fn truncating_drops_the_headers_above_and_their_work() {
        let (p, mut headers) = genesis_chain();
        let blocks = branch(&p, &p.genesis(), miner(1), 4);
        headers.extend(&headers_of(&blocks), &p, NOW).unwrap();
        headers.truncate(1);
        assert_eq!(headers.tip_hash(), blocks[0].block_hash());
        assert_eq!(headers.work(), 2);
        assert_eq!(headers.position(&blocks[3].block_hash()), None);
    }
}
