//! The sync state machine: peer tips and batch outcomes in, decisions out. It does no I/O.
//!
//! Rules it keeps: one sync at a time, with the peer claiming the most work above ours; each
//! request continues from the last block received (so a long side branch is walked forward, not
//! asked for again); a batch that is invalid, garbage or late ends the sync with that peer, puts
//! it on a cool-down and moves on to the next best peer; a peer that claimed more work than it
//! could show is not chosen again until it sends a new status.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use libp2p::PeerId;

use super::peers::Offence;
use crate::ledger::BlockHash;

/// How long one sync request may take before the peer counts as unresponsive.
pub const SYNC_TIMEOUT: Duration = Duration::from_secs(15);

/// How long a peer that failed a sync is passed over.
pub const COOL_DOWN: Duration = Duration::from_secs(30);

/// Our own chain, as the decisions need it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Local {
    /// Our tip's height.
    pub height: u64,
    /// Our main chain's cumulative work.
    pub work: u128,
}

/// What a peer claims to have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerTip {
    /// Its tip's height.
    pub height: u64,
    /// Its main chain's cumulative work.
    pub work: u128,
}

/// What the node made of one `Blocks` answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Batch {
    /// Blocks that link to what we know, all accepted (some may have been known already).
    Blocks {
        /// How many blocks came.
        count: usize,
        /// True if the peer sent as many as we asked for: there may be more.
        full: bool,
        /// The last block's hash: the next request continues from it.
        last: BlockHash,
    },
    /// No blocks: the peer has nothing after our locator.
    Empty,
    /// The answer broke a rule; the peer pays `Offence`.
    Invalid(Offence),
}

/// A decision for the node to carry out, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SyncAction {
    /// A sync with `peer` begins (the node reports it).
    Started {
        /// The peer we fetch from.
        peer: PeerId,
        /// Our height when it began.
        from_height: u64,
        /// The height the peer claims.
        to_height: u64,
    },
    /// Ask `peer` for the blocks after `cursor` (if any) and our locator.
    Request {
        /// The peer to ask.
        peer: PeerId,
        /// The last block received in this sync, put first in the locator.
        cursor: Option<BlockHash>,
    },
    /// The sync with `peer` is over: we have what it had.
    Finished {
        /// The peer we fetched from.
        peer: PeerId,
        /// Our height when it began.
        from_height: u64,
    },
    /// The sync with `peer` failed; penalise it.
    Failed {
        /// The peer at fault.
        peer: PeerId,
        /// What it did.
        offence: Offence,
    },
}

#[derive(Debug, Clone)]
struct Active {
    peer: PeerId,
    from_height: u64,
    deadline: Instant,
    received: usize,
}

/// The state machine.
#[derive(Debug, Default)]
pub struct SyncManager {
    tips: HashMap<PeerId, PeerTip>,
    active: Option<Active>,
    cool_down: HashMap<PeerId, Instant>,
}

impl SyncManager {
    /// No peers, no sync.
    pub fn new() -> Self {
        Self::default()
    }

    /// The peer we are syncing from, if any.
    pub fn active_peer(&self) -> Option<PeerId> {
        self.active.as_ref().map(|a| a.peer)
    }

    /// A peer's status arrived.
    pub fn peer_status(
        &mut self,
        peer: PeerId,
        tip: PeerTip,
        local: Local,
        now: Instant,
    ) -> Vec<SyncAction> {
        self.tips.insert(peer, tip);
        self.maybe_start(local, now)
    }

    /// A peer gossiped a block at `height` whose parent we do not know: it has a chain we lack.
    pub fn orphan_from(
        &mut self,
        peer: PeerId,
        height: u64,
        local: Local,
        now: Instant,
    ) -> Vec<SyncAction> {
        let tip = self.tips.entry(peer).or_insert(PeerTip { height, work: 0 });
        tip.height = tip.height.max(height);
        tip.work = tip.work.max(local.work.saturating_add(1));
        // An orphan is fresh evidence: it lifts a cool-down from an earlier, lying status.
        self.cool_down.remove(&peer);
        self.maybe_start(local, now)
    }

