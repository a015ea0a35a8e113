//! Changes the chain took that the store does not hold yet, and when they must be stored.
//!
//! Rules it keeps: blocks the miner found and batches a sync connected join the chain at once
//! (the next attempt builds on them, the next batch connects on them) but are stored together,
//! in one commit, oldest first; a commit starts once [`MAX_UNSTORED_BLOCKS`] blocks or
//! [`MAX_UNSTORED_BYTES`] wait, or once the oldest has waited [`STORE_MINED_WITHIN`] (a mined
//! block) or [`STORE_SYNCED_WITHIN`] (synced blocks only). Such a commit runs on the writer
//! thread (see `writer`) while the loop goes on; one at a time, in order. Before the node does
//! anything else (see `Node::run`) it waits for the running commit and stores the rest: nothing
//! is published, reported, counted or served before its commit. Their bodies stay pinned in the
//! chain's memory until then.

use std::time::{Duration, Instant};

use tracing::info;

use super::state::{NodeState, Source};
use super::writer::{Commit, Committed, Writer};
use crate::ledger::chain::Accepted;
use crate::ledger::{Block, Placement, Store, StoreError};

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

/// The changes waiting for one commit, oldest first, and the commit running beside the loop.
pub(super) struct UnstoredQueue {
    items: Vec<(Accepted, Origin)>,
    blocks: usize,
    bytes: usize,
    mined: usize,
    since: Option<Instant>,
    writer: Writer<Origin>,
    /// Mined blocks in the running commit.
    running_mined: usize,
}

impl UnstoredQueue {
    /// An empty queue whose commits run through `store` (a handle on the node's database).
    ///
    /// # Errors
    /// The operating system's error when the writer thread cannot be started.
    pub(super) fn new(store: Store) -> std::io::Result<Self> {
        Ok(Self {
            items: Vec::new(),
            blocks: 0,
            bytes: 0,
            mined: 0,
            since: None,
            writer: Writer::spawn(store)?,
            running_mined: 0,
        })
    }

    /// Mined blocks not stored yet (they count toward the `mine` commands they answer).
    pub(super) fn mined(&self) -> usize {
        self.mined + self.running_mined
    }

    /// Whether nothing waits (a running commit aside).
    pub(super) fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Woken each time a commit on the writer thread finishes.
    pub(super) fn commit_finished(&self) -> std::sync::Arc<tokio::sync::Notify> {
        self.writer.ready()
    }

    /// When a commit of what waits must start, if anything waits and no commit runs (the end
    /// of the running one wakes the loop).
    pub(super) fn due(&self) -> Option<Instant> {
        if self.writer.is_running() {
            return None;
        }
        let within = if self.mined > 0 {
            STORE_MINED_WITHIN
        } else {
            STORE_SYNCED_WITHIN
        };
        self.since.map(|t| t + within)
    }

    /// Queues a change of `blocks` blocks and `bytes` bytes.
    fn push(&mut self, accepted: Accepted, origin: Origin, blocks: usize, bytes: usize) {
        if matches!(origin, Origin::Mined(_)) {
            self.mined += 1;
        }
        self.blocks += blocks;
        self.bytes += bytes;
        self.since.get_or_insert_with(Instant::now);
        self.items.push((accepted, origin));
    }

    /// Whether what waits fills one commit (`times` over: that many commits).
    fn full(&self, times: usize) -> bool {
        self.blocks >= times * MAX_UNSTORED_BLOCKS || self.bytes >= times * MAX_UNSTORED_BYTES
    }

    fn take(&mut self) -> Vec<(Accepted, Origin)> {
        let items = std::mem::take(&mut self.items);
        self.blocks = 0;
        self.bytes = 0;
        self.mined = 0;
        self.since = None;
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
    /// if `now` is asked for, and starts a commit on the writer thread once a commit is full.
    fn hold_unstored(&mut self, accepted: Accepted, origin: Origin, now: bool) {
        let (blocks, bytes) = accepted.tip_change.as_ref().map_or((0, 0), |change| {
            let bytes = change.connected.iter().map(|b| b.encoded_len()).sum();
            (change.connected.len(), bytes)
        });
        self.unstored.push(accepted, origin, blocks, bytes);
        if now {
            self.store_pending();
        } else if self.unstored.full(1) {
            self.start_commit();
        }
    }

    /// When a commit of the changes not stored yet must start, if there are any and no commit
    /// runs.
    pub(super) fn store_pending_by(&self) -> Option<Instant> {
        self.unstored.due()
    }

    /// Takes the result of a commit that finished on the writer thread, if one did, then
    /// starts the next one if what waits is full or due.
    pub(super) fn on_commit_finished(&mut self) {
        if let Some(done) = self.unstored.writer.finished() {
            self.after_commit(done);
        }
        let due = self
            .store_pending_by()
            .is_some_and(|by| by <= Instant::now());
        if due || self.unstored.full(1) {
            self.start_commit();
        }
    }

    /// Hands the changes not stored yet to the writer thread, which stores them while the loop
    /// goes on. With a commit running, they wait for its end, unless twice a commit waits:
    /// then the loop waits for the running one first, so memory stays bounded.
    pub(super) fn start_commit(&mut self) {
        if self.unstored.writer.is_running() {
            if !self.unstored.full(2) {
                return;
            }
            self.wait_for_commit();
        }
        if self.unstored.is_empty() || self.halted().is_some() {
            return;
        }
        let mined = self.unstored.mined;
        let items = self.unstored.take();
        let mark = self.chain.seal_unstored();
        match self.unstored.writer.start(Commit { items, mark }) {
            Ok(()) => self.unstored.running_mined = mined,
            Err(refused) => self.after_commit(refused),
        }
    }

    /// Blocks until the commit running on the writer thread (if any) ends, and takes its result.
    fn wait_for_commit(&mut self) {
        if let Some(done) = self.unstored.writer.wait() {
            self.after_commit(done);
        }
    }

    /// A commit the writer ran: a failure halts the node with none of it announced; else its
    /// bodies may leave memory and its changes are reported.
    fn after_commit(&mut self, done: Committed<Origin>) {
        self.unstored.running_mined = 0;
        if self.halted().is_some() {
            return;
        }
        if let Err(error) = done.result {
            self.halt(error);
            return;
        }
        self.chain.bodies_stored_through(done.commit.mark);
        self.report_committed(done.commit.items);
    }

    /// Stores every change the chain took and the store does not hold: waits for the commit
    /// running on the writer thread, then stores the rest in one commit here; then reports
    /// them, and publishes and counts the mined blocks on the main chain. A failed commit
    /// halts the node with none of them announced.
    pub(super) fn store_pending(&mut self) {
        self.wait_for_commit();
        if self.unstored.is_empty() {
            return;
        }
        let items = self.unstored.take();
        if self.halted().is_some() {
            return;
        }
        if let Err(error) = self.store.commit_all(items.iter().map(|(a, _)| a)) {
            self.halt(error);
            return;
        }
        self.chain.bodies_stored();
        self.report_committed(items);
    }

    /// Reports stored changes, and publishes and counts the mined blocks among them that are
    /// on the main chain.
    fn report_committed(&mut self, items: Vec<(Accepted, Origin)>) {
        for (accepted, origin) in items {
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
