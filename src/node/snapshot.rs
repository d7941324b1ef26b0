//! The routing state as readers outside the driver see it: an immutable snapshot the driver
//! publishes after every input, read lock-free (`ArcSwap`) by the admin listener (the HTTP
//! path asks the driver through commands instead). Nobody but the driver ever touches the core.

use beehive_replication::beehive::wire::{arc_start, LevelResult};
use beehive_replication::node::KnownObject;
use beehive_replication::{Id, Node, Peer, Time};
use serde::Serialize;
use std::sync::Arc;
use std::time::Duration;

/// A peer in JSON: `{"id": "<32 hex digits>", "addr": "ip:port"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PeerView {
    pub id: String,
    pub addr: String,
}

impl From<Peer> for PeerView {
    fn from(p: Peer) -> Self {
        PeerView { id: hex_id(p.id), addr: p.addr.to_string() }
    }
}

/// A run of consecutive finger-table entries `from..=to` that all point at one peer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FingerRun {
    pub from: u32,
    pub to: u32,
    #[serde(flatten)]
    pub peer: PeerView,
}

/// The `/ring` document:
///
/// * `id`, `addr` — this node (ids are 32 lowercase hex digits, the ring's `u128`);
/// * `predecessor` — `{id, addr}` or `null`;
/// * `successors` — the successor list, nearest first (empty when alone);
/// * `fingers` — the finger table as runs `{from, to, id, addr}`: finger `j` for `from ≤ j ≤
///   to` is that peer (finger `j` = successor(id + 2^j)); unset fingers are left out;
/// * `suspects` — ids of peers that missed a request and are routed around;
/// * `joined`, `ready`, `left` — join finished; joined and stabilised (what `/readyz` says);
///   left the ring (shutting down);
/// * `ring_size_estimate` — nodes in the ring, from the successor list's span;
/// * `mode`, `target_hops` — the replication configuration (`chord|passive|beehive`, C);
/// * `peers` — the standing of every peer this node routes through: `{id, addr, roles,
///   misses, suspected, srtt_ms, last_heard_ms}`, where `roles` ⊆ `predecessor`,
///   `successor`, `finger`; `misses` are requests in a row left unanswered; `srtt_ms` is the
///   smoothed round trip (`null` before a sample); `last_heard_ms` is how long ago the peer
///   was last heard from (`null`: never). The core keeps no attestation (wrong-answer)
///   standing yet, so only liveness is shown;
/// * `leader` — the newest leader result this node has ([`LeaderView`]) or `null`;
/// * `now_ms` — the node's clock (ms since start) at publication.
///
/// `peers`, `now_ms` and the unserialised `ops` are filled by [`OpsTracker::fill`].
#[derive(Debug, Clone, Serialize)]
pub struct RingSnapshot {
    pub id: String,
    pub addr: String,
    pub predecessor: Option<PeerView>,
    pub successors: Vec<PeerView>,
    pub fingers: Vec<FingerRun>,
    pub suspects: Vec<String>,
    pub joined: bool,
    pub ready: bool,
    pub left: bool,
    pub ring_size_estimate: u64,
    pub mode: &'static str,
    pub target_hops: f64,
    pub peers: Vec<PeerStanding>,
    pub leader: Option<LeaderView>,
    /// The node's clock (ms since it started) when this snapshot was published.
    pub now_ms: u64,
    /// Objects and store totals, refreshed at most once a second ([`OpsTracker`]).
    #[serde(skip)]
    pub ops: Arc<OpsView>,
    /// The raw first successor and predecessor, for the shutdown handoff.
    #[serde(skip)]
    pub successor_peer: Option<Peer>,
    #[serde(skip)]
    pub predecessor_peer: Option<Peer>,
    /// Every peer routed through (predecessor, successors, fingers) that is not suspected,
    /// in ring order: where an entry node looks for the live node after a silent home.
    #[serde(skip)]
    pub ring_peers: Vec<Peer>,
}

