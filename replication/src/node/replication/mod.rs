//! Beehive on the node, as a sub-state-machine of [`crate::Node`]: counting served requests,
//! the replication tick (counts toward homes, reports toward the leader, pulls from fingers),
//! offers, copies and invalidation.
//!
//! Everything rides on one periodic pull per finger (docs/replication.md): counts for the keys
//! whose next hop is that finger go up on the request, offers and the leader's result come
//! back on the answer. Bodies never pass through the core: it asks the caller to fetch one
//! ([`Event::FetchBody`]), and the caller reports a verified body with
//! [`crate::Node::replica_stored`].
//!
//! The node owns the ring; replication reads it through a [`RingView`] passed with every
//! input, and leaves what it wants sent and said in its own queues, which the node drains
//! after each call (the split `quinn-proto` makes between a connection and its streams).

mod changes;
mod invalidate;
mod offers;
mod reports;
mod serve;
mod tick;

use self::changes::ChangeLog;
use crate::beehive::holdings::Holdings;
use crate::beehive::home::Homes;
use crate::beehive::leader::Leader;
use crate::beehive::popularity::SpaceSaving;
use crate::beehive::wire::{CountEntry, LevelResult, Report};
use crate::config::ReplicationConfig;
use crate::hash::FastMap;
use crate::id::Id;
use crate::message::Request;
use crate::node::event::Event;
use crate::node::timers::{TimerKind, Timers};
use crate::peer::Peer;
use crate::time::Time;
use std::collections::{BTreeMap, VecDeque};
use std::num::NonZeroUsize;
use std::time::Duration;

fn millis(d: Duration) -> u32 {
    u32::try_from(d.as_millis()).unwrap_or(u32::MAX)
}

/// The level homes give objects while they have no leader result: home only, on any ring.
pub const NO_RESULT_LEVEL: u8 = (crate::beehive::wire::MAX_LEVELS - 1) as u8;

/// One object as an operator sees it on this node ([`crate::Node::known_objects`]).
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

/// A node that pulled from us.
#[derive(Debug, Clone, Copy)]
struct Puller {
    peer: Peer,
    /// When it last pulled: it gets our pushes for two intervals after.
    at: Time,
    /// Push rounds we had sent before it pulled: its next delta leaves out what a later
    /// round carried to it, one sent while it was still a recent puller. A round reaches
    /// every recent puller the offer suits, which it still does if the key has not changed
    /// since (the change log keeps the round per change).
    flushes: u64,
    /// Its next node past us that it pulls from (`Pull::next`).
    next: Option<Id>,
}

/// A node we pull from, as its answers need it.
#[derive(Debug, Default, Clone, Copy)]
struct Finger {
    /// The generation of its offers we last saw (`None`: the next pull asks for all).
    seen: Option<u64>,
    /// The `next` our last pull to it named ([`crate::beehive::wire::Pull::next`]): the keys
    /// its full answer covers.
    next: Option<Id>,
}

/// Replication's periodic tasks, in firing order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Timer {
    /// The tick: counts, levels, the report and the pulls.
    Replicate,
    /// Sends the pushes gathered since it was armed (see [`offers`]).
    Push,
    /// The leader's solve, a little after its tick (see [`reports`]).
    Solve,
}

impl TimerKind for Timer {
    const ALL: &'static [Timer] = &[Timer::Replicate, Timer::Push, Timer::Solve];
    fn index(self) -> usize {
        self as usize
    }
}

/// A node's Beehive state. See the module docs.
#[derive(Debug)]
pub(crate) struct Replication {
    cfg: ReplicationConfig,
    /// Our ring id: it sets the phase of our tick.
    me: Id,
    timers: Timers<Timer, { Timer::ALL.len() }>,
    /// Requests to send, in order; the node sends and tracks them.
    sends: VecDeque<(Peer, Request)>,
    events: VecDeque<Event>,
    /// Requests this node served this interval.
    sketch: SpaceSaving,
    /// Counts received for keys homed elsewhere, forwarded next tick.
    relay: Vec<CountEntry>,
    homes: Homes,
    holdings: Holdings,
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
    /// pulls with deltas (see [`crate::beehive::wire::OfferList`]).
    gen: u64,
    /// The key of every change, oldest first (kept for [`offers::CHANGE_LOG_TICKS`] ticks).
    changes: ChangeLog,
    /// The generation at each of the last ticks; the oldest bounds what a delta can cover.
    tick_gens: VecDeque<u64>,
    last_tick: Time,
    previous_tick: Time,
    ticks: u64,
    /// The nodes we pull from (and any that answered us), kept while they are targets.
    fingers: FastMap<Id, Finger>,
    /// Nodes that pulled from us lately: new offers are pushed to them soon.
    pullers: FastMap<Id, Puller>,
    /// Keys whose offers go out with the next push (see [`offers::PUSH_BATCHES`]).
    to_push: Vec<Id>,
    /// Push rounds sent so far.
    flushes: u64,
    /// When each push round of the last two intervals went out, oldest first, from round
    /// `flushes + 1 - push_times.len()`.
    push_times: VecDeque<Time>,
    last_push: Option<Time>,
}

