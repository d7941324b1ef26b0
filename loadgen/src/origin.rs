//! The built-in demo origin: `M` deterministic objects behind plain HTTP/1.1.
//!
//! Routes:
//!
//! | method | path | answer |
//! |---|---|---|
//! | GET, HEAD | `/` | a small HTML index page linking a few objects |
//! | GET, HEAD | `/o/<i>` for `i` in `0..objects` | the object: `Cache-Control: public, max-age=<max_age>`, strong `ETag`, `Last-Modified`, `Content-Type`; a matching `If-None-Match` (or, without it, `If-Modified-Since`) → 304; HEAD has no body |
//! | POST | `/o/<i>/bump` | bumps the object's version (new body, new ETag); loopback clients only; answers the new ETag |
//! | GET | `/stats` | JSON request counts (below) |
//! | POST | `/stats/reset` | zeroes the counts (204) |
//!
//! Anything else is 404 (unknown path) or 405 (known path, other method).
//!
//! Content is a blake3 XOF stream keyed by `(seed, path, version)`, so two origins with the same
//! seed serve the same bytes; the ETag is a hash of the bytes.
//!
//! # `/stats` schema
//!
//! ```json
//! {"total": 12, "paths": {"/o/0": 10, "/o/3": 2}}
//! ```
//!
//! `total` (u64) counts every GET and HEAD the origin answered except those of `/stats` itself,
//! including 304s and 404s; `paths` maps each requested path to its count (absent = 0). The
//! load generator reads `total` each second to measure origin offload.

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};
use tokio::net::TcpListener;
use tokio::sync::watch;

/// How object sizes are chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SizeMix {
    /// Every object is exactly `size` bytes.
    #[default]
    Small,
    /// A deterministic mix per path: 60 % are `size / 4`, 30 % `size`, 10 % `size * 8`.
    Mixed,
}

/// The origin's settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OriginConfig {
    /// Number of objects, served at `/o/0` .. `/o/<objects-1>`.
    pub objects: u64,
    /// Object size in bytes (the base size under [`SizeMix::Mixed`]).
    pub size: u64,
    pub size_mix: SizeMix,
    /// The `max-age` of every object, in seconds.
    pub max_age: u64,
    /// Keys the content: same seed, same bytes.
    pub seed: u64,
}

impl Default for OriginConfig {
    fn default() -> Self {
        Self { objects: 1000, size: 4096, size_mix: SizeMix::Small, max_age: 300, seed: 1 }
    }
}

/// Why an [`OriginConfig`] was refused; nothing was started.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum OriginError {
    #[error("--objects must be at least 1")]
    NoObjects,
    #[error("--size must be at least 1 byte")]
    ZeroSize,
    #[error("--size must be at most 64 MiB (got {0})")]
    TooLarge(u64),
}

impl OriginConfig {
    /// Checks the settings; the messages say what to fix.
    pub fn validate(&self) -> Result<(), OriginError> {
        if self.objects == 0 {
            return Err(OriginError::NoObjects);
        }
        if self.size == 0 {
            return Err(OriginError::ZeroSize);
        }
        if self.size > 64 << 20 {
            return Err(OriginError::TooLarge(self.size));
        }
        Ok(())
    }

    /// The size of the object at `path` (deterministic per seed and path).
    pub fn size_of(&self, path: &str) -> usize {
        let size = match self.size_mix {
            SizeMix::Small => self.size,
            SizeMix::Mixed => {
                let roll = u64::from_le_bytes(
                    content_hasher(self.seed, path, u64::MAX).finalize().as_bytes()[..8]
                        .try_into()
                        .expect("8 bytes"),
                ) % 100;
                match roll {
                    0..60 => (self.size / 4).max(1),
                    60..90 => self.size,
                    _ => self.size.saturating_mul(8),
                }
            }
        };
        size as usize
    }

