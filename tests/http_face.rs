//! The HTTP face end to end: real `beehive node` processes on loopback fronting the built-in
//! origin (`beehive origin`), exercised with real clients (curl and Python's http.client).
//! Every wait is bounded and every child is killed by PID when its handle drops.

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::time::{Duration, Instant};
use support::*;

const CONVERGE: Duration = Duration::from_secs(20);
const SUFFIX: &str = "beehive.localhost";

/// The origin plus `n` nodes with the HTTP face on; `extra` flags go to every node.
struct Cdn {
    origin: OriginProc,
    nodes: Vec<NodeProc>,
}

impl Cdn {
    fn start(n: usize, origin_flags: &[&str], extra: &[&str]) -> Cdn {
        let origin = start_origin("127.0.0.1:0", origin_flags);
        let mut nodes: Vec<NodeProc> = Vec::new();
        for i in 0..n {
            let mut cmd = node_command(SECRET);
            cmd.args(["--rpc", "127.0.0.1:0", "--admin", "127.0.0.1:0", "--http", "127.0.0.1:0"])
                .args(["--origin", &format!("site=http://{}", origin.addr)])
                .args(["--replication-ms", "500"])
                .args(extra);
            if i > 0 {
                cmd.args(["--join", &nodes[0].rpc.to_string()]);
            }
            nodes.push(start_command(cmd));
        }
        let all: Vec<&NodeProc> = nodes.iter().collect();
        if n > 1 {
            let took = wait_for(CONVERGE, || cluster_error(&all, false).is_none());
            assert!(took.is_some(), "ring did not converge: {:?}", cluster_error(&all, false));
        }
        Cdn { origin, nodes }
    }

    /// `http://site.beehive.localhost:PORT/PATH` on node `i` (curl resolves `*.localhost`).
    fn url(&self, i: usize, path: &str) -> String {
        let port = self.nodes[i].http.expect("node has an HTTP listener").port();
        format!("http://site.{SUFFIX}:{port}{path}")
    }

    fn get(&self, i: usize, path: &str, extra: &[&str]) -> CurlResponse {
        let url = self.url(i, path);
        let mut args = extra.to_vec();
        args.push(&url);
        curl(&args).unwrap_or_else(|| panic!("no response from node {i} for {path}"))
    }

    fn origin_get(&self, path: &str, extra: &[&str]) -> CurlResponse {
        let url = format!("http://{}{path}", self.origin.addr);
        let mut args = extra.to_vec();
        args.push(&url);
        curl(&args).expect("origin answers")
    }

    /// How many requests the origin has seen for `path`.
    fn origin_count(&self, path: &str) -> u64 {
        let stats = self.origin_get("/stats", &[]);
        let v: serde_json::Value = serde_json::from_slice(&stats.body).expect("stats JSON");
        v["paths"][path].as_u64().unwrap_or(0)
    }

    fn bump(&self, path: &str) {
        let r = self.origin_get(&format!("{path}/bump"), &["-X", "POST"]);
        assert_eq!(r.status, 200, "bump {path}");
    }
}

