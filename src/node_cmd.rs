//! `beehive node`: validates the configuration (exit code 2 with a message that says what to
//! fix), sets up logging, and runs the node on a tokio runtime until SIGTERM. With `--check`
//! it prints the effective settings instead of running.

use anyhow::{Context, Result};
use beehive::node::config::{NodeArgs, RawConfig, Settings};

/// A configuration the node refused to start with.
#[derive(Debug)]
pub struct BadConfig(pub String);

impl std::fmt::Display for BadConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl std::error::Error for BadConfig {}

pub fn run(args: NodeArgs) -> Result<()> {
    let check = args.check;
    let config = RawConfig::load(args)
        .and_then(RawConfig::validate)
        .map_err(|e| BadConfig(format!("bad configuration: {e}")))?;
    if check {
        // A complete config file: defaults, file, environment and flags laid over each other.
        println!("# beehive node: the configuration is valid; the effective settings are");
        println!("# (secret: {} bytes, never printed)", config.secret.expose().len());
        print!("{}", Settings::of(&config).to_toml());
        return Ok(());
    }
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    tracing::info!(?config, "configuration");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the tokio runtime")?;
    runtime.block_on(beehive::node::run(config))?;
    // Connection tasks may still be parked on sockets; do not wait for them.
    runtime.shutdown_timeout(std::time::Duration::from_millis(100));
    Ok(())
}
