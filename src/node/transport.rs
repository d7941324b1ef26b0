//! Node-to-node connections: one multiplexed TCP connection per peer, framed by
//! [`FrameCodec`], dialled on first use and again (after a backoff) once it breaks.
//!
//! The transport knows nothing of Chord. It carries protocol [`Message`]s between the
//! driver and the wire, and answers object-body requests ([`BodyMsg`]) from the
//! [`BodyStore`] by itself, so bodies never pass through the core. Timeouts, RTT samples and
//! misses of protocol requests are the core's business: a message the transport cannot send
//! is simply dropped (and counted), and the core sees the missing answer as a miss.
//!
//! Each connection is one task owning the socket. It first runs the handshake, bounded by
//! [`HANDSHAKE_TIMEOUT`]: hellos both ways, then proofs both ways (each side's over the
//! other's fresh nonce, see [`crate::rpc::Proof`]). Only a connection whose peer proved the
//! secret is registered as the route to that peer or has its queue written; one that does not
//! answer in time is closed and counted as `no_proof` (or `no_hello`). Then it loops over
//! "frame arrived" and "frame to send". A frame the codec refuses closes the connection and
//! counts `rpc_rejected_frames_total{reason}`; a wrong secret or a failed proof is also
//! logged at warn with the peer's address, on both sides.

use super::copies::{Copies, SyncAnswer};
use super::metrics::{KindLabel, Metrics, ReasonLabel};
use super::store::{BodyStore, StoredObject};
use crate::rpc::{BodyMsg, Frame, FrameCodec, FrameError, Hello, MacKey, Payload};
use beehive_proxy::{ClusterError, Fetch, Fetched, LoadRequest};
use beehive_replication::beehive::wire::ObjectInfo;
use beehive_replication::{Id, Message, Peer};
use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use thiserror::Error;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot, watch, Semaphore};
use tokio::time::{timeout, Instant};
use tokio_util::codec::Framed;

/// Frames queued per connection before further sends are dropped (the core will see misses).
const QUEUE: usize = 1024;
/// Bound on connecting.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Bound on the whole handshake (both hellos and both proofs: two round trips). A peer that
/// has not proved the secret by then, such as one replaying a recorded hello, is dropped. Only
/// a bound on what a silent connection holds: nothing is routed to it meanwhile, so it can be
/// generous enough for a loaded machine.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);
/// First and largest wait before dialling a peer again after a failed dial.
const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(2);
/// Most connections accepted at once; more wait in the kernel's backlog.
const MAX_ACCEPTED: usize = 1024;
/// Room in a frame beyond the body itself (header, MAC, bincode framing of the body message).
const BODY_FRAME_SLACK: usize = 4096;

/// A protocol message from an authenticated peer, for the driver.
#[derive(Debug)]
pub struct Inbound {
    pub from: Peer,
    pub msg: Message,
}

/// Why a body transfer did not deliver a verified body.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum BodyError {
    #[error("peer does not hold the object")]
    Missing,
    #[error("body does not match the expected blake3 hash; discarded")]
    HashMismatch,
    #[error("body exceeds the size cap; discarded")]
    TooLarge,
    #[error("no answer within the timeout")]
    Timeout,
    #[error("connection closed before the answer")]
    ConnectionLost,
    #[error("peer answered with the wrong kind of message")]
    Malformed,
}

impl BodyError {
    pub fn reason(&self) -> &'static str {
        match self {
            BodyError::Missing => "missing",
            BodyError::HashMismatch => "hash_mismatch",
            BodyError::TooLarge => "too_large",
            BodyError::Timeout => "timeout",
            BodyError::ConnectionLost => "connection_lost",
            BodyError::Malformed => "malformed",
        }
    }
}

/// A boxed future, so [`HomeService`] stays object safe.
pub type BoxFuture<T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send>>;

