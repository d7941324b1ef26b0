//! Collects request outcomes into per-second and overall HDR histograms and counters, then turns
//! them into a [`Report`].

use crate::config::LoadConfig;
use crate::report::{CacheMix, ErrorCounts, Report, Second, Summary, SCHEMA_VERSION};
use hdrhistogram::Histogram;
use std::collections::BTreeMap;
use std::time::Duration;

/// How one request ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// An answer came (any status); hops and cache from its headers.
    Answered {
        status: u16,
        hops: Option<u32>,
        x_cache: Option<String>,
    },
    Connect,
    Timeout,
    Other,
}

/// Latencies in microseconds, 1 µs .. 1 h, three significant digits.
fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid histogram bounds")
}

#[derive(Debug)]
struct Acc {
    latency: Histogram<u64>,
    requests: u64,
    hops: BTreeMap<u32, u64>,
    cache: CacheMix,
    errors: ErrorCounts,
    origin_requests: Option<u64>,
}

impl Acc {
    fn new() -> Self {
        Self {
            latency: histogram(),
            requests: 0,
            hops: BTreeMap::new(),
            cache: CacheMix::default(),
            errors: ErrorCounts::default(),
            origin_requests: None,
        }
    }

    fn add(&mut self, latency: Duration, outcome: &Outcome) {
        self.requests += 1;
        self.latency.saturating_record((latency.as_micros() as u64).max(1));
        match outcome {
            Outcome::Answered { status, hops, x_cache } => {
                if *status >= 400 {
                    *self.errors.by_status.entry(*status).or_default() += 1;
                }
                if let Some(h) = hops {
                    *self.hops.entry(*h).or_default() += 1;
                }
                self.cache.add(x_cache.as_deref());
            }
            Outcome::Connect => self.errors.connect += 1,
            Outcome::Timeout => self.errors.timeout += 1,
            Outcome::Other => self.errors.other += 1,
        }
        if !matches!(outcome, Outcome::Answered { .. }) {
            self.cache.add(None);
        }
    }

    fn merge(&mut self, o: &Acc) {
        self.latency.add(&o.latency).expect("same histogram bounds");
        self.requests += o.requests;
        for (h, n) in &o.hops {
            *self.hops.entry(*h).or_default() += n;
        }
        self.cache.merge(&o.cache);
        self.errors.merge(&o.errors);
        if let Some(n) = o.origin_requests {
            *self.origin_requests.get_or_insert(0) += n;
        }
    }
}

fn ms(h: &Histogram<u64>, q: f64) -> f64 {
    if h.is_empty() {
        0.0
    } else {
        h.value_at_quantile(q) as f64 / 1000.0
    }
}

fn avg_hops(hops: &BTreeMap<u32, u64>) -> Option<f64> {
    let n: u64 = hops.values().sum();
    (n > 0).then(|| hops.iter().map(|(h, c)| u64::from(*h) * c).sum::<u64>() as f64 / n as f64)
}

/// Outcomes by second since the start.
#[derive(Debug, Default)]
pub struct Recorder {
    seconds: Vec<Acc>,
    /// Open loop counters (see [`Summary::late`], [`Summary::unsent`]).
    pub late: u64,
    pub unsent: u64,
    /// The last second of a run bounded by time: requests still in flight at the deadline are
    /// counted in it, so the series does not end in a misleading partial second.
    pub last_second: Option<u64>,
}

impl Recorder {
    /// A recorder whose series ends at second `last_second` (see the field).
    pub fn new(last_second: Option<u64>) -> Self {
        Self { last_second, ..Self::default() }
    }

    fn second(&mut self, t: u64) -> &mut Acc {
        let t = self.last_second.map_or(t, |last| t.min(last)) as usize;
        while self.seconds.len() <= t {
            self.seconds.push(Acc::new());
        }
        &mut self.seconds[t]
    }

    /// Records a request that completed `at` after the start and took `latency`.
    pub fn record(&mut self, at: Duration, latency: Duration, outcome: &Outcome) {
        self.second(at.as_secs()).add(latency, outcome);
    }

    /// Adds `n` origin requests to the second containing `at`.
    pub fn record_origin(&mut self, at: Duration, n: u64) {
        *self.second(at.as_secs()).origin_requests.get_or_insert(0) += n;
    }

    /// Marks seconds `0..=last` present, so an idle second still shows in the series.
    pub fn touch(&mut self, at: Duration) {
        self.second(at.as_secs());
    }

