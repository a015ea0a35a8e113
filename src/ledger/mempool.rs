//! Pending transactions: a bounded pool of transfers that are valid against the tip state, and
//! the block templates taken from it.
//!
//! Rules kept at all times:
//! - every pending transfer is valid against the tip state when each sender's pending transfers
//!   are applied in nonce order: a sender's pending nonces run without a gap from the state's
//!   next nonce, and their amounts plus fees fit in the sender's balance (coins the sender is
//!   about to receive from other pending transfers are not counted);
//! - every transaction is pending at most once (by txid), coinbases never;
//! - signatures are checked once, on entry; transfers returned by a reorg come from blocks that
//!   were checked in full, so they are not checked again;
//! - the pool never holds more than its capacity. Only each sender's *last* pending transfer is
//!   evictable, so eviction never leaves a nonce gap; when the pool is full a newcomer must
//!   outbid the cheapest evictable transfer of another sender (see [`min_outbid_fee`]), which it
//!   then replaces;
//! - relay policy ([`RelayPolicy`], beyond consensus): a transfer pays at least the minimum relay
//!   fee; a sender has at most [`MAX_PENDING_PER_SENDER`] pending transfers; a transfer with the
//!   nonce of a pending one from the same sender replaces it only if it outbids it. The node's
//!   own account is exempt from the fee floor and the per-sender cap.
//!
//! On every tip change the senders and receivers touched by the connected and disconnected
//! blocks are revalidated against the new state, together with the transfers of the
//! disconnected blocks: what the new chain included or made invalid goes, and every transfer
//! that can still follow its sender's pending ones stays or comes back. The one exception is the
//! capacity: if a reorg returns more transfers than fit, the lowest fees are evicted as usual.

use std::cmp::{Ordering, Reverse};
use std::collections::{BTreeMap, BinaryHeap, HashMap, HashSet, VecDeque};

use super::chain::TipChange;
use super::hash::{Address, NetworkId, TxId};
use super::params::NetworkParams;
use super::state::{Pending, State};
use super::transaction::{Transaction, TxError};

/// Largest encoded transaction the pool takes (and gossip carries); a transfer is at most
/// 152 + [`MAX_MEMO_BYTES`](super::transaction::MAX_MEMO_BYTES) = 408 bytes.
pub const MAX_TX_BYTES: usize = 1024;

// A transaction holds no list but its memo, whose claim is the memo's own bytes: it never claims
// more than it reads, so its input cap is its decode limit.
crate::decode_limit!(Transaction, MAX_TX_BYTES);

/// Most pending transfers one sender may have, so that one sender cannot fill the pool.
pub const MAX_PENDING_PER_SENDER: usize = 100;

/// The least fee that outbids `old`, for replacing a pending transfer or evicting one from a full
/// pool: at least 10 % more (rounded up), at least `min_relay_fee` more, and always at least one
/// more, so equal fees never churn the pool, even where the minimum relay fee is 0.
pub fn min_outbid_fee(old: u64, min_relay_fee: u64) -> u64 {
    old.saturating_add(old.div_ceil(10))
        .max(old.saturating_add(min_relay_fee.max(1)))
}

/// What a pool takes beyond the consensus rules: relay policy, which may differ between honest
/// nodes, so a transfer refused by it is dropped without blame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RelayPolicy {
    /// The least fee a transfer must pay to enter the pool.
    pub min_relay_fee: u64,
    /// Most pending transfers one sender may have.
    pub max_per_sender: usize,
    /// An account exempt from the fee floor and the per-sender cap: the node's own.
    pub exempt: Option<Address>,
}

impl RelayPolicy {
    /// The minimum relay fee a network's nodes use unless told otherwise: 0 on `devnet`, 1 on
    /// every other network.
    ///
    /// Devnet is the default network, the one to try a node, follow a tutorial or run tests on:
    /// its coins buy nothing, its front ends send fee 0 unless told otherwise, and a fee floor
    /// would only get in the way. What it costs there: a zero-amount transfer with a memo and
    /// fee 0 is free even from an empty account, so free identities can fill the pool with
    /// such transfers (at most [`MAX_PENDING_PER_SENDER`] each). That is bounded: the pool
    /// never grows past its capacity, and once it is full any transfer paying a fee outbids
    /// them (evicting needs [`min_outbid_fee`], at least 1 more), so paying users are never
    /// shut out; fee-0 users may be. On any other network churn must cost something: each
    /// transfer that enters pays at least 1 when mined, and each replacement or eviction at
    /// least 1 and 10 % more than what it displaces.
    pub fn default_min_relay_fee(params: &NetworkParams) -> u64 {
        if params.name == "devnet" {
            0
        } else {
            1
        }
    }

    /// The policy of a node on `params` whose own account is `own`, with the given minimum
    /// relay fee (the network's default if `None`).
    pub fn for_node(params: &NetworkParams, own: Address, min_relay_fee: Option<u64>) -> Self {
        Self {
            min_relay_fee: min_relay_fee.unwrap_or_else(|| Self::default_min_relay_fee(params)),
            max_per_sender: MAX_PENDING_PER_SENDER,
            exempt: Some(own),
        }
    }
}

impl Default for RelayPolicy {
    /// No fee floor, [`MAX_PENDING_PER_SENDER`], nobody exempt.
    fn default() -> Self {
        Self {
            min_relay_fee: 0,
            max_per_sender: MAX_PENDING_PER_SENDER,
            exempt: None,
        }
    }
}

/// Why the mempool refused a transaction.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MempoolError {
    /// Already pending.
    #[error("transaction {0} is already in the mempool")]
    AlreadyKnown(TxId),
    /// Coinbases are made by miners, never relayed.
    #[error("a coinbase cannot enter the mempool")]
    Coinbase,
    /// The signature does not verify against the sender's key.
    #[error("bad signature")]
    BadSignature,
    /// The encoded transaction is over [`MAX_TX_BYTES`].
    #[error("transaction is {size} bytes, over the cap of {max}")]
    TooLarge {
        /// Encoded size.
        size: usize,
        /// Cap.
        max: usize,
    },
    /// The pool is full and the fee does not outbid the cheapest evictable transfer
    /// ([`min_outbid_fee`]).
    #[error("mempool is full ({capacity} transactions): fee {fee} does not outbid the lowest evictable fee {min_fee}")]
    Full {
        /// The pool's capacity.
        capacity: usize,
        /// The refused transfer's fee.
        fee: u64,
        /// Fee of the cheapest evictable transfer (`u64::MAX` if none is evictable).
        min_fee: u64,
    },
    /// The fee is below the pool's minimum relay fee.
    #[error("fee {fee} is below the minimum relay fee of {min}")]
    FeeBelowMinimum {
        /// The refused transfer's fee.
        fee: u64,
        /// The minimum relay fee.
        min: u64,
    },
    /// The sender already has as many pending transfers as one sender may.
    #[error("sender already has {max} pending transfers, the most one sender may have")]
    TooManyFromSender {
        /// The per-sender cap.
        max: usize,
    },
    /// A transfer with the nonce of a pending one does not outbid it.
    #[error(
        "replacing a pending transfer paying {old} needs a fee of at least {needed}, not {fee}"
    )]
    ReplacementUnderpriced {
        /// The pending transfer's fee.
        old: u64,
        /// The least fee that replaces it ([`min_outbid_fee`]).
        needed: u64,
        /// The refused transfer's fee.
        fee: u64,
    },
    /// Breaks a transaction rule against the tip state plus pending transactions.
    #[error(transparent)]
    Invalid(#[from] TxError),
}

/// One pending transfer with what the pool needs to order and account for it.
#[derive(Debug, Clone)]
struct Entry {
    tx: Transaction,
    sender: Address,
    fee: u64,
    /// Amount plus fee: what the sender pays.
    cost: u64,
    size: usize,
    /// Arrival order, to break fee ties (older first) deterministically.
    seq: u64,
}