impl RingSnapshot {
    /// The first live peer known at or after `key` clockwise: `key`'s home as this node sees
    /// it once the silent peers are left out, so the successor of a home that went silent.
    pub fn live_home_of(&self, key: Id) -> Option<Peer> {
        let at = self.ring_peers.partition_point(|p| p.id < key);
        self.ring_peers.get(at).or_else(|| self.ring_peers.first()).copied()
    }
}

/// Lowercase hex of a ring id, 32 digits.
pub fn hex_id(id: Id) -> String {
    format!("{:032x}", id.0)
}

/// Nodes in the ring: exact while the successor list is shorter than r (it then holds every
/// other node), else r times the ring's size over the list's span.
pub fn ring_size_estimate(me: Id, successors: &[Peer], r: usize) -> u64 {
    match successors.last() {
        None => 1,
        Some(_) if successors.len() < r => successors.len() as u64 + 1,
        Some(last) => {
            let span = me.distance_to(last.id).max(1) as f64;
            let n = successors.len() as f64 * 2f64.powi(128) / span;
            n.round().clamp(1.0, u64::MAX as f64) as u64
        }
    }
}

impl RingSnapshot {
    /// Reads everything from the core. `expects_peers`: the node was told to join someone,
    /// so being alone is not "ready".
    pub fn capture(node: &Node, expects_peers: bool, mode: &'static str, target_hops: f64) -> Self {
        let routing = node.routing();
        let me = node.me();
        // Runs of consecutive fingers on one peer, found by id: formatting each finger's id
        // to compare it cost more than the rest of a snapshot (one every 20 ms under load).
        let mut fingers: Vec<FingerRun> = Vec::new();
        let mut run_id = None;
        for (j, f) in routing.fingers().iter().enumerate() {
            let Some(p) = f else { continue };
            let j = j as u32;
            match fingers.last_mut() {
                Some(run) if run.to + 1 == j && run_id == Some(p.id) => run.to = j,
                _ => {
                    fingers.push(FingerRun { from: j, to: j, peer: (*p).into() });
                    run_id = Some(p.id);
                }
            }
        }
        let mut suspects: Vec<String> = node.peers().suspected().map(hex_id).collect();
        suspects.sort();
        let successor = routing.successors().first().copied();
        let predecessor = routing.predecessor();
        let joined = node.is_joined();
        let mut ring_peers: Vec<Peer> = predecessor
            .into_iter()
            .chain(routing.successors().iter().copied())
            .chain(routing.fingers().iter().flatten().copied())
            .filter(|p| p.id != me.id && !node.peers().is_suspected(p.id))
            .collect();
        ring_peers.sort_by_key(|p| p.id);
        ring_peers.dedup_by_key(|p| p.id);
        let settled = !expects_peers || (successor.is_some() && predecessor.is_some());
        RingSnapshot {
            id: hex_id(me.id),
            addr: me.addr.to_string(),
            predecessor: predecessor.map(Into::into),
            successors: routing.successors().iter().map(|p| (*p).into()).collect(),
            fingers,
            suspects,
            joined,
            ready: joined && settled && !node.has_left(),
            left: node.has_left(),
            ring_size_estimate: ring_size_estimate(
                me.id,
                routing.successors(),
                node.config().successors,
            ),
            mode,
            target_hops,
            peers: Vec::new(),
            now_ms: 0,
            leader: node.level_result().cloned().map(LeaderView),
            ops: Arc::default(),
            successor_peer: successor,
            predecessor_peer: predecessor,
            ring_peers,
        }
    }
}

/// One peer this node routes through, with its standing (see [`RingSnapshot`]).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PeerStanding {
    #[serde(flatten)]
    pub peer: PeerView,
    pub roles: Vec<&'static str>,
    pub misses: u32,
    pub suspected: bool,
    pub srtt_ms: Option<f64>,
    pub last_heard_ms: Option<u64>,
}

