//! `beehive node` settings: a TOML file, overridden by environment variables, overridden by
//! flags; checked once at start by [`RawConfig::validate`], whose errors name the setting and
//! say what to put there instead.
//!
//! Every raw value is kept as text until validation so that a bad value in the file, the
//! environment or a flag gets the same message. The cluster secret is only ever read from a
//! file or from `BEEHIVE_SECRET`, never from the TOML file itself, and never printed: the
//! `Debug` of [`Secret`] is redacted.

use beehive_replication::ChordConfig;
use clap::Args;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;
use thiserror::Error;

/// Default RPC and admin listen addresses: loopback, so a node is private until configured.
pub const DEFAULT_RPC: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 7000);
pub const DEFAULT_ADMIN: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 9090);
/// The shortest cluster secret accepted.
pub const MIN_SECRET_LEN: usize = 16;
/// Default cap on one object body moved between nodes.
pub const DEFAULT_MAX_BODY_BYTES: usize = 8 * 1024 * 1024;
/// Largest accepted body cap: bodies travel in one frame, and frames are held in memory whole.
pub const MAX_BODY_CAP: usize = 64 * 1024 * 1024;

/// The flags of `beehive node`. Each flag that has an environment variable names it; flags
/// win over the environment, which wins over the file.
#[derive(Debug, Default, Args)]
pub struct NodeArgs {
    /// TOML configuration file (see deploy/beehive.toml for every key).
    #[arg(long, value_name = "PATH", env = "BEEHIVE_CONFIG")]
    pub config: Option<PathBuf>,
    /// HTTP listen address: the CDN face (`http://NAME.<suffix>:PORT/...`). Unset: no HTTP.
    #[arg(long, value_name = "ADDR", env = "BEEHIVE_HTTP")]
    pub http: Option<String>,
    /// RPC listen address (port 0: any free port, printed at start).
    #[arg(long, value_name = "ADDR", env = "BEEHIVE_RPC")]
    pub rpc: Option<String>,
    /// Admin listen address: /healthz, /readyz, /ring, /metrics, /objects.
    #[arg(long, value_name = "ADDR", env = "BEEHIVE_ADMIN")]
    pub admin: Option<String>,
    /// The RPC address other nodes reach this one at; the node's ring id derives from it.
    #[arg(long, value_name = "ADDR", env = "BEEHIVE_ADVERTISE")]
    pub advertise: Option<String>,
    /// A node of the ring to join through: its advertised RPC address, or HOST:PORT resolved
    /// when the node starts. Repeatable.
    #[arg(long = "join", value_name = "ADDR", env = "BEEHIVE_JOIN", value_delimiter = ',')]
    pub join: Vec<String>,
    /// File holding the cluster secret (or set BEEHIVE_SECRET to the secret itself).
    #[arg(long, value_name = "PATH", env = "BEEHIVE_SECRET_FILE")]
    pub secret_file: Option<PathBuf>,
    /// Replication mode: chord, passive or beehive.
    #[arg(long, value_name = "MODE", env = "BEEHIVE_MODE")]
    pub mode: Option<String>,
    /// Target average hops C for Beehive replication (> 0).
    #[arg(long, value_name = "C", env = "BEEHIVE_TARGET_HOPS")]
    pub target_hops: Option<String>,
    /// Instead of C: objects each node may store (its own plus copies). The leader picks the
    /// smallest C that fits, and no node fetches a copy past it.
    #[arg(long, value_name = "OBJECTS", env = "BEEHIVE_BUDGET")]
    pub budget: Option<String>,
    /// A named origin, NAME=http://host[:port], served as `NAME.<suffix>`. Repeatable.
    #[arg(long = "origin", value_name = "NAME=URL")]
    pub origin: Vec<String>,
    /// Stabilize period in milliseconds.
    #[arg(long, value_name = "MS", env = "BEEHIVE_STABILIZE_MS")]
    pub stabilize_ms: Option<String>,
    /// Fix-fingers period in milliseconds.
    #[arg(long, value_name = "MS", env = "BEEHIVE_FIX_FINGERS_MS")]
    pub fix_fingers_ms: Option<String>,
    /// Check-predecessor period in milliseconds.
    #[arg(long, value_name = "MS", env = "BEEHIVE_CHECK_PREDECESSOR_MS")]
    pub check_predecessor_ms: Option<String>,
    /// Ring-merge probe period in milliseconds; also how long a silent suspected peer is
    /// remembered (and so refused as a successor) before it is forgotten.
    #[arg(long, value_name = "MS", env = "BEEHIVE_MERGE_MS")]
    pub merge_ms: Option<String>,
    /// Successor-list length r.
    #[arg(long, value_name = "R", env = "BEEHIVE_SUCCESSORS")]
    pub successors: Option<String>,
    /// Cap on one object body moved between nodes, in bytes.
    #[arg(long, value_name = "BYTES", env = "BEEHIVE_MAX_BODY_BYTES")]
    pub max_body_bytes: Option<String>,
    /// Bound on a graceful shutdown (handoff and leave), in milliseconds.
    #[arg(long, value_name = "MS", env = "BEEHIVE_SHUTDOWN_MS")]
    pub shutdown_ms: Option<String>,
    /// Replication interval in milliseconds: counts move, levels are set and replicas are
    /// pulled once per interval.
    #[arg(long, value_name = "MS", env = "BEEHIVE_REPLICATION_MS")]
    pub replication_ms: Option<String>,
    /// The CDN host-name suffix stripped from Host headers.
    #[arg(long, value_name = "SUFFIX", env = "BEEHIVE_SUFFIX")]
    pub suffix: Option<String>,
    /// Object store budget in bytes (home objects and replicas).
    #[arg(long, value_name = "BYTES", env = "BEEHIVE_STORE_BYTES")]
    pub store_bytes: Option<String>,
    /// Freshness, in seconds, for origin responses that state none.
    #[arg(long, value_name = "SECS", env = "BEEHIVE_DEFAULT_TTL")]
    pub default_ttl: Option<String>,
    /// Requests per second allowed per client IP (bursts of twice that).
    #[arg(long, value_name = "N", env = "BEEHIVE_RATE_PER_SEC")]
    pub rate_per_sec: Option<String>,
    /// How long, in seconds, a stale object is still served while it is refreshed in the
    /// background.
    #[arg(long, value_name = "SECS", env = "BEEHIVE_STALE_WHILE_REVALIDATE")]
    pub stale_while_revalidate: Option<String>,
    /// How long, in seconds, a stale object may be served while its origin fails.
    #[arg(long, value_name = "SECS", env = "BEEHIVE_STALE_IF_ERROR")]
    pub stale_if_error: Option<String>,
    /// Bound on an origin fetch (connect to last byte), in milliseconds.
    #[arg(long, value_name = "MS", env = "BEEHIVE_ORIGIN_TIMEOUT_MS")]
    pub origin_timeout_ms: Option<String>,
    /// Bound on reading a client's request headers, in milliseconds (slowloris guard).
    #[arg(long, value_name = "MS", env = "BEEHIVE_HEADER_TIMEOUT_MS")]
    pub header_timeout_ms: Option<String>,
    /// Open Coral mode: any public origin as `host[.port].<suffix>` (private, loopback and
    /// link-local destinations are refused).
    #[arg(long, env = "BEEHIVE_OPEN")]
    pub open: bool,
}

