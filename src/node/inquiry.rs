//! Commands added for the front ends: a page of the main chain (HTTP) or a window of it (the
//! console's `chain`), and a status round with every connected peer (the seeds'
//! `/nodes/resolve`).
//!
//! Rules it keeps: a page never holds more than the handle allows, a window never more than
//! `MAX_CHAIN_REPLY_BLOCKS`, and neither more than `MAX_CHAIN_REPLY_BYTES` of blocks; at most
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
                // Down from the tip while the count and the bytes allow (the tip always goes).
                let count = count.min(MAX_CHAIN_REPLY_BLOCKS).min(length);
                let mut from = length;
                let mut bytes = 0usize;
                while length - from < count {
                    let size = self
                        .chain
                        .block_at_height(from - 1)
                        .map_or(0, |b| b.encoded_len());
                    bytes = bytes.saturating_add(size);
                    if from < length && bytes > MAX_CHAIN_REPLY_BYTES {
                        break;
                    }
                    from -= 1;
                }
                (from, length - from)
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

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicBool;

    use ed25519_dalek::SigningKey;
    use tokio::sync::oneshot;

    use super::*;
    use crate::ledger::pow::mine_blocking;
    use crate::ledger::{Address, Transaction, MAX_MEMO_BYTES};
    use crate::node::state::fixtures::TestNode;
    use crate::node::state::Source;

    /// Asks the node for a chain window, as the console does.
    fn window(node: &TestNode, window: ChainWindow) -> ChainPage {
        let (reply, answer) = oneshot::channel();
        node.state.chain_window_command(window, reply);
        match answer.blocking_recv() {
            Ok(Ok(page)) => page,
            other => panic!("no chain page: {other:?}"),
        }
    }

    #[test]
    fn a_chain_reply_stops_at_a_megabyte_of_blocks_and_always_holds_the_first() {
        let mut node = TestNode::new();
        let key = SigningKey::from_bytes(&[3; 32]);
        let network = node.state.chain.genesis_hash().into();
        // Blocks of about 1.5 KB: four posts with a full memo each.
        let mut nonce = 0;
        for _ in 0..800 {
            let posts = (0..4)
                .map(|_| {
                    nonce += 1;
                    Transaction::sign_transfer_with_memo(
                        &key,
                        &network,
                        Address([1; 20]),
                        0,
                        0,
                        nonce - 1,
                        vec![b'x'; MAX_MEMO_BYTES],
                    )
                })
                .collect();
            let template = node.state.chain.block_template(Address([2; 20]), posts, 0);
            let block = mine_blocking(template, 1, &AtomicBool::new(false)).expect("mined");
            let accepted = node
                .state
                .chain
                .accept_block(block, u64::MAX)
                .expect("accepted");
            node.state.apply_accepted(accepted, Source::Mined);
        }
        let block_bytes = node.state.chain.tip_block().encoded_len();
        assert!(block_bytes > 1_300, "{block_bytes}");

        let page = window(&node, ChainWindow::Range { from: 1, to: None });
        assert_eq!((page.length, page.from), (801, 1));
        let shown = page.blocks.len();
        assert!(shown < 800, "{shown} blocks of {block_bytes} bytes");
        assert!(shown * block_bytes <= MAX_CHAIN_REPLY_BYTES);
        assert!((shown + 1) * block_bytes > MAX_CHAIN_REPLY_BYTES - block_bytes);
        assert_eq!(page.blocks[0].height, 1);

        // The latest blocks that fit, ending at the tip.
        let latest = window(&node, ChainWindow::Latest(2_000));
        assert_eq!(latest.blocks.len(), shown);
        assert_eq!(latest.from, 801 - shown as u64);
        assert_eq!(latest.blocks.last().map(|b| b.height), Some(800));
    }
}