    /// A peer disconnected.
    pub fn peer_left(&mut self, peer: &PeerId, local: Local, now: Instant) -> Vec<SyncAction> {
        self.tips.remove(peer);
        if self.active.as_ref().is_some_and(|a| a.peer == *peer) {
            self.active = None;
        }
        self.maybe_start(local, now)
    }

    /// The node processed an answer from `peer`; `local` is our chain after it.
    pub fn batch(
        &mut self,
        peer: PeerId,
        batch: Batch,
        local: Local,
        now: Instant,
    ) -> Vec<SyncAction> {
        let Some(active) = self.active.as_mut().filter(|a| a.peer == peer) else {
            return Vec::new();
        };
        match batch {
            Batch::Invalid(offence) => self.fail(peer, offence, local, now),
            Batch::Blocks { count, full, last } => {
                active.received += count;
                let claimed = self.tips.get(&peer).map_or(0, |t| t.work);
                if full || local.work < claimed {
                    active.deadline = now + SYNC_TIMEOUT;
                    vec![SyncAction::Request {
                        peer,
                        cursor: Some(last),
                    }]
                } else {
                    self.finish(local, now)
                }
            }
            Batch::Empty => {
                let claimed = self.tips.get(&peer).map_or(0, |t| t.work);
                if local.work < claimed && active.received == 0 {
                    self.fail(peer, Offence::FalseStatus, local, now)
                } else {
                    self.finish(local, now)
                }
            }
        }
    }

    /// The request to `peer` failed (timeout, closed stream, undecodable answer).
    pub fn request_failed(
        &mut self,
        peer: PeerId,
        offence: Offence,
        local: Local,
        now: Instant,
    ) -> Vec<SyncAction> {
        if self.active.as_ref().is_some_and(|a| a.peer == peer) {
            self.fail(peer, offence, local, now)
        } else {
            Vec::new()
        }
    }

    /// Called about once a second: ends a sync whose peer stopped answering, expires cool-downs.
    pub fn tick(&mut self, local: Local, now: Instant) -> Vec<SyncAction> {
        self.cool_down.retain(|_, until| *until > now);
        match &self.active {
            Some(a) if a.deadline <= now => {
                let peer = a.peer;
                self.fail(peer, Offence::Unresponsive, local, now)
            }
            Some(_) => Vec::new(),
            None => self.maybe_start(local, now),
        }
    }

    fn finish(&mut self, local: Local, now: Instant) -> Vec<SyncAction> {
        let Some(done) = self.active.take() else {
            return Vec::new();
        };
        // Whatever it claimed, it has shown us all it had: do not sync from it again until a
        // new status or block says otherwise.
        if let Some(tip) = self.tips.get_mut(&done.peer) {
            tip.work = tip.work.min(local.work);
        }
        let mut actions = vec![SyncAction::Finished {
            peer: done.peer,
            from_height: done.from_height,
        }];
        actions.extend(self.maybe_start(local, now));
        actions
    }

    fn fail(
        &mut self,
        peer: PeerId,
        offence: Offence,
        local: Local,
        now: Instant,
    ) -> Vec<SyncAction> {
        self.active = None;
        self.tips.remove(&peer);
        self.cool_down.insert(peer, now + COOL_DOWN);
        let mut actions = vec![SyncAction::Failed { peer, offence }];
        actions.extend(self.maybe_start(local, now));
        actions
    }

