//! Against fake nodes that answer with `X-Beehive-Hops` and `X-Cache`: the report's hop histogram,
//! cache mix and errors match what the nodes sent, the Host header is the CDN name, and requests
//! are spread round-robin over the entry nodes.

use beehive_loadgen::{run, LoadConfig, LoopMode, Workload};
use bytes::Bytes;
use http_body_util::Full;
use hyper_util::rt::TokioIo;
use std::sync::{Arc, Mutex};

/// (Host header, object index) of every request a fake node saw.
type Log = Arc<Mutex<Vec<(String, u64)>>>;

/// A fake node: object `i` answers with `i % 3` hops, HIT for even `i`, MISS for odd, object 7
/// with a 503, and object `hang` (if any) only after 5 s.
async fn fake_node(hang: Option<u64>) -> (String, Log) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let log: Log = Arc::default();
    let seen = log.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let seen = seen.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req: hyper::Request<_>| {
                    let host = req.headers().get("host").unwrap().to_str().unwrap().to_string();
                    let i: u64 = req.uri().path().trim_start_matches("/o/").parse().unwrap();
                    seen.lock().unwrap().push((host, i));
                    let delay = if hang == Some(i) { 5000 } else { 0 };
                    let resp = hyper::Response::builder()
                        .status(if i == 7 { 503 } else { 200 })
                        .header("x-beehive-hops", (i % 3).to_string())
                        .header("x-cache", if i % 2 == 0 { "HIT" } else { "MISS" })
                        .body(Full::new(Bytes::from_static(b"x")))
                        .unwrap();
                    async move {
                        tokio::time::sleep(std::time::Duration::from_millis(delay)).await;
                        Ok::<_, std::convert::Infallible>(resp)
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (format!("http://{addr}"), log)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hops_cache_errors_host_and_spread() {
    let (a, log_a) = fake_node(None).await;
    let (b, log_b) = fake_node(None).await;
    let config = LoadConfig {
        targets: vec![a, b],
        host: Some("site.beehive.localhost".into()),
        workload: Workload::Uniform,
        objects: 10,
        mode: LoopMode::Closed { concurrency: 3 },
        duration: None,
        requests: Some(300),
        ..LoadConfig::default()
    };
    let report = run(&config, false).await.unwrap();
    let s = &report.summary;
    let seen: Vec<(String, u64)> =
        log_a.lock().unwrap().iter().chain(log_b.lock().unwrap().iter()).cloned().collect();
    assert_eq!(s.requests, 300);
    assert_eq!(seen.len(), 300);
    assert_eq!(log_a.lock().unwrap().len(), 150, "round-robin over two entry nodes");
    assert!(seen.iter().all(|(host, _)| host == "site.beehive.localhost"));

    let count = |f: &dyn Fn(u64) -> bool| seen.iter().filter(|(_, i)| f(*i)).count() as u64;
    for h in 0..3 {
        assert_eq!(s.hops.get(&h).copied().unwrap_or(0), count(&|i| i % 3 == h as u64), "{h} hops");
    }
    let hop_sum: u64 = seen.iter().map(|(_, i)| i % 3).sum();
    assert!((s.avg_hops.unwrap() - hop_sum as f64 / 300.0).abs() < 1e-9);
    assert_eq!(s.cache.hit, count(&|i| i % 2 == 0));
    assert_eq!(s.cache.miss, count(&|i| i % 2 == 1));
    assert_eq!(s.errors, count(&|i| i == 7));
    assert_eq!(s.error_counts.by_status.get(&503).copied().unwrap_or(0), s.errors);
    assert!(s.errors > 0, "uniform over 10 objects hits object 7 in 300 requests");
}

/// Requests with no answer within the timeout are counted as timeouts, and the run still ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeouts_are_counted() {
    let (a, log) = fake_node(Some(3)).await;
    let config = LoadConfig {
        targets: vec![a],
        workload: Workload::Uniform,
        objects: 10,
        mode: LoopMode::Closed { concurrency: 4 },
        duration: None,
        requests: Some(80),
        timeout: std::time::Duration::from_millis(300),
        ..LoadConfig::default()
    };
    let started = std::time::Instant::now();
    let report = run(&config, false).await.unwrap();
    let hung = log.lock().unwrap().iter().filter(|(_, i)| *i == 3).count() as u64;
    let s = &report.summary;
    assert_eq!(s.requests, 80);
    assert!(hung > 0);
    assert_eq!(s.error_counts.timeout, hung, "{s:?}");
    assert!(s.max_ms >= 300.0 && s.max_ms < 1000.0, "timed out at the bound: {}", s.max_ms);
    assert!(started.elapsed() < std::time::Duration::from_secs(4));
}

/// A node that goes away after the pre-flight check: the requests fail as connect errors (a
/// request racing the close may fail otherwise), all are counted, and the run ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_errors_are_counted() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let target = format!("http://{}", listener.local_addr().unwrap());
    // Accept the pre-flight connection, then close the listening socket.
    tokio::spawn(async move {
        let _ = listener.accept().await;
    });
    let config = LoadConfig {
        targets: vec![target],
        mode: LoopMode::Closed { concurrency: 2 },
        duration: None,
        requests: Some(20),
        ..LoadConfig::default()
    };
    let report = run(&config, false).await.unwrap();
    let s = &report.summary;
    assert_eq!((s.requests, s.errors), (20, 20), "{s:?}");
    assert!(s.error_counts.connect >= 18, "{:?}", s.error_counts);
    assert_eq!(s.error_counts.connect + s.error_counts.other, 20);
}
