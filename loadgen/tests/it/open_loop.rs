//! The open loop is honest about a stalled server; the closed loop, by construction, is not.
//!
//! The test server answers at once, except that every request arriving in the window
//! [0.5 s, 2.0 s) after its first request is held for 1 s before the answer.
//!
//! - Open loop, 50 req/s for 3 s: 150 requests on a fixed schedule; the ~75 whose intended send
//!   time falls in the window each wait 1 s, and latency counts from the intended time, so about
//!   half the requests take >= 1 s and p99 >= 1 s, deterministically.
//! - Closed loop, one worker, 3 s: the worker is stuck on the request sent at ~0.5 s until ~1.5 s,
//!   sends one more (still in the window) that returns at ~2.5 s, then runs fast again. Only 2
//!   requests are slow, out of the thousands sent in the ~1 s outside the window (a loopback
//!   round trip is well under 1 ms), so p99 < 1 s: the stall is hidden (coordinated omission).

use beehive_loadgen::{run, LoadConfig, LoopMode};
use bytes::Bytes;
use http_body_util::Full;
use hyper_util::rt::TokioIo;
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio::time::Instant;

/// Starts the stalling server; returns its base URL. It lives as long as the test's runtime.
async fn stalling_server() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let first: Arc<OnceLock<Instant>> = Arc::new(OnceLock::new());
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let first = first.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |_req| {
                    let first = first.clone();
                    async move {
                        let now = Instant::now();
                        let since = now - *first.get_or_init(|| now);
                        if since >= Duration::from_millis(500)
                            && since < Duration::from_millis(2000)
                        {
                            tokio::time::sleep(Duration::from_secs(1)).await;
                        }
                        Ok::<_, std::convert::Infallible>(hyper::Response::new(Full::new(
                            Bytes::from_static(b"ok"),
                        )))
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    format!("http://{addr}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_loop_sees_the_stall() {
    let target = stalling_server().await;
    let config = LoadConfig {
        targets: vec![target],
        mode: LoopMode::Open { rate: 50.0, max_in_flight: 1000 },
        duration: Some(Duration::from_secs(3)),
        ..LoadConfig::default()
    };
    let report = run(&config, false).await.unwrap();
    let s = &report.summary;
    assert_eq!(s.requests, 150, "{s:?}");
    assert_eq!(s.errors, 0);
    assert_eq!((s.late, s.unsent), (0, 0));
    assert!(s.p99_ms >= 1000.0, "open loop p99 {} ms", s.p99_ms);
    // About half the requests are in the window (75 of 150), so p90 is slow too.
    assert!(s.p90_ms >= 1000.0, "open loop p90 {} ms", s.p90_ms);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closed_loop_hides_the_stall() {
    let target = stalling_server().await;
    let config = LoadConfig {
        targets: vec![target],
        mode: LoopMode::Closed { concurrency: 1 },
        duration: Some(Duration::from_secs(3)),
        ..LoadConfig::default()
    };
    let report = run(&config, false).await.unwrap();
    let s = &report.summary;
    assert!(s.requests > 300, "{s:?}");
    assert!(s.max_ms >= 1000.0, "the stall happened: max {} ms", s.max_ms);
    assert!(s.p99_ms < 1000.0, "closed loop p99 {} ms", s.p99_ms);
}

/// A bounded in-flight window against the same stall: sends are delayed (counted as late) and
/// still timed from their intended send time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_flight_bound_counts_late_sends() {
    let target = stalling_server().await;
    let config = LoadConfig {
        targets: vec![target],
        mode: LoopMode::Open { rate: 50.0, max_in_flight: 4 },
        duration: Some(Duration::from_secs(3)),
        ..LoadConfig::default()
    };
    let report = run(&config, false).await.unwrap();
    let s = &report.summary;
    assert!(s.late > 0, "{s:?}");
    assert_eq!(s.requests + s.unsent, 150, "{s:?}");
    assert!(s.p99_ms >= 1000.0, "p99 {} ms", s.p99_ms);
}
