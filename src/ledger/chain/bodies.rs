//! The bodies of main-chain blocks, as memory holds them: a bounded cache of the recent ones in
//! front of the store, so memory grows with the index, not with the blocks.
//!
//! Rules kept:
//! - with a [`BlockSource`] (a node's store), at most [`BODY_CACHE_BLOCKS`] bodies and
//!   [`BODY_CACHE_BYTES`] are kept, the oldest inserted going first, except the bodies put on
//!   the main chain by the latest change, which the store may not have committed yet: those
//!   stay until the next change;
//! - without a source (a chain held only in memory: tests, a replay) every body is kept;
//! - a body read from the source must have the hash asked for.
//!
//! It imports nothing from the chain; [`super::Chain`] keeps one.

use std::collections::VecDeque;

use crate::ledger::digest_map::DigestMap;
use std::fmt;
use std::sync::Arc;

use crate::ledger::block::{Block, BlockHeader};
use crate::ledger::hash::BlockHash;

/// Most main-chain bodies kept in memory beside the store.
pub const BODY_CACHE_BLOCKS: usize = 2_048;

/// Most encoded bytes of main-chain bodies kept in memory beside the store.
pub const BODY_CACHE_BYTES: usize = 32 * 1024 * 1024;

/// Where a chain reads the main-chain bodies it does not keep in memory: the node's store.
pub trait BlockSource: Send + Sync + fmt::Debug {
    /// The stored block with this hash at this height (the store keeps bodies in height
    /// order); `Err` names what failed (a damaged or unreadable store), `Ok(None)` when it is
    /// not stored.
    ///
    /// # Errors
    /// A description of the read failure.
    fn stored_block(&self, height: u64, hash: &BlockHash) -> Result<Option<Block>, String>;

    /// The stored blocks at these heights with these hashes, in order, each as
    /// [`BlockSource::stored_block`] gives it: serving a peer's request reads many at once,
    /// and a source may read them in one go. After an `Err` the list may end early.
    fn stored_blocks(&self, rows: &[(u64, BlockHash)]) -> Vec<Result<Option<Block>, String>> {
        rows.iter()
            .map(|(height, hash)| self.stored_block(*height, hash))
            .collect()
    }

    /// The headers of the stored blocks at these heights with these hashes, as
    /// [`BlockSource::stored_blocks`] gives the blocks: serving headers needs no
    /// transactions, and a source may skip decoding them.
    fn stored_headers(
        &self,
        rows: &[(u64, BlockHash)],
    ) -> Vec<Result<Option<BlockHeader>, String>> {
        self.stored_blocks(rows)
            .into_iter()
            .map(|b| b.map(|b| b.map(|b| b.header)))
            .collect()
    }
}

/// Main-chain bodies in memory, bounded when a source holds them all.
#[derive(Debug, Default)]
pub(super) struct Bodies {
    source: Option<Arc<dyn BlockSource>>,
    held: DigestMap<BlockHash, (Arc<Block>, usize)>,
    /// Insertion order, oldest first (may name bodies removed since).
    order: VecDeque<BlockHash>,
    bytes: usize,
    /// Bodies changes not stored yet put on the main chain, each with the pin generation it
    /// was pinned in: kept until the store holds that generation.
    pinned: DigestMap<BlockHash, u64>,
    /// The generation new pins join ([`Bodies::seal`] closes it).
    generation: u64,
    /// The first read failure since it was last taken.
    failure: Option<String>,
}

impl Bodies {
    /// A cache in front of `source`, or an unbounded store of bodies without one.
    pub(super) fn new(source: Option<Arc<dyn BlockSource>>) -> Self {
        Self {
            source,
            ..Self::default()
        }
    }

