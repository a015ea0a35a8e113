//! Connections: peers arriving and leaving, the dials the peer book asks for, and discovery.
//!
//! Rules it keeps: a banned peer's connection is closed as soon as it opens; a peer's first
//! connection starts the status exchange and its mempool fetch; its last connection closing
//! ends any sync with it; a discovered peer is dialed once its backoff allows; a bootstrap
//! address (given without a peer id) is tracked by the connection its dial runs as, so the
//! book learns who answered there. Each dial carries a [`DialId`] whose outcome comes straight
//! back from the network, so a console `dial` is answered with whether the dial started.

use std::time::Instant;

use libp2p::swarm::ConnectionId;
use libp2p::{Multiaddr, PeerId};
use tracing::{debug, info};

use super::command::{CommandError, Reply};
use super::event::Event;
use super::peers::Dial;
use super::state::NodeState;
use crate::net::{DialId, NetCommand};

/// What the node must do when a dial's outcome comes back.
pub(super) struct DialPurpose {
    /// The bootstrap address being dialed, whose book entry tracks the connection.
    bootstrap: Option<usize>,
    /// A console `dial` waiting to hear whether the dial started.
    reply: Option<Reply<()>>,
}

impl NodeState {
    /// A connection opened.
    pub(super) fn on_connected(
        &mut self,
        peer: PeerId,
        connection: ConnectionId,
        remote: Multiaddr,
        dialer: bool,
        now: Instant,
    ) {
        if self.book.is_banned(&peer, now) {
            debug!(%peer, "refusing banned peer");
            self.push(NetCommand::CloseConnection(connection));
            return;
        }
        let first = self
            .book
            .connected_to(peer, connection, remote.clone(), dialer, now);
        if first {
            info!(peer_id = %peer, %remote, "peer connected");
            self.emit(Event::PeerConnected {
                peer_id: peer.to_string(),
                address: remote.to_string(),
            });
            self.mempool_fetches.connected(peer);
            self.send_status(peer);
        }
    }

    /// A connection closed; the last one to a peer ends what we were doing with it.
    pub(super) fn on_disconnected(&mut self, peer: PeerId, connection: ConnectionId, now: Instant) {
        if !self.book.disconnected(&peer, connection, now) {
            return;
        }
        info!(peer_id = %peer, "peer disconnected");
        self.emit(Event::PeerDisconnected {
            peer_id: peer.to_string(),
        });
        self.mempool_fetches.disconnected(&peer);
        let actions = self.sync.peer_left(&peer, &self.chain, now);
        self.apply_sync(actions);
    }

    /// mDNS found a peer: dial it if the book says so.
    pub(super) fn on_discovered(&mut self, peer: PeerId, addr: Multiaddr, now: Instant) {
        if peer != self.peer_id && self.book.learn(peer, addr, now) {
            if let Some(entry) = self.book.get(&peer) {
                let addrs = entry.dial_addrs.clone();
                self.dial_peer(peer, addrs, None);
            }
        }
    }

    /// Makes the dials the book says are due.
    pub(super) fn dial_due(&mut self, now: Instant) {
        for dial in self.book.due_dials(now) {
            match dial {
                Dial::Peer(peer, addrs) => self.dial_peer(peer, addrs, None),
                Dial::Address(index, addr) => self.dial_address(index, addr, None),
            }
        }
    }

    fn next_dial(&mut self, purpose: DialPurpose) -> DialId {
        let dial = DialId(self.next_dial);
        self.next_dial += 1;
        if purpose.bootstrap.is_some() || purpose.reply.is_some() {
            self.dials.insert(dial, purpose);
        }
        dial
    }

    /// Dials a known peer, unless a connection or a dial to it exists.
    pub(super) fn dial_peer(
        &mut self,
        peer: PeerId,
        addrs: Vec<Multiaddr>,
        reply: Option<Reply<()>>,
    ) {
        let dial = self.next_dial(DialPurpose {
            bootstrap: None,
            reply,
        });
        self.push(NetCommand::DialPeer { dial, peer, addrs });
    }

