//! The proxy end to end on loopback: a small origin with per-path behaviours, a proxy on a
//! [`LocalCluster`], and raw HTTP/1.1 over `TcpStream` as the client. Every wait is bounded.

use beehive_proxy::{
    BoxFuture, Cluster, ClusterError, Fetch, Fetched, LoadRequest, Loader, LocalCluster, ObjectKey,
    ObjectStore, Proxy, ProxyConfig,
};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};

const WAIT: Duration = Duration::from_secs(5);
const BIG: usize = 200 * 1024;

// ---------------------------------------------------------------- the test origin

#[derive(Clone, Default)]
struct OriginState {
    counts: Arc<Mutex<HashMap<String, usize>>>,
    version: Arc<AtomicU64>,
}

struct Origin {
    addr: SocketAddr,
    state: OriginState,
    task: JoinHandle<()>,
}

impl Origin {
    fn count(&self, path: &str) -> usize {
        self.state.counts.lock().unwrap().get(path).copied().unwrap_or(0)
    }

    /// Stops accepting and drops every open connection (the JoinSet aborts its tasks).
    async fn stop(self) {
        self.task.abort();
        let _ = self.task.await;
    }
}

async fn start_origin() -> Origin {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let state = OriginState::default();
    let st = state.clone();
    let task = tokio::spawn(async move {
        let mut conns = JoinSet::new();
        loop {
            while conns.try_join_next().is_some() {}
            let Ok((stream, _)) = listener.accept().await else { continue };
            let st = st.clone();
            let svc = service_fn(move |req| origin_handle(req, st.clone(), addr));
            conns.spawn(async move {
                let _ = http1::Builder::new().serve_connection(TokioIo::new(stream), svc).await;
            });
        }
    });
    Origin { addr, state, task }
}

async fn origin_handle(
    req: Request<Incoming>,
    st: OriginState,
    addr: SocketAddr,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let path = req.uri().path().to_string();
    *st.counts.lock().unwrap().entry(path.clone()).or_default() += 1;
    let hdr =
        |n: &str| req.headers().get(n).and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    let ok = |cc: &str, body: Vec<u8>| {
        Response::builder().header("cache-control", cc).body(Full::new(Bytes::from(body))).unwrap()
    };
    let res = match path.as_str() {
        "/etag" => {
            if hdr("if-none-match") == "\"v1\"" {
                Response::builder()
                    .status(304)
                    .header("etag", "\"v1\"")
                    .body(Full::default())
                    .unwrap()
            } else {
                let mut r = ok("max-age=60", b"hello etag".to_vec());
                r.headers_mut().insert("etag", "\"v1\"".parse().unwrap());
                r.headers_mut()
                    .insert("last-modified", "Sun, 01 Nov 2026 00:00:00 GMT".parse().unwrap());
                r
            }
        }
        "/coalesce" => {
            tokio::time::sleep(Duration::from_millis(300)).await;
            ok("max-age=60", b"coalesced".to_vec())
        }
        "/redirect" => Response::builder()
            .status(302)
            .header("location", format!("http://127.0.0.1:{}/target?x=1", addr.port()))
            .body(Full::default())
            .unwrap(),
        "/vary" => {
            let mut r = ok("max-age=60", format!("lang={}", hdr("accept-language")).into_bytes());
            r.headers_mut().insert("vary", "Accept-Language".parse().unwrap());
            r
        }
        "/cookie" => {
            let mut r = ok("max-age=60", b"cookie".to_vec());
            r.headers_mut().insert("set-cookie", "session=secret".parse().unwrap());
            r
        }
        "/big" => ok("max-age=60", (0..BIG).map(|i| (i % 251) as u8).collect()),
        "/slow" => {
            tokio::time::sleep(Duration::from_secs(3)).await;
            ok("max-age=60", b"slow".to_vec())
        }
        "/short" => ok("max-age=1", b"short".to_vec()),
        "/reval" => {
            let mut r = if hdr("if-none-match") == "\"r1\"" {
                *st.counts.lock().unwrap().entry("/reval#304".into()).or_default() += 1;
                Response::builder().status(304).body(Full::default()).unwrap()
            } else {
                ok(
                    "max-age=1",
                    format!("reval v{}", st.version.load(Ordering::SeqCst)).into_bytes(),
                )
            };
            r.headers_mut().insert("etag", "\"r1\"".parse().unwrap());
            r.headers_mut().insert("cache-control", "max-age=1".parse().unwrap());
            r
        }
        "/mutable" => {
            ok("max-age=60", format!("v{}", st.version.load(Ordering::SeqCst)).into_bytes())
        }
        "/echo" => {
            let method = req.method().to_string();
            let body = req.into_body().collect().await.map(|c| c.to_bytes()).unwrap_or_default();
            ok("no-store", format!("{method} {}", body.len()).into_bytes())
        }
        _ => Response::builder().status(404).body(Full::new(Bytes::from("nope"))).unwrap(),
    };
    Ok(res)
}

