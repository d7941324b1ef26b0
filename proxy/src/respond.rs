//! Phase: respond. Turns a cached object into the client's response (304, 206, 416, HEAD),
//! rewrites `Location`, adds the CDN headers, and shapes every error as a status with a
//! one-line body.

use crate::host::Target;
use crate::metrics::{CacheResult, ProxyMetrics};
use crate::object::CachedObject;
use crate::range::{if_range_holds, not_modified, parse_range, RangeAnswer};
use bytes::Bytes;
use http::header::{self, HeaderName, HeaderValue};
use http::{HeaderMap, Response, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Empty, Full};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::SystemTime;

/// The boxed error of response bodies (origin streams can fail mid-way).
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
/// The response body type.
pub type Body = BoxBody<Bytes, BoxError>;

/// A whole body.
pub(crate) fn full(b: impl Into<Bytes>) -> Body {
    Full::new(b.into()).map_err(|never| match never {}).boxed()
}

/// No body (HEAD, 304).
pub(crate) fn empty() -> Body {
    Empty::new().map_err(|never| match never {}).boxed()
}

/// A request past admission: who asked, under which name, for which origin.
pub(crate) struct Admitted {
    pub(crate) peer: SocketAddr,
    /// The Host the client used, lowercased (for `Location` rewriting).
    pub(crate) host_header: String,
    pub(crate) target: Target,
    pub(crate) head: bool,
}

/// An object the cache path found for a request, and how it found it.
pub(crate) struct Reply {
    pub(crate) object: Arc<CachedObject>,
    pub(crate) result: CacheResult,
    pub(crate) hops: u32,
    pub(crate) level: Option<u8>,
    /// The time the lookup judged freshness at, for `Age`.
    pub(crate) now: SystemTime,
}

/// Shapes this node's responses. Built once per proxy, so the headers every response carries
/// are not formatted again per request.
#[derive(Debug)]
pub(crate) struct Responder {
    /// `Via: 1.1 <node> (beehive)`; `None` when the name is not a valid header value.
    via: Option<HeaderValue>,
    /// `X-Beehive-Node`.
    node: Option<HeaderValue>,
    /// Tells this responder's ready hit heads (which carry its `Via` and name) from another's.
    token: u64,
    metrics: Arc<ProxyMetrics>,
}

/// Source of [`Responder::token`]s.
static TOKENS: AtomicU64 = AtomicU64::new(0);

impl Responder {
    /// A responder for the node `via_name` (its configured name) known to the cluster as
    /// `node_name`, counting into `metrics`.
    pub(crate) fn new(via_name: &str, node_name: &str, metrics: Arc<ProxyMetrics>) -> Self {
        Responder {
            via: HeaderValue::from_str(&format!("1.1 {via_name} (beehive)")).ok(),
            node: HeaderValue::from_str(node_name).ok(),
            token: TOKENS.fetch_add(1, Ordering::Relaxed),
            metrics,
        }
    }

