//! The node's object commands and operator view: each hands the replication sub-machine a
//! view of the ring and sends what it asks for.

use super::Node;
use crate::beehive::wire::{LevelResult, ObjectInfo, Offer};
use crate::id::Id;
use crate::lookup::{Lookup, LookupId, ObjectAnswer, Purpose};
use crate::node::event::Event;
use crate::node::replication::KnownObject;
use crate::node::ring::RingView;
use crate::peer::Peer;
use crate::time::Time;

impl Node {
    // ------------------------------------------------------------ commands

    /// Starts an object lookup for `key`: like [`Node::lookup`], but any node holding a copy
    /// answers, and the completion carries [`ObjectAnswer`]. A copy held here (or being home)
    /// completes at once with 0 hops.
    pub fn fetch(&mut self, now: Time, key: Id) -> LookupId {
        if let Some(found) = self.serve(now, key, None) {
            let id = LookupId(self.next_lookup);
            self.next_lookup += 1;
            let me = self.me();
            self.rep.note_hops(now, 0, found.level);
            let done = Event::LookupDone { id, key, home: me, hops: 0, served: Some(found) };
            self.events.push_back(done);
            return id;
        }
        self.start_user_lookup(now, key, true)
    }

    /// Serves `key` for an entry node that asked us directly as its home (its object lookup's
    /// one request, sent outside the protocol with the body request, see
    /// [`Node::fetched_from`]): counted and answered exactly as a `FindNext` naming us home
    /// with `want_object`. `None`: we neither are its home nor hold a copy.
    pub fn serve_as_home(&mut self, now: Time, key: Id) -> Option<ObjectAnswer> {
        self.serve(now, key, Some(true))
    }

    /// An object lookup for `key` that the caller made outside the core, as the one request
    /// our own lookup would have made (to `holder`, our successor and `key`'s home), and that
    /// `holder` answered with `found` ([`Node::serve_as_home`] there). Counted exactly as that
    /// lookup would have been: hop statistics, passive caching along the path, and a
    /// [`Event::LookupDone`] with one hop (whose id nobody waits on).
    pub fn fetched_from(&mut self, now: Time, key: Id, holder: Peer, found: ObjectAnswer) {
        let id = LookupId(self.next_lookup);
        self.next_lookup += 1;
        let mut lookup = Lookup::new(key, Purpose::Object(id), Vec::new());
        lookup.mark_asked(holder, true);
        lookup.hops = 1;
        let ring = RingView::new(&self.routing, &self.peers);
        self.rep.lookup_served(now, ring, lookup, holder, found);
        self.drain_replication(now);
        let served = Some(found);
        self.events.push_back(Event::LookupDone { id, key, home: holder, hops: 1, served });
    }

    /// A request for `key` was served from this node's own store without a lookup (the HTTP
    /// face's local hit): counted for popularity and as a 0-hop lookup, exactly as
    /// [`Node::fetch`] counts one. Returns `false` if the core holds no copy of `key` here
    /// and this node is not its home (the store kept a body the core has dropped; the caller
    /// should drop it too).
    pub fn served_locally(&mut self, now: Time, key: Id) -> bool {
        match self.serve(now, key, None) {
            Some(found) if found.object.is_some() => {
                self.rep.note_hops(now, 0, found.level);
                true
            }
            // The home's body is the loader's: it is stored before the core hears of it, so a
            // hit can be counted before the core knows the object. Dropping it here would make
            // the next request fetch from the origin again.
            _ => RingView::new(&self.routing, &self.peers).owns(key),
        }
    }

    /// The caller fetched and verified the body `offer` describes (from [`Event::FetchBody`]).
    /// Returns `false` if the copy is no longer wanted (the version was purged meanwhile): the
    /// caller drops the body.
    pub fn replica_stored(&mut self, now: Time, from: Peer, offer: Offer) -> bool {
        let ring = RingView::new(&self.routing, &self.peers);
        let stored = self.rep.replica_stored(now, ring, from, offer);
        self.drain_replication(now);
        stored
    }

    /// The body fetch for `key` failed (unreachable holder, hash mismatch): a later offer may
    /// try again.
    pub fn fetch_failed(&mut self, key: Id) {
        self.rep.fetch_failed(key);
    }

    /// The home got `key`'s body from the origin (after [`Event::NeedObject`], or because the
    /// content changed). A body with a new hash gets a new version, and every older version is
    /// invalidated over the replica arc. Returns the version.
    pub fn put_home(&mut self, now: Time, key: Id, hash: [u8; 32], size: u64) -> u64 {
        let ring = RingView::new(&self.routing, &self.peers);
        let version = self.rep.put_home(now, ring, key, hash, size);
        self.drain_replication(now);
        version
    }

    /// Purges `key` at its home: the body is dropped (the next request refetches it from the
    /// origin) and every copy is invalidated over the replica arc. Returns `false` if this
    /// node is not the key's home (the caller routes the purge there first).
    pub fn purge(&mut self, now: Time, key: Id) -> bool {
        let ring = RingView::new(&self.routing, &self.peers);
        let purged = self.rep.purge(now, ring, key);
        self.drain_replication(now);
        purged
    }

    /// Serves `key` from here if we are its home or hold a valid copy, counting the request.
    /// `named` is the lookup's `as_home` flag.
    pub(super) fn serve(
        &mut self,
        now: Time,
        key: Id,
        named: Option<bool>,
    ) -> Option<ObjectAnswer> {
        let ring = RingView::new(&self.routing, &self.peers);
        let found = self.rep.serve(now, ring, key, named);
        self.drain_replication(now);
        found
    }

    // ------------------------------------------------------------ accessors

