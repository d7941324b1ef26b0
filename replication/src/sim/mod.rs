//! The deterministic simulator: many [`Node`]s on a virtual clock, one seeded RNG.
//!
//! The simulator is the second caller of the core (the tokio driver is the first): it feeds
//! each node its messages and timeouts exactly as the live runtime does, and drains its
//! outputs into an event queue ordered by (virtual time, sequence number). Every random choice
//! — latency jitter, loss, which node looks up which key, who churns — comes from one
//! `ChaCha8Rng` seeded from [`SimConfig::seed`], and nothing iterates a hash map in an order
//! that reaches the output, so a seed replays a run bit for bit. The blake3 of the event log
//! ([`Sim::event_log_hash`]) is the proof.
//!
//! [`run`] is the standard scenario behind `beehive sim`; tests drive [`Sim`] directly.
//!
//! Why one file of this size: the event loop (`process`, `drain`, `transmit`, `on_event`) and
//! the scenario controls (adding, crashing and partitioning nodes, lookups, churn, object
//! changes) all act on one event queue and one RNG, and the order in which they draw from it
//! is what makes a seed replay; splitting them would spread that order over several files.
//! What does not touch the queue or the RNG has its own module: the network, the catalogue,
//! the oracle, the reports, the scenario and the configuration.

mod config;
mod network;
mod objects;
mod oracle;
mod report;
mod scenario;
mod wire_size;

pub use config::{Churn, Latency, SimConfig};
pub use objects::Catalog;
pub use oracle::{RingCheck, Truth};
use report::FillLedger;
pub use report::{
    FillCauses, IntervalReport, LookupTotals, ReplicationStats, Report, MAX_HOP_BUCKET,
};
pub use scenario::{run, Progress};

use crate::beehive::wire::Offer;
use crate::hash::FastMap;
use crate::id::{Id, ID_BITS};
use crate::lookup::LookupId;
use crate::message::Message;
use crate::node::{Event, Node};
use crate::peer::Peer;
use crate::time::Time;
use network::Network;
use objects::{Body, Origin};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::cmp::{Ordering, Reverse};
use std::collections::{BTreeMap, BinaryHeap, HashMap};
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

/// Bytes a frame adds around a payload on the wire (length prefix, version, kind, sequence
/// number, request id, MAC), counted so the simulator's byte figures match the live
/// transport's. The `beehive` crate's RPC codec tests that its layout agrees.
pub const FRAME_OVERHEAD: usize = 4 + 1 + 1 + 8 + 8 + 32;

/// Bytes of event log gathered before they are hashed.
const LOG_CHUNK: usize = 64 * 1024;
/// Seeds a starting node is given (distinct live members, fewer in a smaller ring).
const JOIN_SEEDS: usize = 3;

#[derive(Debug)]
enum Ev {
    /// Small on purpose: the queue moves entries on every push and pop.
    Deliver {
        to: u32,
        from: u32,
        msg: Box<Message>,
    },
    Wake {
        node: u32,
        incarnation: u32,
    },
    Lookup,
    Churn,
    /// A body transfer ends at `node`.
    Fetched(Box<Fetch>),
}

#[derive(Debug)]
struct Fetch {
    node: u32,
    incarnation: u32,
    from: u32,
    offer: Offer,
}

/// An event and its place in the queue: (virtual time in ns, sequence number) packed into
/// one integer, so that ordering the heap is one comparison.
#[derive(Debug)]
struct Queued {
    order: u128,
    ev: Ev,
}

impl Queued {
    fn new(at: Time, seq: u64, ev: Ev) -> Self {
        let ns = u64::try_from(at.as_nanos()).unwrap_or(u64::MAX);
        Queued { order: (u128::from(ns) << 64) | u128::from(seq), ev }
    }

    fn at(&self) -> Time {
        Duration::from_nanos((self.order >> 64) as u64)
    }
}

