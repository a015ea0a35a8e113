//! Fuzz targets: one entry point for each decoder that bytes from a peer or from the store file
//! reach, and one for the console's line reader and parser.
//!
//! Each target takes arbitrary bytes, decodes them as the node would, and when they decode checks
//! an invariant that a bug would break: the value re-encodes to exactly the bytes it came from, a
//! cap error names a count that really is over the cap, a rendered command parses back to itself.
//! A broken invariant panics, like any bug in a decoder; a fuzzer looks for exactly that. Bytes
//! that do not decode are simply refused, which is the expected outcome for most inputs.
//!
//! The same functions are driven two ways: by the `cargo fuzz` crate in `fuzz/` (nightly,
//! coverage-guided) and by `tests/fuzz_decoders.rs` on stable with seeded random and mutated
//! inputs, so every CI run exercises them. [`TARGETS`] lists them with seeds of valid encodings
//! built with the library's own constructors.

use std::io::BufRead;
use std::sync::OnceLock;

use bincode::Encode;
use ed25519_dalek::SigningKey;

use crate::console::{parse, read_lines, ConsoleCommand, Line, MAX_LINE_BYTES, MAX_WORD_CHARS};
use crate::ledger::block::compute_tx_root;
use crate::ledger::encode::{decode, encode, DecodeError};
use crate::ledger::state::Account;
use crate::ledger::store::{
    account_bytes, account_from, block_from, format_from, hash_from, undo_bytes, undo_from,
};
use crate::ledger::{Address, Block, BlockHash, BlockHeader, NetworkParams, Transaction};
use crate::net::protocol::{
    decode_gossip_block, decode_gossip_tx, decode_request, decode_response, max_response_bytes,
    Status, SyncRequest, SyncResponse, WireError, MAX_BLOCKS_PER_REQUEST, MAX_HEADERS_PER_RESPONSE,
    MAX_LOCATOR_LEN, MAX_REQUEST_BYTES, MAX_TXS_PER_RESPONSE,
};
use crate::node::{BlockQuery, ChainWindow};

/// One fuzz target: its name (the file name under `fuzz/fuzz_targets/`), the function a fuzzer
/// calls, and valid inputs to start mutating from.
pub struct Target {
    /// Name of the target, as given to `cargo fuzz run`.
    pub name: &'static str,
    /// Decodes the bytes and checks the target's invariant; panics only on a bug.
    pub run: fn(&[u8]),
    /// Valid inputs: encodings the node really sends or stores, or command lines.
    pub seeds: fn() -> Vec<Vec<u8>>,
}

/// Every target, in the order of this module.
pub const TARGETS: &[Target] = &[
    Target {
        name: "gossip_block",
        run: gossip_block,
        seeds: block_seeds,
    },
    Target {
        name: "gossip_transfer",
        run: gossip_transfer,
        seeds: transfer_seeds,
    },
    Target {
        name: "sync_request",
        run: sync_request,
        seeds: request_seeds,
    },
    Target {
        name: "sync_response",
        run: sync_response,
        seeds: response_seeds,
    },
    Target {
        name: "stored_block",
        run: stored_block,
        seeds: block_seeds,
    },
    Target {
        name: "stored_undo",
        run: stored_undo,
        seeds: undo_seeds,
    },
    Target {
        name: "stored_record",
        run: stored_record,
        seeds: record_seeds,
    },
    Target {
        name: "console_line",
        run: console_line,
        seeds: console_seeds,
    },
];

/// The network every target decodes for: the default caps, and difficulty 0 so that mutated
/// blocks get past proof of work to the rules behind it.
pub fn network() -> &'static NetworkParams {
    static PARAMS: OnceLock<NetworkParams> = OnceLock::new();
    PARAMS.get_or_init(|| NetworkParams::for_tests("fuzz", 0))
}

/// Panics unless `value` encodes to exactly `bytes`: one encoding per value, and back.
fn assert_round_trip<T: Encode + std::fmt::Debug>(value: &T, bytes: &[u8]) {
    assert!(
        encode(value) == bytes,
        "{value:?} decoded from {} bytes re-encodes to other bytes",
        bytes.len()
    );
}

