//! Serving: answering an object request from here (and counting it), the hop statistics the
//! leader measures h from, passive path caching, and the operator's view of what is held.

use super::{millis, KnownObject, Replication, NO_RESULT_LEVEL};
use crate::beehive::wire::{ObjectInfo, Offer};
use crate::config::Mode;
use crate::id::Id;
use crate::lookup::{Lookup, ObjectAnswer};
use crate::message::{Request, Response};
use crate::node::event::Event;
use crate::node::ring::RingView;
use crate::peer::Peer;
use crate::time::Time;

impl Replication {
    /// Serves `key` from here if we are its home or hold a valid copy, counting the request.
    /// `named` is the lookup's `as_home` flag.
    pub fn serve(
        &mut self,
        now: Time,
        ring: RingView<'_>,
        key: Id,
        named: Option<bool>,
    ) -> Option<ObjectAnswer> {
        let found = if ring.is_home(key, named.unwrap_or(false)) {
            let top = self.top_level(now);
            let obj = self.homes.entry(key, top);
            obj.first_served.get_or_insert(now);
            let need = obj.info.is_none() && !obj.fetch_asked;
            if need {
                obj.fetch_asked = true;
            }
            let found = ObjectAnswer { level: obj.level, object: obj.info };
            if need {
                self.event(Event::NeedObject { key });
            }
            found
        } else {
            let h = self.holdings.valid(key, now)?;
            self.holdings.mark_used(key, now);
            ObjectAnswer { level: h.level, object: Some(h.info) }
        };
        if self.cfg.mode == Mode::Beehive {
            self.sketch.record(key.0, 1);
        }
        Some(found)
    }

    /// Adds an object lookup to the hop statistics the leader measures h from. A holder
    /// without a fresh result answers [`NO_RESULT_LEVEL`]: under our result that object is
    /// home-only, at our top level; without one the lookup tells nothing about h (counted as
    /// 128 levels, it would make h several times too small).
    pub fn note_hops(&mut self, now: Time, hops: u32, level: u8) {
        let level = match self.fresh_result(now) {
            Some(r) => level.min(r.top_level()),
            None if level >= NO_RESULT_LEVEL => return,
            None => level,
        };
        self.hop_sum += f64::from(hops);
        self.level_sum += f64::from(level);
        self.lookups += 1;
    }

    /// Our object lookup `l` ended at `holder`, which holds `found`.
    pub fn lookup_served(
        &mut self,
        now: Time,
        ring: RingView<'_>,
        l: Lookup,
        holder: Peer,
        found: ObjectAnswer,
    ) {
        let (key, hops, path) = (l.key, l.hops, l.visited);
        self.note_hops(now, hops, found.level);
        if self.cfg.mode == Mode::Passive && holder.id != ring.me().id {
            self.cache_along(ring, key, found, holder, path);
        }
    }

    /// Passive mode: an object lookup ended at `holder`; cache the object here and on every
    /// node the lookup passed.
    fn cache_along(
        &mut self,
        ring: RingView<'_>,
        key: Id,
        found: ObjectAnswer,
        holder: Peer,
        path: Vec<Peer>,
    ) {
        let Some(info) = found.object else { return };
        let lease_ms = millis(self.cfg.cache_ttl);
        let (level, stamp, from_home, renewable) = (found.level, 0, false, false);
        let offer = Offer { key, level, stamp, info, lease_ms, from_home, renewable };
        if self.holdings.want_cache(&offer) && self.make_room(offer.key) {
            self.event(Event::FetchBody { from: holder, offer });
        }
        for p in path {
            if p.id != holder.id && p.id != ring.me().id {
                self.send(p, Request::Cache { offer, holder });
            }
        }
    }

    pub fn answer_cache(&mut self, ring: RingView<'_>, offer: Offer, holder: Peer) -> Response {
        if self.cfg.mode == Mode::Passive
            && !ring.owns(offer.key)
            && self.holdings.want_cache(&offer)
            && self.make_room(offer.key)
        {
            self.event(Event::FetchBody { from: holder, offer });
        }
        Response::Ack
    }

    /// Passive mode under a budget: `key` is about to be fetched into the cache; the least
    /// recently used copies make room for it. `false` (and no fetch) if they cannot.
    fn make_room(&mut self, key: Id) -> bool {
        for dropped in self.holdings.evict_lru(self.budget_excess(0)) {
            self.touch(dropped);
            self.evict_unless_home(dropped);
        }
        if self.budget_excess(0) > 0 {
            self.holdings.fetch_failed(key);
            return false;
        }
        true
    }

    // ------------------------------------------------------------ operator view
    // (admin `/objects`, `/stats`): read-only, O(objects) per call.

    /// Objects held here: home objects with a body, then valid copies.
    pub fn stored_objects(&self, now: Time) -> usize {
        let homes = self.homes.iter().filter(|(_, o)| o.info.is_some()).count();
        homes + self.holdings.valid_count(now)
    }

    /// The copy of `key` this node would serve now, if any (home or replica/cache).
    pub fn holds(&self, now: Time, ring: RingView<'_>, key: Id) -> Option<ObjectInfo> {
        if let Some(info) = self.homes.get(key).and_then(|o| o.info) {
            if ring.owns(key) {
                return Some(info);
            }
        }
        self.holdings.valid(key, now).map(|h| h.info)
    }

    /// The level the home set for `key`, if this node is its home.
    pub fn home_level(&self, key: Id) -> Option<u8> {
        self.homes.get(key).map(|o| o.level)
    }

    /// Count entries refused at this home because their origin could not have served the key.
    pub fn refused_counts(&self) -> u64 {
        self.homes.refused_counts
    }

    /// Every object this node knows: those it is home for (with their smoothed rate, body or
    /// not) and the valid copies it holds. Unordered.
    pub fn known_objects<'a>(
        &'a self,
        now: Time,
        ring: RingView<'a>,
    ) -> impl Iterator<Item = KnownObject> + 'a {
        let homes =
            self.homes.iter().filter(move |(k, _)| ring.owns(**k)).map(|(k, o)| KnownObject {
                key: *k,
                level: o.level,
                rate: Some(o.rate.value()),
                home: true,
                size: o.info.map(|i| i.size),
            });
        let copies = self.holdings.iter().filter_map(move |(k, _)| {
            let h = self.holdings.valid(k, now)?;
            Some(KnownObject {
                key: k,
                level: h.level,
                rate: None,
                home: false,
                size: Some(h.info.size),
            })
        });
        homes.chain(copies)
    }
}