impl PartialEq for Queued {
    fn eq(&self, o: &Self) -> bool {
        self.order == o.order
    }
}
impl Eq for Queued {}
impl PartialOrd for Queued {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Queued {
    fn cmp(&self, o: &Self) -> Ordering {
        self.order.cmp(&o.order)
    }
}

#[derive(Debug)]
struct SimNode {
    peer: Peer,
    /// `None` while crashed.
    node: Option<Node>,
    incarnation: u32,
    wake_at: Option<Time>,
}

/// Counters for the interval in progress.
#[derive(Debug, Default)]
struct IntervalCounters {
    lookups: LookupTotals,
    messages: u64,
    bytes: u64,
    per_node: Vec<u64>,
    /// Replication figures; the per-node ones are filled in when the interval closes.
    rep: ReplicationStats,
    control_messages: u64,
    control_bytes: u64,
}

/// A simulated ring. See the module docs.
#[derive(Debug)]
pub struct Sim {
    now: Time,
    seq: u64,
    queue: BinaryHeap<Reverse<Queued>>,
    rng: ChaCha8Rng,
    chord: crate::config::ChordConfig,
    net: Network,
    nodes: Vec<SimNode>,
    by_addr: FastMap<SocketAddr, usize>,
    truth: Option<Truth>,
    /// Live, joined node indices; rebuilt with `truth` when membership changes.
    joined: Option<Vec<usize>>,
    lookups: FastMap<(usize, LookupId), (Id, Time)>,
    lookup_rate: f64,
    lookup_scheduled: bool,
    churn: Option<Churn>,
    churn_scheduled: bool,
    log: blake3::Hasher,
    /// Log bytes not yet hashed: blake3 of a stream is the same however it is fed, and
    /// feeding it in large pieces costs a fraction of one call per message.
    log_buf: Vec<u8>,
    events_processed: u64,
    counters: IntervalCounters,
    /// Each node's past fills, to tell why it fetches a body.
    fills: FillLedger,
    by_kind: BTreeMap<&'static str, u64>,
    origin: Option<Origin>,
    key_index: FastMap<Id, usize>,
    /// Object index → when its content last changed, for the purge invariant.
    changed_at: FastMap<usize, Time>,
    /// How long after a change an old body may still be served.
    stale_bound: Duration,
    /// Nodes that serve corrupt bodies (their transfers fail verification).
    corrupt: Vec<bool>,
}

impl Sim {
    /// An empty network; add nodes with [`Sim::add_node`].
    pub fn new(cfg: &SimConfig) -> Self {
        Sim {
            now: Duration::ZERO,
            seq: 0,
            queue: BinaryHeap::new(),
            rng: ChaCha8Rng::seed_from_u64(cfg.seed),
            chord: cfg.chord.clone(),
            net: Network::new(cfg.latency, cfg.loss),
            nodes: Vec::new(),
            by_addr: FastMap::default(),
            truth: None,
            joined: None,
            lookups: FastMap::default(),
            lookup_rate: 0.0,
            lookup_scheduled: false,
            churn: None,
            churn_scheduled: false,
            log: blake3::Hasher::new(),
            log_buf: Vec::with_capacity(LOG_CHUNK),
            events_processed: 0,
            counters: IntervalCounters::default(),
            fills: FillLedger::default(),
            by_kind: BTreeMap::new(),
            origin: None,
            key_index: FastMap::default(),
            changed_at: FastMap::default(),
            stale_bound: Duration::from_secs(5),
            corrupt: Vec::new(),
        }
    }

    // ------------------------------------------------------------ objects

    /// Gives the simulation an origin with `catalog`'s objects: the lookup workload then asks
    /// for objects (Zipf) with [`Node::fetch`] instead of random keys.
    pub fn set_catalog(&mut self, catalog: &Catalog) -> Result<(), String> {
        let origin = Origin::new(catalog)?;
        self.key_index = (0..origin.len()).map(|i| (origin.key(i), i)).collect();
        self.origin = Some(origin);
        Ok(())
    }

    /// The key of catalog object `index`.
    pub fn object_key(&self, index: usize) -> Option<Id> {
        self.origin.as_ref().filter(|o| index < o.len()).map(|o| o.key(index))
    }

    /// The catalog index of the object of popularity `rank` (1-based) right now.
    pub fn object_of_rank(&self, rank: usize) -> Option<usize> {
        self.origin.as_ref().map(|o| o.index_of_rank(rank))
    }

