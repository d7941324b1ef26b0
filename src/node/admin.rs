//! The admin listener (loopback by default): health, readiness, the ring as JSON, Prometheus
//! metrics, the objects this node knows, operator counters, and the dashboard.
//!
//! | route | answer |
//! |---|---|
//! | `GET /healthz` | 200 `ok` while the process serves |
//! | `GET /readyz` | 200 when joined and stabilised (successor and predecessor known), else 503 |
//! | `GET /ring` | the [`RingSnapshot`] as JSON (fields documented there) |
//! | `GET /metrics` | OpenMetrics text, one registry per node (series listed in [`super::metrics`]) |
//! | `GET /objects` | `[{"key", "len", "hash"}]` of the bodies held |
//! | `GET /objects?top=N` | the N (≤ 256) hottest objects this node knows, hottest first: [`ObjectView`] |
//! | `GET /stats` | counters an operator watches, see below |
//! | `GET /` or `/dashboard` | the dashboard: one HTML page that polls the three JSON routes |
//! | `PUT /objects/NAME` | stores the request body under key blake3(NAME), to try handoff by hand |
//!
//! `/stats` is one JSON object; counters are totals since the node started (the dashboard
//! takes differences between polls for rates and windowed averages):
//!
//! * `id`, `addr`, `mode`, `target_hops`, `ready`, `now_ms` — as in `/ring`;
//! * `ring` — `{size_estimate, peers, suspects}`: nodes estimated, peers routed through,
//!   peers suspected;
//! * `lookups` — object lookups started here: `{local, remote, failed, hops_sum, avg_hops}`;
//!   `local` ones were answered from this node (0 hops); `avg_hops` = `hops_sum` / (`local` +
//!   `remote`), `null` before the first;
//! * `http` — `{requests, hits, hit_ratio, response_bytes}` from the HTTP face's counters
//!   (`hits`: `X-Cache` HIT or STALE; `hit_ratio` `null` before the first request; all 0 until
//!   the HTTP face is wired in with [`Metrics::set_http_source`]);
//! * `leader` — the newest leader result ([`LeaderView`]: epoch, leader, alpha, objects (M),
//!   nodes (N), hop_cost, target_hops, thresholds, model_stored_per_node, age_intervals) or
//!   `null`;
//! * `store` — `{home_objects, home_bytes, replica_objects, replica_bytes}` (refreshed each
//!   second);
//! * `replication` — `{pulls, offers, fetches, fetch_bytes, count_entries, reports}`: pulls
//!   sent, offers received, body fetches asked for and their sizes, per-key counts sent toward
//!   homes, reports sent toward the leader.
//!
//! Every answer reads the published snapshot or an atomic metric: nothing here waits for the
//! protocol core.

use super::metrics::Metrics;
use super::snapshot::{hex_id, LeaderView, ObjectView, OpsTracker, RingSnapshot, StoreTotals};
use super::store::{BodyStore, StoredObject};
use arc_swap::ArcSwap;
use beehive_replication::Id;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::CONTENT_TYPE;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;

/// What the admin handlers read.
#[derive(Debug, Clone)]
pub struct AdminState {
    pub snapshot: Arc<ArcSwap<RingSnapshot>>,
    pub metrics: Arc<Metrics>,
    pub store: Arc<dyn BodyStore>,
    pub max_body_bytes: usize,
    /// True once shutdown began: `/readyz` answers 503 from then on.
    pub stopping: watch::Receiver<bool>,
}

/// Serves admin connections until the process ends.
pub async fn serve(listener: TcpListener, state: AdminState) {
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                tracing::warn!(error = %e, "admin accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let state = state.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| {
                let state = state.clone();
                async move { Ok::<_, Infallible>(route(&state, req).await) }
            });
            let conn = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(Duration::from_secs(5))
                .serve_connection(TokioIo::new(stream), service);
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "admin connection ended");
            }
        });
    }
}

fn reply(status: StatusCode, content_type: &str, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body.into()));
    *response.status_mut() = status;
    if let Ok(value) = content_type.parse() {
        response.headers_mut().insert(CONTENT_TYPE, value);
    }
    response
}

fn text(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    reply(status, "text/plain; charset=utf-8", body)
}

