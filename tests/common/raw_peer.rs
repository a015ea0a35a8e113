//! A raw libp2p peer written for tests: it speaks the node's gossip topics and sync protocol
//! but answers and publishes whatever bytes a test gives it, valid or not. It runs on a tokio
//! runtime owned by the test and is driven through channels, so the test itself stays
//! synchronous. It never listens; it only dials the nodes it is told to.

#![allow(dead_code)] // Not every test reads every field.

use std::collections::VecDeque;
use std::io;
use std::sync::mpsc as std_mpsc;
use std::time::{Duration, Instant};

use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, StreamExt};
use gossipchain::ledger::encode::encode;
use gossipchain::net::protocol::{
    decode_request, Status, SyncRequest, SyncResponse, IDENTIFY_PROTOCOL, SYNC_PROTOCOL,
};
use libp2p::gossipsub::{self, IdentTopic, TopicHash};
use libp2p::request_response::{self, ProtocolSupport, ResponseChannel};
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
use libp2p::{identify, identity, noise, ping, tcp, yamux, Multiaddr, PeerId, StreamProtocol};
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;

/// Largest message this peer lets itself send or read: far above any node's caps, so that the
/// node's caps are what gets tested.
const RAW_MAX_BYTES: usize = 16 * 1024 * 1024;

/// What the raw peer saw.
#[derive(Debug, Clone)]
pub enum PeerEvent {
    /// A connection to `0` opened.
    Connected(PeerId),
    /// The last connection to `0` closed.
    Disconnected(PeerId),
    /// `peer` subscribed to `topic`.
    Subscribed {
        /// Who.
        peer: PeerId,
        /// To what.
        topic: TopicHash,
    },
    /// A gossip message arrived (forwarded by `from`).
    Message {
        /// The peer that forwarded it to us.
        from: PeerId,
        /// Its topic.
        topic: TopicHash,
        /// Its payload.
        data: Vec<u8>,
    },
    /// A sync request arrived; `kind` is `status`, `get_headers`, `get_blocks`, `get_mempool`
    /// or `undecodable`.
    Request {
        /// Who asked.
        peer: PeerId,
        /// What was asked.
        kind: &'static str,
    },
    /// The result of a publish.
    Published(Result<(), String>),
    /// The answer to a sync request this peer sent (raw bytes), or why there was none.
    Answered(Result<Vec<u8>, String>),
}

/// How the peer answers `GetBlocks` (or `GetHeaders`).
#[derive(Debug, Clone)]
pub enum BlocksAnswer {
    /// These raw bytes (garbage, oversized, or an encoded `SyncResponse`).
    Bytes(Vec<u8>),
    /// Never answer: the request stays open until the asker gives up.
    Hang,
}

/// What a raw peer is, beyond its status and its answer to `GetBlocks`.
#[derive(Debug, Clone)]
pub struct RawOptions {
    /// How it answers `GetHeaders` (by default an empty `Headers` answer: nothing after ours).
    pub headers: BlocksAnswer,
    /// The bytes it answers `GetMempool` with (by default an empty `Mempool` answer).
    pub mempool: Vec<u8>,
    /// Its identity (by default a fresh one), so that a test can come back as the same peer.
    pub keypair: identity::Keypair,
    /// False: answers to this peer's own requests are never read (their streams stay open
    /// until a side gives up), as a peer does that makes a node hold its answers.
    pub read_answers: bool,
}

impl Default for RawOptions {
    fn default() -> Self {
        Self {
            headers: BlocksAnswer::Bytes(encode(&SyncResponse::Headers(Vec::new()))),
            mempool: encode(&SyncResponse::Mempool(Vec::new())),
            keypair: identity::Keypair::generate_ed25519(),
            read_answers: true,
        }
    }
}

enum Command {
    Dial(Multiaddr),
    Publish(IdentTopic, Vec<u8>),
    Request(PeerId, Vec<u8>),
}

/// A test-controlled libp2p peer.
pub struct RawPeer {
    /// Name used in failure messages.
    pub label: String,
    /// Its libp2p identity (fresh for each peer).
    pub peer_id: PeerId,
    commands: mpsc::UnboundedSender<Command>,
    events: std_mpsc::Receiver<PeerEvent>,
    /// Everything seen so far.
    pub seen: Vec<PeerEvent>,
    task: tokio::task::JoinHandle<()>,
}