/// A block gossiped on the blocks topic: decoded under the block cap, then the context-free
/// rules the node checks before it looks at the chain (proof of work, sizes, root, coinbase,
/// signatures), which must not panic on any decoded block.
pub fn gossip_block(data: &[u8]) {
    let params = network();
    let Ok(block) = decode_gossip_block(data, params) else {
        return;
    };
    assert_round_trip(&block, data);
    assert_eq!(
        block.encoded_len(),
        data.len(),
        "encoded_len is not the wire size"
    );
    let _ = block.validate(params);
}

/// A transaction gossiped on the transactions topic: decoded under the transaction cap; a
/// transfer's own rules and signature check must not panic, and a transfer that keeps its rules
/// has a memo that reads as text exactly when it has one.
pub fn gossip_transfer(data: &[u8]) {
    let Ok(tx) = decode_gossip_tx(data) else {
        return;
    };
    assert_round_trip(&tx, data);
    assert_eq!(
        tx.encoded_len(),
        data.len(),
        "encoded_len is not the wire size"
    );
    let _ = tx.compute_txid();
    if let Some(transfer) = tx.transfer() {
        if transfer.check_form().is_ok() {
            assert_eq!(transfer.memo_text().is_some(), !transfer.memo.is_empty());
        }
        let _ = tx.verify_signature(&network().network_id());
    }
}

/// Panics unless a refusal for a count over a cap is true: the bytes are a whole message
/// (they decode without the count checks) and the count named is over the cap.
fn assert_cap_error_is_true<T: crate::ledger::encode::Decodable>(
    error: &WireError,
    data: &[u8],
    max: usize,
) {
    let (count, cap) = match error {
        WireError::Decode(_) => return,
        WireError::LocatorTooLong(n) => (*n, MAX_LOCATOR_LEN),
        WireError::TooManyHashes(n) | WireError::TooManyBlocks(n) => {
            (*n, MAX_BLOCKS_PER_REQUEST as usize)
        }
        WireError::TooManyHeaders(n) => (*n, MAX_HEADERS_PER_RESPONSE as usize),
        WireError::TooManyTxs(n) => (*n, MAX_TXS_PER_RESPONSE as usize),
    };
    assert!(count > cap, "refused {count} items under a cap of {cap}");
    let whole: Result<T, DecodeError> = decode(data, max);
    assert!(whole.is_ok(), "a cap refusal for bytes that do not decode");
}

/// A sync request as it arrives on an inbound stream: decoded and capped; an accepted request
/// keeps every cap and re-encodes to its bytes, a refused one names a broken cap truly.
pub fn sync_request(data: &[u8]) {
    match decode_request(data) {
        Ok(request) => {
            assert_round_trip(&request, data);
            match &request {
                SyncRequest::GetHeaders { locator, .. } => {
                    assert!(locator.len() <= MAX_LOCATOR_LEN)
                }
                SyncRequest::GetBlocks { hashes } => {
                    assert!(hashes.len() <= MAX_BLOCKS_PER_REQUEST as usize)
                }
                SyncRequest::Status(_) | SyncRequest::GetMempool { .. } => {}
            }
        }
        Err(error) => assert_cap_error_is_true::<SyncRequest>(&error, data, MAX_REQUEST_BYTES),
    }
}

/// A sync answer as the codec reads it: decoded under the response cap; as for requests, an
/// accepted answer keeps every cap and round-trips, a refused one names a broken cap truly.
pub fn sync_response(data: &[u8]) {
    let max = max_response_bytes(network());
    match decode_response(data, max) {
        Ok(response) => {
            assert_round_trip(&response, data);
            let (count, cap) = match &response {
                SyncResponse::Status(_) => (0, 0),
                SyncResponse::Headers(h) => (h.len(), MAX_HEADERS_PER_RESPONSE as usize),
                SyncResponse::Mempool(t) => (t.len(), MAX_TXS_PER_RESPONSE as usize),
                SyncResponse::Blocks(b) => (b.len(), MAX_BLOCKS_PER_REQUEST as usize),
            };
            assert!(count <= cap, "accepted {count} items over a cap of {cap}");
        }
        Err(error) => assert_cap_error_is_true::<SyncResponse>(&error, data, max),
    }
}

