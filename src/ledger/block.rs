//! Block headers, blocks, the transaction Merkle root, and the checks a block passes on its own.
//!
//! The header's canonical encoding is 92 bytes: height (8), previous hash (32), transaction root
//! (32), timestamp in ms (8), difficulty (4), nonce (8). The nonce sits in the last 8 bytes, so
//! a miner hashes the first 64-byte SHA-256 block once and then only the final block per nonce.
//! Context-free rules live here ([`Block::check_structure`]); rules that need the parent or
//! the account state live in the chain and the state modules, all reported as [`BlockError`].

use std::collections::HashSet;

use bincode::{Decode, Encode};

use super::encode::encoded_size;
use super::hash::{leading_zero_bits, sha256, BlockHash, NetworkId, TxId, TxRoot};
use super::params::{NetworkParams, DEFAULT_MAX_BLOCK_BYTES, DEFAULT_MAX_BLOCK_TXS};
use super::transaction::{verify_batch, Transaction, TxError};

/// The part of a block that is hashed: commits to the parent, the transactions and the work.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub struct BlockHeader {
    /// Number of blocks before this one; genesis is 0.
    pub height: u64,
    /// Hash of the parent block's header.
    pub prev_hash: BlockHash,
    /// Merkle root over the block's txids.
    pub tx_root: TxRoot,
    /// Milliseconds since the Unix epoch, as claimed by the miner.
    pub timestamp: u64,
    /// Leading zero bits the block hash must have; fixed per network.
    pub difficulty: u32,
    /// Varied by the miner until the hash meets the difficulty.
    pub nonce: u64,
}

impl BlockHeader {
    /// Length of the canonical header encoding.
    pub const ENCODED_LEN: usize = 92;
    /// Byte offset of the nonce inside the encoding.
    pub const NONCE_OFFSET: usize = 84;

    /// The canonical bytes that are hashed, written field by field in the layout above (the
    /// same bytes as the bincode encoding, without its allocation: every block hash needs
    /// them).
    pub fn encoded(&self) -> [u8; Self::ENCODED_LEN] {
        let mut out = [0u8; Self::ENCODED_LEN];
        out[..8].copy_from_slice(&self.height.to_le_bytes());
        out[8..40].copy_from_slice(&self.prev_hash.0);
        out[40..72].copy_from_slice(&self.tx_root.0);
        out[72..80].copy_from_slice(&self.timestamp.to_le_bytes());
        out[80..84].copy_from_slice(&self.difficulty.to_le_bytes());
        out[Self::NONCE_OFFSET..].copy_from_slice(&self.nonce.to_le_bytes());
        out
    }

    /// The header these canonical bytes encode (every 92 bytes encode one): how stored blocks,
    /// which begin with their header, give their header without decoding their transactions.
    pub fn from_encoded(bytes: &[u8; Self::ENCODED_LEN]) -> Self {
        let word = |at: usize| {
            let mut w = [0u8; 8];
            w.copy_from_slice(&bytes[at..at + 8]);
            u64::from_le_bytes(w)
        };
        let mut prev = [0u8; 32];
        prev.copy_from_slice(&bytes[8..40]);
        let mut root = [0u8; 32];
        root.copy_from_slice(&bytes[40..72]);
        let mut difficulty = [0u8; 4];
        difficulty.copy_from_slice(&bytes[80..84]);
        Self {
            height: word(0),
            prev_hash: BlockHash(prev),
            tx_root: TxRoot(root),
            timestamp: word(72),
            difficulty: u32::from_le_bytes(difficulty),
            nonce: word(Self::NONCE_OFFSET),
        }
    }

    /// SHA-256 of the canonical header: the block's identity.
    pub fn block_hash(&self) -> BlockHash {
        BlockHash(sha256(&self.encoded()))
    }

    /// Work this header proves: 2^difficulty expected hashes.
    pub fn work(&self) -> u128 {
        work_for(self.difficulty)
    }

