//! `beehive node` settings. Each one is declared once, in [`Settings`], which is both the
//! flags (with their `BEEHIVE_*` variables) and the TOML file; its defaults are the config
//! types' own. Layers, lowest first: those defaults, the file, the environment, the flags
//! ([`RawConfig::validate`]); errors name the setting and say what to put there instead.
//!
//! The cluster secret is only ever read from a file or from `BEEHIVE_SECRET`, never from the
//! TOML file itself, and never printed: the `Debug` of [`Secret`] is redacted.

mod error;
mod node;
mod seed;
pub mod settings;

pub use error::ConfigError;
pub use node::{Mode, NodeConfig, Secret, DEFAULT_ADMIN, DEFAULT_RPC, MIN_SECRET_LEN};
pub use seed::Seed;
pub use settings::{Intervals, Settings};

use clap::Args;
use error::invalid;
use std::path::{Path, PathBuf};

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
    use beehive_proxy::ProxyConfig;
    use beehive_replication::ChordConfig;
    use clap::Parser;
    use std::time::Duration;

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
