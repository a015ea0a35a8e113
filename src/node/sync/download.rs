//! The body window of a download: which runs of the target header chain are asked of whom,
//! which came back, and which contiguous run is ready to connect. It does no I/O.
//!
//! Rules kept: a run ("chunk") is at most [`CHUNK`] hashes; chunks are only created inside
//! [`WINDOW`] hashes above the lowest missing body; an answer must be a prefix of its chunk's
//! hashes, block by block (else the sender broke the body rule); what an answer left out goes
//! back to the gaps, to be asked again of any peer that has it; an answer is checked (its
//! context-free rules, off the event loop) before it is ready; while it is checked it does
//! not expire, and its peer's slot is free again at once, so the next request is on its way
//! while the loop checks and connects (the window bounds what waits).

use std::collections::BTreeMap;
use std::time::Instant;

use libp2p::PeerId;

use crate::ledger::{Block, BlockHash, CheckedBlock};

/// Most hashes in one `GetBlocks` this node sends (the wire cap).
pub const CHUNK: usize = crate::net::protocol::MAX_BLOCKS_PER_REQUEST as usize;

/// How far above the lowest missing body requests may reach: room for the chunks in flight and
/// as many again being checked or waiting to connect.
pub const WINDOW: usize = 2_048;

/// An id the state machine gives each request, so an answer finds its chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Ticket(pub u64);

/// One run of the target chain.
#[derive(Debug, Clone)]
pub(super) enum Chunk {
    /// Asked of `peer` under `ticket`, due by `deadline`.
    InFlight {
        peer: PeerId,
        ticket: Ticket,
        hashes: Vec<BlockHash>,
        deadline: Instant,
    },
    /// Received from `peer` under `ticket`: `count` blocks being checked.
    Checking {
        peer: PeerId,
        ticket: Ticket,
        count: usize,
    },
    /// Received from `peer` and checked, waiting for the runs below it.
    Ready {
        peer: PeerId,
        blocks: Vec<CheckedBlock>,
    },
}

impl Chunk {
    fn len(&self) -> usize {
        match self {
            Chunk::InFlight { hashes, .. } => hashes.len(),
            Chunk::Checking { count, .. } => *count,
            Chunk::Ready { blocks, .. } => blocks.len(),
        }
    }

    fn peer(&self) -> &PeerId {
        match self {
            Chunk::InFlight { peer, .. }
            | Chunk::Checking { peer, .. }
            | Chunk::Ready { peer, .. } => peer,
        }
    }
}

/// What became of an answer to a chunk's request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Answer {
    /// Not a request of this download (an older one, or already given up).
    Unknown,
    /// Some blocks matched and are to be checked; the rest (if any) goes back to the gaps.
    Taken { count: usize },
    /// Nothing at all: the peer has none of what it announced.
    Empty,
    /// A block that is not the one asked for (or out of order).
    Mismatch,
}

/// The body window above the lowest missing body of the target chain.
#[derive(Debug, Clone, Default)]
pub(super) struct Download {
    /// Chunks by their start, an index into the target's hashes.
    chunks: BTreeMap<usize, Chunk>,
}

impl Download {
    /// Forgets every chunk (the target changed).
    pub(super) fn clear(&mut self) {
        self.chunks.clear();
    }

    /// Requests in flight to `peer` (answers being checked no longer count).
    pub(super) fn flights(&self, peer: &PeerId) -> usize {
        self.chunks
            .values()
            .filter(|c| matches!(c, Chunk::InFlight { peer: p, .. } if p == peer))
            .count()
    }

    /// Drops chunks below `from` (connected already) and ready chunks that no longer fit.
    pub(super) fn advance(&mut self, from: usize) {
        let below: Vec<usize> = self.chunks.range(..from).map(|(s, _)| *s).collect();
        for start in below {
            // A chunk straddling `from` keeps its part above it only if it is ready.
            if let Some(Chunk::Ready { peer, mut blocks }) = self.chunks.remove(&start) {
                if start + blocks.len() > from {
                    let rest = blocks.split_off(from - start);
                    self.chunks
                        .insert(from, Chunk::Ready { peer, blocks: rest });
                }
            }
        }
    }

    /// The gaps of the window `[from, min(from + WINDOW, end))` not covered by a chunk, cut
    /// into runs of at most [`CHUNK`].
    pub(super) fn gaps(&self, from: usize, end: usize) -> Vec<(usize, usize)> {
        let limit = end.min(from.saturating_add(WINDOW));
        let mut out = Vec::new();
        let mut pos = from;
        let mut covered: Vec<(usize, usize)> = self
            .chunks
            .iter()
            .map(|(s, c)| (*s, *s + c.len()))
            .collect();
        covered.push((limit, limit));
        for (start, stop) in covered {
            while pos < start.min(limit) {
                let len = (start.min(limit) - pos).min(CHUNK);
                out.push((pos, len));
                pos += len;
            }
            pos = pos.max(stop);
            if pos >= limit {
                break;
            }
        }
        out
    }

