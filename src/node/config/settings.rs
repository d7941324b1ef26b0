//! Every node setting, declared once: [`Settings`] is at the same time the flags of
//! `beehive node` (each with its `BEEHIVE_*` variable) and the TOML file's shape. A layer only
//! says what it sets; [`Settings::apply`] lays it over a [`NodeConfig`] whose defaults are the
//! config types' own (`ChordConfig`, `ProxyConfig`, [`NodeConfig::default`]), and
//! [`Settings::of`] reads a configuration back into a complete layer (`beehive node --check`).

use super::error::{invalid, ConfigError};
use super::node::NodeConfig;
use super::seed::Seed;
use beehive_replication::config::Mode;
use clap::Args;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Largest accepted body cap: bodies travel in one frame, and frames are held in memory whole.
pub const MAX_BODY_CAP: u64 = 64 * 1024 * 1024;
/// Bound on every period and timeout given in milliseconds (one hour).
const MAX_MS: u64 = 3_600_000;

/// One layer of settings: the flags (and environment), or the TOML file. Unknown TOML keys
/// are refused, so a typo is not silently ignored.
#[derive(Debug, Default, Clone, PartialEq, Args, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// HTTP listen address: the CDN face (`http://NAME.<suffix>:PORT/...`). Unset: no HTTP.
    #[arg(long, value_name = "ADDR", env = "BEEHIVE_HTTP")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http: Option<SocketAddr>,
    /// RPC listen address (port 0: any free port, printed at start).
    #[arg(long, value_name = "ADDR", env = "BEEHIVE_RPC")]
    pub rpc: Option<SocketAddr>,
    /// Admin listen address: /healthz, /readyz, /ring, /metrics, /objects.
    #[arg(long, value_name = "ADDR", env = "BEEHIVE_ADMIN")]
    pub admin: Option<SocketAddr>,
    /// The RPC address other nodes reach this one at; the node's ring id derives from it.
    #[arg(long, value_name = "ADDR", env = "BEEHIVE_ADVERTISE")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub advertise: Option<SocketAddr>,
    /// A node of the ring to join through: its advertised RPC address, or HOST:PORT resolved
    /// when the node starts. Repeatable; flags replace the file's list.
    #[arg(long = "join", value_name = "ADDR", env = "BEEHIVE_JOIN", value_delimiter = ',')]
    #[serde(default)]
    pub join: Vec<String>,
    /// File holding the cluster secret (or set BEEHIVE_SECRET to the secret itself).
    #[arg(long, value_name = "PATH", env = "BEEHIVE_SECRET_FILE")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret_file: Option<PathBuf>,
    /// Replication mode: chord, passive or beehive.
    #[arg(long, value_name = "MODE", env = "BEEHIVE_MODE")]
    pub mode: Option<Mode>,
    /// Target average hops C for Beehive replication (above 0, at most 64).
    #[arg(long, value_name = "C", env = "BEEHIVE_TARGET_HOPS")]
    pub target_hops: Option<f64>,
    /// Objects each node may store (its own plus copies). In beehive mode the leader picks the
    /// smallest C that fits instead of aiming at C; in passive mode the least recently used
    /// cached copy makes room. No node fetches a copy past it.
    #[arg(long, value_name = "OBJECTS", env = "BEEHIVE_BUDGET")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub budget: Option<u64>,
    /// Cap on one object body moved between nodes, in bytes (at most 64 MiB).
    #[arg(long, value_name = "BYTES", env = "BEEHIVE_MAX_BODY_BYTES")]
    pub max_body_bytes: Option<u64>,
    /// Bound on a graceful shutdown (handoff and leave), in milliseconds.
    #[arg(long, value_name = "MS", env = "BEEHIVE_SHUTDOWN_MS")]
    pub shutdown_ms: Option<u64>,
    /// Successor-list length r.
    #[arg(long, value_name = "R", env = "BEEHIVE_SUCCESSORS")]
    pub successors: Option<u64>,
    /// The CDN host-name suffix stripped from Host headers.
    #[arg(long, value_name = "SUFFIX", env = "BEEHIVE_SUFFIX")]
    pub suffix: Option<String>,
    /// Object store budget in bytes (home objects and replicas).
    #[arg(long, value_name = "BYTES", env = "BEEHIVE_STORE_BYTES")]
    pub store_bytes: Option<u64>,
    /// Freshness, in seconds, for origin responses that state none.
    #[arg(long, value_name = "SECS", env = "BEEHIVE_DEFAULT_TTL")]
    pub default_ttl: Option<u64>,
    /// Requests per second allowed per client IP (bursts of twice that).
    #[arg(long, value_name = "N", env = "BEEHIVE_RATE_PER_SEC")]
    pub rate_per_sec: Option<u64>,
    /// Open Coral mode: any public origin as `host[.port].<suffix>` (private, loopback and
    /// link-local destinations are refused).
    #[arg(
        long,
        env = "BEEHIVE_OPEN",
        value_name = "BOOL",
        num_args = 0..=1,
        default_missing_value = "true",
        value_parser = clap::builder::BoolishValueParser::new()
    )]
    pub open: Option<bool>,
    /// How long, in seconds, a stale object may be served while its origin fails.
    #[arg(long, value_name = "SECS", env = "BEEHIVE_STALE_IF_ERROR")]
    pub stale_if_error: Option<u64>,
    /// How long, in seconds, a stale object is still served while it is refreshed in the
    /// background.
    #[arg(long, value_name = "SECS", env = "BEEHIVE_STALE_WHILE_REVALIDATE")]
    pub stale_while_revalidate: Option<u64>,
    /// Bound on an origin fetch (connect to last byte), in milliseconds.
    #[arg(long, value_name = "MS", env = "BEEHIVE_ORIGIN_TIMEOUT_MS")]
    pub origin_timeout_ms: Option<u64>,
    /// Bound on reading a client's request headers, in milliseconds (slowloris guard).
    #[arg(long, value_name = "MS", env = "BEEHIVE_HEADER_TIMEOUT_MS")]
    pub header_timeout_ms: Option<u64>,
    /// How long, in milliseconds, an idle keep-alive connection is kept before it is closed
    /// (separate from the header timeout, so an idle client is not cut mid-request).
    #[arg(long, value_name = "MS", env = "BEEHIVE_IDLE_TIMEOUT_MS")]
    pub idle_timeout_ms: Option<u64>,
    #[command(flatten)]
    #[serde(default)]
    pub intervals: Intervals,
    /// A named origin, NAME=http://host[:port], served as `NAME.<suffix>`. Repeatable; flags
    /// replace the file's `[origins]` table.
    #[arg(long = "origin", value_name = "NAME=URL", value_parser = name_eq_url)]
    #[serde(default, with = "origin_table")]
    pub origins: Vec<(String, String)>,
}