#[derive(NetworkBehaviour)]
struct RawBehaviour {
    gossipsub: gossipsub::Behaviour,
    sync: request_response::Behaviour<RawCodec>,
    identify: identify::Behaviour,
    ping: ping::Behaviour,
}

/// A codec that moves raw bytes: one message each way, read to the end of the stream (or, with
/// `read_answers` false, answers never read at all).
#[derive(Debug, Clone)]
struct RawCodec {
    read_answers: bool,
}

async fn read_all<T: AsyncRead + Unpin + Send>(io: &mut T) -> io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    io.take(RAW_MAX_BYTES as u64)
        .read_to_end(&mut bytes)
        .await?;
    Ok(bytes)
}

impl request_response::Codec for RawCodec {
    type Protocol = StreamProtocol;
    type Request = Vec<u8>;
    type Response = Vec<u8>;

    async fn read_request<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<Vec<u8>>
    where
        T: AsyncRead + Unpin + Send,
    {
        read_all(io).await
    }

    async fn read_response<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<Vec<u8>>
    where
        T: AsyncRead + Unpin + Send,
    {
        if !self.read_answers {
            // Until the request times out or the stream is reset: nothing is read.
            futures::future::pending::<()>().await;
        }
        read_all(io).await
    }

    async fn write_request<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        request: Vec<u8>,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        io.write_all(&request).await?;
        io.close().await
    }

    async fn write_response<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        response: Vec<u8>,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        io.write_all(&response).await?;
        io.close().await
    }
}

impl RawPeer {
    /// Starts a peer on `rt` subscribed to `topics`, answering status requests with `status`
    /// and block requests with `blocks`.
    pub fn start(
        rt: &tokio::runtime::Runtime,
        label: &str,
        topics: &[IdentTopic],
        status: Status,
        blocks: BlocksAnswer,
    ) -> RawPeer {
        Self::start_with(rt, label, topics, status, blocks, RawOptions::default())
    }

