//! End-to-end: real `beehive node` processes on loopback.
//!
//! Bounds (intervals of 100 ms for stabilize, fix-fingers and check-predecessor; merge 1 s;
//! a dead peer is dropped after 3 missed requests of at least 100 ms each):
//! * ring convergence (successor and predecessor right on every node): 20 s;
//! * every remote finger right: 20 s more;
//! * repair after `kill -9` of two nodes, and rejoin after their restart: 10 s each (a peer
//!   suspected before its restart is forgotten within two merge periods);
//! * graceful shutdown (handoff, leave, exit 0): 8 s.
//!
//! Seen on the 2-core machine, also with both cores busy: convergence 0.5–0.9 s, fingers
//! 0.2–0.6 s more, repair 0.35–3.4 s, rejoin 0.16–1.3 s, SIGTERM to exit 0.12 s.
//!
//! Each wait polls and returns as soon as its condition holds; the figures printed are the
//! times actually taken.

mod support;

use beehive::rpc::frame::VERSION;
use beehive::rpc::{Frame, FrameCodec, Hello, MacKey, Payload};
use beehive_replication::{Id, Message, Peer, Request, Response};
use bytes::BytesMut;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;
use support::*;
use tokio_util::codec::{Decoder, Encoder};

const CONVERGE: Duration = Duration::from_secs(20);
const REPAIR: Duration = Duration::from_secs(10);

#[test]
fn eight_nodes_converge_repair_after_kill_9_and_rejoin() {
    let seed = start("127.0.0.1:0", &[], SECRET);
    let mut nodes = vec![seed];
    for _ in 0..7 {
        let join = [nodes[0].rpc];
        nodes.push(start("127.0.0.1:0", &join, SECRET));
    }
    let all: Vec<&NodeProc> = nodes.iter().collect();
    let took = wait_for(CONVERGE, || cluster_error(&all, false).is_none());
    assert!(took.is_some(), "ring did not converge: {:?}", cluster_error(&all, false));
    eprintln!("8 nodes: successors and predecessors right after {:?}", took.unwrap());
    let took = wait_for(CONVERGE, || cluster_error(&all, true).is_none());
    assert!(took.is_some(), "fingers did not converge: {:?}", cluster_error(&all, true));
    eprintln!("8 nodes: fingers right {:?} later", took.unwrap());
    for n in &nodes {
        assert_eq!(n.get("/readyz").map(|r| r.0), Some(200));
    }
    // Successor lists fill one stabilization at a time; then the estimate is exact.
    let sized = wait_for(CONVERGE, || {
        nodes.iter().all(|n| n.ring().is_some_and(|r| r["ring_size_estimate"] == 8))
    });
    assert!(sized.is_some(), "ring size estimate never reached 8");

    // kill -9 two nodes (not the seed): the other six repair.
    let victims: Vec<(SocketAddr, u128)> = nodes[3..5].iter().map(|n| (n.rpc, n.id)).collect();
    for n in &nodes[3..5] {
        n.signal("-KILL");
    }
    let dead: Vec<NodeProc> = nodes.drain(3..5).collect();
    drop(dead);
    let alive: Vec<&NodeProc> = nodes.iter().collect();
    let took = wait_for(REPAIR, || cluster_error(&alive, false).is_none());
    assert!(took.is_some(), "ring did not repair: {:?}", cluster_error(&alive, false));
    eprintln!("after kill -9 of 2: ring repaired in {:?}", took.unwrap());

    // Restarted on the same addresses (so the same ids), they rejoin.
    for (addr, id) in victims {
        let node = start(&addr.to_string(), &[nodes[0].rpc], SECRET);
        assert_eq!(node.id, id);
        nodes.push(node);
    }
    let all: Vec<&NodeProc> = nodes.iter().collect();
    let took = wait_for(REPAIR, || cluster_error(&all, false).is_none());
    assert!(took.is_some(), "restarted nodes did not rejoin: {:?}", cluster_error(&all, false));
    eprintln!("restarted 2: ring whole again in {:?}", took.unwrap());
}

