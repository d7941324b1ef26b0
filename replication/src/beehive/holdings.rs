//! Copies a node holds for other homes: Beehive replicas (soft state under a lease) and passive
//! caches (a TTL), plus the tombstones that keep an invalidated version from coming back.

use super::wire::{LevelStamp, ObjectInfo, Offer};
use crate::hash::{FastMap, FastSet};
use crate::id::Id;
use crate::time::Time;
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Held {
    pub level: u8,
    /// When the home set `level` ([`Offer::stamp`]).
    pub stamp: u64,
    pub info: ObjectInfo,
    /// Dropped at this time unless renewed (a lease for replicas, the TTL for caches).
    pub until: Time,
    /// A passive cache copy: never offered on, never renewed.
    pub cached: bool,
    /// The finger whose bulk renewals extend this copy (none for a copy offered with a short
    /// lease, which must not outlive the offerer's).
    pub source: Option<Id>,
    /// When the lease was last extended.
    pub renewed_at: Time,
    /// When this copy was stored or last answered a lookup: a passive cache under a budget
    /// makes room by dropping the least recently used.
    pub used_at: Time,
}

/// What [`Holdings::consider`] made of an offer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Considered {
    /// Fetch the body.
    Fetch,
    /// The copy we have was renewed; `changed` says its offer to others changed (new level,
    /// or renewals resumed after a lapse).
    Renewed {
        changed: bool,
    },
    Ignored,
}

/// See the module docs.
#[derive(Debug, Default)]
pub struct Holdings {
    held: FastMap<Id, Held>,
    /// key → (lowest version still valid, when the tombstone may be forgotten).
    tombstones: FastMap<Id, (u64, Time)>,
    /// key → (version being fetched, from whom), so one offer from each of several fingers
    /// costs one fetch, and a failed fetch can ask its source for a full list again.
    fetching: FastMap<Id, (u64, Option<Id>)>,
    /// source → (when, until) of its latest bulk renewal; applied lazily to attached copies,
    /// so a delta answer costs O(1) here instead of a pass over every copy.
    bulk: FastMap<Id, (Time, Time)>,
    /// key → (the level that put us outside its arc, when to forget it): dropped copies, so
    /// that an offer of an older level does not bring them back, and so that we can pass
    /// the withdrawal on.
    demoted: FastMap<Id, (LevelStamp, Time)>,
}

/// What [`Holdings::demote`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Demoted {
    /// The copy lies outside the new arc: it lapses at the grace time.
    Dropped,
    /// The copy lies inside the new arc: it took the new level.
    Relevelled,
    /// Nothing held; the level is remembered.
    Noted,
    /// Not newer than what we know.
    Ignored,
}

impl Holdings {
    pub fn len(&self) -> usize {
        self.held.len()
    }

    pub fn is_empty(&self) -> bool {
        self.held.is_empty()
    }

    /// Copies held (valid or not yet pruned) plus bodies being fetched: what a storage budget
    /// counts before it lets another fetch start.
    pub fn committed(&self) -> usize {
        self.held.len() + self.fetching.len()
    }

    /// Whether a copy of `key` is held (valid or not).
    pub fn has(&self, key: Id) -> bool {
        self.held.contains_key(&key)
    }

