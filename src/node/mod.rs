//! The node: one event loop that owns the swarm, the chain, the mempool and the store.
//!
//! Rules it keeps: nothing else touches the ledger (commands arrive over a bounded channel with a
//! oneshot reply each; events leave on a broadcast channel); gossip is validated before it is
//! forwarded (Accept, Ignore or Reject); mining runs on miner threads and reports back over a
//! channel, and any tip change cancels a stale attempt and starts one on the new tip; every
//! peer that misbehaves pays for it in the peer book.
//!
//! Layout:
//! - [`command`]: the commands and the [`NodeHandle`] that sends them
//! - [`event`]: events and the views commands answer with
//! - [`peers`]: the peer book (addresses, re-dials, scores, bans)
//! - [`sync`]: the sync state machine
//! - [`mempool_fetch`]: when to ask a new peer for its pending transactions
//! - `inquiry`: chain pages and status rounds with every peer, for the HTTP front end

pub mod command;
pub mod event;
mod inquiry;
pub mod mempool_fetch;
pub mod peers;
pub mod sync;

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use ed25519_dalek::SigningKey;
use futures::StreamExt;
use libp2p::gossipsub::{self, IdentTopic, MessageAcceptance, PublishError};
use libp2p::request_response::{self, OutboundFailure, OutboundRequestId};
use libp2p::swarm::dial_opts::{DialOpts, PeerCondition};
use libp2p::swarm::SwarmEvent;
use libp2p::{identify, identity, mdns, ping, Multiaddr, PeerId};
use tokio::sync::{broadcast, mpsc};
use tracing::{debug, info, warn};

use crate::ledger::encode::encode;
use crate::ledger::pow::{self, MiningHandle, MiningOutcome};
use crate::ledger::state::TxError;
use crate::ledger::{
    Accepted, Address, Block, BlockError, BlockHash, Chain, Mempool, MempoolError, NetworkParams,
    Placement, PublicKey, Store, StoreError, Transaction, TxId,
};
use crate::net::behaviour::{build_swarm, BehaviourEvent, NetError, NodeSwarm};
use crate::net::protocol::{
    blocks_topic, decode_gossip_block, decode_gossip_tx, txs_topic, Status, SyncRequest,
    SyncResponse, IDENTIFY_PROTOCOL, MAX_BLOCKS_PER_RESPONSE, MAX_LOCATOR_LEN,
    MAX_TXS_PER_RESPONSE, RESPONSE_BLOCK_BYTES, RESPONSE_TX_BYTES,
};
pub use command::{BlockQuery, Command, CommandError, NodeHandle};
pub use event::Event;
use event::{BalanceView, BlockView, MineView, PeerView, StatusView, TxView};
use mempool_fetch::MempoolFetches;
use peers::{split_peer_id, Dial, Offence, PeerBook};
use sync::{Batch, Local, PeerTip, SyncAction, SyncManager};

/// Commands that may wait for the event loop.
const COMMAND_QUEUE: usize = 64;
/// Events kept for slow subscribers before they miss some.
const EVENT_QUEUE: usize = 4096;
/// Most pending transactions.
const MEMPOOL_CAPACITY: usize = 10_000;
/// How often every peer is asked for its status again.
const STATUS_POLL: Duration = Duration::from_secs(10);
/// Most blocks and transactions kept for re-announcing once a peer subscribes.
const MAX_UNANNOUNCED: usize = 64;
/// Most `mine` commands waiting at once.
const MAX_MINE_REQUESTS: usize = 16;
/// Bytes a block template leaves for the header and the coinbase.
const TEMPLATE_HEADROOM: usize = 1024;

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
    /// The swarm could not be built.
    #[error(transparent)]
    Net(#[from] NetError),
    /// A listen address was refused.
    #[error("cannot listen on {addr}: {reason}")]
    Listen {
        /// The address.
        addr: Multiaddr,
        /// Why.
        reason: String,
    },
    /// Subscribing to a gossip topic failed.
    #[error("cannot subscribe to {topic}: {reason}")]
    Subscribe {
        /// The topic.
        topic: String,
        /// Why.
        reason: String,
    },
}

/// Who a block or transaction came from.
#[derive(Debug, Clone, Copy)]
enum Source {
    Mined,
    Local,
    Peer(PeerId),
}

impl Source {
    fn label(self) -> String {
        match self {
            Source::Mined => "mined".to_string(),
            Source::Local => "local".to_string(),
            Source::Peer(peer) => peer.to_string(),
        }
    }
}

/// What an outbound sync request was.
#[derive(Debug, Clone, Copy)]
enum Pending {
    Status,
    Blocks,
    Mempool,
}

struct MineRequest {
    count: u64,
    mined: u64,
    reply: command::Reply<MineView>,
}

struct Job {
    handle: MiningHandle,
    parent: BlockHash,
    generation: u64,
}

/// The miner's side of the node: what is wanted, and the attempt running.
struct Miner {
    threads: usize,
    automine: bool,
    requests: VecDeque<MineRequest>,
    job: Option<Job>,
    generation: u64,
    outcomes: mpsc::Sender<(u64, MiningOutcome)>,
}