    /// The newest leader result this node has.
    pub fn level_result(&self) -> Option<&LevelResult> {
        self.rep.result()
    }

    /// Objects held here: home objects with a body, then valid copies.
    pub fn stored_objects(&self, now: Time) -> usize {
        self.rep.stored_objects(now)
    }

    /// The copy of `key` this node would serve now, if any (home or replica/cache).
    pub fn holds(&self, now: Time, key: Id) -> Option<ObjectInfo> {
        self.rep.holds(now, RingView::new(&self.routing, &self.peers), key)
    }

    /// The level the home set for `key`, if this node is its home.
    pub fn home_level(&self, key: Id) -> Option<u8> {
        self.rep.home_level(key)
    }

    /// Count entries refused at this home because their origin could not have served the key.
    pub fn refused_counts(&self) -> u64 {
        self.rep.refused_counts()
    }

    // ---- operator view (admin `/objects`, `/stats`): read-only, O(objects) per call.

    /// Every object this node knows, for operators: those it is home for (with their
    /// smoothed rate, body or not) and the valid copies it holds. Unordered; the admin
    /// listener ranks them (see [`Node::top_objects`]).
    pub fn known_objects(&self, now: Time) -> impl Iterator<Item = KnownObject> + '_ {
        self.rep.known_objects(now, RingView::new(&self.routing, &self.peers))
    }

    /// The `n` hottest objects this node knows: lowest level first (a lower level means a
    /// more popular object), then highest rate (homes only know rates), then key.
    pub fn top_objects(&self, now: Time, n: usize) -> Vec<KnownObject> {
        let hotter = |a: &KnownObject, b: &KnownObject| {
            let rate = |o: &KnownObject| o.rate.unwrap_or(0.0);
            a.level.cmp(&b.level).then(rate(b).total_cmp(&rate(a))).then(a.key.cmp(&b.key))
        };
        if n == 0 {
            return Vec::new();
        }
        // O(objects) to find the top n, then sort only those.
        let mut all: Vec<KnownObject> = self.known_objects(now).collect();
        if all.len() > n {
            all.select_nth_unstable_by(n - 1, hotter);
            all.truncate(n);
        }
        all.sort_unstable_by(hotter);
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node::tests::peer;
    use crate::ChordConfig;
    use std::time::Duration;

    /// A hit at the home may be counted before the core hears that the loader stored the
    /// body: the home keeps it. A node that is not the home and holds no copy drops it.
    #[test]
    fn a_local_hit_keeps_the_home_s_body_before_the_core_knows_it() {
        const ME: u128 = 1 << 127;
        let mut n = Node::new(peer(ME, 7000), ChordConfig::default(), Duration::ZERO);
        n.routing_mut().set_successors([peer(ME + 1000, 7001)]);
        n.routing_mut().set_predecessor(Some(peer(ME - 1000, 7002)));
        assert!(n.served_locally(Duration::ZERO, Id(ME - 5)), "home key");
        assert!(!n.served_locally(Duration::ZERO, Id(ME + 5)), "successor's key");
    }

    /// A two-node ring, `a` before `b`; `b` is home of the keys in `(a, b]` and stored one.
    fn pair(key: Id) -> (Node, Node) {
        const A: u128 = 1 << 127;
        let (pa, pb) = (peer(A, 7000), peer(A + 1000, 7001));
        let mut a = Node::new(pa, ChordConfig::default(), Duration::ZERO);
        let mut b = Node::new(pb, ChordConfig::default(), Duration::ZERO);
        a.routing_mut().set_successors([pb]);
        a.routing_mut().set_predecessor(Some(pb));
        b.routing_mut().set_successors([pa]);
        b.routing_mut().set_predecessor(Some(pa));
        b.put_home(Duration::ZERO, key, [7; 32], 10);
        while b.poll_transmit().is_some() {}
        (a, b)
    }

    fn lookup_done(n: &mut Node) -> Option<(u32, Option<ObjectAnswer>)> {
        std::iter::from_fn(|| n.poll_event()).find_map(|e| match e {
            Event::LookupDone { hops, served, .. } => Some((hops, served)),
            _ => None,
        })
    }

    /// The direct request to a successor home answers and counts as the lookup it stands for.
    #[test]
    fn a_direct_fetch_from_the_home_counts_as_its_one_hop_lookup() {
        let key = Id((1 << 127) + 5);
        let now = Duration::from_millis(1);
        // Through the protocol: a's lookup asks b, b answers.
        let (mut a, mut b) = pair(key);
        a.fetch(now, key);
        let ask = a.poll_transmit().expect("a asks its successor");
        assert_eq!(ask.to.id, b.me().id);
        b.handle_message(now, a.me(), ask.message).unwrap();
        let answer = b.poll_transmit().expect("b answers");
        a.handle_message(now, b.me(), answer.message).unwrap();
        let via_lookup = lookup_done(&mut a).expect("the lookup ends");
        let known = |n: &Node| format!("{:?}", n.known_objects(now).collect::<Vec<_>>());
        let counted = known(&b);
        // Directly: b serves as home, a records the answer.
        let (mut a2, mut b2) = pair(key);
        let found = b2.serve_as_home(now, key).expect("b is home");
        a2.fetched_from(now, key, b2.me(), found);
        assert_eq!(lookup_done(&mut a2), Some(via_lookup));
        assert_eq!(via_lookup.0, 1);
        assert_eq!(via_lookup.1.and_then(|f| f.object).map(|o| o.hash), Some([7; 32]));
        assert_eq!(known(&b2), counted, "the home counts the request either way");
        // A node that is neither home nor holder refuses.
        assert!(a2.serve_as_home(now, key).is_none());
    }
}
