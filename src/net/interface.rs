//! The typed vocabulary between the network layer and the node: [`NetEvent`]s come in,
//! [`NetCommand`]s go out, and the ids they carry are plain values.
//!
//! Nothing here is a libp2p event or a byte buffer: blocks, transactions and sync messages are
//! already decoded and capped. Ids are values a unit test can build: [`RequestId`] and
//! [`DialId`] are allocated by the node, [`InboundToken`] by the network, and [`MessageToken`]
//! is the gossip message id as bytes.

use libp2p::swarm::ConnectionId;
use libp2p::{Multiaddr, PeerId};

use super::protocol::{SyncRequest, SyncResponse};
use crate::ledger::encode::DecodeError;
use crate::ledger::{Block, Transaction};

/// The node's name for one outbound sync request; its answer or failure carries it back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RequestId(pub u64);

/// The network's name for an inbound sync request waiting for the node's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct InboundToken(pub u64);

/// The node's name for one dial; [`NetEvent::DialStarted`] or [`NetEvent::DialRefused`]
/// carries it back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DialId(pub u64);

/// A gossip message's id (a content hash), to report the validation result against.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MessageToken(pub Vec<u8>);

/// The node's verdict on a gossip message: only accepted messages are forwarded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Acceptance {
    /// Valid: forward it to the mesh.
    Accept,
    /// Not forwarded, and the sender is not held to blame (known, side branch, not yet valid).
    Ignore,
    /// Invalid: not forwarded, and gossipsub scores the sender down.
    Reject,
}

/// What the node asks to gossip.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Publication {
    /// A block that joined our main chain.
    Block(Block),
    /// A transaction that entered our mempool.
    Tx(Transaction),
}

/// Why an outbound sync request produced no usable answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestFailure {
    /// The answer did not decode or broke a cap: the peer sent garbage.
    Garbage,
    /// No answer: timeout, closed connection, refused stream or protocol.
    NoAnswer,
}

/// Something that happened on the network, already typed and decoded. Names are past tense.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NetEvent {
    /// A block arrived on the blocks topic; the node must report its [`Acceptance`].
    GossipBlock {
        /// The peer that forwarded it to us.
        from: PeerId,
        /// The message, for [`NetCommand::ReportValidation`].
        message: MessageToken,
        /// The decoded block.
        block: Block,
    },
    /// A transaction arrived on the transactions topic; the node must report its
    /// [`Acceptance`].
    GossipTx {
        /// The peer that forwarded it to us.
        from: PeerId,
        /// The message, for [`NetCommand::ReportValidation`].
        message: MessageToken,
        /// The decoded transaction.
        tx: Transaction,
    },
    /// A gossip message on one of our topics did not decode or was over its cap. The network
    /// has already reported it as rejected; the node only decides what the sender pays.
    GossipGarbage {
        /// The peer that forwarded it to us.
        from: PeerId,
        /// Why it was refused.
        error: DecodeError,
    },
    /// A peer asked us something on the sync protocol; answer with [`NetCommand::Respond`].
    SyncRequested {
        /// Who asked.
        peer: PeerId,
        /// The decoded, capped request.
        request: SyncRequest,
        /// Where the answer goes.
        channel: InboundToken,
    },
    /// A peer answered one of our sync requests.
    SyncAnswered {
        /// Who answered.
        peer: PeerId,
        /// Which request.
        request: RequestId,
        /// The decoded, capped answer.
        response: SyncResponse,
    },
    /// One of our sync requests failed.
    SyncFailed {
        /// Whom we asked.
        peer: PeerId,
        /// Which request.
        request: RequestId,
        /// Why.
        failure: RequestFailure,
    },
    /// A peer's sync request did not decode or broke a cap.
    InboundGarbage {
        /// The sender.
        peer: PeerId,
    },
    /// A connection to a peer opened.
    PeerConnected {
        /// The peer.
        peer: PeerId,
        /// The connection.
        connection: ConnectionId,
        /// Its remote address.
        remote: Multiaddr,
        /// True if we dialed it.
        dialer: bool,
    },
    /// A connection to a peer closed.
    PeerDisconnected {
        /// The peer.
        peer: PeerId,
        /// The connection.
        connection: ConnectionId,
    },
    /// A dial we started failed to connect.
    DialFailed {
        /// The connection the dial would have been.
        connection: ConnectionId,
        /// True if the address turned out to be this node itself.
        self_dial: bool,
    },
    /// A dial command was carried out: the connection attempt runs as `connection`.
    DialStarted {
        /// The node's name for the dial.
        dial: DialId,
        /// The connection it runs as.
        connection: ConnectionId,
    },
    /// A dial command could not start (already connected or dialing, no address, ...).
    DialRefused {
        /// The node's name for the dial.
        dial: DialId,
        /// The connection it would have run as.
        connection: ConnectionId,
        /// Why, as the swarm words it.
        reason: String,
    },
    /// mDNS found a peer at an address.
    Discovered {
        /// The peer.
        peer: PeerId,
        /// Where.
        addr: Multiaddr,
    },
    /// A ping on a connection was answered.
    Pong {
        /// The connection.
        connection: ConnectionId,
    },
    /// A ping on a connection failed (ping does not close it).
    PingFailed {
        /// The peer.
        peer: PeerId,
        /// The connection.
        connection: ConnectionId,
        /// Why, as ping words it (for the log).
        reason: String,
    },
    /// A peer identified itself with another protocol version: it is not one of ours.
    ForeignProtocol {
        /// The peer.
        peer: PeerId,
        /// The version it claimed.
        version: String,
    },
    /// We listen on a new address.
    Listening {
        /// The address, without our peer id.
        address: Multiaddr,
    },
    /// We no longer listen on an address.
    ListenExpired {
        /// The address.
        address: Multiaddr,
    },
}

/// Something the node wants done on the network. Names are imperative.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NetCommand {
    /// Gossip a block or a transaction; if no peer is subscribed yet, the network keeps it
    /// and publishes it when one subscribes.
    Publish(Publication),
    /// Send a sync request; its answer or failure comes back with `id`.
    Request {
        /// Whom to ask.
        peer: PeerId,
        /// The node's name for the request.
        id: RequestId,
        /// What to ask.
        request: SyncRequest,
    },
    /// Answer an inbound sync request.
    Respond {
        /// Which request.
        channel: InboundToken,
        /// The answer.
        response: SyncResponse,
    },
    /// Close an inbound sync request's stream unanswered (the peer is over its budget).
    Decline {
        /// Which request.
        channel: InboundToken,
    },
    /// Report a gossip message's validation result, so that gossipsub forwards or drops it.
    ReportValidation {
        /// The message.
        message: MessageToken,
        /// The peer that forwarded it.
        from: PeerId,
        /// The verdict.
        acceptance: Acceptance,
    },
    /// Dial a known peer at its addresses, unless a connection or a dial to it exists.
    DialPeer {
        /// The node's name for the dial.
        dial: DialId,
        /// The peer.
        peer: PeerId,
        /// Its addresses.
        addrs: Vec<Multiaddr>,
    },
    /// Dial an address whose peer is not known yet.
    DialAddress {
        /// The node's name for the dial.
        dial: DialId,
        /// The address.
        addr: Multiaddr,
    },
    /// Close every connection to a peer.
    Disconnect(PeerId),
    /// Close one connection.
    CloseConnection(ConnectionId),
}