/// A sender's pending transfers, nonces consecutive from the state's next nonce.
#[derive(Debug, Default)]
struct Queue {
    txids: VecDeque<TxId>,
    /// Sum of the costs of the pending transfers.
    spent: u64,
}

/// Key of an evictable transfer: lowest fee first, then newest first.
type EvictKey = (u64, Reverse<u64>);

/// Bounded pool of valid pending transactions, for one network.
#[derive(Debug)]
pub struct Mempool {
    capacity: usize,
    /// The network whose signatures the pool checks.
    network: NetworkId,
    entries: HashMap<TxId, Entry>,
    queues: HashMap<Address, Queue>,
    /// Each sender's last pending transfer, the only evictable ones.
    tails: BTreeMap<EvictKey, TxId>,
    next_seq: u64,
    policy: RelayPolicy,
    /// The last template built for peers (its caps and transfers), until the pool changes.
    shared: Option<SharedTemplate>,
    /// Templates built for peers, for tests to see the cache at work.
    #[cfg(test)]
    shared_builds: u64,
}

/// A template kept for the peers that ask for the pool ([`Mempool::shared_template`]).
#[derive(Debug)]
struct SharedTemplate {
    max_txs: usize,
    max_bytes: usize,
    txs: Vec<Transaction>,
}

impl Mempool {
    /// An empty pool holding at most `capacity` transactions signed for `network`.
    pub fn new(capacity: usize, network: NetworkId) -> Self {
        Self {
            capacity,
            network,
            entries: HashMap::new(),
            queues: HashMap::new(),
            tails: BTreeMap::new(),
            next_seq: 0,
            policy: RelayPolicy::default(),
            shared: None,
            #[cfg(test)]
            shared_builds: 0,
        }
    }

