//! The origin's HTTP server: the accept loop (with a connection limit and graceful shutdown)
//! and the routes listed in the module docs of [`crate::origin`].

use super::catalog::{etag_of, OriginConfig, OriginStats};
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};
use tokio::net::TcpListener;
use tokio::sync::watch;

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
                        async move { Ok::<_, std::convert::Infallible>(route(&state, peer, req).await) }
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

/// The test fixtures a CDN must get right, then everything else ([`handle`]):
/// `/slow/<ms>` answers after `ms` (at most 60 s), `/redirect/<i>` is a 302 to this origin's
/// own `/o/<i>` (absolute, as the client named the origin), and `/vary/<i>` varies on
/// `Accept-Language`.
async fn route(state: &State, peer: SocketAddr, req: Request<Incoming>) -> Response<Body> {
    let path = req.uri().path().to_string();
    // Not counted in /stats: a verifying load generator asks it, the CDN never does.
    if let Some((i, object)) = hash_path(&path, state.config.objects) {
        let version = state.versions.lock().expect("versions lock")[i as usize];
        let hash = blake3::hash(&state.config.body(object, version.number)).to_hex();
        return plain(StatusCode::OK, "text/plain", format!("{hash}\n").into_bytes());
    }
    if let Some(ms) = path.strip_prefix("/slow/").and_then(|m| m.parse::<u64>().ok()) {
        tokio::time::sleep(Duration::from_millis(ms.min(60_000))).await;
        return plain(StatusCode::OK, "text/plain", format!("slept {ms} ms\n").into_bytes());
    }
    if let Some(i) = path.strip_prefix("/redirect/").and_then(|i| i.parse::<u64>().ok()) {
        let host = req
            .headers()
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .unwrap_or("localhost")
            .to_string();
        let mut r = plain(StatusCode::FOUND, "text/plain", b"moved\n".to_vec());
        if let Ok(v) = HeaderValue::from_str(&format!("http://{host}/o/{i}")) {
            r.headers_mut().insert(header::LOCATION, v);
        }
        return r;
    }
    if let Some(i) = path.strip_prefix("/vary/").and_then(|i| i.parse::<u64>().ok()) {
        count(state, &path);
        let lang = req
            .headers()
            .get(header::ACCEPT_LANGUAGE)
            .and_then(|h| h.to_str().ok())
            .unwrap_or("none")
            .to_string();
        let body = format!("object {i} in language {lang}\n");
        let mut r = plain(StatusCode::OK, "text/plain", body.into_bytes());
        let cc = format!("public, max-age={}", state.config.max_age);
        if let Ok(v) = HeaderValue::from_str(&cc) {
            r.headers_mut().insert(header::CACHE_CONTROL, v);
        }
        r.headers_mut().insert(header::VARY, HeaderValue::from_static("Accept-Language"));
        return r;
    }
    handle(state, peer, req)
}

fn count(state: &State, path: &str) {
    let mut stats = state.stats.lock().unwrap_or_else(|e| e.into_inner());
    stats.total += 1;
    *stats.paths.entry(path.to_string()).or_default() += 1;
}

/// Routes one request. HEAD gets the GET answer: hyper sends its headers, Content-Length
/// included, and drops the body.
fn handle(state: &State, peer: SocketAddr, req: Request<Incoming>) -> Response<Body> {
    let path = req.uri().path().to_string();
    let method = req.method().clone();
    let read = method == Method::GET || method == Method::HEAD;
    if read && path != "/stats" {
        count(state, &path);
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

/// `/o/<i>/hash` → `(i, "/o/<i>")`, for `i < objects`.
fn hash_path(path: &str, objects: u64) -> Option<(u64, &str)> {
    let object = path.strip_suffix("/hash")?;
    match parse_object(object, objects)? {
        (i, false) => Some((i, object)),
        _ => None,
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
        assert_eq!(hash_path("/o/4/hash", 5), Some((4, "/o/4")));
        assert_eq!(hash_path("/o/5/hash", 5), None);
        assert_eq!(hash_path("/o/4/bump/hash", 5), None);
    }
}