#[test]
fn sigterm_hands_off_home_objects_and_leaves() {
    let mut nodes = vec![start("127.0.0.1:0", &[], SECRET)];
    for _ in 0..2 {
        let join = [nodes[0].rpc];
        nodes.push(start("127.0.0.1:0", &join, SECRET));
    }
    // One joins through a host name, as compose and Kubernetes seeds are given.
    let mut cmd = node_command(SECRET);
    let seed = format!("localhost:{}", nodes[1].rpc.port());
    cmd.args(["--rpc", "127.0.0.1:0", "--admin", "127.0.0.1:0", "--join", &seed]);
    nodes.push(start_command(cmd));
    let all: Vec<&NodeProc> = nodes.iter().collect();
    assert!(
        wait_for(CONVERGE, || cluster_error(&all, false).is_none()).is_some(),
        "{:?}; log of the node that joined {seed}:\n{}",
        cluster_error(&all, false),
        nodes[3].log_tail()
    );

    // The node that leaves, and objects it is home for: keys in (predecessor, it].
    let leaving = nodes.remove(2);
    let ring = leaving.ring().unwrap();
    let pred = hex_id(&ring["predecessor"]).unwrap();
    let succ = hex_id(&ring["successors"][0]).unwrap();
    let in_range = |k: u128| k.wrapping_sub(pred).wrapping_sub(1) < leaving.id.wrapping_sub(pred);
    let names: Vec<String> = (0..10_000)
        .map(|i| format!("object-{i}"))
        .filter(|n| in_range(Id::hash(n.as_bytes()).0))
        .take(3)
        .collect();
    assert_eq!(names.len(), 3, "no keys found in the node's range");
    for name in &names {
        let path = format!("/objects/{name}");
        let (status, _) = http(leaving.admin, "PUT", &path, name.as_bytes()).unwrap();
        assert_eq!(status, 201);
    }
    let successor = nodes.iter().find(|n| n.id == succ).expect("successor is a live node");
    let before = successor.metric("beehive_handoff_received_objects_total");

    let mut leaving = leaving;
    let signalled = std::time::Instant::now();
    leaving.signal("-TERM");
    let status = leaving.wait_exit(Duration::from_secs(8));
    assert!(status.is_some_and(|s| s.success()), "exit {status:?}; log:\n{}", leaving.log_tail());
    eprintln!("SIGTERM: handed off, left and exited 0 in {:?}", signalled.elapsed());

    let received = successor.metric("beehive_handoff_received_objects_total") - before;
    assert_eq!(received, 3.0, "successor's handoff counter");
    let (_, objects) = successor.get("/objects").unwrap();
    for name in &names {
        let key = format!("{:032x}", Id::hash(name.as_bytes()).0);
        assert!(objects.contains(&key), "{key} not handed to the successor: {objects}");
    }
    // The neighbours splice the departed node out: successors and predecessors skip it.
    let rest: Vec<&NodeProc> = nodes.iter().collect();
    let took = wait_for(Duration::from_secs(10), || cluster_error(&rest, false).is_none());
    assert!(
        took.is_some(),
        "ring did not close over the leaver: {:?}",
        cluster_error(&rest, false)
    );
    eprintln!("graceful leave: ring closed in {:?}", took.unwrap());
}

#[test]
fn a_node_with_the_wrong_secret_can_neither_join_nor_inject() {
    let seed = start("127.0.0.1:0", &[], SECRET);
    let intruder = start("127.0.0.1:0", &[seed.rpc], "some other secret, also long");
    // Its join is refused frame by frame: the seed counts bad MACs and never lists it.
    let took = wait_for(Duration::from_secs(10), || {
        seed.metric("beehive_rpc_rejected_frames_total{reason=\"bad_mac\"}") >= 1.0
    });
    assert!(took.is_some(), "seed counted no bad_mac frame");
    std::thread::sleep(Duration::from_millis(1000));
    let ring = seed.ring().unwrap();
    assert!(ring["successors"].as_array().unwrap().is_empty(), "{ring}");
    assert!(ring["predecessor"].is_null(), "{ring}");
    let theirs = intruder.ring().unwrap();
    assert!(theirs["successors"].as_array().unwrap().is_empty(), "{theirs}");
    assert_eq!(intruder.get("/readyz").map(|r| r.0), Some(503));
    assert_eq!(seed.metric("beehive_rpc_messages_received_total{kind=\"find_next\"}"), 0.0);
}

