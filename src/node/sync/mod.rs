//! The headers-first sync state machine: peer claims, header runs, body answers and batch
//! outcomes in; requests, batches to connect, penalties and progress out. It does no I/O.
//!
//! Rules it keeps (see `proto-notes/wire.md`, "How a node syncs"):
//! - headers first: every peer that claims more work than our chain (its status, or a gossiped
//!   block whose parent we lack) is asked for headers by locator, [`MAX_HEADERS_PER_RESPONSE`]
//!   at a time, until a short answer; each run is checked as it arrives ([`HeaderChain`]);
//! - a peer whose headers end below the work it claimed is penalised at once (`FalseStatus`)
//!   and cooled down; a header from the future stops its run without a penalty;
//! - the target is the header chain with the most work, and only if that is more than ours; its
//!   bodies are fetched from the lowest missing one up, in chunks of at most [`CHUNK`] hashes
//!   inside a window of [`WINDOW`], up to [`MAX_FLIGHTS_PER_PEER`] chunks per peer, from every
//!   peer whose header chain holds the chunk;
//! - each answer is checked as it arrives (its blocks' context-free rules, signatures included:
//!   [`SyncAction::Check`], carried out off the event loop, reported back through
//!   [`SyncManager::checked`]); meanwhile its chunk does not expire, and its peer's slot is
//!   free for the next request;
//! - the contiguous run of checked bodies from the lowest missing one is handed to the node as
//!   one batch ([`SyncAction::Connect`]); a body that is not the one asked for, that fails its
//!   check, or that the chain refuses, costs its sender `InvalidBlock` and is asked of another
//!   peer;
//! - no stalls: a request unanswered after [`REQUEST_TIMEOUT`] goes back to the gaps and costs
//!   its peer `Unresponsive` and a cool-down; an empty answer for what a peer announced loses it
//!   the slot (cool-down, its header chain dropped); a peer that disconnects is never charged;
//! - progress is reported at most every [`PROGRESS_EVERY`].

mod download;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use libp2p::PeerId;

use download::{Answer, Download};
pub use download::{Ticket, CHUNK, WINDOW};

use super::peers::Offence;
use crate::ledger::chain::{Anchor, HeaderChain, HeaderError};
use crate::ledger::{Block, BlockHash, BlockHeader, CheckedBlock, NetworkParams};
pub use crate::net::protocol::MAX_HEADERS_PER_RESPONSE;

/// How long a headers or blocks request may take before its peer counts as unresponsive.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a peer that failed a request is passed over.
pub const COOL_DOWN: Duration = Duration::from_secs(30);

/// Most body requests in flight to one peer.
pub const MAX_FLIGHTS_PER_PEER: usize = 6;

/// Least time between two progress reports.
pub const PROGRESS_EVERY: Duration = Duration::from_secs(1);

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

/// What the chain made of a batch the machine handed to it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Connected {
    /// The block that stopped the batch, and whether the chain now holds it invalid for good
    /// (its header commits to the broken rule) or only its body was bad.
    pub refused: Option<Refused>,
    /// Blocks found invalid when the best chain was activated (state rules).
    pub invalid: Vec<BlockHash>,
}

/// The block that stopped a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refused {
    /// Its hash.
    pub hash: BlockHash,
    /// How it failed.
    pub kind: RefusedKind,
}

/// How a batch's block failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefusedKind {
    /// Only early (timestamp past our clock's limit): nobody's fault.
    Early,
    /// Its body was bad (a signature, a size): another peer may have the right one.
    Body,
    /// The block itself is invalid: every chain through it is.
    Chain,
}