/// The periodic work, in milliseconds (the TOML file's `[intervals]` table).
#[derive(Debug, Default, Clone, PartialEq, Args, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Intervals {
    /// Stabilize period in milliseconds.
    #[arg(long, value_name = "MS", env = "BEEHIVE_STABILIZE_MS")]
    pub stabilize_ms: Option<u64>,
    /// Fix-fingers period in milliseconds.
    #[arg(long, value_name = "MS", env = "BEEHIVE_FIX_FINGERS_MS")]
    pub fix_fingers_ms: Option<u64>,
    /// Check-predecessor period in milliseconds.
    #[arg(long, value_name = "MS", env = "BEEHIVE_CHECK_PREDECESSOR_MS")]
    pub check_predecessor_ms: Option<u64>,
    /// Ring-merge probe period in milliseconds; also how long a silent suspected peer is
    /// remembered (and so refused as a successor) before it is forgotten.
    #[arg(long, value_name = "MS", env = "BEEHIVE_MERGE_MS")]
    pub merge_ms: Option<u64>,
    /// Replication interval in milliseconds: counts move, levels are set and replicas are
    /// pulled once per interval.
    #[arg(long, value_name = "MS", env = "BEEHIVE_REPLICATION_MS")]
    pub replication_ms: Option<u64>,
}

/// `NAME=URL`, as `--origin` takes it.
fn name_eq_url(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(n, u)| (n.to_string(), u.to_string()))
        .ok_or_else(|| "write NAME=http://host[:port]".to_string())
}

/// The `[origins]` table (NAME = "URL") as the list `--origin` builds.
mod origin_table {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};
    use std::collections::BTreeMap;

    pub fn serialize<S: Serializer>(v: &[(String, String)], s: S) -> Result<S::Ok, S::Error> {
        v.iter().cloned().collect::<BTreeMap<_, _>>().serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<(String, String)>, D::Error> {
        Ok(BTreeMap::<String, String>::deserialize(d)?.into_iter().collect())
    }
}