    /// Reverses the popularity order: the least popular object becomes the most popular.
    pub fn reverse_popularity(&mut self) {
        if let Some(o) = self.origin.as_mut() {
            o.reverse();
        }
    }

    /// A shift of the top ranks: the `s` most popular objects trade places with the next `s`.
    pub fn swap_top_ranks(&mut self, s: usize) {
        if let Some(o) = self.origin.as_mut() {
            o.swap_top(s);
        }
    }

    /// Changes the Zipf α of the requests from now on.
    pub fn set_alpha(&mut self, alpha: f64) -> Result<(), String> {
        match self.origin.as_mut() {
            Some(o) => o.set_alpha(alpha),
            None => Err("no catalog".into()),
        }
    }

    /// How long after [`Sim::change_object`] a node may still serve the old body without it
    /// counting as stale.
    pub fn set_stale_bound(&mut self, bound: Duration) {
        self.stale_bound = bound;
    }

    /// Changes object `index` at the origin and tells its home, which bumps the version and
    /// invalidates every copy. Returns the home's index, if the object has one.
    pub fn change_object(&mut self, index: usize) -> Option<usize> {
        let now = self.now;
        let origin = self.origin.as_mut()?;
        let hash = origin.change(index);
        let (key, size) = (origin.key(index), origin.size());
        self.changed_at.insert(index, now);
        let i = self.home_index(key)?;
        let node = self.nodes[i].node.as_mut()?;
        node.put_home(now, key, hash, size);
        self.drain(i);
        Some(i)
    }

    /// Purges object `index` at its home (the origin's content is unchanged).
    pub fn purge_object(&mut self, index: usize) -> bool {
        let now = self.now;
        let Some(key) = self.object_key(index) else { return false };
        let Some(i) = self.home_index(key) else { return false };
        let Some(node) = self.nodes[i].node.as_mut() else { return false };
        let done = node.purge(now, key);
        self.drain(i);
        done
    }

    /// Delivers `msg` to node `to` as if node `from` had sent it (after the usual latency):
    /// for tests of what a faulty or lying node can do.
    pub fn inject(&mut self, from: usize, to: usize, msg: Message) {
        let to_peer = self.nodes[to].peer;
        self.transmit(from, to_peer, msg);
    }

    /// Index of the node that is `key`'s true home.
    pub fn home_index(&mut self, key: Id) -> Option<usize> {
        let home = self.truth().successor(key)?;
        self.index_of(home)
    }

    /// Index of the node with id `id`.
    pub fn index_of(&self, id: Id) -> Option<usize> {
        self.nodes.iter().position(|n| n.peer.id == id)
    }

    /// Makes node `i` serve corrupt bodies from now on.
    pub fn corrupt_bodies(&mut self, i: usize) {
        if self.corrupt.len() <= i {
            self.corrupt.resize(i + 1, false);
        }
        self.corrupt[i] = true;
    }

    pub fn now(&self) -> Time {
        self.now
    }

    /// The loopback-range address of simulated node `i` (never contacted: it only names it).
    pub fn addr_of(i: usize) -> SocketAddr {
        let i = i as u32 + 1;
        let ip = Ipv4Addr::new(127, (i >> 16) as u8, (i >> 8) as u8, i as u8);
        SocketAddr::new(ip.into(), 7000)
    }

    // ------------------------------------------------------------ membership

    /// Starts a new node that joins through a random live, joined node (or founds the ring if
    /// there is none). Returns its index.
    pub fn add_node(&mut self) -> usize {
        let i = self.nodes.len();
        let peer = Peer::from_addr(Self::addr_of(i));
        self.by_addr.insert(peer.addr, i);
        self.nodes.push(SimNode { peer, node: None, incarnation: 0, wake_at: None });
        self.start(i);
        i
    }

