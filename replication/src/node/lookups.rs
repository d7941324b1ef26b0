//! The node's side of its lookups: starting one, asking the next candidate, taking answers,
//! and acting on the result by purpose (a caller's answer, our join, a finger, a merge).
//! The per-lookup bookkeeping lives in [`crate::lookup`].

use super::{Awaiting, Node, Phase, Timer};
use crate::error::ProtocolError;
use crate::id::{Id, ID_BITS};
use crate::lookup::{Lookup, LookupId, ObjectAnswer, Purpose, Step};
use crate::message::NextHop;
use crate::node::event::Event;
use crate::node::ring::RingView;
use crate::peer::Peer;
use crate::time::Time;

impl Node {
    pub(super) fn start_user_lookup(&mut self, now: Time, key: Id, want_object: bool) -> LookupId {
        let id = LookupId(self.next_lookup);
        let purpose = if want_object { Purpose::Object(id) } else { Purpose::User(id) };
        let hop = self.routing.route(
            key,
            None,
            false,
            |p| self.peers.is_suspected(p),
            self.config.lookup_candidates,
        );
        match hop {
            NextHop::Here => {
                self.next_lookup += 1;
                let home = self.me();
                self.events.push_back(Event::LookupDone { id, key, home, hops: 0, served: None });
            }
            NextHop::Successors(homes) => self.begin_lookup(now, key, purpose, homes, Vec::new()),
            NextHop::Closer(candidates) => {
                self.begin_lookup(now, key, purpose, Vec::new(), candidates)
            }
            // Routing alone never answers `Have`.
            NextHop::Have { .. } => {}
        }
        id
    }

    pub(super) fn begin_lookup(
        &mut self,
        now: Time,
        key: Id,
        purpose: Purpose,
        homes: Vec<Peer>,
        candidates: Vec<Peer>,
    ) {
        let me = self.me().id;
        let lid = self.next_lookup;
        self.next_lookup += 1;
        let candidates = candidates.into_iter().filter(|p| p.id != me).collect();
        let mut lookup = Lookup::new(key, purpose, candidates);
        lookup.homes = homes.into_iter().filter(|p| p.id != me).collect();
        self.lookups.insert(lid, lookup);
        self.advance_lookup(now, lid);
    }

    /// Asks the best remaining candidate, or ends the lookup if none is left.
    pub(super) fn advance_lookup(&mut self, now: Time, lid: u64) {
        let Some(l) = self.lookups.get_mut(&lid) else {
            return;
        };
        let peers = &self.peers;
        match l.ask_next(self.config.max_lookup_hops, |p| peers.is_suspected(p)) {
            None => self.finish_lookup(now, lid, None, None),
            Some((p, req)) => self.send_request(now, p, req, Awaiting::Next(lid)),
        }
    }

    pub(super) fn lookup_step(
        &mut self,
        now: Time,
        lid: u64,
        from: Peer,
        hop: NextHop,
    ) -> Result<(), ProtocolError> {
        let me = self.me();
        let Some(l) = self.lookups.get_mut(&lid) else { return Ok(()) };
        match l.answer(me.id, from.id, hop) {
            Step::Done(found) => {
                self.finish_lookup(now, lid, Some(from), found);
                Ok(())
            }
            Step::Ours => {
                let (key, purpose) = (l.key, l.purpose);
                let found = match purpose {
                    Purpose::Object(_) => self.serve(now, key, Some(true)),
                    _ => None,
                };
                self.finish_lookup(now, lid, Some(me), found);
                Ok(())
            }
            Step::Continue(answer) => {
                self.advance_lookup(now, lid);
                answer
            }
        }
    }

    fn finish_lookup(
        &mut self,
        now: Time,
        lid: u64,
        home: Option<Peer>,
        found: Option<ObjectAnswer>,
    ) {
        let Some(l) = self.lookups.remove(&lid) else {
            return;
        };
        let me = self.me();
        match (l.purpose, home) {
            (Purpose::User(id), Some(home)) => {
                let done = Event::LookupDone { id, key: l.key, home, hops: l.hops, served: None };
                self.events.push_back(done)
            }
            (Purpose::Object(id), Some(holder)) => {
                let (key, hops) = (l.key, l.hops);
                if let Some(f) = found {
                    let ring = RingView::new(&self.routing, &self.peers);
                    self.rep.lookup_served(now, ring, l, holder, f);
                    self.drain_replication(now);
                }
                let served = found;
                self.events.push_back(Event::LookupDone { id, key, home: holder, hops, served });
            }
            (Purpose::User(id) | Purpose::Object(id), None) => {
                self.events.push_back(Event::LookupFailed { id, key: l.key, hops: l.hops })
            }
            (Purpose::Join, Some(home)) if home.id != me.id && self.phase == Phase::Joining => {
                self.routing.set_successors([home]);
                self.phase = Phase::Joined;
                self.join_backoff = self.config.stabilize_interval;
                self.events.push_back(Event::Joined { successor: home });
                self.start_timers(now);
                // Stabilize right away so our successor learns of us without waiting.
                self.timers.set(Timer::Stabilize, now);
            }
            (Purpose::Join, _) => {
                if self.phase == Phase::Joining {
                    self.phase = Phase::Idle;
                    self.events.push_back(Event::JoinFailed);
                    self.timers.set(Timer::JoinRetry, now + self.join_backoff);
                    self.join_backoff = (self.join_backoff * 2).min(self.config.merge_interval);
                }
            }
            (Purpose::FixFinger(j), Some(home)) => {
                self.finger_inflight = false;
                self.set_finger_and_beyond(j, home);
            }
            (Purpose::FixFinger(_), None) => self.finger_inflight = false,
            (Purpose::Merge, Some(home)) => {
                self.merge_inflight = false;
                let succ = self.routing.successor();
                if home.id != me.id && (succ.id == me.id || home.id.in_open(me.id, succ.id)) {
                    self.routing.offer_successor(home);
                }
            }
            (Purpose::Merge, None) => self.merge_inflight = false,
        }
    }

    /// Sets finger j to `home`, and every higher finger whose target `home` also covers: one
    /// lookup fixes a run of fingers in sparse regions of the ring.
    pub(super) fn set_finger_and_beyond(&mut self, j: u32, home: Peer) {
        let me = self.me().id;
        let target = me.finger_target(j);
        let end = (j + 1..ID_BITS)
            .find(|k| !me.finger_target(*k).in_open_closed(target, home.id))
            .unwrap_or(ID_BITS);
        self.routing.set_fingers(j..end, home);
    }
}
