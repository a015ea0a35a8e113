//! The durable store: one redb database, `chain.redb`, in the node's data directory.
//!
//! Tables (see proto-notes/storage.md):
//! - `bodies`: height (u64 big endian) and block hash (40 bytes) -> the block's canonical
//!   encoding, for every block that has been on the main chain (side-branch blocks are written
//!   when they join it, so a peer cannot grow the disk with cheap side blocks that are pruned
//!   from memory anyway); keyed by height first so that each new block's row goes at the end
//!   of the table, not at a random place in it;
//! - `main_chain`: height (u64) -> block hash, heights 0..=tip without a gap;
//! - `meta`: `format` (u32 little endian), `genesis` (32 bytes), `network` (UTF-8 name),
//!   `tip` (32 bytes);
//! - `node_key`: `ed25519` -> the node's 32-byte secret key;
//! - `accounts`: address (20 bytes) -> balance and nonce at the tip;
//! - `undo_rows`: height and hash of a main-chain block (keyed as `bodies`) -> the accounts
//!   its transactions touched, as they were before it.
//!
//! Format 2 kept bodies and undo data by hash alone (`blocks`, `undo`); opening such a file
//! re-keys both in one transaction (see [`FORMAT_BY_HASH`]).
//!
//! Rules kept: every change the chain reports is written by [`Store::commit`] in one redb
//! write transaction, which is atomic and durable when it returns, so a process killed at any
//! moment leaves either the store before or the store after a commit: tip, index, state and undo
//! data always describe the same main chain. The node commits a block before it announces it.
//! A restart reads the chain and the state without replaying ([`Store::load_chain`]);
//! [`Store::verify`] replays from genesis and checks they agree, [`Store::reindex`] rebuilds
//! state and undo data from the blocks. Everything read back is checked (decoded under the
//! network's block size cap, hashes and heights compared), so a damaged file gives a
//! [`StoreError`], never a panic or a wrong chain.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use ed25519_dalek::SigningKey;
use redb::{Database, ReadableTable, ReadableTableMetadata, TableDefinition};

use super::block::{Block, BlockError, BlockHeader};
use super::chain::{Accepted, BlockSource, Chain, TipChange};
use super::encode::{decode, encode};
use super::hash::Address;
use super::hash::BlockHash;
use super::params::NetworkParams;
use super::state::{touched_addresses, Account, State};

/// Version of the layout described above; bumped on any incompatible change.
pub const FORMAT_VERSION: u32 = 3;

/// The layout that kept bodies and undo data by hash alone: random keys, so each commit
/// rewrote pages all over both tables. Opening it re-keys them by height in one transaction.
pub const FORMAT_BY_HASH: u32 = 2;

/// The layout before account state and undo data were stored: [`Store::reindex`] upgrades it.
pub const FORMAT_WITHOUT_STATE: u32 = 1;

/// Name of the database file inside the data directory.
pub const DB_FILE: &str = "chain.redb";

/// Height (big endian) and hash -> a main-chain block's encoding.
const BODIES: TableDefinition<[u8; 40], &[u8]> = TableDefinition::new("bodies");
/// Format 2's bodies by hash, read only to upgrade.
const BLOCKS_BY_HASH: TableDefinition<[u8; 32], &[u8]> = TableDefinition::new("blocks");
/// Format 2's undo data by hash, read only to upgrade.
const UNDO_BY_HASH: TableDefinition<[u8; 32], &[u8]> = TableDefinition::new("undo");
const MAIN_CHAIN: TableDefinition<u64, [u8; 32]> = TableDefinition::new("main_chain");
const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
const NODE_KEY: TableDefinition<&str, [u8; 32]> = TableDefinition::new("node_key");
/// Address -> balance and nonce, u64 little endian each: the state at the stored tip.
const ACCOUNTS: TableDefinition<[u8; 20], [u8; 16]> = TableDefinition::new("accounts");
/// Height and hash of a main-chain block -> its undo data: [`UNDO_RECORD`]-byte records, one
/// per touched address, holding the address and its account before the block.
const UNDO: TableDefinition<[u8; 40], &[u8]> = TableDefinition::new("undo_rows");
/// Bytes of one undo record: address (20), balance (8), nonce (8).
const UNDO_RECORD: usize = 36;

/// The database engine's page cache: bounded, so that a node's memory does not grow with the
/// file (redb's default is 1 GiB); recent bodies are cached above it, decoded.
const CACHE_BYTES: usize = 32 * 1024 * 1024;

/// What a store is opened for, which decides the checks done at open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Opening {
    /// A serving node: no pass over the whole file.
    Serve,
    /// `verify`: every page's checksum first.
    Verify,
    /// `reindex`: every page's checksum first, and the old format accepted.
    Reindex,
}

const META_FORMAT: &str = "format";
const META_GENESIS: &str = "genesis";
const META_NETWORK: &str = "network";
const META_TIP: &str = "tip";
const NODE_KEY_ED25519: &str = "ed25519";

/// Why the store could not be opened, read or written.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A main-chain body the chain needed to move its tip could not be read back.
    #[error("a stored main-chain block could not be read: {0}")]
    BodyUnreadable(String),
    /// The thread that writes the node's commits is gone, so nothing more can be stored.
    #[error("the store's writer thread is gone")]
    WriterGone,
    /// The data directory belongs to another network.
    #[error("data directory belongs to network {found}, not to network {expected}")]
    OtherNetwork {
        /// This node's network: name and genesis hash.
        expected: String,
        /// The directory's network: name and genesis hash.
        found: String,
    },
    /// Another process (or another handle in this one) has the database open.
    #[error("store {path} is already open in another process")]
    AlreadyOpen {
        /// The database file.
        path: PathBuf,
    },
    /// The file is damaged or is not a gossipchain store.
    #[error("store {path} is corrupt: {reason}")]
    Corrupt {
        /// The database file.
        path: PathBuf,
        /// What was found wrong.
        reason: String,
    },
    /// The store has the layout without account state and undo data.
    #[error("store {path} has format {found}, which keeps no account state: run `gossipchain reindex` with the same --data-dir to rebuild the state from the stored blocks, or start afresh with an empty data directory")]
    NeedsReindex {
        /// The database file.
        path: PathBuf,
        /// What the file says ([`FORMAT_WITHOUT_STATE`]).
        found: u32,
    },
    /// The store was written by an incompatible version.
    #[error("store format {found} is not supported (expected {expected})")]
    UnsupportedFormat {
        /// [`FORMAT_VERSION`].
        expected: u32,
        /// What the file says.
        found: u32,
    },
    /// The data directory or the file could not be read or written.
    #[error("cannot access store {path}: {source}")]
    Io {
        /// The directory or file.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// The stored main chain does not replay.
    #[error("stored main chain does not replay: {0}")]
    InvalidChain(#[source] BlockError),
    /// A tip change does not start from the stored tip: a commit was missed.
    #[error("tip change from {change_from} does not start at the stored tip {stored}")]
    OutOfSync {
        /// The stored tip.
        stored: BlockHash,
        /// The change's old tip.
        change_from: BlockHash,
    },
    /// A tip change whose connected blocks do not follow the fork height one by one.
    #[error("tip change connects height {got} where {expected} was due")]
    BadTipChange {
        /// The next height after the fork point.
        expected: u64,
        /// The connected block's.
        got: u64,
    },
    /// A main-chain block has no undo data, so it cannot be disconnected.
    #[error("undo data of main-chain block {hash} at height {height} is missing")]
    UndoMissing {
        /// The block's height.
        height: u64,
        /// The block.
        hash: BlockHash,
    },
    /// A tip change disconnects a block that is not the stored main chain's at its height.
    #[error("tip change disconnects {disconnected} where the stored main chain has {stored}")]
    DisconnectsOffMainChain {
        /// The block the change disconnects.
        disconnected: BlockHash,
        /// The stored main chain's block at that height.
        stored: BlockHash,
    },
    /// The stored undo data of a block is not what replaying the chain gives.
    #[error("undo data of block {hash} at height {height} differs from a replay from genesis")]
    UndoDiffersFromReplay {
        /// The block's height.
        height: u64,
        /// The block.
        hash: BlockHash,
    },
    /// Undo data is stored for a block that is not on the stored main chain.
    #[error("undo data stored for block {hash}, which is not on the main chain")]
    UndoWithoutMainBlock {
        /// The block.
        hash: BlockHash,
    },
    /// The stored account state is not what replaying the main chain from genesis gives.
    #[error(
        "stored account of {address} is {stored:?} but a replay from genesis gives {replayed:?}"
    )]
    StateDiffersFromReplay {
        /// The first address that differs.
        address: Address,
        /// The stored account.
        stored: Account,
        /// The replay's.
        replayed: Account,
    },
    /// Any other database failure.
    #[error("store database error: {0}")]
    Database(Box<redb::Error>),
}

/// The redb database in a node's data directory.
#[derive(Debug)]
pub struct Store {
    /// Always `Some` until dropped; see the `Drop` impl. Shared with the readers that
    /// [`Store::reader`] hands the chain.
    db: Option<Arc<Database>>,
    path: PathBuf,
    params: NetworkParams,
    /// The file's format: [`FORMAT_VERSION`], or [`FORMAT_WITHOUT_STATE`] when opened for
    /// [`Store::reindex`].
    format: u32,
}

impl BlockSource for Store {
    fn stored_block(&self, height: u64, hash: &BlockHash) -> Result<Option<Block>, String> {
        self.block(height, hash).map_err(|e| e.to_string())
    }

    fn stored_blocks(&self, rows: &[(u64, BlockHash)]) -> Vec<Result<Option<Block>, String>> {
        self.read_rows(rows, |hash, bytes| self.decode_block(hash, bytes))
    }

    fn stored_headers(
        &self,
        rows: &[(u64, BlockHash)],
    ) -> Vec<Result<Option<BlockHeader>, String>> {
        // A stored block begins with its header; the chain checks the header's hash.
        self.read_rows(rows, |hash, bytes| {
            bytes
                .get(..BlockHeader::ENCODED_LEN)
                .and_then(|b| <&[u8; BlockHeader::ENCODED_LEN]>::try_from(b).ok())
                .map(BlockHeader::from_encoded)
                .ok_or_else(|| self.corrupt(format!("block {hash}: shorter than a header")))
        })
    }
}

/// The key of a block's rows in `bodies` and `undo_rows`: its height, big endian (so rows sort
/// by height), then its hash.
fn row_key(height: u64, hash: &BlockHash) -> [u8; 40] {
    let mut key = [0u8; 40];
    key[..8].copy_from_slice(&height.to_be_bytes());
    key[8..].copy_from_slice(&hash.0);
    key
}

/// The height and hash a row key names.
fn from_row_key(key: &[u8; 40]) -> (u64, BlockHash) {
    let mut height = [0u8; 8];
    height.copy_from_slice(&key[..8]);
    let mut hash = [0u8; 32];
    hash.copy_from_slice(&key[8..]);
    (u64::from_be_bytes(height), BlockHash(hash))
}

/// A network as named in errors: its name and the start of its genesis hash.
fn describe_network(name: &str, genesis: &BlockHash) -> String {
    format!("{name} (genesis {})", genesis.short())
}

/// redb reports a file that is not a database as invalid or truncated data: that is corruption,
/// not an access problem.
fn io_error(path: &Path, source: std::io::Error) -> StoreError {
    match source.kind() {
        std::io::ErrorKind::InvalidData | std::io::ErrorKind::UnexpectedEof => {
            StoreError::Corrupt {
                path: path.to_path_buf(),
                reason: format!("not a readable redb database ({source})"),
            }
        }
        _ => StoreError::Io {
            path: path.to_path_buf(),
            source,
        },
    }
}

