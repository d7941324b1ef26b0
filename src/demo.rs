//! `beehive demo`: the README's main job. Starts the built-in origin and a local ring of
//! nodes (real child processes on loopback), warms the cache, drives a Zipf load through every
//! node with a popularity reversal halfway, prints the report, and stops every child by PID.
//! `--compare` does it once per mode (same seed, fresh cluster each) and prints one table.
//! Every node gets the same store budget (objects), so the modes compare at equal storage:
//! passive caching evicts its least recently used copies, Beehive picks the C that fits.

use anyhow::{bail, Context, Result};
use beehive::launch::{self, Proc};
use beehive_loadgen::{compare_table, LoadConfig, LoopMode, Phases, Report, Workload};
use clap::Args;
use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// The CDN name the demo's origin is reached by.
const SITE: &str = "site.beehive.localhost";
/// The ring must form within this bound.
const RING_BOUND: Duration = Duration::from_secs(30);

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Nodes in the local ring.
    #[arg(long, default_value_t = 8)]
    pub nodes: usize,
    /// Replication mode: chord, passive or beehive.
    #[arg(long, default_value = "beehive")]
    pub mode: String,
    /// Run chord, passive and beehive one after the other (same seed) and compare them.
    #[arg(long)]
    pub compare: bool,
    /// Measured load per mode, in seconds (the popularity reversal comes halfway).
    #[arg(long, default_value_t = 20)]
    pub duration: u64,
    /// Warm-up before the measured load, in seconds: fills the caches and lets the
    /// replication levels settle.
    #[arg(long, default_value_t = 10)]
    pub warmup: u64,
    /// Objects at the origin (M).
    #[arg(long, default_value_t = 1000)]
    pub objects: u64,
    /// Object size in bytes.
    #[arg(long, default_value_t = 2048)]
    pub size: u64,
    /// Zipf exponent of the workload.
    #[arg(long, default_value_t = 0.91)]
    pub alpha: f64,
    /// Concurrent clients (closed loop).
    #[arg(long, default_value_t = 32)]
    pub concurrency: usize,
    /// Replication interval in milliseconds (short, so the demo converges in seconds; a
    /// deployment uses 10 s).
    #[arg(long, default_value_t = 1000)]
    pub replication_ms: u64,
    /// Beehive's target average hops C (used with --budget 0 only: a budget sets C).
    #[arg(long, default_value_t = 1.0)]
    pub target_hops: f64,
    /// Objects each node may store, its own and copies, in every mode (equal storage).
    /// Default: objects/nodes + objects/8, room for about one in eight objects as copies.
    /// 0: no budget (passive caching then keeps every object it passes for its TTL).
    #[arg(long, value_name = "OBJECTS")]
    pub budget: Option<u64>,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Write the report(s) as JSON (the loadgen's schema; an array of {mode, report} with
    /// --compare).
    #[arg(long, value_name = "PATH")]
    pub json: Option<PathBuf>,
    /// Write an SVG plot of hops, latency and throughput over time.
    #[arg(long, value_name = "PATH")]
    pub plot: Option<PathBuf>,
    /// Keep the (last) cluster running after the report until Ctrl-C, to browse the
    /// dashboard.
    #[arg(long)]
    pub keep: bool,
}

/// One local cluster: the origin and the nodes, stopped (by PID) when dropped.
struct Cluster {
    origin: Proc,
    nodes: Vec<Proc>,
    http: Vec<SocketAddr>,
    admin: Vec<SocketAddr>,
}

