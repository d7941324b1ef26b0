//! `beehive origin`: the built-in demo origin on a socket, until SIGTERM or SIGINT.
//!
//! Prints one line, `listening http=ADDR`, on stdout once the socket is bound (tests and scripts
//! read it), then serves. Bad arguments exit 2 with a message saying what to fix.

use anyhow::{Context, Result};
use beehive_loadgen::origin::{self, OriginConfig, SizeMix};
use clap::Args;
use std::io::Write;
use std::net::SocketAddr;

/// Serve `--objects` deterministic objects at /o/<i>, plus /stats, for demos and tests.
#[derive(Debug, Args)]
pub struct OriginArgs {
    /// Address to listen on (port 0 picks a free one; the line on stdout tells which).
    #[arg(long, default_value = "127.0.0.1:9000")]
    pub listen: SocketAddr,
    /// Number of objects, served at /o/0 .. /o/<objects-1>.
    #[arg(long, default_value_t = 1000)]
    pub objects: u64,
    /// Object size in bytes (the base size under --size-mix mixed).
    #[arg(long, default_value_t = 4096)]
    pub size: u64,
    /// small: every object is --size bytes; mixed: 60 % size/4, 30 % size, 10 % size*8.
    #[arg(long, default_value = "small", value_parser = ["small", "mixed"])]
    pub size_mix: String,
    /// Cache-Control max-age of every object, in seconds.
    #[arg(long, default_value_t = 300)]
    pub max_age: u64,
    /// Content seed: origins with the same seed serve the same bytes.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

pub fn run(args: OriginArgs) -> Result<()> {
    let config = OriginConfig {
        objects: args.objects,
        size: args.size,
        size_mix: if args.size_mix == "mixed" { SizeMix::Mixed } else { SizeMix::Small },
        max_age: args.max_age,
        seed: args.seed,
    };
    config.validate()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the tokio runtime")?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(args.listen)
            .await
            .with_context(|| format!("cannot listen on {}", args.listen))?;
        let addr = listener.local_addr()?;
        let mut stdout = std::io::stdout();
        writeln!(stdout, "listening http={addr}")?;
        stdout.flush()?;
        origin::serve(config, listener, shutdown_signal()).await?;
        Ok(())
    })
}

/// Completes on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}
