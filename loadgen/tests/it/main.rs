//! Integration tests of the load generator and the demo origin: real sockets on 127.0.0.1, every
//! run bounded in time and count. One test binary, one module per concern.

mod bad_args;
mod headers;
mod open_loop;
mod origin;
mod run;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::{HeaderMap, Method, Request, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use std::time::Duration;

/// One request with a 5 s bound: (status, headers, body).
pub async fn http(
    method: Method,
    url: &str,
    headers: &[(&str, &str)],
) -> (StatusCode, HeaderMap, Bytes) {
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let mut req = Request::builder().method(method).uri(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let fut = async {
        let resp = client.request(req.body(Empty::new()).unwrap()).await.unwrap();
        let (parts, body) = resp.into_parts();
        (parts.status, parts.headers, body.collect().await.unwrap().to_bytes())
    };
    tokio::time::timeout(Duration::from_secs(5), fut).await.expect("answer within 5 s")
}

/// The origin's `/stats`.
pub async fn stats(url: &str) -> beehive_loadgen::origin::OriginStats {
    let (status, _, body) = http(Method::GET, url, &[]).await;
    assert_eq!(status, StatusCode::OK);
    serde_json::from_slice(&body).unwrap()
}

/// A fresh path under the system temp dir for one test's output.
pub fn temp_path(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("beehive-loadgen-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}
