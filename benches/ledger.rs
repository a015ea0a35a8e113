//! Ledger benchmarks: validating a full block, connecting many blocks, and reorganising.
//!
//! Run: `cargo bench --bench ledger` (one group: `cargo bench --bench ledger -- reorg`).
//!
//! - `validate/block_of_1000_transfers`: `check_structure` (sizes, PoW, tx root, duplicates,
//!   one ed25519 batch over 1,000 signatures from 1,000 distinct senders) plus applying the block
//!   to the state. Target < 20 ms on one core.
//! - `connect_blocks_of_10_transfers/{1000,10000}`: `accept_block` of N fresh blocks in a row
//!   (full validation, signatures included) onto a restored chain. Must grow linearly.
//! - `reorg/depth/{1,10,100}`: offering the block that makes a side branch of depth + 1 blocks
//!   beat a main branch of depth blocks: validating that block, undoing depth blocks and
//!   connecting depth + 1. Must grow linearly in depth.
//!
//! Figures on a quiet machine (2026-11-21 11:32, release, `cargo bench --bench ledger`):
//! validate/block_of_1000_transfers 16.6 ms; connect 1,000 blocks 0.234 s, 10,000 blocks 2.35 s;
//! reorg depth 1 / 10 / 100: 0.24 / 0.29 / 0.72 ms.
//!
//! Earlier figures measured on the shared 2-core development machine (load average 6-9 from
//! other builds, so expect noise of +-30 %), release profile:
//! - validate/block_of_1000_transfers: 18.1 ms in a quiet moment, 21-29 ms under heavy load;
//!   the profile is ~40 % point decompression and ~36 % Pippenger multiscalar multiplication,
//!   both inside `ed25519_dalek::verify_batch` (AVX2 backend).
//! - connect 1,000 blocks: 0.58 s; 10,000 blocks: 4.9 s (about 0.5 ms per block, linear; almost
//!   all of it is the per-block signature batch of 10).
//! - reorg depth 1: 0.25 ms, depth 10: 0.38 ms, depth 100: 1.0 ms: a constant 0.24 ms for
//!   validating the offered block, plus about 7.6 us per block of depth (undo + apply of
//!   10 transfers), linear.

use std::collections::HashMap;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion};
use ed25519_dalek::SigningKey;
use gossipchain::ledger::block::meets_difficulty;
use gossipchain::ledger::params::GENESIS_TIMESTAMP_MS;
use gossipchain::ledger::{Address, Block, Chain, NetworkParams, PublicKey, Transaction};

/// Accounts that take turns sending the transfers of the connect and reorg benchmarks.
const SENDERS: usize = 20;

/// Accounts sending the full block's transfers: one each, so no key is decompressed twice.
const FULL_BLOCK: usize = 1_000;

/// A clock after every fixture timestamp.
const NOW: u64 = GENESIS_TIMESTAMP_MS + 1_000_000_000_000;

fn params() -> NetworkParams {
    NetworkParams {
        reward: 1_000_000_000_000,
        ..NetworkParams::for_tests("bench", 0)
    }
}

fn key(seed: u16) -> SigningKey {
    let mut bytes = [7u8; 32];
    bytes[..2].copy_from_slice(&seed.to_le_bytes());
    SigningKey::from_bytes(&bytes)
}

fn address(key: &SigningKey) -> Address {
    PublicKey(key.verifying_key().to_bytes()).address()
}

fn mine(mut block: Block) -> Block {
    while !meets_difficulty(&block.block_hash(), block.header.difficulty) {
        block.header.nonce += 1;
    }
    block
}

/// Extends `chain` by one block of `txs` paying `miner`, and returns the block.
fn extend(chain: &mut Chain, miner: Address, txs: Vec<Transaction>) -> Block {
    let now = GENESIS_TIMESTAMP_MS + (chain.height() + 1) * 1_000;
    let block = mine(chain.block_template(miner, txs, now));
    chain
        .accept_block(block.clone(), NOW)
        .expect("fixture blocks are valid");
    block
}

/// Two blocks that fund `n` accounts: the first pays the funder, the second spreads it.
fn funding(n: usize) -> (Vec<SigningKey>, Vec<Block>) {
    let p = params();
    let funder = key(u16::MAX);
    let senders: Vec<SigningKey> = (0..n as u16).map(key).collect();
    let mut chain = Chain::new(p.clone());
    let b1 = extend(&mut chain, address(&funder), vec![]);
    let share = p.reward / (n as u64 + 1);
    let txs = senders
        .iter()
        .enumerate()
        .map(|(n, k)| {
            Transaction::sign_transfer(&funder, &p.network_id(), address(k), share, 0, n as u64)
        })
        .collect();
    let b2 = extend(&mut chain, address(&funder), txs);
    (senders, vec![b1, b2])
}

