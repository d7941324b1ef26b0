//! `beehive sim`: runs the standard scenario and prints a table, optionally a JSON report.

use crate::experiment;
use anyhow::{Context, Result};
use beehive_replication::config::Mode;
use beehive_replication::sim::{self, Catalog, Churn, Progress, SimConfig};
use clap::Args;
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::{Duration, Instant};

#[derive(Debug, Args)]
pub struct SimArgs {
    /// Number of nodes in the ring.
    #[arg(long, default_value_t = 1024)]
    nodes: usize,
    /// Seed for every random choice; the same seed replays the same run.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Length of the measured phase, in virtual seconds.
    #[arg(long, default_value_t = 100.0)]
    duration: f64,
    /// Settling time after the last join, in virtual seconds.
    #[arg(long, default_value_t = 60.0)]
    warmup: f64,
    /// Time between successive joins while the ring is built, in virtual milliseconds.
    #[arg(long, default_value_t = 50.0)]
    join_spacing_ms: f64,
    /// Skip the join phase: start from a converged ring (for steady-state costs at large N).
    #[arg(long)]
    converged_start: bool,
    /// Churn: node arrivals per second, each with a random node crash (0 = none).
    #[arg(long, default_value_t = 0.0)]
    churn: f64,
    /// Probability that any message is lost.
    #[arg(long, default_value_t = 0.0)]
    loss: f64,
    /// Lookups per node per second during the measured phase.
    #[arg(long, default_value_t = 1.0)]
    lookup_rate: f64,
    /// Reporting interval, in virtual seconds.
    #[arg(long, default_value_t = 10.0)]
    interval: f64,
    /// Successor-list length.
    #[arg(long, default_value_t = 8)]
    successors: usize,
    /// Write the full report as JSON to this path.
    #[arg(long)]
    json: Option<PathBuf>,
    /// An object workload of this many objects (Zipf requests through the replication
    /// layer); 0 looks up random keys instead.
    #[arg(long, default_value_t = 0)]
    objects: usize,
    /// Zipf α of the object requests.
    #[arg(long, default_value_t = 0.91)]
    alpha: f64,
    /// Replication mode: chord (home only), passive (path caching) or beehive. Default:
    /// beehive with `--objects`, chord (no replication traffic) without.
    #[arg(long)]
    mode: Option<Mode>,
    /// Beehive's target average lookup cost C, in hops.
    #[arg(long, default_value_t = 1.0)]
    target_hops: f64,
    /// Instead of C: objects stored per node; the leader solves for the smallest C that fits.
    #[arg(long)]
    budget: Option<f64>,
    /// Replication (counting, aggregation, pull) interval, in virtual seconds.
    #[arg(long, default_value_t = 10.0)]
    replication_interval: f64,
    /// Reverse the popularity order this many seconds into the measured phase.
    #[arg(long)]
    reverse_at: Option<f64>,
    /// Run a named experiment instead of one run. `paper`: the Beehive paper's comparison
    /// (chord, passive, beehive at C and C/2; same seed; converged start; 40 960 objects
    /// unless --objects says otherwise).
    #[arg(long, value_parser = ["paper"])]
    experiment: Option<String>,
    /// With --experiment: write the SVG plot here.
    #[arg(long, default_value = "paper.svg")]
    plot: PathBuf,
    /// No transparent huge pages for this process: 13 % less memory for up to 9 % more CPU
    /// (docs/experiments.md), what lets N = 16 384 fit in 24 GB. Linux only.
    #[arg(long)]
    no_huge_pages: bool,
}

fn secs(name: &str, s: f64) -> Result<Duration> {
    Duration::try_from_secs_f64(s)
        .map_err(|_| anyhow::anyhow!("--{name} must be a non-negative number of seconds, got {s}"))
}

impl SimArgs {
    fn config(&self) -> Result<SimConfig> {
        let mut cfg = SimConfig {
            seed: self.seed,
            nodes: self.nodes,
            loss: self.loss,
            lookup_rate: self.lookup_rate,
            duration: secs("duration", self.duration)?,
            warmup: secs("warmup", self.warmup)?,
            join_spacing: secs("join-spacing-ms", self.join_spacing_ms / 1000.0)?,
            converged_start: self.converged_start,
            interval: secs("interval", self.interval)?,
            churn: (self.churn != 0.0).then_some(Churn { rate: self.churn }),
            ..SimConfig::default()
        };
        cfg.chord.successors = self.successors;
        let r = &mut cfg.chord.replication;
        let default_mode = if self.objects > 0 { Mode::Beehive } else { Mode::Chord };
        r.mode = self.mode.unwrap_or(default_mode);
        r.target_hops = self.target_hops;
        r.budget = self.budget;
        r.interval = secs("replication-interval", self.replication_interval)?;
        if self.objects > 0 {
            cfg.catalog =
                Some(Catalog { objects: self.objects, alpha: self.alpha, ..Catalog::default() });
        }
        cfg.reverse_at = self.reverse_at.map(|t| secs("reverse-at", t)).transpose()?;
        cfg.validate().context("bad simulation settings")?;
        Ok(cfg)
    }
}

