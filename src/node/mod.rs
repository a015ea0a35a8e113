//! The node: the one owner of the chain, the mempool and the store, driven by typed events.
//!
//! Rules it keeps: nothing else touches the ledger (commands arrive over a bounded channel with a
//! oneshot reply each; events leave on a broadcast channel); the node's decisions live in
//! [`NodeState`](state) and take [`NetEvent`](crate::net::NetEvent)s, pushing
//! [`NetCommand`](crate::net::NetCommand)s to an outbox that [`Node::run`] hands to the
//! [`Network`]; gossip is validated before it is forwarded (Accept, Ignore or Reject); mining
//! runs on miner threads and reports back over a channel; every peer that misbehaves pays for
//! it in the peer book.
//!
//! This file holds the configuration, the start-up errors and [`Node`]: start-up and the run
//! loop that shuttles between the network, the console's commands, the miner and the state.
//!
//! Layout:
//! - `state`: the node's state, the dispatch of network events, penalties and tip changes
//! - `gossip`: gossiped blocks and transactions in, our own out
//! - `sync_io`: status exchange, block download and mempool fetches on the sync protocol
//! - `checking`: sync answers checked off the event loop, on the rayon pool
//! - `unstored`: changes the chain took, waiting for one store commit
//! - `mining`: the miner, its attempts and what it found
//! - `connections`: connections opening and closing, dials, pings, discovery
//! - `handle_command`: carrying out console commands
//! - [`command`]: the commands and the [`NodeHandle`] that sends them
//! - [`event`]: events and the views commands answer with
//! - [`peers`]: the peer book (addresses, re-dials, scores, bans)
//! - [`sync`]: the sync state machine
//! - [`mempool_fetch`]: when to ask a new peer for its pending transactions
//! - `inquiry`: chain pages and status rounds with every peer, for the HTTP front end
//! - [`explore`]: block sources, reorgs and the recent block tree, for the explorer
//! - `metrics`: the Prometheus registry the node owns

mod budget;
mod checking;
pub mod command;
mod connections;
pub mod event;
pub mod explore;
mod gossip;
mod handle_command;
mod inquiry;
pub mod mempool_fetch;
mod metrics;
mod mining;
pub mod peers;
mod state;
pub mod sync;
mod sync_io;
mod unstored;
mod writer;

use std::future::Future;
use std::path::PathBuf;
use std::time::Duration;

use libp2p::Multiaddr;
use tokio::sync::{broadcast, mpsc};
use tracing::info;

use crate::ledger::pow::MiningOutcome;
use crate::ledger::{NetworkParams, Store, StoreError};
use crate::net::behaviour::NetError;
use crate::net::{NetEvent, Network};
pub use command::{BlockQuery, ChainWindow, Command, CommandError, NodeHandle};
pub use event::Event;
use state::NodeState;

/// Commands that may wait for the event loop.
const COMMAND_QUEUE: usize = 64;
/// Events kept for slow subscribers before they miss some.
const EVENT_QUEUE: usize = 4096;
/// Mining outcomes that may wait for the event loop.
const MINED_QUEUE: usize = 16;

/// Everything a node needs to start.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// Where the store lives.
    pub data_dir: PathBuf,
    /// The network.
    pub params: NetworkParams,
    /// Addresses to listen on.
    pub listen: Vec<Multiaddr>,
    /// Peers to dial at start (and re-dial while they are away).
    pub peers: Vec<Multiaddr>,
    /// Whether to discover peers by mDNS.
    pub mdns: bool,
    /// Threads the miner uses.
    pub mine_threads: usize,
    /// The least fee a transfer from a peer must pay to enter the mempool; `None` for the
    /// network's default ([`RelayPolicy::default_min_relay_fee`](crate::ledger::RelayPolicy)).
    pub min_relay_fee: Option<u64>,
}

/// Why a node could not start.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// The data directory could not be created.
    #[error("cannot create data directory {path}: {source}")]
    DataDir {
        /// The directory.
        path: PathBuf,
        /// The failure.
        source: std::io::Error,
    },
    /// The store could not be opened or read.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The stored node key is not an ed25519 secret key.
    #[error("stored node key is not a valid ed25519 key")]
    BadNodeKey,
    /// The swarm could not be built, could not listen or could not subscribe.
    #[error(transparent)]
    Net(#[from] NetError),
    /// The thread that writes the store's commits could not be started.
    #[error("cannot start the store's writer thread: {0}")]
    Writer(std::io::Error),
}

/// A node ready to run. Built by [`Node::start`], driven by [`Node::run`].
pub struct Node {
    state: NodeState,
    network: Network,
    commands: mpsc::Receiver<Command>,
    mined: mpsc::Receiver<(u64, MiningOutcome)>,
}

impl Node {
    /// Opens the store, restores the chain, takes the node key as the libp2p identity, builds
    /// the network and starts listening.
    ///
    /// # Errors
    /// [`NodeError`] naming what could not be set up.
    pub fn start(config: NodeConfig) -> Result<(Node, NodeHandle), NodeError> {
        std::fs::create_dir_all(&config.data_dir).map_err(|source| NodeError::DataDir {
            path: config.data_dir.clone(),
            source,
        })?;
        let store = Store::open(&config.data_dir, &config.params)?;
        let (events, _) = broadcast::channel(EVENT_QUEUE);
        let (outcomes, mined) = mpsc::channel(MINED_QUEUE);
        let (mut state, keypair) = NodeState::open(
            config.params.clone(),
            store,
            config.mine_threads,
            config.min_relay_fee,
            &config.peers,
            events.clone(),
            outcomes,
        )?;
        let genesis = state.genesis_hash();
        let network = Network::start(
            keypair,
            &config.params,
            &genesis,
            config.mdns,
            &config.listen,
            state.metrics.registry_for_libp2p(),
        )?;
        info!(
            peer_id = %state.peer_id,
            address = %state.address,
            network = %state.params.name,
            height = state.chain.height(),
            "node started"
        );
        let (command_tx, commands) = mpsc::channel(COMMAND_QUEUE);
        let handle = NodeHandle::new(command_tx, events);
        Ok((
            Node {
                state,
                network,
                commands,
                mined,
            },
            handle,
        ))
    }

