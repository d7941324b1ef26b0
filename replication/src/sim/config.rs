//! What a simulation run models, with defaults and validation.

use super::objects::Catalog;
use crate::config::ChordConfig;
use crate::error::ConfigError;
use serde::Serialize;
use std::time::Duration;

/// Per-link one-way latency: a fixed base per link, uniform in `[min, max]` and drawn once from
/// the link's endpoints, plus exponential jitter per message.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Latency {
    pub min: Duration,
    pub max: Duration,
    pub jitter_mean: Duration,
}

impl Default for Latency {
    fn default() -> Self {
        // Roughly a wide-area spread between nearby and intercontinental peers.
        Latency {
            min: Duration::from_millis(5),
            max: Duration::from_millis(80),
            jitter_mean: Duration::from_millis(2),
        }
    }
}

/// Churn as in Bamboo's churn experiments (Rhea et al., USENIX 2004): new nodes arrive as a
/// Poisson process, and every arrival makes a random live node crash, so N stays constant and
/// session times are exponential with mean N / rate.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Churn {
    /// Arrivals (and departures) per second across the whole ring.
    pub rate: f64,
}

impl Churn {
    /// Median session time for `nodes` nodes: ln 2 · N / rate.
    pub fn median_session(&self, nodes: usize) -> Duration {
        Duration::from_secs_f64(std::f64::consts::LN_2 * nodes as f64 / self.rate)
    }
}

/// A whole run: how the ring is built, how long it runs, what load and faults it sees.
#[derive(Debug, Clone, Serialize)]
pub struct SimConfig {
    pub seed: u64,
    pub nodes: usize,
    #[serde(skip)]
    pub chord: ChordConfig,
    pub latency: Latency,
    /// Probability that any one message is lost.
    pub loss: f64,
    /// Time between successive joins while the ring is built.
    pub join_spacing: Duration,
    /// Start from a converged ring taken from the oracle instead of joining node by node:
    /// for steady-state measurements at sizes where the join phase would dominate the run.
    pub converged_start: bool,
    /// Settling time after the last join before load and churn start.
    pub warmup: Duration,
    /// Length of the measured phase.
    pub duration: Duration,
    /// Lookups per node per second during the measured phase (Poisson, random keys).
    pub lookup_rate: f64,
    pub churn: Option<Churn>,
    /// Length of one reporting interval.
    pub interval: Duration,
    /// An object workload: lookups become object fetches of Zipf-popular catalog objects.
    pub catalog: Option<Catalog>,
    /// Reverse the popularity order this long into the measured phase.
    pub reverse_at: Option<Duration>,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            seed: 1,
            nodes: 1024,
            chord: ChordConfig::default(),
            latency: Latency::default(),
            loss: 0.0,
            join_spacing: Duration::from_millis(50),
            converged_start: false,
            warmup: Duration::from_secs(60),
            duration: Duration::from_secs(100),
            lookup_rate: 1.0,
            churn: None,
            interval: Duration::from_secs(10),
            catalog: None,
            reverse_at: None,
        }
    }
}

impl SimConfig {
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |field, reason: &str| Err(ConfigError { field, reason: reason.to_string() });
        self.chord.validate()?;
        if self.nodes == 0 || self.nodes > 1 << 20 {
            return bad("nodes", "must be between 1 and 1048576");
        }
        if !(0.0..1.0).contains(&self.loss) {
            return bad("loss", "must be a probability in [0, 1)");
        }
        if !(self.lookup_rate >= 0.0 && self.lookup_rate.is_finite()) {
            return bad("lookup_rate", "must be a finite rate >= 0 per node per second");
        }
        if let Some(c) = self.churn {
            if !(c.rate > 0.0 && c.rate.is_finite()) {
                return bad("churn", "rate must be a finite number of arrivals per second > 0");
            }
        }
        if self.latency.min > self.latency.max {
            return bad("latency", "min must not exceed max");
        }
        if self.interval.is_zero() {
            return bad("interval", "must be greater than zero");
        }
        if let Some(c) = &self.catalog {
            if c.objects == 0 || c.objects > 1 << 26 {
                return bad("objects", "must be between 1 and 67108864");
            }
            if !(c.alpha > 0.0 && c.alpha <= 10.0) {
                return bad("alpha", "must be in (0, 10]; the paper's workload is 0.91");
            }
        }
        Ok(())
    }
}
