//! The [`Network`]: the one owner of the libp2p swarm.
//!
//! It turns swarm events into [`NetEvent`]s and carries out [`NetCommand`]s. Rules it keeps:
//! gossip is matched to our two topics and decoded under the network's caps here (a message on
//! another topic, or one that does not decode, is rejected to gossipsub at once; the node only
//! hears of the undecodable one, to penalise its sender); sync requests and answers arrive
//! decoded and capped by the codec; libp2p's request ids and response channels stay here, mapped
//! to the node's [`RequestId`]s and our [`InboundToken`]s; a publish that finds no subscriber is
//! held (see [`super::unannounced`]) and published when a peer subscribes to the topic.

use std::collections::{HashMap, VecDeque};

use futures::StreamExt;
use libp2p::gossipsub::{self, IdentTopic, MessageAcceptance, PublishError};
use libp2p::metrics::{Metrics, Recorder};
use libp2p::request_response::{self, OutboundFailure, OutboundRequestId, ResponseChannel};
use libp2p::swarm::dial_opts::{DialOpts, PeerCondition};
use libp2p::swarm::{DialError, SwarmEvent};
use libp2p::{identify, identity, mdns, ping, Multiaddr, PeerId};
use prometheus_client::registry::Registry;
use tracing::debug;

use super::behaviour::{build_swarm, BehaviourEvent, NetError, NodeSwarm};
use super::interface::{
    Acceptance, DialId, InboundToken, MessageToken, NetCommand, NetEvent, Publication,
    RequestFailure, RequestId,
};
use super::protocol::{
    blocks_topic, decode_gossip_block, decode_gossip_tx, decode_request, txs_topic, RequestFrame,
    SyncResponse, IDENTIFY_PROTOCOL,
};
use super::unannounced::{TopicKind, Unannounced};
use crate::ledger::encode::encode;
use crate::ledger::{BlockHash, NetworkParams};

impl From<Acceptance> for MessageAcceptance {
    fn from(acceptance: Acceptance) -> Self {
        match acceptance {
            Acceptance::Accept => MessageAcceptance::Accept,
            Acceptance::Ignore => MessageAcceptance::Ignore,
            Acceptance::Reject => MessageAcceptance::Reject,
        }
    }
}

/// The swarm, our topics, and the maps between libp2p's ids and ours.
pub struct Network {
    swarm: NodeSwarm,
    params: NetworkParams,
    blocks_topic: IdentTopic,
    txs_topic: IdentTopic,
    outbound: HashMap<OutboundRequestId, RequestId>,
    inbound: HashMap<InboundToken, ResponseChannel<SyncResponse>>,
    next_inbound: u64,
    unannounced: Unannounced,
    ready: VecDeque<NetEvent>,
    /// libp2p's own metrics (connections, gossipsub, identify, ping), in the node's registry.
    metrics: Metrics,
}

impl Network {
    /// Builds the swarm for `keypair` on the network `params` whose genesis is `genesis`,
    /// subscribes to its topics and listens on `listen`.
    ///
    /// # Errors
    /// [`NetError`] naming what could not be set up.
    pub fn start(
        keypair: identity::Keypair,
        params: &NetworkParams,
        genesis: &BlockHash,
        mdns: bool,
        listen: &[Multiaddr],
        registry: &mut Registry,
    ) -> Result<Self, NetError> {
        let mut swarm = build_swarm(keypair, params, mdns)?;
        let (blocks, txs) = (blocks_topic(genesis), txs_topic(genesis));
        for topic in [&blocks, &txs] {
            swarm
                .behaviour_mut()
                .gossipsub
                .subscribe(topic)
                .map_err(|e| NetError::Subscribe {
                    topic: topic.to_string(),
                    reason: e.to_string(),
                })?;
        }
        for addr in listen {
            swarm
                .listen_on(addr.clone())
                .map_err(|e| NetError::Listen {
                    addr: addr.clone(),
                    reason: e.to_string(),
                })?;
        }
        Ok(Self {
            swarm,
            params: params.clone(),
            blocks_topic: blocks,
            txs_topic: txs,
            outbound: HashMap::new(),
            inbound: HashMap::new(),
            next_inbound: 0,
            unannounced: Unannounced::new(),
            ready: VecDeque::new(),
            metrics: Metrics::new(registry),
        })
    }