/// A row of the store's `blocks` table, keyed by the hash of the header its first 92 bytes
/// would be: decoded as a restart reads it. A row the store accepts round-trips and goes
/// through the store's door to the chain ([`Block::assume_signatures_checked`]) without a panic;
/// and the store and gossip agree on what a block's bytes are.
pub fn stored_block(data: &[u8]) {
    let params = network();
    let key = data
        .get(..BlockHeader::ENCODED_LEN)
        .map_or(BlockHash::ZERO, |h| {
            BlockHash(crate::ledger::hash::sha256(h))
        });
    let stored = block_from(&key, data, params);
    let gossiped = decode_gossip_block(data, params);
    assert_eq!(
        stored.is_ok(),
        gossiped.is_ok_and(|b| b.block_hash() == key),
        "the store and gossip disagree on {} bytes: {stored:?}",
        data.len()
    );
    if let Ok(block) = stored {
        assert_round_trip(&block, data);
        let _ = block.assume_signatures_checked(params);
    }
}

/// A row of the store's `undo` table: whole records decode, and write back to the same bytes.
pub fn stored_undo(data: &[u8]) {
    match undo_from(data) {
        Some(records) => {
            assert_eq!(undo_bytes(&records), data, "undo records do not round-trip");
        }
        None => assert!(
            !data.is_empty(),
            "empty undo data (no touched account) refused"
        ),
    }
}

/// The store's fixed-width values, the first byte choosing which: 0 an `accounts` row, 1 the
/// `format` meta value, 2 the `genesis` or `tip` meta value, 3 the node's secret key (any 32
/// bytes must give one identity: the libp2p peer key and the ed25519 account key agree).
pub fn stored_record(data: &[u8]) {
    let Some((&kind, value)) = data.split_first() else {
        return;
    };
    match kind % 4 {
        0 => {
            if let Ok(bytes) = <[u8; 16]>::try_from(value) {
                let account: Account = account_from(bytes);
                assert_eq!(
                    account_bytes(&account),
                    bytes,
                    "account does not round-trip"
                );
            }
        }
        1 => match format_from(value) {
            Some(format) => assert_eq!(&format.to_le_bytes()[..], value),
            None => assert_ne!(value.len(), 4, "a 4-byte format refused"),
        },
        2 => match hash_from(value) {
            Some(hash) => assert_eq!(&hash.as_bytes()[..], value),
            None => assert_ne!(value.len(), 32, "a 32-byte hash refused"),
        },
        _ => {
            if let Ok(secret) = <[u8; 32]>::try_from(value) {
                let account_key = SigningKey::from_bytes(&secret).verifying_key().to_bytes();
                let peer_key = libp2p::identity::Keypair::ed25519_from_bytes(secret)
                    .expect("every 32-byte secret is an ed25519 key");
                let peer_public = peer_key
                    .public()
                    .try_into_ed25519()
                    .expect("an ed25519 keypair has an ed25519 public key")
                    .to_bytes();
                assert_eq!(peer_public, account_key, "peer id and address keys differ");
            }
        }
    }
}

/// Console input: the bytes as stdin would give them, read into lines (the same lines whether
/// read whole or a few bytes at a time), and each line parsed. A parsed command, written back as
/// a line, parses to itself; an error echoes a clipped prefix of the first word.
pub fn console_line(data: &[u8]) {
    for max in [MAX_LINE_BYTES, 16] {
        let whole = lines(data, max);
        let chunked = lines(std::io::BufReader::with_capacity(7, data), max);
        assert_eq!(whole, chunked, "lines depend on how input is chunked");
        let newlines = data.iter().filter(|&&b| b == b'\n').count();
        let tail = data.rsplit(|&b| b == b'\n').next().unwrap_or_default();
        let segments = newlines + usize::from(!tail.is_empty());
        assert_eq!(whole.len(), segments, "lines lost or invented");
        for line in &whole {
            if let Line::Text(text) = line {
                check_parse(text);
            }
        }
    }
    check_parse(&String::from_utf8_lossy(data));
}

