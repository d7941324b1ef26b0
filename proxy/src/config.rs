//! The proxy's configuration: a plain struct with production defaults and `validate()`.

use ipnet::IpNet;
use std::collections::BTreeMap;
use std::time::Duration;
use thiserror::Error;

/// What the HTTP face needs to know. The node builds it from its own config file.
#[derive(Debug, Clone)]
pub struct ProxyConfig {
    /// The CDN suffix: `NAME.<suffix>` is served (default `beehive.localhost`, which browsers
    /// resolve to loopback).
    pub suffix: String,
    /// Named origins: `NAME.<suffix>` maps to `http://host:port`. No DNS check applies.
    pub origins: BTreeMap<String, (String, u16)>,
    /// Coral's open mode: any public `host[.PORT].<suffix>`. Off by default (an open proxy).
    pub open_mode: bool,
    /// Networks open mode may reach although they are private, loopback or link-local.
    pub allow: Vec<IpNet>,
    /// Freshness given to cacheable responses that carry no explicit lifetime.
    pub default_ttl: Duration,
    /// How long past freshness a copy is served while it is refreshed in the background.
    pub stale_while_revalidate: Duration,
    /// How long past freshness a copy is served when the origin fails.
    pub stale_if_error: Duration,
    /// Larger responses stream through uncached.
    pub max_object_bytes: usize,
    /// Capacity of the object store, in bytes of encoded objects.
    pub store_bytes: u64,
    /// TCP connect timeout towards origins.
    pub origin_connect_timeout: Duration,
    /// Timeout for a whole origin response (headers and body).
    pub origin_timeout: Duration,
    /// Clients must send a request's head within this time of its first byte (slowloris).
    pub header_read_timeout: Duration,
    /// A keep-alive connection with no request under way and no bytes moving for this long is
    /// closed cleanly. Longer than common client pool timeouts' lower end, so a client rarely
    /// sends into a connection as it closes.
    pub idle_timeout: Duration,
    /// Most request headers accepted (more: 431).
    pub max_headers: usize,
    /// Most bytes of request head, start line included, accepted (more: 431).
    pub max_header_bytes: usize,
    /// Largest request body passed to an origin (more: 413).
    pub max_body_bytes: usize,
    /// Sustained requests per second per client IP.
    pub rate_per_sec: u32,
    /// Burst of requests per client IP.
    pub burst: u32,
    /// Bearer token that authorises PURGE from non-loopback peers (none: loopback only).
    pub admin_token: Option<String>,
    /// Sort query parameters in the cache key.
    pub sort_query: bool,
    /// Query parameters dropped from the cache key; a trailing `*` matches a prefix.
    pub drop_params: Vec<String>,
    /// This node's name, for `Via`.
    pub node_name: String,
    /// Most client connections served at once; further accepts are closed at once.
    pub max_connections: usize,
}

impl Default for ProxyConfig {
    fn default() -> Self {
        ProxyConfig {
            suffix: "beehive.localhost".into(),
            origins: BTreeMap::new(),
            open_mode: false,
            allow: Vec::new(),
            default_ttl: Duration::from_secs(60),
            stale_while_revalidate: Duration::from_secs(10),
            stale_if_error: Duration::from_secs(300),
            max_object_bytes: 8 << 20,
            store_bytes: 256 << 20,
            origin_connect_timeout: Duration::from_secs(2),
            origin_timeout: Duration::from_secs(10),
            header_read_timeout: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(60),
            max_headers: 100,
            max_header_bytes: 16 << 10,
            max_body_bytes: 8 << 20,
            rate_per_sec: 1000,
            burst: 2000,
            admin_token: None,
            sort_query: false,
            drop_params: vec!["utm_*".into(), "fbclid".into(), "gclid".into()],
            node_name: "beehive".into(),
            max_connections: 10_000,
        }
    }
}

/// A configuration the proxy cannot run with; the message says what to fix.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
#[error("proxy config: {0}")]
pub struct ConfigError(pub String);

impl ProxyConfig {
    /// Checks the values the server would otherwise misbehave or panic on.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |m: &str| Err(ConfigError(m.to_string()));
        if self.suffix.is_empty() || self.suffix.starts_with('.') {
            return bad("suffix must be a non-empty domain without a leading dot");
        }
        if self.rate_per_sec == 0 || self.burst == 0 {
            return bad("rate_per_sec and burst must be at least 1");
        }
        if self.max_connections == 0 {
            return bad("max_connections must be at least 1");
        }
        if self.max_headers == 0 {
            return bad("max_headers must be at least 1");
        }
        if self.max_object_bytes == 0 || self.store_bytes == 0 {
            return bad("max_object_bytes and store_bytes must be positive");
        }
        if self.max_object_bytes as u64 > self.store_bytes / 2 {
            return bad("store_bytes must hold at least two objects of max_object_bytes");
        }
        for (name, (host, port)) in &self.origins {
            if name.is_empty() || name.contains('.') || name != &name.to_ascii_lowercase() {
                return bad("origin names must be one lowercase DNS label");
            }
            if host.is_empty() || *port == 0 {
                return bad("each origin needs a host and a non-zero port");
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_validate_and_zero_rate_does_not() {
        assert!(ProxyConfig::default().validate().is_ok());
        let c = ProxyConfig { rate_per_sec: 0, ..ProxyConfig::default() };
        assert!(c.validate().is_err());
        let c = ProxyConfig {
            store_bytes: 1 << 20,
            max_object_bytes: 1 << 20,
            ..ProxyConfig::default()
        };
        assert!(c.validate().is_err(), "a store that cannot keep its largest object");
    }
}
