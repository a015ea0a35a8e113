//! The peer book: who we know, how to reach them, when to re-dial them, and how well they behave.
//!
//! Rules it keeps: a learned peer is re-dialed with exponential backoff (capped at
//! [`MAX_BACKOFF`]) after its last connection closes; a peer's misbehaviour adds to its score,
//! which fades by a point every [`SCORE_DECAY_STEP`], and at [`BAN_SCORE`] it is banned for
//! [`BAN_DURATION`] (bans are kept apart, at most [`MAX_BANS`], so banned throwaway identities
//! never push peers out); the book holds at most [`MAX_KNOWN_PEERS`] peers (to make room it
//! forgets a disconnected peer not given by hand, unproven ones and the longest unseen first)
//! and [`MAX_ADDRS_PER_PEER`] addresses each.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use libp2p::swarm::ConnectionId;
use libp2p::{Multiaddr, PeerId};

use crate::ledger::BlockHash;

/// First re-dial delay after a connection closes or a dial fails.
pub const INITIAL_BACKOFF: Duration = Duration::from_secs(1);

/// Longest re-dial delay: a peer that comes back is reconnected within this.
pub const MAX_BACKOFF: Duration = Duration::from_secs(8);

/// Re-dial delay for a proven peer seen within [`RECENTLY`]: after a partition heals,
/// the two sides are connected again within about this (plus a tick), to agree on one chain quickly.
pub const RECENT_MAX_BACKOFF: Duration = Duration::from_secs(1);

/// How long after its last connection a proven peer is re-dialed at the faster pace.
pub const RECENTLY: Duration = Duration::from_secs(300);

/// Score at which a peer is banned.
pub const BAN_SCORE: u32 = 100;

/// How long a ban lasts.
pub const BAN_DURATION: Duration = Duration::from_secs(600);

/// A peer's score drops by one point for each such stretch without an offence (10 points a
/// minute): offences close together add up to a ban, while an honest peer's rare ones fade
/// instead of adding up over the node's whole life.
pub const SCORE_DECAY_STEP: Duration = Duration::from_secs(6);

/// Most peers the book remembers.
pub const MAX_KNOWN_PEERS: usize = 512;

/// Most bans the book remembers, apart from its peers: when full, the ban closest to running out
/// is forgotten first. Bans live apart so that throwaway identities, banned by the hundred, never
/// push honest or configured peers out of the book.
pub const MAX_BANS: usize = 4096;

/// Most dialable addresses kept per peer.
pub const MAX_ADDRS_PER_PEER: usize = 8;

/// A connection with no answered ping for this long is dead. Ping's own failure report comes
/// much later: its first failure is silent, and the retry waits for a stream upgrade timeout.
pub const SILENCE_LIMIT: Duration = Duration::from_secs(8);

/// Something a peer did wrong, with the score it costs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Offence {
    /// Sent bytes that do not decode (gossip or sync).
    Garbage,
    /// Sent a block that breaks a consensus rule.
    InvalidBlock,
    /// Sent a transaction that no state could make valid (bad signature, zero amount).
    InvalidTransaction,
    /// Answered a sync request with blocks that do not follow our locator or each other.
    BadResponse,
    /// Did not answer a sync request in time, or the stream failed.
    Unresponsive,
    /// Claimed more work than it could show.
    FalseStatus,
    /// Made more sync requests, or took more answer bytes, than its budget allows.
    OverBudget,
}

impl Offence {
    /// Score added for this offence: invalid blocks ban at once, the rest add up.
    pub fn score(self) -> u32 {
        match self {
            Offence::InvalidBlock => BAN_SCORE,
            Offence::Garbage | Offence::BadResponse | Offence::InvalidTransaction => 50,
            Offence::Unresponsive | Offence::FalseStatus | Offence::OverBudget => 20,
        }
    }
}

