//! Offers: what a node tells its pullers it holds (answers to pulls, pushes), what it does
//! with offers it gets (fetch, renew, withdraw), and the change log that lets a pull be
//! answered with a delta.

use super::{millis, Puller, Replication, Timer};
use crate::beehive::digest::{self, Digest, Mask};
use crate::beehive::holdings::{Considered, Demoted, Held};
use crate::beehive::home::HomeObject;
use crate::beehive::wire::{
    in_arc, LevelResult, LevelStamp, Offer, OfferList, Pull, Withdrawn, LEASE_UNIT_MS,
    MAX_COUNT_ENTRIES, MAX_OFFERS,
};
use crate::config::Mode;
use crate::hash::FastSet;
use crate::id::Id;
use crate::message::{Request, Response};
use crate::node::event::Event;
use crate::node::ring::RingView;
use crate::peer::Peer;
use crate::time::Time;
use std::time::Duration;

/// Ticks of offer changes kept for delta answers; a puller further behind gets a full list.
pub(super) const CHANGE_LOG_TICKS: usize = 8;
/// A withdrawal at level l goes to pullers inside the arc of level l − this: a demotion
/// moves an object down a level or two at a time, so a puller further out never held it at
/// the level before (the periodic full list detaches whatever a larger jump leaves).
const WITHDRAW_REACH: u8 = 2;
/// A push goes out at once unless one went out less than an interval / this ago; then it
/// waits for the end of that gap, gathering whatever else comes, one message per puller.
/// At most this many push rounds per interval, so pushing keeps O(log N) messages per node
/// per interval however many copies move, while a promotion still crosses a tree of depth
/// log2 N within about an interval.
pub(super) const PUSH_BATCHES: u32 = 16;

/// The top level and the home's lease of one answer or push, worked out once for all its keys.
#[derive(Debug, Clone, Copy)]
struct HomeTerms {
    /// The home-only level, if a fresh leader result lets homes act.
    top: Option<u8>,
    lease_ms: u32,
}

impl HomeTerms {
    /// A home's offer of `key`: `None` if our copy speaks for it instead (no body, or no
    /// fresh result), `Some(None)` if the object is home-only.
    fn offer(self, key: Id, obj: &HomeObject) -> Option<Option<Offer>> {
        let (info, top) = (obj.info?, self.top?);
        let (level, stamp, lease_ms) = (obj.level, obj.stamp, self.lease_ms);
        let offer = Offer { key, level, stamp, info, lease_ms, from_home: true, renewable: true };
        Some((level < top).then_some(offer))
    }
}

/// `offers` by level, then key, each key once, at most [`MAX_OFFERS`]. Sorts a 32-byte
/// (level, key, index) per offer instead of moving the offers themselves (~100 bytes each).
/// Answers list a key once; should two offers of one key meet, they are the same offer (one
/// level, one stamp), so which one is kept does not matter.
fn sorted_offers(offers: Vec<Offer>) -> Vec<Offer> {
    let mut order: Vec<(u8, Id, u32)> =
        offers.iter().zip(0..).map(|(o, i)| (o.level, o.key, i)).collect();
    order.sort_unstable_by_key(|(level, key, _)| (*level, *key));
    order.dedup_by_key(|(_, key, _)| *key);
    order.truncate(MAX_OFFERS);
    order.into_iter().map(|(_, _, i)| offers[i as usize]).collect()
}

/// Whether `via` is `puller`'s next hop toward a key among the nodes it pulls from: `via`
/// lies in `(puller, key]` and `next`, the puller's next one past `via` ([`Pull::next`]),
/// does not. Each key past the puller has one such node: it pushes the key's new copies to
/// the puller and lists the key in its full answers; the others between hear of it later
/// (arcs are contiguous toward the key, so the next hop holds whatever they hold).
fn next_hop(puller: Id, via: Id, next: Option<Id>) -> impl Fn(Id) -> bool {
    move |key| via.in_open_closed(puller, key) && next.is_none_or(|n| !n.in_open_closed(via, key))
}