/// Runs a Python script (http.client, threads) and returns its stdout.
fn python(script: &str, args: &[String]) -> String {
    let out = Command::new("python3").arg("-c").arg(script).args(args).output().expect("python3");
    assert!(out.status.success(), "python failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).expect("utf-8")
}

fn sha256_hex(bytes: &[u8]) -> String {
    python(
        "import hashlib,sys; print(hashlib.sha256(bytes.fromhex(sys.argv[1])).hexdigest())",
        &[bytes.iter().map(|b| format!("{b:02x}")).collect()],
    )
    .trim()
    .to_string()
}

#[test]
fn five_nodes_serve_the_origin_s_bytes_coalesce_misses_and_follow_http_semantics() {
    let cdn = Cdn::start(5, &["--objects", "64", "--size", "3000"], &[]);

    // Byte-identical bodies and the CDN headers, on every node; HEAD without a body.
    for path in ["/o/1", "/o/2", "/o/3"] {
        let direct = cdn.origin_get(path, &[]);
        assert_eq!(direct.status, 200);
        for i in 0..cdn.nodes.len() {
            let r = cdn.get(i, path, &[]);
            assert_eq!(r.status, 200, "node {i} {path}");
            assert_eq!(r.body, direct.body, "node {i} {path}: body differs from the origin's");
            assert_eq!(r.header("etag"), direct.header("etag"));
            assert_eq!(r.header("content-type"), direct.header("content-type"));
            assert!(r.header("via").is_some_and(|v| v.contains("beehive")), "{:?}", r.headers);
            assert!(matches!(r.header("x-cache"), Some("HIT" | "MISS" | "STALE")));
            assert!(r.header("x-beehive-hops").and_then(|h| h.parse::<u32>().ok()).is_some());
            assert!(r.header("x-beehive-node").is_some());
            let head = cdn.get(i, path, &["-I"]);
            assert_eq!(head.status, 200);
            assert!(head.body.is_empty(), "HEAD carried a body");
            assert_eq!(head.header("content-length"), Some("3000"));
        }
    }

    // Python's http.client through every node.
    let ports: Vec<u16> = cdn.nodes.iter().map(|n| n.http.unwrap().port()).collect();
    let host = format!("site.{SUFFIX}");
    let want = sha256_hex(&cdn.origin_get("/o/4", &[]).body);
    for line in python_clients_output(&host, "/o/4", 5, &ports).lines() {
        assert_eq!(line, format!("200 {want}"));
    }

    // 100 concurrent clients over all nodes, one cold object: one origin request.
    let cold = "/o/50";
    assert_eq!(cdn.origin_count(cold), 0);
    let lines = python_clients_output(&host, cold, 100, &ports);
    let origin_body = cdn.origin_get(cold, &[]);
    let want = format!("200 {}", sha256_hex(&origin_body.body));
    assert_eq!(lines.lines().count(), 100);
    for line in lines.lines() {
        assert_eq!(line, want);
    }
    // The origin_get above is the second request the origin saw for it.
    assert_eq!(cdn.origin_count(cold), 2, "100 concurrent CDN clients must cost 1 origin request");

    // Conditional request → 304 without a body.
    let etag = origin_body.header("etag").expect("origin sends an ETag").to_string();
    let r = cdn.get(2, cold, &["-H", &format!("If-None-Match: {etag}")]);
    assert_eq!(r.status, 304);
    assert!(r.body.is_empty());

    // Range → 206 with Content-Range, from the cached whole object; unsatisfiable → 416.
    let r = cdn.get(3, cold, &["-H", "Range: bytes=10-19"]);
    assert_eq!(r.status, 206);
    assert_eq!(r.header("content-range"), Some("bytes 10-19/3000"));
    assert_eq!(r.body, origin_body.body[10..20]);
    let r = cdn.get(3, cold, &["-H", "Range: bytes=-5"]);
    assert_eq!(r.status, 206);
    assert_eq!(r.body, origin_body.body[2995..]);
    let r = cdn.get(3, cold, &["-H", "Range: bytes=5000-6000"]);
    assert_eq!(r.status, 416);

    // A redirect to the origin's own host comes back pointing at the CDN name.
    let r = cdn.get(1, "/redirect/5", &[]);
    assert_eq!(r.status, 302);
    let port = cdn.nodes[1].http.unwrap().port();
    assert_eq!(r.header("location"), Some(format!("http://site.{SUFFIX}:{port}/o/5").as_str()));

    // Vary: each language gets its own variant, and each variant is cached.
    for lang in ["en", "fr", "en", "fr"] {
        let hdr = format!("Accept-Language: {lang}");
        let direct = cdn.origin_get("/vary/1", &["-H", &hdr]);
        let r = cdn.get(0, "/vary/1", &["-H", &hdr]);
        assert_eq!(r.status, 200);
        assert_eq!(r.body, direct.body, "variant {lang}");
    }
    let en = cdn.origin_get("/vary/1", &["-H", "Accept-Language: en"]).body;
    let fr = cdn.origin_get("/vary/1", &["-H", "Accept-Language: fr"]).body;
    assert_ne!(en, fr, "the test origin's variants differ");
    // Six direct requests of ours, and one CDN load per language.
    let seen = cdn.origin_count("/vary/1");
    assert!(seen <= 6 + 2, "variants were not cached: the origin saw {seen} requests");
}

#[test]
fn purge_reaches_every_node_and_ttl_expiry_refetches() {
    let cdn = Cdn::start(5, &["--objects", "16", "--size", "1000", "--max-age", "2"], &[]);
    // Purge: content changed at the origin, purged through one node, new everywhere.
    let path = "/o/7";
    for i in 0..cdn.nodes.len() {
        assert_eq!(cdn.get(i, path, &[]).status, 200);
    }
    let old = cdn.origin_get(path, &[]).body;
    cdn.bump(path);
    let new = cdn.origin_get(path, &[]).body;
    assert_ne!(old, new);
    let purged = cdn.get(3, path, &["-X", "PURGE"]);
    assert_eq!(
        purged.status,
        200,
        "PURGE from loopback: {:?}",
        String::from_utf8_lossy(&purged.body)
    );
    // The bound: the purge returns once the home invalidated; copies follow within 1 s.
    let took = wait_for(Duration::from_secs(1), || {
        (0..cdn.nodes.len()).all(|i| cdn.get(i, path, &[]).body == new)
    });
    assert!(took.is_some(), "a node served the purged body after the bound");

    // TTL: changed without a purge; every node serves the new body once max-age (2 s) has
    // passed, plus the stale-while-revalidate refresh (one request) and some slack.
    let path = "/o/9";
    for i in 0..cdn.nodes.len() {
        assert_eq!(cdn.get(i, path, &[]).status, 200);
    }
    cdn.bump(path);
    let new = cdn.origin_get(path, &[]).body;
    let took = wait_for(Duration::from_secs(8), || {
        (0..cdn.nodes.len()).all(|i| cdn.get(i, path, &[]).body == new)
    });
    assert!(took.is_some(), "a node still served the old body long after its TTL");
}

#[test]
fn origin_down_serves_stale_then_502_and_a_slow_origin_gets_504() {
    let mut cdn = Cdn::start(
        2,
        &["--objects", "8", "--size", "500", "--max-age", "1"],
        &["--stale-if-error", "3", "--stale-while-revalidate", "1", "--origin-timeout-ms", "1000"],
    );
    let path = "/o/1";
    let fresh = cdn.get(0, path, &[]);
    assert_eq!(fresh.status, 200);
    cdn.origin.proc.stop();
    let killed = Instant::now();
    std::thread::sleep(Duration::from_millis(1500));
    // Stale (max-age 1 s passed), origin down, within stale-if-error (3 s): the old body.
    for i in 0..2 {
        let r = cdn.get(i, path, &[]);
        assert_eq!(r.status, 200, "node {i}: stale-if-error should serve the stale copy");
        assert_eq!(r.body, fresh.body);
    }
    // Past max-age + stale-if-error: 502 with a one-line reason.
    let wait = Duration::from_millis(4500).saturating_sub(killed.elapsed());
    std::thread::sleep(wait);
    let r = cdn.get(1, path, &[]);
    assert_eq!(r.status, 502, "{}", String::from_utf8_lossy(&r.body));
    assert!(!r.body.is_empty());
    // Never fetched and the origin is down: 502 at once.
    assert_eq!(cdn.get(0, "/o/2", &[]).status, 502);

    // A slow origin: 504 after the 1 s origin timeout, not much later.
    let slow = start_origin("127.0.0.1:0", &["--objects", "8", "--size", "500"]);
    let mut cmd = node_command(SECRET);
    cmd.args(["--rpc", "127.0.0.1:0", "--admin", "127.0.0.1:0", "--http", "127.0.0.1:0"])
        .args(["--origin", &format!("site=http://{}", slow.addr)])
        .args(["--origin-timeout-ms", "1000"]);
    let node = start_command(cmd);
    let url = format!("http://site.{SUFFIX}:{}/slow/3000", node.http.unwrap().port());
    let start = Instant::now();
    let r = curl(&[&url]).expect("a response");
    assert_eq!(r.status, 504, "{}", String::from_utf8_lossy(&r.body));
    assert!(start.elapsed() < Duration::from_millis(2500), "504 took {:?}", start.elapsed());
}

/// Sends `raw` on a fresh connection and reads the answer until close (bounded).
fn raw_request(addr: SocketAddr, raw: &[u8]) -> String {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(raw).unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).to_string()
}

