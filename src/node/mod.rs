//! The live node: the protocol core on real sockets (docs/architecture.md).
//!
//! # Contract
//!
//! [`run`] ([`start`], then [`RunningNode::shutdown`] on a signal) binds the RPC, admin and
//! (if configured) HTTP listeners, prints one line `listening rpc=ADDR admin=ADDR [http=ADDR]
//! id=HEX` on stdout (so scripts and tests can find ports chosen by the OS), joins the ring
//! through the configured seeds, and serves until SIGTERM or SIGINT. Then it stops accepting
//! HTTP requests, answers those in flight (for up to half the configured shutdown bound: they
//! need the ring, so the node stays in it meanwhile), stops accepting RPC connections, hands
//! the objects it is home for to its successor, leaves the ring, and returns, all within the
//! bound.
//!
//! # Module map
//!
//! * [`config`] — flags, environment and TOML merged and validated
//! * [`cluster`] — the ring behind the HTTP face: misses as object lookups, loads at the
//!   home, purges, and the proxy's object store as the node's body store
//! * [`driver`] — the one task that owns the core: input, drain, publish
//! * [`transport`] — connections per peer, reconnect with backoff, object bodies
//! * [`snapshot`] — the routing state readers see, published by the driver
//! * [`admin`] — `/healthz`, `/readyz`, `/ring`, `/metrics`, `/objects`, `/stats`, the dashboard
//! * [`metrics`] — the node's Prometheus registry
//! * [`store`] — object bodies held, keyed by ring id
//! * [`copies`], [`copy_sync`] — successor copies of home objects, and their upkeep

pub mod admin;
pub mod cluster;
pub mod config;
pub mod copies;
pub mod copy_sync;
pub mod driver;
pub mod handoff;
pub mod metrics;
pub mod snapshot;
pub mod store;
pub mod transport;

use crate::rpc::MacKey;
use arc_swap::ArcSwap;
use beehive_proxy::{Loader, ObjectStore, Proxy, ProxyConfig};
use beehive_replication::{Node, Peer};
use cluster::RingCluster;
use config::{NodeConfig, Seed};
use driver::{Command, Driver, DriverHandle, DriverInfo};
use metrics::Metrics;
use snapshot::RingSnapshot;
use std::io::Write;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use store::BodyStore;
use thiserror::Error;
use tokio::net::TcpListener;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::{timeout, Instant};
use transport::{Transport, TransportConfig};

