//! Property tests of the whole chain: random valid chains validate, every single-field
//! mutation of a valid block is refused by the rule it breaks, and after any sequence of
//! competing branches delivered in any order the state is a replay of the main chain and the tip
//! is the valid block with the most work. Saved failing seeds live in
//! `proptest-regressions/ledger/chain/proptests.txt`.

use ed25519_dalek::SigningKey;
use proptest::prelude::*;

use super::fixtures::*;
use super::{Chain, Placement, MAX_FUTURE_DRIFT_MS};
use crate::ledger::block::{meets_difficulty, Block, BlockError};
use crate::ledger::hash::{self, Address, BlockHash, NetworkId};
use crate::ledger::params::NetworkParams;
use crate::ledger::state::State;
use crate::ledger::transaction::{Signature, Transaction, Transfer, TxError};

/// A valid transfer from one of `keys` that `state` can pay, if any can.
fn some_transfer(
    network: &NetworkId,
    state: &State,
    keys: &[SigningKey],
    pick: (usize, usize, u64, u64),
) -> Option<Transaction> {
    let (from, to, amount, fee) = pick;
    let sender = &keys[from % keys.len()];
    let account = state.account(&addr_of(sender));
    if account.balance < 2 {
        return None;
    }
    let amount = 1 + amount % (account.balance - 1);
    let fee = fee % (account.balance - amount + 1);
    Some(Transaction::sign_transfer(
        sender,
        network,
        addr_of(&keys[to % keys.len()]),
        amount,
        fee,
        account.nonce,
    ))
}

/// A block on `parent` (whose state is `state`) with up to `picks.len()` valid transfers.
fn block_with_transfers(
    p: &NetworkParams,
    parent: &Block,
    state: &State,
    keys: &[SigningKey],
    miner_index: usize,
    picks: &[(usize, usize, u64, u64)],
    gap: u64,
) -> Block {
    let mut sim = state.clone();
    let mut txs = Vec::new();
    let network = p.network_id();
    for pick in picks {
        if let Some(tx) = some_transfer(&network, &sim, keys, *pick) {
            if let Some(t) = tx.transfer() {
                sim.apply_transfer(t).unwrap();
            }
            txs.push(tx);
        }
    }
    child_at(
        p,
        parent,
        addr_of(&keys[miner_index % keys.len()]),
        txs,
        gap,
    )
}

fn test_keys() -> Vec<SigningKey> {
    (1..=4).map(key).collect()
}

type Pick = (usize, usize, u64, u64);

fn picks() -> impl Strategy<Value = Vec<Pick>> {
    prop::collection::vec((0usize..4, 0usize..4, any::<u64>(), any::<u64>()), 0..6)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    #[test]
    fn random_valid_chains_validate(specs in prop::collection::vec((0usize..4, picks()), 1..12)) {
        let p = params();
        let keys = test_keys();
        let mut chain = Chain::new(p.clone());
        let mut parent = p.genesis();
        let mut state = State::new();
        for (m, picks) in specs {
            let block = block_with_transfers(&p, &parent, &state, &keys, m, &picks, 1_000);
            state.apply_block(&block, p.reward).unwrap();
            let acc = chain.accept_block(block.clone(), NOW).unwrap();
            prop_assert_eq!(acc.placement, Placement::MainChain);
            prop_assert_eq!(chain.tip(), block.block_hash());
            parent = block;
        }
        prop_assert_eq!(chain.state(), &state);
        prop_assert_eq!(&replay(&chain), &state);
    }
}

/// Declares the mutation enum and the list of all its variants from one list of names.
macro_rules! mutations {
    ($($name:ident),* $(,)?) => {
        /// The single-field mutations of a valid block, each breaking one rule.
        #[derive(Debug, Clone, Copy)]
        enum Mutation { $($name),* }
        const ALL_MUTATIONS: &[Mutation] = &[$(Mutation::$name),*];
    };
}

mutations!(
    HeaderHeightOnly,
    Height,
    PrevHashUnknown,
    PrevHashGrandparent,
    TxRoot,
    TimestampOld,
    TimestampAhead,
    Difficulty,
    NonceBreaksPow,
    CoinbaseAmount,
    MissingCoinbase,
    ExtraCoinbase,
    TransferAmountUnsigned,
    TransferFeeUnsigned,
    TransferNonceUnsigned,
    TransferToUnsigned,
    TransferSignature,
    TransferNonceResigned,
    TransferAmountResigned,
    TransferFeeResigned,
    TransferZeroResigned,
    DuplicatedTransaction,
);

fn mutation() -> impl Strategy<Value = Mutation> {
    prop::sample::select(ALL_MUTATIONS)
}

