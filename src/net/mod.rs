//! Networking: the libp2p behaviours and the wire messages.
//!
//! This layer knows the ledger's types and nothing of the node or the console. Bytes from peers
//! are decoded here, under size caps, into typed values; the node never sees raw bytes.
//!
//! Layout:
//! - [`protocol`]: topic names, sync messages, size caps and the request-response codec
//! - [`behaviour`]: the combined libp2p behaviour and swarm construction

pub mod behaviour;
pub mod protocol;
