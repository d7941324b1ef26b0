//! A node's Chord routing state and the one routing decision: home, or whom to ask next.
//!
//! This is pure data plus queries; the node (`node.rs`) decides when to change it.

use crate::id::{Id, ID_BITS};
use crate::message::NextHop;
use crate::peer::Peer;
use serde::Serialize;

/// Predecessor, successor list and finger table of one node.
#[derive(Debug, Clone, Serialize)]
pub struct Routing {
    me: Peer,
    predecessor: Option<Peer>,
    /// The next `r` nodes clockwise, nearest first. Never contains `me`; empty when alone.
    successors: Vec<Peer>,
    /// `fingers[j]` = our belief of successor(me + 2^j). `None` until first fixed.
    fingers: Vec<Option<Peer>>,
    /// The fingers without repeats, highest first: what routing actually scans. Most of the
    /// 128 fingers repeat the successor, and routing runs far more often than fingers change.
    #[serde(skip)]
    distinct: Vec<Peer>,
    max_successors: usize,
}

impl Routing {
    pub fn new(me: Peer, max_successors: usize) -> Self {
        Routing {
            me,
            predecessor: None,
            successors: Vec::with_capacity(max_successors),
            fingers: vec![None; ID_BITS as usize],
            distinct: Vec::new(),
            max_successors,
        }
    }

    pub fn me(&self) -> Peer {
        self.me
    }

    pub fn predecessor(&self) -> Option<Peer> {
        self.predecessor
    }

    pub fn successors(&self) -> &[Peer] {
        &self.successors
    }

    pub fn fingers(&self) -> &[Option<Peer>] {
        &self.fingers
    }

    /// The nearest successor, or `me` in a ring of one.
    pub fn successor(&self) -> Peer {
        self.successors.first().copied().unwrap_or(self.me)
    }

    pub fn set_predecessor(&mut self, p: Option<Peer>) {
        self.predecessor = p.filter(|p| p.id != self.me.id);
    }

    /// Replaces the successor list with `list`, dropping `me`, duplicates and anything past
    /// `me` (a list that wraps the whole ring), and ordering by clockwise distance.
    pub fn set_successors(&mut self, list: impl IntoIterator<Item = Peer>) {
        let me = self.me.id;
        let mut next: Vec<Peer> = list.into_iter().filter(|p| p.id != me).collect();
        next.sort_by_key(|p| me.distance_to(p.id));
        next.dedup_by_key(|p| p.id);
        next.truncate(self.max_successors);
        self.successors = next;
    }

    /// Puts `p` in the successor list if it is closer than the r-th successor.
    pub fn offer_successor(&mut self, p: Peer) {
        let mut list = self.successors.clone();
        list.push(p);
        self.set_successors(list);
    }

    /// Distinct peers in the routing state: fingers, successors and predecessor.
    pub fn distinct_peers(&self) -> usize {
        let mut ids: Vec<Id> = self
            .distinct
            .iter()
            .chain(&self.successors)
            .chain(&self.predecessor)
            .map(|p| p.id)
            .filter(|id| *id != self.me.id)
            .collect();
        ids.sort_unstable();
        ids.dedup();
        ids.len()
    }

    /// The fingers without repeats, nearest first.
    pub fn distinct_fingers(&self) -> &[Peer] {
        &self.distinct
    }

    pub fn set_finger(&mut self, j: u32, p: Peer) {
        self.set_fingers(j..j + 1, p);
    }

    /// Sets every finger in `range` to `p`.
    pub fn set_fingers(&mut self, range: std::ops::Range<u32>, p: Peer) {
        let mut changed = false;
        for j in range {
            let slot = &mut self.fingers[j as usize];
            if *slot != Some(p) {
                *slot = Some(p);
                changed = true;
            }
        }
        if changed {
            self.rebuild_distinct();
        }
    }

    fn rebuild_distinct(&mut self) {
        self.distinct.clear();
        for f in self.fingers.iter().rev().flatten() {
            if self.distinct.last().is_none_or(|l| l.id != f.id) {
                self.distinct.push(*f);
            }
        }
    }

