//! Bad settings are refused with the right `LoadError`, before any request, never a panic.

use beehive_loadgen::{run, LoadConfig, LoadError, LoopMode, Workload};

fn base() -> LoadConfig {
    LoadConfig {
        targets: vec!["http://127.0.0.1:1".into()],
        duration: Some(std::time::Duration::from_millis(200)),
        ..LoadConfig::default()
    }
}

#[tokio::test]
async fn configuration_errors() {
    let c = LoadConfig { workload: Workload::Zipf { alpha: 0.0 }, ..base() };
    assert!(matches!(run(&c, false).await, Err(LoadError::InvalidAlpha(a)) if a == 0.0));
    let c = LoadConfig { workload: Workload::Zipf { alpha: -0.5 }, ..base() };
    assert!(matches!(c.validate(), Err(LoadError::InvalidAlpha(_))));
    let c = LoadConfig { mode: LoopMode::Open { rate: 0.0, max_in_flight: 10 }, ..base() };
    assert!(matches!(run(&c, false).await, Err(LoadError::InvalidRate(_))));
    let c = LoadConfig { targets: vec![], ..base() };
    assert!(matches!(run(&c, false).await, Err(LoadError::NoTargets)));
    let c = LoadConfig { targets: vec!["not a url".into()], ..base() };
    assert!(matches!(c.validate(), Err(LoadError::BadTarget { .. })));
    let c = LoadConfig { objects: 0, ..base() };
    assert!(matches!(c.validate(), Err(LoadError::NoObjects)));
    let c = LoadConfig { mode: LoopMode::Closed { concurrency: 0 }, ..base() };
    assert!(matches!(c.validate(), Err(LoadError::ZeroConcurrency)));
    let c = LoadConfig { verify: true, ..base() };
    assert!(matches!(c.validate(), Err(LoadError::VerifyWithoutOrigin)));
}

#[tokio::test]
async fn unreachable_target_is_named() {
    // A port that was just free: bind, read it, close.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let target = format!("http://127.0.0.1:{port}");
    let c = LoadConfig { targets: vec![target.clone()], ..base() };
    let started = std::time::Instant::now();
    match run(&c, false).await {
        Err(e @ LoadError::Unreachable { .. }) => {
            assert!(e.to_string().contains(&target), "the message names the target: {e}");
        }
        other => panic!("expected Unreachable, got {other:?}"),
    }
    assert!(started.elapsed() < std::time::Duration::from_secs(3), "bounded by the pre-flight");
}