    fn maybe_start(&mut self, local: Local, now: Instant) -> Vec<SyncAction> {
        if self.active.is_some() {
            return Vec::new();
        }
        let best = self
            .tips
            .iter()
            .filter(|(p, t)| t.work > local.work && !self.cool_down.contains_key(p))
            .max_by_key(|(_, t)| t.work)
            .map(|(p, t)| (*p, *t));
        let Some((peer, tip)) = best else {
            return Vec::new();
        };
        self.active = Some(Active {
            peer,
            from_height: local.height,
            deadline: now + SYNC_TIMEOUT,
            received: 0,
        });
        vec![
            SyncAction::Started {
                peer,
                from_height: local.height,
                to_height: tip.height,
            },
            SyncAction::Request { peer, cursor: None },
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn local(height: u64) -> Local {
        Local {
            height,
            work: u128::from(height) * 10,
        }
    }

    fn tip(height: u64) -> PeerTip {
        PeerTip {
            height,
            work: u128::from(height) * 10,
        }
    }

    fn hash(n: u8) -> BlockHash {
        BlockHash([n; 32])
    }

    #[test]
    fn a_peer_with_more_work_starts_a_sync_and_one_with_less_does_not() {
        let mut sync = SyncManager::new();
        let now = Instant::now();
        let (weak, strong) = (PeerId::random(), PeerId::random());
        assert!(sync.peer_status(weak, tip(3), local(5), now).is_empty());
        assert_eq!(
            sync.peer_status(strong, tip(9), local(5), now),
            vec![
                SyncAction::Started {
                    peer: strong,
                    from_height: 5,
                    to_height: 9
                },
                SyncAction::Request {
                    peer: strong,
                    cursor: None
                },
            ]
        );
        assert_eq!(sync.active_peer(), Some(strong));
    }

    #[test]
    fn only_one_sync_runs_at_a_time() {
        let mut sync = SyncManager::new();
        let now = Instant::now();
        let (a, b) = (PeerId::random(), PeerId::random());
        assert_eq!(sync.peer_status(a, tip(9), local(0), now).len(), 2);
        assert!(sync.peer_status(b, tip(20), local(0), now).is_empty());
        assert!(sync.orphan_from(b, 21, local(0), now).is_empty());
    }

    #[test]
    fn full_batches_continue_from_the_last_block_until_caught_up() {
        let mut sync = SyncManager::new();
        let now = Instant::now();
        let peer = PeerId::random();
        sync.peer_status(peer, tip(300), local(0), now);
        let next = sync.batch(
            peer,
            Batch::Blocks {
                count: 256,
                full: true,
                last: hash(1),
            },
            local(256),
            now,
        );
        assert_eq!(
            next,
            vec![SyncAction::Request {
                peer,
                cursor: Some(hash(1))
            }]
        );
        let done = sync.batch(
            peer,
            Batch::Blocks {
                count: 44,
                full: false,
                last: hash(2),
            },
            local(300),
            now,
        );
        assert_eq!(
            done,
            vec![SyncAction::Finished {
                peer,
                from_height: 0
            }]
        );
        assert_eq!(sync.active_peer(), None);
    }

    #[test]
    fn a_short_batch_below_the_claimed_work_asks_again() {
        let mut sync = SyncManager::new();
        let now = Instant::now();
        let peer = PeerId::random();
        sync.peer_status(peer, tip(10), local(0), now);
        let next = sync.batch(
            peer,
            Batch::Blocks {
                count: 4,
                full: false,
                last: hash(4),
            },
            local(4),
            now,
        );
        assert!(matches!(next[..], [SyncAction::Request { .. }]));
    }

    #[test]
    fn an_invalid_batch_fails_the_peer_and_moves_to_the_next_best() {
        let mut sync = SyncManager::new();
        let now = Instant::now();
        let (bad, good) = (PeerId::random(), PeerId::random());
        let started = sync.peer_status(bad, tip(50), local(0), now);
        assert!(matches!(started[0], SyncAction::Started { peer, .. } if peer == bad));
        assert!(sync.peer_status(good, tip(8), local(0), now).is_empty());
        let actions = sync.batch(bad, Batch::Invalid(Offence::InvalidBlock), local(0), now);
        assert_eq!(
            actions[0],
            SyncAction::Failed {
                peer: bad,
                offence: Offence::InvalidBlock
            }
        );
        assert!(matches!(actions[1], SyncAction::Started { peer, .. } if peer == good));
        let caught_up = Batch::Blocks {
            count: 8,
            full: false,
            last: hash(8),
        };
        assert!(matches!(
            sync.batch(good, caught_up, local(8), now)[..],
            [SyncAction::Finished { .. }]
        ));
        assert!(
            sync.peer_status(bad, tip(60), local(8), now).is_empty(),
            "a failed peer cools down even if it claims more"
        );
    }

    #[test]
    fn a_silent_peer_times_out_and_cools_down() {
        let mut sync = SyncManager::new();
        let now = Instant::now();
        let peer = PeerId::random();
        sync.peer_status(peer, tip(8), local(0), now);
        assert!(sync.tick(local(0), now + SYNC_TIMEOUT / 2).is_empty());
        assert_eq!(
            sync.tick(local(0), now + SYNC_TIMEOUT),
            vec![SyncAction::Failed {
                peer,
                offence: Offence::Unresponsive
            }]
        );
        let later = now + SYNC_TIMEOUT + COOL_DOWN;
        sync.tick(local(0), later);
        assert_eq!(sync.peer_status(peer, tip(8), local(0), later).len(), 2);
    }

    #[test]
    fn a_peer_that_shows_nothing_of_its_claimed_work_is_a_false_status() {
        let mut sync = SyncManager::new();
        let now = Instant::now();
        let peer = PeerId::random();
        sync.peer_status(peer, tip(1000), local(2), now);
        assert_eq!(
            sync.batch(peer, Batch::Empty, local(2), now),
            vec![SyncAction::Failed {
                peer,
                offence: Offence::FalseStatus
            }]
        );
    }

    #[test]
    fn an_empty_answer_after_progress_finishes_and_is_not_retried() {
        let mut sync = SyncManager::new();
        let now = Instant::now();
        let peer = PeerId::random();
        sync.peer_status(peer, tip(10), local(0), now);
        let last = hash(9);
        let b = Batch::Blocks {
            count: 9,
            full: false,
            last,
        };
        sync.batch(peer, b, local(9), now);
        let done = sync.batch(peer, Batch::Empty, local(9), now);
        assert!(matches!(done[..], [SyncAction::Finished { .. }]));
        assert!(
            sync.tick(local(9), now).is_empty(),
            "no loop on the same peer"
        );
    }

    #[test]
    fn an_orphan_starts_a_sync_with_its_sender() {
        let mut sync = SyncManager::new();
        let now = Instant::now();
        let peer = PeerId::random();
        let actions = sync.orphan_from(peer, 12, local(3), now);
        assert_eq!(
            actions[0],
            SyncAction::Started {
                peer,
                from_height: 3,
                to_height: 12
            }
        );
    }

    #[test]
    fn answers_from_a_peer_we_are_not_syncing_with_are_ignored() {
        let mut sync = SyncManager::new();
        let now = Instant::now();
        let (a, b) = (PeerId::random(), PeerId::random());
        sync.peer_status(a, tip(8), local(0), now);
        assert!(sync.batch(b, Batch::Empty, local(0), now).is_empty());
        assert!(sync
            .request_failed(b, Offence::Unresponsive, local(0), now)
            .is_empty());
        assert_eq!(sync.active_peer(), Some(a));
    }

    #[test]
    fn losing_the_sync_peer_moves_to_another() {
        let mut sync = SyncManager::new();
        let now = Instant::now();
        let (a, b) = (PeerId::random(), PeerId::random());
        sync.peer_status(a, tip(9), local(0), now);
        sync.peer_status(b, tip(8), local(0), now);
        let actions = sync.peer_left(&a, local(0), now);
        assert!(matches!(actions[0], SyncAction::Started { peer, .. } if peer == b));
    }
}