// ---- hostile bytes on the RPC port ------------------------------------------------------

/// A client that speaks the frame protocol by hand over a blocking socket.
struct RawClient {
    stream: TcpStream,
    codec: FrameCodec,
    inbox: BytesMut,
}

impl RawClient {
    fn connect(addr: SocketAddr) -> RawClient {
        let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        RawClient {
            stream,
            codec: FrameCodec::new(MacKey::derive(SECRET.as_bytes())),
            inbox: BytesMut::new(),
        }
    }

    /// Frames `payload` with this connection's codec and returns the bytes (unsent).
    fn frame(&mut self, payload: Payload) -> Vec<u8> {
        let mut out = BytesMut::new();
        self.codec.encode(payload, &mut out).unwrap();
        out.to_vec()
    }

    fn send_raw(&mut self, bytes: &[u8]) {
        let _ = self.stream.write_all(bytes);
    }

    /// The next frame from the node, or `None` once it closed the connection.
    fn recv(&mut self) -> Option<Frame> {
        let mut buf = [0u8; 4096];
        loop {
            if let Ok(Some(frame)) = self.codec.decode(&mut self.inbox) {
                return Some(frame);
            }
            match self.stream.read(&mut buf) {
                Ok(0) | Err(_) => return None,
                Ok(n) => self.inbox.extend_from_slice(&buf[..n]),
            }
        }
    }

    /// Sends our hello and reads the node's, then exchanges proofs: the connection is then
    /// established.
    fn handshake(addr: SocketAddr, nonce: u8) -> RawClient {
        let mut c = RawClient::connect(addr);
        let me = Peer::from_addr("127.0.0.1:1".parse().unwrap());
        let hello = c.frame(Payload::Hello(Hello { peer: me, nonce: [nonce; 16] }));
        c.send_raw(&hello);
        assert!(matches!(c.recv().map(|f| f.payload), Some(Payload::Hello(_))));
        let proof = c.codec.proof().unwrap();
        let proof = c.frame(proof);
        c.send_raw(&proof);
        assert!(matches!(c.recv().map(|f| f.payload), Some(Payload::Proof(_))));
        assert!(c.codec.is_established());
        c
    }

    /// Whether the node closes the connection (reads to EOF, bounded by the read timeout).
    fn closed_by_node(&mut self) -> bool {
        let mut buf = [0u8; 4096];
        for _ in 0..100 {
            match self.stream.read(&mut buf) {
                Ok(0) => return true,
                Ok(_) => continue,
                Err(e) => return e.kind() == std::io::ErrorKind::ConnectionReset,
            }
        }
        false
    }
}