    /// Records a request for `hashes` starting at `start`.
    pub(super) fn asked(
        &mut self,
        start: usize,
        peer: PeerId,
        ticket: Ticket,
        hashes: Vec<BlockHash>,
        deadline: Instant,
    ) {
        self.chunks.insert(
            start,
            Chunk::InFlight {
                peer,
                ticket,
                hashes,
                deadline,
            },
        );
    }

    /// Takes an answer: the prefix that matches the chunk's hashes is to be checked.
    pub(super) fn answered(&mut self, ticket: Ticket, blocks: &[Block]) -> Answer {
        let Some(start) = self.chunks.iter().find_map(|(s, c)| match c {
            Chunk::InFlight { ticket: t, .. } if *t == ticket => Some(*s),
            _ => None,
        }) else {
            return Answer::Unknown;
        };
        let Some(Chunk::InFlight { peer, hashes, .. }) = self.chunks.remove(&start) else {
            return Answer::Unknown;
        };
        if blocks.is_empty() {
            return Answer::Empty;
        }
        if blocks.len() > hashes.len()
            || blocks
                .iter()
                .zip(&hashes)
                .any(|(b, h)| b.block_hash() != *h)
        {
            return Answer::Mismatch;
        }
        let count = blocks.len();
        self.chunks.insert(
            start,
            Chunk::Checking {
                peer,
                ticket,
                count,
            },
        );
        Answer::Taken { count }
    }

    /// An answer's check came back with `blocks`, the prefix that passed: they are ready, and
    /// what failed goes back to the gaps. Returns the answer's sender, or `None` if the chunk
    /// was given up meanwhile (its peer left, or the target changed).
    pub(super) fn checked(&mut self, ticket: Ticket, blocks: Vec<CheckedBlock>) -> Option<PeerId> {
        let start = self.chunks.iter().find_map(|(s, c)| match c {
            Chunk::Checking { ticket: t, .. } if *t == ticket => Some(*s),
            _ => None,
        })?;
        let Some(Chunk::Checking { peer, .. }) = self.chunks.remove(&start) else {
            return None;
        };
        if !blocks.is_empty() {
            self.chunks.insert(start, Chunk::Ready { peer, blocks });
        }
        Some(peer)
    }

    /// Gives up a request (failed, or its peer left): its run goes back to the gaps. Returns
    /// the peer it was asked of.
    pub(super) fn abandon(&mut self, ticket: Ticket) -> Option<PeerId> {
        let start = self.chunks.iter().find_map(|(s, c)| match c {
            Chunk::InFlight { ticket: t, .. } if *t == ticket => Some(*s),
            _ => None,
        })?;
        match self.chunks.remove(&start) {
            Some(Chunk::InFlight { peer, .. }) => Some(peer),
            _ => None,
        }
    }

    /// Gives up every request to `peer`, and drops what it sent that is not connected yet.
    pub(super) fn forget_peer(&mut self, peer: &PeerId) {
        self.chunks.retain(|_, c| c.peer() != peer);
    }

    /// The requests past their deadline: their runs go back to the gaps; returns their peers.
    pub(super) fn expire(&mut self, now: Instant) -> Vec<PeerId> {
        let late: Vec<usize> = self
            .chunks
            .iter()
            .filter_map(|(s, c)| match c {
                Chunk::InFlight { deadline, .. } if *deadline <= now => Some(*s),
                _ => None,
            })
            .collect();
        late.into_iter()
            .filter_map(|s| match self.chunks.remove(&s) {
                Some(Chunk::InFlight { peer, .. }) => Some(peer),
                _ => None,
            })
            .collect()
    }

