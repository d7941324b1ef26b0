//! Churn: a live ring of `beehive node` processes under an open-loop load while its other
//! nodes are killed (`kill -9`) and restarted, as an operator would see it.
//!
//! The load goes only to entry nodes that are never killed, so every failed request is one that
//! a surviving node could have answered. Every body is compared with the origin's (blake3 of
//! each object, fetched directly before the run). At the end the ring must be one ring again.
//!
//! The test in CI is small (6 nodes, 150 req/s, 25 s). The operator-sized run, 8 nodes at
//! 300 req/s for 90 s, is `cargo test --release --test churn -- --ignored --nocapture`.

mod support;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use rand::{Rng, SeedableRng};
use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::*;

const SUFFIX: &str = "beehive.localhost";
const CONVERGE: Duration = Duration::from_secs(20);

/// The shape of one churn run.
struct Plan {
    nodes: usize,
    /// Nodes `0..entries` take the load and are never killed.
    entries: usize,
    rate: u32,
    run: Duration,
    /// One disruption this often.
    every: Duration,
    objects: u64,
    disruption: Disruption,
}

/// What happens to a node every `Plan::every`.
#[derive(Clone, Copy, PartialEq)]
enum Disruption {
    /// `kill -9`, then started again at the same address.
    KillRestart,
    /// `SIGSTOP` for the given time, then `SIGCONT`: a node that holds its connections open
    /// and answers nothing, the hardest failure to detect.
    Stop(Duration),
}

/// What the load saw.
#[derive(Debug, Default)]
struct Tally {
    ok: u64,
    /// Answered with a status other than 200, or not answered within the request bound.
    failed: u64,
    wrong_body: u64,
    latencies_ms: Vec<f64>,
    statuses: HashMap<String, u64>,
}

impl Tally {
    fn total(&self) -> u64 {
        self.ok + self.failed + self.wrong_body
    }

    fn p99_ms(&mut self) -> f64 {
        self.latencies_ms.sort_by(f64::total_cmp);
        let n = self.latencies_ms.len();
        if n == 0 {
            return 0.0;
        }
        self.latencies_ms[((n * 99) / 100).min(n - 1)]
    }
}