    /// The rules a header keeps on its own, the cheapest of a block's: the network's difficulty
    /// and a hash (`hash`, this header's) that meets it. Checked before anything about the block
    /// is remembered, so remembering costs the sender a mined header.
    ///
    /// # Errors
    /// [`BlockError::WrongDifficulty`] or [`BlockError::BadProofOfWork`].
    pub fn check_work(&self, hash: &BlockHash, params: &NetworkParams) -> Result<(), BlockError> {
        if self.difficulty != params.difficulty {
            return Err(BlockError::WrongDifficulty {
                expected: params.difficulty,
                got: self.difficulty,
            });
        }
        if !meets_difficulty(hash, self.difficulty) {
            return Err(BlockError::BadProofOfWork);
        }
        Ok(())
    }
}

/// Expected number of hashes to find a block at `difficulty` bits (capped at 2^127).
pub fn work_for(difficulty: u32) -> u128 {
    1u128 << difficulty.min(127)
}

/// True when `hash` has at least `difficulty` leading zero bits.
pub fn meets_difficulty(hash: &BlockHash, difficulty: u32) -> bool {
    leading_zero_bits(&hash.0) >= difficulty
}

/// A header and its transactions, the coinbase first.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub struct Block {
    /// What is hashed and mined.
    pub header: BlockHeader,
    /// The coinbase, then the transfers.
    pub transactions: Vec<Transaction>,
}

/// Most memory decoding one block may claim: its bytes (at most the block cap) plus the room its
/// transaction list claims before the transactions are read (at most the count cap, each
/// `size_of::<Transaction>()`), so a block whose length prefix promises more is refused unread.
pub const BLOCK_DECODE_LIMIT: usize =
    DEFAULT_MAX_BLOCK_BYTES + DEFAULT_MAX_BLOCK_TXS * std::mem::size_of::<Transaction>();

crate::decode_limit!(Block, BLOCK_DECODE_LIMIT);

impl Block {
    /// The header's hash, the block's identity.
    pub fn block_hash(&self) -> BlockHash {
        self.header.block_hash()
    }

    /// The block's height.
    pub fn height(&self) -> u64 {
        self.header.height
    }

    /// Size of the canonical encoding in bytes, as capped by the network.
    pub fn encoded_len(&self) -> usize {
        encoded_size(self)
    }

    /// The ids of the block's transactions, in order.
    pub fn txids(&self) -> Vec<TxId> {
        self.transactions
            .iter()
            .map(Transaction::compute_txid)
            .collect()
    }

    /// Sum of the transfers' fees, or `None` on overflow.
    pub fn total_fees(&self) -> Option<u64> {
        self.transactions
            .iter()
            .try_fold(0u64, |acc, tx| acc.checked_add(tx.fee()))
    }

    /// Checks every rule that needs nothing but the block and the network parameters: sizes,
    /// difficulty and proof of work, the transaction root, the coinbase's place, duplicate
    /// transactions and every transfer's signature (verified as one batch).
    ///
    /// # Errors
    /// The [`BlockError`] of the first rule broken.
    pub fn check_structure(&self, params: &NetworkParams) -> Result<(), BlockError> {
        self.check_structure_but_signatures(params)?;
        self.check_signatures(&params.network_id())
    }

    /// The only way a block from outside (wire, miner, sync) becomes a [`CheckedBlock`]: every
    /// rule of [`Block::check_structure`].
    ///
    /// # Errors
    /// The [`BlockError`] of the first rule broken.
    pub fn validate(self, params: &NetworkParams) -> Result<CheckedBlock, BlockError> {
        let hash = self.check_structure_but_signatures(params)?;
        self.check_signatures(&params.network_id())?;
        Ok(CheckedBlock { block: self, hash })
    }

    /// The door for a block our own store wrote, and for nothing else: the store only holds
    /// blocks that passed [`Block::validate`] when they were accepted, so their signatures are
    /// assumed checked and not verified again. Every other rule of [`Block::check_structure`]
    /// is checked (it is cheap), so a damaged or foreign file is still refused.
    ///
    /// # Errors
    /// The [`BlockError`] of the first rule broken.
    pub fn assume_signatures_checked(
        self,
        params: &NetworkParams,
    ) -> Result<CheckedBlock, BlockError> {
        let hash = self.check_structure_but_signatures(params)?;
        Ok(CheckedBlock { block: self, hash })
    }

