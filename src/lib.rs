//! gossipchain: a peer-to-peer blockchain node.
//!
//! Layout:
//! - [`ledger`]: consensus, pure and synchronous: blocks, transactions, proof of work,
//!   validation, chain and fork choice, mempool, storage
//! - [`net`]: owns the libp2p swarm and the wire: bytes from peers become typed events here,
//!   and the node's typed commands become swarm calls
//! - [`node`]: the one owner of the chain, the mempool and the store, driven by the network's
//!   typed events, the console's commands and the miner
//! - [`console`]: stdin commands to the node, replies and events printed for humans or as JSON
//! - [`terminal`]: the console on a terminal: prompt, line editing, history
//! - [`http`]: the HTTP API (the seeds' routes, `/api/v1`, the event stream) -> the node
//! - [`cli`]: command-line flags
//! - [`fuzzing`]: fuzz targets for every decoder of peer and file input and for the console,
//!   driven by `fuzz/` (cargo fuzz) and by `tests/fuzz_decoders.rs` (stable)

#![deny(missing_docs)]

pub mod cli;
pub mod console;
pub mod fuzzing;
pub mod http;
pub mod ledger;
pub mod net;
pub mod node;
pub mod terminal;
