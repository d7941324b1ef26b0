//! Copies a node holds for other homes: Beehive replicas (soft state under a lease) and passive
//! caches (a TTL), plus the tombstones that keep an invalidated version from coming back.

use super::wire::{LevelStamp, ObjectInfo, Offer};
use crate::hash::{FastMap, FastSet};
use crate::id::Id;
use crate::time::Time;
use std::num::NonZeroU32;
use std::time::Duration;

/// A copy as stored: packed (88 bytes), because a node keeps one per object it replicates,
/// ~10 000 at N = 1 024, C = 0.5. Times are nanoseconds in a `u64` (exact for 584 years,
/// half a [`Time`]) and the source is an index into [`Holdings`]' table of sources instead
/// of its 16-byte id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Held {
    pub info: ObjectInfo,
    /// When the home set `level` ([`Offer::stamp`]).
    pub stamp: u64,
    /// Dropped at this time unless renewed (a lease for replicas, the TTL for caches).
    until: u64,
    /// When the lease was last extended.
    renewed_at: u64,
    /// When this copy was stored or last answered a lookup: a passive cache under a budget
    /// makes room by dropping the least recently used.
    used_at: u64,
    /// The finger whose bulk renewals extend this copy (none for a copy offered with a short
    /// lease, which must not outlive the offerer's): 1 + its index in `Holdings::sources`.
    source: Option<NonZeroU32>,
    pub level: u8,
    /// A passive cache copy: never offered on, never renewed.
    pub cached: bool,
}

impl Held {
    /// Dropped at this time unless renewed.
    pub fn until(&self) -> Time {
        Duration::from_nanos(self.until)
    }

    /// When the lease was last extended.
    pub fn renewed_at(&self) -> Time {
        Duration::from_nanos(self.renewed_at)
    }

    /// Whether a source's bulk renewals extend this copy.
    pub fn attached(&self) -> bool {
        self.source.is_some()
    }
}

/// `t` in nanoseconds (saturating, past 584 years).
fn nanos(t: Time) -> u64 {
    u64::try_from(t.as_nanos()).unwrap_or(u64::MAX)
}

/// Sources below which [`Holdings::expire`] does not compact the table.
const MIN_COMPACT: usize = 64;

/// A node whose bulk renewals copies follow.
#[derive(Debug)]
struct Source {
    id: Id,
    /// (when, until) of its latest bulk renewal, in nanoseconds.
    bulk: Option<(u64, u64)>,
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
    /// Every node a copy follows or whose bulk renewal is still in force, with its latest
    /// renewal (applied lazily to attached copies, so a delta answer costs O(1) here instead
    /// of a pass over every copy). A copy finds its source's renewal by index, without a hash
    /// lookup. Compacted by [`Holdings::expire`] once it has doubled: under churn a node has
    /// had many more fingers than it has now.
    sources: Vec<Source>,
    /// id → 1 + index in `sources`.
    source_index: FastMap<Id, NonZeroU32>,
    /// `sources.len()` after the last compaction.
    compacted: usize,
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

/// The newest level stamp known for `key`: its copy `held`'s, or the demotion that dropped it.
/// Takes the maps apart so that a caller holding the copy mutably can ask.
fn newest_stamp(
    demoted: &FastMap<Id, (LevelStamp, Time)>,
    key: Id,
    held: Option<&Held>,
) -> Option<u64> {
    let dropped = demoted.get(&key).map(|(l, _)| l.stamp);
    held.map(|h| h.stamp).max(dropped)
}

/// `h` with its source's bulk renewal applied.
fn effective(sources: &[Source], h: &Held) -> Held {
    // A bulk renewal that does not lengthen the lease (the copy's own lease runs longer)
    // still says the source renews it: the copy stays renewable and unchanged.
    match h.source.and_then(|s| sources[slot(s)].bulk) {
        Some((at, until)) => {
            Held { until: h.until.max(until), renewed_at: h.renewed_at.max(at), ..*h }
        }
        None => *h,
    }
}

/// `h` with its source's bulk renewal folded in, following no one.
fn unfollowed(sources: &[Source], h: &Held) -> Held {
    Held { source: None, ..effective(sources, h) }
}

/// Where a copy's `source` points in `Holdings::sources`.
fn slot(source: NonZeroU32) -> usize {
    source.get() as usize - 1
}

/// The `source` that points at `slot` (the inverse of [`slot`]).
fn source_at(slot: usize) -> NonZeroU32 {
    let slot = u32::try_from(slot).expect("fewer than 2^32 sources");
    NonZeroU32::MIN.saturating_add(slot)
}

/// `id`'s index in `sources`, added if new.
fn intern(sources: &mut Vec<Source>, index: &mut FastMap<Id, NonZeroU32>, id: Id) -> NonZeroU32 {
    *index.entry(id).or_insert_with(|| {
        sources.push(Source { id, bulk: None });
        source_at(sources.len() - 1)
    })
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
        self.held.iter().map(|(k, h)| (*k, effective(&self.sources, h)))
    }