    /// Takes the ready chunks that run on from `from` without a gap: the blocks, and the
    /// sender of each.
    pub(super) fn take_ready(&mut self, from: usize) -> Vec<(CheckedBlock, PeerId)> {
        let mut out = Vec::new();
        let mut pos = from;
        while let Some(Chunk::Ready { .. }) = self.chunks.get(&pos) {
            if let Some(Chunk::Ready { peer, blocks }) = self.chunks.remove(&pos) {
                pos += blocks.len();
                out.extend(blocks.into_iter().map(|b| (b, peer)));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::{Address, NetworkParams};
    use crate::node::state::fixtures::mined_child;

    fn blocks(n: usize) -> Vec<Block> {
        let params = NetworkParams::for_tests("download", 0);
        let mut out: Vec<Block> = Vec::new();
        let genesis = params.genesis();
        for _ in 0..n {
            let parent = out.last().unwrap_or(&genesis);
            out.push(mined_child(
                &params,
                parent,
                Address([1; 20]),
                params.reward,
            ));
        }
        out
    }

    fn hashes(blocks: &[Block]) -> Vec<BlockHash> {
        blocks.iter().map(Block::block_hash).collect()
    }

    fn checked(blocks: &[Block]) -> Vec<CheckedBlock> {
        let params = NetworkParams::for_tests("download", 0);
        blocks
            .iter()
            .map(|b| b.clone().validate(&params).expect("valid"))
            .collect()
    }

    #[test]
    fn gaps_cover_the_window_in_runs_of_a_chunk_around_what_is_asked() {
        let mut d = Download::default();
        assert_eq!(d.gaps(0, 300), vec![(0, 128), (128, 128), (256, 44)]);
        d.asked(
            128,
            PeerId::random(),
            Ticket(1),
            vec![BlockHash::ZERO; 128],
            Instant::now(),
        );
        assert_eq!(d.gaps(0, 300), vec![(0, 128), (256, 44)]);
        assert_eq!(d.gaps(10, 5_000)[0], (10, 118));
        assert_eq!(
            d.gaps(10, 5_000).iter().map(|g| g.1).sum::<usize>() + 128,
            WINDOW
        );
    }

    #[test]
    fn a_partial_answer_is_ready_and_the_rest_goes_back_to_the_gaps() {
        let chain = blocks(4);
        let mut d = Download::default();
        let peer = PeerId::random();
        d.asked(0, peer, Ticket(7), hashes(&chain), Instant::now());
        assert_eq!(
            d.answered(Ticket(7), &chain[..2]),
            Answer::Taken { count: 2 }
        );
        assert_eq!(d.gaps(0, 4), vec![(2, 2)]);
        assert!(d.take_ready(0).is_empty(), "not ready before its check");
        assert_eq!(
            d.flights(&peer),
            0,
            "an answer being checked frees its slot"
        );
        assert_eq!(
            d.expire(Instant::now()),
            Vec::<PeerId>::new(),
            "and does not expire"
        );
        assert_eq!(d.checked(Ticket(7), checked(&chain[..2])), Some(peer));
        let ready = d.take_ready(0);
        assert_eq!(ready.len(), 2);
        assert_eq!(ready[1].1, peer);
        assert_eq!(d.answered(Ticket(7), &chain), Answer::Unknown);
        assert_eq!(d.checked(Ticket(7), checked(&chain)), None);
    }

    #[test]
    fn a_block_that_was_not_asked_for_is_a_mismatch_and_nothing_is_kept() {
        let chain = blocks(3);
        let mut d = Download::default();
        d.asked(
            0,
            PeerId::random(),
            Ticket(1),
            hashes(&chain),
            Instant::now(),
        );
        let swapped = vec![chain[1].clone(), chain[0].clone()];
        assert_eq!(d.answered(Ticket(1), &swapped), Answer::Mismatch);
        assert!(d.take_ready(0).is_empty());
        assert_eq!(d.gaps(0, 3), vec![(0, 3)]);
    }

    #[test]
    fn ready_chunks_wait_for_the_runs_below_them() {
        let chain = blocks(4);
        let mut d = Download::default();
        let (a, b) = (PeerId::random(), PeerId::random());
        d.asked(0, a, Ticket(1), hashes(&chain[..2]), Instant::now());
        d.asked(2, b, Ticket(2), hashes(&chain[2..]), Instant::now());
        d.answered(Ticket(2), &chain[2..]);
        d.checked(Ticket(2), checked(&chain[2..]));
        assert!(d.take_ready(0).is_empty(), "the run above waits");
        d.answered(Ticket(1), &chain[..2]);
        d.checked(Ticket(1), checked(&chain[..2]));
        let ready = d.take_ready(0);
        assert_eq!(ready.len(), 4);
        assert_eq!(ready[3].1, b);
    }

    #[test]
    fn a_check_that_failed_part_way_readies_the_prefix_and_returns_the_rest_to_the_gaps() {
        let chain = blocks(4);
        let mut d = Download::default();
        let peer = PeerId::random();
        d.asked(0, peer, Ticket(3), hashes(&chain), Instant::now());
        assert_eq!(d.answered(Ticket(3), &chain), Answer::Taken { count: 4 });
        assert_eq!(d.checked(Ticket(3), checked(&chain[..1])), Some(peer));
        assert_eq!(d.gaps(0, 4), vec![(1, 3)]);
        assert_eq!(d.take_ready(0).len(), 1);
    }

    #[test]
    fn late_requests_expire_and_name_their_peer() {
        let mut d = Download::default();
        let now = Instant::now();
        let peer = PeerId::random();
        d.asked(0, peer, Ticket(1), vec![BlockHash::ZERO], now);
        assert_eq!(d.flights(&peer), 1);
        assert_eq!(d.expire(now), vec![peer]);
        assert_eq!(d.flights(&peer), 0);
    }
}
