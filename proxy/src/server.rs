//! The HTTP server and the request phases: admission → local lookup → cluster fetch → store →
//! respond.
//!
//! `X-Cache`: HIT when this node's own store had a fresh copy; MISS when it fetched through the
//! cluster (from a replica, the home's store or the origin — `X-Beehive-Hops` tells how far);
//! STALE when a copy past freshness was served (stale-while-revalidate, stale-if-error); PASS
//! when the response is not shareable and went to this request alone.
//!
//! Vary: the object under the primary key (the normalised URL) is whichever variant was loaded
//! first. A request its `Vary` values do not match uses the variant key
//! [`variant_key`]`(url, values)`, fetched through the cluster like any other object, with the
//! varying request headers forwarded. PURGE removes the primary key; other variants age out.

use crate::cluster::{Cluster, ClusterError};
use crate::config::ProxyConfig;
use crate::conn::{Activity, Expired, Tracked};
use crate::host::{map_host, Target};
use crate::key::ObjectKey;
use crate::key::{normalise, variant_key};
use crate::limits::{purge_allowed, ClientLimits};
use crate::loader::{LoadSpec, Loader, FORWARDED};
use crate::metrics::{CacheResult, ProxyMetrics};
use crate::object::{unix_ms, vary_names, vary_values, CachedObject};
use crate::origin::OriginError;
use crate::respond::{empty, rewrite_location, Admitted, Reply, Responder};
use crate::store::ObjectStore;
use bytes::Bytes;
use http::header::{self, HeaderName, HeaderValue};
use http::{HeaderMap, Method, Request, Response};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::collections::HashSet;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;

pub use crate::respond::{Body, BoxError};

/// How long graceful shutdown waits for open connections.
const DRAIN: Duration = Duration::from_secs(10);
/// How often a connection checks its header and idle timeouts (at most; a quarter of the
/// header timeout when that is shorter).
const TIMEOUT_CHECK: Duration = Duration::from_millis(250);
/// How long a node that has not joined the ring asks clients to wait.
const NOT_READY_RETRY_AFTER_SECS: u64 = 2;
/// How often idle rate-limit state is forgotten.
const RETAIN_EVERY: Duration = Duration::from_secs(30);

/// hyper's own limit on request headers when none is set (its `max_headers` docs).
const HYPER_MAX_HEADERS: usize = 100;

/// The HTTP face of one node.
pub struct Proxy {
    config: ProxyConfig,
    cluster: Arc<dyn Cluster>,
    store: ObjectStore,
    loader: Loader,
    limits: ClientLimits,
    metrics: Arc<ProxyMetrics>,
    responder: Responder,
    /// Keys with a background refresh under way, so a stale hot object triggers one at a time.
    refreshing: Mutex<HashSet<ObjectKey>>,
    /// Whether the node serves: false before it joined its ring (see [`Proxy::with_readiness`]).
    ready: Box<dyn Fn() -> bool + Send + Sync>,
    /// Open client connections, shared by every accept loop (`serve` may run on several
    /// threads over one listening socket).
    slots: Arc<Semaphore>,
}

impl std::fmt::Debug for Proxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Proxy")
            .field("node", &self.config.node_name)
            .field("cluster", &self.cluster)
            .finish_non_exhaustive()
    }
}

/// What a lookup asks for; the load request it sends is built only when the local store
/// cannot answer.
struct Wanted<'a> {
    target: &'a Target,
    /// The normalised URL: the origin resource, and the primary cache key.
    url: String,
    /// Request headers a variant varies on, forwarded besides [`FORWARDED`].
    vary: Vec<String>,
}

impl Wanted<'_> {
    /// The load request, forwarding also the request headers in `varies`.
    fn spec(&self, client: &HeaderMap, varies: Option<&[String]>) -> LoadSpec {
        let mut spec = LoadSpec {
            target: self.target.clone(),
            url: self.url.clone(),
            headers: forwarded(client, FORWARDED.iter().copied()),
        };
        add_forwarded(&mut spec, client, &self.vary);
        if let Some(names) = varies {
            add_forwarded(&mut spec, client, names);
        }
        spec
    }
}