    /// Runs until `shutdown` completes or a [`Command::Shutdown`] arrives; then stops mining.
    /// Blocks still waiting for their commit are stored before it returns.
    ///
    /// # Errors
    /// [`NodeError::Store`] if a store commit failed: the node halts at once, before announcing
    /// anything the store does not hold (a [`Event::NodeHalted`] event says so first).
    pub async fn run(mut self, shutdown: impl Future<Output = ()>) -> Result<(), NodeError> {
        tokio::pin!(shutdown);
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // Checks run on the rayon pool and come back here; there are at most as many as sync
        // requests in flight.
        let (checked_tx, mut checked) = mpsc::unbounded_channel();
        self.state.dial_due(std::time::Instant::now());
        self.flush();
        let committed = self.state.unstored.commit_finished();
        loop {
            let store_by = self.state.store_pending_by();
            let wake = tokio::select! {
                _ = &mut shutdown => Wake::Shutdown,
                event = self.network.next_event() => Wake::Net(event),
                Some(command) = self.commands.recv() => Wake::Command(command),
                Some((generation, outcome)) = self.mined.recv() => Wake::Mined(generation, outcome),
                Some(done) = checked.recv() => Wake::Checked(done),
                _ = tick.tick() => Wake::Tick,
                _ = sleep_until(store_by), if store_by.is_some() => Wake::Store,
                _ = committed.notified() => Wake::Committed,
            };
            // Blocks not stored yet are stored (and only then announced) before anything else
            // is looked at: no peer, command or timer sees a tip the store lacks. Only what
            // adds blocks (the miner, a sync's answers and their checks) may add to them first,
            // and what starts or ends a commit on the writer thread.
            if !wake.adds_blocks() && !wake.commits() {
                self.state.store_pending();
            }
            match wake {
                Wake::Shutdown => break,
                Wake::Net(event) => self.state.on_net_event(event),
                Wake::Command(command) => {
                    if !self.state.on_command(command) {
                        break;
                    }
                }
                Wake::Mined(generation, outcome) => self.state.on_mined(generation, outcome),
                Wake::Checked(done) => self.state.on_checked(done),
                Wake::Tick => self.state.on_tick(),
                Wake::Store => self.state.start_commit(),
                Wake::Committed => self.state.on_commit_finished(),
            }
            if self.state.halted().is_some() {
                break;
            }
            self.flush();
            self.spawn_checks(&checked_tx);
            self.state.update_mining();
            self.state.poll_resolves(std::time::Instant::now());
        }
        self.state.stop_mining();
        self.state.store_pending();
        match self.state.take_halt() {
            Some(error) => Err(NodeError::Store(error)),
            None => {
                info!("node stopped");
                Ok(())
            }
        }
    }

    /// Starts the checks the state queued on the rayon pool; each outcome comes back to the
    /// loop over `done`.
    fn spawn_checks(&mut self, done: &mpsc::UnboundedSender<checking::CheckDone>) {
        while let Some(job) = self.state.next_check() {
            let params = self.state.shared_params();
            let done = done.clone();
            rayon::spawn(move || {
                // The loop has stopped if nobody receives: the outcome no longer matters.
                let _ = done.send(job.run(&params));
            });
        }
    }

    /// Hands the state's commands to the network, in order; a dial's outcome goes back to the
    /// state at once, before anything else can happen.
    fn flush(&mut self) {
        while let Some(command) = self.state.next_command() {
            if let Some(outcome) = self.network.execute(command) {
                self.state.on_net_event(outcome);
            }
        }
    }
}

/// What woke the event loop.
enum Wake {
    Shutdown,
    Net(NetEvent),
    Command(Command),
    Mined(u64, MiningOutcome),
    /// A sync answer's check is done.
    Checked(checking::CheckDone),
    Tick,
    /// Blocks have waited long enough for their commit.
    Store,
    /// A commit on the writer thread finished.
    Committed,
}

impl Wake {
    /// Whether this wake starts a commit or takes one's result, which the changes waiting
    /// for a commit may also wait through.
    fn commits(&self) -> bool {
        matches!(self, Wake::Store | Wake::Committed)
    }

    /// Whether this wake only adds blocks to the chain (found, downloaded or checked) or
    /// headers to a sync, so the blocks waiting for a commit may wait on: none of these
    /// announces, reports or serves anything without storing first.
    fn adds_blocks(&self) -> bool {
        use crate::net::protocol::SyncResponse;
        matches!(
            self,
            Wake::Mined(..)
                | Wake::Checked(_)
                | Wake::Net(NetEvent::SyncAnswered {
                    response: SyncResponse::Blocks(_) | SyncResponse::Headers(_),
                    ..
                })
        )
    }
}

/// Sleeps until `deadline` (never, without one).
async fn sleep_until(deadline: Option<std::time::Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}