    /// Phase: respond — conditional requests, ranges, header rewriting.
    pub(crate) fn reply(
        &self,
        ctx: &Admitted,
        req_headers: &HeaderMap,
        served: Reply,
    ) -> Response<Body> {
        let obj = served.object;
        if (served.result, served.hops, served.level) == (CacheResult::Hit, 0, None)
            && plain(req_headers)
            && !obj.headers.contains_key(header::LOCATION)
        {
            return self.plain_hit(ctx, &obj, served.now);
        }
        let mut headers = obj.headers.clone();
        headers.remove(header::CONTENT_LENGTH);
        rewrite_location(ctx, &mut headers);
        let age = obj.age(served.now).as_secs();
        headers.insert(header::AGE, HeaderValue::from(age));
        self.decorate(&mut headers, served.result, served.hops, served.level);
        let status = StatusCode::from_u16(obj.status).unwrap_or(StatusCode::BAD_GATEWAY);
        let text = |name| obj.headers.get(name).and_then(|v| v.to_str().ok());
        let (etag, lm) = (text(header::ETAG), text(header::LAST_MODIFIED));
        let (status, body) = if status == StatusCode::OK && not_modified(req_headers, etag, lm) {
            (StatusCode::NOT_MODIFIED, Bytes::new())
        } else if status == StatusCode::OK && if_range_holds(req_headers, etag, lm) {
            headers.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
            let len = obj.body.len() as u64;
            let range = req_headers.get(header::RANGE).and_then(|v| v.to_str().ok());
            match parse_range(range, len) {
                RangeAnswer::Whole => (status, obj.body.clone()),
                RangeAnswer::Part { start, end } => {
                    let v = format!("bytes {start}-{end}/{len}");
                    if let Ok(v) = HeaderValue::from_str(&v) {
                        headers.insert(header::CONTENT_RANGE, v);
                    }
                    (StatusCode::PARTIAL_CONTENT, obj.body.slice(start as usize..=end as usize))
                }
                RangeAnswer::Unsatisfiable => {
                    if let Ok(v) = HeaderValue::from_str(&format!("bytes */{len}")) {
                        headers.insert(header::CONTENT_RANGE, v);
                    }
                    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
                    (
                        StatusCode::RANGE_NOT_SATISFIABLE,
                        Bytes::from_static(b"range not satisfiable\n"),
                    )
                }
            }
        } else {
            (status, obj.body.clone())
        };
        if status != StatusCode::NOT_MODIFIED {
            headers.insert(header::CONTENT_LENGTH, HeaderValue::from(body.len()));
        }
        let body = if status == StatusCode::NOT_MODIFIED { None } else { Some(body) };
        self.respond(ctx, status, headers, body, served.result)
    }

    /// A fresh local hit on a request with no conditional or range headers: the object's
    /// ready head (made on its first such hit) with only `Age` set. The head holds this
    /// node's `Via` and name and a placeholder `Age`.
    fn plain_hit(&self, ctx: &Admitted, obj: &CachedObject, now: SystemTime) -> Response<Body> {
        let ready = obj.prepared.hit_head.get_or_init(|| (self.token, self.hit_head(obj)));
        let mut headers = if ready.0 == self.token { ready.1.clone() } else { self.hit_head(obj) };
        // In place: an `insert` would first make room for a new entry, and a full map grows.
        if let Some(age) = headers.get_mut(header::AGE) {
            *age = HeaderValue::from(obj.age(now).as_secs());
        }
        let status = StatusCode::from_u16(obj.status).unwrap_or(StatusCode::BAD_GATEWAY);
        self.respond(ctx, status, headers, Some(obj.body.clone()), CacheResult::Hit)
    }

    /// What [`Self::reply`] gives a plain `HIT` of `obj`, with `Age` 0.
    fn hit_head(&self, obj: &CachedObject) -> HeaderMap {
        let mut headers = obj.headers.clone();
        headers.remove(header::CONTENT_LENGTH);
        headers.insert(header::AGE, HeaderValue::from_static("0"));
        self.decorate(&mut headers, CacheResult::Hit, 0, None);
        if obj.status == 200 {
            headers.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
        }
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(obj.body.len()));
        headers
    }

    /// Counts the response and builds it; `None` (a 304) and `HEAD` send no body.
    fn respond(
        &self,
        ctx: &Admitted,
        status: StatusCode,
        headers: HeaderMap,
        body: Option<Bytes>,
        result: CacheResult,
    ) -> Response<Body> {
        let body = body.filter(|_| !ctx.head);
        let sent = body.as_ref().map_or(0, |b| b.len() as u64);
        self.metrics.response(status.as_u16(), Some(result), sent);
        let mut res = Response::new(body.map_or_else(empty, full));
        *res.status_mut() = status;
        *res.headers_mut() = headers;
        res
    }

    /// Adds `Via`, `X-Cache`, `X-Beehive-Hops`, `X-Beehive-Level` and `X-Beehive-Node`.
    pub(crate) fn decorate(
        &self,
        headers: &mut HeaderMap,
        result: CacheResult,
        hops: u32,
        level: Option<u8>,
    ) {
        cache_headers(headers, result, hops, level);
        self.sign(headers);
    }

    /// Adds this node's `Via` and `X-Beehive-Node`.
    fn sign(&self, headers: &mut HeaderMap) {
        if let Some(v) = &self.via {
            headers.append(header::VIA, v.clone());
        }
        if let Some(v) = &self.node {
            headers.insert(HeaderName::from_static("x-beehive-node"), v.clone());
        }
    }

    /// A status with a one-line text body.
    pub(crate) fn error(&self, status: u16, msg: &str) -> Response<Body> {
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY);
        let body = format!("{} {msg}\n", status.as_u16());
        self.metrics.response(status.as_u16(), None, body.len() as u64);
        let mut res = Response::new(full(body));
        *res.status_mut() = status;
        let h = res.headers_mut();
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
        self.sign(h);
        res
    }
}