    /// This node's peer id on the network.
    pub fn local_peer_id(&self) -> PeerId {
        *self.swarm.local_peer_id()
    }

    /// The next event worth the node's attention. Cancel-safe: nothing is lost if the future
    /// is dropped before it completes.
    pub async fn next_event(&mut self) -> NetEvent {
        loop {
            if let Some(event) = self.ready.pop_front() {
                return event;
            }
            let event = self.swarm.select_next_some().await;
            self.on_swarm_event(event);
        }
    }

    /// Carries out a command. A dial command returns its outcome at once, as
    /// [`NetEvent::DialStarted`] or [`NetEvent::DialRefused`], for the node to take before
    /// anything else happens; other commands return `None`.
    pub fn execute(&mut self, command: NetCommand) -> Option<NetEvent> {
        match command {
            NetCommand::Publish(Publication::Block(block)) => {
                self.publish(TopicKind::Blocks, encode(&block));
            }
            NetCommand::Publish(Publication::Tx(tx)) => {
                self.publish(TopicKind::Txs, encode(&tx));
            }
            NetCommand::Request { peer, id, request } => {
                let frame = RequestFrame::encode(&request);
                let outbound = self.swarm.behaviour_mut().sync.send_request(&peer, frame);
                self.outbound.insert(outbound, id);
            }
            NetCommand::Respond { channel, response } => match self.inbound.remove(&channel) {
                Some(channel) => {
                    let _ = self
                        .swarm
                        .behaviour_mut()
                        .sync
                        .send_response(channel, response);
                }
                None => debug!(?channel, "answer for an unknown inbound request dropped"),
            },
            NetCommand::Decline { channel } => {
                // Dropping the channel closes the stream unanswered.
                self.inbound.remove(&channel);
            }
            NetCommand::ReportValidation {
                message,
                from,
                acceptance,
            } => {
                self.swarm
                    .behaviour_mut()
                    .gossipsub
                    .report_message_validation_result(
                        &gossipsub::MessageId(message.0),
                        &from,
                        acceptance.into(),
                    );
            }
            NetCommand::DialPeer { dial, peer, addrs } => {
                // From a fresh port, and only if no connection or dial exists: two nodes that
                // discover each other at once and both dial then still connect.
                let opts = DialOpts::peer_id(peer)
                    .addresses(addrs)
                    .condition(PeerCondition::DisconnectedAndNotDialing)
                    .allocate_new_port()
                    .build();
                return Some(self.dial(dial, opts));
            }
            NetCommand::DialAddress { dial, addr } => {
                let opts = DialOpts::unknown_peer_id()
                    .address(addr)
                    .allocate_new_port()
                    .build();
                return Some(self.dial(dial, opts));
            }
            NetCommand::Disconnect(peer) => {
                let _ = self.swarm.disconnect_peer_id(peer);
            }
            NetCommand::CloseConnection(connection) => {
                self.swarm.close_connection(connection);
            }
        }
        None
    }

    fn dial(&mut self, dial: DialId, opts: DialOpts) -> NetEvent {
        let connection = opts.connection_id();
        let peer = opts.get_peer_id();
        match self.swarm.dial(opts) {
            Ok(()) => NetEvent::DialStarted { dial, connection },
            Err(error) => {
                debug!(?peer, %error, "dial not started");
                NetEvent::DialRefused {
                    dial,
                    connection,
                    reason: error.to_string(),
                }
            }
        }
    }

    fn topic(&self, kind: TopicKind) -> IdentTopic {
        match kind {
            TopicKind::Blocks => self.blocks_topic.clone(),
            TopicKind::Txs => self.txs_topic.clone(),
        }
    }

    /// Publishes, or holds the message until a peer subscribes. A duplicate (the same bytes
    /// were published before) counts as published.
    fn publish(&mut self, kind: TopicKind, data: Vec<u8>) {
        let topic = self.topic(kind);
        match self
            .swarm
            .behaviour_mut()
            .gossipsub
            .publish(topic, data.clone())
        {
            Ok(_) | Err(PublishError::Duplicate) => {}
            Err(error) => {
                debug!(?kind, %error, "not published yet");
                self.unannounced.hold(kind, data);
            }
        }
    }

