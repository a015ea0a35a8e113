//! Account balances and nonces: the state that the main chain's blocks, replayed from genesis,
//! produce.
//!
//! Applying a block is all or nothing, and undoing a block is the exact inverse of applying it,
//! so the chain can walk back to a fork point without keeping undo records; the store keeps
//! undo records anyway ([`State::undo_data`]), so it can disconnect blocks it no longer holds. Accounts that return
//! to zero balance and zero nonce are dropped, so equal histories give equal states.

use crate::ledger::digest_map::DigestMap;

use super::block::{Block, BlockError};
use super::hash::Address;
use super::transaction::{Transaction, Transfer};

/// Re-exported because [`State::check_transfer`] reports it; it is defined beside transactions.
use super::transaction::TxError;

/// One address's balance and the count of transfers it has sent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Account {
    /// Spendable coins.
    pub balance: u64,
    /// Transfers sent so far, which is the nonce the next one must carry.
    pub nonce: u64,
}

/// A sender's transfers that are not in the state yet but that a new transfer must follow
/// (the mempool's pending ones): how many there are and what they spend in all.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pending {
    /// Number of pending transfers: the new one's nonce comes after theirs.
    pub count: u64,
    /// Their amounts plus fees: not available to the new one.
    pub spent: u64,
}

impl Pending {
    /// Nothing pending: the transfer is checked against the state alone.
    pub const NONE: Self = Self { count: 0, spent: 0 };
}

/// Balances and nonces of every address with a non-zero account.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct State {
    accounts: DigestMap<Address, Account>,
}

impl State {
    /// The empty state, before genesis.
    pub fn new() -> Self {
        Self::default()
    }

    /// The account at `address` (zero if it has never been used).
    pub fn account(&self, address: &Address) -> Account {
        self.accounts.get(address).copied().unwrap_or_default()
    }

    /// Spendable coins at `address`.
    pub fn balance(&self, address: &Address) -> u64 {
        self.account(address).balance
    }

    /// The nonce the next transfer from `address` must carry.
    pub fn next_nonce(&self, address: &Address) -> u64 {
        self.account(address).nonce
    }

    /// Every non-zero account, for inspection and comparison.
    pub fn accounts(&self) -> impl Iterator<Item = (&Address, &Account)> {
        self.accounts.iter()
    }

    /// Number of non-zero accounts.
    pub fn len(&self) -> usize {
        self.accounts.len()
    }

    /// True before any coins exist.
    pub fn is_empty(&self) -> bool {
        self.accounts.is_empty()
    }

    /// Checks a transfer's nonce and funds against this state (signatures are checked
    /// elsewhere, once per transaction).
    ///
    /// # Errors
    /// The [`TxError`] of the rule broken.
    pub fn check_transfer(&self, t: &Transfer) -> Result<(), TxError> {
        self.check_transfer_after(t, Pending::NONE).map(|_| ())
    }

    /// Checks a transfer that follows its sender's `pending` ones, and returns what it costs the
    /// sender (amount plus fee). This is the one place the transfer rules are written: blocks
    /// apply transfers through it with nothing pending, the mempool admits them through it.
    ///
    /// The rules, in order: the transfer's own form ([`Transfer::check_form`]: a memo of at most
    /// [`MAX_MEMO_BYTES`](super::transaction::MAX_MEMO_BYTES) bytes of UTF-8, a positive amount
    /// unless the memo is non-empty); amount plus fee fits in 64 bits; the nonce is the
    /// sender's next one counting the pending transfers; the sender's balance less what the
    /// pending transfers spend covers amount plus fee; the receiver's balance (if it is not
    /// the sender) can take the amount.
    ///
    /// # Errors
    /// The [`TxError`] of the first rule broken.
    pub fn check_transfer_after(&self, t: &Transfer, pending: Pending) -> Result<u64, TxError> {
        t.check_form()?;
        let needed = t.amount.checked_add(t.fee).ok_or(TxError::Overflow)?;
        let from = t.from.address();
        let sender = self.account(&from);
        let nonce = sender.nonce.saturating_add(pending.count);
        if t.nonce != nonce {
            return Err(TxError::BadNonce {
                expected: nonce,
                got: t.nonce,
            });
        }
        let balance = sender.balance.saturating_sub(pending.spent);
        if balance < needed {
            return Err(TxError::InsufficientFunds { balance, needed });
        }
        // Crediting can only overflow if the receiver is not the sender.
        if t.to != from && self.balance(&t.to).checked_add(t.amount).is_none() {
            return Err(TxError::Overflow);
        }
        Ok(needed)
    }

