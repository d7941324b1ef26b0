//! Chord tuning, with defaults and validation. The simulator and the live node share it.

use crate::error::ConfigError;
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
        Ok(())
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