/// `n` blocks of `per_block` transfers on top of `base`, paying `miner`; the senders take turns.
fn blocks_on(
    base: &[Block],
    senders: &[SigningKey],
    n: usize,
    per_block: usize,
    miner: Address,
) -> Vec<Block> {
    let mut chain = Chain::from_main_chain(params(), base.to_vec()).expect("base connects");
    let network = params().network_id();
    let mut nonces: HashMap<usize, u64> = HashMap::new();
    let mut turn = 0usize;
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let txs = (0..per_block)
            .map(|_| {
                let s = turn % senders.len();
                turn += 1;
                let nonce = nonces.entry(s).or_insert(0);
                let tx = Transaction::sign_transfer(&senders[s], &network, miner, 1, 1, *nonce);
                *nonce += 1;
                tx
            })
            .collect();
        out.push(extend(&mut chain, miner, txs));
    }
    out
}

fn chain_with(base: &[Block], blocks: &[Block]) -> Chain {
    let mut chain = Chain::from_main_chain(params(), base.to_vec()).expect("base connects");
    for b in blocks {
        chain.accept_block(b.clone(), NOW).expect("valid");
    }
    chain
}

fn validate_full_block(c: &mut Criterion) {
    let p = params();
    // Fixtures are built on first use, so a filtered-out benchmark costs nothing.
    let mut fixture = None;
    let mut group = c.benchmark_group("validate");
    group.sample_size(10);
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(3));
    group.bench_function("block_of_1000_transfers", |b| {
        let (block, state) = fixture.get_or_insert_with(|| {
            let (senders, base) = funding(FULL_BLOCK);
            let block = blocks_on(&base, &senders, 1, FULL_BLOCK, Address([9; 20])).remove(0);
            let chain = Chain::from_main_chain(params(), base).expect("base connects");
            (block, chain.state().clone())
        });
        let block = &*block;
        b.iter_batched(
            || state.clone(),
            |mut s| {
                block.check_structure(&p).expect("valid");
                s.apply_block(block, p.reward).expect("valid");
                s
            },
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

fn connect_blocks(c: &mut Criterion) {
    let mut fixture = None;
    let mut group = c.benchmark_group("connect_blocks_of_10_transfers");
    group.sample_size(10);
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(5));
    for n in [1_000usize, 10_000] {
        group.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, &n| {
            let (base, all) = fixture.get_or_insert_with(|| {
                let (senders, base) = funding(SENDERS);
                let all = blocks_on(&base, &senders, 10_000, 10, Address([9; 20]));
                (base, all)
            });
            let (base, all) = (&*base, &*all);
            b.iter_batched(
                || {
                    let chain = Chain::from_main_chain(params(), base.to_vec()).expect("base");
                    (chain, all[..n].to_vec())
                },
                |(mut chain, blocks)| {
                    for block in blocks {
                        chain.accept_block(block, NOW).expect("valid");
                    }
                    chain
                },
                BatchSize::PerIteration,
            )
        });
    }
    group.finish();
}

fn reorg(c: &mut Criterion) {
    let mut group = c.benchmark_group("reorg");
    group.sample_size(10);
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(3));
    for depth in [1usize, 10, 100] {
        let mut fixture = None;
        group.bench_with_input(BenchmarkId::new("depth", depth), &depth, |b, &depth| {
            let (base, ours, theirs) = fixture.get_or_insert_with(|| {
                let (senders, base) = funding(SENDERS);
                let ours = blocks_on(&base, &senders, depth, 10, Address([1; 20]));
                let theirs = blocks_on(&base, &senders, depth + 1, 10, Address([2; 20]));
                (base, ours, theirs)
            });
            let (base, ours, theirs) = (&*base, &*ours, &*theirs);
            b.iter_batched(
                || {
                    let mut chain = chain_with(base, ours);
                    for blk in &theirs[..depth] {
                        chain.accept_block(blk.clone(), NOW).expect("side branch");
                    }
                    (chain, theirs[depth].clone())
                },
                |(mut chain, last)| {
                    let acc = chain.accept_block(last, NOW).expect("valid");
                    assert_eq!(acc.tip_change.map(|t| t.depth()), Some(depth));
                    chain
                },
                BatchSize::PerIteration,
            )
        });
    }
    group.finish();
}

criterion_group!(benches, validate_full_block, connect_blocks, reorg);
criterion_main!(benches);