/// What a node does for the objects it is home for, on other nodes' requests. Answered in a
/// task of its own, so a slow origin never holds up the connection.
pub trait HomeService: Send + Sync + std::fmt::Debug {
    /// Gives the object for `key`, loading it from its origin with `load` if needed.
    fn load(&self, key: Id, load: LoadRequest) -> BoxFuture<Fetch>;
    /// Purges `key` here and over its replica arc; `false` if this node is not its home.
    fn purge(&self, key: Id) -> BoxFuture<bool>;
    /// `from` handed us `key` (it leaves, or we joined before it): take it on as home once
    /// it is in our arc.
    fn adopt(&self, from: Peer, key: Id, object: StoredObject);
    /// `from` asked us directly, as `key`'s home, for the object (`BodyMsg::Get` `id`):
    /// answer it through [`Transport::answer`] once the core has counted and answered it.
    fn serve_as_home(&self, from: Peer, id: u64, key: Id);
}

/// What a transport needs to know about its node.
#[derive(Debug, Clone)]
pub struct TransportConfig {
    pub me: Peer,
    pub key: MacKey,
    pub max_body_bytes: usize,
    /// Budget of the successor copies this node keeps for its predecessor, in bytes.
    pub copy_bytes: u64,
}

/// Cheap to clone; every clone is the same transport.
#[derive(Debug, Clone)]
pub struct Transport {
    wire: Arc<Wire>,
}

#[derive(Debug)]
struct Wire {
    me: Peer,
    key: MacKey,
    max_frame: usize,
    max_body: usize,
    conns: Mutex<HashMap<Id, Conn>>,
    backoff: Mutex<HashMap<Id, Backoff>>,
    next_generation: AtomicU64,
    inbound: mpsc::Sender<Inbound>,
    metrics: Arc<Metrics>,
    store: Arc<dyn BodyStore>,
    copies: Arc<Copies>,
    waiting: Mutex<HashMap<u64, oneshot::Sender<BodyMsg>>>,
    next_body_id: AtomicU64,
    /// Set once the HTTP face is up; until then loads and purges are refused.
    home: std::sync::OnceLock<Arc<dyn HomeService>>,
}

#[derive(Debug)]
struct Conn {
    tx: mpsc::Sender<Payload>,
    generation: u64,
}

/// A dialled connection's queue, its generation, and whom it was dialled for.
struct Outgoing {
    rx: mpsc::Receiver<Payload>,
    generation: u64,
    to: Peer,
}

