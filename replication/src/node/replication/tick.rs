//! The replication tick: copies expire, homes fold the interval's counts into rates and
//! levels, counts and the report go one hop on, and one pull goes to each finger.

use super::reports::SOLVE_SLACK;
use super::{Replication, Timer};
use crate::beehive::wire::{CountEntry, Pull, Report, MAX_COUNT_ENTRIES};
use crate::config::Mode;
use crate::hash::FastMap;
use crate::id::Id;
use crate::message::Request;
use crate::node::event::Event;
use crate::node::ring::RingView;
use crate::node::timers::TimerKind;
use crate::peer::Peer;
use crate::time::Time;
use std::time::Duration;

/// Every this many ticks a pull asks a finger for its full list. Deltas carry every change,
/// and a failed body fetch asks its source for a full list at once
/// (`Replication::fetch_failed`); the full list repairs a lost answer's offers and renews,
/// with their exact leases, the copies no delta touched. That renewal is most of its work:
/// without resyncs those copies lapse and come back as changes, and a C = 0.5 ring walked
/// 60 % more change-log entries (docs/experiments.md, "Simulator cost"). The pull's digest
/// keeps the answer to the buckets where the two sides differ.
const FULL_PULL_EVERY: u64 = 6;

impl Replication {
    /// Arms the next tick: at the phase of the shared clock's interval given by our place on
    /// the ring (id / 2^128). Counts and reports travel clockwise, to nodes that tick later
    /// in the same interval, so they reach a home (or the leader) within about one interval
    /// wherever they start; only a path that wraps past id 0 takes a second one.
    pub fn schedule(&mut self, now: Time) {
        if self.cfg.mode == Mode::Chord {
            return;
        }
        let (period, phase) = self.tick_phase();
        let clock = (now + self.cfg.clock_offset).as_nanos();
        let mut at = clock - clock % period + phase;
        if at <= clock {
            at += period;
        }
        let wait = Duration::from_nanos(u64::try_from(at - clock).unwrap_or(u64::MAX));
        self.timers.set(Timer::Replicate, now + wait);
    }

    /// Runs the replication timers due at `now`. `joined`: the node is in a ring, so the
    /// tick is armed again.
    pub fn handle_timeout(&mut self, now: Time, ring: RingView<'_>, joined: bool) {
        for &timer in Timer::ALL {
            if !self.timers.take_due(timer, now) {
                continue;
            }
            match timer {
                Timer::Replicate => {
                    self.tick(now, ring);
                    if joined {
                        self.schedule(now);
                    }
                }
                Timer::Push => self.flush_pushes(now, ring),
                Timer::Solve => self.solve_tick(now, ring),
            }
        }
    }

