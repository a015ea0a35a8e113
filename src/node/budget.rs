//! Per-peer budgets for the sync requests peers make of us: a request rate and a rate of answer
//! bytes, each a token bucket, so that a peer pays for what it makes us do.
//!
//! Rules kept:
//! - a request is answered only while the peer has a request token and is not in debt of answer
//!   bytes; an answer is charged its encoded size after it is built (one answer may take the
//!   byte bucket below zero, and the next requests wait until it refills);
//! - the buckets are above what an honest node asks at full speed: it keeps at most 7 requests
//!   in flight to one peer (a headers request, 4 block requests, a status, a mempool request),
//!   each answer is at most about 3 MiB, and on a fast link answers come back in a millisecond
//!   or two, so a sync of a long chain asks hundreds of times a second (52,000 blocks a second
//!   is about 400 block requests of 128);
//! - the memory is bounded: past [`MAX_TRACKED`] peers, those whose buckets are full again are
//!   forgotten (a full bucket is what a new peer gets anyway).
//!
//! No I/O here: the node asks [`RequestBudgets::admit`] and charges with
//! [`RequestBudgets::charge`]; a refused request is declined (its stream closed unanswered) and
//! its peer penalised.

use std::collections::HashMap;
use std::time::Instant;

use libp2p::PeerId;

/// Requests a peer may make at once.
pub const REQUEST_BURST: f64 = 256.0;

/// Requests a peer may make per second, on average.
pub const REQUESTS_PER_S: f64 = 512.0;

/// Answer bytes a peer may take at once.
pub const BYTE_BURST: f64 = 64.0 * 1024.0 * 1024.0;

/// Answer bytes a peer may take per second, on average.
pub const BYTES_PER_S: f64 = 64.0 * 1024.0 * 1024.0;

/// Peers tracked before full buckets are forgotten.
pub const MAX_TRACKED: usize = 1024;

/// One peer's two buckets.
#[derive(Debug, Clone, Copy)]
struct Buckets {
    requests: f64,
    bytes: f64,
    at: Instant,
}

impl Buckets {
    fn full(now: Instant) -> Self {
        Self {
            requests: REQUEST_BURST,
            bytes: BYTE_BURST,
            at: now,
        }
    }

    fn refill(&mut self, now: Instant) {
        let dt = now.saturating_duration_since(self.at).as_secs_f64();
        self.requests = (self.requests + dt * REQUESTS_PER_S).min(REQUEST_BURST);
        self.bytes = (self.bytes + dt * BYTES_PER_S).min(BYTE_BURST);
        self.at = now;
    }

    fn is_full(&self) -> bool {
        self.requests >= REQUEST_BURST && self.bytes >= BYTE_BURST
    }
}

/// The request budgets of every peer that asked us something recently.
#[derive(Debug, Default)]
pub(super) struct RequestBudgets {
    peers: HashMap<PeerId, Buckets>,
}

impl RequestBudgets {
    /// True, and one request charged, if `peer` may make a request at `now`.
    pub(super) fn admit(&mut self, peer: PeerId, now: Instant) -> bool {
        if self.peers.len() >= MAX_TRACKED && !self.peers.contains_key(&peer) {
            self.peers.retain(|_, b| {
                b.refill(now);
                !b.is_full()
            });
        }
        let b = self.peers.entry(peer).or_insert_with(|| Buckets::full(now));
        b.refill(now);
        if b.requests < 1.0 || b.bytes <= 0.0 {
            return false;
        }
        b.requests -= 1.0;
        true
    }

    /// Charges `peer` the bytes of an answer it was given.
    pub(super) fn charge(&mut self, peer: PeerId, bytes: usize) {
        if let Some(b) = self.peers.get_mut(&peer) {
            b.bytes -= bytes as f64;
        }
    }

    /// Number of peers tracked.
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.peers.len()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn a_burst_is_admitted_and_the_next_request_waits_for_the_refill() {
        let mut budgets = RequestBudgets::default();
        let peer = PeerId::random();
        let now = Instant::now();
        for _ in 0..REQUEST_BURST as usize {
            assert!(budgets.admit(peer, now));
        }
        assert!(!budgets.admit(peer, now), "over the burst");
        assert!(!budgets.admit(peer, now + Duration::from_millis(1)));
        assert!(
            budgets.admit(peer, now + Duration::from_millis(3)),
            "one refilled"
        );
        assert!(
            budgets.admit(PeerId::random(), now),
            "others are not affected"
        );
    }

    #[test]
    fn an_honest_pace_is_never_refused() {
        // Seven requests in flight, all answered within 15 ms (a fast link, a busy sync:
        // 467 requests a second), the answers 3 MiB in all (200 MiB a second) for the first
        // 20 rounds, then 0.5 MiB (33 MiB a second) for 60 s.
        let mut budgets = RequestBudgets::default();
        let peer = PeerId::random();
        let start = Instant::now();
        for round in 0..4_000u32 {
            let now = start + Duration::from_millis(15) * round;
            let bytes = if round < 20 { 3 << 20 } else { 1 << 19 };
            for _ in 0..7 {
                assert!(budgets.admit(peer, now), "round {round}");
                budgets.charge(peer, bytes / 7);
            }
        }
    }

    #[test]
    fn answer_bytes_in_debt_hold_the_next_requests_until_they_refill() {
        let mut budgets = RequestBudgets::default();
        let peer = PeerId::random();
        let now = Instant::now();
        assert!(budgets.admit(peer, now));
        budgets.charge(peer, BYTE_BURST as usize + 3 * 1024 * 1024);
        assert!(!budgets.admit(peer, now), "in debt");
        assert!(!budgets.admit(peer, now + Duration::from_millis(40)));
        assert!(budgets.admit(peer, now + Duration::from_millis(60)));
    }

    #[test]
    fn past_the_cap_peers_with_full_buckets_are_forgotten() {
        let mut budgets = RequestBudgets::default();
        let now = Instant::now();
        for _ in 0..MAX_TRACKED {
            assert!(budgets.admit(PeerId::random(), now));
        }
        assert_eq!(budgets.len(), MAX_TRACKED);
        let later = now + Duration::from_secs(10);
        assert!(budgets.admit(PeerId::random(), later));
        assert_eq!(budgets.len(), 1);
    }
}