thread_local! {
    /// True while this thread runs database code whose panics become errors.
    static QUIET: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    /// Panics kept off stderr on this thread (they were turned into errors instead).
    static SILENCED: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// Runs `f`, catching a panic without the panic hook printing it: a damaged store is reported
/// once, as a [`StoreError`], not also as a "panicked at" message on stderr. Installs (once) a
/// hook that defers to the previous one except on a thread inside this function.
fn catch_quietly<T>(f: impl FnOnce() -> T) -> std::thread::Result<T> {
    static HOOK: std::sync::Once = std::sync::Once::new();
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if QUIET.with(std::cell::Cell::get) {
                SILENCED.with(|n| n.set(n.get() + 1));
            } else {
                previous(info);
            }
        }));
    });
    let was_quiet = QUIET.with(|q| q.replace(true));
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    QUIET.with(|q| q.set(was_quiet));
    result
}

/// Runs `f`, turning a panic inside the database engine into [`StoreError::Corrupt`]: redb
/// trusts its own pages and can panic on a file damaged behind its back.
fn guarded<T>(path: &Path, f: impl FnOnce() -> Result<T, StoreError>) -> Result<T, StoreError> {
    catch_quietly(f).unwrap_or_else(|panic| {
        let what = panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown failure".to_string());
        Err(StoreError::Corrupt {
            path: path.to_path_buf(),
            reason: format!("the database engine failed reading it: {what}"),
        })
    })
}

/// Reads a 32-byte hash from a meta value.
pub(crate) fn hash_from(bytes: &[u8]) -> Option<BlockHash> {
    <[u8; 32]>::try_from(bytes).ok().map(BlockHash)
}

/// Reads the format version from its meta value: a u32, little endian.
pub(crate) fn format_from(bytes: &[u8]) -> Option<u32> {
    <[u8; 4]>::try_from(bytes).ok().map(u32::from_le_bytes)
}

/// One block's undo data: each address it touches and the account before it.
pub(crate) type UndoRecords = Vec<(Address, Account)>;

/// What [`Store::verify`] and [`Store::reindex`] found: a main chain that replays to the
/// stored state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// The tip's height.
    pub height: u64,
    /// The tip.
    pub tip: BlockHash,
    /// Non-zero accounts in the state.
    pub accounts: usize,
}

/// An account as stored: balance then nonce, u64 little endian each.
pub(crate) fn account_bytes(account: &Account) -> [u8; 16] {
    let mut out = [0u8; 16];
    out[..8].copy_from_slice(&account.balance.to_le_bytes());
    out[8..].copy_from_slice(&account.nonce.to_le_bytes());
    out
}

/// The inverse of [`account_bytes`].
pub(crate) fn account_from(bytes: [u8; 16]) -> Account {
    let mut balance = [0u8; 8];
    let mut nonce = [0u8; 8];
    balance.copy_from_slice(&bytes[..8]);
    nonce.copy_from_slice(&bytes[8..]);
    Account {
        balance: u64::from_le_bytes(balance),
        nonce: u64::from_le_bytes(nonce),
    }
}

/// Undo records as stored: address, balance, nonce, one [`UNDO_RECORD`] after another.
pub(crate) fn undo_bytes(records: &[(Address, Account)]) -> Vec<u8> {
    let mut out = Vec::with_capacity(records.len() * UNDO_RECORD);
    for (address, account) in records {
        out.extend_from_slice(&address.0);
        out.extend_from_slice(&account_bytes(account));
    }
    out
}

/// The inverse of [`undo_bytes`], or `None` when the length is not a whole number of records.
pub(crate) fn undo_from(bytes: &[u8]) -> Option<UndoRecords> {
    if !bytes.len().is_multiple_of(UNDO_RECORD) {
        return None;
    }
    Some(
        bytes
            .chunks_exact(UNDO_RECORD)
            .map(|r| {
                let mut address = [0u8; 20];
                address.copy_from_slice(&r[..20]);
                let mut account = [0u8; 16];
                account.copy_from_slice(&r[20..]);
                (Address(address), account_from(account))
            })
            .collect(),
    )
}

/// A block row's value decoded under the network's block size cap, checked to be the block
/// stored under `hash`; the error says what is wrong with the row.
pub(crate) fn block_from(
    hash: &BlockHash,
    bytes: &[u8],
    params: &NetworkParams,
) -> Result<Block, String> {
    let block: Block =
        decode(bytes, params.max_block_bytes).map_err(|e| format!("block {hash}: {e}"))?;
    if block.block_hash() != *hash {
        return Err(format!("block stored under {hash} has another hash"));
    }
    Ok(block)
}

/// Writes an account, removing its row when it is zero (the state keeps no zero accounts).
fn write_account(
    table: &mut redb::Table<[u8; 20], [u8; 16]>,
    address: &Address,
    account: &Account,
) -> Result<(), redb::StorageError> {
    if *account == Account::default() {
        table.remove(address.0)?;
    } else {
        table.insert(address.0, account_bytes(account))?;
    }
    Ok(())
}

/// The lowest address whose account differs between two states, with both accounts.
fn first_difference(stored: &State, replayed: &State) -> Option<(Address, Account, Account)> {
    let mut addresses: Vec<Address> = stored
        .accounts()
        .chain(replayed.accounts())
        .map(|(a, _)| *a)
        .collect();
    addresses.sort_unstable();
    addresses.dedup();
    addresses.into_iter().find_map(|a| {
        let (s, r) = (stored.account(&a), replayed.account(&a));
        (s != r).then_some((a, s, r))
    })
}

impl Drop for Store {
    fn drop(&mut self) {
        if let Some(db) = self.db.take() {
            // Closing (by the last holder) writes the allocator state and can panic on a
            // damaged file.
            let _ = catch_quietly(move || drop(db));
        }
    }
}

impl Store {
    /// Opens (or creates) the store in `dir` for the network `params`.
    ///
    /// # Errors
    /// [`StoreError::OtherNetwork`] for a directory of another network,
    /// [`StoreError::AlreadyOpen`] when another process holds it, [`StoreError::Corrupt`] for a
    /// damaged file, [`StoreError::Io`] when the directory cannot be created or read.
    pub fn open(dir: &Path, params: &NetworkParams) -> Result<Self, StoreError> {
        Self::open_with(dir, params, Opening::Serve)
    }

    /// Opens the store in `dir` after verifying every page's checksum, for
    /// [`Store::verify`]: a pass over the whole file, so a serving node's open skips it (its
    /// reads are checked row by row instead).
    ///
    /// # Errors
    /// As [`Store::open`], and [`StoreError::Corrupt`] for a damaged page anywhere.
    pub fn open_to_verify(dir: &Path, params: &NetworkParams) -> Result<Self, StoreError> {
        Self::open_with(dir, params, Opening::Verify)
    }

    /// Opens the store in `dir` also when it has the old format without account state, for
    /// [`Store::reindex`] only: reading the chain or committing is refused until then. Every
    /// page's checksum is verified first, as for [`Store::open_to_verify`].
    ///
    /// # Errors
    /// As [`Store::open_to_verify`].
    pub fn open_for_reindex(dir: &Path, params: &NetworkParams) -> Result<Self, StoreError> {
        Self::open_with(dir, params, Opening::Reindex)
    }