    /// Applies one transfer after checking it.
    ///
    /// # Errors
    /// The [`TxError`] of the rule broken; the state is then unchanged.
    pub fn apply_transfer(&mut self, t: &Transfer) -> Result<(), TxError> {
        self.check_transfer(t)?;
        let from = t.from.address();
        self.update(from, |a| {
            a.balance -= t.amount + t.fee;
            a.nonce += 1;
        });
        self.update(t.to, |a| a.balance += t.amount);
        Ok(())
    }

    fn undo_transfer(&mut self, t: &Transfer) {
        self.update(t.to, |a| a.balance -= t.amount);
        self.update(t.from.address(), |a| {
            a.balance += t.amount + t.fee;
            a.nonce -= 1;
        });
    }

    fn update(&mut self, address: Address, f: impl FnOnce(&mut Account)) {
        let entry = self.accounts.entry(address).or_default();
        f(entry);
        if *entry == Account::default() {
            self.accounts.remove(&address);
        }
    }

    /// Applies a structurally checked block: the coinbase must pay exactly `reward` plus the
    /// block's fees, then every transfer must have the sender's next nonce and enough funds.
    ///
    /// # Errors
    /// The [`BlockError`] of the first rule broken; the state is then unchanged.
    pub fn apply_block(&mut self, block: &Block, reward: u64) -> Result<(), BlockError> {
        let fees = block.total_fees().ok_or(BlockError::Transaction {
            index: 0,
            source: TxError::Overflow,
        })?;
        let expected = reward.checked_add(fees).ok_or(BlockError::Transaction {
            index: 0,
            source: TxError::Overflow,
        })?;
        let Some(Transaction::Coinbase(cb)) = block.transactions.first() else {
            return Err(BlockError::MissingCoinbase);
        };
        if cb.amount != expected {
            return Err(BlockError::BadCoinbaseAmount {
                expected,
                got: cb.amount,
            });
        }
        if self.balance(&cb.to).checked_add(cb.amount).is_none() {
            return Err(BlockError::Transaction {
                index: 0,
                source: TxError::Overflow,
            });
        }
        self.update(cb.to, |a| a.balance += cb.amount);
        for (i, tx) in block.transactions.iter().enumerate().skip(1) {
            let result = match tx.transfer() {
                Some(t) => self.apply_transfer(t),
                None => Err(TxError::UnexpectedCoinbase),
            };
            if let Err(source) = result {
                for done in block.transactions[1..i].iter().rev() {
                    if let Some(t) = done.transfer() {
                        self.undo_transfer(t);
                    }
                }
                self.update(cb.to, |a| a.balance -= cb.amount);
                return Err(BlockError::Transaction { index: i, source });
            }
        }
        Ok(())
    }

    /// A state holding exactly these accounts (zero accounts are left out), as the store
    /// reads it back.
    pub fn from_accounts(accounts: impl IntoIterator<Item = (Address, Account)>) -> Self {
        Self {
            accounts: accounts
                .into_iter()
                .filter(|(_, a)| *a != Account::default())
                .collect(),
        }
    }

    /// The accounts a block touches before it is applied: its undo data, from which
    /// [`State::restore`] disconnects it without the block itself.
    pub fn undo_data(&self, block: &Block) -> Vec<(Address, Account)> {
        touched_addresses(block)
            .into_iter()
            .map(|a| (a, self.account(&a)))
            .collect()
    }

    /// Puts back accounts as [`State::undo_data`] recorded them.
    pub fn restore(&mut self, undo: &[(Address, Account)]) {
        for (address, account) in undo {
            self.update(*address, |a| *a = *account);
        }
    }

    /// Reverses [`State::apply_block`] for a block that was applied to this state last.
    pub fn undo_block(&mut self, block: &Block) {
        for tx in block.transactions.iter().rev() {
            match tx {
                Transaction::Transfer { body, .. } => self.undo_transfer(body),
                Transaction::Coinbase(cb) => self.update(cb.to, |a| a.balance -= cb.amount),
            }
        }
    }
}