    /// Starts a node from a converged routing state taken from the oracle, skipping the join
    /// phase. For measuring steady-state costs at sizes where building the ring one join at a
    /// time would dominate the run.
    pub fn add_converged_nodes(&mut self, n: usize) {
        let first = self.nodes.len();
        for i in first..first + n {
            let peer = Peer::from_addr(Self::addr_of(i));
            self.by_addr.insert(peer.addr, i);
            let node = Node::new(peer, self.chord.clone(), self.now);
            self.nodes.push(SimNode { peer, node: Some(node), incarnation: 0, wake_at: None });
        }
        self.membership_changed();
        let truth = self.compute_truth();
        let by_id: HashMap<Id, Peer> =
            self.nodes.iter().filter(|n| n.node.is_some()).map(|n| (n.peer.id, n.peer)).collect();
        let r = self.chord.successors;
        for i in first..first + n {
            let me = self.nodes[i].peer.id;
            let mut succs = Vec::with_capacity(r);
            let mut at = me;
            for _ in 0..r {
                match truth.next_after(at) {
                    Some(s) if s != me => {
                        succs.push(by_id[&s]);
                        at = s;
                    }
                    _ => break,
                }
            }
            let pred = truth.predecessor(me).filter(|p| *p != me).map(|p| by_id[&p]);
            let fingers: Vec<(u32, Peer)> = (0..ID_BITS)
                .filter_map(|j| truth.successor(me.finger_target(j)).map(|s| (j, by_id[&s])))
                .filter(|(_, p)| p.id != me)
                .collect();
            let Some(node) = self.nodes[i].node.as_mut() else {
                continue;
            };
            let routing = node.routing_mut();
            routing.set_successors(succs);
            routing.set_predecessor(pred);
            for (j, p) in fingers {
                routing.set_finger(j, p);
            }
            self.schedule_wake(i);
        }
        self.truth = Some(truth);
    }

    fn start(&mut self, i: usize) {
        // Three seeds, as an operator lists several: a join through one that crashes
        // meanwhile is retried through the others.
        let mut seeds: Vec<Peer> = Vec::new();
        for _ in 0..JOIN_SEEDS {
            if let Some(k) = self.random_joined() {
                if !seeds.iter().any(|p| p.id == self.nodes[k].peer.id) {
                    seeds.push(self.nodes[k].peer);
                }
            }
        }
        let mut node = Node::new(self.nodes[i].peer, self.chord.clone(), self.now);
        node.join(self.now, &seeds);
        let n = &mut self.nodes[i];
        n.node = Some(node);
        n.incarnation += 1;
        n.wake_at = None;
        self.fills.started(i, u64::try_from(self.now.as_millis()).unwrap_or(u64::MAX));
        self.membership_changed();
        self.drain(i);
    }

    /// Stops node `i` at once, without a word to anyone (a crash or `kill -9`).
    pub fn crash(&mut self, i: usize) {
        if self.nodes[i].node.take().is_some() {
            self.membership_changed();
            let before = self.lookups.len();
            self.lookups.retain(|(n, _), _| *n != i);
            self.counters.lookups.abandoned += (before - self.lookups.len()) as u64;
        }
    }

    /// Restarts a crashed node at the same address: it rejoins through a random live node.
    pub fn restart(&mut self, i: usize) {
        if self.nodes[i].node.is_none() {
            self.start(i);
        }
    }

    /// Node `i` leaves gracefully, then stops.
    pub fn leave(&mut self, i: usize) {
        if let Some(node) = self.nodes[i].node.as_mut() {
            node.leave(self.now);
            self.drain(i);
            self.crash(i);
        }
    }

    /// Splits the network; nodes only reach others with the same group.
    pub fn partition(&mut self, groups: impl Fn(usize) -> u8) {
        let g = (0..self.nodes.len()).map(groups).collect();
        self.net.partition(g);
    }

    pub fn heal(&mut self) {
        self.net.heal();
    }

    pub fn node(&self, i: usize) -> Option<&Node> {
        self.nodes.get(i).and_then(|n| n.node.as_ref())
    }

    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Indices of live nodes, in index order.
    pub fn alive_indices(&self) -> Vec<usize> {
        (0..self.nodes.len()).filter(|i| self.nodes[*i].node.is_some()).collect()
    }

    /// Indices of live nodes that have joined a ring.
    pub fn joined_indices(&self) -> Vec<usize> {
        (0..self.nodes.len())
            .filter(|i| self.nodes[*i].node.as_ref().is_some_and(Node::is_joined))
            .collect()
    }

