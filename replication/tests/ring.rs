//! Simulation scenarios for the Chord core: joins, lookups, crashes, churn, partitions, and
//! replay. Each test names its seed; every run is bounded in virtual time.

use beehive_replication::sim::{self, Churn, IntervalReport, Sim, SimConfig};
use beehive_replication::Id;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::time::Duration;

const SEC: Duration = Duration::from_secs(1);

fn config(seed: u64, nodes: usize) -> SimConfig {
    SimConfig { seed, nodes, ..SimConfig::default() }
}

/// Builds a ring by joining `n` nodes one after another, each through a random node already
/// in the ring.
fn joined_ring(cfg: &SimConfig) -> Sim {
    let mut sim = Sim::new(cfg);
    for _ in 0..cfg.nodes {
        sim.add_node();
        sim.run_for(cfg.join_spacing);
    }
    sim
}

/// Starts `count` lookups for random keys from random live nodes, waits for all of them, and
/// returns the interval's counters.
fn lookups(sim: &mut Sim, rng: &mut ChaCha8Rng, count: usize) -> IntervalReport {
    let _ = sim.take_interval(0.0);
    let alive = sim.joined_indices();
    for _ in 0..count {
        let i = alive[rng.random_range(0..alive.len())];
        sim.lookup(i, Id(rng.random()));
        sim.run_for(Duration::from_millis(2));
    }
    // Long enough for the slowest lookup: every hop could time out once.
    for _ in 0..60 {
        if sim.lookups_in_flight() == 0 {
            break;
        }
        sim.run_for(SEC);
    }
    assert_eq!(sim.lookups_in_flight(), 0, "lookups still in flight after 60 s");
    sim.take_interval(0.0)
}

/// Convergence bound for sequential joins: with stabilize and fix-fingers every second and
/// about log2(N) remote fingers fixed round-robin, every finger has been refreshed twice
/// within 2·(log2 N + 8) seconds of the last join. We state 60 s for N = 1024.
const JOIN_CONVERGENCE_BOUND: Duration = Duration::from_secs(60);

#[test]
fn a_thousand_sequential_joins_converge() {
    let cfg = config(11, 1024);
    let mut sim = joined_ring(&cfg);
    let last_join = sim.now();
    let mut converged_after = None;
    while sim.now() - last_join <= JOIN_CONVERGENCE_BOUND {
        sim.run_for(5 * SEC);
        let check = sim.ring_check();
        if check.all_ok == check.nodes && check.nodes == 1024 {
            converged_after = Some(sim.now() - last_join);
            break;
        }
    }
    let check = sim.ring_check();
    assert_eq!(check.nodes, 1024, "every node joined");
    assert!(
        converged_after.is_some(),
        "seed 11: not converged {JOIN_CONVERGENCE_BOUND:?} after the last join: {check:?}"
    );
    assert_eq!(check.rings, 1);
    eprintln!("1024 joins converged {:?} after the last join", converged_after.unwrap());
}

fn assert_hops_at(nodes: usize, seed: u64, converged_start: bool) {
    let cfg = config(seed, nodes);
    let mut sim = if converged_start {
        let mut sim = Sim::new(&cfg);
        sim.add_converged_nodes(nodes);
        sim
    } else {
        joined_ring(&cfg)
    };
    sim.run_for(60 * SEC);
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let r = lookups(&mut sim, &mut rng, 3000);
    let l = &r.lookups;
    assert_eq!(
        l.ok, l.started,
        "seed {seed}, N = {nodes}: every lookup ends at successor(k): {l:?}"
    );
    let log_n = (nodes as f64).log2();
    let ratio = l.mean_hops() / log_n;
    eprintln!("N = {nodes}: mean hops {:.3} = {ratio:.3} x log2 N", l.mean_hops());
    assert!(
        (0.4..=0.6).contains(&ratio),
        "seed {seed}, N = {nodes}: mean hops {:.3} is {ratio:.3} x log2 N, outside [0.4, 0.6]",
        l.mean_hops()
    );
}

#[test]
fn lookups_end_at_the_home_in_half_log_n_hops_256() {
    assert_hops_at(256, 21, false);
}

#[test]
fn lookups_end_at_the_home_in_half_log_n_hops_1024() {
    assert_hops_at(1024, 22, false);
}

