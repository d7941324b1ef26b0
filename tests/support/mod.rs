//! Helpers for end-to-end tests: real `beehive node` processes on loopback, a tiny HTTP/1.0
//! client for the admin listener, and bounded waits. Every child is killed (by PID) when its
//! handle drops, so a failing test never leaks processes.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

pub const SECRET: &str = "e2e cluster secret, 32 bytes long";
/// Intervals the e2e tests run with: fast enough to converge in seconds.
pub const INTERVAL_MS: &str = "100";
/// The merge period: a peer suspected before it was restarted is forgotten (and so can be
/// adopted as a successor again) within two of these.
pub const MERGE_MS: &str = "1000";

pub struct NodeProc {
    pub child: Child,
    pub rpc: SocketAddr,
    pub admin: SocketAddr,
    /// The HTTP face, when started with `--http`.
    pub http: Option<SocketAddr>,
    pub id: u128,
    pub log: std::path::PathBuf,
}

impl Drop for NodeProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // Logs are kept when the test failed, for a look afterwards.
        if !std::thread::panicking() {
            let _ = std::fs::remove_file(&self.log);
        }
    }
}

fn log_path() -> std::path::PathBuf {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static N: AtomicUsize = AtomicUsize::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    std::env::temp_dir().join(format!("beehive-e2e-{}-{n}.log", std::process::id()))
}

/// A `beehive node` command with the test intervals and no inherited BEEHIVE_* settings.
pub fn node_command(secret: &str) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_beehive"));
    cmd.arg("node");
    for (key, _) in std::env::vars() {
        if key.starts_with("BEEHIVE_") {
            cmd.env_remove(key);
        }
    }
    cmd.env("BEEHIVE_SECRET", secret)
        .env("RUST_LOG", "info")
        .env_remove("RUST_BACKTRACE")
        .args(["--stabilize-ms", INTERVAL_MS])
        .args(["--fix-fingers-ms", INTERVAL_MS])
        .args(["--check-predecessor-ms", INTERVAL_MS])
        .args(["--merge-ms", MERGE_MS])
        .args(["--shutdown-ms", "4000"]);
    cmd
}

/// Runs `beehive ARGS` to its end (the subcommand bounds itself) without RUST_LOG from the
/// environment; its stdout, once it has exited successfully.
pub fn beehive_stdout(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_beehive"))
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .unwrap_or_else(|e| panic!("cannot start beehive {args:?}: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "beehive {args:?} failed: {}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// Starts a node on `rpc` (port 0: any) with admin on any port, joining through `join`, and
/// waits (bounded) for its `listening` line.
pub fn start(rpc: &str, join: &[SocketAddr], secret: &str) -> NodeProc {
    let mut cmd = node_command(secret);
    cmd.args(["--rpc", rpc, "--admin", "127.0.0.1:0"]);
    for j in join {
        cmd.args(["--join", &j.to_string()]);
    }
    start_command(cmd)
}

pub fn start_command(mut cmd: Command) -> NodeProc {
    let log = log_path();
    let file = std::fs::File::create(&log).expect("create log file");
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::from(file))
        .stdin(Stdio::null())
        .spawn()
        .expect("spawn beehive node");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    let line = match rx.recv_timeout(Duration::from_secs(20)) {
        Ok(line) => line,
        Err(_) => {
            let _ = child.kill();
            let _ = child.wait();
            panic!("node did not print its listening line; log {}", log.display());
        }
    };
    let field = |name: &str| -> String {
        line.split_whitespace()
            .find_map(|w| w.strip_prefix(name))
            .unwrap_or_else(|| panic!("no {name} in {line:?}; log {}", log.display()))
            .to_string()
    };
    let http = line
        .split_whitespace()
        .find_map(|w| w.strip_prefix("http="))
        .map(|a| a.parse().expect("http address"));
    NodeProc {
        http,
        rpc: field("rpc=").parse().unwrap(),
        admin: field("admin=").parse().unwrap(),
        id: u128::from_str_radix(&field("id="), 16).unwrap(),
        child,
        log,
    }
}

impl NodeProc {
    pub fn get(&self, path: &str) -> Option<(u16, String)> {
        http(self.admin, "GET", path, b"")
    }

    pub fn ring(&self) -> Option<serde_json::Value> {
        let (status, body) = self.get("/ring")?;
        (status == 200).then(|| serde_json::from_str(&body).ok()).flatten()
    }

    /// The value of the metric line `series` (name with labels, as exposed), 0 if absent.
    pub fn metric(&self, series: &str) -> f64 {
        let Some((_, text)) = self.get("/metrics") else { return 0.0 };
        text.lines()
            .find_map(|l| l.strip_prefix(series).and_then(|rest| rest.strip_prefix(' ')))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0.0)
    }

    pub fn signal(&self, signal: &str) {
        signal_child(&self.child, signal);
    }

    /// Waits (bounded) for the process to exit.
    pub fn wait_exit(&mut self, bound: Duration) -> Option<ExitStatus> {
        wait_child(&mut self.child, bound)
    }

    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }
}

