//! The driver: the one task that owns a node's protocol core.
//!
//! Every input (a message from the transport, the core's timer, a command) is fed to the core
//! and followed at once by draining every output: transmits go to the transport, events to
//! the log, and a fresh [`RingSnapshot`] is published for readers that must never wait for
//! the core (admin, and later the HTTP path). The core's own request timeouts turn silence
//! into misses and answers into RTT samples; the driver only times round trips for metrics.

use super::metrics::{KindLabel, Metrics};
use super::snapshot::{OpsTracker, RingSnapshot};
use super::transport::{Inbound, Transport};
use arc_swap::ArcSwap;
use beehive_replication::{Event, Id, Message, Node, Time};
use std::collections::HashMap;
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
}

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
    /// ops: the operator fields of snapshots (peers, top objects, store totals).
    ops: OpsTracker,
}

/// What the rest of the node keeps of a running driver.
#[derive(Debug)]
pub struct DriverHandle {
    /// The routing state as of the last input, for readers that must not wait.
    pub snapshot: Arc<ArcSwap<RingSnapshot>>,
    pub commands: mpsc::Sender<Command>,
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
        info: DriverInfo,
    ) -> DriverHandle {
        let first = RingSnapshot::capture(&core, info.expects_peers, info.mode, info.target_hops);
        let snapshot = Arc::new(ArcSwap::from_pointee(first));
        let (commands, command_rx) = mpsc::channel(4);
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
            ops: OpsTracker::default(), // ops
        };
        driver.drain();
        let task = tokio::spawn(driver.run());
        DriverHandle { snapshot, commands, task }
    }

    fn now(&self) -> Time {
        Instant::now().saturating_duration_since(self.epoch)
    }

    /// Runs until the node has left (after [`Command::Leave`]) or every input is gone.
    async fn run(mut self) {
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
                command = self.commands.recv() => match command {
                    Some(Command::Leave { bound, done }) => {
                        let now = self.now();
                        self.core.leave(now);
                        self.leaving = Some((Instant::now() + bound, done));
                    }
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

    fn on_message(&mut self, Inbound { from, msg }: Inbound) {
        if let Message::Response { id, .. } = &msg {
            if let Some((sent, kind)) = self.inflight.remove(&(from.id, *id)) {
                let rtt = sent.elapsed().as_secs_f64();
                self.metrics.rpc_latency.get_or_create(&KindLabel { kind }).observe(rtt);
            }
        }
        self.metrics.observe_inbound(&msg); // ops
        let kind = msg.kind();
        let now = self.now();
        if let Err(e) = self.core.handle_message(now, from, msg) {
            self.metrics.refused_messages.get_or_create(&KindLabel { kind }).inc();
            tracing::trace!(peer = ?from, error = %e, "message refused by the core");
        }
    }

    /// Drains every output of the core, then publishes the routing snapshot.
    fn drain(&mut self) {
        while let Some(t) = self.core.poll_transmit() {
            self.metrics.observe_transmit(&t.message); // ops
            if let Message::Request { id, .. } = &t.message {
                let kind = t.message.kind();
                self.inflight.insert((t.to.id, *id), (Instant::now(), kind));
            }
            self.transport.send_message(t.to, t.message);
        }
        while let Some(event) = self.core.poll_event() {
            self.metrics.observe_event(&event); // ops
            match event {
                Event::Joined { successor } => tracing::info!(?successor, "joined the ring"),
                Event::JoinFailed => tracing::warn!("no seed answered the join; retrying"),
                Event::PredecessorChanged { old, new } => {
                    tracing::info!(?old, ?new, "predecessor changed")
                }
                Event::LookupDone { .. } | Event::LookupFailed { .. } => {}
                // Bodies come with the HTTP face: until a node stores objects there is nothing
                // to fetch, and a fetch asked for now fails so a later offer may retry.
                Event::FetchBody { offer, .. } => self.core.fetch_failed(offer.key),
                Event::NeedObject { .. } | Event::Evict { .. } => {}
            }
        }
        if self.inflight.len() > 4096 {
            self.inflight.retain(|_, (sent, _)| sent.elapsed() < INFLIGHT_MAX_AGE);
        }
        let mut snap = RingSnapshot::capture(
            &self.core,
            self.info.expects_peers,
            self.info.mode,
            self.info.target_hops,
        );
        self.metrics.ring_size_estimate.set(snap.ring_size_estimate.min(i64::MAX as u64) as i64);
        // ops: operator fields (peers, top objects, store totals) and the gauges they feed.
        let now = self.now();
        self.ops.fill(&mut snap, &self.core, now);
        self.metrics.observe_snapshot(&snap);
        // ops: end.
        self.snapshot.store(Arc::new(snap));
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}
