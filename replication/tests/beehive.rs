//! Beehive replication in the simulator: hops against plain Chord, a lying node, purge, and
//! corrupt bodies. Small rings and short intervals keep each run to seconds; every run is
//! bounded in virtual time and names its seed.

use beehive_replication::beehive::wire::{in_arc, CountEntry, Pull};
use beehive_replication::config::Mode;
use beehive_replication::sim::{Catalog, IntervalReport, Sim, SimConfig};
use beehive_replication::{Id, Message, Node, Request};
use std::collections::HashMap;
use std::time::Duration;

const SEC: Duration = Duration::from_secs(1);

fn config(seed: u64, nodes: usize, mode: Mode) -> SimConfig {
    let mut cfg = SimConfig { seed, nodes, lookup_rate: 2.0, ..SimConfig::default() };
    cfg.chord.replication.mode = mode;
    cfg.chord.replication.interval = 5 * SEC;
    cfg
}

fn catalog() -> Catalog {
    Catalog { objects: 2048, alpha: 0.91, size: 1024 }
}

/// A converged ring of `cfg.nodes` with the object workload running.
fn running(cfg: &SimConfig) -> Sim {
    let mut sim = Sim::new(cfg);
    sim.set_catalog(&catalog()).unwrap();
    sim.add_converged_nodes(cfg.nodes);
    sim.set_lookup_rate(cfg.lookup_rate);
    sim
}

/// Runs `intervals` of `len` and returns their reports.
fn measure(sim: &mut Sim, intervals: usize, len: Duration) -> Vec<IntervalReport> {
    (0..intervals)
        .map(|i| {
            sim.run_for(len);
            sim.take_interval(i as f64)
        })
        .collect()
}

fn mean_hops(reports: &[IntervalReport]) -> f64 {
    let (hops, n) = reports.iter().fold((0u64, 0u64), |(h, n), r| {
        (h + r.lookups.hop_sum, n + r.lookups.ok + r.lookups.wrong)
    });
    hops as f64 / n.max(1) as f64
}

#[test]
fn beehive_cuts_hops_far_below_chord_and_passive() {
    let mut hops = Vec::new();
    for mode in [Mode::Chord, Mode::Passive, Mode::Beehive] {
        let cfg = config(11, 128, mode);
        let mut sim = running(&cfg);
        sim.run_for(150 * SEC);
        let _ = sim.take_interval(0.0);
        let tail = measure(&mut sim, 5, 10 * SEC);
        let ok: u64 = tail.iter().map(|r| r.lookups.ok).sum();
        let wrong: u64 = tail.iter().map(|r| r.lookups.wrong + r.lookups.failed).sum();
        assert!(wrong * 1000 <= ok, "{mode:?}: {wrong} bad answers of {ok}");
        hops.push(mean_hops(&tail));
    }
    let [chord, passive, beehive] = hops[..] else { unreachable!() };
    // Plain Chord at N = 128 with 8 successors: about ½·log2(N/8) + 1 = 3 hops.
    assert!((2.5..3.5).contains(&chord), "chord {chord}");
    assert!(passive < chord, "passive {passive} vs chord {chord}");
    // C = 1: within a third of it here (the closed-loop error is in docs/experiments.md).
    assert!(
        (0.66..1.33).contains(&beehive),
        "beehive {beehive} (chord {chord}, passive {passive})"
    );
}

#[test]
fn a_lying_node_cannot_push_a_tail_object_up() {
    let cfg = config(12, 64, Mode::Beehive);
    let mut sim = running(&cfg);
    sim.run_for(60 * SEC);
    // The least popular object, and a liar that is neither its home nor in its arc.
    let index = sim.object_of_rank(2048).unwrap();
    let key = sim.object_key(index).unwrap();
    let home = sim.home_index(key).unwrap();
    let liar = (home + 32) % 64;
    let liar_id = sim.node(liar).unwrap().me().id;
    for _ in 0..12 {
        let counts = vec![CountEntry { key, origin: liar_id, count: u32::MAX }];
        let pull = Pull {
            counts,
            report: None,
            known: None,
            since: None,
            full: true,
            digest: None,
            next: None,
        };
        sim.inject(liar, home, Message::Request { id: 1, body: Request::Pull(Box::new(pull)) });
        sim.run_for(5 * SEC);
    }
    let node = sim.node(home).unwrap();
    let result = node.level_result().expect("the leader's result reached the home");
    assert!(node.refused_counts() >= 10, "the liar's counts were taken");
    // The liar's claim would earn level 0. The object's true rate earns the model's tail
    // level k' once it has been served (every object belongs at k' or lower), which the
    // leader's moving estimates keep at 4 to 6 on this ring.
    let least = *result.thresholds.last().unwrap();
    let k_prime = result.thresholds.iter().position(|t| *t <= least).unwrap();
    let level = node.home_level(key).unwrap_or(result.top_level());
    assert!(level >= 3, "tail object pushed to level {level} (k' = {k_prime} now)");
}