/// What the book knows of one peer.
#[derive(Debug, Clone)]
pub struct PeerEntry {
    /// Addresses we can dial it at (learned by mDNS, `--peer`, `dial` or a successful dial).
    pub dial_addrs: Vec<Multiaddr>,
    /// Open connections and their remote addresses.
    pub connections: HashMap<ConnectionId, Multiaddr>,
    /// Height of its tip, from its status or its gossip.
    pub height: Option<u64>,
    /// Its tip hash, from its status.
    pub tip: Option<BlockHash>,
    score: u32,
    /// When `score` was last brought up to date with its decay.
    scored_at: Option<Instant>,
    /// Given by hand (`--peer` with a peer id, or `dial`): never forgotten to make room.
    pinned: bool,
    /// It answered with a status of our network: worth more than a peer that never did.
    proven: bool,
    /// Last time it connected or sent a status: among peers to forget, the oldest goes first.
    last_seen: Option<Instant>,
    next_dial: Option<Instant>,
    backoff: Duration,
}

impl PeerEntry {
    fn new() -> Self {
        Self {
            dial_addrs: Vec::new(),
            connections: HashMap::new(),
            height: None,
            tip: None,
            score: 0,
            scored_at: None,
            pinned: false,
            proven: false,
            last_seen: None,
            next_dial: None,
            backoff: INITIAL_BACKOFF,
        }
    }

    /// Its misbehaviour score at its last offence: offences add up to a ban at [`BAN_SCORE`],
    /// which resets it, and fade by a point every [`SCORE_DECAY_STEP`].
    pub fn score(&self) -> u32 {
        self.score
    }

    /// Takes off the points that faded since the score was last brought up to date.
    fn decay(&mut self, now: Instant) {
        let Some(since) = self.scored_at else {
            self.scored_at = Some(now);
            return;
        };
        let steps = now.saturating_duration_since(since).as_millis() / SCORE_DECAY_STEP.as_millis();
        let steps = u32::try_from(steps).unwrap_or(u32::MAX);
        self.score = self.score.saturating_sub(steps);
        self.scored_at = Some(if self.score == 0 {
            now
        } else {
            since + SCORE_DECAY_STEP * steps
        });
    }

    /// True while at least one connection is open.
    pub fn is_connected(&self) -> bool {
        !self.connections.is_empty()
    }
}

/// An address given without a peer id (`--peer /ip4/../tcp/..`): dialed until someone answers.
#[derive(Debug, Clone)]
struct Bootstrap {
    addr: Multiaddr,
    peer: Option<PeerId>,
    next_dial: Instant,
    backoff: Duration,
}

/// A dial the book wants made now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dial {
    /// Dial a known peer at its addresses.
    Peer(PeerId, Vec<Multiaddr>),
    /// Dial an address whose peer is not known yet; report the connection id back.
    Address(usize, Multiaddr),
}

/// All peers the node knows, connected or not.
#[derive(Debug, Default)]
pub struct PeerBook {
    peers: HashMap<PeerId, PeerEntry>,
    bans: HashMap<PeerId, Instant>,
    bootstrap: Vec<Bootstrap>,
    pending_bootstrap: HashMap<ConnectionId, usize>,
    last_pong: HashMap<ConnectionId, Instant>,
}

/// Splits a trailing `/p2p/<peer id>` off an address.
pub fn split_peer_id(addr: &Multiaddr) -> (Multiaddr, Option<PeerId>) {
    let mut addr = addr.clone();
    match addr.iter().last() {
        Some(libp2p::multiaddr::Protocol::P2p(peer)) => {
            addr.pop();
            (addr, Some(peer))
        }
        _ => (addr, None),
    }
}

impl PeerBook {
    /// An empty book.
    pub fn new() -> Self {
        Self::default()
    }

    /// The entry of a peer, if known.
    pub fn get(&self, peer: &PeerId) -> Option<&PeerEntry> {
        self.peers.get(peer)
    }