/// A decision for the node to carry out, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SyncAction {
    /// A download from `peer`'s chain begins (the node reports it).
    Started {
        /// The peer whose header chain is the target.
        peer: PeerId,
        /// Our height when it began.
        from_height: u64,
        /// The target's height.
        to_height: u64,
    },
    /// Ask `peer` for headers: the locator is `after` (if any) followed by our chain's.
    RequestHeaders {
        /// The peer to ask.
        peer: PeerId,
        /// The request's ticket.
        ticket: Ticket,
        /// The last header of the peer's header chain so far.
        after: Option<BlockHash>,
    },
    /// Ask `peer` for the bodies of `hashes`.
    RequestBlocks {
        /// The peer to ask.
        peer: PeerId,
        /// The request's ticket.
        ticket: Ticket,
        /// Hashes, lowest first.
        hashes: Vec<BlockHash>,
    },
    /// Check the context-free rules of an answer's blocks (off the event loop), then report
    /// [`SyncManager::checked`] with the same `peer` and `ticket`.
    Check {
        /// The sender.
        peer: PeerId,
        /// The request's ticket.
        ticket: Ticket,
        /// The blocks, each the parent of the next.
        blocks: Vec<Block>,
    },
    /// Offer these blocks to the chain as one batch, then report [`SyncManager::connected`].
    Connect {
        /// Each the parent of the next.
        blocks: Vec<CheckedBlock>,
    },
    /// How far the download is.
    Progress {
        /// The peer whose chain is the target.
        peer: PeerId,
        /// Our height.
        height: u64,
        /// The target's height.
        target: u64,
        /// Blocks connected per second since the last report.
        blocks_per_s: u64,
    },
    /// The download is over: no peer shows more work than ours.
    Finished {
        /// The peer whose chain was the target when it began.
        peer: PeerId,
        /// Our height when it began.
        from_height: u64,
    },
    /// Penalise `peer` for `offence`.
    Penalise {
        /// The peer at fault.
        peer: PeerId,
        /// What it did.
        offence: Offence,
    },
}

/// What the machine knows of one peer.
#[derive(Debug)]
struct Peer {
    claimed: PeerTip,
    headers: Option<HeaderChain>,
    /// Bumped each time the header chain is cut back or replaced.
    generation: u64,
    asking: Option<(Ticket, Instant)>,
    /// Its last headers answer was short (or stopped early): it has nothing more for now.
    headers_done: bool,
    cool_until: Option<Instant>,
}

impl Peer {
    fn new(claimed: PeerTip) -> Self {
        Self {
            claimed,
            headers: None,
            generation: 0,
            asking: None,
            headers_done: false,
            cool_until: None,
        }
    }

    fn cooling(&self, now: Instant) -> bool {
        self.cool_until.is_some_and(|t| t > now)
    }

    fn shown_work(&self) -> u128 {
        self.headers.as_ref().map_or(0, HeaderChain::work)
    }
}

/// A download in progress: whose header chain it follows, and its reporting.
#[derive(Debug)]
struct Session {
    owner: PeerId,
    generation: u64,
    started_by: PeerId,
    from_height: u64,
    last_report: Instant,
    height_at_report: u64,
}

/// The state machine.
#[derive(Debug)]
pub struct SyncManager {
    params: NetworkParams,
    peers: HashMap<PeerId, Peer>,
    download: Download,
    session: Option<Session>,
    /// Who sent each body of the current download, until the download ends.
    senders: crate::ledger::digest_map::DigestMap<BlockHash, PeerId>,
    next_ticket: u64,
}

/// What the chain can tell the machine: whether it holds a block, and the anchor of one.
pub trait ChainView {
    /// True if the block is in the tree.
    fn has_block(&self, hash: &BlockHash) -> bool;
    /// The anchor of a block in the tree.
    fn anchor(&self, hash: &BlockHash) -> Option<Anchor>;
    /// Our chain now.
    fn local(&self) -> Local;
}

impl SyncManager {
    /// No peers, no sync, on the network `params`.
    pub fn new(params: NetworkParams) -> Self {
        Self {
            params,
            peers: HashMap::new(),
            download: Download::default(),
            session: None,
            senders: Default::default(),
            next_ticket: 0,
        }
    }

    /// The peer whose chain we are downloading, if any.
    pub fn active_peer(&self) -> Option<PeerId> {
        self.session.as_ref().map(|s| s.owner)
    }

    /// True while any peer is asked for headers or a download runs.
    pub fn is_busy(&self) -> bool {
        self.session.is_some() || self.peers.values().any(|p| p.asking.is_some())
    }

    fn ticket(&mut self) -> Ticket {
        self.next_ticket += 1;
        Ticket(self.next_ticket)
    }

    /// A peer's status arrived.
    pub fn peer_status(
        &mut self,
        peer: PeerId,
        tip: PeerTip,
        chain: &impl ChainView,
        now: Instant,
    ) -> Vec<SyncAction> {
        let entry = self.peers.entry(peer).or_insert_with(|| Peer::new(tip));
        if tip.work > entry.claimed.work || tip.work > entry.shown_work() {
            entry.headers_done = false;
        }
        entry.claimed = tip;
        self.pump(chain, now)
    }

