//! `beehive sim --experiment paper`: the Beehive paper's comparison in one command. The same
//! seed and workload run under `chord`, `passive` and `beehive` (at C and at C/2), and the
//! result is one table and one SVG plot of hops, storage and control traffic over time.

use anyhow::{Context, Result};
use beehive_loadgen::plot::{draw, Line, Panel};
use beehive_replication::config::Mode;
use beehive_replication::sim::{self, IntervalReport, Report, SimConfig};
use serde::Serialize;
use std::fmt::Write as _;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

/// The paper's figures for its workload (N = 1 024, M = 40 960, α = 0.91, C = 1), on Pastry.
const PAPER: [(&str, f64); 3] = [("Pastry", 2.34), ("PC-Pastry", 1.54), ("Beehive", 0.98)];

/// One run of the experiment.
#[derive(Debug, Serialize)]
pub struct Run {
    pub label: String,
    pub mode: Mode,
    pub target_hops: f64,
    /// Mean hops over the last quarter of the run (after convergence).
    pub final_hops: f64,
    pub mean_hops: f64,
    pub success_rate: f64,
    pub final_stored_per_node: f64,
    pub control_messages_per_node_per_interval: f64,
    pub control_bytes_per_node_per_interval: f64,
    pub wall_s: f64,
    #[serde(skip)]
    pub report: Report,
}

/// Runs every mode on `base` and returns the runs in the plan's order. `progress` gets each
/// run's index and label with its progress.
///
/// The runs share nothing, so they go on one worker thread per core, longest first: the
/// C/2 run keeps every copy of a ring replicated twice as widely and costs more than the
/// other three together at the paper's size. With a thread per run on two cores it shared
/// its core with the others for their whole length; here it has one to itself.
pub fn run(
    base: &SimConfig,
    progress: impl Fn(usize, &str, sim::Progress) + Sync,
) -> Result<Vec<Run>> {
    let c = base.chord.replication.target_hops;
    // Cheapest first: the workers take runs from the end.
    let plan = [
        (Mode::Chord, c, "chord".to_string()),
        (Mode::Passive, c, "passive".to_string()),
        (Mode::Beehive, c, format!("beehive C={c}")),
        (Mode::Beehive, c / 2.0, format!("beehive C={}", c / 2.0)),
    ];
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get()).min(plan.len());
    let next = AtomicUsize::new(0);
    let (plan, progress, next) = (&plan, &progress, &next);
    let mut runs: Vec<(usize, Result<Run>)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                scope.spawn(move || {
                    let mut mine = Vec::new();
                    let taken = || next.fetch_add(1, Ordering::Relaxed);
                    while let Some(i) = plan.len().checked_sub(1 + taken()) {
                        let (mode, target, label) = &plan[i];
                        let mut cfg = base.clone();
                        cfg.chord.replication.mode = *mode;
                        cfg.chord.replication.target_hops = *target;
                        mine.push((i, one_run(&cfg, label.clone(), |l, p| progress(i, l, p))));
                    }
                    mine
                })
            })
            .collect();
        let joined = handles.into_iter().map(|h| h.join());
        joined.collect::<Result<Vec<_>, _>>().map(|r| r.into_iter().flatten().collect())
    })
    .map_err(|_| anyhow::anyhow!("a simulation thread panicked"))?;
    runs.sort_by_key(|(i, _)| *i);
    runs.into_iter().map(|(_, run)| run).collect()
}

fn one_run(cfg: &SimConfig, label: String, progress: impl Fn(&str, sim::Progress)) -> Result<Run> {
    let started = Instant::now();
    let report =
        sim::run(cfg, |p| progress(&label, p)).with_context(|| format!("running {label}"))?;
    let wall_s = started.elapsed().as_secs_f64();
    let tail = &report.intervals[report.intervals.len() * 3 / 4..];
    let stats = |f: fn(&IntervalReport) -> f64| {
        report.intervals.iter().map(f).sum::<f64>() / report.intervals.len().max(1) as f64
    };
    Ok(Run {
        label,
        mode: cfg.chord.replication.mode,
        target_hops: cfg.chord.replication.target_hops,
        final_hops: hops_of(tail),
        mean_hops: report.mean_hops,
        success_rate: report.success_rate,
        final_stored_per_node: report
            .intervals
            .last()
            .and_then(|i| i.replication.as_ref())
            .map_or(0.0, |r| r.stored_per_node),
        control_messages_per_node_per_interval: stats(|i| {
            i.replication.as_ref().map_or(0.0, |r| r.control_messages_per_node)
        }),
        control_bytes_per_node_per_interval: stats(|i| {
            i.replication.as_ref().map_or(0.0, |r| r.control_bytes_per_node)
        }),
        wall_s,
        report,
    })
}