    /// Dials bootstrap address `index`, whose peer is not known yet.
    pub(super) fn dial_address(&mut self, index: usize, addr: Multiaddr, reply: Option<Reply<()>>) {
        let dial = self.next_dial(DialPurpose {
            bootstrap: Some(index),
            reply,
        });
        self.push(NetCommand::DialAddress { dial, addr });
    }

    /// The network tried a dial: a bootstrap dial is tracked by its connection (and forgotten
    /// again if it could not start), and a console `dial` gets its answer.
    pub(super) fn on_dial_outcome(
        &mut self,
        dial: DialId,
        connection: ConnectionId,
        outcome: Result<(), String>,
        now: Instant,
    ) {
        let Some(purpose) = self.dials.remove(&dial) else {
            return;
        };
        if let Some(index) = purpose.bootstrap {
            self.book.bootstrap_dialing(index, connection, now);
            if outcome.is_err() {
                self.book.dial_failed(connection, None);
            }
        }
        if let Some(reply) = purpose.reply {
            let _ = reply.send(outcome.map_err(CommandError::Dial));
        }
    }
}

#[cfg(test)]
mod tests {
    use libp2p::swarm::ConnectionId;
    use libp2p::PeerId;
    use tokio::sync::oneshot;

    use super::super::event::Event;
    use super::super::state::fixtures::TestNode;
    use crate::net::{NetCommand, NetEvent};

    #[test]
    fn a_banned_peer_that_connects_again_is_closed_at_once() {
        let mut node = TestNode::new();
        let peer = PeerId::random();
        node.state.book.ban(peer, std::time::Instant::now());
        let connection = ConnectionId::new_unchecked(9);
        node.feed(NetEvent::PeerConnected {
            peer,
            connection,
            remote: "/ip4/127.0.0.1/tcp/4003".parse().expect("address"),
            dialer: false,
        });
        assert_eq!(
            node.commands(),
            vec![NetCommand::CloseConnection(connection)]
        );
        assert!(node.emitted().is_empty());
    }

    #[test]
    fn a_peer_that_leaves_is_reported_once_its_last_connection_closes() {
        let mut node = TestNode::new();
        let peer = node.connected_peer();
        node.feed(NetEvent::PeerDisconnected {
            peer,
            connection: ConnectionId::new_unchecked(1),
        });
        assert_eq!(
            node.emitted(),
            vec![Event::PeerDisconnected {
                peer_id: peer.to_string()
            }]
        );
    }

    #[test]
    fn a_refused_console_dial_is_answered_with_the_reason() {
        let mut node = TestNode::new();
        let (reply, mut answer) = oneshot::channel();
        let peer = PeerId::random();
        let addr: libp2p::Multiaddr = "/ip4/127.0.0.1/tcp/4004".parse().expect("address");
        node.state.dial_peer(peer, vec![addr], Some(reply));
        let [NetCommand::DialPeer { dial, .. }] = node.commands()[..] else {
            panic!("one dial");
        };
        node.feed(NetEvent::DialRefused {
            dial,
            connection: ConnectionId::new_unchecked(5),
            reason: "already connected".into(),
        });
        assert_eq!(
            answer.try_recv(),
            Ok(Err(super::CommandError::Dial("already connected".into())))
        );
    }

    #[test]
    fn a_bootstrap_dial_is_tracked_by_its_connection_and_learns_who_answered() {
        let mut node = TestNode::new();
        let now = std::time::Instant::now();
        let addr: libp2p::Multiaddr = "/ip4/127.0.0.1/tcp/4005".parse().expect("address");
        let index = node.state.book.add_bootstrap(addr.clone(), now);
        node.state.dial_due(now);
        let [NetCommand::DialAddress { dial, .. }] = node.commands()[..] else {
            panic!("one bootstrap dial");
        };
        let connection = ConnectionId::new_unchecked(6);
        node.feed(NetEvent::DialStarted { dial, connection });
        assert!(
            node.state.book.due_dials(now).is_empty(),
            "not dialed again while the dial runs"
        );
        let peer = PeerId::random();
        node.feed(NetEvent::PeerConnected {
            peer,
            connection,
            remote: addr,
            dialer: true,
        });
        assert!(node.state.book.get(&peer).is_some_and(|e| e.is_connected()));
        let _ = index;
    }
}