    /// A peer gossiped a block at `height` whose parent we do not know: it has a chain we lack.
    /// The block shows the work of a chain that high (difficulty is fixed per network), so it
    /// is evidence of more work than ours only when it is above our tip; then it lifts a
    /// cool-down from an earlier, lying status. A block at or below our height (a stale one,
    /// e.g. replayed by gossip to a new peer) claims nothing, so it can never make an honest
    /// peer look like it claimed more than its headers show.
    pub fn orphan_from(
        &mut self,
        peer: PeerId,
        height: u64,
        chain: &impl ChainView,
        now: Instant,
    ) -> Vec<SyncAction> {
        let local = chain.local();
        if height <= local.height {
            return Vec::new();
        }
        let per_block = crate::ledger::block::work_for(self.params.difficulty);
        let shown = local
            .work
            .saturating_add(per_block.saturating_mul(u128::from(height - local.height)));
        let entry = self
            .peers
            .entry(peer)
            .or_insert_with(|| Peer::new(PeerTip { height, work: 0 }));
        entry.claimed.height = entry.claimed.height.max(height);
        entry.claimed.work = entry.claimed.work.max(shown);
        entry.headers_done = false;
        entry.cool_until = None;
        self.pump(chain, now)
    }

    /// A peer disconnected: what it was asked goes to others; it is not charged.
    pub fn peer_left(
        &mut self,
        peer: &PeerId,
        chain: &impl ChainView,
        now: Instant,
    ) -> Vec<SyncAction> {
        self.peers.remove(peer);
        self.download.forget_peer(peer);
        self.pump(chain, now)
    }

    /// A peer answered a headers request.
    pub fn headers(
        &mut self,
        peer: PeerId,
        ticket: Ticket,
        headers: Vec<BlockHeader>,
        chain: &impl ChainView,
        now_ms: u64,
        now: Instant,
    ) -> Vec<SyncAction> {
        let local = chain.local();
        let Some(entry) = self.peers.get_mut(&peer) else {
            return Vec::new();
        };
        if entry.asking.map(|(t, _)| t) != Some(ticket) {
            return Vec::new();
        }
        entry.asking = None;
        let mut actions = Vec::new();
        let full = headers.len() >= MAX_HEADERS_PER_RESPONSE as usize;
        let outcome = match headers.first() {
            None => Ok(false),
            Some(first) => {
                let parent = first.prev_hash;
                let position = entry.headers.as_ref().and_then(|h| {
                    if h.tip_hash() == parent {
                        Some(h.len())
                    } else {
                        h.position(&parent).map(|i| i + 1)
                    }
                });
                match position {
                    Some(len) => {
                        if let Some(h) = entry.headers.as_mut() {
                            if len < h.len() {
                                h.truncate(len);
                                entry.generation += 1;
                            }
                        }
                    }
                    None => match chain.anchor(&parent) {
                        Some(anchor) => {
                            entry.headers = Some(HeaderChain::new(anchor));
                            entry.generation += 1;
                        }
                        None => entry.headers = None,
                    },
                }
                match entry.headers.as_mut() {
                    None => Err(None),
                    Some(h) => h
                        .extend(&headers, &self.params, now_ms)
                        .map(|e| e.early)
                        .map_err(Some),
                }
            }
        };
        match outcome {
            Err(error) => {
                let offence = match error {
                    None | Some(HeaderError::Unlinked { .. }) => Offence::BadResponse,
                    Some(_) => Offence::InvalidBlock,
                };
                tracing::debug!(%peer, ?error, "headers refused");
                actions.extend(self.drop_peer_chain(peer, Some(offence), now));
            }
            Ok(true) => {
                // A header ahead of our clock: stop here without blame, and try later.
                entry.headers_done = true;
                entry.cool_until = Some(now + COOL_DOWN);
            }
            Ok(false) if full => {}
            Ok(false) => {
                entry.headers_done = true;
                let shown = entry.shown_work().max(local.work);
                if entry.claimed.work > shown {
                    actions.extend(self.drop_peer_chain(peer, Some(Offence::FalseStatus), now));
                } else if let Some(p) = self.peers.get_mut(&peer) {
                    // It has shown all it has: hold it to that until a new claim.
                    p.claimed.work = p.claimed.work.min(shown);
                }
            }
        }
        actions.extend(self.pump(chain, now));
        actions
    }

