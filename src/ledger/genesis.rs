//! The genesis block: the network's first block, built deterministically from its parameters.
//!
//! Rule kept: every consensus parameter is committed into the genesis block (its coinbase pays
//! zero coins to a digest of the parameters), so two nodes agree on a network exactly when their
//! genesis hashes agree; the genesis hash is the network's identity on the wire and in the
//! store. The methods live here, as an `impl` on [`NetworkParams`], so that `params` stays
//! numbers only and `params` and `block` never import each other.

use super::block::{compute_tx_root, Block, BlockHeader};
use super::encode::encode;
use super::hash::{sha256, Address, BlockHash, NetworkId};
use super::params::{NetworkParams, GENESIS_TIMESTAMP_MS};
use super::transaction::Transaction;

impl NetworkParams {
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

    /// The identity transfer signatures on this network commit to: its genesis hash.
    pub fn network_id(&self) -> NetworkId {
        NetworkId(self.genesis_hash())
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
    fn devnet_genesis_matches_the_published_test_vector() {
        // proto-notes/encoding.md publishes this hash; a change here is a new network.
        assert_eq!(
            NetworkParams::devnet().genesis_hash().to_hex(),
            "6dd33e00c087a2abafb9cdba467a29050e6a4ba9d4c9418de163d697ceb1b149"
        );
    }
}