/// The TOML file's shape. Unknown keys are refused, so a typo is not silently ignored.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub http: Option<String>,
    pub rpc: Option<String>,
    pub admin: Option<String>,
    pub advertise: Option<String>,
    #[serde(default)]
    pub join: Vec<String>,
    pub secret_file: Option<PathBuf>,
    pub mode: Option<String>,
    pub target_hops: Option<f64>,
    pub budget: Option<u64>,
    pub max_body_bytes: Option<u64>,
    pub shutdown_ms: Option<u64>,
    #[serde(default)]
    pub intervals: FileIntervals,
    pub successors: Option<u64>,
    #[serde(default)]
    pub origins: BTreeMap<String, String>,
    pub suffix: Option<String>,
    pub store_bytes: Option<u64>,
    pub default_ttl: Option<u64>,
    pub rate_per_sec: Option<u64>,
    pub open: Option<bool>,
    pub stale_if_error: Option<u64>,
    pub stale_while_revalidate: Option<u64>,
    pub origin_timeout_ms: Option<u64>,
    pub header_timeout_ms: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileIntervals {
    pub stabilize_ms: Option<u64>,
    pub fix_fingers_ms: Option<u64>,
    pub check_predecessor_ms: Option<u64>,
    pub merge_ms: Option<u64>,
    pub replication_ms: Option<u64>,
}

