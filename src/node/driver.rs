//! The driver: the one task that owns a node's protocol core.
//!
//! Every input (a message from the transport, the core's timer, a command) is fed to the core
//! and followed at once by draining every output: transmits go to the transport, events to
//! the log, and a fresh [`RingSnapshot`] is published for readers that must never wait for
//! the core (the admin listener and the dashboard). The core's own request timeouts turn silence
//! into misses and answers into RTT samples; the driver only times round trips for metrics.

use super::handoff::hand_over;
use super::metrics::{KindLabel, Metrics};
use super::snapshot::{OpsTracker, RingSnapshot};
use super::store::{BodyStore, StoredObject};
use super::transport::{Inbound, Transport};
use crate::rpc::BodyMsg;
use arc_swap::ArcSwap;
use beehive_replication::beehive::wire::Offer;
use beehive_replication::node::ObjectAnswer;
use beehive_replication::{Event, Id, LookupId, Message, Node, Peer, Time};
use bytes::Bytes;
use dashmap::DashMap;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// Most inbound messages handled before outputs are drained and a snapshot published.
const BATCH: usize = 64;
/// Round trips older than this are forgotten (the core has long counted them as misses).
const INFLIGHT_MAX_AGE: Duration = Duration::from_secs(30);

/// Something asked of the driver from outside.
#[derive(Debug)]
pub enum Command {
    /// Leave the ring; `done` fires once the leave notices are out and answered or timed out
    /// (or after `bound`), and the driver stops.
    Leave { bound: Duration, done: oneshot::Sender<()> },
    /// An object lookup ([`Node::fetch`]): any holder of a copy answers.
    Fetch { key: Id, reply: oneshot::Sender<Found> },
    /// A plain lookup: who is `key`'s home.
    Lookup { key: Id, reply: oneshot::Sender<Found> },
    /// This node (the home) loaded `key` from its origin and stored it.
    PutHome { key: Id, hash: [u8; 32], size: u64 },
    /// Purge `key` here, as its home; the reply is `false` if we are not the home.
    Purge { key: Id, reply: oneshot::Sender<bool> },
    /// A replica body asked for by [`Event::FetchBody`], verified against its hash; it goes
    /// into the store only if the core still wants it, so the store never holds a copy the
    /// core does not know of.
    ReplicaStored { from: Peer, offer: Offer, body: Bytes },
    /// A replica body could not be fetched.
    FetchFailed { key: Id },
    /// `from` asked us directly, as `key`'s home (`BodyMsg::Get` `id`): the core answers and
    /// counts it as the `FindNext` it stands for, and the body goes with the answer.
    ServeAsHome { from: Peer, id: u64, key: Id },
}

/// How a lookup ended.
#[derive(Debug, Clone, Copy)]
pub enum Found {
    /// `holder` answered after `hops` hops: the home, or (for an object lookup) a node with a
    /// copy; `served` is what it holds (object lookups only).
    At { holder: Peer, hops: u32, served: Option<ObjectAnswer> },
    /// The lookup ran out of candidates.
    Failed { hops: u32 },
}

/// Least time between two published snapshots.
const PUBLISH_GAP: Duration = Duration::from_millis(20);
/// How often the local hits counted by the HTTP face reach the core.
const HIT_DRAIN: Duration = Duration::from_millis(20);
/// How long a replica body fetch may take.
const BODY_WAIT: Duration = Duration::from_secs(5);
/// Bound on handing a new predecessor the home objects of its arc.
const HANDOVER_BOUND: Duration = Duration::from_secs(30);

/// The driver's view of its node's configuration, for snapshots.
#[derive(Debug, Clone)]
pub struct DriverInfo {
    pub expects_peers: bool,
    pub mode: &'static str,
    pub target_hops: f64,
}

#[derive(Debug)]
pub struct Driver {
    core: Node,
    epoch: Instant,
    transport: Transport,
    inbound: mpsc::Receiver<Inbound>,
    commands: mpsc::Receiver<Command>,
    snapshot: Arc<ArcSwap<RingSnapshot>>,
    metrics: Arc<Metrics>,
    info: DriverInfo,
    /// (peer, request id) → when it was sent and its kind, for `rpc_latency_seconds`.
    inflight: HashMap<(Id, u64), (Instant, &'static str)>,
    leaving: Option<(Instant, oneshot::Sender<()>)>,
    /// Callers waiting for lookups.
    waiting: HashMap<LookupId, oneshot::Sender<Found>>,
    /// Keys served from the local store (HTTP hits), to count.
    served: HitCounts,
    /// Object lookups made outside the core (direct requests to our successor), to count.
    direct: DirectLookups,
    /// Our own command queue, for body-fetch tasks to report back.
    own: mpsc::Sender<Command>,
    store: Arc<dyn BodyStore>,
    /// The operator fields of snapshots (peers, top objects, store totals).
    ops: OpsTracker,
    /// When the last snapshot was published.
    published: Instant,
}

/// Local hits per key, counted by the HTTP face and drained by the driver every
/// [`HIT_DRAIN`]: a hit costs a shared-lock map read and an atomic add, not a channel send.
#[derive(Debug, Clone, Default)]
pub struct HitCounts(Arc<DashMap<Id, AtomicU32>>);

impl HitCounts {
    /// Counts one hit of `key`.
    pub fn count(&self, key: Id) {
        if let Some(n) = self.0.get(&key) {
            n.fetch_add(1, Ordering::Relaxed);
            return;
        }
        self.0.entry(key).or_default().fetch_add(1, Ordering::Relaxed);
    }

