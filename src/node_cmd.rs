//! `beehive node`: validates the configuration (exit code 2 with a message that says what to
//! fix), sets up logging, and runs the node on a tokio runtime until SIGTERM.

use anyhow::{Context, Result};
use beehive::node::config::{NodeArgs, RawConfig};

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
    let config = RawConfig::load(args)
        .and_then(RawConfig::validate)
        .map_err(|e| BadConfig(format!("bad configuration: {e}")))?;
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