    fn on_swarm_event(&mut self, event: SwarmEvent<BehaviourEvent>) {
        self.metrics.record(&event);
        let event = match event {
            SwarmEvent::NewListenAddr { address, .. } => NetEvent::Listening { address },
            SwarmEvent::ExpiredListenAddr { address, .. } => NetEvent::ListenExpired { address },
            SwarmEvent::ConnectionEstablished {
                peer_id,
                connection_id,
                endpoint,
                ..
            } => NetEvent::PeerConnected {
                peer: peer_id,
                connection: connection_id,
                remote: endpoint.get_remote_address().clone(),
                dialer: endpoint.is_dialer(),
            },
            SwarmEvent::ConnectionClosed {
                peer_id,
                connection_id,
                ..
            } => NetEvent::PeerDisconnected {
                peer: peer_id,
                connection: connection_id,
            },
            SwarmEvent::OutgoingConnectionError {
                connection_id,
                peer_id,
                error,
            } => {
                debug!(?peer_id, %error, "dial failed");
                NetEvent::DialFailed {
                    connection: connection_id,
                    self_dial: matches!(error, DialError::LocalPeerId { .. }),
                }
            }
            SwarmEvent::Behaviour(event) => return self.on_behaviour_event(event),
            _ => return,
        };
        self.ready.push_back(event);
    }

    fn on_behaviour_event(&mut self, event: BehaviourEvent) {
        match &event {
            BehaviourEvent::Gossipsub(e) => self.metrics.record(e),
            BehaviourEvent::Ping(e) => self.metrics.record(e),
            BehaviourEvent::Identify(e) => self.metrics.record(e),
            _ => {}
        }
        match event {
            BehaviourEvent::Gossipsub(event) => self.on_gossip(event),
            BehaviourEvent::Sync(event) => self.on_sync(event),
            BehaviourEvent::Mdns(mdns::Event::Discovered(found)) => {
                for (peer, addr) in found {
                    self.ready.push_back(NetEvent::Discovered { peer, addr });
                }
            }
            BehaviourEvent::Ping(ping::Event {
                peer,
                connection,
                result,
            }) => self.ready.push_back(match result {
                Ok(_) => NetEvent::Pong { connection },
                Err(error) => NetEvent::PingFailed {
                    peer,
                    connection,
                    reason: error.to_string(),
                },
            }),
            BehaviourEvent::Identify(identify::Event::Received { peer_id, info, .. })
                if info.protocol_version != IDENTIFY_PROTOCOL =>
            {
                self.ready.push_back(NetEvent::ForeignProtocol {
                    peer: peer_id,
                    version: info.protocol_version,
                });
            }
            _ => {}
        }
    }

    fn on_gossip(&mut self, event: gossipsub::Event) {
        match event {
            gossipsub::Event::Message {
                propagation_source: from,
                message_id,
                message,
            } => {
                let decoded = if message.topic == self.blocks_topic.hash() {
                    decode_gossip_block(&message.data, &self.params).map(|block| {
                        NetEvent::GossipBlock {
                            from,
                            message: MessageToken(message_id.0.clone()),
                            block,
                        }
                    })
                } else if message.topic == self.txs_topic.hash() {
                    decode_gossip_tx(&message.data).map(|tx| NetEvent::GossipTx {
                        from,
                        message: MessageToken(message_id.0.clone()),
                        tx,
                    })
                } else {
                    debug!(%from, topic = %message.topic, "gossip on a foreign topic");
                    self.reject(&message_id, &from);
                    return;
                };
                match decoded {
                    Ok(event) => self.ready.push_back(event),
                    Err(error) => {
                        debug!(%from, %error, "undecodable gossip");
                        self.reject(&message_id, &from);
                        self.ready
                            .push_back(NetEvent::GossipGarbage { from, error });
                    }
                }
            }
            gossipsub::Event::Subscribed { topic, .. } => {
                let kind = if topic == self.blocks_topic.hash() {
                    TopicKind::Blocks
                } else if topic == self.txs_topic.hash() {
                    TopicKind::Txs
                } else {
                    return;
                };
                for data in self.unannounced.take(kind) {
                    self.publish(kind, data);
                }
            }
            _ => {}
        }
    }