/// Why the cache path produced no object.
enum Miss {
    /// Fetch from the origin for this request alone.
    Pass,
    /// Answer with this status and one-line reason.
    Fail(u16, String),
}

impl From<ClusterError> for Miss {
    fn from(e: ClusterError) -> Self {
        match e {
            ClusterError::Pass => Miss::Pass,
            ClusterError::Origin { status, message } => Miss::Fail(status, message),
            ClusterError::Unavailable(m) => Miss::Fail(502, format!("cluster unavailable: {m}")),
        }
    }
}

impl Proxy {
    /// A proxy serving through `cluster`, caching in `store`, passing to origins with `loader`'s
    /// client and sharing its metrics.
    pub fn new(
        config: ProxyConfig,
        cluster: Arc<dyn Cluster>,
        store: ObjectStore,
        loader: Loader,
    ) -> Self {
        let limits = ClientLimits::new(config.rate_per_sec, config.burst);
        let metrics = loader.metrics();
        let responder = Responder::new(&config.node_name, cluster.node_name(), metrics.clone());
        let config_max = config.max_connections;
        Proxy {
            responder,
            config,
            cluster,
            store,
            loader,
            limits,
            metrics,
            refreshing: Mutex::default(),
            ready: Box::new(|| true),
            slots: Arc::new(Semaphore::new(config_max)),
        }
    }

    /// Answers 503 with `Retry-After` while `ready` says no: a node that has not joined its
    /// ring would otherwise go to the origin for everything, uncoalesced with the ring.
    pub fn with_readiness(mut self, ready: impl Fn() -> bool + Send + Sync + 'static) -> Self {
        self.ready = Box::new(ready);
        self
    }

    /// The counters (shared with the loader).
    pub fn metrics(&self) -> Arc<ProxyMetrics> {
        self.metrics.clone()
    }