    fn tick(&mut self, now: Time, ring: RingView<'_>) {
        for key in self.holdings.expire(now) {
            self.touch(key);
            self.evict_unless_home(key);
        }
        self.shed_to_budget();
        // Copies nobody renewed since the last tick: their leases now run down, so their
        // offers go out with the exact lease left instead of the bulk renewal.
        for key in self.holdings.not_renewed_since(self.last_tick) {
            self.touch(key);
        }
        self.previous_tick = self.last_tick;
        self.last_tick = now;
        self.roll_changes();
        if self.cfg.mode != Mode::Beehive {
            return;
        }
        let me = ring.me();
        let interval_s = self.cfg.interval.as_secs_f64();
        let top = self.top_level(now);

        // Homes we no longer own (a node joined before us) let go of their objects.
        let gone = self.homes.take_foreign(|k| ring.owns(k));
        for key in gone {
            self.touch(key);
            if self.holdings.valid(key, now).is_none() {
                self.event(Event::Evict { key });
            }
        }

        // Counts: ours and those relayed to us, toward each key's home.
        let counts = self.sketch.drain_interval();
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
        entries.append(&mut self.relay);
        let mut batches: FastMap<Id, (Peer, Vec<CountEntry>)> = FastMap::default();
        for e in entries {
            match ring.next_hop(e.key) {
                None => self.homes.count(e),
                Some(p) => batches.entry(p.id).or_insert_with(|| (p, Vec::new())).1.push(e),
            }
        }

        // Homes fold the interval into rates and set levels.
        let thresholds = self.fresh_result(now).map(|r| r.thresholds.clone());
        let stamp = self.clock_ms(now);
        let closed =
            self.homes.close_interval(now, stamp, me.id, interval_s, thresholds.as_deref(), top);
        for key in closed.fetch {
            self.event(Event::NeedObject { key });
        }
        for key in &closed.changed {
            self.touch(*key);
        }
        let mut pullers = std::mem::take(&mut self.pullers);
        pullers.retain(|_, p| self.recent_puller(p.at, now));
        self.pullers = pullers;
        // A round older than every remaining puller's last pull is of use to none of them.
        while self.push_times.front().is_some_and(|at| !self.recent_puller(*at, now)) {
            self.push_times.pop_front();
        }
        // Widened arcs fill at once; copies inside a narrowed arc learn their new level.
        self.push_offers(now, ring, &closed.changed);

        // The report toward key 0, or the leader's solve.
        let generation = self.generation(now);
        self.ticked = Some(generation);
        let mut report = Report {
            generation,
            summary: self.homes.summary(),
            untracked_rate,
            nodes: 1,
            hop_sum: std::mem::take(&mut self.hop_sum),
            level_sum: std::mem::take(&mut self.level_sum),
            lookups: std::mem::take(&mut self.lookups),
            stored: self.stored_objects(now) as u64,
        };
        if let Some(r) = self.reports_in.remove(&generation) {
            report.merge(&r);
        }
        let report_to = ring.next_hop(Id(0));
        let mut report = Some(report);
        match report_to {
            None => {
                // Ours opens the next generation; the last one is solved once its late
                // reports are in.
                self.reports_in.insert(generation, report.take().unwrap_or_default());
                let slack = self.cfg.interval / SOLVE_SLACK;
                self.timers.set(Timer::Solve, now + slack);
            }
            Some(to) => {
                // No longer the leader (a node joined before us): what we kept for past
                // generations goes on.
                let newer = self.reports_in.split_off(&(generation + 1));
                let past = std::mem::replace(&mut self.reports_in, newer);
                for r in past.into_values() {
                    self.send_report(to, r);
                }
            }
        }

        // One pull per finger, carrying what goes its way.
        let mut targets: Vec<Peer> = ring.fingers().to_vec();
        targets.extend(ring.successor());
        // Pulled every tick: what the others (pulled only when counts or the report go
        // their way) list in full answers, these list too.
        let steady: Vec<Id> = targets.iter().map(|p| p.id).collect();
        targets.extend(batches.values().map(|(p, _)| *p));
        targets.extend(report_to);
        targets.retain(|p| p.id != me.id);
        targets.sort_unstable_by_key(|p| me.id.distance_to(p.id));
        targets.dedup_by_key(|p| p.id);
        let known = self.result().map(|r| (r.epoch, r.leader));
        self.fingers.retain(|id, _| targets.iter().any(|p| p.id == *id));
        self.ticks += 1;
        // Deltas only say what changed at the finger; now and then ask for the full list
        // (each finger at its own phase, given by its id), so a copy we lost or never got
        // comes back.
        let ticks = self.ticks;
        let resync = |p: &Peer| (ticks + (p.id.0 as u64)) % FULL_PULL_EVERY == 0;
        // A full answer comes to a resync and to a pull with nothing to send a delta since;
        // one pass over our copies builds the digests of all of them.
        // The next steady target round the ring (`Pull::next`): a full answer covers the
        // keys before it, so the keys past a target pulled now and then are covered by the
        // steady one before it as well, whose renewals do not stop.
        let next = |n: usize| targets[n + 1..].iter().map(|q| q.id).find(|q| steady.contains(q));
        let full: Vec<(Id, Option<Id>)> = (targets.iter().enumerate())
            .filter(|(_, p)| resync(p) || self.seen(p.id).is_none())
            .map(|(n, p)| (p.id, next(n)))
            .collect();
        let mut digests = self.resync_digests(now, me.id, &full).into_iter();
        for (n, p) in targets.iter().enumerate() {
            let since = self.seen(p.id);
            let mut counts = batches.remove(&p.id).map(|(_, c)| c).unwrap_or_default();
            if counts.len() > MAX_COUNT_ENTRIES {
                counts.sort_unstable_by(|a, b| b.count.cmp(&a.count).then(a.key.cmp(&b.key)));
                counts.truncate(MAX_COUNT_ENTRIES);
            }
            let report = if report_to.is_some_and(|r| r.id == p.id) { report.take() } else { None };
            let resync = resync(p);
            let digest = if resync || since.is_none() { digests.next() } else { None };
            let next = next(n);
            self.fingers.entry(p.id).or_default().next = next;
            let pull = Pull { counts, report, known, since, full: resync, digest, next };
            self.send(*p, Request::Pull(Box::new(pull)));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ChordConfig;

    /// When a node created at shared-clock time `clock` (its own time zero) first ticks, on
    /// the shared clock.
    fn first_tick(id: Id, clock: Duration) -> Duration {
        let mut cfg = ChordConfig::default().replication;
        cfg.interval = Duration::from_secs(10);
        cfg.clock_offset = clock;
        let mut rep = Replication::new(id, cfg);
        rep.schedule(Time::ZERO);
        clock + rep.poll_timeout().expect("armed")
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
}
