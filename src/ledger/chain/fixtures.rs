//! Test fixtures shared by the chain's unit tests: a test network, keys, and mined blocks
//! built on a parent.

use std::sync::Arc;

use ed25519_dalek::SigningKey;

use super::{Accepted, Chain};
use crate::ledger::block::{compute_tx_root, meets_difficulty, Block, BlockHeader};
use crate::ledger::hash::{Address, BlockHash};
use crate::ledger::params::{NetworkParams, GENESIS_TIMESTAMP_MS};
use crate::ledger::state::State;
use crate::ledger::transaction::{Coinbase, PublicKey, Transaction};

/// A local clock far after every fixture timestamp.
pub(crate) const NOW: u64 = GENESIS_TIMESTAMP_MS + 1_000_000_000;

/// The test network: difficulty 0, so every hash is valid proof of work.
pub(crate) fn params() -> NetworkParams {
    NetworkParams::for_tests("chain-tests", 0)
}

/// A deterministic signing key.
pub(crate) fn key(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32])
}

/// The address a key's owner is paid at.
pub(crate) fn addr_of(key: &SigningKey) -> Address {
    PublicKey(key.verifying_key().to_bytes()).address()
}

/// An address nobody holds a key for, to tell miners apart.
pub(crate) fn miner(n: u8) -> Address {
    Address([n; 20])
}

/// Searches nonces until the header meets its own difficulty (a naive loop: test fixtures
/// use difficulty 0 or a few bits).
pub(crate) fn mine(mut block: Block) -> Block {
    while !meets_difficulty(&block.block_hash(), block.header.difficulty) {
        block.header.nonce += 1;
    }
    block
}

/// Recomputes the transaction root after the transactions were edited.
pub(crate) fn reroot(mut block: Block) -> Block {
    block.header.tx_root = compute_tx_root(&block.txids());
    block
}

/// A mined child of `parent` paying `to` the reward plus fees, `gap` ms after the parent.
pub(crate) fn child_at(
    params: &NetworkParams,
    parent: &Block,
    to: Address,
    txs: Vec<Transaction>,
    gap: u64,
) -> Block {
    let height = parent.header.height + 1;
    let fees: u64 = txs.iter().map(Transaction::fee).sum();
    let mut transactions = vec![Transaction::coinbase(height, to, params.reward + fees)];
    transactions.extend(txs);
    mine(reroot(Block {
        header: BlockHeader {
            height,
            prev_hash: parent.block_hash(),
            tx_root: Default::default(),
            timestamp: parent.header.timestamp + gap,
            difficulty: params.difficulty,
            nonce: 0,
        },
        transactions,
    }))
}

/// A mined child of `parent`, one second after it.
pub(crate) fn child(
    params: &NetworkParams,
    parent: &Block,
    to: Address,
    txs: Vec<Transaction>,
) -> Block {
    child_at(params, parent, to, txs, 1_000)
}

/// `n` empty blocks on `parent`, each paying `to`.
pub(crate) fn branch(params: &NetworkParams, parent: &Block, to: Address, n: usize) -> Vec<Block> {
    let mut out: Vec<Block> = Vec::with_capacity(n);
    for _ in 0..n {
        let p = out.last().unwrap_or(parent);
        out.push(child(params, p, to, vec![]));
    }
    out
}

/// Offers a block that must not fail.
pub(crate) fn accept(chain: &mut Chain, block: &Block) -> Accepted {
    chain.accept_block(block.clone(), NOW).unwrap()
}

/// The state a replay of the main chain from genesis gives.
pub(crate) fn replay(chain: &Chain) -> State {
    let mut state = State::new();
    for b in chain.main_chain().skip(1) {
        state.apply_block(&b, chain.params().reward).unwrap();
    }
    state
}

/// The hashes of shared blocks, in order.
pub(crate) fn hashes(blocks: &[Arc<Block>]) -> Vec<BlockHash> {
    blocks.iter().map(|b| b.block_hash()).collect()
}

/// The hashes of blocks, in order.
pub(crate) fn hashes_of(blocks: &[Block]) -> Vec<BlockHash> {
    blocks.iter().map(Block::block_hash).collect()
}

/// Edits the coinbase of `block` in place (the caller re-roots and re-mines).
pub(crate) fn set_coinbase(block: &mut Block, f: impl FnOnce(&mut Coinbase)) {
    if let Some(Transaction::Coinbase(cb)) = block.transactions.first_mut() {
        f(cb);
    }
}
