//! The ledger: everything a node needs to decide on its own whether a block or a transaction is
//! valid and which chain is best. It knows nothing of networking, async runtimes or consoles.
//!
//! Layout:
//! - [`hash`]: digest newtypes and SHA-256
//! - [`encode`]: canonical bincode encoding and capped decoding
//! - [`transaction`]: signed transfers, the coinbase, the one signature rule (ZIP-215)
//! - [`block`]: headers, blocks, Merkle root, context-free checks, [`CheckedBlock`]
//! - [`params`]: network parameters (numbers only)
//! - [`genesis`]: the deterministic genesis block the parameters determine
//! - [`pow`]: proof of work and the multi-threaded miner
//! - [`state`]: balances and nonces, and the one check of a transfer against them
//! - [`chain`]: block tree, fork choice, reorgs; orphans, invalid blocks, locators, pruning
//! - [`mempool`]: pending transactions and block templates
//! - [`store`]: the durable redb store
//!
//! Imports point one way, from the bottom up: `hash`, `encode` -> `params`, `transaction` ->
//! `block` -> `genesis`, `state`, `pow` -> `chain` -> `mempool`, `store`. No module imports
//! one that imports it back.

pub mod block;
pub mod chain;
pub mod digest_map;
pub mod encode;
pub mod genesis;
pub mod hash;
pub mod mempool;
pub mod params;
pub mod pow;
pub mod state;
pub mod store;
pub mod transaction;

pub use block::{Block, BlockError, BlockHeader, CheckedBlock};
pub use chain::{Accepted, Chain, Placement, TipChange};
pub use hash::{Address, BlockHash, NetworkId, TxId};
pub use mempool::{Mempool, MempoolError, RelayPolicy};
pub use params::NetworkParams;
pub use state::State;
pub use store::{Store, StoreError, Verified};
pub use transaction::{PublicKey, Transaction, TxError, MAX_MEMO_BYTES};