    /// Peers with an open connection.
    pub fn connected(&self) -> impl Iterator<Item = (&PeerId, &PeerEntry)> {
        self.peers.iter().filter(|(_, e)| e.is_connected())
    }

    /// Number of peers with an open connection.
    pub fn connected_count(&self) -> usize {
        self.connected().count()
    }

    /// The entry of `peer`, made room for if the book is full: of the disconnected peers not
    /// given by hand, one that never proved itself goes first, then the one seen longest ago.
    /// `None` only if every entry is connected or given by hand.
    fn entry(&mut self, peer: PeerId, now: Instant) -> Option<&mut PeerEntry> {
        if !self.peers.contains_key(&peer) && self.peers.len() >= MAX_KNOWN_PEERS {
            let idle = self
                .peers
                .iter()
                .filter(|(_, e)| !e.is_connected() && !e.pinned)
                .min_by_key(|(_, e)| (e.proven, e.last_seen))
                .map(|(p, _)| *p)?;
            self.peers.remove(&idle);
        }
        let entry = self.peers.entry(peer).or_insert_with(PeerEntry::new);
        entry.last_seen.get_or_insert(now);
        Some(entry)
    }

    /// Learns a dialable address of a peer. Returns true if the peer should be dialed now:
    /// not connected, not banned, and not already waiting for a re-dial.
    pub fn learn(&mut self, peer: PeerId, addr: Multiaddr, now: Instant) -> bool {
        let banned = self.is_banned(&peer, now);
        let Some(entry) = self.entry(peer, now) else {
            return false;
        };
        if !entry.dial_addrs.contains(&addr) && entry.dial_addrs.len() < MAX_ADDRS_PER_PEER {
            entry.dial_addrs.push(addr);
        }
        let due = entry.next_dial.is_none_or(|t| t <= now);
        if entry.is_connected() || banned || !due {
            return false;
        }
        entry.next_dial = Some(now + entry.backoff);
        true
    }

    /// Adds a peer given by hand (`--peer .../p2p/<id>`): learned, never forgotten to make
    /// room, and due for a dial now.
    pub fn add_peer(&mut self, peer: PeerId, addr: Multiaddr, now: Instant) {
        self.learn(peer, addr, now);
        self.pin(peer, now);
        if let Some(entry) = self.peers.get_mut(&peer) {
            entry.next_dial = Some(now);
        }
    }

    /// Marks a peer as given by hand (the console's `dial`): never forgotten to make room.
    pub fn pin(&mut self, peer: PeerId, now: Instant) {
        if let Some(entry) = self.entry(peer, now) {
            entry.pinned = true;
        }
    }

    /// Adds an address to dial until a peer answers there. Returns its index for
    /// [`PeerBook::bootstrap_dialing`].
    pub fn add_bootstrap(&mut self, addr: Multiaddr, now: Instant) -> usize {
        if let Some(i) = self.bootstrap.iter().position(|b| b.addr == addr) {
            return i;
        }
        self.bootstrap.push(Bootstrap {
            addr,
            peer: None,
            next_dial: now,
            backoff: INITIAL_BACKOFF,
        });
        self.bootstrap.len() - 1
    }

    /// Records that the dial of bootstrap address `index` runs as `connection`.
    pub fn bootstrap_dialing(&mut self, index: usize, connection: ConnectionId, now: Instant) {
        if let Some(b) = self.bootstrap.get_mut(index) {
            b.next_dial = now + b.backoff;
            b.backoff = (b.backoff * 2).min(MAX_BACKOFF);
            self.pending_bootstrap.insert(connection, index);
        }
    }

    /// A dial failed; the bootstrap entry (if it was one) waits for its next turn, or, if the
    /// address turned out to be `myself`, is never dialed again.
    pub fn dial_failed(&mut self, connection: ConnectionId, myself: Option<PeerId>) {
        let index = self.pending_bootstrap.remove(&connection);
        if let (Some(b), Some(me)) = (index.and_then(|i| self.bootstrap.get_mut(i)), myself) {
            b.peer = Some(me);
        }
    }

