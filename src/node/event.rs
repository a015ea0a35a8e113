//! What the node tells the outside: events as they happen, and the views commands answer with.
//!
//! Every type here serialises to the JSON contract of the console (field names are part of it):
//! hashes, txids and addresses as lowercase hex strings, amounts and heights as integers.

use serde::{Deserialize, Serialize};

use crate::ledger::{Address, Block, BlockHash, Transaction, TxId};

/// Something that happened in the node, printed by the console as it happens.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// The node listens on a new address (tests and scripts learn the port from it).
    Listening {
        /// The multiaddr, with `/p2p/<peer id>` appended so that it can be dialed as is.
        address: String,
    },
    /// The first connection to a peer opened.
    PeerConnected {
        /// The peer.
        peer_id: String,
        /// Its remote address on that connection.
        address: String,
    },
    /// The last connection to a peer closed.
    PeerDisconnected {
        /// The peer.
        peer_id: String,
    },
    /// A block joined the main chain.
    BlockAccepted {
        /// Its height.
        height: u64,
        /// Its hash.
        hash: BlockHash,
        /// `mined`, or the id of the peer that sent it.
        source: String,
    },
    /// The main chain switched to a branch with more work.
    Reorg {
        /// Tip before.
        old_tip: BlockHash,
        /// Tip after.
        new_tip: BlockHash,
        /// Blocks disconnected from the old chain.
        depth: usize,
        /// Height of the last block both chains share.
        fork_height: u64,
    },
    /// A transaction entered the mempool.
    TxAccepted {
        /// Its id.
        txid: TxId,
        /// `local`, or the id of the peer that sent it.
        source: String,
    },
    /// Downloading a peer's chain with more work began (its headers came first).
    SyncStarted {
        /// The peer.
        peer_id: String,
        /// Our height when it began.
        from_height: u64,
        /// The height the peer claimed.
        to_height: u64,
    },
    /// A long sync moved on (at most about once a second): blocks it connects are reported
    /// here, not one `block_accepted` each.
    SyncProgress {
        /// The peer whose chain is being downloaded.
        peer_id: String,
        /// Our height now.
        height: u64,
        /// The height of the chain being downloaded.
        target: u64,
        /// Blocks connected per second since the last report.
        blocks_per_s: u64,
    },
    /// The node stopped because something it cannot go on without failed (a store commit):
    /// it announces nothing it has not stored, so it halts instead.
    NodeHalted {
        /// What failed.
        reason: String,
    },
    /// The download ended: no peer shows more work than our chain.
    SyncFinished {
        /// The peer.
        peer_id: String,
        /// Our height when it began.
        from_height: u64,
        /// Our height now.
        to_height: u64,
    },
}

/// A transaction as shown to users.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TxView {
    /// Its id.
    pub txid: TxId,
    /// The sender's address; `null` for a coinbase.
    pub from: Option<Address>,
    /// The receiver's address.
    pub to: Address,
    /// Coins moved.
    pub amount: u64,
    /// Fee to the miner.
    pub fee: u64,
    /// The sender's nonce (0 for a coinbase).
    pub nonce: u64,
    /// True for the block reward.
    pub coinbase: bool,
    /// The transfer's memo, if it carries one (absent from the JSON otherwise).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memo: Option<String>,
}

impl From<&Transaction> for TxView {
    fn from(tx: &Transaction) -> Self {
        Self {
            txid: tx.compute_txid(),
            from: tx.sender(),
            to: tx.to(),
            amount: tx.amount(),
            fee: tx.fee(),
            nonce: tx.transfer().map_or(0, |t| t.nonce),
            coinbase: tx.is_coinbase(),
            memo: tx
                .transfer()
                .filter(|t| !t.memo.is_empty())
                .map(|t| String::from_utf8_lossy(&t.memo).into_owned()),
        }
    }
}

/// A post as the second Flask tutorial stores it (`author`, `content`, `timestamp`), carried
/// as the memo of a zero-amount transfer to the poster's own account, in compact JSON:
/// `{"author":"…","content":"…","timestamp":…}` with the timestamp in ms since the Unix epoch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Post {
    /// Who wrote it, as the poster typed it.
    pub author: String,
    /// What it says.
    pub content: String,
    /// When it was posted, in ms since the Unix epoch, by the posting node's clock.
    pub timestamp: u64,
}

impl Post {
    /// The memo that records this post: its compact JSON.
    pub fn to_memo(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// The post a memo records, if the memo is one (exactly the three fields).
    pub fn from_memo(memo: &str) -> Option<Self> {
        serde_json::from_str(memo).ok()
    }
}

/// A block as shown to users.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BlockView {
    /// Its height.
    pub height: u64,
    /// Its hash.
    pub hash: BlockHash,
    /// Its parent's hash.
    pub prev_hash: BlockHash,
    /// Milliseconds since the Unix epoch, as the miner stamped it.
    pub timestamp: u64,
    /// The proof-of-work nonce.
    pub nonce: u64,
    /// Leading zero bits its hash needed.
    pub difficulty: u32,
    /// Its transactions, the coinbase first.
    pub transactions: Vec<TxView>,
}

impl From<&Block> for BlockView {
    fn from(block: &Block) -> Self {
        Self {
            height: block.header.height,
            hash: block.block_hash(),
            prev_hash: block.header.prev_hash,
            timestamp: block.header.timestamp,
            nonce: block.header.nonce,
            difficulty: block.header.difficulty,
            transactions: block.transactions.iter().map(TxView::from).collect(),
        }
    }
}

