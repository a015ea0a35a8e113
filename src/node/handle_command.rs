//! Carrying out the commands a [`super::NodeHandle`] sends (the console today).
//!
//! Each command is answered on its own oneshot. Reads (status, peers, chain, block, balance,
//! mempool) answer at once from the node's state; a transfer is signed with the node's key,
//! added to the mempool and gossiped; `mine` and `automine` go to the miner; `dial` answers
//! once the network says whether the dial started. The command types themselves live in
//! [`super::command`].

use std::time::Instant;

use libp2p::Multiaddr;
use tracing::info;

use super::command::{BlockQuery, Command, CommandError};
use super::event::{BalanceView, BlockView, Event, PeerView, StatusView, TxView};
use super::peers::split_peer_id;
use super::state::{NodeState, Source};
use crate::ledger::{Address, Transaction, TxId};

impl NodeState {
    /// Carries out a command; returns false when the node should stop.
    pub(super) fn on_command(&mut self, command: Command) -> bool {
        match command {
            Command::Status(reply) => {
                let _ = reply.send(Ok(self.status_view()));
            }
            Command::Peers(reply) => {
                let _ = reply.send(Ok(self.peer_views()));
            }
            Command::SubmitTransfer {
                to,
                amount,
                fee,
                memo,
                reply,
            } => {
                let _ = reply.send(self.submit_transfer(to, amount, fee, memo));
            }
            Command::Mine { count, reply } => self.miner.request(count, reply),
            Command::SetAutomine { on, reply } => {
                self.miner.automine = on;
                let _ = reply.send(Ok(on));
            }
            Command::Chain { window, reply } => {
                self.chain_window_command(window, reply);
            }
            Command::Block { query, reply } => {
                let found = match query {
                    BlockQuery::Height(h) => self
                        .chain
                        .block_at_height(h)
                        .ok_or(CommandError::NoBlockAtHeight(h)),
                    BlockQuery::Hash(hash) => self
                        .chain
                        .block(&hash)
                        .ok_or(CommandError::UnknownBlock(hash)),
                };
                let _ = reply.send(found.map(|b| BlockView::from(b.as_ref())));
            }
            Command::Balance { address, reply } => {
                let address = address.unwrap_or(self.address);
                let state = self.chain.state();
                let _ = reply.send(Ok(BalanceView {
                    address,
                    balance: state.balance(&address),
                    nonce: state.next_nonce(&address),
                }));
            }
            Command::Mempool(reply) => {
                let txs = self.mempool.transactions();
                let _ = reply.send(Ok(txs.iter().map(TxView::from).collect()));
            }
            Command::Dial { addr, reply } => self.dial_command(addr, reply),
            Command::ChainRange { from, limit, reply } => {
                self.chain_range_command(from, limit, reply);
            }
            Command::ResolvePeers { wait, reply } => self.resolve_peers_command(wait, reply),
            Command::Tree { depth, reply } => self.tree_command(depth, reply),
            Command::Metrics(reply) => self.metrics_command(reply),
            Command::Shutdown(reply) => {
                info!("shutdown requested");
                let _ = reply.send(Ok(()));
                return false;
            }
        }
        true
    }

    fn status_view(&self) -> StatusView {
        StatusView {
            network: self.params.name.clone(),
            genesis: self.chain.genesis_hash(),
            peer_id: self.peer_id.to_string(),
            address: self.address,
            height: self.chain.height(),
            tip: self.chain.tip(),
            peers: self.book.connected_count(),
            mempool: self.mempool.len(),
            listen: self.listen.iter().map(|a| a.to_string()).collect(),
            automine: self.miner.automine,
            syncing: self.sync.active_peer().is_some(),
        }
    }

    fn peer_views(&self) -> Vec<PeerView> {
        let mut peers: Vec<PeerView> = self
            .book
            .connected()
            .map(|(peer, entry)| PeerView {
                peer_id: peer.to_string(),
                addresses: entry.connections.values().map(|a| a.to_string()).collect(),
                height: entry.height,
                tip: entry.tip,
            })
            .collect();
        peers.sort_by(|a, b| a.peer_id.cmp(&b.peer_id));
        peers
    }