    /// Forgets a peer everywhere. Returns whether it was referenced at all.
    pub fn remove(&mut self, id: Id) -> bool {
        let mut found = false;
        if self.predecessor.is_some_and(|p| p.id == id) {
            self.predecessor = None;
            found = true;
        }
        let before = self.successors.len();
        self.successors.retain(|p| p.id != id);
        found |= self.successors.len() != before;
        let mut finger = false;
        for f in self.fingers.iter_mut() {
            if f.is_some_and(|p| p.id == id) {
                *f = None;
                finger = true;
            }
        }
        if finger {
            self.rebuild_distinct();
        }
        found || finger
    }

    /// The peer with this id, if the routing state holds it anywhere.
    pub fn find(&self, id: Id) -> Option<Peer> {
        self.successors
            .iter()
            .chain(self.distinct.iter())
            .chain(self.predecessor.iter())
            .find(|p| p.id == id)
            .copied()
    }

    /// Whether `id` appears anywhere in the routing state.
    pub fn references(&self, id: Id) -> bool {
        self.predecessor.is_some_and(|p| p.id == id)
            || self.successors.iter().any(|p| p.id == id)
            || self.distinct.iter().any(|p| p.id == id)
    }

    /// Whether this node is the home of `key`: `key ∈ (predecessor, me]`.
    ///
    /// Without a live predecessor (none yet, or suspected) the arc's lower end is unknown. We
    /// then still claim `(predecessor, me]` if we have one, and besides accept a key we were
    /// `named` home for: the asker heard from our predecessor's side that the key falls to
    /// us, as a dead node's keys fall to its successor in Chord.
    pub fn is_home(&self, key: Id, named: bool, suspected: impl Fn(Id) -> bool) -> bool {
        let me = self.me.id;
        if self.successors.is_empty() {
            return true;
        }
        // Suspicion (a hash lookup) only matters for a `named` key outside the arc: replication
        // asks this for every key it offers.
        match self.predecessor {
            Some(p) => key.in_open_closed(p.id, me) || (named && suspected(p.id)),
            None => named,
        }
    }

    /// The lowest finger index whose target lies beyond our successor. Fingers below it are
    /// the successor itself and need no lookup.
    pub fn first_remote_finger(&self) -> u32 {
        let reach = self.me.id.distance_to(self.successor().id);
        if reach == 0 {
            return ID_BITS;
        }
        // Finger j is remote iff 2^j > reach, i.e. j > floor(log2(reach)).
        ID_BITS - reach.leading_zeros()
    }

    /// The routing decision for `key` on behalf of `asker`.
    ///
    /// The answer is this node's whole honest view: it does not leave out peers it suspects
    /// (only whether it is home itself depends on suspicion, see [`Routing::is_home`]). The
    /// lookup's entry node decides whom to route around (Bamboo's advice) from its own
    /// timeouts; a responder that hid a live node it merely suspected after one lost packet
    /// would send lookups to the wrong home. A node looking up its own id is joining (or
    /// rejoining after a restart while stale tables still list it), so it is never named as
    /// the answer to that question. Candidates are strictly between us and the key, closest
    /// to the key first, at most `max`.
    pub fn route(
        &self,
        key: Id,
        asker: Option<Id>,
        named: bool,
        suspected: impl Fn(Id) -> bool,
        max: usize,
    ) -> NextHop {
        let me = self.me.id;
        let joining = asker.filter(|a| *a == key);
        let usable = |p: &Peer| Some(p.id) != joining;
        // A joiner whose id is our predecessor's is that node started again at the same
        // address: we are its successor, though by our view the key is not ours.
        let rejoining = joining.is_some() && self.predecessor.is_some_and(|p| p.id == key);
        if joining != Some(me) && (rejoining || self.is_home(key, named, suspected)) {
            return NextHop::Here;
        }
        // The first successor at or past the key is its home; should it be dead, the ones
        // after it inherit its keys, so the whole rest of the list is the answer.
        if let Some(i) = self.successors.iter().position(|s| key.in_open_closed(me, s.id)) {
            let homes: Vec<Peer> =
                self.successors[i..].iter().filter(|s| usable(s)).copied().collect();
            if !homes.is_empty() {
                return NextHop::Successors(homes);
            }
        }
        let closer = self.closest_preceding(key, usable, max);
        if !closer.is_empty() {
            return NextHop::Closer(closer);
        }
        if self.successors.is_empty() {
            NextHop::Here
        } else {
            NextHop::Successors(self.successors.clone())
        }
    }