#[test]
fn open_mode_refuses_private_origins_and_abuse_gets_clear_statuses() {
    let cdn = Cdn::start(
        1,
        &["--objects", "8", "--size", "200"],
        &["--open", "--rate-per-sec", "20", "--header-timeout-ms", "1000"],
    );
    let http = cdn.nodes[0].http.unwrap();
    let port = http.port();

    // Open mode: private, loopback and link-local destinations (and names resolving to
    // them) are refused with 403; named origins need no DNS and still work.
    for host in ["127.0.0.1", "10.1.2.3", "169.254.1.1", "localhost", "192.168.0.1.8080"] {
        let url = format!("http://127.0.0.1:{port}/");
        let hdr = format!("Host: {host}.{SUFFIX}");
        let r = curl(&["-H", &hdr, &url]).expect("a response");
        assert_eq!(r.status, 403, "{host}: {}", String::from_utf8_lossy(&r.body));
    }
    assert_eq!(cdn.get(0, "/o/1", &[]).status, 200);

    // Malformed Host → 400; huge headers → 431.
    let answer = raw_request(http, b"GET /o/1 HTTP/1.1\r\nHost: site..bad..[x]\r\n\r\n");
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    let big = format!("X-Big: {}", "a".repeat(40_000));
    let r = curl(&["-H", &big, &cdn.url(0, "/o/1")]).expect("a response");
    assert_eq!(r.status, 431);

    // Slowloris: half a request line, then nothing; closed after the 1 s header timeout.
    let mut s = TcpStream::connect(http).unwrap();
    s.write_all(b"GET /o/1 HTTP/1.1\r\nHost: site.beehive.localhost\r\nX-Slow: ").unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let start = Instant::now();
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    let took = start.elapsed();
    assert!(took < Duration::from_secs(3), "slow client kept its connection for {took:?}");

    // One client floods (bounded: 200 pipelined requests on one connection from 127.0.0.1,
    // so that a slow machine cannot space them out below the rate), gets 429s; another is
    // still served.
    let one = "GET /o/2 HTTP/1.1\r\nHost: site.beehive.localhost\r\n\r\n";
    let last = "GET /o/2 HTTP/1.1\r\nHost: site.beehive.localhost\r\nConnection: close\r\n\r\n";
    let flood = format!("{}{last}", one.repeat(199));
    let answers = raw_request(http, flood.as_bytes());
    let limited = answers.matches("HTTP/1.1 429").count();
    assert!(limited > 0, "a flooding client was never limited");
    assert!(answers.to_ascii_lowercase().contains("retry-after:"), "429 without Retry-After");
    let other = curl(&["--interface", "127.0.0.2", &cdn.url(0, "/o/2")]).expect("a response");
    assert_eq!(other.status, 200, "another client must still be served");
}