    /// A peer answered a blocks request.
    pub fn blocks(
        &mut self,
        peer: PeerId,
        ticket: Ticket,
        blocks: Vec<Block>,
        chain: &impl ChainView,
        now: Instant,
    ) -> Vec<SyncAction> {
        let mut actions = Vec::new();
        match self.download.answered(ticket, &blocks) {
            Answer::Unknown => {}
            Answer::Taken { count } => {
                let mut blocks = blocks;
                blocks.truncate(count);
                actions.push(SyncAction::Check {
                    peer,
                    ticket,
                    blocks,
                });
            }
            Answer::Empty => {
                tracing::debug!(%peer, "empty answer for announced blocks");
                actions.extend(self.drop_peer_chain(peer, None, now));
            }
            Answer::Mismatch => {
                actions.extend(self.drop_peer_chain(peer, Some(Offence::InvalidBlock), now));
            }
        }
        actions.extend(self.pump(chain, now));
        actions
    }

    /// An answer's check ([`SyncAction::Check`]) is done: `checked` is the prefix of its blocks
    /// that passed, and `failed` whether one after it broke a rule (then its sender loses the
    /// slot and is charged `InvalidBlock`, and the rest is asked of another peer).
    pub fn checked(
        &mut self,
        peer: PeerId,
        ticket: Ticket,
        checked: Vec<CheckedBlock>,
        failed: bool,
        chain: &impl ChainView,
        now: Instant,
    ) -> Vec<SyncAction> {
        let mut actions = Vec::new();
        if self.download.checked(ticket, checked).is_some() && failed {
            actions.extend(self.blame_body(peer, now));
        }
        actions.extend(self.pump(chain, now));
        actions
    }

    /// A body `sender` sent broke a rule: only its copy was bad, so it loses the slot (and
    /// what it sent that is not connected yet) and is charged; others may serve the run.
    fn blame_body(&mut self, sender: PeerId, now: Instant) -> Vec<SyncAction> {
        self.download.forget_peer(&sender);
        if let Some(p) = self.peers.get_mut(&sender) {
            p.cool_until = Some(now + COOL_DOWN);
            p.headers = None;
            p.generation += 1;
        }
        vec![SyncAction::Penalise {
            peer: sender,
            offence: Offence::InvalidBlock,
        }]
    }

    /// A request failed: `garbage` if the answer did not decode (the peer's offence), else no
    /// answer came (a closed connection or stream: not charged; a real timeout is charged by
    /// [`SyncManager::tick`]).
    pub fn request_failed(
        &mut self,
        peer: PeerId,
        ticket: Ticket,
        garbage: bool,
        chain: &impl ChainView,
        now: Instant,
    ) -> Vec<SyncAction> {
        let mut actions = Vec::new();
        let mut ours = self.download.abandon(ticket).is_some();
        if let Some(p) = self.peers.get_mut(&peer) {
            if p.asking.map(|(t, _)| t) == Some(ticket) {
                p.asking = None;
                ours = true;
            }
            if ours {
                p.cool_until = Some(now + COOL_DOWN);
            }
        }
        if ours && garbage {
            actions.extend(self.drop_peer_chain(peer, Some(Offence::Garbage), now));
        }
        actions.extend(self.pump(chain, now));
        actions
    }

    /// The chain took a batch from [`SyncAction::Connect`].
    pub fn connected(
        &mut self,
        outcome: Connected,
        chain: &impl ChainView,
        now: Instant,
    ) -> Vec<SyncAction> {
        let mut actions = Vec::new();
        let mut blamed = Vec::new();
        if let Some(refused) = outcome.refused {
            let sender = self.senders.get(&refused.hash).copied();
            match refused.kind {
                RefusedKind::Early => {
                    if let Some(s) = sender {
                        if let Some(p) = self.peers.get_mut(&s) {
                            p.cool_until = Some(now + COOL_DOWN);
                        }
                        self.download.forget_peer(&s);
                    }
                }
                RefusedKind::Body => {
                    if let Some(s) = sender {
                        blamed.push(s);
                        actions.extend(self.blame_body(s, now));
                    }
                }
                RefusedKind::Chain => {
                    if let Some(s) = sender {
                        blamed.push(s);
                        actions.push(SyncAction::Penalise {
                            peer: s,
                            offence: Offence::InvalidBlock,
                        });
                    }
                    self.drop_chains_through(&refused.hash, now);
                }
            }
        }
        for hash in &outcome.invalid {
            if let Some(s) = self.senders.get(hash).copied() {
                if !blamed.contains(&s) {
                    blamed.push(s);
                    actions.push(SyncAction::Penalise {
                        peer: s,
                        offence: Offence::InvalidBlock,
                    });
                }
            }
            self.drop_chains_through(hash, now);
        }
        actions.extend(self.pump(chain, now));
        actions
    }