#[test]
fn hostile_frames_close_the_connection_are_counted_and_the_node_keeps_serving() {
    let node = start("127.0.0.1:0", &[], SECRET);
    let rejected = |reason: &str| {
        node.metric(&format!("beehive_rpc_rejected_frames_total{{reason=\"{reason}\"}}"))
    };
    let cases: [(&str, Vec<u8>); 5] = [
        ("too_large", b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec()),
        ("too_large", 100_000_000u32.to_be_bytes().to_vec()),
        ("truncated", [&10u32.to_be_bytes()[..], &[1u8; 10]].concat()),
        ("bad_mac", [&60u32.to_be_bytes()[..], &[VERSION], &[1u8; 59]].concat()),
        ("bad_version", [&60u32.to_be_bytes()[..], &[VERSION - 1], &[1u8; 59]].concat()),
    ];
    for (reason, bytes) in cases {
        let before = rejected(reason);
        let mut c = RawClient::connect(node.rpc);
        c.send_raw(&bytes);
        assert!(c.closed_by_node(), "{reason}: connection left open");
        assert!(
            wait_for(Duration::from_secs(5), || rejected(reason) > before).is_some(),
            "{reason} not counted"
        );
    }

    // An authentic ping is answered; the same frame again is a replay.
    let mut c = RawClient::handshake(node.rpc, 1);
    let ping = c.frame(Payload::Message(Message::Request { id: 7, body: Request::Ping }));
    c.send_raw(&ping);
    let answer = c.recv().map(|f| f.payload);
    assert_eq!(answer, Some(Payload::Message(Message::Response { id: 7, body: Response::Pong })));
    let before = rejected("replayed");
    c.send_raw(&ping);
    assert!(c.closed_by_node(), "replay: connection left open");
    assert!(wait_for(Duration::from_secs(5), || rejected("replayed") > before).is_some());

    // The recorded ping on a new connection fails the MAC: its session key is another.
    let before = rejected("bad_mac");
    let mut other = RawClient::handshake(node.rpc, 2);
    other.send_raw(&ping);
    assert!(other.closed_by_node(), "cross-connection replay: connection left open");
    assert!(wait_for(Duration::from_secs(5), || rejected("bad_mac") > before).is_some());

    // A truncated frame (half of one, then the client hangs up) closes nothing important.
    let mut half = RawClient::handshake(node.rpc, 3);
    let frame = half.frame(Payload::Message(Message::Request { id: 8, body: Request::Ping }));
    half.send_raw(&frame[..frame.len() / 2]);
    drop(half);

    assert_eq!(node.get("/healthz").map(|r| r.0), Some(200));
    let mut fresh = RawClient::handshake(node.rpc, 4);
    let ping = fresh.frame(Payload::Message(Message::Request { id: 9, body: Request::Ping }));
    fresh.send_raw(&ping);
    assert!(fresh.recv().is_some(), "node stopped answering after hostile frames");
    assert!(node.log_tail().lines().all(|l| !l.contains("panicked")));
}

/// A seed whose name does not resolve (yet: DNS records of new pods come late) must not make
/// the node start a ring of its own; it keeps trying, and a signal still stops it.
#[test]
fn a_seed_name_that_does_not_resolve_holds_the_node_until_sigterm() {
    let seed = "no-such-seed.invalid:7000";
    let mut child = node_command(SECRET)
        .args(["--rpc", "127.0.0.1:0", "--admin", "127.0.0.1:0", "--join", seed])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(3));
    assert!(child.try_wait().unwrap().is_none(), "gave up on its seed within 3 s");
    signal_child(&child, "-TERM");
    let status = wait_child(&mut child, Duration::from_secs(5));
    let status = status.expect("SIGTERM did not stop it within 5 s");
    let out = child.wait_with_output().unwrap();
    let (stdout, stderr) =
        (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(status.success(), "exit {status:?}: {stderr}");
    assert!(!stdout.contains("listening"), "it started without its seed: {stdout}");
    assert!(stderr.contains("cannot resolve seed") && stderr.contains(seed), "{stderr}");
}

#[test]
fn bad_configuration_is_refused_with_exit_code_2() {
    let dir = std::env::temp_dir().join(format!("beehive-e2e-config-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let empty_secret = dir.join("empty-secret");
    std::fs::write(&empty_secret, "\n").unwrap();
    let typo = dir.join("typo.toml");
    std::fs::write(&typo, "rcp = \"127.0.0.1:7000\"\n").unwrap();
    let cases: Vec<(Vec<String>, &str)> = vec![
        (vec!["--mode".into(), "pastry".into()], "mode"),
        (vec!["--target-hops".into(), "0".into()], "target-hops"),
        (vec!["--rpc".into(), "localhost".into()], "rpc"),
        (vec!["--rpc".into(), "0.0.0.0:7000".into()], "advertise"),
        (vec!["--stabilize-ms".into(), "0".into()], "stabilize-ms"),
        (vec!["--secret-file".into(), empty_secret.display().to_string()], "secret"),
        (vec!["--origin".into(), "site=https://example.org".into()], "origin"),
        (vec!["--config".into(), typo.display().to_string()], "rcp"),
        (vec!["--join".into(), "nowhere".into()], "join"),
    ];
    for (args, mention) in cases {
        let out = node_command(SECRET).args(&args).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(mention), "{args:?}: message does not name {mention}: {stderr}");
    }
    // No secret at all.
    let out = node_command(SECRET).env_remove("BEEHIVE_SECRET").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("secret"));
    let _ = std::fs::remove_dir_all(dir);
}