/// Which replication the node runs (docs/replication.md, "Baselines"); the core's own setting.
pub use beehive_replication::config::Mode;

/// The cluster secret. Its `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Vec<u8>);

impl Secret {
    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret(<{} bytes redacted>)", self.0.len())
    }
}

/// A named origin site, served by the HTTP face as `NAME.<suffix>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    pub host: String,
    pub port: u16,
}

/// A validated node configuration.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    pub http: Option<SocketAddr>,
    pub rpc: SocketAddr,
    pub admin: SocketAddr,
    /// `None`: advertise the bound RPC address (only allowed for a specific IP).
    pub advertise: Option<SocketAddr>,
    pub join: Vec<Seed>,
    pub secret: Secret,
    pub mode: Mode,
    pub target_hops: f64,
    pub origins: BTreeMap<String, Origin>,
    pub chord: ChordConfig,
    pub max_body_bytes: usize,
    pub shutdown_bound: Duration,
    pub cdn: CdnSettings,
}

/// The HTTP face's settings (the rest of the proxy's knobs keep their defaults).
#[derive(Debug, Clone, PartialEq)]
pub struct CdnSettings {
    pub suffix: String,
    pub store_bytes: u64,
    pub default_ttl: Duration,
    pub rate_per_sec: u32,
    pub open: bool,
    pub stale_if_error: Duration,
    pub stale_while_revalidate: Duration,
    pub origin_timeout: Duration,
    pub header_timeout: Duration,
    /// Lets PURGE in from non-loopback clients (`Authorization: Bearer TOKEN`), from
    /// `BEEHIVE_ADMIN_TOKEN`.
    pub admin_token: Option<String>,
}

