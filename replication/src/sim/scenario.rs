//! The standard run behind `beehive sim`: build the ring, let it settle, then measure lookups
//! under the configured loss and churn, one interval at a time.

use super::config::SimConfig;
use super::report::Report;
use super::Sim;
use crate::error::ConfigError;
use std::time::Duration;

/// Where a run is, for a progress bar.
#[derive(Debug, Clone, Copy)]
pub struct Progress {
    pub phase: &'static str,
    /// Fraction of the phase done, in [0, 1].
    pub done: f64,
    /// Virtual seconds since the start of the run.
    pub now_s: f64,
}

/// Runs the scenario described by `cfg`, calling `progress` now and then.
pub fn run(cfg: &SimConfig, mut progress: impl FnMut(Progress)) -> Result<Report, ConfigError> {
    cfg.validate()?;
    let mut sim = Sim::new(cfg);
    if let Some(c) = &cfg.catalog {
        sim.set_catalog(c).map_err(|reason| ConfigError { field: "catalog", reason })?;
    }
    if cfg.converged_start {
        sim.add_converged_nodes(cfg.nodes);
    } else {
        let step = (cfg.nodes / 100).max(1);
        for i in 0..cfg.nodes {
            sim.add_node();
            sim.run_for(cfg.join_spacing);
            if i % step == 0 {
                let done = i as f64 / cfg.nodes as f64;
                progress(Progress { phase: "joining", done, now_s: sim.now().as_secs_f64() });
            }
        }
    }
    sim.run_for(cfg.warmup);
    let ring_after_warmup = sim.ring_check();
    // Whatever the build phase sent is not part of the measurement.
    let _ = sim.take_interval(0.0);
    sim.reset_message_kinds();

    sim.set_lookup_rate(cfg.lookup_rate);
    sim.set_churn(cfg.churn);
    let start = sim.now();
    let mut intervals = Vec::new();
    let mut elapsed = Duration::ZERO;
    let mut reversed = false;
    while elapsed < cfg.duration {
        if cfg.reverse_at.is_some_and(|t| t <= elapsed) && !reversed {
            reversed = true;
            sim.reverse_popularity();
        }
        let step = cfg.interval.min(cfg.duration - elapsed);
        elapsed += step;
        sim.run_until(start + elapsed);
        intervals.push(sim.take_interval(elapsed.as_secs_f64()));
        let done = elapsed.as_secs_f64() / cfg.duration.as_secs_f64();
        progress(Progress { phase: "measuring", done, now_s: sim.now().as_secs_f64() });
    }
    // Stop the workload and let lookups in flight finish, so every started lookup is counted.
    sim.set_lookup_rate(0.0);
    sim.set_churn(None);
    sim.run_for(cfg.chord.rto_max * (cfg.chord.max_lookup_hops.min(8)));
    if let Some(last) = intervals.last_mut() {
        last.absorb(&sim.take_interval(last.end_s).lookups);
    }

    let lookups = Report::totals(&intervals);
    let measured_s = cfg.duration.as_secs_f64();
    let stab_intervals = measured_s / cfg.chord.stabilize_interval.as_secs_f64();
    let mean_nodes = if intervals.is_empty() {
        cfg.nodes as f64
    } else {
        intervals.iter().map(|i| i.nodes as f64).sum::<f64>() / intervals.len() as f64
    };
    let msgs: u64 = intervals.iter().map(|i| i.messages).sum();
    let bytes: u64 = intervals.iter().map(|i| i.bytes).sum();
    let per = |x: u64| x as f64 / (mean_nodes.max(1.0) * stab_intervals.max(f64::MIN_POSITIVE));
    let final_ring = sim.ring_check();
    let alive = sim.alive_indices();
    let entries: usize =
        alive.iter().filter_map(|i| sim.node(*i)).map(|n| n.routing().distinct_peers()).sum();
    let membership = super::report::Membership {
        chord_entries_per_node: entries as f64 / alive.len().max(1) as f64,
        one_hop_entries_per_node: alive.len().saturating_sub(1) as f64,
        one_hop_updates_per_node_per_s: cfg.churn.map_or(0.0, |c| 2.0 * c.rate),
    };
    Ok(Report {
        config: cfg.clone(),
        ring_after_warmup,
        success_rate: lookups.success_rate(),
        mean_hops: lookups.mean_hops(),
        lookups,
        intervals,
        messages_by_kind: sim.messages_by_kind(),
        messages_per_node_per_stabilize_interval: per(msgs),
        bytes_per_node_per_stabilize_interval: per(bytes),
        final_ring,
        membership,
        median_session_s: cfg.churn.map(|c| c.median_session(cfg.nodes).as_secs_f64()),
        events_processed: sim.events_processed(),
        event_log_hash: sim.event_log_hash(),
    })
}
