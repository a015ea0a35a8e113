//! Sync I/O: what the node asks and answers on the sync protocol, and what it does with answers.
//!
//! The decisions of when to sync and from whom live in [`super::sync`] and
//! [`super::mempool_fetch`]; this room carries them out: status exchange (a peer on another
//! genesis is banned), `GetHeaders` requests built from the chain's locator, `GetBlocks`
//! requests for the bodies the sync wants and the batches it hands back offered to the chain
//! at once (one store commit per batch), `GetMempool` requests and their transactions taken as
//! if gossiped, and our answers to the four requests, capped. Every outbound request is
//! remembered by its [`RequestId`] until its answer or failure arrives; an answer of the wrong
//! kind or garbage is the peer's offence.

use std::sync::Arc;
use std::time::Instant;

use libp2p::PeerId;
use tracing::{debug, info, warn};

use super::event::Event;
use super::peers::Offence;
use super::state::{now_ms, NodeState};
use super::sync::{ChainView, Connected, Local, PeerTip, Refused, RefusedKind, SyncAction, Ticket};
use super::unstored::Origin;
use crate::ledger::chain::Anchor;
use crate::ledger::{BlockError, BlockHash, Chain, CheckedBlock, Transaction};
use crate::net::protocol::{
    Status, SyncRequest, SyncResponse, MAX_BLOCKS_PER_REQUEST, MAX_HEADERS_PER_RESPONSE,
    MAX_LOCATOR_LEN, MAX_TXS_PER_RESPONSE, RESPONSE_BLOCK_BYTES, RESPONSE_TX_BYTES,
};
use crate::net::{Acceptance, InboundToken, NetCommand, RequestFailure, RequestId};

/// What an outbound sync request was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Pending {
    Status,
    Headers(Ticket),
    Blocks(Ticket),
    Mempool,
}

impl ChainView for Chain {
    fn has_block(&self, hash: &BlockHash) -> bool {
        self.block(hash).is_some()
    }

    fn anchor(&self, hash: &BlockHash) -> Option<Anchor> {
        Chain::anchor(self, hash)
    }

    fn local(&self) -> Local {
        Local {
            height: self.height(),
            work: self.total_work(),
        }
    }
}

impl NodeState {
    /// Sends `request` to `peer`, remembering what it was.
    fn send_request(&mut self, peer: PeerId, request: SyncRequest, pending: Pending) -> RequestId {
        let id = RequestId(self.next_request);
        self.next_request += 1;
        self.requests.insert(id, pending);
        self.push(NetCommand::Request { peer, id, request });
        id
    }

    /// Sends our status to `peer`; its answer is its own.
    pub(super) fn send_status(&mut self, peer: PeerId) -> RequestId {
        let request = SyncRequest::Status(self.status());
        self.send_request(peer, request, Pending::Status)
    }

    /// A peer asked us something: answer it.
    pub(super) fn on_sync_request(
        &mut self,
        peer: PeerId,
        request: SyncRequest,
        channel: InboundToken,
    ) {
        if !self.budgets.admit(peer, Instant::now()) {
            debug!(%peer, "sync request over the peer's budget declined");
            self.push(NetCommand::Decline { channel });
            self.penalise(peer, Offence::OverBudget);
            return;
        }
        let response = self.answer(peer, request);
        self.budgets
            .charge(peer, crate::ledger::encode::encoded_size(&response));
        self.push(NetCommand::Respond { channel, response });
    }

    fn answer(&mut self, peer: PeerId, request: SyncRequest) -> SyncResponse {
        match request {
            SyncRequest::Status(status) => {
                self.on_peer_status(peer, status);
                SyncResponse::Status(self.status())
            }
            SyncRequest::GetHeaders {
                locator,
                max_headers,
            } => {
                let max = max_headers.min(MAX_HEADERS_PER_RESPONSE) as usize;
                SyncResponse::Headers(self.chain.headers_after_locator(&locator, max))
            }
            SyncRequest::GetBlocks { hashes } => {
                let hashes = &hashes[..hashes.len().min(MAX_BLOCKS_PER_REQUEST as usize)];
                let blocks = self.chain.blocks_by_hash(hashes, RESPONSE_BLOCK_BYTES);
                SyncResponse::Blocks(blocks)
            }
            SyncRequest::GetMempool { max_txs } => {
                let max = max_txs.min(MAX_TXS_PER_RESPONSE) as usize;
                SyncResponse::Mempool(self.mempool.shared_template(max, RESPONSE_TX_BYTES))
            }
        }
    }