#[test]
fn no_node_serves_a_changed_object_after_the_bound() {
    let cfg = config(13, 128, Mode::Beehive);
    let mut sim = running(&cfg);
    sim.run_for(120 * SEC);
    // The invalidation is a range broadcast: O(log N) one-way delays of at most ~85 ms.
    sim.set_stale_bound(2 * SEC);
    let hot = sim.object_of_rank(1).unwrap();
    let key = sim.object_key(hot).unwrap();
    let holders_before = sim
        .alive_indices()
        .iter()
        .filter(|i| sim.node(**i).unwrap().holds(sim.now(), key).is_some())
        .count();
    assert!(holders_before > 64, "the hottest object is widely replicated ({holders_before})");
    let _ = sim.take_interval(0.0);
    sim.change_object(hot).unwrap();
    let after = measure(&mut sim, 6, 10 * SEC);
    let stale: u64 = after.iter().map(|r| r.replication.as_ref().unwrap().stale_served).sum();
    assert_eq!(stale, 0, "old bodies served after the bound");
    // And the new version spread back out.
    let now = sim.now();
    let holders = sim
        .alive_indices()
        .iter()
        .filter(|i| sim.node(**i).unwrap().holds(now, key).is_some())
        .count();
    assert!(holders > 64, "new version on {holders} nodes");

    // A purge at the home: within the bound every copy of the purged version is gone.
    let home = sim.home_index(key).unwrap();
    let purged = sim.node(home).unwrap().holds(sim.now(), key).unwrap().version;
    assert!(sim.purge_object(hot));
    sim.run_for(2 * SEC);
    let now = sim.now();
    let old_copies = sim
        .alive_indices()
        .iter()
        .filter(|i| sim.node(**i).unwrap().holds(now, key).is_some_and(|o| o.version <= purged))
        .count();
    assert_eq!(old_copies, 0, "purged version still held 2 s after the purge");
}

#[test]
fn corrupt_bodies_are_never_stored() {
    let cfg = config(14, 64, Mode::Beehive);
    let mut sim = running(&cfg);
    for i in 0..8 {
        sim.corrupt_bodies(i * 8);
    }
    let reports = measure(&mut sim, 8, 10 * SEC);
    let rejected: u64 = reports.iter().map(|r| r.replication.as_ref().unwrap().body_rejected).sum();
    let fills: u64 = reports.iter().map(|r| r.replication.as_ref().unwrap().body_fetches).sum();
    assert!(rejected > 0 && fills > 0, "rejected {rejected}, stored {fills}");
}

/// Per-interval mean hops, for the figures the tests print.
fn series(reports: &[IntervalReport]) -> Vec<String> {
    reports.iter().map(|r| format!("{:.2}", r.mean_hops)).collect()
}

/// The highest leader epoch any node has seen.
fn epoch(sim: &Sim) -> u64 {
    (0..sim.len()).filter_map(|i| sim.node(i)?.level_result().map(|r| r.epoch)).max().unwrap_or(0)
}

#[test]
fn the_leader_counts_every_node_once_per_result() {
    // A 1 s interval over 256 nodes puts about 4 ms between neighbours' ticks, and links take
    // 5 to 80 ms: many reports land after their next hop's tick. Each generation must still
    // reach the leader whole, every node in it once, or M and the thresholds jitter.
    let mut cfg = config(21, 256, Mode::Beehive);
    cfg.chord.replication.interval = SEC;
    let mut sim = running(&cfg);
    sim.run_for(10 * SEC);
    let _ = sim.take_interval(0.0);
    let counts: Vec<f64> = measure(&mut sim, 20, SEC)
        .iter()
        .filter_map(|r| Some(r.replication.as_ref()?.nodes_estimate))
        .collect();
    assert_eq!(counts.len(), 20, "an interval without a leader result: {counts:?}");
    assert!(counts.iter().all(|&n| n == 256.0), "nodes counted per result: {counts:?}");
}

