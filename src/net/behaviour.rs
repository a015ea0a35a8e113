//! The combined libp2p behaviour and the swarm that drives it.
//!
//! TCP + noise + yamux carry gossipsub (blocks and transactions, validated before they are
//! forwarded), the sync request-response protocol, identify, ping (failures close the
//! connection; the node decides that) and, when enabled, mDNS discovery.

use std::time::Duration;

use libp2p::connection_limits::{self, ConnectionLimits};
use libp2p::core::upgrade;
use libp2p::swarm::behaviour::toggle::Toggle;
use libp2p::swarm::NetworkBehaviour;
use libp2p::Transport;
use libp2p::{gossipsub, identify, identity, mdns, noise, ping, request_response, tcp, yamux};
use sha2::{Digest, Sha256};

use super::muxer::CloseBounded;
use super::protocol::{
    max_gossip_bytes, RequestFrame, SyncCodec, SyncResponse, IDENTIFY_PROTOCOL, SYNC_PROTOCOL,
};
use crate::ledger::NetworkParams;

/// How long a sync request may go unanswered before it fails.
pub const SYNC_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a connection may take from its first byte to a negotiated muxer: a dial into a
/// network that no longer reaches the peer fails within this, so the next re-dial can go out.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(3);

/// Sync streams open at once on one connection, both ways: a node keeps at most 7 requests in
/// flight to a peer, so this leaves room for the peer's own; past it, new streams are dropped,
/// and a peer that never reads its answers holds at most this many of them per connection
/// (each for at most [`SYNC_REQUEST_TIMEOUT`]).
pub const MAX_STREAMS_PER_CONNECTION: usize = 16;

/// How often a peer is pinged; a failed ping closes the connection.
pub const PING_INTERVAL: Duration = Duration::from_secs(2);

/// How long a ping may take before it counts as failed.
pub const PING_TIMEOUT: Duration = Duration::from_secs(5);

/// Most connections other nodes may open to us at once: a flood of throwaway identities is
/// refused at the door instead of filling the node.
pub const MAX_INBOUND_CONNECTIONS: u32 = 64;

/// Most inbound connections still in their handshake at once.
pub const MAX_PENDING_INBOUND: u32 = 32;

/// Most connections with one peer (two nodes that dial each other at once may hold two).
pub const MAX_CONNECTIONS_PER_PEER: u32 = 2;

/// How often mDNS asks the LAN who is there, so a missed first answer is retried within seconds.
pub const MDNS_QUERY_INTERVAL: Duration = Duration::from_secs(5);

/// The swarm type the [`super::network::Network`] owns.
pub type NodeSwarm = libp2p::Swarm<Behaviour>;

/// Every protocol a node speaks, as one behaviour.
#[derive(NetworkBehaviour)]
#[behaviour(to_swarm = "BehaviourEvent")]
pub struct Behaviour {
    /// Connection limits: inbound, pending inbound and per peer.
    pub limits: connection_limits::Behaviour,
    /// Blocks and transactions, flooded to subscribers and validated before forwarding.
    pub gossipsub: gossipsub::Behaviour,
    /// Status exchange and block download.
    pub sync: request_response::Behaviour<SyncCodec>,
    /// Protocol version and addresses of peers.
    pub identify: identify::Behaviour,
    /// Liveness: a failed ping means a dead connection.
    pub ping: ping::Behaviour,
    /// Local network discovery, off with `--no-mdns`.
    pub mdns: Toggle<mdns::tokio::Behaviour>,
}

/// An event from one of the behaviours, as the swarm reports it to the network.
// Each event is moved once, from the swarm to its handler: boxing the large ones buys nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum BehaviourEvent {
    /// A gossip message, subscription or other gossipsub event.
    Gossipsub(gossipsub::Event),
    /// A sync request, response or failure.
    Sync(request_response::Event<RequestFrame, SyncResponse>),
    /// A peer identified itself.
    Identify(identify::Event),
    /// A ping result.
    Ping(ping::Event),
    /// Peers discovered or expired by mDNS.
    Mdns(mdns::Event),
}

macro_rules! from_event {
    ($variant:ident, $event:ty) => {
        impl From<$event> for BehaviourEvent {
            fn from(event: $event) -> Self {
                BehaviourEvent::$variant(event)
            }
        }
    };
}

from_event!(Gossipsub, gossipsub::Event);
from_event!(Sync, request_response::Event<RequestFrame, SyncResponse>);
from_event!(Identify, identify::Event);
from_event!(Ping, ping::Event);
from_event!(Mdns, mdns::Event);

impl From<std::convert::Infallible> for BehaviourEvent {
    fn from(never: std::convert::Infallible) -> Self {
        match never {}
    }
}

