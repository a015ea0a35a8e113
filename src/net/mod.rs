//! Networking: the network layer owns the libp2p swarm and speaks the wire.
//!
//! This layer knows the ledger's types and nothing of the node or the console. Bytes from peers
//! are matched to their topic or protocol and decoded here, under size caps, into typed values;
//! the node sees [`NetEvent`]s and answers with [`NetCommand`]s, never a libp2p event or raw
//! bytes. Which block or transaction is valid, and what a peer pays for misbehaving, is the
//! node's decision; forwarding gossip only once the node accepted it is kept here.
//!
//! Layout:
//! - [`protocol`]: topic names, sync messages, size caps and the request-response codec
//! - [`behaviour`]: the combined libp2p behaviour and swarm construction
//! - [`muxer`]: a muxer wrapper that bounds how long closing a dead connection takes
//! - [`interface`]: the typed events, commands and ids between the network and the node
//! - [`network`]: the [`Network`] that owns the swarm and translates both ways
//! - [`unannounced`]: gossip held back until a peer subscribes to its topic

pub mod behaviour;
pub mod interface;
pub mod muxer;
pub mod network;
pub mod protocol;
pub mod unannounced;

pub use interface::{
    Acceptance, DialId, InboundToken, MessageToken, NetCommand, NetEvent, Publication,
    RequestFailure, RequestId,
};
pub use network::Network;