#[test]
fn lookups_end_at_the_home_in_half_log_n_hops_4096() {
    // 4096 sequential joins would take most of the test budget; the ring starts converged
    // and runs a minute of live stabilization before measuring.
    assert_hops_at(4096, 23, true);
}

#[test]
fn ten_percent_crash_at_once_and_lookups_still_succeed() {
    let cfg = config(31, 512);
    let mut sim = joined_ring(&cfg);
    sim.run_for(60 * SEC);
    let mut rng = ChaCha8Rng::seed_from_u64(31);
    let mut alive = sim.alive_indices();
    for _ in 0..alive.len() / 10 {
        let k = rng.random_range(0..alive.len());
        sim.crash(alive.swap_remove(k));
    }
    // Stabilization: three misses to drop a dead successor, then the successor lists heal
    // one stabilize round per position.
    sim.run_for(30 * SEC);
    let check = sim.ring_check();
    assert_eq!(check.successor_ok, check.nodes, "seed 31: successors after the crash: {check:?}");
    let r = lookups(&mut sim, &mut rng, 3000);
    let l = &r.lookups;
    assert_eq!(l.failed, 0, "seed 31: no lookup fails: {l:?}");
    assert_eq!(l.dead_home, 0, "seed 31: no lookup ends at a dead node: {l:?}");
    assert_eq!(l.ok, l.started, "seed 31: every lookup ends at the true home: {l:?}");
}

#[test]
fn churn_keeps_lookup_success_above_99_percent() {
    // Bamboo's test (seed 002): Poisson arrivals, each with a random departure, so session
    // times are exponential. N = 256 and one lookup per node every 10 s; arrival rates give
    // median sessions of about 10, 2 and 1 minutes.
    let mut results = Vec::new();
    for (rate, seed) in [(0.3, 41), (1.5, 42), (3.0, 43)] {
        let cfg = SimConfig {
            warmup: 30 * SEC,
            duration: 300 * SEC,
            interval: 60 * SEC,
            lookup_rate: 0.1,
            churn: Some(Churn { rate }),
            ..config(seed, 256)
        };
        let report = sim::run(&cfg, |_| {}).expect("valid config");
        let median = report.median_session_s.unwrap_or(0.0);
        eprintln!(
            "churn {rate}/s (median session {median:.0} s): {:.3}% of {} lookups succeeded, mean hops {:.2}",
            report.success_rate * 100.0,
            report.lookups.completed(),
            report.mean_hops
        );
        results.push((rate, seed, report.success_rate, report.lookups.completed()));
    }
    for (rate, seed, success, completed) in results {
        assert!(completed > 5000, "seed {seed}: too few lookups ({completed}) to judge");
        assert!(success >= 0.99, "seed {seed}: churn {rate}/s: success {success:.4} < 0.99");
    }
}

#[test]
fn a_split_ring_merges_after_the_partition_heals() {
    let cfg = config(51, 256);
    let mut sim = joined_ring(&cfg);
    sim.run_for(60 * SEC);
    assert_eq!(sim.ring_check().rings, 1);
    // Halves by index parity: random with respect to ring position, so each half's nodes are
    // interleaved around the whole ring.
    sim.partition(|i| (i % 2) as u8);
    sim.run_for(120 * SEC);
    let split = sim.ring_check();
    assert!(split.rings >= 2, "seed 51: the partition split the ring: {split:?}");
    sim.heal();
    // Merge probes run every 30 s; give them a few rounds plus stabilization.
    let mut merged = None;
    for _ in 0..36 {
        sim.run_for(10 * SEC);
        let c = sim.ring_check();
        if c.rings == 1 && c.successor_ok == c.nodes {
            merged = Some(c);
            break;
        }
    }
    let c = sim.ring_check();
    assert!(merged.is_some(), "seed 51: still split 6 minutes after healing: {c:?}");
    let mut rng = ChaCha8Rng::seed_from_u64(51);
    let r = lookups(&mut sim, &mut rng, 1000);
    assert_eq!(
        r.lookups.ok, r.lookups.started,
        "seed 51: lookups after the merge: {:?}",
        r.lookups
    );
}

