//! RPC round trips over one loopback connection, through the whole live stack: frame codec,
//! transport, driver and protocol core of a real node answering `Ping` with `Pong`.
//!
//! Run with `cargo bench --bench rpc`. Prints the round-trip p50/p99 of sequential pings
//! (one in flight) and the rate of pipelined pings (at most 64 in flight).

use beehive::node::driver::{Driver, DriverHandle, DriverInfo};
use beehive::node::metrics::Metrics;
use beehive::node::store::{BodyStore, MemoryStore};
use beehive::node::transport::{Transport, TransportConfig};
use beehive::rpc::{FrameCodec, Hello, MacKey, Payload};
use beehive_replication::{ChordConfig, Message, Node, Peer, Request};
use futures_util::{SinkExt, StreamExt};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};
use tokio_util::codec::Framed;

const SECRET: &[u8] = b"bench cluster secret, 32 bytes..";
const SEQUENTIAL: usize = 20_000;
const PIPELINED: usize = 200_000;
const WINDOW: usize = 64;

/// Starts a one-node ring in this process; returns its RPC address and the driver's handle
/// (the driver runs until the process ends).
async fn start_node() -> (SocketAddr, DriverHandle) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let me = Peer::from_addr(addr);
    let metrics = Arc::new(Metrics::new("chord", 1.0));
    let config = TransportConfig {
        me,
        key: MacKey::derive(SECRET),
        max_body_bytes: 1 << 20,
        copy_bytes: 1 << 20,
    };
    let store: Arc<dyn BodyStore> = Arc::new(MemoryStore::default());
    let (transport, inbound) = Transport::new(config, metrics.clone(), store.clone());
    let core = Node::new(me, ChordConfig::default(), Duration::ZERO);
    let info = DriverInfo { expects_peers: false, mode: "chord", target_hops: 1.0 };
    let handle = Driver::spawn(core, transport.clone(), inbound, metrics, store, info);
    let (_stop_tx, stop) = watch::channel(false);
    tokio::spawn(async move {
        let _keep = _stop_tx;
        transport.serve(listener, stop).await
    });
    (addr, handle)
}

type Conn = Framed<TcpStream, FrameCodec>;

async fn connect(addr: SocketAddr) -> Conn {
    let stream = TcpStream::connect(addr).await.unwrap();
    stream.set_nodelay(true).unwrap();
    let mut conn = Framed::new(stream, FrameCodec::new(MacKey::derive(SECRET)));
    let me = Peer::from_addr("127.0.0.1:1".parse().unwrap());
    conn.send(Payload::Hello(Hello { peer: me, nonce: rand::random() })).await.unwrap();
    let hello = conn.next().await.unwrap().unwrap();
    assert!(matches!(hello.payload, Payload::Hello(_)));
    let proof = conn.codec().proof().unwrap();
    conn.send(proof).await.unwrap();
    let proof = conn.next().await.unwrap().unwrap();
    assert!(matches!(proof.payload, Payload::Proof(_)));
    conn
}

fn ping(id: u64) -> Payload {
    Payload::Message(Message::Request { id, body: Request::Ping })
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

fn main() {
    let runtime =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    runtime.block_on(async {
        let (addr, _driver) = start_node().await;
        let mut conn = connect(addr).await;
        let mut id = 0u64;

        // Sequential: one ping in flight.
        let mut rtts = Vec::with_capacity(SEQUENTIAL);
        for i in 0..SEQUENTIAL + 1000 {
            id += 1;
            let start = Instant::now();
            conn.send(ping(id)).await.unwrap();
            conn.next().await.unwrap().unwrap();
            if i >= 1000 {
                rtts.push(start.elapsed());
            }
        }
        rtts.sort_unstable();
        let mean = rtts.iter().sum::<Duration>() / rtts.len() as u32;
        println!(
            "sequential ping/pong, {SEQUENTIAL} round trips: p50 {:?}  p99 {:?}  mean {:?}  ({:.0} round trips/s)",
            percentile(&rtts, 0.50),
            percentile(&rtts, 0.99),
            mean,
            1.0 / mean.as_secs_f64()
        );

        // Pipelined: at most WINDOW pings in flight on the same connection.
        let (mut sink, mut stream) = conn.split();
        let credits = Arc::new(Semaphore::new(WINDOW));
        let returned = credits.clone();
        let reader = tokio::spawn(async move {
            for _ in 0..PIPELINED {
                stream.next().await.unwrap().unwrap();
                returned.add_permits(1);
            }
        });
        let start = Instant::now();
        for _ in 0..PIPELINED {
            credits.acquire().await.unwrap().forget();
            id += 1;
            sink.feed(ping(id)).await.unwrap();
            if credits.available_permits() == 0 {
                sink.flush().await.unwrap();
            }
        }
        sink.flush().await.unwrap();
        // Bounded: a lost answer would otherwise hang the bench.
        tokio::time::timeout(Duration::from_secs(60), reader).await.unwrap().unwrap();
        let elapsed = start.elapsed();
        println!(
            "pipelined ping/pong, {PIPELINED} round trips, window {WINDOW}: {:.0} round trips/s ({:.0} messages/s both ways) in {:?}",
            PIPELINED as f64 / elapsed.as_secs_f64(),
            2.0 * PIPELINED as f64 / elapsed.as_secs_f64(),
            elapsed
        );
    });
}