    /// Up to `max` distinct known peers strictly between us and `key`, closest to `key` first.
    pub fn closest_preceding(
        &self,
        key: Id,
        usable: impl Fn(&Peer) -> bool,
        max: usize,
    ) -> Vec<Peer> {
        let me = self.me.id;
        let mut out: Vec<Peer> = Vec::with_capacity(max + 1);
        let consider = |p: &Peer, out: &mut Vec<Peer>| {
            if !p.id.in_open(me, key) || !usable(p) || out.iter().any(|q| q.id == p.id) {
                return;
            }
            let d = p.id.distance_to(key);
            let at = out.partition_point(|q| q.id.distance_to(key) < d);
            if at < max {
                out.insert(at, *p);
                out.truncate(max);
            }
        };
        // Fingers from the top cover the ring in halving steps; the successor list covers the
        // neighbourhood the fingers skip.
        for f in &self.distinct {
            consider(f, &mut out);
        }
        for s in &self.successors {
            consider(s, &mut out);
        }
        if let Some(p) = &self.predecessor {
            consider(p, &mut out);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::SocketAddr;

    fn never(_: Id) -> bool {
        false
    }

    fn peer(id: u128) -> Peer {
        let addr: SocketAddr = format!("127.0.0.1:{}", 1000 + (id % 60000) as u16).parse().unwrap();
        Peer { id: Id(id), addr }
    }

    /// A node at 100 in a ring with fingers at known places.
    fn sample() -> Routing {
        let mut r = Routing::new(peer(100), 3);
        r.set_predecessor(Some(peer(50)));
        r.set_successors([peer(110), peer(120), peer(130)]);
        r.set_finger(3, peer(110));
        r.set_finger(5, peer(140));
        r.set_finger(7, peer(300));
        r.set_finger(9, peer(700));
        r
    }

    #[test]
    fn home_of_own_arc() {
        let r = sample();
        assert_eq!(r.route(Id(70), None, false, never, 3), NextHop::Here);
        assert_eq!(r.route(Id(100), None, false, never, 3), NextHop::Here);
    }

    #[test]
    fn a_restarted_predecessor_joining_again_is_answered_here() {
        // Node 50 restarted at the same address asks where to join: here, its successor,
        // although its id is outside our arc while we still hold its previous run.
        let r = sample();
        assert_eq!(r.route(Id(50), Some(Id(50)), true, never, 3), NextHop::Here);
        assert_ne!(r.route(Id(50), None, true, never, 3), NextHop::Here);
    }

    #[test]
    fn successor_is_home_of_the_next_arc() {
        let r = sample();
        let all = NextHop::Successors(vec![peer(110), peer(120), peer(130)]);
        assert_eq!(r.route(Id(105), None, false, never, 3), all);
        assert_eq!(r.route(Id(110), None, false, never, 3), all);
        assert_eq!(
            r.route(Id(115), None, false, never, 3),
            NextHop::Successors(vec![peer(120), peer(130)])
        );
    }

    #[test]
    fn closest_preceding_finger_comes_first() {
        let r = sample();
        assert_eq!(
            r.route(Id(500), None, false, never, 3),
            NextHop::Closer(vec![peer(300), peer(140), peer(130)])
        );
        assert_eq!(r.route(Id(800), None, false, never, 1), NextHop::Closer(vec![peer(700)]));
    }

    #[test]
    fn suspicion_does_not_hide_peers_from_others() {
        // The answer is the whole view; the asker routes around whom it suspects.
        let r = sample();
        assert_eq!(
            r.route(Id(500), None, false, never, 2),
            NextHop::Closer(vec![peer(300), peer(140)])
        );
        assert_eq!(
            r.route(Id(105), None, false, never, 3),
            NextHop::Successors(vec![peer(110), peer(120), peer(130)])
        );
    }

    #[test]
    fn closest_preceding_wraps_around_zero() {
        let mut r = Routing::new(peer(u128::MAX - 100), 2);
        r.set_predecessor(Some(peer(u128::MAX - 200)));
        r.set_successors([peer(u128::MAX - 50)]);
        r.set_finger(100, peer(5));
        r.set_finger(120, peer(1 << 110));
        // key just past zero: finger at 5 is beyond it, the successor is before it.
        assert_eq!(
            r.route(Id(3), None, false, never, 3),
            NextHop::Closer(vec![peer(u128::MAX - 50)])
        );
        assert_eq!(
            r.route(Id(1 << 111), None, false, never, 3),
            NextHop::Closer(vec![peer(1 << 110), peer(5), peer(u128::MAX - 50)])
        );
    }

    #[test]
    fn restarted_asker_is_not_named_as_home() {
        // Node 110 restarted and asks for its own id; we still list it as our successor.
        let r = sample();
        assert_eq!(
            r.route(Id(110), Some(Id(110)), false, never, 3),
            NextHop::Successors(vec![peer(120), peer(130)])
        );
    }

    #[test]
    fn a_suspected_predecessor_hands_us_the_keys_we_are_named_for() {
        let r = sample();
        let suspect_50 = |id: Id| id == Id(50);
        // Key 40 belongs to 50 while 50 is trusted, even if someone names us its home...
        assert!(!r.is_home(Id(40), true, never));
        assert_eq!(
            r.route(Id(40), None, false, never, 3),
            NextHop::Closer(vec![peer(700), peer(300), peer(140)])
        );
        // ...and to us once 50 is suspected and we are named home for it...
        assert!(r.is_home(Id(40), true, suspect_50));
        assert_eq!(r.route(Id(40), None, true, suspect_50, 3), NextHop::Here);
        // ...but not when we are merely asked as a router.
        assert!(!r.is_home(Id(40), false, suspect_50));
        // Our own arc stays ours whatever we think of 50.
        assert!(r.is_home(Id(70), false, suspect_50));
    }

    #[test]
    fn alone_owns_everything() {
        let r = Routing::new(peer(7), 8);
        assert_eq!(r.route(Id(12345), None, false, never, 3), NextHop::Here);
        assert_eq!(r.first_remote_finger(), ID_BITS);
    }

    #[test]
    fn first_remote_finger_matches_successor_distance() {
        let mut r = Routing::new(peer(0), 2);
        r.set_successors([peer(8)]);
        // 2^3 = 8 reaches the successor exactly: fingers 0..=3 are the successor.
        assert_eq!(r.first_remote_finger(), 4);
        assert!(Id(0).finger_target(3).in_open_closed(Id(0), Id(8)));
        assert!(!Id(0).finger_target(4).in_open_closed(Id(0), Id(8)));
        r.set_successors([peer(9)]);
        assert_eq!(r.first_remote_finger(), 4);
        r.set_successors([peer(7)]);
        assert_eq!(r.first_remote_finger(), 3);
    }

    #[test]
    fn successor_list_is_sorted_deduplicated_and_bounded() {
        let mut r = Routing::new(peer(100), 3);
        r.set_successors([peer(130), peer(100), peer(110), peer(130), peer(90), peer(120)]);
        let ids: Vec<u128> = r.successors().iter().map(|p| p.id.0).collect();
        assert_eq!(ids, vec![110, 120, 130]);
        r.offer_successor(peer(105));
        let ids: Vec<u128> = r.successors().iter().map(|p| p.id.0).collect();
        assert_eq!(ids, vec![105, 110, 120]);
    }

    #[test]
    fn remove_forgets_everywhere() {
        let mut r = sample();
        assert!(r.remove(Id(110)));
        assert!(!r.references(Id(110)));
        assert!(r.fingers()[3].is_none());
        assert!(!r.remove(Id(9999)));
    }
}