/// One HTTP/1.0 request to `addr`; `None` if the connection fails.
pub use beehive::launch::http;

/// Polls `check` every 50 ms until it holds or `bound` passes; returns the time it took.
pub fn wait_for(bound: Duration, mut check: impl FnMut() -> bool) -> Option<Duration> {
    let start = Instant::now();
    loop {
        if check() {
            return Some(start.elapsed());
        }
        if start.elapsed() >= bound {
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

pub fn hex_id(v: &serde_json::Value) -> Option<u128> {
    u128::from_str_radix(v.get("id")?.as_str()?, 16).ok()
}

/// The true successor of `key` among `ids` (sorted): the first id at or after it, wrapping.
pub fn successor_of(ids: &[u128], key: u128) -> u128 {
    ids.iter().copied().find(|&i| i >= key).unwrap_or(ids[0])
}

/// What is wrong with `ring` (a node's `/ring`) given the live ids, or `None` if its
/// successor, predecessor and (if `fingers`) every remote finger are right.
pub fn ring_error(ring: &serde_json::Value, ids: &[u128], fingers: bool) -> Option<String> {
    let me = hex_id(ring)?;
    let pos = ids.iter().position(|&i| i == me)?;
    let n = ids.len();
    let want_succ = ids[(pos + 1) % n];
    let want_pred = ids[(pos + n - 1) % n];
    let succ = ring["successors"].get(0).and_then(hex_id);
    let pred = ring.get("predecessor").and_then(hex_id);
    if succ != Some(want_succ) {
        return Some(format!("{me:032x}: successor {succ:x?}, want {want_succ:032x}"));
    }
    if pred != Some(want_pred) {
        return Some(format!("{me:032x}: predecessor {pred:x?}, want {want_pred:032x}"));
    }
    if !fingers {
        return None;
    }
    let reach = want_succ.wrapping_sub(me);
    let first = if reach == 0 { 128 } else { 128 - reach.leading_zeros() };
    let runs = ring["fingers"].as_array()?;
    for j in first..128 {
        let want = successor_of(ids, me.wrapping_add(1u128 << j));
        if want == me {
            continue;
        }
        let got = runs
            .iter()
            .find(|r| {
                let (from, to) = (r["from"].as_u64(), r["to"].as_u64());
                from.zip(to).is_some_and(|(f, t)| (f..=t).contains(&u64::from(j)))
            })
            .and_then(hex_id);
        if got != Some(want) {
            return Some(format!("{me:032x}: finger {j} is {got:x?}, want {want:032x}"));
        }
    }
    None
}

/// Whether every node's ring view is right for the node set (`None`), else the first error.
pub fn cluster_error(nodes: &[&NodeProc], fingers: bool) -> Option<String> {
    let mut ids: Vec<u128> = nodes.iter().map(|n| n.id).collect();
    ids.sort_unstable();
    for n in nodes {
        let Some(ring) = n.ring() else { return Some(format!("{:032x}: no /ring", n.id)) };
        if let Some(e) = ring_error(&ring, &ids, fingers) {
            return Some(e);
        }
    }
    None
}

/// A `beehive origin` process (the built-in demo origin), stopped by PID on drop.
pub struct OriginProc {
    pub proc: beehive::launch::Proc,
    pub addr: SocketAddr,
}

/// Starts `beehive origin --listen ADDR EXTRA...` and waits (bounded) for its address.
pub fn start_origin(listen: &str, extra: &[&str]) -> OriginProc {
    let mut args = vec!["origin".to_string(), "--listen".to_string(), listen.to_string()];
    args.extend(extra.iter().map(|a| a.to_string()));
    let exe = std::path::Path::new(env!("CARGO_BIN_EXE_beehive"));
    let proc = beehive::launch::Proc::spawn(exe, "origin", &args, &[], log_path())
        .expect("start beehive origin");
    let addr = proc.addr("http").expect("origin address");
    OriginProc { proc, addr }
}

/// A response as curl saw it.
#[derive(Debug)]
pub struct CurlResponse {
    pub status: u16,
    /// Header names lowercased, in order.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl CurlResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
}

/// Runs `curl -s -i --max-time 10 ARGS...` and parses the final response. `None` when curl
/// got no response at all (connection refused or closed).
pub fn curl(args: &[&str]) -> Option<CurlResponse> {
    let out = Command::new("curl")
        .args(["-s", "-i", "--max-time", "10"])
        .args(args)
        .output()
        .expect("run curl");
    let raw = out.stdout;
    // The last header block: skip interim (1xx) responses.
    let mut start = 0;
    loop {
        let end = find(&raw[start..], b"\r\n\r\n")? + start;
        let head = String::from_utf8_lossy(&raw[start..end]).to_string();
        let status: u16 = head.split_whitespace().nth(1)?.parse().ok()?;
        if (100..200).contains(&status) {
            start = end + 4;
            continue;
        }
        let headers = head
            .lines()
            .skip(1)
            .filter_map(|l| l.split_once(':'))
            .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        return Some(CurlResponse { status, headers, body: raw[end + 4..].to_vec() });
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Sends `signal` (e.g. `-TERM`) to a child we started, by its PID.
pub fn signal_child(child: &Child, signal: &str) {
    let status =
        Command::new("kill").args([signal, &child.id().to_string()]).status().expect("run kill");
    assert!(status.success());
}

/// Waits (bounded) for a child to exit.
pub fn wait_child(child: &mut Child, bound: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + bound;
    while Instant::now() < deadline {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

/// `N` concurrent clients in Python threads (http.client: a client that is not ours), one
/// connection each, all connected before any sends. Client k asks port `ports[k % len]` for
/// PATH, with `?k=<k>` appended when TAG is 1, and prints `status sha256-of-body` or its error.
const PY_CLIENTS: &str = r#"
import hashlib, http.client, sys, threading
host, path, n, tag = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4] == "1"
ports = [int(p) for p in sys.argv[5:]]
out = [None] * n
barrier = threading.Barrier(n)
def client(k):
    try:
        conn = http.client.HTTPConnection("127.0.0.1", ports[k % len(ports)], timeout=20)
        conn.connect()
        barrier.wait(timeout=20)
        conn.request("GET", path + ("?k=%d" % k if tag else ""), headers={"Host": host})
        r = conn.getresponse()
        out[k] = "%d %s" % (r.status, hashlib.sha256(r.read()).hexdigest())
    except Exception as e:
        out[k] = "error %r" % (e,)
threads = [threading.Thread(target=client, args=(k,)) for k in range(n)]
for t in threads: t.start()
for t in threads: t.join(60)
print("\n".join(str(o) for o in out))
"#;

/// Starts `n` concurrent Python clients (see `PY_CLIENTS`) for `path` with Host `host`, spread
/// over `ports`; `tag` makes each URL distinct. Their lines are on the child's stdout.
pub fn python_clients(host: &str, path: &str, n: usize, tag: bool, ports: &[u16]) -> Child {
    Command::new("python3")
        .arg("-c")
        .arg(PY_CLIENTS)
        .args([host, path, &n.to_string(), if tag { "1" } else { "0" }])
        .args(ports.iter().map(|p| p.to_string()))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3")
}

/// Runs [`python_clients`] to the end and returns its lines.
pub fn python_clients_output(host: &str, path: &str, n: usize, ports: &[u16]) -> String {
    let out = python_clients(host, path, n, false, ports).wait_with_output().expect("python3");
    assert!(out.status.success(), "python failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).expect("utf-8")
}

/// The built-in origin's `/stats` (request counts: `total`, and per path under `paths`).
pub fn origin_stats(origin: SocketAddr) -> serde_json::Value {
    let (_, body) = http(origin, "GET", "/stats", b"").expect("origin /stats");
    serde_json::from_str(&body).expect("stats JSON")
}