    /// The body of the object at `path` in `version`.
    pub fn body(&self, path: &str, version: u64) -> Bytes {
        let mut buf = vec![0u8; self.size_of(path)];
        content_hasher(self.seed, path, version).finalize_xof().fill(&mut buf);
        Bytes::from(buf)
    }
}

fn content_hasher(seed: u64, path: &str, version: u64) -> blake3::Hasher {
    let mut h = blake3::Hasher::new_derive_key("beehive origin object content v1");
    h.update(&seed.to_le_bytes()).update(&version.to_le_bytes()).update(path.as_bytes());
    h
}

/// The strong ETag of `body`.
pub fn etag_of(body: &[u8]) -> String {
    format!("\"{}\"", &blake3::hash(body).to_hex()[..32])
}

/// The JSON answered at `/stats` (schema in the module docs).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OriginStats {
    pub total: u64,
    pub paths: BTreeMap<String, u64>,
}

#[derive(Debug, Clone, Copy)]
struct Version {
    number: u64,
    modified: SystemTime,
}

#[derive(Debug)]
struct State {
    config: OriginConfig,
    versions: Mutex<Vec<Version>>,
    stats: Mutex<OriginStats>,
}

type Body = Full<Bytes>;

/// Open connections at most; the next accept waits for one to close.
const MAX_CONNECTIONS: usize = 10_000;

/// Serves `config` on `listener` until `shutdown` completes; then stops accepting, lets open
/// connections finish their current request, and returns.
pub async fn serve(
    config: OriginConfig,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    config
        .validate()
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e.to_string()))?;
    // Whole seconds: Last-Modified has a one-second resolution.
    let now = SystemTime::UNIX_EPOCH
        + Duration::from_secs(
            SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default().as_secs(),
        );
    let versions = vec![Version { number: 0, modified: now }; config.objects as usize];
    let state = Arc::new(State {
        config,
        versions: Mutex::new(versions),
        stats: Mutex::new(OriginStats::default()),
    });
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut connections = tokio::task::JoinSet::new();
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            // Accept only while under the connection limit.
            Ok(slot) = slots.clone().acquire_owned() => {
                let accepted = tokio::select! {
                    () = &mut shutdown => break,
                    accepted = listener.accept() => accepted,
                };
                let Ok((stream, peer)) = accepted else {
                    // Out of file descriptors, say: back off instead of spinning.
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                };
                let _ = stream.set_nodelay(true);
                let state = state.clone();
                let mut stop = stop_rx.clone();
                connections.spawn(async move {
                    let _slot = slot;
                    let service = hyper::service::service_fn(move |req| {
                        let state = state.clone();
                        async move { Ok::<_, std::convert::Infallible>(handle(&state, peer, req)) }
                    });
                    let conn = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service);
                    tokio::pin!(conn);
                    tokio::select! {
                        _ = conn.as_mut() => {}
                        _ = stop.changed() => {
                            conn.as_mut().graceful_shutdown();
                            let _ = tokio::time::timeout(Duration::from_secs(5), conn).await;
                        }
                    }
                });
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    let _ = stop_tx.send(true);
    while connections.join_next().await.is_some() {}
    Ok(())
}

/// Routes one request. HEAD gets the GET answer: hyper sends its headers, Content-Length
/// included, and drops the body.
fn handle(state: &State, peer: SocketAddr, req: Request<Incoming>) -> Response<Body> {
    let path = req.uri().path().to_string();
    let method = req.method().clone();
    let read = method == Method::GET || method == Method::HEAD;
    if read && path != "/stats" {
        let mut stats = state.stats.lock().expect("stats lock");
        stats.total += 1;
        *stats.paths.entry(path.clone()).or_default() += 1;
    }
    match (path.as_str(), &method) {
        ("/", m) if read_method(m) => index_page(&state.config),
        ("/stats", &Method::GET) => {
            let stats = state.stats.lock().expect("stats lock").clone();
            let json = serde_json::to_vec(&stats).expect("stats serialise");
            plain(StatusCode::OK, "application/json", json)
        }
        ("/stats/reset", &Method::POST) => {
            *state.stats.lock().expect("stats lock") = OriginStats::default();
            plain(StatusCode::NO_CONTENT, "text/plain", Vec::new())
        }
        ("/" | "/stats" | "/stats/reset", _) => method_not_allowed(),
        (p, m) => match parse_object(p, state.config.objects) {
            Some((i, false)) if read_method(m) => object(state, &path, i, &req),
            Some((i, true)) if m == Method::POST => bump(state, &path, i, peer),
            Some(_) => method_not_allowed(),
            None => plain(StatusCode::NOT_FOUND, "text/plain", b"no such object\n".to_vec()),
        },
    }
}