    /// A peer answered one of our requests.
    pub(super) fn on_sync_answer(
        &mut self,
        peer: PeerId,
        request: RequestId,
        response: SyncResponse,
    ) {
        let now = Instant::now();
        match (self.requests.remove(&request), response) {
            (Some(Pending::Status), SyncResponse::Status(status)) => {
                self.on_peer_status(peer, status);
            }
            (Some(Pending::Headers(ticket)), SyncResponse::Headers(headers)) => {
                let actions = self
                    .sync
                    .headers(peer, ticket, headers, &self.chain, now_ms(), now);
                self.apply_sync(actions);
            }
            (Some(Pending::Blocks(ticket)), SyncResponse::Blocks(blocks)) => {
                // Decoded blocks are ours alone: unwrapping them copies nothing.
                let blocks = blocks.into_iter().map(Arc::unwrap_or_clone).collect();
                let actions = self.sync.blocks(peer, ticket, blocks, &self.chain, now);
                self.apply_sync(actions);
            }
            (Some(Pending::Mempool), SyncResponse::Mempool(txs)) => self.on_mempool(peer, txs),
            (Some(Pending::Headers(ticket) | Pending::Blocks(ticket)), _) => {
                let actions = self
                    .sync
                    .request_failed(peer, ticket, false, &self.chain, now);
                self.apply_sync(actions);
                self.penalise(peer, Offence::BadResponse);
            }
            (Some(Pending::Status | Pending::Mempool), _) => {
                self.penalise(peer, Offence::BadResponse);
            }
            (None, _) => {}
        }
    }

    /// One of our requests failed: garbage is the peer's offence; no answer at all (a closed
    /// connection or stream) is not, and a real timeout is charged by the sync's own clock.
    pub(super) fn on_sync_failure(
        &mut self,
        peer: PeerId,
        request: RequestId,
        failure: RequestFailure,
    ) {
        let garbage = failure == RequestFailure::Garbage;
        match self.requests.remove(&request) {
            Some(Pending::Headers(ticket) | Pending::Blocks(ticket)) => {
                let actions =
                    self.sync
                        .request_failed(peer, ticket, garbage, &self.chain, Instant::now());
                self.apply_sync(actions);
            }
            Some(Pending::Status | Pending::Mempool) if garbage => {
                self.penalise(peer, Offence::Garbage);
            }
            _ => {}
        }
    }

    fn on_peer_status(&mut self, peer: PeerId, status: Status) {
        let now = Instant::now();
        if status.genesis != self.chain.genesis_hash() {
            info!(%peer, genesis = %status.genesis, "peer is on another network; disconnecting");
            self.book.ban(peer, now);
            self.push(NetCommand::Disconnect(peer));
            return;
        }
        self.book.set_status(&peer, status.height, status.tip, now);
        let tip = PeerTip {
            height: status.height,
            work: status.total_work,
        };
        let actions = self.sync.peer_status(peer, tip, &self.chain, now);
        self.apply_sync(actions);
        if self
            .mempool_fetches
            .status(peer, status.total_work, self.chain.total_work())
        {
            self.send_get_mempool(peer);
        }
        // The sync this status started may have finished at once.
        self.fetch_due_mempools();
    }

    /// Asks the peers whose claimed work our chain now has for their pending transactions.
    pub(super) fn fetch_due_mempools(&mut self) {
        for peer in self.mempool_fetches.due(self.chain.total_work()) {
            self.send_get_mempool(peer);
        }
    }

    fn send_get_mempool(&mut self, peer: PeerId) {
        debug!(%peer, "asking for the peer's pending transactions");
        let request = SyncRequest::GetMempool {
            max_txs: MAX_TXS_PER_RESPONSE,
        };
        self.send_request(peer, request, Pending::Mempool);
    }

    /// Takes a peer's pending transactions as if each had been gossiped by it. The first one no
    /// state could make valid ends the answer: the peer is penalised once and the rest dropped.
    fn on_mempool(&mut self, peer: PeerId, txs: Vec<Transaction>) {
        let offered = txs.len();
        let mut learned = 0usize;
        for tx in txs {
            match self.accept_peer_tx(peer, tx.clone()) {
                Acceptance::Accept => {
                    learned += 1;
                    // What gossip would have forwarded is passed on, to reach the peers that
                    // missed it too.
                    self.publish_tx(&tx);
                }
                Acceptance::Ignore => {}
                Acceptance::Reject => break,
            }
        }
        debug!(%peer, offered, learned, "peer's pending transactions received");
    }