    /// Serves `listener` until `shutdown` turns true (or its sender goes away), then stops
    /// accepting, answers the requests under way, closes idle connections, and waits up to
    /// 10 s for open connections to finish.
    pub async fn serve(
        self: Arc<Self>,
        listener: TcpListener,
        mut shutdown: watch::Receiver<bool>,
    ) {
        let mut builder = http1::Builder::new();
        // hyper's own header timer also runs between keep-alive requests, so it is only a
        // backstop past the idle timeout; `conn` enforces both timeouts proper.
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(self.config.idle_timeout + self.config.header_read_timeout)
            .max_header_size(self.config.max_header_bytes);
        // hyper parses into a stack array of its default size, but into a heap one filled
        // element by element (~2 000 instructions a request) when a count is set.
        if self.config.max_headers != HYPER_MAX_HEADERS {
            builder.max_headers(self.config.max_headers);
        }
        let mut connections = JoinSet::new();
        let retain = {
            let this = self.clone();
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(RETAIN_EVERY);
                loop {
                    tick.tick().await;
                    this.limits.retain_recent();
                }
            })
        };
        while !*shutdown.borrow() {
            tokio::select! {
                accepted = listener.accept() => {
                    let (stream, peer) = match accepted {
                        Ok(a) => a,
                        Err(e) => {
                            // Out of descriptors and the like: back off instead of spinning.
                            tracing::warn!("accept failed: {e}");
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            continue;
                        }
                    };
                    let Ok(permit) = self.slots.clone().try_acquire_owned() else {
                        continue; // over the connection limit: drop it
                    };
                    let _ = stream.set_nodelay(true);
                    let activity = Activity::new();
                    let this = self.clone();
                    let seen = activity.clone();
                    let svc = service_fn(move |req| {
                        let this = this.clone();
                        let under_way = seen.request();
                        async move {
                            let response = this.handle(req, peer).await;
                            drop(under_way);
                            Ok::<_, Infallible>(response)
                        }
                    });
                    let io = TokioIo::new(Tracked::new(stream, activity.clone()));
                    let conn = builder.serve_connection(io, svc);
                    let timeouts = (self.config.header_read_timeout, self.config.idle_timeout);
                    let mut stop = shutdown.clone();
                    // One connection to its end under its two timeouts (see `conn`), closed
                    // gracefully (after the request under way, if any) when the server stops.
                    connections.spawn(async move {
                        let (header, idle) = timeouts;
                        let every = TIMEOUT_CHECK.min(header / 4).max(Duration::from_millis(10));
                        let mut tick = tokio::time::interval(every);
                        let mut conn = std::pin::pin!(conn);
                        let mut closing = false;
                        loop {
                            tokio::select! {
                                _ = conn.as_mut() => break,
                                _ = stop.wait_for(|s| *s), if !closing => {
                                    conn.as_mut().graceful_shutdown();
                                    closing = true;
                                }
                                _ = tick.tick() => match activity.expired(header, idle) {
                                    // Dropped: the socket closes.
                                    Some(Expired::Header) => break,
                                    Some(Expired::Idle) if !closing => {
                                        conn.as_mut().graceful_shutdown();
                                        closing = true;
                                    }
                                    _ => {}
                                },
                            }
                        }
                        drop(permit);
                    });
                }
                Some(_) = connections.join_next(), if !connections.is_empty() => {}
                changed = shutdown.changed() => {
                    if changed.is_err() {
                        break;
                    }
                }
            }
        }
        drop(listener);
        retain.abort();
        let drained = async { while connections.join_next().await.is_some() {} };
        let _ = tokio::time::timeout(DRAIN, drained).await;
    }

    /// Answers one request. Never panics on what the client sent.
    pub async fn handle(
        self: &Arc<Self>,
        req: Request<Incoming>,
        peer: SocketAddr,
    ) -> Response<Body> {
        // A tunnel to a named origin is nothing a CDN offers; forwarding it left the client
        // without an answer.
        if req.method() == Method::CONNECT {
            let mut r = self.responder.error(405, "CONNECT is not supported");
            r.headers_mut().insert(
                header::ALLOW,
                HeaderValue::from_static("GET, HEAD, POST, PUT, DELETE, OPTIONS, PATCH, PURGE"),
            );
            return r;
        }
        // Two Host headers may name two origins; which one a cache in front picked is anyone's
        // guess; HTTP/1.1 says to answer 400.
        if req.headers().get_all(header::HOST).iter().nth(1).is_some() {
            return self.responder.error(400, "more than one Host header");
        }
        if !(self.ready)() {
            let mut r = self.responder.error(503, "node has not joined its ring yet");
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(NOT_READY_RETRY_AFTER_SECS));
            return r;
        }
        // Phase: admission.
        if let Err(wait) = self.limits.check(peer.ip()) {
            self.metrics.rate_limited();
            let mut r = self.responder.error(429, "rate limited");
            let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs.max(1)));
            return r;
        }
        let host_header = req.uri().authority().map(|a| a.as_str().to_string()).or_else(|| {
            req.headers().get(header::HOST).and_then(|h| h.to_str().ok()).map(String::from)
        });
        let Some(mut host_header) = host_header else {
            return self.responder.error(400, "missing Host header");
        };
        host_header.make_ascii_lowercase();
        let target = match map_host(&host_header, &self.config) {
            Ok(t) => t,
            Err(e) => return self.responder.error(400, &e.to_string()),
        };
        let ctx = Admitted { peer, host_header, head: req.method() == Method::HEAD, target };
        // A reference-counted copy of the request's own bytes: `req` is taken apart below.
        let path = req.uri().path_and_query().cloned();
        let path = path.as_ref().map_or("/", |p| p.as_str());
        let method = req.method().clone();
        if method.as_str() == "PURGE" {
            return self.purge(&ctx, &req, path).await;
        }
        if method != Method::GET && method != Method::HEAD {
            if ctx.target.open {
                return self.responder.error(405, "method not allowed in open mode");
            }
            let (parts, body) = req.into_parts();
            let body = match self.read_body(&parts.headers, body).await {
                Ok(b) => b,
                Err(resp) => return resp,
            };
            return self.pass(&ctx, method, path, parts.headers, body).await;
        }
        let headers = req.into_parts().0.headers;
        if headers.contains_key(header::AUTHORIZATION) || headers.contains_key(header::COOKIE) {
            return self.pass(&ctx, method, path, headers, Bytes::new()).await;
        }
        // Phases: local lookup → cluster fetch → store.
        let url = normalise(&ctx.target, path, &self.config);
        let key = ObjectKey::of(&url);
        let want = Wanted { target: &ctx.target, url, vary: Vec::new() };
        match self.lookup(key, &want, &headers, true).await {
            Ok(reply) => self.responder.reply(&ctx, &headers, reply),
            Err(Miss::Pass) => self.pass(&ctx, method, path, headers, Bytes::new()).await,
            Err(Miss::Fail(status, msg)) => self.responder.error(status, &msg),
        }
    }

    /// Local store first, then the cluster; at most one step to a variant key.
    async fn lookup(
        self: &Arc<Self>,
        key: ObjectKey,
        want: &Wanted<'_>,
        client: &HeaderMap,
        allow_variant: bool,
    ) -> Result<Reply, Miss> {
        // The one clock read of a hit: freshness and `Age` both use it.
        let now = SystemTime::now();
        let now_ms = unix_ms(now);
        let local = self.store.get_decoded(&key);
        if let Some(obj) = &local {
            let matches = obj.vary_matches(client);
            if allow_variant && !matches {
                if let Some(names) = vary_names(&obj.headers) {
                    return Box::pin(self.variant(names, want, client)).await;
                }
            }
            if matches {
                // A request that states no cache preferences of its own is answered by the
                // stored freshness alone (`fresh_until` came from the same policy); only one
                // with Cache-Control or Pragma needs the full RFC 9111 evaluation.
                let plain = !client.contains_key(header::CACHE_CONTROL)
                    && !client.contains_key(header::PRAGMA);
                if !obj.is_stale(now_ms)
                    && (plain
                        || obj.policy.get().is_some_and(|p| {
                            p.before_request(&policy_request(&want.url, client), now)
                                .satisfies_without_revalidation()
                        }))
                {
                    self.cluster.served_locally(key);
                    return Ok(Reply {
                        object: obj.clone(),
                        result: CacheResult::Hit,
                        hops: 0,
                        level: None,
                        now,
                    });
                }
                let swr = self.config.stale_while_revalidate.as_millis() as u64;
                if obj.is_stale(now_ms) && obj.staleness_ms(now_ms) <= swr {
                    self.refresh_in_background(key, want.spec(client, None));
                    self.cluster.served_locally(key);
                    return Ok(Reply {
                        object: obj.clone(),
                        result: CacheResult::Stale,
                        hops: 0,
                        level: None,
                        now,
                    });
                }
            }
        }
        // Forward the headers the stored variant varies on, so the home loads the right one.
        let varies = local.as_ref().and_then(|o| vary_names(&o.headers));
        let spec = want.spec(client, varies.as_deref());
        let fetched = self.cluster.fetch(key, spec.encode(), local.is_some()).await;
        let stale_if_error = |status: u16, msg: String| match &local {
            Some(o)
                if o.staleness_ms(unix_ms(SystemTime::now()))
                    <= self.config.stale_if_error.as_millis() as u64 =>
            {
                Ok(Reply {
                    object: o.clone(),
                    result: CacheResult::Stale,
                    hops: 0,
                    level: None,
                    now: SystemTime::now(),
                })
            }
            _ => Err(Miss::Fail(status, msg)),
        };
        let f = match fetched.map_err(Miss::from) {
            Ok(f) => f,
            Err(Miss::Fail(status, message)) => return stale_if_error(status, message),
            Err(miss) => return Err(miss),
        };
        self.metrics.hops(f.hops);
        let Ok(mut obj) = CachedObject::decode_shared(&f.object).map(Arc::new) else {
            return stale_if_error(502, "malformed object from the cluster".into());
        };
        let mut f = f;
        // A copy that came stale from another node: only its home revalidates, so ask it to
        // (in the background within stale-while-revalidate, else now).
        let now_ms = unix_ms(SystemTime::now());
        if local.is_none() && f.cacheable && obj.is_stale(now_ms) {
            let swr = self.config.stale_while_revalidate.as_millis() as u64;
            if obj.staleness_ms(now_ms) <= swr {
                self.refresh_in_background(key, spec.clone());
            } else {
                match self.cluster.fetch(key, spec.encode(), true).await {
                    Ok(fresh) => {
                        if let Ok(o) = CachedObject::decode_shared(&fresh.object).map(Arc::new) {
                            (f, obj) = (fresh, o);
                        }
                    }
                    // The home could not revalidate: the stale copy only within
                    // stale-if-error.
                    Err(e) => {
                        let sie = self.config.stale_if_error.as_millis() as u64;
                        if obj.staleness_ms(now_ms) > sie {
                            return Err(Miss::from(e));
                        }
                    }
                }
            }
        }
        if f.cacheable && (local.is_some() || self.cluster.keeps_fetched()) {
            self.store.keep(key, f.object, f.hash);
        }
        if allow_variant && f.cacheable && !obj.vary_matches(client) {
            if let Some(names) = vary_names(&obj.headers) {
                return Box::pin(self.variant(names, want, client)).await;
            }
        }
        let now = SystemTime::now();
        let result = if !f.cacheable {
            CacheResult::Pass
        } else if obj.is_stale(unix_ms(now)) {
            CacheResult::Stale
        } else {
            CacheResult::Miss
        };
        Ok(Reply { object: obj, result, hops: f.hops, level: f.level, now })
    }

    /// Looks up the variant of `want.url` this request's values of `names` select.
    async fn variant(
        self: &Arc<Self>,
        names: Vec<String>,
        want: &Wanted<'_>,
        client: &HeaderMap,
    ) -> Result<Reply, Miss> {
        let key = variant_key(&want.url, &vary_values(&names, client));
        let mut vary = want.vary.clone();
        vary.extend(names);
        let want = Wanted { target: want.target, url: want.url.clone(), vary };
        self.lookup(key, &want, client, false).await
    }

    /// Refreshes `key` through the cluster unless a refresh of it is already under way.
    fn refresh_in_background(self: &Arc<Self>, key: ObjectKey, spec: LoadSpec) {
        if !self.refreshing.lock().unwrap_or_else(|e| e.into_inner()).insert(key) {
            return;
        }
        let this = self.clone();
        tokio::spawn(async move {
            if let Ok(f) = this.cluster.fetch(key, spec.encode(), true).await {
                let held = this.store.get(&key).is_some();
                if f.cacheable
                    && (held || this.cluster.keeps_fetched())
                    && CachedObject::decode_shared(&f.object).is_ok()
                {
                    this.store.keep(key, f.object, f.hash);
                }
            }
            this.refreshing.lock().unwrap_or_else(|e| e.into_inner()).remove(&key);
        });
    }

    /// Sends the request to the origin for this client alone and streams the answer back.
    async fn pass(
        &self,
        ctx: &Admitted,
        method: Method,
        path: &str,
        mut headers: HeaderMap,
        body: Bytes,
    ) -> Response<Body> {
        headers.remove(header::HOST);
        append_forwarded_for(&mut headers, ctx.peer);
        self.metrics.origin_fetch();
        let origin = self.loader.origin();
        match origin.send(&ctx.target, method, path, headers, body).await {
            Ok(res) => {
                let (mut parts, body) = res.into_parts();
                rewrite_location(ctx, &mut parts.headers);
                self.responder.decorate(&mut parts.headers, CacheResult::Pass, 0, None);
                self.metrics.response(parts.status.as_u16(), Some(CacheResult::Pass), 0);
                let body = if ctx.head { empty() } else { body.map_err(BoxError::from).boxed() };
                Response::from_parts(parts, body)
            }
            Err(e) => {
                if e != OriginError::TooLarge {
                    self.metrics.origin_error();
                }
                self.responder.error(e.status(), &e.to_string())
            }
        }
    }

    /// PURGE: loopback or the admin token; purges the cluster and this node's copy.
    async fn purge(&self, ctx: &Admitted, req: &Request<Incoming>, path: &str) -> Response<Body> {
        let auth = req.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
        if !purge_allowed(ctx.peer.ip(), auth, self.config.admin_token.as_deref()) {
            return self.responder.error(403, "purge not allowed");
        }
        let key = ObjectKey::of(&normalise(&ctx.target, path, &self.config));
        self.store.remove(&key);
        match self.cluster.purge(key).await {
            Ok(()) => self.responder.error(200, "purged"),
            Err(e) => self.responder.error(502, &format!("purge failed: {e}")),
        }
    }

    /// Reads a request body for an origin, refusing more than `max_body_bytes` with 413 and
    /// a body slower than the origin timeout with 408.
    async fn read_body(
        &self,
        headers: &HeaderMap,
        body: Incoming,
    ) -> Result<Bytes, Response<Body>> {
        let max = self.config.max_body_bytes;
        let declared = headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > max as u64) {
            return Err(self.responder.error(413, "request body too large"));
        }
        let read = Limited::new(body, max).collect();
        let Ok(read) = tokio::time::timeout(self.config.origin_timeout, read).await else {
            return Err(self.responder.error(408, "request body not received in time"));
        };
        match read {
            Ok(c) => Ok(c.to_bytes()),
            Err(e) if e.is::<http_body_util::LengthLimitError>() => {
                Err(self.responder.error(413, "request body too large"))
            }
            Err(_) => Err(self.responder.error(400, "request body could not be read")),
        }
    }
}

