//! One node's Chord protocol as a state machine: inputs in, outputs drained.
//!
//! Inputs: [`Node::handle_message`], [`Node::handle_timeout`], and the commands
//! [`Node::join`], [`Node::lookup`], [`Node::leave`]. After every input the caller drains
//! [`Node::poll_transmit`] and [`Node::poll_event`] until they return `None`, then sleeps until
//! [`Node::poll_timeout`] (or the next message). The node never reads a clock: `now` comes in.
//!
//! Recovery is periodic, never reactive (as in Bamboo): a miss marks a peer suspected
//! and lookups route around it at once, but routing state is only rebuilt by the periodic
//! stabilize, fix-fingers, check-predecessor and merge tasks, so a burst of losses cannot turn
//! into a burst of repair traffic.
//!
//! Why one file of this size: the Chord handlers here (join, stabilize and notify,
//! check-predecessor, fix-fingers, merge, leave) and the request bookkeeping all act on the
//! same few fields — routing, peer standing, pending requests and their deadlines — under
//! one set of invariants: every request has a deadline, a response is taken only from the
//! peer asked and only of the kind awaited, a miss is counted once. Kept together, those
//! invariants can be checked in one read. What does not touch them lives in its own module:
//! lookups (`lookups`), object commands (`objects`), Beehive (`replication`),
//! the timer table (`timers`) and the events (`event`).

mod event;
mod lookups;
mod objects;
mod replication;
mod ring;
mod timers;

use crate::config::ChordConfig;
use crate::error::ProtocolError;
use crate::hash::FastMap;
use crate::id::{Id, ID_BITS};
use crate::lookup::{Lookup, LookupId, Purpose};
use crate::message::{Message, NextHop, Request, RequestId, Response};
use crate::peer::{Peer, PeerTable};
use crate::routing::Routing;
use crate::time::Time;
use std::collections::hash_map::Entry;
use std::collections::{BTreeSet, VecDeque};
use std::time::Duration;

pub use crate::lookup::ObjectAnswer;
pub use event::{Event, Transmit};
use replication::Replication;
pub use replication::{KnownObject, NO_RESULT_LEVEL};
use ring::RingView;
use timers::{TimerKind, Timers};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Alone, not yet part of a ring (or waiting to retry the join).
    Idle,
    Joining,
    Joined,
    Left,
}

/// What an outstanding request is waiting for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Awaiting {
    Pong,
    /// A ping to a suspected peer: its answer clears the suspicion, its silence counts.
    Probe,
    Neighbors,
    Ack,
    Next(u64),
    Offers,
}

impl Awaiting {
    fn name(self) -> &'static str {
        match self {
            Awaiting::Pong | Awaiting::Probe => "ping",
            Awaiting::Neighbors => "stabilize",
            Awaiting::Ack => "leaving",
            Awaiting::Next(_) => "find_next",
            Awaiting::Offers => "pull",
        }
    }
}

#[derive(Debug)]
struct Pending {
    to: Peer,
    sent: Time,
    deadline: Time,
    awaiting: Awaiting,
}

/// The node's periodic tasks, in firing order (replication's follow, see
/// [`Replication::handle_timeout`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Timer {
    JoinRetry,
    Stabilize,
    CheckPredecessor,
    FixFingers,
    Merge,
}

impl TimerKind for Timer {
    const ALL: &'static [Timer] = &[
        Timer::JoinRetry,
        Timer::Stabilize,
        Timer::CheckPredecessor,
        Timer::FixFingers,
        Timer::Merge,
    ];
    fn index(self) -> usize {
        self as usize
    }
}

const MAX_DEPARTED: usize = 16;

/// One node's Chord state. See the module docs for the calling convention.
#[derive(Debug)]
pub struct Node {
    config: ChordConfig,
    routing: Routing,
    peers: PeerTable,
    phase: Phase,
    seeds: Vec<Peer>,
    next_seed: usize,
    join_backoff: Duration,
    /// Peers removed after repeated misses, probed later by the merge task: after a
    /// partition heals they are our way back to the other half.
    departed: VecDeque<Peer>,
    pending: FastMap<RequestId, Pending>,
    deadlines: BTreeSet<(Time, RequestId)>,
    next_request: RequestId,
    lookups: FastMap<u64, Lookup>,
    next_lookup: u64,
    timers: Timers<Timer, { Timer::ALL.len() }>,
    next_finger: u32,
    stabilize_inflight: bool,
    ping_inflight: bool,
    finger_inflight: bool,
    merge_inflight: bool,
    transmits: VecDeque<Transmit>,
    events: VecDeque<Event>,
    rep: Replication,
}