    /// [`Self::start`] with the mempool answer and identity of `options`.
    pub fn start_with(
        rt: &tokio::runtime::Runtime,
        label: &str,
        topics: &[IdentTopic],
        status: Status,
        blocks: BlocksAnswer,
        options: RawOptions,
    ) -> RawPeer {
        let RawOptions {
            headers,
            mempool: mempool_bytes,
            keypair,
            read_answers,
        } = options;
        let peer_id = keypair.public().to_peer_id();
        let gossip_config = gossipsub::ConfigBuilder::default()
            .validation_mode(gossipsub::ValidationMode::Strict)
            .message_id_fn(|m: &gossipsub::Message| {
                gossipsub::MessageId::from(Sha256::digest(&m.data).to_vec())
            })
            .max_transmit_size(RAW_MAX_BYTES)
            .heartbeat_interval(Duration::from_millis(500))
            .build()
            .expect("valid gossipsub config");
        let mut swarm = {
            let _guard = rt.enter();
            libp2p::SwarmBuilder::with_existing_identity(keypair)
                .with_tokio()
                .with_tcp(
                    tcp::Config::default().nodelay(true),
                    noise::Config::new,
                    yamux::Config::default,
                )
                .expect("tcp transport")
                .with_behaviour(|key| {
                    let gossipsub = gossipsub::Behaviour::new(
                        gossipsub::MessageAuthenticity::Signed(key.clone()),
                        gossip_config,
                    )?;
                    let sync = request_response::Behaviour::with_codec(
                        RawCodec { read_answers },
                        [(SYNC_PROTOCOL, ProtocolSupport::Full)],
                        request_response::Config::default()
                            .with_request_timeout(Duration::from_secs(60)),
                    );
                    let identify = identify::Behaviour::new(identify::Config::new(
                        IDENTIFY_PROTOCOL.to_string(),
                        key.public(),
                    ));
                    let ping = ping::Behaviour::new(ping::Config::new());
                    Ok(RawBehaviour {
                        gossipsub,
                        sync,
                        identify,
                        ping,
                    })
                })
                .expect("behaviour")
                .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(120)))
                .build()
        };
        for t in topics {
            swarm
                .behaviour_mut()
                .gossipsub
                .subscribe(t)
                .expect("subscribe");
        }
        let (cmd_tx, mut cmd_rx) = mpsc::unbounded_channel();
        let (ev_tx, ev_rx) = std_mpsc::channel();
        let status_bytes = encode(&SyncResponse::Status(status));
        let task = rt.spawn(async move {
            // Open requests we never answer are parked here so their streams stay open.
            let mut parked: Vec<ResponseChannel<Vec<u8>>> = Vec::new();
            loop {
                tokio::select! {
                    cmd = cmd_rx.recv() => match cmd {
                        None => break,
                        Some(Command::Dial(addr)) => {
                            let _ = swarm.dial(addr);
                        }
                        Some(Command::Publish(topic, data)) => {
                            let r = swarm
                                .behaviour_mut()
                                .gossipsub
                                .publish(topic, data)
                                .map(|_| ())
                                .map_err(|e| e.to_string());
                            let _ = ev_tx.send(PeerEvent::Published(r));
                        }
                        Some(Command::Request(peer, bytes)) => {
                            swarm.behaviour_mut().sync.send_request(&peer, bytes);
                        }
                    },
                    event = swarm.select_next_some() => {
                        let out = match event {
                            SwarmEvent::ConnectionEstablished { peer_id, .. } => {
                                Some(PeerEvent::Connected(peer_id))
                            }
                            SwarmEvent::ConnectionClosed { peer_id, num_established: 0, .. } => {
                                Some(PeerEvent::Disconnected(peer_id))
                            }
                            SwarmEvent::Behaviour(RawBehaviourEvent::Gossipsub(e)) => match e {
                                gossipsub::Event::Subscribed { peer_id, topic } => {
                                    Some(PeerEvent::Subscribed { peer: peer_id, topic })
                                }
                                gossipsub::Event::Message { propagation_source, message, .. } => {
                                    Some(PeerEvent::Message {
                                        from: propagation_source,
                                        topic: message.topic,
                                        data: message.data,
                                    })
                                }
                                _ => None,
                            },
                            SwarmEvent::Behaviour(RawBehaviourEvent::Sync(
                                request_response::Event::Message {
                                    message: request_response::Message::Response { response, .. },
                                    ..
                                },
                            )) => Some(PeerEvent::Answered(Ok(response))),
                            SwarmEvent::Behaviour(RawBehaviourEvent::Sync(
                                request_response::Event::OutboundFailure { error, .. },
                            )) => Some(PeerEvent::Answered(Err(error.to_string()))),
                            SwarmEvent::Behaviour(RawBehaviourEvent::Sync(
                                request_response::Event::Message {
                                    peer,
                                    message: request_response::Message::Request { request, channel, .. },
                                    ..
                                },
                            )) => {
                                let kind = match decode_request(&request) {
                                    Ok(SyncRequest::Status(_)) => {
                                        let _ = swarm
                                            .behaviour_mut()
                                            .sync
                                            .send_response(channel, status_bytes.clone());
                                        "status"
                                    }
                                    Ok(SyncRequest::GetBlocks { .. }) => {
                                        match &blocks {
                                            BlocksAnswer::Bytes(b) => {
                                                let _ = swarm
                                                    .behaviour_mut()
                                                    .sync
                                                    .send_response(channel, b.clone());
                                            }
                                            BlocksAnswer::Hang => parked.push(channel),
                                        }
                                        "get_blocks"
                                    }
                                    Ok(SyncRequest::GetHeaders { .. }) => {
                                        match &headers {
                                            BlocksAnswer::Bytes(b) => {
                                                let _ = swarm
                                                    .behaviour_mut()
                                                    .sync
                                                    .send_response(channel, b.clone());
                                            }
                                            BlocksAnswer::Hang => parked.push(channel),
                                        }
                                        "get_headers"
                                    }
                                    Ok(SyncRequest::GetMempool { .. }) => {
                                        let _ = swarm
                                            .behaviour_mut()
                                            .sync
                                            .send_response(channel, mempool_bytes.clone());
                                        "get_mempool"
                                    }
                                    Err(_) => "undecodable",
                                };
                                Some(PeerEvent::Request { peer, kind })
                            }
                            _ => None,
                        };
                        if let Some(out) = out {
                            let _ = ev_tx.send(out);
                        }
                    }
                }
            }
        });
        RawPeer {
            label: label.to_string(),
            peer_id,
            commands: cmd_tx,
            events: ev_rx,
            seen: Vec::new(),
            task,
        }
    }

    /// Dials `addr` (a node on 127.0.0.1).
    pub fn dial(&self, addr: &Multiaddr) {
        let _ = self.commands.send(Command::Dial(addr.clone()));
    }

    /// Publishes `data` on `topic`; panics if the publish itself fails.
    #[track_caller]
    pub fn publish(&mut self, topic: &IdentTopic, data: Vec<u8>) {
        let _ = self.commands.send(Command::Publish(topic.clone(), data));
        let r = self.wait_new(
            |e| matches!(e, PeerEvent::Published(_)),
            Duration::from_secs(10),
        );
        if let PeerEvent::Published(Err(e)) = r {
            panic!("{}: publish failed: {e}", self.label);
        }
    }

    /// Sends raw bytes as a sync request to `peer` without waiting; its outcome arrives later as
    /// [`PeerEvent::Answered`].
    pub fn send_request(&self, peer: PeerId, bytes: Vec<u8>) {
        let _ = self.commands.send(Command::Request(peer, bytes));
    }

    /// Publishes `data` on `topic` without waiting for the outcome of the publish.
    pub fn publish_nowait(&self, topic: &IdentTopic, data: Vec<u8>) {
        let _ = self.commands.send(Command::Publish(topic.clone(), data));
    }

    /// The events that arrived since the last look, without waiting (not kept in `seen`, so
    /// that a long flood does not pile them up).
    pub fn take_new(&mut self) -> Vec<PeerEvent> {
        let mut out = Vec::new();
        while let Ok(e) = self.events.try_recv() {
            out.push(e);
        }
        out
    }

    /// Sends raw bytes as a sync request to `peer` and returns the outcome.
    #[track_caller]
    pub fn request(&mut self, peer: PeerId, bytes: Vec<u8>) -> Result<Vec<u8>, String> {
        let _ = self.commands.send(Command::Request(peer, bytes));
        match self.wait_new(
            |e| matches!(e, PeerEvent::Answered(_)),
            Duration::from_secs(20),
        ) {
            PeerEvent::Answered(r) => r,
            _ => unreachable!("wait_new returns a matching event"),
        }
    }

    fn pull(&mut self, deadline: Instant) -> Option<PeerEvent> {
        let now = Instant::now();
        if now >= deadline {
            return None;
        }
        match self.events.recv_timeout(deadline - now) {
            Ok(e) => {
                self.seen.push(e.clone());
                Some(e)
            }
            Err(_) => None,
        }
    }

    /// Reads every event that has arrived, without waiting.
    pub fn drain(&mut self) {
        while self
            .pull(Instant::now() + Duration::from_millis(1))
            .is_some()
        {}
    }

    /// The first event, seen before or during the wait, for which `pred` holds.
    #[track_caller]
    pub fn wait(&mut self, pred: impl Fn(&PeerEvent) -> bool, timeout: Duration) -> PeerEvent {
        if let Some(e) = self.seen.iter().find(|e| pred(e)) {
            return e.clone();
        }
        self.wait_new(pred, timeout)
    }

    #[track_caller]
    fn wait_new(&mut self, pred: impl Fn(&PeerEvent) -> bool, timeout: Duration) -> PeerEvent {
        let deadline = Instant::now() + timeout;
        let mut recent = VecDeque::new();
        while let Some(e) = self.pull(deadline) {
            if pred(&e) {
                return e;
            }
            recent.push_back(format!("{e:?}").chars().take(200).collect::<String>());
            if recent.len() > 20 {
                recent.pop_front();
            }
        }
        panic!(
            "{}: no matching event within {timeout:?}; recent: {recent:#?}",
            self.label
        );
    }

    /// Waits until `peer` has subscribed to `topic`.
    #[track_caller]
    pub fn wait_subscribed(&mut self, peer: PeerId, topic: &IdentTopic, timeout: Duration) {
        let hash = topic.hash();
        self.wait(
            |e| matches!(e, PeerEvent::Subscribed { peer: p, topic: t } if *p == peer && *t == hash),
            timeout,
        );
    }

    /// Every gossip payload received so far on `topic`.
    pub fn received(&mut self, topic: &IdentTopic) -> Vec<Vec<u8>> {
        self.drain();
        let hash = topic.hash();
        self.seen
            .iter()
            .filter_map(|e| match e {
                PeerEvent::Message { topic: t, data, .. } if *t == hash => Some(data.clone()),
                _ => None,
            })
            .collect()
    }
}

impl Drop for RawPeer {
    fn drop(&mut self) {
        self.task.abort();
    }
}