/// Every address a block's transactions credit or debit, each once, in order of first use.
pub fn touched_addresses(block: &Block) -> Vec<Address> {
    let mut out: Vec<Address> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    let mut push = |a: Address| {
        if seen.insert(a) {
            out.push(a);
        }
    };
    for tx in &block.transactions {
        match tx {
            Transaction::Coinbase(cb) => push(cb.to),
            Transaction::Transfer { body, .. } => {
                push(body.from.address());
                push(body.to);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::block::{compute_tx_root, BlockHeader};
    use crate::ledger::hash::{BlockHash, TxRoot};
    use ed25519_dalek::SigningKey;

    /// Any network: the state does not check signatures.
    fn net() -> crate::ledger::hash::NetworkId {
        crate::ledger::hash::NetworkId(BlockHash([9; 32]))
    }

    fn block(txs: Vec<Transaction>) -> Block {
        let ids: Vec<_> = txs.iter().map(Transaction::compute_txid).collect();
        Block {
            header: BlockHeader {
                height: 1,
                prev_hash: BlockHash::ZERO,
                tx_root: if ids.is_empty() {
                    TxRoot::ZERO
                } else {
                    compute_tx_root(&ids)
                },
                timestamp: 0,
                difficulty: 0,
                nonce: 0,
            },
            transactions: txs,
        }
    }

    #[test]
    fn apply_then_undo_returns_the_same_state() {
        let alice = SigningKey::from_bytes(&[1; 32]);
        let alice_addr =
            crate::ledger::transaction::PublicKey(alice.verifying_key().to_bytes()).address();
        let bob = Address([2; 20]);
        let mut s = State::new();
        s.apply_block(&block(vec![Transaction::coinbase(1, alice_addr, 50)]), 50)
            .unwrap();
        let before = s.clone();
        let b = block(vec![
            Transaction::coinbase(2, bob, 52),
            Transaction::sign_transfer(&alice, &net(), bob, 10, 2, 0),
            Transaction::sign_transfer(&alice, &net(), bob, 5, 0, 1),
        ]);
        s.apply_block(&b, 50).unwrap();
        assert_eq!(s.balance(&alice_addr), 33);
        assert_eq!(s.balance(&bob), 52 + 15);
        assert_eq!(s.next_nonce(&alice_addr), 2);
        s.undo_block(&b);
        assert_eq!(s, before);

        // The undo data names each touched address once with its account before the block,
        // and restoring it undoes the block without the block.
        let undo = before.undo_data(&b);
        assert_eq!(
            undo,
            vec![
                (bob, Account::default()),
                (alice_addr, before.account(&alice_addr))
            ]
        );
        s.apply_block(&b, 50).unwrap();
        s.restore(&undo);
        assert_eq!(s, before);
        assert_eq!(
            State::from_accounts(before.accounts().map(|(a, x)| (*a, *x))),
            before
        );
    }

    #[test]
    fn a_failing_block_leaves_the_state_unchanged() {
        let alice = SigningKey::from_bytes(&[1; 32]);
        let alice_addr =
            crate::ledger::transaction::PublicKey(alice.verifying_key().to_bytes()).address();
        let mut s = State::new();
        s.apply_block(&block(vec![Transaction::coinbase(1, alice_addr, 50)]), 50)
            .unwrap();
        let before = s.clone();
        let b = block(vec![
            Transaction::coinbase(2, alice_addr, 50),
            Transaction::sign_transfer(&alice, &net(), Address([2; 20]), 60, 0, 0),
            Transaction::sign_transfer(&alice, &net(), Address([2; 20]), 500, 0, 1),
        ]);
        assert_eq!(
            s.apply_block(&b, 50),
            Err(BlockError::Transaction {
                index: 2,
                source: TxError::InsufficientFunds {
                    balance: 40,
                    needed: 500
                }
            })
        );
        assert_eq!(s, before);
    }

    #[test]
    fn wrong_coinbase_amount_and_bad_nonce_are_named() {
        let alice = SigningKey::from_bytes(&[1; 32]);
        let alice_addr =
            crate::ledger::transaction::PublicKey(alice.verifying_key().to_bytes()).address();
        let mut s = State::new();
        assert_eq!(
            s.apply_block(&block(vec![Transaction::coinbase(1, alice_addr, 51)]), 50),
            Err(BlockError::BadCoinbaseAmount {
                expected: 50,
                got: 51
            })
        );
        s.apply_block(&block(vec![Transaction::coinbase(1, alice_addr, 50)]), 50)
            .unwrap();
        let b = block(vec![
            Transaction::coinbase(2, alice_addr, 50),
            Transaction::sign_transfer(&alice, &net(), Address([2; 20]), 1, 0, 5),
        ]);
        assert_eq!(
            s.apply_block(&b, 50),
            Err(BlockError::Transaction {
                index: 1,
                source: TxError::BadNonce {
                    expected: 0,
                    got: 5
                }
            })
        );
    }

    #[test]
    fn a_transfer_after_pending_ones_needs_the_next_nonce_and_the_funds_they_leave() {
        let alice = SigningKey::from_bytes(&[1; 32]);
        let alice_addr =
            crate::ledger::transaction::PublicKey(alice.verifying_key().to_bytes()).address();
        let mut s = State::new();
        s.apply_block(&block(vec![Transaction::coinbase(1, alice_addr, 50)]), 50)
            .unwrap();
        let pay = |amount, nonce| {
            Transaction::sign_transfer(&alice, &net(), Address([2; 20]), amount, 1, nonce)
                .transfer()
                .cloned()
                .unwrap()
        };
        let pending = Pending {
            count: 2,
            spent: 30,
        };
        assert_eq!(s.check_transfer_after(&pay(19, 2), pending), Ok(20));
        assert_eq!(
            s.check_transfer_after(&pay(20, 2), pending),
            Err(TxError::InsufficientFunds {
                balance: 20,
                needed: 21
            })
        );
        assert_eq!(
            s.check_transfer_after(&pay(1, 0), pending),
            Err(TxError::BadNonce {
                expected: 2,
                got: 0
            })
        );
        // With nothing pending it is the block rule itself.
        assert_eq!(s.check_transfer_after(&pay(1, 0), Pending::NONE), Ok(2));
        assert_eq!(s.check_transfer(&pay(1, 0)), Ok(()));
        assert_eq!(
            s.check_transfer(&pay(0, 0)),
            Err(TxError::ZeroAmount),
            "a zero amount without a memo is refused before nonce and funds"
        );
    }

    #[test]
    fn a_zero_amount_post_pays_its_fee_advances_the_nonce_and_undoes_exactly() {
        let alice = SigningKey::from_bytes(&[1; 32]);
        let alice_addr =
            crate::ledger::transaction::PublicKey(alice.verifying_key().to_bytes()).address();
        let mut s = State::new();
        s.apply_block(&block(vec![Transaction::coinbase(1, alice_addr, 50)]), 50)
            .unwrap();
        let before = s.clone();
        let post = Transaction::sign_transfer_with_memo(
            &alice,
            &net(),
            alice_addr,
            0,
            2,
            0,
            br#"{"author":"ada","content":"hi"}"#.to_vec(),
        );
        let b = block(vec![Transaction::coinbase(2, Address([3; 20]), 52), post]);
        s.apply_block(&b, 50).unwrap();
        assert_eq!(s.balance(&alice_addr), 48);
        assert_eq!(s.next_nonce(&alice_addr), 1);
        s.undo_block(&b);
        assert_eq!(s, before);
    }

    #[test]
    fn a_block_with_a_bad_memo_is_refused_by_the_memo_rule_and_leaves_the_state_unchanged() {
        let alice = SigningKey::from_bytes(&[1; 32]);
        let alice_addr =
            crate::ledger::transaction::PublicKey(alice.verifying_key().to_bytes()).address();
        let mut s = State::new();
        s.apply_block(&block(vec![Transaction::coinbase(1, alice_addr, 50)]), 50)
            .unwrap();
        let before = s.clone();
        let memo = |memo: Vec<u8>, nonce| {
            Transaction::sign_transfer_with_memo(
                &alice,
                &net(),
                Address([2; 20]),
                1,
                0,
                nonce,
                memo,
            )
        };
        for (bad, rule) in [
            (vec![b'm'; 257], TxError::MemoTooLong { len: 257, max: 256 }),
            (vec![b'o', 0x80], TxError::MemoNotUtf8),
        ] {
            let b = block(vec![
                Transaction::coinbase(2, alice_addr, 50),
                memo(b"fine".to_vec(), 0),
                memo(bad, 1),
            ]);
            assert_eq!(
                s.apply_block(&b, 50),
                Err(BlockError::Transaction {
                    index: 2,
                    source: rule
                })
            );
            assert_eq!(s, before);
        }
    }
}