#[derive(Debug, Clone, Copy)]
struct Backoff {
    next_try: Instant,
    delay: Duration,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Transport {
    /// A transport and the receiving end of its inbound messages (for the driver).
    pub fn new(
        config: TransportConfig,
        metrics: Arc<Metrics>,
        store: Arc<dyn BodyStore>,
    ) -> (Transport, mpsc::Receiver<Inbound>) {
        let (inbound, rx) = mpsc::channel(4096);
        let wire = Wire {
            me: config.me,
            key: config.key,
            max_frame: config.max_body_bytes.saturating_add(BODY_FRAME_SLACK),
            max_body: config.max_body_bytes,
            conns: Mutex::new(HashMap::new()),
            backoff: Mutex::new(HashMap::new()),
            next_generation: AtomicU64::new(1),
            inbound,
            metrics,
            store,
            copies: Arc::new(Copies::new(config.copy_bytes)),
            waiting: Mutex::new(HashMap::new()),
            next_body_id: AtomicU64::new(1),
            home: std::sync::OnceLock::new(),
        };
        (Transport { wire: Arc::new(wire) }, rx)
    }

    pub fn me(&self) -> Peer {
        self.wire.me
    }

    /// The successor copies this node holds for its predecessor.
    pub fn copies(&self) -> &Arc<Copies> {
        &self.wire.copies
    }

    /// The frame length cap this transport uses (and expects of its peers).
    pub fn max_frame_length(&self) -> usize {
        self.wire.max_frame
    }

    /// Queues a protocol message for `to`. Never waits: if the peer is unreachable (in
    /// backoff) or its queue is full the message is dropped and counted.
    pub fn send_message(&self, to: Peer, msg: Message) {
        self.wire.metrics.rpc_sent.get_or_create(&KindLabel { kind: msg.kind() }).inc();
        self.wire.send(to, Payload::Message(msg));
    }

    /// Accepts connections until `stop` turns true. Each runs in its own task.
    pub async fn serve(&self, listener: TcpListener, mut stop: watch::Receiver<bool>) {
        let permits = Arc::new(Semaphore::new(MAX_ACCEPTED));
        loop {
            let Ok(permit) = permits.clone().acquire_owned().await else { return };
            let accepted = tokio::select! {
                a = listener.accept() => a,
                _ = stop.wait_for(|s| *s) => return,
            };
            match accepted {
                Ok((stream, _)) => {
                    let wire = self.wire.clone();
                    tokio::spawn(async move {
                        wire.run(stream, None).await;
                        drop(permit);
                    });
                }
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }

    /// Fetches the body of `key` from `from` and checks it against `hash`. A body that is
    /// too large or does not match is discarded and counted in `body_rejected_total`.
    pub async fn fetch_body(
        &self,
        from: Peer,
        key: Id,
        hash: [u8; 32],
        wait: Duration,
    ) -> Result<Bytes, BodyError> {
        let answer = self.request_body(from, |id| BodyMsg::Fetch { id, key, hash }, wait).await;
        let result = self.found_body(answer, Some(&hash));
        match &result {
            Ok(_) => {
                self.wire.metrics.bodies_fetched.inc();
            }
            Err(e) => self.wire.metrics.reject_body(e.reason()),
        }
        result
    }

    /// The body in a `Found` answer, within the size bound and, given `hash`, matching it.
    fn found_body(
        &self,
        answer: Result<BodyMsg, BodyError>,
        hash: Option<&[u8; 32]>,
    ) -> Result<Bytes, BodyError> {
        match answer? {
            BodyMsg::Found { body, .. } if body.len() > self.wire.max_body => {
                Err(BodyError::TooLarge)
            }
            BodyMsg::Found { body, .. }
                if hash.is_some_and(|h| blake3::hash(&body).as_bytes() != h) =>
            {
                Err(BodyError::HashMismatch)
            }
            BodyMsg::Found { body, .. } => Ok(body),
            BodyMsg::Missing { .. } => Err(BodyError::Missing),
            _ => Err(BodyError::Malformed),
        }
    }

    /// Asks `home` (our successor, `key`'s home as we see the ring) for `key` directly: the
    /// lookup answer it gives (level and object) and the body, in one round trip. The body
    /// is not hashed again: `home` picked it by the hash it answers with, and the frame's MAC
    /// covers it on the way. `Missing`: `home` is neither home nor holder.
    pub async fn get_from(
        &self,
        home: Peer,
        key: Id,
        wait: Duration,
    ) -> Result<(u8, Option<ObjectInfo>, Bytes), BodyError> {
        let answer = self.request_body(home, |id| BodyMsg::Get { id, key }, wait).await;
        let result = match answer {
            Ok(BodyMsg::Served { body, .. }) if body.len() > self.wire.max_body => {
                Err(BodyError::TooLarge)
            }
            Ok(BodyMsg::Served { level, object, body, .. }) => Ok((level, object, body)),
            Ok(BodyMsg::Missing { .. }) => Err(BodyError::Missing),
            Ok(_) => Err(BodyError::Malformed),
            Err(e) => Err(e),
        };
        match &result {
            Ok((_, Some(_), _)) => {
                self.wire.metrics.bodies_fetched.inc();
            }
            Ok(_) | Err(BodyError::Missing) => {}
            Err(e) => self.wire.metrics.reject_body(e.reason()),
        }
        result
    }

    /// Sends `answer` to a body request of `to`'s (one answered outside the connection's
    /// task, such as [`BodyMsg::Get`] by the driver). Dropped and counted if it cannot be
    /// queued; the asker then times out.
    pub fn answer(&self, to: Peer, answer: BodyMsg) {
        if matches!(&answer, BodyMsg::Served { object: Some(_), .. }) {
            self.wire.metrics.bodies_served.inc();
        }
        self.wire.send(to, Payload::Body(answer));
    }

    /// Installs what answers loads and purges for the objects this node is home for.
    pub fn set_home_service(&self, home: Arc<dyn HomeService>) {
        let _ = self.wire.home.set(home);
    }

    /// Asks `home` for the object `key`, to be loaded from its origin if it has none. The
    /// answer is checked against the body cap; a transfer that fails is `Unavailable`.
    pub async fn load_from(&self, home: Peer, key: Id, load: LoadRequest, wait: Duration) -> Fetch {
        let answer =
            self.request_body(home, move |id| BodyMsg::Load { id, key, load: load.0 }, wait).await;
        let answer = match answer {
            Ok(BodyMsg::Loaded { body, .. }) if body.len() > self.wire.max_body => {
                Err(BodyError::TooLarge)
            }
            Ok(answer) => fetch_of(answer).ok_or(BodyError::Malformed),
            Err(e) => Err(e),
        };
        answer.unwrap_or_else(|e| {
            self.wire.metrics.reject_body(e.reason());
            Err(ClusterError::Unavailable(format!("home {}: {e}", home.addr)))
        })
    }

    /// Asks `home` to purge `key`. `Ok(false)`: it is not the home (the ring moved).
    pub async fn purge_at(&self, home: Peer, key: Id, wait: Duration) -> Result<bool, BodyError> {
        match self.request_body(home, move |id| BodyMsg::Purge { id, key }, wait).await? {
            BodyMsg::Purged { done, .. } => Ok(done),
            _ => Err(BodyError::Malformed),
        }
    }

    /// Hands `body` to `to` to keep under `key` (the shutdown handoff). `Ok(false)`: refused.
    pub async fn store_body(
        &self,
        to: Peer,
        key: Id,
        body: Bytes,
        wait: Duration,
    ) -> Result<bool, BodyError> {
        self.hand_body(to, body, wait, move |id, body| BodyMsg::Store { id, key, body }).await
    }

    /// Gives `to` (our successor) the copy of our home object `key`. `Ok(false)`: refused
    /// (over its copy budget).
    pub async fn copy_body(
        &self,
        to: Peer,
        key: Id,
        body: Bytes,
        wait: Duration,
    ) -> Result<bool, BodyError> {
        self.hand_body(to, body, wait, move |id, body| BodyMsg::Copy { id, key, body }).await
    }

    /// Sends a body for `to` to keep (a handoff or a successor copy); both answer `Stored`.
    async fn hand_body(
        &self,
        to: Peer,
        body: Bytes,
        wait: Duration,
        message: impl FnOnce(u64, Bytes) -> BodyMsg,
    ) -> Result<bool, BodyError> {
        if body.len() > self.wire.max_body {
            return Err(BodyError::TooLarge);
        }
        match self.request_body(to, move |id| message(id, body), wait).await? {
            BodyMsg::Stored { accepted, .. } => Ok(accepted),
            _ => Err(BodyError::Malformed),
        }
    }

    /// Lists our home objects to `to`, our successor (see [`Copies::sync`]).
    pub async fn sync_copies(
        &self,
        to: Peer,
        fresh: bool,
        keys: Vec<(Id, [u8; 32])>,
        wait: Duration,
    ) -> Result<SyncAnswer, BodyError> {
        match self.request_body(to, move |id| BodyMsg::Sync { id, fresh, keys }, wait).await? {
            BodyMsg::Synced { lacking, extra, .. } => Ok(SyncAnswer { lacking, extra }),
            _ => Err(BodyError::Malformed),
        }
    }

    /// Asks `from` for any copy it holds of `key` (a successor copy or its own), checked
    /// against `hash` when the asker has one (a miss has none; `from` proved the secret).
    pub async fn fetch_copy(
        &self,
        from: Peer,
        key: Id,
        hash: Option<&[u8; 32]>,
        wait: Duration,
    ) -> Result<Bytes, BodyError> {
        let answer = self.request_body(from, |id| BodyMsg::FetchCopy { id, key }, wait).await;
        let result = self.found_body(answer, hash);
        match &result {
            Ok(_) => {
                self.wire.metrics.copies_fetched.inc();
            }
            Err(BodyError::Missing) => {}
            Err(e) => self.wire.metrics.reject_body(e.reason()),
        }
        result
    }

    async fn request_body(
        &self,
        to: Peer,
        make: impl FnOnce(u64) -> BodyMsg,
        wait: Duration,
    ) -> Result<BodyMsg, BodyError> {
        let id = self.wire.next_body_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        lock(&self.wire.waiting).insert(id, tx);
        self.wire.send(to, Payload::Body(make(id)));
        let answer = timeout(wait, rx).await;
        lock(&self.wire.waiting).remove(&id);
        match answer {
            Ok(Ok(msg)) => Ok(msg),
            Ok(Err(_)) => Err(BodyError::ConnectionLost),
            Err(_) => Err(BodyError::Timeout),
        }
    }
}

impl Wire {
    fn send(self: &Arc<Self>, to: Peer, mut payload: Payload) {
        if to.id == self.me.id {
            self.metrics.drop_send("to_self");
            return;
        }
        let mut conns = lock(&self.conns);
        if let Some(conn) = conns.get(&to.id) {
            match conn.tx.try_send(payload) {
                Ok(()) => return,
                Err(mpsc::error::TrySendError::Full(_)) => {
                    self.metrics.drop_send("queue_full");
                    return;
                }
                Err(mpsc::error::TrySendError::Closed(p)) => {
                    payload = p;
                    conns.remove(&to.id);
                }
            }
        }
        if lock(&self.backoff).get(&to.id).is_some_and(|b| Instant::now() < b.next_try) {
            self.metrics.drop_send("backoff");
            return;
        }
        let (tx, rx) = mpsc::channel(QUEUE);
        // A fresh channel has room for one.
        let _ = tx.try_send(payload);
        let generation = self.next_generation.fetch_add(1, Ordering::Relaxed);
        conns.insert(to.id, Conn { tx, generation });
        drop(conns);
        let wire = self.clone();
        tokio::spawn(async move { wire.dial(to, rx, generation).await });
    }

    async fn dial(self: Arc<Self>, to: Peer, rx: mpsc::Receiver<Payload>, generation: u64) {
        match timeout(CONNECT_TIMEOUT, TcpStream::connect(to.addr)).await {
            Ok(Ok(stream)) => {
                self.metrics.connects.inc();
                self.run(stream, Some(Outgoing { rx, generation, to })).await;
            }
            failed => {
                let error = match failed {
                    Ok(Err(e)) => e.to_string(),
                    _ => "timed out".to_string(),
                };
                let delay = self.back_off(to.id);
                tracing::debug!(peer = ?to, %error, retry_in = ?delay, "dial failed");
                let queued = rx.len() as u64;
                self.metrics
                    .send_dropped
                    .get_or_create(&ReasonLabel { reason: "unreachable" })
                    .inc_by(queued);
                self.forget(to.id, generation);
            }
        }
    }

    /// Puts `peer` in backoff (doubling the last delay) and returns the delay.
    fn back_off(&self, peer: Id) -> Duration {
        let mut backoff = lock(&self.backoff);
        let delay = backoff.get(&peer).map_or(BACKOFF_MIN, |b| (b.delay * 2).min(BACKOFF_MAX));
        backoff.insert(peer, Backoff { next_try: Instant::now() + delay, delay });
        delay
    }

    /// Removes the connection entry for `peer` if it is still the one of `generation`.
    fn forget(&self, peer: Id, generation: u64) {
        let mut conns = lock(&self.conns);
        if conns.get(&peer).is_some_and(|c| c.generation == generation) {
            conns.remove(&peer);
        }
    }

    /// Runs one connection to its end. `outgoing` is the queue of a dialled connection; an
    /// accepted one registers a queue for its peer, once the peer proved the secret, unless a
    /// live connection already has one.
    async fn run(self: Arc<Self>, stream: TcpStream, outgoing: Option<Outgoing>) {
        let _ = stream.set_nodelay(true);
        let addr = stream.peer_addr().ok();
        let codec = FrameCodec::with_max_frame_length(self.key.clone(), self.max_frame);
        let mut framed = Framed::new(stream, codec);
        let handshake = timeout(HANDSHAKE_TIMEOUT, self.handshake(&mut framed)).await;
        let remote = match handshake {
            Ok(Ok(remote)) => Some(remote),
            Ok(Err(e)) => {
                self.handshake_refused(addr, &e);
                None
            }
            Err(_) => {
                let reason =
                    if framed.codec().remote_peer().is_some() { "no_proof" } else { "no_hello" };
                self.metrics.reject(reason);
                tracing::debug!(peer = ?addr, reason, "handshake timed out; connection dropped");
                None
            }
        };
        let Some(remote) = remote else {
            if let Some(out) = outgoing {
                self.forget_any(out.generation);
                self.back_off(out.to.id);
            }
            return;
        };
        let (mut sink, mut frames) = framed.split();
        // A dialled connection keeps its queue; an accepted one makes its own, and holds a
        // sender itself so the queue stays open even when a live connection already serves
        // the peer.
        let (mut rx, generation, _own_tx) = match outgoing {
            Some(Outgoing { rx, generation, to }) => {
                lock(&self.backoff).remove(&to.id);
                (rx, generation, None)
            }
            None => {
                let (tx, rx) = mpsc::channel(QUEUE);
                let generation = self.next_generation.fetch_add(1, Ordering::Relaxed);
                let mut conns = lock(&self.conns);
                let live = conns.get(&remote.id).is_some_and(|c| !c.tx.is_closed());
                if !live {
                    conns.insert(remote.id, Conn { tx: tx.clone(), generation });
                }
                (rx, generation, Some(tx))
            }
        };
        self.metrics.connections_open.inc();
        tracing::debug!(peer = ?remote, "connection up");
        loop {
            tokio::select! {
                frame = frames.next() => match frame {
                    Some(Ok(frame)) => {
                        if !self.on_frame(remote, frame.payload, &mut sink).await {
                            break;
                        }
                    }
                    Some(Err(e)) => {
                        self.count_error(&e);
                        tracing::debug!(peer = ?remote, error = %e, "connection closed");
                        break;
                    }
                    None => break,
                },
                out = rx.recv() => {
                    let Some(first) = out else { break };
                    if sink.feed(first).await.is_err() {
                        break;
                    }
                    let mut failed = false;
                    for _ in 0..64 {
                        let Ok(more) = rx.try_recv() else { break };
                        if sink.feed(more).await.is_err() {
                            failed = true;
                            break;
                        }
                    }
                    if failed || sink.flush().await.is_err() {
                        break;
                    }
                }
            }
        }
        self.metrics.connections_open.dec();
        self.forget(remote.id, generation);
    }

    /// Hellos both ways, then proofs both ways; returns the peer once it proved the secret
    /// over our nonce. Nothing else is read or written before.
    async fn handshake(
        &self,
        framed: &mut Framed<TcpStream, FrameCodec>,
    ) -> Result<Peer, FrameError> {
        let closed = || FrameError::Io(std::io::ErrorKind::UnexpectedEof.into());
        framed.send(Payload::Hello(Hello { peer: self.me, nonce: rand::random() })).await?;
        let remote = match framed.next().await.ok_or_else(closed)?? {
            Frame { payload: Payload::Hello(h), .. } => h.peer,
            _ => return Err(FrameError::Malformed("handshake: expected a hello".into())),
        };
        let proof = framed.codec().proof()?;
        framed.send(proof).await?;
        match framed.next().await.ok_or_else(closed)?? {
            // The codec checked it against our nonce.
            Frame { payload: Payload::Proof(_), .. } => Ok(remote),
            _ => Err(FrameError::Malformed("handshake: expected a proof".into())),
        }
    }

    /// Counts a failed handshake; a wrong secret, a failed proof or a version skew is an
    /// operator's business, so it is logged at warn with the peer's address.
    fn handshake_refused(&self, addr: Option<SocketAddr>, e: &FrameError) {
        self.count_error(e);
        let peer = addr.map_or_else(|| "unknown".to_string(), |a| a.to_string());
        match e {
            FrameError::BadMac => tracing::warn!(
                %peer,
                "RPC peer's hello does not verify: it uses another cluster secret (or is not a \
                 beehive node); connection refused"
            ),
            FrameError::BadProof => tracing::warn!(
                %peer,
                "RPC peer did not prove the cluster secret over our nonce (a replayed hello?); \
                 connection refused"
            ),
            FrameError::BadVersion { got, expected } => tracing::warn!(
                %peer,
                got,
                expected,
                "RPC peer speaks another protocol version; connection refused"
            ),
            e => tracing::debug!(%peer, error = %e, "handshake failed"),
        }
    }

    /// Removes whichever entry has `generation` (used before the peer's id is confirmed).
    fn forget_any(&self, generation: u64) {
        lock(&self.conns).retain(|_, c| c.generation != generation);
    }

    fn count_error(&self, e: &FrameError) {
        // A reset or closed socket is not a refused frame.
        if !matches!(e, FrameError::Io(_)) {
            self.metrics.reject(e.reason());
        }
    }

    /// Answers a body request in a task of its own (it may wait on an origin), through the
    /// connection's queue; `unavailable` when no home service is installed yet.
    fn answer_later<F, Fut>(self: &Arc<Self>, to: Peer, work: F, unavailable: BodyMsg)
    where
        F: FnOnce(Arc<dyn HomeService>) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = BodyMsg> + Send,
    {
        let Some(home) = self.home.get().cloned() else {
            self.send(to, Payload::Body(unavailable));
            return;
        };
        let wire = self.clone();
        tokio::spawn(async move {
            let answer = work(home).await;
            wire.send(to, Payload::Body(answer));
        });
    }

    /// Handles one accepted frame; `false` ends the connection.
    async fn on_frame<S>(self: &Arc<Self>, from: Peer, payload: Payload, sink: &mut S) -> bool
    where
        S: futures_util::Sink<Payload, Error = FrameError> + Unpin,
    {
        match payload {
            Payload::Message(msg) => {
                self.metrics.rpc_received.get_or_create(&KindLabel { kind: msg.kind() }).inc();
                self.inbound.send(Inbound { from, msg }).await.is_ok()
            }
            Payload::Body(BodyMsg::Fetch { id, key, hash }) => {
                let answer = match self.store.get(key) {
                    Some(o) if o.hash == hash => {
                        self.metrics.bodies_served.inc();
                        BodyMsg::Found { id, body: o.body }
                    }
                    _ => BodyMsg::Missing { id },
                };
                sink.send(Payload::Body(answer)).await.is_ok()
            }
            Payload::Body(BodyMsg::Store { id, key, body }) => {
                let accepted = body.len() <= self.max_body;
                if accepted {
                    let object = StoredObject::new(body);
                    self.metrics.handoff_received.inc();
                    match self.home.get() {
                        Some(home) => home.adopt(from, key, object),
                        None => self.store.put(key, object),
                    }
                } else {
                    self.metrics.reject_body("too_large");
                }
                sink.send(Payload::Body(BodyMsg::Stored { id, accepted })).await.is_ok()
            }
            Payload::Body(BodyMsg::Copy { id, key, body }) => {
                let accepted = body.len() <= self.max_body && self.copies.put(from.id, key, body);
                if accepted {
                    self.metrics.copies_received.inc();
                }
                sink.send(Payload::Body(BodyMsg::Stored { id, accepted })).await.is_ok()
            }
            Payload::Body(BodyMsg::Sync { id, fresh, keys }) => {
                let SyncAnswer { lacking, extra } = self.copies.sync(from.id, fresh, &keys);
                sink.send(Payload::Body(BodyMsg::Synced { id, lacking, extra })).await.is_ok()
            }
            Payload::Body(BodyMsg::FetchCopy { id, key }) => {
                let answer = match self.copies.get(key).or_else(|| self.store.get(key)) {
                    Some(o) => {
                        self.metrics.bodies_served.inc();
                        BodyMsg::Found { id, body: o.body }
                    }
                    None => BodyMsg::Missing { id },
                };
                sink.send(Payload::Body(answer)).await.is_ok()
            }
            Payload::Body(BodyMsg::Get { id, key }) => {
                match self.home.get() {
                    Some(home) => home.serve_as_home(from, id, key),
                    None => self.send(from, Payload::Body(BodyMsg::Missing { id })),
                }
                true
            }
            Payload::Body(BodyMsg::Load { id, key, load }) => {
                self.answer_later(
                    from,
                    async move |home: Arc<dyn HomeService>| {
                        answer_of(id, home.load(key, LoadRequest(load)).await)
                    },
                    answer_of(id, Err(ClusterError::Unavailable("node not serving HTTP".into()))),
                );
                true
            }
            Payload::Body(BodyMsg::Purge { id, key }) => {
                self.answer_later(
                    from,
                    async move |home: Arc<dyn HomeService>| BodyMsg::Purged {
                        id,
                        done: home.purge(key).await,
                    },
                    BodyMsg::Purged { id, done: false },
                );
                true
            }
            Payload::Body(answer) => {
                if let Some(waiter) = lock(&self.waiting).remove(&answer.id()) {
                    let _ = waiter.send(answer);
                }
                true
            }
            // The codec refuses a second hello or proof; nothing to do if one slipped through.
            Payload::Hello(_) | Payload::Proof(_) => false,
        }
    }
}

/// A home's [`Fetch`] as the answer to [`BodyMsg::Load`] `id`. Hops and level are the
/// asker's business; an `Unavailable` home answers 502 like a failed origin.
fn answer_of(id: u64, fetch: Fetch) -> BodyMsg {
    match fetch {
        Ok(f) => BodyMsg::Loaded { id, body: f.object, cacheable: f.cacheable },
        Err(ClusterError::Origin { status, message }) => {
            BodyMsg::LoadFailed { id, status, message }
        }
        Err(ClusterError::Pass) => BodyMsg::Pass { id },
        Err(ClusterError::Unavailable(message)) => BodyMsg::LoadFailed { id, status: 502, message },
    }
}

/// The [`Fetch`] an answer to [`BodyMsg::Load`] stands for (0 hops, no level); `None` for
/// any other message.
fn fetch_of(answer: BodyMsg) -> Option<Fetch> {
    Some(match answer {
        BodyMsg::Loaded { body, cacheable, .. } => {
            Ok(Fetched { object: body, hops: 0, level: None, cacheable, hash: None })
        }
        BodyMsg::LoadFailed { status, message, .. } => {
            Err(ClusterError::Origin { status, message })
        }
        BodyMsg::Pass { .. } => Err(ClusterError::Pass),
        _ => return None,
    })
}