    fn submit_transfer(
        &mut self,
        to: Address,
        amount: u64,
        fee: u64,
        memo: String,
    ) -> Result<TxId, CommandError> {
        let state = self.chain.state();
        let nonce = self.mempool.next_nonce(state, &self.address);
        let tx = Transaction::sign_transfer_with_memo(
            &self.key,
            self.mempool.network(),
            to,
            amount,
            fee,
            nonce,
            memo.into_bytes(),
        );
        let added = self.mempool.add(tx.clone(), state);
        if let Err(error) = &added {
            self.metrics.transfer_rejected(error);
        }
        let txid = added?;
        self.emit(Event::TxAccepted {
            txid,
            source: Source::Local.label(),
        });
        self.publish_tx(&tx);
        Ok(txid)
    }

    /// Dials an address given by hand: with a peer id it is learned as that peer's, without one
    /// it becomes a bootstrap address. The reply says whether the dial started.
    fn dial_command(&mut self, addr: Multiaddr, reply: super::command::Reply<()>) {
        let now = Instant::now();
        match split_peer_id(&addr) {
            (_, Some(peer)) if peer == self.peer_id => {
                let _ = reply.send(Err(CommandError::Dial(
                    "that is this node's own peer id".into(),
                )));
            }
            (plain, Some(peer)) => {
                self.book.learn(peer, plain.clone(), now);
                self.book.pin(peer, now);
                self.dial_peer(peer, vec![plain], Some(reply));
            }
            (plain, None) => {
                let index = self.book.add_bootstrap(plain.clone(), now);
                self.dial_address(index, plain, Some(reply));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use tokio::sync::oneshot;

    use super::super::command::{Command, CommandError};
    use super::super::event::Event;
    use super::super::state::fixtures::TestNode;
    use crate::ledger::Address;
    use crate::net::{NetCommand, Publication};

    #[test]
    fn dialing_our_own_peer_id_is_refused_without_a_dial() {
        let mut node = TestNode::new();
        let own = format!("/ip4/127.0.0.1/tcp/4006/p2p/{}", node.state.peer_id);
        let (reply, mut answer) = oneshot::channel();
        assert!(node.state.on_command(Command::Dial {
            addr: own.parse().expect("address"),
            reply,
        }));
        assert!(node.commands().is_empty());
        assert!(matches!(answer.try_recv(), Ok(Err(CommandError::Dial(_)))));
    }

    #[test]
    fn a_transfer_we_cannot_afford_is_refused_and_not_gossiped() {
        let mut node = TestNode::new();
        let (reply, mut answer) = oneshot::channel();
        node.state.on_command(Command::SubmitTransfer {
            to: Address([1; 20]),
            amount: 5,
            fee: 1,
            memo: String::new(),
            reply,
        });
        assert!(matches!(
            answer.try_recv(),
            Ok(Err(CommandError::Mempool(_)))
        ));
        assert!(node.commands().is_empty());
    }

    #[test]
    fn a_funded_transfer_enters_the_mempool_and_is_gossiped() {
        let mut node = TestNode::new();
        let params = node.state.params.clone();
        let address = node.state.address;
        let block = super::super::state::fixtures::mined_child(
            &params,
            &params.genesis(),
            address,
            params.reward,
        );
        node.state
            .on_mined(0, crate::ledger::pow::MiningOutcome::Found(block));
        node.commands();
        node.emitted();
        let (reply, mut answer) = oneshot::channel();
        node.state.on_command(Command::SubmitTransfer {
            to: Address([1; 20]),
            amount: 5,
            fee: 1,
            memo: String::new(),
            reply,
        });
        let txid = answer.try_recv().expect("answered").expect("accepted");
        assert!(matches!(
            node.commands()[..],
            [NetCommand::Publish(Publication::Tx(_))]
        ));
        assert_eq!(
            node.emitted(),
            vec![Event::TxAccepted {
                txid,
                source: "local".into()
            }]
        );
    }
}
