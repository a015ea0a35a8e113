//! Commands to the node and the cloneable handle that sends them.
//!
//! Each command carries a oneshot sender for its reply; the node's event loop is the only
//! receiver, so everything the node owns is touched by one task. The command queue is bounded.
//! Bounds that protect the node (such as [`MAX_MINE_COUNT`]) are checked here, in the handle,
//! so that every front end gets them.

use std::time::Duration;

use libp2p::Multiaddr;
use tokio::sync::{broadcast, mpsc, oneshot};

use super::event::Post;
use super::event::{
    BalanceView, BlockView, ChainPage, Event, MineView, PeerView, ResolveView, StatusView, TxView,
};
use super::explore::TreeView;
use crate::ledger::{Address, BlockHash, MempoolError, TxId, MAX_MEMO_BYTES};

/// Most blocks one `mine` may ask for: a larger count would keep the miner busy for hours.
pub const MAX_MINE_COUNT: u64 = 100_000;

/// Most blocks one [`Command::ChainRange`] page may carry: a page stays a few megabytes at most.
pub const MAX_CHAIN_PAGE: u64 = 100;

/// Most blocks one [`Command::Chain`] reply carries, whatever count or range was asked.
pub const MAX_CHAIN_REPLY_BLOCKS: u64 = 1_000;

/// Most encoded block bytes one chain reply ([`Command::Chain`] or a [`Command::ChainRange`]
/// page) carries; the first block always goes, so a reply never comes back empty mid-chain.
pub const MAX_CHAIN_REPLY_BYTES: usize = 1_000_000;

/// Blocks [`Command::Chain`] shows when no count is given: a screenful.
pub const DEFAULT_CHAIN_BLOCKS: u64 = 20;

/// Which main-chain blocks [`Command::Chain`] shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChainWindow {
    /// The last this many blocks, ending at the tip.
    Latest(u64),
    /// Heights from `from` up to `to` (both included; the tip if `None`).
    Range {
        /// The first height.
        from: u64,
        /// The last height.
        to: Option<u64>,
    },
}

/// Most blocks below the tip one [`Command::Tree`] may reach: the answer stays small.
pub const MAX_TREE_DEPTH: u64 = 512;

/// Longest a [`Command::ResolvePeers`] may wait for the peers' answers and the sync they start.
pub const MAX_RESOLVE_WAIT: Duration = Duration::from_secs(10);

/// Where a command's answer goes.
pub type Reply<T> = oneshot::Sender<Result<T, CommandError>>;

/// Which block `block` asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockQuery {
    /// The main-chain block at this height.
    Height(u64),
    /// The block with this hash, main chain or side branch.
    Hash(BlockHash),
}

