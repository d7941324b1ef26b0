//! Retransmission timeouts from measured round trips (Jacobson/Karels, RFC 6298).
//!
//! Bamboo's lesson (Rhea et al., "Handling Churn in a DHT", USENIX 2004): a timeout that is
//! too long stalls lookups behind dead peers, one that is too short turns congestion into
//! false suspicion. Each peer gets its own estimate, bounded below by a floor and above by a
//! ceiling.

use std::time::Duration;

/// Smoothed round-trip time and its variation for one peer.
#[derive(Debug, Clone, Copy)]
pub struct RttEstimator {
    srtt: Option<Duration>,
    rttvar: Duration,
}

impl Default for RttEstimator {
    fn default() -> Self {
        Self::new()
    }
}

impl RttEstimator {
    pub const fn new() -> Self {
        RttEstimator { srtt: None, rttvar: Duration::ZERO }
    }

    /// Feeds one round-trip sample.
    pub fn sample(&mut self, rtt: Duration) {
        match self.srtt {
            None => {
                self.srtt = Some(rtt);
                self.rttvar = rtt / 2;
            }
            Some(srtt) => {
                let err = srtt.abs_diff(rtt);
                // rttvar = 3/4 rttvar + 1/4 |srtt - rtt|; srtt = 7/8 srtt + 1/8 rtt
                self.rttvar = (self.rttvar * 3 + err) / 4;
                self.srtt = Some((srtt * 7 + rtt) / 8);
            }
        }
    }

    /// The smoothed round trip, if any sample has been seen.
    pub fn srtt(&self) -> Option<Duration> {
        self.srtt
    }

    /// `srtt + max(4·rttvar, floor)`, capped at `ceiling`; `initial` before the first sample.
    ///
    /// The floor bounds the *margin* above the smoothed RTT rather than the whole timeout (as
    /// Linux does): on a long, steady link `4·rttvar` shrinks to almost nothing, and a timeout
    /// a hair above the RTT would turn ordinary jitter into false suspicion.
    pub fn rto(&self, initial: Duration, floor: Duration, ceiling: Duration) -> Duration {
        match self.srtt {
            None => initial,
            Some(srtt) => (srtt + (self.rttvar * 4).max(floor)).min(ceiling),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn first_sample_sets_rto_to_three_rtt() {
        let mut e = RttEstimator::new();
        assert_eq!(e.rto(MS * 1000, MS * 10, MS * 5000), MS * 1000);
        e.sample(MS * 100);
        assert_eq!(e.rto(MS * 1000, MS * 10, MS * 5000), MS * 300);
    }

    #[test]
    fn steady_samples_shrink_the_margin_to_the_floor() {
        let mut e = RttEstimator::new();
        for _ in 0..100 {
            e.sample(MS * 150);
        }
        // A long steady link: the timeout keeps the floor's margin above the RTT.
        assert_eq!(e.rto(MS * 1000, MS * 20, MS * 5000), MS * 170);
    }

    #[test]
    fn ceiling_caps_the_timeout() {
        let mut e = RttEstimator::new();
        e.sample(MS * 4000);
        assert_eq!(e.rto(MS * 1000, MS * 20, MS * 5000), MS * 5000);
    }

    #[test]
    fn jitter_widens_the_timeout() {
        let mut steady = RttEstimator::new();
        let mut jittery = RttEstimator::new();
        for i in 0..50 {
            steady.sample(MS * 50);
            jittery.sample(if i % 2 == 0 { MS * 10 } else { MS * 90 });
        }
        let (i, f, c) = (MS * 1000, MS, MS * 5000);
        assert!(jittery.rto(i, f, c) > steady.rto(i, f, c) + MS * 50);
    }
}