impl Node {
    /// A node alone in its own ring of one. Call [`Node::join`] to join others, or leave it
    /// alone as the first node of a new ring.
    ///
    /// The configuration must have passed [`ChordConfig::validate`].
    pub fn new(me: Peer, config: ChordConfig, now: Time) -> Self {
        let routing = Routing::new(me, config.successors);
        let rep = Replication::new(me.id, config.replication.clone());
        let join_backoff = config.stabilize_interval;
        let mut node = Node {
            config,
            routing,
            peers: PeerTable::default(),
            phase: Phase::Idle,
            seeds: Vec::new(),
            next_seed: 0,
            join_backoff,
            departed: VecDeque::new(),
            pending: FastMap::default(),
            deadlines: BTreeSet::new(),
            next_request: 1,
            lookups: FastMap::default(),
            next_lookup: 1,
            timers: Timers::default(),
            next_finger: 0,
            stabilize_inflight: false,
            ping_inflight: false,
            finger_inflight: false,
            merge_inflight: false,
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            rep,
        };
        // A lone node is a ring: it runs the periodic tasks so that the first node to notify
        // it becomes its successor.
        node.phase = Phase::Joined;
        node.start_timers(now);
        node
    }

    // ---------------------------------------------------------------- commands

    /// Joins the ring through any of `seeds`: looks up our own id through them and takes the
    /// answer as our successor. Stabilization does the rest.
    pub fn join(&mut self, now: Time, seeds: &[Peer]) {
        let me = self.me().id;
        self.seeds = seeds.iter().copied().filter(|p| p.id != me).collect();
        if self.seeds.is_empty() || self.phase == Phase::Left {
            return;
        }
        self.phase = Phase::Joining;
        self.stop_timers();
        self.begin_lookup(now, me, Purpose::Join, Vec::new(), self.seeds.clone());
    }

    /// Starts a lookup for `key`; its answer arrives as [`Event::LookupDone`] or
    /// [`Event::LookupFailed`] with the returned id. A key this node can answer from its own
    /// routing state completes at once with 0 hops.
    pub fn lookup(&mut self, now: Time, key: Id) -> LookupId {
        self.start_user_lookup(now, key, false)
    }

    pub fn leave(&mut self, now: Time) {
        if self.phase == Phase::Left {
            return;
        }
        let notice = Request::Leaving {
            predecessor: self.routing.predecessor(),
            successors: self.routing.successors().to_vec(),
        };
        let mut told = Vec::new();
        for p in [Some(self.routing.successor()), self.routing.predecessor()].into_iter().flatten()
        {
            if p.id != self.me().id && !told.contains(&p.id) {
                told.push(p.id);
                self.send_request(now, p, notice.clone(), Awaiting::Ack);
            }
        }
        let mut ids: Vec<u64> = self.lookups.keys().copied().collect();
        ids.sort_unstable();
        for lid in ids {
            if let Some(l) = self.lookups.remove(&lid) {
                if let Purpose::User(id) | Purpose::Object(id) = l.purpose {
                    self.events.push_back(Event::LookupFailed { id, key: l.key, hops: l.hops });
                }
            }
        }
        self.phase = Phase::Left;
        self.stop_timers();
    }

    // ---------------------------------------------------------------- inputs

    /// Feeds one message from `from` (as authenticated by the transport).
    ///
    /// An `Err` says why the message was refused; except where the error variant says
    /// otherwise the node's state is unchanged. Never panics on any input.
    pub fn handle_message(
        &mut self,
        now: Time,
        from: Peer,
        msg: Message,
    ) -> Result<(), ProtocolError> {
        if self.phase == Phase::Left {
            return Err(ProtocolError::Left);
        }
        if from.id == self.me().id {
            return Err(ProtocolError::FromSelf(from.id));
        }
        msg.validate()?;
        match msg {
            Message::Request { id, body } => {
                if self.peers.get(from.id).is_some() {
                    self.peers.heard_from(from.id, now);
                }
                let response = self.answer(now, from, body);
                self.drain_replication(now);
                self.transmits.push_back(Transmit {
                    to: from,
                    message: Message::Response { id, body: response },
                });
                Ok(())
            }
            Message::Response { id, body } => self.handle_response(now, from, id, body),
        }
    }

