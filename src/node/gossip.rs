//! Gossip: the node's verdict on blocks and transactions peers gossip, and its own publishing.
//!
//! Rules it keeps: every gossiped message gets a verdict reported back to the network (Accept
//! forwards it; Ignore drops it without blame; Reject drops it and the sender is penalised);
//! a block is forwarded only once it is on our main chain and fully validated; a block whose
//! parent we lack starts a sync with its sender; a transaction is held against its sender only
//! if no state could make it valid. Publishing before any peer subscribed is the network's
//! concern: it holds the message until a peer does.

use std::time::Instant;

use libp2p::PeerId;
use tracing::{debug, warn};

use super::peers::Offence;
use super::state::{now_ms, Applied, NodeState, Source};
use crate::ledger::block::work_for;
use crate::ledger::{Block, BlockError, MempoolError, Placement, Transaction, TxError};
use crate::net::{Acceptance, MessageToken, NetCommand, Publication};

impl NodeState {
    /// A peer gossiped a block: offer it to the chain and report the verdict.
    pub(super) fn on_gossip_block(&mut self, from: PeerId, message: MessageToken, block: Block) {
        let acceptance = self.judge_gossip_block(from, block);
        self.push(NetCommand::ReportValidation {
            message,
            from,
            acceptance,
        });
    }

    fn judge_gossip_block(&mut self, from: PeerId, block: Block) -> Acceptance {
        let height = block.height();
        let now = Instant::now();
        if self.cannot_move_the_tip(&block) {
            // Checking its signatures would cost us and keeping it would cost memory, for a
            // branch nobody asked us to adopt; should it grow heavier than the main chain, its
            // next block names an unknown parent, and headers-first sync fetches the branch.
            debug!(%from, height, "light side-branch block dropped unchecked");
            return Acceptance::Ignore;
        }
        let result = self.chain.accept_block(block, now_ms());
        if let Err(error) = &result {
            self.metrics.block_rejected(error);
        }
        match result {
            Ok(accepted) => {
                let placement = accepted.placement.clone();
                match self.apply_accepted(accepted, Source::Peer(from)) {
                    Applied::Stored => {}
                    Applied::OfferedInvalid => {
                        self.penalise(from, Offence::InvalidBlock);
                        return Acceptance::Reject;
                    }
                    Applied::Halted => return Acceptance::Ignore,
                }
                match placement {
                    Placement::MainChain => {
                        self.book.saw_height(&from, height);
                        Acceptance::Accept
                    }
                    // A side-branch block has passed only the checks that need no state: it is
                    // kept, but forwarded only once it is on a main chain and fully validated.
                    Placement::SideBranch => {
                        self.book.saw_height(&from, height);
                        Acceptance::Ignore
                    }
                    Placement::AlreadyKnown => Acceptance::Ignore,
                    Placement::Orphan { missing } => {
                        debug!(%from, height, %missing, "block with an unknown ancestor; syncing from its sender");
                        let actions = self.sync.orphan_from(from, height, &self.chain, now);
                        self.apply_sync(actions);
                        Acceptance::Ignore
                    }
                }
            }
            Err(error @ BlockError::TimestampTooFarAhead { .. }) => {
                debug!(%from, %error, "block from the future");
                Acceptance::Ignore
            }
            Err(error) => {
                warn!(%from, %error, "invalid block");
                self.penalise(from, Offence::InvalidBlock);
                Acceptance::Reject
            }
        }
    }

    /// Whether `block` builds on a block we hold yet would leave its branch with less work than
    /// the main chain (a stale sibling, or a light fork), with no orphan waiting for it: it
    /// could not change our tip, so it is dropped before its body is looked at (issue 10,
    /// finding 9, second half). A block that ties the main chain is kept and checked as before,
    /// so two honest miners racing at equal work still reorganise by gossip alone.
    fn cannot_move_the_tip(&self, block: &Block) -> bool {
        let parent = &block.header.prev_hash;
        if self.chain.has_orphans_waiting_on(&block.block_hash()) {
            return false;
        }
        match self.chain.cumulative_work_of(parent) {
            Some(parent_work) => {
                let work = work_for(self.params.difficulty);
                parent_work.saturating_add(work) < self.chain.total_work()
            }
            None => false,
        }
    }

