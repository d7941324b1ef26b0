//! The simulated network: who can reach whom, how long it takes, and what gets lost.

use super::config::Latency;
use crate::hash::MixHasher;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use std::hash::Hasher;
use std::time::Duration;

#[derive(Debug)]
pub struct Network {
    latency: Latency,
    loss: f64,
    /// Partition group per node index; messages only pass within a group.
    groups: Vec<u8>,
}

impl Network {
    pub fn new(latency: Latency, loss: f64) -> Self {
        Network { latency, loss, groups: Vec::new() }
    }

    /// One-way delay for a message from `a` to `b`, or `None` if it is lost or partitioned.
    pub fn delay(&self, a: usize, b: usize, rng: &mut ChaCha8Rng) -> Option<Duration> {
        if self.group(a) != self.group(b) {
            return None;
        }
        if self.loss > 0.0 && rng.random::<f64>() < self.loss {
            return None;
        }
        let base = self.link_base(a, b);
        let jitter = self.latency.jitter_mean.as_secs_f64();
        let jitter = if jitter > 0.0 { -jitter * (1.0 - rng.random::<f64>()).ln() } else { 0.0 };
        Some(base + Duration::from_secs_f64(jitter))
    }

    /// The fixed part of a link's latency: symmetric, and the same every time it is asked.
    fn link_base(&self, a: usize, b: usize) -> Duration {
        let (lo, hi) = if a < b { (a, b) } else { (b, a) };
        let mut hasher = MixHasher::default();
        hasher.write_usize(lo);
        hasher.write_usize(hi);
        let h = hasher.finish();
        let span = self.latency.max.saturating_sub(self.latency.min);
        let frac = (h % 1_000_000) as f64 / 1_000_000.0;
        self.latency.min + span.mul_f64(frac)
    }

    fn group(&self, i: usize) -> u8 {
        self.groups.get(i).copied().unwrap_or(0)
    }

    /// Splits the network: node `i` can only reach nodes with the same `group(i)`.
    pub fn partition(&mut self, groups: Vec<u8>) {
        self.groups = groups;
    }

    /// Removes every partition.
    pub fn heal(&mut self) {
        self.groups.clear();
    }
}
