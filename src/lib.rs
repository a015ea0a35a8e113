//! gossipchain: a peer-to-peer blockchain node.
//!
//! Layout:
//! - [`ledger`]: consensus, pure and synchronous: blocks, transactions, proof of work,
//!   validation, chain and fork choice, mempool, storage
//! - [`net`]: libp2p behaviours and wire messages (bytes from peers become typed values here)
//! - [`node`]: the event loop that owns the swarm, the chain, the mempool and the store
//! - [`console`]: stdin commands to the node, replies and events printed for humans or as JSON
//! - [`http`]: the HTTP API (the seeds' routes, `/api/v1`, the event stream) -> the node
//! - [`cli`]: command-line flags

#![deny(missing_docs)]

pub mod cli;
pub mod console;
pub mod http;
pub mod ledger;
pub mod net;
pub mod node;