    /// A peer gossiped a transaction: offer it to the mempool and report the verdict.
    pub(super) fn on_gossip_tx(&mut self, from: PeerId, message: MessageToken, tx: Transaction) {
        let acceptance = self.accept_peer_tx(from, tx);
        self.push(NetCommand::ReportValidation {
            message,
            from,
            acceptance,
        });
    }

    /// Offers a transaction a peer sent (by gossip or in a mempool answer) to the mempool, and
    /// penalises the peer if no state could make it valid.
    pub(super) fn accept_peer_tx(&mut self, from: PeerId, tx: Transaction) -> Acceptance {
        let result = self.mempool.add(tx, self.chain.state());
        if let Err(error) = &result {
            self.metrics.transfer_rejected(error);
        }
        match result {
            Ok(txid) => {
                self.emit(super::Event::TxAccepted {
                    txid,
                    source: Source::Peer(from).label(),
                });
                Acceptance::Accept
            }
            // Nonces, balances, a full pool and relay policy (fee floor, per-sender cap,
            // replacement) depend on what a node has seen and how it is set up: honest peers
            // may differ, so such a transaction is dropped, not held against its sender.
            Err(
                MempoolError::AlreadyKnown(_)
                | MempoolError::Full { .. }
                | MempoolError::FeeBelowMinimum { .. }
                | MempoolError::TooManyFromSender { .. }
                | MempoolError::ReplacementUnderpriced { .. }
                | MempoolError::Invalid(TxError::BadNonce { .. } | TxError::InsufficientFunds { .. }),
            ) => Acceptance::Ignore,
            Err(error) => {
                warn!(%from, %error, "invalid transaction");
                self.penalise(from, Offence::InvalidTransaction);
                Acceptance::Reject
            }
        }
    }

    /// Gossips a block that joined our main chain.
    pub(super) fn publish_block(&mut self, block: &Block) {
        self.push(NetCommand::Publish(Publication::Block(block.clone())));
    }

    /// Gossips a transaction that entered our mempool.
    pub(super) fn publish_tx(&mut self, tx: &Transaction) {
        self.push(NetCommand::Publish(Publication::Tx(tx.clone())));
    }
}

#[cfg(test)]
mod tests {
    use super::super::event::Event;
    use super::super::peers::BAN_SCORE;
    use super::super::state::fixtures::{mined_child, TestNode};
    use crate::ledger::{Address, Chain, Transaction};
    use crate::net::protocol::SyncRequest;
    use crate::net::{Acceptance, MessageToken, NetCommand, NetEvent};

    fn message(n: u8) -> MessageToken {
        MessageToken(vec![n; 32])
    }

    /// `peer` gossips `block` to `node` as message `n`.
    fn gossip_block(node: &mut TestNode, peer: libp2p::PeerId, n: u8, block: crate::ledger::Block) {
        node.feed(NetEvent::GossipBlock {
            from: peer,
            message: message(n),
            block,
        });
    }

    /// The verdict `Ignore` on message `n` from `peer`.
    fn ignored(peer: libp2p::PeerId, n: u8) -> NetCommand {
        NetCommand::ReportValidation {
            message: message(n),
            from: peer,
            acceptance: Acceptance::Ignore,
        }
    }

    #[test]
    fn a_block_the_store_cannot_hold_halts_the_node_and_nothing_is_announced() {
        let mut node = TestNode::new();
        let peer = node.connected_peer();
        let params = node.state.params.clone();
        // The chain takes a block behind the store's back, so the store misses a commit and
        // refuses the next one.
        let first = mined_child(&params, &params.genesis(), Address([7; 20]), params.reward);
        node.state
            .chain
            .accept_block(first.clone(), super::now_ms())
            .expect("valid block");
        let second = mined_child(&params, &first, Address([7; 20]), params.reward);
        gossip_block(&mut node, peer, 2, second);
        assert_eq!(node.commands(), vec![], "nothing leaves a halted node");
        assert!(node.state.halted().is_some());
        let events = node.emitted();
        assert!(
            matches!(&events[..], [Event::NodeHalted { reason }] if reason.contains("store commit failed")),
            "{events:?}"
        );
        node.state.push(NetCommand::Disconnect(peer));
        assert_eq!(node.commands(), vec![], "the outbox stays closed");
    }

