//! The home's side of the successor copies ([`super::copies`]): a task that lists this node's
//! home objects to its first successor every [`SYNC_EVERY`] (and at once when the successor
//! changes), pushes the bodies the successor lacks, and, on the first sync after the node
//! started, pulls back the copies its successor holds of its arc.

use super::driver::Command;
use super::metrics::Metrics;
use super::snapshot::RingSnapshot;
use super::store::{BodyStore, StoredObject};
use super::transport::Transport;
use arc_swap::ArcSwap;
use beehive_replication::{Id, Peer};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// How often a home lists its objects to its successor.
pub const SYNC_EVERY: Duration = Duration::from_secs(1);
/// How often the task looks for a successor change or a first join.
const TICK: Duration = Duration::from_millis(100);
/// Bound on one sync, one pushed copy or one pulled copy.
const WAIT: Duration = Duration::from_secs(2);

/// The keys (with hashes) of the home objects in `store`: those in `(predecessor, me]`.
/// Without a known predecessor the arc is unknown and nothing is listed.
pub fn home_keys(store: &dyn BodyStore, snap: &RingSnapshot, me: Id) -> Vec<(Id, [u8; 32])> {
    let Some(pred) = snap.predecessor_peer else { return Vec::new() };
    store
        .list()
        .into_iter()
        .filter(|(k, _, _)| k.in_open_closed(pred.id, me))
        .map(|(k, _, h)| (k, h))
        .collect()
}

/// What the task works with.
#[derive(Debug, Clone)]
pub struct CopyKeeper {
    pub transport: Transport,
    pub store: Arc<dyn BodyStore>,
    pub snapshot: Arc<ArcSwap<RingSnapshot>>,
    pub commands: mpsc::Sender<Command>,
    pub metrics: Arc<Metrics>,
}

impl CopyKeeper {
    pub fn spawn(self) -> JoinHandle<()> {
        tokio::spawn(self.run())
    }

    async fn run(self) {
        let me = self.transport.me();
        // Until a first sync succeeds this node has just started: its successor may hold
        // copies of its arc from before a restart.
        let mut fresh = true;
        let mut last: Option<(Id, Instant)> = None;
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let (copies, bytes) = self.transport.copies().totals();
            self.metrics.copies_held.set(copies as i64);
            self.metrics.copy_bytes_held.set(bytes as i64);
            let snap = self.snapshot.load_full();
            let Some(succ) =
                snap.successor_peer.filter(|s| snap.joined && !snap.left && s.id != me.id)
            else {
                continue;
            };
            let due = last.is_none_or(|(id, at)| id != succ.id || at.elapsed() >= SYNC_EVERY);
            if !due || (snap.predecessor_peer.is_none() && !fresh) {
                continue;
            }
            last = Some((succ.id, Instant::now()));
            if let Some(pred) = snap.predecessor_peer {
                self.take_on(pred, me.id).await;
            }
            let keys = home_keys(self.store.as_ref(), &snap, me.id);
            let answer = match self.transport.sync_copies(succ, fresh, keys, WAIT).await {
                Ok(answer) => answer,
                Err(e) => {
                    tracing::debug!(peer = ?succ, error = %e, "copy sync failed");
                    continue;
                }
            };
            if fresh {
                fresh = false;
                self.reclaim(succ, answer.extra).await;
            }
            self.push(succ, answer.lacking).await;
        }
    }

    /// Takes on as home objects the copies held in our arc `(pred, me]`: bodies handed to us
    /// before we were their home, when the predecessor change that also does this was seen
    /// before they arrived.
    async fn take_on(&self, pred: Peer, me: Id) {
        let mine = self.transport.copies().take(|k| k.in_open_closed(pred.id, me));
        for (key, object) in mine {
            self.keep_home(key, object).await;
        }
    }

    /// Stores `object` as a home object and tells the core, which otherwise would not count
    /// it as ours and the next local hit would drop it.
    async fn keep_home(&self, key: Id, object: StoredObject) {
        let (hash, size) = (object.hash, object.body.len() as u64);
        self.store.put(key, object);
        let _ = self.commands.send(Command::PutHome { key, hash, size }).await;
    }

    /// Gives `succ` the copies it lacks.
    async fn push(&self, succ: Peer, lacking: Vec<Id>) {
        for key in lacking {
            let Some(object) = self.store.get(key) else { continue };
            let len = object.body.len() as u64;
            match self.transport.copy_body(succ, key, object.body, WAIT).await {
                Ok(true) => {
                    self.metrics.copies_sent.inc();
                    self.metrics.copy_bytes_sent.inc_by(len);
                }
                Ok(false) => {
                    tracing::debug!(?key, peer = ?succ, "successor copy refused (its budget)");
                    return;
                }
                Err(e) => {
                    tracing::debug!(?key, peer = ?succ, error = %e, "successor copy failed");
                    return;
                }
            }
        }
    }

    /// Takes back, as home objects, the copies `succ` held of this node's arc from before it
    /// (re)started.
    async fn reclaim(&self, succ: Peer, extra: Vec<(Id, [u8; 32])>) {
        let mut taken = 0u64;
        for (key, hash) in extra {
            if self.store.get(key).is_some() {
                continue;
            }
            let copy = self.transport.fetch_copy(succ, key, Some(&hash), WAIT).await;
            let Ok(body) = copy else { continue };
            self.keep_home(key, StoredObject { body, hash }).await;
            taken += 1;
        }
        if taken > 0 {
            tracing::info!(objects = taken, peer = ?succ, "took back the arc from the successor's copies");
        }
    }
}
