//! The durable store.
//!
//! SKELETON: signatures agreed between modules; bodies are being written.

use std::path::Path;

use super::chain::{Accepted, Chain};
use super::params::NetworkParams;

/// Why the store could not be opened or written.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The data directory belongs to another network.
    #[error("data directory belongs to another network")]
    OtherNetwork,
}

/// The redb database in a node's data directory.
#[derive(Debug)]
pub struct Store {}

impl Store {
    /// Opens (or creates) the store in `dir` for the network `params`.
    ///
    /// # Errors
    /// [`StoreError`].
    pub fn open(dir: &Path, params: &NetworkParams) -> Result<Self, StoreError> {
        let _ = (dir, params);
        todo!()
    }
    /// Rebuilds the chain from the stored main chain.
    ///
    /// # Errors
    /// [`StoreError`].
    pub fn load_chain(&self) -> Result<Chain, StoreError> {
        todo!()
    }
    /// Durably records what [`Chain::accept_block`] added, in one transaction.
    ///
    /// # Errors
    /// [`StoreError`].
    pub fn commit(&self, accepted: &Accepted) -> Result<(), StoreError> {
        let _ = accepted;
        todo!()
    }
    /// The node's ed25519 secret key, created on first use.
    ///
    /// # Errors
    /// [`StoreError`].
    pub fn node_key(&self) -> Result<[u8; 32], StoreError> {
        todo!()
    }
}
