//! The block tree, fork choice by cumulative work and reorganisations: which chain is the main
//! chain, and the state it produces.
//!
//! Rules kept here (see `proto-notes/consensus.md` for the full order):
//! - a block enters only as a [`CheckedBlock`]: from the wire through [`Block::validate`]
//!   (every context-free rule), from our own store through
//!   [`Block::assume_signatures_checked`]; the contextual header rules against its parent
//!   (height, median time past, future drift) are checked here;
//! - cheap before expensive: an offered block's work, then its header against the parent and
//!   the clock, then its body's sizes and shape, then its signatures as one batch; nothing is
//!   remembered about a block (invalid or early) before its work checks out;
//! - a block that is merely early is remembered for a while (`early`), so a copy sent again
//!   costs one lookup, and is nobody's fault;
//! - the main chain is the valid branch with the most cumulative work; on a tie the current tip
//!   stays, so the first seen wins;
//! - state rules (coinbase amount, nonces, balances) are checked when a block is connected; a
//!   block that fails them is removed with all its descendants and remembered as invalid, and the
//!   chain settles on the best branch that is still valid;
//! - the state always equals a replay of the main chain from genesis, because connecting is
//!   [`State::apply_block`] and disconnecting is its exact inverse [`State::undo_block`];
//! - a block found invalid takes its descendants with it: those in the tree are removed and
//!   remembered as `KnownInvalid`, and so are the orphans waiting on it;
//! - side branches are bounded: those whose leaf is more than [`PRUNE_DEPTH`] blocks below the
//!   tip are pruned, then the lightest while there are more than [`MAX_SIDE_BLOCKS`] side
//!   blocks or more than [`MAX_SIDE_BYTES`] of them; main-chain blocks never are, nor the branch a sync downloads ([`Chain::protect`]),
//!   and a pruned block is forgotten, not held invalid;
//! - a run of blocks from a sync is checked cheap rules first, its signatures in parallel
//!   batches ([`validate_batch`], off the event loop in a node), and offered
//!   ([`Chain::accept_checked`]) and activated and pruned once: one tip change per run.
//!
//! Beside this file, each a leaf that imports nothing from here: `context` (the header rules
//! that need the parent), `headers` (a peer's chain learned as headers), `orphans` (the pool of blocks
//! waiting for their parent), `invalid` (the bounded memory of invalid blocks and which
//! failures may enter it), `early` (the bounded, time-limited memory of early blocks) and
//! `locator` (building locators and choosing the blocks that answer one). Their tests, and
//! `fixtures` and `proptests`, reach up to [`Chain`]; nothing imports them.

mod bodies;
mod context;
mod early;
mod headers;
mod invalid;
mod locator;
mod main_index;
mod orphans;

#[cfg(test)]
mod fixtures;
#[cfg(test)]
mod proptests;

use super::digest_map::{DigestMap, DigestSet};
use std::sync::Arc;

use super::block::{
    compute_tx_root, validate_batch, work_for, Block, BlockError, BlockHeader, CheckedBlock,
};
use super::hash::{Address, BlockHash};
use super::params::NetworkParams;
use super::state::State;
use super::transaction::Transaction;
use bodies::Bodies;
use context::{check_header_context, check_not_early, median_time};
use early::EarlySet;
use invalid::{is_committed_by_header, InvalidSet};
use locator::{answer_start, build_locator, take_capped};
use main_index::MainIndex;
use orphans::OrphanPool;

pub use bodies::{BlockSource, BODY_CACHE_BLOCKS, BODY_CACHE_BYTES};
pub use context::{MAX_FUTURE_DRIFT_MS, MEDIAN_TIME_SPAN};
pub use early::{EARLY_TTL_MS, MAX_EARLY};
pub use headers::{Anchor, Extended, HeaderChain, HeaderError, MAX_HEADER_CHAIN};
pub use invalid::MAX_INVALID;
pub use locator::MAX_LOCATOR_LEN;
pub use orphans::{MAX_ORPHANS, MAX_ORPHAN_BYTES};

/// Side-branch blocks more than this many blocks below the tip are pruned.
pub const PRUNE_DEPTH: u64 = 1_000;

/// Cap on the number of side-branch blocks kept in the tree.
pub const MAX_SIDE_BLOCKS: usize = 4_096;

/// Most encoded bytes kept on side branches: a peer mining cheap side blocks full of transfers
/// (checked only structurally off the main chain) cannot grow the node's memory past this.
pub const MAX_SIDE_BYTES: usize = 32 * 1024 * 1024;

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
            tip_change: None,
            invalid: Vec::new(),
        }
    }
}

/// The result of offering a run of blocks at once ([`Chain::accept_blocks`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchAccepted {
    /// What changed, as one [`Accepted`] (its `hash` is the last block of the run): one tip
    /// change for the whole run, so the store commits it once.
    pub accepted: Accepted,
    /// Blocks of the run that entered the tree (or were there already).
    pub stored: usize,
    /// The block that stopped the run and the rule it broke; the blocks after it were not
    /// looked at. A [`BlockError::TimestampTooFarAhead`] is only early, not invalid.
    pub refused: Option<(BlockHash, BlockError)>,
}

