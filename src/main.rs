//! The `beehive` command: one binary for every role.

mod demo;
mod experiment;
mod loadgen_cmd;
mod node_cmd;
mod origin_cmd;
mod sim_cmd;

use clap::{Parser, Subcommand};

/// mimalloc rather than glibc malloc: a hit allocates and frees a few small blocks, and
/// glibc kept resizing its per-thread heap under that churn (see docs/experiments.md).
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// beehive — a content distribution network on a Chord ring with Beehive replication.
#[derive(Debug, Parser)]
#[command(version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Start the built-in origin and a local ring, drive a load through it, and report.
    Demo(Box<demo::DemoArgs>),
    /// Run the deterministic simulator: thousands of nodes on a virtual clock.
    Sim(Box<sim_cmd::SimArgs>),
    /// Run one live node: join the ring, serve RPC and the admin listener until SIGTERM.
    Node(Box<beehive::node::config::NodeArgs>),
    /// Run the built-in demo origin: deterministic objects at /o/<i>, request counts at /stats.
    Origin(Box<origin_cmd::OriginArgs>),
    /// Drive a Zipf load at one or more nodes and report latency, hops and origin offload.
    Loadgen(Box<loadgen_cmd::LoadgenArgs>),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Demo(args) => demo::run(*args),
        Command::Sim(args) => sim_cmd::run(*args),
        Command::Node(args) => node_cmd::run(*args),
        Command::Origin(args) => origin_cmd::run(*args),
        Command::Loadgen(args) => loadgen_cmd::run(*args),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            // 2: the command line or configuration is wrong (as clap's own errors);
            // 1: the node failed while running.
            let bad_config = e.downcast_ref::<node_cmd::BadConfig>().is_some()
                || e.downcast_ref::<beehive::node::NodeError>().is_none();
            std::process::ExitCode::from(if bad_config { 2 } else { 1 })
        }
    }
}