    /// Forgets the cached membership views after a join, crash or restart.
    fn membership_changed(&mut self) {
        self.truth = None;
        self.joined = None;
    }

    /// Live, joined node indices, cached until membership changes.
    fn joined(&mut self) -> &[usize] {
        if self.joined.is_none() {
            self.joined = Some(self.joined_indices());
        }
        self.joined.as_deref().unwrap_or_default()
    }

    /// A uniformly random live, joined node.
    fn random_joined(&mut self) -> Option<usize> {
        let n = self.joined().len();
        if n == 0 {
            return None;
        }
        let k = self.rng.random_range(0..n);
        Some(self.joined()[k])
    }

    /// The true ring: live, joined nodes, cached until membership changes.
    pub fn truth(&mut self) -> &Truth {
        let truth = self.truth.take().unwrap_or_else(|| self.compute_truth());
        self.truth.insert(truth)
    }

    fn compute_truth(&self) -> Truth {
        Truth::new(
            self.nodes
                .iter()
                .filter(|n| n.node.as_ref().is_some_and(Node::is_joined))
                .map(|n| n.peer.id)
                .collect(),
        )
    }

    /// How correct every live node's routing state is right now.
    pub fn ring_check(&mut self) -> RingCheck {
        let truth = self.truth.take().unwrap_or_else(|| self.compute_truth());
        let nodes = self.nodes.iter().filter_map(|n| n.node.as_ref()).filter(|n| n.is_joined());
        let check = RingCheck::examine(nodes, &truth);
        self.truth = Some(truth);
        check
    }

    // ------------------------------------------------------------ workload

    /// Starts a lookup for `key` at node `i`; its outcome lands in the interval counters.
    pub fn lookup(&mut self, i: usize, key: Id) {
        let now = self.now;
        let Some(node) = self.nodes[i].node.as_mut() else {
            return;
        };
        let id = node.lookup(now, key);
        self.lookups.insert((i, id), (key, now));
        self.counters.lookups.started += 1;
        self.drain(i);
    }

    /// Starts an object lookup for catalog object `index` at node `i`.
    pub fn fetch(&mut self, i: usize, index: usize) {
        let now = self.now;
        let Some(key) = self.object_key(index) else { return };
        let Some(node) = self.nodes[i].node.as_mut() else {
            return;
        };
        let id = node.fetch(now, key);
        self.lookups.insert((i, id), (key, now));
        self.counters.lookups.started += 1;
        self.drain(i);
    }

    /// Sets the Poisson lookup workload: `rate` lookups per live node per second.
    pub fn set_lookup_rate(&mut self, rate: f64) {
        self.lookup_rate = rate;
        if rate > 0.0 && !self.lookup_scheduled {
            self.schedule_lookup();
        }
    }

    /// Sets churn: Poisson arrivals, each with a random crash.
    pub fn set_churn(&mut self, churn: Option<Churn>) {
        self.churn = churn;
        if churn.is_some() && !self.churn_scheduled {
            self.schedule_churn();
        }
    }

    fn schedule_lookup(&mut self) {
        self.lookup_scheduled = true;
        let rate = self.lookup_rate * self.joined().len().max(1) as f64;
        let at = self.next_arrival(rate);
        self.push(at, Ev::Lookup);
    }

    fn schedule_churn(&mut self) {
        self.churn_scheduled = true;
        let rate = self.churn.map_or(0.0, |c| c.rate);
        let at = self.next_arrival(rate);
        self.push(at, Ev::Churn);
    }

    /// The next event of a Poisson process with `rate` per second: now + Exp(rate).
    fn next_arrival(&mut self, rate: f64) -> Time {
        let u: f64 = self.rng.random();
        self.now + Duration::from_secs_f64(-(1.0 - u).ln() / rate)
    }

    fn alive_count(&self) -> usize {
        self.nodes.iter().filter(|n| n.node.is_some()).count()
    }

    // ------------------------------------------------------------ the event loop

    /// Processes every event up to and including `until`, then sets the clock to `until`.
    pub fn run_until(&mut self, until: Time) {
        while let Some(Reverse(top)) = self.queue.peek() {
            if top.at() > until {
                break;
            }
            let Some(Reverse(q)) = self.queue.pop() else {
                break;
            };
            self.now = q.at();
            self.events_processed += 1;
            self.process(q.ev);
        }
        self.now = until;
    }