fn read_method(m: &Method) -> bool {
    m == Method::GET || m == Method::HEAD
}

/// `/o/<i>` → `(i, false)`, `/o/<i>/bump` → `(i, true)`, for `i < objects`.
fn parse_object(path: &str, objects: u64) -> Option<(u64, bool)> {
    let rest = path.strip_prefix("/o/")?;
    let (index, bump) = match rest.strip_suffix("/bump") {
        Some(index) => (index, true),
        None => (rest, false),
    };
    if index.is_empty() || !index.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let i: u64 = index.parse().ok()?;
    (i < objects).then_some((i, bump))
}

fn object(state: &State, path: &str, i: u64, req: &Request<Incoming>) -> Response<Body> {
    let version = state.versions.lock().expect("versions lock")[i as usize];
    let body = state.config.body(path, version.number);
    let etag = etag_of(&body);
    let headers = req.headers();
    // RFC 9110 §13.1.3: If-Modified-Since counts only without If-None-Match.
    let not_modified = if headers.contains_key(header::IF_NONE_MATCH) {
        headers
            .get_all(header::IF_NONE_MATCH)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|t| t.trim() == etag || t.trim() == "*")
    } else {
        headers
            .get(header::IF_MODIFIED_SINCE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| httpdate::parse_http_date(v).ok())
            .is_some_and(|since| version.modified <= since)
    };
    let mut resp = if not_modified {
        Response::new(Full::new(Bytes::new()))
    } else {
        Response::new(Full::new(body))
    };
    if not_modified {
        *resp.status_mut() = StatusCode::NOT_MODIFIED;
    }
    let h = resp.headers_mut();
    h.insert(header::ETAG, HeaderValue::from_str(&etag).expect("hex etag"));
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_str(&format!("public, max-age={}", state.config.max_age)).expect("ascii"),
    );
    h.insert(
        header::LAST_MODIFIED,
        HeaderValue::from_str(&httpdate::fmt_http_date(version.modified)).expect("ascii date"),
    );
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/octet-stream"));
    resp
}

fn bump(state: &State, path: &str, i: u64, peer: SocketAddr) -> Response<Body> {
    if !peer.ip().is_loopback() {
        return plain(StatusCode::FORBIDDEN, "text/plain", b"bump is loopback only\n".to_vec());
    }
    let version = {
        let mut versions = state.versions.lock().expect("versions lock");
        let v = &mut versions[i as usize];
        v.number += 1;
        // Strictly later than before, so a Last-Modified validator changes too.
        let now = SystemTime::now();
        v.modified = if now > v.modified + Duration::from_secs(1) {
            now
        } else {
            v.modified + Duration::from_secs(1)
        };
        *v
    };
    let object_path = path.strip_suffix("/bump").unwrap_or(path);
    let etag = etag_of(&state.config.body(object_path, version.number));
    let json = serde_json::json!({ "path": object_path, "version": version.number, "etag": etag });
    plain(StatusCode::OK, "application/json", json.to_string().into_bytes())
}

