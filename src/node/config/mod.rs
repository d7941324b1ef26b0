//! `beehive node` settings. Each one is declared once, in [`Settings`], which is both the
//! flags (with their `BEEHIVE_*` variables) and the TOML file; its defaults are the config
//! types' own. Layers, lowest first: those defaults, the file, the environment, the flags
//! ([`RawConfig::validate`]); errors name the setting and say what to put there instead.
//!
//! The cluster secret is only ever read from a file or from `BEEHIVE_SECRET`, never from the
//! TOML file itself, and never printed: the `Debug` of [`Secret`] is redacted.

mod seed;
pub mod settings;

pub use seed::Seed;
pub use settings::{Intervals, Settings};

use beehive_proxy::ProxyConfig;
use beehive_replication::ChordConfig;
use clap::Args;
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

/// `beehive node`: the settings, plus where the file is and whether only to check.
#[derive(Debug, Default, Args)]
pub struct NodeArgs {
    /// TOML configuration file (see deploy/beehive.toml for every key).
    #[arg(long, value_name = "PATH", env = "BEEHIVE_CONFIG")]
    pub config: Option<PathBuf>,
    /// Validate the configuration, print the effective settings as TOML, and exit.
    #[arg(long)]
    pub check: bool,
    #[command(flatten)]
    pub settings: Settings,
}

/// Which replication the node runs (docs/replication.md, "Baselines"); the core's own setting.
pub use beehive_replication::config::Mode;

/// The cluster secret. Its `Debug` never shows it.
#[derive(Clone, PartialEq, Eq, Default)]
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

/// A validated node configuration: the node's own settings around the core's
/// [`ChordConfig`] and the HTTP face's [`ProxyConfig`], which hold the rest.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    pub http: Option<SocketAddr>,
    pub rpc: SocketAddr,
    pub admin: SocketAddr,
    /// `None`: advertise the bound RPC address (only allowed for a specific IP).
    pub advertise: Option<SocketAddr>,
    pub join: Vec<Seed>,
    pub secret: Secret,
    /// Ring, replication mode, C, budget and every period.
    pub chord: ChordConfig,
    /// The HTTP face; its `max_object_bytes` is also the cap on a body moved between nodes
    /// (an object the ring cannot carry in one frame is passed to the origin instead).
    pub proxy: ProxyConfig,
    pub shutdown_bound: Duration,
}

impl Default for NodeConfig {
    fn default() -> Self {
        NodeConfig {
            http: None,
            rpc: DEFAULT_RPC,
            admin: DEFAULT_ADMIN,
            advertise: None,
            join: Vec::new(),
            secret: Secret::default(),
            chord: ChordConfig::default(),
            proxy: ProxyConfig::default(),
            shutdown_bound: Duration::from_secs(5),
        }
    }
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

/// Every source, before validation.
#[derive(Debug, Default)]
pub struct RawConfig {
    /// The flags, with the environment variables clap already read under them.
    pub args: NodeArgs,
    pub file: Settings,
    /// `BEEHIVE_SECRET`, if set.
    pub env_secret: Option<Secret>,
    /// `BEEHIVE_ADMIN_TOKEN`, if set and not empty.
    pub env_admin_token: Option<String>,
}

impl RawConfig {
    /// Reads the config file named by the flags (if any) and the environment-only values.
    pub fn load(args: NodeArgs) -> Result<Self, ConfigError> {
        let file = match &args.config {
            Some(path) => read_file(path)?,
            None => Settings::default(),
        };
        let env_secret =
            std::env::var_os("BEEHIVE_SECRET").map(|s| Secret(s.as_encoded_bytes().to_vec()));
        let env_admin_token = std::env::var("BEEHIVE_ADMIN_TOKEN").ok().filter(|t| !t.is_empty());
        Ok(RawConfig { args, file, env_secret, env_admin_token })
    }

