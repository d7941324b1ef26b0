//! Running a load: pre-flight, the closed or open loop, the once-a-second origin poll, the
//! progress bar.

use crate::config::{authority_of, parse_target, LoadConfig, LoadError, LoopMode, Spread};
use crate::origin::OriginStats;
use crate::recorder::{Outcome, Recorder};
use crate::report::Report;
use crate::workload::Chooser;
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::header::HOST;
use hyper::Request;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

/// The pre-flight connect bound per target.
const PREFLIGHT_TIMEOUT: Duration = Duration::from_secs(2);

type HttpClient = Client<HttpConnector, Empty<Bytes>>;

/// The one HTTP client of a run: keep-alive connections, pooled per host.
fn client(config: &LoadConfig) -> HttpClient {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    connector.set_keepalive(Some(Duration::from_secs(30)));
    connector.set_connect_timeout(Some(config.timeout));
    Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(config.pool_max_idle_per_host)
        .pool_idle_timeout(Duration::from_secs(30))
        .build(connector)
}

/// What every request task shares.
#[derive(Debug)]
struct Ctx {
    client: HttpClient,
    bases: Vec<String>,
    spread: Spread,
    next_target: AtomicUsize,
    host: Option<String>,
    path_template: String,
    timeout: Duration,
    chooser: Chooser,
    start: Instant,
    recorder: Mutex<Recorder>,
    completed: AtomicU64,
    verifier: Option<Verifier>,
}

/// `--verify`: every 200 body against the blake3 the built-in origin gives for its path.
#[derive(Debug)]
struct Verifier {
    /// The origin's base URL (`http://host:port`).
    origin: String,
    /// Hashes already asked for, by object.
    expected: Mutex<HashMap<u64, blake3::Hash>>,
    checked: AtomicU64,
    wrong: AtomicU64,
}

impl Verifier {
    async fn hash_of(&self, client: &HttpClient, path: &str) -> Option<blake3::Hash> {
        let req = Request::get(format!("{}{path}/hash", self.origin)).body(Empty::new()).ok()?;
        let fetch = async {
            let resp = client.request(req).await.ok()?;
            if !resp.status().is_success() {
                return None;
            }
            let body = resp.into_body().collect().await.ok()?.to_bytes();
            blake3::Hash::from_hex(std::str::from_utf8(&body).ok()?.trim()).ok()
        };
        tokio::time::timeout(Duration::from_secs(2), fetch).await.ok().flatten()
    }
}

impl Ctx {
    fn target(&self, rng: &mut impl Rng) -> usize {
        match self.spread {
            Spread::RoundRobin => {
                self.next_target.fetch_add(1, Ordering::Relaxed) % self.bases.len()
            }
            Spread::Random => rng.random_range(0..self.bases.len()),
        }
    }