    /// Records a new connection. `dialed` is the address we dialed, if we dialed. Returns true
    /// if this is the peer's first open connection.
    pub fn connected_to(
        &mut self,
        peer: PeerId,
        connection: ConnectionId,
        remote: Multiaddr,
        dialed: bool,
        now: Instant,
    ) -> bool {
        self.last_pong.insert(connection, now);
        let bootstrap = self.pending_bootstrap.remove(&connection);
        if let Some(b) = bootstrap.and_then(|i| self.bootstrap.get_mut(i)) {
            b.peer = Some(peer);
        }
        let Some(entry) = self.entry(peer, now) else {
            return false;
        };
        let (plain, _) = split_peer_id(&remote);
        if dialed
            && !entry.dial_addrs.contains(&plain)
            && entry.dial_addrs.len() < MAX_ADDRS_PER_PEER
        {
            entry.dial_addrs.push(plain);
        }
        let first = !entry.is_connected();
        entry.last_seen = Some(now);
        entry.connections.insert(connection, remote);
        entry.backoff = INITIAL_BACKOFF;
        entry.next_dial = None;
        first
    }

    /// Records a closed connection. Returns true if it was the peer's last; a re-dial is then
    /// scheduled after the initial backoff.
    pub fn disconnected(&mut self, peer: &PeerId, connection: ConnectionId, now: Instant) -> bool {
        self.last_pong.remove(&connection);
        let Some(entry) = self.peers.get_mut(peer) else {
            return false;
        };
        if entry.connections.remove(&connection).is_none() || entry.is_connected() {
            return false;
        }
        entry.last_seen = Some(now);
        entry.next_dial = Some(now + INITIAL_BACKOFF);
        true
    }

    /// The dials due now: known peers that are disconnected, not banned and past their backoff,
    /// and bootstrap addresses nobody answered yet. Each due dial pushes its next turn back.
    pub fn due_dials(&mut self, now: Instant) -> Vec<Dial> {
        let mut dials = Vec::new();
        let bans = &self.bans;
        for (peer, entry) in &mut self.peers {
            let banned = bans.get(peer).is_some_and(|t| *t > now);
            let due = entry.next_dial.is_some_and(|t| t <= now);
            if entry.is_connected() || banned || !due || entry.dial_addrs.is_empty() {
                continue;
            }
            let recent = entry.proven
                && entry
                    .last_seen
                    .is_some_and(|t| now.saturating_duration_since(t) < RECENTLY);
            let cap = if recent {
                RECENT_MAX_BACKOFF
            } else {
                MAX_BACKOFF
            };
            entry.backoff = entry.backoff.min(cap);
            entry.next_dial = Some(now + entry.backoff);
            entry.backoff = (entry.backoff * 2).min(cap);
            dials.push(Dial::Peer(*peer, entry.dial_addrs.clone()));
        }
        let pending: HashSet<usize> = self.pending_bootstrap.values().copied().collect();
        for (i, b) in self.bootstrap.iter().enumerate() {
            if b.peer.is_none() && b.next_dial <= now && !pending.contains(&i) {
                dials.push(Dial::Address(i, b.addr.clone()));
            }
        }
        dials
    }

    /// A ping on `connection` was answered.
    pub fn pong(&mut self, connection: ConnectionId, now: Instant) {
        if let Some(last) = self.last_pong.get_mut(&connection) {
            *last = now;
        }
    }

