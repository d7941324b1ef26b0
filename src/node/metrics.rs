//! The node's Prometheus metrics: one registry per node, served on the admin `/metrics`.
//!
//! Names are stable (dashboards and the end-to-end tests read them); label values are low
//! cardinality by construction (message kinds and [`crate::rpc::FrameError::reason`]s are
//! `&'static str`).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabel {
    pub kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    pub reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct InfoLabels {
    pub mode: &'static str,
    pub target_hops: String,
}

/// Every metric of one node. Cheap to share (`Arc`); each metric is internally atomic.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// Protocol messages sent / received, by message kind.
    pub rpc_sent: Family<KindLabel, Counter>,
    pub rpc_received: Family<KindLabel, Counter>,
    /// Request → response round trips the driver saw complete, by request kind.
    pub rpc_latency: Family<KindLabel, Histogram>,
    /// Frames refused by the codec (connection closed), by reason.
    pub rejected_frames: Family<ReasonLabel, Counter>,
    /// Messages the core refused (`ProtocolError`), by kind of the message.
    pub refused_messages: Family<KindLabel, Counter>,
    /// Messages that could not be handed to a connection (peer unreachable, queue full).
    pub send_dropped: Family<ReasonLabel, Counter>,
    /// Body transfers that failed on arrival or in flight, by reason.
    pub body_rejected: Family<ReasonLabel, Counter>,
    pub bodies_fetched: Counter,
    pub bodies_served: Counter,
    /// Objects handed to the successor on a graceful shutdown / received that way.
    pub handoff_sent: Counter,
    pub handoff_received: Counter,
    pub connections_open: Gauge,
    pub connects: Counter,
    pub ring_size_estimate: Gauge,
    pub node_info: Family<InfoLabels, Gauge>,
}

fn latency_histogram() -> Histogram {
    // 50 µs to ~3.3 s.
    Histogram::new(exponential_buckets(0.000_05, 2.0, 17))
}

impl Metrics {
    pub fn new(mode: &'static str, target_hops: f64) -> Self {
        let mut m = Metrics {
            registry: Registry::with_prefix("beehive"),
            rpc_sent: Family::default(),
            rpc_received: Family::default(),
            rpc_latency: Family::new_with_constructor(latency_histogram),
            rejected_frames: Family::default(),
            refused_messages: Family::default(),
            send_dropped: Family::default(),
            body_rejected: Family::default(),
            bodies_fetched: Counter::default(),
            bodies_served: Counter::default(),
            handoff_sent: Counter::default(),
            handoff_received: Counter::default(),
            connections_open: Gauge::default(),
            connects: Counter::default(),
            ring_size_estimate: Gauge::default(),
            node_info: Family::default(),
        };
        let r = &mut m.registry;
        r.register("rpc_messages_sent", "Protocol messages sent, by kind", m.rpc_sent.clone());
        r.register(
            "rpc_messages_received",
            "Protocol messages received, by kind",
            m.rpc_received.clone(),
        );
        r.register(
            "rpc_latency_seconds",
            "Request round trips seen by the driver, by request kind",
            m.rpc_latency.clone(),
        );
        r.register(
            "rpc_rejected_frames",
            "Frames refused by the codec (the connection was closed), by reason",
            m.rejected_frames.clone(),
        );
        r.register(
            "rpc_refused_messages",
            "Authentic messages the protocol core refused, by kind",
            m.refused_messages.clone(),
        );
        r.register(
            "rpc_send_dropped",
            "Messages not handed to any connection, by reason",
            m.send_dropped.clone(),
        );
        r.register(
            "body_rejected",
            "Body transfers refused or failed, by reason",
            m.body_rejected.clone(),
        );
        r.register("bodies_fetched", "Bodies fetched and verified", m.bodies_fetched.clone());
        r.register("bodies_served", "Bodies served to other nodes", m.bodies_served.clone());
        r.register(
            "handoff_objects",
            "Objects handed to the successor on graceful shutdown",
            m.handoff_sent.clone(),
        );
        r.register(
            "handoff_received_objects",
            "Objects received from a leaving predecessor",
            m.handoff_received.clone(),
        );
        r.register(
            "rpc_connections_open",
            "Open node-to-node connections",
            m.connections_open.clone(),
        );
        r.register("rpc_connects", "Outgoing connections established", m.connects.clone());
        r.register(
            "ring_size_estimate",
            "Nodes in the ring, estimated from the successor list's span",
            m.ring_size_estimate.clone(),
        );
        r.register("node_info", "This node's configuration", m.node_info.clone());
        m.node_info
            .get_or_create(&InfoLabels { mode, target_hops: target_hops.to_string() })
            .set(1);
        m
    }

    /// The OpenMetrics text exposition of every metric.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }

    pub fn reject(&self, reason: &'static str) {
        self.rejected_frames.get_or_create(&ReasonLabel { reason }).inc();
    }

    pub fn drop_send(&self, reason: &'static str) {
        self.send_dropped.get_or_create(&ReasonLabel { reason }).inc();
    }

    pub fn reject_body(&self, reason: &'static str) {
        self.body_rejected.get_or_create(&ReasonLabel { reason }).inc();
    }
}