/// A port free now, not handed out before in this process, and below the kernel's ephemeral
/// range. The tests run in parallel, and their HTTP clients and nodes open connections whose
/// local ports come from that range: a port picked there (by binding port 0) was once taken
/// by an outgoing connection before its node was started on it ("Address already in use").
fn free_port() -> u16 {
    const LOWEST: u16 = 20_000;
    // Ports tried so far in this process; each is tried once (until the range wraps).
    static TRIED: AtomicU32 = AtomicU32::new(0);
    let range = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").ok();
    let first_ephemeral = range
        .and_then(|r| r.split_whitespace().next()?.parse::<u16>().ok())
        .filter(|p| *p > LOWEST)
        .unwrap_or(32_768);
    let span = u32::from(first_ephemeral - LOWEST);
    for _ in 0..span {
        // Started at an offset from the pid, so two test binaries at once start apart.
        let n = std::process::id().wrapping_add(TRIED.fetch_add(1, Ordering::Relaxed));
        let port = LOWEST + (n % span) as u16;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port in {LOWEST}..{first_ephemeral}");
}

fn node_cmd(rpc: u16, join: Option<SocketAddr>, origin: SocketAddr) -> Command {
    let mut cmd = node_command(SECRET);
    cmd.args(["--rpc", &format!("127.0.0.1:{rpc}"), "--admin", "127.0.0.1:0"])
        .args(["--http", "127.0.0.1:0", "--suffix", SUFFIX])
        .args(["--origin", &format!("site=http://{origin}")])
        .args(["--replication-ms", "1000", "--rate-per-sec", "100000"]);
    if let Some(j) = join {
        cmd.args(["--join", &j.to_string()]);
    }
    cmd
}

/// Sum of the origin's request counts for `/o/*` paths, and how many distinct ones.
fn origin_object_requests(origin: SocketAddr) -> (u64, u64) {
    let v = origin_stats(origin);
    let paths = v["paths"].as_object().expect("paths");
    let objects = paths.iter().filter(|(p, _)| p.starts_with("/o/"));
    objects.fold((0, 0), |(n, d), (_, c)| (n + c.as_u64().unwrap_or(0), d + 1))
}

/// Runs the open-loop load against `entries` until `stop`, checking bodies against `want`.
async fn load(
    entries: Vec<SocketAddr>,
    want: Arc<Vec<blake3::Hash>>,
    rate: u32,
    run: Duration,
    tally: Arc<Mutex<Tally>>,
) {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    let client: Client<HttpConnector, Empty<Bytes>> =
        Client::builder(TokioExecutor::new()).build(connector);
    let mut tick = tokio::time::interval(Duration::from_secs(1) / rate);
    // An open-loop load keeps its schedule: ticks the loader missed while the machine was
    // busy (six debug-build nodes restarting on two cores) are sent late, not dropped, so
    // the count the test checks is the CDN's and not the loader thread's scheduling.
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
    let start = tokio::time::Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    let mut n = 0usize;
    while start.elapsed() < run {
        tick.tick().await;
        let object = rng.random_range(0..want.len());
        let entry = entries[n % entries.len()];
        n += 1;
        let (client, want, tally) = (client.clone(), want.clone(), tally.clone());
        tasks.spawn(async move {
            let uri = format!("http://{entry}/o/{object}");
            let req = hyper::Request::get(uri)
                .header(hyper::header::HOST, format!("site.{SUFFIX}"))
                .body(Empty::new())
                .unwrap();
            let sent = Instant::now();
            let exchange = async {
                let resp = client.request(req).await.map_err(|e| format!("client: {e}"))?;
                let status = resp.status();
                let body = resp.into_body().collect().await.map_err(|e| format!("body: {e}"))?;
                Ok::<_, String>((status, body.to_bytes()))
            };
            let answer = tokio::time::timeout(Duration::from_secs(5), exchange).await;
            let ms = sent.elapsed().as_secs_f64() * 1e3;
            let mut t = tally.lock().unwrap();
            t.latencies_ms.push(ms);
            match answer {
                Ok(Ok((status, body))) if status == 200 => {
                    if blake3::hash(&body) == want[object] {
                        t.ok += 1;
                    } else {
                        t.wrong_body += 1;
                    }
                }
                Ok(Ok((status, _))) => {
                    t.failed += 1;
                    *t.statuses.entry(status.to_string()).or_default() += 1;
                }
                Ok(Err(e)) => {
                    t.failed += 1;
                    *t.statuses.entry(e).or_default() += 1;
                }
                Err(_) => {
                    t.failed += 1;
                    *t.statuses.entry("timeout".into()).or_default() += 1;
                }
            }
        });
        while tasks.try_join_next().is_some() {}
    }
    let drain = tokio::time::timeout(Duration::from_secs(10), async {
        while tasks.join_next().await.is_some() {}
    });
    let _ = drain.await;
}

/// What a churn run measured.
#[derive(Debug)]
struct Outcome {
    requests: u64,
    failed: u64,
    wrong_body: u64,
    p99_ms: f64,
    origin_per_object: f64,
    /// From the last restart to one ring again.
    reformed: Option<Duration>,
    restarts: usize,
    /// Successor copies held over all nodes at the end (objects, bytes): the storage the
    /// copies cost, against the bytes of the objects themselves.
    copies_held: (f64, f64),
    /// Copies pushed to successors and bodies taken from a copy instead of the origin, summed
    /// over the nodes' last runs (a killed node's counts are lost).
    copies_sent: f64,
    copies_fetched: f64,
}

/// Runs `plan` and checks the outcome with `check` while the nodes still run (a failed check
/// keeps their logs).
fn churn(plan: &Plan, check: impl FnOnce(&Outcome)) -> Outcome {
    let objects = plan.objects.to_string();
    let origin = start_origin("127.0.0.1:0", &["--objects", &objects, "--size", "2000"]);
    let want: Vec<blake3::Hash> = (0..plan.objects)
        .map(|i| {
            let url = format!("http://{}/o/{i}", origin.addr);
            let r = curl(&[&url]).expect("origin answers");
            assert_eq!(r.status, 200);
            blake3::hash(&r.body)
        })
        .collect();
    let (direct, _) = origin_object_requests(origin.addr);

    let ports: Vec<u16> = (0..plan.nodes).map(|_| free_port()).collect();
    let seed = SocketAddr::from(([127, 0, 0, 1], ports[0]));
    let mut nodes: Vec<NodeProc> = Vec::new();
    for (i, port) in ports.iter().enumerate() {
        let join = (i > 0).then_some(seed);
        nodes.push(start_command(node_cmd(*port, join, origin.addr)));
    }
    let all: Vec<&NodeProc> = nodes.iter().collect();
    let took = wait_for(CONVERGE, || cluster_error(&all, false).is_none());
    assert!(took.is_some(), "ring did not converge: {:?}", cluster_error(&all, false));
    let entries: Vec<SocketAddr> = nodes[..plan.entries].iter().map(|n| n.http.unwrap()).collect();

    let tally = Arc::new(Mutex::new(Tally::default()));
    let loader = {
        let (want, tally, rate, run) = (Arc::new(want), tally.clone(), plan.rate, plan.run);
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(load(entries, want, rate, run, tally));
        })
    };

    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
    let start = Instant::now();
    let mut restarts = 0;
    let mut last_restart = Instant::now();
    // Leave the last stretch of the run without a kill, so the load sees the ring heal.
    while start.elapsed() + plan.every * 2 <= plan.run {
        std::thread::sleep(plan.every);
        let victim = rng.random_range(plan.entries..plan.nodes);
        match plan.disruption {
            Disruption::KillRestart => {
                nodes[victim].signal("-KILL");
                let _ = nodes[victim].wait_exit(Duration::from_secs(5));
                nodes[victim] = start_command(node_cmd(ports[victim], Some(seed), origin.addr));
            }
            Disruption::Stop(pause) => {
                nodes[victim].signal("-STOP");
                std::thread::sleep(pause);
                nodes[victim].signal("-CONT");
            }
        }
        last_restart = Instant::now();
        restarts += 1;
    }
    let all: Vec<&NodeProc> = nodes.iter().collect();
    let reformed =
        wait_for(CONVERGE, || cluster_error(&all, false).is_none()).map(|_| last_restart.elapsed());
    if reformed.is_none() {
        eprintln!("not one ring: {:?}", cluster_error(&all, false));
    }
    loader.join().expect("load thread");
    let sum = |series: &str| nodes.iter().map(|n| n.metric(series)).sum::<f64>();
    let copies_held =
        (sum("beehive_successor_copies_held"), sum("beehive_successor_copy_bytes_held"));
    let copies_sent = sum("beehive_successor_copies_sent_total");
    let copies_fetched = sum("beehive_successor_copies_fetched_total");

    let (fetched, distinct) = origin_object_requests(origin.addr);
    let mut t = tally.lock().unwrap();
    eprintln!(
        "churn: {} requests, {} failed {:?}, {} wrong bodies, {restarts} restarts",
        t.total(),
        t.failed,
        t.statuses,
        t.wrong_body
    );
    let outcome = Outcome {
        requests: t.total(),
        failed: t.failed,
        wrong_body: t.wrong_body,
        p99_ms: t.p99_ms(),
        // The test's own direct fetches are one per object; the rest is the CDN's.
        origin_per_object: (fetched - direct) as f64 / distinct.max(1) as f64,
        reformed,
        restarts,
        copies_held,
        copies_sent,
        copies_fetched,
    };
    check(&outcome);
    outcome
}