fn peer_standing(node: &Node, now: Time) -> Vec<PeerStanding> {
    let routing = node.routing();
    let me = node.me().id;
    // (peer, roles) by id first: ids compare cheaply, text is made once per peer.
    let mut seen: Vec<(Peer, Vec<&'static str>)> = Vec::new();
    let mut add = |p: Peer, role: &'static str| {
        if p.id == me {
            return;
        }
        match seen.iter_mut().find(|(q, _)| q.id == p.id) {
            Some((_, roles)) if !roles.contains(&role) => roles.push(role),
            Some(_) => {}
            None => seen.push((p, vec![role])),
        }
    };
    if let Some(p) = routing.predecessor() {
        add(p, "predecessor");
    }
    for p in routing.successors() {
        add(*p, "successor");
    }
    for p in routing.distinct_fingers() {
        add(*p, "finger");
    }
    seen.into_iter()
        .map(|(p, roles)| {
            let standing = node.peers().get(p.id);
            PeerStanding {
                peer: p.into(),
                roles,
                misses: standing.map_or(0, |s| s.misses),
                suspected: standing.is_some_and(|s| s.suspected()),
                srtt_ms: standing.and_then(|s| s.rtt.srtt()).map(|d| d.as_secs_f64() * 1e3),
                last_heard_ms: standing
                    .and_then(|s| s.last_heard)
                    .map(|t| now.saturating_sub(t).as_millis() as u64),
            }
        })
        .collect()
}

/// The leader's result as `/ring`, `/stats` and the dashboard show it.
///
/// `epoch`, `leader` (id hex); `alpha` (the fitted Zipf parameter); `objects` (M estimated);
/// `nodes` (N counted); `hop_cost` (h, hops per level measured); `target_hops` (C solved
/// for); `thresholds` (t_i in requests/s: rate ≥ t_i puts an object at level i or lower);
/// `model_stored_per_node`; `age_intervals` (replication intervals since it was issued).
#[derive(Debug, Clone, PartialEq)]
pub struct LeaderView(pub LevelResult);

impl Serialize for LeaderView {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        // The wire form, with the leader's id in hex (a u128 is no JSON number) and the age
        // named for its unit.
        let wire = LevelResult { leader: Id(0), ..self.0.clone() };
        let mut v = serde_json::to_value(wire).map_err(serde::ser::Error::custom)?;
        if let Some(m) = v.as_object_mut() {
            m.insert("leader".into(), hex_id(self.0.leader).into());
            if let Some(age) = m.remove("age") {
                m.insert("age_intervals".into(), age);
            }
        }
        v.serialize(s)
    }
}

/// One entry of `/objects?top=N`: `key` (hex), `level`, `rate` (requests/s, smoothed; only
/// the home knows it, else `null`), `role` (`home` or `replica`), `size` (bytes, `null` while
/// a home has no body), `arc_start` and `arc_end` (hex: the object is replicated on every
/// node in `(arc_start, arc_end]`, plus its home; `arc_end` is the key).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ObjectView {
    pub key: String,
    pub level: u8,
    pub rate: Option<f64>,
    pub role: &'static str,
    pub size: Option<u64>,
    pub arc_start: String,
    pub arc_end: String,
}

impl From<KnownObject> for ObjectView {
    fn from(o: KnownObject) -> Self {
        ObjectView {
            key: hex_id(o.key),
            level: o.level,
            rate: o.rate,
            role: if o.home { "home" } else { "replica" },
            size: o.size,
            arc_start: hex_id(arc_start(o.key, o.level)),
            arc_end: hex_id(o.key),
        }
    }
}

/// Objects held, by class, as `/stats` shows them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct StoreTotals {
    pub home_objects: u64,
    pub home_bytes: u64,
    pub replica_objects: u64,
    pub replica_bytes: u64,
}

/// What is recomputed at most once a second: the hottest objects and the store totals.
#[derive(Debug, Clone, Default)]
pub struct OpsView {
    /// The [`OpsTracker::TOP`] hottest objects, hottest first.
    pub top: Vec<ObjectView>,
    pub store: StoreTotals,
}