#[test]
fn popularity_reversal_recovers() {
    // 50 lookups/s per node: at 2/s the median object sees one request per interval at its
    // home, and no estimator can tell its new rate from noise within two intervals.
    let mut cfg = config(15, 128, Mode::Beehive);
    cfg.lookup_rate = 50.0;
    let mut sim = running(&cfg);
    sim.run_for(300 * SEC + SEC * 7 / 2);
    let _ = sim.take_interval(0.0);
    let before = measure(&mut sim, 4, 5 * SEC);
    sim.reverse_popularity();
    // Wait for the leader's next result, then measure interval by interval (5 s).
    let (e0, t0) = (epoch(&sim), sim.now());
    while epoch(&sim) == e0 && sim.now() < t0 + 10 * SEC {
        sim.run_for(Duration::from_millis(20));
    }
    assert!(epoch(&sim) > e0, "no leader result after the reversal");
    let _ = sim.take_interval(0.0);
    let after = measure(&mut sim, 6, 5 * SEC);
    eprintln!("before {:?}\nafter the next result {:?}", series(&before), series(&after));
    let settled = mean_hops(&before);
    assert!((settled - 1.0).abs() < 0.05, "not converged before the reversal: {settled}");
    // The newly popular objects are home-only at first: hops jump toward plain Chord.
    assert!(after[0].mean_hops > settled + 0.5, "no jump after the reversal");
    // Homes see the surge in the requests they serve themselves and restart those objects'
    // rates, relayed counts that jump are taken in faster, and the pull tree pushes the new
    // copies at once; the leader does not steer on the recovery. From two intervals after the
    // result the average is within 5 % of C = 1 and stays there (1.02–1.04 at interval 2
    // over seeds 15–19).
    for (i, r) in after.iter().enumerate().skip(2) {
        assert!((r.mean_hops - 1.0).abs() <= 0.05, "interval {i} after: {:.3}", r.mean_hops);
    }
}

#[test]
fn churn_keeps_hops_low_and_lookups_answered() {
    let mut out = Vec::new();
    for mode in [Mode::Chord, Mode::Beehive] {
        let cfg = config(16, 128, mode);
        let mut sim = running(&cfg);
        sim.run_for(200 * SEC);
        let _ = sim.take_interval(0.0);
        // One arrival and one crash every 2 s: median session ≈ 3 min.
        sim.set_churn(Some(beehive_replication::sim::Churn { rate: 0.5 }));
        let reports = measure(&mut sim, 10, 10 * SEC);
        let failed: u64 = reports.iter().map(|r| r.lookups.failed + r.lookups.wrong).sum();
        let done: u64 = reports.iter().map(|r| r.lookups.completed()).sum();
        eprintln!("{mode:?} under churn: hops {:?}, {failed} of {done} failed", series(&reports));
        out.push((mean_hops(&reports), failed as f64 / done.max(1) as f64));
    }
    let [(chord_hops, chord_fail), (bee_hops, bee_fail)] = out[..] else { unreachable!() };
    // C + 0.2 (C = 1).
    assert!(bee_hops < 1.2, "beehive hops under churn {bee_hops}");
    assert!(bee_hops < chord_hops / 2.0);
    assert!(bee_fail <= chord_fail + 0.002, "beehive {bee_fail} vs chord {chord_fail}");
}

#[test]
fn replication_traffic_grows_like_log_n() {
    let mut per_node = Vec::new();
    for nodes in [64, 256] {
        let cfg = config(17, nodes, Mode::Beehive);
        let mut sim = running(&cfg);
        sim.run_for(150 * SEC);
        let _ = sim.take_interval(0.0);
        let reports = measure(&mut sim, 3, 10 * SEC);
        let msgs: f64 = reports
            .iter()
            .map(|r| r.replication.as_ref().unwrap().control_messages_per_node)
            .sum::<f64>()
            / reports.len() as f64;
        per_node.push(msgs);
    }
    eprintln!("replication messages per node per 10 s at N = 64, 256: {per_node:?}");
    // Two pulls per finger and interval, each with its answer: 4x the nodes adds ~2 fingers
    // (log2 256 / log2 64 = 1.33). Pushes of level changes add a share that depends on how
    // many objects sit near a threshold, so the small ring can cost as much as the large one.
    assert!(per_node[0] > 10.0, "no replication traffic at N = 64: {per_node:?}");
    let growth = per_node[1] / per_node[0];
    assert!(growth < 1.8, "per-node traffic grew {growth}x for 4x nodes");
}

