//! The result of a run: [`Report`] (schema in `loadgen/SCHEMA.md`), its table and its JSON file.

use crate::config::{LoadConfig, LoadError};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write;
use std::path::Path;

/// The JSON schema's version; bumped on any change that is not a pure addition.
pub const SCHEMA_VERSION: u32 = 1;

/// Responses by their `X-Cache` header's first word.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CacheMix {
    pub hit: u64,
    pub miss: u64,
    pub stale: u64,
    pub pass: u64,
    /// A header with another value.
    pub other: u64,
    /// No `X-Cache` header (for example straight from the origin), or no response at all.
    pub none: u64,
}

impl CacheMix {
    /// Counts one response's `X-Cache` value.
    pub fn add(&mut self, x_cache: Option<&str>) {
        let word = x_cache.and_then(|v| v.split_whitespace().next()).map(str::to_ascii_uppercase);
        match word.as_deref() {
            Some("HIT") => self.hit += 1,
            Some("MISS") => self.miss += 1,
            Some("STALE") => self.stale += 1,
            Some("PASS") => self.pass += 1,
            Some(_) => self.other += 1,
            None => self.none += 1,
        }
    }

    pub fn merge(&mut self, o: &CacheMix) {
        self.hit += o.hit;
        self.miss += o.miss;
        self.stale += o.stale;
        self.pass += o.pass;
        self.other += o.other;
        self.none += o.none;
    }

    pub fn total(&self) -> u64 {
        self.hit + self.miss + self.stale + self.pass + self.other + self.none
    }
}

/// Failed requests: by HTTP status (4xx and 5xx answers) and by kind (no answer).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorCounts {
    /// Status code → count, for answers with status >= 400.
    pub by_status: BTreeMap<u16, u64>,
    /// The TCP connection could not be made.
    pub connect: u64,
    /// No complete answer within the per-request timeout.
    pub timeout: u64,
    /// Any other transport failure (connection reset, malformed answer, ...).
    pub other: u64,
}

impl ErrorCounts {
    pub fn total(&self) -> u64 {
        self.by_status.values().sum::<u64>() + self.connect + self.timeout + self.other
    }

    pub fn merge(&mut self, o: &ErrorCounts) {
        for (s, n) in &o.by_status {
            *self.by_status.entry(*s).or_default() += n;
        }
        self.connect += o.connect;
        self.timeout += o.timeout;
        self.other += o.other;
    }
}

/// One second of the run (requests are attributed to the second in which they completed).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Second {
    /// Seconds since the start: this entry covers `[t, t + 1)`.
    pub t: u64,
    /// Requests completed (answered or failed).
    pub requests: u64,
    pub errors: u64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    /// Mean of `X-Beehive-Hops` over responses that carried it; `null` if none did.
    pub avg_hops: Option<f64>,
    /// Hop count → responses.
    pub hops: BTreeMap<u32, u64>,
    pub cache: CacheMix,
    pub error_counts: ErrorCounts,
    /// Requests the origin counted in this second (`null` without `origin_stats`).
    pub origin_requests: Option<u64>,
}

/// The whole run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// Requests completed (answered or failed); equals the sum over `series`.
    pub requests: u64,
    pub errors: u64,
    /// Wall time from the start to the last completion.
    pub duration_s: f64,
    /// `requests / duration_s`.
    pub rps: f64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    pub mean_ms: f64,
    pub avg_hops: Option<f64>,
    pub hops: BTreeMap<u32, u64>,
    pub cache: CacheMix,
    pub error_counts: ErrorCounts,
    /// Open loop: requests sent after their intended time because `max_in_flight` were out.
    pub late: u64,
    /// Open loop: scheduled requests never sent because the run ended first.
    pub unsent: u64,
    /// Requests the origin counted during the run (`null` without `origin_stats`).
    pub origin_requests: Option<u64>,
    /// `1 - origin_requests / requests` (`null` without `origin_stats` or requests).
    pub offload: Option<f64>,
    /// Objects stored per node at the end (home objects and copies), when the caller read
    /// the nodes' `/stats`; the load generator itself cannot see it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stored_per_node: Option<f64>,
    /// Objects per node stored past the budget, likewise: beyond the larger of the budget
    /// and the node's own objects, which it keeps whatever the budget.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub over_budget_per_node: Option<f64>,
    /// Bodies copied between nodes during the run (replicas and cache fills), likewise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub copied: Option<u64>,
    /// With `verify`: 200 bodies checked against the origin's blake3 (`null` without).
    #[serde(default)]
    pub verified_bodies: Option<u64>,
    /// With `verify`: bodies that did not match, even after asking the origin again.
    #[serde(default)]
    pub wrong_bodies: Option<u64>,
}

