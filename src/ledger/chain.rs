//! The block tree, fork choice by cumulative work, reorganisations, the orphan pool and block
//! locators for sync.
//!
//! SKELETON: signatures agreed between modules; bodies are being written.

use std::sync::Arc;

use super::block::{Block, BlockError};
use super::hash::{Address, BlockHash};
use super::params::NetworkParams;
use super::state::State;
use super::transaction::Transaction;

/// One change of the main chain's tip, as seen by the mempool, the store and the node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TipChange {
    /// Tip before the change.
    pub old_tip: BlockHash,
    /// Tip after the change.
    pub new_tip: BlockHash,
    /// Height of the last block both chains share.
    pub fork_height: u64,
    /// Blocks taken off the main chain, old tip first (descending height).
    pub disconnected: Vec<Arc<Block>>,
    /// Blocks put on the main chain, lowest first (ascending height).
    pub connected: Vec<Arc<Block>>,
}

impl TipChange {
    /// Number of blocks disconnected: 0 for a plain extension.
    pub fn depth(&self) -> usize {
        self.disconnected.len()
    }
}

/// Where an accepted block ended up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Placement {
    /// On the main chain (possibly after a reorg).
    MainChain,
    /// Stored on a side branch with less work than the main chain.
    SideBranch,
    /// Held in the orphan pool: its parent is unknown, so the sender's chain must be synced.
    Orphan {
        /// The unknown parent to fetch.
        missing: BlockHash,
    },
    /// Already known; nothing changed.
    AlreadyKnown,
}

/// The result of offering a block to the chain.
#[derive(Debug, Clone)]
pub struct Accepted {
    /// Hash of the offered block.
    pub hash: BlockHash,
    /// Where it went.
    pub placement: Placement,
    /// Blocks newly added to the tree (the block, plus orphans it adopted), to be stored.
    pub stored: Vec<Arc<Block>>,
    /// The tip change this caused, if any.
    pub tip_change: Option<TipChange>,
    /// Blocks found invalid while activating the best chain (with their rule).
    pub invalid: Vec<(BlockHash, BlockError)>,
}

/// The block tree, the main chain and the state it produces.
#[derive(Debug)]
pub struct Chain {
    params: NetworkParams,
}

impl Chain {
    /// A chain holding only the network's genesis block.
    pub fn new(params: NetworkParams) -> Self {
        let _ = params;
        todo!()
    }
    /// Restores a chain from its main-chain blocks (heights 1..=tip, in order).
    ///
    /// # Errors
    /// The [`BlockError`] of a block that does not connect.
    pub fn from_main_chain(params: NetworkParams, blocks: Vec<Block>) -> Result<Self, BlockError> {
        let _ = (params, blocks);
        todo!()
    }
    /// The network parameters.
    pub fn params(&self) -> &NetworkParams {
        &self.params
    }
    /// Hash of the genesis block, the network's identity.
    pub fn genesis_hash(&self) -> BlockHash {
        todo!()
    }
    /// Hash of the main chain's tip.
    pub fn tip(&self) -> BlockHash {
        todo!()
    }
    /// Height of the tip (genesis is 0).
    pub fn height(&self) -> u64 {
        todo!()
    }
    /// Cumulative work of the main chain.
    pub fn total_work(&self) -> u128 {
        todo!()
    }
    /// Balances and nonces at the tip.
    pub fn state(&self) -> &State {
        todo!()
    }
    /// Any block in the tree, main chain or side branch.
    pub fn block(&self, hash: &BlockHash) -> Option<&Arc<Block>> {
        let _ = hash;
        todo!()
    }
    /// The main-chain block at `height`.
    pub fn block_at_height(&self, height: u64) -> Option<&Arc<Block>> {
        let _ = height;
        todo!()
    }
    /// True if the tree, the orphan pool or the invalid set knows this hash.
    pub fn knows(&self, hash: &BlockHash) -> bool {
        let _ = hash;
        todo!()
    }
    /// Offers a block from anywhere (miner, gossip, sync).
    ///
    /// # Errors
    /// The [`BlockError`] of the rule the block breaks.
    pub fn accept_block(&mut self, block: Block, now_ms: u64) -> Result<Accepted, BlockError> {
        let _ = (block, now_ms);
        todo!()
    }
    /// An unmined block on the tip paying `miner`, with `txs` (already in valid order).
    pub fn block_template(&self, miner: Address, txs: Vec<Transaction>, now_ms: u64) -> Block {
        let _ = (miner, txs, now_ms);
        todo!()
    }
    /// The block locator: tip, about ten recent hashes, then exponentially back to genesis.
    pub fn locator(&self) -> Vec<BlockHash> {
        todo!()
    }
    /// Main-chain blocks after the newest locator hash on our main chain, capped in count and bytes.
    pub fn blocks_after_locator(
        &self,
        locator: &[BlockHash],
        max_blocks: usize,
        max_bytes: usize,
    ) -> Vec<Arc<Block>> {
        let _ = (locator, max_blocks, max_bytes);
        todo!()
    }
}
