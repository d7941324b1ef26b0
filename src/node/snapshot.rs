//! The routing state as readers outside the driver see it: an immutable snapshot the driver
//! publishes after every input, read lock-free (`ArcSwap`) by the admin listener and, later,
//! the HTTP request path. Nobody but the driver ever touches the core.

use beehive_replication::{Id, Node, Peer};
use serde::Serialize;

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
/// * `mode`, `target_hops` — the replication configuration (`chord|passive|beehive`, C).
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
    /// The raw first successor and predecessor, for the shutdown handoff.
    #[serde(skip)]
    pub successor_peer: Option<Peer>,
    #[serde(skip)]
    pub predecessor_peer: Option<Peer>,
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
        let mut fingers: Vec<FingerRun> = Vec::new();
        for (j, f) in routing.fingers().iter().enumerate() {
            let Some(p) = f else { continue };
            let j = j as u32;
            match fingers.last_mut() {
                Some(run) if run.to + 1 == j && run.peer.id == hex_id(p.id) => run.to = j,
                _ => fingers.push(FingerRun { from: j, to: j, peer: (*p).into() }),
            }
        }
        let mut suspects: Vec<String> = node.peers().suspected().map(hex_id).collect();
        suspects.sort();
        let successor = routing.successors().first().copied();
        let predecessor = routing.predecessor();
        let joined = node.is_joined();
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
            successor_peer: successor,
            predecessor_peer: predecessor,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
