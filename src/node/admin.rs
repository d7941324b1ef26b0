//! The admin listener (loopback by default): health, readiness, the ring as JSON, Prometheus
//! metrics, and the objects this node holds.
//!
//! | route | answer |
//! |---|---|
//! | `GET /healthz` | 200 `ok` while the process serves |
//! | `GET /readyz` | 200 when joined and stabilised (successor and predecessor known), else 503 |
//! | `GET /ring` | the [`RingSnapshot`] as JSON (fields documented there) |
//! | `GET /metrics` | OpenMetrics text, one registry per node |
//! | `GET /objects` | `[{"key", "len", "hash"}]` of the bodies held |
//! | `PUT /objects/NAME` | stores the request body under key blake3(NAME) (until the HTTP face can) |
//!
//! Every answer reads the published snapshot or an atomic metric: nothing here waits for the
//! protocol core.

use super::metrics::Metrics;
use super::snapshot::{hex_id, RingSnapshot};
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

async fn route(state: &AdminState, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let path = req.uri().path().to_string();
    match (req.method(), path.as_str()) {
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
