//! Commands added for the HTTP front end: a page of the main chain, and a status round with
//! every connected peer (the seeds' `/nodes/resolve`).
//!
//! Rules it keeps: a page never holds more than the handle allows; at most
//! `MAX_PENDING_RESOLVES` status rounds wait at once; a status round asks each peer once, counts
//! a peer as answered once its request has left the request map (answered or failed), waits for
//! a sync those answers started, and always answers by its deadline.

use std::time::{Duration, Instant};

use libp2p::PeerId;

use super::command::{
    ChainWindow, CommandError, Reply, MAX_CHAIN_REPLY_BLOCKS, MAX_CHAIN_REPLY_BYTES,
};
use super::event::{BlockView, ChainPage, ResolveView};
use super::state::NodeState;
use crate::ledger::BlockHash;
use crate::net::RequestId;

/// Most status rounds waiting at once; more are refused with [`CommandError::ResolveBusy`].
const MAX_PENDING_RESOLVES: usize = 16;

/// A status round waiting for its answers.
pub(super) struct PendingResolve {
    /// The status requests sent, one per peer.
    requests: Vec<RequestId>,
    /// Our tip when the round began.
    old_tip: BlockHash,
    /// When the round answers whatever happened.
    deadline: Instant,
    /// Where the answer goes.
    reply: Reply<ResolveView>,
}

impl NodeState {
    /// Answers [`super::Command::ChainRange`].
    pub(super) fn chain_range_command(&self, from: u64, limit: u64, reply: Reply<ChainPage>) {
        let _ = reply.send(Ok(self.chain_page(from, limit)));
    }

    /// Answers [`super::Command::Chain`]: the window asked for, at most
    /// [`MAX_CHAIN_REPLY_BLOCKS`] blocks of it (the latest ones for [`ChainWindow::Latest`],
    /// the first ones for a range).
    pub(super) fn chain_window_command(&self, window: ChainWindow, reply: Reply<ChainPage>) {
        let length = self.chain.height().saturating_add(1);
        let (from, limit) = match window {
            ChainWindow::Latest(count) => {
                let count = count.min(MAX_CHAIN_REPLY_BLOCKS).min(length);
                (length - count, count)
            }
            ChainWindow::Range { from, to } => {
                let end = to.map_or(length, |to| to.saturating_add(1));
                (from, end.saturating_sub(from).min(MAX_CHAIN_REPLY_BLOCKS))
            }
        };
        let _ = reply.send(Ok(self.chain_page(from, limit)));
    }

    /// Up to `limit` main-chain blocks from height `from` up, and while their encoded size
    /// stays within [`MAX_CHAIN_REPLY_BYTES`] (the first block always goes).
    fn chain_page(&self, from: u64, limit: u64) -> ChainPage {
        let length = self.chain.height().saturating_add(1);
        let end = from.saturating_add(limit).min(length);
        let mut bytes = 0usize;
        let mut blocks = Vec::new();
        for block in (from..end).filter_map(|h| self.chain.block_at_height(h)) {
            bytes = bytes.saturating_add(block.encoded_len());
            if !blocks.is_empty() && bytes > MAX_CHAIN_REPLY_BYTES {
                break;
            }
            blocks.push(BlockView::from(block.as_ref()));
        }
        ChainPage {
            length,
            from,
            blocks,
        }
    }

    /// Starts [`super::Command::ResolvePeers`]: a status request to every connected peer.
    pub(super) fn resolve_peers_command(&mut self, wait: Duration, reply: Reply<ResolveView>) {
        if self.resolves.len() >= MAX_PENDING_RESOLVES {
            let _ = reply.send(Err(CommandError::ResolveBusy));
            return;
        }
        let peers: Vec<PeerId> = self.book.connected().map(|(peer, _)| *peer).collect();
        let mut requests = Vec::with_capacity(peers.len());
        for peer in peers {
            requests.push(self.send_status(peer));
        }
        self.resolves.push(PendingResolve {
            requests,
            old_tip: self.chain.tip(),
            deadline: Instant::now() + wait,
            reply,
        });
    }

    /// Answers the status rounds that are complete or due; called after every event.
    pub(super) fn poll_resolves(&mut self, now: Instant) {
        if self.resolves.is_empty() {
            return;
        }
        let syncing = self.sync.active_peer().is_some();
        let mut i = 0;
        while i < self.resolves.len() {
            let round = &self.resolves[i];
            let answered = round
                .requests
                .iter()
                .filter(|id| !self.requests.contains_key(id))
                .count();
            let complete = answered == round.requests.len() && !syncing;
            if !(complete || now >= round.deadline || round.reply.is_closed()) {
                i += 1;
                continue;
            }
            let round = self.resolves.swap_remove(i);
            let tip = self.chain.tip();
            let _ = round.reply.send(Ok(ResolveView {
                asked: round.requests.len(),
                answered,
                old_tip: round.old_tip,
                tip,
                height: self.chain.height(),
                replaced: tip != round.old_tip,
                syncing,
            }));
        }
    }
}
