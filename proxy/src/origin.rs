//! The origin client: hyper-util's pooled HTTP/1 client, connect and whole-response timeouts,
//! and open mode's SSRF guard (resolve once, check every address, connect to the one checked).

use crate::config::ProxyConfig;
use crate::host::{is_forbidden, Target};
use crate::object::strip_hop_by_hop;
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Request, Response};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use ipnet::IpNet;
use std::collections::HashSet;
use std::net::IpAddr;
use std::time::Duration;
use thiserror::Error;

/// Why an origin request failed. Only idempotent fetches are retried, and by nobody here.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum OriginError {
    /// Open mode resolved the origin to a private, loopback or link-local address.
    #[error("origin address not allowed: {0}")]
    Forbidden(String),
    /// The origin's name did not resolve.
    #[error("origin name did not resolve: {0}")]
    Dns(String),
    /// No connection, or it broke before a whole response arrived.
    #[error("origin unreachable: {0}")]
    Unreachable(String),
    /// No whole response within the origin timeout.
    #[error("origin timed out")]
    Timeout,
    /// The body exceeds the object size limit: stream it through instead.
    #[error("origin response too large to cache")]
    TooLarge,
}

impl OriginError {
    /// The status an entry node answers with.
    pub fn status(&self) -> u16 {
        match self {
            OriginError::Forbidden(_) => 403,
            OriginError::Timeout => 504,
            OriginError::Dns(_) | OriginError::Unreachable(_) | OriginError::TooLarge => 502,
        }
    }
}

/// A whole origin response (head and body).
#[derive(Debug)]
pub struct Whole {
    /// Status and headers, hop-by-hop headers removed.
    pub head: http::response::Parts,
    /// The complete body.
    pub body: Bytes,
}

/// A cheap-to-clone origin client.
#[derive(Clone, Debug)]
pub struct OriginClient {
    client: Client<HttpConnector, Full<Bytes>>,
    named: HashSet<(String, u16)>,
    allow: Vec<IpNet>,
    connect_timeout: Duration,
    timeout: Duration,
}

impl OriginClient {
    /// A client with the config's timeouts and allow-list.
    pub fn new(config: &ProxyConfig) -> Self {
        let mut http = HttpConnector::new();
        http.set_connect_timeout(Some(config.origin_connect_timeout));
        http.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .build(http);
        OriginClient {
            client,
            named: config.origins.values().map(|(h, p)| (h.to_ascii_lowercase(), *p)).collect(),
            allow: config.allow.clone(),
            connect_timeout: config.origin_connect_timeout,
            timeout: config.origin_timeout,
        }
    }

    /// The authority to connect to: this node's named origins as configured; anything else
    /// (open mode, or a load request naming an origin this node does not know) resolved here,
    /// refused if any address is forbidden, and pinned to the first address checked.
    pub async fn destination(&self, target: &Target) -> Result<String, OriginError> {
        let literal = target.host.parse::<IpAddr>().ok();
        if self.named.contains(&(target.host.to_ascii_lowercase(), target.port)) {
            return Ok(match literal {
                Some(IpAddr::V6(v6)) => format!("[{v6}]:{}", target.port),
                _ => format!("{}:{}", target.host, target.port),
            });
        }
        let addrs: Vec<std::net::SocketAddr> = match literal {
            Some(ip) => vec![(ip, target.port).into()],
            None => {
                let lookup = tokio::net::lookup_host((target.host.as_str(), target.port));
                match tokio::time::timeout(self.connect_timeout, lookup).await {
                    Ok(Ok(it)) => it.collect(),
                    Ok(Err(e)) => return Err(OriginError::Dns(e.to_string())),
                    Err(_) => return Err(OriginError::Dns("lookup timed out".into())),
                }
            }
        };
        if let Some(bad) = addrs.iter().find(|a| is_forbidden(a.ip(), &self.allow)) {
            return Err(OriginError::Forbidden(bad.ip().to_string()));
        }
        addrs.first().map(|a| a.to_string()).ok_or_else(|| OriginError::Dns("no address".into()))
    }

    /// Sends a request and returns once the response head arrives (within the origin
    /// timeout); the body streams afterwards. `headers` lose their hop-by-hop entries and
    /// get `Host` set to the origin's authority.
    pub async fn send(
        &self,
        target: &Target,
        method: Method,
        path_and_query: &str,
        mut headers: HeaderMap,
        body: Bytes,
    ) -> Result<Response<Incoming>, OriginError> {
        let dest = self.destination(target).await?;
        let uri = format!("http://{dest}{path_and_query}");
        strip_hop_by_hop(&mut headers);
        headers.remove(http::header::HOST);
        let host = HeaderValue::from_str(&target.authority())
            .map_err(|_| OriginError::Unreachable("bad origin host".into()))?;
        headers.insert(http::header::HOST, host);
        let mut req = Request::builder()
            .method(method)
            .uri(uri)
            .body(Full::new(body))
            .map_err(|e| OriginError::Unreachable(e.to_string()))?;
        *req.headers_mut() = headers;
        match tokio::time::timeout(self.timeout, self.client.request(req)).await {
            Err(_) => Err(OriginError::Timeout),
            Ok(Err(e)) => Err(OriginError::Unreachable(e.to_string())),
            Ok(Ok(mut res)) => {
                strip_hop_by_hop(res.headers_mut());
                Ok(res)
            }
        }
    }

    /// GETs a whole response within the origin timeout; [`OriginError::TooLarge`] as soon as
    /// the body is known to exceed `max_bytes`.
    pub async fn fetch_whole(
        &self,
        target: &Target,
        path_and_query: &str,
        headers: HeaderMap,
        max_bytes: usize,
    ) -> Result<Whole, OriginError> {
        let work = async {
            let res = self.send(target, Method::GET, path_and_query, headers, Bytes::new()).await?;
            let declared = res
                .headers()
                .get(http::header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok());
            if declared.is_some_and(|n| n > max_bytes as u64) {
                return Err(OriginError::TooLarge);
            }
            let (head, body) = res.into_parts();
            let body = match Limited::new(body, max_bytes).collect().await {
                Ok(c) => c.to_bytes(),
                Err(e) if e.is::<http_body_util::LengthLimitError>() => {
                    return Err(OriginError::TooLarge)
                }
                Err(e) => return Err(OriginError::Unreachable(e.to_string())),
            };
            Ok(Whole { head, body })
        };
        tokio::time::timeout(self.timeout, work).await.unwrap_or(Err(OriginError::Timeout))
    }
}
