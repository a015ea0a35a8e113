//! The block tree, fork choice by cumulative work, reorganisations, the orphan pool and block
//! locators for sync.
//!
//! Rules kept here (see `proto-notes/consensus.md` for the full order):
//! - a block enters the tree only after [`Block::check_structure`] and the contextual header
//!   rules against its parent (height, median time past, future drift);
//! - the main chain is the valid branch with the most cumulative work; on a tie the current tip
//!   stays, so the first seen wins;
//! - state rules (coinbase amount, nonces, balances) are checked when a block is connected; a
//!   block that fails them is removed with all its descendants and remembered as invalid, and the
//!   chain settles on the best branch that is still valid;
//! - the state always equals a replay of the main chain from genesis, because connecting is
//!   [`State::apply_block`] and disconnecting is its exact inverse [`State::undo_block`];
//! - everything is bounded: orphans by count and bytes, side branches by depth and count, the
//!   invalid set by count.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;

use super::block::{compute_tx_root, meets_difficulty, Block, BlockError, BlockHeader};
use super::hash::{Address, BlockHash};
use super::params::NetworkParams;
use super::state::State;
use super::transaction::Transaction;

/// Number of blocks whose median timestamp a new block's timestamp must exceed.
pub const MEDIAN_TIME_SPAN: usize = 11;

/// How far ahead of the local clock a block's timestamp may be: 2 hours in milliseconds.
pub const MAX_FUTURE_DRIFT_MS: u64 = 2 * 60 * 60 * 1000;

/// Cap on the number of blocks held in the orphan pool.
pub const MAX_ORPHANS: usize = 512;

/// Cap on the total encoded size of the blocks held in the orphan pool.
pub const MAX_ORPHAN_BYTES: usize = 64 * 1024 * 1024;

/// Side-branch blocks more than this many blocks below the tip are pruned.
pub const PRUNE_DEPTH: u64 = 1_000;

/// Cap on the number of side-branch blocks kept in the tree.
pub const MAX_SIDE_BLOCKS: usize = 4_096;

/// Cap on the number of block hashes remembered as invalid.
pub const MAX_INVALID: usize = 16_384;

/// Locator entries looked at when answering a locator; the rest are ignored.
pub const MAX_LOCATOR_LEN: usize = 128;

/// Most recent main-chain hashes a locator lists one by one before it starts skipping.
const LOCATOR_DENSE: usize = 10;

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
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    /// Hash of the offered block.
    pub hash: BlockHash,
    /// Where it went.
    pub placement: Placement,
    /// Blocks newly added to the tree (the block, plus orphans it adopted).
    pub stored: Vec<Arc<Block>>,
    /// The tip change this caused, if any.
    pub tip_change: Option<TipChange>,
    /// Blocks found invalid while activating the best chain (with their rule).
    pub invalid: Vec<(BlockHash, BlockError)>,
}

impl Accepted {
    /// True if the offered block was found invalid (itself or through an invalid ancestor):
    /// its sender is at fault. Adopted orphans found invalid came from whoever sent them, so
    /// they are in [`Accepted::invalid`] without making this true.
    pub fn offered_block_invalid(&self) -> bool {
        self.invalid.iter().any(|(h, _)| *h == self.hash)
    }

    fn nothing(hash: BlockHash, placement: Placement) -> Self {
        Self {
            hash,
            placement,
            stored: Vec::new(),
            tip_change: None,
            invalid: Vec::new(),
        }
    }
}

/// A block in the tree, with what fork choice needs to know about it.
#[derive(Debug)]
struct Entry {
    block: Arc<Block>,
    parent: BlockHash,
    height: u64,
    /// Cumulative work from genesis up to and including this block (saturating).
    work: u128,
    /// Arrival order, for "first seen wins".
    seq: u64,
    /// Encoded size, for byte caps on sync answers.
    bytes: usize,
    /// Known children in the tree.
    children: Vec<BlockHash>,
}

/// A block whose parent is not in the tree yet.
#[derive(Debug)]
struct Orphan {
    block: Arc<Block>,
    seq: u64,
    bytes: usize,
}

/// The block tree, the main chain and the state it produces.
#[derive(Debug)]
pub struct Chain {
    params: NetworkParams,
    genesis: BlockHash,
    /// Every block with a known ancestry back to genesis: main chain and side branches.
    tree: HashMap<BlockHash, Entry>,
    /// Blocks of the tree without children: the fork-choice candidates.
    leaves: HashSet<BlockHash>,
    /// The main chain by height; `main[0]` is genesis.
    main: Vec<BlockHash>,
    /// Balances and nonces after the main chain's blocks.
    state: State,
    next_seq: u64,
    orphans: HashMap<BlockHash, Orphan>,
    orphans_by_parent: HashMap<BlockHash, Vec<BlockHash>>,
    /// Orphans in arrival order (entries of adopted orphans are skipped lazily).
    orphan_queue: VecDeque<(u64, BlockHash)>,
    orphan_bytes: usize,
    invalid: HashSet<BlockHash>,
    invalid_queue: VecDeque<BlockHash>,
}

impl Chain {
    /// A chain holding only the network's genesis block.
    pub fn new(params: NetworkParams) -> Self {
        let genesis = Arc::new(params.genesis());
        let hash = genesis.block_hash();
        let entry = Entry {
            bytes: genesis.encoded_len(),
            parent: genesis.header.prev_hash,
            height: 0,
            work: genesis.header.work(),
            seq: 0,
            children: Vec::new(),
            block: genesis,
        };
        let mut tree = HashMap::new();
        tree.insert(hash, entry);
        // The genesis coinbase pays zero coins, so the state after genesis is the empty state.
        Self {
            params,
            genesis: hash,
            tree,
            leaves: HashSet::from([hash]),
            main: vec![hash],
            state: State::new(),
            next_seq: 1,
            orphans: HashMap::new(),
            orphans_by_parent: HashMap::new(),
            orphan_queue: VecDeque::new(),
            orphan_bytes: 0,
            invalid: HashSet::new(),
            invalid_queue: VecDeque::new(),
        }
    }

    /// Restores a chain from its main-chain blocks (heights 1..=tip, in order).
    ///
    /// The blocks come from our own store, so signatures are not verified again; links,
    /// heights, difficulty, proof of work, the transaction root, timestamps against the median
    /// time past and every state rule are.
    ///
    /// # Errors
    /// The [`BlockError`] of a block that does not connect.
    pub fn from_main_chain(params: NetworkParams, blocks: Vec<Block>) -> Result<Self, BlockError> {
        let mut chain = Chain::new(params);
        for block in blocks {
            let tip = chain.tip();
            if block.header.prev_hash != tip {
                return Err(BlockError::UnknownParent(block.header.prev_hash));
            }
            chain.check_stored_block(&block)?;
            chain.check_context(&block, u64::MAX)?;
            chain.state.apply_block(&block, chain.params.reward)?;
            let hash = block.block_hash();
            chain.insert(hash, Arc::new(block));
            chain.main.push(hash);
        }
        Ok(chain)
    }