// ---- object bodies between two transports ------------------------------------------------

mod bodies {
    use beehive::node::metrics::Metrics;
    use beehive::node::store::{BodyStore, MemoryStore, StoredObject};
    use beehive::node::transport::{BodyError, Inbound, Transport, TransportConfig};
    use beehive::rpc::MacKey;
    use beehive_replication::{Id, Peer};
    use bytes::Bytes;
    use std::sync::Arc;
    use std::time::Duration;
    use tokio::net::TcpListener;
    use tokio::sync::{mpsc, watch};

    const CAP: usize = 64 * 1024;
    const WAIT: Duration = Duration::from_secs(5);

    struct Side {
        transport: Transport,
        store: Arc<MemoryStore>,
        metrics: Arc<Metrics>,
        _inbound: mpsc::Receiver<Inbound>,
    }

    async fn side(stop: &watch::Receiver<bool>) -> Side {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let me = Peer::from_addr(listener.local_addr().unwrap());
        let metrics = Arc::new(Metrics::new("chord", 1.0));
        let store = Arc::new(MemoryStore::default());
        let config = TransportConfig {
            me,
            key: MacKey::derive(super::SECRET.as_bytes()),
            max_body_bytes: CAP,
            copy_bytes: 1 << 20,
        };
        let (transport, inbound) = Transport::new(config, metrics.clone(), store.clone());
        let serving = transport.clone();
        let stop = stop.clone();
        tokio::spawn(async move { serving.serve(listener, stop).await });
        Side { transport, store, metrics, _inbound: inbound }
    }

    #[tokio::test]
    async fn bodies_are_fetched_verified_capped_and_handed_off() {
        let (_stop, stop) = watch::channel(false);
        let (a, b) = (side(&stop).await, side(&stop).await);
        let holder = a.transport.me();

        let body = Bytes::from(vec![7u8; 50_000]);
        let key = Id::hash(b"big object");
        let object = StoredObject::new(body.clone());
        a.store.put(key, object.clone());
        let got = b.transport.fetch_body(holder, key, object.hash, WAIT).await;
        assert_eq!(got, Ok(body));
        assert_eq!(b.metrics.bodies_fetched.get(), 1);

        // Unknown key, or a version the holder does not have: missing.
        let other = *blake3::hash(b"other").as_bytes();
        assert_eq!(b.transport.fetch_body(holder, key, other, WAIT).await, Err(BodyError::Missing));

        // A holder that serves bytes which do not match the hash asked for: refused on arrival.
        let lie = Id::hash(b"lie");
        let claimed = *blake3::hash(b"the real body").as_bytes();
        a.store.put(lie, StoredObject { body: Bytes::from_static(b"forged body"), hash: claimed });
        let got = b.transport.fetch_body(holder, lie, claimed, WAIT).await;
        assert_eq!(got, Err(BodyError::HashMismatch));

        // Over the cap (but within a frame): refused on arrival too.
        let huge = StoredObject::new(Bytes::from(vec![1u8; CAP + 100]));
        let huge_key = Id::hash(b"huge");
        a.store.put(huge_key, huge.clone());
        let got = b.transport.fetch_body(holder, huge_key, huge.hash, WAIT).await;
        assert_eq!(got, Err(BodyError::TooLarge));
        let text = b.metrics.encode();
        for reason in ["missing", "hash_mismatch", "too_large"] {
            let series = format!("beehive_body_rejected_total{{reason=\"{reason}\"}} 1");
            assert!(text.contains(&series), "{series} missing from:\n{text}");
        }

        // Handoff: B pushes an object to A, which stores it and counts it.
        let pushed = Id::hash(b"pushed");
        let stored = b.transport.store_body(holder, pushed, Bytes::from_static(b"hi"), WAIT);
        assert_eq!(stored.await, Ok(true));
        assert_eq!(a.store.get(pushed).map(|o| o.body), Some(Bytes::from_static(b"hi")));
        assert_eq!(a.metrics.handoff_received.get(), 1);
    }
}