    /// The same pool under `policy`.
    pub fn with_policy(mut self, policy: RelayPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// The relay policy the pool applies.
    pub fn policy(&self) -> &RelayPolicy {
        &self.policy
    }

    /// The network whose signatures the pool checks (and its own transfers are signed for).
    pub fn network(&self) -> &NetworkId {
        &self.network
    }

    /// The most transactions the pool holds.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Number of pending transactions.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when nothing is pending.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// True if the transaction is pending.
    pub fn contains(&self, txid: &TxId) -> bool {
        self.entries.contains_key(txid)
    }

    /// A pending transaction by id.
    pub fn get(&self, txid: &TxId) -> Option<&Transaction> {
        self.entries.get(txid).map(|e| &e.tx)
    }

    /// Every pending transaction, highest fee first as far as each sender's nonce order allows
    /// (the order a block template takes them in).
    pub fn transactions(&self) -> Vec<Transaction> {
        self.template(usize::MAX, usize::MAX)
    }

    /// Validates and adds a transaction.
    ///
    /// # Errors
    /// [`MempoolError`] naming why it was refused.
    pub fn add(&mut self, tx: Transaction, state: &State) -> Result<TxId, MempoolError> {
        let Some(t) = tx.transfer() else {
            return Err(MempoolError::Coinbase);
        };
        let txid = tx.compute_txid();
        if self.entries.contains_key(&txid) {
            return Err(MempoolError::AlreadyKnown(txid));
        }
        let size = tx.encoded_len();
        if size > MAX_TX_BYTES {
            return Err(MempoolError::TooLarge {
                size,
                max: MAX_TX_BYTES,
            });
        }
        let sender = t.from.address();
        let exempt = self.policy.exempt == Some(sender);
        if !exempt && t.fee < self.policy.min_relay_fee {
            return Err(MempoolError::FeeBelowMinimum {
                fee: t.fee,
                min: self.policy.min_relay_fee,
            });
        }
        let (pending_count, replaced) = match self.queues.get(&sender) {
            Some(q) => {
                let base = state.next_nonce(&sender);
                let index = t
                    .nonce
                    .checked_sub(base)
                    .and_then(|i| usize::try_from(i).ok());
                (
                    q.txids.len(),
                    index.and_then(|i| q.txids.get(i).map(|id| (i, *id))),
                )
            }
            None => (0, None),
        };
        if let Some((index, old_id)) = replaced {
            return self.replace(tx, index, old_id, state);
        }
        if !exempt && pending_count >= self.policy.max_per_sender {
            return Err(MempoolError::TooManyFromSender {
                max: self.policy.max_per_sender,
            });
        }
        let pending = self.queues.get(&sender).map_or(Pending::NONE, |q| Pending {
            count: q.txids.len() as u64,
            spent: q.spent,
        });
        let cost = state.check_transfer_after(t, pending)?;
        let fee = t.fee;
        if tx.verify_signature(&self.network).is_err() {
            return Err(MempoolError::BadSignature);
        }
        if self.entries.len() >= self.capacity {
            match self.cheapest_evictable(Some(&sender)) {
                Some((key, victim)) if fee >= min_outbid_fee(key.0, self.policy.min_relay_fee) => {
                    self.evict(&victim)
                }
                other => {
                    return Err(MempoolError::Full {
                        capacity: self.capacity,
                        fee,
                        min_fee: other.map_or(u64::MAX, |(key, _)| key.0),
                    })
                }
            }
        }
        self.push(
            txid,
            Entry {
                tx,
                sender,
                fee,
                cost,
                size,
                seq: 0,
            },
        );
        Ok(txid)
    }

    /// Replaces the sender's pending transfer `old_id`, at `index` in its queue, by `tx` with the
    /// same nonce, if `tx` outbids it and is valid after the transfers before it; the sender's
    /// later transfers stay while they still apply.
    fn replace(
        &mut self,
        tx: Transaction,
        index: usize,
        old_id: TxId,
        state: &State,
    ) -> Result<TxId, MempoolError> {
        let Some(t) = tx.transfer() else {
            return Err(MempoolError::Coinbase);
        };
        let sender = t.from.address();
        let old_fee = self.entries.get(&old_id).map_or(0, |e| e.fee);
        let needed = min_outbid_fee(old_fee, self.policy.min_relay_fee);
        if t.fee < needed {
            return Err(MempoolError::ReplacementUnderpriced {
                old: old_fee,
                needed,
                fee: t.fee,
            });
        }
        let mut before = Pending::NONE;
        if let Some(queue) = self.queues.get(&sender) {
            for id in queue.txids.iter().take(index) {
                if let Some(e) = self.entries.get(id) {
                    before.count += 1;
                    before.spent = before.spent.saturating_add(e.cost);
                }
            }
        }
        state.check_transfer_after(t, before)?;
        if tx.verify_signature(&self.network).is_err() {
            return Err(MempoolError::BadSignature);
        }
        let txid = tx.compute_txid();
        self.shared = None;
        if let Some(old) = self.entries.remove(&old_id) {
            self.tails.remove(&(old.fee, Reverse(old.seq)));
        }
        self.revalidate_sender(&sender, vec![tx], state);
        Ok(txid)
    }

    /// The nonce a new transfer from `address` must carry, counting pending ones.
    pub fn next_nonce(&self, state: &State, address: &Address) -> u64 {
        let pending = self.queues.get(address).map_or(0, |q| q.txids.len() as u64);
        state.next_nonce(address).saturating_add(pending)
    }

    /// Transactions for a block: highest fee first, each sender's nonces in order. At most
    /// `max_txs` transfers whose encodings sum to at most `max_bytes`; the caller leaves room
    /// for the coinbase and the header. A sender whose next transfer does not fit is skipped
    /// from then on, as its later nonces cannot come without it.
    pub fn template(&self, max_txs: usize, max_bytes: usize) -> Vec<Transaction> {
        /// A sender's next transfer in the priority queue: highest fee, then oldest, first.
        struct Head<'a> {
            entry: &'a Entry,
            queue: &'a Queue,
            index: usize,
        }
        impl Head<'_> {
            fn key(&self) -> (u64, Reverse<u64>) {
                (self.entry.fee, Reverse(self.entry.seq))
            }
        }
        impl PartialEq for Head<'_> {
            fn eq(&self, other: &Self) -> bool {
                self.key() == other.key()
            }
        }
        impl Eq for Head<'_> {}
        impl PartialOrd for Head<'_> {
            fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
                Some(self.cmp(other))
            }
        }
        impl Ord for Head<'_> {
            fn cmp(&self, other: &Self) -> Ordering {
                self.key().cmp(&other.key())
            }
        }

        fn head<'a>(
            entries: &'a HashMap<TxId, Entry>,
            queue: &'a Queue,
            index: usize,
        ) -> Option<Head<'a>> {
            let entry = queue.txids.get(index).and_then(|id| entries.get(id))?;
            Some(Head {
                entry,
                queue,
                index,
            })
        }
        let mut heap: BinaryHeap<Head<'_>> = self
            .queues
            .values()
            .filter_map(|q| head(&self.entries, q, 0))
            .collect();
        let mut out = Vec::new();
        let mut bytes = 0usize;
        while out.len() < max_txs {
            let Some(h) = heap.pop() else { break };
            let Some(total) = bytes.checked_add(h.entry.size) else {
                continue;
            };
            if total > max_bytes {
                continue;
            }
            bytes = total;
            out.push(h.entry.tx.clone());
            if let Some(next) = head(&self.entries, h.queue, h.index + 1) {
                heap.push(next);
            }
        }
        out
    }

    /// [`Mempool::template`] for peers that ask for the pool: built once and handed out again
    /// until the pool changes, so that peers asking often cost a copy, not a pass over the pool.
    pub fn shared_template(&mut self, max_txs: usize, max_bytes: usize) -> Vec<Transaction> {
        if let Some(shared) = &self.shared {
            if shared.max_txs == max_txs && shared.max_bytes == max_bytes {
                return shared.txs.clone();
            }
        }
        let txs = self.template(max_txs, max_bytes);
        #[cfg(test)]
        {
            self.shared_builds += 1;
        }
        self.shared = Some(SharedTemplate {
            max_txs,
            max_bytes,
            txs: txs.clone(),
        });
        txs
    }

    /// Reacts to a tip change; `state` is the state after it.
    ///
    /// Every address the connected or disconnected blocks touched is revalidated: its pending
    /// transfers and the transfers it sent in the disconnected blocks are replayed in nonce
    /// order against `state`, and those that still apply stay (or come back). Transfers the new
    /// chain included fail on their nonce and go.
    pub fn on_tip_change(&mut self, change: &TipChange, state: &State) {
        let mut touched: HashSet<Address> = HashSet::new();
        let mut returned: HashMap<Address, Vec<Transaction>> = HashMap::new();
        for block in change.connected.iter() {
            for tx in &block.transactions {
                touched.insert(tx.to());
                touched.extend(tx.sender());
            }
        }
        // Oldest block first, so each sender's returned transfers come in nonce order.
        for block in change.disconnected.iter().rev() {
            for tx in &block.transactions {
                touched.insert(tx.to());
                if let Some(sender) = tx.sender() {
                    touched.insert(sender);
                    returned.entry(sender).or_default().push(tx.clone());
                }
            }
        }
        for address in touched {
            let back = returned.remove(&address).unwrap_or_default();
            self.revalidate_sender(&address, back, state);
        }
        while self.entries.len() > self.capacity {
            let Some((_, victim)) = self.cheapest_evictable(None) else {
                break;
            };
            self.evict(&victim);
        }
    }

    /// Replays `address`'s pending transfers plus `extra` ones in nonce order against `state`
    /// and keeps those that apply.
    fn revalidate_sender(&mut self, address: &Address, extra: Vec<Transaction>, state: &State) {
        self.shared = None;
        let mut candidates: Vec<(Transaction, u64)> = Vec::new();
        if let Some(queue) = self.queues.remove(address) {
            for id in &queue.txids {
                if let Some(entry) = self.entries.remove(id) {
                    self.tails.remove(&(entry.fee, Reverse(entry.seq)));
                    candidates.push((entry.tx, entry.seq));
                }
            }
        }
        if candidates.is_empty() && extra.is_empty() {
            return;
        }
        // Returned transfers are older than anything pending, so they sort first on ties.
        candidates.splice(0..0, extra.into_iter().map(|tx| (tx, 0)));
        candidates.sort_by_key(|(tx, _)| {
            let t = tx.transfer();
            (t.map_or(0, |t| t.nonce), Reverse(tx.fee()))
        });
        let base = state.next_nonce(address);
        let mut pending = Pending::NONE;
        let mut seen = HashSet::new();
        for (tx, seq) in candidates {
            let Some(t) = tx.transfer() else { continue };
            let nonce = base.saturating_add(pending.count);
            if t.nonce > nonce {
                break;
            }
            let txid = tx.compute_txid();
            if t.nonce < nonce || !seen.insert(txid) {
                continue;
            }
            let Ok(cost) = state.check_transfer_after(t, pending) else {
                continue;
            };
            pending.count += 1;
            pending.spent += cost;
            let entry = Entry {
                sender: *address,
                fee: t.fee,
                cost,
                size: tx.encoded_len(),
                seq,
                tx,
            };
            self.push(txid, entry);
        }
    }

    /// The cheapest evictable transfer not sent by `except`.
    fn cheapest_evictable(&self, except: Option<&Address>) -> Option<(EvictKey, TxId)> {
        self.tails
            .iter()
            .find(|(_, id)| {
                self.entries
                    .get(id)
                    .is_some_and(|e| Some(&e.sender) != except)
            })
            .map(|(k, id)| (*k, *id))
    }

    /// Appends an entry as its sender's last pending transfer (its nonce must be the next one).
    /// A `seq` of 0 is given a fresh arrival number.
    fn push(&mut self, txid: TxId, mut entry: Entry) {
        self.shared = None;
        if entry.seq == 0 {
            self.next_seq += 1;
            entry.seq = self.next_seq;
        }
        let queue = self.queues.entry(entry.sender).or_default();
        if let Some(prev) = queue.txids.back().and_then(|id| self.entries.get(id)) {
            self.tails.remove(&(prev.fee, Reverse(prev.seq)));
        }
        queue.txids.push_back(txid);
        queue.spent = queue.spent.saturating_add(entry.cost);
        self.tails.insert((entry.fee, Reverse(entry.seq)), txid);
        self.entries.insert(txid, entry);
    }

    /// Removes a sender's last pending transfer.
    fn evict(&mut self, txid: &TxId) {
        self.shared = None;
        let Some(entry) = self.entries.remove(txid) else {
            return;
        };
        self.tails.remove(&(entry.fee, Reverse(entry.seq)));
        let Some(queue) = self.queues.get_mut(&entry.sender) else {
            return;
        };
        queue.txids.pop_back();
        queue.spent = queue.spent.saturating_sub(entry.cost);
        match queue.txids.back() {
            Some(prev_id) => {
                if let Some(prev) = self.entries.get(prev_id) {
                    self.tails.insert((prev.fee, Reverse(prev.seq)), *prev_id);
                }
            }
            None => {
                self.queues.remove(&entry.sender);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use ed25519_dalek::SigningKey;
    use proptest::prelude::*;

    use super::*;
    use crate::ledger::block::{compute_tx_root, Block, BlockHeader};
    use crate::ledger::hash::BlockHash;
    use crate::ledger::transaction::{PublicKey, Signature};

    const REWARD: u64 = 50;

    fn key(seed: u8) -> SigningKey {
        SigningKey::from_bytes(&[seed; 32])
    }

    fn addr(key: &SigningKey) -> Address {
        PublicKey(key.verifying_key().to_bytes()).address()
    }

    /// The network the tests sign for, the one the real-chain test's chain is on.
    fn net() -> NetworkId {
        crate::ledger::params::NetworkParams::for_tests("mempool-test", 0).network_id()
    }

    fn pay(from: &SigningKey, to: u8, amount: u64, fee: u64, nonce: u64) -> Transaction {
        Transaction::sign_transfer(from, &net(), Address([to; 20]), amount, fee, nonce)
    }

    /// A main chain of blocks (no proof of work, no genesis) and the state it produces.
    #[derive(Clone)]
    struct Ledger {
        blocks: Vec<Arc<Block>>,
        state: State,
    }

    impl Ledger {
        /// One block per key, each paying its key the reward.
        fn funding(keys: &[&SigningKey]) -> Self {
            let mut ledger = Ledger {
                blocks: Vec::new(),
                state: State::new(),
            };
            for k in keys {
                ledger.mine(addr(k), vec![]);
            }
            ledger
        }

        fn tip(&self) -> BlockHash {
            self.blocks
                .last()
                .map_or(BlockHash::ZERO, |b| b.block_hash())
        }

        fn block_on_tip(&self, miner: Address, transfers: Vec<Transaction>) -> Block {
            let height = self.blocks.len() as u64 + 1;
            let fees: u64 = transfers.iter().map(Transaction::fee).sum();
            let mut txs = vec![Transaction::coinbase(height, miner, REWARD + fees)];
            txs.extend(transfers);
            let ids: Vec<TxId> = txs.iter().map(Transaction::compute_txid).collect();
            Block {
                header: BlockHeader {
                    height,
                    prev_hash: self.tip(),
                    tx_root: compute_tx_root(&ids),
                    timestamp: height,
                    difficulty: 0,
                    nonce: 0,
                },
                transactions: txs,
            }
        }

        /// Extends the chain by one block; the block must apply.
        fn mine(&mut self, miner: Address, transfers: Vec<Transaction>) -> TipChange {
            let old_tip = self.tip();
            let fork_height = self.blocks.len() as u64;
            let block = self.block_on_tip(miner, transfers);
            self.state
                .apply_block(&block, REWARD)
                .expect("test block applies");
            let block = Arc::new(block);
            self.blocks.push(block.clone());
            TipChange {
                old_tip,
                new_tip: self.tip(),
                fork_height,
                disconnected: vec![],
                connected: vec![block],
            }
        }

        /// Disconnects `depth` blocks and connects one block per entry of `branch`.
        fn reorg(&mut self, depth: usize, branch: Vec<(Address, Vec<Transaction>)>) -> TipChange {
            let old_tip = self.tip();
            let mut disconnected = Vec::new();
            for _ in 0..depth {
                let Some(b) = self.blocks.pop() else { break };
                self.state.undo_block(&b);
                disconnected.push(b);
            }
            let fork_height = self.blocks.len() as u64;
            let mut connected = Vec::new();
            for (miner, txs) in branch {
                let change = self.mine(miner, txs);
                connected.extend(change.connected);
            }
            TipChange {
                old_tip,
                new_tip: self.tip(),
                fork_height,
                disconnected,
                connected,
            }
        }

        fn replay(&self) -> State {
            let mut s = State::new();
            for b in &self.blocks {
                s.apply_block(b, REWARD).expect("main chain replays");
            }
            s
        }
    }

    fn ids(txs: &[Transaction]) -> Vec<TxId> {
        txs.iter().map(Transaction::compute_txid).collect()
    }

    #[test]
    fn a_chain_of_nonces_from_one_sender_is_accepted() {
        let alice = key(1);
        let ledger = Ledger::funding(&[&alice]);
        let mut pool = Mempool::new(10, net());
        for nonce in 0..4 {
            assert_eq!(pool.next_nonce(&ledger.state, &addr(&alice)), nonce);
            pool.add(pay(&alice, 9, 10, 1, nonce), &ledger.state)
                .unwrap();
        }
        assert_eq!(pool.len(), 4);
        assert_eq!(pool.next_nonce(&ledger.state, &addr(&alice)), 4);
    }

    #[test]
    fn a_nonce_gap_or_a_reused_nonce_is_refused() {
        let alice = key(1);
        let ledger = Ledger::funding(&[&alice]);
        let mut pool = Mempool::new(10, net());
        pool.add(pay(&alice, 9, 1, 0, 0), &ledger.state).unwrap();
        assert_eq!(
            pool.add(pay(&alice, 9, 1, 0, 2), &ledger.state),
            Err(MempoolError::Invalid(TxError::BadNonce {
                expected: 1,
                got: 2
            }))
        );
        assert_eq!(
            pool.add(pay(&alice, 8, 1, 0, 0), &ledger.state),
            Err(MempoolError::ReplacementUnderpriced {
                old: 0,
                needed: 1,
                fee: 0
            }),
            "a reused pending nonce is a replacement, and must outbid"
        );
    }

    #[test]
    fn the_minimum_relay_fee_is_zero_on_devnet_only() {
        let devnet = NetworkParams::devnet();
        assert_eq!(RelayPolicy::default_min_relay_fee(&devnet), 0);
        let other = NetworkParams::new("lab", 8).unwrap();
        assert_eq!(RelayPolicy::default_min_relay_fee(&other), 1);
        let own = Address([1; 20]);
        assert_eq!(RelayPolicy::for_node(&other, own, Some(0)).min_relay_fee, 0);
        assert_eq!(RelayPolicy::for_node(&other, own, None).exempt, Some(own));
    }

    #[test]
    fn a_transfer_under_the_minimum_relay_fee_is_refused_except_from_the_nodes_own_account() {
        let (alice, owner) = (key(1), key(2));
        let ledger = Ledger::funding(&[&alice, &owner]);
        let policy = RelayPolicy {
            min_relay_fee: 1,
            exempt: Some(addr(&owner)),
            ..RelayPolicy::default()
        };
        let mut pool = Mempool::new(10, net()).with_policy(policy);
        assert_eq!(
            pool.add(pay(&alice, 9, 1, 0, 0), &ledger.state),
            Err(MempoolError::FeeBelowMinimum { fee: 0, min: 1 })
        );
        pool.add(pay(&alice, 9, 1, 1, 0), &ledger.state).unwrap();
        pool.add(pay(&owner, 9, 1, 0, 0), &ledger.state).unwrap();
        assert_eq!(pool.len(), 2);
    }

    #[test]
    fn one_sender_may_have_at_most_its_cap_of_pending_transfers_except_the_node_itself() {
        let (alice, owner) = (key(1), key(2));
        let ledger = Ledger::funding(&[&alice, &owner]);
        let policy = RelayPolicy {
            max_per_sender: 3,
            exempt: Some(addr(&owner)),
            ..RelayPolicy::default()
        };
        let mut pool = Mempool::new(10, net()).with_policy(policy);
        for nonce in 0..3 {
            pool.add(pay(&alice, 9, 1, 1, nonce), &ledger.state)
                .unwrap();
            pool.add(pay(&owner, 9, 1, 1, nonce), &ledger.state)
                .unwrap();
        }
        assert_eq!(
            pool.add(pay(&alice, 9, 1, 1, 3), &ledger.state),
            Err(MempoolError::TooManyFromSender { max: 3 })
        );
        pool.add(pay(&owner, 9, 1, 1, 3), &ledger.state).unwrap();
        // A replacement does not add to the count.
        pool.add(pay(&alice, 8, 1, 2, 2), &ledger.state).unwrap();
        assert_eq!(pool.len(), 7);
        assert_eq!(
            MAX_PENDING_PER_SENDER,
            RelayPolicy::default().max_per_sender
        );
    }

    #[test]
    fn a_replacement_must_pay_ten_percent_and_the_minimum_relay_fee_more() {
        assert_eq!(min_outbid_fee(100, 1), 110);
        assert_eq!(min_outbid_fee(101, 1), 112, "10 % rounded up");
        assert_eq!(min_outbid_fee(5, 1), 6);
        assert_eq!(min_outbid_fee(5, 3), 8);
        assert_eq!(min_outbid_fee(0, 0), 1, "never an equal fee");
        assert_eq!(min_outbid_fee(u64::MAX, 1), u64::MAX);
        let alice = key(1);
        let ledger = Ledger::funding(&[&alice]);
        let policy = RelayPolicy {
            min_relay_fee: 1,
            ..RelayPolicy::default()
        };
        let mut pool = Mempool::new(10, net()).with_policy(policy);
        let first = pool.add(pay(&alice, 9, 1, 20, 0), &ledger.state).unwrap();
        assert_eq!(
            pool.add(pay(&alice, 8, 1, 21, 0), &ledger.state),
            Err(MempoolError::ReplacementUnderpriced {
                old: 20,
                needed: 22,
                fee: 21
            })
        );
        let second = pool.add(pay(&alice, 8, 1, 22, 0), &ledger.state).unwrap();
        assert!(!pool.contains(&first) && pool.contains(&second));
        assert_eq!(pool.len(), 1);
        assert_eq!(pool.next_nonce(&ledger.state, &addr(&alice)), 1);
    }

    #[test]
    fn replacing_a_middle_transfer_keeps_the_later_ones_that_still_apply() {
        let alice = key(1);
        let ledger = Ledger::funding(&[&alice]);
        let mut pool = Mempool::new(10, net());
        // The reward is 50: 10 + 1, 10 + 1, 10 + 1 leaves 17.
        let t0 = pool.add(pay(&alice, 9, 10, 1, 0), &ledger.state).unwrap();
        let t2 = pool.add(pay(&alice, 9, 10, 1, 2), &ledger.state);
        assert!(t2.is_err(), "a gap");
        let t1 = pool.add(pay(&alice, 9, 10, 1, 1), &ledger.state).unwrap();
        let t2 = pool.add(pay(&alice, 9, 10, 1, 2), &ledger.state).unwrap();
        // Nonce 1 again, now spending 24 + 2: nonce 2 (11) still fits in 50 - 11 - 26 = 13.
        let r1 = pool.add(pay(&alice, 8, 24, 2, 1), &ledger.state).unwrap();
        assert!(pool.contains(&t0) && !pool.contains(&t1) && pool.contains(&r1));
        assert!(pool.contains(&t2));
        // Nonce 1 once more, spending 33 + 3: nonce 2 no longer fits in 50 - 11 - 36 = 3.
        let r1b = pool.add(pay(&alice, 7, 33, 3, 1), &ledger.state).unwrap();
        assert!(pool.contains(&r1b) && !pool.contains(&r1) && !pool.contains(&t2));
        assert_eq!(pool.next_nonce(&ledger.state, &addr(&alice)), 2);
        // A replacement the balance cannot pay is refused and changes nothing.
        assert!(matches!(
            pool.add(pay(&alice, 6, 40, 4, 1), &ledger.state),
            Err(MempoolError::Invalid(TxError::InsufficientFunds { .. }))
        ));
        assert!(pool.contains(&r1b));
    }

    #[test]
    fn funds_must_cover_every_pending_transfer_of_the_sender() {
        let alice = key(1);
        let ledger = Ledger::funding(&[&alice]);
        let mut pool = Mempool::new(10, net());
        pool.add(pay(&alice, 9, 30, 5, 0), &ledger.state).unwrap();
        assert_eq!(
            pool.add(pay(&alice, 9, 15, 1, 1), &ledger.state),
            Err(MempoolError::Invalid(TxError::InsufficientFunds {
                balance: 15,
                needed: 16
            }))
        );
        pool.add(pay(&alice, 9, 14, 1, 1), &ledger.state).unwrap();
        assert_eq!(pool.len(), 2);
    }

    #[test]
    fn coinbases_bad_signatures_zero_amounts_and_oversized_fees_are_refused() {
        let alice = key(1);
        let ledger = Ledger::funding(&[&alice]);
        let mut pool = Mempool::new(10, net());
        assert_eq!(
            pool.add(Transaction::coinbase(5, addr(&alice), 50), &ledger.state),
            Err(MempoolError::Coinbase)
        );
        let Transaction::Transfer { body, .. } = pay(&alice, 9, 1, 0, 0) else {
            unreachable!()
        };
        let forged = Transaction::Transfer {
            body,
            signature: Signature([7; 64]),
        };
        assert_eq!(
            pool.add(forged, &ledger.state),
            Err(MempoolError::BadSignature)
        );
        assert_eq!(
            pool.add(pay(&alice, 9, 0, 1, 0), &ledger.state),
            Err(MempoolError::Invalid(TxError::ZeroAmount))
        );
        assert_eq!(
            pool.add(pay(&alice, 9, 1, u64::MAX, 0), &ledger.state),
            Err(MempoolError::Invalid(TxError::Overflow))
        );
        assert!(pool.is_empty());
    }

    #[test]
    fn the_same_transaction_twice_is_already_known() {
        let alice = key(1);
        let ledger = Ledger::funding(&[&alice]);
        let mut pool = Mempool::new(10, net());
        let tx = pay(&alice, 9, 1, 0, 0);
        let id = pool.add(tx.clone(), &ledger.state).unwrap();
        assert!(pool.contains(&id));
        assert_eq!(pool.get(&id), Some(&tx));
        assert_eq!(
            pool.add(tx, &ledger.state),
            Err(MempoolError::AlreadyKnown(id))
        );
    }

    #[test]
    fn a_full_pool_evicts_the_lowest_fee_only_for_a_strictly_higher_fee() {
        let (a, b, c) = (key(1), key(2), key(3));
        let ledger = Ledger::funding(&[&a, &b, &c]);
        let mut pool = Mempool::new(2, net());
        let cheap = pool.add(pay(&a, 9, 1, 2, 0), &ledger.state).unwrap();
        let dear = pool.add(pay(&b, 9, 1, 5, 0), &ledger.state).unwrap();
        assert_eq!(
            pool.add(pay(&c, 9, 1, 2, 0), &ledger.state),
            Err(MempoolError::Full {
                capacity: 2,
                fee: 2,
                min_fee: 2
            })
        );
        let newcomer = pool.add(pay(&c, 9, 1, 3, 0), &ledger.state).unwrap();
        assert!(!pool.contains(&cheap));
        assert!(pool.contains(&dear) && pool.contains(&newcomer));
        assert_eq!(pool.len(), 2);
    }

    #[test]
    fn eviction_takes_a_senders_last_transfer_and_leaves_no_nonce_gap() {
        let (a, b) = (key(1), key(2));
        let ledger = Ledger::funding(&[&a, &b]);
        let mut pool = Mempool::new(3, net());
        // a's first transfer is the cheapest, but only a's last one (fee 4) is evictable.
        let a0 = pool.add(pay(&a, 9, 1, 1, 0), &ledger.state).unwrap();
        let a1 = pool.add(pay(&a, 9, 1, 4, 1), &ledger.state).unwrap();
        let b0 = pool.add(pay(&b, 9, 1, 6, 0), &ledger.state).unwrap();
        assert_eq!(
            pool.add(pay(&b, 9, 1, 4, 1), &ledger.state),
            Err(MempoolError::Full {
                capacity: 3,
                fee: 4,
                min_fee: 4
            })
        );
        let b1 = pool.add(pay(&b, 9, 1, 5, 1), &ledger.state).unwrap();
        assert!(pool.contains(&a0) && !pool.contains(&a1));
        assert!(pool.contains(&b0) && pool.contains(&b1));
        assert_eq!(pool.next_nonce(&ledger.state, &addr(&a)), 1);
        // Now a0 is a's last transfer and the cheapest: a newcomer paying 2 replaces it.
        let c = pay(&b, 9, 1, 2, 2);
        pool.add(c, &ledger.state).unwrap();
        assert!(!pool.contains(&a0));
        assert_eq!(pool.next_nonce(&ledger.state, &addr(&a)), 0);
    }

    #[test]
    fn a_full_pool_never_evicts_the_newcomers_own_sender() {
        let a = key(1);
        let ledger = Ledger::funding(&[&a]);
        let mut pool = Mempool::new(2, net());
        pool.add(pay(&a, 9, 1, 1, 0), &ledger.state).unwrap();
        pool.add(pay(&a, 9, 1, 1, 1), &ledger.state).unwrap();
        assert_eq!(
            pool.add(pay(&a, 9, 1, 10, 2), &ledger.state),
            Err(MempoolError::Full {
                capacity: 2,
                fee: 10,
                min_fee: u64::MAX
            })
        );
    }

    #[test]
    fn the_template_takes_the_highest_fee_next_transfer_of_each_sender() {
        let (a, b) = (key(1), key(2));
        let ledger = Ledger::funding(&[&a, &b]);
        let mut pool = Mempool::new(10, net());
        let a0 = pay(&a, 9, 1, 1, 0);
        let a1 = pay(&a, 9, 1, 10, 1);
        let b0 = pay(&b, 9, 1, 5, 0);
        let b1 = pay(&b, 9, 1, 3, 1);
        for tx in [&a0, &a1, &b0, &b1] {
            pool.add(tx.clone(), &ledger.state).unwrap();
        }
        let template = pool.template(10, usize::MAX);
        assert_eq!(ids(&template), ids(&[b0, b1, a0, a1]));
        assert_eq!(ids(&pool.transactions()), ids(&template));
    }

    #[test]
    fn the_template_for_peers_is_built_once_until_the_pool_changes() {
        let (a, b) = (key(1), key(2));
        let mut ledger = Ledger::funding(&[&a, &b]);
        let mut pool = Mempool::new(10, net());
        pool.add(pay(&a, 9, 1, 1, 0), &ledger.state).unwrap();
        pool.add(pay(&b, 9, 1, 2, 0), &ledger.state).unwrap();
        let first = pool.shared_template(10, usize::MAX);
        assert_eq!(ids(&first), ids(&pool.template(10, usize::MAX)));
        for _ in 0..5 {
            assert_eq!(ids(&pool.shared_template(10, usize::MAX)), ids(&first));
        }
        assert_eq!(pool.shared_builds, 1, "asked again, not rebuilt");
        // Other caps, a new transfer, a mined block: each answer is the pool as it is now.
        assert_eq!(pool.shared_template(1, usize::MAX).len(), 1);
        pool.add(pay(&a, 9, 1, 5, 1), &ledger.state).unwrap();
        let grown = pool.shared_template(10, usize::MAX);
        assert_eq!(ids(&grown), ids(&pool.template(10, usize::MAX)));
        assert_eq!(grown.len(), 3);
        let change = ledger.mine(addr(&a), vec![pay(&b, 9, 1, 2, 0)]);
        pool.on_tip_change(&change, &ledger.state);
        let after = pool.shared_template(10, usize::MAX);
        assert_eq!(ids(&after), ids(&pool.template(10, usize::MAX)));
        assert_eq!(after.len(), 2);
        assert_eq!(pool.shared_builds, 4);
    }

    #[test]
    fn the_template_respects_its_count_and_byte_limits() {
        let (a, b) = (key(1), key(2));
        let ledger = Ledger::funding(&[&a, &b]);
        let mut pool = Mempool::new(10, net());
        for nonce in 0..3 {
            pool.add(pay(&a, 9, 1, 3, nonce), &ledger.state).unwrap();
            pool.add(pay(&b, 9, 1, 2, nonce), &ledger.state).unwrap();
        }
        assert_eq!(pool.template(4, usize::MAX).len(), 4);
        let one = pay(&a, 9, 1, 3, 0).encoded_len();
        let t = pool.template(10, 2 * one + one / 2);
        assert_eq!(t.len(), 2);
        assert!(t.iter().all(|tx| tx.fee() == 3));
        assert!(pool.template(10, one - 1).is_empty());
        assert!(pool.template(0, usize::MAX).is_empty());
    }

    #[test]
    fn the_template_applies_to_the_state_as_a_block() {
        let (a, b) = (key(1), key(2));
        let mut ledger = Ledger::funding(&[&a, &b]);
        let mut pool = Mempool::new(10, net());
        for nonce in 0..3 {
            pool.add(pay(&a, 9, 10, 3 - nonce, nonce), &ledger.state)
                .unwrap();
            pool.add(pay(&b, 1, 10, nonce, nonce), &ledger.state)
                .unwrap();
        }
        let template = pool.template(10, usize::MAX);
        let change = ledger.mine(Address([7; 20]), template);
        pool.on_tip_change(&change, &ledger.state);
        assert!(pool.is_empty());
    }

    #[test]
    fn included_transfers_leave_the_pool_and_the_rest_stay() {
        let a = key(1);
        let mut ledger = Ledger::funding(&[&a]);
        let mut pool = Mempool::new(10, net());
        let txs: Vec<_> = (0..3).map(|n| pay(&a, 9, 5, 1, n)).collect();
        for tx in &txs {
            pool.add(tx.clone(), &ledger.state).unwrap();
        }
        let change = ledger.mine(Address([7; 20]), txs[..2].to_vec());
        pool.on_tip_change(&change, &ledger.state);
        assert_eq!(ids(&pool.transactions()), ids(&txs[2..]));
        assert_eq!(pool.next_nonce(&ledger.state, &addr(&a)), 3);
    }

    #[test]
    fn a_reorg_returns_the_disconnected_transfers_but_not_the_coinbases() {
        let a = key(1);
        let mut ledger = Ledger::funding(&[&a]);
        let mut pool = Mempool::new(10, net());
        let mined = vec![pay(&a, 9, 5, 1, 0), pay(&a, 9, 5, 1, 1)];
        let extension = ledger.mine(Address([7; 20]), mined.clone());
        pool.on_tip_change(&extension, &ledger.state);
        let pending = pay(&a, 9, 5, 1, 2);
        pool.add(pending.clone(), &ledger.state).unwrap();
        let change = ledger.reorg(
            1,
            vec![(Address([8; 20]), vec![]), (Address([8; 20]), vec![])],
        );
        pool.on_tip_change(&change, &ledger.state);
        let mut expected = mined;
        expected.push(pending);
        let mut got = ids(&pool.transactions());
        let mut want = ids(&expected);
        got.sort();
        want.sort();
        assert_eq!(got, want);
        assert_eq!(ledger.state, ledger.replay());
    }

    #[test]
    fn a_transfer_in_both_branches_is_not_returned() {
        let a = key(1);
        let mut ledger = Ledger::funding(&[&a]);
        let mut pool = Mempool::new(10, net());
        let both = pay(&a, 9, 5, 1, 0);
        let only_old = pay(&a, 9, 5, 1, 1);
        let change = ledger.mine(Address([7; 20]), vec![both.clone(), only_old.clone()]);
        pool.on_tip_change(&change, &ledger.state);
        let change = ledger.reorg(1, vec![(Address([8; 20]), vec![both])]);
        pool.on_tip_change(&change, &ledger.state);
        assert_eq!(ids(&pool.transactions()), ids(&[only_old]));
    }

    #[test]
    fn a_double_spend_on_the_new_branch_drops_the_conflict_and_its_followers() {
        let (a, b) = (key(1), key(2));
        let mut ledger = Ledger::funding(&[&a, &b]);
        let mut pool = Mempool::new(10, net());
        let old = pay(&a, 9, 5, 1, 0);
        let change = ledger.mine(Address([7; 20]), vec![old]);
        pool.on_tip_change(&change, &ledger.state);
        let follower = pay(&a, 9, 5, 1, 1);
        let unrelated = pay(&b, 9, 5, 1, 0);
        pool.add(follower.clone(), &ledger.state).unwrap();
        pool.add(unrelated.clone(), &ledger.state).unwrap();
        // The new branch spends a's nonce 0 differently and also a's nonce 1: follower must go.
        let conflict = vec![pay(&a, 8, 40, 1, 0), pay(&a, 8, 1, 1, 1)];
        let change = ledger.reorg(1, vec![(Address([8; 20]), conflict)]);
        pool.on_tip_change(&change, &ledger.state);
        assert_eq!(ids(&pool.transactions()), ids(&[unrelated]));
    }

    #[test]
    fn a_sender_whose_funds_vanished_in_a_reorg_loses_its_pending_transfers() {
        let (a, m) = (key(1), key(5));
        let mut ledger = Ledger::funding(&[&a]);
        let mut pool = Mempool::new(10, net());
        let change = ledger.mine(addr(&m), vec![]);
        pool.on_tip_change(&change, &ledger.state);
        pool.add(pay(&m, 9, 20, 1, 0), &ledger.state).unwrap();
        let kept = pay(&a, 9, 20, 1, 0);
        pool.add(kept.clone(), &ledger.state).unwrap();
        let change = ledger.reorg(1, vec![(Address([8; 20]), vec![])]);
        pool.on_tip_change(&change, &ledger.state);
        assert_eq!(ids(&pool.transactions()), ids(&[kept]));
    }

    #[test]
    fn a_reorg_that_returns_more_than_fits_evicts_the_lowest_fees() {
        let a = key(1);
        let mut ledger = Ledger::funding(&[&a]);
        let mut pool = Mempool::new(2, net());
        let mined: Vec<_> = (0..3).map(|n| pay(&a, 9, 1, 3 - n, n)).collect();
        let change = ledger.mine(Address([7; 20]), mined.clone());
        pool.on_tip_change(&change, &ledger.state);
        let change = ledger.reorg(1, vec![(Address([8; 20]), vec![])]);
        pool.on_tip_change(&change, &ledger.state);
        assert_eq!(ids(&pool.transactions()), ids(&mined[..2]));
    }

    #[test]
    fn a_reorg_of_a_real_chain_returns_abandoned_transfers_and_the_template_mines() {
        use crate::ledger::chain::{Chain, Placement};
        use crate::ledger::params::{NetworkParams, GENESIS_TIMESTAMP_MS};
        let params = NetworkParams::for_tests("mempool-test", 0);
        let now = GENESIS_TIMESTAMP_MS + 1_000_000;
        let (alice, bob) = (key(1), key(2));
        let mut ours = Chain::new(params.clone());
        let mut theirs = Chain::new(params);
        let funding = ours.block_template(addr(&alice), vec![], now);
        ours.accept_block(funding.clone(), now).unwrap();
        theirs.accept_block(funding, now).unwrap();

        let mut pool = Mempool::new(100, net());
        let sent = vec![pay(&alice, 2, 10, 2, 0), pay(&alice, 2, 10, 1, 1)];
        for tx in &sent {
            pool.add(tx.clone(), ours.state()).unwrap();
        }
        let block = ours.block_template(addr(&bob), pool.template(10, 100_000), now + 1);
        let change = ours
            .accept_block(block, now + 1)
            .unwrap()
            .tip_change
            .unwrap();
        pool.on_tip_change(&change, ours.state());
        assert!(pool.is_empty());

        // A longer branch without those transfers wins: they come back.
        let mut change = None;
        for i in 0..2 {
            let block = theirs.block_template(addr(&bob), vec![], now + 10 + i);
            theirs.accept_block(block.clone(), now + 10 + i).unwrap();
            let accepted = ours.accept_block(block, now + 10 + i).unwrap();
            change = change.or(accepted.tip_change);
        }
        let change = change.unwrap();
        assert_eq!(change.depth(), 1);
        pool.on_tip_change(&change, ours.state());
        assert_eq!(ids(&pool.transactions()), ids(&sent));

        let block = ours.block_template(addr(&bob), pool.template(10, 100_000), now + 20);
        let accepted = ours.accept_block(block, now + 20).unwrap();
        assert_eq!(accepted.placement, Placement::MainChain);
        pool.on_tip_change(&accepted.tip_change.unwrap(), ours.state());
        assert!(pool.is_empty());
        assert_eq!(ours.state().next_nonce(&addr(&alice)), 2);
    }

    #[test]
    fn a_transfer_signed_for_another_network_is_a_bad_signature_in_the_mempool_and_in_a_block() {
        use crate::ledger::block::BlockError;
        use crate::ledger::chain::Chain;
        use crate::ledger::params::{NetworkParams, GENESIS_TIMESTAMP_MS};
        let ours = NetworkParams::for_tests("mempool-test", 0);
        let theirs = NetworkParams::for_tests("another-network", 0);
        let now = GENESIS_TIMESTAMP_MS + 1_000_000;
        let alice = key(1);
        let mut chain = Chain::new(ours.clone());
        let funding = chain.block_template(addr(&alice), vec![], now);
        chain.accept_block(funding, now).unwrap();
        let replayed =
            Transaction::sign_transfer(&alice, &theirs.network_id(), Address([2; 20]), 5, 1, 0);
        let mut pool = Mempool::new(10, ours.network_id());
        assert_eq!(
            pool.add(replayed.clone(), chain.state()),
            Err(MempoolError::BadSignature)
        );
        let block = chain.block_template(addr(&alice), vec![replayed], now + 1);
        assert_eq!(
            chain.accept_block(block, now + 1).err(),
            Some(BlockError::Transaction {
                index: 0,
                source: TxError::BadSignature
            })
        );
        // The same transfer signed for our network goes through both.
        let honest = pay(&alice, 2, 5, 1, 0);
        assert!(pool.add(honest.clone(), chain.state()).is_ok());
        let block = chain.block_template(addr(&alice), vec![honest], now + 2);
        assert!(chain.accept_block(block, now + 2).is_ok());
    }

    #[test]
    fn the_mempool_and_a_block_agree_on_the_memo_and_zero_amount_rules() {
        let a = key(1);
        let ledger = Ledger::funding(&[&a]);
        let long = vec![b'x'; crate::ledger::MAX_MEMO_BYTES + 1];
        let cases: Vec<(u64, Vec<u8>, Result<(), TxError>)> = vec![
            (5, Vec::new(), Ok(())),
            (5, b"rent".to_vec(), Ok(())),
            (0, b"a post".to_vec(), Ok(())),
            (0, vec![b'x'; crate::ledger::MAX_MEMO_BYTES], Ok(())),
            (0, Vec::new(), Err(TxError::ZeroAmount)),
            (
                5,
                long,
                Err(TxError::MemoTooLong {
                    len: crate::ledger::MAX_MEMO_BYTES + 1,
                    max: crate::ledger::MAX_MEMO_BYTES,
                }),
            ),
            (0, vec![0xc3, 0x28], Err(TxError::MemoNotUtf8)),
        ];
        for (amount, memo, expected) in cases {
            let tx = Transaction::sign_transfer_with_memo(
                &a,
                &net(),
                Address([2; 20]),
                amount,
                1,
                0,
                memo,
            );
            let mut pool = Mempool::new(10, net());
            let pooled = pool.add(tx.clone(), &ledger.state).map(|_| ());
            let block = ledger.block_on_tip(Address([7; 20]), vec![tx]);
            let mut state = ledger.state.clone();
            let applied = state.apply_block(&block, REWARD);
            match expected {
                Ok(()) => {
                    assert_eq!(pooled, Ok(()), "amount {amount}");
                    assert_eq!(applied, Ok(()), "amount {amount}");
                    // Even a post of zero coins pays its fee.
                    assert_eq!(state.balance(&addr(&a)), REWARD - amount - 1);
                }
                Err(rule) => {
                    assert_eq!(pooled, Err(MempoolError::Invalid(rule)));
                    assert_eq!(
                        applied,
                        Err(crate::ledger::block::BlockError::Transaction {
                            index: 1,
                            source: rule
                        })
                    );
                }
            }
        }
    }

    // ---- property tests ----

    const SENDERS: usize = 4;

    #[derive(Debug, Clone)]
    enum Op {
        Add {
            sender: usize,
            to: u8,
            amount: u64,
            fee: u64,
            nonce_offset: i64,
            forged: bool,
        },
        Mine {
            take: usize,
            miner: usize,
        },
        Reorg {
            depth: usize,
            blocks: usize,
            take: usize,
            double_spend: Option<usize>,
        },
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            6 => (0..SENDERS, 0u8..6, 1u64..30, 0u64..8, prop_oneof![4 => Just(0i64), 1 => -2i64..3], prop::bool::weighted(0.05))
                .prop_map(|(sender, to, amount, fee, nonce_offset, forged)| Op::Add { sender, to, amount, fee, nonce_offset, forged }),
            2 => (0usize..5, 0..SENDERS).prop_map(|(take, miner)| Op::Mine { take, miner }),
            1 => (1usize..4, 0usize..4, 0usize..5, prop::option::of(0..SENDERS))
                .prop_map(|(depth, blocks, take, double_spend)| Op::Reorg { depth, blocks, take, double_spend }),
        ]
    }

    /// Applies each sender's pending transfers in nonce order to a copy of the state.
    fn senders_state(pool: &Mempool, state: &State, sender: &Address) -> Result<State, TxError> {
        let mut mine: Vec<&Transaction> = pool
            .entries
            .values()
            .filter(|e| &e.sender == sender)
            .map(|e| &e.tx)
            .collect();
        mine.sort_by_key(|tx| tx.transfer().map(|t| t.nonce));
        let mut s = state.clone();
        for tx in mine {
            let t = tx.transfer().ok_or(TxError::UnexpectedCoinbase)?;
            s.apply_transfer(t)?;
        }
        Ok(s)
    }

    fn check_invariants(pool: &Mempool, state: &State) -> Result<(), TestCaseError> {
        prop_assert!(pool.len() <= pool.capacity());
        let all = pool.transactions();
        prop_assert_eq!(all.len(), pool.len());
        let unique: HashSet<TxId> = ids(&all).into_iter().collect();
        prop_assert_eq!(unique.len(), all.len());
        let senders: HashSet<Address> = all.iter().filter_map(Transaction::sender).collect();
        for sender in &senders {
            prop_assert!(senders_state(pool, state, sender).is_ok());
        }
        for tx in &all {
            prop_assert!(tx.verify_signature(&net()).is_ok());
        }
        // Every template, whatever its limits, applies to the state as a block.
        let one = all.first().map_or(1, Transaction::encoded_len);
        for (max_txs, max_bytes) in [(usize::MAX, usize::MAX), (3, usize::MAX), (10, 2 * one)] {
            let template = pool.template(max_txs, max_bytes);
            prop_assert!(template.len() <= max_txs);
            prop_assert!(template.iter().map(Transaction::encoded_len).sum::<usize>() <= max_bytes);
            let probe = Ledger {
                blocks: vec![],
                state: state.clone(),
            };
            let block = probe.block_on_tip(Address([0xee; 20]), template);
            let mut s = state.clone();
            prop_assert_eq!(s.apply_block(&block, REWARD), Ok(()));
        }
        Ok(())
    }

    /// After a tip change, no transfer that was pending or disconnected is missing while it
    /// could still follow its sender's pending transfers (unless the pool is at capacity).
    fn check_nothing_valid_lost(
        pool: &Mempool,
        state: &State,
        before: &[Transaction],
        change: &TipChange,
    ) -> Result<(), TestCaseError> {
        if pool.len() >= pool.capacity() {
            return Ok(());
        }
        let returned = change
            .disconnected
            .iter()
            .flat_map(|b| b.transactions.iter().skip(1));
        for tx in before.iter().chain(returned) {
            if pool.contains(&tx.compute_txid()) {
                continue;
            }
            let Some(t) = tx.transfer() else { continue };
            let after = senders_state(pool, state, &t.from.address())
                .map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert!(
                after.check_transfer(t).is_err(),
                "a valid transfer was lost: {:?}",
                t
            );
        }
        Ok(())
    }

    fn run_ops(ops: Vec<Op>, capacity: usize) -> Result<(), TestCaseError> {
        let keys: Vec<SigningKey> = (1..=SENDERS as u8).map(key).collect();
        let refs: Vec<&SigningKey> = keys.iter().collect();
        let mut ledger = Ledger::funding(&refs);
        let base = ledger.blocks.len();
        let mut pool = Mempool::new(capacity, net());
        for op in ops {
            match op {
                Op::Add {
                    sender,
                    to,
                    amount,
                    fee,
                    nonce_offset,
                    forged,
                } => {
                    let k = &keys[sender];
                    let next = pool.next_nonce(&ledger.state, &addr(k));
                    let nonce = next.saturating_add_signed(nonce_offset);
                    let mut tx = pay(k, to, amount, fee, nonce);
                    if forged {
                        if let Transaction::Transfer { signature, .. } = &mut tx {
                            signature.0[0] ^= 1;
                        }
                    }
                    let already_pending = pool.contains(&tx.compute_txid());
                    // A nonce of a pending transfer of the sender asks for a replacement.
                    let replaces = nonce >= ledger.state.next_nonce(&addr(k)) && nonce < next;
                    let result = pool.add(tx.clone(), &ledger.state);
                    let t = tx.transfer().ok_or(TestCaseError::fail("transfer"))?;
                    let funds_ok = senders_state(&pool, &ledger.state, &addr(k))
                        .is_ok_and(|s| s.check_transfer(t).is_ok());
                    match result {
                        Ok(_) => {
                            prop_assert!(!forged && (nonce == next || replaces) && !already_pending)
                        }
                        Err(MempoolError::ReplacementUnderpriced { .. }) => {
                            prop_assert!(replaces)
                        }
                        Err(MempoolError::AlreadyKnown(_)) => prop_assert!(already_pending),
                        Err(MempoolError::Invalid(_)) => prop_assert!(!funds_ok || nonce != next),
                        Err(MempoolError::BadSignature) => prop_assert!(forged),
                        Err(MempoolError::Full { .. }) => {
                            prop_assert_eq!(pool.len(), capacity)
                        }
                        Err(e) => prop_assert!(false, "unexpected refusal {}", e),
                    }
                }
                Op::Mine { take, miner } => {
                    let before = pool.transactions();
                    let txs = pool.template(take, usize::MAX);
                    let change = ledger.mine(addr(&keys[miner]), txs);
                    pool.on_tip_change(&change, &ledger.state);
                    check_nothing_valid_lost(&pool, &ledger.state, &before, &change)?;
                }
                Op::Reorg {
                    depth,
                    blocks,
                    take,
                    double_spend,
                } => {
                    let depth = depth.min(ledger.blocks.len() - base);
                    let before = pool.transactions();
                    // Build the branch from a scratch pool at the fork point, fed with a
                    // double spend first, then the old pending and disconnected transfers.
                    let mut fork = ledger.clone();
                    let mut removed = Vec::new();
                    for _ in 0..depth {
                        if let Some(b) = fork.blocks.pop() {
                            fork.state.undo_block(&b);
                            removed.push(b);
                        }
                    }
                    let mut scratch = Mempool::new(1000, net());
                    if let Some(s) = double_spend {
                        let k = &keys[s];
                        let n = fork.state.next_nonce(&addr(k));
                        let _ = scratch.add(pay(k, 0xdd, 3, 9, n), &fork.state);
                    }
                    for b in removed.iter().rev() {
                        for tx in b.transactions.iter().skip(1) {
                            let _ = scratch.add(tx.clone(), &fork.state);
                        }
                    }
                    for tx in &before {
                        let _ = scratch.add(tx.clone(), &fork.state);
                    }
                    let mut branch = Vec::new();
                    for i in 0..blocks {
                        let txs = scratch.template(take, usize::MAX);
                        let change = fork.mine(Address([0xb0 + i as u8; 20]), txs.clone());
                        scratch.on_tip_change(&change, &fork.state);
                        branch.push((Address([0xb0 + i as u8; 20]), txs));
                    }
                    let change = ledger.reorg(depth, branch);
                    prop_assert_eq!(&ledger.state, &fork.state);
                    pool.on_tip_change(&change, &ledger.state);
                    check_nothing_valid_lost(&pool, &ledger.state, &before, &change)?;
                }
            }
            check_invariants(&pool, &ledger.state)?;
        }
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn pool_invariants_hold_across_random_adds_and_tip_changes(ops in prop::collection::vec(op(), 1..60)) {
            run_ops(ops, 1000)?;
        }

        #[test]
        fn a_small_pool_keeps_its_invariants_under_eviction(ops in prop::collection::vec(op(), 1..60)) {
            run_ops(ops, 5)?;
        }
    }
}