    /// Called about once a second: charges and re-assigns late requests, reports progress.
    pub fn tick(&mut self, chain: &impl ChainView, now: Instant) -> Vec<SyncAction> {
        let mut actions = Vec::new();
        let mut late = self.download.expire(now);
        for (id, p) in &mut self.peers {
            if p.asking.is_some_and(|(_, deadline)| deadline <= now) {
                p.asking = None;
                late.push(*id);
            }
        }
        late.sort();
        late.dedup();
        for peer in late {
            tracing::debug!(%peer, "sync request timed out");
            if let Some(p) = self.peers.get_mut(&peer) {
                p.cool_until = Some(now + COOL_DOWN);
            }
            actions.push(SyncAction::Penalise {
                peer,
                offence: Offence::Unresponsive,
            });
        }
        actions.extend(self.pump(chain, now));
        actions.extend(self.report(chain.local(), now, false));
        actions
    }

    /// Drops a peer's header chain (and what it was asked), cools it down, and charges it
    /// `offence` if there is one.
    fn drop_peer_chain(
        &mut self,
        peer: PeerId,
        offence: Option<Offence>,
        now: Instant,
    ) -> Vec<SyncAction> {
        self.download.forget_peer(&peer);
        if let Some(p) = self.peers.get_mut(&peer) {
            p.headers = None;
            p.generation += 1;
            p.headers_done = true;
            p.cool_until = Some(now + COOL_DOWN);
        }
        offence
            .map(|offence| SyncAction::Penalise { peer, offence })
            .into_iter()
            .collect()
    }

    /// Forgets every header chain that holds `hash` (an invalid block).
    fn drop_chains_through(&mut self, hash: &BlockHash, now: Instant) {
        for p in self.peers.values_mut() {
            if p.headers
                .as_ref()
                .is_some_and(|h| h.position(hash).is_some())
            {
                p.headers = None;
                p.generation += 1;
                p.headers_done = true;
                p.cool_until = Some(now + COOL_DOWN);
            }
        }
    }

    /// The peer whose header chain has the most work, above ours; the current target keeps
    /// its place unless another shows strictly more.
    fn best_target(&self, local: Local) -> Option<PeerId> {
        let current = self.session.as_ref().map(|s| s.owner);
        self.peers
            .iter()
            .filter_map(|(id, p)| Some((id, p.headers.as_ref()?)))
            .filter(|(_, h)| h.work() > local.work && !h.is_empty())
            .max_by(|(a, ha), (b, hb)| {
                ha.work()
                    .cmp(&hb.work())
                    .then_with(|| (Some(**a) == current).cmp(&(Some(**b) == current)))
                    .then(b.cmp(a))
            })
            .map(|(id, _)| *id)
    }

