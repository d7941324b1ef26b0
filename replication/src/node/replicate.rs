//! Beehive on the node: counting served requests, the replication tick (counts toward homes,
//! reports toward the leader, pulls from fingers), offers, copies and invalidation.
//!
//! Everything rides on one periodic pull per finger (docs/replication.md): counts for the keys whose
//! next hop is that finger go up on the request, offers and the leader's result come back on
//! the answer. Bodies never pass through the core: it asks the caller to fetch one
//! ([`Event::FetchBody`]), and the caller reports a verified body with
//! [`Node::replica_stored`].

use super::{Awaiting, Event, Node, Timer};
use crate::beehive::holdings::{Considered, Demoted, Holdings};
use crate::beehive::home::Homes;
use crate::beehive::leader::Leader;
use crate::beehive::popularity::SpaceSaving;
use crate::beehive::wire::{
    arc_start, in_arc, CountEntry, LevelResult, LevelStamp, ObjectInfo, Offer, OfferList, Pull,
    Report, Withdrawn, MAX_COUNT_ENTRIES, MAX_OFFERS,
};
use crate::config::{Mode, ReplicationConfig};
use crate::hash::{FastMap, FastSet};
use crate::id::Id;
use crate::message::{NextHop, Request, Response};
use crate::peer::Peer;
use crate::time::Time;
use std::collections::{btree_map, BTreeMap, VecDeque};
use std::num::NonZeroUsize;
use std::time::Duration;

fn millis(d: Duration) -> u32 {
    u32::try_from(d.as_millis()).unwrap_or(u32::MAX)
}

/// Who answered an object lookup, and with what.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Served {
    /// The object's level as the holder knows it (the home-only level for a home that has no
    /// result yet).
    pub level: u8,
    /// The body to fetch from the holder; `None` while its home has not fetched it yet.
    pub object: Option<ObjectInfo>,
}

/// One object as an operator sees it on this node ([`Node::known_objects`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct KnownObject {
    pub key: Id,
    /// The level its home set (for a copy: the level it was offered at).
    pub level: u8,
    /// Requests per second, smoothed: only the home knows it.
    pub rate: Option<f64>,
    /// This node is the object's home (else it holds a copy).
    pub home: bool,
    /// Body size in bytes; `None` while a home has not fetched the body yet.
    pub size: Option<u64>,
}

/// A node's Beehive state. See the module docs.
#[derive(Debug)]
pub(crate) struct Replication {
    pub cfg: ReplicationConfig,
    /// Requests this node served this interval.
    sketch: SpaceSaving,
    /// Counts received for keys homed elsewhere, forwarded next tick.
    relay: Vec<CountEntry>,
    pub homes: Homes,
    pub holdings: Holdings,
    leader: Leader,
    /// Reports received and not yet passed on (or, at the leader, not yet solved), merged
    /// per generation.
    reports_in: BTreeMap<u64, Report>,
    /// The generation of our last tick: a report of it or older that arrives now is late.
    ticked: Option<u64>,
    /// The newest leader result and when it was issued on our clock (received minus age).
    result: Option<(LevelResult, Time)>,
    /// This interval's object lookups that ended at a holder: Σ hops and Σ levels.
    hop_sum: f64,
    level_sum: f64,
    lookups: u64,
    /// Offer generations: bumped by every change to what we offer, so fingers can answer
    /// pulls with deltas (see [`OfferList`]).
    gen: u64,
    /// key → the generation of its last change (kept for [`CHANGE_LOG_TICKS`] ticks).
    changes: FastMap<Id, u64>,
    /// The generation at each of the last ticks; the oldest bounds what a delta can cover.
    tick_gens: VecDeque<u64>,
    last_tick: Time,
    previous_tick: Time,
    ticks: u64,
    /// finger → the generation of its offers we last saw.
    seen: FastMap<Id, u64>,
    /// Nodes that pulled from us, and when last: new offers are pushed to them soon.
    pullers: FastMap<Id, (Peer, Time)>,
    /// Keys whose offers go out with the next push (see [`PUSH_BATCHES`]).
    to_push: Vec<Id>,
    last_push: Option<Time>,
}

/// The level homes give objects while they have no leader result: home only, on any ring.
pub const NO_RESULT_LEVEL: u8 = (crate::beehive::wire::MAX_LEVELS - 1) as u8;

/// The leader solves the previous generation this share of an interval after its own tick,
/// not at it. A node ticks just before its next hop toward key 0 when they are close on the
/// ring, and its report lands after that tick whenever the link is slower than the gap: at
/// N = 1 024 solving at the tick read 909 to 1 139 nodes for 1 024 and doubled M.
const SOLVE_SLACK: u32 = 8;
/// Generations of reports a node keeps at once (see `take_report`).
const MAX_GENERATIONS: usize = 4;
/// Ticks of offer changes kept for delta answers; a puller further behind gets a full list.
const CHANGE_LOG_TICKS: usize = 8;
/// Every this many ticks a pull asks a finger for its full list.
const FULL_PULL_EVERY: u64 = 6;
/// A push goes out at once unless one went out less than an interval / this ago; then it
/// waits for the end of that gap, gathering whatever else comes, one message per puller.
/// At most this many push rounds per interval, so pushing keeps O(log N) messages per node
/// per interval however many copies move, while a promotion still crosses a tree of depth
/// log2 N within about an interval.
const PUSH_BATCHES: u32 = 16;