/// A run's result; `serde` both ways, so a saved report can be read back and compared.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub schema_version: u32,
    /// What was run.
    pub config: LoadConfig,
    pub summary: Summary,
    pub series: Vec<Second>,
}

fn opt(v: Option<f64>, digits: usize) -> String {
    v.map_or_else(|| "-".to_string(), |v| format!("{v:.digits$}"))
}

fn pct(n: u64, total: u64) -> f64 {
    if total == 0 {
        0.0
    } else {
        100.0 * n as f64 / total as f64
    }
}

impl Report {
    /// The summary and the per-second series as a plain-text table.
    pub fn print_table(&self, w: &mut impl Write) -> std::io::Result<()> {
        let s = &self.summary;
        writeln!(
            w,
            "requests {}  errors {}  duration {:.1} s  throughput {:.1} req/s",
            s.requests, s.errors, s.duration_s, s.rps
        )?;
        writeln!(
            w,
            "latency ms  p50 {:.2}  p90 {:.2}  p99 {:.2}  max {:.2}  mean {:.2}",
            s.p50_ms, s.p90_ms, s.p99_ms, s.max_ms, s.mean_ms
        )?;
        let hops: Vec<String> = s.hops.iter().map(|(h, n)| format!("{h}:{n}")).collect();
        writeln!(w, "hops  avg {}  histogram {}", opt(s.avg_hops, 2), hops.join(" "))?;
        let c = &s.cache;
        let t = c.total();
        writeln!(
            w,
            "cache  HIT {:.1}%  MISS {:.1}%  STALE {:.1}%  PASS {:.1}%  other {:.1}%  none {:.1}%",
            pct(c.hit, t),
            pct(c.miss, t),
            pct(c.stale, t),
            pct(c.pass, t),
            pct(c.other, t),
            pct(c.none, t)
        )?;
        if s.errors > 0 {
            let e = &s.error_counts;
            let by: Vec<String> = e.by_status.iter().map(|(c, n)| format!("{c}:{n}")).collect();
            writeln!(
                w,
                "errors  status {}  connect {}  timeout {}  other {}",
                by.join(" "),
                e.connect,
                e.timeout,
                e.other
            )?;
        }
        if s.late > 0 || s.unsent > 0 {
            writeln!(w, "open loop  sent late {}  never sent {}", s.late, s.unsent)?;
        }
        if let Some(o) = s.origin_requests {
            writeln!(w, "origin requests {o}  offload {}%", opt(s.offload.map(|x| x * 100.0), 1))?;
        }
        if let (Some(checked), Some(wrong)) = (s.verified_bodies, s.wrong_bodies) {
            writeln!(w, "bodies verified {checked}  wrong {wrong}")?;
        }
        writeln!(
            w,
            "{:>4} {:>8} {:>6} {:>9} {:>9} {:>9} {:>6} {:>6} {:>7}",
            "t", "req/s", "errors", "p50 ms", "p99 ms", "max ms", "hops", "hit %", "origin"
        )?;
        for x in &self.series {
            writeln!(
                w,
                "{:>4} {:>8} {:>6} {:>9.2} {:>9.2} {:>9.2} {:>6} {:>6.1} {:>7}",
                x.t,
                x.requests,
                x.errors,
                x.p50_ms,
                x.p99_ms,
                x.max_ms,
                opt(x.avg_hops, 2),
                pct(x.cache.hit, x.cache.total()),
                x.origin_requests.map_or_else(|| "-".to_string(), |o| o.to_string())
            )?;
        }
        Ok(())
    }