pub fn run(args: SimArgs) -> Result<()> {
    if args.no_huge_pages {
        no_huge_pages()?;
    }
    if args.experiment.is_some() {
        return paper(args);
    }
    let cfg = args.config()?;
    println!("beehive sim: seed {} (rerun with --seed {} to replay this run)", cfg.seed, cfg.seed);
    let bar = progress_bar();
    let started = Instant::now();
    let report = sim::run(&cfg, |p: Progress| show(&bar, "", p))?;
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    let wall = started.elapsed();
    print!("{}", report.table());
    println!("wall time {:.2} s", wall.as_secs_f64());
    if let Some(path) = &args.json {
        let mut json = serde_json::to_value(&report)?;
        json["wall_time_s"] = serde_json::json!(wall.as_secs_f64());
        std::fs::write(path, serde_json::to_vec_pretty(&json)?)
            .with_context(|| format!("writing the JSON report to {}", path.display()))?;
        println!("report written to {}", path.display());
    }
    Ok(())
}

/// The allocator asks for huge pages, which the kernel fills only partly when a run holds
/// many small tables; from here on it gets 4 KiB pages.
#[cfg(target_os = "linux")]
fn no_huge_pages() -> Result<()> {
    rustix::thread::disable_transparent_huge_pages(true)
        .context("--no-huge-pages: prctl(PR_SET_THP_DISABLE) failed")
}

#[cfg(not(target_os = "linux"))]
fn no_huge_pages() -> Result<()> {
    anyhow::bail!("--no-huge-pages needs Linux")
}

/// A progress bar on a terminal, nothing otherwise.
fn progress_bar() -> Option<ProgressBar> {
    std::io::stderr().is_terminal().then(new_bar)
}

fn new_bar() -> ProgressBar {
    let bar = ProgressBar::new(1000);
    bar.set_style(
        ProgressStyle::with_template("{spinner} {msg:>36} [{bar:40}] {percent:>3}%  {elapsed}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar
}

/// On a terminal, the bar; elsewhere (a run under nohup, a CI log) a line on stderr per
/// measured interval, so that a long run shows how far it has got.
fn show(bar: &Option<ProgressBar>, label: &str, p: Progress) {
    match bar {
        Some(bar) => {
            bar.set_message(format!("{label} {} (t={:.0}s)", p.phase, p.now_s));
            bar.set_position((p.done * 1000.0) as u64);
        }
        None if p.phase == "measuring" => {
            let who = if label.is_empty() { "beehive sim" } else { label };
            eprintln!("{who}: {:.0} % measured (virtual time {:.0} s)", p.done * 100.0, p.now_s);
        }
        None => {}
    }
}

/// `--experiment paper`.
fn paper(args: SimArgs) -> Result<()> {
    let mut cfg = args.config()?;
    cfg.converged_start = true;
    if cfg.catalog.is_none() {
        cfg.catalog = Some(Catalog { alpha: args.alpha, ..Catalog::default() });
    }
    cfg.validate().context("bad simulation settings")?;
    println!("beehive sim --experiment paper: seed {} (four runs, same seed)", cfg.seed);
    // One bar per run; a run waits for a free core (`experiment::run`).
    let bars = std::io::stderr().is_terminal().then(|| {
        let multi = MultiProgress::new();
        let bars: Vec<_> = (0..4).map(|_| multi.add(new_bar())).collect();
        bars.iter().for_each(|b| b.set_message("waiting for a core"));
        (multi, bars)
    });
    let runs = experiment::run(&cfg, |i, label, p| {
        show(&bars.as_ref().and_then(|(_, b)| b.get(i).cloned()), label, p)
    })?;
    if let Some((multi, _)) = bars {
        multi.clear().ok();
    }
    print!("{}", experiment::table(&cfg, &runs));
    experiment::plot(&args.plot, &runs)
        .with_context(|| format!("writing the plot to {}", args.plot.display()))?;
    println!("plot written to {}", args.plot.display());
    if let Some(path) = &args.json {
        let json = serde_json::json!({
            "runs": runs,
            "intervals": runs.iter().map(|r| (&r.label, &r.report.intervals)).collect::<Vec<_>>(),
        });
        std::fs::write(path, serde_json::to_vec_pretty(&json)?)
            .with_context(|| format!("writing the JSON report to {}", path.display()))?;
        println!("report written to {}", path.display());
    }
    Ok(())
}