    /// Connections of peers silent for [`SILENCE_LIMIT`] on every connection: the caller
    /// closes them. A peer is alive while any of its connections answers pings: libp2p pings
    /// only some of a pair's simultaneous connections once both sides dialed at the same time,
    /// and closing such an unpinged twin cut live peers off while their miners were busy.
    pub fn silent_connections(&self, now: Instant) -> Vec<ConnectionId> {
        let silent = |c: &ConnectionId| {
            self.last_pong
                .get(c)
                .is_some_and(|last| now.saturating_duration_since(*last) >= SILENCE_LIMIT)
        };
        let mut owned = HashSet::new();
        let mut dead = Vec::new();
        for entry in self.peers.values() {
            owned.extend(entry.connections.keys().copied());
            if entry.connections.keys().all(silent) {
                dead.extend(entry.connections.keys().copied());
            }
        }
        // Connections the book holds no peer for (a full book) are judged alone.
        dead.extend(
            self.last_pong
                .keys()
                .filter(|c| !owned.contains(*c) && silent(c)),
        );
        dead
    }

    /// Notes a peer's tip from its status (of our network): the peer has proved itself.
    pub fn set_status(&mut self, peer: &PeerId, height: u64, tip: BlockHash, now: Instant) {
        if let Some(entry) = self.peers.get_mut(peer) {
            entry.height = Some(height);
            entry.tip = Some(tip);
            entry.proven = true;
            entry.last_seen = Some(now);
        }
    }

    /// Notes that a peer has a block at `height` (it gossiped it).
    pub fn saw_height(&mut self, peer: &PeerId, height: u64) {
        if let Some(entry) = self.peers.get_mut(peer) {
            entry.height = Some(entry.height.map_or(height, |h| h.max(height)));
        }
    }

    /// Adds an offence to a peer's score. Returns true if the peer is now banned (the caller
    /// disconnects it).
    pub fn penalise(&mut self, peer: &PeerId, offence: Offence, now: Instant) -> bool {
        let Some(entry) = self.peers.get_mut(peer) else {
            return false;
        };
        entry.decay(now);
        entry.score = entry.score.saturating_add(offence.score());
        if entry.score >= BAN_SCORE {
            entry.score = 0;
            self.ban(*peer, now);
            return true;
        }
        false
    }

    /// Bans a peer outright (another network, or a ban score reached elsewhere). Its entry, if
    /// any, no longer counts as proven, so it is the first to be forgotten when room is needed.
    pub fn ban(&mut self, peer: PeerId, now: Instant) {
        if let Some(entry) = self.peers.get_mut(&peer) {
            entry.proven = false;
        }
        if !self.bans.contains_key(&peer) && self.bans.len() >= MAX_BANS {
            self.bans.retain(|_, until| *until > now);
            if self.bans.len() >= MAX_BANS {
                if let Some(soonest) = self.bans.iter().min_by_key(|(_, t)| **t).map(|(p, _)| *p) {
                    self.bans.remove(&soonest);
                }
            }
        }
        self.bans.insert(peer, now + BAN_DURATION);
    }

