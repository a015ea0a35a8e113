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

/// Lowest difficulty a network may be configured with: at 0 any hash would do, and proof of work
/// would mean nothing.
pub const MIN_DIFFICULTY: u32 = 1;

/// Longest network name.
pub const MAX_NAME_LEN: usize = 64;

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
    /// Difficulty below [`MIN_DIFFICULTY`].
    #[error(
        "difficulty {0} is below the minimum of {MIN_DIFFICULTY}: proof of work would mean nothing"
    )]
    DifficultyTooLow(u32),
    /// A network name that is empty, too long, or not a plain word: it names the default data
    /// directory, so it may not hold a path separator or start with a dot.
    #[error(
        "network name must be 1 to {MAX_NAME_LEN} letters, digits, '-', '_' or '.', not starting with '.'"
    )]
    BadName,
}

/// True for a name that is safe as one path component: `[A-Za-z0-9_-][A-Za-z0-9._-]*`, at most
/// [`MAX_NAME_LEN`] bytes.
fn is_plain_name(name: &str) -> bool {
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
    (1..=MAX_NAME_LEN).contains(&name.len()) && !name.starts_with('.') && name.chars().all(allowed)
}

impl NetworkParams {
    /// A network with the given name and difficulty, and the default reward and caps.
    ///
    /// # Errors
    /// [`ParamsError`] for a name that is not a plain word (see [`ParamsError::BadName`]), or a
    /// difficulty outside [`MIN_DIFFICULTY`]..=[`MAX_DIFFICULTY`].
    pub fn new(name: &str, difficulty: u32) -> Result<Self, ParamsError> {
        if !is_plain_name(name) {
            return Err(ParamsError::BadName);
        }
        if difficulty > MAX_DIFFICULTY {
            return Err(ParamsError::DifficultyTooHigh(difficulty));
        }
        if difficulty < MIN_DIFFICULTY {
            return Err(ParamsError::DifficultyTooLow(difficulty));
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
        assert_eq!(
            NetworkParams::new("x", 0),
            Err(ParamsError::DifficultyTooLow(0))
        );
    }

    #[test]
    fn a_network_name_must_be_one_plain_path_component() {
        for bad in [
            "",
            "../evil",
            "a/b",
            "a\\b",
            ".",
            "..",
            ".hidden",
            "two words",
            "naïve",
            &"n".repeat(MAX_NAME_LEN + 1),
        ] {
            assert_eq!(
                NetworkParams::new(bad, 8),
                Err(ParamsError::BadName),
                "{bad:?}"
            );
        }
        for good in [
            "devnet",
            "lab-2",
            "e2e_sync.7",
            "1",
            &"n".repeat(MAX_NAME_LEN),
        ] {
            assert!(NetworkParams::new(good, 8).is_ok(), "{good:?}");
        }
    }
}
