//! `beehive demo` end to end: real origin and node processes started by the demo itself, a
//! real load through them, and the JSON report it writes. The two runs share the machine's
//! two cores, so they take turns.

mod support;

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Instant;

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn scratch(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("beehive-demo-test-{}-{name}", std::process::id()))
}

/// Runs `beehive demo ARGS` (bounded by the demo's own durations), returns stdout.
fn demo(args: &[&str]) -> String {
    let started = Instant::now();
    let stdout = support::beehive_stdout(&[&["demo"], args].concat());
    eprintln!("demo {args:?} took {:.0} s", started.elapsed().as_secs_f64());
    stdout
}

fn summary<'a>(report: &'a serde_json::Value, field: &str) -> &'a serde_json::Value {
    &report["summary"][field]
}

#[test]
fn compare_shows_beehive_below_chord_with_the_origin_offloaded() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let json = scratch("compare.json");
    let plot = scratch("compare.svg");
    let out = demo(&[
        "--compare",
        "--duration",
        "8",
        "--warmup",
        "6",
        "--json",
        json.to_str().unwrap(),
        "--plot",
        plot.to_str().unwrap(),
    ]);
    assert!(out.contains("run ") && out.contains("offload"), "no compare table:\n{out}");
    assert!(out.contains("stored") && out.contains("copied"), "no storage columns:\n{out}");
    assert!(out.contains("bodies verified") && out.contains(" wrong 0"), "no body check:\n{out}");
    let runs: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).expect("JSON report")).unwrap();
    let runs = runs.as_array().expect("one entry per mode");
    let hops = |mode: &str| -> f64 {
        let run = runs.iter().find(|r| r["mode"] == mode).expect("mode present");
        let report = &run["report"];
        assert_eq!(report["schema_version"], 1);
        assert_eq!(summary(report, "errors"), 0, "{mode} had errors");
        let offload = summary(report, "offload").as_f64().expect("offload");
        assert!(offload >= 0.99, "{mode}: origin offload {offload}");
        // Equal storage: the default budget, 1 000/8 + 1 000/8 objects per node, holds in
        // every mode. A node keeps its own objects whatever the budget, and on an uneven ring
        // one may own more than 250, so the bound is on what nodes store past
        // max(budget, own objects); copies being fetched as the run ends may pass it a little.
        let stored = summary(report, "stored_per_node").as_f64().expect("stored");
        assert!(stored > 0.0, "{mode}: nothing stored");
        let over = summary(report, "over_budget_per_node").as_f64().expect("over budget");
        assert!(over <= 250.0 * 0.05, "{mode}: {over} objects per node past the budget");
        assert!(summary(report, "copied").as_u64().is_some(), "{mode}: no copied count");
        // Every body was checked against the origin's, and none was wrong.
        assert_eq!(summary(report, "wrong_bodies"), 0, "{mode} served wrong bodies");
        assert_eq!(summary(report, "verified_bodies"), summary(report, "requests"));
        summary(report, "avg_hops").as_f64().expect("hops")
    };
    let (chord, beehive) = (hops("chord"), hops("beehive"));
    hops("passive");
    assert!(beehive < chord, "beehive {beehive} hops, chord {chord}");
    let svg = std::fs::read_to_string(&plot).expect("plot written");
    assert!(svg.contains("<svg") && svg.contains("beehive") && svg.contains("chord"));
    let _ = std::fs::remove_file(json);
    let _ = std::fs::remove_file(plot);
}

/// Per-second average hops of the JSON report's series.
fn hop_series(report: &serde_json::Value) -> Vec<f64> {
    report["series"]
        .as_array()
        .expect("series")
        .iter()
        .map(|s| s["avg_hops"].as_f64().unwrap_or(f64::NAN))
        .collect()
}

#[test]
fn sixteen_live_nodes_converge_near_c_and_recover_after_a_reversal() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let json = scratch("sixteen.json");
    // Replication interval 1 s; 25 s of warm-up, then 30 s measured with the popularity
    // reversed at 15 s. No store budget: Beehive aims at C = 1 (a budget would set C).
    demo(&[
        "--budget",
        "0",
        "--nodes",
        "16",
        "--duration",
        "30",
        "--warmup",
        "25",
        "--replication-ms",
        "1000",
        "--json",
        json.to_str().unwrap(),
    ]);
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).expect("JSON report")).unwrap();
    let hops = hop_series(&report);
    eprintln!("hops per second: {hops:.2?}");
    assert!(hops.len() >= 29, "series too short: {}", hops.len());
    // Converged: the five seconds before the reversal average within 10 % of C = 1.
    let before = hops[10..15].iter().sum::<f64>() / 5.0;
    assert!((before - 1.0).abs() <= 0.1, "converged at {before:.2} hops, not within 10 % of 1");
    // The reversal makes the newly popular objects home-only: hops jump ...
    assert!(hops[15] > before + 0.2, "no jump after the reversal: {:.2}", hops[15]);
    // ... and come back within 10 % of C. The protocol's bound (two replication intervals after
    // the next leader result) is asserted by the simulator's `popularity_reversal_recovers`;
    // here 16 live nodes and the load generator share the machine, and a loaded 2-core CI
    // machine has taken 3 and 4 s where a quiet one takes 1 to 3, and 6 s with another ring
    // under load beside it. Allow 8 s, and ask the last ten seconds to sit within 10 % of C.
    let back = (15..hops.len()).find(|&t| hops[t] <= 1.1 && hops[t] >= 0.9).map(|t| t - 15);
    eprintln!("back within 10 % of C after {back:?} s (replication interval 1 s)");
    assert!(back.is_some_and(|s| s <= 8), "not back within 10 % of C: {hops:.2?}");
    let tail = &hops[hops.len() - 10..];
    let after = tail.iter().sum::<f64>() / tail.len() as f64;
    assert!((after - 1.0).abs() <= 0.1, "settled at {after:.2} hops after the reversal");
    let _ = std::fs::remove_file(json);
}
