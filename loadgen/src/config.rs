//! What a load run does: [`LoadConfig`], its defaults, and [`LoadConfig::validate`].

use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Which object each request asks for.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Workload {
    /// Zipf with exponent `alpha` over the objects: rank 1 (the most popular) is object 0.
    Zipf { alpha: f64 },
    /// Every object equally likely.
    Uniform,
}

/// How requests are paced.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum LoopMode {
    /// `concurrency` workers, each sending its next request when the previous one is answered.
    /// Latency is measured from the send.
    Closed { concurrency: usize },
    /// `rate` requests per second on a fixed schedule of intended send times, whatever the
    /// server does; latency is measured from the intended send time (no coordinated omission).
    /// At most `max_in_flight` requests are outstanding; a request that has to wait for a slot
    /// is sent late (and counted in `late`), still timed from its intended time.
    Open { rate: f64, max_in_flight: usize },
}

/// How requests are spread over the entry nodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Spread {
    #[default]
    RoundRobin,
    Random,
}

/// A flash crowd: from `at` on, a `share` of the requests go to `object`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Flash {
    pub at: Duration,
    pub object: u64,
    pub share: f64,
}

/// Changes of popularity during a run, each from a time since the start.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct Phases {
    /// From then on popularity is reversed: rank `r` (0-based) maps to object `M-1-r`.
    pub reverse_at: Option<Duration>,
    /// From then on rank `r` maps to object `(r + by) mod M` (applied after a reversal).
    pub rotate_at: Option<(Duration, u64)>,
    pub flash: Option<Flash>,
}

/// Everything a run needs. `Default` is a 10 s closed loop with 16 workers, Zipf(0.91, 1 000).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoadConfig {
    /// Base URLs of the entry nodes (`http://host:port`), at least one.
    pub targets: Vec<String>,
    pub spread: Spread,
    /// The `Host` header (the CDN name, for example `site.beehive.localhost`); `None` keeps the
    /// target's authority.
    pub host: Option<String>,
    /// The request path; `{i}` is replaced by the object index.
    pub path_template: String,
    pub workload: Workload,
    /// M, the number of objects.
    pub objects: u64,
    pub mode: LoopMode,
    /// Stop after this long (at least one of `duration` and `requests` is required).
    pub duration: Option<Duration>,
    /// Stop after this many requests.
    pub requests: Option<u64>,
    /// Seeds every random choice (ChaCha8).
    pub seed: u64,
    /// Per request, from send to the end of the body; a request over it counts as a timeout.
    pub timeout: Duration,
    pub phases: Phases,
    /// The origin's `/stats` URL, polled each second for origin offload.
    pub origin_stats: Option<String>,
    /// Check every 200 body against the blake3 the built-in origin gives at `<path>/hash`
    /// (the origin is the one of `origin_stats`), and count the wrong ones.
    #[serde(default)]
    pub verify: bool,
    /// The HTTP client pool's idle connections kept per host.
    pub pool_max_idle_per_host: usize,
}

impl Default for LoadConfig {
    fn default() -> Self {
        Self {
            targets: Vec::new(),
            spread: Spread::RoundRobin,
            host: None,
            path_template: "/o/{i}".to_string(),
            workload: Workload::Zipf { alpha: 0.91 },
            objects: 1000,
            mode: LoopMode::Closed { concurrency: 16 },
            duration: Some(Duration::from_secs(10)),
            requests: None,
            seed: 1,
            timeout: Duration::from_secs(10),
            phases: Phases::default(),
            origin_stats: None,
            verify: false,
            pool_max_idle_per_host: 256,
        }
    }
}

/// Why a run did not start or could not finish. Configuration variants are returned before any
/// request is sent; nothing was changed anywhere.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("the Zipf exponent alpha must be a finite number > 0 (got {0})")]
    InvalidAlpha(f64),
    #[error("the number of objects must be at least 1")]
    NoObjects,
    #[error("the rate must be a finite number of requests per second > 0 (got {0})")]
    InvalidRate(f64),
    #[error("the concurrency must be at least 1")]
    ZeroConcurrency,
    #[error("the in-flight bound of the open loop must be at least 1")]
    ZeroInFlight,
    #[error("no target: give at least one --target http://HOST:PORT")]
    NoTargets,
    #[error("bad target {target:?}: {reason}")]
    BadTarget { target: String, reason: String },
    #[error("target {target} is unreachable: {reason}")]
    Unreachable { target: String, reason: String },
    #[error("the run has no end: give a duration, a request count or both (each > 0)")]
    Unbounded,
    #[error("bad phase: {0}")]
    BadPhase(String),
    #[error("bad path template {0:?}: it must start with '/' and contain {{i}}")]
    BadPathTemplate(String),
    #[error("bad Host header {0:?}")]
    BadHost(String),
    #[error("--verify needs the origin: give --origin-stats http://ORIGIN/stats")]
    VerifyWithoutOrigin,
    #[error("origin stats at {url}: {reason}")]
    OriginStats { url: String, reason: String },
    #[error("writing {path}: {source}")]
    Write { path: String, source: std::io::Error },
    #[error("drawing the plot: {0}")]
    Plot(String),
}