fn check(plan: &Plan, o: &Outcome, max_failed: f64, max_p99_ms: f64, max_origin: f64) {
    eprintln!("{o:?}");
    let expected = (plan.rate as f64 * plan.run.as_secs_f64()) as u64;
    assert!(o.requests >= expected * 9 / 10, "the load ran short: {} of {expected}", o.requests);
    assert!(o.restarts >= 2, "too few restarts for a churn test");
    assert_eq!(o.wrong_body, 0, "a body differed from the origin's");
    let failed = o.failed as f64 / o.requests as f64;
    assert!(failed < max_failed, "{:.3} % of requests to surviving nodes failed", failed * 100.0);
    assert!(o.p99_ms < max_p99_ms, "p99 {:.1} ms", o.p99_ms);
    assert!(
        o.origin_per_object <= max_origin,
        "{:.2} origin fetches per object",
        o.origin_per_object
    );
    assert!(o.reformed.is_some(), "the ring did not re-form after the last restart");
    let (copies, bytes) = o.copies_held;
    eprintln!(
        "successor copies: {copies} held ({bytes} bytes), {} pushed, {} used instead of the origin",
        o.copies_sent, o.copies_fetched
    );
    // One copy per home object, on its home's successor; a copy of a former predecessor's is
    // dropped within seconds, so more than two per object would be a leak.
    assert!(
        copies <= 2.0 * plan.objects as f64,
        "{copies} copies held for {} objects",
        plan.objects
    );
}

/// Bounds with margin for a loaded 2-core CI machine running a debug-profile build.
#[test]
fn a_ring_under_kill_9_churn_answers_every_request_with_the_origin_s_bytes() {
    let plan = Plan {
        nodes: 6,
        entries: 2,
        rate: 150,
        run: Duration::from_secs(25),
        every: Duration::from_secs(4),
        objects: 300,
        disruption: Disruption::KillRestart,
    };
    churn(&plan, |o| check(&plan, o, 0.005, 1000.0, 3.0));
}

/// A node frozen with SIGSTOP keeps its sockets open and answers nothing: lookups through it
/// must time out and go around it, and it must take its place again after SIGCONT.
#[test]
fn a_ring_answers_around_a_frozen_node() {
    let plan = Plan {
        nodes: 6,
        entries: 2,
        rate: 150,
        run: Duration::from_secs(24),
        every: Duration::from_secs(4),
        objects: 300,
        disruption: Disruption::Stop(Duration::from_secs(3)),
    };
    churn(&plan, |o| check(&plan, o, 0.01, 3000.0, 2.0));
}

/// The operator-sized run of issue 18: 8 nodes, 300 req/s, a kill and restart every 5 s, with
/// the bounds (docs/experiments.md, "Churn"). A killed home's store is lost; the
/// origin bound holds because its successor keeps a copy of each of its objects
/// (src/node/copies.rs) and hands them back when it restarts.
#[test]
#[ignore = "90 s; run with --release --ignored"]
fn eight_nodes_under_churn_at_300_requests_per_second() {
    let plan = Plan {
        nodes: 8,
        entries: 2,
        rate: 300,
        run: Duration::from_secs(90),
        every: Duration::from_secs(5),
        objects: 1000,
        disruption: Disruption::KillRestart,
    };
    churn(&plan, |o| {
        check(&plan, o, 0.0005, 300.0, 1.1);
        let reformed = o.reformed.unwrap();
        assert!(reformed < Duration::from_secs(5), "one ring {reformed:?} after the last restart");
    });
}