/// A block off the main chain (a side branch), with what fork choice needs to know about it.
#[derive(Debug)]
struct Entry {
    block: Arc<Block>,
    parent: BlockHash,
    height: u64,
    /// Cumulative work from genesis up to and including this block (saturating).
    work: u128,
    /// Arrival order, for "first seen wins" (0 for a block that came off the main chain).
    seq: u64,
    /// Encoded size, for byte caps.
    bytes: usize,
}

/// What fork choice knows of any block in the tree, main chain or side branch.
#[derive(Debug, Clone, Copy)]
struct Link {
    parent: BlockHash,
    height: u64,
    work: u128,
}

/// The block tree, the main chain and the state it produces.
///
/// Memory holds the main chain as an index (hashes by height, a compact map back) and a
/// bounded cache of its recent bodies; the rest of its bodies are read from the store
/// ([`BlockSource`]) when needed. Side branches are held whole, and bounded.
#[derive(Debug)]
pub struct Chain {
    params: NetworkParams,
    genesis: BlockHash,
    /// Work of the genesis block and of every other block (the network's fixed difficulty).
    genesis_work: u128,
    block_work: u128,
    /// Side-branch blocks: known ancestry back to the main chain, not on it.
    side: DigestMap<BlockHash, Entry>,
    /// Side-branch children of any block in the tree (main chain or side branch).
    children: DigestMap<BlockHash, Vec<BlockHash>>,
    /// Side blocks without children: with the tip, the fork-choice candidates.
    leaves: DigestSet<BlockHash>,
    /// The main chain by height; height 0 is genesis.
    main: MainIndex,
    /// Bodies of main-chain blocks in memory.
    bodies: Bodies,
    /// The tip's body, always at hand.
    tip_block: Arc<Block>,
    /// Balances and nonces after the main chain's blocks.
    state: State,
    /// Arrival number of the next block to enter the tree.
    next_seq: u64,
    /// Checked blocks whose parent is not in the tree yet.
    orphans: OrphanPool,
    /// Blocks found invalid.
    invalid: InvalidSet,
    /// Blocks found merely early, recently.
    early: EarlySet,
    /// The leaf of the branch a sync is downloading: never pruned, and handed on to the first
    /// child that joins it, so the protection follows the branch as it grows.
    protected: Option<BlockHash>,
    /// Most encoded bytes kept on side branches ([`MAX_SIDE_BYTES`]; smaller in tests).
    side_bytes_cap: usize,
}

/// The changes a chain had reported when [`Chain::seal_unstored`] was called: what a store
/// commit running beside the chain holds once it returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnstoredMark(u64);

impl Chain {
    /// A chain holding only the network's genesis block, every body in memory.
    pub fn new(params: NetworkParams) -> Self {
        let genesis = Arc::new(params.genesis());
        let hash = genesis.block_hash();
        let mut bodies = Bodies::new(None);
        bodies.insert(hash, Arc::clone(&genesis), genesis.encoded_len(), false);
        // The genesis coinbase pays zero coins, so the state after genesis is the empty state.
        Self {
            genesis_work: genesis.header.work(),
            block_work: work_for(params.difficulty),
            params,
            genesis: hash,
            side: DigestMap::default(),
            children: DigestMap::default(),
            leaves: DigestSet::default(),
            main: MainIndex::from_hashes(vec![hash]),
            bodies,
            tip_block: genesis,
            state: State::new(),
            next_seq: 1,
            orphans: OrphanPool::default(),
            invalid: InvalidSet::default(),
            early: EarlySet::default(),
            protected: None,
            side_bytes_cap: MAX_SIDE_BYTES,
        }
    }