    pub fn run_for(&mut self, d: Duration) {
        self.run_until(self.now + d);
    }

    fn process(&mut self, ev: Ev) {
        let now = self.now;
        match ev {
            Ev::Deliver { to, from, msg } => {
                let (to, from) = (to as usize, self.nodes[from as usize].peer);
                let Some(node) = self.nodes[to].node.as_mut() else { return };
                // Refusals are part of the protocol (late responses after a timeout, say);
                // the node's state is unchanged by them.
                let _ = node.handle_message(now, from, *msg);
                self.drain(to);
            }
            Ev::Wake { node: i, incarnation } => {
                let i = i as usize;
                let n = &mut self.nodes[i];
                if n.incarnation != incarnation || n.wake_at != Some(now) {
                    return;
                }
                n.wake_at = None;
                let Some(node) = n.node.as_mut() else { return };
                node.handle_timeout(now);
                self.drain(i);
            }
            Ev::Lookup => {
                self.lookup_scheduled = false;
                if let Some(i) = self.random_joined() {
                    match self.origin.as_ref().map(|o| o.sample(&mut self.rng)) {
                        Some(index) => self.fetch(i, index),
                        None => {
                            let key = Id(self.rng.random());
                            self.lookup(i, key);
                        }
                    }
                }
                if self.lookup_rate > 0.0 {
                    self.schedule_lookup();
                }
            }
            Ev::Fetched(f) => self.fetched(*f),
            Ev::Churn => {
                self.churn_scheduled = false;
                let alive = self.alive_indices();
                if alive.len() > 1 {
                    let victim = alive[self.rng.random_range(0..alive.len())];
                    self.crash(victim);
                }
                self.add_node();
                if self.churn.is_some() {
                    self.schedule_churn();
                }
            }
        }
    }

    /// Drains node `i`'s outputs into the queue and reschedules its wake-up.
    fn drain(&mut self, i: usize) {
        loop {
            let Some(node) = self.nodes[i].node.as_mut() else {
                return;
            };
            if let Some(t) = node.poll_transmit() {
                self.transmit(i, t.to, t.message);
                continue;
            }
            if let Some(e) = node.poll_event() {
                self.on_event(i, e);
                continue;
            }
            break;
        }
        self.schedule_wake(i);
    }

    fn schedule_wake(&mut self, i: usize) {
        let Some(node) = self.nodes[i].node.as_ref() else {
            return;
        };
        let Some(t) = node.poll_timeout() else { return };
        let t = t.max(self.now);
        let n = &mut self.nodes[i];
        if n.wake_at.is_none_or(|w| t < w) {
            n.wake_at = Some(t);
            let incarnation = n.incarnation;
            self.push(t, Ev::Wake { node: i as u32, incarnation });
        }
    }

    fn transmit(&mut self, from: usize, to: Peer, msg: Message) {
        let bytes = wire_size::message_len(&msg) + FRAME_OVERHEAD;
        // The log takes what identifies a message and its size, not its encoding: hashing
        // every offer list cost more than the rest of the simulator's bookkeeping.
        let id = match &msg {
            Message::Request { id, .. } | Message::Response { id, .. } => *id,
        };
        let mut entry = [0u8; 48];
        entry[..8].copy_from_slice(&(self.now.as_nanos() as u64).to_le_bytes());
        entry[8..16].copy_from_slice(&(from as u64).to_le_bytes());
        entry[16..32].copy_from_slice(&to.id.0.to_le_bytes());
        entry[32..40].copy_from_slice(&id.to_le_bytes());
        entry[40..48].copy_from_slice(&(bytes as u64).to_le_bytes());
        self.log_bytes(&entry);
        self.log_bytes(msg.kind().as_bytes());
        self.counters.messages += 1;
        self.counters.bytes += bytes as u64;
        if self.counters.per_node.len() <= from {
            self.counters.per_node.resize(from + 1, 0);
        }
        self.counters.per_node[from] += 1;
        *self.by_kind.entry(msg.kind()).or_default() += 1;
        if msg.is_replication() {
            self.counters.control_messages += 1;
            self.counters.control_bytes += bytes as u64;
        }
        let Some(&dest) = self.by_addr.get(&to.addr) else {
            return;
        };
        if let Some(delay) = self.net.delay(from, dest, &mut self.rng) {
            let ev = Ev::Deliver { to: dest as u32, from: from as u32, msg: Box::new(msg) };
            self.push(self.now + delay, ev);
        }
    }

