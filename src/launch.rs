//! A local cluster of real processes for `beehive demo`: the built-in origin and N nodes on
//! loopback, each a child `beehive` process started here and stopped here by its PID.

use anyhow::{bail, Context, Result};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

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
    /// Starts `beehive ARGS...` with stderr to `log`, and waits for its `listening` line.
    pub fn spawn(name: &str, args: &[String], env: &[(&str, &str)], log: PathBuf) -> Result<Self> {
        let exe = std::env::current_exe().context("cannot find the beehive executable")?;
        let file = std::fs::File::create(&log)
            .with_context(|| format!("cannot create log file {}", log.display()))?;
        let mut cmd = Command::new(exe);
        cmd.args(args).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::from(file));
        for (key, _) in std::env::vars() {
            if key.starts_with("BEEHIVE_") {
                cmd.env_remove(key);
            }
        }
        cmd.envs(env.iter().copied());
        let mut child = cmd.spawn().with_context(|| format!("cannot start {name}"))?;
        let stdout = child.stdout.take().context("child stdout")?;
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
                bail!("{name} did not start; see its log {}", log.display());
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
    pub fn addr(&self, key: &str) -> Result<SocketAddr> {
        let (_, v) = self
            .fields
            .iter()
            .find(|(k, _)| k == key)
            .with_context(|| format!("{} printed no {key}=", self.name))?;
        v.parse().with_context(|| format!("{} printed a bad {key} address {v:?}", self.name))
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

/// A tiny HTTP/1.0 GET for admin endpoints on loopback: (status, body), bounded in time.
pub fn get(addr: SocketAddr, path: &str) -> Option<(u16, String)> {
    let bound = Duration::from_secs(2);
    let mut stream = TcpStream::connect_timeout(&addr, bound).ok()?;
    stream.set_read_timeout(Some(bound)).ok()?;
    stream.set_write_timeout(Some(bound)).ok()?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").ok()?;
    let mut raw = Vec::new();
    stream.take(16 << 20).read_to_end(&mut raw).ok()?;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text.split_once("\r\n\r\n")?;
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    Some((status, body.to_string()))
}

/// Waits until every node's ring is right: each node's successor is the next id around the
/// ring of all of them. Returns how long it took.
pub fn wait_for_ring(admins: &[SocketAddr], bound: Duration) -> Result<Duration> {
    let start = Instant::now();
    let mut last = String::from("no node answered /ring");
    while start.elapsed() < bound {
        match ring_check(admins) {
            Ok(()) => return Ok(start.elapsed()),
            Err(why) => last = why,
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    bail!("the ring did not form within {bound:?}: {last}")
}

fn ring_check(admins: &[SocketAddr]) -> Result<(), String> {
    let mut views = Vec::new();
    for a in admins {
        let (status, body) = get(*a, "/ring").ok_or_else(|| format!("{a}: no answer"))?;
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
