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

impl Accepted {
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

    /// The hashes of the main chain's tip's ancestry that a child's median rule looks at.
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
            self.remember_invalid(hash);
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
                self.remember_invalid(hash);
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