    /// Keeps a main-chain body; `pin` keeps it at least until the next [`Bodies::unpin_all`].
    pub(super) fn insert(&mut self, hash: BlockHash, block: Arc<Block>, bytes: usize, pin: bool) {
        if self.held.insert(hash, (block, bytes)).is_none() {
            self.bytes = self.bytes.saturating_add(bytes);
            self.order.push_back(hash);
        }
        // A change may put more on the main chain than the cache holds; it shrinks once the
        // change is stored.
        if pin {
            self.pinned.insert(hash, self.generation);
        } else {
            self.shrink();
        }
    }

    /// Lets the bodies of the previous change go like any other (the store has them now).
    pub(super) fn unpin_all(&mut self) {
        self.pinned.clear();
        self.shrink();
    }

    /// Closes the current pin generation and returns it: what is pinned from now on belongs
    /// to the next one.
    pub(super) fn seal(&mut self) -> u64 {
        self.generation += 1;
        self.generation - 1
    }

    /// Lets the bodies pinned in generations up to `sealed` go (the store has them now);
    /// later ones stay.
    pub(super) fn unpin_through(&mut self, sealed: u64) {
        self.pinned.retain(|_, generation| *generation > sealed);
        self.shrink();
    }

    /// Forgets a body (its block left the main chain).
    pub(super) fn remove(&mut self, hash: &BlockHash) -> Option<Arc<Block>> {
        let (block, bytes) = self.held.remove(hash)?;
        self.bytes = self.bytes.saturating_sub(bytes);
        Some(block)
    }

    /// The body of the main-chain block `hash` at `height`: from memory, else read from the
    /// source (and kept). `None` when it cannot be had.
    pub(super) fn get(&mut self, hash: &BlockHash, height: u64) -> Option<Arc<Block>> {
        if let Some((block, _)) = self.held.get(hash) {
            return Some(Arc::clone(block));
        }
        let block = self.read(hash, height)?;
        let bytes = block.encoded_len();
        self.insert(*hash, Arc::clone(&block), bytes, false);
        Some(block)
    }

    /// The body from memory, or read from the source without keeping it.
    pub(super) fn peek(&self, hash: &BlockHash, height: u64) -> Option<Arc<Block>> {
        match self.held.get(hash) {
            Some((block, _)) => Some(Arc::clone(block)),
            None => self.read(hash, height),
        }
    }

    /// The bodies of main-chain blocks (`(height, hash)` rows), from memory or read from the
    /// source in one go without keeping them, in order; the run stops at the first body that
    /// cannot be had.
    pub(super) fn peek_run(&self, rows: &[(u64, BlockHash)]) -> Vec<Arc<Block>> {
        self.run(
            rows,
            Arc::clone,
            |s, rows| s.stored_blocks(rows),
            |block: Block| (block.block_hash(), Arc::new(block)),
        )
    }

    /// The headers of main-chain blocks (`(height, hash)` rows), from the bodies in memory or
    /// read from the source in one go, in order; the run stops at the first that cannot be had.
    pub(super) fn header_run(&self, rows: &[(u64, BlockHash)]) -> Vec<BlockHeader> {
        self.run(
            rows,
            |block| block.header.clone(),
            |s, rows| s.stored_headers(rows),
            |header: BlockHeader| (header.block_hash(), header),
        )
    }

