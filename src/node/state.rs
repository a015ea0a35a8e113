//! The node's state and the door every network event comes in by.
//!
//! [`NodeState`] owns the chain, the mempool, the store, the peer book, the sync state and the
//! miner. It takes [`NetEvent`]s in [`NodeState::on_net_event`], sends each to the room that
//! handles it (`gossip`, `sync_io`, `connections`), and pushes the [`NetCommand`]s its
//! decisions need to an outbox that the run loop drains; it does no I/O itself, so every
//! decision can be tested by feeding events. This file also keeps what all rooms share: what an
//! accepted block changes (store, mempool, events), penalties, the once-a-second tick.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use ed25519_dalek::SigningKey;
use libp2p::{identity, Multiaddr, PeerId};
use tokio::sync::{broadcast, mpsc};
use tracing::{debug, error, info, warn};

use super::connections::DialPurpose;
use super::event::Event;
use super::mempool_fetch::MempoolFetches;
use super::mining::Miner;
use super::peers::{split_peer_id, Offence, PeerBook};
use super::sync::SyncManager;
use super::sync_io::Pending;
use super::NodeError;
use crate::ledger::pow::MiningOutcome;
use crate::ledger::{
    Accepted, Address, BlockHash, Chain, Mempool, NetworkParams, PublicKey, RelayPolicy, Store,
    StoreError,
};
use crate::net::protocol::Status;
use crate::net::{DialId, NetCommand, NetEvent, RequestId};

/// Most pending transactions.
const MEMPOOL_CAPACITY: usize = 10_000;
/// How often every peer is asked for its status again.
const STATUS_POLL: Duration = Duration::from_secs(10);

/// Who a block or transaction came from.
#[derive(Debug, Clone, Copy)]
pub(super) enum Source {
    Mined,
    Local,
    Peer(PeerId),
    /// Downloaded by the sync: reported by progress events, not block by block.
    Sync,
}

impl Source {
    /// The `source` field of the console's events.
    pub(super) fn label(self) -> String {
        match self {
            Source::Mined => "mined".to_string(),
            Source::Local => "local".to_string(),
            Source::Peer(peer) => peer.to_string(),
            Source::Sync => "sync".to_string(),
        }
    }
}

/// What became of a block the chain accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Applied {
    /// Stored and reported; it may be announced.
    Stored,
    /// Stored, but the offered block itself turned out invalid while the best branch was
    /// activated (adopted orphans that fail came from other senders): its sender pays.
    OfferedInvalid,
    /// The store commit failed: the node halts and announces nothing more.
    Halted,
}

/// Milliseconds since the Unix epoch, as block timestamps count them.
pub(super) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Everything the node owns, and the outbox of what it wants done on the network.
pub(crate) struct NodeState {
    pub(super) params: NetworkParams,
    pub(super) chain: Chain,
    pub(super) mempool: Mempool,
    pub(super) store: Store,
    pub(super) key: SigningKey,
    pub(super) address: Address,
    pub(super) peer_id: PeerId,
    pub(super) events: broadcast::Sender<Event>,
    pub(super) book: PeerBook,
    pub(super) sync: SyncManager,
    pub(super) mempool_fetches: MempoolFetches,
    pub(super) requests: HashMap<RequestId, Pending>,
    pub(super) next_request: u64,
    pub(super) dials: HashMap<DialId, DialPurpose>,
    pub(super) next_dial: u64,
    pub(super) miner: Miner,
    pub(super) listen: Vec<Multiaddr>,
    pub(super) next_status_poll: Instant,
    pub(super) resolves: Vec<super::inquiry::PendingResolve>,
    /// Block sources and reorgs the explorer's tree shows.
    pub(super) history: super::explore::History,
    /// The node's Prometheus metrics.
    pub(super) metrics: super::metrics::Metrics,
    /// What each peer may still ask of us.
    pub(super) budgets: super::budget::RequestBudgets,
    /// Changes the chain took that the store does not hold yet.
    pub(super) unstored: super::unstored::UnstoredQueue,
    /// Sync answers waiting for their check off the loop.
    pub(super) checks: VecDeque<super::checking::CheckJob>,
    /// The parameters, shared with the threads that run checks.
    pub(super) shared_params: std::sync::Arc<NetworkParams>,
    outbox: VecDeque<NetCommand>,
    /// Why the node must stop, once something it cannot go on without failed (a store commit).
    halted: Option<StoreError>,
}