/// A setting that cannot work: which one, where it came from, and what to do.
#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    ReadFile { path: PathBuf, source: std::io::Error },
    #[error("config file {path} is not valid: {message}")]
    ParseFile { path: PathBuf, message: String },
    #[error("invalid `{field}` = {value:?}: {fix}")]
    Invalid { field: &'static str, value: String, fix: String },
    #[error("`{field}` is missing: {fix}")]
    Missing { field: &'static str, fix: String },
}

fn invalid(field: &'static str, value: impl fmt::Display, fix: impl Into<String>) -> ConfigError {
    ConfigError::Invalid { field, value: value.to_string(), fix: fix.into() }
}

/// Every source merged, before validation.
#[derive(Debug, Default)]
pub struct RawConfig {
    pub args: NodeArgs,
    pub file: FileConfig,
    /// `BEEHIVE_SECRET`, if set.
    pub env_secret: Option<Secret>,
}

impl RawConfig {
    /// Reads the config file named by the flags (if any) and the secret from the
    /// environment.
    pub fn load(args: NodeArgs) -> Result<Self, ConfigError> {
        let file = match &args.config {
            Some(path) => read_file(path)?,
            None => FileConfig::default(),
        };
        let env_secret =
            std::env::var_os("BEEHIVE_SECRET").map(|s| Secret(s.as_encoded_bytes().to_vec()));
        Ok(RawConfig { args, file, env_secret })
    }

    /// Merges flags over environment over file, and checks every value.
    pub fn validate(self) -> Result<NodeConfig, ConfigError> {
        let RawConfig { args, file, env_secret } = self;
        let rpc = required_addr("rpc", args.rpc.or(file.rpc), DEFAULT_RPC)?;
        let admin = required_addr("admin", args.admin.or(file.admin), DEFAULT_ADMIN)?;
        let http = addr("http", args.http.or(file.http))?;
        let listeners = [("rpc", Some(rpc)), ("admin", Some(admin)), ("http", http)];
        for (i, (field, a)) in listeners.iter().enumerate() {
            let Some(a) = a.filter(|a| a.port() != 0) else { continue };
            if let Some((other, _)) = listeners[..i].iter().find(|(_, b)| *b == Some(a)) {
                return Err(invalid(
                    field,
                    a,
                    format!("already taken by `{other}`; pick another port"),
                ));
            }
        }
        let advertise = addr("advertise", args.advertise.or(file.advertise))?;
        match advertise {
            Some(a) if a.ip().is_unspecified() || a.port() == 0 => {
                return Err(invalid(
                    "advertise",
                    a,
                    "give the specific IP and port other nodes can reach this node at",
                ))
            }
            None if rpc.ip().is_unspecified() => {
                return Err(ConfigError::Missing {
                    field: "advertise",
                    fix: format!(
                        "rpc listens on {rpc}, which names no single address; set --advertise \
                         to the IP:PORT other nodes reach this node at"
                    ),
                })
            }
            _ => {}
        }
        let join_raw = if args.join.is_empty() { file.join } else { args.join };
        let mut join = Vec::new();
        for j in join_raw {
            join.push(Seed::parse(&j)?);
        }
        let secret = secret(args.secret_file.or(file.secret_file), env_secret)?;
        let mode_name = args.mode.or(file.mode).unwrap_or_else(|| "beehive".to_string());
        let mode: Mode = mode_name
            .parse()
            .map_err(|_| invalid("mode", &mode_name, "use one of chord, passive, beehive"))?;
        let target_hops = match args.target_hops {
            Some(s) => s
                .trim()
                .parse::<f64>()
                .map_err(|_| invalid("target-hops", &s, "give a number such as 1 or 0.5"))?,
            None => file.target_hops.unwrap_or(1.0),
        };
        if !(target_hops.is_finite() && target_hops > 0.0 && target_hops <= 64.0) {
            return Err(invalid("target-hops", target_hops, "must be above 0 and at most 64"));
        }
        let budget = (args.budget.is_some() || file.budget.is_some())
            .then(|| number("budget", args.budget, file.budget, 1, 1, u64::MAX))
            .transpose()?;
        let mut origins = BTreeMap::new();
        for o in &args.origin {
            let Some((name, url)) = o.split_once('=') else {
                return Err(invalid("origin", o, "write NAME=http://host[:port]"));
            };
            origins.insert(name.to_string(), url.to_string());
        }
        let origins = if origins.is_empty() { file.origins } else { origins };
        let origins = origins
            .into_iter()
            .map(|(name, url)| Ok((check_origin_name(name)?, parse_origin(&url)?)))
            .collect::<Result<BTreeMap<_, _>, ConfigError>>()?;

        let ms = |field, flag: Option<String>, file: Option<u64>, default: u64| {
            number(field, flag, file, default, 1, 3_600_000).map(Duration::from_millis)
        };
        let iv = file.intervals;
        let mut chord = ChordConfig {
            stabilize_interval: ms("stabilize-ms", args.stabilize_ms, iv.stabilize_ms, 1000)?,
            fix_fingers_interval: ms(
                "fix-fingers-ms",
                args.fix_fingers_ms,
                iv.fix_fingers_ms,
                1000,
            )?,
            check_predecessor_interval: ms(
                "check-predecessor-ms",
                args.check_predecessor_ms,
                iv.check_predecessor_ms,
                1000,
            )?,
            merge_interval: ms("merge-ms", args.merge_ms, iv.merge_ms, 30_000)?,
            successors: number("successors", args.successors, file.successors, 8, 1, 64)? as usize,
            ..ChordConfig::default()
        };
        chord.replication.interval = ms(
            "replication-ms",
            args.replication_ms,
            iv.replication_ms,
            chord.replication.interval.as_millis() as u64,
        )?;
        chord.replication.mode = mode;
        chord.replication.target_hops = target_hops;
        chord.replication.budget = budget.map(|b| b as f64);
        chord.validate().map_err(|e| invalid(e.field, "", e.reason))?;
        let max_body_bytes = number(
            "max-body-bytes",
            args.max_body_bytes,
            file.max_body_bytes,
            DEFAULT_MAX_BODY_BYTES as u64,
            1,
            MAX_BODY_CAP as u64,
        )? as usize;
        let shutdown_bound = Duration::from_millis(number(
            "shutdown-ms",
            args.shutdown_ms,
            file.shutdown_ms,
            5000,
            100,
            60_000,
        )?);
        let suffix = args
            .suffix
            .or(file.suffix)
            .unwrap_or_else(|| "beehive.localhost".to_string())
            .trim_matches('.')
            .to_ascii_lowercase();
        if suffix.is_empty()
            || !suffix
                .split('.')
                .all(|l| !l.is_empty() && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'))
        {
            return Err(invalid("suffix", &suffix, "give a DNS name such as beehive.localhost"));
        }
        let cdn = CdnSettings {
            suffix,
            store_bytes: number(
                "store-bytes",
                args.store_bytes,
                file.store_bytes,
                256 << 20,
                1 << 20,
                1 << 40,
            )?,
            default_ttl: Duration::from_secs(number(
                "default-ttl",
                args.default_ttl,
                file.default_ttl,
                60,
                0,
                365 * 86_400,
            )?),
            rate_per_sec: number(
                "rate-per-sec",
                args.rate_per_sec,
                file.rate_per_sec,
                1000,
                1,
                1_000_000,
            )? as u32,
            open: args.open || file.open.unwrap_or(false),
            stale_if_error: Duration::from_secs(number(
                "stale-if-error",
                args.stale_if_error,
                file.stale_if_error,
                300,
                0,
                7 * 86_400,
            )?),
            stale_while_revalidate: Duration::from_secs(number(
                "stale-while-revalidate",
                args.stale_while_revalidate,
                file.stale_while_revalidate,
                10,
                0,
                86_400,
            )?),
            origin_timeout: ms(
                "origin-timeout-ms",
                args.origin_timeout_ms,
                file.origin_timeout_ms,
                10_000,
            )?,
            header_timeout: ms(
                "header-timeout-ms",
                args.header_timeout_ms,
                file.header_timeout_ms,
                5_000,
            )?,
            admin_token: std::env::var("BEEHIVE_ADMIN_TOKEN").ok().filter(|t| !t.is_empty()),
        };
        Ok(NodeConfig {
            cdn,
            http,
            rpc,
            admin,
            advertise,
            join,
            secret,
            mode,
            target_hops,
            origins,
            chord,
            max_body_bytes,
            shutdown_bound,
        })
    }
}

fn read_file(path: &Path) -> Result<FileConfig, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|source| ConfigError::ReadFile { path: path.to_owned(), source })?;
    toml::from_str(&text)
        .map_err(|e| ConfigError::ParseFile { path: path.to_owned(), message: e.to_string() })
}