// ---------------------------------------------------------------- the proxy

struct Running {
    addr: SocketAddr,
    stop: watch::Sender<bool>,
    store: ObjectStore,
    proxy: Arc<Proxy>,
    served: JoinHandle<()>,
}

fn config(origin: SocketAddr) -> ProxyConfig {
    let mut c = ProxyConfig {
        node_name: "n1".into(),
        origin_timeout: Duration::from_millis(600),
        origin_connect_timeout: Duration::from_millis(300),
        header_read_timeout: Duration::from_millis(500),
        max_object_bytes: 64 * 1024,
        max_body_bytes: 1024,
        rate_per_sec: 100_000,
        burst: 100_000,
        stale_while_revalidate: Duration::ZERO,
        ..ProxyConfig::default()
    };
    c.origins.insert("site".into(), ("127.0.0.1".into(), origin.port()));
    c
}

async fn start_proxy(cfg: ProxyConfig) -> Running {
    let store = ObjectStore::new(cfg.store_bytes, cfg.max_object_bytes);
    let loader = Loader::new(&cfg, store.clone());
    let cluster = Arc::new(LocalCluster::new(loader.clone(), cfg.node_name.clone()));
    let proxy = Arc::new(Proxy::new(cfg, cluster, store.clone(), loader));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = watch::channel(false);
    let served = tokio::spawn(proxy.clone().serve(listener, rx));
    Running { addr, stop: tx, store, proxy, served }
}

// ---------------------------------------------------------------- a raw HTTP/1.1 client