/// The answer to `status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StatusView {
    /// The network's name.
    pub network: String,
    /// The network's genesis hash.
    pub genesis: BlockHash,
    /// This node's libp2p peer id.
    pub peer_id: String,
    /// This node's account address.
    pub address: Address,
    /// Height of the tip (genesis is 0).
    pub height: u64,
    /// Hash of the tip.
    pub tip: BlockHash,
    /// Connected peers.
    pub peers: usize,
    /// Pending transactions.
    pub mempool: usize,
    /// Listen addresses.
    pub listen: Vec<String>,
    /// Whether automine is on.
    pub automine: bool,
    /// Whether a sync is running.
    pub syncing: bool,
}

/// One connected peer, for `peers`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PeerView {
    /// Its peer id.
    pub peer_id: String,
    /// Remote addresses of its open connections.
    pub addresses: Vec<String>,
    /// Its tip height, where known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub height: Option<u64>,
    /// Its tip hash, where known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tip: Option<BlockHash>,
}

/// The answer to `balance`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BalanceView {
    /// The account.
    pub address: Address,
    /// Its balance at the tip.
    pub balance: u64,
    /// The nonce its next transfer must carry at the tip.
    pub nonce: u64,
}

/// The answer to `mine`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MineView {
    /// Height of the last block mined.
    pub height: u64,
    /// Hash of the last block mined.
    pub hash: BlockHash,
    /// Blocks mined onto the main chain for this command.
    pub mined: u64,
}

/// The answer to a chain page: some main-chain blocks and the length of the whole chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChainPage {
    /// Blocks on the main chain, genesis included (tip height + 1).
    pub length: u64,
    /// Height of the first block asked for.
    pub from: u64,
    /// The blocks from `from` up, lowest first; empty past the tip.
    pub blocks: Vec<BlockView>,
}

/// The answer to resolving with the peers: what our chain did while they were asked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ResolveView {
    /// Peers asked for their status.
    pub asked: usize,
    /// Peers that answered in time.
    pub answered: usize,
    /// Our tip before asking.
    pub old_tip: BlockHash,
    /// Our tip now.
    pub tip: BlockHash,
    /// Our height now.
    pub height: u64,
    /// Whether our tip changed meanwhile (a peer had a chain with more work).
    pub replaced: bool,
    /// Whether a sync was still running when the wait ended.
    pub syncing: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_serialise_with_the_contract_names() {
        let e = Event::BlockAccepted {
            height: 3,
            hash: BlockHash([0xab; 32]),
            source: "mined".into(),
        };
        let v = serde_json::to_value(&e).unwrap();
        assert_eq!(v["event"], "block_accepted");
        assert_eq!(v["height"], 3);
        assert_eq!(v["hash"], "ab".repeat(32));
        assert_eq!(v["source"], "mined");
        let r = serde_json::to_value(Event::Reorg {
            old_tip: BlockHash::ZERO,
            new_tip: BlockHash::ZERO,
            depth: 2,
            fork_height: 1,
        })
        .unwrap();
        assert_eq!(r["event"], "reorg");
        assert_eq!(r["depth"], 2);
        assert_eq!(r["fork_height"], 1);
    }

    #[test]
    fn a_memo_is_shown_as_text_and_a_transfer_without_one_has_no_memo_field() {
        let key = ed25519_dalek::SigningKey::from_bytes(&[1; 32]);
        let net = crate::ledger::NetworkParams::devnet().network_id();
        let plain = Transaction::sign_transfer(&key, &net, Address([2; 20]), 5, 1, 0);
        let v = serde_json::to_value(TxView::from(&plain)).unwrap();
        assert!(v.get("memo").is_none(), "{v}");
        let noted = Transaction::sign_transfer_with_memo(
            &key,
            &net,
            Address([2; 20]),
            0,
            1,
            0,
            "thé".as_bytes().to_vec(),
        );
        let v = serde_json::to_value(TxView::from(&noted)).unwrap();
        assert_eq!(v["memo"], "thé");
        assert_eq!(v["amount"], 0);
    }

    #[test]
    fn a_post_round_trips_through_its_memo_and_other_memos_are_not_posts() {
        let post = Post {
            author: "ada".into(),
            content: "hello \"world\"".into(),
            timestamp: 1_767_225_600_000,
        };
        let memo = post.to_memo();
        assert_eq!(
            memo,
            r#"{"author":"ada","content":"hello \"world\"","timestamp":1767225600000}"#
        );
        assert_eq!(Post::from_memo(&memo), Some(post));
        for other in [
            "rent for May",
            r#"{"author":"a"}"#,
            r#"{"author":"a","content":"b","timestamp":1,"x":2}"#,
        ] {
            assert_eq!(Post::from_memo(other), None, "{other}");
        }
    }

    #[test]
    fn a_coinbase_shows_no_sender() {
        let tx = Transaction::coinbase(4, Address([1; 20]), 50);
        let v = serde_json::to_value(TxView::from(&tx)).unwrap();
        assert!(v["from"].is_null());
        assert_eq!(v["to"], "01".repeat(20));
        assert_eq!(v["amount"], 50);
        assert_eq!(v["coinbase"], true);
    }
}