    /// One item per row, in order: `held` turns a body in memory into the item; the rest are
    /// read from the source in one call (`read`) and turned by `into` into their hash and the
    /// item. The run stops at the first row that cannot be had: not stored, stored under
    /// another hash, or unreadable (both logged).
    fn run<T, R>(
        &self,
        rows: &[(u64, BlockHash)],
        held: impl Fn(&Arc<Block>) -> T,
        read: impl FnOnce(&dyn BlockSource, &[(u64, BlockHash)]) -> Vec<Result<Option<R>, String>>,
        into: impl Fn(R) -> (BlockHash, T),
    ) -> Vec<T> {
        let missing: Vec<(u64, BlockHash)> = rows
            .iter()
            .filter(|(_, hash)| !self.held.contains_key(hash))
            .copied()
            .collect();
        let mut stored = match (&self.source, missing.is_empty()) {
            (Some(source), false) => read(source.as_ref(), &missing),
            _ => Vec::new(),
        }
        .into_iter();
        let mut out = Vec::with_capacity(rows.len());
        for (_, hash) in rows {
            let item = match self.held.get(hash) {
                Some((block, _)) => held(block),
                None => match stored.next() {
                    Some(Ok(Some(item))) => match into(item) {
                        (found, item) if found == *hash => item,
                        _ => {
                            tracing::error!(%hash, "stored body has another hash");
                            break;
                        }
                    },
                    Some(Err(e)) => {
                        tracing::error!(%hash, "reading a stored body failed: {e}");
                        break;
                    }
                    Some(Ok(None)) | None => break,
                },
            };
            out.push(item);
        }
        out
    }

    fn read(&self, hash: &BlockHash, height: u64) -> Option<Arc<Block>> {
        let source = self.source.as_ref()?;
        match source.stored_block(height, hash) {
            Ok(Some(block)) if block.block_hash() == *hash => Some(Arc::new(block)),
            Ok(Some(_)) => {
                tracing::error!(%hash, "stored body has another hash");
                None
            }
            Ok(None) => None,
            Err(e) => {
                tracing::error!(%hash, "reading a stored body failed: {e}");
                None
            }
        }
    }

    /// The body of a block the chain needs to change its state (a disconnect): like
    /// [`Bodies::get`], but a body that cannot be had is remembered as a failure.
    pub(super) fn require(&mut self, hash: &BlockHash, height: u64) -> Option<Arc<Block>> {
        let block = self.get(hash, height);
        if block.is_none() && self.failure.is_none() {
            self.failure = Some(format!(
                "the body of main-chain block {hash} cannot be read"
            ));
        }
        block
    }

    /// The first failure to read a body the chain needed, since the last call.
    pub(super) fn take_failure(&mut self) -> Option<String> {
        self.failure.take()
    }

    /// Number of bodies held in memory.
    pub(super) fn len(&self) -> usize {
        self.held.len()
    }

    /// Drops the oldest unpinned bodies while over the caps (only with a source).
    fn shrink(&mut self) {
        if self.source.is_none() {
            return;
        }
        let mut skipped = VecDeque::new();
        while self.held.len() > BODY_CACHE_BLOCKS || self.bytes > BODY_CACHE_BYTES {
            let Some(hash) = self.order.pop_front() else {
                break;
            };
            if self.pinned.contains_key(&hash) {
                skipped.push_back(hash);
                continue;
            }
            if let Some((_, bytes)) = self.held.remove(&hash) {
                self.bytes = self.bytes.saturating_sub(bytes);
            }
        }
        while let Some(hash) = skipped.pop_back() {
            self.order.push_front(hash);
        }
        // Entries removed by `remove` linger in `order`; keep it from growing without end.
        if self.order.len() > 4 * BODY_CACHE_BLOCKS.max(self.held.len()) {
            let held = &self.held;
            self.order.retain(|h| held.contains_key(h));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::NetworkParams;

    #[test]
    fn bodies_pinned_after_a_seal_stay_pinned_when_the_sealed_ones_are_let_go() {
        let block = Arc::new(NetworkParams::for_tests("bodies", 1).genesis());
        let (early, late) = (BlockHash([1; 32]), BlockHash([2; 32]));
        let mut bodies = Bodies::default();
        bodies.insert(early, Arc::clone(&block), 10, true);
        let sealed = bodies.seal();
        bodies.insert(late, Arc::clone(&block), 10, true);
        bodies.unpin_through(sealed);
        assert!(!bodies.pinned.contains_key(&early));
        assert!(bodies.pinned.contains_key(&late));
        let next = bodies.seal();
        bodies.unpin_through(next);
        assert!(bodies.pinned.is_empty());
    }
}