/// Replaces transfer `i` of `block` by one built from its (edited) body, re-signed by
/// `signer` or keeping the old signature.
fn edit_transfer(
    block: &mut Block,
    i: usize,
    network: &NetworkId,
    signer: Option<&SigningKey>,
    edit: impl FnOnce(&mut Transfer),
) {
    let Transaction::Transfer { body, signature } = &block.transactions[i] else {
        unreachable!("fixture transfers are at 1..")
    };
    let mut body = body.clone();
    edit(&mut body);
    block.transactions[i] = match signer {
        Some(k) => Transaction::sign_transfer_with_memo(
            k,
            network,
            body.to,
            body.amount,
            body.fee,
            body.nonce,
            body.memo,
        ),
        None => Transaction::Transfer {
            body,
            signature: *signature,
        },
    };
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn each_single_field_mutation_is_rejected_by_its_rule(
        m in mutation(),
        which in any::<prop::sample::Index>(),
        ntx in 1usize..4,
        junk in any::<[u8; 32]>(),
    ) {
        use Mutation::*;
        let p = NetworkParams::for_tests("mutations", 4);
        let net = p.network_id();
        let alice = key(1);
        let mut chain = Chain::new(p.clone());
        let b1 = child(&p, &p.genesis(), addr_of(&alice), vec![]);
        chain.accept_block(b1.clone(), NOW).unwrap();
        let txs: Vec<Transaction> = (0..ntx as u64)
            .map(|n| Transaction::sign_transfer(&alice, &net, miner(2), 5 + n, 1 + n, n))
            .collect();
        let good = child(&p, &b1, miner(3), txs);
        let i = 1 + which.index(ntx);
        let nonce_i = (i - 1) as u64;
        let mut bad = good.clone();
        let mut remine = true;
        let expected: Result<Placement, BlockError> = match m {
            HeaderHeightOnly => {
                // The header's rules come before the body's: the height, not the coinbase.
                bad.header.height += 1;
                Err(BlockError::BadHeight { expected: 2, got: 3 })
            }
            Height => {
                bad.header.height += 1;
                set_coinbase(&mut bad, |cb| cb.height += 1);
                Err(BlockError::BadHeight { expected: 2, got: 3 })
            }
            PrevHashUnknown => {
                bad.header.prev_hash = BlockHash(junk);
                Ok(Placement::Orphan { missing: BlockHash(junk) })
            }
            PrevHashGrandparent => {
                bad.header.prev_hash = p.genesis_hash();
                Err(BlockError::BadHeight { expected: 1, got: 2 })
            }
            TxRoot => {
                bad.header.tx_root = hash::TxRoot(junk);
                remine = false;
                bad = mine(bad);
                Err(BlockError::BadTxRoot)
            }
            TimestampOld => {
                bad.header.timestamp = chain.median_time_past();
                Err(BlockError::TimestampTooOld {
                    median: chain.median_time_past(),
                    got: chain.median_time_past(),
                })
            }
            TimestampAhead => {
                bad.header.timestamp = NOW + MAX_FUTURE_DRIFT_MS + 1;
                Err(BlockError::TimestampTooFarAhead { now: NOW, got: NOW + MAX_FUTURE_DRIFT_MS + 1 })
            }
            Difficulty => {
                bad.header.difficulty += 1;
                Err(BlockError::WrongDifficulty { expected: 4, got: 5 })
            }
            NonceBreaksPow => {
                remine = false;
                while meets_difficulty(&bad.block_hash(), 4) {
                    bad.header.nonce = bad.header.nonce.wrapping_add(1);
                }
                Err(BlockError::BadProofOfWork)
            }
            CoinbaseAmount => {
                let paid = bad.transactions[0].amount();
                set_coinbase(&mut bad, |cb| cb.amount += 1);
                Err(BlockError::BadCoinbaseAmount { expected: paid, got: paid + 1 })
            }
            MissingCoinbase => {
                bad.transactions.remove(0);
                Err(BlockError::MissingCoinbase)
            }
            ExtraCoinbase => {
                bad.transactions.insert(i, Transaction::coinbase(2, miner(4), 1));
                Err(BlockError::ExtraCoinbase { index: i })
            }
            TransferAmountUnsigned => {
                edit_transfer(&mut bad, i, &net, None, |t| t.amount += 1);
                Err(BlockError::Transaction { index: 0, source: TxError::BadSignature })
            }
            TransferFeeUnsigned => {
                edit_transfer(&mut bad, i, &net, None, |t| t.fee += 1);
                Err(BlockError::Transaction { index: 0, source: TxError::BadSignature })
            }
            TransferNonceUnsigned => {
                edit_transfer(&mut bad, i, &net, None, |t| t.nonce += 1);
                Err(BlockError::Transaction { index: 0, source: TxError::BadSignature })
            }
            TransferToUnsigned => {
                edit_transfer(&mut bad, i, &net, None, |t| t.to = Address([0x80 | junk[0]; 20]));
                Err(BlockError::Transaction { index: 0, source: TxError::BadSignature })
            }
            TransferSignature => {
                if let Transaction::Transfer { signature, .. } = &mut bad.transactions[i] {
                    let Signature(bytes) = signature;
                    bytes[usize::from(junk[0]) % 32] ^= 1 | junk[1];
                }
                Err(BlockError::Transaction { index: 0, source: TxError::BadSignature })
            }
            TransferNonceResigned => {
                edit_transfer(&mut bad, i, &net, Some(&alice), |t| t.nonce += 100);
                Err(BlockError::Transaction {
                    index: i,
                    source: TxError::BadNonce { expected: nonce_i, got: nonce_i + 100 },
                })
            }
            TransferAmountResigned => {
                edit_transfer(&mut bad, i, &net, Some(&alice), |t| t.amount = 1_000);
                let spent: u64 = good.transactions[1..i].iter().map(|t| t.amount() + t.fee()).sum();
                let fee = good.transactions[i].fee();
                Err(BlockError::Transaction {
                    index: i,
                    source: TxError::InsufficientFunds { balance: 50 - spent, needed: 1_000 + fee },
                })
            }
            TransferFeeResigned => {
                let paid = bad.transactions[0].amount();
                edit_transfer(&mut bad, i, &net, Some(&alice), |t| t.fee += 1);
                Err(BlockError::BadCoinbaseAmount { expected: paid + 1, got: paid })
            }
            TransferZeroResigned => {
                edit_transfer(&mut bad, i, &net, Some(&alice), |t| t.amount = 0);
                Err(BlockError::Transaction { index: i, source: TxError::ZeroAmount })
            }
            DuplicatedTransaction => {
                let copy = bad.transactions[i].clone();
                bad.transactions.push(copy.clone());
                Err(BlockError::DuplicateTransaction(copy.compute_txid()))
            }
        };
        if remine {
            bad = mine(reroot(bad));
        }
        let tip = chain.tip();
        let state = chain.state().clone();
        let got = chain.accept_block(bad, NOW).map(|a| a.placement);
        prop_assert_eq!(got, expected);
        prop_assert_eq!(chain.tip(), tip);
        prop_assert_eq!(chain.state(), &state);
        // The unmutated block is still accepted afterwards.
        let acc = chain.accept_block(good.clone(), NOW).unwrap();
        prop_assert_eq!(acc.placement, Placement::MainChain);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn after_any_sequence_of_competing_branches_the_state_is_a_replay_of_the_main_chain(
        // Each block: its parent among those made before it, its miner, transfers, whether
        // its coinbase overpays (invalid, found only when connecting), and a timestamp gap.
        specs in prop::collection::vec(
            (any::<prop::sample::Index>(), 0usize..4, picks(), prop::bool::weighted(0.15), 1u64..3_000),
            1..28,
        ),
        order in any::<u64>(),
    ) {
        let p = params();
        let keys = test_keys();
        // The universe: every block with its state after it and whether it is valid.
        let mut blocks: Vec<Block> = vec![p.genesis()];
        let mut states: Vec<State> = vec![State::new()];
        let mut valid: Vec<bool> = vec![true];
        let mut work: Vec<u128> = vec![1];
        for (parent, m, picks, overpay, gap) in &specs {
            let pi = parent.index(blocks.len());
            let mut block = block_with_transfers(&p, &blocks[pi], &states[pi], &keys, *m, picks, *gap);
            let mut state = states[pi].clone();
            state.apply_block(&block, p.reward).unwrap();
            if *overpay {
                set_coinbase(&mut block, |cb| cb.amount += 1);
                block = mine(reroot(block));
            }
            blocks.push(block);
            states.push(state);
            valid.push(valid[pi] && !*overpay);
            work.push(work[pi] + 1);
        }
        // Deliver in an order that keeps most parents first but sometimes not.
        let mut delivery: Vec<usize> = (1..blocks.len()).collect();
        let mut r = order;
        for k in (1..delivery.len()).rev() {
            r = r.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            if r >> 62 == 0 {
                delivery.swap(k, (r >> 33) as usize % (k + 1));
            }
        }
        let mut chain = Chain::new(p.clone());
        let mut mirror: Vec<BlockHash> = vec![p.genesis_hash()];
        for &k in &delivery {
            let before_tip = chain.tip();
            match chain.accept_block(blocks[k].clone(), NOW) {
                Ok(acc) => {
                    if let Some(change) = acc.tip_change {
                        prop_assert_eq!(change.old_tip, before_tip);
                        for d in &change.disconnected {
                            prop_assert_eq!(mirror.pop(), Some(d.block_hash()));
                        }
                        prop_assert_eq!(mirror.len() as u64, change.fork_height + 1);
                        mirror.extend(change.connected.iter().map(|b| b.block_hash()));
                        prop_assert_eq!(*mirror.last().unwrap(), change.new_tip);
                    }
                }
                Err(_) => prop_assert_eq!(chain.tip(), before_tip),
            }
            prop_assert_eq!(&mirror, &chain.main.hashes().to_vec());
            prop_assert_eq!(chain.state(), &replay(&chain));
            let tip_work = chain.total_work();
            prop_assert!(chain.side.values().all(|e| e.work <= tip_work));
        }
        // Everything has arrived: the tip is a valid block with the most work of all.
        let best = (0..blocks.len()).filter(|&i| valid[i]).map(|i| work[i]).max().unwrap();
        prop_assert_eq!(chain.total_work(), best);
        let tip_index = blocks.iter().position(|b| b.block_hash() == chain.tip()).unwrap();
        prop_assert!(valid[tip_index]);
        prop_assert_eq!(chain.state(), &states[tip_index]);
        prop_assert_eq!(chain.orphan_count(), 0);
    }
}
