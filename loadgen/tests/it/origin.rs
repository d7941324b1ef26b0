//! The demo origin over real HTTP: deterministic bodies, validators, bump, stats, HEAD.

use crate::{http, stats};
use beehive_loadgen::origin::{Origin, OriginConfig};
use hyper::{Method, StatusCode};

fn config(seed: u64) -> OriginConfig {
    OriginConfig { objects: 8, size: 1000, seed, ..OriginConfig::default() }
}

#[tokio::test]
async fn same_seed_same_bytes_across_instances() {
    let a = Origin::start(config(5)).await.unwrap();
    let b = Origin::start(config(5)).await.unwrap();
    let c = Origin::start(config(6)).await.unwrap();
    let (sa, ha, body_a) = http(Method::GET, &format!("{}/o/3", a.url()), &[]).await;
    let (_, hb, body_b) = http(Method::GET, &format!("{}/o/3", b.url()), &[]).await;
    let (_, _, body_c) = http(Method::GET, &format!("{}/o/3", c.url()), &[]).await;
    assert_eq!(sa, StatusCode::OK);
    assert_eq!(body_a.len(), 1000);
    assert_eq!(body_a, body_b);
    assert_eq!(ha["etag"], hb["etag"]);
    assert_ne!(body_a, body_c, "another seed gives other bytes");
    let (_, _, other) = http(Method::GET, &format!("{}/o/4", a.url()), &[]).await;
    assert_ne!(body_a, other, "another path gives other bytes");
    assert_eq!(ha["cache-control"], "public, max-age=300");
    assert!(ha.contains_key("last-modified"));
    assert!(ha.contains_key("content-type"));
    let etag = ha["etag"].to_str().unwrap();
    assert!(etag.starts_with('"') && etag.ends_with('"'), "strong ETag: {etag}");
    a.shutdown().await.unwrap();
}

#[tokio::test]
async fn conditional_get_head_bump_and_not_found() {
    let o = Origin::start(config(1)).await.unwrap();
    let url = format!("{}/o/2", o.url());
    let (_, h, body) = http(Method::GET, &url, &[]).await;
    let etag = h["etag"].to_str().unwrap().to_string();

    let (s, h304, b304) = http(Method::GET, &url, &[("if-none-match", &etag)]).await;
    assert_eq!(s, StatusCode::NOT_MODIFIED);
    assert!(b304.is_empty());
    assert_eq!(h304["etag"].to_str().unwrap(), etag);
    let (s, _, _) = http(Method::GET, &url, &[("if-none-match", "\"nope\"")]).await;
    assert_eq!(s, StatusCode::OK);

    let last_modified = h["last-modified"].to_str().unwrap().to_string();
    let (s, _, _) = http(Method::GET, &url, &[("if-modified-since", &last_modified)]).await;
    assert_eq!(s, StatusCode::NOT_MODIFIED);
    let (s, _, _) =
        http(Method::GET, &url, &[("if-modified-since", "Sat, 01 Jan 2000 00:00:00 GMT")]).await;
    assert_eq!(s, StatusCode::OK);

    let (s, hh, bh) = http(Method::HEAD, &url, &[]).await;
    assert_eq!(s, StatusCode::OK);
    assert!(bh.is_empty(), "HEAD has no body");
    assert_eq!(hh["etag"].to_str().unwrap(), etag);
    assert_eq!(hh["content-length"], "1000");

    let (s, _, _) = http(Method::POST, &format!("{url}/bump"), &[]).await;
    assert_eq!(s, StatusCode::OK);
    let (_, h2, body2) = http(Method::GET, &url, &[]).await;
    assert_ne!(body, body2, "bump changes the body");
    assert_ne!(h2["etag"].to_str().unwrap(), etag, "bump changes the ETag");
    let (s, _, _) = http(Method::GET, &url, &[("if-none-match", &etag)]).await;
    assert_eq!(s, StatusCode::OK, "the old ETag no longer validates");
    let (s, _, _) = http(Method::GET, &url, &[("if-modified-since", &last_modified)]).await;
    assert_eq!(s, StatusCode::OK, "Last-Modified moved on with the bump");

    for path in ["/o/8", "/o/x", "/nothing"] {
        let (s, _, _) = http(Method::GET, &format!("{}{path}", o.url()), &[]).await;
        assert_eq!(s, StatusCode::NOT_FOUND, "{path}");
    }
    let (s, _, page) = http(Method::GET, &format!("{}/", o.url()), &[]).await;
    assert_eq!(s, StatusCode::OK);
    assert!(String::from_utf8_lossy(&page).contains("href=\"/o/0\""));
}

#[tokio::test]
async fn stats_count_object_requests_and_reset() {
    let o = Origin::start(config(1)).await.unwrap();
    for path in ["/o/1", "/o/1", "/o/5"] {
        http(Method::GET, &format!("{}{path}", o.url()), &[]).await;
    }
    http(Method::HEAD, &format!("{}/o/5", o.url()), &[]).await;
    let s = stats(&o.stats_url()).await;
    assert_eq!(s.total, 4, "/stats itself is not counted: {s:?}");
    assert_eq!(s.paths.get("/o/1"), Some(&2));
    assert_eq!(s.paths.get("/o/5"), Some(&2));
    assert_eq!(stats(&o.stats_url()).await.total, 4);
    let (st, _, _) = http(Method::POST, &format!("{}/stats/reset", o.url()), &[]).await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    let s = stats(&o.stats_url()).await;
    assert_eq!(s.total, 0);
    assert!(s.paths.is_empty());
}