/// Objects stored per node against the closed form's storage for the leader's parameters.
fn storage(sim: &mut Sim) -> (f64, f64) {
    let r = sim.take_interval(0.0).replication.unwrap();
    (r.stored_per_node, r.model_stored_per_node)
}

/// The share of copies held outside their object's current arc (demoted, not yet dropped).
fn outside_share(sim: &Sim) -> f64 {
    let now = sim.now();
    let nodes: Vec<&Node> = sim.alive_indices().into_iter().filter_map(|i| sim.node(i)).collect();
    let levels: HashMap<Id, u8> = nodes
        .iter()
        .flat_map(|n| n.known_objects(now).filter(|o| o.home).map(|o| (o.key, o.level)))
        .collect();
    let (mut copies, mut outside) = (0u64, 0u64);
    for n in &nodes {
        for o in n.known_objects(now).filter(|o| !o.home) {
            copies += 1;
            outside += levels.get(&o.key).is_some_and(|l| !in_arc(n.me().id, o.key, *l)) as u64;
        }
    }
    outside as f64 / copies.max(1) as f64
}

#[test]
fn storage_follows_the_model_when_alpha_changes() {
    let cfg = config(18, 128, Mode::Beehive);
    let mut sim = running(&cfg);
    let mut seen = Vec::new();
    for alpha in [0.91, 1.2, 0.7] {
        sim.set_alpha(alpha).unwrap();
        // 200 s to follow the change, then the mean of ten intervals: the model's figure
        // moves ±10 % from one result to the next at N = 128 (its M and α are fitted to one
        // interval's rates), so one interval's snapshot says more about that than about
        // placement.
        sim.run_for(200 * SEC);
        sim.take_interval(0.0);
        let (mut stored, mut model) = (0.0, 0.0);
        for _ in 0..10 {
            sim.run_for(10 * SEC);
            let (s, m) = storage(&mut sim);
            (stored, model) = (stored + s / 10.0, model + m / 10.0);
        }
        let outside = outside_share(&sim);
        let alpha_fit = sim.node(0).and_then(|n| n.level_result()).map(|r| r.alpha);
        eprintln!(
            "alpha {alpha}: fitted {alpha_fit:?}, stored {stored:.1}/node, model {model:.1}, \
             {:.1} % of copies outside their arc",
            outside * 100.0
        );
        seen.push((alpha, alpha_fit.unwrap_or(0.0), stored, model, outside));
    }
    for (alpha, fitted, stored, model, outside) in seen {
        assert!((fitted - alpha).abs() < 0.1, "alpha {alpha} fitted as {fitted}");
        // Within 10 % of the model: homes place objects by thresholds read off the measured
        // rates, so each level holds the model's share of the catalogue; what is left over is
        // demoted copies not yet gone and the band around each threshold.
        assert!((stored / model - 1.0).abs() < 0.1, "alpha {alpha}: {stored} vs model {model}");
        // Demoted copies go within an interval or two of the demotion, instead of being
        // renewed by neighbours that have not heard of it yet.
        assert!(outside < 0.15, "alpha {alpha}: {outside} of copies outside their arc");
    }
}

#[test]
fn a_storage_budget_caps_every_node_and_is_used() {
    let mut cfg = config(19, 128, Mode::Beehive);
    let budget = 60.0;
    cfg.chord.replication.budget = Some(budget);
    let mut sim = running(&cfg);
    // From the first interval on: while the catalogue is still being discovered the leader
    // underestimates M and would put everything everywhere; the nodes' own cap holds.
    let reports = measure(&mut sim, 30, 10 * SEC);
    let stored: Vec<f64> =
        reports.iter().map(|r| r.replication.as_ref().unwrap().stored_per_node).collect();
    eprintln!("stored per node with a budget of {budget}: {stored:.1?}");
    // A node must keep what it is home for; copies for others never take it past the budget.
    let now = sim.now();
    for node in sim.alive_indices().into_iter().filter_map(|i| sim.node(i)) {
        let own = node.known_objects(now).filter(|o| o.home && o.size.is_some()).count();
        let held = node.stored_objects(now);
        assert!(
            held as f64 <= budget.max(own as f64),
            "a node stores {held} objects ({own} its own), budget {budget}"
        );
    }
    assert!(stored.iter().all(|s| *s <= budget), "over budget: {stored:?}");
    let last = stored[stored.len() - 5..].iter().sum::<f64>() / 5.0;
    assert!(last >= 0.75 * budget, "budget {budget} left unused: {last:.1} per node");
    let hops = mean_hops(&reports[reports.len() - 5..]);
    assert!(hops < 2.0, "hops {hops} with {budget} objects per node");
}

