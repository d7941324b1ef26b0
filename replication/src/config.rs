//! Chord tuning, with defaults and validation. The simulator and the live node share it.

use crate::error::ConfigError;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// How a node maintains its place on the ring.
#[derive(Debug, Clone)]
pub struct ChordConfig {
    /// Successor-list length r. A lookup survives as long as one of r successors lives.
    pub successors: usize,
    /// Period of stabilize/notify with the first live successor.
    pub stabilize_interval: Duration,
    /// Period of fixing one finger (round-robin over the fingers that differ from the
    /// successor).
    pub fix_fingers_interval: Duration,
    /// Period of pinging the predecessor.
    pub check_predecessor_interval: Duration,
    /// Period of the ring-merge probe: a lookup of our own successor through a peer we lost
    /// touch with (or a seed), which re-joins rings split by a partition.
    pub merge_interval: Duration,
    /// Timeout for a peer we have no RTT sample for.
    pub rto_initial: Duration,
    /// Floor and ceiling of the RTT-derived timeout.
    pub rto_min: Duration,
    pub rto_max: Duration,
    /// Misses in a row after which a suspected peer is removed from routing state.
    pub max_misses: u32,
    /// How many next-hop candidates a lookup step returns.
    pub lookup_candidates: usize,
    /// A lookup that has contacted this many nodes fails.
    pub max_lookup_hops: u32,
    /// How objects are replicated over the ring.
    pub replication: ReplicationConfig,
}

/// Which replication scheme a cluster runs (docs/replication.md, "Baselines").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Objects live on their home alone: plain Chord, `½·log2 N`-ish hops.
    Chord,
    /// Every node a lookup passed caches the object for a TTL (the paper's PC-Pastry).
    Passive,
    /// Popularity-driven levels from the closed form: a constant average hop count.
    Beehive,
}

impl Mode {
    pub fn name(self) -> &'static str {
        match self {
            Mode::Chord => "chord",
            Mode::Passive => "passive",
            Mode::Beehive => "beehive",
        }
    }
}

impl std::str::FromStr for Mode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "chord" => Ok(Mode::Chord),
            "passive" => Ok(Mode::Passive),
            "beehive" => Ok(Mode::Beehive),
            _ => Err(format!("unknown mode `{s}`: use chord, passive or beehive")),
        }
    }
}

/// Replication tuning. One interval drives counting, aggregation, the leader's result and
/// the replica pulls, so everything Beehive does costs O(log N) messages per node per interval.
#[derive(Debug, Clone)]
pub struct ReplicationConfig {
    pub mode: Mode,
    /// `C`: the average lookup cost to aim for, in hops.
    pub target_hops: f64,
    /// Instead of `C`: the most objects (home copies included) one node should store; the
    /// leader solves for the smallest `C` that fits.
    pub budget: Option<f64>,
    /// Period of counting, aggregation and replica pulls.
    pub interval: Duration,
    /// A replica not renewed for this many intervals is dropped (the object was demoted, or
    /// the holders around it are gone).
    pub lease_intervals: u32,
    /// A leader result this many intervals old is aged: homes stop using it and any newer
    /// result replaces it whatever its epoch.
    pub result_max_age_intervals: u32,
    /// How long a passive cache keeps a copy (mode `passive`).
    pub cache_ttl: Duration,
    /// Keys counted exactly per interval at each node (Space-Saving capacity); the rest only
    /// adds to a tail total.
    pub sketch_capacity: usize,
    /// Hop cost per level assumed until the cluster has measured its own.
    pub initial_hop_cost: f64,
    /// The shared clock (the live node: time since the Unix epoch) at this node's time zero.
    /// Nodes tick at a fixed phase of the shared clock set by their place on the ring, so
    /// counts and reports, which travel clockwise, cross the ring in about one interval
    /// instead of one interval per hop. Zero in the simulator, whose nodes share one clock.
    pub clock_offset: Duration,
}