    fn open_with(dir: &Path, params: &NetworkParams, how: Opening) -> Result<Self, StoreError> {
        std::fs::create_dir_all(dir).map_err(|source| StoreError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        let path = dir.join(DB_FILE);
        let db = guarded(&path, || {
            Database::builder()
                .set_cache_size(CACHE_BYTES)
                .create(&path)
                .map_err(|e| match e {
                    redb::DatabaseError::DatabaseAlreadyOpen => {
                        StoreError::AlreadyOpen { path: path.clone() }
                    }
                    redb::DatabaseError::Storage(redb::StorageError::Io(source)) => {
                        io_error(&path, source)
                    }
                    other => StoreError::Corrupt {
                        path: path.clone(),
                        reason: other.to_string(),
                    },
                })
        })?;
        let mut store = Store {
            db: Some(Arc::new(db)),
            path: path.clone(),
            params: params.clone(),
            format: FORMAT_VERSION,
        };
        // The store is owned out here, so a panic inside the check does not drop it while
        // unwinding; it is dropped afterwards, through the guarded `Drop`.
        guarded(&path, || {
            if how != Opening::Serve {
                store.check_integrity()?;
            }
            store.format = store.check_or_initialise()?;
            if store.format == FORMAT_WITHOUT_STATE && how != Opening::Reindex {
                return Err(store.needs_reindex());
            }
            Ok(())
        })?;
        Ok(store)
    }

    /// The open database.
    fn db(&self) -> Result<&Database, StoreError> {
        self.db
            .as_deref()
            .ok_or_else(|| self.corrupt("database already closed"))
    }

    /// Verifies every page's checksum, so `verify` and `reindex` refuse a file damaged behind
    /// redb's back, whatever page the damage is in.
    fn check_integrity(&mut self) -> Result<(), StoreError> {
        let result = match self.db.as_mut().and_then(Arc::get_mut) {
            Some(db) => db.check_integrity(),
            None => return Err(self.corrupt("database already closed")),
        };
        match result {
            Ok(_) => Ok(()),
            Err(redb::DatabaseError::Storage(redb::StorageError::Io(source))) => {
                Err(io_error(&self.path, source))
            }
            Err(other) => Err(self.corrupt(other.to_string())),
        }
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Maps a redb error to ours, naming corruption as such.
    fn db_err(&self, e: impl Into<redb::Error>) -> StoreError {
        match e.into() {
            redb::Error::Corrupted(reason) => self.corrupt(reason),
            redb::Error::Io(source) => io_error(&self.path, source),
            other => StoreError::Database(Box::new(other)),
        }
    }

    fn corrupt(&self, reason: impl Into<String>) -> StoreError {
        StoreError::Corrupt {
            path: self.path.clone(),
            reason: reason.into(),
        }
    }

    fn needs_reindex(&self) -> StoreError {
        StoreError::NeedsReindex {
            path: self.path.clone(),
            found: self.format,
        }
    }

    /// Refuses to read or write the chain of a store that still has the old format.
    fn require_current_format(&self) -> Result<(), StoreError> {
        if self.format == FORMAT_VERSION {
            Ok(())
        } else {
            Err(self.needs_reindex())
        }
    }

    /// Writes the meta and the genesis block into a new store, or checks that an existing one
    /// has a known format and our network; returns the format.
    fn check_or_initialise(&self) -> Result<u32, StoreError> {
        let genesis = self.params.genesis();
        let genesis_hash = genesis.block_hash();
        let txn = self.db()?.begin_write().map_err(|e| self.db_err(e))?;
        {
            let mut meta = txn.open_table(META).map_err(|e| self.db_err(e))?;
            let stored_genesis = meta
                .get(META_GENESIS)
                .map_err(|e| self.db_err(e))?
                .map(|v| v.value().to_vec());
            if let Some(stored_genesis) = stored_genesis {
                let format = meta
                    .get(META_FORMAT)
                    .map_err(|e| self.db_err(e))?
                    .and_then(|v| format_from(v.value()))
                    .ok_or_else(|| self.corrupt("format version missing"))?;
                if ![FORMAT_VERSION, FORMAT_BY_HASH, FORMAT_WITHOUT_STATE].contains(&format) {
                    return Err(StoreError::UnsupportedFormat {
                        expected: FORMAT_VERSION,
                        found: format,
                    });
                }
                let stored_genesis = hash_from(&stored_genesis)
                    .ok_or_else(|| self.corrupt("genesis hash is not 32 bytes"))?;
                if stored_genesis != genesis_hash {
                    let name = meta
                        .get(META_NETWORK)
                        .map_err(|e| self.db_err(e))?
                        .map(|v| String::from_utf8_lossy(v.value()).into_owned())
                        .unwrap_or_else(|| "unnamed".to_string());
                    return Err(StoreError::OtherNetwork {
                        expected: describe_network(&self.params.name, &genesis_hash),
                        found: describe_network(&name, &stored_genesis),
                    });
                }
                if format == FORMAT_VERSION {
                    // Nothing to write: dropping the transaction aborts it.
                    return Ok(format);
                }
                // Bodies (and, from format 2, undo data) by hash: re-keyed by height, and a
                // format-2 file is then the current format. A format-1 file still needs
                // `reindex` for its state.
                drop(meta);
                self.rekey_by_height(&txn)?;
                let format = if format == FORMAT_BY_HASH {
                    let mut meta = txn.open_table(META).map_err(|e| self.db_err(e))?;
                    meta.insert(META_FORMAT, FORMAT_VERSION.to_le_bytes().as_slice())
                        .map_err(|e| self.db_err(e))?;
                    FORMAT_VERSION
                } else {
                    format
                };
                txn.commit().map_err(|e| self.db_err(e))?;
                return Ok(format);
            }
            let mut blocks = txn.open_table(BODIES).map_err(|e| self.db_err(e))?;
            let mut main = txn.open_table(MAIN_CHAIN).map_err(|e| self.db_err(e))?;
            if !blocks.is_empty().map_err(|e| self.db_err(e))?
                || !main.is_empty().map_err(|e| self.db_err(e))?
            {
                return Err(self.corrupt("blocks stored without a network"));
            }
            let put = |meta: &mut redb::Table<&str, &[u8]>, key: &str, value: &[u8]| {
                meta.insert(key, value).map(|_| ())
            };
            put(&mut meta, META_FORMAT, &FORMAT_VERSION.to_le_bytes())
                .and_then(|()| put(&mut meta, META_GENESIS, genesis_hash.as_bytes()))
                .and_then(|()| put(&mut meta, META_NETWORK, self.params.name.as_bytes()))
                .and_then(|()| put(&mut meta, META_TIP, genesis_hash.as_bytes()))
                .map_err(|e| self.db_err(e))?;
            blocks
                .insert(row_key(0, &genesis_hash), encode(&genesis).as_slice())
                .map_err(|e| self.db_err(e))?;
            main.insert(0, genesis_hash.0).map_err(|e| self.db_err(e))?;
            txn.open_table(NODE_KEY).map_err(|e| self.db_err(e))?;
            txn.open_table(ACCOUNTS).map_err(|e| self.db_err(e))?;
            txn.open_table(UNDO).map_err(|e| self.db_err(e))?;
        }
        txn.commit().map_err(|e| self.db_err(e))?;
        Ok(FORMAT_VERSION)
    }

    /// Moves the rows of the by-hash tables of formats 1 and 2 (`blocks`, `undo`) into
    /// `bodies` and `undo_rows`, keyed by height and hash, in `txn`, and drops the old tables.
    /// A body's height is its main-chain height, else its header's (a block a reorg left).
    fn rekey_by_height(&self, txn: &redb::WriteTransaction) -> Result<(), StoreError> {
        let heights: crate::ledger::digest_map::DigestMap<BlockHash, u64> = {
            let main = txn.open_table(MAIN_CHAIN).map_err(|e| self.db_err(e))?;
            let mut heights = crate::ledger::digest_map::DigestMap::default();
            for row in main.iter().map_err(|e| self.db_err(e))? {
                let (height, hash) = row.map_err(|e| self.db_err(e))?;
                heights.insert(BlockHash(hash.value()), height.value());
            }
            heights
        };
        {
            let old = txn.open_table(BLOCKS_BY_HASH).map_err(|e| self.db_err(e))?;
            let mut new = txn.open_table(BODIES).map_err(|e| self.db_err(e))?;
            for row in old.iter().map_err(|e| self.db_err(e))? {
                let (hash, bytes) = row.map_err(|e| self.db_err(e))?;
                let hash = BlockHash(hash.value());
                let height = match heights.get(&hash) {
                    Some(height) => *height,
                    None => self.decode_block(&hash, bytes.value())?.height(),
                };
                new.insert(row_key(height, &hash), bytes.value())
                    .map_err(|e| self.db_err(e))?;
            }
        }
        {
            let old = txn.open_table(UNDO_BY_HASH).map_err(|e| self.db_err(e))?;
            let mut new = txn.open_table(UNDO).map_err(|e| self.db_err(e))?;
            for row in old.iter().map_err(|e| self.db_err(e))? {
                let (hash, bytes) = row.map_err(|e| self.db_err(e))?;
                let hash = BlockHash(hash.value());
                let height = *heights
                    .get(&hash)
                    .ok_or(StoreError::UndoWithoutMainBlock { hash })?;
                new.insert(row_key(height, &hash), bytes.value())
                    .map_err(|e| self.db_err(e))?;
            }
        }
        txn.delete_table(BLOCKS_BY_HASH)
            .map_err(|e| self.db_err(e))?;
        txn.delete_table(UNDO_BY_HASH).map_err(|e| self.db_err(e))?;
        Ok(())
    }

    /// The stored tip.
    ///
    /// # Errors
    /// [`StoreError`] when the meta cannot be read or is damaged.
    pub fn tip(&self) -> Result<BlockHash, StoreError> {
        guarded(&self.path, || {
            let txn = self.db()?.begin_read().map_err(|e| self.db_err(e))?;
            let meta = txn.open_table(META).map_err(|e| self.db_err(e))?;
            let tip = meta.get(META_TIP).map_err(|e| self.db_err(e))?;
            tip.and_then(|v| hash_from(v.value()))
                .ok_or_else(|| self.corrupt("tip missing"))
        })
    }

    /// The stored main chain's hashes by height, genesis first, checked for gaps.
    ///
    /// # Errors
    /// [`StoreError::Corrupt`] for a gap, or a last hash that is not the stored tip.
    pub fn main_chain_hashes(&self) -> Result<Vec<BlockHash>, StoreError> {
        guarded(&self.path, || {
            let txn = self.db()?.begin_read().map_err(|e| self.db_err(e))?;
            self.read_main_chain(&txn)
        })
    }

    /// The main chain's hashes and the tip, read in one snapshot.
    fn read_main_chain(&self, txn: &redb::ReadTransaction) -> Result<Vec<BlockHash>, StoreError> {
        let meta = txn.open_table(META).map_err(|e| self.db_err(e))?;
        let tip = meta
            .get(META_TIP)
            .map_err(|e| self.db_err(e))?
            .and_then(|v| hash_from(v.value()))
            .ok_or_else(|| self.corrupt("tip missing"))?;
        let main = txn.open_table(MAIN_CHAIN).map_err(|e| self.db_err(e))?;
        let mut hashes = Vec::new();
        for row in main.iter().map_err(|e| self.db_err(e))? {
            let (height, hash) = row.map_err(|e| self.db_err(e))?;
            if height.value() != hashes.len() as u64 {
                return Err(self.corrupt(format!(
                    "main chain has height {} where {} was due",
                    height.value(),
                    hashes.len()
                )));
            }
            hashes.push(BlockHash(hash.value()));
        }
        if hashes.last() != Some(&tip) {
            return Err(self.corrupt("main chain does not end at the stored tip"));
        }
        Ok(hashes)
    }

    /// A stored block by hash, decoded under the network's block size cap.
    ///
    /// # Errors
    /// [`StoreError::Corrupt`] when the bytes do not decode to a block with that hash.
    pub fn block(&self, height: u64, hash: &BlockHash) -> Result<Option<Block>, StoreError> {
        guarded(&self.path, || {
            let txn = self.db()?.begin_read().map_err(|e| self.db_err(e))?;
            let blocks = txn.open_table(BODIES).map_err(|e| self.db_err(e))?;
            let Some(bytes) = blocks
                .get(row_key(height, hash))
                .map_err(|e| self.db_err(e))?
            else {
                return Ok(None);
            };
            self.decode_block(hash, bytes.value()).map(Some)
        })
    }

    /// The `bodies` rows at these heights with these hashes, in order, each turned into a value
    /// by `decode` (`None` for a row not stored), all in one read transaction; a transaction
    /// that cannot begin gives one error for all.
    fn read_rows<T>(
        &self,
        rows: &[(u64, BlockHash)],
        decode: impl Fn(&BlockHash, &[u8]) -> Result<T, StoreError>,
    ) -> Vec<Result<Option<T>, String>> {
        let read = guarded(&self.path, || {
            let txn = self.db()?.begin_read().map_err(|e| self.db_err(e))?;
            let bodies = txn.open_table(BODIES).map_err(|e| self.db_err(e))?;
            Ok(rows
                .iter()
                .map(|(height, hash)| {
                    let bytes = bodies
                        .get(row_key(*height, hash))
                        .map_err(|e| self.db_err(e))?;
                    bytes.map(|b| decode(hash, b.value())).transpose()
                })
                .map(|row| row.map_err(|e| e.to_string()))
                .collect())
        });
        read.unwrap_or_else(|e: StoreError| vec![Err(e.to_string())])
    }

    fn decode_block(&self, hash: &BlockHash, bytes: &[u8]) -> Result<Block, StoreError> {
        block_from(hash, bytes, &self.params).map_err(|reason| self.corrupt(reason))
    }

    /// The main chain's blocks above genesis, read in `txn`, each checked against its index row
    /// (hash and height); with the main chain's hashes, genesis first.
    fn read_main_blocks(
        &self,
        txn: &redb::ReadTransaction,
    ) -> Result<(Vec<BlockHash>, Vec<Block>), StoreError> {
        let hashes = self.read_main_chain(txn)?;
        if hashes.first() != Some(&self.params.genesis_hash()) {
            return Err(self.corrupt("main chain does not start at this network's genesis"));
        }
        let table = txn.open_table(BODIES).map_err(|e| self.db_err(e))?;
        let mut blocks = Vec::with_capacity(hashes.len().saturating_sub(1));
        for (height, hash) in hashes.iter().enumerate().skip(1) {
            let bytes = table
                .get(row_key(height as u64, hash))
                .map_err(|e| self.db_err(e))?
                .ok_or_else(|| self.corrupt(format!("main-chain block {hash} is missing")))?;
            let block = self.decode_block(hash, bytes.value())?;
            if block.height() != height as u64 {
                return Err(self.corrupt(format!(
                    "block {hash} at main-chain height {height} says height {}",
                    block.height()
                )));
            }
            blocks.push(block);
        }
        Ok((hashes, blocks))
    }

    /// The stored account state.
    fn read_state(&self, txn: &redb::ReadTransaction) -> Result<State, StoreError> {
        let table = txn.open_table(ACCOUNTS).map_err(|e| self.db_err(e))?;
        let mut accounts = Vec::new();
        for row in table.iter().map_err(|e| self.db_err(e))? {
            let (address, account) = row.map_err(|e| self.db_err(e))?;
            let account = account_from(account.value());
            if account == Account::default() {
                return Err(self.corrupt(format!(
                    "zero account stored for {}",
                    Address(address.value())
                )));
            }
            accounts.push((Address(address.value()), account));
        }
        Ok(State::from_accounts(accounts))
    }

    /// Decodes a block's undo records.
    fn decode_undo(
        &self,
        hash: &BlockHash,
        bytes: &[u8],
    ) -> Result<Vec<(Address, Account)>, StoreError> {
        undo_from(bytes)
            .ok_or_else(|| self.corrupt(format!("undo data of {hash} has {} bytes", bytes.len())))
    }

    /// Replays `blocks` (heights 1..=tip) from genesis with every rule but signatures; returns
    /// the chain and each block's undo data, lowest first.
    fn replay(&self, blocks: Vec<Block>) -> Result<(Chain, Vec<UndoRecords>), StoreError> {
        let chain = Chain::from_main_chain(self.params.clone(), blocks)
            .map_err(StoreError::InvalidChain)?;
        let mut state = State::new();
        let mut undos = Vec::with_capacity(chain.height() as usize);
        for block in chain.main_chain().skip(1) {
            undos.push(state.undo_data(&block));
            state
                .apply_block(&block, self.params.reward)
                .map_err(StoreError::InvalidChain)?;
        }
        Ok((chain, undos))
    }

    /// Loads the stored main chain and its state without replaying it or reading its bodies:
    /// the index (hashes by height), the tip's body and the state as stored; the chain reads
    /// other bodies through [`Store::reader`] when it needs them. Side branches are not
    /// restored. [`Store::verify`] checks the index, the blocks and the state agree.
    ///
    /// # Errors
    /// [`StoreError::Corrupt`] for a damaged store, [`StoreError::NeedsReindex`] for the old
    /// format, [`StoreError::InvalidChain`] when the tip's body does not match the index.
    pub fn load_chain(&self) -> Result<Chain, StoreError> {
        guarded(&self.path, || {
            self.require_current_format()?;
            let txn = self.db()?.begin_read().map_err(|e| self.db_err(e))?;
            let hashes = self.read_main_chain(&txn)?;
            if hashes.first() != Some(&self.params.genesis_hash()) {
                return Err(self.corrupt("main chain does not start at this network's genesis"));
            }
            let tip = hashes.last().copied().unwrap_or(BlockHash::ZERO);
            let table = txn.open_table(BODIES).map_err(|e| self.db_err(e))?;
            let tip_height = hashes.len().saturating_sub(1) as u64;
            let bytes = table
                .get(row_key(tip_height, &tip))
                .map_err(|e| self.db_err(e))?
                .ok_or_else(|| self.corrupt(format!("main-chain block {tip} is missing")))?;
            let tip_block = self.decode_block(&tip, bytes.value())?;
            let state = self.read_state(&txn)?;
            let source: Arc<dyn BlockSource> = Arc::new(self.reader());
            Chain::from_index(self.params.clone(), hashes, tip_block, state, source)
                .map_err(StoreError::InvalidChain)
        })
    }

    /// A second handle on the same database, for reading blocks (the chain reads main-chain
    /// bodies it does not keep in memory through it).
    pub fn reader(&self) -> Store {
        Store {
            db: self.db.clone(),
            path: self.path.clone(),
            params: self.params.clone(),
            format: self.format,
        }
    }

    /// Replays the stored main chain from genesis with every rule but signatures, and checks
    /// that the stored index, tip, undo data and account state agree with it.
    ///
    /// # Errors
    /// The first disagreement: [`StoreError::Corrupt`], [`StoreError::InvalidChain`],
    /// [`StoreError::UndoMissing`], [`StoreError::UndoDiffersFromReplay`],
    /// [`StoreError::UndoWithoutMainBlock`] or [`StoreError::StateDiffersFromReplay`].
    pub fn verify(&self) -> Result<Verified, StoreError> {
        guarded(&self.path, || {
            self.require_current_format()?;
            let txn = self.db()?.begin_read().map_err(|e| self.db_err(e))?;
            let (hashes, blocks) = self.read_main_blocks(&txn)?;
            let (chain, undos) = self.replay(blocks)?;
            let table = txn.open_table(UNDO).map_err(|e| self.db_err(e))?;
            for ((height, hash), expected) in hashes.iter().enumerate().skip(1).zip(&undos) {
                let height = height as u64;
                let stored = table
                    .get(row_key(height, hash))
                    .map_err(|e| self.db_err(e))?
                    .ok_or(StoreError::UndoMissing {
                        height,
                        hash: *hash,
                    })?;
                if self.decode_undo(hash, stored.value())? != *expected {
                    return Err(StoreError::UndoDiffersFromReplay {
                        height,
                        hash: *hash,
                    });
                }
            }
            if table.len().map_err(|e| self.db_err(e))? != undos.len() as u64 {
                for row in table.iter().map_err(|e| self.db_err(e))? {
                    let (height, hash) = from_row_key(&row.map_err(|e| self.db_err(e))?.0.value());
                    let on_main = usize::try_from(height)
                        .ok()
                        .and_then(|h| hashes.get(h))
                        .is_some_and(|h| *h == hash);
                    if !on_main || height == 0 {
                        return Err(StoreError::UndoWithoutMainBlock { hash });
                    }
                }
            }
            let stored = self.read_state(&txn)?;
            if let Some((address, stored, replayed)) = first_difference(&stored, chain.state()) {
                return Err(StoreError::StateDiffersFromReplay {
                    address,
                    stored,
                    replayed,
                });
            }
            Ok(Verified {
                height: chain.height(),
                tip: chain.tip(),
                accounts: stored.len(),
            })
        })
    }

    /// Rebuilds the account state and the undo data from the stored main chain's blocks,
    /// replayed from genesis, and sets the current format: upgrades a store of the old format
    /// or repairs a damaged state. One write transaction, so a kill leaves the store as before.
    ///
    /// # Errors
    /// [`StoreError::Corrupt`] or [`StoreError::InvalidChain`] when the stored blocks do not
    /// replay; nothing is written then.
    pub fn reindex(&mut self) -> Result<Verified, StoreError> {
        let verified = guarded(&self.path, || {
            let (hashes, chain, undos) = {
                let txn = self.db()?.begin_read().map_err(|e| self.db_err(e))?;
                let (hashes, blocks) = self.read_main_blocks(&txn)?;
                let (chain, undos) = self.replay(blocks)?;
                (hashes, chain, undos)
            };
            let txn = self.db()?.begin_write().map_err(|e| self.db_err(e))?;
            {
                txn.delete_table(ACCOUNTS).map_err(|e| self.db_err(e))?;
                txn.delete_table(UNDO).map_err(|e| self.db_err(e))?;
                let mut accounts = txn.open_table(ACCOUNTS).map_err(|e| self.db_err(e))?;
                for (address, account) in chain.state().accounts() {
                    accounts
                        .insert(address.0, account_bytes(account))
                        .map_err(|e| self.db_err(e))?;
                }
                let mut table = txn.open_table(UNDO).map_err(|e| self.db_err(e))?;
                for ((height, hash), undo) in hashes.iter().enumerate().skip(1).zip(&undos) {
                    table
                        .insert(row_key(height as u64, hash), undo_bytes(undo).as_slice())
                        .map_err(|e| self.db_err(e))?;
                }
                let mut meta = txn.open_table(META).map_err(|e| self.db_err(e))?;
                meta.insert(META_FORMAT, FORMAT_VERSION.to_le_bytes().as_slice())
                    .map_err(|e| self.db_err(e))?;
            }
            txn.commit().map_err(|e| self.db_err(e))?;
            Ok(Verified {
                height: chain.height(),
                tip: chain.tip(),
                accounts: chain.state().len(),
            })
        })?;
        self.format = FORMAT_VERSION;
        Ok(verified)
    }

    /// Durably records what [`Chain::accept_block`] changed, in one transaction: the connected
    /// blocks, the main-chain index above the fork point, the tip, the account state (the
    /// disconnected blocks undone with their stored undo data, the connected ones applied) and
    /// the connected blocks' undo data.
    ///
    /// # Errors
    /// [`StoreError::OutOfSync`] if the change does not start at the stored tip,
    /// [`StoreError::BadTipChange`] if its blocks do not follow the fork point,
    /// [`StoreError::DisconnectsOffMainChain`] or [`StoreError::UndoMissing`] if a block it
    /// disconnects is not the stored one, [`StoreError::InvalidChain`] if a connected block
    /// breaks a state rule; nothing is written then.
    pub fn commit(&self, accepted: &Accepted) -> Result<(), StoreError> {
        self.commit_all(std::slice::from_ref(accepted))
    }

    /// Writes the tip changes of several accepted blocks, in the order the chain reported them,
    /// in one write transaction: all of them or, on an error, none.
    ///
    /// # Errors
    /// As [`Store::commit`], for the first change that does not follow the one before.
    pub fn commit_all<'a>(
        &self,
        accepted: impl IntoIterator<Item = &'a Accepted>,
    ) -> Result<(), StoreError> {
        let changes: Vec<&TipChange> = accepted
            .into_iter()
            .filter_map(|a| a.tip_change.as_ref())
            .collect();
        if changes.is_empty() {
            return Ok(());
        }
        guarded(&self.path, || {
            self.require_current_format()?;
            let txn = self.db()?.begin_write().map_err(|e| self.db_err(e))?;
            let mut touched = BTreeMap::new();
            for change in changes {
                self.write_tip_change(&txn, change, &mut touched)?;
            }
            // Each account the changes touched is written once, with its last value, in
            // address order: a batch of blocks from one miner or one sender costs one row.
            let mut accounts = txn.open_table(ACCOUNTS).map_err(|e| self.db_err(e))?;
            for (address, account) in &touched {
                write_account(&mut accounts, address, account).map_err(|e| self.db_err(e))?;
            }
            drop(accounts);
            txn.commit().map_err(|e| self.db_err(e))
        })
    }

    /// The writes of [`Store::commit`], in its transaction. Accounts are not written here:
    /// their new values go to `touched` (read back before the table), which the caller
    /// writes once for all the changes of the transaction.
    fn write_tip_change(
        &self,
        txn: &redb::WriteTransaction,
        change: &TipChange,
        touched: &mut BTreeMap<Address, Account>,
    ) -> Result<(), StoreError> {
        let mut meta = txn.open_table(META).map_err(|e| self.db_err(e))?;
        let stored = meta
            .get(META_TIP)
            .map_err(|e| self.db_err(e))?
            .and_then(|v| hash_from(v.value()))
            .ok_or_else(|| self.corrupt("tip missing"))?;
        if stored != change.old_tip {
            return Err(StoreError::OutOfSync {
                stored,
                change_from: change.old_tip,
            });
        }
        let mut blocks = txn.open_table(BODIES).map_err(|e| self.db_err(e))?;
        let mut main = txn.open_table(MAIN_CHAIN).map_err(|e| self.db_err(e))?;
        let accounts = txn.open_table(ACCOUNTS).map_err(|e| self.db_err(e))?;
        let mut undo = txn.open_table(UNDO).map_err(|e| self.db_err(e))?;
        // Disconnect, old tip first: each popped index row must be the block the change
        // names, and its undo data puts back the accounts it touched.
        let mut disconnected = change.disconnected.iter();
        loop {
            let last = main
                .last()
                .map_err(|e| self.db_err(e))?
                .map(|(h, b)| (h.value(), BlockHash(b.value())));
            let Some((height, hash)) = last.filter(|(h, _)| *h > change.fork_height) else {
                break;
            };
            match disconnected.next().map(|b| b.block_hash()) {
                Some(named) if named == hash => {}
                named => {
                    return Err(StoreError::DisconnectsOffMainChain {
                        disconnected: named.unwrap_or(BlockHash::ZERO),
                        stored: hash,
                    })
                }
            }
            let records = undo
                .remove(row_key(height, &hash))
                .map_err(|e| self.db_err(e))?
                .map(|v| v.value().to_vec())
                .ok_or(StoreError::UndoMissing { height, hash })?;
            touched.extend(self.decode_undo(&hash, &records)?);
            main.pop_last().map_err(|e| self.db_err(e))?;
        }
        if let Some(extra) = disconnected.next() {
            return Err(StoreError::DisconnectsOffMainChain {
                disconnected: extra.block_hash(),
                stored: BlockHash::ZERO,
            });
        }
        // Connect, lowest first. Only blocks joining the main chain are written: side
        // branches are not reloaded after a restart, and the chain prunes them from memory,
        // so writing them would only let peers grow the file with blocks nobody reads.
        for (i, block) in change.connected.iter().enumerate() {
            let expected = change.fork_height + 1 + i as u64;
            if block.height() != expected {
                return Err(StoreError::BadTipChange {
                    expected,
                    got: block.height(),
                });
            }
            let hash = block.block_hash();
            let mut before = Vec::new();
            for address in touched_addresses(block) {
                let account = match touched.get(&address) {
                    Some(account) => *account,
                    None => accounts
                        .get(address.0)
                        .map_err(|e| self.db_err(e))?
                        .map_or_else(Account::default, |v| account_from(v.value())),
                };
                before.push((address, account));
            }
            let mut state = State::from_accounts(before.iter().copied());
            state
                .apply_block(block, self.params.reward)
                .map_err(StoreError::InvalidChain)?;
            for (address, _) in &before {
                touched.insert(*address, state.account(address));
            }
            undo.insert(row_key(expected, &hash), undo_bytes(&before).as_slice())
                .map_err(|e| self.db_err(e))?;
            blocks
                .insert(row_key(expected, &hash), encode(block.as_ref()).as_slice())
                .map_err(|e| self.db_err(e))?;
            main.insert(expected, hash.0).map_err(|e| self.db_err(e))?;
        }
        meta.insert(META_TIP, change.new_tip.as_bytes().as_slice())
            .map_err(|e| self.db_err(e))?;
        Ok(())
    }

    /// The node's ed25519 secret key, created with the operating system's CSPRNG on first use
    /// and kept, so the node's identity survives restarts.
    ///
    /// # Errors
    /// [`StoreError`] when the key cannot be read or written.
    pub fn node_key(&self) -> Result<[u8; 32], StoreError> {
        guarded(&self.path, || {
            let txn = self.db()?.begin_write().map_err(|e| self.db_err(e))?;
            let key = {
                let mut table = txn.open_table(NODE_KEY).map_err(|e| self.db_err(e))?;
                let existing = table
                    .get(NODE_KEY_ED25519)
                    .map_err(|e| self.db_err(e))?
                    .map(|v| v.value());
                if let Some(key) = existing {
                    return Ok(key);
                }
                let key = SigningKey::generate(&mut rand::rngs::OsRng).to_bytes();
                table
                    .insert(NODE_KEY_ED25519, key)
                    .map_err(|e| self.db_err(e))?;
                key
            };
            txn.commit().map_err(|e| self.db_err(e))?;
            Ok(key)
        })
    }
}

#[cfg(test)]
mod tests {
    use redb::TableHandle;
    use std::sync::Arc;