/// Why the node could not start or stop cleanly.
#[derive(Debug, Error)]
pub enum NodeError {
    #[error("cannot listen on {what} address {addr}: {source}")]
    Bind { what: &'static str, addr: std::net::SocketAddr, source: std::io::Error },
    #[error("cannot install the signal handler: {0}")]
    Signal(std::io::Error),
    /// The node's settings, mapped onto the HTTP face, fail its own checks (a setting the
    /// node's validation let through).
    #[error(transparent)]
    Proxy(#[from] beehive_proxy::config::ConfigError),
    #[error("no seed resolved to an address in {} s ({seeds}): {last}", waited.as_secs())]
    Seeds { seeds: String, waited: Duration, last: std::io::Error },
}

/// How long a starting node keeps trying to resolve its seeds' names. A node must not start
/// a ring of its own because DNS was late (a new pod's record appears after the pod does);
/// past this it exits and its supervisor restarts it.
const SEED_RESOLVE_FOR: Duration = Duration::from_secs(60);
const SEED_RESOLVE_EVERY: Duration = Duration::from_secs(2);

/// Every address the seeds stand for. A seed whose name does not resolve is skipped as long
/// as another one does; only when none does is it retried, up to [`SEED_RESOLVE_FOR`].
async fn resolve_seeds(seeds: &[Seed]) -> Result<Vec<SocketAddr>, NodeError> {
    let started = Instant::now();
    loop {
        let mut addrs = Vec::new();
        let mut last = None;
        for seed in seeds {
            match seed.resolve().await {
                Ok(a) if !a.is_empty() => addrs.extend(a),
                Ok(_) => {
                    last = Some(std::io::Error::other(format!("{seed} has no address")));
                }
                Err(e) => {
                    tracing::warn!(%seed, error = %e, "cannot resolve seed");
                    last = Some(e);
                }
            }
        }
        let Some(last) = last.filter(|_| addrs.is_empty()) else {
            addrs.sort_unstable();
            addrs.dedup();
            return Ok(addrs);
        };
        if started.elapsed() >= SEED_RESOLVE_FOR {
            let seeds = seeds.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ");
            return Err(NodeError::Seeds { seeds, waited: started.elapsed(), last });
        }
        tokio::time::sleep(SEED_RESOLVE_EVERY).await;
    }
}

/// Runs one node until SIGTERM/SIGINT, then shuts it down gracefully.
pub async fn run(config: NodeConfig) -> Result<(), NodeError> {
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(NodeError::Signal)?;
    // A signal while the seeds' names are still being resolved stops the node too.
    let node = tokio::select! {
        node = start(&config) => node?,
        _ = terminate.recv() => return Ok(()),
        _ = tokio::signal::ctrl_c() => return Ok(()),
    };
    // The one line scripts and tests read to find the ports.
    let mut stdout = std::io::stdout();
    let http = node.http_addr.map(|a| format!(" http={a}")).unwrap_or_default();
    let _ = writeln!(
        stdout,
        "listening rpc={} admin={}{http} id={:032x}",
        node.rpc_addr, node.admin_addr, node.me.id.0
    );
    let _ = stdout.flush();
    tokio::select! {
        _ = terminate.recv() => tracing::info!("SIGTERM: shutting down"),
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT: shutting down"),
    }
    node.shutdown().await;
    Ok(())
}

/// A node whose tasks are running: the driver, the RPC accept loop and the admin listener.
#[derive(Debug)]
pub struct RunningNode {
    pub me: Peer,
    pub rpc_addr: SocketAddr,
    pub admin_addr: SocketAddr,
    /// The HTTP face, when configured.
    pub http_addr: Option<SocketAddr>,
    transport: Transport,
    store: Arc<dyn BodyStore>,
    metrics: Arc<Metrics>,
    driver: DriverHandle,
    accept_task: JoinHandle<()>,
    /// Keeps our successor's copies of our home objects.
    copy_task: JoinHandle<()>,
    /// The HTTP face's accept loop, which returns once its connections are drained.
    http_task: Option<JoinHandle<()>>,
    /// Stops the HTTP face and turns `/readyz` false.
    stop: watch::Sender<bool>,
    /// Stops accepting RPC connections; later than `stop`, as draining requests use the ring.
    rpc_stop: watch::Sender<bool>,
    shutdown_bound: Duration,
}

/// Binds the listeners, starts the core (joining through the configured seeds) and every
/// task. Returns once the node listens.
pub async fn start(config: &NodeConfig) -> Result<RunningNode, NodeError> {
    let bind = |what, addr| async move {
        TcpListener::bind(addr).await.map_err(|source| NodeError::Bind { what, addr, source })
    };
    let rpc_listener = bind("rpc", config.rpc).await?;
    let admin_listener = bind("admin", config.admin).await?;
    let rpc_addr = rpc_listener.local_addr().unwrap_or(config.rpc);
    let admin_addr = admin_listener.local_addr().unwrap_or(config.admin);
    let http_listener = match config.http {
        Some(addr) => Some(bind("http", addr).await?),
        None => None,
    };
    let advertise = config.advertise.unwrap_or(rpc_addr);
    let me = Peer::from_addr(advertise);

    let mode = config.chord.replication.mode.name();
    let target_hops = config.chord.replication.target_hops;
    let metrics = Arc::new(Metrics::new(mode, target_hops));
    let proxy_config = ProxyConfig {
        node_name: format!("{:08x}", (me.id.0 >> 96) as u32),
        ..config.proxy.clone()
    };
    proxy_config.validate()?;
    let objects = ObjectStore::new(proxy_config.store_bytes, proxy_config.max_object_bytes);
    let store: Arc<dyn BodyStore> = Arc::new(objects.clone());
    let transport_config = TransportConfig {
        me,
        key: MacKey::derive(config.secret.expose()),
        max_body_bytes: config.proxy.max_object_bytes,
        // Copies of the predecessor's home objects: about one more store's worth of home
        // objects at most, bounded like the store.
        copy_bytes: proxy_config.store_bytes,
    };
    let (transport, inbound) = Transport::new(transport_config, metrics.clone(), store.clone());

    // The core's time zero is the driver's start, microseconds from now; the wall clock
    // there aligns every node's replication tick to its place on the ring.
    let mut chord = config.chord.clone();
    chord.replication.clock_offset =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let mut core = Node::new(me, chord, Duration::ZERO);
    let seeds: Vec<Peer> = resolve_seeds(&config.join)
        .await?
        .into_iter()
        .filter(|a| *a != advertise)
        .map(Peer::from_addr)
        .collect();
    if !seeds.is_empty() {
        core.join(Duration::ZERO, &seeds);
    }
    let info = DriverInfo { expects_peers: !seeds.is_empty(), mode, target_hops };
    let driver =
        Driver::spawn(core, transport.clone(), inbound, metrics.clone(), store.clone(), info);

    let (stop, stopping) = watch::channel(false);
    let (rpc_stop, rpc_stopping) = watch::channel(false);
    let loader = Loader::new(&proxy_config, objects.clone());
    let ring = RingCluster::new(
        proxy_config.node_name.clone(),
        me,
        driver.commands.clone(),
        driver.served.clone(),
        driver.direct.clone(),
        transport.clone(),
        objects.clone(),
        loader.clone(),
        driver.snapshot.clone(),
    );
    let copy_task = copy_sync::CopyKeeper {
        transport: transport.clone(),
        store: store.clone(),
        snapshot: driver.snapshot.clone(),
        commands: driver.commands.clone(),
        metrics: metrics.clone(),
    }
    .spawn();
    transport.set_home_service(Arc::new(ring.clone()));
    let (http_addr, http_task) = match (config.http, http_listener) {
        (Some(addr), Some(listener)) => {
            let bound = listener.local_addr().unwrap_or(addr);
            // Until the node has joined its ring, it answers 503 rather than go to the origin
            // for everything (a stabilising ring, say after a neighbour died, still serves).
            let snapshot = driver.snapshot.clone();
            let proxy = Proxy::new(proxy_config, Arc::new(ring), objects, loader).with_readiness(
                move || {
                    let snap = snapshot.load();
                    snap.joined && !snap.left
                },
            );
            let proxy = Arc::new(proxy);
            metrics.attach_proxy(proxy.metrics());
            let task = serve_http(
                proxy,
                listener,
                stopping.clone(),
                tokio::runtime::Handle::current().metrics().num_workers(),
            )
            .map_err(|source| NodeError::Bind { what: "http", addr, source })?;
            (Some(bound), Some(task))
        }
        _ => (None, None),
    };
    let accept_task = tokio::spawn({
        let transport = transport.clone();
        async move { transport.serve(rpc_listener, rpc_stopping).await }
    });
    let admin_state = admin::AdminState {
        snapshot: driver.snapshot.clone(),
        metrics: metrics.clone(),
        store: store.clone(),
        max_body_bytes: config.proxy.max_object_bytes,
        stopping,
    };
    tokio::spawn(admin::serve(admin_listener, admin_state));
    tracing::info!(
        id = ?me.id, %rpc_addr, %admin_addr, %advertise, seeds = seeds.len(), mode,
        "node started"
    );
    Ok(RunningNode {
        me,
        rpc_addr,
        admin_addr,
        http_addr,
        transport,
        store,
        metrics,
        driver,
        accept_task,
        copy_task,
        http_task,
        stop,
        rpc_stop,
        shutdown_bound: config.shutdown_bound,
    })
}

impl RunningNode {
    /// Stops accepting HTTP requests and answers those in flight (up to half the bound),
    /// then stops accepting RPC connections, hands home objects to the successor, leaves the
    /// ring, and stops the driver; all within the configured shutdown bound.
    pub async fn shutdown(mut self) {
        let bound = self.shutdown_bound;
        let deadline = Instant::now() + bound;
        let _ = self.stop.send(true);
        if let Some(mut http) = self.http_task.take() {
            let drain = bound / 2;
            match timeout(drain, &mut http).await {
                Ok(_) => tracing::info!("HTTP requests in flight answered"),
                Err(_) => {
                    http.abort();
                    tracing::warn!(?drain, "HTTP requests still in flight; cut");
                }
            }
        }
        let _ = self.rpc_stop.send(true);
        self.accept_task.abort();
        let rest = deadline.saturating_duration_since(Instant::now());
        let graceful = async {
            let handed = handoff(
                &self.transport,
                &self.store,
                &self.driver.snapshot,
                &self.metrics,
                rest / 2,
            )
            .await;
            tracing::info!(objects = handed, "handoff done");
            let (done, left) = oneshot::channel();
            let leave =
                Command::Leave { bound: deadline.saturating_duration_since(Instant::now()), done };
            if self.driver.commands.send(leave).await.is_ok() {
                let _ = left.await;
            }
        };
        if timeout(rest, graceful).await.is_err() {
            tracing::warn!(?bound, "shutdown bound reached; exiting anyway");
        }
        self.driver.task.abort();
        self.copy_task.abort();
        tracing::info!("left the ring");
    }
}

/// Serves HTTP on `threads` threads, each its own single-threaded runtime accepting from the
/// one listening socket, as nginx's workers do: a connection lives on one thread from accept
/// to close, so a hit never crosses threads (on the multi-threaded runtime a readiness event
/// polled on one worker often woke the connection's task on the other). The returned task
/// ends when every thread's accept loop has drained.
fn serve_http(
    proxy: Arc<Proxy>,
    listener: TcpListener,
    stopping: watch::Receiver<bool>,
    threads: usize,
) -> std::io::Result<tokio::task::JoinHandle<()>> {
    let listener = listener.into_std()?;
    let mut done = Vec::with_capacity(threads);
    for i in 0..threads.max(1) {
        let listener = listener.try_clone()?;
        let (proxy, stopping) = (proxy.clone(), stopping.clone());
        let (finished, wait) = oneshot::channel::<()>();
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        std::thread::Builder::new().name(format!("http-{i}")).spawn(move || {
            runtime.block_on(async move {
                match TcpListener::from_std(listener) {
                    Ok(listener) => proxy.serve(listener, stopping).await,
                    Err(e) => tracing::error!("http thread {i}: {e}"),
                }
            });
            // Connection tasks cut at the drain bound may still be parked; do not wait.
            runtime.shutdown_timeout(Duration::from_millis(100));
            drop(finished);
        })?;
        done.push(wait);
    }
    Ok(tokio::spawn(async move {
        for wait in done {
            let _ = wait.await;
        }
    }))
}

/// Pushes every object this node is home for (keys in `(predecessor, me]`) to its first
/// successor. Returns how many the successor accepted.
async fn handoff(
    transport: &Transport,
    store: &Arc<dyn BodyStore>,
    snapshot: &ArcSwap<RingSnapshot>,
    metrics: &Metrics,
    bound: Duration,
) -> u64 {
    let snap = snapshot.load();
    let Some(successor) = snap.successor_peer else { return 0 };
    let me = transport.me().id;
    let predecessor = snap.predecessor_peer;
    let home =
        |key: beehive_replication::Id| predecessor.is_none_or(|p| key.in_open_closed(p.id, me));
    handoff::hand_over(transport, store.as_ref(), successor, home, metrics, bound).await
}