/// Keeps the [`OpsView`] for snapshots and refreshes it at most once per [`Self::EVERY`]:
/// ranking every object known is O(objects log objects), too much for every input.
#[derive(Debug, Default)]
pub struct OpsTracker {
    last: Option<Time>,
    view: Arc<OpsView>,
}

impl OpsTracker {
    /// Most objects kept for `/objects?top=N`.
    pub const TOP: usize = 256;
    pub const EVERY: Duration = Duration::from_secs(1);

    /// Fills the operator fields of a freshly captured `snap`: peer standing and the clock
    /// (every time: O(log N)), and the [`OpsView`] (at most once per [`Self::EVERY`]).
    pub fn fill(&mut self, snap: &mut RingSnapshot, node: &Node, now: Time) {
        snap.peers = peer_standing(node, now);
        snap.now_ms = now.as_millis() as u64;
        snap.ops = self.view(node, now);
    }

    /// The current view, recomputed from `node` if the last one is older than [`Self::EVERY`].
    pub fn view(&mut self, node: &Node, now: Time) -> Arc<OpsView> {
        if self.last.is_none_or(|t| now.saturating_sub(t) >= Self::EVERY) {
            self.last = Some(now);
            let mut store = StoreTotals::default();
            for o in node.known_objects(now) {
                let Some(size) = o.size else { continue };
                if o.home {
                    store.home_objects += 1;
                    store.home_bytes += size;
                } else {
                    store.replica_objects += 1;
                    store.replica_bytes += size;
                }
            }
            let top = node.top_objects(now, Self::TOP).into_iter().map(Into::into).collect();
            self.view = Arc::new(OpsView { top, store });
        }
        self.view.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use beehive_replication::ChordConfig;

    #[test]
    fn ops_view_ranks_home_objects_and_sums_the_store() {
        let me = Peer::from_addr(([127, 0, 0, 1], 7000).into());
        let mut node = Node::new(me, ChordConfig::default(), Duration::ZERO);
        let now = Duration::from_secs(1);
        // Alone, the node is home for every key.
        for (i, size) in [(1u8, 100u64), (2, 250), (3, 50)] {
            node.put_home(now, Id::hash(&[i]), [i; 32], size);
        }
        let mut tracker = OpsTracker::default();
        let mut snap = RingSnapshot::capture(&node, false, "beehive", 1.0);
        tracker.fill(&mut snap, &node, now);
        let view = snap.ops.clone();
        assert_eq!(
            view.store,
            StoreTotals { home_objects: 3, home_bytes: 400, replica_objects: 0, replica_bytes: 0 }
        );
        assert_eq!(view.top.len(), 3);
        for o in &view.top {
            assert_eq!(o.role, "home");
            assert_eq!(o.arc_end, o.key);
            assert_eq!(o.arc_start.len(), 32);
        }
        assert_eq!(snap.now_ms, 1000);
        let top2: Vec<ObjectView> = node.top_objects(now, 2).into_iter().map(Into::into).collect();
        assert_eq!(top2[..], view.top[..2], "the top 2 are the first 2 of the top 3");
        assert!(node.top_objects(now, 0).is_empty());
        // Not recomputed within a second: the same view is shared.
        node.put_home(now, Id::hash(b"late"), [9; 32], 1);
        assert!(Arc::ptr_eq(&tracker.view(&node, now + Duration::from_millis(500)), &view));
        assert_eq!(tracker.view(&node, now + OpsTracker::EVERY).top.len(), 4);
    }

    #[test]
    fn size_estimate_is_exact_for_small_rings_and_scales_with_span() {
        let me = Id(0);
        let p = |i: u128| Peer { id: Id(i), addr: ([127, 0, 0, 1], 1).into() };
        assert_eq!(ring_size_estimate(me, &[], 8), 1);
        assert_eq!(ring_size_estimate(me, &[p(5), p(9)], 8), 3);
        // 2 successors spanning 1/256 of the ring: about 512 nodes.
        let list = [p(1 << 119), p(2 << 119)];
        assert_eq!(ring_size_estimate(me, &list, 2), 512);
    }
}