    /// Every copy as stored, without bulk renewals: for a scan that filters on the level (which
    /// renewals do not change) before it asks [`Holdings::valid_held`] for the copy.
    pub fn stored(&self) -> impl Iterator<Item = (Id, &Held)> + '_ {
        self.held.iter().map(|(k, h)| (*k, h))
    }

    /// The node whose bulk renewals extend `h`, if any.
    pub fn source_of(&self, h: &Held) -> Option<Id> {
        h.source.map(|s| self.sources[slot(s)].id)
    }

    /// The copy of `key` this node may serve at `now`.
    pub fn valid(&self, key: Id, now: Time) -> Option<Held> {
        self.valid_held(key, self.held.get(&key)?, now)
    }

    /// [`Holdings::valid`] for a copy the caller already has in hand.
    pub fn valid_held(&self, key: Id, h: &Held, now: Time) -> Option<Held> {
        let h = effective(&self.sources, h);
        (h.until > nanos(now) && !self.is_dead(key, h.info.version)).then_some(h)
    }

    /// How many copies this node may serve at `now` (one pass, no lookups per copy).
    pub fn valid_count(&self, now: Time) -> usize {
        self.held.iter().filter(|(k, h)| self.valid_held(**k, h, now).is_some()).count()
    }

    /// The newest level we know for `key`: our copy's, or the one that dropped it.
    pub fn known_level(&self, key: Id, now: Time) -> Option<LevelStamp> {
        self.known_level_of(key, self.valid(key, now))
    }

    /// [`Holdings::known_level`] given what [`Holdings::valid`] said of `key`.
    pub fn known_level_of(&self, key: Id, valid: Option<Held>) -> Option<LevelStamp> {
        if let Some(h) = valid.filter(|h| !h.cached) {
            return Some(LevelStamp { level: h.level, stamp: h.stamp });
        }
        self.demoted.get(&key).map(|(l, _)| *l)
    }

    /// Whether an offer stamped `stamp` is older than a level we already know for `key`.
    fn is_stale(&self, key: Id, stamp: u64) -> bool {
        newest_stamp(&self.demoted, key, self.held.get(&key)).is_some_and(|known| known > stamp)
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
        // One lookup of the copy serves the staleness test and the change.
        let held = self.held.get_mut(&key);
        if newest_stamp(&self.demoted, key, held.as_deref()).is_some_and(|k| k >= new.stamp) {
            return Demoted::Ignored;
        }
        match held {
            Some(h) if h.cached => Demoted::Ignored,
            Some(h) => {
                let e = effective(&self.sources, h);
                *h = Held { level: new.level, stamp: new.stamp, source: None, ..e };
                if inside {
                    return Demoted::Relevelled;
                }
                // Out of the arc: gone once the answers already sent for it have been used
                // (`grace`), and offered to nobody meanwhile (the level says so).
                h.until = h.until.min(nanos(grace));
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
        // Most nodes hold no tombstone: skip hashing the key for an empty table.
        !self.tombstones.is_empty()
            && self.tombstones.get(&key).is_some_and(|(min, _)| version < *min)
    }

    /// What to do with an offer from `from` (a node between us and the home, checked by the
    /// caller): renew the copy we have, or fetch the body (remembering the fetch). A renewed
    /// copy follows `from`'s bulk renewals only if `attach` (its lease is a long one).
    pub fn consider(&mut self, offer: &Offer, from: Id, now: Time, attach: bool) -> Considered {
        let dead = self.is_dead(offer.key, offer.info.version);
        // One lookup of the copy serves the staleness test and the renewal.
        let held = self.held.get_mut(&offer.key);
        let stale = newest_stamp(&self.demoted, offer.key, held.as_deref())
            .is_some_and(|k| k > offer.stamp);
        if dead || stale {
            return Considered::Ignored;
        }
        let until = nanos(now + Duration::from_millis(u64::from(offer.lease_ms)));
        if let Some(stored) = held {
            let h = effective(&self.sources, stored);
            if h.info.version == offer.info.version && h.info.hash == offer.info.hash {
                // `from`'s index, looked up once for the test and the renewal.
                let known = self.source_index.get(&from).copied();
                let follows = h.source.is_some() && h.source == known;
                if h.cached || (until <= h.until && (!attach || follows)) {
                    return Considered::Ignored;
                }
                let until = until.max(h.until);
                let changed = h.level != offer.level || h.source.is_none() && attach;
                let source = attach.then(|| {
                    known.unwrap_or_else(|| intern(&mut self.sources, &mut self.source_index, from))
                });
                let (level, stamp, renewed_at) = (offer.level, offer.stamp, nanos(now));
                *stored = Held { until, level, stamp, source, renewed_at, ..h };
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

    /// Renews our copy of `key` as an offer of it from `source` with `lease` left would,
    /// when the caller knows the offer to be the copy's own level, stamp and version (see
    /// [`super::digest`]): the renewal branch of [`Holdings::consider`], without its
    /// lookups. Returns whether the copy followed no one before (its offers to others
    /// become renewable again).
    pub fn renew_offered(&mut self, key: Id, source: Id, now: Time, lease: Duration) -> bool {
        let known = self.source_index.get(&source).copied();
        let Some(stored) = self.held.get_mut(&key).filter(|h| !h.cached) else {
            return false;
        };
        let h = effective(&self.sources, stored);
        let until = nanos(now + lease);
        let follows = h.source.is_some() && h.source == known;
        if until <= h.until && follows {
            return false;
        }
        let source =
            known.unwrap_or_else(|| intern(&mut self.sources, &mut self.source_index, source));
        let resumed = h.source.is_none();
        *stored =
            Held { until: until.max(h.until), source: Some(source), renewed_at: nanos(now), ..h };
        resumed
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
        let s = intern(&mut self.sources, &mut self.source_index, source);
        let (at, until) = (nanos(now), nanos(now + lease));
        let e = self.sources[slot(s)].bulk.get_or_insert((at, until));
        e.0 = e.0.max(at);
        e.1 = e.1.max(until);
    }

    /// Stops `source`'s bulk renewals of `key` (it withdrew the offer, or no longer renews its
    /// own copy). Returns whether the copy was attached to it.
    pub fn detach(&mut self, key: Id, source: Id) -> bool {
        let Some(s) = self.source_index.get(&source).copied() else {
            return false;
        };
        match self.held.get_mut(&key) {
            Some(h) if h.source == Some(s) => {
                *h = unfollowed(&self.sources, h);
                true
            }
            _ => false,
        }
    }

    /// Stops the bulk renewals, whoever's, of every attached copy of a key `scope` selects
    /// except `keep` (the full list of offers there from the node that should renew them).
    /// Returns the keys detached, sorted.
    pub fn detach_all_but(&mut self, scope: impl Fn(Id) -> bool, keep: &FastSet<Id>) -> Vec<Id> {
        let mut keys: Vec<Id> = self
            .held
            .iter()
            .filter(|(k, h)| h.source.is_some() && scope(**k) && !keep.contains(*k))
            .map(|(k, _)| *k)
            .collect();
        keys.sort_unstable();
        for k in &keys {
            if let Some(h) = self.held.get_mut(k) {
                *h = unfollowed(&self.sources, h);
            }
        }
        keys
    }

    /// The valid replicas (not caches) among the keys `scope` selects: what a resync
    /// compares (see [`super::digest`]).
    pub fn replicas_in<'a>(
        &'a self,
        now: Time,
        scope: impl Fn(Id) -> bool + 'a,
    ) -> impl Iterator<Item = (Id, Held)> + 'a {
        self.held.iter().filter(move |(k, _)| scope(**k)).filter_map(move |(k, h)| {
            let h = self.valid_held(*k, h, now).filter(|h| !h.cached)?;
            Some((*k, h))
        })
    }

    /// Copies whose lease was not extended since `since`: their offers to others changed.
    pub fn not_renewed_since(&self, since: Time) -> Vec<Id> {
        let since = nanos(since);
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
        let source = source.map(|s| intern(&mut self.sources, &mut self.source_index, s));
        let (level, stamp, info, until, now) =
            (offer.level, offer.stamp, offer.info, nanos(until), nanos(now));
        let held =
            Held { level, stamp, info, until, cached, source, renewed_at: now, used_at: now };
        self.held.insert(offer.key, held);
        true
    }

    /// `key`'s copy answered a lookup at `now`.
    pub fn mark_used(&mut self, key: Id, now: Time) {
        if let Some(h) = self.held.get_mut(&key) {
            h.used_at = h.used_at.max(nanos(now));
        }
    }

    /// Drops up to `count` copies, the least recently used first, and returns their keys.
    pub fn evict_lru(&mut self, count: usize) -> Vec<Id> {
        if count == 0 {
            return Vec::new();
        }
        let mut by_use: Vec<(u64, Id)> = self.held.iter().map(|(k, h)| (h.used_at, *k)).collect();
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
        let now_ns = nanos(now);
        // Fold the bulk renewals in, then forget the spent ones.
        if self.sources.iter().any(|s| s.bulk.is_some()) {
            for h in self.held.values_mut() {
                *h = effective(&self.sources, h);
            }
            for s in &mut self.sources {
                s.bulk = s.bulk.filter(|(_, until)| *until > now_ns);
            }
        }
        let mut gone: Vec<Id> =
            self.held.iter().filter(|(_, h)| h.until <= now_ns).map(|(k, _)| *k).collect();
        gone.sort_unstable();
        for k in &gone {
            self.held.remove(k);
        }
        self.tombstones.retain(|_, (_, at)| *at > now);
        self.demoted.retain(|_, (_, at)| *at > now);
        if self.sources.len() >= (2 * self.compacted).max(MIN_COMPACT) {
            self.compact_sources();
        }
        gone
    }

    /// Drops the sources no copy follows and with no renewal in force, and renumbers the
    /// rest. Forgetting such a source changes nothing: met again, it is added afresh.
    fn compact_sources(&mut self) {
        let mut used: Vec<bool> = self.sources.iter().map(|s| s.bulk.is_some()).collect();
        for s in self.held.values().filter_map(|h| h.source) {
            used[slot(s)] = true;
        }
        let mut renumbered: Vec<Option<NonZeroU32>> = vec![None; self.sources.len()];
        let mut kept = Vec::new();
        for (i, source) in std::mem::take(&mut self.sources).into_iter().enumerate() {
            if used[i] {
                renumbered[i] = Some(source_at(kept.len()));
                kept.push(source);
            }
        }
        for h in self.held.values_mut() {
            h.source = h.source.and_then(|s| renumbered[slot(s)]);
        }
        self.source_index = kept.iter().enumerate().map(|(i, s)| (s.id, source_at(i))).collect();
        self.sources = kept;
        self.compacted = self.sources.len();
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
        assert_eq!(h.valid(Id(7), now + lease).unwrap().until(), now + lease * 2);
        // Detached copies no longer follow the source.
        h.detach(Id(7), from);
        h.renew_from(from, now + lease, lease * 2);
        assert_eq!(h.valid(Id(7), now + lease).unwrap().until(), now + lease * 2);
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
        assert_eq!((held.level, held.stamp, h.source_of(&held)), (1, 8, None));
        assert_eq!(held.until(), grace + lease);
    }

    #[test]
    fn a_packed_copy_keeps_its_source_lease_and_level() {
        // A copy is stored once per object per node: keep it small.
        assert!(std::mem::size_of::<Held>() <= 88, "{}", std::mem::size_of::<Held>());
        let mut h = Holdings::default();
        let (now, lease) = (Duration::new(3, 123_456_789), Duration::from_millis(30_001));
        let sources = [Id(9), Id(u128::MAX), Id(1 << 100)];
        for (i, from) in sources.into_iter().enumerate() {
            let key = Id(100 + i as u128);
            let o = Offer { key, level: 60 + i as u8, ..offer(1) };
            assert!(h.store(&o, Some(from), now, now + lease, false));
            let held = h.valid(key, now).unwrap();
            assert_eq!(h.source_of(&held), Some(from));
            assert_eq!((held.level, held.stamp, held.info), (60 + i as u8, 5, o.info));
            // Nanosecond times come back exactly.
            assert_eq!((held.until(), held.renewed_at()), (now + lease, now));
        }
        let unattached = Offer { key: Id(200), ..offer(1) };
        assert!(h.store(&unattached, None, now, now + lease, false));
        assert_eq!(h.source_of(&h.valid(Id(200), now).unwrap()), None);
        // A bulk renewal reaches only the copies of its own source.
        h.renew_from(Id(u128::MAX), now + lease / 2, lease);
        assert_eq!(h.valid(Id(101), now).unwrap().until(), now + lease / 2 + lease);
        assert_eq!(h.valid(Id(100), now).unwrap().until(), now + lease);
        assert!(h.detach(Id(101), Id(u128::MAX)));
        assert!(!h.detach(Id(100), Id(u128::MAX)));
        let held = h.valid(Id(101), now).unwrap();
        assert_eq!((h.source_of(&held), held.until()), (None, now + lease / 2 + lease));
    }

    #[test]
    fn sources_no_copy_follows_are_forgotten_and_the_rest_keep_theirs() {
        let mut h = Holdings::default();
        let (now, lease) = (Duration::from_secs(1), Duration::from_secs(30));
        // 200 fingers over time, each the source of one copy; the first 190 copies lapse.
        for i in 0..200u128 {
            let until = if i < 190 { now + lease } else { now + lease * 10 };
            let o = Offer { key: Id(1_000 + i), ..offer(1) };
            assert!(h.store(&o, Some(Id(i + 1)), now, until, false));
        }
        assert_eq!(h.sources.len(), 200);
        let later = now + lease * 2;
        assert_eq!(h.expire(later).len(), 190);
        assert_eq!(h.sources.len(), 10, "only the sources of the ten copies left");
        for i in 190..200u128 {
            let held = h.valid(Id(1_000 + i), later).unwrap();
            assert_eq!(h.source_of(&held), Some(Id(i + 1)));
        }
        // Renewals and detaching still find them by id.
        h.renew_from(Id(200), later, lease * 20);
        assert_eq!(h.valid(Id(1_199), later).unwrap().until(), later + lease * 20);
        assert!(h.detach(Id(1_198), Id(199)));
        assert!(!h.detach(Id(1_000), Id(1)), "a forgotten source has no copies");
        // Met again, a forgotten source is added afresh.
        assert!(h.store(
            &Offer { key: Id(5), ..offer(1) },
            Some(Id(1)),
            later,
            later + lease,
            false
        ));
        assert_eq!(h.source_of(&h.valid(Id(5), later).unwrap()), Some(Id(1)));
    }
}