    /// How many seconds the series has so far.
    pub fn seconds(&self) -> u64 {
        self.seconds.len() as u64
    }

    /// The report; `elapsed` is the run's wall time, `origin` whether origin stats were polled.
    pub fn report(&self, config: &LoadConfig, elapsed: Duration, origin: bool) -> Report {
        let mut all = Acc::new();
        let series = self
            .seconds
            .iter()
            .enumerate()
            .map(|(t, a)| {
                all.merge(a);
                Second {
                    t: t as u64,
                    requests: a.requests,
                    errors: a.errors.total(),
                    p50_ms: ms(&a.latency, 0.5),
                    p90_ms: ms(&a.latency, 0.9),
                    p99_ms: ms(&a.latency, 0.99),
                    max_ms: ms(&a.latency, 1.0),
                    avg_hops: avg_hops(&a.hops),
                    hops: a.hops.clone(),
                    cache: a.cache,
                    error_counts: a.errors.clone(),
                    origin_requests: origin.then_some(a.origin_requests.unwrap_or(0)),
                }
            })
            .collect();
        let duration_s = elapsed.as_secs_f64();
        let origin_requests = origin.then_some(all.origin_requests.unwrap_or(0));
        let summary = Summary {
            requests: all.requests,
            errors: all.errors.total(),
            duration_s,
            rps: if duration_s > 0.0 { all.requests as f64 / duration_s } else { 0.0 },
            p50_ms: ms(&all.latency, 0.5),
            p90_ms: ms(&all.latency, 0.9),
            p99_ms: ms(&all.latency, 0.99),
            max_ms: ms(&all.latency, 1.0),
            mean_ms: if all.latency.is_empty() { 0.0 } else { all.latency.mean() / 1000.0 },
            avg_hops: avg_hops(&all.hops),
            hops: all.hops.clone(),
            cache: all.cache,
            error_counts: all.errors.clone(),
            late: self.late,
            unsent: self.unsent,
            origin_requests,
            offload: origin_requests
                .filter(|_| all.requests > 0)
                .map(|o| 1.0 - o as f64 / all.requests as f64),
            stored_per_node: None,
            over_budget_per_node: None,
            copied: None,
            verified_bodies: None,
            wrong_bodies: None,
        };
        Report { schema_version: SCHEMA_VERSION, config: config.clone(), summary, series }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn series_add_up_to_the_summary() {
        let mut r = Recorder::default();
        let ok = |hops| Outcome::Answered { status: 200, hops, x_cache: Some("HIT".into()) };
        r.record(Duration::from_millis(100), Duration::from_millis(2), &ok(Some(1)));
        r.record(Duration::from_millis(1100), Duration::from_millis(4), &ok(Some(3)));
        r.record(Duration::from_millis(2100), Duration::from_millis(8), &Outcome::Timeout);
        r.record(
            Duration::from_millis(2200),
            Duration::from_millis(8),
            &Outcome::Answered { status: 502, hops: None, x_cache: None },
        );
        r.record_origin(Duration::from_millis(500), 1);
        let rep = r.report(&LoadConfig::default(), Duration::from_secs(3), true);
        assert_eq!(rep.series.len(), 3);
        assert_eq!(rep.summary.requests, 4);
        assert_eq!(rep.series.iter().map(|s| s.requests).sum::<u64>(), 4);
        assert_eq!(rep.summary.errors, 2);
        assert_eq!(rep.summary.avg_hops, Some(2.0));
        assert_eq!(rep.summary.origin_requests, Some(1));
        assert_eq!(rep.summary.offload, Some(0.75));
        assert_eq!(rep.summary.cache.hit, 2);
        assert_eq!(rep.summary.cache.none, 2);
        assert!(rep.summary.max_ms >= 8.0 && rep.summary.max_ms < 8.1);
        assert_eq!(rep.series[2].error_counts.by_status.get(&502), Some(&1));
    }

    #[test]
    fn completions_after_the_deadline_count_in_the_last_second() {
        let mut r = Recorder::new(Some(1));
        let ok = Outcome::Answered { status: 200, hops: None, x_cache: None };
        r.record(Duration::from_millis(1500), Duration::from_millis(1), &ok);
        r.record(Duration::from_millis(2010), Duration::from_millis(1), &ok);
        let rep = r.report(&LoadConfig::default(), Duration::from_millis(2010), false);
        assert_eq!(rep.series.len(), 2);
        assert_eq!(rep.series[1].requests, 2);
    }
}