impl Miner {
    fn wanted(&self) -> bool {
        self.automine || !self.requests.is_empty()
    }
}

/// A node ready to run. Built by [`Node::start`], driven by [`Node::run`].
pub struct Node {
    params: NetworkParams,
    swarm: NodeSwarm,
    chain: Chain,
    mempool: Mempool,
    store: Store,
    key: SigningKey,
    address: Address,
    peer_id: PeerId,
    blocks_topic: IdentTopic,
    txs_topic: IdentTopic,
    commands: mpsc::Receiver<Command>,
    events: broadcast::Sender<Event>,
    book: PeerBook,
    sync: SyncManager,
    mempool_fetches: MempoolFetches,
    requests: HashMap<OutboundRequestId, Pending>,
    miner: Miner,
    mined: mpsc::Receiver<(u64, MiningOutcome)>,
    unannounced_blocks: VecDeque<BlockHash>,
    unannounced_txs: VecDeque<Transaction>,
    listen: Vec<Multiaddr>,
    next_status_poll: Instant,
    resolves: Vec<inquiry::PendingResolve>,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl Node {
    /// Opens the store, restores the chain, takes the node key as the libp2p identity, builds
    /// the swarm and starts listening.
    ///
    /// # Errors
    /// [`NodeError`] naming what could not be set up.
    pub fn start(config: NodeConfig) -> Result<(Node, NodeHandle), NodeError> {
        std::fs::create_dir_all(&config.data_dir).map_err(|source| NodeError::DataDir {
            path: config.data_dir.clone(),
            source,
        })?;
        let store = Store::open(&config.data_dir, &config.params)?;
        let chain = store.load_chain()?;
        let secret = store.node_key()?;
        let key = SigningKey::from_bytes(&secret);
        let address = PublicKey(key.verifying_key().to_bytes()).address();
        let keypair =
            identity::Keypair::ed25519_from_bytes(secret).map_err(|_| NodeError::BadNodeKey)?;
        let peer_id = keypair.public().to_peer_id();
        let mut swarm = build_swarm(keypair, &config.params, config.mdns)?;

        let genesis = chain.genesis_hash();
        let (blocks, txs) = (blocks_topic(&genesis), txs_topic(&genesis));
        for topic in [&blocks, &txs] {
            swarm
                .behaviour_mut()
                .gossipsub
                .subscribe(topic)
                .map_err(|e| NodeError::Subscribe {
                    topic: topic.to_string(),
                    reason: e.to_string(),
                })?;
        }
        for addr in &config.listen {
            swarm
                .listen_on(addr.clone())
                .map_err(|e| NodeError::Listen {
                    addr: addr.clone(),
                    reason: e.to_string(),
                })?;
        }

        let now = Instant::now();
        let mut book = PeerBook::new();
        for addr in &config.peers {
            match split_peer_id(addr) {
                (addr, Some(peer)) => book.add_peer(peer, addr, now),
                (addr, None) => {
                    book.add_bootstrap(addr, now);
                }
            }
        }

        let (command_tx, commands) = mpsc::channel(COMMAND_QUEUE);
        let (events, _) = broadcast::channel(EVENT_QUEUE);
        let (outcomes, mined) = mpsc::channel(16);
        let handle = NodeHandle::new(command_tx, events.clone());
        info!(%peer_id, %address, network = %config.params.name, height = chain.height(), "node started");
        let node = Node {
            params: config.params,
            swarm,
            chain,
            mempool: Mempool::new(MEMPOOL_CAPACITY),
            store,
            key,
            address,
            peer_id,
            blocks_topic: blocks,
            txs_topic: txs,
            commands,
            events,
            book,
            sync: SyncManager::new(),
            mempool_fetches: MempoolFetches::new(),
            requests: HashMap::new(),
            miner: Miner {
                threads: config.mine_threads.max(1),
                automine: false,
                requests: VecDeque::new(),
                job: None,
                generation: 0,
                outcomes,
            },
            mined,
            unannounced_blocks: VecDeque::new(),
            unannounced_txs: VecDeque::new(),
            listen: Vec::new(),
            next_status_poll: now + STATUS_POLL,
            resolves: Vec::new(),
        };
        Ok((node, handle))
    }

    /// Runs until `shutdown` completes or a [`Command::Shutdown`] arrives; then stops mining.
    /// Every block is committed to the store as it is accepted, so nothing is left to flush.
    pub async fn run(mut self, shutdown: impl Future<Output = ()>) {
        tokio::pin!(shutdown);
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        self.dial_due(Instant::now());
        loop {
            tokio::select! {
                _ = &mut shutdown => break,
                event = self.swarm.select_next_some() => self.on_swarm_event(event),
                Some(command) = self.commands.recv() => {
                    if !self.on_command(command) {
                        break;
                    }
                }
                Some((generation, outcome)) = self.mined.recv() => self.on_mined(generation, outcome),
                _ = tick.tick() => self.on_tick(),
            }
            self.update_mining();
            self.poll_resolves(Instant::now());
        }
        if let Some(job) = self.miner.job.take() {
            job.handle.cancel();
        }
        info!("node stopped");
    }

    fn emit(&self, event: Event) {
        debug!(?event, "event");
        let _ = self.events.send(event);
    }

    fn local(&self) -> Local {
        Local {
            height: self.chain.height(),
            work: self.chain.total_work(),
        }
    }

    fn status(&self) -> Status {
        Status {
            genesis: self.chain.genesis_hash(),
            height: self.chain.height(),
            tip: self.chain.tip(),
            total_work: self.chain.total_work(),
        }
    }

    // ----- swarm events -------------------------------------------------------------------

    fn on_swarm_event(&mut self, event: SwarmEvent<BehaviourEvent>) {
        let now = Instant::now();
        match event {
            SwarmEvent::NewListenAddr { address, .. } => {
                info!(%address, "listening");
                self.listen.push(address.clone());
                let full = address.with(libp2p::multiaddr::Protocol::P2p(self.peer_id));
                self.emit(Event::Listening {
                    address: full.to_string(),
                });
            }
            SwarmEvent::ExpiredListenAddr { address, .. } => {
                self.listen.retain(|a| *a != address);
            }
            SwarmEvent::ConnectionEstablished {
                peer_id,
                connection_id,
                endpoint,
                ..
            } => {
                if self.book.is_banned(&peer_id, now) {
                    debug!(%peer_id, "refusing banned peer");
                    self.swarm.close_connection(connection_id);
                    return;
                }
                let remote = endpoint.get_remote_address().clone();
                let first = self.book.connected_to(
                    peer_id,
                    connection_id,
                    remote.clone(),
                    endpoint.is_dialer(),
                    now,
                );
                if first {
                    info!(%peer_id, %remote, "peer connected");
                    self.emit(Event::PeerConnected {
                        peer_id: peer_id.to_string(),
                        address: remote.to_string(),
                    });
                    self.mempool_fetches.connected(peer_id);
                    self.send_status(peer_id);
                }
            }
            SwarmEvent::ConnectionClosed {
                peer_id,
                connection_id,
                ..
            } => {
                if !self.book.disconnected(&peer_id, connection_id, now) {
                    return;
                }
                info!(%peer_id, "peer disconnected");
                self.emit(Event::PeerDisconnected {
                    peer_id: peer_id.to_string(),
                });
                self.mempool_fetches.disconnected(&peer_id);
                let actions = self.sync.peer_left(&peer_id, self.local(), now);
                self.apply_sync(actions);
            }
            SwarmEvent::OutgoingConnectionError {
                connection_id,
                peer_id,
                error,
            } => {
                debug!(?peer_id, %error, "dial failed");
                let myself = matches!(error, libp2p::swarm::DialError::LocalPeerId { .. })
                    .then_some(self.peer_id);
                self.book.dial_failed(connection_id, myself);
            }
            SwarmEvent::Behaviour(event) => self.on_behaviour_event(event, now),
            _ => {}
        }
    }

    fn on_behaviour_event(&mut self, event: BehaviourEvent, now: Instant) {
        match event {
            BehaviourEvent::Gossipsub(event) => self.on_gossip(event),
            BehaviourEvent::Sync(event) => self.on_sync_event(event),
            BehaviourEvent::Mdns(mdns::Event::Discovered(found)) => {
                for (peer, addr) in found {
                    if peer != self.peer_id && self.book.learn(peer, addr, now) {
                        if let Some(entry) = self.book.get(&peer) {
                            let addrs = entry.dial_addrs.clone();
                            let _ = self.dial_peer(peer, addrs);
                        }
                    }
                }
            }
            BehaviourEvent::Ping(ping::Event {
                connection,
                result: Ok(_),
                ..
            }) => self.book.pong(connection, now),
            BehaviourEvent::Ping(ping::Event {
                peer,
                connection,
                result: Err(error),
            }) => {
                info!(%peer, %error, "ping failed; closing the connection");
                self.swarm.close_connection(connection);
            }
            BehaviourEvent::Identify(identify::Event::Received { peer_id, info, .. })
                if info.protocol_version != IDENTIFY_PROTOCOL =>
            {
                info!(%peer_id, version = %info.protocol_version, "not a gossipchain peer");
                let _ = self.swarm.disconnect_peer_id(peer_id);
            }
            _ => {}
        }
    }

    /// Dials a known peer, unless a connection or a dial to it exists, from a fresh port: two
    /// nodes that discover each other at once and both dial then still connect.
    fn dial_peer(
        &mut self,
        peer: PeerId,
        addrs: Vec<Multiaddr>,
    ) -> Result<(), libp2p::swarm::DialError> {
        let opts = DialOpts::peer_id(peer)
            .addresses(addrs)
            .condition(PeerCondition::DisconnectedAndNotDialing)
            .allocate_new_port()
            .build();
        self.swarm.dial(opts).inspect_err(|error| {
            debug!(%peer, %error, "dial not started");
        })
    }

    fn dial_due(&mut self, now: Instant) {
        for dial in self.book.due_dials(now) {
            match dial {
                Dial::Peer(peer, addrs) => {
                    let _ = self.dial_peer(peer, addrs);
                }
                Dial::Address(index, addr) => {
                    let _ = self.dial_address(index, addr, now);
                }
            }
        }
    }

    /// Dials bootstrap address `index`, whose peer is not known yet.
    fn dial_address(
        &mut self,
        index: usize,
        addr: Multiaddr,
        now: Instant,
    ) -> Result<(), libp2p::swarm::DialError> {
        let opts = DialOpts::unknown_peer_id()
            .address(addr)
            .allocate_new_port()
            .build();
        let connection = opts.connection_id();
        self.book.bootstrap_dialing(index, connection, now);
        self.swarm.dial(opts).inspect_err(|error| {
            debug!(%error, "dial not started");
            self.book.dial_failed(connection, None);
        })
    }

    fn on_tick(&mut self) {
        let now = Instant::now();
        for connection in self.book.silent_connections(now) {
            info!(
                ?connection,
                "no ping answered for a while; closing the connection"
            );
            self.swarm.close_connection(connection);
        }
        self.dial_due(now);
        let actions = self.sync.tick(self.local(), now);
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

    fn penalise(&mut self, peer: PeerId, offence: Offence) {
        warn!(%peer, ?offence, "peer misbehaved");
        if self.book.penalise(&peer, offence, Instant::now()) {
            warn!(%peer, "peer banned");
            let _ = self.swarm.disconnect_peer_id(peer);
        }
    }

    // ----- gossip -------------------------------------------------------------------------

    fn on_gossip(&mut self, event: gossipsub::Event) {
        match event {
            gossipsub::Event::Message {
                propagation_source,
                message_id,
                message,
            } => {
                let acceptance = if message.topic == self.blocks_topic.hash() {
                    self.on_gossip_block(propagation_source, &message.data)
                } else if message.topic == self.txs_topic.hash() {
                    self.on_gossip_tx(propagation_source, &message.data)
                } else {
                    MessageAcceptance::Reject
                };
                self.swarm
                    .behaviour_mut()
                    .gossipsub
                    .report_message_validation_result(&message_id, &propagation_source, acceptance);
            }
            gossipsub::Event::Subscribed { topic, .. } => {
                if topic == self.blocks_topic.hash() {
                    let hashes: Vec<BlockHash> = self.unannounced_blocks.drain(..).collect();
                    for hash in hashes {
                        if let Some(block) = self.chain.block(&hash).cloned() {
                            self.publish_block(&block);
                        }
                    }
                } else if topic == self.txs_topic.hash() {
                    let txs: Vec<Transaction> = self.unannounced_txs.drain(..).collect();
                    for tx in txs {
                        self.publish_tx(&tx);
                    }
                }
            }
            _ => {}
        }
    }

    fn on_gossip_block(&mut self, from: PeerId, data: &[u8]) -> MessageAcceptance {
        let block = match decode_gossip_block(data, &self.params) {
            Ok(block) => block,
            Err(error) => {
                debug!(%from, %error, "undecodable block");
                self.penalise(from, Offence::Garbage);
                return MessageAcceptance::Reject;
            }
        };
        let height = block.height();
        let now = Instant::now();
        match self.chain.accept_block(block, now_ms()) {
            Ok(accepted) => {
                let placement = accepted.placement.clone();
                if !self.apply_accepted(accepted, Source::Peer(from)) {
                    self.penalise(from, Offence::InvalidBlock);
                    return MessageAcceptance::Reject;
                }
                match placement {
                    Placement::MainChain => {
                        self.book.saw_height(&from, height);
                        MessageAcceptance::Accept
                    }
                    // A side-branch block has passed only the checks that need no state: it is
                    // kept, but forwarded only once it is on a main chain and fully validated.
                    Placement::SideBranch => {
                        self.book.saw_height(&from, height);
                        MessageAcceptance::Ignore
                    }
                    Placement::AlreadyKnown => MessageAcceptance::Ignore,
                    Placement::Orphan { .. } => {
                        let actions = self.sync.orphan_from(from, height, self.local(), now);
                        self.apply_sync(actions);
                        MessageAcceptance::Ignore
                    }
                }
            }
            Err(BlockError::UnknownParent(_)) => {
                let actions = self.sync.orphan_from(from, height, self.local(), now);
                self.apply_sync(actions);
                MessageAcceptance::Ignore
            }
            Err(error @ BlockError::TimestampTooFarAhead { .. }) => {
                debug!(%from, %error, "block from the future");
                MessageAcceptance::Ignore
            }
            Err(error) => {
                warn!(%from, %error, "invalid block");
                self.penalise(from, Offence::InvalidBlock);
                MessageAcceptance::Reject
            }
        }
    }

    fn on_gossip_tx(&mut self, from: PeerId, data: &[u8]) -> MessageAcceptance {
        match decode_gossip_tx(data) {
            Ok(tx) => self.accept_peer_tx(from, tx),
            Err(error) => {
                debug!(%from, %error, "undecodable transaction");
                self.penalise(from, Offence::Garbage);
                MessageAcceptance::Reject
            }
        }
    }

    /// Offers a transaction a peer sent (by gossip or in a mempool answer) to the mempool, and
    /// penalises the peer if no state could make it valid.
    fn accept_peer_tx(&mut self, from: PeerId, tx: Transaction) -> MessageAcceptance {
        match self.mempool.add(tx, self.chain.state()) {
            Ok(txid) => {
                self.emit(Event::TxAccepted {
                    txid,
                    source: Source::Peer(from).label(),
                });
                MessageAcceptance::Accept
            }
            // Nonces, balances and a full pool depend on what a node has seen: honest peers
            // may differ, so such a transaction is dropped, not held against its sender.
            Err(
                MempoolError::AlreadyKnown(_)
                | MempoolError::Full { .. }
                | MempoolError::Invalid(TxError::BadNonce { .. } | TxError::InsufficientFunds { .. }),
            ) => MessageAcceptance::Ignore,
            Err(error) => {
                warn!(%from, %error, "invalid transaction");
                self.penalise(from, Offence::InvalidTransaction);
                MessageAcceptance::Reject
            }
        }
    }

    fn publish(&mut self, topic: IdentTopic, data: Vec<u8>) -> Result<(), PublishError> {
        match self.swarm.behaviour_mut().gossipsub.publish(topic, data) {
            Ok(_) | Err(PublishError::Duplicate) => Ok(()),
            Err(error) => Err(error),
        }
    }

    fn publish_block(&mut self, block: &Block) {
        let hash = block.block_hash();
        if let Err(error) = self.publish(self.blocks_topic.clone(), encode(block)) {
            debug!(%error, "block not published yet");
            if self.unannounced_blocks.len() >= MAX_UNANNOUNCED {
                self.unannounced_blocks.pop_front();
            }
            self.unannounced_blocks.push_back(hash);
        }
    }

    fn publish_tx(&mut self, tx: &Transaction) {
        if let Err(error) = self.publish(self.txs_topic.clone(), encode(tx)) {
            debug!(%error, "transaction not published yet");
            if self.unannounced_txs.len() >= MAX_UNANNOUNCED {
                self.unannounced_txs.pop_front();
            }
            self.unannounced_txs.push_back(tx.clone());
        }
    }

    /// Stores what the chain accepted, updates the mempool and reports the tip change.
    /// Returns false if the offered block itself was found invalid while activating the new
    /// best branch (adopted orphans that fail came from other senders).
    fn apply_accepted(&mut self, accepted: Accepted, source: Source) -> bool {
        if let Err(error) = self.store.commit(&accepted) {
            warn!(%error, "store commit failed");
        }
        for (hash, error) in &accepted.invalid {
            warn!(%hash, %error, "block found invalid on activation");
        }
        if let Some(change) = &accepted.tip_change {
            self.mempool.on_tip_change(change, self.chain.state());
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
            for block in &change.connected {
                self.emit(Event::BlockAccepted {
                    height: block.height(),
                    hash: block.block_hash(),
                    source: source.label(),
                });
            }
        }
        !accepted.offered_block_invalid()
    }

    // ----- sync -----------------------------------------------------------------------------

    fn send_status(&mut self, peer: PeerId) {
        let request = SyncRequest::Status(self.status());
        let id = self.swarm.behaviour_mut().sync.send_request(&peer, request);
        self.requests.insert(id, Pending::Status);
    }

    fn on_sync_event(&mut self, event: request_response::Event<SyncRequest, SyncResponse>) {
        let now = Instant::now();
        match event {
            request_response::Event::Message { peer, message, .. } => match message {
                request_response::Message::Request {
                    request, channel, ..
                } => {
                    let response = self.answer(peer, request);
                    let _ = self
                        .swarm
                        .behaviour_mut()
                        .sync
                        .send_response(channel, response);
                }
                request_response::Message::Response {
                    request_id,
                    response,
                } => match (self.requests.remove(&request_id), response) {
                    (Some(Pending::Status), SyncResponse::Status(status)) => {
                        self.on_peer_status(peer, status);
                    }
                    (Some(Pending::Blocks), SyncResponse::Blocks(blocks)) => {
                        self.on_blocks(peer, blocks);
                    }
                    (Some(Pending::Mempool), SyncResponse::Mempool(txs)) => {
                        self.on_mempool(peer, txs);
                    }
                    (Some(Pending::Blocks), _) => {
                        let actions =
                            self.sync
                                .request_failed(peer, Offence::BadResponse, self.local(), now);
                        self.apply_sync(actions);
                    }
                    (Some(Pending::Status | Pending::Mempool), _) => {
                        self.penalise(peer, Offence::BadResponse);
                    }
                    (None, _) => {}
                },
            },
            request_response::Event::OutboundFailure {
                peer,
                request_id,
                error,
                ..
            } => {
                debug!(%peer, %error, "sync request failed");
                let garbage = matches!(&error, OutboundFailure::Io(e) if e.kind() == std::io::ErrorKind::InvalidData);
                match self.requests.remove(&request_id) {
                    Some(Pending::Blocks) => {
                        let offence = if garbage {
                            Offence::Garbage
                        } else {
                            Offence::Unresponsive
                        };
                        let actions = self.sync.request_failed(peer, offence, self.local(), now);
                        self.apply_sync(actions);
                    }
                    Some(Pending::Status | Pending::Mempool) if garbage => {
                        self.penalise(peer, Offence::Garbage);
                    }
                    _ => {}
                }
            }
            request_response::Event::InboundFailure { peer, error, .. } => {
                debug!(%peer, %error, "sync request from peer failed");
                if matches!(&error, request_response::InboundFailure::Io(e) if e.kind() == std::io::ErrorKind::InvalidData)
                {
                    self.penalise(peer, Offence::Garbage);
                }
            }
            request_response::Event::ResponseSent { .. } => {}
        }
    }

    fn answer(&mut self, peer: PeerId, request: SyncRequest) -> SyncResponse {
        match request {
            SyncRequest::Status(status) => {
                self.on_peer_status(peer, status);
                SyncResponse::Status(self.status())
            }
            SyncRequest::GetBlocks {
                locator,
                max_blocks,
            } => {
                let max = max_blocks.min(MAX_BLOCKS_PER_RESPONSE) as usize;
                let blocks = self
                    .chain
                    .blocks_after_locator(&locator, max, RESPONSE_BLOCK_BYTES);
                SyncResponse::Blocks(blocks.iter().map(|b| Block::clone(b)).collect())
            }
            SyncRequest::GetMempool { max_txs } => {
                let max = max_txs.min(MAX_TXS_PER_RESPONSE) as usize;
                SyncResponse::Mempool(self.mempool.template(max, RESPONSE_TX_BYTES))
            }
        }
    }

    fn on_peer_status(&mut self, peer: PeerId, status: Status) {
        let now = Instant::now();
        if status.genesis != self.chain.genesis_hash() {
            info!(%peer, genesis = %status.genesis, "peer is on another network; disconnecting");
            self.book.ban(peer, now);
            let _ = self.swarm.disconnect_peer_id(peer);
            return;
        }
        self.book.set_status(&peer, status.height, status.tip);
        let tip = PeerTip {
            height: status.height,
            work: status.total_work,
        };
        let actions = self.sync.peer_status(peer, tip, self.local(), now);
        self.apply_sync(actions);
        if self
            .mempool_fetches
            .status(peer, status.total_work, self.chain.total_work())
        {
            self.send_get_mempool(peer);
        }
        // The sync this status started may have finished at once.
        self.fetch_due_mempools();
    }

    /// Asks the peers whose claimed work our chain now has for their pending transactions.
    fn fetch_due_mempools(&mut self) {
        for peer in self.mempool_fetches.due(self.chain.total_work()) {
            self.send_get_mempool(peer);
        }
    }

    fn send_get_mempool(&mut self, peer: PeerId) {
        debug!(%peer, "asking for the peer's pending transactions");
        let request = SyncRequest::GetMempool {
            max_txs: MAX_TXS_PER_RESPONSE,
        };
        let id = self.swarm.behaviour_mut().sync.send_request(&peer, request);
        self.requests.insert(id, Pending::Mempool);
    }

    /// Takes a peer's pending transactions as if each had been gossiped by it. The first one no
    /// state could make valid ends the answer: the peer is penalised once and the rest dropped.
    fn on_mempool(&mut self, peer: PeerId, txs: Vec<Transaction>) {
        let offered = txs.len();
        let mut learned = 0usize;
        for tx in txs {
            match self.accept_peer_tx(peer, tx.clone()) {
                MessageAcceptance::Accept => {
                    learned += 1;
                    // What gossip would have forwarded is passed on, to reach the peers that
                    // missed it too.
                    self.publish_tx(&tx);
                }
                MessageAcceptance::Ignore => {}
                MessageAcceptance::Reject => break,
            }
        }
        debug!(%peer, offered, learned, "peer's pending transactions received");
    }

    fn on_blocks(&mut self, peer: PeerId, blocks: Vec<Block>) {
        let batch = self.import_batch(peer, blocks);
        let actions = self.sync.batch(peer, batch, self.local(), Instant::now());
        self.apply_sync(actions);
    }

    /// Offers a sync answer's blocks to the chain in order, checking that they link up.
    fn import_batch(&mut self, peer: PeerId, blocks: Vec<Block>) -> Batch {
        let count = blocks.len();
        let bytes: usize = blocks.iter().map(Block::encoded_len).sum();
        let full = count >= MAX_BLOCKS_PER_RESPONSE as usize
            || bytes + self.params.max_block_bytes > RESPONSE_BLOCK_BYTES;
        let mut last: Option<BlockHash> = None;
        for block in blocks {
            let hash = block.block_hash();
            let linked = match last {
                Some(prev) => block.header.prev_hash == prev,
                None => self.chain.block(&block.header.prev_hash).is_some(),
            };
            if !linked {
                return Batch::Invalid(Offence::BadResponse);
            }
            match self.chain.accept_block(block, now_ms()) {
                Ok(accepted) => {
                    if !self.apply_accepted(accepted, Source::Peer(peer)) {
                        return Batch::Invalid(Offence::InvalidBlock);
                    }
                }
                Err(error @ BlockError::TimestampTooFarAhead { .. }) => {
                    debug!(%peer, %error, "sync stopped at a block from the future");
                    return Batch::Invalid(Offence::FalseStatus);
                }
                Err(error) => {
                    warn!(%peer, %error, "invalid block in sync answer");
                    return Batch::Invalid(Offence::InvalidBlock);
                }
            }
            last = Some(hash);
        }
        match last {
            Some(last) => Batch::Blocks { count, full, last },
            None => Batch::Empty,
        }
    }

    fn apply_sync(&mut self, actions: Vec<SyncAction>) {
        for action in actions {
            match action {
                SyncAction::Started {
                    peer,
                    from_height,
                    to_height,
                } => {
                    info!(%peer, from_height, to_height, "sync started");
                    self.emit(Event::SyncStarted {
                        peer_id: peer.to_string(),
                        from_height,
                        to_height,
                    });
                }
                SyncAction::Request { peer, cursor } => {
                    let mut locator: Vec<BlockHash> = cursor.into_iter().collect();
                    locator.extend(self.chain.locator());
                    locator.truncate(MAX_LOCATOR_LEN);
                    let request = SyncRequest::GetBlocks {
                        locator,
                        max_blocks: MAX_BLOCKS_PER_RESPONSE,
                    };
                    let id = self.swarm.behaviour_mut().sync.send_request(&peer, request);
                    self.requests.insert(id, Pending::Blocks);
                }
                SyncAction::Finished { peer, from_height } => {
                    let to_height = self.chain.height();
                    info!(%peer, from_height, to_height, "sync finished");
                    self.emit(Event::SyncFinished {
                        peer_id: peer.to_string(),
                        from_height,
                        to_height,
                    });
                    self.fetch_due_mempools();
                }
                SyncAction::Failed { peer, offence } => {
                    info!(%peer, ?offence, "sync failed");
                    self.penalise(peer, offence);
                }
            }
        }
    }

    // ----- mining ---------------------------------------------------------------------------

    /// Cancels an attempt on a stale tip or one nobody wants, and starts one when wanted.
    fn update_mining(&mut self) {
        let tip = self.chain.tip();
        if let Some(job) = &self.miner.job {
            if job.parent == tip && self.miner.wanted() {
                return;
            }
            job.handle.cancel();
            self.miner.job = None;
        }
        if !self.miner.wanted() {
            return;
        }
        let txs = self.mempool.template(
            self.params.max_block_txs.saturating_sub(1),
            self.params
                .max_block_bytes
                .saturating_sub(TEMPLATE_HEADROOM),
        );
        let block = self.chain.block_template(self.address, txs, now_ms());
        self.miner.generation += 1;
        let generation = self.miner.generation;
        let outcomes = self.miner.outcomes.clone();
        let handle = pow::start_mining(block, self.miner.threads, move |outcome| {
            // The loop drains this channel continuously; a full channel can only hold
            // outcomes of attempts that were already replaced.
            let _ = outcomes.try_send((generation, outcome));
        });
        self.miner.job = Some(Job {
            handle,
            parent: tip,
            generation,
        });
    }

    fn on_mined(&mut self, generation: u64, outcome: MiningOutcome) {
        if self
            .miner
            .job
            .as_ref()
            .is_some_and(|j| j.generation == generation)
        {
            self.miner.job = None;
        }
        let MiningOutcome::Found(block) = outcome else {
            return;
        };
        let (height, hash) = (block.height(), block.block_hash());
        match self.chain.accept_block(block.clone(), now_ms()) {
            Ok(accepted) => {
                let on_main_chain = accepted.placement == Placement::MainChain;
                self.apply_accepted(accepted, Source::Mined);
                if on_main_chain {
                    info!(height, %hash, "mined a block");
                    self.publish_block(&block);
                    self.count_mined(height, hash);
                }
            }
            Err(error) => warn!(%error, "mined block refused"),
        }
    }

    fn count_mined(&mut self, height: u64, hash: BlockHash) {
        let Some(request) = self.miner.requests.front_mut() else {
            return;
        };
        request.mined += 1;
        if request.mined >= request.count {
            if let Some(done) = self.miner.requests.pop_front() {
                let _ = done.reply.send(Ok(MineView {
                    height,
                    hash,
                    mined: done.mined,
                }));
            }
        }
    }

    // ----- commands -------------------------------------------------------------------------

    /// Carries out a command; returns false when the node should stop.
    fn on_command(&mut self, command: Command) -> bool {
        match command {
            Command::Status(reply) => {
                let _ = reply.send(Ok(self.status_view()));
            }
            Command::Peers(reply) => {
                let mut peers: Vec<PeerView> = self
                    .book
                    .connected()
                    .map(|(peer, entry)| PeerView {
                        peer_id: peer.to_string(),
                        addresses: entry.connections.values().map(|a| a.to_string()).collect(),
                        height: entry.height,
                        tip: entry.tip,
                    })
                    .collect();
                peers.sort_by(|a, b| a.peer_id.cmp(&b.peer_id));
                let _ = reply.send(Ok(peers));
            }
            Command::SubmitTransfer {
                to,
                amount,
                fee,
                reply,
            } => {
                let _ = reply.send(self.submit_transfer(to, amount, fee));
            }
            Command::Mine { count, reply } => {
                if self.miner.requests.len() >= MAX_MINE_REQUESTS {
                    let _ = reply.send(Err(CommandError::MinerBusy));
                } else {
                    self.miner.requests.push_back(MineRequest {
                        count: count.max(1),
                        mined: 0,
                        reply,
                    });
                }
            }
            Command::SetAutomine { on, reply } => {
                self.miner.automine = on;
                let _ = reply.send(Ok(on));
            }
            Command::Chain { count, reply } => {
                let height = self.chain.height();
                let n = count.map_or(height + 1, |c| c.min(height + 1));
                let blocks = self
                    .chain
                    .main_chain()
                    .skip((height + 1 - n) as usize)
                    .map(|b| BlockView::from(b.as_ref()))
                    .collect();
                let _ = reply.send(Ok(blocks));
            }
            Command::Block { query, reply } => {
                let found = match query {
                    BlockQuery::Height(h) => self
                        .chain
                        .block_at_height(h)
                        .ok_or(CommandError::NoBlockAtHeight(h)),
                    BlockQuery::Hash(hash) => self
                        .chain
                        .block(&hash)
                        .ok_or(CommandError::UnknownBlock(hash)),
                };
                let _ = reply.send(found.map(|b| BlockView::from(b.as_ref())));
            }
            Command::Balance { address, reply } => {
                let address = address.unwrap_or(self.address);
                let state = self.chain.state();
                let _ = reply.send(Ok(BalanceView {
                    address,
                    balance: state.balance(&address),
                    nonce: state.next_nonce(&address),
                }));
            }
            Command::Mempool(reply) => {
                let txs = self.mempool.transactions();
                let _ = reply.send(Ok(txs.iter().map(TxView::from).collect()));
            }
            Command::Dial { addr, reply } => {
                let _ = reply.send(self.dial_command(addr));
            }
            Command::Shutdown(reply) => {
                info!("shutdown requested");
                let _ = reply.send(Ok(()));
                return false;
            }
            Command::ChainRange { from, limit, reply } => {
                self.chain_range_command(from, limit, reply)
            }
            Command::ResolvePeers { wait, reply } => self.resolve_peers_command(wait, reply),
        }
        true
    }

    fn status_view(&self) -> StatusView {
        StatusView {
            network: self.params.name.clone(),
            genesis: self.chain.genesis_hash(),
            peer_id: self.peer_id.to_string(),
            address: self.address,
            height: self.chain.height(),
            tip: self.chain.tip(),
            peers: self.book.connected_count(),
            mempool: self.mempool.len(),
            listen: self.listen.iter().map(|a| a.to_string()).collect(),
            automine: self.miner.automine,
            syncing: self.sync.active_peer().is_some(),
        }
    }

    fn submit_transfer(
        &mut self,
        to: Address,
        amount: u64,
        fee: u64,
    ) -> Result<TxId, CommandError> {
        let state = self.chain.state();
        let nonce = self.mempool.next_nonce(state, &self.address);
        let tx = Transaction::sign_transfer(&self.key, to, amount, fee, nonce);
        let txid = self.mempool.add(tx.clone(), state)?;
        self.emit(Event::TxAccepted {
            txid,
            source: Source::Local.label(),
        });
        self.publish_tx(&tx);
        Ok(txid)
    }

    fn dial_command(&mut self, addr: Multiaddr) -> Result<(), CommandError> {
        let now = Instant::now();
        match split_peer_id(&addr) {
            (_, Some(peer)) if peer == self.peer_id => {
                Err(CommandError::Dial("that is this node's own peer id".into()))
            }
            (plain, Some(peer)) => {
                self.book.learn(peer, plain.clone(), now);
                self.dial_peer(peer, vec![plain])
                    .map_err(|e| CommandError::Dial(e.to_string()))
            }
            (plain, None) => {
                let index = self.book.add_bootstrap(plain.clone(), now);
                self.dial_address(index, plain, now)
                    .map_err(|e| CommandError::Dial(e.to_string()))
            }
        }
    }
}