    /// The structural rules a block from our own store must still meet (all but signatures).
    fn check_stored_block(&self, block: &Block) -> Result<(), BlockError> {
        let header = &block.header;
        if header.difficulty != self.params.difficulty {
            return Err(BlockError::WrongDifficulty {
                expected: self.params.difficulty,
                got: header.difficulty,
            });
        }
        if !meets_difficulty(&header.block_hash(), header.difficulty) {
            return Err(BlockError::BadProofOfWork);
        }
        if compute_tx_root(&block.txids()) != header.tx_root {
            return Err(BlockError::BadTxRoot);
        }
        match block.transactions.first() {
            Some(Transaction::Coinbase(cb)) if cb.height == header.height => Ok(()),
            Some(Transaction::Coinbase(cb)) => Err(BlockError::BadCoinbaseHeight {
                expected: header.height,
                got: cb.height,
            }),
            _ => Err(BlockError::MissingCoinbase),
        }
    }

    /// The network parameters.
    pub fn params(&self) -> &NetworkParams {
        &self.params
    }

    /// Hash of the genesis block, the network's identity.
    pub fn genesis_hash(&self) -> BlockHash {
        self.genesis
    }

    /// Hash of the main chain's tip.
    pub fn tip(&self) -> BlockHash {
        self.main.last().copied().unwrap_or(self.genesis)
    }

    /// Height of the tip (genesis is 0).
    pub fn height(&self) -> u64 {
        self.main.len().saturating_sub(1) as u64
    }

    /// The tip block itself, for status displays and templates.
    pub fn tip_block(&self) -> &Arc<Block> {
        &self.entry(&self.tip()).block
    }

    /// Cumulative work of the main chain.
    pub fn total_work(&self) -> u128 {
        self.entry(&self.tip()).work
    }

    /// Cumulative work from genesis up to `hash`, if the block is in the tree.
    pub fn cumulative_work_of(&self, hash: &BlockHash) -> Option<u128> {
        self.tree.get(hash).map(|e| e.work)
    }

    /// Balances and nonces at the tip.
    pub fn state(&self) -> &State {
        &self.state
    }

    /// Any block in the tree, main chain or side branch.
    pub fn block(&self, hash: &BlockHash) -> Option<&Arc<Block>> {
        self.tree.get(hash).map(|e| &e.block)
    }

    /// The height of a block in the tree.
    pub fn height_of(&self, hash: &BlockHash) -> Option<u64> {
        self.tree.get(hash).map(|e| e.height)
    }

    /// The main-chain block at `height`.
    pub fn block_at_height(&self, height: u64) -> Option<&Arc<Block>> {
        let hash = self.main.get(usize::try_from(height).ok()?)?;
        self.block(hash)
    }

    /// True if the block is on the main chain (not a side branch, orphan or unknown).
    pub fn is_on_main_chain(&self, hash: &BlockHash) -> bool {
        self.tree
            .get(hash)
            .and_then(|e| usize::try_from(e.height).ok())
            .and_then(|h| self.main.get(h))
            == Some(hash)
    }

    /// The main chain's blocks, genesis first.
    pub fn main_chain(&self) -> impl Iterator<Item = &Arc<Block>> {
        self.main.iter().map(|h| &self.entry(h).block)
    }

    /// True if the tree, the orphan pool or the invalid set knows this hash.
    pub fn knows(&self, hash: &BlockHash) -> bool {
        self.tree.contains_key(hash)
            || self.orphans.contains_key(hash)
            || self.invalid.contains(hash)
    }

    /// True if the block was found invalid (and is still remembered as such).
    pub fn is_known_invalid(&self, hash: &BlockHash) -> bool {
        self.invalid.contains(hash)
    }

    /// True if the block waits in the orphan pool for its parent.
    pub fn is_orphan(&self, hash: &BlockHash) -> bool {
        self.orphans.contains_key(hash)
    }

    /// Number of blocks in the orphan pool.
    pub fn orphan_count(&self) -> usize {
        self.orphans.len()
    }

    /// Number of blocks in the tree that are not on the main chain.
    pub fn side_block_count(&self) -> usize {
        self.tree.len().saturating_sub(self.main.len())
    }

    /// The median timestamp of the last 11 main-chain blocks ending at the tip: the next
    /// block's timestamp must be greater.
    pub fn median_time_past(&self) -> u64 {
        self.median_time_past_at(&self.tip())
    }

    /// The median timestamp of up to 11 blocks ending at `hash` (fewer near genesis).
    fn median_time_past_at(&self, hash: &BlockHash) -> u64 {
        let mut times = Vec::with_capacity(MEDIAN_TIME_SPAN);
        let mut cursor = self.tree.get(hash);
        while let Some(e) = cursor {
            times.push(e.block.header.timestamp);
            if times.len() == MEDIAN_TIME_SPAN || e.height == 0 {
                break;
            }
            cursor = self.tree.get(&e.parent);
        }
        times.sort_unstable();
        times.get(times.len() / 2).copied().unwrap_or(0)
    }

    /// The entry of a hash the tree is known to hold (main chain, a leaf, a parent in it).
    fn entry(&self, hash: &BlockHash) -> &Entry {
        match self.tree.get(hash) {
            Some(e) => e,
            None => unreachable!("chain invariant: {hash:?} is in the tree"),
        }
    }

    /// Offers a block from anywhere (miner, gossip, sync).
    ///
    /// Returns `Ok` when the block was known already, stored (main chain, side branch or orphan
    /// pool), or when it changed something even though it turned out invalid itself (then it is
    /// listed in [`Accepted::invalid`]).
    ///
    /// # Errors
    /// The [`BlockError`] of the rule the block breaks, when nothing changed.
    pub fn accept_block(&mut self, block: Block, now_ms: u64) -> Result<Accepted, BlockError> {
        let hash = block.block_hash();
        if self.tree.contains_key(&hash) || self.orphans.contains_key(&hash) {
            return Ok(Accepted::nothing(hash, Placement::AlreadyKnown));
        }
        if self.invalid.contains(&hash) {
            return Err(BlockError::KnownInvalid);
        }
        let parent = block.header.prev_hash;
        if self.invalid.contains(&parent) {
            self.reject_with_orphans(hash);
            return Err(BlockError::KnownInvalid);
        }
        // Structural failures are not remembered: the header does not commit to signatures,
        // so a peer could send a valid block's header with a broken signature.
        block.check_structure(&self.params)?;
        if block.header.height == 0 {
            return Err(BlockError::WrongGenesis);
        }
        let block = Arc::new(block);
        if !self.tree.contains_key(&parent) {
            let missing = self.add_orphan(hash, block);
            return Ok(Accepted::nothing(hash, Placement::Orphan { missing }));
        }
        if let Err(e) = self.check_context(&block, now_ms) {
            if is_committed_by_header(&e) {
                self.reject_with_orphans(hash);
            }
            return Err(e);
        }

        let mut stored = vec![(hash, Arc::clone(&block))];
        let mut invalid = Vec::new();
        self.insert(hash, block);
        self.adopt_orphans(hash, now_ms, &mut stored, &mut invalid);
        let tip_change = self.activate_best_chain(&mut invalid);
        self.prune();
        stored.retain(|(h, _)| self.tree.contains_key(h));

        let placement = if self.is_on_main_chain(&hash) {
            Placement::MainChain
        } else if self.tree.contains_key(&hash) {
            Placement::SideBranch
        } else {
            match invalid.iter().find(|(h, _)| *h == hash) {
                Some((_, e)) if tip_change.is_none() && stored.is_empty() => return Err(e.clone()),
                // Invalid itself, yet something else changed (or it was pruned at once).
                _ => Placement::SideBranch,
            }
        };
        Ok(Accepted {
            hash,
            placement,
            stored: stored.into_iter().map(|(_, b)| b).collect(),
            tip_change,
            invalid,
        })
    }