impl Cluster {
    fn start(args: &DemoArgs, mode: &str, logs: &std::path::Path) -> Result<Cluster> {
        let exe = std::env::current_exe().context("cannot find the beehive executable")?;
        let origin = Proc::spawn(
            &exe,
            "origin",
            &[
                "origin".into(),
                "--listen".into(),
                "127.0.0.1:0".into(),
                "--objects".into(),
                args.objects.to_string(),
                "--size".into(),
                args.size.to_string(),
            ],
            &[],
            logs.join(format!("{mode}-origin.log")),
        )?;
        let origin_addr = origin.addr("http")?;
        let secret = format!("demo secret {:032x}", rand::random::<u128>());
        let budget = budget(args);
        let mut nodes: Vec<Proc> = Vec::new();
        for i in 0..args.nodes {
            let mut node_args: Vec<String> = [
                "node",
                "--rpc",
                "127.0.0.1:0",
                "--admin",
                "127.0.0.1:0",
                "--http",
                "127.0.0.1:0",
                "--stabilize-ms",
                "200",
                "--fix-fingers-ms",
                "200",
                "--check-predecessor-ms",
                "500",
            ]
            .iter()
            .map(|s| s.to_string())
            .collect();
            node_args.extend([
                // Every demo client comes from 127.0.0.1: no per-client limit.
                "--rate-per-sec".into(),
                "1000000".into(),
                // r = log2 N, as Chord suggests: a successor list as long as the ring would
                // make every lookup one hop and leave nothing for replication to save.
                "--successors".into(),
                successors(args.nodes).to_string(),
                "--mode".into(),
                mode.into(),
                "--target-hops".into(),
                args.target_hops.to_string(),
                "--replication-ms".into(),
                args.replication_ms.to_string(),
                "--origin".into(),
                format!("site=http://{origin_addr}"),
            ]);
            if budget > 0 {
                node_args.extend(["--budget".into(), budget.to_string()]);
            }
            if let Some(first) = nodes.first() {
                node_args.extend(["--join".into(), first.addr("rpc")?.to_string()]);
            }
            let env = [("BEEHIVE_SECRET", secret.as_str()), ("RUST_LOG", "warn")];
            let log = logs.join(format!("{mode}-node{i}.log"));
            nodes.push(Proc::spawn(&exe, &format!("node {i}"), &node_args, &env, log)?);
        }
        let http = nodes.iter().map(|n| n.addr("http")).collect::<Result<Vec<_>, _>>()?;
        let admin = nodes.iter().map(|n| n.addr("admin")).collect::<Result<Vec<_>, _>>()?;
        Ok(Cluster { origin, nodes, http, admin })
    }

    fn stop(mut self) {
        for n in &mut self.nodes {
            n.stop();
        }
        self.origin.stop();
    }

    fn load(&self, args: &DemoArgs, duration: Duration, phases: Phases) -> Result<LoadConfig> {
        let config = LoadConfig {
            targets: self.http.iter().map(|a| format!("http://{a}")).collect(),
            host: Some(SITE.to_string()),
            workload: Workload::Zipf { alpha: args.alpha },
            objects: args.objects,
            mode: LoopMode::Closed { concurrency: args.concurrency },
            duration: Some(duration),
            requests: None,
            seed: args.seed,
            phases,
            origin_stats: Some(format!("http://{}/stats", self.origin.addr("http")?)),
            // Every body is checked against the origin's: the table shows the wrong ones.
            verify: true,
            ..LoadConfig::default()
        };
        config.validate()?;
        Ok(config)
    }
}

/// What the nodes' `/stats` say about storage, summed or averaged over the ring.
struct Storage {
    /// Objects stored per node, home objects and copies.
    stored: f64,
    /// Objects per node past what the budget allows a node: the larger of the budget and its
    /// own objects (a node must keep those, and on an uneven ring some own more).
    over_budget: f64,
    /// Bodies copied between nodes so far (replica and cache fetches).
    copied: u64,
}

fn storage(admins: &[SocketAddr], budget: u64) -> Result<Storage> {
    let (mut stored, mut over, mut copied) = (0u64, 0u64, 0u64);
    for a in admins {
        let (status, body) =
            launch::http(*a, "GET", "/stats", b"").with_context(|| format!("{a}: no /stats"))?;
        if status != 200 {
            bail!("{a}: /stats answered {status}");
        }
        let v: serde_json::Value = serde_json::from_str(&body)?;
        let n = |path: &[&str]| path.iter().fold(&v, |v, k| &v[*k]).as_u64().unwrap_or(0);
        let own = n(&["store", "home_objects"]);
        let here = own + n(&["store", "replica_objects"]);
        stored += here;
        if budget > 0 {
            over += here.saturating_sub(budget.max(own));
        }
        copied += n(&["replication", "fetches"]);
    }
    let per_node = |x: u64| x as f64 / admins.len().max(1) as f64;
    Ok(Storage { stored: per_node(stored), over_budget: per_node(over), copied })
}

/// The per-node object budget: as given, else objects/nodes + objects/8 (0: none).
fn budget(args: &DemoArgs) -> u64 {
    args.budget.unwrap_or(args.objects / args.nodes.max(1) as u64 + args.objects / 8)
}

/// The successor-list length for a ring of `n`: ⌈log2 n⌉, at least 2.
fn successors(n: usize) -> usize {
    (usize::BITS - n.saturating_sub(1).leading_zeros()).max(2) as usize
}