fn parse_addr(field: &'static str, s: &str) -> Result<SocketAddr, ConfigError> {
    s.trim().parse().map_err(|_| invalid(field, s, "write IP:PORT, e.g. 127.0.0.1:7000"))
}

/// A node to join through, as configured: an address, or a host name that the node resolves
/// when it starts (a compose service, a Kubernetes headless service), so that seeds need not
/// have fixed addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seed {
    Addr(SocketAddr),
    Host { name: String, port: u16 },
}

impl Seed {
    pub fn parse(s: &str) -> Result<Seed, ConfigError> {
        const FIX: &str = "give the seed's advertised IP:PORT or HOST:PORT, e.g. node1:7000";
        let s = s.trim();
        if let Ok(a) = s.parse::<SocketAddr>() {
            if a.ip().is_unspecified() || a.port() == 0 {
                return Err(invalid("join", s, FIX));
            }
            return Ok(Seed::Addr(a));
        }
        let (name, port) = s.rsplit_once(':').ok_or_else(|| invalid("join", s, FIX))?;
        let port: u16 =
            port.parse().ok().filter(|p| *p != 0).ok_or_else(|| invalid("join", s, FIX))?;
        // RFC 1123 host names: letters, digits, '-' and '.'; anything else (an IPv6 address
        // without brackets, a URL) is a mistake better named now than at resolution.
        let valid = !name.is_empty()
            && name.len() <= 253
            && name.split('.').all(|l| {
                !l.is_empty()
                    && l.len() <= 63
                    && !l.starts_with('-')
                    && !l.ends_with('-')
                    && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            });
        if !valid {
            return Err(invalid("join", s, FIX));
        }
        Ok(Seed::Host { name: name.to_string(), port })
    }

