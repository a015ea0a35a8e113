//! Network parameters and the genesis block they determine.
//!
//! Every consensus parameter (name, difficulty, reward, size caps) is committed into the genesis
//! block, which is built deterministically, so two nodes agree on a network exactly when their
//! genesis hashes agree. The genesis hash is the network's identity on the wire.

use bincode::{Decode, Encode};

use super::block::{compute_tx_root, Block, BlockHeader};
use super::encode::encode;
use super::hash::{sha256, Address, BlockHash};
use super::transaction::Transaction;

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

    /// The address the genesis coinbase pays (zero coins): a digest of the parameters, so the
    /// genesis hash commits to every one of them.
    fn genesis_address(&self) -> Address {
        let mut bytes = b"gossipchain genesis".to_vec();
        bytes.extend(encode(self));
        let d = sha256(&bytes);
        let mut a = [0u8; 20];
        a.copy_from_slice(&d[..20]);
        Address(a)
    }

    /// The network's first block, the same on every node: height 0, zero parent, a coinbase of
    /// zero coins to the parameters' digest, the fixed genesis timestamp, nonce 0. It is not
    /// mined: nodes know it, they never validate its proof of work.
    pub fn genesis(&self) -> Block {
        let coinbase = Transaction::coinbase(0, self.genesis_address(), 0);
        let tx_root = compute_tx_root(&[coinbase.compute_txid()]);
        Block {
            header: BlockHeader {
                height: 0,
                prev_hash: BlockHash::ZERO,
                tx_root,
                timestamp: GENESIS_TIMESTAMP_MS,
                difficulty: self.difficulty,
                nonce: 0,
            },
            transactions: vec![coinbase],
        }
    }

    /// The genesis block's hash: the network's identity on the wire and in the store.
    pub fn genesis_hash(&self) -> BlockHash {
        self.genesis().block_hash()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn genesis_is_deterministic() {
        assert_eq!(
            NetworkParams::devnet().genesis(),
            NetworkParams::devnet().genesis()
        );
    }

    #[test]
    fn every_parameter_changes_the_genesis_hash() {
        let base = NetworkParams::devnet();
        let variants = [
            NetworkParams {
                name: "other".into(),
                ..base.clone()
            },
            NetworkParams {
                difficulty: 3,
                ..base.clone()
            },
            NetworkParams {
                reward: 51,
                ..base.clone()
            },
            NetworkParams {
                max_block_bytes: 1,
                ..base.clone()
            },
            NetworkParams {
                max_block_txs: 1,
                ..base.clone()
            },
        ];
        for v in variants {
            assert_ne!(v.genesis_hash(), base.genesis_hash());
        }
    }

    #[test]
    fn bad_parameters_are_refused() {
        assert_eq!(NetworkParams::new("", 1), Err(ParamsError::BadName));
        assert_eq!(
            NetworkParams::new("x", 65),
            Err(ParamsError::DifficultyTooHigh(65))
        );
    }

    #[test]
    fn devnet_genesis_matches_the_published_test_vector() {
        // proto-notes/encoding.md publishes this hash; a change here is a new network.
        assert_eq!(
            NetworkParams::devnet().genesis_hash().to_hex(),
            "6dd33e00c087a2abafb9cdba467a29050e6a4ba9d4c9418de163d697ceb1b149"
        );
    }
}