fn json(value: &impl serde::Serialize) -> Response<Full<Bytes>> {
    match serde_json::to_vec(value) {
        Ok(body) => reply(StatusCode::OK, "application/json", body),
        Err(_) => text(StatusCode::INTERNAL_SERVER_ERROR, "cannot encode\n"),
    }
}

/// The dashboard page: plain HTML, CSS and JS, no external URL, compiled into the binary.
pub const DASHBOARD: &str = include_str!("dashboard.html");

/// `top=N` from a query string, capped at [`OpsTracker::TOP`]; `None` without `top`.
fn top_param(query: Option<&str>) -> Option<usize> {
    let value = query?.split('&').find_map(|kv| kv.strip_prefix("top="))?;
    Some(value.parse::<usize>().unwrap_or(OpsTracker::TOP).min(OpsTracker::TOP))
}

/// The hottest objects this node knows (`/objects?top=N`).
pub fn top_objects(snap: &RingSnapshot, n: usize) -> Vec<ObjectView> {
    snap.ops.top.iter().take(n).cloned().collect()
}

/// The `/stats` document (see the module docs).
#[derive(Debug, Clone, serde::Serialize)]
pub struct Stats {
    pub id: String,
    pub addr: String,
    pub mode: &'static str,
    pub target_hops: f64,
    pub ready: bool,
    pub now_ms: u64,
    pub ring: RingStats,
    pub lookups: LookupStats,
    pub http: HttpStats,
    pub leader: Option<LeaderView>,
    pub store: StoreTotals,
    pub replication: ReplicationStats,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct RingStats {
    pub size_estimate: u64,
    pub peers: usize,
    pub suspects: usize,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct LookupStats {
    pub local: u64,
    pub remote: u64,
    pub failed: u64,
    pub hops_sum: u64,
    pub avg_hops: Option<f64>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct HttpStats {
    pub requests: u64,
    pub hits: u64,
    pub hit_ratio: Option<f64>,
    pub response_bytes: u64,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct ReplicationStats {
    pub pulls: u64,
    pub offers: u64,
    pub fetches: u64,
    pub fetch_bytes: u64,
    pub count_entries: u64,
    pub reports: u64,
}

/// Builds `/stats` from the snapshot and the metrics.
pub fn stats(snap: &RingSnapshot, m: &Metrics) -> Stats {
    let (local, remote, failed) = m.lookup_counts();
    let hops_sum = m.object_lookup_hops_sum.get();
    let found = local + remote;
    let http = m.http_totals();
    Stats {
        id: snap.id.clone(),
        addr: snap.addr.clone(),
        mode: snap.mode,
        target_hops: snap.target_hops,
        ready: snap.ready,
        now_ms: snap.now_ms,
        ring: RingStats {
            size_estimate: snap.ring_size_estimate,
            peers: snap.peers.len(),
            suspects: snap.suspects.len(),
        },
        lookups: LookupStats {
            local,
            remote,
            failed,
            hops_sum,
            avg_hops: (found > 0).then(|| hops_sum as f64 / found as f64),
        },
        http: HttpStats {
            requests: http.requests,
            hits: http.hits,
            hit_ratio: (http.requests > 0).then(|| http.hits as f64 / http.requests as f64),
            response_bytes: http.response_bytes,
        },
        leader: snap.leader.clone(),
        store: snap.ops.store,
        replication: ReplicationStats {
            pulls: m.replication_pulls.get(),
            offers: m.replication_offers.get(),
            fetches: m.replication_fetches.get(),
            fetch_bytes: m.replication_fetch_bytes.get(),
            count_entries: m.aggregation_count_entries.get(),
            reports: m.aggregation_reports.get(),
        },
    }
}

async fn route(state: &AdminState, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let path = req.uri().path().to_string();
    let top = top_param(req.uri().query());
    match (req.method(), path.as_str()) {
        (&Method::GET, "/" | "/dashboard") => {
            reply(StatusCode::OK, "text/html; charset=utf-8", DASHBOARD)
        }
        (&Method::GET, "/stats") => json(&stats(&state.snapshot.load(), &state.metrics)),
        (&Method::GET, "/objects") if top.is_some() => {
            json(&top_objects(&state.snapshot.load(), top.unwrap_or(0)))
        }
        (&Method::GET, "/healthz") => text(StatusCode::OK, "ok\n"),
        (&Method::GET, "/readyz") => {
            if state.snapshot.load().ready && !*state.stopping.borrow() {
                text(StatusCode::OK, "ready\n")
            } else {
                text(StatusCode::SERVICE_UNAVAILABLE, "not ready\n")
            }
        }
        (&Method::GET, "/ring") => json(&**state.snapshot.load()),
        (&Method::GET, "/metrics") => reply(
            StatusCode::OK,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
            state.metrics.encode(),
        ),
        (&Method::GET, "/objects") => {
            let list: Vec<serde_json::Value> = state
                .store
                .list()
                .into_iter()
                .map(|(key, len, hash)| {
                    serde_json::json!({
                        "key": hex_id(key),
                        "len": len,
                        "hash": blake3::Hash::from(hash).to_hex().to_string(),
                    })
                })
                .collect();
            json(&list)
        }
        (&Method::PUT, p) if p.starts_with("/objects/") && p.len() > "/objects/".len() => {
            let key = Id::hash(&p.as_bytes()["/objects/".len()..]);
            match Limited::new(req.into_body(), state.max_body_bytes).collect().await {
                Ok(body) => {
                    state.store.put(key, StoredObject::new(body.to_bytes()));
                    reply(StatusCode::CREATED, "text/plain; charset=utf-8", hex_id(key) + "\n")
                }
                Err(_) => text(StatusCode::PAYLOAD_TOO_LARGE, "body over the size cap\n"),
            }
        }
        _ => text(StatusCode::NOT_FOUND, "not found\n"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node::metrics::HttpTotals;
    use beehive_replication::{ChordConfig, Node, Peer};

    #[test]
    fn top_is_parsed_and_capped() {
        assert_eq!(top_param(None), None);
        assert_eq!(top_param(Some("x=1")), None);
        assert_eq!(top_param(Some("top=5")), Some(5));
        assert_eq!(top_param(Some("a=b&top=100000")), Some(OpsTracker::TOP));
        assert_eq!(top_param(Some("top=junk")), Some(OpsTracker::TOP));
    }

    #[test]
    fn stats_has_every_documented_field() {
        let me = Peer::from_addr(([127, 0, 0, 1], 7000).into());
        let node = Node::new(me, ChordConfig::default(), Duration::ZERO);
        let snap = RingSnapshot::capture(&node, false, "beehive", 1.0);
        let metrics = Metrics::new("beehive", 1.0);
        let hits = Arc::new(std::sync::atomic::AtomicU64::new(1));
        let source = hits.clone();
        metrics.set_http_source(move || HttpTotals {
            requests: 2,
            hits: source.load(std::sync::atomic::Ordering::Relaxed),
            response_bytes: 20,
        });
        let v = serde_json::to_value(stats(&snap, &metrics)).unwrap();
        for field in [
            "id",
            "addr",
            "mode",
            "target_hops",
            "ready",
            "now_ms",
            "ring",
            "lookups",
            "http",
            "leader",
            "store",
            "replication",
        ] {
            assert!(v.get(field).is_some(), "/stats lacks {field}");
        }
        assert_eq!(v["http"]["requests"], 2);
        assert_eq!(v["http"]["hit_ratio"], 0.5);
        assert!(v["lookups"]["avg_hops"].is_null());
        assert_eq!(v["store"]["home_objects"], 0);
    }

    #[test]
    fn the_dashboard_loads_nothing_from_outside() {
        // The only absolute URL is the SVG namespace, which is a name, not a fetch.
        let urls = DASHBOARD.matches("http://").count() + DASHBOARD.matches("https://").count();
        assert_eq!(urls, DASHBOARD.matches("http://www.w3.org/2000/svg").count());
        assert!(!DASHBOARD.contains("<link") && !DASHBOARD.contains("src="));
        for route in ["\"/ring\"", "\"/objects?top=", "\"/stats\""] {
            assert!(DASHBOARD.contains(route), "the dashboard does not poll {route}");
        }
    }
}