/// Why a command failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    /// The node's event loop has ended.
    #[error("node has stopped")]
    NodeStopped,
    /// The mempool refused the transaction.
    #[error(transparent)]
    Mempool(#[from] MempoolError),
    /// No main-chain block at that height.
    #[error("no block at height {0}")]
    NoBlockAtHeight(u64),
    /// No block with that hash.
    #[error("no block with hash {0}")]
    UnknownBlock(BlockHash),
    /// The dial could not start.
    #[error("cannot dial: {0}")]
    Dial(String),
    /// Too many `mine` commands wait already.
    #[error("too many mine commands are waiting")]
    MinerBusy,
    /// A `mine` count of zero or over [`MAX_MINE_COUNT`].
    #[error("count must be 1 to {MAX_MINE_COUNT}")]
    MineCountOutOfRange(u64),
    /// A chain page `limit` of zero or over [`MAX_CHAIN_PAGE`].
    #[error("limit must be 1 to {MAX_CHAIN_PAGE}")]
    ChainLimitOutOfRange(u64),
    /// A tree `depth` over [`MAX_TREE_DEPTH`].
    #[error("depth must be 0 to {MAX_TREE_DEPTH}")]
    TreeDepthOutOfRange(u64),
    /// Too many [`Command::ResolvePeers`] wait already.
    #[error("too many status rounds with the peers are waiting")]
    ResolveBusy,
    /// A memo (or a post's JSON memo) over [`MAX_MEMO_BYTES`], refused before signing.
    #[error("memo of {len} bytes is over the cap of {max} bytes")]
    MemoTooLong {
        /// The memo's length in bytes.
        len: usize,
        /// [`MAX_MEMO_BYTES`].
        max: usize,
    },
    /// A post without an author or without content.
    #[error("a post needs a non-empty {0}")]
    EmptyPostField(&'static str),
}

/// A request to the node's event loop.
#[derive(Debug)]
pub enum Command {
    /// Report network, identity, tip and counts.
    Status(Reply<StatusView>),
    /// List connected peers.
    Peers(Reply<Vec<PeerView>>),
    /// Sign a transfer from this node's account, add it to the mempool and gossip it.
    SubmitTransfer {
        /// Receiver.
        to: Address,
        /// Coins.
        amount: u64,
        /// Fee.
        fee: u64,
        /// Memo, empty for none (at most [`MAX_MEMO_BYTES`], checked by the handle).
        memo: String,
        /// The new transaction's id.
        reply: Reply<TxId>,
    },
    /// Mine `count` blocks onto the main chain, answering when done.
    Mine {
        /// Blocks wanted.
        count: u64,
        /// The last block mined.
        reply: Reply<MineView>,
    },
    /// Turn continuous mining on or off.
    SetAutomine {
        /// On or off.
        on: bool,
        /// The new setting.
        reply: Reply<bool>,
    },
    /// A window of main-chain blocks, lowest first, capped at [`MAX_CHAIN_REPLY_BLOCKS`] and
    /// [`MAX_CHAIN_REPLY_BYTES`], with the chain's length and the first height.
    Chain {
        /// Which blocks.
        window: ChainWindow,
        /// The page.
        reply: Reply<ChainPage>,
    },
    /// One block.
    Block {
        /// Which.
        query: BlockQuery,
        /// The block.
        reply: Reply<BlockView>,
    },
    /// An account's balance (this node's if `None`).
    Balance {
        /// Which account.
        address: Option<Address>,
        /// Its balance.
        reply: Reply<BalanceView>,
    },
    /// Pending transactions.
    Mempool(Reply<Vec<TxView>>),
    /// Connect to a peer by address.
    Dial {
        /// Where.
        addr: Multiaddr,
        /// Whether the dial started.
        reply: Reply<()>,
    },
    /// Stop the node.
    Shutdown(Reply<()>),
    /// Up to `limit` main-chain blocks from height `from` up, with the chain's length.
    ChainRange {
        /// First height.
        from: u64,
        /// Most blocks (1 to [`MAX_CHAIN_PAGE`], checked by the handle).
        limit: u64,
        /// The page.
        reply: Reply<ChainPage>,
    },
    /// Ask every connected peer for its status now; answer once all answered and any sync they
    /// started has finished, or once `wait` has passed.
    ResolvePeers {
        /// Longest wait (at most [`MAX_RESOLVE_WAIT`], enforced by the handle).
        wait: Duration,
        /// What happened to our chain meanwhile.
        reply: Reply<ResolveView>,
    },
    /// The recent block tree, `depth` blocks below the tip at most, with remembered reorgs.
    Tree {
        /// Most blocks below the tip (at most [`MAX_TREE_DEPTH`], checked by the handle).
        depth: u64,
        /// The tree.
        reply: Reply<TreeView>,
    },
    /// The node's metrics in Prometheus text format.
    Metrics(Reply<String>),
}

/// A cloneable way to talk to a running node.
#[derive(Debug, Clone)]
pub struct NodeHandle {
    commands: mpsc::Sender<Command>,
    events: broadcast::Sender<Event>,
}

impl NodeHandle {
    /// A handle over the node's command queue and event channel.
    pub(crate) fn new(commands: mpsc::Sender<Command>, events: broadcast::Sender<Event>) -> Self {
        Self { commands, events }
    }

    /// Events from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.events.subscribe()
    }

    async fn ask<T>(&self, make: impl FnOnce(Reply<T>) -> Command) -> Result<T, CommandError> {
        let (reply, answer) = oneshot::channel();
        self.commands
            .send(make(reply))
            .await
            .map_err(|_| CommandError::NodeStopped)?;
        answer.await.map_err(|_| CommandError::NodeStopped)?
    }

    /// See [`Command::Status`].
    ///
    /// # Errors
    /// [`CommandError::NodeStopped`].
    pub async fn status(&self) -> Result<StatusView, CommandError> {
        self.ask(Command::Status).await
    }

    /// See [`Command::Peers`].
    ///
    /// # Errors
    /// [`CommandError::NodeStopped`].
    pub async fn peers(&self) -> Result<Vec<PeerView>, CommandError> {
        self.ask(Command::Peers).await
    }

    /// See [`Command::SubmitTransfer`]; a transfer without a memo.
    ///
    /// # Errors
    /// [`CommandError::Mempool`] naming the broken rule.
    pub async fn submit_transfer(
        &self,
        to: Address,
        amount: u64,
        fee: u64,
    ) -> Result<TxId, CommandError> {
        self.submit_transfer_with_memo(to, amount, fee, String::new())
            .await
    }

    /// See [`Command::SubmitTransfer`]; `memo` (empty for none) must be at most
    /// [`MAX_MEMO_BYTES`] bytes. A zero `amount` needs a non-empty memo (the mempool says so).
    ///
    /// # Errors
    /// [`CommandError::MemoTooLong`], or [`CommandError::Mempool`] naming the broken rule.
    pub async fn submit_transfer_with_memo(
        &self,
        to: Address,
        amount: u64,
        fee: u64,
        memo: String,
    ) -> Result<TxId, CommandError> {
        if memo.len() > MAX_MEMO_BYTES {
            return Err(CommandError::MemoTooLong {
                len: memo.len(),
                max: MAX_MEMO_BYTES,
            });
        }
        self.ask(|reply| Command::SubmitTransfer {
            to,
            amount,
            fee,
            memo,
            reply,
        })
        .await
    }

    /// Records a post as the second tutorial does: a zero-amount transfer from this node's
    /// account to itself paying `fee`, whose memo is the [`Post`] stamped with the local clock.
    /// Author and content must be non-empty and the post's memo at most [`MAX_MEMO_BYTES`].
    ///
    /// # Errors
    /// [`CommandError::EmptyPostField`], [`CommandError::MemoTooLong`], or
    /// [`CommandError::Mempool`] naming the broken rule.
    pub async fn post(
        &self,
        author: &str,
        content: &str,
        fee: u64,
    ) -> Result<(TxId, Post), CommandError> {
        if author.trim().is_empty() {
            return Err(CommandError::EmptyPostField("author"));
        }
        if content.trim().is_empty() {
            return Err(CommandError::EmptyPostField("content"));
        }
        let timestamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let post = Post {
            author: author.to_string(),
            content: content.to_string(),
            timestamp,
        };
        let memo = post.to_memo();
        if memo.len() > MAX_MEMO_BYTES {
            return Err(CommandError::MemoTooLong {
                len: memo.len(),
                max: MAX_MEMO_BYTES,
            });
        }
        let own = self.status().await?.address;
        let txid = self.submit_transfer_with_memo(own, 0, fee, memo).await?;
        Ok((txid, post))
    }

    /// See [`Command::Mine`]; `count` must be 1 to [`MAX_MINE_COUNT`].
    ///
    /// # Errors
    /// [`CommandError::MineCountOutOfRange`], [`CommandError::MinerBusy`] or
    /// [`CommandError::NodeStopped`].
    pub async fn mine(&self, count: u64) -> Result<MineView, CommandError> {
        if !(1..=MAX_MINE_COUNT).contains(&count) {
            return Err(CommandError::MineCountOutOfRange(count));
        }
        self.ask(|reply| Command::Mine { count, reply }).await
    }

    /// See [`Command::SetAutomine`].
    ///
    /// # Errors
    /// [`CommandError::NodeStopped`].
    pub async fn set_automine(&self, on: bool) -> Result<bool, CommandError> {
        self.ask(|reply| Command::SetAutomine { on, reply }).await
    }

    /// See [`Command::Chain`].
    ///
    /// # Errors
    /// [`CommandError::NodeStopped`].
    pub async fn chain(&self, window: ChainWindow) -> Result<ChainPage, CommandError> {
        self.ask(|reply| Command::Chain { window, reply }).await
    }

    /// See [`Command::Block`].
    ///
    /// # Errors
    /// [`CommandError::NoBlockAtHeight`] or [`CommandError::UnknownBlock`].
    pub async fn block(&self, query: BlockQuery) -> Result<BlockView, CommandError> {
        self.ask(|reply| Command::Block { query, reply }).await
    }

    /// See [`Command::Balance`].
    ///
    /// # Errors
    /// [`CommandError::NodeStopped`].
    pub async fn balance(&self, address: Option<Address>) -> Result<BalanceView, CommandError> {
        self.ask(|reply| Command::Balance { address, reply }).await
    }

    /// See [`Command::Mempool`].
    ///
    /// # Errors
    /// [`CommandError::NodeStopped`].
    pub async fn mempool(&self) -> Result<Vec<TxView>, CommandError> {
        self.ask(Command::Mempool).await
    }

    /// See [`Command::Dial`].
    ///
    /// # Errors
    /// [`CommandError::Dial`] if the dial cannot start.
    pub async fn dial(&self, addr: Multiaddr) -> Result<(), CommandError> {
        self.ask(|reply| Command::Dial { addr, reply }).await
    }

    /// See [`Command::ChainRange`]; `limit` must be 1 to [`MAX_CHAIN_PAGE`].
    ///
    /// # Errors
    /// [`CommandError::ChainLimitOutOfRange`] or [`CommandError::NodeStopped`].
    pub async fn chain_range(&self, from: u64, limit: u64) -> Result<ChainPage, CommandError> {
        if !(1..=MAX_CHAIN_PAGE).contains(&limit) {
            return Err(CommandError::ChainLimitOutOfRange(limit));
        }
        self.ask(|reply| Command::ChainRange { from, limit, reply })
            .await
    }

    /// See [`Command::ResolvePeers`]; `wait` is cut to [`MAX_RESOLVE_WAIT`].
    ///
    /// # Errors
    /// [`CommandError::NodeStopped`].
    pub async fn resolve_peers(&self, wait: Duration) -> Result<ResolveView, CommandError> {
        let wait = wait.min(MAX_RESOLVE_WAIT);
        self.ask(|reply| Command::ResolvePeers { wait, reply })
            .await
    }

    /// See [`Command::Tree`]; `depth` must be at most [`MAX_TREE_DEPTH`].
    ///
    /// # Errors
    /// [`CommandError::TreeDepthOutOfRange`] or [`CommandError::NodeStopped`].
    pub async fn tree(&self, depth: u64) -> Result<TreeView, CommandError> {
        if depth > MAX_TREE_DEPTH {
            return Err(CommandError::TreeDepthOutOfRange(depth));
        }
        self.ask(|reply| Command::Tree { depth, reply }).await
    }

    /// See [`Command::Metrics`].
    ///
    /// # Errors
    /// [`CommandError::NodeStopped`].
    pub async fn metrics(&self) -> Result<String, CommandError> {
        self.ask(Command::Metrics).await
    }

    /// See [`Command::Shutdown`].
    ///
    /// # Errors
    /// [`CommandError::NodeStopped`] if it had already stopped.
    pub async fn shutdown(&self) -> Result<(), CommandError> {
        self.ask(Command::Shutdown).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_mine_count_out_of_range_is_refused_by_the_handle_before_the_node_sees_it() {
        let (commands, mut queue) = mpsc::channel(4);
        let (events, _) = broadcast::channel(4);
        let handle = NodeHandle::new(commands, events);
        for count in [0, MAX_MINE_COUNT + 1, u64::MAX] {
            assert_eq!(
                handle.mine(count).await,
                Err(CommandError::MineCountOutOfRange(count))
            );
        }
        assert!(queue.try_recv().is_err(), "nothing reached the node");
    }

    #[tokio::test]
    async fn a_chain_page_limit_out_of_range_is_refused_by_the_handle_before_the_node_sees_it() {
        let (commands, mut queue) = mpsc::channel(4);
        let (events, _) = broadcast::channel(4);
        let handle = NodeHandle::new(commands, events);
        for limit in [0, MAX_CHAIN_PAGE + 1, u64::MAX] {
            assert_eq!(
                handle.chain_range(0, limit).await,
                Err(CommandError::ChainLimitOutOfRange(limit))
            );
        }
        assert!(queue.try_recv().is_err(), "nothing reached the node");
    }

    #[tokio::test]
    async fn a_memo_over_the_cap_and_an_empty_post_are_refused_by_the_handle_before_the_node_sees_it(
    ) {
        let (commands, mut queue) = mpsc::channel(4);
        let (events, _) = broadcast::channel(4);
        let handle = NodeHandle::new(commands, events);
        let long = "é".repeat(MAX_MEMO_BYTES / 2 + 1);
        assert_eq!(
            handle
                .submit_transfer_with_memo(Address([1; 20]), 1, 0, long)
                .await,
            Err(CommandError::MemoTooLong {
                len: MAX_MEMO_BYTES + 2,
                max: MAX_MEMO_BYTES
            })
        );
        assert_eq!(
            handle.post(" ", "hello", 0).await,
            Err(CommandError::EmptyPostField("author"))
        );
        assert_eq!(
            handle.post("ada", "", 0).await,
            Err(CommandError::EmptyPostField("content"))
        );
        assert!(matches!(
            handle.post("ada", &"x".repeat(MAX_MEMO_BYTES), 0).await,
            Err(CommandError::MemoTooLong { .. })
        ));
        assert!(queue.try_recv().is_err(), "nothing reached the node");
    }

    #[tokio::test]
    async fn a_tree_deeper_than_the_bound_is_refused_by_the_handle_before_the_node_sees_it() {
        let (commands, mut queue) = mpsc::channel(4);
        let (events, _) = broadcast::channel(4);
        let handle = NodeHandle::new(commands, events);
        for depth in [MAX_TREE_DEPTH + 1, u64::MAX] {
            assert_eq!(
                handle.tree(depth).await.map(|_| ()),
                Err(CommandError::TreeDepthOutOfRange(depth))
            );
        }
        assert!(queue.try_recv().is_err(), "nothing reached the node");
    }

    #[tokio::test]
    async fn a_memo_of_exactly_the_cap_reaches_the_node() {
        let (commands, mut queue) = mpsc::channel(4);
        let (events, _) = broadcast::channel(4);
        let handle = NodeHandle::new(commands, events);
        let memo = "m".repeat(MAX_MEMO_BYTES);
        let sending = tokio::spawn(async move {
            handle
                .submit_transfer_with_memo(Address([1; 20]), 0, 1, memo)
                .await
        });
        let Some(Command::SubmitTransfer { memo, amount, .. }) = queue.recv().await else {
            panic!("expected a transfer");
        };
        assert_eq!((memo.len(), amount), (MAX_MEMO_BYTES, 0));
        drop(queue);
        assert!(sending.await.is_ok());
    }

    #[tokio::test]
    async fn a_resolve_wait_is_cut_to_the_bound_by_the_handle() {
        let (commands, mut queue) = mpsc::channel(4);
        let (events, _) = broadcast::channel(4);
        let handle = NodeHandle::new(commands, events);
        let asking = tokio::spawn(async move { handle.resolve_peers(Duration::MAX).await });
        let Some(Command::ResolvePeers { wait, reply }) = queue.recv().await else {
            panic!("expected a resolve command");
        };
        assert_eq!(wait, MAX_RESOLVE_WAIT);
        drop(reply);
        assert_eq!(asking.await.ok(), Some(Err(CommandError::NodeStopped)));
    }
}