    /// The seed's addresses: itself, or what its name resolves to now.
    pub async fn resolve(&self) -> std::io::Result<Vec<SocketAddr>> {
        match self {
            Seed::Addr(a) => Ok(vec![*a]),
            Seed::Host { name, port } => {
                Ok(tokio::net::lookup_host((name.as_str(), *port)).await?.collect())
            }
        }
    }
}

impl fmt::Display for Seed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Seed::Addr(a) => write!(f, "{a}"),
            Seed::Host { name, port } => write!(f, "{name}:{port}"),
        }
    }
}

/// An optional address setting.
fn addr(field: &'static str, value: Option<String>) -> Result<Option<SocketAddr>, ConfigError> {
    value.map(|s| parse_addr(field, &s)).transpose()
}

/// An address setting with a default.
fn required_addr(
    field: &'static str,
    value: Option<String>,
    default: SocketAddr,
) -> Result<SocketAddr, ConfigError> {
    Ok(addr(field, value)?.unwrap_or(default))
}

/// An integer setting in `min..=max`: the flag (or env) text, else the file's, else `default`.
fn number(
    field: &'static str,
    flag: Option<String>,
    file: Option<u64>,
    default: u64,
    min: u64,
    max: u64,
) -> Result<u64, ConfigError> {
    let n = match flag {
        Some(s) => {
            s.trim().parse::<u64>().map_err(|_| invalid(field, &s, "give a whole number"))?
        }
        None => file.unwrap_or(default),
    };
    if !(min..=max).contains(&n) {
        return Err(invalid(field, n, format!("must be between {min} and {max}")));
    }
    Ok(n)
}