    /// Writes the report as pretty JSON (schema: `loadgen/SCHEMA.md`).
    pub fn write_json(&self, path: impl AsRef<Path>) -> Result<(), LoadError> {
        let path = path.as_ref();
        let write_err = |source| LoadError::Write { path: path.display().to_string(), source };
        let json = serde_json::to_vec_pretty(self).map_err(|e| write_err(e.into()))?;
        std::fs::write(path, json).map_err(write_err)
    }

    /// Reads a report written by [`Report::write_json`].
    pub fn read_json(path: impl AsRef<Path>) -> Result<Report, std::io::Error> {
        let bytes = std::fs::read(path)?;
        serde_json::from_slice(&bytes).map_err(Into::into)
    }
}

/// Writes `report` as JSON to `path` (same as [`Report::write_json`]).
pub fn write_json(report: &Report, path: impl AsRef<Path>) -> Result<(), LoadError> {
    report.write_json(path)
}

/// One row per labelled run, for comparing modes (chord / passive / beehive).
pub fn compare_table(runs: &[(&str, &Report)]) -> String {
    let width = runs.iter().map(|(l, _)| l.len()).max().unwrap_or(3).max(3);
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{:<width$} {:>9} {:>8} {:>7} {:>8} {:>8} {:>6} {:>6} {:>8} {:>8} {:>7} {:>7}",
        "run",
        "requests",
        "req/s",
        "errors",
        "p50 ms",
        "p99 ms",
        "hops",
        "hit %",
        "origin",
        "offload",
        "stored",
        "copied"
    );
    for (label, r) in runs {
        let x = &r.summary;
        let _ = writeln!(
            s,
            "{:<width$} {:>9} {:>8.1} {:>7} {:>8.2} {:>8.2} {:>6} {:>6.1} {:>8} {:>8} {:>7} {:>7}",
            label,
            x.requests,
            x.rps,
            x.errors,
            x.p50_ms,
            x.p99_ms,
            opt(x.avg_hops, 2),
            pct(x.cache.hit, x.cache.total()),
            x.origin_requests.map_or_else(|| "-".to_string(), |o| o.to_string()),
            x.offload.map_or_else(|| "-".to_string(), |o| format!("{:.1}%", o * 100.0)),
            opt(x.stored_per_node, 0),
            x.copied.map_or_else(|| "-".to_string(), |c| c.to_string()),
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_mix_reads_the_first_word() {
        let mut c = CacheMix::default();
        for v in [Some("HIT"), Some("hit from n1"), Some("MISS"), Some("STALE"), Some("PASS")] {
            c.add(v);
        }
        c.add(Some("EXPIRED"));
        c.add(None);
        let want = CacheMix { hit: 2, miss: 1, stale: 1, pass: 1, other: 1, none: 1 };
        assert_eq!(c, want);
    }

    #[test]
    fn compare_table_has_a_row_per_run() {
        let r = Report {
            schema_version: SCHEMA_VERSION,
            config: LoadConfig::default(),
            summary: Summary {
                requests: 10,
                avg_hops: Some(1.5),
                stored_per_node: Some(250.4),
                over_budget_per_node: Some(0.0),
                copied: Some(1234),
                ..Summary::default()
            },
            series: Vec::new(),
        };
        let t = compare_table(&[("chord", &r), ("beehive", &r)]);
        assert_eq!(t.lines().count(), 3);
        assert!(t.contains("chord") && t.contains("beehive") && t.contains("1.50"));
        assert!(t.contains("stored") && t.contains(" 250 ") && t.contains("1234"), "{t}");
    }
}
