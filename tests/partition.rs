//! Partition: 8 `beehive node` processes in two network namespaces joined by a veth pair,
//! 6 on one side and 2 on the other; the link goes down for a while and comes back up.
//!
//! Each namespace also has a veth to the test's own namespace, on which the nodes' admin and
//! HTTP listeners live, so the test reads `/ring` and drives the load (`beehive loadgen
//! --verify`, every body checked against the origin's blake3) without crossing the partition.
//! The origin runs in the test's namespace at one address both sides reach (a load request
//! names its origin, so every node must know it by the same address). The nodes talk RPC only over the link that is cut. The majority
//! must keep answering (< 0.1 % failed, no wrong body) and the ring must be one ring within
//! 10 s of healing. Namespaces need root: without it the test says so and passes.
//!
//! CI-sized here (10 s cut); the full one (20 s cut) is
//! `cargo test --release --test partition -- --ignored --nocapture`.

mod support;

use std::net::SocketAddr;
use std::process::Command;
use std::time::{Duration, Instant};
use support::*;

/// The link between the sides, and each side's link to the test.
const SIDES: [Side; 2] = [
    Side { rpc_ip: "10.77.0.1", test_ip: "10.78.0.1", outer_ip: "10.78.0.2" },
    Side { rpc_ip: "10.77.0.2", test_ip: "10.79.0.1", outer_ip: "10.79.0.2" },
];
const SUFFIX: &str = "beehive.localhost";
const OBJECTS: u64 = 300;

struct Side {
    /// The side's address on the link that is cut; its nodes' RPC listens here.
    rpc_ip: &'static str,
    /// The side's address toward the test (admin, HTTP).
    test_ip: &'static str,
    /// The test's address toward the side.
    outer_ip: &'static str,
}

fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip").args(args).output().map_err(|e| format!("ip: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!("ip {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim()))
    }
}

/// Two namespaces and their links, removed on drop (a failed test too).
struct Net {
    ns: [String; 2],
    /// The veth ends in the test's namespace.
    outer: [String; 2],
    /// The cut link's end in the first namespace.
    link: String,
}

impl Net {
    fn create() -> Result<Net, String> {
        let tag = std::process::id() % 100_000;
        let net = Net {
            ns: [format!("bhpa{tag}"), format!("bhpb{tag}")],
            outer: [format!("bhoa{tag}"), format!("bhob{tag}")],
            link: format!("bhla{tag}"),
        };
        let peer = format!("bhlb{tag}");
        for ns in &net.ns {
            ip(&["netns", "add", ns])?;
            ip(&["-n", ns, "link", "set", "lo", "up"])?;
        }
        ip(&["link", "add", &net.link, "type", "veth", "peer", "name", &peer])?;
        for (i, (end, side)) in [&net.link, &peer].into_iter().zip(&SIDES).enumerate() {
            let ns = &net.ns[i];
            ip(&["link", "set", end, "netns", ns])?;
            ip(&["-n", ns, "addr", "add", &format!("{}/24", side.rpc_ip), "dev", end])?;
            ip(&["-n", ns, "link", "set", end, "up"])?;
            let inner = format!("{}i", net.outer[i]);
            ip(&["link", "add", &net.outer[i], "type", "veth", "peer", "name", &inner])?;
            ip(&["link", "set", &inner, "netns", ns])?;
            ip(&["addr", "add", &format!("{}/24", side.outer_ip), "dev", &net.outer[i]])?;
            ip(&["link", "set", &net.outer[i], "up"])?;
            ip(&["-n", ns, "addr", "add", &format!("{}/24", side.test_ip), "dev", &inner])?;
            ip(&["-n", ns, "link", "set", &inner, "up"])?;
        }
        // The second side reaches the origin's address (the test's end of the first side's
        // link) through its own link to the test, which owns that address.
        let origin = format!("{}/32", SIDES[0].outer_ip);
        ip(&["-n", &net.ns[1], "route", "add", &origin, "via", SIDES[1].outer_ip])?;
        Ok(net)
    }

    /// Takes the link between the sides down (`false`) or up.
    fn link(&self, up: bool) {
        let state = if up { "up" } else { "down" };
        ip(&["-n", &self.ns[0], "link", "set", &self.link, state]).expect("set the link");
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        // Deleting a namespace deletes the veths in it, and so their peers.
        for ns in &self.ns {
            let _ = ip(&["netns", "del", ns]);
        }
        for outer in &self.outer {
            let _ = ip(&["link", "del", outer]);
        }
    }
}

/// A node of side `side`, in its namespace, joining through `join`.
fn start_node(net: &Net, side: usize, join: Option<SocketAddr>, origin: SocketAddr) -> NodeProc {
    let inner = node_command(SECRET);
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", &net.ns[side]]).arg(inner.get_program()).args(inner.get_args());
    for (key, value) in inner.get_envs() {
        match value {
            Some(v) => cmd.env(key, v),
            None => cmd.env_remove(key),
        };
    }
    let s = &SIDES[side];
    cmd.args(["--rpc", &format!("{}:0", s.rpc_ip), "--admin", &format!("{}:0", s.test_ip)])
        .args(["--http", &format!("{}:0", s.test_ip), "--suffix", SUFFIX])
        .args(["--origin", &format!("site=http://{origin}")])
        .args(["--replication-ms", "1000", "--rate-per-sec", "100000"]);
    if let Some(j) = join {
        cmd.args(["--join", &j.to_string()]);
    }
    start_command(cmd)
}