/// `v` if it lies in `min..=max`; else an error naming the setting.
fn within<T: PartialOrd + std::fmt::Display>(
    field: &'static str,
    v: T,
    min: T,
    max: T,
) -> Result<T, ConfigError> {
    if v >= min && v <= max {
        Ok(v)
    } else {
        Err(invalid(field, &v, format!("must be between {min} and {max}")))
    }
}

fn ms(field: &'static str, v: u64) -> Result<Duration, ConfigError> {
    within(field, v, 1, MAX_MS).map(Duration::from_millis)
}

fn secs(field: &'static str, v: u64, max: u64) -> Result<Duration, ConfigError> {
    within(field, v, 0, max).map(Duration::from_secs)
}

impl Settings {
    /// Lays this layer over `c`: what it sets replaces what `c` has, each value checked on
    /// its own (settings that depend on each other are checked by [`NodeConfig::check`]).
    /// The secret file is not applied here: the caller picks it with the secret itself.
    pub fn apply(self, c: &mut NodeConfig) -> Result<(), ConfigError> {
        let chord = &mut c.chord;
        let repl = &mut chord.replication;
        let proxy = &mut c.proxy;
        c.http = self.http.or(c.http);
        c.rpc = self.rpc.unwrap_or(c.rpc);
        c.admin = self.admin.unwrap_or(c.admin);
        c.advertise = self.advertise.or(c.advertise);
        if !self.join.is_empty() {
            c.join = self.join.iter().map(|j| Seed::parse(j)).collect::<Result<_, _>>()?;
        }
        repl.mode = self.mode.unwrap_or(repl.mode);
        if let Some(t) = self.target_hops {
            if !(t.is_finite() && t > 0.0 && t <= 64.0) {
                return Err(invalid("target-hops", t, "must be above 0 and at most 64"));
            }
            repl.target_hops = t;
        }
        if let Some(b) = self.budget {
            repl.budget = Some(within("budget", b, 1, u64::from(u32::MAX))? as f64);
        }
        if let Some(b) = self.max_body_bytes {
            proxy.max_object_bytes = within("max-body-bytes", b, 1, MAX_BODY_CAP)? as usize;
        }
        if let Some(v) = self.shutdown_ms {
            c.shutdown_bound = Duration::from_millis(within("shutdown-ms", v, 100, 60_000)?);
        }
        if let Some(r) = self.successors {
            chord.successors = within("successors", r, 1, 64)? as usize;
        }
        if let Some(s) = self.suffix {
            proxy.suffix = check_suffix(&s)?;
        }
        if let Some(b) = self.store_bytes {
            proxy.store_bytes = within("store-bytes", b, 1 << 20, 1 << 40)?;
        }
        if let Some(v) = self.default_ttl {
            proxy.default_ttl = secs("default-ttl", v, 365 * 86_400)?;
        }
        if let Some(r) = self.rate_per_sec {
            let r = within("rate-per-sec", r, 1, 1_000_000)? as u32;
            (proxy.rate_per_sec, proxy.burst) = (r, r.saturating_mul(2));
        }
        proxy.open_mode = self.open.unwrap_or(proxy.open_mode);
        if let Some(v) = self.stale_if_error {
            proxy.stale_if_error = secs("stale-if-error", v, 7 * 86_400)?;
        }
        if let Some(v) = self.stale_while_revalidate {
            proxy.stale_while_revalidate = secs("stale-while-revalidate", v, 86_400)?;
        }
        if let Some(v) = self.origin_timeout_ms {
            proxy.origin_timeout = ms("origin-timeout-ms", v)?;
        }
        if let Some(v) = self.header_timeout_ms {
            proxy.header_read_timeout = ms("header-timeout-ms", v)?;
        }
        if let Some(v) = self.idle_timeout_ms {
            proxy.idle_timeout = ms("idle-timeout-ms", v)?;
        }
        let iv = self.intervals;
        let periods = [
            ("stabilize-ms", iv.stabilize_ms, &mut chord.stabilize_interval),
            ("fix-fingers-ms", iv.fix_fingers_ms, &mut chord.fix_fingers_interval),
            (
                "check-predecessor-ms",
                iv.check_predecessor_ms,
                &mut chord.check_predecessor_interval,
            ),
            ("merge-ms", iv.merge_ms, &mut chord.merge_interval),
            ("replication-ms", iv.replication_ms, &mut chord.replication.interval),
        ];
        for (field, v, slot) in periods {
            if let Some(v) = v {
                *slot = ms(field, v)?;
            }
        }
        if !self.origins.is_empty() {
            proxy.origins = self
                .origins
                .into_iter()
                .map(|(name, url)| Ok((check_origin_name(name)?, parse_origin(&url)?)))
                .collect::<Result<_, ConfigError>>()?;
        }
        Ok(())
    }