    /// Checks a 200 body of `object` (with `--verify`). Counted wrong only if it differs from
    /// the origin's hash asked for again (the object may have been bumped since), or if the
    /// origin cannot say.
    async fn verify(&self, object: u64, body: Option<Bytes>) {
        let (Some(v), Some(body)) = (&self.verifier, body) else { return };
        let got = blake3::hash(&body);
        let path = self.path_template.replace("{i}", &object.to_string());
        let known = v.expected.lock().expect("verifier lock").get(&object).copied();
        let matches = match known {
            Some(h) if h == got => true,
            _ => {
                let fresh = v.hash_of(&self.client, &path).await;
                if let Some(h) = fresh {
                    v.expected.lock().expect("verifier lock").insert(object, h);
                }
                fresh == Some(got)
            }
        };
        v.checked.fetch_add(1, Ordering::Relaxed);
        if !matches {
            v.wrong.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Sends one GET for `object` to entry node `target` and reads the whole body; the body
    /// is returned for verification (only with `--verify`, and only of a 200).
    async fn send(&self, target: usize, object: u64) -> (Outcome, Option<Bytes>) {
        let path = self.path_template.replace("{i}", &object.to_string());
        let mut req = Request::get(format!("{}{path}", self.bases[target]));
        if let Some(host) = &self.host {
            req = req.header(HOST, host.as_str());
        }
        let Ok(req) = req.body(Empty::new()) else { return (Outcome::Other, None) };
        let exchange = async {
            let resp = self.client.request(req).await.map_err(|e| {
                if e.is_connect() {
                    Outcome::Connect
                } else {
                    Outcome::Other
                }
            })?;
            let header = |name: &str| {
                resp.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_string)
            };
            let hops = header("x-beehive-hops").and_then(|h| h.trim().parse().ok());
            let x_cache = header("x-cache");
            let status = resp.status().as_u16();
            let body = resp.into_body().collect().await.map_err(|_| Outcome::Other)?;
            let keep = self.verifier.is_some() && status == 200;
            Ok((Outcome::Answered { status, hops, x_cache }, keep.then(|| body.to_bytes())))
        };
        match tokio::time::timeout(self.timeout, exchange).await {
            Ok(Ok(answer)) => answer,
            Ok(Err(o)) => (o, None),
            Err(_) => (Outcome::Timeout, None),
        }
    }

    /// Records an outcome timed from `from` (the send, or the intended send time).
    fn record(&self, from: Instant, outcome: &Outcome) {
        let now = Instant::now();
        self.recorder.lock().expect("recorder lock").record(
            now - self.start,
            now.saturating_duration_since(from),
            outcome,
        );
        self.completed.fetch_add(1, Ordering::Relaxed);
    }
}

/// Connects to each target within [`PREFLIGHT_TIMEOUT`]; the error names the first that fails.
async fn preflight(config: &LoadConfig) -> Result<(), LoadError> {
    for target in &config.targets {
        let authority = authority_of(&parse_target(target)?);
        let unreachable =
            |reason: String| LoadError::Unreachable { target: target.clone(), reason };
        match tokio::time::timeout(PREFLIGHT_TIMEOUT, tokio::net::TcpStream::connect(&authority))
            .await
        {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => return Err(unreachable(e.to_string())),
            Err(_) => {
                return Err(unreachable(format!("no connection within {PREFLIGHT_TIMEOUT:?}")))
            }
        }
    }
    Ok(())
}

/// Reads the origin's request total from its `/stats`.
async fn origin_total(client: &HttpClient, url: &str) -> Result<u64, LoadError> {
    let err = |reason: String| LoadError::OriginStats { url: url.to_string(), reason };
    let req = Request::get(url).body(Empty::new()).map_err(|e| err(e.to_string()))?;
    let fetch = async {
        let resp = client.request(req).await.map_err(|e| err(e.to_string()))?;
        if !resp.status().is_success() {
            return Err(err(format!("status {}", resp.status())));
        }
        let body = resp.into_body().collect().await.map_err(|e| err(e.to_string()))?.to_bytes();
        let stats: OriginStats = serde_json::from_slice(&body).map_err(|e| err(e.to_string()))?;
        Ok(stats.total)
    };
    tokio::time::timeout(Duration::from_secs(2), fetch)
        .await
        .unwrap_or_else(|_| Err(err("no answer within 2 s".to_string())))
}

/// Runs the load described by `config` and returns its report. `progress` draws a progress bar
/// on stderr, only if stderr is a terminal.
pub async fn run(config: &LoadConfig, progress: bool) -> Result<Report, LoadError> {
    config.validate()?;
    preflight(config).await?;
    let client = client(config);
    let origin_url = config.origin_stats.clone();
    let mut origin_last = match &origin_url {
        Some(url) => Some(origin_total(&client, url).await?),
        None => None,
    };
    let start = Instant::now();
    let deadline = config.duration.filter(|d| !d.is_zero()).map(|d| start + d);
    let requests = config.requests.filter(|n| *n > 0);
    let ctx = Arc::new(Ctx {
        client: client.clone(),
        bases: config.targets.iter().map(|t| t.trim_end_matches('/').to_string()).collect(),
        spread: config.spread,
        next_target: AtomicUsize::new(0),
        host: config.host.clone(),
        path_template: config.path_template.clone(),
        timeout: config.timeout,
        chooser: Chooser::new(config),
        start,
        recorder: Mutex::new(Recorder::new(
            deadline.map(|d| ((d - start).as_secs_f64().ceil() as u64).max(1) - 1),
        )),
        completed: AtomicU64::new(0),
        verifier: origin_url.as_ref().filter(|_| config.verify).map(|stats| Verifier {
            origin: stats.trim_end_matches('/').trim_end_matches("/stats").to_string(),
            expected: Mutex::new(HashMap::new()),
            checked: AtomicU64::new(0),
            wrong: AtomicU64::new(0),
        }),
    });
    let bar = crate::progress::Bar::new(progress, config.duration, requests);

    let load = {
        let ctx = ctx.clone();
        let config = config.clone();
        tokio::spawn(async move {
            match config.mode {
                LoopMode::Closed { concurrency } => {
                    closed_loop(ctx, concurrency, config.seed, deadline, requests).await
                }
                LoopMode::Open { rate, max_in_flight } => {
                    open_loop(ctx, rate, max_in_flight, config.seed, deadline, requests).await
                }
            }
        })
    };
    tokio::pin!(load);
    let mut tick =
        tokio::time::interval_at(start + Duration::from_millis(250), Duration::from_millis(250));
    let mut ticks = 0u64;
    loop {
        tokio::select! {
            _ = &mut load => break,
            _ = tick.tick() => {
                ticks += 1;
                let elapsed = start.elapsed();
                // An idle second (a stalled server) still gets its entry in the series.
                if deadline.is_none_or(|d| Instant::now() < d) {
                    ctx.recorder.lock().expect("recorder lock").touch(elapsed);
                }
                bar.update(elapsed, ctx.completed.load(Ordering::Relaxed));
                if ticks % 4 == 0 {
                    if let (Some(url), Some(last)) = (&origin_url, origin_last.as_mut()) {
                        // A failed poll is retried next second; the delta is not lost.
                        if let Ok(total) = origin_total(&client, url).await {
                            let at = Duration::from_secs(ticks / 4 - 1);
                            ctx.recorder.lock().expect("recorder lock")
                                .record_origin(at, total.saturating_sub(*last));
                            *last = total;
                        }
                    }
                }
            }
        }
    }
    let elapsed = start.elapsed();
    if let (Some(url), Some(last)) = (&origin_url, origin_last.as_mut()) {
        // A failed last poll loses only the last second's origin count, not the report.
        let total = origin_total(&client, url).await.unwrap_or(*last);
        let mut recorder = ctx.recorder.lock().expect("recorder lock");
        // The rest goes to the last second that exists, not to a new empty one.
        let last_second = recorder.seconds().saturating_sub(1);
        let at = Duration::from_secs((ticks / 4).min(last_second));
        recorder.record_origin(at, total.saturating_sub(*last));
    }
    bar.finish();
    let recorder = ctx.recorder.lock().expect("recorder lock");
    let mut report = recorder.report(config, elapsed, origin_url.is_some());
    if let Some(v) = &ctx.verifier {
        report.summary.verified_bodies = Some(v.checked.load(Ordering::Relaxed));
        report.summary.wrong_bodies = Some(v.wrong.load(Ordering::Relaxed));
    }
    Ok(report)
}

/// A worker's RNG: one seed, a distinct stream per worker.
fn rng_for(seed: u64, worker: u64) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(worker);
    rng
}