    /// The rules of [`Block::check_structure`] before signatures, in their order: the header's
    /// work first (one hash), then the sizes, then the body's shape. Returns the block's hash.
    fn check_structure_but_signatures(
        &self,
        params: &NetworkParams,
    ) -> Result<BlockHash, BlockError> {
        let hash = self.block_hash();
        self.header.check_work(&hash, params)?;
        let size = self.encoded_len();
        if size > params.max_block_bytes {
            return Err(BlockError::TooLarge {
                size,
                max: params.max_block_bytes,
            });
        }
        if self.transactions.len() > params.max_block_txs {
            return Err(BlockError::TooManyTransactions {
                count: self.transactions.len(),
                max: params.max_block_txs,
            });
        }
        let txids = self.txids();
        if compute_tx_root(&txids) != self.header.tx_root {
            return Err(BlockError::BadTxRoot);
        }
        match self.transactions.first() {
            Some(Transaction::Coinbase(cb)) => {
                if cb.height != self.header.height {
                    return Err(BlockError::BadCoinbaseHeight {
                        expected: self.header.height,
                        got: cb.height,
                    });
                }
            }
            _ => return Err(BlockError::MissingCoinbase),
        }
        if let Some(index) = self.transactions[1..]
            .iter()
            .position(Transaction::is_coinbase)
        {
            return Err(BlockError::ExtraCoinbase { index: index + 1 });
        }
        let mut seen = HashSet::with_capacity(txids.len());
        for id in &txids {
            if !seen.insert(*id) {
                return Err(BlockError::DuplicateTransaction(*id));
            }
        }
        Ok(hash)
    }

    /// Verifies every transfer's signature for `network` as one batch. Single and batch verification accept
    /// the same signatures (ZIP-215), so a failed batch rejects the block without a search for
    /// the culprit: it is reported as transaction 0 with a bad signature.
    fn check_signatures(&self, network: &NetworkId) -> Result<(), BlockError> {
        let transfers: Vec<&Transaction> = self.transactions.iter().skip(1).collect();
        verify_batch(&transfers, network).map_err(|_| BlockError::Transaction {
            index: 0,
            source: TxError::BadSignature,
        })
    }
}

/// Most transfers whose signatures one batch of [`validate_batch`] verifies on one core.
const SIGNATURE_CHUNK: usize = 2_048;

/// Validates a run of blocks as [`Block::validate`] would, cheap rules first: every rule but
/// signatures for each block in order (stopping at the first failure), then the signatures of
/// all the blocks before it in batches spread over the cores (rayon), one batch per chunk of
/// about [`SIGNATURE_CHUNK`] transfers; a chunk that fails is checked block by block to find the
/// first bad block. Returns the checked prefix and, if a block failed, its index, hash and rule.
pub fn validate_batch(
    blocks: Vec<Block>,
    params: &NetworkParams,
) -> (Vec<CheckedBlock>, Option<(usize, BlockHash, BlockError)>) {
    use rayon::prelude::*;
    let network = params.network_id();
    let mut failed = None;
    let mut cheap = Vec::with_capacity(blocks.len());
    for (i, block) in blocks.into_iter().enumerate() {
        match block.check_structure_but_signatures(params) {
            Ok(hash) => cheap.push(CheckedBlock { block, hash }),
            Err(e) => {
                failed = Some((i, block.block_hash(), e));
                break;
            }
        }
    }
    // Chunks of whole blocks, each about SIGNATURE_CHUNK transfers.
    let mut chunks: Vec<std::ops::Range<usize>> = Vec::new();
    let mut start = 0;
    let mut count = 0;
    for (i, block) in cheap.iter().enumerate() {
        count += block.transactions.len().saturating_sub(1);
        if count >= SIGNATURE_CHUNK {
            chunks.push(start..i + 1);
            start = i + 1;
            count = 0;
        }
    }
    if start < cheap.len() {
        chunks.push(start..cheap.len());
    }
    let first_bad = chunks
        .par_iter()
        .filter_map(|range| {
            let transfers: Vec<&Transaction> = cheap[range.clone()]
                .iter()
                .flat_map(|b| b.transactions.iter().skip(1))
                .collect();
            if verify_batch(&transfers, &network).is_ok() {
                return None;
            }
            range
                .clone()
                .find(|&i| cheap[i].check_signatures(&network).is_err())
        })
        .min();
    if let Some(bad) = first_bad {
        let hash = cheap[bad].hash;
        cheap.truncate(bad);
        failed = Some((
            bad,
            hash,
            BlockError::Transaction {
                index: 0,
                source: TxError::BadSignature,
            },
        ));
    }
    // The signatures of all before the first bad one are checked now.
    (cheap, failed)
}

