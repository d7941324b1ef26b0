//! Invalidation: a home's body changes (or is purged) and every copy of an older version,
//! wherever the replica arc may have spread it, is dropped by a range broadcast over fingers.

use super::Replication;
use crate::beehive::wire::{arc_start, ObjectInfo};
use crate::id::Id;
use crate::message::{Request, Response};
use crate::node::ring::RingView;
use crate::peer::Peer;
use crate::time::Time;

impl Replication {
    /// The home got `key`'s body from the origin. A body with a new hash gets a new version,
    /// and every older version is invalidated over the replica arc. Returns the version.
    pub fn put_home(
        &mut self,
        now: Time,
        ring: RingView<'_>,
        key: Id,
        hash: [u8; 32],
        size: u64,
    ) -> u64 {
        let top = self.top_level(now);
        let obj = self.homes.entry(key, top);
        // Fetched because the object was just promoted: its new arc is waiting for it.
        let promoted = std::mem::take(&mut obj.fetch_asked);
        if let Some(info) = obj.info.as_mut().filter(|i| i.hash == hash) {
            info.size = size;
            return info.version;
        }
        let changed = obj.info.is_some();
        let version = obj.next_version;
        obj.next_version += 1;
        obj.info = Some(ObjectInfo { version, hash, size });
        self.touch(key);
        if changed {
            self.broadcast_invalidate(ring, key, version);
        } else {
            // One more object of our own: under a budget a copy makes room for it now, not
            // at the next tick.
            self.shed_to_budget();
        }
        if promoted {
            self.push_offers(now, ring, &[key]);
        }
        version
    }

    /// Purges `key` at its home: the body is dropped and every copy is invalidated over the
    /// replica arc. Returns `false` if this node is not the key's home.
    pub fn purge(&mut self, now: Time, ring: RingView<'_>, key: Id) -> bool {
        if !ring.owns(key) {
            return false;
        }
        let top = self.top_level(now);
        let obj = self.homes.entry(key, top);
        obj.info = None;
        let min_version = obj.next_version;
        self.touch(key);
        self.broadcast_invalidate(ring, key, min_version);
        true
    }

    pub fn answer_invalidate(
        &mut self,
        now: Time,
        ring: RingView<'_>,
        key: Id,
        min_version: u64,
        arc_start: Id,
        limit: Id,
    ) -> Response {
        self.invalidate_here(now, key, min_version);
        self.forward_invalidate(ring, key, min_version, arc_start, limit);
        Response::Ack
    }

    fn invalidate_here(&mut self, now: Time, key: Id, min_version: u64) {
        let forget_at = now + self.lease() * 2;
        if self.holdings.invalidate(key, min_version, forget_at) {
            self.touch(key);
            self.evict_unless_home(key);
        }
    }

    /// Starts the range broadcast from the home over the widest arc replicas may occupy.
    fn broadcast_invalidate(&mut self, ring: RingView<'_>, key: Id, min_version: u64) {
        let level = self.homes.get(key).map_or(0, |o| o.widest_level());
        // Passive caches live anywhere: their TTL bounds them, not the broadcast.
        let start = arc_start(key, level);
        let me = ring.me().id;
        self.forward_invalidate(ring, key, min_version, start, me);
    }

    /// Sends the invalidation to each finger in `(me, limit)` whose share of the ring (up to
    /// the next finger, or `limit`) meets the arc `(start, key]`.
    fn forward_invalidate(
        &mut self,
        ring: RingView<'_>,
        key: Id,
        min_version: u64,
        start: Id,
        limit: Id,
    ) {
        let me = ring.me().id;
        let mut fingers: Vec<Peer> = ring
            .fingers()
            .iter()
            .copied()
            .chain(ring.successor())
            .filter(|p| p.id.in_open(me, limit))
            .collect();
        fingers.sort_unstable_by_key(|p| me.distance_to(p.id));
        fingers.dedup_by_key(|p| p.id);
        let whole = start == key;
        for (i, f) in fingers.iter().enumerate() {
            let next = fingers.get(i + 1).map_or(limit, |n| n.id);
            let meets =
                whole || f.id.in_open_closed(start, key) || start.offset(1).in_open(f.id, next);
            if meets {
                let req = Request::Invalidate { key, min_version, arc_start: start, limit: next };
                self.send(*f, req);
            }
        }
    }
}