#[test]
fn a_new_leader_continues_from_the_last_result() {
    let cfg = config(22, 128, Mode::Beehive);
    let mut sim = running(&cfg);
    sim.run_for(300 * SEC);
    let before = sim.node(0).and_then(|n| n.level_result()).cloned().expect("a result");
    let leader = sim.index_of(before.leader).expect("the leader is a node of the ring");
    sim.crash(leader);
    let crashed = sim.now();
    let after = loop {
        sim.run_for(SEC);
        let new = sim.alive_indices().into_iter().find_map(|i| {
            sim.node(i)?.level_result().filter(|r| r.leader != before.leader).cloned()
        });
        if let Some(r) = new {
            break r;
        }
        assert!(sim.now() < crashed + 60 * SEC, "no result from a new leader within 60 s");
    };
    eprintln!(
        "before the crash: M {:.0}, h {:.3}, target {:.3}; the new leader's first: M {:.0}, \
         h {:.3}, target {:.3}",
        before.objects,
        before.hop_cost,
        before.target_hops,
        after.objects,
        after.hop_cost,
        after.target_hops
    );
    // The new leader goes on from its predecessor's M, hop cost and correction instead of
    // starting over (M from the curve alone, the initial hop cost, C itself).
    assert!(after.epoch > before.epoch);
    assert!((after.objects / before.objects - 1.0).abs() < 0.05, "M moved on the handoff");
    assert!((after.hop_cost - before.hop_cost).abs() < 0.05, "hop cost moved on the handoff");
    assert!((after.target_hops - before.target_hops).abs() < 0.05, "target moved on the handoff");
}

/// The mean hops of the last `n` of `intervals` intervals of 10 s, after `settle`.
fn settled_hops(cfg: &SimConfig, alpha: f64, settle: Duration, n: usize) -> f64 {
    let mut sim = Sim::new(cfg);
    sim.set_catalog(&Catalog { alpha, ..catalog() }).unwrap();
    sim.add_converged_nodes(cfg.nodes);
    sim.set_lookup_rate(cfg.lookup_rate);
    sim.run_for(settle);
    let _ = sim.take_interval(0.0);
    let tail = measure(&mut sim, n, 10 * SEC);
    eprintln!("alpha {alpha} seed {}: {:?}", cfg.seed, series(&tail));
    mean_hops(&tail)
}

#[test]
fn other_zipf_exponents_reach_c() {
    // The fit, the closed form and the loop hold for flat and steep popularity alike: the
    // correction removes whatever offset the model leaves at each exponent.
    for alpha in [0.6, 1.2] {
        for seed in [31, 32] {
            let cfg = config(seed, 128, Mode::Beehive);
            let hops = settled_hops(&cfg, alpha, 250 * SEC, 5);
            assert!((hops - 1.0).abs() < 0.1, "alpha {alpha}, seed {seed}: {hops}");
        }
    }
}

#[test]
fn a_shift_of_the_top_ranks_recovers() {
    for seed in [33, 34] {
        let mut cfg = config(seed, 128, Mode::Beehive);
        cfg.lookup_rate = 50.0;
        let mut sim = running(&cfg);
        sim.run_for(300 * SEC + SEC * 7 / 2);
        let _ = sim.take_interval(0.0);
        let before = measure(&mut sim, 4, 5 * SEC);
        // The 32 most popular objects trade places with the next 32.
        sim.swap_top_ranks(32);
        let (e0, t0) = (epoch(&sim), sim.now());
        while epoch(&sim) == e0 && sim.now() < t0 + 10 * SEC {
            sim.run_for(Duration::from_millis(20));
        }
        let _ = sim.take_interval(0.0);
        let after = measure(&mut sim, 6, 5 * SEC);
        eprintln!("seed {seed}: before {:?}\nafter {:?}", series(&before), series(&after));
        let settled = mean_hops(&before);
        assert!((settled - 1.0).abs() < 0.05, "not converged before the shift: {settled}");
        for (i, r) in after.iter().enumerate().skip(2) {
            assert!(
                (r.mean_hops - 1.0).abs() <= 0.05,
                "seed {seed}, interval {i}: {:.3}",
                r.mean_hops
            );
        }
    }
}

