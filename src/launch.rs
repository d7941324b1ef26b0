//! Child `beehive` processes on loopback (the built-in origin, nodes), started here and
//! stopped here by their PID, for `beehive demo` and the end-to-end tests; and the tiny
//! HTTP/1.0 client both use for admin endpoints.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Why a child could not be started or a cluster did not form.
#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    #[error("cannot start {name}: {source}")]
    Spawn { name: String, source: std::io::Error },
    #[error("{name} did not print its listening line; see its log {log}")]
    NoListeningLine { name: String, log: String },
    #[error("{name} printed no usable {key}= address")]
    NoAddress { name: String, key: String },
    #[error("the ring did not form within {bound:?}: {last}")]
    NoRing { bound: Duration, last: String },
}

/// How long a child may take to print its `listening` line.
const START_BOUND: Duration = Duration::from_secs(20);
/// How long a child may take to exit after SIGTERM before it is killed.
const STOP_BOUND: Duration = Duration::from_secs(6);

/// One child process and the addresses it printed.
#[derive(Debug)]
pub struct Proc {
    pub name: String,
    child: Child,
    /// `key=ADDR` fields of its `listening` line.
    fields: Vec<(String, String)>,
}

impl Proc {
    /// Starts `exe ARGS...` (the `beehive` binary) with stderr to `log`, no inherited
    /// `BEEHIVE_*` settings, and waits (bounded) for its `listening` line.
    pub fn spawn(
        exe: &Path,
        name: &str,
        args: &[String],
        env: &[(&str, &str)],
        log: PathBuf,
    ) -> Result<Self, LaunchError> {
        let spawn_error = |source| LaunchError::Spawn { name: name.to_string(), source };
        let file = std::fs::File::create(&log).map_err(spawn_error)?;
        let mut cmd = Command::new(exe);
        cmd.args(args).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::from(file));
        for (key, _) in std::env::vars() {
            if key.starts_with("BEEHIVE_") {
                cmd.env_remove(key);
            }
        }
        cmd.envs(env.iter().copied());
        let mut child = cmd.spawn().map_err(spawn_error)?;
        let Some(stdout) = child.stdout.take() else {
            let _ = child.kill();
            let _ = child.wait();
            return Err(spawn_error(std::io::Error::other("no stdout pipe")));
        };
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            let mut line = String::new();
            let _ = reader.read_line(&mut line);
            let _ = tx.send(line);
            // Keep draining so the child never blocks on a full pipe.
            let _ = std::io::copy(&mut reader, &mut std::io::sink());
        });
        let line = match rx.recv_timeout(START_BOUND) {
            Ok(line) if line.starts_with("listening") => line,
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                let log = log.display().to_string();
                return Err(LaunchError::NoListeningLine { name: name.to_string(), log });
            }
        };
        let fields = line
            .split_whitespace()
            .filter_map(|w| w.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Ok(Proc { name: name.to_string(), child, fields })
    }

    /// The address printed as `key=ADDR`.
    pub fn addr(&self, key: &str) -> Result<SocketAddr, LaunchError> {
        self.fields
            .iter()
            .find(|(k, _)| k == key)
            .and_then(|(_, v)| v.parse().ok())
            .ok_or_else(|| LaunchError::NoAddress { name: self.name.clone(), key: key.into() })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGTERM, a bounded wait, then SIGKILL: only this child, by its PID.
    pub fn stop(&mut self) {
        if matches!(self.child.try_wait(), Ok(Some(_))) {
            return;
        }
        let _ = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .stderr(Stdio::null())
            .status();
        let deadline = Instant::now() + STOP_BOUND;
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.stop();
    }
}

/// One HTTP/1.0 request to an admin endpoint on loopback: (status, body), bounded in time;
/// `None` if the connection fails.
pub fn http(addr: SocketAddr, method: &str, path: &str, body: &[u8]) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    stream.set_write_timeout(Some(Duration::from_secs(5))).ok()?;
    let head = format!(
        "{method} {path} HTTP/1.0\r\nHost: {addr}\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).ok()?;
    stream.write_all(body).ok()?;
    let mut raw = Vec::new();
    stream.take(16 << 20).read_to_end(&mut raw).ok()?;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text.split_once("\r\n\r\n")?;
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    Some((status, body.to_string()))
}

/// Waits until every node's ring is right: each node's successor is the next id around the
/// ring of all of them. Returns how long it took.
pub fn wait_for_ring(admins: &[SocketAddr], bound: Duration) -> Result<Duration, LaunchError> {
    let start = Instant::now();
    let mut last = String::from("no node answered /ring");
    while start.elapsed() < bound {
        match ring_check(admins) {
            Ok(()) => return Ok(start.elapsed()),
            Err(why) => last = why,
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Err(LaunchError::NoRing { bound, last })
}

fn ring_check(admins: &[SocketAddr]) -> Result<(), String> {
    let mut views = Vec::new();
    for a in admins {
        let (status, body) =
            http(*a, "GET", "/ring", b"").ok_or_else(|| format!("{a}: no answer"))?;
        if status != 200 {
            return Err(format!("{a}: /ring answered {status}"));
        }
        let v: serde_json::Value = serde_json::from_str(&body).map_err(|e| e.to_string())?;
        let id = v["id"].as_str().ok_or("no id")?.to_string();
        let succ = v["successors"][0]["id"].as_str().map(str::to_string);
        views.push((id, succ));
    }
    let mut ids: Vec<&String> = views.iter().map(|(id, _)| id).collect();
    ids.sort();
    for (id, succ) in &views {
        let pos = ids.iter().position(|x| *x == id).unwrap_or(0);
        let want = ids[(pos + 1) % ids.len()];
        if ids.len() > 1 && succ.as_ref() != Some(want) {
            return Err(format!("node {id}: successor {succ:?}, want {want}"));
        }
    }
    Ok(())
}