    /// Takes every count, leaving none.
    fn drain(&self) -> Vec<(Id, u32)> {
        let mut taken = Vec::with_capacity(self.0.len());
        self.0.retain(|key, n| {
            taken.push((*key, n.load(Ordering::Relaxed)));
            false
        });
        taken
    }
}

/// Most direct lookups kept between two drains; beyond it (a driver stalled for long) they
/// go uncounted rather than piling up.
const DIRECT_MAX: usize = 1 << 16;

/// Object lookups the HTTP face made outside the core (a direct request to the successor
/// home, [`crate::rpc::BodyMsg::Get`]), with the answer, drained by the driver every
/// [`HIT_DRAIN`] into [`Node::fetched_from`]: a request costs a short lock, not a channel
/// send and a driver wake-up.
#[derive(Debug, Clone, Default)]
pub struct DirectLookups(Arc<std::sync::Mutex<Vec<(Id, Peer, ObjectAnswer)>>>);

impl DirectLookups {
    /// Records that `holder` answered `found` for `key`.
    pub fn record(&self, key: Id, holder: Peer, found: ObjectAnswer) {
        let mut list = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if list.len() < DIRECT_MAX {
            list.push((key, holder, found));
        }
    }

    fn drain(&self) -> Vec<(Id, Peer, ObjectAnswer)> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hits_are_counted_per_key_and_drained_once() {
        let hits = HitCounts::default();
        for _ in 0..3 {
            hits.count(Id(1));
        }
        hits.clone().count(Id(2));
        let mut drained = hits.drain();
        drained.sort();
        assert_eq!(drained, vec![(Id(1), 3), (Id(2), 1)]);
        assert!(hits.drain().is_empty());
    }
}

/// What the rest of the node keeps of a running driver.
#[derive(Debug)]
pub struct DriverHandle {
    /// The routing state as of the last input, for readers that must not wait.
    pub snapshot: Arc<ArcSwap<RingSnapshot>>,
    pub commands: mpsc::Sender<Command>,
    /// Local hits to count ([`Node::served_locally`]).
    pub served: HitCounts,
    /// Direct lookups to count ([`Node::fetched_from`]).
    pub direct: DirectLookups,
    pub task: JoinHandle<()>,
}

impl Driver {
    /// Spawns the driver task for `core`, whose `Time` zero is now. Publishes a first
    /// snapshot before returning.
    pub fn spawn(
        core: Node,
        transport: Transport,
        inbound: mpsc::Receiver<Inbound>,
        metrics: Arc<Metrics>,
        store: Arc<dyn BodyStore>,
        info: DriverInfo,
    ) -> DriverHandle {
        let first = RingSnapshot::capture(&core, info.expects_peers, info.mode, info.target_hops);
        let snapshot = Arc::new(ArcSwap::from_pointee(first));
        let (commands, command_rx) = mpsc::channel(1024);
        let served = HitCounts::default();
        let direct = DirectLookups::default();
        let mut driver = Driver {
            core,
            epoch: Instant::now(),
            transport,
            inbound,
            commands: command_rx,
            snapshot: snapshot.clone(),
            metrics,
            info,
            inflight: HashMap::new(),
            leaving: None,
            waiting: HashMap::new(),
            served: served.clone(),
            direct: direct.clone(),
            own: commands.clone(),
            store,
            ops: OpsTracker::default(),
            published: Instant::now() - PUBLISH_GAP,
        };
        driver.drain();
        let task = tokio::spawn(driver.run());
        DriverHandle { snapshot, commands, served, direct, task }
    }

    fn now(&self) -> Time {
        Instant::now().saturating_duration_since(self.epoch)
    }