impl NodeState {
    /// Restores the node from `store`: its chain, and its key, returned also as the libp2p
    /// identity. `peers` are the addresses to dial from the start.
    ///
    /// # Errors
    /// [`NodeError::Store`] if the store cannot be read, [`NodeError::BadNodeKey`] if the key
    /// is not an ed25519 key, [`NodeError::Writer`] if the store's writer thread cannot start.
    pub(super) fn open(
        params: NetworkParams,
        store: Store,
        mine_threads: usize,
        min_relay_fee: Option<u64>,
        peers: &[Multiaddr],
        events: broadcast::Sender<Event>,
        outcomes: mpsc::Sender<(u64, MiningOutcome)>,
    ) -> Result<(NodeState, identity::Keypair), NodeError> {
        let chain = store.load_chain()?;
        let secret = store.node_key()?;
        let unstored =
            super::unstored::UnstoredQueue::new(store.reader()).map_err(NodeError::Writer)?;
        let key = SigningKey::from_bytes(&secret);
        let address = PublicKey(key.verifying_key().to_bytes()).address();
        let keypair =
            identity::Keypair::ed25519_from_bytes(secret).map_err(|_| NodeError::BadNodeKey)?;
        let peer_id = keypair.public().to_peer_id();

        let now = Instant::now();
        let mut book = PeerBook::new();
        for addr in peers {
            match split_peer_id(addr) {
                (addr, Some(peer)) => book.add_peer(peer, addr, now),
                (addr, None) => {
                    book.add_bootstrap(addr, now);
                }
            }
        }
        let network = chain.genesis_hash().into();
        let sync = SyncManager::new(params.clone());
        let policy = RelayPolicy::for_node(&params, address, min_relay_fee);
        let params_for_checks = params.clone();
        let state = NodeState {
            params,
            chain,
            mempool: Mempool::new(MEMPOOL_CAPACITY, network).with_policy(policy),
            store,
            key,
            address,
            peer_id,
            events,
            book,
            sync,
            mempool_fetches: MempoolFetches::new(),
            requests: HashMap::new(),
            next_request: 0,
            dials: HashMap::new(),
            next_dial: 0,
            miner: Miner::new(mine_threads, outcomes),
            listen: Vec::new(),
            next_status_poll: now + STATUS_POLL,
            resolves: Vec::new(),
            history: Default::default(),
            metrics: Default::default(),
            budgets: Default::default(),
            unstored,
            checks: VecDeque::new(),
            shared_params: std::sync::Arc::new(params_for_checks),
            outbox: VecDeque::new(),
            halted: None,
        };
        Ok((state, keypair))
    }

    /// The hash of our network's genesis block (the network's identity).
    pub(super) fn genesis_hash(&self) -> BlockHash {
        self.chain.genesis_hash()
    }

    /// The oldest command not yet handed to the network.
    pub(super) fn next_command(&mut self) -> Option<NetCommand> {
        self.outbox.pop_front()
    }

    /// Queues a command for the network; a halted node sends nothing more.
    pub(super) fn push(&mut self, command: NetCommand) {
        if self.halted.is_none() {
            self.metrics.observe_command(&command);
            self.outbox.push_back(command);
        }
    }

    /// Why the node halted, if it did: the run loop stops without sending anything more.
    pub(super) fn halted(&self) -> Option<&StoreError> {
        self.halted.as_ref()
    }

    /// The failure that halted the node, for the run loop to return.
    pub(super) fn take_halt(&mut self) -> Option<StoreError> {
        self.halted.take()
    }

    /// Stops everything that would announce state the store does not hold: the outbox is
    /// emptied and closed, and the console is told why.
    pub(super) fn halt(&mut self, error: StoreError) {
        let what = match error {
            StoreError::BodyUnreadable(_) => "read",
            _ => "commit",
        };
        error!(%error, "store {what} failed; the node stops");
        self.outbox.clear();
        self.emit(Event::NodeHalted {
            reason: format!("store {what} failed: {error}"),
        });
        self.halted = Some(error);
    }