    /// Every copy, with bulk renewals applied.
    pub fn iter(&self) -> impl Iterator<Item = (Id, Held)> + '_ {
        self.held.iter().map(|(k, h)| (*k, self.effective(h)))
    }

    /// Every copy as stored, without bulk renewals: for a scan that filters on the level (which
    /// renewals do not change) before it asks [`Holdings::valid_held`] for the copy.
    pub fn stored(&self) -> impl Iterator<Item = (Id, &Held)> + '_ {
        self.held.iter().map(|(k, h)| (*k, h))
    }

    /// `h` with its source's bulk renewal applied.
    fn effective(&self, h: &Held) -> Held {
        // A bulk renewal that does not lengthen the lease (the copy's own lease runs longer)
        // still says the source renews it: the copy stays renewable and unchanged.
        match h.source.and_then(|s| self.bulk.get(&s)) {
            Some((at, until)) => {
                Held { until: h.until.max(*until), renewed_at: h.renewed_at.max(*at), ..*h }
            }
            None => *h,
        }
    }

    /// The copy of `key` this node may serve at `now`.
    pub fn valid(&self, key: Id, now: Time) -> Option<Held> {
        self.valid_held(key, self.held.get(&key)?, now)
    }

    /// [`Holdings::valid`] for a copy the caller already has in hand.
    pub fn valid_held(&self, key: Id, h: &Held, now: Time) -> Option<Held> {
        let h = self.effective(h);
        (h.until > now && !self.is_dead(key, h.info.version)).then_some(h)
    }

    /// How many copies this node may serve at `now` (one pass, no lookups per copy).
    pub fn valid_count(&self, now: Time) -> usize {
        self.held.iter().filter(|(k, h)| self.valid_held(**k, h, now).is_some()).count()
    }

    /// The newest level we know for `key`: our copy's, or the one that dropped it.
    pub fn known_level(&self, key: Id, now: Time) -> Option<LevelStamp> {
        if let Some(h) = self.valid(key, now).filter(|h| !h.cached) {
            return Some(LevelStamp { level: h.level, stamp: h.stamp });
        }
        self.demoted.get(&key).map(|(l, _)| *l)
    }

    fn known_stamp(&self, key: Id) -> Option<u64> {
        let held = self.held.get(&key).map(|h| h.stamp);
        let dropped = self.demoted.get(&key).map(|(l, _)| l.stamp);
        held.max(dropped)
    }

    /// Whether an offer stamped `stamp` is older than a level we already know for `key`.
    fn is_stale(&self, key: Id, stamp: u64) -> bool {
        self.known_stamp(key).is_some_and(|known| known > stamp)
    }

    /// A withdrawal told us `key`'s level is now `new` (`inside`: we lie in its arc).
    /// Newer than our copy's: outside, the copy is dropped at `grace`; inside, it takes the
    /// level. Either way we stop following the withdrawing node's renewals. The level is
    /// remembered until `forget_at` (a lease, after which any copy of the older level has
    /// lapsed).
    pub fn demote(
        &mut self,
        key: Id,
        new: LevelStamp,
        inside: bool,
        grace: Time,
        forget_at: Time,
    ) -> Demoted {
        if self.known_stamp(key).is_some_and(|known| known >= new.stamp) {
            return Demoted::Ignored;
        }
        match self.held.get(&key).copied() {
            Some(h) if h.cached => Demoted::Ignored,
            Some(h) => {
                let h = self.effective(&h);
                let mut moved = Held { level: new.level, stamp: new.stamp, source: None, ..h };
                if inside {
                    self.held.insert(key, moved);
                    return Demoted::Relevelled;
                }
                // Out of the arc: gone once the answers already sent for it have been used
                // (`grace`), and offered to nobody meanwhile (the level says so).
                moved.until = moved.until.min(grace);
                self.held.insert(key, moved);
                self.demoted.insert(key, (new, forget_at));
                Demoted::Dropped
            }
            // A fetch in flight must not store an older level when it lands.
            None if self.fetching.contains_key(&key) => {
                self.demoted.insert(key, (new, forget_at));
                Demoted::Noted
            }
            None => Demoted::Ignored,
        }
    }

    /// Whether `version` of `key` was invalidated.
    pub fn is_dead(&self, key: Id, version: u64) -> bool {
        self.tombstones.get(&key).is_some_and(|(min, _)| version < *min)
    }

    /// What to do with an offer from `from` (a node between us and the home, checked by the
    /// caller): renew the copy we have, or fetch the body (remembering the fetch). A renewed
    /// copy follows `from`'s bulk renewals only if `attach` (its lease is a long one).
    pub fn consider(&mut self, offer: &Offer, from: Id, now: Time, attach: bool) -> Considered {
        // One lookup of the copy serves the staleness test and the renewal (`is_stale`).
        let held = self.held.get(&offer.key);
        let dropped = self.demoted.get(&offer.key).map(|(l, _)| l.stamp);
        let stale = held.map(|h| h.stamp).max(dropped).is_some_and(|known| known > offer.stamp);
        if self.is_dead(offer.key, offer.info.version) || stale {
            return Considered::Ignored;
        }
        let until = now + Duration::from_millis(u64::from(offer.lease_ms));
        if let Some(stored) = held {
            let h = self.effective(stored);
            if h.info.version == offer.info.version && h.info.hash == offer.info.hash {
                if h.cached || (until <= h.until && (!attach || h.source == Some(from))) {
                    return Considered::Ignored;
                }
                let until = until.max(h.until);
                let changed = h.level != offer.level || h.source.is_none() && attach;
                let source = attach.then_some(from);
                let (level, stamp) = (offer.level, offer.stamp);
                let renewed = Held { until, level, stamp, source, renewed_at: now, ..h };
                self.held.insert(offer.key, renewed);
                return Considered::Renewed { changed };
            }
            if h.info.version > offer.info.version {
                return Considered::Ignored;
            }
        }
        match self.fetching.get(&offer.key) {
            Some((v, _)) if *v >= offer.info.version => Considered::Ignored,
            _ => {
                self.fetching.insert(offer.key, (offer.info.version, Some(from)));
                Considered::Fetch
            }
        }
    }

    /// Passive mode: whether to fetch `offer` into the cache (not held, not being fetched).
    pub fn want_cache(&mut self, offer: &Offer) -> bool {
        if self.is_dead(offer.key, offer.info.version)
            || self.held.get(&offer.key).is_some_and(|h| h.info.version >= offer.info.version)
            || self.fetching.get(&offer.key).is_some_and(|(v, _)| *v >= offer.info.version)
        {
            return false;
        }
        self.fetching.insert(offer.key, (offer.info.version, None));
        true
    }

    /// Extends every copy attached to `source` to `now + lease` (lazily; never shortening).
    pub fn renew_from(&mut self, source: Id, now: Time, lease: Duration) {
        let e = self.bulk.entry(source).or_insert((now, now + lease));
        e.0 = e.0.max(now);
        e.1 = e.1.max(now + lease);
    }

    /// Stops `source`'s bulk renewals of `key` (it withdrew the offer, or no longer renews its
    /// own copy). Returns whether the copy was attached to it.
    pub fn detach(&mut self, key: Id, source: Id) -> bool {
        let folded = match self.held.get(&key) {
            Some(h) if h.source == Some(source) => Held { source: None, ..self.effective(h) },
            _ => return false,
        };
        self.held.insert(key, folded);
        true
    }

    /// Stops `source`'s bulk renewals of every copy attached to it except `keep` (its full
    /// list of offers). Returns the keys detached, sorted.
    pub fn detach_all_but(&mut self, source: Id, keep: &FastSet<Id>) -> Vec<Id> {
        let mut keys: Vec<Id> = self
            .held
            .iter()
            .filter(|(k, h)| h.source == Some(source) && !keep.contains(*k))
            .map(|(k, _)| *k)
            .collect();
        keys.sort_unstable();
        for k in &keys {
            self.detach(*k, source);
        }
        keys
    }

    /// Copies whose lease was not extended since `since`: their offers to others changed.
    pub fn not_renewed_since(&self, since: Time) -> Vec<Id> {
        let mut keys: Vec<Id> = self
            .iter()
            .filter(|(_, h)| !h.cached && h.renewed_at < since)
            .map(|(k, _)| k)
            .collect();
        keys.sort_unstable();
        keys
    }

    /// Stores a fetched, verified body. Refused (returns `false`) if the version was
    /// invalidated while the fetch was in flight or a newer one is already held.
    pub fn store(
        &mut self,
        offer: &Offer,
        source: Option<Id>,
        now: Time,
        until: Time,
        cached: bool,
    ) -> bool {
        if self.fetching.get(&offer.key).is_some_and(|(v, _)| *v <= offer.info.version) {
            self.fetching.remove(&offer.key);
        }
        if self.is_dead(offer.key, offer.info.version)
            || self.is_stale(offer.key, offer.stamp)
            || self.held.get(&offer.key).is_some_and(|h| h.info.version > offer.info.version)
        {
            return false;
        }
        self.demoted.remove(&offer.key);
        let (level, stamp, info) = (offer.level, offer.stamp, offer.info);
        let held =
            Held { level, stamp, info, until, cached, source, renewed_at: now, used_at: now };
        self.held.insert(offer.key, held);
        true
    }

    /// `key`'s copy answered a lookup at `now`.
    pub fn mark_used(&mut self, key: Id, now: Time) {
        if let Some(h) = self.held.get_mut(&key) {
            h.used_at = h.used_at.max(now);
        }
    }

    /// Drops up to `count` copies, the least recently used first, and returns their keys.
    pub fn evict_lru(&mut self, count: usize) -> Vec<Id> {
        if count == 0 {
            return Vec::new();
        }
        let mut by_use: Vec<(Time, Id)> = self.held.iter().map(|(k, h)| (h.used_at, *k)).collect();
        if count < by_use.len() {
            by_use.select_nth_unstable(count);
            by_use.truncate(count);
        }
        by_use.into_iter().map(|(_, key)| key).filter(|key| self.remove(*key)).collect()
    }

    /// A fetch failed: a later offer may try again. Returns the node it was fetched from.
    pub fn fetch_failed(&mut self, key: Id) -> Option<Id> {
        self.fetching.remove(&key).and_then(|(_, from)| from)
    }

    /// Invalidates every version of `key` below `min_version` until `forget_at`. Returns
    /// whether a held copy was dropped.
    pub fn invalidate(&mut self, key: Id, min_version: u64, forget_at: Time) -> bool {
        let t = self.tombstones.entry(key).or_insert((min_version, forget_at));
        t.0 = t.0.max(min_version);
        t.1 = t.1.max(forget_at);
        if self.fetching.get(&key).is_some_and(|(v, _)| *v < min_version) {
            self.fetching.remove(&key);
        }
        if self.held.get(&key).is_some_and(|h| h.info.version < min_version) {
            self.held.remove(&key);
            return true;
        }
        false
    }

    /// Drops expired copies and tombstones; returns the dropped keys, sorted.
    pub fn expire(&mut self, now: Time) -> Vec<Id> {
        // Fold the bulk renewals in, then forget the spent ones.
        if !self.bulk.is_empty() {
            let bulk = std::mem::take(&mut self.bulk);
            for h in self.held.values_mut() {
                if let Some((at, until)) = h.source.and_then(|s| bulk.get(&s)) {
                    h.until = h.until.max(*until);
                    h.renewed_at = h.renewed_at.max(*at);
                }
            }
            self.bulk = bulk;
            self.bulk.retain(|_, (_, until)| *until > now);
        }
        let mut gone: Vec<Id> =
            self.held.iter().filter(|(_, h)| h.until <= now).map(|(k, _)| *k).collect();
        gone.sort_unstable();
        for k in &gone {
            self.held.remove(k);
        }
        self.tombstones.retain(|_, (_, at)| *at > now);
        self.demoted.retain(|_, (_, at)| *at > now);
        gone
    }

    pub fn remove(&mut self, key: Id) -> bool {
        self.held.remove(&key).is_some()
    }

    /// Drops up to `count` copies, the narrowest arcs (least popular objects) first, and
    /// returns their keys.
    pub fn shed(&mut self, count: usize) -> Vec<Id> {
        if count == 0 {
            return Vec::new();
        }
        let mut by_level: Vec<(u8, Id)> = self.held.iter().map(|(k, h)| (h.level, *k)).collect();
        if count < by_level.len() {
            by_level.select_nth_unstable_by(count, |a, b| b.cmp(a));
            by_level.truncate(count);
        }
        by_level.into_iter().map(|(_, key)| key).filter(|key| self.remove(*key)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offer(version: u64) -> Offer {
        let info = ObjectInfo { version, hash: [version as u8; 32], size: 10 };
        let (lease_ms, from_home, renewable) = (30_000, true, true);
        Offer { key: Id(7), level: 2, stamp: 5, info, lease_ms, from_home, renewable }
    }

    #[test]
    fn a_purged_version_never_comes_back() {
        let mut h = Holdings::default();
        let (now, lease) = (Duration::from_secs(1), Duration::from_secs(30));
        let from = Id(9);
        assert_eq!(h.consider(&offer(1), from, now, true), Considered::Fetch);
        assert_eq!(h.consider(&offer(1), from, now, true), Considered::Ignored, "one fetch");
        // Purged while the fetch was in flight.
        h.invalidate(Id(7), 2, now + lease);
        assert!(!h.store(&offer(1), Some(from), now, now + lease, false));
        assert!(h.valid(Id(7), now).is_none());
        assert_eq!(h.consider(&offer(1), from, now, true), Considered::Ignored);
        assert_eq!(h.consider(&offer(2), from, now, true), Considered::Fetch);
        assert!(h.store(&offer(2), Some(from), now, now + lease, false));
        h.renew_from(from, now, lease * 2);
        assert_eq!(h.valid(Id(7), now + lease).unwrap().until, now + lease * 2);
        // Detached copies no longer follow the source.
        h.detach(Id(7), from);
        h.renew_from(from, now + lease, lease * 2);
        assert_eq!(h.valid(Id(7), now + lease).unwrap().until, now + lease * 2);
        assert_eq!(h.expire(now + lease * 3), vec![Id(7)]);
    }

    #[test]
    fn the_least_recently_used_copy_goes_first() {
        let mut h = Holdings::default();
        let (t, lease) = (Duration::from_secs, Duration::from_secs(60));
        for (key, at) in [(1, 1), (2, 2), (3, 3)] {
            let o = Offer { key: Id(key), ..offer(1) };
            assert!(h.want_cache(&o));
            assert!(h.store(&o, None, t(at), t(at) + lease, true));
        }
        h.mark_used(Id(1), t(4));
        assert_eq!(h.evict_lru(1), vec![Id(2)]);
        assert_eq!(h.evict_lru(1), vec![Id(3)]);
        assert_eq!(h.evict_lru(5), vec![Id(1)]);
        assert!(h.is_empty());
    }

    #[test]
    fn a_demoted_copy_is_not_revived_by_an_older_level() {
        let mut h = Holdings::default();
        let (now, lease) = (Duration::from_secs(1), Duration::from_secs(30));
        let (home, stale) = (Id(9), Id(8));
        assert_eq!(h.consider(&offer(1), home, now, true), Considered::Fetch);
        assert!(h.store(&offer(1), Some(home), now, now + lease, false));
        // The home narrowed the arc at stamp 6; we lie outside it.
        let narrowed = LevelStamp { level: 3, stamp: 6 };
        let grace = now + Duration::from_millis(100);
        assert_eq!(h.demote(Id(7), narrowed, false, grace, now + lease), Demoted::Dropped);
        // Still known at the new level (so the withdrawal goes on), gone after the grace.
        assert_eq!(h.known_level(Id(7), now), Some(narrowed));
        assert!(h.valid(Id(7), grace).is_none());
        // The same withdrawal again, or an older one, changes nothing.
        assert_eq!(h.demote(Id(7), narrowed, false, grace, now + lease), Demoted::Ignored);
        // A node that has not heard yet offers the old level (stamp 5): refused, no fetch,
        // however long its renewals run.
        assert_eq!(h.consider(&offer(1), stale, now, true), Considered::Ignored);
        h.renew_from(stale, now, lease * 2);
        assert_eq!(h.expire(grace), vec![Id(7)]);
        assert_eq!(h.consider(&offer(1), stale, grace, true), Considered::Ignored);
        assert_eq!(h.known_level(Id(7), grace), Some(narrowed));
        // A later level (a promotion back) is taken.
        let promoted = Offer { stamp: 7, ..offer(1) };
        assert_eq!(h.consider(&promoted, home, grace, true), Considered::Fetch);
        // Inside the arc, a withdrawal only moves the copy to the new level.
        assert!(h.store(&promoted, Some(home), grace, grace + lease, false));
        let wider = LevelStamp { level: 1, stamp: 8 };
        assert_eq!(h.demote(Id(7), wider, true, grace, grace + lease), Demoted::Relevelled);
        let held = h.valid(Id(7), grace).unwrap();
        assert_eq!((held.level, held.stamp, held.source), (1, 8, None));
        assert_eq!(held.until, grace + lease);
    }
}