impl Replication {
    pub fn new(cfg: ReplicationConfig, seed: u64) -> Self {
        let capacity = NonZeroUsize::new(cfg.sketch_capacity).unwrap_or(NonZeroUsize::MIN);
        Replication {
            leader: Leader::new(&cfg),
            cfg,
            sketch: SpaceSaving::new(capacity, seed),
            relay: Vec::new(),
            homes: Homes::default(),
            holdings: Holdings::default(),
            reports_in: BTreeMap::new(),
            ticked: None,
            result: None,
            hop_sum: 0.0,
            level_sum: 0.0,
            lookups: 0,
            gen: 0,
            changes: FastMap::default(),
            tick_gens: VecDeque::new(),
            last_tick: Time::ZERO,
            previous_tick: Time::ZERO,
            ticks: 0,
            seen: FastMap::default(),
            pullers: FastMap::default(),
            to_push: Vec::new(),
            last_push: None,
        }
    }

    /// The shared clock (see [`crate::config::ReplicationConfig::clock_offset`]) in ms: level
    /// stamps are read on it.
    fn clock_ms(&self, now: Time) -> u64 {
        u64::try_from((now + self.cfg.clock_offset).as_millis()).unwrap_or(u64::MAX)
    }

    /// Whether a level stamp from a peer is plausible: not from further in the future than
    /// an interval (clock skew), so a stranger cannot pin a copy to a level for ever.
    fn plausible_stamp(&self, now: Time, stamp: u64) -> bool {
        stamp <= self.clock_ms(now).saturating_add(millis(self.cfg.interval).into())
    }

    /// How many objects past its storage budget this node would be with `more` on top of
    /// what it stores or is fetching (0 without a budget).
    fn budget_excess(&self, more: usize) -> usize {
        let stored = self.homes.len() + self.holdings.committed() + more;
        // Budgets are validated finite and ≥ 1; the cast saturates.
        self.cfg.budget.map_or(0, |b| stored.saturating_sub(b.floor() as usize))
    }

    /// Whether a node that last pulled from us at `at` still gets our pushes.
    fn recent_puller(&self, at: Time, now: Time) -> bool {
        at + self.cfg.interval * 2 > now
    }

    /// Records that our offer of `key` changed.
    pub fn touch(&mut self, key: Id) {
        self.gen += 1;
        self.changes.insert(key, self.gen);
    }

    /// Closes a tick of the change log.
    fn roll_changes(&mut self) {
        self.tick_gens.push_back(self.gen);
        if self.tick_gens.len() > CHANGE_LOG_TICKS {
            self.tick_gens.pop_front();
        }
        let floor = self.tick_gens.front().copied().unwrap_or(0);
        self.changes.retain(|_, g| *g > floor);
    }

    /// Whether a delta since `since` can be answered from the change log.
    fn covers(&self, since: u64) -> bool {
        since <= self.gen && self.tick_gens.front().is_some_and(|floor| since >= *floor)
    }

    /// The lease a home grants: renewals reach a copy through a chain of pulls (about
    /// ½·log2 N of them, each up to an interval apart), so the lease covers that chain plus
    /// `lease_intervals` to spare. A longer chain only costs a refetch, not a wrong answer.
    pub fn lease(&self) -> Time {
        let nodes = self.result().map_or(16.0, |r| r.nodes).max(2.0);
        let chain = (nodes.log2() / 2.0).ceil().min(64.0) as u32;
        self.cfg.interval * (chain + self.cfg.lease_intervals)
    }

    fn max_age(&self) -> Time {
        self.cfg.interval * self.cfg.result_max_age_intervals
    }

    /// The result homes may act on: present and not aged.
    pub fn fresh_result(&self, now: Time) -> Option<&LevelResult> {
        self.result.as_ref().filter(|(_, at)| *at + self.max_age() > now).map(|(r, _)| r)
    }

    pub fn result(&self) -> Option<&LevelResult> {
        self.result.as_ref().map(|(r, _)| r)
    }

    /// Takes `r` if it is newer than ours or ours has aged.
    fn adopt(&mut self, now: Time, mut r: LevelResult) {
        let age = self.cfg.interval * r.age;
        if age >= self.max_age() {
            return;
        }
        let take = match &self.result {
            None => true,
            Some((cur, at)) => r.newer_than(cur) || *at + self.max_age() <= now,
        };
        if take {
            r.age = 0;
            self.result = Some((r, now.saturating_sub(age)));
        }
    }

    /// Our result as we pass it on: its age grows with the time we held it.
    fn result_to_send(&self, now: Time, known: Option<(u64, Id)>) -> Option<LevelResult> {
        let (r, at) = self.result.as_ref()?;
        if known.is_some_and(|k| k >= (r.epoch, r.leader)) {
            return None;
        }
        let held = now.saturating_sub(*at).as_nanos() / self.cfg.interval.as_nanos().max(1);
        let mut out = r.clone();
        out.age = u32::try_from(held).unwrap_or(u32::MAX);
        Some(out)
    }

    /// The home-only level: from the result, or from our own view of the ring size.
    pub fn top_level(&self, now: Time) -> u8 {
        self.fresh_result(now).map_or(NO_RESULT_LEVEL, |r| r.top_level())
    }
}

impl Node {
    // ------------------------------------------------------------ commands

    /// Starts an object lookup for `key`: like [`Node::lookup`], but any node holding a copy
    /// answers, and the completion carries [`Served`]. A copy held here (or being home)
    /// completes at once with 0 hops.
    pub fn fetch(&mut self, now: Time, key: Id) -> crate::LookupId {
        if let Some(served) = self.serve(now, key, None) {
            let id = crate::LookupId(self.next_lookup);
            self.next_lookup += 1;
            let me = self.me();
            self.note_hops(0, served.level);
            let done = Event::LookupDone { id, key, home: me, hops: 0, served: Some(served) };
            self.events.push_back(done);
            return id;
        }
        self.start_user_lookup(now, key, true)
    }