/// A block that passed every context-free rule: made only by [`Block::validate`], or by
/// [`Block::assume_signatures_checked`] for a block our own store wrote. Only these enter the
/// chain's tree and orphan pool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckedBlock {
    block: Block,
    hash: BlockHash,
}

impl CheckedBlock {
    /// The block, no longer marked as checked.
    pub fn into_block(self) -> Block {
        self.block
    }

    /// The block's hash, computed once by its check (the chain needs it at every step).
    pub fn hash(&self) -> BlockHash {
        self.hash
    }
}

impl std::ops::Deref for CheckedBlock {
    type Target = Block;

    fn deref(&self) -> &Block {
        &self.block
    }
}

/// The Merkle root over `txids`: pairs are hashed as SHA-256(left || right) level by level, and
/// an odd node at the end of a level is carried up unchanged. One txid is its own root; an empty
/// list has the zero root.
pub fn compute_tx_root(txids: &[TxId]) -> TxRoot {
    if txids.is_empty() {
        return TxRoot::ZERO;
    }
    let mut level: Vec<[u8; 32]> = txids.iter().map(|t| t.0).collect();
    while level.len() > 1 {
        let mut next = Vec::with_capacity(level.len().div_ceil(2));
        for pair in level.chunks(2) {
            match pair {
                [l, r] => {
                    let mut buf = [0u8; 64];
                    buf[..32].copy_from_slice(l);
                    buf[32..].copy_from_slice(r);
                    next.push(sha256(&buf));
                }
                [odd] => next.push(*odd),
                _ => unreachable!("chunks(2) yields one or two items"),
            }
        }
        level = next;
    }
    TxRoot(level[0])
}