fn lines(input: impl BufRead, max: usize) -> Vec<Line> {
    let mut out = Vec::new();
    read_lines(input, max, |line| {
        out.push(line);
        true
    });
    out
}

fn check_parse(line: &str) {
    let first = line.split_whitespace().next();
    match parse(line) {
        Ok(None) => assert_eq!(first, None, "a line with words parsed as blank"),
        Ok(Some(parsed)) => {
            assert_eq!(Some(parsed.word), first);
            let again = command_line(&parsed.command);
            let reparsed = parse(&again).map(|p| p.map(|p| p.command));
            assert_eq!(
                reparsed,
                Ok(Some(parsed.command)),
                "{line:?} written back as {again:?} parses to another command"
            );
        }
        Err(error) => {
            assert!(first.unwrap_or_default().starts_with(&error.word));
            assert!(error.word.chars().count() <= MAX_WORD_CHARS);
            assert!(!error.message.is_empty());
        }
    }
}

/// A console line that means `command`.
fn command_line(command: &ConsoleCommand) -> String {
    match command {
        ConsoleCommand::Help => "help".into(),
        ConsoleCommand::Status => "status".into(),
        ConsoleCommand::Peers => "peers".into(),
        ConsoleCommand::Tx { to, amount, fee } => format!("tx {to} {amount} {fee}"),
        ConsoleCommand::Post { author, content } => format!("post {author} {content}"),
        ConsoleCommand::Mine(count) => format!("mine {count}"),
        ConsoleCommand::Automine(on) => format!("automine {}", if *on { "on" } else { "off" }),
        ConsoleCommand::Chain(ChainWindow::Latest(count)) => format!("chain {count}"),
        ConsoleCommand::Chain(ChainWindow::Range { from, to }) => match to {
            Some(to) => format!("chain {from}..{to}"),
            None => format!("chain {from}.."),
        },
        ConsoleCommand::Block(BlockQuery::Height(height)) => format!("block {height}"),
        ConsoleCommand::Block(BlockQuery::Hash(hash)) => format!("block {hash}"),
        ConsoleCommand::Balance(None) => "balance".into(),
        ConsoleCommand::Balance(Some(address)) => format!("balance {address}"),
        ConsoleCommand::Mempool => "mempool".into(),
        ConsoleCommand::Dial(addr) => format!("dial {addr}"),
        ConsoleCommand::Quit => "quit".into(),
    }
}

// ---- seeds: valid inputs built with the library's constructors ----

fn key(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32])
}

/// Signed transfers on the fuzz network, with and without memos.
fn transfers() -> Vec<Transaction> {
    let network = network().network_id();
    vec![
        Transaction::sign_transfer(&key(1), &network, Address([2; 20]), 50, 1, 0),
        Transaction::sign_transfer(&key(1), &network, Address([3; 20]), 7, 0, 1),
        Transaction::sign_transfer_with_memo(
            &key(4),
            &network,
            Address([5; 20]),
            0,
            2,
            0,
            b"hello, chain".to_vec(),
        ),
    ]
}

/// A valid block at height 1 on the fuzz network carrying `transfers`.
fn block_with(transfers: Vec<Transaction>) -> Block {
    let params = network();
    let fees: u64 = transfers.iter().map(Transaction::fee).sum();
    let mut transactions = vec![Transaction::coinbase(
        1,
        Address([9; 20]),
        params.reward + fees,
    )];
    transactions.extend(transfers);
    let txids: Vec<_> = transactions.iter().map(Transaction::compute_txid).collect();
    Block {
        header: BlockHeader {
            height: 1,
            prev_hash: params.genesis_hash(),
            tx_root: compute_tx_root(&txids),
            timestamp: crate::ledger::params::GENESIS_TIMESTAMP_MS + 60_000,
            difficulty: params.difficulty,
            nonce: 0,
        },
        transactions,
    }
}