    /// A request for `key` was served from this node's own store without a lookup (the HTTP
    /// face's local hit): counted for popularity and as a 0-hop lookup, exactly as
    /// [`Node::fetch`] counts one. Returns `false` if the core holds no copy of `key` here
    /// (the store kept a body the core has dropped; the caller should drop it too).
    pub fn served_locally(&mut self, now: Time, key: Id) -> bool {
        match self.serve(now, key, None) {
            Some(served) if served.object.is_some() => {
                self.note_hops(0, served.level);
                true
            }
            _ => false,
        }
    }

    /// The caller fetched and verified the body `offer` describes (from [`Event::FetchBody`]).
    /// Returns `false` if the copy is no longer wanted (the version was purged meanwhile): the
    /// caller drops the body.
    pub fn replica_stored(&mut self, now: Time, from: Peer, offer: Offer) -> bool {
        let rep = &mut self.rep;
        let (until, cached) = match rep.cfg.mode {
            Mode::Passive => (now + rep.cfg.cache_ttl, true),
            _ => (now + Duration::from_millis(u64::from(offer.lease_ms)), false),
        };
        if self.owns(offer.key) {
            self.rep.holdings.fetch_failed(offer.key);
            return false;
        }
        let attach = !cached && offer.renewable;
        let stored = self.rep.holdings.store(&offer, attach.then_some(from.id), now, until, cached);
        if stored {
            self.rep.touch(offer.key);
            if !cached {
                self.push_offers(now, &[offer.key]);
            }
        }
        stored
    }

    /// The body fetch for `key` failed (unreachable holder, hash mismatch): a later offer may
    /// try again.
    pub fn fetch_failed(&mut self, key: Id) {
        self.rep.holdings.fetch_failed(key);
    }

    /// The home got `key`'s body from the origin (after [`Event::NeedObject`], or because the
    /// content changed). A body with a new hash gets a new version, and every older version is
    /// invalidated over the replica arc. Returns the version.
    pub fn put_home(&mut self, now: Time, key: Id, hash: [u8; 32], size: u64) -> u64 {
        let top = self.rep.top_level(now);
        let obj = self.rep.homes.entry(key, top);
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
        self.rep.touch(key);
        if changed {
            self.broadcast_invalidate(now, key, version);
        }
        if promoted {
            self.push_offers(now, &[key]);
        }
        version
    }

    /// Purges `key` at its home: the body is dropped (the next request refetches it from the
    /// origin) and every copy is invalidated over the replica arc. Returns `false` if this
    /// node is not the key's home (the caller routes the purge there first).
    pub fn purge(&mut self, now: Time, key: Id) -> bool {
        if !self.owns(key) {
            return false;
        }
        let top = self.rep.top_level(now);
        let obj = self.rep.homes.entry(key, top);
        obj.info = None;
        let min_version = obj.next_version;
        self.rep.touch(key);
        self.broadcast_invalidate(now, key, min_version);
        true
    }

    // ------------------------------------------------------------ accessors

    /// The newest leader result this node has.
    pub fn level_result(&self) -> Option<&LevelResult> {
        self.rep.result()
    }

    /// Objects held here: home objects with a body, then valid copies.
    pub fn stored_objects(&self, now: Time) -> usize {
        let homes = self.rep.homes.iter().filter(|(_, o)| o.info.is_some()).count();
        homes + self.rep.holdings.valid_count(now)
    }

    /// The copy of `key` this node would serve now, if any (home or replica/cache).
    pub fn holds(&self, now: Time, key: Id) -> Option<ObjectInfo> {
        if let Some(info) = self.rep.homes.get(key).and_then(|o| o.info) {
            if self.owns(key) {
                return Some(info);
            }
        }
        self.rep.holdings.valid(key, now).map(|h| h.info)
    }

    /// The level the home set for `key`, if this node is its home.
    pub fn home_level(&self, key: Id) -> Option<u8> {
        self.rep.homes.get(key).map(|o| o.level)
    }

    /// Count entries refused at this home because their origin could not have served the key.
    pub fn refused_counts(&self) -> u64 {
        self.rep.homes.refused_counts
    }

    // ---- operator view (admin `/objects`, `/stats`): read-only, O(objects) per call.