pub fn run(args: DemoArgs) -> Result<()> {
    let modes: Vec<String> = if args.compare {
        vec!["chord".into(), "passive".into(), "beehive".into()]
    } else {
        vec![args.mode.clone()]
    };
    for m in &modes {
        if !matches!(m.as_str(), "chord" | "passive" | "beehive") {
            bail!("invalid --mode {m:?}: use one of chord, passive, beehive");
        }
    }
    if args.nodes == 0 || args.nodes > 64 {
        bail!("invalid --nodes {}: run between 1 and 64 local nodes", args.nodes);
    }
    if args.duration < 2 {
        bail!("invalid --duration {}: at least 2 seconds", args.duration);
    }
    let logs = std::env::temp_dir().join(format!("beehive-demo-{}", std::process::id()));
    std::fs::create_dir_all(&logs)
        .with_context(|| format!("cannot create log directory {}", logs.display()))?;
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    let progress = std::io::stderr().is_terminal();
    println!(
        "beehive demo: {} nodes, {} objects of {} B, Zipf α = {}, {} clients; replication \
         interval {} ms (shortened from the 10 s default so the demo converges in seconds)",
        args.nodes, args.objects, args.size, args.alpha, args.concurrency, args.replication_ms
    );
    let budget = budget(&args);
    match budget {
        0 => println!("no store budget: passive caches keep every object they pass"),
        b => println!("store budget: {b} objects per node in every mode (its own and copies)"),
    }
    println!("logs: {}", logs.display());
    let started = Instant::now();
    let mut reports: Vec<(String, Report)> = Vec::new();
    let mut kept = None;
    for (i, mode) in modes.iter().enumerate() {
        let cluster = Cluster::start(&args, mode, &logs)?;
        let took = launch::wait_for_ring(&cluster.admin, RING_BOUND)?;
        println!(
            "\n== {mode}: ring of {} formed in {:.1} s; dashboard http://{}/dashboard",
            args.nodes,
            took.as_secs_f64(),
            cluster.admin[0]
        );
        if args.warmup > 0 {
            println!("warming up for {} s (not measured)...", args.warmup);
            let warm = cluster.load(&args, Duration::from_secs(args.warmup), Phases::default())?;
            runtime.block_on(beehive_loadgen::run(&warm, false))?;
        }
        let half = Duration::from_secs(args.duration) / 2;
        println!("measuring for {} s; popularity reverses at {} s", args.duration, half.as_secs());
        let phases = Phases { reverse_at: Some(half), ..Phases::default() };
        let load = cluster.load(&args, Duration::from_secs(args.duration), phases)?;
        let before = storage(&cluster.admin, budget)?;
        let mut report = runtime.block_on(beehive_loadgen::run(&load, progress))?;
        let after = storage(&cluster.admin, budget)?;
        report.summary.stored_per_node = Some(after.stored);
        report.summary.over_budget_per_node = Some(after.over_budget);
        report.summary.copied = Some(after.copied.saturating_sub(before.copied));
        report.print_table(&mut std::io::stdout())?;
        let past = match budget {
            0 => String::new(),
            _ => format!(" ({:.1} past the budget)", after.over_budget),
        };
        println!(
            "stored: {:.0} objects per node{past}; copied: {} bodies between nodes while measured",
            after.stored,
            report.summary.copied.unwrap_or(0)
        );
        reports.push((mode.clone(), report));
        if args.keep && i + 1 == modes.len() {
            kept = Some(cluster);
        } else {
            cluster.stop();
        }
    }
    if reports.len() > 1 {
        let runs: Vec<(&str, &Report)> = reports.iter().map(|(m, r)| (m.as_str(), r)).collect();
        println!("\n{}", compare_table(&runs));
    }
    if let Some(path) = &args.json {
        let text = if reports.len() == 1 {
            serde_json::to_string_pretty(&reports[0].1)?
        } else {
            let runs: Vec<serde_json::Value> = reports
                .iter()
                .map(|(m, r)| serde_json::json!({ "mode": m, "report": r }))
                .collect();
            serde_json::to_string_pretty(&runs)?
        };
        std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))?;
        println!("JSON report: {}", path.display());
    }
    if let Some(path) = &args.plot {
        let runs: Vec<(&str, &Report)> = reports.iter().map(|(m, r)| (m.as_str(), r)).collect();
        beehive_loadgen::plot::write_svg(&runs, path)?;
        println!("plot: {}", path.display());
    }
    println!("demo finished in {:.0} s", started.elapsed().as_secs_f64());
    if let Some(cluster) = kept {
        println!(
            "cluster still running: dashboard http://{}/dashboard, CDN http://{SITE}:{}/o/0 \
             — Ctrl-C to stop",
            cluster.admin[0],
            cluster.http[0].port()
        );
        runtime.block_on(async {
            let _ = tokio::signal::ctrl_c().await;
        });
        cluster.stop();
    }
    Ok(())
}