impl Replication {
    pub fn new(me: Id, cfg: ReplicationConfig) -> Self {
        let capacity = NonZeroUsize::new(cfg.sketch_capacity).unwrap_or(NonZeroUsize::MIN);
        let seed = (me.0 >> 64) as u64;
        Replication {
            leader: Leader::new(&cfg),
            cfg,
            me,
            timers: Timers::default(),
            sends: VecDeque::new(),
            events: VecDeque::new(),
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
            changes: ChangeLog::default(),
            tick_gens: VecDeque::new(),
            last_tick: Time::ZERO,
            previous_tick: Time::ZERO,
            ticks: 0,
            fingers: FastMap::default(),
            pullers: FastMap::default(),
            to_push: Vec::new(),
            flushes: 0,
            push_times: VecDeque::new(),
            last_push: None,
        }
    }

    // ------------------------------------------------------------ outputs

    /// The next request to send (the node tracks its answer).
    pub fn poll_send(&mut self) -> Option<(Peer, Request)> {
        self.sends.pop_front()
    }

    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// The earliest of replication's timers.
    pub fn poll_timeout(&self) -> Option<Time> {
        self.timers.next()
    }

    /// Stops every replication timer (the node leaves, or starts over with a join).
    pub fn stop(&mut self) {
        self.timers.clear_all();
    }

    fn send(&mut self, to: Peer, request: Request) {
        self.sends.push_back((to, request));
    }

    fn event(&mut self, event: Event) {
        self.events.push_back(event);
    }

    // ------------------------------------------------------------ shared helpers

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

    /// Whether a storage budget refuses an offer of `key`: at the budget no new copy is
    /// fetched; past it (our own objects grew) none is renewed either.
    fn budget_refuses(&self, key: Id) -> bool {
        // Without a budget, no lookup of the copy.
        self.cfg.budget.is_some() && self.budget_excess(usize::from(!self.holdings.has(key))) > 0
    }

    /// The generation of `finger`'s offers we last saw: a pull asks for what changed since.
    fn seen(&self, finger: Id) -> Option<u64> {
        self.fingers.get(&finger).and_then(|f| f.seen)
    }

    /// Records that our offer of `key` changed.
    fn touch(&mut self, key: Id) {
        self.gen += 1;
        self.changes.record(self.gen, key);
    }

    /// Past the budget (this node's own objects grew): the least popular copies go.
    fn shed_to_budget(&mut self) {
        let excess = self.budget_excess(0);
        for key in self.holdings.shed(excess) {
            self.touch(key);
            self.evict_unless_home(key);
        }
    }

    /// `key` was dropped here: the caller drops its body too, unless we are its home.
    fn evict_unless_home(&mut self, key: Id) {
        if self.homes.get(key).is_none() {
            self.event(Event::Evict { key });
        }
    }

    /// The lease a home grants: renewals reach a copy through a chain of pulls (about
    /// ½·log2 N of them, each up to an interval apart), so the lease covers that chain plus
    /// `lease_intervals` to spare. A longer chain only costs a refetch, not a wrong answer.
    fn lease(&self) -> Time {
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

    /// The newest leader result this node has.
    pub fn result(&self) -> Option<&LevelResult> {
        self.result.as_ref().map(|(r, _)| r)
    }

    /// The home-only level: from the result, or from our own view of the ring size.
    pub fn top_level(&self, now: Time) -> u8 {
        self.fresh_result(now).map_or(NO_RESULT_LEVEL, |r| r.top_level())
    }
}