    /// Every object this node knows, for operators: those it is home for (with their
    /// smoothed rate, body or not) and the valid copies it holds. Unordered; the admin
    /// listener ranks them (see [`Node::top_objects`]).
    pub fn known_objects(&self, now: Time) -> impl Iterator<Item = KnownObject> + '_ {
        let homes =
            self.rep.homes.iter().filter(|(k, _)| self.owns(**k)).map(|(k, o)| KnownObject {
                key: *k,
                level: o.level,
                rate: Some(o.rate.value()),
                home: true,
                size: o.info.map(|i| i.size),
            });
        let copies = self.rep.holdings.iter().filter_map(move |(k, _)| {
            let h = self.rep.holdings.valid(k, now)?;
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

    // ---- end of the operator view.

    /// Whether we are `key`'s home by our own view of the ring.
    fn owns(&self, key: Id) -> bool {
        self.routing.is_home(key, false, |p| self.peers.is_suspected(p))
    }

    // ------------------------------------------------------------ serving

    /// Serves `key` from here if we are its home or hold a valid copy, counting the request.
    /// `named` is the lookup's `as_home` flag.
    pub(super) fn serve(&mut self, now: Time, key: Id, named: Option<bool>) -> Option<Served> {
        let mode = self.rep.cfg.mode;
        let home =
            self.routing.is_home(key, named.unwrap_or(false), |p| self.peers.is_suspected(p));
        let served = if home {
            let top = self.rep.top_level(now);
            let obj = self.rep.homes.entry(key, top);
            obj.first_served.get_or_insert(now);
            if obj.info.is_none() && !obj.fetch_asked {
                obj.fetch_asked = true;
                self.events.push_back(Event::NeedObject { key });
            }
            Served { level: obj.level, object: obj.info }
        } else {
            let h = self.rep.holdings.valid(key, now)?;
            Served { level: h.level, object: Some(h.info) }
        };
        if mode == Mode::Beehive {
            self.rep.sketch.record(key.0, 1);
        }
        Some(served)
    }

    /// Adds an object lookup to the hop statistics the leader measures h from.
    pub(super) fn note_hops(&mut self, hops: u32, level: u8) {
        self.rep.hop_sum += f64::from(hops);
        self.rep.level_sum += f64::from(level);
        self.rep.lookups += 1;
    }

    /// Passive mode: an object lookup ended at `holder`; cache the object here and on every
    /// node the lookup passed.
    pub(super) fn cache_along(
        &mut self,
        now: Time,
        key: Id,
        served: Served,
        holder: Peer,
        path: Vec<Peer>,
    ) {
        let Some(info) = served.object else { return };
        let lease_ms = millis(self.rep.cfg.cache_ttl);
        let (level, stamp, from_home, renewable) = (served.level, 0, false, false);
        let offer = Offer { key, level, stamp, info, lease_ms, from_home, renewable };
        if self.rep.holdings.want_cache(&offer) {
            self.events.push_back(Event::FetchBody { from: holder, offer });
        }
        for p in path {
            if p.id != holder.id && p.id != self.me().id {
                self.send_request(now, p, Request::Cache { offer, holder }, Awaiting::Ack);
            }
        }
    }

    // ------------------------------------------------------------ requests we answer

    pub(super) fn answer_pull(&mut self, now: Time, from: Peer, pull: Pull) -> Response {
        let me = self.me().id;
        if self.rep.cfg.mode == Mode::Beehive {
            self.rep.pullers.insert(from.id, (from, now));
            for e in pull.counts {
                if self.owns(e.key) {
                    self.rep.homes.count(e);
                } else if self.rep.relay.len() < MAX_COUNT_ENTRIES * 4 && e.origin != me {
                    self.rep.relay.push(e);
                }
            }
            if let Some(r) = pull.report {
                self.take_report(now, r);
            }
        }
        let since = pull.since.filter(|g| self.rep.covers(*g));
        let full = pull.full || since.is_none();
        let mut offers = Vec::new();
        let mut withdrawn = Vec::new();
        if let Some(g) = since {
            // What changed since `g` (a full answer lists the offers anyway and only takes
            // the withdrawals); in a delta the bulk renewal covers the rest.
            let mut keys: Vec<Id> =
                self.rep.changes.iter().filter(|(_, c)| **c > g).map(|(k, _)| *k).collect();
            keys.sort_unstable();
            for key in keys {
                match self.offer_to(now, from.id, key) {
                    Some(o) if !full => offers.push(o),
                    Some(_) => {}
                    None => withdrawn.push(Withdrawn { key, level: self.level_of(now, key) }),
                }
            }
        }
        if full {
            // Every object whose arc holds the puller.
            let keys: Vec<Id> = self
                .rep
                .homes
                .iter()
                .map(|(k, _)| *k)
                .chain(self.rep.holdings.iter().map(|(k, _)| k))
                .collect();
            for key in keys {
                offers.extend(self.offer_to(now, from.id, key));
            }
        }
        offers.sort_unstable_by_key(|o| (o.level, o.key));
        offers.dedup_by_key(|o| o.key);
        offers.truncate(MAX_OFFERS);
        withdrawn.truncate(MAX_OFFERS);
        let renew = if full { Duration::ZERO } else { self.rep.lease() / 2 };
        let list =
            OfferList { gen: self.rep.gen, full, offers, withdrawn, renew_ms: millis(renew) };
        Response::Offers { list, result: self.rep.result_to_send(now, pull.known) }
    }

    /// The newest level we know for `key`, as its home or from a copy (or a dropped one).
    fn level_of(&self, now: Time, key: Id) -> Option<LevelStamp> {
        match self.rep.homes.get(key) {
            Some(obj) if self.owns(key) => Some(LevelStamp { level: obj.level, stamp: obj.stamp }),
            _ => self.rep.holdings.known_level(key, now),
        }
    }

    /// What we would offer `to` for `key`: our home copy (a full lease) or our own copy (what
    /// is left of its lease), if the object's arc holds `to`.
    fn offer_to(&self, now: Time, to: Id, key: Id) -> Option<Offer> {
        if let (Some(obj), Some(result)) = (self.rep.homes.get(key), self.rep.fresh_result(now)) {
            if let Some(info) = obj.info {
                if obj.level < result.top_level() && in_arc(to, key, obj.level) {
                    let lease_ms = millis(self.rep.lease());
                    let (from_home, renewable) = (true, true);
                    let (level, stamp) = (obj.level, obj.stamp);
                    return Some(Offer { key, level, stamp, info, lease_ms, from_home, renewable });
                }
                return None;
            }
        }
        let h = self.rep.holdings.valid(key, now)?;
        if h.cached || !in_arc(to, key, h.level) {
            return None;
        }
        let lease_ms = millis(h.until.saturating_sub(now));
        // Attached to a renewing source and renewed since the last tick: a detached copy is
        // dying, and the copies downstream of it must not outlive it.
        let renewable = h.source.is_some() && h.renewed_at >= self.rep.previous_tick;
        let (level, stamp, info) = (h.level, h.stamp, h.info);
        Some(Offer { key, level, stamp, info, lease_ms, from_home: false, renewable })
    }

    pub(super) fn answer_cache(&mut self, offer: Offer, holder: Peer) -> Response {
        if self.rep.cfg.mode == Mode::Passive
            && !self.owns(offer.key)
            && self.rep.holdings.want_cache(&offer)
        {
            self.events.push_back(Event::FetchBody { from: holder, offer });
        }
        Response::Ack
    }

    pub(super) fn answer_invalidate(
        &mut self,
        now: Time,
        key: Id,
        min_version: u64,
        arc_start: Id,
        limit: Id,
    ) -> Response {
        self.invalidate_here(now, key, min_version);
        self.forward_invalidate(now, key, min_version, arc_start, limit);
        Response::Ack
    }

    // ------------------------------------------------------------ answers we get

    pub(super) fn offers_received(
        &mut self,
        now: Time,
        from: Peer,
        list: OfferList,
        result: Option<LevelResult>,
    ) {
        if let Some(r) = result {
            self.rep.adopt(now, r);
        }
        if list.full && list.offers.len() < MAX_OFFERS {
            // Everything this finger offers us (not cut at the cap): copies it renewed that
            // it no longer offers stop following it.
            let offered: FastSet<Id> = list.offers.iter().map(|o| o.key).collect();
            for key in self.rep.holdings.detach_all_but(from.id, &offered) {
                self.rep.touch(key);
            }
        }
        self.take_offers(now, from, list.offers);
        for w in list.withdrawn {
            if let Some(level) = w.level {
                self.withdrawn_at(now, from, w.key, level);
            }
            if self.rep.holdings.detach(w.key, from.id) {
                self.rep.touch(w.key);
            }
        }
        if !list.full && list.renew_ms > 0 {
            let lease = Duration::from_millis(u64::from(list.renew_ms));
            self.rep.holdings.renew_from(from.id, now, lease);
        }
        self.rep.seen.insert(from.id, list.gen);
    }

    pub(super) fn answer_push(&mut self, now: Time, from: Peer, offers: Vec<Offer>) -> Response {
        if self.rep.cfg.mode == Mode::Beehive {
            self.take_offers(now, from, offers);
        }
        Response::Ack
    }

    pub(super) fn answer_report(&mut self, now: Time, report: Report) -> Response {
        if self.rep.cfg.mode == Mode::Beehive {
            self.take_report(now, report);
        }
        Response::Ack
    }

    /// A report from downstream. One of a generation we have not ticked for waits for that
    /// tick, to go on merged with ours. A late one (its sender ticked just before us, and the
    /// link was slower than the gap) goes on at once, so it still reaches the leader before
    /// the leader solves its generation; the leader keeps it for that solve.
    fn take_report(&mut self, now: Time, report: Report) {
        let g = report.generation;
        let ticked = self.rep.ticked;
        // Generations a correct peer can send: not past our next tick's plus one (clock
        // skew), not older than the leader still solves.
        let newest = ticked.map_or(u64::MAX, |t| t.saturating_add(2));
        let oldest = ticked.map_or(0, |t| t.saturating_sub(1));
        if g > newest || g < oldest {
            return;
        }
        let to = self.next_hop(Id(0));
        match to {
            Some(p) if ticked.is_some_and(|t| g <= t) => self.send_report(now, p, report),
            _ => {
                // A correct ring keeps at most three generations here (the leader's last,
                // its own and the next); more only comes from a peer making them up.
                let room = self.rep.reports_in.len() < MAX_GENERATIONS;
                match self.rep.reports_in.entry(g) {
                    btree_map::Entry::Occupied(mut e) => e.get_mut().merge(&report),
                    btree_map::Entry::Vacant(e) if room => {
                        e.insert(report);
                    }
                    btree_map::Entry::Vacant(_) => {}
                }
            }
        }
    }

    /// `from` withdrew `key` at `level`: drop our copy if we lie outside that arc (and tell
    /// our own pullers, through the change log), or take the level if we lie inside. Only a
    /// node between us and the home, or the one our copy follows, can tell us.
    fn withdrawn_at(&mut self, now: Time, from: Peer, key: Id, level: LevelStamp) {
        let me = self.me().id;
        let follows = self.rep.holdings.valid(key, now).is_some_and(|h| h.source == Some(from.id));
        if !(follows || from.id.in_open_closed(me, key))
            || !self.rep.plausible_stamp(now, level.stamp)
            || self.owns(key)
        {
            return;
        }
        let inside = in_arc(me, key, level.level);
        // Lookups this copy already answered may still come for the body (in a live ring:
        // a fetch a few round trips later); it expires, and is evicted, after that.
        let grace = now + self.rep.cfg.interval / 8;
        let forget_at = now + self.rep.lease();
        match self.rep.holdings.demote(key, level, inside, grace, forget_at) {
            Demoted::Dropped | Demoted::Relevelled => self.rep.touch(key),
            Demoted::Noted | Demoted::Ignored => {}
        }
    }

    /// Offers from `from` (pulled or pushed): renew the copies we have, fetch the others.
    fn take_offers(&mut self, now: Time, from: Peer, offers: Vec<Offer>) {
        let me = self.me().id;
        for offer in offers {
            // Only from between us and the home: renewals flow away from the home.
            if !in_arc(me, offer.key, offer.level)
                || !(offer.from_home || from.id.in_open_closed(me, offer.key))
                || !self.rep.plausible_stamp(now, offer.stamp)
                || self.owns(offer.key)
            {
                continue;
            }
            // A budget caps what this node stores, whatever the leader asked for: its
            // solution lags a catalogue that is still being discovered (M underestimated
            // means "everything everywhere"). At the budget no new copy is fetched; past it
            // (its own objects grew) none is renewed either, and copies lapse.
            let new = !self.rep.holdings.has(offer.key);
            if self.rep.budget_excess(usize::from(new)) > 0 {
                continue;
            }
            // A copy the offerer no longer renews must not be stretched by its bulk renewals.
            let attach = offer.renewable;
            match self.rep.holdings.consider(&offer, from.id, now, attach) {
                Considered::Fetch => self.events.push_back(Event::FetchBody { from, offer }),
                Considered::Renewed { changed: true } => self.rep.touch(offer.key),
                Considered::Renewed { .. } | Considered::Ignored => {}
            }
            if !attach && self.rep.holdings.detach(offer.key, from.id) {
                self.rep.touch(offer.key);
            }
        }
    }

    /// Queues our offers of `keys` for the nodes that pulled from us lately. A home pushes
    /// every level change (and a body fetched for a promotion); a node pushes every copy it
    /// stores on down the tree.
    fn push_offers(&mut self, now: Time, keys: &[Id]) {
        if self.rep.cfg.mode != Mode::Beehive || keys.is_empty() {
            return;
        }
        self.rep.to_push.extend_from_slice(keys);
        if self.timers[Timer::Push as usize].is_some() {
            return;
        }
        let next = self.rep.last_push.map(|t| t + self.rep.cfg.interval / PUSH_BATCHES);
        match next {
            Some(at) if at > now => self.timers[Timer::Push as usize] = Some(at),
            _ => self.flush_pushes(now),
        }
    }

    /// Sends the queued offers to the pullers that would take them (we are the home, or lie
    /// between them and the key): one message per puller.
    pub(super) fn flush_pushes(&mut self, now: Time) {
        self.timers[Timer::Push as usize] = None;
        self.rep.last_push = Some(now);
        let mut keys = std::mem::take(&mut self.rep.to_push);
        keys.sort_unstable();
        keys.dedup();
        let me = self.me().id;
        let keys: Vec<(Id, bool)> = keys.into_iter().map(|k| (k, self.owns(k))).collect();
        let rep = &self.rep;
        let mut pullers: Vec<Peer> = rep
            .pullers
            .values()
            .filter(|(_, at)| rep.recent_puller(*at, now))
            .map(|(p, _)| *p)
            .collect();
        pullers.sort_unstable_by_key(|p| p.id);
        for p in pullers {
            let mut offers: Vec<Offer> = keys
                .iter()
                .filter(|(k, home)| *home || me.in_open_closed(p.id, *k))
                .filter_map(|(k, _)| self.offer_to(now, p.id, *k))
                .collect();
            if offers.is_empty() {
                continue;
            }
            offers.truncate(MAX_OFFERS);
            self.send_request(now, p, Request::Push { offers }, Awaiting::Ack);
        }
    }

    // ------------------------------------------------------------ the tick

    pub(super) fn replicate_tick(&mut self, now: Time) {
        for key in self.rep.holdings.expire(now) {
            self.rep.touch(key);
            if self.rep.homes.get(key).is_none() {
                self.events.push_back(Event::Evict { key });
            }
        }
        // Past the budget (this node's own objects grew): the least popular copies go.
        let excess = self.rep.budget_excess(0);
        for key in self.rep.holdings.shed(excess) {
            self.rep.touch(key);
            if self.rep.homes.get(key).is_none() {
                self.events.push_back(Event::Evict { key });
            }
        }
        // Copies nobody renewed since the last tick: their leases now run down, so their
        // offers go out with the exact lease left instead of the bulk renewal.
        for key in self.rep.holdings.not_renewed_since(self.rep.last_tick) {
            self.rep.touch(key);
        }
        self.rep.previous_tick = self.rep.last_tick;
        self.rep.last_tick = now;
        self.rep.roll_changes();
        if self.rep.cfg.mode != Mode::Beehive {
            return;
        }
        let me = self.me();
        let interval_s = self.rep.cfg.interval.as_secs_f64();
        let top = self.rep.top_level(now);

        // Homes we no longer own (a node joined before us) let go of their objects.
        let suspected = |p: Id| self.peers.is_suspected(p);
        let routing = &self.routing;
        let gone = self.rep.homes.take_foreign(|k| routing.is_home(k, false, suspected));
        for key in gone {
            self.rep.touch(key);
            if self.rep.holdings.valid(key, now).is_none() {
                self.events.push_back(Event::Evict { key });
            }
        }

        // Counts: ours and those relayed to us, toward each key's home.
        let counts = self.rep.sketch.drain_interval();
        let untracked_rate = counts.tail as f64 / interval_s;
        let mut entries: Vec<CountEntry> = counts
            .keys
            .iter()
            .map(|(k, c)| CountEntry {
                key: Id(*k),
                origin: me.id,
                count: u32::try_from(*c).unwrap_or(u32::MAX),
            })
            .collect();
        entries.append(&mut self.rep.relay);
        let mut batches: FastMap<Id, (Peer, Vec<CountEntry>)> = FastMap::default();
        for e in entries {
            match self.next_hop(e.key) {
                None => self.rep.homes.count(e),
                Some(p) => batches.entry(p.id).or_insert_with(|| (p, Vec::new())).1.push(e),
            }
        }

        // Homes fold the interval into rates and set levels.
        let thresholds = self.rep.fresh_result(now).map(|r| r.thresholds.clone());
        let stamp = self.rep.clock_ms(now);
        let closed = self.rep.homes.close_interval(
            now,
            stamp,
            me.id,
            interval_s,
            thresholds.as_deref(),
            top,
        );
        for key in closed.fetch {
            self.events.push_back(Event::NeedObject { key });
        }
        for key in &closed.changed {
            self.rep.touch(*key);
        }
        let mut pullers = std::mem::take(&mut self.rep.pullers);
        pullers.retain(|_, (_, at)| self.rep.recent_puller(*at, now));
        self.rep.pullers = pullers;
        // Widened arcs fill at once; copies inside a narrowed arc learn their new level.
        self.push_offers(now, &closed.changed);

        // The report toward key 0, or the leader's solve.
        let generation = self.generation(now);
        self.rep.ticked = Some(generation);
        let mut report = Report {
            generation,
            summary: self.rep.homes.summary(),
            untracked_rate,
            nodes: 1,
            hop_sum: std::mem::take(&mut self.rep.hop_sum),
            level_sum: std::mem::take(&mut self.rep.level_sum),
            lookups: std::mem::take(&mut self.rep.lookups),
            stored: self.stored_objects(now) as u64,
        };
        if let Some(r) = self.rep.reports_in.remove(&generation) {
            report.merge(&r);
        }
        let report_to = self.next_hop(Id(0));
        let mut report = Some(report);
        match report_to {
            None => {
                // Ours opens the next generation; the last one is solved once its late
                // reports are in.
                self.rep.reports_in.insert(generation, report.take().unwrap_or_default());
                let slack = self.rep.cfg.interval / SOLVE_SLACK;
                self.timers[Timer::Solve as usize] = Some(now + slack);
            }
            Some(to) => {
                // No longer the leader (a node joined before us): what we kept for past
                // generations goes on.
                let newer = self.rep.reports_in.split_off(&(generation + 1));
                let past = std::mem::replace(&mut self.rep.reports_in, newer);
                for r in past.into_values() {
                    self.send_report(now, to, r);
                }
            }
        }

        // One pull per finger, carrying what goes its way.
        let mut targets: Vec<Peer> = self.routing.distinct_fingers().to_vec();
        if let Some(s) = self.routing.successors().first() {
            targets.push(*s);
        }
        targets.extend(batches.values().map(|(p, _)| *p));
        targets.extend(report_to);
        targets.retain(|p| p.id != me.id);
        targets.sort_unstable_by_key(|p| me.id.distance_to(p.id));
        targets.dedup_by_key(|p| p.id);
        let known = self.rep.result().map(|r| (r.epoch, r.leader));
        self.rep.seen.retain(|id, _| targets.iter().any(|p| p.id == *id));
        self.rep.ticks += 1;
        for (n, p) in targets.into_iter().enumerate() {
            // Deltas only say what changed at the finger; now and then ask for the full list
            // (staggered over the fingers), so a copy we lost or never got comes back.
            let resync = (self.rep.ticks + n as u64) % FULL_PULL_EVERY == 0;
            let since = self.rep.seen.get(&p.id).copied();
            let mut counts = batches.remove(&p.id).map(|(_, c)| c).unwrap_or_default();
            if counts.len() > MAX_COUNT_ENTRIES {
                counts.sort_unstable_by(|a, b| b.count.cmp(&a.count).then(a.key.cmp(&b.key)));
                counts.truncate(MAX_COUNT_ENTRIES);
            }
            let report = if report_to.is_some_and(|r| r.id == p.id) { report.take() } else { None };
            let pull = Pull { counts, report, known, since, full: resync };
            self.send_request(now, p, Request::Pull(Box::new(pull)), Awaiting::Offers);
        }
    }

    fn send_report(&mut self, now: Time, to: Peer, report: Report) {
        self.send_request(now, to, Request::Report(Box::new(report)), Awaiting::Ack);
    }

    /// The replication interval and our tick's offset into it, in ns of the shared clock.
    fn tick_phase(&self) -> (u128, u128) {
        let period = self.rep.cfg.interval.as_nanos().max(1);
        (period, (period * (self.me().id.0 >> 96)) >> 32)
    }

    /// The shared clock's interval a tick at `now` belongs to. A timer fires late, never
    /// early: read the interval our phase was scheduled in, not the one `now` lands in.
    fn generation(&self, now: Time) -> u64 {
        let (period, phase) = self.tick_phase();
        let clock = (now + self.rep.cfg.clock_offset).as_nanos();
        u64::try_from(clock.saturating_sub(phase) / period).unwrap_or(u64::MAX)
    }

    /// The leader's solve of the generation before its last tick's (see [`SOLVE_SLACK`]).
    pub(super) fn solve_tick(&mut self, now: Time) {
        let Some(generation) = self.rep.ticked.filter(|_| self.next_hop(Id(0)).is_none()) else {
            return;
        };
        // Our own generation (and any later one) stays; older ones are solved or too late.
        let newer = self.rep.reports_in.split_off(&generation);
        let mut past = std::mem::replace(&mut self.rep.reports_in, newer);
        let Some(merged) = past.remove(&generation.saturating_sub(1)) else { return };
        let epoch = self.rep.result().map_or(0, |r| r.epoch) + 1;
        let interval_s = self.rep.cfg.interval.as_secs_f64();
        let me = self.me().id;
        if let Some((previous, _)) = self.rep.result.as_ref().filter(|(r, _)| r.leader != me) {
            self.rep.leader.take_over(previous, &self.rep.cfg);
        }
        if let Some(result) = self.rep.leader.solve(me, epoch, &merged, &self.rep.cfg, interval_s) {
            self.rep.result = Some((result, now));
        }
    }

    /// The peer a count or report for `key` goes to next; `None` if we are its home.
    fn next_hop(&self, key: Id) -> Option<Peer> {
        let hop = self.routing.route(key, None, false, |p| self.peers.is_suspected(p), 1);
        match hop {
            NextHop::Here | NextHop::Have { .. } => None,
            NextHop::Successors(l) | NextHop::Closer(l) => l.first().copied(),
        }
    }

    // ------------------------------------------------------------ invalidation

    fn invalidate_here(&mut self, now: Time, key: Id, min_version: u64) {
        let forget_at = now + self.rep.lease() * 2;
        if self.rep.holdings.invalidate(key, min_version, forget_at) {
            self.rep.touch(key);
            if self.rep.homes.get(key).is_none() {
                self.events.push_back(Event::Evict { key });
            }
        }
    }

    /// Starts the range broadcast from the home over the widest arc replicas may occupy.
    fn broadcast_invalidate(&mut self, now: Time, key: Id, min_version: u64) {
        let level = self.rep.homes.get(key).map_or(0, |o| o.widest_level());
        // Passive caches live anywhere: their TTL bounds them, not the broadcast.
        let start = arc_start(key, level);
        let me = self.me().id;
        self.forward_invalidate(now, key, min_version, start, me);
    }

    /// Sends the invalidation to each finger in `(me, limit)` whose share of the ring (up to
    /// the next finger, or `limit`) meets the arc `(start, key]`.
    fn forward_invalidate(&mut self, now: Time, key: Id, min_version: u64, start: Id, limit: Id) {
        let me = self.me().id;
        let mut fingers: Vec<Peer> = self
            .routing
            .distinct_fingers()
            .iter()
            .chain(self.routing.successors().first())
            .filter(|p| p.id.in_open(me, limit))
            .copied()
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
                self.send_request(now, *f, req, Awaiting::Ack);
            }
        }
    }