    #[test]
    fn a_valid_gossiped_block_is_accepted_and_reported_as_accepted() {
        let mut node = TestNode::new();
        let peer = node.connected_peer();
        let params = node.state.params.clone();
        let block = mined_child(&params, &params.genesis(), Address([7; 20]), params.reward);
        let hash = block.block_hash();
        node.feed(NetEvent::GossipBlock {
            from: peer,
            message: message(1),
            block,
        });
        assert_eq!(
            node.commands(),
            vec![NetCommand::ReportValidation {
                message: message(1),
                from: peer,
                acceptance: Acceptance::Accept,
            }]
        );
        assert_eq!(
            node.emitted(),
            vec![Event::BlockAccepted {
                height: 1,
                hash,
                source: peer.to_string(),
            }]
        );
        assert_eq!(node.state.chain.tip(), hash);
        assert_eq!(node.state.book.get(&peer).and_then(|e| e.height), Some(1));
    }

    #[test]
    fn an_invalid_gossiped_block_is_rejected_and_its_sender_banned() {
        let mut node = TestNode::new();
        let peer = node.connected_peer();
        let params = node.state.params.clone();
        let greedy = mined_child(
            &params,
            &params.genesis(),
            Address([7; 20]),
            params.reward + 1,
        );
        gossip_block(&mut node, peer, 2, greedy);
        assert_eq!(
            node.commands(),
            vec![
                NetCommand::Disconnect(peer),
                NetCommand::ReportValidation {
                    message: message(2),
                    from: peer,
                    acceptance: Acceptance::Reject,
                },
            ]
        );
        assert!(node.state.book.is_banned(&peer, std::time::Instant::now()));
        assert_eq!(node.state.chain.height(), 0);
        assert!(node.emitted().is_empty());
    }

    #[test]
    fn a_block_on_a_side_branch_lighter_than_the_main_chain_is_dropped_unchecked_without_blame() {
        let mut node = TestNode::new();
        let peer = node.connected_peer();
        let params = node.state.params.clone();
        let miner = Address([7; 20]);
        let a1 = mined_child(&params, &params.genesis(), miner, params.reward);
        let a2 = mined_child(&params, &a1, miner, params.reward);
        for (n, b) in [(1, a1.clone()), (2, a2)] {
            gossip_block(&mut node, peer, n, b);
        }
        node.commands();
        node.emitted();
        // A sibling of a1 (as heavy as a1, lighter than a2), and one that breaks a rule: a
        // coinbase paying more than the reward. Neither is looked at, kept or held against
        // the peer.
        let sibling = mined_child(&params, &params.genesis(), Address([8; 20]), params.reward);
        let greedy = mined_child(&params, &params.genesis(), miner, params.reward + 1);
        for (n, b) in [(3, sibling), (4, greedy)] {
            gossip_block(&mut node, peer, n, b);
            assert_eq!(node.commands(), vec![ignored(peer, n)]);
        }
        assert_eq!(node.state.chain.side_block_count(), 0);
        assert_eq!(node.state.book.get(&peer).map(|e| e.score()), Some(0));
        assert_eq!(node.state.chain.height(), 2);
        assert!(node.emitted().is_empty());

        // A block that ties the main chain is kept; one whose parent we lack, above our tip,
        // is fetched by headers-first sync.
        let b1 = mined_child(&params, &a1, Address([8; 20]), params.reward);
        let b2 = mined_child(&params, &b1, Address([8; 20]), params.reward);
        let b3 = mined_child(&params, &b2, Address([8; 20]), params.reward);
        gossip_block(&mut node, peer, 5, b1);
        node.commands();
        assert_eq!(node.state.chain.height(), 2, "b1 only ties a2");
        assert_eq!(
            node.state.chain.side_block_count(),
            1,
            "a tie is kept and checked: the race may go its way"
        );
        gossip_block(&mut node, peer, 6, b3);
        let commands = node.commands();
        assert!(
            commands.iter().any(|c| matches!(
                c,
                NetCommand::Request {
                    request: SyncRequest::GetHeaders { .. },
                    ..
                }
            )),
            "a branch grown past ours is fetched by headers-first sync: {commands:?}"
        );
    }