/// Why the swarm could not be built or started.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    /// The transport (TCP, noise, yamux) could not be set up.
    #[error("transport setup failed: {0}")]
    Transport(String),
    /// A behaviour refused its configuration.
    #[error("behaviour setup failed: {0}")]
    Behaviour(String),
    /// A listen address was refused.
    #[error("cannot listen on {addr}: {reason}")]
    Listen {
        /// The address.
        addr: libp2p::Multiaddr,
        /// Why.
        reason: String,
    },
    /// Subscribing to a gossip topic failed.
    #[error("cannot subscribe to {topic}: {reason}")]
    Subscribe {
        /// The topic.
        topic: String,
        /// Why.
        reason: String,
    },
}

/// The gossipsub configuration: content-addressed message ids, validation before forwarding,
/// signed messages, and a message cap well above the largest valid block.
fn gossipsub_config(params: &NetworkParams) -> Result<gossipsub::Config, NetError> {
    gossipsub::ConfigBuilder::default()
        .validation_mode(gossipsub::ValidationMode::Strict)
        .validate_messages()
        .message_id_fn(|message: &gossipsub::Message| {
            gossipsub::MessageId::from(Sha256::digest(&message.data).to_vec())
        })
        .max_transmit_size(max_gossip_bytes(params))
        .heartbeat_interval(Duration::from_secs(1))
        .build()
        .map_err(|e| NetError::Behaviour(e.to_string()))
}

/// Builds the swarm for `keypair` on the network `params`, with mDNS when `mdns` is true.
///
/// # Errors
/// [`NetError`] if the transport or a behaviour cannot be set up.
pub fn build_swarm(
    keypair: identity::Keypair,
    params: &NetworkParams,
    mdns: bool,
) -> Result<NodeSwarm, NetError> {
    let gossip_config = gossipsub_config(params)?;
    let codec = SyncCodec::new(params);
    let swarm = libp2p::SwarmBuilder::with_existing_identity(keypair)
        .with_tokio()
        // TCP + noise + yamux as `with_tcp` builds them, plus two bounds that let a node notice
        // a vanished peer and reach it again quickly: a handshake timeout for dials into a dead
        // network, and a bounded close for connections to a peer that stopped answering.
        .with_other_transport(|key| {
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>(
                tcp::tokio::Transport::new(tcp::Config::default().nodelay(true))
                    .upgrade(upgrade::Version::V1Lazy)
                    .authenticate(noise::Config::new(key)?)
                    .multiplex(yamux::Config::default())
                    .timeout(HANDSHAKE_TIMEOUT)
                    .map(|(peer, muxer), _| (peer, CloseBounded::new(muxer))),
            )
        })
        .map_err(|e| NetError::Transport(e.to_string()))?
        .with_behaviour(|key| {
            let peer_id = key.public().to_peer_id();
            let gossipsub = gossipsub::Behaviour::new(
                gossipsub::MessageAuthenticity::Signed(key.clone()),
                gossip_config,
            )?;
            let sync = request_response::Behaviour::with_codec(
                codec,
                [(SYNC_PROTOCOL, request_response::ProtocolSupport::Full)],
                request_response::Config::default()
                    .with_request_timeout(SYNC_REQUEST_TIMEOUT)
                    .with_max_concurrent_streams(MAX_STREAMS_PER_CONNECTION),
            );
            let identify = identify::Behaviour::new(identify::Config::new(
                IDENTIFY_PROTOCOL.to_string(),
                key.public(),
            ));
            let ping = ping::Behaviour::new(
                ping::Config::new()
                    .with_interval(PING_INTERVAL)
                    .with_timeout(PING_TIMEOUT),
            );
            let mdns = if mdns {
                // libp2p-mdns stops its quick start-up queries once it finds any peer and
                // then waits its query interval (5 minutes by default): a pair of nodes whose
                // first exchange was lost would stay apart that long. Ask every few seconds.
                let config = mdns::Config {
                    query_interval: MDNS_QUERY_INTERVAL,
                    ..mdns::Config::default()
                };
                Some(mdns::tokio::Behaviour::new(config, peer_id)?)
            } else {
                None
            };
            let limits = connection_limits::Behaviour::new(
                ConnectionLimits::default()
                    .with_max_established_incoming(Some(MAX_INBOUND_CONNECTIONS))
                    .with_max_pending_incoming(Some(MAX_PENDING_INBOUND))
                    .with_max_established_per_peer(Some(MAX_CONNECTIONS_PER_PEER)),
            );
            Ok(Behaviour {
                limits,
                gossipsub,
                sync,
                identify,
                ping,
                mdns: Toggle::from(mdns),
            })
        })
        .map_err(|e| NetError::Behaviour(e.to_string()))?
        // Ping and our own re-dialing decide when a connection is dead, not idleness: gossipsub
        // keeps only mesh peers alive, and a peer outside the mesh is still a sync partner.
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(3600)))
        .build();
    Ok(swarm)
}
