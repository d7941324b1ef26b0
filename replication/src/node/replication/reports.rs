//! Reports: each node's interval summary travels toward key 0, merged on the way, and the
//! node that is home for key 0 (the leader) solves the levels from them.

use super::Replication;
use crate::beehive::wire::Report;
use crate::id::Id;
use crate::message::{Request, Response};
use crate::node::ring::RingView;
use crate::peer::Peer;
use crate::time::Time;
use std::collections::btree_map;

/// The leader solves the previous generation this share of an interval after its own tick,
/// not at it: a node that ticks just before the leader's next hop toward key 0 reports after
/// that hop's tick whenever the link is slower than the gap, and the solve must still count
/// it.
pub(super) const SOLVE_SLACK: u32 = 8;
/// Generations of reports a node keeps at once (see `take_report`).
const MAX_GENERATIONS: usize = 4;

impl Replication {
    pub fn answer_report(&mut self, ring: RingView<'_>, report: Report) -> Response {
        if self.cfg.mode == crate::config::Mode::Beehive {
            self.take_report(ring, report);
        }
        Response::Ack
    }

    pub(super) fn send_report(&mut self, to: Peer, report: Report) {
        self.send(to, Request::Report(Box::new(report)));
    }

    /// A report from downstream. One of a generation we have not ticked for waits for that
    /// tick, to go on merged with ours. A late one (its sender ticked just before us, and the
    /// link was slower than the gap) goes on at once, so it still reaches the leader before
    /// the leader solves its generation; the leader keeps it for that solve.
    pub(super) fn take_report(&mut self, ring: RingView<'_>, report: Report) {
        let g = report.generation;
        let ticked = self.ticked;
        // Generations a correct peer can send: not past our next tick's plus one (clock
        // skew), not older than the leader still solves.
        let newest = ticked.map_or(u64::MAX, |t| t.saturating_add(2));
        let oldest = ticked.map_or(0, |t| t.saturating_sub(1));
        if g > newest || g < oldest {
            return;
        }
        match ring.next_hop(Id(0)) {
            Some(p) if ticked.is_some_and(|t| g <= t) => self.send_report(p, report),
            _ => {
                // A correct ring keeps at most three generations here (the leader's last,
                // its own and the next); more only comes from a peer making them up.
                let room = self.reports_in.len() < MAX_GENERATIONS;
                match self.reports_in.entry(g) {
                    btree_map::Entry::Occupied(mut e) => e.get_mut().merge(&report),
                    btree_map::Entry::Vacant(e) if room => {
                        e.insert(report);
                    }
                    btree_map::Entry::Vacant(_) => {}
                }
            }
        }
    }

    /// The replication interval and our tick's offset into it, in ns of the shared clock.
    pub(super) fn tick_phase(&self) -> (u128, u128) {
        let period = self.cfg.interval.as_nanos().max(1);
        (period, (period * (self.me.0 >> 96)) >> 32)
    }

    /// The shared clock's interval a tick at `now` belongs to. A timer fires late, never
    /// early: read the interval our phase was scheduled in, not the one `now` lands in.
    pub(super) fn generation(&self, now: Time) -> u64 {
        let (period, phase) = self.tick_phase();
        let clock = (now + self.cfg.clock_offset).as_nanos();
        u64::try_from(clock.saturating_sub(phase) / period).unwrap_or(u64::MAX)
    }

    /// The leader's solve of the generation before its last tick's (see [`SOLVE_SLACK`]).
    pub(super) fn solve_tick(&mut self, now: Time, ring: RingView<'_>) {
        let Some(generation) = self.ticked.filter(|_| ring.next_hop(Id(0)).is_none()) else {
            return;
        };
        // Our own generation (and any later one) stays; older ones are solved or too late.
        let newer = self.reports_in.split_off(&generation);
        let mut past = std::mem::replace(&mut self.reports_in, newer);
        let Some(merged) = past.remove(&generation.saturating_sub(1)) else { return };
        let epoch = self.result().map_or(0, |r| r.epoch) + 1;
        let interval_s = self.cfg.interval.as_secs_f64();
        let me = self.me;
        if let Some((previous, _)) = self.result.as_ref().filter(|(r, _)| r.leader != me) {
            self.leader.take_over(previous, &self.cfg);
        }
        if let Some(result) = self.leader.solve(me, epoch, &merged, &self.cfg, interval_s) {
            self.result = Some((result, now));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{ChordConfig, Mode};
    use crate::peer::PeerTable;
    use crate::routing::Routing;

    #[test]
    fn made_up_generations_do_not_pile_up() {
        let mut cfg = ChordConfig::default().replication;
        cfg.mode = Mode::Beehive;
        let me = Peer { id: Id(1 << 100), addr: "127.0.0.1:1".parse().unwrap() };
        let (routing, peers) = (Routing::new(me, 8), PeerTable::default());
        let ring = RingView::new(&routing, &peers);
        let mut rep = Replication::new(me.id, cfg);
        for generation in 0..1_000 {
            rep.take_report(ring, Report { generation, nodes: 1, ..Report::default() });
        }
        assert_eq!(rep.reports_in.len(), MAX_GENERATIONS);
        // Reports of a generation already kept still merge.
        rep.take_report(ring, Report { generation: 2, nodes: 5, ..Report::default() });
        assert_eq!(rep.reports_in[&2].nodes, 6);
    }
}