impl Default for ReplicationConfig {
    fn default() -> Self {
        ReplicationConfig {
            mode: Mode::Beehive,
            target_hops: 1.0,
            budget: None,
            interval: Duration::from_secs(10),
            lease_intervals: 3,
            result_max_age_intervals: 6,
            cache_ttl: Duration::from_secs(60),
            sketch_capacity: 512,
            initial_hop_cost: crate::beehive::levels::DEFAULT_HOP_COST,
            clock_offset: Duration::ZERO,
        }
    }
}

impl ReplicationConfig {
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |field, reason: &str| Err(ConfigError { field, reason: reason.to_string() });
        if !(self.target_hops >= 0.0 && self.target_hops <= 64.0) {
            return bad("target_hops", "must be a number of hops between 0 and 64 (1 is typical)");
        }
        if let Some(b) = self.budget {
            if !(b >= 1.0 && b.is_finite()) {
                return bad("budget", "must be a finite number of objects per node, at least 1");
            }
        }
        if self.interval.is_zero() {
            return bad("replication_interval", "must be greater than zero");
        }
        if self.lease_intervals < 2 {
            return bad("lease_intervals", "must be at least 2 (a lease outlives one pull)");
        }
        if self.result_max_age_intervals < 2 {
            return bad("result_max_age_intervals", "must be at least 2");
        }
        if self.cache_ttl.is_zero() {
            return bad("cache_ttl", "must be greater than zero");
        }
        if !(16..=1 << 20).contains(&self.sketch_capacity) {
            return bad("sketch_capacity", "must be between 16 and 1048576 keys");
        }
        if !(self.initial_hop_cost > 0.0 && self.initial_hop_cost <= 2.0) {
            return bad("initial_hop_cost", "must be in (0, 2]; 0.5 suits Chord");
        }
        Ok(())
    }
}

impl Default for ChordConfig {
    fn default() -> Self {
        ChordConfig {
            successors: 8,
            stabilize_interval: Duration::from_secs(1),
            fix_fingers_interval: Duration::from_secs(1),
            check_predecessor_interval: Duration::from_secs(1),
            merge_interval: Duration::from_secs(30),
            rto_initial: Duration::from_secs(1),
            rto_min: Duration::from_millis(100),
            rto_max: Duration::from_secs(5),
            max_misses: 3,
            lookup_candidates: 3,
            max_lookup_hops: 48,
            replication: ReplicationConfig::default(),
        }
    }
}

impl ChordConfig {
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |field, reason: &str| Err(ConfigError { field, reason: reason.to_string() });
        if !(1..=crate::message::MAX_LISTED_PEERS).contains(&self.successors) {
            return bad("successors", "must be between 1 and 64 (8 is a good default)");
        }
        for (field, d) in [
            ("stabilize_interval", self.stabilize_interval),
            ("fix_fingers_interval", self.fix_fingers_interval),
            ("check_predecessor_interval", self.check_predecessor_interval),
            ("merge_interval", self.merge_interval),
            ("rto_min", self.rto_min),
        ] {
            if d.is_zero() {
                return bad(field, "must be greater than zero");
            }
        }
        if !(self.rto_min <= self.rto_initial && self.rto_initial <= self.rto_max) {
            return bad("rto_initial", "must lie between rto_min and rto_max");
        }
        if self.max_misses == 0 {
            return bad("max_misses", "must be at least 1");
        }
        if !(1..=crate::message::MAX_LISTED_PEERS).contains(&self.lookup_candidates) {
            return bad("lookup_candidates", "must be between 1 and 64");
        }
        if self.max_lookup_hops < 2 {
            return bad("max_lookup_hops", "must be at least 2");
        }
        self.replication.validate()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        ChordConfig::default().validate().unwrap();
    }

    #[test]
    fn impossible_values_name_the_field() {
        let c = ChordConfig { successors: 0, ..Default::default() };
        assert_eq!(c.validate().unwrap_err().field, "successors");
        let c = ChordConfig { rto_initial: Duration::from_secs(60), ..Default::default() };
        assert_eq!(c.validate().unwrap_err().field, "rto_initial");
        let c = ChordConfig { stabilize_interval: Duration::ZERO, ..Default::default() };
        assert_eq!(c.validate().unwrap_err().field, "stabilize_interval");
    }
}
