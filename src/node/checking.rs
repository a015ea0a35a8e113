//! Checking sync answers off the event loop.
//!
//! Rules it keeps: the context-free rules of an answer's blocks (work, sizes, shape,
//! signatures: [`validate_batch`]) are the costliest part of a sync and need nothing the loop
//! owns, so the loop queues each answer as a [`CheckJob`] and goes on connecting the answers
//! before it; `Node::run` runs the jobs on the rayon pool and hands each [`CheckDone`] back as a
//! message. The sync state machine decides what the outcome means; a block that fails its
//! check is logged and counted here, and never reaches the chain.

use std::sync::Arc;
use std::time::Instant;

use libp2p::PeerId;
use tracing::warn;

use super::state::NodeState;
use super::sync::Ticket;
use crate::ledger::block::validate_batch;
use crate::ledger::{Block, BlockError, BlockHash, CheckedBlock, NetworkParams};

/// An answer's blocks to check, as the sync state machine asked.
pub(super) struct CheckJob {
    peer: PeerId,
    ticket: Ticket,
    blocks: Vec<Block>,
}

/// What a [`CheckJob`] found: the prefix of its blocks that passed, and the first that failed.
pub(super) struct CheckDone {
    peer: PeerId,
    ticket: Ticket,
    checked: Vec<CheckedBlock>,
    failed: Option<(BlockHash, BlockError)>,
}

impl CheckJob {
    /// Checks the blocks: on whatever thread runs it, using every core for large answers.
    pub(super) fn run(self, params: &NetworkParams) -> CheckDone {
        let (checked, failed) = validate_batch(self.blocks, params);
        CheckDone {
            peer: self.peer,
            ticket: self.ticket,
            checked,
            failed: failed.map(|(_, hash, error)| (hash, error)),
        }
    }
}

impl NodeState {
    /// Queues an answer's blocks for their check.
    pub(super) fn queue_check(&mut self, peer: PeerId, ticket: Ticket, blocks: Vec<Block>) {
        self.checks.push_back(CheckJob {
            peer,
            ticket,
            blocks,
        });
    }

    /// The next check to run, oldest first.
    pub(super) fn next_check(&mut self) -> Option<CheckJob> {
        self.checks.pop_front()
    }

    /// The network parameters a check needs, shared with the threads that run checks.
    pub(super) fn shared_params(&self) -> Arc<NetworkParams> {
        Arc::clone(&self.shared_params)
    }

    /// A check is done: a block that failed is reported, and the sync decides the rest.
    pub(super) fn on_checked(&mut self, done: CheckDone) {
        let CheckDone {
            peer,
            ticket,
            checked,
            failed,
        } = done;
        if let Some((hash, error)) = &failed {
            self.metrics.block_rejected(error);
            warn!(%peer, %hash, %error, "invalid block in a sync answer");
        }
        let actions = self.sync.checked(
            peer,
            ticket,
            checked,
            failed.is_some(),
            &self.chain,
            Instant::now(),
        );
        self.apply_sync(actions);
    }
}

#[cfg(test)]
mod tests {
    use super::super::state::fixtures::{mined_child, TestNode};
    use crate::ledger::{Address, Block};
    use crate::net::protocol::{Status, SyncRequest, SyncResponse};
    use crate::net::{NetCommand, NetEvent};

    /// A node that learned `blocks`' headers from `peer` and asked it for their bodies:
    /// returns the request's id.
    fn asking_for_bodies(
        node: &mut TestNode,
        peer: libp2p::PeerId,
        blocks: &[Block],
    ) -> crate::net::RequestId {
        let last = blocks.last().expect("blocks");
        node.feed(NetEvent::SyncRequested {
            peer,
            request: SyncRequest::Status(Status {
                genesis: node.state.chain.genesis_hash(),
                height: last.height(),
                tip: last.block_hash(),
                total_work: node.state.chain.total_work() + blocks.len() as u128 * 2,
            }),
            channel: crate::net::InboundToken(1),
        });
        let ask = |commands: Vec<NetCommand>, headers: bool| {
            commands.into_iter().find_map(|c| match c {
                NetCommand::Request {
                    id,
                    request: SyncRequest::GetHeaders { .. },
                    ..
                } if headers => Some(id),
                NetCommand::Request {
                    id,
                    request: SyncRequest::GetBlocks { .. },
                    ..
                } if !headers => Some(id),
                _ => None,
            })
        };
        let id = ask(node.commands(), true).expect("headers asked");
        node.feed(NetEvent::SyncAnswered {
            peer,
            request: id,
            response: SyncResponse::Headers(blocks.iter().map(|b| b.header.clone()).collect()),
        });
        ask(node.commands(), false).expect("bodies asked")
    }

    fn chain_of(node: &TestNode, n: usize) -> Vec<Block> {
        let params = node.state.params.clone();
        let mut out: Vec<Block> = Vec::new();
        for _ in 0..n {
            let parent = out.last().cloned().unwrap_or_else(|| params.genesis());
            out.push(mined_child(
                &params,
                &parent,
                Address([4; 20]),
                params.reward,
            ));
        }
        out
    }

    #[test]
    fn an_answer_is_checked_before_it_is_connected_and_stored_before_it_is_reported() {
        let mut node = TestNode::new();
        let peer = node.connected_peer();
        // Two chunks: the first answer connects, and the sync goes on.
        let blocks = chain_of(&node, 200);
        let id = asking_for_bodies(&mut node, peer, &blocks);
        let first = &blocks[..crate::node::sync::CHUNK];
        node.state.on_net_event(NetEvent::SyncAnswered {
            peer,
            request: id,
            response: SyncResponse::Blocks(first.iter().cloned().map(Into::into).collect()),
        });
        assert_eq!(
            node.state.chain.height(),
            0,
            "nothing connects before its check"
        );
        let job = node.state.next_check().expect("a check queued");
        assert!(node.state.next_check().is_none());
        let done = job.run(&node.state.shared_params());
        node.state.on_checked(done);
        assert_eq!(node.state.chain.height(), first.len() as u64);
        let genesis = node.state.params.genesis_hash();
        assert_eq!(
            node.state.store.tip().expect("store"),
            genesis,
            "connected, not stored yet"
        );
        assert!(node.state.store_pending_by().is_some());
        node.state.store_pending();
        assert_eq!(
            node.state.store.tip().expect("store"),
            first[first.len() - 1].block_hash()
        );
        assert_eq!(node.state.store_pending_by(), None);
    }

    #[test]
    fn a_block_failing_its_check_costs_its_sender_and_never_reaches_the_chain() {
        let mut node = TestNode::new();
        let peer = node.connected_peer();
        let blocks = chain_of(&node, 3);
        let id = asking_for_bodies(&mut node, peer, &blocks);
        let mut wrong = blocks.clone();
        let extra = wrong[1].transactions[0].clone();
        wrong[1].transactions.push(extra);
        node.feed(NetEvent::SyncAnswered {
            peer,
            request: id,
            response: SyncResponse::Blocks(wrong.into_iter().map(Into::into).collect()),
        });
        node.state.store_pending();
        assert_eq!(
            node.state.chain.height(),
            0,
            "the sender's blocks are dropped"
        );
        assert!(
            node.state.book.is_banned(&peer, std::time::Instant::now()),
            "an invalid block bans its sender"
        );
    }
}