/// The keys whose offers and withdrawals `puller` (whose next node past us is `next`) takes
/// from us: those we are home for, and those we are its next hop toward. Deltas, pushes and
/// the home objects of a full answer all name only these.
fn takes_from_us(ring: RingView<'_>, puller: Id, next: Option<Id>) -> impl Fn(Id) -> bool + '_ {
    let hop = next_hop(puller, ring.me().id, next);
    move |key| ring.owns(key) || hop(key)
}

/// The keys whose offers from `finger` (followed by `next`) the digest of a resync covers:
/// those it is our next hop for, except its own id (a home's offers are listed in full).
fn resync_scope(me: Id, finger: Id, next: Option<Id>) -> impl Fn(Id) -> bool {
    let hop = next_hop(me, finger, next);
    move |key| key != finger && hop(key)
}

impl Replication {
    /// Closes a tick of the change log.
    pub(super) fn roll_changes(&mut self) {
        self.tick_gens.push_back(self.gen);
        if self.tick_gens.len() > CHANGE_LOG_TICKS {
            self.tick_gens.pop_front();
        }
        let floor = self.tick_gens.front().copied().unwrap_or(0);
        self.changes.prune(floor);
    }

    /// What changed for the puller `to` since `since`: the offers (unless `full`, where the
    /// caller lists every offer anyway, or a push since `to`'s last pull, `before`, carried
    /// this change) and the withdrawals, of the keys we are its home or next hop for (a
    /// nearer node it pulls from tells it of the others).
    fn delta(
        &self,
        now: Time,
        ring: RingView<'_>,
        to: Puller,
        since: u64,
        full: bool,
        before: Option<&Puller>,
    ) -> (Vec<Offer>, Vec<Withdrawn>) {
        // A round after that pull, while `to` was still a recent puller, carried the change.
        let pushed = |round: u64| {
            before.is_some_and(|p| {
                round > p.flushes
                    && self.push_time(round).is_some_and(|at| self.recent_puller(p.at, at))
            })
        };
        let changes = self.changes.since(since);
        // Room for every change: the list is sorted into a new one and dropped, and growing
        // it by doubling copied each offer several times.
        let room = if full { 0 } else { changes.size_hint().1.unwrap_or(0) };
        let (mut offers, mut withdrawn) = (Vec::with_capacity(room), Vec::new());
        let terms = self.home_terms(now);
        let takes = takes_from_us(ring, to.peer.id, to.next);
        let to = to.peer.id;
        for (key, round) in changes {
            if !takes(key) {
                continue;
            }
            // One lookup of the home object and of the copy serves the offer and, failing
            // it, the level the withdrawal carries.
            let obj = self.homes.get(key);
            let (offer, copy) = self.offer_and_copy(now, key, obj, terms);
            match offer.filter(|o| in_arc(to, key, o.level)) {
                // Whether a push carried it is asked last: most keys are not in the arc.
                Some(o) if !full && !pushed(round) => offers.push(o),
                Some(_) => {}
                None => {
                    let level = self.level_of(now, ring, key, obj, copy);
                    if level.is_none_or(|l| in_arc(to, key, l.level.saturating_sub(WITHDRAW_REACH)))
                    {
                        withdrawn.push(Withdrawn { key, level });
                    }
                }
            }
        }
        // In key order, as the puller has always taken them; the caller sorts the offers.
        withdrawn.sort_unstable_by_key(|w| w.key);
        (offers, withdrawn)
    }

    /// When push round `round` went out, if within the last two intervals.
    fn push_time(&self, round: u64) -> Option<Time> {
        let first = self.flushes + 1 - self.push_times.len() as u64;
        let i = usize::try_from(round.checked_sub(first)?).ok()?;
        self.push_times.get(i).copied()
    }

    /// Whether a delta since `since` can be answered from the change log.
    fn covers(&self, since: u64) -> bool {
        since <= self.gen && self.tick_gens.front().is_some_and(|floor| since >= *floor)
    }

    /// Whether a node that last pulled from us at `at` still gets our pushes.
    pub(super) fn recent_puller(&self, at: Time, now: Time) -> bool {
        at + self.cfg.interval * 2 > now
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

    // ------------------------------------------------------------ copies

    /// The caller fetched and verified the body `offer` describes. Returns `false` if the
    /// copy is no longer wanted.
    pub fn replica_stored(
        &mut self,
        now: Time,
        ring: RingView<'_>,
        from: Peer,
        offer: Offer,
    ) -> bool {
        let (until, cached) = match self.cfg.mode {
            Mode::Passive => (now + self.cfg.cache_ttl, true),
            _ => (now + Duration::from_millis(u64::from(offer.lease_ms)), false),
        };
        if ring.owns(offer.key) {
            self.holdings.fetch_failed(offer.key);
            return false;
        }
        let attach = !cached && offer.renewable;
        let stored = self.holdings.store(&offer, attach.then_some(from.id), now, until, cached);
        if stored {
            self.touch(offer.key);
            if !cached {
                self.push_offers(now, ring, &[offer.key]);
            }
        }
        stored
    }

    /// The body fetch for `key` failed: a later offer may try again. Deltas do not offer an
    /// unchanged copy again, so the next pull to the node it came from asks for the full list.
    pub fn fetch_failed(&mut self, key: Id) {
        if let Some(from) = self.holdings.fetch_failed(key) {
            if let Some(f) = self.fingers.get_mut(&from) {
                f.seen = None;
            }
        }
    }

    // ------------------------------------------------------------ requests we answer

    pub fn answer_pull(
        &mut self,
        now: Time,
        ring: RingView<'_>,
        from: Peer,
        pull: Pull,
    ) -> Response {
        let me = ring.me().id;
        let mut before = None;
        let puller = Puller { peer: from, at: now, flushes: self.flushes, next: pull.next };
        if self.cfg.mode == Mode::Beehive {
            before = self.pullers.insert(from.id, puller);
            for e in pull.counts {
                if ring.owns(e.key) {
                    self.homes.count(e);
                } else if self.relay.len() < MAX_COUNT_ENTRIES * 4 && e.origin != me {
                    self.relay.push(e);
                }
            }
            if let Some(r) = pull.report {
                self.take_report(ring, r);
            }
        }
        let since = pull.since.filter(|g| self.covers(*g));
        let full = pull.full || since.is_none();
        // What changed since `since` (a full answer lists the offers anyway and only takes
        // the withdrawals); in a delta the bulk renewal covers the rest.
        let (mut offers, mut withdrawn) = match since {
            Some(g) => self.delta(now, ring, puller, g, full, before.as_ref()),
            None => (Vec::new(), Vec::new()),
        };
        if full {
            let terms = self.home_terms(now);
            // Of the keys we are the home or the puller's next hop for (it hears of the
            // others from a nearer node), every object whose arc holds the puller.
            let takes = takes_from_us(ring, from.id, pull.next);
            for (&key, obj) in self.homes.iter() {
                if takes(key) {
                    offers.extend(self.offer_to(now, from.id, key, Some(obj), terms));
                }
            }
            // Copies, tested on their level first (most lie outside the puller's arc). A key
            // we are also home for got its offer above, the home's or (without one) its
            // copy's.
            let hop = next_hop(from.id, me, pull.next);
            for (key, h) in self.holdings.stored() {
                if !in_arc(from.id, key, h.level) || !hop(key) {
                    continue;
                }
                if self.homes.get(key).is_none() {
                    offers.extend(
                        self.holdings
                            .valid_held(key, h, now)
                            .and_then(|h| self.copy_offer(now, key, h)),
                    );
                }
            }
        }
        // The digests are sums, blind to order: a full answer sorts only the offers it lists
        // (most fall in matched buckets and go as leases), unless the cap cuts the list, which
        // keeps the first ones in order.
        let capped = offers.len() > MAX_OFFERS;
        let mut offers = if capped { sorted_offers(offers) } else { offers };
        // Buckets where the puller holds exactly what we offer past us: only the leases.
        let (mut matched, mut leases) = (Mask::default(), Vec::new());
        if let Some(theirs) = pull.digest.as_ref().filter(|_| full) {
            let bucketed = |o: &Offer| o.renewable && !ring.owns(o.key);
            let mut ours = Digest::default();
            for o in offers.iter().filter(|o| bucketed(o)) {
                ours.add(o.key, o.level, o.stamp, o.info.version);
            }
            matched = ours.matching(theirs);
            let mut kept = Vec::new();
            offers.retain(|o| {
                let listed = !(bucketed(o) && matched.has(o.key));
                if !listed {
                    kept.push((digest::bucket(o.key), o.key, o.lease_ms / LEASE_UNIT_MS));
                }
                listed
            });
            kept.sort_unstable();
            leases =
                matched.runs(&kept, |k| k.0).map(|run| run.iter().map(|k| k.2).collect()).collect();
        }
        let offers = if capped { offers } else { sorted_offers(offers) };
        withdrawn.truncate(MAX_OFFERS);
        let renew_ms = millis(self.lease() / 2);
        let list = OfferList { gen: self.gen, full, offers, withdrawn, renew_ms, matched, leases };
        Response::Offers { list, result: self.result_to_send(now, pull.known) }
    }

    /// What we would offer `to` for `key`, whose home object is `obj`: our home copy (a full
    /// lease) or our own copy (what is left of its lease), if the object's arc holds `to`.
    fn offer_to(
        &self,
        now: Time,
        to: Id,
        key: Id,
        obj: Option<&HomeObject>,
        terms: HomeTerms,
    ) -> Option<Offer> {
        let offer = self.offer_and_copy(now, key, obj, terms).0;
        offer.filter(|o| in_arc(to, key, o.level))
    }

    /// Our offer of `key` to any puller its arc holds (`in_arc(puller, key, offer.level)`):
    /// built once, it serves every puller of a push.
    fn offer_of(&self, now: Time, key: Id, terms: HomeTerms) -> Option<Offer> {
        self.offer_and_copy(now, key, self.homes.get(key), terms).0
    }

    /// [`Self::offer_of`] given `key`'s home object `obj`, with the copy it looked up on the
    /// way (`None`: the home's offer answered without it).
    fn offer_and_copy(
        &self,
        now: Time,
        key: Id,
        obj: Option<&HomeObject>,
        terms: HomeTerms,
    ) -> (Option<Offer>, Option<Option<Held>>) {
        if let Some(home) = obj.and_then(|o| terms.offer(key, o)) {
            return (home, None);
        }
        let copy = self.holdings.valid(key, now);
        (copy.and_then(|h| self.copy_offer(now, key, h)), Some(copy))
    }

    /// The newest level we know for `key`: its home object `obj`'s if we are its home, else
    /// from our copy (`copy`, if already looked up) or the withdrawal that dropped it.
    fn level_of(
        &self,
        now: Time,
        ring: RingView<'_>,
        key: Id,
        obj: Option<&HomeObject>,
        copy: Option<Option<Held>>,
    ) -> Option<LevelStamp> {
        match obj {
            Some(o) if ring.owns(key) => Some(LevelStamp { level: o.level, stamp: o.stamp }),
            _ => {
                let copy = copy.unwrap_or_else(|| self.holdings.valid(key, now));
                self.holdings.known_level_of(key, copy)
            }
        }
    }

    /// What a home offers now, the same for every key (see [`HomeTerms`]).
    fn home_terms(&self, now: Time) -> HomeTerms {
        let top = self.fresh_result(now).map(|r| r.top_level());
        HomeTerms { top, lease_ms: millis(self.lease()) }
    }

    /// What we would offer for our valid copy `h` of `key` (to a puller in its arc).
    fn copy_offer(&self, now: Time, key: Id, h: Held) -> Option<Offer> {
        if h.cached {
            return None;
        }
        let lease_ms = millis(h.until().saturating_sub(now));
        // Attached to a renewing source and renewed since the last tick: a detached copy is
        // dying, and the copies downstream of it must not outlive it.
        let renewable = h.attached() && h.renewed_at() >= self.previous_tick;
        let (level, stamp, info) = (h.level, h.stamp, h.info);
        Some(Offer { key, level, stamp, info, lease_ms, from_home: false, renewable })
    }

    pub fn answer_push(
        &mut self,
        now: Time,
        ring: RingView<'_>,
        from: Peer,
        offers: Vec<Offer>,
    ) -> Response {
        if self.cfg.mode == Mode::Beehive {
            self.take_offers(now, ring, from, offers);
        }
        Response::Ack
    }

    // ------------------------------------------------------------ answers we get

    pub fn offers_received(
        &mut self,
        now: Time,
        ring: RingView<'_>,
        from: Peer,
        list: OfferList,
        result: Option<LevelResult>,
    ) {
        if let Some(r) = result {
            self.adopt(now, r);
        }
        let mut kept = Vec::new();
        if list.full {
            // The keys the finger listed in full: those it is our next hop for, as of the
            // `next` our last pull to it named.
            let next = self.fingers.get(&from.id).and_then(|f| f.next);
            let scope = resync_scope(ring.me().id, from.id, next);
            // The buckets our digest matched: our copies there, renewed below as the
            // finger's offers of them would be (`unsure`: copies in a bucket that changed
            // since the pull, left as they are).
            let unsure;
            (kept, unsure) =
                self.resync_kept(now, ring.me().id, &scope, &list.matched, &list.leases);
            if list.offers.len() + kept.len() + unsure.len() < MAX_OFFERS {
                // Everything this finger offers us in its scope (not cut at the cap): a
                // copy there that it does not offer stops following whoever renewed it.
                let listed = list.offers.iter().map(|o| o.key);
                let kept_keys = kept.iter().map(|(key, _)| *key);
                let offered: FastSet<Id> = listed.chain(kept_keys).chain(unsure).collect();
                for key in self.holdings.detach_all_but(scope, &offered) {
                    self.touch(key);
                }
            }
        }
        self.take_offers(now, ring, from, list.offers);
        for (key, lease) in kept {
            // The rules `take_offers` applies that the digest does not already guarantee.
            if ring.owns(key) || self.budget_refuses(key) {
                continue;
            }
            if self.holdings.renew_offered(key, from.id, now, lease) {
                self.touch(key);
            }
        }
        self.take_withdrawals(now, ring, from, list.withdrawn);
        // After the full answer's detaching: what follows us outside its scope is renewed.
        if list.renew_ms > 0 {
            let lease = Duration::from_millis(u64::from(list.renew_ms));
            self.holdings.renew_from(from.id, now, lease);
        }
        self.fingers.entry(from.id).or_default().seen = Some(list.gen);
    }

    /// For each of `fingers` (a finger and the next node we pull from past it), the digest
    /// of our copies it would offer us in full: in our arc, of keys it is our next hop for
    /// (see [`resync_scope`]). One pass over our copies serves every finger.
    pub(super) fn resync_digests(
        &self,
        now: Time,
        me: Id,
        fingers: &[(Id, Option<Id>)],
    ) -> Vec<Digest> {
        let mut digests = vec![Digest::default(); fingers.len()];
        if fingers.is_empty() {
            return digests;
        }
        let scopes: Vec<_> = fingers.iter().map(|(f, next)| resync_scope(me, *f, *next)).collect();
        for (key, h) in self.holdings.replicas_in(now, |_| true) {
            if !in_arc(me, key, h.level) {
                continue;
            }
            // Most keys lie in one scope; a steady finger's also holds those of the targets
            // pulled now and then past it.
            for (digest, scope) in digests.iter_mut().zip(&scopes) {
                if scope(key) {
                    digest.add(key, h.level, h.stamp, h.info.version);
                }
            }
        }
        digests
    }

    /// The copies a finger left out of its full answer in the `matched` buckets of its
    /// `scope` (the digests showed them to be exactly its offers there), each with the lease
    /// it sent in their place. A bucket whose copies no longer line up with its leases (a
    /// level changed here since the pull) is left alone: its keys come back as the second
    /// list, and the next resync tries again.
    fn resync_kept(
        &self,
        now: Time,
        me: Id,
        scope: &impl Fn(Id) -> bool,
        matched: &Mask,
        leases: &[Vec<u32>],
    ) -> (Vec<(Id, Duration)>, Vec<Id>) {
        if matched.is_empty() {
            return (Vec::new(), Vec::new());
        }
        let copies = self.holdings.replicas_in(now, |k| matched.has(k) && scope(k));
        let mut kept: Vec<(usize, Id)> = copies
            .filter(|(key, h)| in_arc(me, *key, h.level))
            .map(|(key, _)| (digest::bucket(key), key))
            .collect();
        kept.sort_unstable();
        let (mut renew, mut unsure) = (Vec::with_capacity(kept.len()), Vec::new());
        for (here, leases) in matched.runs(&kept, |k| k.0).zip(leases) {
            if here.len() != leases.len() {
                unsure.extend(here.iter().map(|(_, key)| *key));
                continue;
            }
            renew.extend(here.iter().zip(leases).map(|((_, key), lease)| {
                (*key, Duration::from_millis(u64::from(lease.saturating_mul(LEASE_UNIT_MS))))
            }));
        }
        (renew, unsure)
    }

    fn take_withdrawals(
        &mut self,
        now: Time,
        ring: RingView<'_>,
        from: Peer,
        withdrawn: Vec<Withdrawn>,
    ) {
        for w in withdrawn {
            if let Some(level) = w.level {
                self.withdrawn_at(now, ring, from, w.key, level);
            }
            if self.holdings.detach(w.key, from.id) {
                self.touch(w.key);
            }
        }
    }

    /// `from` withdrew `key` at `level`: drop our copy if we lie outside that arc (and tell
    /// our own pullers, through the change log), or take the level if we lie inside. Only a
    /// node between us and the home, or the one our copy follows, can tell us.
    fn withdrawn_at(
        &mut self,
        now: Time,
        ring: RingView<'_>,
        from: Peer,
        key: Id,
        level: LevelStamp,
    ) {
        let me = ring.me().id;
        // The copy is looked up only for a withdrawal from outside (us, key].
        let follows = || {
            (self.holdings.valid(key, now))
                .is_some_and(|h| self.holdings.source_of(&h) == Some(from.id))
        };
        if !(from.id.in_open_closed(me, key) || follows())
            || !self.plausible_stamp(now, level.stamp)
            || ring.owns(key)
        {
            return;
        }
        let inside = in_arc(me, key, level.level);
        // Lookups this copy already answered may still come for the body (in a live ring:
        // a fetch a few round trips later); it expires, and is evicted, after that.
        let grace = now + self.cfg.interval / 8;
        let forget_at = now + self.lease();
        match self.holdings.demote(key, level, inside, grace, forget_at) {
            Demoted::Dropped | Demoted::Relevelled => self.touch(key),
            Demoted::Noted | Demoted::Ignored => {}
        }
    }

    /// Offers from `from` (pulled or pushed): renew the copies we have, fetch the others.
    fn take_offers(&mut self, now: Time, ring: RingView<'_>, from: Peer, offers: Vec<Offer>) {
        let me = ring.me().id;
        for offer in offers {
            // Only from between us and the home: renewals flow away from the home.
            if !in_arc(me, offer.key, offer.level)
                || !(offer.from_home || from.id.in_open_closed(me, offer.key))
                || !self.plausible_stamp(now, offer.stamp)
                || ring.owns(offer.key)
            {
                continue;
            }
            // A budget caps what this node stores, whatever the leader asked for: its
            // solution lags a catalogue that is still being discovered (M underestimated
            // means "everything everywhere"). At the budget no new copy is fetched; past it
            // (its own objects grew) none is renewed either, and copies lapse.
            if self.budget_refuses(offer.key) {
                continue;
            }
            // A copy the offerer no longer renews must not be stretched by its bulk renewals.
            let attach = offer.renewable;
            match self.holdings.consider(&offer, from.id, now, attach) {
                Considered::Fetch => self.event(Event::FetchBody { from, offer }),
                // A new level (or renewals resumed) is news down the tree: each node hears of
                // a key from its next hop toward it only, so it must not wait for a pull.
                Considered::Renewed { changed: true } => {
                    self.touch(offer.key);
                    self.push_offers(now, ring, &[offer.key]);
                }
                Considered::Renewed { .. } | Considered::Ignored => {}
            }
            if !attach && self.holdings.detach(offer.key, from.id) {
                self.touch(offer.key);
            }
        }
    }

    // ------------------------------------------------------------ pushes

    /// Queues our offers of `keys` for the nodes that pulled from us lately. A home pushes
    /// every level change (and a body fetched for a promotion); a node pushes every copy it
    /// stores on down the tree.
    pub(super) fn push_offers(&mut self, now: Time, ring: RingView<'_>, keys: &[Id]) {
        if self.cfg.mode != Mode::Beehive || keys.is_empty() {
            return;
        }
        self.to_push.extend_from_slice(keys);
        if self.timers.get(Timer::Push).is_some() {
            return;
        }
        let next = self.last_push.map(|t| t + self.cfg.interval / PUSH_BATCHES);
        match next {
            Some(at) if at > now => self.timers.set(Timer::Push, at),
            _ => self.flush_pushes(now, ring),
        }
    }

    /// Sends the queued offers to the pullers that would take them (we are the home, or lie
    /// between them and the key): one message per puller. The puller's next delta leaves out
    /// what a push already carried.
    pub(super) fn flush_pushes(&mut self, now: Time, ring: RingView<'_>) {
        self.timers.clear(Timer::Push);
        self.last_push = Some(now);
        let mut keys = std::mem::take(&mut self.to_push);
        keys.sort_unstable();
        keys.dedup();
        let mut pullers: Vec<(Peer, Option<Id>)> = self
            .pullers
            .values()
            .filter(|p| self.recent_puller(p.at, now))
            .map(|p| (p.peer, p.next))
            .collect();
        pullers.sort_unstable_by_key(|(p, _)| p.id);
        // Each offer is built once (lookups, lease left), then sent to every puller it suits.
        let terms = self.home_terms(now);
        let built: Vec<Offer> = keys.iter().filter_map(|k| self.offer_of(now, *k, terms)).collect();
        self.flushes += 1;
        self.push_times.push_back(now);
        let mut cut = false;
        for (p, next) in pullers {
            let takes = takes_from_us(ring, p.id, next);
            let suits = |o: &&Offer| in_arc(p.id, o.key, o.level) && takes(o.key);
            // Counted first, so the list is allocated once at its size (most pullers get few).
            let n = built.iter().filter(suits).count().min(MAX_OFFERS);
            if n == 0 {
                continue;
            }
            cut |= n == MAX_OFFERS && built.iter().filter(suits).nth(n).is_some();
            let mut offers = Vec::with_capacity(n);
            offers.extend(built.iter().filter(suits).take(n).copied());
            self.send(p, Request::Push { offers });
        }
        // A round cut at the cap did not carry every key to every puller it suits: its keys
        // stay in the next deltas.
        if !cut {
            for o in &built {
                self.changes.mark_pushed(o.key, self.flushes);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// The full answers of a puller's fingers cover every key past it once: each key but
        /// the fingers' own ids lies in the scope of exactly one finger, the last one before
        /// it, so one resync renews each copy.
        #[test]
        fn each_key_has_one_resyncing_finger(
            me in any::<u128>(),
            fingers in prop::collection::vec(any::<u128>(), 1..12),
            keys in prop::collection::vec(any::<u128>(), 1..64),
        ) {
            let me = Id(me);
            let mut fingers: Vec<Id> = fingers.into_iter().map(Id).filter(|f| *f != me).collect();
            fingers.sort_unstable_by_key(|f| me.distance_to(*f));
            fingers.dedup();
            let scopes: Vec<_> = (0..fingers.len())
                .map(|n| resync_scope(me, fingers[n], fingers.get(n + 1).copied()))
                .collect();
            for key in keys.into_iter().map(Id) {
                if key == me || fingers.contains(&key) {
                    continue;
                }
                let owners: Vec<usize> = (0..scopes.len()).filter(|i| scopes[*i](key)).collect();
                // Keys before the nearest finger are its home keys: listed, never bucketed.
                let before_first = !fingers[0].in_open_closed(me, key);
                let last_before = fingers.iter().rposition(|f| f.in_open_closed(me, key));
                prop_assert_eq!(owners.len(), usize::from(!before_first));
                prop_assert_eq!(owners.first().copied(), last_before);
            }
        }
    }
}