    /// Moves everything on: header requests, the target, body requests, ready batches, and
    /// the end of a download.
    fn pump(&mut self, chain: &impl ChainView, now: Instant) -> Vec<SyncAction> {
        let local = chain.local();
        let mut actions = Vec::new();
        // Headers from every peer that claims more than it has shown and than we have.
        let mut ask = Vec::new();
        for (id, p) in &self.peers {
            let wants = p.claimed.work > local.work && !p.headers_done;
            if wants && p.asking.is_none() && !p.cooling(now) {
                ask.push(*id);
            }
        }
        for peer in ask {
            let ticket = self.ticket();
            let Some(p) = self.peers.get_mut(&peer) else {
                continue;
            };
            p.asking = Some((ticket, now + REQUEST_TIMEOUT));
            let after = p
                .headers
                .as_ref()
                .filter(|h| !h.is_empty())
                .map(HeaderChain::tip_hash);
            actions.push(SyncAction::RequestHeaders {
                peer,
                ticket,
                after,
            });
        }
        // Header chains with no more work than ours are done with.
        for p in self.peers.values_mut() {
            if p.headers_done && p.headers.as_ref().is_some_and(|h| h.work() <= local.work) {
                p.headers = None;
                p.generation += 1;
            }
        }

        // The target.
        let target = self.best_target(local);
        match (&self.session, target) {
            (None, None) => return actions,
            (Some(_), None) => {
                if self.peers.values().any(|p| p.asking.is_some()) {
                    // Headers may still show a target; keep the session open meanwhile.
                    return actions;
                }
                actions.extend(self.report(local, now, true));
                if let Some(s) = self.session.take() {
                    actions.push(SyncAction::Finished {
                        peer: s.started_by,
                        from_height: s.from_height,
                    });
                }
                self.download.clear();
                self.senders.clear();
                return actions;
            }
            (_, Some(owner)) => {
                let generation = self.peers.get(&owner).map_or(0, |p| p.generation);
                match &mut self.session {
                    Some(s) if s.owner == owner && s.generation == generation => {}
                    Some(s) => {
                        s.owner = owner;
                        s.generation = generation;
                        self.download.clear();
                    }
                    None => {
                        let to_height = self
                            .peers
                            .get(&owner)
                            .and_then(|p| p.headers.as_ref())
                            .map_or(0, HeaderChain::tip_height);
                        self.session = Some(Session {
                            owner,
                            generation,
                            started_by: owner,
                            from_height: local.height,
                            last_report: now,
                            height_at_report: local.height,
                        });
                        self.download.clear();
                        actions.push(SyncAction::Started {
                            peer: owner,
                            from_height: local.height,
                            to_height,
                        });
                    }
                }
            }
        }
        let Some(owner) = self.session.as_ref().map(|s| s.owner) else {
            return actions;
        };
        // The lowest missing body (the tree holds every ancestor of what it holds), and the
        // window's hashes above it: only the window is copied, so a pump costs the same on a
        // long target as on a short one.
        let Some((from, window, end)) = self
            .peers
            .get(&owner)
            .and_then(|p| p.headers.as_ref())
            .map(|h| {
                let hashes = h.hashes();
                let from = hashes.partition_point(|h| chain.has_block(h));
                let stop = hashes.len().min(from.saturating_add(WINDOW));
                (from, hashes[from..stop].to_vec(), hashes.len())
            })
        else {
            return actions;
        };
        self.download.advance(from);

        // Ready bodies from the lowest missing one: one batch.
        let ready = self.download.take_ready(from);
        if !ready.is_empty() {
            let mut blocks = Vec::with_capacity(ready.len());
            for (block, sender) in ready {
                self.senders.insert(block.hash(), sender);
                blocks.push(block);
            }
            actions.push(SyncAction::Connect { blocks });
            // The node reports back through `connected`, which pumps again.
            return actions;
        }

        // Body requests for the gaps, each to a peer that has the run and a free slot.
        for (start, len) in self.download.gaps(from, end) {
            let Some(run) = window.get(start - from..start - from + len) else {
                continue;
            };
            let run = run.to_vec();
            let Some(last) = run.last() else {
                continue;
            };
            let Some(peer) = self.server_for(last, now) else {
                break;
            };
            let ticket = self.ticket();
            self.download
                .asked(start, peer, ticket, run.clone(), now + REQUEST_TIMEOUT);
            actions.push(SyncAction::RequestBlocks {
                peer,
                ticket,
                hashes: run,
            });
        }
        actions
    }

    /// The peer to ask for a run ending at `last`: one whose header chain holds it, not
    /// cooling down, with a free slot, fewest requests in flight first.
    fn server_for(&self, last: &BlockHash, now: Instant) -> Option<PeerId> {
        self.peers
            .iter()
            .filter(|(_, p)| !p.cooling(now))
            .filter(|(_, p)| {
                p.headers
                    .as_ref()
                    .is_some_and(|h| h.position(last).is_some())
            })
            .map(|(id, _)| (self.download.flights(id), *id))
            .filter(|(flights, _)| *flights < MAX_FLIGHTS_PER_PEER)
            .min()
            .map(|(_, id)| id)
    }

    /// A progress report, if one is due (or `force`d at the end of a download).
    fn report(&mut self, local: Local, now: Instant, force: bool) -> Vec<SyncAction> {
        let Some(s) = self.session.as_mut() else {
            return Vec::new();
        };
        let elapsed = now.saturating_duration_since(s.last_report);
        if !force && elapsed < PROGRESS_EVERY {
            return Vec::new();
        }
        let gained = local.height.saturating_sub(s.height_at_report);
        let millis = elapsed.as_millis().max(1) as u64;
        let blocks_per_s = gained.saturating_mul(1000) / millis;
        s.last_report = now;
        s.height_at_report = local.height;
        let target = self
            .peers
            .get(&s.owner)
            .and_then(|p| p.headers.as_ref())
            .map_or(local.height, HeaderChain::tip_height);
        vec![SyncAction::Progress {
            peer: s.owner,
            height: local.height,
            target,
            blocks_per_s,
        }]
    }
}

#[cfg(test)]
mod tests;