    /// Takes one network event: the room that owns it decides.
    pub(super) fn on_net_event(&mut self, event: NetEvent) {
        let now = Instant::now();
        match event {
            NetEvent::GossipBlock {
                from,
                message,
                block,
            } => self.on_gossip_block(from, message, block),
            NetEvent::GossipTx { from, message, tx } => self.on_gossip_tx(from, message, tx),
            NetEvent::GossipGarbage { from, error } => {
                debug!(%from, %error, "undecodable gossip");
                self.penalise(from, Offence::Garbage);
            }
            NetEvent::SyncRequested {
                peer,
                request,
                channel,
            } => self.on_sync_request(peer, request, channel),
            NetEvent::SyncAnswered {
                peer,
                request,
                response,
            } => self.on_sync_answer(peer, request, response),
            NetEvent::SyncFailed {
                peer,
                request,
                failure,
            } => self.on_sync_failure(peer, request, failure),
            NetEvent::InboundGarbage { peer } => self.penalise(peer, Offence::Garbage),
            NetEvent::PeerConnected {
                peer,
                connection,
                remote,
                dialer,
            } => self.on_connected(peer, connection, remote, dialer, now),
            NetEvent::PeerDisconnected { peer, connection } => {
                self.on_disconnected(peer, connection, now);
            }
            NetEvent::DialFailed {
                connection,
                self_dial,
            } => {
                let myself = self_dial.then_some(self.peer_id);
                self.book.dial_failed(connection, myself);
            }
            NetEvent::DialStarted { dial, connection } => {
                self.on_dial_outcome(dial, connection, Ok(()), now);
            }
            NetEvent::DialRefused {
                dial,
                connection,
                reason,
            } => self.on_dial_outcome(dial, connection, Err(reason), now),
            NetEvent::Discovered { peer, addr } => self.on_discovered(peer, addr, now),
            NetEvent::Pong { connection } => self.book.pong(connection, now),
            NetEvent::PingFailed {
                peer,
                connection,
                reason,
            } => {
                info!(%peer, error = %reason, "ping failed; closing the connection");
                self.push(NetCommand::CloseConnection(connection));
            }
            NetEvent::ForeignProtocol { peer, version } => {
                info!(peer_id = %peer, %version, "not a gossipchain peer");
                self.push(NetCommand::Disconnect(peer));
            }
            NetEvent::Listening { address } => {
                info!(%address, "listening");
                self.listen.push(address.clone());
                let full = address.with(libp2p::multiaddr::Protocol::P2p(self.peer_id));
                self.emit(Event::Listening {
                    address: full.to_string(),
                });
            }
            NetEvent::ListenExpired { address } => self.listen.retain(|a| *a != address),
        }
    }

    /// Called about once a second: closes silent connections, re-dials, moves the sync on,
    /// asks for mempools that became due and polls every peer's status now and then.
    pub(super) fn on_tick(&mut self) {
        let now = Instant::now();
        for connection in self.book.silent_connections(now) {
            info!(
                ?connection,
                "no ping answered for a while; closing the connection"
            );
            self.push(NetCommand::CloseConnection(connection));
        }
        self.dial_due(now);
        let actions = self.sync.tick(&self.chain, now);
        self.apply_sync(actions);
        self.fetch_due_mempools();
        if now >= self.next_status_poll {
            self.next_status_poll = now + STATUS_POLL;
            let peers: Vec<PeerId> = self.book.connected().map(|(p, _)| *p).collect();
            for peer in peers {
                self.send_status(peer);
            }
        }
    }

    /// Sends an event to every subscriber (the console, tests).
    pub(super) fn emit(&self, event: Event) {
        debug!(?event, "event");
        self.metrics.observe_event(&event);
        let _ = self.events.send(event);
    }

    /// Our status, as sent to peers.
    pub(super) fn status(&self) -> Status {
        Status {
            genesis: self.chain.genesis_hash(),
            height: self.chain.height(),
            tip: self.chain.tip(),
            total_work: self.chain.total_work(),
        }
    }

    /// Adds an offence to a peer's score, and disconnects it if that bans it.
    pub(super) fn penalise(&mut self, peer: PeerId, offence: Offence) {
        warn!(%peer, ?offence, "peer misbehaved");
        if self.book.penalise(&peer, offence, Instant::now()) {
            warn!(%peer, "peer banned");
            self.push(NetCommand::Disconnect(peer));
        }
    }

    /// Stores what the chain accepted, updates the mempool and reports the tip change.
    pub(super) fn apply_accepted(&mut self, accepted: Accepted, source: Source) -> Applied {
        if self.halted.is_some() {
            return Applied::Halted;
        }
        if let Some(reason) = self.chain.take_read_failure() {
            // The chain could not read a body it needed and stayed where it was.
            self.halt(StoreError::BodyUnreadable(reason));
            return Applied::Halted;
        }
        // Changes not stored yet come first: the store takes changes in order.
        self.store_pending();
        if self.halted.is_some() {
            return Applied::Halted;
        }
        if let Err(error) = self.store.commit(&accepted) {
            // What the store does not hold is never announced: the node stops here.
            self.halt(error);
            return Applied::Halted;
        }
        if let Some(change) = &accepted.tip_change {
            self.mempool.on_tip_change(change, self.chain.state());
        }
        self.report_stored(&accepted, source);
        if accepted.offered_block_invalid() {
            Applied::OfferedInvalid
        } else {
            Applied::Stored
        }
    }