fn secret(file: Option<PathBuf>, env: Option<Secret>) -> Result<Secret, ConfigError> {
    let secret = match (file, env) {
        (Some(path), _) => {
            let bytes = std::fs::read(&path).map_err(|e| {
                invalid("secret-file", path.display(), format!("cannot be read ({e})"))
            })?;
            let trimmed = bytes.trim_ascii_end().to_vec();
            Secret(trimmed)
        }
        (None, Some(s)) => s,
        (None, None) => {
            return Err(ConfigError::Missing {
                field: "secret",
                fix: "give --secret-file PATH (or BEEHIVE_SECRET); every node of a cluster \
                      needs the same secret"
                    .into(),
            })
        }
    };
    if secret.0.len() < MIN_SECRET_LEN {
        return Err(ConfigError::Invalid {
            field: "secret",
            value: format!("<{} bytes>", secret.0.len()),
            fix: format!(
                "use at least {MIN_SECRET_LEN} bytes, e.g. `head -c 32 /dev/urandom | base64`"
            ),
        });
    }
    Ok(secret)
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
fn parse_origin(url: &str) -> Result<Origin, ConfigError> {
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
    Ok(Origin { host: host.to_ascii_lowercase(), port })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(args: NodeArgs) -> RawConfig {
        RawConfig { args, file: FileConfig::default(), env_secret: Some(Secret(vec![b'x'; 32])) }
    }

    fn err_field(args: NodeArgs) -> String {
        match raw(args).validate().unwrap_err() {
            ConfigError::Invalid { field, .. } | ConfigError::Missing { field, .. } => {
                field.to_string()
            }
            e => panic!("unexpected {e}"),
        }
    }

    #[test]
    fn defaults_validate() {
        let c = raw(NodeArgs::default()).validate().unwrap();
        assert_eq!(c.rpc, "127.0.0.1:7000".parse().unwrap());
        assert_eq!(c.mode, Mode::Beehive);
        assert!(!format!("{c:?}").contains("xxxx"), "secret leaked into Debug");
    }

    #[test]
    fn bad_values_name_their_setting() {
        let cases: Vec<(NodeArgs, &str)> = vec![
            (NodeArgs { rpc: Some("nope".into()), ..Default::default() }, "rpc"),
            (NodeArgs { rpc: Some("0.0.0.0:7000".into()), ..Default::default() }, "advertise"),
            (NodeArgs { mode: Some("pastry".into()), ..Default::default() }, "mode"),
            (NodeArgs { target_hops: Some("0".into()), ..Default::default() }, "target-hops"),
            (NodeArgs { budget: Some("0.5".into()), ..Default::default() }, "budget"),
            (NodeArgs { budget: Some("lots".into()), ..Default::default() }, "budget"),
            (NodeArgs { stabilize_ms: Some("0".into()), ..Default::default() }, "stabilize-ms"),
            (NodeArgs { join: vec!["1.2.3.4:0".into()], ..Default::default() }, "join"),
            (NodeArgs { admin: Some("127.0.0.1:7000".into()), ..Default::default() }, "admin"),
            (NodeArgs { origin: vec!["a=https://x".into()], ..Default::default() }, "origin"),
            (NodeArgs { origin: vec!["A B=http://x".into()], ..Default::default() }, "origin"),
        ];
        for (args, field) in cases {
            assert_eq!(err_field(args), field);
        }
    }

    #[test]
    fn seeds_are_addresses_or_host_names() {
        assert_eq!(
            Seed::parse(" 10.0.0.2:7000").unwrap(),
            Seed::Addr("10.0.0.2:7000".parse().unwrap())
        );
        assert_eq!(Seed::parse("[::1]:7000").unwrap(), Seed::Addr("[::1]:7000".parse().unwrap()));
        let host = Seed::parse("beehive-0.beehive-peers:7000").unwrap();
        assert_eq!(host, Seed::Host { name: "beehive-0.beehive-peers".into(), port: 7000 });
        assert_eq!(host.to_string(), "beehive-0.beehive-peers:7000");
        for bad in [
            "node1",
            "node1:0",
            "node1:x",
            ":7000",
            "::1:7000",
            "http://a:7000",
            "a..b:1",
            "-a:1",
            "0.0.0.0:7000",
        ] {
            assert!(
                matches!(Seed::parse(bad), Err(ConfigError::Invalid { field: "join", .. })),
                "{bad} accepted"
            );
        }
    }

    #[tokio::test]
    async fn a_seed_name_resolves() {
        let addrs = Seed::parse("localhost:7000").unwrap().resolve().await.unwrap();
        assert!(
            !addrs.is_empty() && addrs.iter().all(|a| a.ip().is_loopback() && a.port() == 7000),
            "{addrs:?}"
        );
    }

    #[test]
    fn a_short_or_missing_secret_is_refused() {
        let mut r = raw(NodeArgs::default());
        r.env_secret = Some(Secret(Vec::new()));
        assert!(r.validate().unwrap_err().to_string().contains("at least 16 bytes"));
        let mut r = raw(NodeArgs::default());
        r.env_secret = None;
        assert!(matches!(r.validate(), Err(ConfigError::Missing { field: "secret", .. })));
    }

    #[test]
    fn the_example_config_parses_and_validates() {
        let file: FileConfig = toml::from_str(include_str!("../../deploy/beehive.toml")).unwrap();
        assert_eq!(file.secret_file.as_deref(), Some(Path::new("/etc/beehive/secret")));
        let file = FileConfig { secret_file: None, ..file };
        let c =
            RawConfig { args: NodeArgs::default(), file, env_secret: Some(Secret(vec![1; 16])) }
                .validate()
                .unwrap();
        assert_eq!(c.admin, DEFAULT_ADMIN);
        assert_eq!(c.max_body_bytes, DEFAULT_MAX_BODY_BYTES);
    }

    #[test]
    fn flags_override_the_file() {
        let file: FileConfig = toml::from_str(
            "rpc = \"127.0.0.1:7100\"\nmode = \"chord\"\n[intervals]\nstabilize_ms = 250\n\
             [origins]\nsite1 = \"http://127.0.0.1:9000\"\n",
        )
        .unwrap();
        let args = NodeArgs { mode: Some("passive".into()), ..Default::default() };
        let c = RawConfig { args, file, env_secret: Some(Secret(vec![1; 16])) }.validate().unwrap();
        assert_eq!(c.rpc.port(), 7100);
        assert_eq!(c.mode, Mode::Passive);
        assert_eq!(c.chord.stabilize_interval, Duration::from_millis(250));
        assert_eq!(c.origins["site1"], Origin { host: "127.0.0.1".into(), port: 9000 });
        assert!(toml::from_str::<FileConfig>("rcp = \"x\"").is_err(), "typos are refused");
    }
}
