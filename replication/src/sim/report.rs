//! What a run measured: per-interval series and totals, serializable as the `--json` report.

use super::config::SimConfig;
use super::oracle::RingCheck;
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// Highest hop count kept in its own histogram bucket; longer lookups land in the last one.
pub const MAX_HOP_BUCKET: usize = 32;

/// How lookups ended.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct LookupTotals {
    pub started: u64,
    /// Ended at the key's true home.
    pub ok: u64,
    /// Ran out of candidates or hops.
    pub failed: u64,
    /// Ended at a node that is not the key's true home.
    pub wrong: u64,
    /// The subset of `wrong` that ended at a node no longer alive.
    pub dead_home: u64,
    /// The entry node crashed before the lookup ended; not counted as a failure.
    pub abandoned: u64,
    pub hop_sum: u64,
    /// `hop_histogram[h]` lookups that contacted `h` nodes (over ok and wrong lookups).
    pub hop_histogram: Vec<u64>,
}

impl LookupTotals {
    pub fn completed(&self) -> u64 {
        self.ok + self.failed + self.wrong
    }

    /// Fraction of completed lookups that ended at the right home.
    pub fn success_rate(&self) -> f64 {
        let c = self.completed();
        if c == 0 {
            return 1.0;
        }
        self.ok as f64 / c as f64
    }

    pub fn mean_hops(&self) -> f64 {
        let n = self.ok + self.wrong;
        if n == 0 {
            return 0.0;
        }
        self.hop_sum as f64 / n as f64
    }

    pub(crate) fn record_hops(&mut self, hops: u32) {
        if self.hop_histogram.is_empty() {
            self.hop_histogram = vec![0; MAX_HOP_BUCKET + 1];
        }
        self.hop_sum += hops as u64;
        self.hop_histogram[(hops as usize).min(MAX_HOP_BUCKET)] += 1;
    }

    pub(crate) fn merge(&mut self, o: &LookupTotals) {
        self.started += o.started;
        self.ok += o.ok;
        self.failed += o.failed;
        self.wrong += o.wrong;
        self.dead_home += o.dead_home;
        self.abandoned += o.abandoned;
        self.hop_sum += o.hop_sum;
        if self.hop_histogram.len() < o.hop_histogram.len() {
            self.hop_histogram.resize(o.hop_histogram.len(), 0);
        }
        for (a, b) in self.hop_histogram.iter_mut().zip(&o.hop_histogram) {
            *a += b;
        }
    }
}

/// One reporting interval.
#[derive(Debug, Clone, Serialize)]
pub struct IntervalReport {
    /// Seconds since the start of the measured phase, at the end of the interval.
    pub end_s: f64,
    pub nodes: usize,
    pub lookups: LookupTotals,
    pub success_rate: f64,
    pub mean_hops: f64,
    pub messages: u64,
    pub bytes: u64,
    pub messages_per_node: f64,
    pub bytes_per_node: f64,
    /// The busiest node's message count in the interval.
    pub max_messages_per_node: u64,
    pub ring: RingCheck,
    pub ring_ok: f64,
    /// With an object workload: what replication stored, sent and served.
    pub replication: Option<ReplicationStats>,
}

/// Replication figures for one interval (object workloads only).
#[derive(Debug, Clone, Default, Serialize)]
pub struct ReplicationStats {
    /// Objects stored per live node at the interval's end: home copies plus replicas/caches.
    pub stored_per_node: f64,
    /// Replication control traffic ([`crate::Message::is_replication`]) per node in the
    /// interval.
    pub control_messages_per_node: f64,
    pub control_bytes_per_node: f64,
    /// Bodies moved between nodes (replica and cache fills), and their bytes.
    pub body_fetches: u64,
    pub body_bytes: u64,
    /// `body_fetches` by cause.
    pub fills: FillCauses,
    /// Body fetches refused because the hash did not match.
    pub body_rejected: u64,
    /// Bodies fetched from the origin by homes.
    pub origin_fetches: u64,
    /// Object lookups answered with a body that is no longer the origin's, later than the
    /// propagation bound after the change (the purge invariant; must stay 0).
    pub stale_served: u64,
    /// The newest leader result in the ring at the interval's end.
    pub epoch: u64,
    pub alpha: f64,
    pub objects_estimate: f64,
    pub nodes_estimate: f64,
    pub hop_cost: f64,
    pub target_hops: f64,
    /// The closed form's storage per node for the leader's parameters.
    pub model_stored_per_node: f64,
    /// The leader's rate thresholds, level by level (requests/s).
    pub thresholds: Vec<f64>,
}

impl IntervalReport {
    /// Adds lookups that ended after the interval closed (the drain at the end of a run) and
    /// updates the figures derived from them.
    pub(crate) fn absorb(&mut self, late: &LookupTotals) {
        self.lookups.merge(late);
        self.success_rate = self.lookups.success_rate();
        self.mean_hops = self.lookups.mean_hops();
    }
}