    /// Reports a change the store now holds: the explorer's history, metrics, the `reorg` and
    /// `block_accepted` events (none per block for a sync batch).
    pub(super) fn report_stored(&mut self, accepted: &Accepted, source: Source) {
        self.observe_accepted(accepted, source);
        for (hash, error) in &accepted.invalid {
            warn!(%hash, %error, "block found invalid on activation");
        }
        if let Some(change) = &accepted.tip_change {
            if change.depth() > 0 {
                info!(
                    depth = change.depth(),
                    fork_height = change.fork_height,
                    "reorg"
                );
                self.emit(Event::Reorg {
                    old_tip: change.old_tip,
                    new_tip: change.new_tip,
                    depth: change.depth(),
                    fork_height: change.fork_height,
                });
            }
            let reported = if matches!(source, Source::Sync) {
                &change.connected[..0]
            } else {
                &change.connected[..]
            };
            for block in reported {
                self.emit(Event::BlockAccepted {
                    height: block.height(),
                    hash: block.block_hash(),
                    source: source.label(),
                });
            }
        }
    }
}

/// Builders for unit tests: a node on a fresh store, blocks mined for it, events fed to it.
#[cfg(test)]
pub(super) mod fixtures {
    use std::sync::atomic::AtomicBool;

    use libp2p::swarm::ConnectionId;

    use super::*;
    use crate::ledger::block::compute_tx_root;
    use crate::ledger::pow::mine_blocking;
    use crate::ledger::{Block, BlockHeader, Transaction};

    /// A node on a store in a temporary directory, with its event stream.
    pub(in crate::node) struct TestNode {
        pub(in crate::node) state: NodeState,
        pub(in crate::node) events: broadcast::Receiver<Event>,
        _dir: tempfile::TempDir,
        _outcomes: mpsc::Receiver<(u64, MiningOutcome)>,
    }

    impl TestNode {
        /// A fresh node on a network with difficulty 1, where any test can mine in microseconds.
        pub(in crate::node) fn new() -> Self {
            let params = NetworkParams::for_tests("node-tests", 1);
            let dir = tempfile::tempdir().expect("temporary directory");
            let store = Store::open(dir.path(), &params).expect("store opens");
            let (events_tx, events) = broadcast::channel(64);
            let (outcomes, outcomes_rx) = mpsc::channel(4);
            let (state, _) = NodeState::open(params, store, 1, None, &[], events_tx, outcomes)
                .expect("node opens");
            Self {
                state,
                events,
                _dir: dir,
                _outcomes: outcomes_rx,
            }
        }

        /// Feeds one network event, and runs the checks it queued as the run loop would.
        pub(in crate::node) fn feed(&mut self, event: NetEvent) {
            self.state.on_net_event(event);
            self.run_checks();
        }

        /// Runs every queued check and hands its outcome back, as the run loop would.
        pub(in crate::node) fn run_checks(&mut self) {
            while let Some(job) = self.state.next_check() {
                let done = job.run(&self.state.shared_params());
                self.state.on_checked(done);
            }
        }

        /// Takes the commands the node has queued so far.
        pub(in crate::node) fn commands(&mut self) -> Vec<NetCommand> {
            std::iter::from_fn(|| self.state.next_command()).collect()
        }

        /// Takes the events the node has emitted so far.
        pub(in crate::node) fn emitted(&mut self) -> Vec<Event> {
            std::iter::from_fn(|| self.events.try_recv().ok()).collect()
        }

        /// A peer that connects (we dialed it) and whose opening commands are dropped.
        pub(in crate::node) fn connected_peer(&mut self) -> PeerId {
            let peer = PeerId::random();
            self.feed(NetEvent::PeerConnected {
                peer,
                connection: ConnectionId::new_unchecked(1),
                remote: "/ip4/127.0.0.1/tcp/4001".parse().expect("address"),
                dialer: true,
            });
            self.commands();
            self.emitted();
            peer
        }
    }

    /// A mined block on `parent` paying `to` a coinbase of `reward` and nothing else.
    pub(in crate::node) fn mined_child(
        params: &NetworkParams,
        parent: &Block,
        to: Address,
        reward: u64,
    ) -> Block {
        let height = parent.header.height + 1;
        let coinbase = Transaction::coinbase(height, to, reward);
        let template = Block {
            header: BlockHeader {
                height,
                prev_hash: parent.block_hash(),
                tx_root: compute_tx_root(&[coinbase.compute_txid()]),
                timestamp: parent.header.timestamp + 1_000,
                difficulty: params.difficulty,
                nonce: 0,
            },
            transactions: vec![coinbase],
        };
        mine_blocking(template, 1, &AtomicBool::new(false)).expect("an easy block is mined")
    }
}