fn hops_of(intervals: &[IntervalReport]) -> f64 {
    let (h, n) = intervals.iter().fold((0u64, 0u64), |(h, n), i| {
        (h + i.lookups.hop_sum, n + i.lookups.ok + i.lookups.wrong)
    });
    h as f64 / n.max(1) as f64
}

/// The comparison table, with the paper's figures beside ours.
pub fn table(base: &SimConfig, runs: &[Run]) -> String {
    let mut s = String::new();
    let cat = base.catalog.unwrap_or_default();
    let _ = writeln!(
        s,
        "experiment paper: N = {}, M = {}, alpha = {}, {} lookups/node/s, {} s, seed {}",
        base.nodes,
        cat.objects,
        cat.alpha,
        base.lookup_rate,
        base.duration.as_secs_f64(),
        base.seed
    );
    let _ = writeln!(
        s,
        "{:<16} {:>10} {:>9} {:>9} {:>10} {:>12} {:>14} {:>8}",
        "run",
        "final hops",
        "all hops",
        "success",
        "stored/n",
        "ctl msg/n/iv",
        "ctl bytes/n/iv",
        "wall s"
    );
    for r in runs {
        let _ = writeln!(
            s,
            "{:<16} {:>10.3} {:>9.3} {:>8.2}% {:>10.1} {:>12.1} {:>14.0} {:>8.1}",
            r.label,
            r.final_hops,
            r.mean_hops,
            r.success_rate * 100.0,
            r.final_stored_per_node,
            r.control_messages_per_node_per_interval,
            r.control_bytes_per_node_per_interval,
            r.wall_s
        );
    }
    if let Some(r) = runs.first() {
        let m = &r.report.membership;
        let _ = writeln!(
            s,
            "membership state per node: {:.1} peers on the ring; a one-hop table keeps {:.0}",
            m.chord_entries_per_node, m.one_hop_entries_per_node
        );
    }
    let paper: Vec<String> = PAPER.iter().map(|(n, h)| format!("{n} {h}")).collect();
    let _ = writeln!(s, "paper (Pastry, b = 16, same workload): {}", paper.join(", "));
    let _ = writeln!(
        s,
        "final hops: the last quarter of the run; ctl: replication traffic (pull, offers, cache, \
         invalidate, push, late report) per node per reporting interval"
    );
    s
}

/// Four panels over time: hops, objects stored per node, control messages and bytes per node.
pub fn plot(path: &Path, runs: &[Run]) -> Result<()> {
    type Metric = fn(&IntervalReport) -> f64;
    let metrics: [(&str, Metric); 4] = [
        ("mean hops", |i| i.mean_hops),
        ("objects stored per node", |i| i.replication.as_ref().map_or(0.0, |r| r.stored_per_node)),
        ("control messages per node", |i| {
            i.replication.as_ref().map_or(0.0, |r| r.control_messages_per_node)
        }),
        ("control bytes per node", |i| {
            i.replication.as_ref().map_or(0.0, |r| r.control_bytes_per_node)
        }),
    ];
    let panels: Vec<Panel> = metrics
        .into_iter()
        .map(|(title, metric)| Panel {
            title: title.to_string(),
            x_desc: "virtual seconds".to_string(),
            y_desc: String::new(),
            lines: runs
                .iter()
                .map(|run| Line {
                    label: run.label.clone(),
                    points: run.report.intervals.iter().map(|i| (i.end_s, metric(i))).collect(),
                })
                .collect(),
        })
        .collect();
    draw(path, (1200, 800), (2, 2), &panels).context("drawing the plot")
}