impl LoadConfig {
    /// Checks every setting; the messages say what to fix.
    pub fn validate(&self) -> Result<(), LoadError> {
        if let Workload::Zipf { alpha } = self.workload {
            if !(alpha.is_finite() && alpha > 0.0) {
                return Err(LoadError::InvalidAlpha(alpha));
            }
        }
        if self.objects == 0 {
            return Err(LoadError::NoObjects);
        }
        match self.mode {
            LoopMode::Closed { concurrency: 0 } => return Err(LoadError::ZeroConcurrency),
            LoopMode::Open { rate, .. } if !(rate.is_finite() && rate > 0.0) => {
                return Err(LoadError::InvalidRate(rate));
            }
            LoopMode::Open { max_in_flight: 0, .. } => return Err(LoadError::ZeroInFlight),
            _ => {}
        }
        if self.targets.is_empty() {
            return Err(LoadError::NoTargets);
        }
        for t in &self.targets {
            parse_target(t)?;
        }
        let no_duration = self.duration.is_none_or(|d| d.is_zero());
        let no_count = self.requests.is_none_or(|n| n == 0);
        if no_duration && no_count {
            return Err(LoadError::Unbounded);
        }
        if !self.path_template.starts_with('/') || !self.path_template.contains("{i}") {
            return Err(LoadError::BadPathTemplate(self.path_template.clone()));
        }
        if let Some(host) = &self.host {
            if host.is_empty() || hyper::header::HeaderValue::from_str(host).is_err() {
                return Err(LoadError::BadHost(host.clone()));
            }
        }
        if let Some(flash) = self.phases.flash {
            if flash.object >= self.objects {
                return Err(LoadError::BadPhase(format!(
                    "the flash object {} is not below the number of objects {}",
                    flash.object, self.objects
                )));
            }
            if !(0.0..=1.0).contains(&flash.share) {
                return Err(LoadError::BadPhase(format!(
                    "the flash share must be within 0..=1 (got {})",
                    flash.share
                )));
            }
        }
        if self.verify && self.origin_stats.is_none() {
            return Err(LoadError::VerifyWithoutOrigin);
        }
        if let Some(url) = &self.origin_stats {
            parse_target(url)
                .map_err(|e| LoadError::OriginStats { url: url.clone(), reason: e.to_string() })?;
        }
        Ok(())
    }
}

/// Parses an `http://host:port[/...]` URL; the port defaults to 80.
pub(crate) fn parse_target(target: &str) -> Result<hyper::Uri, LoadError> {
    let bad = |reason: &str| LoadError::BadTarget {
        target: target.to_string(),
        reason: reason.to_string(),
    };
    let uri: hyper::Uri =
        target.parse().map_err(|e: hyper::http::uri::InvalidUri| bad(&e.to_string()))?;
    match uri.scheme_str() {
        Some("http") => {}
        Some(other) => return Err(bad(&format!("scheme {other} is not supported; use http://"))),
        None => return Err(bad("no scheme; write http://HOST:PORT")),
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err(bad("no host"));
    }
    Ok(uri)
}

/// The `host:port` to connect to for a parsed target.
pub(crate) fn authority_of(uri: &hyper::Uri) -> String {
    format!("{}:{}", uri.host().unwrap_or_default(), uri.port_u16().unwrap_or(80))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok() -> LoadConfig {
        LoadConfig { targets: vec!["http://127.0.0.1:8080".into()], ..LoadConfig::default() }
    }

    #[test]
    fn table() {
        type Edit = fn(&mut LoadConfig);
        let cases: [(&str, Edit, &str); 11] = [
            ("alpha 0", |c| c.workload = Workload::Zipf { alpha: 0.0 }, "InvalidAlpha"),
            ("alpha < 0", |c| c.workload = Workload::Zipf { alpha: -1.0 }, "InvalidAlpha"),
            ("alpha NaN", |c| c.workload = Workload::Zipf { alpha: f64::NAN }, "InvalidAlpha"),
            ("M 0", |c| c.objects = 0, "NoObjects"),
            ("rate 0", |c| c.mode = LoopMode::Open { rate: 0.0, max_in_flight: 1 }, "InvalidRate"),
            ("conc 0", |c| c.mode = LoopMode::Closed { concurrency: 0 }, "ZeroConcurrency"),
            ("targets", |c| c.targets.clear(), "NoTargets"),
            ("target", |c| c.targets = vec!["127.0.0.1:80".into()], "BadTarget"),
            ("https", |c| c.targets = vec!["https://a:1".into()], "BadTarget"),
            ("unbounded", |c| c.duration = None, "Unbounded"),
            ("template", |c| c.path_template = "/o/".into(), "BadPathTemplate"),
        ];
        for (name, edit, want) in cases {
            let mut c = ok();
            edit(&mut c);
            let got = format!("{:?}", c.validate().expect_err(name));
            assert!(got.starts_with(want), "{name}: got {got}, want {want}");
        }
        assert!(ok().validate().is_ok());
        assert!(LoadConfig { workload: Workload::Uniform, ..ok() }.validate().is_ok());
    }
}