#[test]
fn the_same_seed_replays_the_same_event_log() {
    let cfg = SimConfig {
        warmup: 10 * SEC,
        duration: 20 * SEC,
        loss: 0.01,
        churn: Some(Churn { rate: 0.5 }),
        ..config(61, 64)
    };
    let a = sim::run(&cfg, |_| {}).unwrap();
    let b = sim::run(&cfg, |_| {}).unwrap();
    let c = sim::run(&SimConfig { seed: 62, ..cfg.clone() }, |_| {}).unwrap();
    assert_eq!(a.event_log_hash, b.event_log_hash, "seed 61 replays bit for bit");
    assert_eq!(a.events_processed, b.events_processed);
    assert_ne!(a.event_log_hash, c.event_log_hash, "another seed gives another run");
}

#[test]
fn crashed_nodes_rejoin_after_restart() {
    let cfg = config(71, 128);
    let mut sim = joined_ring(&cfg);
    sim.run_for(30 * SEC);
    sim.crash(5);
    sim.crash(77);
    sim.run_for(30 * SEC);
    assert_eq!(sim.ring_check().nodes, 126);
    sim.restart(5);
    sim.restart(77);
    sim.run_for(60 * SEC);
    let c = sim.ring_check();
    assert_eq!(c.nodes, 128, "seed 71: both restarted nodes rejoined");
    assert_eq!(c.all_ok, c.nodes, "seed 71: ring correct after the restarts: {c:?}");
}

/// A joiner whose successor crashes the moment it joined, before any node learned of it, is
/// alone in a ring of one that nobody contacts: it must find the ring again through its seeds
/// within a few stabilize rounds (it once waited for its merge probes, 30 s apart, to get
/// past the dead peers first, and meanwhile answered every lookup as every key's home).
#[test]
fn a_joiner_orphaned_by_a_crash_finds_the_ring_again() {
    for seed in [91, 92, 93] {
        let cfg = config(seed, 32);
        let mut sim = joined_ring(&cfg);
        sim.run_for(30 * SEC);
        let i = sim.add_node();
        let step = Duration::from_millis(1);
        while !sim.node(i).is_some_and(|n| n.is_joined()) {
            sim.run_for(step);
        }
        let me = sim.node(i).map(|n| n.me().id).expect("started");
        let succ = sim.node(i).map(|n| n.routing().successor().id).expect("started");
        assert_ne!(succ, me, "seed {seed}: joined with a successor");
        let s = sim.index_of(succ).expect("the successor is a sim node");
        sim.crash(s);
        sim.run_for(15 * SEC);
        let c = sim.ring_check();
        assert_eq!(c.nodes, 32, "seed {seed}");
        assert_eq!(c.rings, 1, "seed {seed}: one ring: {c:?}");
        assert_eq!(c.successor_ok, c.nodes, "seed {seed}: {c:?}");
        assert_eq!(c.predecessor_ok, c.nodes, "seed {seed}: {c:?}");
    }
}

#[test]
fn graceful_leave_splices_the_node_out_at_once() {
    let cfg = config(81, 64);
    let mut sim = joined_ring(&cfg);
    sim.run_for(30 * SEC);
    sim.leave(10);
    // Well under one stabilize interval: no timeout is needed to notice a graceful leave.
    sim.run_for(Duration::from_millis(500));
    let c = sim.ring_check();
    assert_eq!(c.nodes, 63);
    assert_eq!(c.successor_ok, 63, "seed 81: neighbours spliced the leaving node out: {c:?}");
    assert_eq!(c.predecessor_ok, 63, "seed 81: {c:?}");
}

#[test]
fn message_loss_is_survived() {
    let cfg = SimConfig {
        warmup: 60 * SEC,
        duration: 60 * SEC,
        loss: 0.05,
        lookup_rate: 0.5,
        ..config(91, 256)
    };
    let report = sim::run(&cfg, |_| {}).unwrap();
    eprintln!(
        "5% loss: {:.3}% success over {} lookups, mean hops {:.2}",
        report.success_rate * 100.0,
        report.lookups.completed(),
        report.mean_hops
    );
    assert!(report.success_rate >= 0.99, "seed 91: {:.4}", report.success_rate);
    assert_eq!(report.final_ring.rings, 1);
}