fn index_page(config: &OriginConfig) -> Response<Body> {
    let links: String = (0..config.objects.min(10))
        .map(|i| format!("<li><a href=\"/o/{i}\">/o/{i}</a></li>\n"))
        .collect();
    let html = format!(
        "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>beehive demo origin</title>\
         </head>\n<body><h1>beehive demo origin</h1>\n<p>{} objects of {} bytes.</p>\n<ul>\n{links}\
         </ul>\n</body></html>\n",
        config.objects, config.size
    );
    let mut resp = plain(StatusCode::OK, "text/html; charset=utf-8", html.into_bytes());
    resp.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_str(&format!("public, max-age={}", config.max_age)).expect("ascii"),
    );
    resp
}

fn method_not_allowed() -> Response<Body> {
    plain(StatusCode::METHOD_NOT_ALLOWED, "text/plain", b"method not allowed\n".to_vec())
}

fn plain(status: StatusCode, content_type: &'static str, body: Vec<u8>) -> Response<Body> {
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = status;
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    resp
}

/// A running origin on a loopback port, for tests and the demo. Dropping it stops the server.
#[derive(Debug)]
pub struct Origin {
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

impl Origin {
    /// Validates `config`, binds `127.0.0.1:0` and serves in a background task.
    pub async fn start(config: OriginConfig) -> std::io::Result<Origin> {
        Self::start_on(config, "127.0.0.1:0".parse().expect("loopback address")).await
    }

    /// As [`Origin::start`], on `addr`.
    pub async fn start_on(config: OriginConfig, addr: SocketAddr) -> std::io::Result<Origin> {
        config
            .validate()
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e.to_string()))?;
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(serve(config, listener, async move {
            let _ = stopped.await;
        }));
        Ok(Origin { addr, stop: Some(stop), task: Some(task) })
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://<addr>`, without a trailing slash.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `http://<addr>/stats`, for `LoadConfig::origin_stats`.
    pub fn stats_url(&self) -> String {
        format!("http://{}/stats", self.addr)
    }

    /// Stops accepting, waits for open connections (bounded), and returns the server's result.
    pub async fn shutdown(mut self) -> std::io::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match self.task.take() {
            Some(task) => task.await.unwrap_or(Ok(())),
            None => Ok(()),
        }
    }
}

impl Drop for Origin {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_paths_parse() {
        assert_eq!(parse_object("/o/0", 5), Some((0, false)));
        assert_eq!(parse_object("/o/4/bump", 5), Some((4, true)));
        assert_eq!(parse_object("/o/5", 5), None);
        assert_eq!(parse_object("/o/", 5), None);
        assert_eq!(parse_object("/o/+1", 5), None);
        assert_eq!(parse_object("/x/1", 5), None);
    }

    #[test]
    fn content_is_deterministic_and_versioned() {
        let c = OriginConfig { objects: 4, size: 100, ..OriginConfig::default() };
        assert_eq!(c.body("/o/1", 0), c.body("/o/1", 0));
        assert_ne!(c.body("/o/1", 0), c.body("/o/1", 1));
        assert_ne!(c.body("/o/1", 0), c.body("/o/2", 0));
        assert_eq!(c.body("/o/1", 0).len(), 100);
        let other_seed = OriginConfig { seed: 2, ..c.clone() };
        assert_ne!(c.body("/o/1", 0), other_seed.body("/o/1", 0));
    }

    #[test]
    fn mixed_sizes_are_spread() {
        let c = OriginConfig { size: 1024, size_mix: SizeMix::Mixed, ..OriginConfig::default() };
        let sizes: std::collections::BTreeSet<usize> =
            (0..200).map(|i| c.size_of(&format!("/o/{i}"))).collect();
        assert_eq!(sizes.into_iter().collect::<Vec<_>>(), vec![256, 1024, 8192]);
    }

    #[test]
    fn validation() {
        let ok = OriginConfig::default();
        assert_eq!(ok.validate(), Ok(()));
        assert_eq!(
            OriginConfig { objects: 0, ..ok.clone() }.validate(),
            Err(OriginError::NoObjects)
        );
        assert_eq!(OriginConfig { size: 0, ..ok }.validate(), Err(OriginError::ZeroSize));
    }
}
