//! Pending transactions.
//!
//! SKELETON: signatures agreed between modules; bodies are being written.

use super::chain::TipChange;
use super::hash::{Address, TxId};
use super::state::{State, TxError};
use super::transaction::Transaction;

/// Why the mempool refused a transaction.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MempoolError {
    /// Already pending.
    #[error("transaction {0} is already in the mempool")]
    AlreadyKnown(TxId),
    /// Breaks a transaction rule against the tip state plus pending transactions.
    #[error(transparent)]
    Invalid(#[from] TxError),
}

/// Bounded pool of valid pending transactions.
#[derive(Debug, Default)]
pub struct Mempool {}

impl Mempool {
    /// An empty pool holding at most `capacity` transactions.
    pub fn new(capacity: usize) -> Self {
        let _ = capacity;
        todo!()
    }
    /// Validates and adds a transaction.
    ///
    /// # Errors
    /// [`MempoolError`] naming why it was refused.
    pub fn add(&mut self, tx: Transaction, state: &State) -> Result<TxId, MempoolError> {
        let _ = (tx, state);
        todo!()
    }
    /// The nonce a new transfer from `address` must carry, counting pending ones.
    pub fn next_nonce(&self, state: &State, address: &Address) -> u64 {
        let _ = (state, address);
        todo!()
    }
    /// Transactions for a block: highest fee first, each sender's nonces in order.
    pub fn template(&self, max_txs: usize, max_bytes: usize) -> Vec<Transaction> {
        let _ = (max_txs, max_bytes);
        todo!()
    }
    /// Reacts to a tip change; `state` is the state after it.
    pub fn on_tip_change(&mut self, change: &TipChange, state: &State) {
        let _ = (change, state);
        todo!()
    }
}