    /// Restores a chain from the main-chain blocks our own store wrote (heights 1..=tip, in
    /// order), replaying them, every body in memory.
    ///
    /// Each block enters through the store's door, [`Block::assume_signatures_checked`]: every
    /// context-free rule but signatures (verified when the block was first accepted, before it
    /// was stored). Then its link to the tip, the contextual header rules and every state rule
    /// are checked as for any block.
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
            let block = block.assume_signatures_checked(&chain.params)?;
            chain.check_context(&block.header, u64::MAX)?;
            let hash = block.hash();
            let block = Arc::new(block.into_block());
            chain.state.apply_block(&block, chain.params.reward)?;
            chain.push_main(hash, block, false);
        }
        Ok(chain)
    }

    /// Restores a chain from our own store without replaying or reading its bodies: the main
    /// chain's hashes (genesis first), the tip's body, and the stored state at the tip, taken
    /// as they are (the store wrote them in one transaction, and `gossipchain verify` checks
    /// them against a replay). Other bodies are read from `source` when needed.
    ///
    /// # Errors
    /// [`BlockError::UnknownParent`] when the hashes do not start at genesis or the tip's body
    /// is not the last of them.
    pub fn from_index(
        params: NetworkParams,
        hashes: Vec<BlockHash>,
        tip_block: Block,
        state: State,
        source: Arc<dyn BlockSource>,
    ) -> Result<Self, BlockError> {
        let mut chain = Chain::new(params);
        let tip_hash = tip_block.block_hash();
        if hashes.first() != Some(&chain.genesis) || hashes.last() != Some(&tip_hash) {
            return Err(BlockError::UnknownParent(tip_block.header.prev_hash));
        }
        if tip_block.header.height + 1 != hashes.len() as u64 {
            return Err(BlockError::UnknownParent(tip_block.header.prev_hash));
        }
        let genesis = Arc::clone(&chain.tip_block);
        chain.bodies = Bodies::new(Some(source));
        chain.bodies.insert(chain.genesis, genesis, 0, false);
        chain.main = MainIndex::from_hashes(hashes);
        let tip_block = Arc::new(tip_block);
        let bytes = tip_block.encoded_len();
        chain
            .bodies
            .insert(tip_hash, Arc::clone(&tip_block), bytes, false);
        chain.tip_block = tip_block;
        chain.state = state;
        // The median-time window of the tip, read once now rather than at every block.
        let height = chain.height();
        for h in height.saturating_sub(MEDIAN_TIME_SPAN as u64)..height {
            if let Some(hash) = chain.main.get(h) {
                chain.bodies.get(&hash, h);
            }
        }
        Ok(chain)
    }

    /// Puts a block whose parent is the tip on the main chain (its state already applied).
    fn push_main(&mut self, hash: BlockHash, block: Arc<Block>, pin: bool) {
        let bytes = block.encoded_len();
        self.bodies.insert(hash, Arc::clone(&block), bytes, pin);
        self.main.push(hash);
        self.tip_block = block;
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
        self.main.last().unwrap_or(self.genesis)
    }

    /// Height of the tip (genesis is 0).
    pub fn height(&self) -> u64 {
        self.main.len().saturating_sub(1) as u64
    }

    /// The tip block itself, for status displays and templates.
    pub fn tip_block(&self) -> &Arc<Block> {
        &self.tip_block
    }

    /// Cumulative work of the main chain.
    pub fn total_work(&self) -> u128 {
        self.main_work(self.height())
    }

    /// Cumulative work of the main chain up to `height`: every block but genesis has the
    /// network's difficulty.
    fn main_work(&self, height: u64) -> u128 {
        self.genesis_work
            .saturating_add(u128::from(height).saturating_mul(self.block_work))
    }

    /// What fork choice knows of a block in the tree.
    fn link(&self, hash: &BlockHash) -> Option<Link> {
        if let Some(e) = self.side.get(hash) {
            return Some(Link {
                parent: e.parent,
                height: e.height,
                work: e.work,
            });
        }
        let height = self.main.height_of(hash)?;
        let parent = match height.checked_sub(1) {
            Some(below) => self.main.get(below).unwrap_or(BlockHash::ZERO),
            None => self.tip_block.header.prev_hash,
        };
        Some(Link {
            parent,
            height,
            work: self.main_work(height),
        })
    }

    /// True if the tree (main chain or a side branch) holds the block.
    fn in_tree(&self, hash: &BlockHash) -> bool {
        self.side.contains_key(hash) || self.main.height_of(hash).is_some()
    }

    /// The link of a hash the tree is known to hold (main chain, a leaf, a parent in it).
    fn entry(&self, hash: &BlockHash) -> Link {
        match self.link(hash) {
            Some(e) => e,
            None => unreachable!("chain invariant: {hash:?} is in the tree"),
        }
    }

    /// Cumulative work from genesis up to `hash`, if the block is in the tree.
    pub fn cumulative_work_of(&self, hash: &BlockHash) -> Option<u128> {
        self.link(hash).map(|e| e.work)
    }

    /// Balances and nonces at the tip.
    pub fn state(&self) -> &State {
        &self.state
    }

    /// Any block in the tree, main chain or side branch (a main-chain body may be read from
    /// the store).
    pub fn block(&self, hash: &BlockHash) -> Option<Arc<Block>> {
        if let Some(e) = self.side.get(hash) {
            return Some(Arc::clone(&e.block));
        }
        let height = self.main.height_of(hash)?;
        self.bodies.peek(hash, height)
    }

    /// The height of a block in the tree.
    pub fn height_of(&self, hash: &BlockHash) -> Option<u64> {
        self.link(hash).map(|e| e.height)
    }

    /// The main-chain block at `height`.
    pub fn block_at_height(&self, height: u64) -> Option<Arc<Block>> {
        self.bodies.peek(&self.main.get(height)?, height)
    }

    /// The main-chain hash at `height`.
    pub fn hash_at_height(&self, height: u64) -> Option<BlockHash> {
        self.main.get(height)
    }

    /// True if the block is on the main chain (not a side branch, orphan or unknown).
    pub fn is_on_main_chain(&self, hash: &BlockHash) -> bool {
        self.main.height_of(hash).is_some()
    }

    /// The main chain's blocks, genesis first (bodies the store cannot give end it early).
    pub fn main_chain(&self) -> impl Iterator<Item = Arc<Block>> + '_ {
        self.main
            .hashes()
            .iter()
            .zip(0u64..)
            .map_while(|(h, height)| self.bodies.peek(h, height))
    }

    /// Main-chain bodies held in memory now (bounded when the store holds them all).
    pub fn bodies_in_memory(&self) -> usize {
        self.bodies.len()
    }

    /// The first failure to read a main-chain body the chain needed to move its tip, since the
    /// last call: the store is damaged or gone, and the chain stayed where it was.
    pub fn take_read_failure(&mut self) -> Option<String> {
        self.bodies.take_failure()
    }

    /// True if the tree, the orphan pool or the invalid set knows this hash.
    pub fn knows(&self, hash: &BlockHash) -> bool {
        self.in_tree(hash) || self.orphans.contains(hash) || self.invalid.contains(hash)
    }

    /// True if the block was found invalid (and is still remembered as such).
    pub fn is_known_invalid(&self, hash: &BlockHash) -> bool {
        self.invalid.contains(hash)
    }

    /// True if the block waits in the orphan pool for its parent.
    pub fn is_orphan(&self, hash: &BlockHash) -> bool {
        self.orphans.contains(hash)
    }

    /// True if an orphan waits for the block `hash` (so that block would bring more work
    /// than its own).
    pub fn has_orphans_waiting_on(&self, hash: &BlockHash) -> bool {
        self.orphans.has_children(hash)
    }

    /// Number of blocks in the orphan pool.
    pub fn orphan_count(&self) -> usize {
        self.orphans.len()
    }

    /// Number of blocks in the tree that are not on the main chain.
    pub fn side_block_count(&self) -> usize {
        self.side.len()
    }

    /// Encoded bytes of the blocks on side branches.
    pub fn side_bytes(&self) -> usize {
        self.side.values().map(|e| e.bytes).sum()
    }

    /// The median timestamp of the last 11 main-chain blocks ending at the tip: the next
    /// block's timestamp must be greater.
    pub fn median_time_past(&self) -> u64 {
        median_time(self.window_times(&self.tip()))
    }

    /// The timestamps of up to 11 blocks ending at `hash` (fewer near genesis), newest first.
    fn window_times(&self, hash: &BlockHash) -> Vec<u64> {
        let mut times = Vec::with_capacity(MEDIAN_TIME_SPAN);
        let mut cursor = Some(*hash);
        while let Some(h) = cursor {
            let Some(block) = self.block(&h) else {
                break;
            };
            times.push(block.header.timestamp);
            if times.len() == MEDIAN_TIME_SPAN || block.header.height == 0 {
                break;
            }
            cursor = Some(block.header.prev_hash);
        }
        times
    }

    /// The store now holds every change reported so far: the bodies they put on the main chain
    /// may leave memory like any other.
    pub fn bodies_stored(&mut self) {
        self.bodies.unpin_all();
    }

    /// Marks the changes reported so far, for a caller that stores them while the chain goes
    /// on: [`Chain::bodies_stored_through`] with the mark frees their bodies, not later ones.
    pub fn seal_unstored(&mut self) -> UnstoredMark {
        UnstoredMark(self.bodies.seal())
    }

    /// The store now holds every change reported before `mark` was taken: the bodies they put
    /// on the main chain may leave memory; those of later changes stay.
    pub fn bodies_stored_through(&mut self, mark: UnstoredMark) {
        self.bodies.unpin_through(mark.0);
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
        self.bodies.unpin_all();
        self.accept_unstored(block, now_ms)
    }

    /// As [`Chain::accept_block`], for a caller that stores several changes in one commit: the
    /// bodies earlier changes put on the main chain stay in memory until
    /// [`Chain::bodies_stored`] says the store holds them.
    ///
    /// # Errors
    /// As [`Chain::accept_block`].
    pub fn accept_unstored(&mut self, block: Block, now_ms: u64) -> Result<Accepted, BlockError> {
        let hash = block.block_hash();
        if self.in_tree(&hash) || self.orphans.contains(&hash) {
            return Ok(Accepted::nothing(hash, Placement::AlreadyKnown));
        }
        if self.invalid.contains(&hash) {
            return Err(BlockError::KnownInvalid);
        }
        if let Some(e) = self.early.still_early(&hash, now_ms) {
            return Err(e);
        }
        // Cheap rules first: the header's work (one hash, computed already), then the rules
        // that need the parent or the clock, then the body's sizes and shape, and only then the
        // signatures, as one batch. Nothing is remembered about a block before its work checks.
        block.header.check_work(&hash, &self.params)?;
        if block.header.height == 0 {
            return Err(BlockError::WrongGenesis);
        }
        let parent = block.header.prev_hash;
        if self.invalid.contains(&parent) {
            self.reject_with_orphans(hash);
            return Err(BlockError::KnownInvalid);
        }
        let context = if self.in_tree(&parent) {
            self.check_context(&block.header, now_ms)
        } else {
            check_not_early(&block.header, now_ms)
        };
        match context {
            Ok(()) => {}
            Err(e @ BlockError::TimestampTooFarAhead { .. }) => {
                self.early.remember(hash, block.header.timestamp, now_ms);
                return Err(e);
            }
            Err(e) => {
                if is_committed_by_header(&e) {
                    self.reject_with_orphans(hash);
                }
                return Err(e);
            }
        }
        // Structural failures are not remembered: the header does not commit to signatures,
        // so a peer could send a valid block's header with a broken signature.
        let block = block.validate(&self.params)?;
        if !self.in_tree(&parent) {
            let missing = self.orphans.insert(hash, block);
            return Ok(Accepted::nothing(hash, Placement::Orphan { missing }));
        }

        let mut added = vec![hash];
        let mut invalid = Vec::new();
        self.insert(hash, block);
        self.adopt_orphans(hash, now_ms, &mut added, &mut invalid);
        let tip_change = self.activate_best_chain(&mut invalid);
        self.prune();
        added.retain(|h| self.in_tree(h));

        let placement = if self.is_on_main_chain(&hash) {
            Placement::MainChain
        } else if self.side.contains_key(&hash) {
            Placement::SideBranch
        } else {
            match invalid.iter().find(|(h, _)| *h == hash) {
                Some((_, e)) if tip_change.is_none() && added.is_empty() => return Err(e.clone()),
                // Invalid itself, yet something else changed (or it was pruned at once).
                _ => Placement::SideBranch,
            }
        };
        Ok(Accepted {
            hash,
            placement,
            tip_change,
            invalid,
        })
    }

    /// The header rules that need the parent (height, median time past, future drift), as
    /// [`check_header_context`] states them. The parent must be in the tree.
    fn check_context(&self, header: &BlockHeader, now_ms: u64) -> Result<(), BlockError> {
        let parent = self
            .link(&header.prev_hash)
            .ok_or(BlockError::UnknownParent(header.prev_hash))?;
        let median = median_time(self.window_times(&header.prev_hash));
        check_header_context(header, parent.height, median, now_ms)
    }

    /// Adds a checked block whose parent is in the tree, as a side-branch block (fork choice
    /// then decides whether it joins the main chain).
    fn insert(&mut self, hash: BlockHash, block: CheckedBlock) {
        let block = Arc::new(block.into_block());
        let seq = self.next_seq;
        self.next_seq += 1;
        self.insert_side(hash, block, seq);
    }

    /// Adds a block to the side branches under its parent (which is in the tree).
    fn insert_side(&mut self, hash: BlockHash, block: Arc<Block>, seq: u64) {
        let parent_hash = block.header.prev_hash;
        let parent = self.entry(&parent_hash);
        let (height, work) = (
            parent.height.saturating_add(1),
            parent.work.saturating_add(block.header.work()),
        );
        self.children.entry(parent_hash).or_default().push(hash);
        if self.protected == Some(parent_hash) {
            self.protected = Some(hash);
        }
        self.leaves.remove(&parent_hash);
        if !self.children.contains_key(&hash) {
            self.leaves.insert(hash);
        }
        let bytes = block.encoded_len();
        self.side.insert(
            hash,
            Entry {
                block,
                parent: parent_hash,
                height,
                work,
                seq,
                bytes,
            },
        );
    }

    /// Moves the orphans descending from `root` (now in the tree) into the tree, checking each
    /// against its parent, and lists those added in `added`.
    fn adopt_orphans(
        &mut self,
        root: BlockHash,
        now_ms: u64,
        added: &mut Vec<BlockHash>,
        invalid: &mut Vec<(BlockHash, BlockError)>,
    ) {
        let mut stack = vec![root];
        while let Some(parent) = stack.pop() {
            for (child, block) in self.orphans.take_children(&parent) {
                if self.in_tree(&child) {
                    // It came by sync as well and is in the tree already.
                    continue;
                }
                match self.check_context(&block.header, now_ms) {
                    Ok(()) => {
                        added.push(child);
                        self.insert(child, block);
                        stack.push(child);
                    }
                    Err(e) => {
                        if is_committed_by_header(&e) {
                            self.invalid.remember(child);
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
        self.invalid.remember(hash);
        self.drop_orphan_descendants(hash, &mut Vec::new());
    }

    /// Removes every orphan descending from the invalid `root`, remembering each as invalid.
    fn drop_orphan_descendants(
        &mut self,
        root: BlockHash,
        invalid: &mut Vec<(BlockHash, BlockError)>,
    ) {
        for child in self.orphans.remove_descendants(root) {
            self.invalid.remember(child);
            invalid.push((child, BlockError::KnownInvalid));
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
            self.invalid.remember(h);
            let e = if h == hash {
                error.clone()
            } else {
                BlockError::KnownInvalid
            };
            invalid.push((h, e));
        }
    }

    /// The fork-choice winner: the leaf (a side leaf or the tip) with the most work; on a tie
    /// `incumbent` (the tip before this activation), then the earliest arrival.
    fn best_leaf(&self, incumbent: &BlockHash) -> BlockHash {
        let tip = self.tip();
        let candidates = self
            .leaves
            .iter()
            .filter_map(|h| self.side.get(h).map(|e| (*h, e.work, e.seq)))
            .chain(std::iter::once((tip, self.total_work(), 0)));
        candidates
            .max_by(|(ha, wa, sa), (hb, wb, sb)| {
                wa.cmp(wb)
                    .then_with(|| (ha == incumbent).cmp(&(hb == incumbent)))
                    .then_with(|| (*ha == tip).cmp(&(*hb == tip)))
                    .then_with(|| sb.cmp(sa))
            })
            .map_or(tip, |(h, _, _)| h)
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
            // Every body to disconnect is read before anything changes, so a store that cannot
            // give one leaves the chain as it was.
            let mut bodies = Vec::new();
            for height in (fork_height + 1..=self.height()).rev() {
                let Some(hash) = self.main.get(height) else {
                    break;
                };
                match self.bodies.require(&hash, height) {
                    Some(block) => bodies.push((hash, block)),
                    None => break,
                }
            }
            if bodies.len() as u64 != self.height() - fork_height {
                break;
            }
            for (hash, block) in bodies {
                self.disconnect_tip(hash, &block);
            }
            low = low.min(fork_height);
            for hash in path.into_iter().rev() {
                let Some(entry) = self.side.get(&hash) else {
                    break;
                };
                let block = Arc::clone(&entry.block);
                match self.state.apply_block(&block, self.params.reward) {
                    Ok(()) => self.connect_side(hash, block),
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
        // The old chain above `low`, lowest first; the old tip is still in the tree (on a side
        // branch or back on the main chain), as pruning comes after this.
        let mut old_branch = Vec::new();
        let mut cursor = old_tip;
        while let Some(link) = self.link(&cursor) {
            if link.height <= low {
                break;
            }
            old_branch.push(cursor);
            cursor = link.parent;
        }
        old_branch.reverse();
        let shared = old_branch
            .iter()
            .enumerate()
            .take_while(|(i, old)| self.main.get(low + 1 + *i as u64) == Some(**old))
            .count();
        let fork_height = low + shared as u64;
        let disconnected = old_branch
            .iter()
            .skip(shared)
            .rev()
            .filter_map(|h| self.block(h))
            .collect();
        let connected = (fork_height + 1..=self.height())
            .filter_map(|h| Some((self.main.get(h)?, h)))
            .filter_map(|(hash, h)| self.bodies.peek(&hash, h))
            .collect();
        Some(TipChange {
            old_tip,
            new_tip,
            fork_height,
            disconnected,
            connected,
        })
    }

    /// Moves a side block whose parent is the tip onto the main chain (its state applied).
    fn connect_side(&mut self, hash: BlockHash, block: Arc<Block>) {
        if let Some(entry) = self.side.remove(&hash) {
            if let Some(siblings) = self.children.get_mut(&entry.parent) {
                siblings.retain(|c| *c != hash);
                if siblings.is_empty() {
                    self.children.remove(&entry.parent);
                }
            }
        }
        self.leaves.remove(&hash);
        self.push_main(hash, block, true);
    }

    /// Takes the tip (`hash`, whose body is `block`) off the main chain, undoes its effect on
    /// the state, and keeps it as a side-branch block.
    fn disconnect_tip(&mut self, hash: BlockHash, block: &Arc<Block>) {
        if self.main.len() <= 1 || self.main.last() != Some(hash) {
            return;
        }
        self.state.undo_block(block);
        self.main.pop();
        self.bodies.remove(&hash);
        let parent = block.header.prev_hash;
        let parent_height = block.header.height.saturating_sub(1);
        self.tip_block = match self.bodies.require(&parent, parent_height) {
            Some(body) => body,
            // Unreachable in practice: the body was read before the disconnect began.
            None => Arc::clone(block),
        };
        self.insert_side(hash, Arc::clone(block), 0);
    }

    /// Removes a side-branch block and all its descendants from the tree; returns their
    /// hashes, `root` first.
    fn remove_subtree(&mut self, root: BlockHash) -> Vec<BlockHash> {
        let Some(parent) = self.side.get(&root).map(|e| e.parent) else {
            return Vec::new();
        };
        let mut removed = Vec::new();
        let mut stack = vec![root];
        while let Some(h) = stack.pop() {
            if self.side.remove(&h).is_some() {
                self.leaves.remove(&h);
                if let Some(kids) = self.children.remove(&h) {
                    stack.extend(kids);
                }
                removed.push(h);
            }
        }
        if let Some(siblings) = self.children.get_mut(&parent) {
            siblings.retain(|c| *c != root);
            if siblings.is_empty() {
                self.children.remove(&parent);
                if self.side.contains_key(&parent) {
                    self.leaves.insert(parent);
                }
            }
        }
        removed
    }

    /// Bounds the side branches: drops branches whose leaf is more than [`PRUNE_DEPTH`] below
    /// the tip, then the branches with the least work while there are more than
    /// [`MAX_SIDE_BLOCKS`] side blocks or more than [`MAX_SIDE_BYTES`] of them. Main-chain
    /// blocks and the branch a sync is downloading are never pruned.
    fn prune(&mut self) {
        if self.leaves.is_empty() {
            return;
        }
        let tip_height = self.height();
        let mut side_leaves: Vec<(u128, u64, BlockHash, u64)> = self
            .leaves
            .iter()
            .filter(|h| self.protected != Some(**h))
            .filter_map(|h| self.side.get(h).map(|e| (e.work, e.seq, *h, e.height)))
            .collect();
        side_leaves.retain(|&(_, _, hash, height)| {
            if height.saturating_add(PRUNE_DEPTH) < tip_height {
                self.prune_branch(hash);
                false
            } else {
                true
            }
        });
        let mut bytes = self.side_bytes();
        let over = |chain: &Self, bytes: usize| {
            chain.side_block_count() > MAX_SIDE_BLOCKS || bytes > chain.side_bytes_cap
        };
        if !over(self, bytes) {
            return;
        }
        // Least work first; among equals the newest goes first.
        side_leaves.sort_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)));
        for (_, _, hash, _) in side_leaves {
            if !over(self, bytes) {
                break;
            }
            bytes = bytes.saturating_sub(self.prune_branch(hash));
        }
    }

    /// Removes a side-branch leaf and its ancestors down to the main chain or to the first
    /// ancestor with other children; returns the encoded bytes removed.
    fn prune_branch(&mut self, leaf: BlockHash) -> usize {
        let mut cursor = leaf;
        let mut freed = 0;
        while let Some(e) = self.side.get(&cursor) {
            if self.children.contains_key(&cursor) {
                break;
            }
            let parent = e.parent;
            freed += e.bytes;
            self.remove_subtree(cursor);
            cursor = parent;
        }
        freed
    }

    /// The block locator: tip, about ten recent hashes, then exponentially back to genesis.
    ///
    /// Heights listed: the tip and the 9 below it one by one, then steps of 2, 4, 8, ...; the
    /// last entry is always genesis.
    pub fn locator(&self) -> Vec<BlockHash> {
        build_locator(self.main.hashes())
    }

    /// The main-chain height an answer to `locator` starts after.
    fn locator_start(&self, locator: &[BlockHash]) -> u64 {
        answer_start(locator, |h| self.main.height_of(h))
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
        let start = self.locator_start(locator);
        let after = (start.saturating_add(1)..=self.height())
            .map_while(|h| self.block_at_height(h))
            .map(|b| {
                let bytes = b.encoded_len();
                (b, bytes)
            });
        take_capped(after, max_blocks, max_bytes)
    }

    /// Main-chain headers after the newest locator hash on our main chain (genesis if none),
    /// lowest first, at most `max`.
    pub fn headers_after_locator(&self, locator: &[BlockHash], max: usize) -> Vec<BlockHeader> {
        let start = self.locator_start(locator);
        let rows: Vec<(u64, BlockHash)> = (start.saturating_add(1)..=self.height())
            .take(max)
            .map_while(|h| Some((h, self.main.get(h)?)))
            .collect();
        self.bodies.header_run(&rows)
    }

    /// The blocks we hold (main chain or side branch) among `hashes`, in order, stopping at
    /// the first we do not hold or once `max_bytes` is reached (the first block always goes):
    /// always a prefix of the request.
    pub fn blocks_by_hash(&self, hashes: &[BlockHash], max_bytes: usize) -> Vec<Arc<Block>> {
        // Where each is held, up to the first we do not hold; the main-chain bodies not in
        // memory are read together.
        let places: Vec<Result<Arc<Block>, u64>> = hashes
            .iter()
            .map_while(|h| match self.side.get(h) {
                Some(e) => Some(Ok(Arc::clone(&e.block))),
                None => self.main.height_of(h).map(Err),
            })
            .collect();
        let rows: Vec<(u64, BlockHash)> = places
            .iter()
            .zip(hashes)
            .filter_map(|(place, hash)| place.as_ref().err().map(|height| (*height, *hash)))
            .collect();
        let mut main = self.bodies.peek_run(&rows).into_iter();
        let held = places.into_iter().map_while(|place| {
            let block = match place {
                Ok(block) => block,
                Err(_) => main.next()?,
            };
            let bytes = block.encoded_len();
            Some((block, bytes))
        });
        take_capped(held, usize::MAX, max_bytes)
    }

    /// What a header chain starting at `hash` (a block in the tree) needs: its height,
    /// cumulative work and the timestamps of its median-time window.
    pub fn anchor(&self, hash: &BlockHash) -> Option<Anchor> {
        let link = self.link(hash)?;
        let mut times = self.window_times(hash);
        times.reverse();
        Some(Anchor {
            hash: *hash,
            height: link.height,
            work: link.work,
            times,
        })
    }

    /// Protects the branch ending at `leaf` from pruning (a sync downloads it); `None` lifts
    /// the protection. Only one branch is protected at a time; the protection moves to each
    /// block that extends it.
    pub fn protect(&mut self, leaf: Option<BlockHash>) {
        self.protected = leaf;
    }

    /// Offers a run of blocks, each the parent of the next (the first one's parent in the
    /// tree): their context-free rules are checked first ([`validate_batch`]: cheap rules of
    /// every block, then the signatures in batches over all cores), then the valid prefix is
    /// offered as [`Chain::accept_checked`] would, after the store took every earlier change.
    /// The first block that fails stops the run.
    pub fn accept_blocks(&mut self, blocks: Vec<Block>, now_ms: u64) -> BatchAccepted {
        self.bodies.unpin_all();
        let last = blocks.last().map(Block::block_hash);
        let (checked, failed) = validate_batch(blocks, &self.params);
        let mut batch = self.accept_checked(checked, now_ms);
        if batch.refused.is_none() {
            batch.refused = failed.map(|(_, hash, e)| (hash, e));
        }
        if let Some(last) = last {
            batch.accepted.hash = last;
            batch.accepted.placement = if self.is_on_main_chain(&last) {
                Placement::MainChain
            } else {
                Placement::SideBranch
            };
        }
        batch
    }

    /// Offers a run of blocks whose context-free rules were checked already (a sync checks
    /// each answer off the event loop while it connects the one before), each the parent of
    /// the next (the first one's parent in the tree): blocks held already are skipped, then
    /// the header rules against each parent are checked; the blocks that pass enter the tree,
    /// the best chain is activated once and the side branches pruned once. The first block
    /// that fails stops the run. Like [`Chain::accept_unstored`], the bodies that earlier
    /// changes put on the main chain stay in memory until [`Chain::bodies_stored`].
    pub fn accept_checked(&mut self, blocks: Vec<CheckedBlock>, now_ms: u64) -> BatchAccepted {
        let last = blocks.last().map_or(self.tip(), CheckedBlock::hash);
        let mut refused = None;
        let mut stored = 0;
        // Blocks we hold already are skipped; a known-invalid one stops the run.
        let mut fresh = Vec::with_capacity(blocks.len());
        for block in blocks {
            let hash = block.hash();
            if !fresh.is_empty() {
                fresh.push((block, hash));
            } else if self.in_tree(&hash) {
                stored += 1;
            } else if self.invalid.contains(&hash) || self.invalid.contains(&block.header.prev_hash)
            {
                refused = Some((hash, BlockError::KnownInvalid));
                break;
            } else {
                fresh.push((block, hash));
            }
        }
        let mut invalid = Vec::new();
        let mut added = Vec::new();
        for (block, hash) in fresh {
            if block.header.height == 0 {
                refused = Some((hash, BlockError::WrongGenesis));
                break;
            }
            if let Err(e) = self.check_context(&block.header, now_ms) {
                if is_committed_by_header(&e) {
                    self.invalid.remember(hash);
                }
                refused = Some((hash, e));
                break;
            }
            self.insert(hash, block);
            added.push(hash);
            stored += 1;
        }
        for hash in added.clone() {
            self.adopt_orphans(hash, now_ms, &mut added, &mut invalid);
        }
        let tip_change = self.activate_best_chain(&mut invalid);
        self.prune();
        let placement = if self.is_on_main_chain(&last) {
            Placement::MainChain
        } else {
            Placement::SideBranch
        };
        BatchAccepted {
            accepted: Accepted {
                hash: last,
                placement,
                tip_change,
                invalid,
            },
            stored,
            refused,
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
}

#[cfg(test)]
mod tests {
    use super::fixtures::*;
    use super::*;
    use crate::ledger::block::meets_difficulty;
    use crate::ledger::params::GENESIS_TIMESTAMP_MS;
    use crate::ledger::transaction::TxError;

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
        let pay = Transaction::sign_transfer(&alice, &p.network_id(), miner(2), 20, 3, 0);
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
        set_coinbase(&mut b2, |cb| cb.amount += 1);
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
        b3.transactions.push(Transaction::sign_transfer(
            &key(9),
            &p.network_id(),
            miner(3),
            1,
            0,
            0,
        ));
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
        assert!(chain.block(&b3.block_hash()).is_none() && chain.block(&b4.block_hash()).is_none());
        assert_eq!(*chain.state(), replay(&chain));
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
            Transaction::sign_transfer(&alice, &p.network_id(), miner(2), 10, 2, 0),
            Transaction::sign_transfer(&alice, &p.network_id(), miner(2), 10, 3, 1),
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
            vec![Transaction::sign_transfer(
                &alice,
                &p.network_id(),
                miner(3),
                7,
                1,
                0,
            )],
        );
        let b3 = child(&p, &b2, miner(2), vec![]);
        for blk in [&b1, &b2, &b3] {
            accept(&mut chain, blk);
        }
        let stored: Vec<Block> = chain.main_chain().skip(1).map(|b| (*b).clone()).collect();
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
        assert!(chain.leaves.is_empty(), "only the tip is a candidate");
        assert_eq!(chain.main.len(), main.len() + 1);
    }

    #[test]
    fn side_branches_are_capped_by_bytes_too_the_lightest_going_first() {
        let p = params();
        let mut chain = Chain::new(p.clone());
        chain.side_bytes_cap = 20_000;
        let main = branch(&p, &p.genesis(), miner(1), 3);
        for blk in &main {
            accept(&mut chain, blk);
        }
        let heavy = branch(&p, &p.genesis(), miner(2), 3);
        for blk in &heavy {
            accept(&mut chain, blk);
        }
        // One-block side branches, each carrying a few kilobytes of memo transfers that no
        // state pays for (a side block is only checked structurally): far fewer blocks than
        // the count cap, far more bytes than the byte cap.
        let sender = key(9);
        for i in 0..40u64 {
            let txs = (0..8)
                .map(|n| {
                    Transaction::sign_transfer_with_memo(
                        &sender,
                        &p.network_id(),
                        miner(4),
                        1,
                        1,
                        i * 8 + n,
                        vec![b'x'; 200],
                    )
                })
                .collect();
            let light = child_at(&p, &main[1], miner(3), txs, 1 + i);
            accept(&mut chain, &light);
            assert!(chain.side_bytes() <= 20_000, "{}", chain.side_bytes());
        }
        assert!(chain.side_block_count() < 40);
        assert!(
            chain.knows(&heavy[2].block_hash()),
            "the heaviest branch stays"
        );
        assert_eq!(chain.tip(), main[2].block_hash());
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
}