    /// The header rules that need the parent: height, median time past, future drift.
    /// The parent must be in the tree.
    fn check_context(&self, block: &Block, now_ms: u64) -> Result<(), BlockError> {
        let header = &block.header;
        let parent = self
            .tree
            .get(&header.prev_hash)
            .ok_or(BlockError::UnknownParent(header.prev_hash))?;
        let expected = parent.height.saturating_add(1);
        if header.height != expected {
            return Err(BlockError::BadHeight {
                expected,
                got: header.height,
            });
        }
        let median = self.median_time_past_at(&header.prev_hash);
        if header.timestamp <= median {
            return Err(BlockError::TimestampTooOld {
                median,
                got: header.timestamp,
            });
        }
        if header.timestamp > now_ms.saturating_add(MAX_FUTURE_DRIFT_MS) {
            return Err(BlockError::TimestampTooFarAhead {
                now: now_ms,
                got: header.timestamp,
            });
        }
        Ok(())
    }

    /// Adds a checked block whose parent is in the tree.
    fn insert(&mut self, hash: BlockHash, block: Arc<Block>) {
        let parent_hash = block.header.prev_hash;
        let (height, work) = {
            let parent = self.entry(&parent_hash);
            (
                parent.height.saturating_add(1),
                parent.work.saturating_add(block.header.work()),
            )
        };
        if let Some(parent) = self.tree.get_mut(&parent_hash) {
            parent.children.push(hash);
        }
        self.leaves.remove(&parent_hash);
        self.leaves.insert(hash);
        let seq = self.next_seq;
        self.next_seq += 1;
        let bytes = block.encoded_len();
        self.tree.insert(
            hash,
            Entry {
                block,
                parent: parent_hash,
                height,
                work,
                seq,
                bytes,
                children: Vec::new(),
            },
        );
    }

    /// Moves the orphans descending from `root` (now in the tree) into the tree, checking each
    /// against its parent.
    fn adopt_orphans(
        &mut self,
        root: BlockHash,
        now_ms: u64,
        stored: &mut Vec<(BlockHash, Arc<Block>)>,
        invalid: &mut Vec<(BlockHash, BlockError)>,
    ) {
        let mut stack = vec![root];
        while let Some(parent) = stack.pop() {
            let Some(children) = self.orphans_by_parent.remove(&parent) else {
                continue;
            };
            for child in children {
                let Some(orphan) = self.take_orphan(&child) else {
                    continue;
                };
                match self.check_context(&orphan.block, now_ms) {
                    Ok(()) => {
                        stored.push((child, Arc::clone(&orphan.block)));
                        self.insert(child, orphan.block);
                        stack.push(child);
                    }
                    Err(e) => {
                        if is_committed_by_header(&e) {
                            self.remember_invalid(child);
                            invalid.push((child, e));
                            self.drop_orphan_descendants(child, invalid);
                        }
                    }
                }
            }
        }
    }

    /// Remembers a rejected block as invalid, with the orphans waiting for it.
    fn reject_with_orphans(&mut self, hash: BlockHash) {
        self.remember_invalid(hash);
        self.drop_orphan_descendants(hash, &mut Vec::new());
    }

    /// Removes every orphan descending from the invalid `root`, remembering each as invalid.
    fn drop_orphan_descendants(
        &mut self,
        root: BlockHash,
        invalid: &mut Vec<(BlockHash, BlockError)>,
    ) {
        let mut stack = vec![root];
        while let Some(parent) = stack.pop() {
            for child in self.orphans_by_parent.remove(&parent).unwrap_or_default() {
                if self.take_orphan(&child).is_some() {
                    self.remember_invalid(child);
                    invalid.push((child, BlockError::KnownInvalid));
                    stack.push(child);
                }
            }
        }
    }