    #[test]
    fn a_peer_relaying_a_merely_early_block_again_and_again_is_never_penalised() {
        let mut node = TestNode::new();
        let peer = node.connected_peer();
        let params = node.state.params.clone();
        let mut early = mined_child(&params, &params.genesis(), Address([7; 20]), params.reward);
        early.header.timestamp = super::now_ms() + 3 * 60 * 60 * 1000;
        let early = crate::ledger::pow::mine_blocking(early, 1, &Default::default())
            .expect("an easy block is mined");
        for n in 0..20 {
            gossip_block(&mut node, peer, n, early.clone());
            assert_eq!(node.commands(), vec![ignored(peer, n)]);
        }
        assert_eq!(node.state.book.get(&peer).map(|e| e.score()), Some(0));
        assert_eq!(node.state.chain.height(), 0);
    }

    #[test]
    fn undecodable_gossip_costs_its_sender_half_a_ban() {
        let mut node = TestNode::new();
        let peer = node.connected_peer();
        node.feed(NetEvent::GossipGarbage {
            from: peer,
            error: crate::ledger::encode::DecodeError::TrailingBytes(1),
        });
        assert!(node.commands().is_empty(), "one offence does not ban");
        assert_eq!(
            node.state.book.get(&peer).map(|e| e.score()),
            Some(BAN_SCORE / 2)
        );
    }

    #[test]
    fn a_gossiped_block_whose_parent_is_unknown_starts_a_sync_with_its_sender() {
        let mut node = TestNode::new();
        let peer = node.connected_peer();
        let params = node.state.params.clone();
        let parent = mined_child(&params, &params.genesis(), Address([7; 20]), params.reward);
        let orphan = mined_child(&params, &parent, Address([7; 20]), params.reward);
        gossip_block(&mut node, peer, 3, orphan);
        let commands = node.commands();
        let ours = Chain::new(params.clone()).locator();
        assert!(
            commands.iter().any(|c| matches!(
                c,
                NetCommand::Request {
                    peer: p,
                    request: SyncRequest::GetHeaders { locator, .. },
                    ..
                } if *p == peer && *locator == ours
            )),
            "a GetHeaders request to the sender: {commands:?}"
        );
        assert_eq!(
            commands.last(),
            Some(&NetCommand::ReportValidation {
                message: message(3),
                from: peer,
                acceptance: Acceptance::Ignore,
            })
        );
        assert!(
            node.emitted().is_empty(),
            "the download starts once headers show the work"
        );
        assert!(node.state.sync.is_busy());
    }

    #[test]
    fn a_gossiped_transfer_of_nothing_is_rejected_and_its_sender_penalised() {
        let mut node = TestNode::new();
        let peer = node.connected_peer();
        let key = ed25519_dalek::SigningKey::from_bytes(&[3; 32]);
        let nothing = Transaction::sign_transfer(
            &key,
            node.state.mempool.network(),
            Address([1; 20]),
            0,
            1,
            0,
        );
        node.feed(NetEvent::GossipTx {
            from: peer,
            message: message(4),
            tx: nothing,
        });
        assert_eq!(
            node.commands(),
            vec![NetCommand::ReportValidation {
                message: message(4),
                from: peer,
                acceptance: Acceptance::Reject,
            }]
        );
        assert_eq!(
            node.state.book.get(&peer).map(|e| e.score()),
            Some(BAN_SCORE / 2)
        );
    }

    #[test]
    fn a_gossiped_transfer_from_an_empty_account_is_ignored_without_blame() {
        let mut node = TestNode::new();
        let peer = node.connected_peer();
        let key = ed25519_dalek::SigningKey::from_bytes(&[3; 32]);
        let broke = Transaction::sign_transfer(
            &key,
            node.state.mempool.network(),
            Address([1; 20]),
            5,
            1,
            0,
        );
        node.feed(NetEvent::GossipTx {
            from: peer,
            message: message(5),
            tx: broke,
        });
        assert_eq!(
            node.commands(),
            vec![NetCommand::ReportValidation {
                message: message(5),
                from: peer,
                acceptance: Acceptance::Ignore,
            }]
        );
        assert_eq!(node.state.book.get(&peer).map(|e| e.score()), Some(0));
    }
}