/// `X-Cache`, `X-Beehive-Hops` and, for a replica, `X-Beehive-Level`.
fn cache_headers(headers: &mut HeaderMap, result: CacheResult, hops: u32, level: Option<u8>) {
    headers.insert(HeaderName::from_static("x-cache"), HeaderValue::from_static(result.as_str()));
    headers.insert(HeaderName::from_static("x-beehive-hops"), HeaderValue::from(hops));
    if let Some(l) = level {
        headers.insert(HeaderName::from_static("x-beehive-level"), HeaderValue::from(u16::from(l)));
    }
}

/// Whether a request asks for the whole object unconditionally.
fn plain(req: &HeaderMap) -> bool {
    !(req.contains_key(header::RANGE)
        || req.contains_key(header::IF_RANGE)
        || req.contains_key(header::IF_NONE_MATCH)
        || req.contains_key(header::IF_MODIFIED_SINCE))
}

/// Rewrites a `Location` on the origin's own host to the CDN name the client used.
pub(crate) fn rewrite_location(ctx: &Admitted, headers: &mut HeaderMap) {
    let Some(loc) = headers.get(header::LOCATION).and_then(|v| v.to_str().ok()) else {
        return;
    };
    let t = &ctx.target;
    let mut prefixes = vec![format!("http://{}:{}", t.host, t.port)];
    if t.port == 80 {
        prefixes.push(format!("http://{}", t.host));
    }
    let lower = loc.to_ascii_lowercase();
    for p in prefixes {
        if let Some(rest) = lower.strip_prefix(&p) {
            if rest.is_empty() || rest.starts_with(['/', '?', '#']) {
                let tail = &loc[p.len()..];
                let new = format!("http://{}{}", ctx.host_header, tail);
                if let Ok(v) = HeaderValue::from_str(&new) {
                    headers.insert(header::LOCATION, v);
                }
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::object::make_policy;
    use std::time::Duration;

    fn object(status: u16, headers: &[(&str, &'static str)]) -> Arc<CachedObject> {
        let req = http::Request::get("http://o:80/x").body(()).unwrap().into_parts().0;
        let mut h = HeaderMap::new();
        for (n, v) in headers {
            h.append(HeaderName::from_bytes(n.as_bytes()).unwrap(), HeaderValue::from_static(v));
        }
        let now = SystemTime::now() - Duration::from_secs(7);
        let status = StatusCode::from_u16(status).unwrap();
        let policy = make_policy(&req, status, &h, now, Duration::from_secs(60));
        let obj = CachedObject {
            status: status.as_u16(),
            headers: h,
            body: Bytes::from_static(b"0123456789"),
            policy: policy.into(),
            stored_at: crate::object::unix_ms(now),
            fresh_until: crate::object::unix_ms(now) + 60_000,
            vary: Vec::new(),
            prepared: Default::default(),
        };
        // Through the wire form, as the store holds it.
        Arc::new(CachedObject::decode(&obj.encode()).unwrap())
    }

    fn sorted(h: &HeaderMap) -> Vec<(String, Vec<u8>)> {
        let mut v: Vec<_> =
            h.iter().map(|(n, v)| (n.as_str().to_string(), v.as_bytes().to_vec())).collect();
        v.sort();
        v
    }

    #[tokio::test]
    async fn a_plain_hit_answers_as_the_general_path_does() {
        let responder = Responder::new("n1", "node-1", Arc::default());
        let objects = [
            object(200, &[("etag", "\"v1\""), ("content-length", "10"), ("via", "1.0 up")]),
            object(404, &[("content-type", "text/plain")]),
            object(301, &[("cache-control", "max-age=5"), ("content-length", "99")]),
        ];
        for head in [false, true] {
            let ctx = Admitted {
                peer: "127.0.0.1:1".parse().unwrap(),
                host_header: "site.example".into(),
                target: Target { host: "o".into(), port: 80, open: false },
                head,
            };
            for obj in &objects {
                let now = SystemTime::now();
                let served = || Reply {
                    object: obj.clone(),
                    result: CacheResult::Hit,
                    hops: 0,
                    level: None,
                    now,
                };
                // An `If-Range` that holds (or none, for objects without an ETag) changes
                // nothing in the answer but takes the general path.
                let mut general = HeaderMap::new();
                general.insert(header::IF_RANGE, HeaderValue::from_static("\"v1\""));
                let general = if obj.headers.contains_key(header::ETAG) {
                    general
                } else {
                    let mut g = HeaderMap::new();
                    g.insert(header::IF_RANGE, HeaderValue::from_static("x"));
                    g
                };
                for _ in 0..2 {
                    let fast = responder.reply(&ctx, &HeaderMap::new(), served());
                    let slow = responder.reply(&ctx, &general, served());
                    assert_eq!(fast.status(), slow.status(), "{}", obj.status);
                    assert_eq!(sorted(fast.headers()), sorted(slow.headers()), "{}", obj.status);
                    let ranges = fast.headers().contains_key(header::ACCEPT_RANGES);
                    assert_eq!(ranges, obj.status == 200);
                    let len = |r: Response<Body>| async move {
                        r.into_body().collect().await.unwrap().to_bytes().len()
                    };
                    assert_eq!(len(fast).await, if head { 0 } else { 10 });
                }
            }
        }
    }

    #[test]
    fn a_ready_hit_head_carries_the_name_of_the_node_serving_it() {
        let obj = object(200, &[("etag", "\"v1\"")]);
        let ctx = Admitted {
            peer: "127.0.0.1:1".parse().unwrap(),
            host_header: "site.example".into(),
            target: Target { host: "o".into(), port: 80, open: false },
            head: false,
        };
        let node = |r: &Response<Body>| {
            let h = r.headers();
            (h.get("x-beehive-node").cloned(), h.get(header::VIA).cloned())
        };
        let served = || Reply {
            object: obj.clone(),
            result: CacheResult::Hit,
            hops: 0,
            level: None,
            now: SystemTime::now(),
        };
        // The first responder's hit makes the object's ready head; the second's must not
        // send it.
        let (one, two) = (
            Responder::new("n1", "one", Arc::default()),
            Responder::new("n2", "two", Arc::default()),
        );
        for _ in 0..2 {
            let (a, b) = (
                one.reply(&ctx, &HeaderMap::new(), served()),
                two.reply(&ctx, &HeaderMap::new(), served()),
            );
            assert_eq!(
                node(&a),
                (
                    Some(HeaderValue::from_static("one")),
                    Some(HeaderValue::from_static("1.1 n1 (beehive)"))
                )
            );
            assert_eq!(
                node(&b),
                (
                    Some(HeaderValue::from_static("two")),
                    Some(HeaderValue::from_static("1.1 n2 (beehive)"))
                )
            );
        }
    }
}