/// Membership state per node: ours against a one-hop table's.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Membership {
    /// Mean distinct peers a node routes through.
    pub chord_entries_per_node: f64,
    /// A one-hop table lists every other node: N − 1.
    pub one_hop_entries_per_node: f64,
    /// Membership changes a one-hop table must learn per node per second under the run's
    /// churn (every arrival and every departure reaches every node).
    pub one_hop_updates_per_node_per_s: f64,
}

/// The whole run.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub config: SimConfig,
    /// Ring state when the measured phase began (after the joins and the warm-up).
    pub ring_after_warmup: RingCheck,
    pub intervals: Vec<IntervalReport>,
    pub lookups: LookupTotals,
    pub success_rate: f64,
    pub mean_hops: f64,
    /// Messages sent in the measured phase, by kind.
    pub messages_by_kind: BTreeMap<String, u64>,
    pub messages_per_node_per_stabilize_interval: f64,
    pub bytes_per_node_per_stabilize_interval: f64,
    pub final_ring: RingCheck,
    /// Membership state per node at the end: distinct peers in our routing state (fingers,
    /// successors, predecessor) beside what a one-hop full-membership table (Dynamo, Kelips
    /// style) keeps: every other node.
    pub membership: Membership,
    pub median_session_s: Option<f64>,
    pub events_processed: u64,
    /// blake3 of the event log: equal for equal seeds and configs, the replay check.
    pub event_log_hash: String,
}

impl Report {
    pub(crate) fn totals(intervals: &[IntervalReport]) -> LookupTotals {
        let mut t = LookupTotals::default();
        for i in intervals {
            t.merge(&i.lookups);
        }
        t
    }

    /// A plain-text table for terminals.
    pub fn table(&self) -> String {
        let mut s = String::new();
        let c = &self.config;
        let _ = writeln!(
            s,
            "seed {}  nodes {}  loss {:.3}  lookups/node/s {}  churn {}",
            c.seed,
            c.nodes,
            c.loss,
            c.lookup_rate,
            match (c.churn, self.median_session_s) {
                (Some(ch), Some(m)) => format!("{:.3}/s (median session {:.0} s)", ch.rate, m),
                _ => "none".to_string(),
            }
        );
        let w = &self.ring_after_warmup;
        let _ = writeln!(
            s,
            "ring after warm-up: {}/{} nodes fully correct, {} ring(s)",
            w.all_ok, w.nodes, w.rings
        );
        let _ = writeln!(
            s,
            "{:>7} {:>6} {:>8} {:>8} {:>6} {:>6} {:>9} {:>10} {:>8} {:>6}",
            "t(s)",
            "nodes",
            "lookups",
            "success",
            "hops",
            "fails",
            "msg/node",
            "bytes/node",
            "ring_ok",
            "rings"
        );
        for i in &self.intervals {
            let _ = writeln!(
                s,
                "{:>7.0} {:>6} {:>8} {:>7.2}% {:>6.2} {:>6} {:>9.1} {:>10.0} {:>7.1}% {:>6}",
                i.end_s,
                i.nodes,
                i.lookups.completed(),
                i.success_rate * 100.0,
                i.mean_hops,
                i.lookups.failed + i.lookups.wrong,
                i.messages_per_node,
                i.bytes_per_node,
                i.ring_ok * 100.0,
                i.ring.rings,
            );
        }
        if self.intervals.iter().any(|i| i.replication.is_some()) {
            let _ = writeln!(
                s,
                "{:>7} {:>6} {:>8} {:>8} {:>9} {:>11} {:>7} {:>23} {:>7} {:>6} {:>6} {:>8} {:>5}",
                "t(s)",
                "hops",
                "stored/n",
                "model/n",
                "ctl msg/n",
                "ctl bytes/n",
                "fills",
                "prom/ret/lease/churn/v",
                "origin",
                "stale",
                "alpha",
                "M est",
                "h"
            );
            for i in &self.intervals {
                let Some(r) = &i.replication else { continue };
                let _ = writeln!(
                    s,
                    "{:>7.0} {:>6.3} {:>8.1} {:>8.1} {:>9.1} {:>11.0} {:>7} {:>23} {:>7} {:>6} {:>6.3} {:>8.0} {:>5.2}",
                    i.end_s,
                    i.mean_hops,
                    r.stored_per_node,
                    r.model_stored_per_node,
                    r.control_messages_per_node,
                    r.control_bytes_per_node,
                    r.body_fetches,
                    format!(
                        "{}/{}/{}/{}/{}",
                        r.fills.promotion,
                        r.fills.returned,
                        r.fills.lease_expiry,
                        r.fills.churn,
                        r.fills.new_version
                    ),
                    r.origin_fetches,
                    r.stale_served,
                    r.alpha,
                    r.objects_estimate,
                    r.hop_cost
                );
            }
        }
        let l = &self.lookups;
        let _ = writeln!(
            s,
            "total: {} lookups, {:.3}% at the right home, {} failed, {} wrong ({} at dead nodes), {} abandoned",
            l.completed(),
            self.success_rate * 100.0,
            l.failed,
            l.wrong,
            l.dead_home,
            l.abandoned
        );
        let _ = writeln!(
            s,
            "mean hops {:.3} (0.5·log2 N = {:.2});  per node per stabilize interval: {:.1} messages, {:.0} bytes",
            self.mean_hops,
            0.5 * (c.nodes.max(1) as f64).log2(),
            self.messages_per_node_per_stabilize_interval,
            self.bytes_per_node_per_stabilize_interval
        );
        let hist: Vec<String> = l
            .hop_histogram
            .iter()
            .enumerate()
            .filter(|(_, n)| **n > 0)
            .map(|(h, n)| format!("{h}:{n}"))
            .collect();
        let _ = writeln!(s, "hop histogram (hops:lookups) {}", hist.join(" "));
        let m = &self.membership;
        let _ = writeln!(
            s,
            "membership state per node: {:.1} peers (one-hop table: {:.0} peers, {:.2} updates/s under this churn)",
            m.chord_entries_per_node, m.one_hop_entries_per_node, m.one_hop_updates_per_node_per_s
        );
        let _ = writeln!(
            s,
            "event log blake3 {}  ({} events)",
            self.event_log_hash, self.events_processed
        );
        s
    }
}