    /// Runs until the node has left (after [`Command::Leave`]) or the transport is gone; the
    /// node aborts the task otherwise.
    async fn run(mut self) {
        let mut hit_drain = tokio::time::interval(HIT_DRAIN);
        hit_drain.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let deadline = self.core.poll_timeout().map(|t| self.epoch + t);
            tokio::select! {
                inbound = self.inbound.recv() => {
                    let Some(first) = inbound else { break };
                    self.on_message(first);
                    for _ in 1..BATCH {
                        let Ok(more) = self.inbound.try_recv() else { break };
                        self.on_message(more);
                    }
                }
                _ = sleep_until(deadline), if deadline.is_some() => {
                    let now = self.now();
                    self.core.handle_timeout(now);
                }
                _ = hit_drain.tick() => {
                    let now = self.now();
                    for (key, hits) in self.served.drain() {
                        self.served_locally(now, key, hits);
                    }
                    for (key, holder, found) in self.direct.drain() {
                        self.core.fetched_from(now, key, holder, found);
                    }
                }
                command = self.commands.recv() => match command {
                    Some(command) => self.on_command(command),
                    None => break,
                },
            }
            self.drain();
            if let Some((deadline, _)) = &self.leaving {
                if self.core.outstanding_requests() == 0 || Instant::now() >= *deadline {
                    if let Some((_, done)) = self.leaving.take() {
                        let _ = done.send(());
                    }
                    break;
                }
            }
        }
    }

    fn on_command(&mut self, command: Command) {
        let now = self.now();
        match command {
            Command::Leave { bound, done } => {
                self.core.leave(now);
                self.leaving = Some((Instant::now() + bound, done));
            }
            Command::Fetch { key, reply } => {
                let id = self.core.fetch(now, key);
                self.waiting.insert(id, reply);
            }
            Command::Lookup { key, reply } => {
                let id = self.core.lookup(now, key);
                self.waiting.insert(id, reply);
            }
            Command::PutHome { key, hash, size } => {
                self.core.put_home(now, key, hash, size);
            }
            Command::Purge { key, reply } => {
                let done = self.core.purge(now, key);
                if done {
                    self.store.remove(key);
                }
                let _ = reply.send(done);
            }
            Command::ReplicaStored { from, offer, body } => {
                if self.core.replica_stored(now, from, offer) {
                    self.store.put(offer.key, StoredObject { body, hash: offer.info.hash });
                }
            }
            Command::FetchFailed { key } => self.core.fetch_failed(key),
            Command::ServeAsHome { from, id, key } => {
                let answer = match self.core.serve_as_home(now, key) {
                    Some(found) => {
                        // A body the core knows but the store no longer holds (evicted) is
                        // answered as not loaded yet: the asker loads it from us.
                        let body = found.object.and_then(|info| {
                            self.store.get(key).filter(|o| o.hash == info.hash).map(|o| o.body)
                        });
                        let object = body.as_ref().and(found.object);
                        let body = body.unwrap_or_default();
                        BodyMsg::Served { id, level: found.level, object, body }
                    }
                    None => BodyMsg::Missing { id },
                };
                self.transport.answer(from, answer);
            }
        }
    }

    /// Counts `hits` local hits of `key`; a body the core no longer holds here is dropped
    /// from the store (the core keeps a home's own bodies, which the loader stores before the
    /// core hears of them).
    fn served_locally(&mut self, now: Time, key: Id, hits: u32) {
        for _ in 0..hits {
            if !self.core.served_locally(now, key) {
                self.store.remove(key);
                return;
            }
            self.metrics.observe_local_hit();
        }
    }

    /// A new predecessor between the old one and us took the arc `(old, new]`: the home objects
    /// we hold there are its now, handed over in a task of its own.
    fn hand_over_to_newcomer(&self, old: Option<Peer>, new: Option<Peer>) {
        let (Some(old), Some(new)) = (old, new) else { return };
        let me = self.transport.me().id;
        if !new.id.in_open(old.id, me) {
            return;
        }
        let (transport, store, metrics) =
            (self.transport.clone(), self.store.clone(), self.metrics.clone());
        tokio::spawn(async move {
            let moves = |key: Id| key.in_open_closed(old.id, new.id);
            let n =
                hand_over(&transport, store.as_ref(), new, moves, &metrics, HANDOVER_BOUND).await;
            if n > 0 {
                tracing::info!(objects = n, peer = ?new, "handed the new predecessor its arc");
            }
        });
    }

    /// Our arc is now `(new, me]`: the successor copies we hold there (their home died or
    /// left, and we took its arc) are our home objects; taken out of the copies here.
    fn copies_in_arc(&self, new: Option<Peer>) -> Vec<(Id, StoredObject)> {
        let Some(new) = new else { return Vec::new() };
        let me = self.transport.me().id;
        self.transport.copies().take(|key| key.in_open_closed(new.id, me))
    }