fn block_seeds() -> Vec<Vec<u8>> {
    vec![
        encode(&network().genesis()),
        encode(&block_with(Vec::new())),
        encode(&block_with(transfers())),
    ]
}

fn transfer_seeds() -> Vec<Vec<u8>> {
    let mut seeds: Vec<_> = transfers().iter().map(encode).collect();
    seeds.push(encode(&Transaction::coinbase(3, Address([1; 20]), 10)));
    seeds
}

fn status() -> Status {
    let params = network();
    Status {
        genesis: params.genesis_hash(),
        height: 1,
        tip: block_with(Vec::new()).block_hash(),
        total_work: 2,
    }
}

fn request_seeds() -> Vec<Vec<u8>> {
    let hashes = vec![network().genesis_hash(), BlockHash([7; 32])];
    [
        SyncRequest::Status(status()),
        SyncRequest::GetHeaders {
            locator: hashes.clone(),
            max_headers: 2_000,
        },
        SyncRequest::GetMempool { max_txs: 1024 },
        SyncRequest::GetBlocks { hashes },
    ]
    .iter()
    .map(encode)
    .collect()
}

fn response_seeds() -> Vec<Vec<u8>> {
    let genesis = network().genesis();
    let block = block_with(transfers());
    [
        SyncResponse::Status(status()),
        SyncResponse::Headers(vec![genesis.header.clone(), block.header.clone()]),
        SyncResponse::Mempool(transfers()),
        SyncResponse::Blocks(vec![genesis.into(), block.into()]),
    ]
    .iter()
    .map(encode)
    .collect()
}

fn undo_seeds() -> Vec<Vec<u8>> {
    let records = vec![
        (
            Address([1; 20]),
            Account {
                balance: 100,
                nonce: 2,
            },
        ),
        (Address([2; 20]), Account::default()),
    ];
    vec![undo_bytes(&records[..1]), undo_bytes(&records)]
}

fn record_seeds() -> Vec<Vec<u8>> {
    let with = |kind: u8, value: &[u8]| [&[kind][..], value].concat();
    let account = Account {
        balance: 5_000_000,
        nonce: 3,
    };
    vec![
        with(0, &account_bytes(&account)),
        with(1, &crate::ledger::store::FORMAT_VERSION.to_le_bytes()),
        with(2, network().genesis_hash().as_bytes()),
        with(3, &[42; 32]),
    ]
}

fn console_seeds() -> Vec<Vec<u8>> {
    let address = Address([0xab; 20]);
    let hash = network().genesis_hash();
    [
        "help".to_string(),
        "status\npeers\nmempool\nquit\n".to_string(),
        format!("tx {address} 10 1"),
        format!("balance {address}"),
        "post alice hello   there, chain".to_string(),
        "mine 3\nautomine on\nautomine off".to_string(),
        "chain 5\nchain 3..\nchain 2..9".to_string(),
        format!("block 12\nblock {hash}"),
        "dial /ip4/127.0.0.1/tcp/4001\r\n".to_string(),
    ]
    .into_iter()
    .map(String::into_bytes)
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_seed_is_accepted_by_its_target_decoder() {
        let params = network();
        for seed in block_seeds().iter().skip(1) {
            let block = decode_gossip_block(seed, params).unwrap();
            assert!(block.validate(params).is_ok());
        }
        for seed in transfer_seeds() {
            assert!(decode_gossip_tx(&seed).is_ok());
        }
        for seed in request_seeds() {
            assert!(decode_request(&seed).is_ok());
        }
        for seed in response_seeds() {
            assert!(decode_response(&seed, max_response_bytes(params)).is_ok());
        }
        for seed in undo_seeds() {
            assert!(undo_from(&seed).is_some());
        }
        for seed in console_seeds() {
            for line in String::from_utf8(seed).unwrap().lines() {
                assert!(matches!(parse(line), Ok(Some(_))), "{line}");
            }
        }
    }

    #[test]
    fn every_target_runs_its_seeds() {
        for target in TARGETS {
            for seed in (target.seeds)() {
                (target.run)(&seed);
            }
        }
    }
}