    fn on_event(&mut self, i: usize, e: Event) {
        match e {
            Event::Joined { .. } => self.membership_changed(),
            Event::LookupDone { id, key, home, hops, served } => {
                let Some(_) = self.lookups.remove(&(i, id)) else {
                    return;
                };
                self.log_bytes(b"done");
                self.log_bytes(&key.0.to_le_bytes());
                self.log_bytes(&home.id.0.to_le_bytes());
                let now = self.now;
                let mut copy_ok = false;
                if let (Some(s), Some(&index)) = (served, self.key_index.get(&key)) {
                    if let (Some(info), Some(origin)) = (s.object, self.origin.as_ref()) {
                        let body = origin.body_of(index, &info);
                        let late = self
                            .changed_at
                            .get(&index)
                            .is_some_and(|t| now > *t + self.stale_bound);
                        if body != Body::Current && late {
                            self.counters.rep.stale_served += 1;
                        }
                        // A copy is a right answer if its body is one of the key's. Whether
                        // the holder still has it is no test: a lease can end or a demotion
                        // land while the answer travels (a few lookups per interval at
                        // N = 4 096 while the copies fill).
                        copy_ok = body != Body::Foreign;
                    }
                }
                let truth = self.truth();
                let right = copy_ok || truth.successor(key) == Some(home.id);
                let alive = truth.contains(home.id);
                let l = &mut self.counters.lookups;
                l.record_hops(hops);
                if right {
                    l.ok += 1;
                } else {
                    l.wrong += 1;
                    l.dead_home += !alive as u64;
                }
            }
            Event::LookupFailed { id, key, .. } => {
                if self.lookups.remove(&(i, id)).is_some() {
                    self.log_bytes(b"fail");
                    self.log_bytes(&key.0.to_le_bytes());
                    self.counters.lookups.failed += 1;
                }
            }
            Event::FetchBody { from, offer } => self.start_fetch(i, from, offer),
            Event::NeedObject { key } => {
                let Some(&index) = self.key_index.get(&key) else { return };
                let Some(origin) = self.origin.as_ref() else { return };
                let (hash, size) = (origin.hash(index), origin.size());
                self.counters.rep.origin_fetches += 1;
                let now = self.now;
                if let Some(node) = self.nodes[i].node.as_mut() {
                    node.put_home(now, key, hash, size);
                }
            }
            Event::JoinFailed | Event::PredecessorChanged { .. } | Event::Evict { .. } => {}
        }
    }

    /// A body transfer from `from` to node `i`: one round trip, or a failure if either
    /// direction is cut.
    fn start_fetch(&mut self, i: usize, from: crate::peer::Peer, offer: Offer) {
        let Some(&src) = self.by_addr.get(&from.addr) else { return };
        let there = self.net.delay(i, src, &mut self.rng);
        let back = self.net.delay(src, i, &mut self.rng);
        let incarnation = self.nodes[i].incarnation;
        let at = match (there, back) {
            (Some(a), Some(b)) => self.now + a + b,
            // Lost: the fetch times out.
            _ => self.now + self.chord.rto_max,
        };
        let f = Fetch { node: i as u32, incarnation, from: src as u32, offer };
        self.push(at, Ev::Fetched(Box::new(f)));
    }