/// What the load saw, from loadgen's JSON report.
struct Load {
    requests: u64,
    errors: u64,
    wrong: u64,
    verified: u64,
}

fn run(cut: Duration) {
    // The namespaces' names and subnets are fixed per process: one run at a time.
    static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let net = match Net::create() {
        Ok(net) => net,
        Err(e) => {
            eprintln!("SKIPPED: cannot create network namespaces (needs root): {e}");
            return;
        }
    };
    let objects = OBJECTS.to_string();
    let origin = start_origin(&format!("{}:0", SIDES[0].outer_ip), &["--objects", &objects]);
    let mut nodes: Vec<NodeProc> = Vec::new();
    for i in 0..8 {
        let side = usize::from(i >= 6);
        let join = nodes.first().map(|n| n.rpc);
        nodes.push(start_node(&net, side, join, origin.addr));
    }
    let all: Vec<&NodeProc> = nodes.iter().collect();
    let took = wait_for(Duration::from_secs(30), || cluster_error(&all, false).is_none());
    assert!(took.is_some(), "ring did not converge: {:?}", cluster_error(&all, false));

    // Open-loop load on the majority for the whole run: before, during and after the cut.
    let settle = Duration::from_secs(5);
    let heal_for = Duration::from_secs(10);
    let run_for = settle + cut + heal_for;
    let report =
        std::env::temp_dir().join(format!("beehive-partition-{}.json", std::process::id()));
    let mut loadgen = Command::new(env!("CARGO_BIN_EXE_beehive"));
    loadgen.args(["loadgen", "--no-progress", "--verify", "--workload", "uniform"]);
    for n in &nodes[..6] {
        loadgen.args(["--target", &format!("http://{}", n.http.expect("http"))]);
    }
    loadgen
        .args(["--host", &format!("site.{SUFFIX}"), "--objects", &objects, "--rate", "150"])
        .args(["--duration", &run_for.as_secs().to_string(), "--timeout", "5"])
        .args(["--origin-stats", &format!("http://{}/stats", origin.addr)])
        .args(["--json", report.to_str().expect("path")])
        .stdout(std::process::Stdio::null());
    let mut load = loadgen.spawn().expect("start loadgen");

    std::thread::sleep(settle);
    net.link(false);
    let cut_at = Instant::now();
    // Each side keeps talking inside: the majority's nodes still see each other.
    std::thread::sleep(cut / 2);
    let majority: Vec<&NodeProc> = nodes[..6].iter().collect();
    let split = wait_for(cut / 2, || cluster_error(&majority, false).is_none());
    std::thread::sleep(cut.saturating_sub(cut_at.elapsed()));
    net.link(true);
    let healed = Instant::now();
    let all: Vec<&NodeProc> = nodes.iter().collect();
    let one_ring = wait_for(Duration::from_secs(20), || cluster_error(&all, false).is_none())
        .map(|_| healed.elapsed());

    let status = wait_child(&mut load, run_for + Duration::from_secs(30));
    assert!(status.is_some_and(|s| s.success()), "loadgen failed: {status:?}");
    let text = std::fs::read_to_string(&report).expect("loadgen report");
    let _ = std::fs::remove_file(&report);
    let v: serde_json::Value = serde_json::from_str(&text).expect("report JSON");
    let s = &v["summary"];
    let n = |k: &str| s[k].as_u64().unwrap_or(0);
    let seen = Load {
        requests: n("requests"),
        errors: n("errors"),
        wrong: n("wrong_bodies"),
        verified: n("verified_bodies"),
    };
    eprintln!(
        "partition: cut {cut:?}; majority load {} requests, {} failed {}, {} wrong of {} \
         verified, p99 {} ms; majority one ring during the cut: {}; one ring {:?} after healing",
        seen.requests,
        seen.errors,
        s["error_counts"],
        seen.wrong,
        seen.verified,
        s["p99_ms"],
        split.is_some(),
        one_ring,
    );
    let expected = 150 * run_for.as_secs();
    assert!(seen.requests >= expected * 9 / 10, "the load ran short: {}", seen.requests);
    assert!(seen.verified > 0 && seen.wrong == 0, "{} wrong bodies", seen.wrong);
    let failed = seen.errors as f64 / seen.requests as f64;
    assert!(failed < 0.001, "{:.3} % of the majority's requests failed", failed * 100.0);
    assert!(split.is_some(), "the majority did not form a ring of its own during the cut");
    let one_ring = one_ring.expect("not one ring 20 s after healing");
    assert!(one_ring < Duration::from_secs(10), "one ring {one_ring:?} after healing");
}

#[test]
fn a_majority_cut_off_from_two_nodes_keeps_answering_and_the_ring_heals() {
    run(Duration::from_secs(10));
}

/// The size: 2 of 8 nodes cut off for 20 s.
#[test]
#[ignore = "40 s; run with --release --ignored"]
fn two_of_eight_nodes_cut_off_for_20_seconds() {
    run(Duration::from_secs(20));
}