    /// Offers a checked batch the sync assembled to the chain at once; the store takes it with
    /// the batches after it, in one commit (see `unstored`).
    fn connect_batch(&mut self, blocks: Vec<CheckedBlock>) -> Connected {
        let Some(first) = blocks.first() else {
            return Connected::default();
        };
        // The branch being downloaded must survive pruning until it is complete.
        self.chain.protect(Some(first.header.prev_hash));
        let batch = self.chain.accept_checked(blocks, now_ms());
        let refused = batch.refused.map(|(hash, error)| {
            let kind = match error {
                BlockError::TimestampTooFarAhead { .. } => RefusedKind::Early,
                _ if self.chain.is_known_invalid(&hash) => RefusedKind::Chain,
                _ => RefusedKind::Body,
            };
            if kind != RefusedKind::Early {
                self.metrics.block_rejected(&error);
                warn!(%hash, %error, "invalid block in a sync batch");
            } else {
                debug!(%hash, %error, "sync stopped at a block from the future");
            }
            Refused { hash, kind }
        });
        let invalid = batch.accepted.invalid.iter().map(|(h, _)| *h).collect();
        if !self.take_unstored(batch.accepted, Origin::Synced) {
            return Connected::default();
        }
        Connected { refused, invalid }
    }

    /// Carries out the sync state machine's decisions, in order.
    pub(super) fn apply_sync(&mut self, actions: Vec<SyncAction>) {
        for action in actions {
            match action {
                SyncAction::Started {
                    peer,
                    from_height,
                    to_height,
                } => {
                    info!(%peer, from_height, to_height, "sync started");
                    self.emit(Event::SyncStarted {
                        peer_id: peer.to_string(),
                        from_height,
                        to_height,
                    });
                }
                SyncAction::RequestHeaders {
                    peer,
                    ticket,
                    after,
                } => {
                    let mut locator: Vec<BlockHash> = after.into_iter().collect();
                    locator.extend(self.chain.locator());
                    locator.truncate(MAX_LOCATOR_LEN);
                    let request = SyncRequest::GetHeaders {
                        locator,
                        max_headers: MAX_HEADERS_PER_RESPONSE,
                    };
                    self.send_request(peer, request, Pending::Headers(ticket));
                }
                SyncAction::RequestBlocks {
                    peer,
                    ticket,
                    hashes,
                } => {
                    let request = SyncRequest::GetBlocks { hashes };
                    self.send_request(peer, request, Pending::Blocks(ticket));
                }
                SyncAction::Check {
                    peer,
                    ticket,
                    blocks,
                } => self.queue_check(peer, ticket, blocks),
                SyncAction::Connect { blocks } => {
                    if self.halted().is_some() {
                        return;
                    }
                    let outcome = self.connect_batch(blocks);
                    let actions = self.sync.connected(outcome, &self.chain, Instant::now());
                    self.apply_sync(actions);
                }
                SyncAction::Progress {
                    peer,
                    height,
                    target,
                    blocks_per_s,
                } => {
                    // What a report counts is stored first.
                    self.store_pending();
                    info!(%peer, height, target, blocks_per_s, "sync progress");
                    self.emit(Event::SyncProgress {
                        peer_id: peer.to_string(),
                        height,
                        target,
                        blocks_per_s,
                    });
                }
                SyncAction::Finished { peer, from_height } => {
                    self.store_pending();
                    self.chain.protect(None);
                    let to_height = self.chain.height();
                    info!(%peer, from_height, to_height, "sync finished");
                    self.emit(Event::SyncFinished {
                        peer_id: peer.to_string(),
                        from_height,
                        to_height,
                    });
                    self.fetch_due_mempools();
                }
                SyncAction::Penalise { peer, offence } => {
                    info!(%peer, ?offence, "sync peer misbehaved");
                    self.penalise(peer, offence);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::event::Event;
    use super::super::peers::BAN_SCORE;
    use super::super::state::fixtures::{mined_child, TestNode};
    use crate::ledger::{Address, BlockHash};
    use crate::net::protocol::{Status, SyncRequest, SyncResponse};
    use crate::net::{InboundToken, NetCommand, NetEvent, RequestFailure, RequestId};

    #[test]
    fn a_peer_flooding_requests_is_declined_past_its_budget_and_banned_while_it_goes_on() {
        let mut node = TestNode::new();
        let peer = node.connected_peer();
        let burst = super::super::budget::REQUEST_BURST as u64;
        let (mut answered, mut declined, mut disconnected) = (0u64, 0u64, false);
        for n in 0..burst + 100 {
            node.feed(NetEvent::SyncRequested {
                peer,
                request: SyncRequest::GetMempool { max_txs: 1024 },
                channel: InboundToken(n),
            });
            for command in node.commands() {
                match command {
                    NetCommand::Respond { .. } => answered += 1,
                    NetCommand::Decline { channel } => {
                        assert_eq!(channel, InboundToken(n));
                        declined += 1;
                    }
                    NetCommand::Disconnect(p) if p == peer => disconnected = true,
                    other => panic!("unexpected {other:?}"),
                }
            }
        }
        // A request token takes about 2 ms to refill: a slow machine may answer a few more.
        assert!(answered >= burst, "the burst is answered: {answered}");
        assert!(declined >= 5, "the rest is declined: {declined}");
        assert_eq!(answered + declined, burst + 100);
        assert!(disconnected, "five refusals (20 each) ban");
        assert!(node.state.book.is_banned(&peer, std::time::Instant::now()));
    }

    fn request_ids(commands: &[NetCommand]) -> Vec<(RequestId, SyncRequest)> {
        commands
            .iter()
            .filter_map(|c| match c {
                NetCommand::Request { id, request, .. } => Some((*id, request.clone())),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn a_status_request_is_answered_with_our_status() {
        let mut node = TestNode::new();
        let peer = node.connected_peer();
        let ours = node.state.status();
        node.feed(NetEvent::SyncRequested {
            peer,
            request: SyncRequest::Status(ours.clone()),
            channel: InboundToken(7),
        });
        let commands = node.commands();
        assert_eq!(
            commands.last(),
            Some(&NetCommand::Respond {
                channel: InboundToken(7),
                response: SyncResponse::Status(ours),
            })
        );
        assert_eq!(node.state.book.get(&peer).and_then(|e| e.height), Some(0));
    }

    #[test]
    fn a_blocks_answer_shares_the_chain_s_blocks_instead_of_copying_them() {
        let mut node = TestNode::new();
        let peer = node.connected_peer();
        let params = node.state.params.clone();
        let one = mined_child(&params, &params.genesis(), Address([7; 20]), params.reward);
        node.state
            .on_mined(0, crate::ledger::pow::MiningOutcome::Found(one.clone()));
        node.commands();
        node.feed(NetEvent::SyncRequested {
            peer,
            request: SyncRequest::GetBlocks {
                hashes: vec![one.block_hash()],
            },
            channel: InboundToken(3),
        });
        let commands = node.commands();
        let Some(NetCommand::Respond {
            response: SyncResponse::Blocks(blocks),
            ..
        }) = commands.last()
        else {
            panic!("a blocks answer: {commands:?}");
        };
        let held = node.state.chain.block(&one.block_hash()).expect("held");
        assert_eq!(blocks.len(), 1);
        assert!(
            std::sync::Arc::ptr_eq(&blocks[0], &held),
            "the answer holds no copy"
        );
    }

    #[test]
    fn a_status_from_another_network_bans_and_disconnects_the_peer() {
        let mut node = TestNode::new();
        let peer = node.connected_peer();
        let foreign = Status {
            genesis: BlockHash([9; 32]),
            height: 3,
            tip: BlockHash([8; 32]),
            total_work: 30,
        };
        node.feed(NetEvent::SyncRequested {
            peer,
            request: SyncRequest::Status(foreign),
            channel: InboundToken(1),
        });
        let commands = node.commands();
        assert_eq!(commands[0], NetCommand::Disconnect(peer));
        assert!(matches!(commands[1], NetCommand::Respond { .. }));
        assert!(node.state.book.is_banned(&peer, std::time::Instant::now()));
    }

    #[test]
    fn a_new_peer_is_asked_for_its_status_and_then_its_mempool() {
        let mut node = TestNode::new();
        let peer = libp2p::PeerId::random();
        node.feed(NetEvent::PeerConnected {
            peer,
            connection: libp2p::swarm::ConnectionId::new_unchecked(3),
            remote: "/ip4/127.0.0.1/tcp/4002".parse().expect("address"),
            dialer: false,
        });
        let asked = request_ids(&node.commands());
        let [(id, SyncRequest::Status(_))] = asked[..] else {
            panic!("a status request first: {asked:?}");
        };
        let theirs = node.state.status();
        node.feed(NetEvent::SyncAnswered {
            peer,
            request: id,
            response: SyncResponse::Status(theirs),
        });
        let asked = request_ids(&node.commands());
        assert!(matches!(asked[..], [(_, SyncRequest::GetMempool { .. })]));
    }

    /// Answers the node's one request of `kind` to `peer` with `response`.
    fn answer_request(
        node: &mut TestNode,
        peer: libp2p::PeerId,
        pick: impl Fn(&SyncRequest) -> bool,
        response: SyncResponse,
    ) -> Vec<NetCommand> {
        let asked = request_ids(&node.commands());
        let Some((id, _)) = asked.iter().find(|(_, r)| pick(r)) else {
            panic!("no such request: {asked:?}");
        };
        node.feed(NetEvent::SyncAnswered {
            peer,
            request: *id,
            response,
        });
        node.commands()
    }

    #[test]
    fn headers_then_bodies_answered_to_our_sync_join_the_chain_and_finish_the_sync() {
        let mut node = TestNode::new();
        let peer = node.connected_peer();
        let params = node.state.params.clone();
        let one = mined_child(&params, &params.genesis(), Address([7; 20]), params.reward);
        let two = mined_child(&params, &one, Address([7; 20]), params.reward);
        node.feed(NetEvent::GossipBlock {
            from: peer,
            message: crate::net::MessageToken(vec![1]),
            block: two.clone(),
        });
        node.emitted();
        let headers = vec![one.header.clone(), two.header.clone()];
        let next = answer_request(
            &mut node,
            peer,
            |r| matches!(r, SyncRequest::GetHeaders { .. }),
            SyncResponse::Headers(headers),
        );
        let asked = request_ids(&next);
        let Some((id, SyncRequest::GetBlocks { hashes })) = asked.first().cloned() else {
            panic!("a block request after the headers: {asked:?}");
        };
        assert_eq!(hashes, vec![one.block_hash(), two.block_hash()]);
        node.feed(NetEvent::SyncAnswered {
            peer,
            request: id,
            response: SyncResponse::Blocks(vec![one.into(), two.clone().into()]),
        });
        assert_eq!(node.state.chain.tip(), two.block_hash());
        let emitted = node.emitted();
        assert!(matches!(
            emitted[0],
            Event::SyncStarted { to_height: 2, .. }
        ));
        assert!(
            !emitted
                .iter()
                .any(|e| matches!(e, Event::BlockAccepted { .. })),
            "synced blocks are not reported one by one: {emitted:?}"
        );
        assert!(matches!(
            emitted.last(),
            Some(Event::SyncFinished { to_height: 2, .. })
        ));
    }

    #[test]
    fn a_garbage_answer_to_a_headers_request_costs_the_peer() {
        let mut node = TestNode::new();
        let peer = node.connected_peer();
        let params = node.state.params.clone();
        let one = mined_child(&params, &params.genesis(), Address([7; 20]), params.reward);
        let two = mined_child(&params, &one, Address([7; 20]), params.reward);
        node.feed(NetEvent::GossipBlock {
            from: peer,
            message: crate::net::MessageToken(vec![1]),
            block: two,
        });
        let asked = request_ids(&node.commands());
        let Some((id, _)) = asked
            .iter()
            .find(|(_, r)| matches!(r, SyncRequest::GetHeaders { .. }))
        else {
            panic!("a headers request: {asked:?}");
        };
        node.feed(NetEvent::SyncFailed {
            peer,
            request: *id,
            failure: RequestFailure::Garbage,
        });
        assert!(!node.state.sync.is_busy());
        assert_eq!(
            node.state.book.get(&peer).map(|e| e.score()),
            Some(BAN_SCORE / 2)
        );
    }

    #[test]
    fn a_peer_that_disconnects_mid_request_is_not_charged() {
        let mut node = TestNode::new();
        let peer = node.connected_peer();
        let params = node.state.params.clone();
        let one = mined_child(&params, &params.genesis(), Address([7; 20]), params.reward);
        let two = mined_child(&params, &one, Address([7; 20]), params.reward);
        node.feed(NetEvent::GossipBlock {
            from: peer,
            message: crate::net::MessageToken(vec![1]),
            block: two,
        });
        let asked = request_ids(&node.commands());
        let Some((id, _)) = asked.first() else {
            panic!("a request");
        };
        node.feed(NetEvent::SyncFailed {
            peer,
            request: *id,
            failure: RequestFailure::NoAnswer,
        });
        assert_eq!(node.state.book.get(&peer).map(|e| e.score()), Some(0));
    }
}