    fn fetched(&mut self, f: Fetch) {
        let now = self.now;
        let (i, src) = (f.node as usize, f.from as usize);
        if self.nodes[i].incarnation != f.incarnation {
            return;
        }
        let key = f.offer.key;
        // The body the source has now, as the receiver would hash it.
        let body = self.nodes[src].node.as_ref().and_then(|n| n.holds(now, key));
        let corrupt = self.corrupt.get(src).copied().unwrap_or(false);
        let verified = body.is_some_and(|b| b.hash == f.offer.info.hash) && !corrupt;
        let size = self.origin.as_ref().map_or(0, |o| o.size());
        if self.nodes[i].node.is_none() {
            return;
        }
        if verified {
            let from = self.nodes[src].peer;
            if let Some(node) = self.nodes[i].node.as_mut() {
                node.replica_stored(now, from, f.offer);
            }
            // Every body the simulator serves is a catalogue object's.
            let object = self.key_index.get(&f.offer.key).copied();
            let object = object.and_then(|o| u32::try_from(o).ok()).unwrap_or(u32::MAX);
            self.fills.stored(i, object, &f.offer, &mut self.counters.rep.fills);
            self.counters.rep.body_fetches += 1;
            self.counters.rep.body_bytes += size;
        } else {
            if let Some(node) = self.nodes[i].node.as_mut() {
                node.fetch_failed(key);
            }
            self.counters.rep.body_rejected += body.is_some() as u64;
        }
        self.drain(i);
    }

    fn push(&mut self, at: Time, ev: Ev) {
        self.seq += 1;
        self.queue.push(Reverse(Queued::new(at, self.seq, ev)));
    }

    // ------------------------------------------------------------ measurement

    /// Lookups started but not yet ended.
    pub fn lookups_in_flight(&self) -> usize {
        self.lookups.len()
    }

    /// Takes the counters of the interval that just ended and starts a new one.
    pub fn take_interval(&mut self, end_s: f64) -> IntervalReport {
        let c = std::mem::take(&mut self.counters);
        let ring = self.ring_check();
        let nodes = self.alive_count();
        let per = |x: u64| {
            if nodes == 0 {
                0.0
            } else {
                x as f64 / nodes as f64
            }
        };
        let replication = self.origin.is_some().then(|| {
            let mut r = c.rep.clone();
            let now = self.now;
            let live: Vec<&Node> = self.nodes.iter().filter_map(|n| n.node.as_ref()).collect();
            let stored: usize = live.iter().map(|n| n.stored_objects(now)).sum();
            r.stored_per_node = per(stored as u64);
            r.control_messages_per_node = per(c.control_messages);
            r.control_bytes_per_node = per(c.control_bytes);
            let newest =
                live.iter().filter_map(|n| n.level_result()).max_by_key(|r| (r.epoch, r.leader));
            if let Some(l) = newest {
                r.epoch = l.epoch;
                r.alpha = l.alpha;
                r.objects_estimate = l.objects;
                r.nodes_estimate = l.nodes;
                r.hop_cost = l.hop_cost;
                r.target_hops = l.target_hops;
                r.model_stored_per_node = l.model_stored_per_node;
                r.thresholds = l.thresholds.clone();
            }
            r
        });
        IntervalReport {
            replication,
            end_s,
            nodes,
            success_rate: c.lookups.success_rate(),
            mean_hops: c.lookups.mean_hops(),
            messages: c.messages,
            bytes: c.bytes,
            messages_per_node: per(c.messages),
            bytes_per_node: per(c.bytes),
            max_messages_per_node: c.per_node.iter().copied().max().unwrap_or(0),
            ring_ok: ring.fraction_ok(),
            ring,
            lookups: c.lookups,
        }
    }

    /// Messages sent since the last [`Sim::reset_message_kinds`], by kind.
    pub fn messages_by_kind(&self) -> BTreeMap<String, u64> {
        self.by_kind.iter().map(|(k, v)| (k.to_string(), *v)).collect()
    }

    pub fn reset_message_kinds(&mut self) {
        self.by_kind.clear();
    }

    pub fn events_processed(&self) -> u64 {
        self.events_processed
    }

    /// blake3 of every message sent (time, endpoints, request id, kind, size) and every lookup
    /// outcome, in order, as hex.
    pub fn event_log_hash(&self) -> String {
        let mut log = self.log.clone();
        log.update(&self.log_buf);
        log.finalize().to_hex().to_string()
    }

    fn log_bytes(&mut self, bytes: &[u8]) {
        self.log_buf.extend_from_slice(bytes);
        if self.log_buf.len() >= LOG_CHUNK {
            self.log.update(&self.log_buf);
            self.log_buf.clear();
        }
    }
}