#[test]
fn a_filling_ring_hears_of_each_copy_from_its_next_hop() {
    // The first result fills the ring: ~10 000 copies per 5 s interval at N = 128. Every
    // finger between a node and a key holds the copy, and each pushed it on, so a node heard
    // of each new copy from about log2 of (nodes between it and the key) fingers: 104-120
    // replication messages per node per interval at the peak. A finger now pushes a key only
    // to pullers it is the next hop toward the key for: 38-44 (seeds 15-16).
    for seed in [15, 16] {
        let mut cfg = config(seed, 128, Mode::Beehive);
        cfg.lookup_rate = 50.0;
        let mut sim = running(&cfg);
        let reports = measure(&mut sim, 8, 5 * SEC);
        let fetches: u64 =
            reports.iter().map(|r| r.replication.as_ref().unwrap().body_fetches).sum();
        let messages: Vec<f64> = reports
            .iter()
            .map(|r| r.replication.as_ref().unwrap().control_messages_per_node)
            .collect();
        eprintln!("seed {seed}: {fetches} fills, messages per node per interval {messages:.0?}");
        assert!(fetches > 128 * 100, "seed {seed}: the ring did not fill ({fetches} fills)");
        let peak = messages.iter().copied().fold(0.0, f64::max);
        assert!(peak <= 70.0, "seed {seed}: {peak:.0} messages per node in one interval");
    }
}

#[test]
fn copies_are_not_fetched_again_in_the_steady_state() {
    // Popularity does not change: once levels stand, a copy that stays at its level is not
    // fetched again, and noise in the rates and in the leader's fit seldom moves an object
    // (a faint object's rate averages ten requests or more, and the band is sized from the
    // estimator's variance). What is left is objects whose rate lies within noise of a
    // threshold, and the leader's fit moving the thresholds. Measured: 0.7-0.8 % per
    // interval on average, single intervals up to 1.4 % (before the long windows 0.9-1.2 %
    // and 2.9 %). The resync digests keep that (0.66-0.83 %, up to 1.24 %).
    for seed in [35, 36, 37] {
        let mut cfg = config(seed, 128, Mode::Beehive);
        cfg.lookup_rate = 4.0;
        let mut sim = running(&cfg);
        sim.run_for(300 * SEC);
        let _ = sim.take_interval(0.0);
        // Per replication interval (5 s).
        let reports = measure(&mut sim, 40, 5 * SEC);
        let quarter = &reports[30..];
        let shares: Vec<f64> = quarter
            .iter()
            .map(|r| {
                let rep = r.replication.as_ref().unwrap();
                rep.body_fetches as f64 / (rep.stored_per_node * r.nodes as f64).max(1.0)
            })
            .collect();
        let causes: Vec<_> =
            quarter.iter().map(|r| r.replication.as_ref().unwrap().fills).collect();
        eprintln!("seed {seed}: fills per stored copy {shares:.4?}\n{causes:?}");
        let control: f64 = quarter
            .iter()
            .map(|r| {
                let rep = r.replication.as_ref().unwrap();
                rep.control_bytes_per_node / rep.stored_per_node.max(1.0)
            })
            .sum::<f64>()
            / quarter.len() as f64;
        eprintln!("seed {seed}: control bytes per stored copy per interval {control:.2}");
        // A resync lists only the digest buckets that differ, and 1-3 bytes of lease per
        // copy elsewhere: measured 73-75 bytes per stored copy per interval (full lists:
        // 109-111), 65-69 since pushes come from the next hop only, 52-53 since resyncs and
        // deltas do too.
        assert!(control <= 62.0, "seed {seed}: {control:.1} control bytes per stored copy");
        for (r, c) in quarter.iter().zip(&causes) {
            assert_eq!(
                r.replication.as_ref().unwrap().body_fetches,
                c.total(),
                "a fill without a cause"
            );
        }
        // Over the last quarter, per replication interval: the mean, and any one interval
        // (one in which the leader's fitted α moves a few hundredths fetches the most).
        let mean = shares.iter().sum::<f64>() / shares.len() as f64;
        assert!(mean <= 0.015, "seed {seed}: {:.2} % of stored copies per interval", mean * 100.0);
        let max = shares.iter().copied().fold(0.0, f64::max);
        assert!(max <= 0.03, "seed {seed}: {:.2} % in one interval", max * 100.0);
    }
}