async fn closed_loop(
    ctx: Arc<Ctx>,
    concurrency: usize,
    seed: u64,
    deadline: Option<Instant>,
    requests: Option<u64>,
) {
    let issued = Arc::new(AtomicU64::new(0));
    let mut workers = tokio::task::JoinSet::new();
    for w in 0..concurrency {
        let ctx = ctx.clone();
        let issued = issued.clone();
        workers.spawn(async move {
            let mut rng = rng_for(seed, w as u64);
            loop {
                let sent = Instant::now();
                if deadline.is_some_and(|d| sent >= d) {
                    break;
                }
                if requests.is_some_and(|n| issued.fetch_add(1, Ordering::Relaxed) >= n) {
                    break;
                }
                let object = ctx.chooser.pick(&mut rng, sent - ctx.start);
                let target = ctx.target(&mut rng);
                let (outcome, body) = ctx.send(target, object).await;
                ctx.record(sent, &outcome);
                ctx.verify(object, body).await;
            }
        });
    }
    while workers.join_next().await.is_some() {}
}

async fn open_loop(
    ctx: Arc<Ctx>,
    rate: f64,
    max_in_flight: usize,
    seed: u64,
    deadline: Option<Instant>,
    requests: Option<u64>,
) {
    let slots = Arc::new(tokio::sync::Semaphore::new(max_in_flight));
    let mut rng = rng_for(seed, u64::MAX);
    let mut in_flight = tokio::task::JoinSet::new();
    // How many sends the schedule holds: every 1/rate s until the deadline, capped by the count.
    let by_time = deadline.map(|d| ((d - ctx.start).as_secs_f64() * rate).ceil() as u64);
    let scheduled = match (by_time, requests) {
        (Some(a), Some(b)) => a.min(b),
        (Some(a), None) => a,
        (None, Some(b)) => b,
        (None, None) => 0,
    };
    for i in 0..scheduled {
        let intended = ctx.start + Duration::from_secs_f64(i as f64 / rate);
        if deadline.is_some_and(|d| intended >= d) {
            break;
        }
        tokio::time::sleep_until(intended).await;
        while in_flight.try_join_next().is_some() {}
        let permit = match slots.clone().try_acquire_owned() {
            Ok(p) => p,
            Err(_) => {
                ctx.recorder.lock().expect("recorder lock").late += 1;
                let wait = slots.clone().acquire_owned();
                let permit = match deadline {
                    Some(d) => tokio::time::timeout_at(d, wait).await.ok(),
                    None => Some(wait.await),
                };
                match permit {
                    Some(Ok(p)) => p,
                    _ => {
                        let mut rec = ctx.recorder.lock().expect("recorder lock");
                        rec.late -= 1;
                        rec.unsent += scheduled - i;
                        break;
                    }
                }
            }
        };
        let object = ctx.chooser.pick(&mut rng, intended - ctx.start);
        let target = ctx.target(&mut rng);
        let ctx = ctx.clone();
        in_flight.spawn(async move {
            let _slot = permit;
            let (outcome, body) = ctx.send(target, object).await;
            ctx.record(intended, &outcome);
            ctx.verify(object, body).await;
        });
    }
    while in_flight.join_next().await.is_some() {}
}
