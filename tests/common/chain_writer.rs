//! Writes chains straight into a stopped node's data directory, through the ledger's
//! validation and the store's commits, so that a test finds what a node would have stored
//! itself; building the same chain through a console would take minutes.

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use ed25519_dalek::SigningKey;
use gossipchain::ledger::block::meets_difficulty;
use gossipchain::ledger::params::GENESIS_TIMESTAMP_MS;
use gossipchain::ledger::{Block, NetworkParams, PublicKey, Store, Transaction};

/// Blocks built in memory before the store commits them in one transaction.
const BUILD_BATCH: usize = 500;

/// Appends `blocks` blocks to the main chain stored in `dir` (a stopped node's data directory on
/// `network` at `difficulty`, opened or created), all mined by the account whose key is 32
/// bytes of `key_byte`, so that two calls on copies of one store with different keys grow two
/// branches of one fork. The first block appended carries no transfer; every later one carries
/// `per_block` signed transfers of 1 coin from that account to itself (fee 0, so that a block of
/// 1,000 transfers never outspends the 50-coin reward; signatures, nonces and balances are
/// checked all the same). Block `h` is stamped `h` seconds after genesis, so the same call on
/// two stores holding the same chain writes the same blocks. Returns the number of transfers
/// written.
pub fn extend_chain(
    dir: &Path,
    network: &str,
    difficulty: u32,
    blocks: u64,
    per_block: u64,
    key_byte: u8,
) -> u64 {
    let params = NetworkParams::new(network, difficulty).expect("test network parameters");
    let store = Store::open(dir, &params).expect("test store opens");
    let network_id = params.network_id();
    let key = SigningKey::from_bytes(&[key_byte; 32]);
    let miner = PublicKey(key.verifying_key().to_bytes()).address();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .expect("clock after 1970");
    // The builder proposes blocks; the stored chain takes them in batches, one commit each.
    let mut builder = store.load_chain().expect("test chain loads");
    let mut stored = store.load_chain().expect("test chain loads");
    let mut nonce = builder.state().next_nonce(&miner);
    let mut transfers = 0;
    let mut pending = Vec::with_capacity(BUILD_BATCH);
    for i in 0..blocks {
        let count = if i == 0 { 0 } else { per_block };
        let txs: Vec<Transaction> = (0..count)
            .map(|_| {
                nonce += 1;
                Transaction::sign_transfer(&key, &network_id, miner, 1, 0, nonce - 1)
            })
            .collect();
        transfers += count;
        let height = builder.height() + 1;
        let mut block: Block =
            builder.block_template(miner, txs, GENESIS_TIMESTAMP_MS + height * 1_000);
        while !meets_difficulty(&block.block_hash(), block.header.difficulty) {
            block.header.nonce += 1;
        }
        builder
            .accept_block(block.clone(), now)
            .expect("test blocks are valid");
        pending.push(block);
        if pending.len() == BUILD_BATCH || i + 1 == blocks {
            let batch = stored.accept_blocks(std::mem::take(&mut pending), now);
            assert!(batch.refused.is_none(), "{:?}", batch.refused);
            store.commit(&batch.accepted).expect("test store commits");
        }
    }
    transfers
}