    /// Runs everything due at `now`: expired requests count as misses, and periodic tasks
    /// whose time has come run once.
    pub fn handle_timeout(&mut self, now: Time) {
        while let Some(&(deadline, rid)) = self.deadlines.first() {
            if deadline > now {
                break;
            }
            self.deadlines.pop_first();
            if let Some(p) = self.pending.remove(&rid) {
                self.on_miss(now, p);
            }
        }
        for &t in Timer::ALL {
            if self.timers.take_due(t, now) {
                self.run_timer(now, t);
            }
        }
        let joined = self.phase == Phase::Joined;
        self.rep.handle_timeout(now, RingView::new(&self.routing, &self.peers), joined);
        self.drain_replication(now);
    }

    // ---------------------------------------------------------------- outputs

    /// The next message to send. Call after every input until `None`.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// The next event. Call after every input until `None`.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When [`Node::handle_timeout`] should next be called. `None` once the node has left
    /// and nothing is outstanding.
    pub fn poll_timeout(&self) -> Option<Time> {
        let timers = match (self.timers.next(), self.rep.poll_timeout()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let requests = self.deadlines.first().map(|(t, _)| *t);
        match (timers, requests) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    // ---------------------------------------------------------------- accessors

    pub fn me(&self) -> Peer {
        self.routing.me()
    }

    pub fn routing(&self) -> &Routing {
        &self.routing
    }

    /// Direct access to the routing state, for simulators and tests that start from a
    /// converged ring instead of joining node by node. A live node never calls this.
    pub fn routing_mut(&mut self) -> &mut Routing {
        &mut self.routing
    }

    pub fn peers(&self) -> &PeerTable {
        &self.peers
    }

    pub fn config(&self) -> &ChordConfig {
        &self.config
    }

    /// Whether the node has found its place in a ring (a lone first node counts).
    pub fn is_joined(&self) -> bool {
        self.phase == Phase::Joined
    }

    pub fn has_left(&self) -> bool {
        self.phase == Phase::Left
    }

    /// Requests awaiting an answer; bounded by the lookups in flight plus a handful.
    pub fn outstanding_requests(&self) -> usize {
        self.pending.len()
    }

    // ---------------------------------------------------------------- requests we answer

    fn answer(&mut self, now: Time, from: Peer, body: Request) -> Response {
        match body {
            Request::FindNext { key, as_home, want_object: true } => {
                match self.serve(now, key, Some(as_home)) {
                    Some(s) => Response::Next(NextHop::Have { level: s.level, object: s.object }),
                    None => Response::Next(self.routing.route(
                        key,
                        Some(from.id),
                        as_home,
                        |p| self.peers.is_suspected(p),
                        self.config.lookup_candidates,
                    )),
                }
            }
            Request::Ping => Response::Pong,
            Request::Stabilize => {
                self.notified_by(from);
                Response::Neighbors {
                    predecessor: self.routing.predecessor(),
                    successors: self.routing.successors().to_vec(),
                }
            }
            Request::FindNext { key, as_home, want_object: false } => {
                Response::Next(self.routing.route(
                    key,
                    Some(from.id),
                    as_home,
                    |p| self.peers.is_suspected(p),
                    self.config.lookup_candidates,
                ))
            }
            Request::Leaving { predecessor, successors } => {
                self.splice_out(from, predecessor, successors);
                Response::Ack
            }
            Request::Pull(pull) => {
                let ring = RingView::new(&self.routing, &self.peers);
                self.rep.answer_pull(now, ring, from, *pull)
            }
            Request::Cache { offer, holder } => {
                self.rep.answer_cache(RingView::new(&self.routing, &self.peers), offer, holder)
            }
            Request::Invalidate { key, min_version, arc_start, limit } => {
                let ring = RingView::new(&self.routing, &self.peers);
                self.rep.answer_invalidate(now, ring, key, min_version, arc_start, limit)
            }
            Request::Push { offers } => {
                let ring = RingView::new(&self.routing, &self.peers);
                self.rep.answer_push(now, ring, from, offers)
            }
            Request::Report(report) => {
                self.rep.answer_report(RingView::new(&self.routing, &self.peers), *report)
            }
        }
    }

    /// Chord's notify: `from` thinks it precedes us.
    fn notified_by(&mut self, from: Peer) {
        let me = self.me().id;
        let old = self.routing.predecessor();
        let adopt = match old {
            None => true,
            Some(p) => from.id.in_open(p.id, me) || self.peers.is_suspected(p.id),
        };
        if adopt && old != Some(from) {
            self.routing.set_predecessor(Some(from));
            self.events.push_back(Event::PredecessorChanged { old, new: Some(from) });
        }
        // The second node of a ring: our only neighbour is both predecessor and successor.
        if self.routing.successors().is_empty() {
            self.routing.offer_successor(from);
        }
    }

    fn splice_out(&mut self, leaving: Peer, predecessor: Option<Peer>, successors: Vec<Peer>) {
        let me = self.me().id;
        let was_pred = self.routing.predecessor().is_some_and(|p| p.id == leaving.id);
        let was_succ = self.routing.successors().iter().any(|p| p.id == leaving.id);
        self.routing.remove(leaving.id);
        self.peers.remove(leaving.id);
        if was_pred {
            let new = predecessor.filter(|p| p.id != me && p.id != leaving.id);
            self.routing.set_predecessor(new);
            self.events.push_back(Event::PredecessorChanged { old: Some(leaving), new });
        }
        if was_succ {
            let mut list = self.routing.successors().to_vec();
            list.extend(successors.into_iter().filter(|p| p.id != leaving.id));
            self.routing.set_successors(list);
        }
    }

    // ---------------------------------------------------------------- answers we get

    fn handle_response(
        &mut self,
        now: Time,
        from: Peer,
        id: RequestId,
        body: Response,
    ) -> Result<(), ProtocolError> {
        // Checked before removal: a refused response leaves the request open.
        let pending = match self.pending.entry(id) {
            Entry::Vacant(_) => return Err(ProtocolError::UnknownRequest { id }),
            Entry::Occupied(e) => {
                let p = e.get();
                if p.to.id != from.id {
                    return Err(ProtocolError::WrongResponder { id, from: from.id, to: p.to.id });
                }
                let fits = matches!(
                    (p.awaiting, &body),
                    (Awaiting::Pong | Awaiting::Probe, Response::Pong)
                        | (Awaiting::Ack, Response::Ack)
                        | (Awaiting::Neighbors, Response::Neighbors { .. })
                        | (Awaiting::Next(_), Response::Next(_))
                        | (Awaiting::Offers, Response::Offers { .. })
                );
                if !fits {
                    return Err(ProtocolError::MismatchedResponse {
                        id,
                        expected: p.awaiting.name(),
                        got: Message::Response { id, body }.kind(),
                    });
                }
                e.remove()
            }
        };
        self.deadlines.remove(&(pending.deadline, id));
        let standing = self.peers.entry(from.id);
        standing.rtt.sample(now.saturating_sub(pending.sent));
        self.peers.heard_from(from.id, now);
        match (pending.awaiting, body) {
            (Awaiting::Pong, _) => self.ping_inflight = false,
            (Awaiting::Neighbors, Response::Neighbors { predecessor, successors }) => {
                self.stabilize_inflight = false;
                self.stabilized_with(now, from, predecessor, successors);
            }
            (Awaiting::Next(lid), Response::Next(hop)) => {
                return self.lookup_step(now, lid, from, hop)
            }
            (Awaiting::Offers, Response::Offers { list, result }) => {
                let ring = RingView::new(&self.routing, &self.peers);
                self.rep.offers_received(now, ring, from, list, result);
                self.drain_replication(now);
            }
            _ => {}
        }
        Ok(())
    }

    /// Chord's stabilize, second half: our successor told us its neighbours.
    fn stabilized_with(
        &mut self,
        now: Time,
        succ: Peer,
        predecessor: Option<Peer>,
        successors: Vec<Peer>,
    ) {
        let me = self.me().id;
        let mut list = Vec::with_capacity(successors.len() + 2);
        list.push(succ);
        // Its list, up to the point where it wraps back to us.
        list.extend(successors.into_iter().take_while(|p| p.id != me));
        if let Some(p) = predecessor.filter(|p| p.id.in_open(me, succ.id)) {
            if !self.peers.is_suspected(p.id) {
                list.push(p);
            } else {
                // Our successor heard from it since we last did: probe it rather than wait
                // for the suspicion to be pruned (up to a merge interval for a peer no longer
                // in our routing state, which `probe_suspects` does not reach). Meanwhile we
                // would never notify it, and it would stay without a predecessor.
                self.probe(now, p);
            }
        }
        self.routing.set_successors(list);
    }

    // ---------------------------------------------------------------- periodic tasks

    fn start_timers(&mut self, now: Time) {
        // Spread the first firing over one period by the node id, so nodes started together
        // do not tick in lockstep. Deterministic: no RNG in the core.
        let seed = (self.me().id.0 >> 64) as u64;
        let spread = |period: Duration, salt: u32| {
            let frac = seed.rotate_left(salt * 16) % 1024;
            now + period * frac as u32 / 1024
        };
        self.timers.set(Timer::Stabilize, spread(self.config.stabilize_interval, 0));
        self.timers.set(Timer::FixFingers, spread(self.config.fix_fingers_interval, 1));
        self.timers.set(Timer::CheckPredecessor, spread(self.config.check_predecessor_interval, 2));
        self.timers.set(Timer::Merge, now + self.config.merge_interval);
        self.rep.schedule(now);
    }

    fn stop_timers(&mut self) {
        self.timers.clear_all();
        self.rep.stop();
    }

    fn run_timer(&mut self, now: Time, timer: Timer) {
        let period = match timer {
            Timer::Stabilize => {
                self.stabilize(now);
                self.config.stabilize_interval
            }
            Timer::FixFingers => {
                self.fix_fingers(now);
                self.config.fix_fingers_interval
            }
            Timer::CheckPredecessor => {
                self.check_predecessor(now);
                self.config.check_predecessor_interval
            }
            Timer::Merge => {
                self.prune_peer_table(now);
                self.merge_probe(now);
                self.config.merge_interval
            }
            Timer::JoinRetry => {
                if self.phase == Phase::Idle {
                    let seeds = self.seeds.clone();
                    self.join(now, &seeds);
                }
                return;
            }
        };
        if self.phase == Phase::Joined {
            self.timers.set(timer, now + period);
        }
    }

    fn stabilize(&mut self, now: Time) {
        if self.routing.successors().is_empty() {
            if let Some(p) = self.routing.predecessor() {
                self.routing.offer_successor(p);
            }
        }
        // Alone with seeds to ask: our successors died before any node learned of us (a
        // join that raced a crash), so nobody will contact us. Look for the ring every round
        // instead of once per merge interval.
        if self.alone() && !self.seeds.is_empty() {
            self.merge_probe(now);
        }
        if self.stabilize_inflight {
            return;
        }
        // Always the first successor, suspected or not: skipping it would adopt the next one's
        // list, which starts after it, and one lost packet would evict the true successor.
        // A dead successor goes after `max_misses` rounds.
        if let Some(s) = self.routing.successors().first().copied() {
            self.stabilize_inflight = true;
            self.send_request(now, s, Request::Stabilize, Awaiting::Neighbors);
        }
    }

    fn check_predecessor(&mut self, now: Time) {
        if self.ping_inflight {
            return;
        }
        if let Some(p) = self.routing.predecessor() {
            self.ping_inflight = true;
            self.send_request(now, p, Request::Ping, Awaiting::Pong);
        }
        self.probe_suspects(now);
    }

    /// Pings a few suspected peers we still route through. Lookups route around suspects and
    /// so never talk to them again; without a probe a single lost packet would make a
    /// suspicion permanent. The answer clears it, silence adds a miss toward removal.
    fn probe_suspects(&mut self, now: Time) {
        const PROBES_PER_TICK: usize = 2;
        let mut suspects: Vec<Id> = self.peers.suspected().collect();
        suspects.sort_unstable();
        let mut sent = 0;
        for id in suspects {
            if sent == PROBES_PER_TICK {
                break;
            }
            let Some(peer) = self.routing.find(id) else { continue };
            if self.probe(now, peer) {
                sent += 1;
            }
        }
    }

    /// Pings a suspect unless a request to it is already out (its answer or silence will
    /// settle the suspicion as well). Returns whether it sent one.
    fn probe(&mut self, now: Time, peer: Peer) -> bool {
        if self.pending.values().any(|p| p.to.id == peer.id) {
            return false;
        }
        self.send_request(now, peer, Request::Ping, Awaiting::Probe);
        true
    }

    fn fix_fingers(&mut self, now: Time) {
        let succ = self.routing.successor();
        let first_remote = self.routing.first_remote_finger();
        self.routing.set_fingers(0..first_remote, succ);
        if self.finger_inflight || first_remote >= ID_BITS || succ.id == self.me().id {
            return;
        }
        if self.next_finger < first_remote || self.next_finger >= ID_BITS {
            self.next_finger = first_remote;
        }
        let j = self.next_finger;
        self.next_finger += 1;
        let key = self.me().id.finger_target(j);
        match self.routing.route(
            key,
            None,
            false,
            |p| self.peers.is_suspected(p),
            self.config.lookup_candidates,
        ) {
            NextHop::Here | NextHop::Have { .. } => {}
            // Our own successor list covers the target: no need to ask anyone.
            NextHop::Successors(homes) => self.set_finger_and_beyond(j, homes[0]),
            NextHop::Closer(c) => {
                self.finger_inflight = true;
                self.begin_lookup(now, key, Purpose::FixFinger(j), Vec::new(), c);
            }
        }
    }

    /// Looks up our own successor through a peer outside our current view: one we removed
    /// after misses (after a partition heals, it is in the other ring) or a seed.
    fn merge_probe(&mut self, now: Time) {
        if self.merge_inflight {
            return;
        }
        // Alone, the seeds first: they are the operator's way into the ring, and departed
        // peers are mostly dead.
        let probe = if self.alone() {
            self.next_seed().or_else(|| self.departed.pop_front())
        } else {
            self.departed.pop_front().or_else(|| self.next_seed())
        };
        if let Some(p) = probe {
            self.merge_inflight = true;
            let me = self.me().id;
            self.begin_lookup(now, me, Purpose::Merge, Vec::new(), vec![p]);
        }
    }

    fn next_seed(&mut self) -> Option<Peer> {
        if self.seeds.is_empty() {
            return None;
        }
        self.next_seed = (self.next_seed + 1) % self.seeds.len();
        Some(self.seeds[self.next_seed])
    }

    /// Joined, but in a ring of one: no successor but ourselves and no predecessor.
    fn alone(&self) -> bool {
        self.phase == Phase::Joined
            && self.routing.successor().id == self.me().id
            && self.routing.predecessor().is_none()
    }

    /// Forgets the standing of peers we no longer route through and have not heard from
    /// lately, so the table stays as small as the routing state.
    fn prune_peer_table(&mut self, now: Time) {
        let horizon = now.saturating_sub(self.config.merge_interval);
        let routing = &self.routing;
        let asked: Vec<Id> = self.pending.values().map(|p| p.to.id).collect();
        self.peers.retain(|id, standing| {
            routing.references(id)
                || asked.contains(&id)
                || standing.last_heard.is_some_and(|t| t >= horizon)
        });
    }

    // ---------------------------------------------------------------- sending and misses

    /// Sends what replication asked for and passes its events on, in the order it queued
    /// them; called after every call into it.
    fn drain_replication(&mut self, now: Time) {
        while let Some((to, body)) = self.rep.poll_send() {
            let awaiting = match body {
                Request::Pull(_) => Awaiting::Offers,
                _ => Awaiting::Ack,
            };
            self.send_request(now, to, body, awaiting);
        }
        while let Some(event) = self.rep.poll_event() {
            self.events.push_back(event);
        }
    }

    fn send_request(&mut self, now: Time, to: Peer, body: Request, awaiting: Awaiting) {
        let id = self.next_request;
        self.next_request += 1;
        let c = &self.config;
        let rto = self.peers.entry(to.id).rtt.rto(c.rto_initial, c.rto_min, c.rto_max);
        let deadline = now + rto;
        self.pending.insert(id, Pending { to, sent: now, deadline, awaiting });
        self.deadlines.insert((deadline, id));
        self.transmits.push_back(Transmit { to, message: Message::Request { id, body } });
    }

    fn on_miss(&mut self, now: Time, p: Pending) {
        // Every peer we send to has an entry, and one with a request out is never pruned:
        // no entry means other misses made us forget it since this request went out.
        // Counting this one would bring back a suspicion of a peer nothing refers to, which
        // kept a node restarted at the same address (same id) out of its predecessor's
        // successor list until the entry was pruned.
        if self.peers.get(p.to.id).is_some() {
            let misses = self.peers.missed(p.to.id);
            if misses >= self.config.max_misses {
                self.forget(p.to);
            }
        }
        match p.awaiting {
            Awaiting::Pong => self.ping_inflight = false,
            Awaiting::Neighbors => self.stabilize_inflight = false,
            Awaiting::Ack | Awaiting::Probe | Awaiting::Offers => {}
            Awaiting::Next(lid) => self.advance_lookup(now, lid),
        }
    }

    /// Drops a peer that missed too often from all routing state; remembers it for the merge
    /// probe in case it was only cut off, not dead.
    fn forget(&mut self, peer: Peer) {
        let old_pred = self.routing.predecessor();
        self.routing.remove(peer.id);
        self.peers.remove(peer.id);
        if old_pred.is_some_and(|p| p.id == peer.id) {
            self.events.push_back(Event::PredecessorChanged { old: old_pred, new: None });
        }
        if !self.departed.iter().any(|p| p.id == peer.id) {
            if self.departed.len() >= MAX_DEPARTED {
                self.departed.pop_front();
            }
            self.departed.push_back(peer);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(super) fn peer(id: u128, port: u16) -> Peer {
        Peer { id: Id(id), addr: std::net::SocketAddr::from(([127, 0, 0, 1], port)) }
    }

    /// Answers every request `n` sent to `to` with `body`; returns how many it answered.
    fn answer_all(n: &mut Node, now: Time, to: Peer, body: impl Fn(&Request) -> Response) -> usize {
        let sent: Vec<Transmit> = std::iter::from_fn(|| n.poll_transmit()).collect();
        let mut answered = 0;
        for t in sent.into_iter().filter(|t| t.to.id == to.id) {
            if let Message::Request { id, body: request } = t.message {
                let response = Message::Response { id, body: body(&request) };
                n.handle_message(now, to, response).unwrap();
                answered += 1;
            }
        }
        answered
    }

    /// A request to a peer we have since forgotten times out: that miss is not counted,
    /// so the peer is not suspected again when it comes back.
    #[test]
    fn a_late_miss_of_a_forgotten_peer_is_not_a_suspicion() {
        let (me, gone) = (peer(100, 7000), peer(200, 7001));
        let mut n = Node::new(me, ChordConfig::default(), Time::ZERO);
        n.routing_mut().set_successors([gone]);
        let max = n.config().max_misses;
        for _ in 0..max {
            n.send_request(Time::ZERO, gone, Request::Ping, Awaiting::Probe);
        }
        let half = Duration::from_millis(500);
        n.send_request(half, gone, Request::Ping, Awaiting::Probe);
        // The first requests time out together: the peer is forgotten.
        n.handle_timeout(Duration::from_secs(1));
        assert!(n.peers().get(gone.id).is_none(), "forgotten after {max} misses");
        // The late one times out after that.
        n.handle_timeout(Duration::from_secs(10));
        assert_eq!(n.outstanding_requests(), 0);
        assert!(n.peers().get(gone.id).is_none(), "no suspicion of a forgotten peer");
    }

    /// A suspect our successor names as its predecessor (a peer we no longer route through,
    /// say, killed and restarted at the same address: same id) is probed, and taken as our
    /// successor once it answers.
    #[test]
    fn a_suspect_our_successor_vouches_for_is_probed_and_adopted() {
        let (me, back, succ) = (peer(100, 7000), peer(200, 7001), peer(300, 7002));
        let mut n = Node::new(me, ChordConfig::default(), Time::ZERO);
        n.phase = Phase::Joined;
        n.routing_mut().set_successors([succ]);
        n.routing_mut().set_predecessor(Some(peer(900, 7009)));
        n.peers.missed(back.id);
        let neighbors = |_: &Request| Response::Neighbors {
            predecessor: Some(back),
            successors: vec![peer(400, 7003)],
        };
        let mut now = Time::ZERO;
        n.stabilize(now);
        assert_eq!(answer_all(&mut n, now, succ, neighbors), 1);
        assert_eq!(n.routing().successor(), succ, "a suspect is not taken on hearsay");
        // The probe went out; the restarted node answers it.
        now += Duration::from_millis(10);
        assert_eq!(answer_all(&mut n, now, back, |_| Response::Pong), 1, "probed");
        assert!(!n.peers().is_suspected(back.id));
        n.stabilize(now);
        assert_eq!(answer_all(&mut n, now, succ, neighbors), 1);
        assert_eq!(n.routing().successor(), back);
    }
}