    /// True while a peer's ban lasts.
    pub fn is_banned(&self, peer: &PeerId, now: Instant) -> bool {
        self.bans.get(peer).is_some_and(|t| *t > now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(port: u16) -> Multiaddr {
        format!("/ip4/127.0.0.1/tcp/{port}").parse().unwrap()
    }

    /// The delays between the re-dials `due_dials` hands out for `peer`, probing every 100 ms.
    fn redial_gaps(
        book: &mut PeerBook,
        peer: PeerId,
        from: Instant,
        count: usize,
    ) -> Vec<Duration> {
        let (mut last, mut gaps, mut t) = (from, Vec::new(), from);
        while gaps.len() < count {
            t += Duration::from_millis(100);
            if book
                .due_dials(t)
                .iter()
                .any(|d| matches!(d, Dial::Peer(p, _) if *p == peer))
            {
                gaps.push(t - last);
                last = t;
            }
        }
        gaps
    }

    #[test]
    fn a_proven_peer_that_just_left_is_redialed_every_second() {
        let mut book = PeerBook::new();
        let (proven, stranger) = (PeerId::random(), PeerId::random());
        let now = Instant::now();
        let c = ConnectionId::new_unchecked(1);
        book.connected_to(proven, c, addr(1), true, now);
        book.set_status(&proven, 5, BlockHash([1; 32]), now);
        book.disconnected(&proven, c, now);
        let gaps = redial_gaps(&mut book, proven, now, 6);
        assert!(gaps.iter().all(|g| *g <= RECENT_MAX_BACKOFF), "{gaps:?}");

        let c = ConnectionId::new_unchecked(2);
        book.connected_to(stranger, c, addr(2), true, now);
        book.disconnected(&stranger, c, now);
        let gaps = redial_gaps(&mut book, stranger, now, 6);
        assert!(
            gaps.last().is_some_and(|g| *g > RECENT_MAX_BACKOFF),
            "{gaps:?}"
        );
        assert!(gaps.iter().all(|g| *g <= MAX_BACKOFF), "{gaps:?}");
    }

    #[test]
    fn a_discovered_peer_is_dialed_once_until_its_backoff_passes() {
        let mut book = PeerBook::new();
        let peer = PeerId::random();
        let now = Instant::now();
        assert!(book.learn(peer, addr(1), now));
        assert!(!book.learn(peer, addr(1), now));
        assert!(book.due_dials(now).is_empty());
        assert_eq!(
            book.due_dials(now + INITIAL_BACKOFF),
            vec![Dial::Peer(peer, vec![addr(1)])]
        );
    }

    #[test]
    fn a_lost_peer_is_redialed_with_growing_backoff_and_reset_on_connect() {
        let mut book = PeerBook::new();
        let peer = PeerId::random();
        let conn = ConnectionId::new_unchecked(1);
        let now = Instant::now();
        book.learn(peer, addr(1), now);
        assert!(book.connected_to(peer, conn, addr(1), true, now));
        assert!(book.due_dials(now + MAX_BACKOFF * 10).is_empty());
        assert!(book.disconnected(&peer, conn, now));
        let mut t = now + INITIAL_BACKOFF;
        let mut gaps = Vec::new();
        for _ in 0..6 {
            assert_eq!(book.due_dials(t).len(), 1);
            let next = (1..=20)
                .map(|s| t + Duration::from_secs(s))
                .find(|&u| !book.due_dials_peek(u).is_empty())
                .unwrap();
            gaps.push((next - t).as_secs());
            t = next;
        }
        assert_eq!(gaps, vec![1, 2, 4, 8, 8, 8]);
        book.connected_to(peer, conn, addr(1), true, now);
        book.disconnected(&peer, conn, t);
        assert_eq!(book.due_dials(t + INITIAL_BACKOFF).len(), 1);
    }

    #[test]
    fn a_peer_without_pongs_on_any_connection_is_reported_silent_and_a_pong_revives_it() {
        let mut book = PeerBook::new();
        let peer = PeerId::random();
        let (c1, c2) = (
            ConnectionId::new_unchecked(1),
            ConnectionId::new_unchecked(2),
        );
        let now = Instant::now();
        book.connected_to(peer, c1, addr(1), true, now);
        book.connected_to(peer, c2, addr(1), false, now);
        let later = now + SILENCE_LIMIT;
        let mut both = book.silent_connections(later);
        both.sort();
        assert_eq!(both, vec![c1, c2]);
        // One answering connection keeps the peer, and its unpinged twin, alive.
        book.pong(c2, later - Duration::from_secs(1));
        assert!(book.silent_connections(later).is_empty());
        let much_later = later + SILENCE_LIMIT;
        let mut both = book.silent_connections(much_later);
        both.sort();
        assert_eq!(both, vec![c1, c2]);
        book.disconnected(&peer, c1, much_later);
        assert_eq!(book.silent_connections(much_later), vec![c2]);
    }

    #[test]
    fn an_invalid_block_bans_at_once_and_garbage_after_two() {
        let mut book = PeerBook::new();
        let (a, b) = (PeerId::random(), PeerId::random());
        let now = Instant::now();
        book.learn(a, addr(1), now);
        book.learn(b, addr(2), now);
        assert!(book.penalise(&a, Offence::InvalidBlock, now));
        assert!(book.is_banned(&a, now));
        assert!(!book.penalise(&b, Offence::Garbage, now));
        assert!(book.penalise(&b, Offence::Garbage, now));
        assert!(!book.is_banned(&a, now + BAN_DURATION));
    }

    #[test]
    fn scores_fade_so_rare_offences_never_add_up_to_a_ban_while_close_ones_do() {
        let mut book = PeerBook::new();
        let (honest, hostile) = (PeerId::random(), PeerId::random());
        let start = Instant::now();
        book.learn(honest, addr(1), start);
        book.learn(hostile, addr(2), start);
        // An honest peer that times out once every two minutes, for an hour, is never banned.
        for i in 0..30u32 {
            let at = start + Duration::from_secs(120) * i;
            assert!(
                !book.penalise(&honest, Offence::Unresponsive, at),
                "offence {i}"
            );
        }
        // Five timeouts within five seconds still ban.
        let later = start + Duration::from_secs(7200);
        let banned: Vec<bool> = (0..5u32)
            .map(|i| {
                book.penalise(
                    &hostile,
                    Offence::Unresponsive,
                    later + Duration::from_secs(1) * i,
                )
            })
            .collect();
        assert_eq!(banned, [false, false, false, false, true]);
    }

    #[test]
    fn a_score_fades_a_point_per_step_and_not_below_zero() {
        let mut book = PeerBook::new();
        let peer = PeerId::random();
        let start = Instant::now();
        book.learn(peer, addr(1), start);
        assert!(!book.penalise(&peer, Offence::Garbage, start));
        let score = |book: &PeerBook| book.get(&peer).map(PeerEntry::score);
        assert_eq!(score(&book), Some(50));
        assert!(!book.penalise(&peer, Offence::Unresponsive, start + SCORE_DECAY_STEP * 10));
        assert_eq!(score(&book), Some(60));
        assert!(!book.penalise(
            &peer,
            Offence::Unresponsive,
            start + SCORE_DECAY_STEP * 1000
        ));
        assert_eq!(score(&book), Some(20));
    }

    #[test]
    fn a_thousand_banned_throwaway_identities_never_push_out_configured_or_proven_peers() {
        let mut book = PeerBook::new();
        let now = Instant::now();
        let configured = PeerId::random();
        book.add_peer(configured, addr(1), now);
        let proven: Vec<PeerId> = (0..10).map(|_| PeerId::random()).collect();
        for (i, peer) in proven.iter().enumerate() {
            let conn = ConnectionId::new_unchecked(100 + i);
            book.connected_to(*peer, conn, addr(2), true, now);
            book.set_status(peer, 5, BlockHash([1; 32]), now);
            book.disconnected(peer, conn, now);
        }
        // Throwaway identities connect, misbehave, are banned and disconnect, a thousand times.
        for i in 0..1000 {
            let hostile = PeerId::random();
            let conn = ConnectionId::new_unchecked(1000 + i);
            let at = now + Duration::from_millis(i as u64);
            assert!(book.connected_to(hostile, conn, addr(3), false, at), "{i}");
            assert!(book.penalise(&hostile, Offence::InvalidBlock, at));
            book.disconnected(&hostile, conn, at);
            assert!(book.is_banned(&hostile, at));
        }
        assert!(book.get(&configured).is_some(), "the --peer peer stays");
        for peer in &proven {
            assert!(book.get(peer).is_some(), "a proven peer stays");
        }
        // A new honest peer still gets an entry, so its status is exchanged.
        let later = now + Duration::from_secs(2);
        let newcomer = PeerId::random();
        let conn = ConnectionId::new_unchecked(5000);
        assert!(book.connected_to(newcomer, conn, addr(4), false, later));
        assert!(book.get(&newcomer).is_some_and(PeerEntry::is_connected));
        // The configured peer is still re-dialed.
        let dials = book.due_dials(later + MAX_BACKOFF);
        assert!(dials
            .iter()
            .any(|d| matches!(d, Dial::Peer(p, _) if *p == configured)));
    }

    #[test]
    fn bans_are_bounded_and_the_one_closest_to_running_out_goes_first() {
        let mut book = PeerBook::new();
        let start = Instant::now();
        let first = PeerId::random();
        book.ban(first, start);
        for i in 1..MAX_BANS {
            book.ban(PeerId::random(), start + Duration::from_millis(i as u64));
        }
        assert!(book.is_banned(&first, start));
        let last = PeerId::random();
        let at = start + Duration::from_secs(5);
        book.ban(last, at);
        assert!(book.is_banned(&last, at));
        assert!(!book.is_banned(&first, at), "the oldest ban made room");
    }

    #[test]
    fn a_banned_peer_is_not_dialed() {
        let mut book = PeerBook::new();
        let peer = PeerId::random();
        let now = Instant::now();
        book.ban(peer, now);
        assert!(!book.learn(peer, addr(1), now));
        assert!(book.due_dials(now + MAX_BACKOFF).is_empty());
    }

    #[test]
    fn a_bootstrap_address_is_dialed_until_a_peer_answers_there() {
        let mut book = PeerBook::new();
        let now = Instant::now();
        let i = book.add_bootstrap(addr(9), now);
        assert_eq!(book.due_dials(now), vec![Dial::Address(i, addr(9))]);
        let conn = ConnectionId::new_unchecked(7);
        book.bootstrap_dialing(i, conn, now);
        assert!(book.due_dials(now + MAX_BACKOFF).is_empty(), "dial pending");
        book.dial_failed(conn, None);
        assert_eq!(book.due_dials(now + INITIAL_BACKOFF).len(), 1);
        let conn = ConnectionId::new_unchecked(8);
        book.bootstrap_dialing(i, conn, now);
        let peer = PeerId::random();
        book.connected_to(peer, conn, addr(9), true, now);
        assert!(book.due_dials(now + MAX_BACKOFF).is_empty());
        assert_eq!(book.get(&peer).unwrap().dial_addrs, vec![addr(9)]);
    }

    #[test]
    fn a_peer_given_by_hand_is_due_at_once() {
        let mut book = PeerBook::new();
        let peer = PeerId::random();
        let now = Instant::now();
        book.add_peer(peer, addr(4), now);
        assert_eq!(book.due_dials(now), vec![Dial::Peer(peer, vec![addr(4)])]);
    }

    #[test]
    fn a_bootstrap_address_that_is_our_own_is_dropped() {
        let mut book = PeerBook::new();
        let now = Instant::now();
        let i = book.add_bootstrap(addr(9), now);
        let conn = ConnectionId::new_unchecked(3);
        book.bootstrap_dialing(i, conn, now);
        book.dial_failed(conn, Some(PeerId::random()));
        assert!(book.due_dials(now + MAX_BACKOFF * 4).is_empty());
    }

    #[test]
    fn a_p2p_suffix_is_split_off() {
        let peer = PeerId::random();
        let full: Multiaddr = format!("/ip4/127.0.0.1/tcp/5/p2p/{peer}").parse().unwrap();
        assert_eq!(split_peer_id(&full), (addr(5), Some(peer)));
        assert_eq!(split_peer_id(&addr(5)), (addr(5), None));
    }

    impl PeerBook {
        /// `due_dials` without side effects, for measuring backoff gaps.
        fn due_dials_peek(&self, now: Instant) -> Vec<PeerId> {
            self.peers
                .iter()
                .filter(|(_, e)| !e.is_connected() && e.next_dial.is_some_and(|t| t <= now))
                .map(|(p, _)| *p)
                .collect()
        }
    }
}