    /// Lays the file, then the flags, over the defaults, and checks the result.
    pub fn validate(self) -> Result<NodeConfig, ConfigError> {
        let RawConfig { args, file, env_secret, env_admin_token } = self;
        let secret_file = args.settings.secret_file.clone().or(file.secret_file.clone());
        let mut c = NodeConfig::default();
        file.apply(&mut c)?;
        args.settings.apply(&mut c)?;
        c.secret = secret(secret_file, env_secret)?;
        c.proxy.admin_token = env_admin_token;
        c.check()?;
        Ok(c)
    }
}

impl NodeConfig {
    /// The checks that involve more than one setting.
    fn check(&self) -> Result<(), ConfigError> {
        let listeners = [("rpc", Some(self.rpc)), ("admin", Some(self.admin)), ("http", self.http)];
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
        match self.advertise {
            Some(a) if a.ip().is_unspecified() || a.port() == 0 => {
                return Err(invalid(
                    "advertise",
                    a,
                    "give the specific IP and port other nodes can reach this node at",
                ))
            }
            None if self.rpc.ip().is_unspecified() => {
                return Err(ConfigError::Missing {
                    field: "advertise",
                    fix: format!(
                        "rpc listens on {}, which names no single address; set --advertise \
                         to the IP:PORT other nodes reach this node at",
                        self.rpc
                    ),
                })
            }
            _ => {}
        }
        self.chord.validate().map_err(|e| invalid(e.field, "", e.reason))?;
        self.proxy.validate().map_err(|e| invalid("http", "", e.0))
    }
}

/// The file's settings; an unknown key is an error that names it and lists the known ones.
fn read_file(path: &Path) -> Result<Settings, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|source| ConfigError::ReadFile { path: path.to_owned(), source })?;
    toml::from_str(&text)
        .map_err(|e| ConfigError::ParseFile { path: path.to_owned(), message: e.to_string() })
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

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        args: NodeArgs,
    }

    fn parse(flags: &[&str]) -> Result<NodeArgs, clap::Error> {
        Cli::try_parse_from(std::iter::once("node").chain(flags.iter().copied())).map(|c| c.args)
    }

    fn raw(args: NodeArgs, file: Settings) -> RawConfig {
        RawConfig { args, file, env_secret: Some(Secret(vec![b'x'; 32])), env_admin_token: None }
    }

    fn err_field(flags: &[&str]) -> String {
        match raw(parse(flags).unwrap(), Settings::default()).validate().unwrap_err() {
            ConfigError::Invalid { field, .. } | ConfigError::Missing { field, .. } => {
                field.to_string()
            }
            e => panic!("unexpected {e}"),
        }
    }

    #[test]
    fn defaults_come_from_the_config_types() {
        let c = raw(NodeArgs::default(), Settings::default()).validate().unwrap();
        assert_eq!(c.rpc, DEFAULT_RPC);
        assert_eq!(c.chord.replication.mode, Mode::Beehive);
        let proxy = ProxyConfig::default();
        assert_eq!(c.proxy.rate_per_sec, proxy.rate_per_sec);
        assert_eq!(c.proxy.store_bytes, proxy.store_bytes);
        assert_eq!(c.chord.merge_interval, ChordConfig::default().merge_interval);
        assert!(!format!("{c:?}").contains("xxxx"), "secret leaked into Debug");
    }

    #[test]
    fn bad_values_name_their_setting() {
        for (flags, field) in [
            (&["--rpc", "0.0.0.0:7000"][..], "advertise"),
            (&["--target-hops", "0"], "target-hops"),
            (&["--budget", "0"], "budget"),
            (&["--stabilize-ms", "0"], "stabilize-ms"),
            (&["--join", "1.2.3.4:0"], "join"),
            (&["--admin", "127.0.0.1:7000"], "admin"),
            (&["--origin", "a=https://x"], "origin"),
            (&["--origin", "A B=http://x"], "origin"),
            (&["--max-body-bytes", "999999999999"], "max-body-bytes"),
            (&["--suffix", "a..b"], "suffix"),
        ] {
            assert_eq!(err_field(flags), field, "{flags:?}");
        }
        // Values of the wrong kind are refused while the flags are parsed, naming the flag.
        for (flag, value) in
            [("--rpc", "nope"), ("--mode", "pastry"), ("--budget", "0.5"), ("--budget", "lots")]
        {
            let e = parse(&[flag, value]).unwrap_err().to_string();
            assert!(e.contains(flag) && e.contains(value), "{e}");
        }
    }

    #[test]
    fn a_short_or_missing_secret_is_refused() {
        let mut r = raw(NodeArgs::default(), Settings::default());
        r.env_secret = Some(Secret(Vec::new()));
        assert!(r.validate().unwrap_err().to_string().contains("at least 16 bytes"));
        let mut r = raw(NodeArgs::default(), Settings::default());
        r.env_secret = None;
        assert!(matches!(r.validate(), Err(ConfigError::Missing { field: "secret", .. })));
    }

    #[test]
    fn the_example_config_parses_and_validates() {
        let file: Settings = toml::from_str(include_str!("../../../deploy/beehive.toml")).unwrap();
        assert_eq!(file.secret_file.as_deref(), Some(Path::new("/etc/beehive/secret")));
        let file = Settings { secret_file: None, ..file };
        let c = raw(NodeArgs::default(), file).validate().unwrap();
        assert_eq!(c.admin, DEFAULT_ADMIN);
        assert_eq!(c.proxy.max_object_bytes, ProxyConfig::default().max_object_bytes);
    }

    #[test]
    fn flags_override_the_file() {
        let file: Settings = toml::from_str(
            "rpc = \"127.0.0.1:7100\"\nmode = \"chord\"\nopen = true\n[intervals]\n\
             stabilize_ms = 250\n[origins]\nsite1 = \"http://127.0.0.1:9000\"\n",
        )
        .unwrap();
        let args = parse(&["--mode", "passive", "--open", "false", "--successors", "3"]).unwrap();
        let c = raw(args, file).validate().unwrap();
        assert_eq!(c.rpc.port(), 7100);
        assert_eq!(c.chord.replication.mode, Mode::Passive);
        assert!(!c.proxy.open_mode);
        assert_eq!(c.chord.successors, 3);
        assert_eq!(c.chord.stabilize_interval, Duration::from_millis(250));
        assert_eq!(c.proxy.origins["site1"], ("127.0.0.1".to_string(), 9000));
        assert!(parse(&["--open"]).unwrap().settings.open.unwrap());
    }

    #[test]
    fn unknown_keys_are_refused_by_name() {
        for text in ["rcp = \"127.0.0.1:1\"", "[intervals]\nstabilise_ms = 5"] {
            let e = toml::from_str::<Settings>(text).unwrap_err().to_string();
            assert!(e.contains("unknown field"), "{e}");
        }
    }

    /// What `--check` prints is a complete file that reads back to the same configuration.
    #[test]
    fn the_effective_settings_read_back() {
        let args = parse(&[
            "--join",
            "node1:7000,10.0.0.2:7000",
            "--origin",
            "site=http://10.0.0.9:9000",
            "--budget",
            "300",
            "--http",
            "127.0.0.1:8080",
        ])
        .unwrap();
        let c = raw(args, Settings::default()).validate().unwrap();
        let printed = Settings::of(&c).to_toml();
        let again: Settings = toml::from_str(&printed).unwrap();
        assert_eq!(again, Settings::of(&c), "{printed}");
        let c2 = raw(NodeArgs::default(), again).validate().unwrap();
        assert_eq!(Settings::of(&c2), Settings::of(&c));
        assert!(printed.contains("budget = 300") && printed.contains("[origins]"), "{printed}");
    }
}