/// Why a block is invalid: one variant per consensus rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BlockError {
    /// The encoded block is over the network's size cap.
    #[error("block is {size} bytes, over the cap of {max}")]
    TooLarge {
        /// Encoded size.
        size: usize,
        /// Cap.
        max: usize,
    },
    /// The block has more transactions than the network allows.
    #[error("block has {count} transactions, over the cap of {max}")]
    TooManyTransactions {
        /// Transactions in the block.
        count: usize,
        /// Cap.
        max: usize,
    },
    /// The header's difficulty is not the network's.
    #[error("difficulty {got} is not the network's {expected}")]
    WrongDifficulty {
        /// The network's difficulty.
        expected: u32,
        /// The header's.
        got: u32,
    },
    /// The hash does not have enough leading zero bits.
    #[error("proof of work does not meet the difficulty")]
    BadProofOfWork,
    /// The header's transaction root does not match the transactions.
    #[error("transaction root does not match the transactions")]
    BadTxRoot,
    /// The first transaction is not a coinbase (or there are none).
    #[error("first transaction is not a coinbase")]
    MissingCoinbase,
    /// A coinbase appears after the first transaction.
    #[error("extra coinbase at index {index}")]
    ExtraCoinbase {
        /// Its position.
        index: usize,
    },
    /// The coinbase's height differs from the block's.
    #[error("coinbase height {got}, block height {expected}")]
    BadCoinbaseHeight {
        /// The block's height.
        expected: u64,
        /// The coinbase's.
        got: u64,
    },
    /// The coinbase does not pay exactly the reward plus the fees.
    #[error("coinbase pays {got}, must pay reward plus fees {expected}")]
    BadCoinbaseAmount {
        /// Reward plus fees.
        expected: u64,
        /// What it pays.
        got: u64,
    },
    /// The same transaction appears twice.
    #[error("transaction {0} appears twice")]
    DuplicateTransaction(TxId),
    /// A transfer breaks a transaction rule.
    #[error("transaction {index}: {source}")]
    Transaction {
        /// Position in the block.
        index: usize,
        /// The rule broken.
        source: TxError,
    },
    /// Height is not the parent's plus one.
    #[error("height {got}, expected parent's plus one ({expected})")]
    BadHeight {
        /// Parent height plus one.
        expected: u64,
        /// The header's.
        got: u64,
    },
    /// The parent is not known (the block is an orphan until its parent arrives).
    #[error("parent {0} is unknown")]
    UnknownParent(BlockHash),
    /// Timestamp not later than the median of the last 11 blocks.
    #[error("timestamp {got} is not after the median of the last 11 blocks ({median})")]
    TimestampTooOld {
        /// Median time past.
        median: u64,
        /// The header's.
        got: u64,
    },
    /// Timestamp more than 2 hours ahead of the local clock.
    #[error("timestamp {got} is more than 2 hours ahead of local time {now}")]
    TimestampTooFarAhead {
        /// Local clock.
        now: u64,
        /// The header's.
        got: u64,
    },
    /// The block, or one of its ancestors, was already found invalid.
    #[error("block or an ancestor is known to be invalid")]
    KnownInvalid,
    /// Someone tried to submit a second genesis block.
    #[error("a block at height 0 is not this network's genesis")]
    WrongGenesis,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::encode::encode;
    use crate::ledger::hash::Address;

    fn header() -> BlockHeader {
        BlockHeader {
            height: 0x0102,
            prev_hash: BlockHash([0xaa; 32]),
            tx_root: TxRoot([0xbb; 32]),
            timestamp: 0x0304,
            difficulty: 7,
            nonce: 0x1122334455667788,
        }
    }

    #[test]
    fn header_encoding_is_92_bytes_with_the_nonce_last() {
        let h = header();
        let bytes = h.encoded();
        assert_eq!(encode(&h).len(), BlockHeader::ENCODED_LEN);
        assert_eq!(
            &bytes[BlockHeader::NONCE_OFFSET..],
            &0x1122334455667788u64.to_le_bytes()
        );
        assert_eq!(&bytes[..8], &0x0102u64.to_le_bytes());
        assert_eq!(
            &bytes[..],
            &encode(&h)[..],
            "the hand-written bytes are bincode's"
        );
        assert_eq!(BlockHeader::from_encoded(&bytes), h);
    }

    #[test]
    fn tx_root_of_one_is_the_txid_and_order_matters() {
        let a = TxId([1; 32]);
        let b = TxId([2; 32]);
        let c = TxId([3; 32]);
        assert_eq!(compute_tx_root(&[a]).0, a.0);
        assert_ne!(compute_tx_root(&[a, b]), compute_tx_root(&[b, a]));
        // An odd leaf is carried up, not duplicated.
        assert_ne!(compute_tx_root(&[a, b, c]), compute_tx_root(&[a, b, c, c]));
    }

    #[test]
    fn a_block_without_a_coinbase_is_rejected() {
        let params = NetworkParams::for_tests("t", 0);
        let tx = Transaction::sign_transfer(
            &ed25519_dalek::SigningKey::from_bytes(&[1; 32]),
            &params.network_id(),
            Address([1; 20]),
            1,
            0,
            0,
        );
        let txs = vec![tx];
        let block = Block {
            header: BlockHeader {
                height: 1,
                prev_hash: params.genesis_hash(),
                tx_root: compute_tx_root(
                    &txs.iter()
                        .map(Transaction::compute_txid)
                        .collect::<Vec<_>>(),
                ),
                timestamp: params.genesis().header.timestamp + 1,
                difficulty: 0,
                nonce: 0,
            },
            transactions: txs,
        };
        assert_eq!(
            block.check_structure(&params),
            Err(BlockError::MissingCoinbase)
        );
    }
}