#[derive(Debug)]
struct Resp {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Resp {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// Sends `raw` on a fresh connection and reads until the server closes (`Connection: close`).
async fn send_raw(addr: SocketAddr, raw: &[u8]) -> Resp {
    let work = async {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(raw).await.unwrap();
        let mut buf = Vec::new();
        let _ = s.read_to_end(&mut buf).await;
        buf
    };
    let buf = tokio::time::timeout(WAIT, work).await.expect("response within the bound");
    parse(&buf)
}

fn parse(buf: &[u8]) -> Resp {
    let end = buf.windows(4).position(|w| w == b"\r\n\r\n").expect("a response head");
    let head = std::str::from_utf8(&buf[..end]).unwrap();
    let mut lines = head.split("\r\n");
    let status = lines.next().unwrap().split(' ').nth(1).unwrap().parse().unwrap();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let mut body = buf[end + 4..].to_vec();
    if headers.iter().any(|(n, v)| n == "transfer-encoding" && v.contains("chunked")) {
        body = dechunk(&body);
    }
    Resp { status, headers, body }
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for _ in 0..100_000 {
        let Some(eol) = b.windows(2).position(|w| w == b"\r\n") else { break };
        let size = std::str::from_utf8(&b[..eol]).unwrap().split(';').next().unwrap();
        let size = usize::from_str_radix(size.trim(), 16).unwrap();
        if size == 0 {
            break;
        }
        out.extend_from_slice(&b[eol + 2..eol + 2 + size]);
        b = &b[eol + 4 + size..];
    }
    out
}

async fn req(
    addr: SocketAddr,
    method: &str,
    host: &str,
    path: &str,
    extra: &[(&str, &str)],
) -> Resp {
    let mut raw = format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\n");
    for (n, v) in extra {
        raw.push_str(&format!("{n}: {v}\r\n"));
    }
    raw.push_str("Connection: close\r\n\r\n");
    send_raw(addr, raw.as_bytes()).await
}

async fn get(addr: SocketAddr, path: &str, extra: &[(&str, &str)]) -> Resp {
    req(addr, "GET", "site.beehive.localhost", path, extra).await
}

// ---------------------------------------------------------------- the tests

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn miss_then_hit_with_headers_and_head() {
    let o = start_origin().await;
    let p = start_proxy(config(o.addr)).await;
    let a = get(p.addr, "/etag", &[]).await;
    assert_eq!(a.status, 200);
    assert_eq!(a.body, b"hello etag");
    assert_eq!(a.header("x-cache"), Some("MISS"));
    assert_eq!(a.header("via"), Some("1.1 n1 (beehive)"));
    assert_eq!(a.header("x-beehive-node"), Some("n1"));
    assert_eq!(a.header("x-beehive-hops"), Some("0"));
    assert_eq!(a.header("etag"), Some("\"v1\""));
    let b = get(p.addr, "/etag", &[]).await;
    assert_eq!(b.body, a.body);
    assert_eq!(b.header("x-cache"), Some("HIT"));
    assert!(b.header("age").is_some_and(|v| v.parse::<u64>().is_ok()));
    let h = req(p.addr, "HEAD", "site.beehive.localhost", "/etag", &[]).await;
    assert_eq!(h.status, 200);
    assert!(h.body.is_empty());
    assert_eq!(h.header("content-length"), Some("10"));
    assert_eq!(o.count("/etag"), 1);
    assert_eq!(p.store.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_cold_gets_reach_the_origin_once() {
    let o = start_origin().await;
    let p = start_proxy(config(o.addr)).await;
    let mut set = JoinSet::new();
    for _ in 0..100 {
        let addr = p.addr;
        set.spawn(async move { get(addr, "/coalesce", &[]).await });
    }
    let mut n = 0;
    while let Some(r) = set.join_next().await {
        let r = r.unwrap();
        assert_eq!((r.status, r.body.as_slice()), (200, &b"coalesced"[..]));
        n += 1;
    }
    assert_eq!(n, 100);
    assert_eq!(o.count("/coalesce"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conditional_and_range_requests() {
    let o = start_origin().await;
    let p = start_proxy(config(o.addr)).await;
    let r = get(p.addr, "/etag", &[("If-None-Match", "\"v1\"")]).await;
    assert_eq!(r.status, 304);
    assert!(r.body.is_empty());
    let r = get(p.addr, "/etag", &[("If-Modified-Since", "Sun, 01 Nov 2026 00:00:00 GMT")]).await;
    assert_eq!(r.status, 304);
    let r = get(p.addr, "/etag", &[("If-None-Match", "\"other\"")]).await;
    assert_eq!(r.status, 200);
    let r = get(p.addr, "/etag", &[("Range", "bytes=0-4")]).await;
    assert_eq!(r.status, 206);
    assert_eq!(r.body, b"hello");
    assert_eq!(r.header("content-range"), Some("bytes 0-4/10"));
    let r = get(p.addr, "/etag", &[("Range", "bytes=-4")]).await;
    assert_eq!((r.status, r.body.as_slice()), (206, &b"etag"[..]));
    let r = get(p.addr, "/etag", &[("Range", "bytes=100-")]).await;
    assert_eq!(r.status, 416);
    assert_eq!(r.header("content-range"), Some("bytes */10"));
    let r = get(p.addr, "/etag", &[("Range", "bytes=0-1,4-5")]).await;
    assert_eq!((r.status, r.body.len()), (200, 10));
    assert_eq!(o.count("/etag"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn location_is_rewritten_to_the_cdn_name() {
    let o = start_origin().await;
    let p = start_proxy(config(o.addr)).await;
    let host = format!("site.beehive.localhost:{}", p.addr.port());
    let r = req(p.addr, "GET", &host, "/redirect", &[]).await;
    assert_eq!(r.status, 302);
    let want = format!("http://site.beehive.localhost:{}/target?x=1", p.addr.port());
    assert_eq!(r.header("location"), Some(want.as_str()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vary_keeps_two_variants() {
    let o = start_origin().await;
    let p = start_proxy(config(o.addr)).await;
    let en = [("Accept-Language", "en")];
    let fr = [("Accept-Language", "fr")];
    assert_eq!(get(p.addr, "/vary", &en).await.body, b"lang=en");
    assert_eq!(get(p.addr, "/vary", &fr).await.body, b"lang=fr");
    let r = get(p.addr, "/vary", &en).await;
    assert_eq!((r.body.as_slice(), r.header("x-cache")), (&b"lang=en"[..], Some("HIT")));
    let r = get(p.addr, "/vary", &fr).await;
    assert_eq!((r.body.as_slice(), r.header("x-cache")), (&b"lang=fr"[..], Some("HIT")));
    assert_eq!(o.count("/vary"), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn set_cookie_is_never_shared() {
    let o = start_origin().await;
    let p = start_proxy(config(o.addr)).await;
    for _ in 0..2 {
        let r = get(p.addr, "/cookie", &[]).await;
        assert_eq!(r.status, 200);
        assert_eq!(r.header("set-cookie"), Some("session=secret"));
        assert_eq!(r.header("x-cache"), Some("PASS"));
    }
    assert_eq!(o.count("/cookie"), 2);
    assert_eq!(p.store.len(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_objects_stream_through_uncached() {
    let o = start_origin().await;
    let p = start_proxy(config(o.addr)).await;
    let r = get(p.addr, "/big", &[]).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body.len(), BIG);
    assert!(r.body.iter().enumerate().all(|(i, b)| *b == (i % 251) as u8));
    assert_eq!(r.header("x-cache"), Some("PASS"));
    assert_eq!(p.store.len(), 0);
    // The home's load stops at Content-Length, then the entry streams it: 2 origin requests.
    // Hit-for-pass: the next request goes straight to the origin.
    assert_eq!(o.count("/big"), 2);
    assert_eq!(get(p.addr, "/big", &[]).await.body.len(), BIG);
    assert_eq!(o.count("/big"), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn origin_down_serves_stale_within_bound_else_502() {
    let o = start_origin().await;
    let lenient = start_proxy(config(o.addr)).await;
    let strict =
        start_proxy(ProxyConfig { stale_if_error: Duration::ZERO, ..config(o.addr) }).await;
    assert_eq!(get(lenient.addr, "/short", &[]).await.header("x-cache"), Some("MISS"));
    assert_eq!(get(strict.addr, "/short", &[]).await.status, 200);
    o.stop().await;
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let r = get(lenient.addr, "/short", &[]).await;
    assert_eq!((r.status, r.body.as_slice()), (200, &b"short"[..]));
    assert_eq!(r.header("x-cache"), Some("STALE"));
    let r = get(strict.addr, "/short", &[]).await;
    assert_eq!(r.status, 502, "{:?}", String::from_utf8_lossy(&r.body));
    let r = get(lenient.addr, "/never-cached", &[]).await;
    assert_eq!(r.status, 502);
    assert!(r.body.ends_with(b"\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_origin_times_out_with_504() {
    let o = start_origin().await;
    let p = start_proxy(config(o.addr)).await;
    let t = Instant::now();
    let r = get(p.addr, "/slow", &[]).await;
    assert_eq!(r.status, 504);
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn purge_drops_the_cached_copy() {
    let o = start_origin().await;
    let p = start_proxy(config(o.addr)).await;
    assert_eq!(get(p.addr, "/mutable", &[]).await.body, b"v0");
    o.state.version.store(1, Ordering::SeqCst);
    assert_eq!(get(p.addr, "/mutable", &[]).await.body, b"v0");
    let r = req(p.addr, "PURGE", "site.beehive.localhost", "/mutable", &[]).await;
    assert_eq!(r.status, 200);
    assert_eq!(get(p.addr, "/mutable", &[]).await.body, b"v1");
    assert_eq!(o.count("/mutable"), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_hosts_methods_and_bodies() {
    let o = start_origin().await;
    let p = start_proxy(config(o.addr)).await;
    let r = req(p.addr, "GET", "unknown.beehive.localhost", "/", &[]).await;
    assert_eq!(r.status, 400);
    assert!(r.body.ends_with(b"\n"));
    assert_eq!(req(p.addr, "GET", "bad..name.beehive.localhost", "/", &[]).await.status, 400);
    assert_eq!(req(p.addr, "GET", "site.beehive.localhost:x", "/", &[]).await.status, 400);
    let r = send_raw(p.addr, b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n").await;
    assert_eq!(r.status, 400);
    // Two Host headers: which one names the origin is ambiguous.
    let raw = b"GET /etag HTTP/1.1\r\nHost: site.beehive.localhost\r\nHost: other.beehive.localhost\r\nConnection: close\r\n\r\n";
    assert_eq!(send_raw(p.addr, raw).await.status, 400);
    // CONNECT to a named origin: refused, not tunnelled (nor left unanswered).
    let raw = b"CONNECT site.beehive.localhost:80 HTTP/1.1\r\nHost: site.beehive.localhost:80\r\nConnection: close\r\n\r\n";
    let r = send_raw(p.addr, raw).await;
    assert_eq!(r.status, 405);
    assert!(r.header("allow").is_some_and(|a| !a.contains("CONNECT")));
    // A body that never arrives is answered 408 after the (shortened) origin timeout.
    let r =
        req(p.addr, "POST", "site.beehive.localhost", "/echo", &[("Content-Length", "3")]).await;
    assert_eq!(r.status, 408);
    let raw = b"POST /echo HTTP/1.1\r\nHost: site.beehive.localhost\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc";
    let r = send_raw(p.addr, raw).await;
    assert_eq!((r.status, r.body.as_slice()), (200, &b"POST 3"[..]));
    assert_eq!(r.header("x-cache"), Some("PASS"));
    let big = format!(
        "POST /echo HTTP/1.1\r\nHost: site.beehive.localhost\r\nContent-Length: 2000\r\nConnection: close\r\n\r\n{}",
        "a".repeat(2000)
    );
    assert_eq!(send_raw(p.addr, big.as_bytes()).await.status, 413);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_mode_refuses_private_destinations() {
    let o = start_origin().await;
    let p = start_proxy(ProxyConfig { open_mode: true, ..config(o.addr) }).await;
    for host in [
        "127.0.0.1.beehive.localhost".to_string(),
        // (The named origin's own address and port stays reachable: it is configured.)
        "127.0.0.1.9.beehive.localhost".to_string(),
        "localhost.9.beehive.localhost".to_string(),
        "10.1.2.3.beehive.localhost".to_string(),
        "169.254.169.254.beehive.localhost".to_string(),
    ] {
        let r = req(p.addr, "GET", &host, "/etag", &[]).await;
        assert_eq!(r.status, 403, "{host}");
    }
    assert_eq!(req(p.addr, "POST", "example.com.beehive.localhost", "/", &[]).await.status, 405);
    assert_eq!(o.count("/etag"), 0);
    // Named origins still work in open mode.
    assert_eq!(get(p.addr, "/etag", &[]).await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_or_too_many_headers_get_431() {
    let o = start_origin().await;
    let p = start_proxy(ProxyConfig { max_header_bytes: 4096, max_headers: 20, ..config(o.addr) })
        .await;
    let many: Vec<(String, String)> = (0..40).map(|i| (format!("x-h{i}"), "1".into())).collect();
    let many: Vec<(&str, &str)> = many.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
    assert_eq!(get(p.addr, "/etag", &many).await.status, 431);
    let long = "a".repeat(5000);
    assert_eq!(get(p.addr, "/etag", &[("x-long", &long)]).await.status, 431);
    let fits = "a".repeat(3000);
    assert_eq!(get(p.addr, "/etag", &[("x-long", &fits)]).await.status, 200);
    // The default limit, 100, is hyper's own (the proxy leaves it unset): Host, Connection
    // and 98 more pass, one more does not.
    let p = start_proxy(config(o.addr)).await;
    assert_eq!(ProxyConfig::default().max_headers, 100);
    let headers = |n: usize| -> Vec<(String, String)> {
        (0..n).map(|i| (format!("x-h{i}"), "1".into())).collect()
    };
    for (extra, status) in [(98, 200), (99, 431)] {
        let h = headers(extra);
        let h: Vec<(&str, &str)> = h.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
        assert_eq!(
            get(p.addr, "/etag", &h).await.status,
            status,
            "{extra} headers besides Host and Connection"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_from_one_client_is_rate_limited() {
    let o = start_origin().await;
    let p = start_proxy(ProxyConfig { rate_per_sec: 1, burst: 3, ..config(o.addr) }).await;
    let mut limited = None;
    for _ in 0..10 {
        let r = get(p.addr, "/etag", &[]).await;
        if r.status == 429 {
            limited = Some(r);
            break;
        }
        assert_eq!(r.status, 200);
    }
    let r = limited.expect("a 429 within 10 requests");
    assert!(r.header("retry-after").is_some_and(|v| v.parse::<u64>().is_ok_and(|s| s >= 1)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slowloris_is_closed_after_the_header_timeout() {
    let o = start_origin().await;
    let p = start_proxy(config(o.addr)).await;
    let t = Instant::now();
    let mut s = TcpStream::connect(p.addr).await.unwrap();
    s.write_all(b"GET /etag HTTP/1.1\r\nHost: site.beehive.localhost\r\nX-Slow: ").await.unwrap();
    let mut buf = Vec::new();
    let read = tokio::time::timeout(WAIT, s.read_to_end(&mut buf)).await;
    assert!(read.is_ok(), "the server must close the connection");
    let took = t.elapsed();
    assert!(took >= Duration::from_millis(400) && took < Duration::from_secs(3), "{took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_copies_revalidate_with_etag_and_serve_stale_while_revalidating() {
    let o = start_origin().await;
    let p = start_proxy(config(o.addr)).await;
    let swr = start_proxy(ProxyConfig {
        stale_while_revalidate: Duration::from_secs(30),
        ..config(o.addr)
    })
    .await;
    assert_eq!(get(p.addr, "/reval", &[]).await.body, b"reval v0");
    assert_eq!(get(swr.addr, "/reval", &[]).await.body, b"reval v0");
    tokio::time::sleep(Duration::from_millis(1200)).await;
    // Without stale-while-revalidate: a conditional origin request, 304, the old body.
    let r = get(p.addr, "/reval", &[]).await;
    assert_eq!((r.body.as_slice(), r.header("x-cache")), (&b"reval v0"[..], Some("MISS")));
    assert_eq!(o.count("/reval#304"), 1);
    assert_eq!(get(p.addr, "/reval", &[]).await.header("x-cache"), Some("HIT"));
    // With it: the stale copy at once, refreshed in the background, then a fresh hit.
    let r = get(swr.addr, "/reval", &[]).await;
    assert_eq!((r.body.as_slice(), r.header("x-cache")), (&b"reval v0"[..], Some("STALE")));
    let mut hit = false;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(20)).await;
        if get(swr.addr, "/reval", &[]).await.header("x-cache") == Some("HIT") {
            hit = true;
            break;
        }
    }
    assert!(hit, "the background refresh must land");
    assert_eq!(o.count("/reval#304"), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_and_shutdown_is_graceful() {
    let o = start_origin().await;
    let p = start_proxy(config(o.addr)).await;
    get(p.addr, "/etag", &[]).await;
    get(p.addr, "/etag", &[]).await;
    req(p.addr, "GET", "nope.beehive.localhost", "/", &[]).await;
    let m = p.proxy.metrics().snapshot();
    assert_eq!(m.cache[0], 1, "{m:?}"); // HIT
    assert_eq!(m.cache[1], 1, "{m:?}"); // MISS
    assert_eq!(m.status_class[2], 2);
    assert_eq!(m.status_class[4], 1);
    assert_eq!(m.origin_fetches, 1);
    assert_eq!(m.hops[0], 1);
    assert!(m.bytes_served >= 20);
    p.stop.send(true).unwrap();
    tokio::time::timeout(WAIT, p.served).await.expect("serve returns").unwrap();
    assert!(TcpStream::connect(p.addr).await.is_err(), "listener closed");
}

/// A cluster that reports ring hops and levels and counts what the proxy tells it.
#[derive(Debug)]
struct RingLike {
    loader: Loader,
    served_locally: AtomicU64,
    purged: AtomicU64,
}

impl Cluster for RingLike {
    fn fetch(&self, key: ObjectKey, load: LoadRequest, _refresh: bool) -> BoxFuture<'_, Fetch> {
        Box::pin(async move {
            let l = self.loader.load(key, load).await?;
            Ok(Fetched { hops: 2, level: Some(1), ..l })
        })
    }

    fn served_locally(&self, _key: ObjectKey) {
        self.served_locally.fetch_add(1, Ordering::SeqCst);
    }

    fn purge(&self, key: ObjectKey) -> BoxFuture<'_, Result<(), ClusterError>> {
        self.purged.fetch_add(1, Ordering::SeqCst);
        self.loader.purge(&key);
        Box::pin(async { Ok(()) })
    }

    fn node_name(&self) -> &str {
        "ring-node"
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cluster_seam_reports_hops_levels_and_local_hits() {
    let o = start_origin().await;
    let cfg = config(o.addr);
    // The home's store is not the entry's: the entry caches what the cluster hands it.
    let home = Loader::new(&cfg, ObjectStore::new(cfg.store_bytes, cfg.max_object_bytes));
    let cluster = Arc::new(RingLike {
        loader: home,
        served_locally: AtomicU64::new(0),
        purged: AtomicU64::new(0),
    });
    let store = ObjectStore::new(cfg.store_bytes, cfg.max_object_bytes);
    let entry_loader = Loader::new(&cfg, store.clone());
    let proxy = Arc::new(Proxy::new(cfg, cluster.clone(), store.clone(), entry_loader));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (_stop, rx) = watch::channel(false);
    tokio::spawn(proxy.clone().serve(listener, rx));

    let r = get(addr, "/etag", &[]).await;
    assert_eq!(r.header("x-cache"), Some("MISS"));
    assert_eq!(r.header("x-beehive-hops"), Some("2"));
    assert_eq!(r.header("x-beehive-level"), Some("1"));
    assert_eq!(r.header("x-beehive-node"), Some("ring-node"));
    assert_eq!(store.len(), 1, "the entry keeps a copy");
    let r = get(addr, "/etag", &[]).await;
    assert_eq!((r.header("x-cache"), r.header("x-beehive-hops")), (Some("HIT"), Some("0")));
    assert_eq!(cluster.served_locally.load(Ordering::SeqCst), 1);
    assert_eq!(proxy.metrics().snapshot().hops[2], 1);
    assert_eq!(req(addr, "PURGE", "site.beehive.localhost", "/etag", &[]).await.status, 200);
    assert_eq!(cluster.purged.load(Ordering::SeqCst), 1);
    assert_eq!(store.len(), 0);
    assert_eq!(get(addr, "/etag", &[]).await.header("x-cache"), Some("MISS"));
    assert_eq!(o.count("/etag"), 2);
}

/// Reads one response with a `Content-Length` body off a keep-alive connection.
async fn read_one(s: &mut TcpStream) -> Resp {
    let work = async {
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        loop {
            if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = parse(&buf[..end + 4]);
                let len: usize = head.header("content-length").expect("length").parse().unwrap();
                if buf.len() >= end + 4 + len {
                    return parse(&buf[..end + 4 + len]);
                }
            }
            let n = s.read(&mut chunk).await.unwrap();
            assert!(n > 0, "connection closed before a whole response: {buf:?}");
            buf.extend_from_slice(&chunk[..n]);
        }
    };
    tokio::time::timeout(WAIT, work).await.expect("response within the bound")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keep_alive_connections_outlive_the_header_timeout_and_close_cleanly_when_idle() {
    let o = start_origin().await;
    // Header timeout 500 ms; idle timeout 1.5 s.
    let idle = Duration::from_millis(1500);
    let p = start_proxy(ProxyConfig { idle_timeout: idle, ..config(o.addr) }).await;
    let mut s = TcpStream::connect(p.addr).await.unwrap();
    let request = b"GET /etag HTTP/1.1\r\nHost: site.beehive.localhost\r\n\r\n";
    s.write_all(request).await.unwrap();
    assert_eq!(read_one(&mut s).await.status, 200);
    // Idle for twice the header timeout: the connection is still there for the next request.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    s.write_all(request).await.unwrap();
    assert_eq!(read_one(&mut s).await.status, 200);
    // Then idle past the idle timeout: closed cleanly (FIN, not reset), nothing more sent.
    let t = Instant::now();
    let mut buf = Vec::new();
    let read = tokio::time::timeout(WAIT, s.read_to_end(&mut buf)).await;
    assert!(matches!(read, Ok(Ok(0))), "the server must close the idle connection: {read:?}");
    let took = t.elapsed();
    assert!(took >= idle - Duration::from_millis(100) && took < idle * 2, "{took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_is_not_ready_answers_503_with_retry_after() {
    use std::sync::atomic::AtomicBool;
    let o = start_origin().await;
    let cfg = config(o.addr);
    let store = ObjectStore::new(cfg.store_bytes, cfg.max_object_bytes);
    let loader = Loader::new(&cfg, store.clone());
    let cluster = Arc::new(LocalCluster::new(loader.clone(), cfg.node_name.clone()));
    let ready = Arc::new(AtomicBool::new(false));
    let flag = ready.clone();
    let proxy = Proxy::new(cfg, cluster, store, loader)
        .with_readiness(move || flag.load(Ordering::Relaxed));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (_stop, rx) = watch::channel(false);
    tokio::spawn(Arc::new(proxy).serve(listener, rx));
    let r = get(addr, "/etag", &[]).await;
    assert_eq!(r.status, 503);
    assert!(r.header("retry-after").is_some_and(|v| v.parse::<u64>().is_ok_and(|s| s >= 1)));
    assert_eq!(o.count("/etag"), 0, "a node that is not ready must not go to the origin");
    ready.store(true, Ordering::Relaxed);
    assert_eq!(get(addr, "/etag", &[]).await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_over_the_limit_are_closed_at_once() {
    let o = start_origin().await;
    let p = start_proxy(ProxyConfig { max_connections: 1, ..config(o.addr) }).await;
    let _held = TcpStream::connect(p.addr).await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let t = Instant::now();
    let mut s = TcpStream::connect(p.addr).await.unwrap();
    let _ = s.write_all(b"GET /etag HTTP/1.1\r\nHost: site.beehive.localhost\r\n\r\n").await;
    let mut buf = Vec::new();
    let read = tokio::time::timeout(WAIT, s.read_to_end(&mut buf)).await;
    assert!(read.is_ok() && buf.is_empty(), "closed without an answer");
    assert!(t.elapsed() < Duration::from_millis(400), "{:?}", t.elapsed());
}
