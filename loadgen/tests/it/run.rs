//! Whole runs against the demo origin directly (no CDN): the report, its JSON, the SVG, phases.

use crate::{stats, temp_path};
use beehive_loadgen::origin::{Origin, OriginConfig};
use beehive_loadgen::{plot, run, LoadConfig, LoopMode, Phases, Report, SCHEMA_VERSION};
use std::time::Duration;

fn origin_config() -> OriginConfig {
    OriginConfig { objects: 50, size: 512, ..OriginConfig::default() }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_report_round_trips_and_adds_up() {
    let origin = Origin::start(origin_config()).await.unwrap();
    let config = LoadConfig {
        targets: vec![origin.url()],
        objects: 50,
        mode: LoopMode::Closed { concurrency: 4 },
        duration: Some(Duration::from_millis(2500)),
        requests: Some(3000),
        origin_stats: Some(origin.stats_url()),
        ..LoadConfig::default()
    };
    let report = run(&config, false).await.unwrap();
    let s = &report.summary;
    assert!(s.requests > 0 && s.requests <= 3000, "{s:?}");
    assert_eq!(s.errors, 0);
    assert_eq!(report.series.iter().map(|x| x.requests).sum::<u64>(), s.requests);
    // Straight to the origin: every request reaches it, nothing is offloaded.
    assert_eq!(s.origin_requests, Some(s.requests));
    assert_eq!(s.offload, Some(0.0));
    let per_second: u64 = report.series.iter().filter_map(|x| x.origin_requests).sum();
    assert_eq!(per_second, s.requests);
    assert_eq!(s.cache.none, s.requests, "the origin sends no X-Cache");
    assert_eq!(s.avg_hops, None, "the origin sends no X-Beehive-Hops");
    assert!(s.p50_ms > 0.0 && s.p50_ms <= s.p99_ms && s.p99_ms <= s.max_ms);

    let json_path = temp_path("report.json");
    report.write_json(&json_path).unwrap();
    let text = std::fs::read_to_string(&json_path).unwrap();
    let value: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(value["schema_version"], SCHEMA_VERSION);
    // Every field the JSON carries is documented in SCHEMA.md.
    let schema = include_str!("../../SCHEMA.md");
    let documented = |k: &String| schema.contains(&format!("`{k}`"));
    for part in [&value, &value["summary"], &value["series"][0], &value["summary"]["cache"]] {
        let keys: Vec<&String> = part.as_object().unwrap().keys().collect();
        assert!(keys.iter().all(|k| documented(k)), "undocumented among {keys:?}");
    }
    let back: Report = serde_json::from_str(&text).unwrap();
    assert_eq!(back, report);

    let mut table = Vec::new();
    report.print_table(&mut table).unwrap();
    assert!(String::from_utf8(table).unwrap().contains("offload 0.0%"));

    let svg_path = temp_path("report.svg");
    plot::write_svg(&[("direct", &report), ("again", &back)], &svg_path).unwrap();
    let svg = std::fs::read_to_string(&svg_path).unwrap();
    assert!(svg.starts_with("<svg") || svg.starts_with("<?xml"), "{}", &svg[..40]);
    for label in ["direct p50", "direct p99", "again p99", "average hops", "throughput"] {
        assert!(svg.contains(label), "the SVG names {label}");
    }
    origin.shutdown().await.unwrap();
}

/// With a reversal at 1.5 s, the origin's counts before and after show object 0 most requested
/// first, then object M-1. The counts are real requests the origin served, split by a snapshot of
/// its `/stats` taken at the boundary (a few requests on the wrong side of it change nothing:
/// under Zipf(1.2) over 20 objects the top object takes about 30 % and the next about 13 %).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reversal_moves_the_most_requested_object() {
    let m = 20;
    let origin = Origin::start(OriginConfig { objects: m, ..origin_config() }).await.unwrap();
    let config = LoadConfig {
        targets: vec![origin.url()],
        objects: m,
        workload: beehive_loadgen::Workload::Zipf { alpha: 1.2 },
        mode: LoopMode::Closed { concurrency: 2 },
        duration: Some(Duration::from_secs(3)),
        phases: Phases { reverse_at: Some(Duration::from_millis(1500)), ..Phases::default() },
        ..LoadConfig::default()
    };
    let load = tokio::spawn(async move { run(&config, false).await });
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let first = stats(&origin.stats_url()).await;
    let report = load.await.unwrap().unwrap();
    let all = stats(&origin.stats_url()).await;
    assert_eq!(all.total, report.summary.requests);
    let top =
        |counts: &dyn Fn(&str) -> u64| (0..m).max_by_key(|i| counts(&format!("/o/{i}"))).unwrap();
    let before = |p: &str| first.paths.get(p).copied().unwrap_or(0);
    let after = |p: &str| all.paths.get(p).copied().unwrap_or(0) - before(p);
    assert!(first.total > 100 && all.total - first.total > 100, "{} {}", first.total, all.total);
    assert_eq!(top(&before), 0, "first half: {:?}", first.paths);
    assert_eq!(top(&after), m - 1, "second half: {:?}", all.paths);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_counts_every_body_that_is_not_the_origin_s() {
    let origin = Origin::start(origin_config()).await.unwrap();
    // A stand-in CDN that answers the same paths with other bytes: another seed.
    let liar = Origin::start(OriginConfig { seed: 2, ..origin_config() }).await.unwrap();
    let config = |target: &Origin| LoadConfig {
        targets: vec![target.url()],
        objects: 50,
        mode: LoopMode::Closed { concurrency: 4 },
        duration: Some(Duration::from_millis(1500)),
        requests: Some(400),
        origin_stats: Some(origin.stats_url()),
        verify: true,
        ..LoadConfig::default()
    };
    let honest = run(&config(&origin), false).await.unwrap();
    let s = &honest.summary;
    assert!(s.requests > 0);
    assert_eq!((s.verified_bodies, s.wrong_bodies), (Some(s.requests), Some(0)), "{s:?}");
    // Asking the origin for hashes does not count as origin traffic.
    assert_eq!(s.origin_requests, Some(s.requests));
    let lied = run(&config(&liar), false).await.unwrap();
    let s = &lied.summary;
    assert_eq!((s.verified_bodies, s.wrong_bodies), (Some(s.requests), Some(s.requests)), "{s:?}");
    let mut table = Vec::new();
    lied.print_table(&mut table).unwrap();
    let table = String::from_utf8(table).unwrap();
    assert!(table.contains(&format!("wrong {}", s.requests)), "{table}");
}