    /// Puts a block into the orphan pool, evicting the oldest past the caps, and returns the
    /// missing ancestor to fetch.
    fn add_orphan(&mut self, hash: BlockHash, block: Arc<Block>) -> BlockHash {
        let parent = block.header.prev_hash;
        let bytes = block.encoded_len();
        let seq = self.next_seq;
        self.next_seq += 1;
        self.orphans.insert(hash, Orphan { block, seq, bytes });
        self.orphans_by_parent.entry(parent).or_default().push(hash);
        self.orphan_queue.push_back((seq, hash));
        self.orphan_bytes += bytes;
        while self.orphans.len() > MAX_ORPHANS || self.orphan_bytes > MAX_ORPHAN_BYTES {
            let Some((seq, oldest)) = self.orphan_queue.pop_front() else {
                break;
            };
            if self.orphans.get(&oldest).is_some_and(|o| o.seq == seq) {
                if let Some(o) = self.take_orphan(&oldest) {
                    let p = o.block.header.prev_hash;
                    if let Some(siblings) = self.orphans_by_parent.get_mut(&p) {
                        siblings.retain(|h| *h != oldest);
                        if siblings.is_empty() {
                            self.orphans_by_parent.remove(&p);
                        }
                    }
                }
            }
        }
        if self.orphan_queue.len() > 2 * MAX_ORPHANS {
            let live = &self.orphans;
            self.orphan_queue
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

    /// Removes an orphan from the pool's map and byte count (not from its parent's list).
    fn take_orphan(&mut self, hash: &BlockHash) -> Option<Orphan> {
        let orphan = self.orphans.remove(hash)?;
        self.orphan_bytes = self.orphan_bytes.saturating_sub(orphan.bytes);
        Some(orphan)
    }

    fn remember_invalid(&mut self, hash: BlockHash) {
        if self.invalid.insert(hash) {
            self.invalid_queue.push_back(hash);
            while self.invalid_queue.len() > MAX_INVALID {
                if let Some(old) = self.invalid_queue.pop_front() {
                    self.invalid.remove(&old);
                }
            }
        }
    }

    /// The fork-choice winner: the leaf with the most work; on a tie `incumbent` (the tip before
    /// this activation), then the earliest arrival.
    fn best_leaf(&self, incumbent: &BlockHash) -> BlockHash {
        self.leaves
            .iter()
            .map(|h| (h, self.entry(h)))
            .max_by(|(ha, a), (hb, b)| {
                a.work
                    .cmp(&b.work)
                    .then_with(|| (*ha == incumbent).cmp(&(*hb == incumbent)))
                    .then_with(|| b.seq.cmp(&a.seq))
            })
            .map_or(self.tip(), |(h, _)| *h)
    }

    /// Moves the main chain to the best valid branch, connecting and disconnecting blocks, and
    /// reports the net change of tip.
    fn activate_best_chain(
        &mut self,
        invalid: &mut Vec<(BlockHash, BlockError)>,
    ) -> Option<TipChange> {
        let old_tip = self.tip();
        let mut low = self.height();
        loop {
            let best = self.best_leaf(&old_tip);
            if best == self.tip() {
                break;
            }
            let mut path = Vec::new();
            let mut cursor = best;
            while !self.is_on_main_chain(&cursor) {
                path.push(cursor);
                cursor = self.entry(&cursor).parent;
            }
            let fork_height = self.entry(&cursor).height;
            while self.height() > fork_height {
                self.disconnect_tip();
            }
            low = low.min(fork_height);
            for hash in path.into_iter().rev() {
                let block = Arc::clone(&self.entry(&hash).block);
                match self.state.apply_block(&block, self.params.reward) {
                    Ok(()) => self.main.push(hash),
                    Err(e) => {
                        self.invalidate(hash, e, invalid);
                        break;
                    }
                }
            }
        }
        let new_tip = self.tip();
        if new_tip == old_tip {
            return None;
        }
        // The old chain above `low`, lowest first; the old tip is still in the tree because
        // main-chain blocks are never invalidated or pruned.
        let mut old_branch = Vec::new();
        let mut cursor = old_tip;
        loop {
            let e = self.entry(&cursor);
            if e.height <= low {
                break;
            }
            old_branch.push((cursor, Arc::clone(&e.block)));
            cursor = e.parent;
        }
        old_branch.reverse();
        let shared = old_branch
            .iter()
            .zip(self.main.iter().skip(low as usize + 1))
            .take_while(|((old, _), new)| old == *new)
            .count();
        let fork_height = low + shared as u64;
        let disconnected = old_branch
            .into_iter()
            .skip(shared)
            .rev()
            .map(|(_, b)| b)
            .collect();
        let connected = self.main[(fork_height as usize + 1)..]
            .iter()
            .map(|h| Arc::clone(&self.entry(h).block))
            .collect();
        Some(TipChange {
            old_tip,
            new_tip,
            fork_height,
            disconnected,
            connected,
        })
    }

    /// Takes the tip off the main chain and undoes its effect on the state.
    fn disconnect_tip(&mut self) {
        if self.main.len() <= 1 {
            return;
        }
        if let Some(hash) = self.main.pop() {
            let block = Arc::clone(&self.entry(&hash).block);
            self.state.undo_block(&block);
        }
    }

    /// Removes a block that broke a state rule, and all its descendants, from the tree and
    /// remembers them as invalid.
    fn invalidate(
        &mut self,
        hash: BlockHash,
        error: BlockError,
        invalid: &mut Vec<(BlockHash, BlockError)>,
    ) {
        let removed = self.remove_subtree(hash);
        for h in removed {
            self.remember_invalid(h);
            let e = if h == hash {
                error.clone()
            } else {
                BlockError::KnownInvalid
            };
            invalid.push((h, e));
        }
    }

    /// Removes a block that is not on the main chain and all its descendants from the tree;
    /// returns their hashes, `root` first.
    fn remove_subtree(&mut self, root: BlockHash) -> Vec<BlockHash> {
        let Some(parent) = self.tree.get(&root).map(|e| e.parent) else {
            return Vec::new();
        };
        let mut removed = Vec::new();
        let mut stack = vec![root];
        while let Some(h) = stack.pop() {
            if let Some(e) = self.tree.remove(&h) {
                self.leaves.remove(&h);
                stack.extend(e.children);
                removed.push(h);
            }
        }
        if let Some(p) = self.tree.get_mut(&parent) {
            p.children.retain(|c| *c != root);
            if p.children.is_empty() {
                self.leaves.insert(parent);
            }
        }
        removed
    }

    /// Bounds the side branches: drops branches whose leaf is more than [`PRUNE_DEPTH`] below
    /// the tip, then the branches with the least work while there are more than
    /// [`MAX_SIDE_BLOCKS`] side blocks. Main-chain blocks are never pruned.
    fn prune(&mut self) {
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

    /// An unmined block on the tip paying `miner`, with `txs` (already in valid order): the
    /// coinbase pays the reward plus the fees, the timestamp is `now_ms` but at least one more
    /// than the median time past, the difficulty is the network's and the nonce 0.
    pub fn block_template(&self, miner: Address, txs: Vec<Transaction>, now_ms: u64) -> Block {
        let height = self.height() + 1;
        let fees = txs
            .iter()
            .fold(0u64, |acc, tx| acc.saturating_add(tx.fee()));
        let mut transactions = Vec::with_capacity(txs.len() + 1);
        transactions.push(Transaction::coinbase(
            height,
            miner,
            self.params.reward.saturating_add(fees),
        ));
        transactions.extend(txs);
        let txids: Vec<_> = transactions.iter().map(Transaction::compute_txid).collect();
        Block {
            header: BlockHeader {
                height,
                prev_hash: self.tip(),
                tx_root: compute_tx_root(&txids),
                timestamp: now_ms.max(self.median_time_past().saturating_add(1)),
                difficulty: self.params.difficulty,
                nonce: 0,
            },
            transactions,
        }
    }

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

/// True for failures fixed by the block hash itself (the header commits to them), which can be
/// remembered as invalid without risk of banning a valid block sent in a broken form.
fn is_committed_by_header(e: &BlockError) -> bool {
    matches!(
        e,
        BlockError::BadHeight { .. } | BlockError::TimestampTooOld { .. }
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::params::GENESIS_TIMESTAMP_MS;
    use crate::ledger::transaction::{PublicKey, Signature, TxError};
    use ed25519_dalek::SigningKey;
    use proptest::prelude::*;

    /// A local clock far after every fixture timestamp.
    const NOW: u64 = GENESIS_TIMESTAMP_MS + 1_000_000_000;

    fn params() -> NetworkParams {
        NetworkParams::for_tests("chain-tests", 0)
    }

    fn key(seed: u8) -> SigningKey {
        SigningKey::from_bytes(&[seed; 32])
    }

    fn addr_of(key: &SigningKey) -> Address {
        PublicKey(key.verifying_key().to_bytes()).address()
    }

    fn miner(n: u8) -> Address {
        Address([n; 20])
    }

    /// Searches nonces until the header meets its own difficulty (a naive loop: test fixtures
    /// use difficulty 0 or a few bits).
    fn mine(mut block: Block) -> Block {
        while !meets_difficulty(&block.block_hash(), block.header.difficulty) {
            block.header.nonce += 1;
        }
        block
    }

    fn reroot(mut block: Block) -> Block {
        block.header.tx_root = compute_tx_root(&block.txids());
        block
    }

    /// A mined child of `parent` paying `to` the reward plus fees, `gap` ms after the parent.
    fn child_at(
        params: &NetworkParams,
        parent: &Block,
        to: Address,
        txs: Vec<Transaction>,
        gap: u64,
    ) -> Block {
        let height = parent.header.height + 1;
        let fees: u64 = txs.iter().map(Transaction::fee).sum();
        let mut transactions = vec![Transaction::coinbase(height, to, params.reward + fees)];
        transactions.extend(txs);
        mine(reroot(Block {
            header: BlockHeader {
                height,
                prev_hash: parent.block_hash(),
                tx_root: Default::default(),
                timestamp: parent.header.timestamp + gap,
                difficulty: params.difficulty,
                nonce: 0,
            },
            transactions,
        }))
    }

    fn child(params: &NetworkParams, parent: &Block, to: Address, txs: Vec<Transaction>) -> Block {
        child_at(params, parent, to, txs, 1_000)
    }

    /// `n` empty blocks on `parent`, each paying `to`.
    fn branch(params: &NetworkParams, parent: &Block, to: Address, n: usize) -> Vec<Block> {
        let mut out: Vec<Block> = Vec::with_capacity(n);
        for _ in 0..n {
            let p = out.last().unwrap_or(parent);
            out.push(child(params, p, to, vec![]));
        }
        out
    }

    fn accept(chain: &mut Chain, block: &Block) -> Accepted {
        chain.accept_block(block.clone(), NOW).unwrap()
    }

    fn replay(chain: &Chain) -> State {
        let mut state = State::new();
        for b in chain.main_chain().skip(1) {
            state.apply_block(b, chain.params().reward).unwrap();
        }
        state
    }

    fn hashes(blocks: &[Arc<Block>]) -> Vec<BlockHash> {
        blocks.iter().map(|b| b.block_hash()).collect()
    }

    fn hashes_of(blocks: &[Block]) -> Vec<BlockHash> {
        blocks.iter().map(Block::block_hash).collect()
    }

    #[test]
    fn a_new_chain_holds_only_genesis_and_an_empty_state() {
        let p = params();
        let chain = Chain::new(p.clone());
        assert_eq!(chain.tip(), p.genesis_hash());
        assert_eq!(chain.genesis_hash(), p.genesis_hash());
        assert_eq!(chain.height(), 0);
        assert!(chain.state().is_empty());
        assert_eq!(chain.total_work(), 1);
        assert_eq!(chain.locator(), vec![p.genesis_hash()]);
        assert!(chain.blocks_after_locator(&[], 10, 1 << 20).is_empty());
    }

    #[test]
    fn a_block_on_the_tip_extends_the_main_chain() {
        let p = params();
        let mut chain = Chain::new(p.clone());
        let b1 = child(&p, &p.genesis(), miner(1), vec![]);
        let acc = accept(&mut chain, &b1);
        assert_eq!(acc.placement, Placement::MainChain);
        assert_eq!(hashes(&acc.stored), vec![b1.block_hash()]);
        let change = acc.tip_change.unwrap();
        assert_eq!(change.old_tip, p.genesis_hash());
        assert_eq!(change.new_tip, b1.block_hash());
        assert_eq!(change.fork_height, 0);
        assert_eq!(change.depth(), 0);
        assert_eq!(hashes(&change.connected), vec![b1.block_hash()]);
        assert_eq!(chain.height(), 1);
        assert_eq!(chain.state().balance(&miner(1)), p.reward);
        assert_eq!(chain.total_work(), 2);
        assert!(chain.is_on_main_chain(&b1.block_hash()));
        assert_eq!(chain.tip_block().block_hash(), b1.block_hash());
        assert_eq!(
            accept(&mut chain, &b1).placement,
            Placement::AlreadyKnown,
            "a second copy changes nothing"
        );
    }

    #[test]
    fn transfers_move_coins_and_advance_nonces() {
        let p = params();
        let alice = key(1);
        let mut chain = Chain::new(p.clone());
        let b1 = child(&p, &p.genesis(), addr_of(&alice), vec![]);
        let pay = Transaction::sign_transfer(&alice, miner(2), 20, 3, 0);
        let b2 = child(&p, &b1, miner(3), vec![pay]);
        accept(&mut chain, &b1);
        assert_eq!(accept(&mut chain, &b2).placement, Placement::MainChain);
        assert_eq!(chain.state().balance(&addr_of(&alice)), 50 - 23);
        assert_eq!(chain.state().next_nonce(&addr_of(&alice)), 1);
        assert_eq!(chain.state().balance(&miner(3)), 53);
        assert_eq!(*chain.state(), replay(&chain));
    }

    #[test]
    fn a_competing_block_with_equal_work_goes_to_a_side_branch_and_the_first_seen_stays() {
        let p = params();
        let mut chain = Chain::new(p.clone());
        let a1 = child(&p, &p.genesis(), miner(1), vec![]);
        let b1 = child(&p, &p.genesis(), miner(2), vec![]);
        accept(&mut chain, &a1);
        let acc = accept(&mut chain, &b1);
        assert_eq!(acc.placement, Placement::SideBranch);
        assert!(acc.tip_change.is_none());
        assert_eq!(hashes(&acc.stored), vec![b1.block_hash()]);
        assert_eq!(chain.tip(), a1.block_hash());
        assert_eq!(chain.side_block_count(), 1);
        assert_eq!(chain.cumulative_work_of(&b1.block_hash()), Some(2));
        assert!(chain.block(&b1.block_hash()).is_some());
        assert!(!chain.is_on_main_chain(&b1.block_hash()));
    }

    #[test]
    fn a_heavier_side_branch_reorganises_and_the_tip_change_lists_both_sides() {
        let p = params();
        let mut chain = Chain::new(p.clone());
        let a = branch(&p, &p.genesis(), miner(1), 2);
        let b = branch(&p, &p.genesis(), miner(2), 3);
        for blk in &a {
            accept(&mut chain, blk);
        }
        assert!(accept(&mut chain, &b[0]).tip_change.is_none());
        assert!(
            accept(&mut chain, &b[1]).tip_change.is_none(),
            "a tie keeps a"
        );
        let acc = accept(&mut chain, &b[2]);
        assert_eq!(acc.placement, Placement::MainChain);
        let change = acc.tip_change.unwrap();
        assert_eq!(change.old_tip, a[1].block_hash());
        assert_eq!(change.new_tip, b[2].block_hash());
        assert_eq!(change.fork_height, 0);
        assert_eq!(
            hashes(&change.disconnected),
            vec![a[1].block_hash(), a[0].block_hash()]
        );
        assert_eq!(hashes(&change.connected), hashes_of(&b));
        assert_eq!(chain.state().balance(&miner(1)), 0);
        assert_eq!(chain.state().balance(&miner(2)), 150);
        assert_eq!(*chain.state(), replay(&chain));
        assert_eq!(chain.total_work(), 4);
    }

    #[test]
    fn a_reorg_returns_to_the_best_valid_chain_when_the_heavier_branch_has_a_bad_block() {
        let p = params();
        let mut chain = Chain::new(p.clone());
        let a = branch(&p, &p.genesis(), miner(1), 2);
        for blk in &a {
            accept(&mut chain, blk);
        }
        let b1 = child(&p, &p.genesis(), miner(2), vec![]);
        let mut b2 = child(&p, &b1, miner(2), vec![]);
        if let Some(Transaction::Coinbase(cb)) = b2.transactions.first_mut() {
            cb.amount += 1;
        }
        let b2 = mine(reroot(b2));
        let b3 = child(&p, &b2, miner(2), vec![]);
        accept(&mut chain, &b1);
        accept(&mut chain, &b2);
        let before = chain.state().clone();
        // b3 makes the b branch heavier; b2 fails, b3 falls with it, and a stays.
        assert_eq!(
            chain.accept_block(b3.clone(), NOW).unwrap_err(),
            BlockError::KnownInvalid
        );
        assert_eq!(chain.tip(), a[1].block_hash());
        assert_eq!(*chain.state(), before);
        assert!(chain.is_known_invalid(&b2.block_hash()));
        assert!(chain.is_known_invalid(&b3.block_hash()));
        assert!(
            chain.block(&b1.block_hash()).is_some(),
            "b1 itself is valid"
        );
        let b4 = child(&p, &b3, miner(2), vec![]);
        assert_eq!(
            chain.accept_block(b4, NOW).unwrap_err(),
            BlockError::KnownInvalid
        );
    }

    #[test]
    fn a_valid_prefix_of_a_failed_branch_wins_when_it_has_more_work() {
        let p = params();
        let mut chain = Chain::new(p.clone());
        let a1 = child(&p, &p.genesis(), miner(1), vec![]);
        accept(&mut chain, &a1);
        // b1 b2 b3(bad) b4, delivered tip first so that one arrival activates it all.
        let b = branch(&p, &p.genesis(), miner(2), 2);
        let mut b3 = child(&p, &b[1], miner(2), vec![]);
        b3.transactions
            .push(Transaction::sign_transfer(&key(9), miner(3), 1, 0, 0));
        let b3 = mine(reroot(b3));
        let b4 = child(&p, &b3, miner(2), vec![]);
        for (blk, missing) in [(&b4, &b3), (&b3, &b[1]), (&b[1], &b[0])] {
            assert_eq!(
                accept(&mut chain, blk).placement,
                Placement::Orphan {
                    missing: missing.block_hash()
                }
            );
        }
        let acc = accept(&mut chain, &b[0]);
        assert_eq!(acc.placement, Placement::MainChain);
        assert_eq!(chain.tip(), b[1].block_hash());
        let change = acc.tip_change.unwrap();
        assert_eq!(hashes(&change.disconnected), vec![a1.block_hash()]);
        assert_eq!(hashes(&change.connected), hashes_of(&b));
        assert_eq!(
            acc.invalid,
            vec![
                (
                    b3.block_hash(),
                    BlockError::Transaction {
                        index: 1,
                        source: TxError::InsufficientFunds {
                            balance: 0,
                            needed: 1
                        }
                    }
                ),
                (b4.block_hash(), BlockError::KnownInvalid)
            ]
        );
        assert_eq!(hashes(&acc.stored), hashes_of(&b));
        assert_eq!(*chain.state(), replay(&chain));
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
        assert_eq!(hashes(&acc.stored), hashes_of(&b));
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
        if let Some(Transaction::Coinbase(cb)) = b2.transactions.first_mut() {
            cb.amount += 1;
        }
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
        assert!(chain.orphan_queue.len() <= 2 * MAX_ORPHANS + 1);
        // The parent adopts those left; they compete at equal work and the first seen wins.
        let acc = accept(&mut chain, &unknown);
        assert_eq!(acc.stored.len(), MAX_ORPHANS + 1);
        assert_eq!(chain.tip(), orphans[5].block_hash());
        assert_eq!(chain.orphan_count(), 0);
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

    #[test]
    fn a_mined_template_is_accepted_and_pays_reward_plus_fees() {
        let p = NetworkParams::for_tests("template", 6);
        let alice = key(1);
        let mut chain = Chain::new(p.clone());
        let b1 = chain.block_template(addr_of(&alice), vec![], NOW);
        assert_eq!(b1.header.timestamp, NOW);
        accept(&mut chain, &mine(b1));
        let txs = vec![
            Transaction::sign_transfer(&alice, miner(2), 10, 2, 0),
            Transaction::sign_transfer(&alice, miner(2), 10, 3, 1),
        ];
        // A clock behind the median still gives a valid timestamp.
        let b2 = chain.block_template(miner(9), txs, GENESIS_TIMESTAMP_MS);
        assert_eq!(b2.header.timestamp, chain.median_time_past() + 1);
        assert_eq!(b2.header.difficulty, 6);
        assert_eq!(b2.transactions[0].amount(), p.reward + 5);
        let acc = accept(&mut chain, &mine(b2));
        assert_eq!(acc.placement, Placement::MainChain);
        assert_eq!(chain.state().balance(&miner(9)), 55);
        assert_eq!(chain.state().balance(&addr_of(&alice)), 25);
    }

    #[test]
    fn a_chain_rebuilt_from_its_main_chain_is_the_same_chain() {
        let p = NetworkParams::for_tests("restore", 3);
        let alice = key(1);
        let mut chain = Chain::new(p.clone());
        let b1 = child(&p, &p.genesis(), addr_of(&alice), vec![]);
        let b2 = child(
            &p,
            &b1,
            miner(2),
            vec![Transaction::sign_transfer(&alice, miner(3), 7, 1, 0)],
        );
        let b3 = child(&p, &b2, miner(2), vec![]);
        for blk in [&b1, &b2, &b3] {
            accept(&mut chain, blk);
        }
        let stored: Vec<Block> = chain.main_chain().skip(1).map(|b| (**b).clone()).collect();
        let restored = Chain::from_main_chain(p.clone(), stored.clone()).unwrap();
        assert_eq!(restored.tip(), chain.tip());
        assert_eq!(restored.total_work(), chain.total_work());
        assert_eq!(restored.state(), chain.state());
        assert_eq!(restored.locator(), chain.locator());

        let skipped = vec![stored[0].clone(), stored[2].clone()];
        assert_eq!(
            Chain::from_main_chain(p.clone(), skipped).unwrap_err(),
            BlockError::UnknownParent(b2.block_hash())
        );
        let mut tampered = stored.clone();
        if let Some(Transaction::Coinbase(cb)) = tampered[2].transactions.first_mut() {
            cb.amount = 1_000;
        }
        let mut unmined = tampered.clone();
        tampered[2] = mine(reroot(tampered[2].clone()));
        assert!(matches!(
            Chain::from_main_chain(p.clone(), tampered),
            Err(BlockError::BadCoinbaseAmount { .. })
        ));
        unmined[2] = reroot(unmined[2].clone());
        while meets_difficulty(&unmined[2].block_hash(), 3) {
            unmined[2].header.nonce += 1;
        }
        assert_eq!(
            Chain::from_main_chain(p, unmined).unwrap_err(),
            BlockError::BadProofOfWork
        );
    }

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

    // ----- property tests -----

    /// A valid transfer from one of `keys` that `state` can pay, if any can.
    fn some_transfer(
        state: &State,
        keys: &[SigningKey],
        pick: (usize, usize, u64, u64),
    ) -> Option<Transaction> {
        let (from, to, amount, fee) = pick;
        let sender = &keys[from % keys.len()];
        let account = state.account(&addr_of(sender));
        if account.balance < 2 {
            return None;
        }
        let amount = 1 + amount % (account.balance - 1);
        let fee = fee % (account.balance - amount + 1);
        Some(Transaction::sign_transfer(
            sender,
            addr_of(&keys[to % keys.len()]),
            amount,
            fee,
            account.nonce,
        ))
    }

    /// A block on `parent` (whose state is `state`) with up to `picks.len()` valid transfers.
    fn block_with_transfers(
        p: &NetworkParams,
        parent: &Block,
        state: &State,
        keys: &[SigningKey],
        miner_index: usize,
        picks: &[(usize, usize, u64, u64)],
        gap: u64,
    ) -> Block {
        let mut sim = state.clone();
        let mut txs = Vec::new();
        for pick in picks {
            if let Some(tx) = some_transfer(&sim, keys, *pick) {
                if let Some(t) = tx.transfer() {
                    sim.apply_transfer(t).unwrap();
                }
                txs.push(tx);
            }
        }
        child_at(
            p,
            parent,
            addr_of(&keys[miner_index % keys.len()]),
            txs,
            gap,
        )
    }

    fn test_keys() -> Vec<SigningKey> {
        (1..=4).map(key).collect()
    }

    type Pick = (usize, usize, u64, u64);

    fn picks() -> impl Strategy<Value = Vec<Pick>> {
        prop::collection::vec((0usize..4, 0usize..4, any::<u64>(), any::<u64>()), 0..6)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(32))]

        #[test]
        fn random_valid_chains_validate(specs in prop::collection::vec((0usize..4, picks()), 1..12)) {
            let p = params();
            let keys = test_keys();
            let mut chain = Chain::new(p.clone());
            let mut parent = p.genesis();
            let mut state = State::new();
            for (m, picks) in specs {
                let block = block_with_transfers(&p, &parent, &state, &keys, m, &picks, 1_000);
                state.apply_block(&block, p.reward).unwrap();
                let acc = chain.accept_block(block.clone(), NOW).unwrap();
                prop_assert_eq!(acc.placement, Placement::MainChain);
                prop_assert_eq!(chain.tip(), block.block_hash());
                parent = block;
            }
            prop_assert_eq!(chain.state(), &state);
            prop_assert_eq!(&replay(&chain), &state);
        }
    }

    /// Declares the mutation enum and the list of all its variants from one list of names.
    macro_rules! mutations {
        ($($name:ident),* $(,)?) => {
            /// The single-field mutations of a valid block, each breaking one rule.
            #[derive(Debug, Clone, Copy)]
            enum Mutation { $($name),* }
            const ALL_MUTATIONS: &[Mutation] = &[$(Mutation::$name),*];
        };
    }

    mutations!(
        HeaderHeightOnly,
        Height,
        PrevHashUnknown,
        PrevHashGrandparent,
        TxRoot,
        TimestampOld,
        TimestampAhead,
        Difficulty,
        NonceBreaksPow,
        CoinbaseAmount,
        MissingCoinbase,
        ExtraCoinbase,
        TransferAmountUnsigned,
        TransferFeeUnsigned,
        TransferNonceUnsigned,
        TransferToUnsigned,
        TransferSignature,
        TransferNonceResigned,
        TransferAmountResigned,
        TransferFeeResigned,
        TransferZeroResigned,
        DuplicatedTransaction,
    );

    fn mutation() -> impl Strategy<Value = Mutation> {
        prop::sample::select(ALL_MUTATIONS)
    }

    /// Replaces transfer `i` of `block` by one built from its (edited) body, re-signed by
    /// `signer` or keeping the old signature.
    fn edit_transfer(
        block: &mut Block,
        i: usize,
        signer: Option<&SigningKey>,
        edit: impl FnOnce(&mut crate::ledger::transaction::Transfer),
    ) {
        let Transaction::Transfer { body, signature } = &block.transactions[i] else {
            unreachable!("fixture transfers are at 1..")
        };
        let mut body = body.clone();
        edit(&mut body);
        block.transactions[i] = match signer {
            Some(k) => Transaction::sign_transfer(k, body.to, body.amount, body.fee, body.nonce),
            None => Transaction::Transfer {
                body,
                signature: *signature,
            },
        };
    }

    fn set_coinbase(block: &mut Block, f: impl FnOnce(&mut crate::ledger::transaction::Coinbase)) {
        if let Some(Transaction::Coinbase(cb)) = block.transactions.first_mut() {
            f(cb);
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn each_single_field_mutation_is_rejected_by_its_rule(
            m in mutation(),
            which in any::<prop::sample::Index>(),
            ntx in 1usize..4,
            junk in any::<[u8; 32]>(),
        ) {
            use Mutation::*;
            let p = NetworkParams::for_tests("mutations", 4);
            let alice = key(1);
            let mut chain = Chain::new(p.clone());
            let b1 = child(&p, &p.genesis(), addr_of(&alice), vec![]);
            chain.accept_block(b1.clone(), NOW).unwrap();
            let txs: Vec<Transaction> = (0..ntx as u64)
                .map(|n| Transaction::sign_transfer(&alice, miner(2), 5 + n, 1 + n, n))
                .collect();
            let good = child(&p, &b1, miner(3), txs);
            let i = 1 + which.index(ntx);
            let nonce_i = (i - 1) as u64;
            let mut bad = good.clone();
            let mut remine = true;
            let expected: Result<Placement, BlockError> = match m {
                HeaderHeightOnly => {
                    bad.header.height += 1;
                    Err(BlockError::BadCoinbaseHeight { expected: 3, got: 2 })
                }
                Height => {
                    bad.header.height += 1;
                    set_coinbase(&mut bad, |cb| cb.height += 1);
                    Err(BlockError::BadHeight { expected: 2, got: 3 })
                }
                PrevHashUnknown => {
                    bad.header.prev_hash = BlockHash(junk);
                    Ok(Placement::Orphan { missing: BlockHash(junk) })
                }
                PrevHashGrandparent => {
                    bad.header.prev_hash = p.genesis_hash();
                    Err(BlockError::BadHeight { expected: 1, got: 2 })
                }
                TxRoot => {
                    bad.header.tx_root = crate::ledger::hash::TxRoot(junk);
                    remine = false;
                    bad = mine(bad);
                    Err(BlockError::BadTxRoot)
                }
                TimestampOld => {
                    bad.header.timestamp = chain.median_time_past();
                    Err(BlockError::TimestampTooOld {
                        median: chain.median_time_past(),
                        got: chain.median_time_past(),
                    })
                }
                TimestampAhead => {
                    bad.header.timestamp = NOW + MAX_FUTURE_DRIFT_MS + 1;
                    Err(BlockError::TimestampTooFarAhead { now: NOW, got: NOW + MAX_FUTURE_DRIFT_MS + 1 })
                }
                Difficulty => {
                    bad.header.difficulty += 1;
                    Err(BlockError::WrongDifficulty { expected: 4, got: 5 })
                }
                NonceBreaksPow => {
                    remine = false;
                    while meets_difficulty(&bad.block_hash(), 4) {
                        bad.header.nonce = bad.header.nonce.wrapping_add(1);
                    }
                    Err(BlockError::BadProofOfWork)
                }
                CoinbaseAmount => {
                    let paid = bad.transactions[0].amount();
                    set_coinbase(&mut bad, |cb| cb.amount += 1);
                    Err(BlockError::BadCoinbaseAmount { expected: paid, got: paid + 1 })
                }
                MissingCoinbase => {
                    bad.transactions.remove(0);
                    Err(BlockError::MissingCoinbase)
                }
                ExtraCoinbase => {
                    bad.transactions.insert(i, Transaction::coinbase(2, miner(4), 1));
                    Err(BlockError::ExtraCoinbase { index: i })
                }
                TransferAmountUnsigned => {
                    edit_transfer(&mut bad, i, None, |t| t.amount += 1);
                    Err(BlockError::Transaction { index: i, source: TxError::BadSignature })
                }
                TransferFeeUnsigned => {
                    edit_transfer(&mut bad, i, None, |t| t.fee += 1);
                    Err(BlockError::Transaction { index: i, source: TxError::BadSignature })
                }
                TransferNonceUnsigned => {
                    edit_transfer(&mut bad, i, None, |t| t.nonce += 1);
                    Err(BlockError::Transaction { index: i, source: TxError::BadSignature })
                }
                TransferToUnsigned => {
                    edit_transfer(&mut bad, i, None, |t| t.to = Address([junk[0] ^ 0x55; 20]));
                    Err(BlockError::Transaction { index: i, source: TxError::BadSignature })
                }
                TransferSignature => {
                    if let Transaction::Transfer { signature, .. } = &mut bad.transactions[i] {
                        let Signature(bytes) = signature;
                        bytes[usize::from(junk[0]) % 32] ^= 1 | junk[1];
                    }
                    Err(BlockError::Transaction { index: i, source: TxError::BadSignature })
                }
                TransferNonceResigned => {
                    edit_transfer(&mut bad, i, Some(&alice), |t| t.nonce += 100);
                    Err(BlockError::Transaction {
                        index: i,
                        source: TxError::BadNonce { expected: nonce_i, got: nonce_i + 100 },
                    })
                }
                TransferAmountResigned => {
                    edit_transfer(&mut bad, i, Some(&alice), |t| t.amount = 1_000);
                    let spent: u64 = good.transactions[1..i].iter().map(|t| t.amount() + t.fee()).sum();
                    let fee = good.transactions[i].fee();
                    Err(BlockError::Transaction {
                        index: i,
                        source: TxError::InsufficientFunds { balance: 50 - spent, needed: 1_000 + fee },
                    })
                }
                TransferFeeResigned => {
                    let paid = bad.transactions[0].amount();
                    edit_transfer(&mut bad, i, Some(&alice), |t| t.fee += 1);
                    Err(BlockError::BadCoinbaseAmount { expected: paid + 1, got: paid })
                }
                TransferZeroResigned => {
                    edit_transfer(&mut bad, i, Some(&alice), |t| t.amount = 0);
                    Err(BlockError::Transaction { index: i, source: TxError::ZeroAmount })
                }
                DuplicatedTransaction => {
                    let copy = bad.transactions[i].clone();
                    bad.transactions.push(copy.clone());
                    Err(BlockError::DuplicateTransaction(copy.compute_txid()))
                }
            };
            if remine {
                bad = mine(reroot(bad));
            }
            let tip = chain.tip();
            let state = chain.state().clone();
            let got = chain.accept_block(bad, NOW).map(|a| a.placement);
            prop_assert_eq!(got, expected);
            prop_assert_eq!(chain.tip(), tip);
            prop_assert_eq!(chain.state(), &state);
            // The unmutated block is still accepted afterwards.
            let acc = chain.accept_block(good.clone(), NOW).unwrap();
            prop_assert_eq!(acc.placement, Placement::MainChain);
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]

        #[test]
        fn after_any_sequence_of_competing_branches_the_state_is_a_replay_of_the_main_chain(
            // Each block: its parent among those made before it, its miner, transfers, whether
            // its coinbase overpays (invalid, found only when connecting), and a timestamp gap.
            specs in prop::collection::vec(
                (any::<prop::sample::Index>(), 0usize..4, picks(), prop::bool::weighted(0.15), 1u64..3_000),
                1..28,
            ),
            order in any::<u64>(),
        ) {
            let p = params();
            let keys = test_keys();
            // The universe: every block with its state after it and whether it is valid.
            let mut blocks: Vec<Block> = vec![p.genesis()];
            let mut states: Vec<State> = vec![State::new()];
            let mut valid: Vec<bool> = vec![true];
            let mut work: Vec<u128> = vec![1];
            for (parent, m, picks, overpay, gap) in &specs {
                let pi = parent.index(blocks.len());
                let mut block = block_with_transfers(&p, &blocks[pi], &states[pi], &keys, *m, picks, *gap);
                let mut state = states[pi].clone();
                state.apply_block(&block, p.reward).unwrap();
                if *overpay {
                    set_coinbase(&mut block, |cb| cb.amount += 1);
                    block = mine(reroot(block));
                }
                blocks.push(block);
                states.push(state);
                valid.push(valid[pi] && !*overpay);
                work.push(work[pi] + 1);
            }
            // Deliver in an order that keeps most parents first but sometimes not.
            let mut delivery: Vec<usize> = (1..blocks.len()).collect();
            let mut r = order;
            for k in (1..delivery.len()).rev() {
                r = r.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                if r >> 62 == 0 {
                    delivery.swap(k, (r >> 33) as usize % (k + 1));
                }
            }
            let mut chain = Chain::new(p.clone());
            let mut mirror: Vec<BlockHash> = vec![p.genesis_hash()];
            for &k in &delivery {
                let before_tip = chain.tip();
                match chain.accept_block(blocks[k].clone(), NOW) {
                    Ok(acc) => {
                        if let Some(change) = acc.tip_change {
                            prop_assert_eq!(change.old_tip, before_tip);
                            for d in &change.disconnected {
                                prop_assert_eq!(mirror.pop(), Some(d.block_hash()));
                            }
                            prop_assert_eq!(mirror.len() as u64, change.fork_height + 1);
                            mirror.extend(change.connected.iter().map(|b| b.block_hash()));
                            prop_assert_eq!(*mirror.last().unwrap(), change.new_tip);
                        }
                    }
                    Err(_) => prop_assert_eq!(chain.tip(), before_tip),
                }
                prop_assert_eq!(&mirror, &chain.main);
                prop_assert_eq!(chain.state(), &replay(&chain));
                let tip_work = chain.total_work();
                prop_assert!(chain.tree.values().all(|e| e.work <= tip_work));
            }
            // Everything has arrived: the tip is a valid block with the most work of all.
            let best = (0..blocks.len()).filter(|&i| valid[i]).map(|i| work[i]).max().unwrap();
            prop_assert_eq!(chain.total_work(), best);
            let tip_index = blocks.iter().position(|b| b.block_hash() == chain.tip()).unwrap();
            prop_assert!(valid[tip_index]);
            prop_assert_eq!(chain.state(), &states[tip_index]);
            prop_assert_eq!(chain.orphan_count(), 0);
        }
    }
}