    /// Arms the next tick: at the phase of the shared clock's interval given by our place on
    /// the ring (id / 2^128). Counts and reports travel clockwise, to nodes that tick later
    /// in the same interval, so they reach a home (or the leader) within about one interval
    /// wherever they start; only a path that wraps past id 0 takes a second one.
    pub(super) fn schedule_replication(&mut self, now: Time) {
        if self.rep.cfg.mode == Mode::Chord {
            return;
        }
        let (period, phase) = self.tick_phase();
        let clock = (now + self.rep.cfg.clock_offset).as_nanos();
        let mut at = clock - clock % period + phase;
        if at <= clock {
            at += period;
        }
        let wait = Duration::from_nanos(u64::try_from(at - clock).unwrap_or(u64::MAX));
        self.timers[Timer::Replicate as usize] = Some(now + wait);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ChordConfig;

    /// When a node created at shared-clock time `clock` (its own time zero) first ticks, on
    /// the shared clock.
    fn first_tick(id: Id, clock: Duration) -> Duration {
        let mut cfg = ChordConfig::default();
        cfg.replication.interval = Duration::from_secs(10);
        cfg.replication.clock_offset = clock;
        let me = Peer { id, addr: "127.0.0.1:1".parse().unwrap() };
        let mut node = Node::new(me, cfg, Time::ZERO);
        node.schedule_replication(Time::ZERO);
        clock + node.timers[Timer::Replicate as usize].expect("armed")
    }

    #[test]
    fn ticks_follow_the_place_on_the_ring_not_the_start_time() {
        let quarter = Id(1 << 126);
        let secs = Duration::from_secs;
        // Whenever the node started, it ticks 2.5 s into each 10 s of the shared clock.
        assert_eq!(first_tick(quarter, secs(1_000_000)), secs(1_000_002) + secs(1) / 2);
        assert_eq!(first_tick(quarter, secs(1_000_003)), secs(1_000_012) + secs(1) / 2);
        // A node further round the ring ticks later in the interval.
        assert_eq!(first_tick(Id(3 << 126), secs(1_000_000)), secs(1_000_007) + secs(1) / 2);
        assert_eq!(first_tick(Id(0), secs(1_000_000)), secs(1_000_010));
    }

    #[test]
    fn made_up_generations_do_not_pile_up() {
        let mut cfg = ChordConfig::default();
        cfg.replication.mode = Mode::Beehive;
        let me = Peer { id: Id(1 << 100), addr: "127.0.0.1:1".parse().unwrap() };
        let mut node = Node::new(me, cfg, Time::ZERO);
        for generation in 0..1_000 {
            let report = Report { generation, nodes: 1, ..Report::default() };
            node.take_report(Time::ZERO, report);
        }
        assert_eq!(node.rep.reports_in.len(), MAX_GENERATIONS);
        // Reports of a generation already kept still merge.
        node.take_report(Time::ZERO, Report { generation: 2, nodes: 5, ..Report::default() });
        assert_eq!(node.rep.reports_in[&2].nodes, 6);
    }
}