    /// Fetches a replica body in a task of its own and reports back as a command.
    fn fetch_replica(&self, from: Peer, offer: Offer) {
        let transport = self.transport.clone();
        let own = self.own.clone();
        tokio::spawn(async move {
            let key = offer.key;
            let command = match transport.fetch_body(from, key, offer.info.hash, BODY_WAIT).await {
                Ok(body) => Command::ReplicaStored { from, offer, body },
                Err(e) => {
                    tracing::debug!(?key, peer = ?from, error = %e, "replica fetch failed");
                    Command::FetchFailed { key }
                }
            };
            let _ = own.send(command).await;
        });
    }

    fn on_message(&mut self, Inbound { from, msg }: Inbound) {
        if let Message::Response { id, .. } = &msg {
            if let Some((sent, kind)) = self.inflight.remove(&(from.id, *id)) {
                let rtt = sent.elapsed().as_secs_f64();
                self.metrics.rpc_latency.get_or_create(&KindLabel { kind }).observe(rtt);
            }
        }
        self.metrics.observe_inbound(&msg);
        let kind = msg.kind();
        let now = self.now();
        if let Err(e) = self.core.handle_message(now, from, msg) {
            self.metrics.refused_messages.get_or_create(&KindLabel { kind }).inc();
            tracing::trace!(peer = ?from, error = %e, "message refused by the core");
        }
    }

    /// Drains every output of the core, then publishes the routing snapshot.
    fn drain(&mut self) {
        // Copies taken on at a predecessor change are told to the core here, and what that
        // produces is drained in turn.
        while self.drain_once() {}
        self.publish();
    }

    /// Drains the core's transmits and events once; `true` if copies were taken on, so
    /// there may be more.
    fn drain_once(&mut self) -> bool {
        let mut adopted = Vec::new();
        while let Some(t) = self.core.poll_transmit() {
            self.metrics.observe_transmit(&t.message);
            if let Message::Request { id, .. } = &t.message {
                let kind = t.message.kind();
                self.inflight.insert((t.to.id, *id), (Instant::now(), kind));
            }
            self.transport.send_message(t.to, t.message);
        }
        while let Some(event) = self.core.poll_event() {
            self.metrics.observe_event(&event);
            match event {
                Event::Joined { successor } => tracing::info!(?successor, "joined the ring"),
                Event::JoinFailed => tracing::warn!("no seed answered the join; retrying"),
                Event::PredecessorChanged { old, new } => {
                    tracing::info!(?old, ?new, "predecessor changed");
                    self.hand_over_to_newcomer(old, new);
                    adopted.extend(self.copies_in_arc(new));
                }
                Event::LookupDone { id, home, hops, served, .. } => {
                    if let Some(reply) = self.waiting.remove(&id) {
                        let _ = reply.send(Found::At { holder: home, hops, served });
                    }
                }
                Event::LookupFailed { id, hops, .. } => {
                    if let Some(reply) = self.waiting.remove(&id) {
                        let _ = reply.send(Found::Failed { hops });
                    }
                }
                Event::FetchBody { from, offer } => self.fetch_replica(from, offer),
                // Home objects are loaded lazily: the next request carries what the origin
                // fetch needs (the core cannot name an origin URL from a ring id).
                Event::NeedObject { .. } => {}
                Event::Evict { key } => self.store.remove(key),
            }
        }
        if adopted.is_empty() {
            return false;
        }
        tracing::info!(objects = adopted.len(), "took on the copies of a dead predecessor's arc");
        let now = self.now();
        for (key, object) in adopted {
            let (hash, size) = (object.hash, object.body.len() as u64);
            self.store.put(key, object);
            self.core.put_home(now, key, hash, size);
        }
        true
    }

    /// Publishes the routing snapshot (at most every [`PUBLISH_GAP`]).
    fn publish(&mut self) {
        if self.inflight.len() > 4096 {
            self.inflight.retain(|_, (sent, _)| sent.elapsed() < INFLIGHT_MAX_AGE);
        }
        // Under load inputs arrive by the thousand per second; readers need a view that is
        // recent, not one per input. The core's timers are inputs too, so the published
        // view is never older than the gap or the next timer.
        if self.published.elapsed() < PUBLISH_GAP {
            return;
        }
        self.published = Instant::now();
        let mut snap = RingSnapshot::capture(
            &self.core,
            self.info.expects_peers,
            self.info.mode,
            self.info.target_hops,
        );
        self.metrics.ring_size_estimate.set(snap.ring_size_estimate.min(i64::MAX as u64) as i64);
        // Operator fields (peers, top objects, store totals) and the gauges they feed.
        let now = self.now();
        self.ops.fill(&mut snap, &self.core, now);
        self.metrics.observe_snapshot(&snap);
        self.snapshot.store(Arc::new(snap));
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}