    use super::*;
    use crate::ledger::block::{compute_tx_root, BlockHeader};
    use crate::ledger::chain::{Placement, TipChange};
    use crate::ledger::hash::{Address, TxId};
    use crate::ledger::state::State;
    use crate::ledger::transaction::Transaction;

    fn params() -> NetworkParams {
        NetworkParams::for_tests("store-test", 0)
    }

    /// A child of `parent` whose coinbase pays `tag`, so siblings differ.
    fn child(parent: &Block, tag: u8) -> Arc<Block> {
        child_paying(parent, Address([tag; 20]), vec![])
    }

    /// A valid child of `parent` (difficulty 0, reward 50) paying `miner`, with `transfers`.
    fn child_paying(parent: &Block, miner: Address, transfers: Vec<Transaction>) -> Arc<Block> {
        let height = parent.height() + 1;
        let fees: u64 = transfers.iter().map(Transaction::fee).sum();
        let mut txs = vec![Transaction::coinbase(height, miner, 50 + fees)];
        txs.extend(transfers);
        let ids: Vec<TxId> = txs.iter().map(Transaction::compute_txid).collect();
        Arc::new(Block {
            header: BlockHeader {
                height,
                prev_hash: parent.block_hash(),
                tx_root: compute_tx_root(&ids),
                timestamp: parent.header.timestamp + 1,
                difficulty: 0,
                nonce: 0,
            },
            transactions: txs,
        })
    }