/// Replica and cache fills in one interval, by why the node fetched the body.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq, Eq)]
pub struct FillCauses {
    /// The node never held the object, and was on the ring when its level was set: the
    /// object was promoted onto it.
    pub promotion: u64,
    /// The node held the object before under an older level: a demoted (or lapsed) copy
    /// came back.
    pub returned: u64,
    /// The node held this very level of the object before and lost it (its lease ran out):
    /// a copy fetched again though its level stood.
    pub lease_expiry: u64,
    /// The node joined after the object's level was set: churn moved the arc onto it.
    pub churn: u64,
    /// A newer version of an object the node held (the origin's body changed).
    pub new_version: u64,
    /// A passive-mode cache fill.
    pub cache: u64,
}

impl FillCauses {
    pub fn total(&self) -> u64 {
        self.promotion
            + self.returned
            + self.lease_expiry
            + self.churn
            + self.new_version
            + self.cache
    }
}

/// What each node last fetched, per key, to tell a fill's cause ([`FillCauses`]).
#[derive(Debug, Default)]
pub(crate) struct FillLedger {
    nodes: Vec<NodeFills>,
}

#[derive(Debug, Default)]
struct NodeFills {
    /// The shared clock (ms) when this incarnation of the node started.
    since_ms: u64,
    /// The catalogue index of each object stored → (level stamp, version) of its last copy,
    /// in 12 bytes instead of 32: at N = 16 384 the ledger was the largest table after the
    /// copies themselves. The stamp is kept modulo 2^32, which only an equality test reads,
    /// and versions past 2^32 count as 2^32 - 1.
    held: crate::hash::FastMap<u32, (u32, u32)>,
}

impl FillLedger {
    /// Node `i` (re)started at `now_ms`: it remembers nothing.
    pub(crate) fn started(&mut self, i: usize, now_ms: u64) {
        if self.nodes.len() <= i {
            self.nodes.resize_with(i + 1, NodeFills::default);
        }
        self.nodes[i] = NodeFills { since_ms: now_ms, held: Default::default() };
    }

    /// Node `i` stored the body `offer` describes, of catalogue object `object`: counts the
    /// fill under its cause.
    pub(crate) fn stored(
        &mut self,
        i: usize,
        object: u32,
        offer: &crate::beehive::wire::Offer,
        into: &mut FillCauses,
    ) {
        if self.nodes.len() <= i {
            self.nodes.resize_with(i + 1, NodeFills::default);
        }
        let n = &mut self.nodes[i];
        let stamp = offer.stamp as u32;
        let version = u32::try_from(offer.info.version).unwrap_or(u32::MAX);
        let cause = match n.held.insert(object, (stamp, version)) {
            _ if offer.stamp == 0 && !offer.renewable => &mut into.cache,
            Some((_, v)) if version > v => &mut into.new_version,
            Some((s, _)) if s == stamp => &mut into.lease_expiry,
            Some(_) => &mut into.returned,
            None if offer.stamp < n.since_ms => &mut into.churn,
            None => &mut into.promotion,
        };
        *cause += 1;
    }
}
