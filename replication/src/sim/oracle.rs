//! The simulator's view from above: the true ring, and how far the nodes' beliefs are from it.

use crate::id::{Id, ID_BITS};
use crate::node::Node;
use serde::Serialize;

/// The live, joined node ids in ring order; answers "who really is successor(k)?".
#[derive(Debug, Default)]
pub struct Truth {
    ids: Vec<Id>,
}

impl Truth {
    pub fn new(mut ids: Vec<Id>) -> Self {
        ids.sort_unstable();
        ids.dedup();
        Truth { ids }
    }

    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    pub fn contains(&self, id: Id) -> bool {
        self.ids.binary_search(&id).is_ok()
    }

    /// The first live id at or after `key`, wrapping.
    pub fn successor(&self, key: Id) -> Option<Id> {
        let i = self.ids.partition_point(|x| *x < key);
        self.ids.get(i).or(self.ids.first()).copied()
    }

    /// The first live id strictly after `id`.
    pub fn next_after(&self, id: Id) -> Option<Id> {
        self.successor(id.offset(1))
    }

    /// The last live id strictly before `id`.
    pub fn predecessor(&self, id: Id) -> Option<Id> {
        let i = self.ids.partition_point(|x| *x < id);
        if i == 0 {
            self.ids.last().copied()
        } else {
            Some(self.ids[i - 1])
        }
    }
}

/// How correct the ring is at one instant.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq)]
pub struct RingCheck {
    /// Live, joined nodes examined.
    pub nodes: usize,
    pub successor_ok: usize,
    pub predecessor_ok: usize,
    /// Nodes whose every finger (past the successor) is the true successor of its target.
    pub fingers_ok: usize,
    /// Nodes right in all three respects.
    pub all_ok: usize,
    /// Cycles in the graph of first successors: 1 for one ring, more for split rings.
    pub rings: usize,
}

impl RingCheck {
    pub fn fraction_ok(&self) -> f64 {
        if self.nodes == 0 {
            return 1.0;
        }
        self.all_ok as f64 / self.nodes as f64
    }

    pub fn fraction_successor_ok(&self) -> f64 {
        if self.nodes == 0 {
            return 1.0;
        }
        self.successor_ok as f64 / self.nodes as f64
    }

    /// Examines every node against the truth.
    pub fn examine<'a>(nodes: impl Iterator<Item = &'a Node>, truth: &Truth) -> RingCheck {
        let mut c = RingCheck::default();
        let mut first_successor = Vec::new();
        for n in nodes {
            let me = n.me().id;
            let r = n.routing();
            c.nodes += 1;
            let succ_ok = truth.next_after(me).unwrap_or(me) == r.successor().id;
            let pred_ok = match truth.predecessor(me) {
                Some(p) if p != me => r.predecessor().is_some_and(|q| q.id == p),
                _ => true,
            };
            let fingers_ok = fingers_correct(n, truth);
            c.successor_ok += succ_ok as usize;
            c.predecessor_ok += pred_ok as usize;
            c.fingers_ok += fingers_ok as usize;
            c.all_ok += (succ_ok && pred_ok && fingers_ok) as usize;
            first_successor.push((me, r.successor().id));
        }
        c.rings = count_cycles(first_successor);
        c
    }
}

/// Every finger whose true value differs from the true successor must be right; the fingers
/// below are the successor itself and are checked through it.
fn fingers_correct(n: &Node, truth: &Truth) -> bool {
    let me = n.me().id;
    let Some(succ) = truth.next_after(me) else {
        return true;
    };
    let reach = me.distance_to(succ);
    let first = if reach == 0 { ID_BITS } else { ID_BITS - reach.leading_zeros() };
    (first..ID_BITS).all(|j| {
        let want = truth.successor(me.finger_target(j));
        want == Some(me) || n.routing().fingers()[j as usize].map(|p| p.id) == want
    })
}

/// Counts the cycles in a functional graph given as (node, successor) pairs; pointers to nodes
/// outside the set end their path without a cycle.
fn count_cycles(mut edges: Vec<(Id, Id)>) -> usize {
    edges.sort_unstable();
    let next = |id: Id| edges.binary_search_by_key(&id, |e| e.0).ok().map(|i| edges[i].1);
    let index = |id: Id| edges.binary_search_by_key(&id, |e| e.0).ok();
    // 0 = unvisited, otherwise the walk number that first visited the node.
    let mut seen = vec![0usize; edges.len()];
    let mut cycles = 0;
    for start in 0..edges.len() {
        if seen[start] != 0 {
            continue;
        }
        let walk = start + 1;
        let mut at = Some(edges[start].0);
        while let Some(id) = at {
            let Some(i) = index(id) else { break };
            if seen[i] == walk {
                cycles += 1;
                break;
            }
            if seen[i] != 0 {
                break;
            }
            seen[i] = walk;
            at = next(id);
        }
    }
    cycles
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn successor_wraps() {
        let t = Truth::new(vec![Id(10), Id(20), Id(30)]);
        assert_eq!(t.successor(Id(15)), Some(Id(20)));
        assert_eq!(t.successor(Id(20)), Some(Id(20)));
        assert_eq!(t.successor(Id(31)), Some(Id(10)));
        assert_eq!(t.next_after(Id(30)), Some(Id(10)));
        assert_eq!(t.predecessor(Id(10)), Some(Id(30)));
    }

    #[test]
    fn cycles_are_counted() {
        let one = vec![(Id(1), Id(2)), (Id(2), Id(3)), (Id(3), Id(1))];
        assert_eq!(count_cycles(one), 1);
        let two = vec![(Id(1), Id(3)), (Id(3), Id(1)), (Id(2), Id(4)), (Id(4), Id(2))];
        assert_eq!(count_cycles(two), 2);
        // A tail feeding into a cycle is still one ring.
        let tail = vec![(Id(1), Id(2)), (Id(2), Id(3)), (Id(3), Id(2))];
        assert_eq!(count_cycles(tail), 1);
    }
}