    fn branch(from: &Block, len: usize, tag: u8) -> Vec<Arc<Block>> {
        let mut out: Vec<Arc<Block>> = Vec::new();
        for _ in 0..len {
            let next = child(out.last().map_or(from, |b| b.as_ref()), tag);
            out.push(next);
        }
        out
    }

    /// What the chain reports for blocks that become the main chain after `fork`.
    fn accepted(
        old_tip: BlockHash,
        fork_height: u64,
        disconnected: Vec<Arc<Block>>,
        connected: Vec<Arc<Block>>,
    ) -> Accepted {
        let last = connected.last().cloned().expect("connects something");
        Accepted {
            hash: last.block_hash(),
            placement: Placement::MainChain,
            tip_change: Some(TipChange {
                old_tip,
                new_tip: last.block_hash(),
                fork_height,
                disconnected,
                connected,
            }),
            invalid: vec![],
        }
    }

    fn hashes(blocks: &[Arc<Block>]) -> Vec<BlockHash> {
        blocks.iter().map(|b| b.block_hash()).collect()
    }

    #[test]
    fn a_new_store_holds_the_genesis_as_its_tip() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), &params()).unwrap();
        assert_eq!(store.tip().unwrap(), params().genesis_hash());
        assert_eq!(
            store.main_chain_hashes().unwrap(),
            vec![params().genesis_hash()]
        );
        assert_eq!(
            store.block(0, &params().genesis_hash()).unwrap(),
            Some(params().genesis())
        );
    }

    #[test]
    fn committed_blocks_round_trip_after_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let genesis = params().genesis();
        let blocks = branch(&genesis, 5, 1);
        {
            let store = Store::open(dir.path(), &params()).unwrap();
            let mut tip = genesis.block_hash();
            for (i, b) in blocks.iter().enumerate() {
                store
                    .commit(&accepted(tip, i as u64, vec![], vec![b.clone()]))
                    .unwrap();
                tip = b.block_hash();
            }
        }
        let store = Store::open(dir.path(), &params()).unwrap();
        let mut expected = vec![genesis.block_hash()];
        expected.extend(hashes(&blocks));
        assert_eq!(store.main_chain_hashes().unwrap(), expected);
        for b in &blocks {
            assert_eq!(
                store.block(b.height(), &b.block_hash()).unwrap().as_ref(),
                Some(b.as_ref())
            );
        }
    }

    #[test]
    fn a_reorg_rewrites_the_main_index_above_the_fork() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), &params()).unwrap();
        let genesis = params().genesis();
        let old = branch(&genesis, 4, 1);
        store
            .commit(&accepted(genesis.block_hash(), 0, vec![], old.clone()))
            .unwrap();
        // A side branch from height 1 that is longer: heights 2..=4 are replaced, 5 added.
        let new = branch(&old[0], 4, 2);
        let disconnected: Vec<_> = old[1..].iter().rev().cloned().collect();
        store
            .commit(&accepted(old[3].block_hash(), 1, disconnected, new.clone()))
            .unwrap();
        let mut expected = vec![genesis.block_hash(), old[0].block_hash()];
        expected.extend(hashes(&new));
        assert_eq!(store.main_chain_hashes().unwrap(), expected);
        assert_eq!(store.tip().unwrap(), new[3].block_hash());
        // The abandoned blocks stay stored, for a later reorg back.
        assert!(store
            .block(old[3].height(), &old[3].block_hash())
            .unwrap()
            .is_some());
    }

    #[test]
    fn a_side_branch_block_is_written_only_when_it_joins_the_main_chain() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), &params()).unwrap();
        let genesis = params().genesis();
        let main = branch(&genesis, 2, 1);
        store
            .commit(&accepted(genesis.block_hash(), 0, vec![], main.clone()))
            .unwrap();
        let side = child(&genesis, 2);
        store
            .commit(&Accepted {
                hash: side.block_hash(),
                placement: Placement::SideBranch,
                tip_change: None,
                invalid: vec![],
            })
            .unwrap();
        assert_eq!(store.tip().unwrap(), main[1].block_hash());
        assert_eq!(store.main_chain_hashes().unwrap().len(), 3);
        assert_eq!(
            store.block(side.height(), &side.block_hash()).unwrap(),
            None
        );
        // The side branch grows past the main chain: its blocks are written with the reorg.
        let side_tip = child(&side, 3);
        store
            .commit(&accepted(
                main[1].block_hash(),
                0,
                vec![main[1].clone(), main[0].clone()],
                vec![side.clone(), side_tip.clone()],
            ))
            .unwrap();
        assert_eq!(store.tip().unwrap(), side_tip.block_hash());
        assert_eq!(
            store
                .block(side.height(), &side.block_hash())
                .unwrap()
                .as_ref(),
            Some(side.as_ref())
        );
    }

    #[test]
    fn a_tip_change_from_a_stale_tip_is_refused_and_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), &params()).unwrap();
        let genesis = params().genesis();
        let blocks = branch(&genesis, 2, 1);
        let skipped = accepted(blocks[0].block_hash(), 1, vec![], vec![blocks[1].clone()]);
        assert!(matches!(
            store.commit(&skipped),
            Err(StoreError::OutOfSync { .. })
        ));
        let gap = accepted(genesis.block_hash(), 0, vec![], vec![blocks[1].clone()]);
        assert!(matches!(
            store.commit(&gap),
            Err(StoreError::BadTipChange {
                expected: 1,
                got: 2
            })
        ));
        assert_eq!(store.tip().unwrap(), genesis.block_hash());
        assert_eq!(
            store
                .block(blocks[1].height(), &blocks[1].block_hash())
                .unwrap(),
            None
        );
    }

    #[test]
    fn the_node_key_is_created_once_and_survives_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let first = {
            let store = Store::open(dir.path(), &params()).unwrap();
            let key = store.node_key().unwrap();
            assert_eq!(store.node_key().unwrap(), key);
            key
        };
        let store = Store::open(dir.path(), &params()).unwrap();
        assert_eq!(store.node_key().unwrap(), first);
        let other = tempfile::tempdir().unwrap();
        let other = Store::open(other.path(), &params()).unwrap();
        assert_ne!(other.node_key().unwrap(), first);
    }

    #[test]
    fn a_directory_of_another_network_is_refused_naming_both() {
        let dir = tempfile::tempdir().unwrap();
        drop(Store::open(dir.path(), &NetworkParams::for_tests("alpha", 0)).unwrap());
        let err = Store::open(dir.path(), &NetworkParams::for_tests("beta", 0)).unwrap_err();
        assert!(matches!(err, StoreError::OtherNetwork { .. }));
        let message = err.to_string();
        assert!(
            message.contains("alpha") && message.contains("beta"),
            "{message}"
        );
        // Same name, other parameters: still another network.
        let err = Store::open(dir.path(), &NetworkParams::for_tests("alpha", 3)).unwrap_err();
        assert!(matches!(err, StoreError::OtherNetwork { .. }), "{err}");
    }

    #[test]
    fn a_panic_in_the_engine_becomes_corruption_without_a_message_on_stderr() {
        let before = SILENCED.with(std::cell::Cell::get);
        let result: Result<(), StoreError> = guarded(Path::new("/nowhere/store.redb"), || {
            panic!("page 7 is damaged")
        });
        match result {
            Err(StoreError::Corrupt { reason, .. }) => assert!(reason.contains("page 7")),
            other => panic!("expected corruption, got {other:?}"),
        }
        // The hook saw the panic and kept it quiet, instead of printing "panicked at".
        assert_eq!(SILENCED.with(std::cell::Cell::get), before + 1);
        assert!(
            !QUIET.with(std::cell::Cell::get),
            "quiet mode ends with the call"
        );
    }

    #[test]
    fn a_garbage_file_gives_an_error_not_a_panic() {
        for len in [0usize, 10, 4096, 100_000] {
            let dir = tempfile::tempdir().unwrap();
            let bytes: Vec<u8> = (0..len).map(|i| (i * 7 + 3) as u8).collect();
            std::fs::write(dir.path().join(DB_FILE), bytes).unwrap();
            match Store::open(dir.path(), &params()) {
                // An empty file is a new database.
                Ok(store) if len == 0 => assert_eq!(store.tip().unwrap(), params().genesis_hash()),
                Ok(_) => panic!("{len} garbage bytes opened as a store"),
                Err(e) => assert!(matches!(e, StoreError::Corrupt { .. }), "{len}: {e}"),
            }
        }
    }

    #[test]
    fn a_damaged_block_row_is_reported_as_corruption() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), &params()).unwrap();
        let genesis = params().genesis();
        let blocks = branch(&genesis, 1, 1);
        store
            .commit(&accepted(genesis.block_hash(), 0, vec![], blocks.clone()))
            .unwrap();
        let txn = store.db().unwrap().begin_write().unwrap();
        {
            let mut table = txn.open_table(BODIES).unwrap();
            table
                .insert(
                    row_key(blocks[0].height(), &blocks[0].block_hash()),
                    [1u8, 2, 3].as_slice(),
                )
                .unwrap();
        }
        txn.commit().unwrap();
        assert!(matches!(
            store.block(blocks[0].height(), &blocks[0].block_hash()),
            Err(StoreError::Corrupt { .. })
        ));
    }

    #[test]
    fn a_gap_in_the_main_index_is_reported_as_corruption() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), &params()).unwrap();
        let genesis = params().genesis();
        let blocks = branch(&genesis, 3, 1);
        store
            .commit(&accepted(genesis.block_hash(), 0, vec![], blocks))
            .unwrap();
        let txn = store.db().unwrap().begin_write().unwrap();
        txn.open_table(MAIN_CHAIN).unwrap().remove(2).unwrap();
        txn.commit().unwrap();
        let err = store.load_chain().unwrap_err();
        assert!(
            matches!(&err, StoreError::Corrupt { reason, .. } if reason.contains("height 3 where 2")),
            "{err}"
        );
    }

    #[test]
    fn a_second_open_of_the_same_directory_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let _first = Store::open(dir.path(), &params()).unwrap();
        let err = Store::open(dir.path(), &params()).unwrap_err();
        assert!(matches!(err, StoreError::AlreadyOpen { .. }), "{err}");
        assert!(err.to_string().contains("already open"));
    }

    #[test]
    fn damaged_bytes_in_a_real_store_give_an_error_or_a_whole_store_never_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        let genesis = params().genesis();
        let blocks = branch(&genesis, 3, 1);
        {
            let store = Store::open(dir.path(), &params()).unwrap();
            store
                .commit(&accepted(genesis.block_hash(), 0, vec![], blocks.clone()))
                .unwrap();
            store.node_key().unwrap();
        }
        let path = dir.path().join(DB_FILE);
        let original = std::fs::read(&path).unwrap();
        // Damage a few bytes of pages that hold data.
        let mut offsets = Vec::new();
        for (page, bytes) in original.chunks(4096).enumerate() {
            let used: Vec<usize> = (0..bytes.len()).filter(|&i| bytes[i] != 0).collect();
            for pick in [
                0,
                used.len() / 3,
                used.len() / 2,
                used.len() - used.len().min(1),
            ] {
                if let Some(i) = used.get(pick) {
                    offsets.push(page * 4096 + i);
                }
            }
        }
        offsets.dedup();
        // About 80 of them, spread over the file, keep the test to a few seconds.
        let step = offsets.len().div_ceil(80).max(1);
        let offsets: Vec<usize> = offsets.into_iter().step_by(step).collect();
        let (mut errors, mut whole) = (0, 0);
        for offset in offsets {
            let mut damaged = original.clone();
            damaged[offset] ^= 0x5a;
            std::fs::write(&path, &damaged).unwrap();
            let read_all = |store: Store| {
                let hashes = store.main_chain_hashes()?;
                for (height, hash) in hashes.iter().enumerate() {
                    store.block(height as u64, hash)?;
                }
                store.node_key()?;
                Ok(hashes)
            };
            // A serving open does not read every page: whatever it reads is an error or
            // whole (a panic in the engine would fail the test), and the checked open used by
            // `verify` finds any damage it missed.
            let _ = Store::open(dir.path(), &params()).and_then(read_all);
            let outcome = Store::open_to_verify(dir.path(), &params()).and_then(read_all);
            match outcome {
                Ok(hashes) => {
                    assert_eq!(hashes.len(), 4, "damage at {offset} lost blocks silently");
                    whole += 1;
                }
                Err(e) => {
                    assert!(!e.to_string().is_empty());
                    errors += 1;
                }
            }
        }
        assert!(
            errors > 0 && whole + errors > 10,
            "{errors} errors, {whole} whole"
        );
    }

    // ---- with a real chain ----

    /// Far enough ahead that no test block is "from the future".
    const NOW: u64 = crate::ledger::params::GENESIS_TIMESTAMP_MS + 1_000_000_000;

    /// Offers a block to the chain and commits what it reports, as the node does.
    fn offer(chain: &mut Chain, store: &Store, block: &Block) -> Accepted {
        let accepted = chain.accept_block(block.clone(), NOW).unwrap();
        store.commit(&accepted).unwrap();
        accepted
    }

    /// The state a replay of the chain's main chain from genesis gives.
    fn replay(chain: &Chain) -> State {
        let mut state = State::new();
        for block in chain.main_chain().skip(1) {
            state.apply_block(&block, chain.params().reward).unwrap();
        }
        state
    }

    /// An in-memory copy of a chain's main chain, which outlives the store the chain reads its
    /// bodies from (the store can then be closed and reopened).
    fn detached(chain: Chain) -> Chain {
        let blocks = chain.main_chain().skip(1).map(|b| (*b).clone()).collect();
        Chain::from_main_chain(chain.params().clone(), blocks).unwrap()
    }

    fn assert_same_chain(loaded: &Chain, live: &Chain) {
        assert_eq!(loaded.tip(), live.tip());
        assert_eq!(loaded.height(), live.height());
        assert_eq!(loaded.total_work(), live.total_work());
        assert_eq!(loaded.state(), live.state());
        let a: Vec<_> = loaded.main_chain().map(|b| b.block_hash()).collect();
        let b: Vec<_> = live.main_chain().map(|b| b.block_hash()).collect();
        assert_eq!(a, b);
    }

    fn signer(seed: u8) -> (ed25519_dalek::SigningKey, Address) {
        let key = ed25519_dalek::SigningKey::from_bytes(&[seed; 32]);
        let address =
            crate::ledger::transaction::PublicKey(key.verifying_key().to_bytes()).address();
        (key, address)
    }

    /// Extends the chain's tip by one block paying `miner`, with a transfer from `payer` when
    /// it can afford one.
    fn extend(
        chain: &mut Chain,
        store: &Store,
        miner: Address,
        payer: &ed25519_dalek::SigningKey,
        to: u8,
    ) -> Accepted {
        let block = next_block(chain, miner, payer, to);
        offer(chain, store, &block)
    }

    /// The block [`extend`] offers.
    fn next_block(
        chain: &Chain,
        miner: Address,
        payer: &ed25519_dalek::SigningKey,
        to: u8,
    ) -> Arc<Block> {
        let from =
            crate::ledger::transaction::PublicKey(payer.verifying_key().to_bytes()).address();
        let state = chain.state();
        let transfers = if state.balance(&from) >= 3 {
            vec![Transaction::sign_transfer(
                payer,
                &chain.genesis_hash().into(),
                Address([to; 20]),
                2,
                1,
                state.next_nonce(&from),
            )]
        } else {
            vec![]
        };
        child_paying(chain.tip_block(), miner, transfers)
    }

    #[test]
    fn a_restart_restores_the_exact_chain_state_and_key() {
        let dir = tempfile::tempdir().unwrap();
        let (alice, alice_addr) = signer(1);
        let (live, key) = {
            let store = Store::open(dir.path(), &params()).unwrap();
            let mut chain = store.load_chain().unwrap();
            for i in 0..6 {
                extend(&mut chain, &store, alice_addr, &alice, i);
            }
            // A longer branch from height 3 takes over: the main index is rewritten.
            let mut parent = chain.block_at_height(3).unwrap().clone();
            let mut deepest = 0;
            for _ in 0..5 {
                let block = child_paying(&parent, Address([9; 20]), vec![]);
                let accepted = offer(&mut chain, &store, &block);
                deepest = deepest.max(accepted.tip_change.map_or(0, |c| c.depth()));
                parent = block;
            }
            assert_eq!(deepest, 3);
            assert_eq!(chain.height(), 8);
            (detached(chain), store.node_key().unwrap())
        };
        let store = Store::open(dir.path(), &params()).unwrap();
        let loaded = store.load_chain().unwrap();
        assert_same_chain(&loaded, &live);
        assert_eq!(loaded.state(), &replay(&live));
        assert!(loaded.state().balance(&alice_addr) > 0);
        assert_eq!(store.node_key().unwrap(), key);
    }

    /// A block whose coinbase overpays.
    fn overpaying_child(parent: &Block) -> Arc<Block> {
        let mut bad = (*child(parent, 1)).clone();
        bad.transactions[0] = Transaction::coinbase(parent.height() + 1, Address([1; 20]), 51);
        bad.header.tx_root = compute_tx_root(&bad.txids());
        Arc::new(bad)
    }

    #[test]
    fn a_tip_change_connecting_a_block_that_breaks_a_state_rule_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let genesis = params().genesis();
        let store = Store::open(dir.path(), &params()).unwrap();
        let bad = overpaying_child(&genesis);
        assert!(matches!(
            store.commit(&accepted(
                genesis.block_hash(),
                0,
                vec![],
                vec![bad.clone()]
            )),
            Err(StoreError::InvalidChain(
                BlockError::BadCoinbaseAmount { .. }
            ))
        ));
        assert_eq!(store.tip().unwrap(), genesis.block_hash());
        assert_eq!(store.block(bad.height(), &bad.block_hash()).unwrap(), None);
        store.verify().unwrap();
    }

    #[test]
    fn verify_refuses_a_stored_block_that_breaks_a_rule() {
        let dir = tempfile::tempdir().unwrap();
        let genesis = params().genesis();
        let store = Store::open(dir.path(), &params()).unwrap();
        let good = child(&genesis, 1);
        store
            .commit(&accepted(
                genesis.block_hash(),
                0,
                vec![],
                vec![good.clone()],
            ))
            .unwrap();
        // Written behind the store's back: the state rules were never applied to it.
        let bad = overpaying_child(&genesis);
        let txn = store.db().unwrap().begin_write().unwrap();
        {
            let mut blocks = txn.open_table(BODIES).unwrap();
            blocks
                .insert(
                    row_key(bad.height(), &bad.block_hash()),
                    encode(bad.as_ref()).as_slice(),
                )
                .unwrap();
            txn.open_table(MAIN_CHAIN)
                .unwrap()
                .insert(1, bad.block_hash().0)
                .unwrap();
            let mut meta = txn.open_table(META).unwrap();
            meta.insert(META_TIP, bad.block_hash().as_bytes().as_slice())
                .unwrap();
        }
        txn.commit().unwrap();
        assert!(matches!(
            store.verify(),
            Err(StoreError::InvalidChain(
                BlockError::BadCoinbaseAmount { .. }
            ))
        ));
    }

    /// Builds `count` blocks on the chain's tip (a transfer from `payer` in every third block
    /// it can afford) and commits them in runs of `run`, as a sync does.
    fn grow(
        chain: &mut Chain,
        store: Option<&Store>,
        count: usize,
        run: usize,
        payer: &ed25519_dalek::SigningKey,
    ) {
        let payer_address =
            crate::ledger::transaction::PublicKey(payer.verifying_key().to_bytes()).address();
        let mut state = chain.state().clone();
        let mut parent = chain.tip_block().clone();
        let mut blocks = Vec::new();
        for i in 0..count {
            let transfers = if i % 3 == 0 && state.balance(&payer_address) >= 3 {
                vec![Transaction::sign_transfer(
                    payer,
                    &chain.genesis_hash().into(),
                    Address([(i % 250) as u8; 20]),
                    2,
                    1,
                    state.next_nonce(&payer_address),
                )]
            } else {
                vec![]
            };
            let block = child_paying(&parent, payer_address, transfers);
            state.apply_block(&block, chain.params().reward).unwrap();
            blocks.push((*block).clone());
            parent = block;
        }
        for run in blocks.chunks(run) {
            let batch = chain.accept_blocks(run.to_vec(), NOW);
            assert_eq!(batch.refused, None);
            if let Some(store) = store {
                store.commit(&batch.accepted).unwrap();
            }
        }
    }

    /// The undo table, as a test writes to it directly.
    type UndoTable<'t> = redb::Table<'t, [u8; 40], &'static [u8]>;

    /// Overwrites one stored account behind the store's back.
    fn tamper_account(store: &Store, address: Address, account: Account) {
        let txn = store.db().unwrap().begin_write().unwrap();
        txn.open_table(ACCOUNTS)
            .unwrap()
            .insert(address.0, account_bytes(&account))
            .unwrap();
        txn.commit().unwrap();
    }

    #[test]
    fn a_restart_after_ten_thousand_blocks_reads_the_state_and_does_not_replay() {
        let dir = tempfile::tempdir().unwrap();
        let (alice, alice_addr) = signer(1);
        let live = {
            let store = Store::open(dir.path(), &params()).unwrap();
            let mut chain = store.load_chain().unwrap();
            grow(&mut chain, Some(&store), 10_000, 1_000, &alice);
            detached(chain)
        };
        assert_eq!(live.height(), 10_000);
        assert!(live.state().next_nonce(&alice_addr) > 3_000);
        let store = Store::open(dir.path(), &params()).unwrap();
        assert_same_chain(&store.load_chain().unwrap(), &live);
        assert_eq!(store.verify().unwrap().height, 10_000);

        // Proof that nothing was replayed: a stored account changed behind the store's back
        // comes back as stored, where a replay would have recomputed it; verify names it.
        let honest = live.state().account(&alice_addr);
        let forged = Account {
            balance: honest.balance + 1_000,
            nonce: honest.nonce,
        };
        tamper_account(&store, alice_addr, forged);
        let loaded = store.load_chain().unwrap();
        assert_eq!(loaded.state().account(&alice_addr), forged);
        assert_eq!(loaded.tip(), live.tip());
        match store.verify() {
            Err(StoreError::StateDiffersFromReplay {
                address,
                stored,
                replayed,
            }) => {
                assert_eq!((address, stored, replayed), (alice_addr, forged, honest));
            }
            other => panic!("verify missed the forged account: {other:?}"),
        }
        // Reindex repairs it from the blocks.
        drop(loaded);
        drop(store);
        let mut store = Store::open_for_reindex(dir.path(), &params()).unwrap();
        store.reindex().unwrap();
        assert_same_chain(&store.load_chain().unwrap(), &live);
        store.verify().unwrap();
    }

    #[test]
    fn verify_names_missing_wrong_and_stray_undo_data() {
        let dir = tempfile::tempdir().unwrap();
        let (alice, _) = signer(1);
        let store = Store::open(dir.path(), &params()).unwrap();
        let mut chain = store.load_chain().unwrap();
        grow(&mut chain, Some(&store), 12, 4, &alice);
        store.verify().unwrap();
        let hash = chain.block_at_height(5).unwrap().block_hash();
        let original = {
            let txn = store.db().unwrap().begin_read().unwrap();
            let table = txn.open_table(UNDO).unwrap();
            let bytes = table
                .get(row_key(5, &hash))
                .unwrap()
                .unwrap()
                .value()
                .to_vec();
            bytes
        };
        let write = |f: &dyn Fn(&mut UndoTable)| {
            let txn = store.db().unwrap().begin_write().unwrap();
            f(&mut txn.open_table(UNDO).unwrap());
            txn.commit().unwrap();
        };
        write(&|t| {
            t.remove(row_key(5, &hash)).unwrap();
        });
        assert!(
            matches!(store.verify(), Err(StoreError::UndoMissing { height: 5, hash: h }) if h == hash)
        );
        let mut wrong = original.clone();
        wrong[20] ^= 1;
        write(&|t| {
            t.insert(row_key(5, &hash), wrong.as_slice()).unwrap();
        });
        assert!(matches!(
            store.verify(),
            Err(StoreError::UndoDiffersFromReplay { height: 5, .. })
        ));
        write(&|t| {
            t.insert(row_key(5, &hash), original.as_slice()).unwrap();
            t.insert(row_key(3, &BlockHash([7; 32])), original.as_slice())
                .unwrap();
        });
        assert!(matches!(
            store.verify(),
            Err(StoreError::UndoWithoutMainBlock { hash }) if hash == BlockHash([7; 32])
        ));
    }

    #[test]
    fn a_restored_chain_serves_headers_and_blocks_read_from_the_store_in_one_go() {
        let dir = tempfile::tempdir().unwrap();
        let (alice, _) = signer(1);
        let live = {
            let store = Store::open(dir.path(), &params()).unwrap();
            let mut chain = store.load_chain().unwrap();
            grow(&mut chain, Some(&store), 300, 100, &alice);
            detached(chain)
        };
        let store = Store::open(dir.path(), &params()).unwrap();
        let loaded = store.load_chain().unwrap();
        assert!(
            loaded.bodies_in_memory() < 100,
            "the bodies served below are read from the store"
        );
        let genesis = [loaded.genesis_hash()];
        let headers = loaded.headers_after_locator(&genesis, 500);
        assert_eq!(headers, live.headers_after_locator(&genesis, 500));
        assert_eq!(headers.len(), 300);
        let hashes: Vec<BlockHash> = headers.iter().map(BlockHeader::block_hash).collect();
        let served: Vec<Block> = loaded
            .blocks_by_hash(&hashes[..128], usize::MAX)
            .iter()
            .map(|b| (**b).clone())
            .collect();
        let expected: Vec<Block> = live
            .blocks_by_hash(&hashes[..128], usize::MAX)
            .iter()
            .map(|b| (**b).clone())
            .collect();
        assert_eq!(served.len(), 128);
        assert_eq!(served, expected);

        // A damaged row ends both runs just before it, as a block we do not hold would.
        let damaged = &headers[49];
        let txn = store.db().unwrap().begin_write().unwrap();
        {
            let mut table = txn.open_table(BODIES).unwrap();
            let mut bytes = encode(&live.block(&hashes[49]).unwrap().as_ref().clone());
            bytes[BlockHeader::NONCE_OFFSET] ^= 1;
            table
                .insert(row_key(damaged.height, &hashes[49]), bytes.as_slice())
                .unwrap();
        }
        txn.commit().unwrap();
        assert_eq!(loaded.headers_after_locator(&genesis, 500), headers[..49]);
        assert_eq!(loaded.blocks_by_hash(&hashes[..128], usize::MAX).len(), 49);
    }

    #[test]
    fn a_reorg_deeper_than_the_body_cache_is_undone_from_stored_bodies_and_undo_data() {
        let dir = tempfile::tempdir().unwrap();
        let (alice, alice_addr) = signer(1);
        let (bob, _) = signer(2);
        let store = Store::open(dir.path(), &params()).unwrap();
        let mut chain = store.load_chain().unwrap();
        grow(&mut chain, Some(&store), 2_600, 100, &alice);
        // The chain keeps only the recent bodies; the reorg reads the rest from the store.
        assert!(chain.bodies_in_memory() <= crate::ledger::chain::BODY_CACHE_BLOCKS + 100);
        let fork_at = 100;
        // The rival chain is the same up to `fork_at`, then pays bob and is one block longer.
        let mut rival = Chain::new(params());
        let shared: Vec<Block> = chain
            .main_chain()
            .skip(1)
            .take(fork_at)
            .map(|b| (*b).clone())
            .collect();
        assert_eq!(rival.accept_blocks(shared, NOW).refused, None);
        grow(&mut rival, None, 2_501, 2_501, &bob);
        let branch: Vec<Block> = rival
            .main_chain()
            .skip(fork_at + 1)
            .map(|b| (*b).clone())
            .collect();
        let batch = chain.accept_blocks(branch, NOW);
        assert_eq!(batch.refused, None);
        let change = batch.accepted.tip_change.clone().unwrap();
        assert_eq!(change.depth(), 2_500);
        const { assert!(2_500 > crate::ledger::chain::BODY_CACHE_BLOCKS) };
        assert_eq!(change.fork_height, fork_at as u64);
        store.commit(&batch.accepted).unwrap();
        assert_eq!(chain.tip(), rival.tip());
        assert_eq!(chain.state(), rival.state());
        let loaded = store.load_chain().unwrap();
        assert!(
            loaded.bodies_in_memory() <= crate::ledger::chain::MEDIAN_TIME_SPAN + 2,
            "a restart reads the tip and its median-time window, not the chain"
        );
        assert_same_chain(&loaded, &chain);
        assert_eq!(loaded.state(), &replay(&chain));
        assert!(loaded.state().balance(&alice_addr) > 0);
        store.verify().unwrap();
    }

    #[test]
    fn a_format_one_directory_is_refused_with_a_reindex_hint_and_reindex_upgrades_it() {
        let dir = tempfile::tempdir().unwrap();
        let (alice, _) = signer(1);
        let live = {
            let store = Store::open(dir.path(), &params()).unwrap();
            let mut chain = store.load_chain().unwrap();
            grow(&mut chain, Some(&store), 30, 7, &alice);
            // Back to the format-1 layout: no accounts, no undo data, format 1.
            let txn = store.db().unwrap().begin_write().unwrap();
            txn.delete_table(ACCOUNTS).unwrap();
            txn.delete_table(UNDO).unwrap();
            txn.open_table(META)
                .unwrap()
                .insert(META_FORMAT, 1u32.to_le_bytes().as_slice())
                .unwrap();
            txn.commit().unwrap();
            detached(chain)
        };
        let err = Store::open(dir.path(), &params()).unwrap_err();
        assert!(
            matches!(err, StoreError::NeedsReindex { found: 1, .. }),
            "{err}"
        );
        let message = err.to_string();
        assert!(
            message.contains("gossipchain reindex") && message.contains("afresh"),
            "{message}"
        );
        let mut store = Store::open_for_reindex(dir.path(), &params()).unwrap();
        assert!(matches!(
            store.load_chain(),
            Err(StoreError::NeedsReindex { .. })
        ));
        let verified = store.reindex().unwrap();
        assert_eq!((verified.height, verified.tip), (30, live.tip()));
        drop(store);
        let store = Store::open(dir.path(), &params()).unwrap();
        store.verify().unwrap();
        assert_same_chain(&store.load_chain().unwrap(), &live);
    }

    #[test]
    fn a_newer_format_is_refused_as_unsupported() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = Store::open(dir.path(), &params()).unwrap();
            let txn = store.db().unwrap().begin_write().unwrap();
            txn.open_table(META)
                .unwrap()
                .insert(META_FORMAT, 4u32.to_le_bytes().as_slice())
                .unwrap();
            txn.commit().unwrap();
        }
        assert!(matches!(
            Store::open_for_reindex(dir.path(), &params()),
            Err(StoreError::UnsupportedFormat {
                expected: 3,
                found: 4
            })
        ));
    }

    /// Rewrites a current store back into format 2's layout: bodies and undo data by hash.
    fn back_to_format_two(store: &Store) {
        let txn = store.db().unwrap().begin_write().unwrap();
        {
            let bodies = txn.open_table(BODIES).unwrap();
            let mut old = txn.open_table(BLOCKS_BY_HASH).unwrap();
            for row in bodies.iter().unwrap() {
                let (key, bytes) = row.unwrap();
                old.insert(from_row_key(&key.value()).1 .0, bytes.value())
                    .unwrap();
            }
            let undo = txn.open_table(UNDO).unwrap();
            let mut old = txn.open_table(UNDO_BY_HASH).unwrap();
            for row in undo.iter().unwrap() {
                let (key, bytes) = row.unwrap();
                old.insert(from_row_key(&key.value()).1 .0, bytes.value())
                    .unwrap();
            }
        }
        txn.delete_table(BODIES).unwrap();
        txn.delete_table(UNDO).unwrap();
        txn.open_table(META)
            .unwrap()
            .insert(META_FORMAT, 2u32.to_le_bytes().as_slice())
            .unwrap();
        txn.commit().unwrap();
    }

    #[test]
    fn a_format_two_store_is_rekeyed_by_height_on_open_and_keeps_every_body_and_undo_row() {
        let dir = tempfile::tempdir().unwrap();
        let (alice, _) = signer(1);
        let (abandoned, live) = {
            let store = Store::open(dir.path(), &params()).unwrap();
            let mut chain = store.load_chain().unwrap();
            grow(&mut chain, Some(&store), 20, 3, &alice);
            // A reorg leaves two blocks that were on the main chain: they stay stored.
            let old: Vec<Arc<Block>> = chain.main_chain().skip(19).collect();
            let rival = branch(&chain.block_at_height(18).unwrap(), 3, 9);
            let disconnected = old.iter().rev().cloned().collect();
            store
                .commit(&accepted(chain.tip(), 18, disconnected, rival.clone()))
                .unwrap();
            back_to_format_two(&store);
            (old, rival)
        };
        let store = Store::open(dir.path(), &params()).unwrap();
        assert_eq!(store.format, FORMAT_VERSION);
        store.verify().unwrap();
        assert_eq!(store.tip().unwrap(), live[2].block_hash());
        for b in abandoned.iter().chain(&live) {
            assert_eq!(
                store.block(b.height(), &b.block_hash()).unwrap().as_ref(),
                Some(b.as_ref())
            );
        }
        let txn = store.db().unwrap().begin_read().unwrap();
        let names: Vec<String> = txn
            .list_tables()
            .unwrap()
            .map(|t| t.name().to_string())
            .collect();
        assert!(
            !names.iter().any(|n| n == "blocks" || n == "undo"),
            "{names:?}"
        );
    }

    #[derive(Debug, Clone)]
    enum Step {
        Extend { to: u8 },
        Fork { back: u64, len: usize, tag: u8 },
        Reopen,
    }

    fn step() -> impl proptest::strategy::Strategy<Value = Step> {
        use proptest::prelude::*;
        prop_oneof![
            4 => (0u8..8).prop_map(|to| Step::Extend { to }),
            2 => (0u64..4, 1usize..5, 10u8..20).prop_map(|(back, len, tag)| Step::Fork { back, len, tag }),
            // A deeper reorg: one block longer than what it replaces.
            1 => (5u64..30, 10u8..20).prop_map(|(back, tag)| Step::Fork { back, len: back as usize + 1, tag }),
            1 => Just(Step::Reopen),
        ]
    }

    /// Runs `steps` on a store, checking the stored state against a replay after each. With
    /// `batched`, each step's changes (a fork is several, a reorg among them) are held and
    /// stored in one [`Store::commit_all`], as a sync batch is.
    fn round_trip(steps: Vec<Step>, batched: bool) {
        let dir = tempfile::tempdir().unwrap();
        let (alice, alice_addr) = signer(1);
        let mut store = Store::open(dir.path(), &params()).unwrap();
        let mut chain = store.load_chain().unwrap();
        let offer_one = |chain: &mut Chain, store: &Store, block: &Block, held: &mut Vec<_>| {
            if batched {
                held.push(chain.accept_unstored(block.clone(), NOW).unwrap());
            } else {
                offer(chain, store, block);
            }
        };
        for step in steps {
            let mut held = Vec::new();
            match step {
                Step::Extend { to } => {
                    let block = next_block(&chain, alice_addr, &alice, to);
                    offer_one(&mut chain, &store, &block, &mut held);
                }
                Step::Fork { back, len, tag } => {
                    let at = chain.height().saturating_sub(back);
                    let mut parent = chain.block_at_height(at).unwrap().clone();
                    for _ in 0..len {
                        let block = child_paying(&parent, Address([tag; 20]), vec![]);
                        offer_one(&mut chain, &store, &block, &mut held);
                        parent = block;
                    }
                }
                Step::Reopen => {
                    let expected = detached(chain);
                    drop(store);
                    store = Store::open(dir.path(), &params()).unwrap();
                    let loaded = store.load_chain().unwrap();
                    assert_same_chain(&loaded, &expected);
                    chain = loaded;
                }
            }
            store.commit_all(&held).unwrap();
            chain.bodies_stored();
            assert_eq!(chain.state(), &replay(&chain));
            let verified = store.verify();
            assert!(verified.is_ok(), "{verified:?}");
        }
        let expected = detached(chain);
        drop(store);
        let store = Store::open(dir.path(), &params()).unwrap();
        assert_same_chain(&store.load_chain().unwrap(), &expected);
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(16))]

        #[test]
        fn persistence_round_trips_random_chains_with_reorgs_and_restarts(
            steps in proptest::collection::vec(step(), 1..25)
        ) {
            round_trip(steps, false);
        }

        #[test]
        fn changes_stored_together_in_one_commit_round_trip_as_if_stored_one_by_one(
            steps in proptest::collection::vec(step(), 1..25)
        ) {
            round_trip(steps, true);
        }
    }

    const CRASH_DIR_ENV: &str = "GOSSIPCHAIN_STORE_CRASH_DIR";

    /// The writer half of the crash test: run in a child process, it extends the stored chain
    /// (with a one-block reorg every fifth step) and prints each new tip once its commit has
    /// returned, until it is killed (or after 20 s, so it never outlives a dead parent).
    #[test]
    #[ignore = "run only as the writer child of the crash test"]
    fn crash_writer() {
        use std::io::Write;
        let Some(dir) = std::env::var_os(CRASH_DIR_ENV) else {
            return;
        };
        let started = std::time::Instant::now();
        let store = Store::open(Path::new(&dir), &params()).unwrap();
        let mut chain = store.load_chain().unwrap();
        let (alice, alice_addr) = signer(1);
        let mut out = std::io::stdout().lock();
        for step in 0u64.. {
            if started.elapsed() > std::time::Duration::from_secs(20) {
                break;
            }
            let change = if step % 5 == 4 && chain.height() > 0 {
                // Two blocks on the tip's parent: the first is a side branch, the second wins.
                let parent = chain.block_at_height(chain.height() - 1).unwrap().clone();
                let first = child_paying(&parent, Address([(step % 200) as u8; 20]), vec![]);
                offer(&mut chain, &store, &first);
                let second = child_paying(&first, Address([7; 20]), vec![]);
                offer(&mut chain, &store, &second).tip_change
            } else {
                extend(&mut chain, &store, alice_addr, &alice, (step % 7) as u8).tip_change
            };
            assert!(change.is_some());
            writeln!(out, "committed {} {}", chain.height(), chain.tip()).unwrap();
            out.flush().unwrap();
        }
    }

    #[test]
    fn a_store_killed_mid_write_reopens_to_a_consistent_chain() {
        use rand::Rng;
        use std::io::BufRead;
        use std::process::{Command, Stdio};

        let dir = tempfile::tempdir().unwrap();
        let exe = std::env::current_exe().unwrap();
        let mut rng = rand::thread_rng();
        let mut previous_height = 0;
        let mut commits_seen = 0;
        for round in 0..6 {
            let mut child = Command::new(&exe)
                .args(["--exact", "ledger::store::tests::crash_writer"])
                .args(["--ignored", "--nocapture", "--test-threads=1", "-q"])
                .env(CRASH_DIR_ENV, dir.path())
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            let stdout = child.stdout.take().unwrap();
            let reader = std::thread::spawn(move || {
                std::io::BufReader::new(stdout)
                    .lines()
                    .map_while(Result::ok)
                    .filter_map(|line| {
                        let mut words = line.strip_prefix("committed ")?.split(' ');
                        let height: u64 = words.next()?.parse().ok()?;
                        let hash: BlockHash = words.next()?.parse().ok()?;
                        Some((height, hash))
                    })
                    .collect::<Vec<_>>()
            });
            // Let the child start and commit for a random while, then kill -9 it.
            std::thread::sleep(std::time::Duration::from_millis(rng.gen_range(150..700)));
            child.kill().unwrap();
            child.wait().unwrap();
            let commits = reader.join().unwrap();
            commits_seen += commits.len();

            let store = Store::open(dir.path(), &params()).unwrap();
            let chain = store.load_chain().unwrap();
            store.verify().unwrap();
            for (height, block) in chain.main_chain().enumerate() {
                assert_eq!(block.height(), height as u64);
            }
            assert_eq!(chain.state(), &replay(&chain), "round {round}");
            assert!(
                chain.height() >= previous_height,
                "round {round} lost blocks"
            );
            if let Some(&(height, hash)) = commits.last() {
                // Everything reported committed survived; at most one more commit landed
                // between the last report and the kill.
                assert!(
                    chain.height() == height || chain.height() == height + 1,
                    "round {round}: reported {height}, loaded {}",
                    chain.height()
                );
                if chain.height() == height {
                    assert_eq!(chain.tip(), hash, "round {round}");
                }
            }
            previous_height = chain.height();
        }
        assert!(commits_seen > 0, "the writer never committed");
    }
}