/// The request the cache policy judges freshness against: the normalised URL with the
/// client's headers, without Host (the policy compares it, and load requests never carry it;
/// Vary is checked by this crate). Built only for requests that state cache preferences.
fn policy_request(url: &str, client: &HeaderMap) -> http::request::Parts {
    let mut parts = Request::get(url).body(()).unwrap_or_else(|_| Request::new(())).into_parts().0;
    parts.headers = client.clone();
    parts.headers.remove(header::HOST);
    parts
}

/// `(name, value)` of the request headers in `names` that are present and printable.
fn forwarded<'a>(
    headers: &HeaderMap,
    names: impl Iterator<Item = &'a str>,
) -> Vec<(String, String)> {
    names
        .filter_map(|n| {
            let vals: Vec<&str> =
                headers.get_all(n).iter().filter_map(|v| v.to_str().ok()).collect();
            (!vals.is_empty()).then(|| (n.to_string(), vals.join(", ")))
        })
        .collect()
}

fn add_forwarded(spec: &mut LoadSpec, headers: &HeaderMap, names: &[String]) {
    for (n, v) in forwarded(headers, names.iter().map(String::as_str)) {
        if !spec.headers.iter().any(|(have, _)| *have == n) {
            spec.headers.push((n, v));
        }
    }
}

fn append_forwarded_for(headers: &mut HeaderMap, peer: SocketAddr) {
    let prior = headers.get("x-forwarded-for").and_then(|v| v.to_str().ok());
    let v = match prior {
        Some(p) => format!("{p}, {}", peer.ip()),
        None => peer.ip().to_string(),
    };
    if let Ok(v) = HeaderValue::from_str(&v) {
        headers.insert(HeaderName::from_static("x-forwarded-for"), v);
    }
}
