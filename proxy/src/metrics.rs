//! Counters the node exports: plain atomics (the hot path only increments), read with
//! [`ProxyMetrics::snapshot`] or scraped through the node's `prometheus-client` registry
//! ([`ProxyMetrics::register`]).

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;
use serde::Serialize;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

/// Hop counts 0..HOP_BUCKETS-1 each get a bucket; the last bucket holds the rest.
pub const HOP_BUCKETS: usize = 9;

/// How a response was produced, for `X-Cache` and the counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum CacheResult {
    /// Served from this node's store, fresh.
    Hit,
    /// Fetched through the cluster (this node had no usable copy).
    Miss,
    /// Served past freshness (stale-while-revalidate or stale-if-error).
    Stale,
    /// Not cacheable: fetched from the origin for this request alone.
    Pass,
}

impl CacheResult {
    /// The `X-Cache` value.
    pub fn as_str(self) -> &'static str {
        match self {
            CacheResult::Hit => "HIT",
            CacheResult::Miss => "MISS",
            CacheResult::Stale => "STALE",
            CacheResult::Pass => "PASS",
        }
    }
}

/// The proxy's counters; share one `Arc` between the proxy, its loader and the node.
#[derive(Debug, Default)]
pub struct ProxyMetrics {
    status: [AtomicU64; 6],
    cache: [AtomicU64; 4],
    hops: [AtomicU64; HOP_BUCKETS],
    origin_fetches: AtomicU64,
    origin_errors: AtomicU64,
    bytes_served: AtomicU64,
    rate_limited: AtomicU64,
}

/// A point-in-time copy of [`ProxyMetrics`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct MetricsSnapshot {
    /// Responses by status class: index 1 = 1xx ... 5 = 5xx (0: other).
    pub status_class: [u64; 6],
    /// Responses by cache result: HIT, MISS, STALE, PASS.
    pub cache: [u64; 4],
    /// Cluster fetches by hops (last bucket: that many or more).
    pub hops: [u64; HOP_BUCKETS],
    /// Requests sent to origins (loads, revalidations and passes).
    pub origin_fetches: u64,
    /// Origin requests that failed (unreachable, timeout, forbidden).
    pub origin_errors: u64,
    /// Body bytes sent to clients.
    pub bytes_served: u64,
    /// Requests refused with 429.
    pub rate_limited: u64,
}

impl ProxyMetrics {
    /// Counts one response.
    pub fn response(&self, status: u16, cache: Option<CacheResult>, body_bytes: u64) {
        let class = (status / 100) as usize;
        self.status[if class < 6 { class } else { 0 }].fetch_add(1, Relaxed);
        if let Some(c) = cache {
            self.cache[c as usize].fetch_add(1, Relaxed);
        }
        self.bytes_served.fetch_add(body_bytes, Relaxed);
    }

    /// Counts the hops one cluster fetch took.
    pub fn hops(&self, hops: u32) {
        self.hops[(hops as usize).min(HOP_BUCKETS - 1)].fetch_add(1, Relaxed);
    }

    /// Counts one request sent to an origin.
    pub fn origin_fetch(&self) {
        self.origin_fetches.fetch_add(1, Relaxed);
    }

    /// Counts one failed origin request.
    pub fn origin_error(&self) {
        self.origin_errors.fetch_add(1, Relaxed);
    }

    /// Counts one 429.
    pub fn rate_limited(&self) {
        self.rate_limited.fetch_add(1, Relaxed);
    }

    /// Reads every counter.
    pub fn snapshot(&self) -> MetricsSnapshot {
        let read = |a: &AtomicU64| a.load(Relaxed);
        MetricsSnapshot {
            status_class: self.status.each_ref().map(read),
            cache: self.cache.each_ref().map(read),
            hops: self.hops.each_ref().map(read),
            origin_fetches: read(&self.origin_fetches),
            origin_errors: read(&self.origin_errors),
            bytes_served: read(&self.bytes_served),
            rate_limited: read(&self.rate_limited),
        }
    }
}

impl ProxyMetrics {
    /// Registers these counters in the node's registry; each scrape reads them afresh.
    pub fn register(self: &Arc<Self>, registry: &mut Registry) {
        registry.register_collector(Box::new(self.clone()));
    }
}

const CACHE_NAMES: [&str; 4] = ["HIT", "MISS", "STALE", "PASS"];
const CTR: MetricType = MetricType::Counter;

impl Collector for ProxyMetrics {
    fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let s = self.snapshot();
        let counter = |enc: &mut DescriptorEncoder, name: &str, help: &str, v: u64| {
            ConstCounter::new(v).encode(enc.encode_descriptor(name, help, None, CTR)?)
        };
        {
            let desc = "Responses by status class";
            let mut m = enc.encode_descriptor("proxy_responses", desc, None, CTR)?;
            for (i, n) in s.status_class.iter().enumerate() {
                let class = if i == 0 { "other".to_string() } else { format!("{i}xx") };
                let labels = [("class", class)];
                ConstCounter::new(*n).encode(m.encode_family(&labels)?)?;
            }
        }
        {
            let desc = "Responses by cache result";
            let mut m = enc.encode_descriptor("proxy_cache", desc, None, CTR)?;
            for (name, n) in CACHE_NAMES.iter().zip(s.cache) {
                ConstCounter::new(n).encode(m.encode_family(&[("result", *name)])?)?;
            }
        }
        {
            let desc = "Cluster fetches by ring hops (last bucket: that many or more)";
            let mut m = enc.encode_descriptor("proxy_fetch_hops", desc, None, CTR)?;
            for (h, n) in s.hops.iter().enumerate() {
                ConstCounter::new(*n).encode(m.encode_family(&[("hops", h.to_string())])?)?;
            }
        }
        counter(&mut enc, "proxy_origin_fetches", "Requests sent to origins", s.origin_fetches)?;
        counter(&mut enc, "proxy_origin_errors", "Failed origin requests", s.origin_errors)?;
        counter(&mut enc, "proxy_bytes_served", "Body bytes sent to clients", s.bytes_served)?;
        counter(&mut enc, "proxy_rate_limited", "Requests refused with 429", s.rate_limited)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts() {
        let m = ProxyMetrics::default();
        m.response(200, Some(CacheResult::Hit), 10);
        m.response(504, None, 5);
        m.hops(0);
        m.hops(40);
        let s = m.snapshot();
        assert_eq!(s.status_class[2], 1);
        assert_eq!(s.status_class[5], 1);
        assert_eq!(s.cache, [1, 0, 0, 0]);
        assert_eq!(s.hops[0], 1);
        assert_eq!(s.hops[HOP_BUCKETS - 1], 1);
        assert_eq!(s.bytes_served, 15);
    }

    #[test]
    fn scraped_through_a_registry() {
        let m = Arc::new(ProxyMetrics::default());
        m.response(200, Some(CacheResult::Stale), 3);
        m.origin_fetch();
        let mut reg = Registry::default();
        m.register(&mut reg);
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &reg).unwrap();
        assert!(out.contains("proxy_cache_total{result=\"STALE\"} 1"), "{out}");
        assert!(out.contains("proxy_responses_total{class=\"2xx\"} 1"), "{out}");
        assert!(out.contains("proxy_origin_fetches_total 1"), "{out}");
    }
}