    /// Every setting of `c`, as a layer that [`Settings::apply`] turns back into `c` (the
    /// secret aside): what `beehive node --check` prints.
    pub fn of(c: &NodeConfig) -> Settings {
        let (chord, repl, proxy) = (&c.chord, &c.chord.replication, &c.proxy);
        let millis = |d: Duration| Some(u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        Settings {
            http: c.http,
            rpc: Some(c.rpc),
            admin: Some(c.admin),
            advertise: c.advertise,
            join: c.join.iter().map(Seed::to_string).collect(),
            secret_file: None,
            mode: Some(repl.mode),
            target_hops: Some(repl.target_hops),
            budget: repl.budget.map(|b| b as u64),
            max_body_bytes: Some(proxy.max_object_bytes as u64),
            shutdown_ms: millis(c.shutdown_bound),
            successors: Some(chord.successors as u64),
            suffix: Some(proxy.suffix.clone()),
            store_bytes: Some(proxy.store_bytes),
            default_ttl: Some(proxy.default_ttl.as_secs()),
            rate_per_sec: Some(u64::from(proxy.rate_per_sec)),
            open: Some(proxy.open_mode),
            stale_if_error: Some(proxy.stale_if_error.as_secs()),
            stale_while_revalidate: Some(proxy.stale_while_revalidate.as_secs()),
            origin_timeout_ms: millis(proxy.origin_timeout),
            header_timeout_ms: millis(proxy.header_read_timeout),
            idle_timeout_ms: millis(proxy.idle_timeout),
            intervals: Intervals {
                stabilize_ms: millis(chord.stabilize_interval),
                fix_fingers_ms: millis(chord.fix_fingers_interval),
                check_predecessor_ms: millis(chord.check_predecessor_interval),
                merge_ms: millis(chord.merge_interval),
                replication_ms: millis(repl.interval),
            },
            origins: proxy
                .origins
                .iter()
                .map(|(name, (host, port))| (name.clone(), format!("http://{host}:{port}")))
                .collect(),
        }
    }

    /// This layer as a TOML file.
    pub fn to_toml(&self) -> String {
        toml::to_string(self).unwrap_or_else(|e| format!("# cannot print the settings: {e}\n"))
    }
}

/// A DNS name, lowercased and without outer dots.
fn check_suffix(s: &str) -> Result<String, ConfigError> {
    let suffix = s.trim_matches('.').to_ascii_lowercase();
    let ok = !suffix.is_empty()
        && suffix
            .split('.')
            .all(|l| !l.is_empty() && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'));
    if ok {
        Ok(suffix)
    } else {
        Err(invalid("suffix", s, "give a DNS name such as beehive.localhost"))
    }
}

fn check_origin_name(name: String) -> Result<String, ConfigError> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-');
    if ok {
        Ok(name)
    } else {
        Err(invalid("origin", name, "a name is one DNS label: a-z, 0-9 and inner '-'"))
    }
}

/// `http://host[:port][/]`: nothing else is accepted for a named origin.
fn parse_origin(url: &str) -> Result<(String, u16), ConfigError> {
    let fix = "write http://host[:port] (no path, no https)";
    let rest = url.strip_prefix("http://").ok_or_else(|| invalid("origin", url, fix))?;
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    let (host, port) = match rest.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(']') || h.starts_with('[') => {
            (h, p.parse::<u16>().map_err(|_| invalid("origin", url, fix))?)
        }
        _ => (rest, 80),
    };
    let host_ok = !host.is_empty()
        && host.bytes().all(|b| b.is_ascii_alphanumeric() || b"-.[]:".contains(&b));
    if !host_ok || port == 0 {
        return Err(invalid("origin", url, fix));
    }
    Ok((host.to_ascii_lowercase(), port))
}