    fn reject(&mut self, message: &gossipsub::MessageId, from: &PeerId) {
        self.swarm
            .behaviour_mut()
            .gossipsub
            .report_message_validation_result(message, from, MessageAcceptance::Reject);
    }

    fn on_sync(&mut self, event: request_response::Event<RequestFrame, SyncResponse>) {
        match event {
            request_response::Event::Message { peer, message, .. } => match message {
                request_response::Message::Request {
                    request, channel, ..
                } => {
                    let request = match decode_request(&request.0) {
                        Ok(request) => request,
                        Err(error) => {
                            // Dropping the channel closes the stream unanswered.
                            debug!(%peer, %error, "undecodable sync request");
                            self.ready.push_back(NetEvent::InboundGarbage { peer });
                            return;
                        }
                    };
                    let token = InboundToken(self.next_inbound);
                    self.next_inbound += 1;
                    self.inbound.insert(token, channel);
                    self.ready.push_back(NetEvent::SyncRequested {
                        peer,
                        request,
                        channel: token,
                    });
                }
                request_response::Message::Response {
                    request_id,
                    response,
                } => {
                    if let Some(request) = self.outbound.remove(&request_id) {
                        self.ready.push_back(NetEvent::SyncAnswered {
                            peer,
                            request,
                            response,
                        });
                    }
                }
            },
            request_response::Event::OutboundFailure {
                peer,
                request_id,
                error,
                ..
            } => {
                debug!(%peer, %error, "sync request failed");
                let failure = if matches!(&error, OutboundFailure::Io(e) if e.kind() == std::io::ErrorKind::InvalidData)
                {
                    RequestFailure::Garbage
                } else {
                    RequestFailure::NoAnswer
                };
                if let Some(request) = self.outbound.remove(&request_id) {
                    self.ready.push_back(NetEvent::SyncFailed {
                        peer,
                        request,
                        failure,
                    });
                }
            }
            // Garbage requests are caught above, where they are decoded; what fails here is the
            // stream itself (closed, timed out, our answer refused), which costs the peer nothing.
            request_response::Event::InboundFailure { peer, error, .. } => {
                debug!(%peer, %error, "sync request from peer failed");
            }
            request_response::Event::ResponseSent { .. } => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::net::protocol::SyncRequest;

    const PATIENCE: Duration = Duration::from_secs(20);

    fn params() -> NetworkParams {
        NetworkParams::for_tests("net-tests", 0)
    }

    /// A network on 127.0.0.1 without mDNS, and the address it listens on.
    async fn listening() -> (Network, Multiaddr) {
        let params = params();
        let loopback: Multiaddr = "/ip4/127.0.0.1/tcp/0".parse().expect("address");
        let mut network = Network::start(
            identity::Keypair::generate_ed25519(),
            &params,
            &params.genesis_hash(),
            false,
            &[loopback],
            &mut Registry::default(),
        )
        .expect("network starts");
        loop {
            if let NetEvent::Listening { address } = network.next_event().await {
                return (network, address);
            }
        }
    }

    /// Drives both networks until `b` reports an event `pick` takes; `a`'s events go to
    /// `on_a`, which may answer with a command.
    async fn until_b<T>(
        a: &mut Network,
        b: &mut Network,
        mut on_a: impl FnMut(NetEvent) -> Option<NetCommand>,
        mut pick: impl FnMut(NetEvent) -> Option<T>,
    ) -> T {
        let drive = async {
            loop {
                tokio::select! {
                    event = a.next_event() => {
                        if let Some(command) = on_a(event) {
                            a.execute(command);
                        }
                    }
                    event = b.next_event() => {
                        if let Some(found) = pick(event) {
                            return found;
                        }
                    }
                }
            }
        };
        tokio::time::timeout(PATIENCE, drive)
            .await
            .expect("the event arrives in time")
    }

    #[tokio::test]
    async fn a_peer_gets_at_most_the_per_peer_connection_limit() {
        use crate::net::behaviour::MAX_CONNECTIONS_PER_PEER;
        let (mut a, a_addr) = listening().await;
        let (mut b, _) = listening().await;
        let tries = MAX_CONNECTIONS_PER_PEER as usize + 2;
        for i in 0..tries {
            let outcome = b.execute(NetCommand::DialAddress {
                dial: DialId(i as u64),
                addr: a_addr.clone(),
            });
            assert!(
                matches!(outcome, Some(NetEvent::DialStarted { .. })),
                "{outcome:?}"
            );
        }
        let b_id = b.local_peer_id();
        let (mut accepted_by_a, mut connected_b, mut refused_b) = (0usize, 0usize, 0usize);
        let drive = async {
            while connected_b + refused_b < tries || accepted_by_a < connected_b {
                tokio::select! {
                    event = a.next_event() => {
                        if matches!(event, NetEvent::PeerConnected { peer, .. } if peer == b_id) {
                            accepted_by_a += 1;
                        }
                    }
                    event = b.next_event() => match event {
                        NetEvent::PeerConnected { .. } => connected_b += 1,
                        NetEvent::DialFailed { .. } => refused_b += 1,
                        _ => {}
                    },
                }
            }
        };
        tokio::time::timeout(PATIENCE, drive)
            .await
            .expect("every dial settles in time");
        assert!(
            (1..=MAX_CONNECTIONS_PER_PEER as usize).contains(&accepted_by_a),
            "a accepted {accepted_by_a} connections from one peer"
        );
        assert_eq!(accepted_by_a, connected_b);
        assert!(refused_b >= 2, "the dials over the limit were refused");
    }

    #[tokio::test]
    async fn a_block_published_before_any_peer_subscribed_reaches_the_first_peer_that_does() {
        let (mut a, a_addr) = listening().await;
        let (mut b, _) = listening().await;
        let block = params().genesis();
        assert_eq!(
            a.execute(NetCommand::Publish(Publication::Block(block.clone()))),
            None
        );
        let outcome = b.execute(NetCommand::DialPeer {
            dial: DialId(1),
            peer: a.local_peer_id(),
            addrs: vec![a_addr],
        });
        assert!(matches!(
            outcome,
            Some(NetEvent::DialStarted {
                dial: DialId(1),
                ..
            })
        ));
        let a_peer = a.local_peer_id();
        let (from, got) = until_b(
            &mut a,
            &mut b,
            |_| None,
            |event| match event {
                NetEvent::GossipBlock { from, block, .. } => Some((from, block)),
                _ => None,
            },
        )
        .await;
        assert_eq!((from, got), (a_peer, block));
    }

    #[tokio::test]
    async fn a_sync_request_is_answered_under_the_requesters_id() {
        let (mut a, a_addr) = listening().await;
        let (mut b, _) = listening().await;
        let a_peer = a.local_peer_id();
        b.execute(NetCommand::DialPeer {
            dial: DialId(1),
            peer: a_peer,
            addrs: vec![a_addr],
        });
        b.execute(NetCommand::Request {
            peer: a_peer,
            id: RequestId(42),
            request: SyncRequest::GetMempool { max_txs: 5 },
        });
        let (request, response) = until_b(
            &mut a,
            &mut b,
            |event| match event {
                NetEvent::SyncRequested {
                    request: SyncRequest::GetMempool { max_txs: 5 },
                    channel,
                    ..
                } => Some(NetCommand::Respond {
                    channel,
                    response: SyncResponse::Mempool(Vec::new()),
                }),
                _ => None,
            },
            |event| match event {
                NetEvent::SyncAnswered {
                    request, response, ..
                } => Some((request, response)),
                _ => None,
            },
        )
        .await;
        assert_eq!(request, RequestId(42));
        assert_eq!(response, SyncResponse::Mempool(Vec::new()));
    }

    #[test]
    fn each_acceptance_maps_to_the_gossipsub_verdict_of_the_same_name() {
        assert!(matches!(
            MessageAcceptance::from(Acceptance::Accept),
            MessageAcceptance::Accept
        ));
        assert!(matches!(
            MessageAcceptance::from(Acceptance::Ignore),
            MessageAcceptance::Ignore
        ));
        assert!(matches!(
            MessageAcceptance::from(Acceptance::Reject),
            MessageAcceptance::Reject
        ));
    }
}
