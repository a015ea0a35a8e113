//! Changes the chain took that the store does not hold yet, and when they must be stored.
//!
//! Rules it keeps: blocks the miner found and batches a sync connected join the chain at once
//! (the next attempt builds on them, the next batch connects on them) but are stored together,
//! in one commit, oldest first; a commit happens once [`MAX_UNSTORED_BLOCKS`] blocks or
//! [`MAX_UNSTORED_BYTES`] wait, once the oldest has waited [`STORE_MINED_WITHIN`] (a mined
//! block) or [`STORE_SYNCED_WITHIN`] (synced blocks only), and before the node does anything
//! else (see `Node::run`): nothing is published, reported, counted or served before its
//! commit. Their bodies stay pinned in the chain's memory until then.

use std::time::{Duration, Instant};

use tracing::info;

use super::state::{NodeState, Source};
use crate::ledger::chain::Accepted;
use crate::ledger::{Block, Placement, StoreError};

/// Most blocks waiting for one store commit.
pub(super) const MAX_UNSTORED_BLOCKS: usize = 1_024;
/// Most bytes of blocks waiting for one store commit (their bodies stay in memory until then).
pub(super) const MAX_UNSTORED_BYTES: usize = 8 * 1024 * 1024;
/// Longest a mined block waits for its commit when nothing else happens.
pub(super) const STORE_MINED_WITHIN: Duration = Duration::from_millis(5);
/// Longest synced blocks wait for their commit when nothing else happens: nobody waits on them
/// block by block, and a sync's next answers are usually on their way.
pub(super) const STORE_SYNCED_WITHIN: Duration = Duration::from_millis(25);

/// Where a change waiting for its commit came from, and what is owed once it is stored.
pub(super) enum Origin {
    /// Found by our miner: published and counted for `mine` once stored.
    Mined(Block),
    /// A batch a sync connected: reported once stored.
    Synced,
}

/// One change the chain took.
struct Unstored {
    accepted: Accepted,
    origin: Origin,
}

/// The changes waiting for one commit, oldest first.
#[derive(Default)]
pub(super) struct UnstoredQueue {
    items: Vec<Unstored>,
    blocks: usize,
    bytes: usize,
    mined: usize,
    since: Option<Instant>,
}

impl UnstoredQueue {
    /// Mined blocks waiting (they count toward the `mine` commands they answer).
    pub(super) fn mined(&self) -> usize {
        self.mined
    }

    /// Whether nothing waits.
    pub(super) fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// When what waits must be stored by, if anything waits.
    pub(super) fn due(&self) -> Option<Instant> {
        let within = if self.mined > 0 {
            STORE_MINED_WITHIN
        } else {
            STORE_SYNCED_WITHIN
        };
        self.since.map(|t| t + within)
    }

    /// Queues a change of `blocks` blocks and `bytes` bytes; returns whether the queue is full.
    fn push(&mut self, accepted: Accepted, origin: Origin, blocks: usize, bytes: usize) -> bool {
        if matches!(origin, Origin::Mined(_)) {
            self.mined += 1;
        }
        self.blocks += blocks;
        self.bytes += bytes;
        self.since.get_or_insert_with(Instant::now);
        self.items.push(Unstored { accepted, origin });
        self.blocks >= MAX_UNSTORED_BLOCKS || self.bytes >= MAX_UNSTORED_BYTES
    }

    fn take(&mut self) -> Vec<Unstored> {
        let items = std::mem::take(&mut self.items);
        *self = Self::default();
        items
    }
}

impl NodeState {
    /// Takes a change the chain just made without storing it: halts the node if the chain
    /// could not read a body it needed (it stayed where it was), brings the mempool to the new
    /// tip, and holds the change for the next commit. A change that leaves blocks behind (a
    /// reorg) or met an invalid block is stored at once; one that extends the tip, or only
    /// adds a side branch, waits. Returns false if the node halted.
    pub(super) fn take_unstored(&mut self, accepted: Accepted, origin: Origin) -> bool {
        if let Some(reason) = self.chain.take_read_failure() {
            self.halt(StoreError::BodyUnreadable(reason));
            return false;
        }
        if let Some(change) = &accepted.tip_change {
            self.mempool.on_tip_change(change, self.chain.state());
        }
        let now = !accepted.invalid.is_empty()
            || accepted
                .tip_change
                .as_ref()
                .is_some_and(|change| change.depth() > 0);
        self.hold_unstored(accepted, origin, now);
        true
    }

    /// Holds a change the chain took (through [`crate::ledger::Chain::accept_unstored`] or
    /// [`crate::ledger::Chain::accept_checked`]) for the next commit; stores everything at once
    /// if `now` is asked for or the queue is full.
    fn hold_unstored(&mut self, accepted: Accepted, origin: Origin, now: bool) {
        let (blocks, bytes) = accepted.tip_change.as_ref().map_or((0, 0), |change| {
            let bytes = change.connected.iter().map(|b| b.encoded_len()).sum();
            (change.connected.len(), bytes)
        });
        let full = self.unstored.push(accepted, origin, blocks, bytes);
        if now || full {
            self.store_pending();
        }
    }

    /// When the changes not stored yet must be stored by, if there are any.
    pub(super) fn store_pending_by(&self) -> Option<Instant> {
        self.unstored.due()
    }

    /// Stores the changes the chain took since the last commit, in one commit; then reports
    /// them, and publishes and counts the mined blocks on the main chain. A failed commit
    /// halts the node with none of them announced.
    pub(super) fn store_pending(&mut self) {
        if self.unstored.is_empty() {
            return;
        }
        let items = self.unstored.take();
        if self.halted().is_some() {
            return;
        }
        if let Err(error) = self.store.commit_all(items.iter().map(|u| &u.accepted)) {
            self.halt(error);
            return;
        }
        self.chain.bodies_stored();
        for Unstored { accepted, origin } in items {
            match origin {
                Origin::Synced => self.report_stored(&accepted, Source::Sync),
                Origin::Mined(block) => {
                    self.report_stored(&accepted, Source::Mined);
                    if accepted.placement == Placement::MainChain
                        && !accepted.offered_block_invalid()
                    {
                        let (height, hash) = (block.height(), accepted.hash);
                        info!(height, %hash, "mined a block");
                        self.publish_block(&block);
                        self.count_mined(height, hash);
                    }
                }
            }
        }
    }
}
