//! Network parameters: the numbers that define one network, and their bounds.
//!
//! This module holds numbers only and imports no other ledger module, so every other module can
//! read the parameters. Every parameter (name, difficulty, reward, size caps) is committed into
//! the genesis block, which [`super::genesis`] builds from them.

use bincode::{Decode, Encode};

/// Genesis timestamp: 2026-01-01T00:00:00Z in milliseconds.
pub const GENESIS_TIMESTAMP_MS: u64 = 1_767_225_600_000;

/// Default proof-of-work difficulty: one core finds a block in a few tens of milliseconds.
pub const DEFAULT_DIFFICULTY: u32 = 20;

/// Highest difficulty a network may be configured with; work is counted in `u128`.
pub const MAX_DIFFICULTY: u32 = 64;

/// Default block reward.
pub const DEFAULT_REWARD: u64 = 50;

/// Default cap on a block's encoded size.
pub const DEFAULT_MAX_BLOCK_BYTES: usize = 1024 * 1024;

/// Default cap on a block's transaction count (coinbase included).
pub const DEFAULT_MAX_BLOCK_TXS: usize = 5_000;

/// The consensus parameters of one network.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub struct NetworkParams {
    /// Human name, such as `devnet`; part of the network's identity.
    pub name: String,
    /// Leading zero bits every block hash must have.
    pub difficulty: u32,
    /// Coins created by each block's coinbase (plus the block's fees).
    pub reward: u64,
    /// Cap on a block's encoded size in bytes.
    pub max_block_bytes: usize,
    /// Cap on a block's number of transactions, coinbase included.
    pub max_block_txs: usize,
}

/// Why a set of parameters cannot define a network.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParamsError {
    /// Difficulty above [`MAX_DIFFICULTY`].
    #[error("difficulty {0} is above the maximum of {MAX_DIFFICULTY}")]
    DifficultyTooHigh(u32),
    /// Empty or over-long network name.
    #[error("network name must be 1 to 64 characters")]
    BadName,
}

impl NetworkParams {
    /// A network with the given name and difficulty, and the default reward and caps.
    ///
    /// # Errors
    /// [`ParamsError`] for an empty or long name, or a difficulty above [`MAX_DIFFICULTY`].
    pub fn new(name: &str, difficulty: u32) -> Result<Self, ParamsError> {
        if name.is_empty() || name.len() > 64 {
            return Err(ParamsError::BadName);
        }
        if difficulty > MAX_DIFFICULTY {
            return Err(ParamsError::DifficultyTooHigh(difficulty));
        }
        Ok(Self {
            name: name.to_string(),
            difficulty,
            reward: DEFAULT_REWARD,
            max_block_bytes: DEFAULT_MAX_BLOCK_BYTES,
            max_block_txs: DEFAULT_MAX_BLOCK_TXS,
        })
    }

    /// The default network: `devnet` at the default difficulty.
    pub fn devnet() -> Self {
        Self {
            name: "devnet".to_string(),
            difficulty: DEFAULT_DIFFICULTY,
            reward: DEFAULT_REWARD,
            max_block_bytes: DEFAULT_MAX_BLOCK_BYTES,
            max_block_txs: DEFAULT_MAX_BLOCK_TXS,
        }
    }

    /// A network for tests, where `difficulty` may be 0 (every hash is valid).
    pub fn for_tests(name: &str, difficulty: u32) -> Self {
        Self {
            name: name.to_string(),
            difficulty,
            ..Self::devnet()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_parameters_are_refused() {
        assert_eq!(NetworkParams::new("", 1), Err(ParamsError::BadName));
        assert_eq!(
            NetworkParams::new("x", 65),
            Err(ParamsError::DifficultyTooHigh(65))
        );
    }
}
