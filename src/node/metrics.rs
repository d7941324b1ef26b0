//! The node's Prometheus metrics: one registry per node, served on the admin `/metrics`.
//!
//! Names are stable (dashboards and the end-to-end tests read them); label values are low
//! cardinality by construction (message kinds and [`crate::rpc::FrameError::reason`]s are
//! `&'static str`). Counters get `_total` from the encoder; units are part of the name.
//!
//! What an operator watches, by name (all prefixed `beehive_`):
//!
//! | series | what |
//! |---|---|
//! | `store_objects{class}`, `store_bytes{class}` | objects and body bytes held, `class` = `home` or `replica` |
//! | `replication_pulls_total` | pulls sent to fingers (one per finger per interval) |
//! | `replication_offers_total` | offers received in pull answers |
//! | `replication_fetches_total`, `replication_fetch_bytes_total` | body fetches the core asked for, and their announced sizes |
//! | `aggregation_count_entries_total` | per-key counts sent toward homes |
//! | `aggregation_reports_total` | popularity reports sent toward the leader |
//! | `leader_epoch`, `leader_alpha`, `leader_objects`, `leader_nodes` | the newest leader result this node has |
//! | `object_lookups_total{result}` | object lookups: `local` (0 hops), `remote`, `failed` |
//! | `object_lookup_hops` | hops of object lookups that found a holder (histogram) |
//! | `rpc_rejected_frames_total{reason}` | frames refused by the codec |
//! | `proxy_*` | the HTTP face's own counters (requests by status and cache result, origin fetches and errors, bytes served), registered through [`Metrics::register_extra`] |
//!
//! **Hooks for the HTTP face.** The proxy crate keeps its own counters;
//! [`Metrics::attach_proxy`] does both of the following for its `ProxyMetrics`. In general,
//! whoever wires an HTTP face into the node (1) registers them with [`Metrics::register_extra`] (e.g.
//! `metrics.register_extra(|r| proxy_metrics.register(r))`: they are encoded on the same
//! `/metrics` page, before the one `# EOF`), and (2) gives `/stats` and the dashboard their
//! request totals with [`Metrics::set_http_source`] (a closure reading the proxy's counters).

use super::snapshot::RingSnapshot;
use beehive_replication::{Event, Message, Request, Response};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, linear_buckets, Histogram};
use prometheus_client::registry::{Registry, Unit};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabel {
    pub kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    pub reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ClassLabel {
    /// `home` or `replica`.
    pub class: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabel {
    pub result: &'static str,
}

/// HTTP totals for `/stats`, read from the HTTP face's counters ([`Metrics::set_http_source`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HttpTotals {
    /// Responses sent.
    pub requests: u64,
    /// Responses served from the cache (`X-Cache: HIT` or `STALE`).
    pub hits: u64,
    /// Body bytes sent to clients.
    pub response_bytes: u64,
}

/// Reads the HTTP face's totals on demand.
pub struct HttpSource(Box<dyn Fn() -> HttpTotals + Send + Sync>);

impl std::fmt::Debug for HttpSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HttpSource")
    }
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
    /// Successor copies: pushed to our successor (and their bytes), received from our
    /// predecessor, fetched instead of an origin load, and held now.
    pub copies_sent: Counter,
    pub copy_bytes_sent: Counter,
    pub copies_received: Counter,
    pub copies_fetched: Counter,
    pub copies_held: Gauge,
    pub copy_bytes_held: Gauge,
    pub connections_open: Gauge,
    pub connects: Counter,
    pub ring_size_estimate: Gauge,
    pub node_info: Family<InfoLabels, Gauge>,
    // ---- operations (dashboard, /stats)
    pub store_objects: Family<ClassLabel, Gauge>,
    pub store_bytes: Family<ClassLabel, Gauge>,
    pub replication_pulls: Counter,
    pub replication_offers: Counter,
    pub replication_fetches: Counter,
    pub replication_fetch_bytes: Counter,
    pub aggregation_count_entries: Counter,
    pub aggregation_reports: Counter,
    pub leader_epoch: Gauge,
    pub leader_alpha: Gauge<f64, AtomicU64>,
    pub leader_objects: Gauge<f64, AtomicU64>,
    pub leader_nodes: Gauge<f64, AtomicU64>,
    pub object_lookups: Family<ResultLabel, Counter>,
    pub object_lookup_hops: Histogram,
    /// Σ hops over `object_lookups{result=local|remote}`, for `/stats` averages.
    pub object_lookup_hops_sum: Counter,
    /// Where `/stats` reads HTTP totals ([`Metrics::set_http_source`]); none: zeros.
    http_source: Mutex<Option<HttpSource>>,
    /// Metrics registered by other parts (the HTTP face): see [`Metrics::register_extra`].
    extra: Mutex<Registry>,
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
            copies_sent: Counter::default(),
            copy_bytes_sent: Counter::default(),
            copies_received: Counter::default(),
            copies_fetched: Counter::default(),
            copies_held: Gauge::default(),
            copy_bytes_held: Gauge::default(),
            connections_open: Gauge::default(),
            connects: Counter::default(),
            ring_size_estimate: Gauge::default(),
            node_info: Family::default(),
            store_objects: Family::default(),
            store_bytes: Family::default(),
            replication_pulls: Counter::default(),
            replication_offers: Counter::default(),
            replication_fetches: Counter::default(),
            replication_fetch_bytes: Counter::default(),
            aggregation_count_entries: Counter::default(),
            aggregation_reports: Counter::default(),
            leader_epoch: Gauge::default(),
            leader_alpha: Gauge::default(),
            leader_objects: Gauge::default(),
            leader_nodes: Gauge::default(),
            object_lookups: Family::default(),
            // 0, 1, … 16 hops: a lookup never takes more than log2 N of them.
            object_lookup_hops: Histogram::new(linear_buckets(0.0, 1.0, 17)),
            object_lookup_hops_sum: Counter::default(),
            http_source: Mutex::new(None),
            extra: Mutex::new(Registry::with_prefix("beehive")),
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
            "successor_copies_sent",
            "Home objects copied to the successor",
            m.copies_sent.clone(),
        );
        r.register(
            "successor_copy_bytes_sent",
            "Bytes of home objects copied to the successor",
            m.copy_bytes_sent.clone(),
        );
        r.register(
            "successor_copies_received",
            "Copies of the predecessor's home objects received",
            m.copies_received.clone(),
        );
        r.register(
            "successor_copies_fetched",
            "Bodies taken from a successor copy instead of the origin",
            m.copies_fetched.clone(),
        );
        r.register(
            "successor_copies_held",
            "Copies of the predecessor's home objects held",
            m.copies_held.clone(),
        );
        r.register(
            "successor_copy_bytes_held",
            "Bytes of the copies of the predecessor's home objects held",
            m.copy_bytes_held.clone(),
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
        m.register_operations();
        m.node_info
            .get_or_create(&InfoLabels { mode, target_hops: target_hops.to_string() })
            .set(1);
        m
    }

    fn register_operations(&mut self) {
        let r = &mut self.registry;
        r.register(
            "store_objects",
            "Objects held, by class (home, replica)",
            self.store_objects.clone(),
        );
        r.register_with_unit(
            "store",
            "Body bytes held, by class (home, replica)",
            Unit::Bytes,
            self.store_bytes.clone(),
        );
        r.register(
            "replication_pulls",
            "Replication pulls sent to fingers",
            self.replication_pulls.clone(),
        );
        r.register(
            "replication_offers",
            "Offers received in answers to pulls",
            self.replication_offers.clone(),
        );
        r.register(
            "replication_fetches",
            "Replica body fetches the core asked for",
            self.replication_fetches.clone(),
        );
        r.register_with_unit(
            "replication_fetch",
            "Announced sizes of the replica bodies the core asked to fetch",
            Unit::Bytes,
            self.replication_fetch_bytes.clone(),
        );
        r.register(
            "aggregation_count_entries",
            "Per-key request counts sent toward their homes",
            self.aggregation_count_entries.clone(),
        );
        r.register(
            "aggregation_reports",
            "Popularity reports sent toward the leader",
            self.aggregation_reports.clone(),
        );
        r.register(
            "leader_epoch",
            "Epoch of the newest leader result held",
            self.leader_epoch.clone(),
        );
        r.register(
            "leader_alpha",
            "Zipf alpha of the newest leader result",
            self.leader_alpha.clone(),
        );
        r.register(
            "leader_objects",
            "Objects M estimated by the newest leader result",
            self.leader_objects.clone(),
        );
        r.register(
            "leader_nodes",
            "Nodes N counted by the newest leader result",
            self.leader_nodes.clone(),
        );
        r.register(
            "object_lookups",
            "Object lookups started here, by result (local, remote, failed)",
            self.object_lookups.clone(),
        );
        r.register(
            "object_lookup_hops",
            "Hops of object lookups that found a holder",
            self.object_lookup_hops.clone(),
        );
    }

    /// The hook for metrics kept elsewhere (the HTTP face): `f` registers them into a registry
    /// (prefix `beehive_`) that `/metrics` encodes with the node's own. Register each name once.
    pub fn register_extra(&self, f: impl FnOnce(&mut Registry)) {
        let mut extra = self.extra.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut extra);
    }

    /// The hook for `/stats`: `source` returns the HTTP face's totals when asked (it is called
    /// on every `/stats` request, so it should only read counters).
    pub fn set_http_source(&self, source: impl Fn() -> HttpTotals + Send + Sync + 'static) {
        *self.http_source.lock().unwrap_or_else(|e| e.into_inner()) =
            Some(HttpSource(Box::new(source)));
    }

    /// The OpenMetrics text exposition of every metric.
    pub fn encode(&self) -> String {
        use prometheus_client::encoding::text::{encode_eof, encode_registry};
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = encode_registry(&mut out, &self.registry);
        let _ = encode_registry(&mut out, &self.extra.lock().unwrap_or_else(|e| e.into_inner()));
        let _ = encode_eof(&mut out);
        out
    }

    /// Counts what a message the core sends says about replication and aggregation.
    pub fn observe_transmit(&self, msg: &Message) {
        if let Message::Request { body: Request::Pull(pull), .. } = msg {
            self.replication_pulls.inc();
            self.aggregation_count_entries.inc_by(pull.counts.len() as u64);
            if pull.report.is_some() {
                self.aggregation_reports.inc();
            }
        }
    }

    /// Counts what an arriving message says about replication (call before the core takes it).
    pub fn observe_inbound(&self, msg: &Message) {
        if let Message::Response { body: Response::Offers { list, .. }, .. } = msg {
            self.replication_offers.inc_by(list.offers.len() as u64);
        }
    }

    /// Counts an event of the core: object lookups and their hops, replica fetches.
    pub fn observe_event(&self, event: &Event) {
        match event {
            Event::LookupDone { hops, served: Some(_), .. } => {
                let result = if *hops == 0 { "local" } else { "remote" };
                self.object_lookups.get_or_create(&ResultLabel { result }).inc();
                self.object_lookup_hops.observe(f64::from(*hops));
                self.object_lookup_hops_sum.inc_by(u64::from(*hops));
            }
            Event::LookupFailed { .. } => {
                self.object_lookups.get_or_create(&ResultLabel { result: "failed" }).inc();
            }
            Event::FetchBody { offer, .. } => {
                self.replication_fetches.inc();
                self.replication_fetch_bytes.inc_by(offer.info.size);
            }
            _ => {}
        }
    }

    /// Sets the gauges that mirror a freshly published snapshot: the leader's result and the
    /// store totals.
    pub fn observe_snapshot(&self, snap: &RingSnapshot) {
        if let Some(super::snapshot::LeaderView(l)) = &snap.leader {
            self.leader_epoch.set(i64::try_from(l.epoch).unwrap_or(i64::MAX));
            self.leader_alpha.set(l.alpha);
            self.leader_objects.set(l.objects);
            self.leader_nodes.set(l.nodes);
        }
        let st = snap.ops.store;
        let set = |family: &Family<ClassLabel, Gauge>, class, v: u64| {
            family.get_or_create(&ClassLabel { class }).set(i64::try_from(v).unwrap_or(i64::MAX));
        };
        set(&self.store_objects, "home", st.home_objects);
        set(&self.store_objects, "replica", st.replica_objects);
        set(&self.store_bytes, "home", st.home_bytes);
        set(&self.store_bytes, "replica", st.replica_bytes);
    }

    /// A request served from this node's own store without a lookup: a 0-hop object lookup.
    pub fn observe_local_hit(&self) {
        self.object_lookups.get_or_create(&ResultLabel { result: "local" }).inc();
        self.object_lookup_hops.observe(0.0);
    }

    /// Object lookups by result, for `/stats`: (local, remote, failed).
    pub fn lookup_counts(&self) -> (u64, u64, u64) {
        let get = |result| self.object_lookups.get_or_create(&ResultLabel { result }).get();
        (get("local"), get("remote"), get("failed"))
    }

    /// Wires the HTTP face's counters in: registers them on `/metrics` (`beehive_proxy_*`)
    /// and makes them `/stats`' HTTP totals. Call once, where the proxy is built:
    /// `metrics.attach_proxy(proxy.metrics())`.
    pub fn attach_proxy(&self, proxy: Arc<beehive_proxy::ProxyMetrics>) {
        self.register_extra(|r| proxy.register(r));
        self.set_http_source(move || {
            let s = proxy.snapshot();
            // `cache` is indexed HIT, MISS, STALE, PASS.
            HttpTotals {
                requests: s.status_class.iter().sum(),
                hits: s.cache[0] + s.cache[2],
                response_bytes: s.bytes_served,
            }
        });
    }

    /// The HTTP face's totals, zeros until [`Metrics::set_http_source`] was called.
    pub fn http_totals(&self) -> HttpTotals {
        let source = self.http_source.lock().unwrap_or_else(|e| e.into_inner());
        source.as_ref().map(|s| (s.0)()).unwrap_or_default()
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

#[cfg(test)]
mod tests {
    use super::*;
    use beehive_replication::{Id, LookupId, Peer};
    use prometheus_client::metrics::counter::Counter;

    #[test]
    fn lookups_move_the_hops_histogram_and_the_exposition_stays_one_document() {
        let m = Metrics::new("beehive", 1.0);
        let home = Peer::from_addr(([127, 0, 0, 1], 7000).into());
        let served = beehive_replication::node::ObjectAnswer { level: 1, object: None };
        for hops in [0, 2, 3] {
            m.observe_event(&Event::LookupDone {
                id: LookupId(hops.into()),
                key: Id(1),
                home,
                hops,
                served: Some(served),
            });
        }
        m.observe_event(&Event::LookupFailed { id: LookupId(9), key: Id(1), hops: 4 });
        assert_eq!(m.lookup_counts(), (1, 2, 1));
        assert_eq!(m.object_lookup_hops_sum.get(), 5);
        let extra = Counter::<u64>::default();
        extra.inc_by(7);
        m.register_extra(|r| r.register("proxy_test", "A metric of the HTTP face", extra.clone()));
        let node = beehive_replication::Node::new(home, Default::default(), Default::default());
        m.observe_snapshot(&RingSnapshot::capture(&node, false, "beehive", 1.0));
        let text = m.encode();
        assert!(text.contains("beehive_object_lookup_hops_count 3"), "{text}");
        assert!(text.contains("beehive_object_lookups_total{result=\"remote\"} 2"));
        assert!(text.contains("beehive_proxy_test_total 7"));
        assert!(text.contains("# UNIT beehive_store_bytes bytes"));
        assert!(text.contains("beehive_store_objects{class=\"replica\"} 0"));
        assert_eq!(text.matches("# EOF").count(), 1);
        assert!(text.ends_with("# EOF\n"));
    }

    #[test]
    fn the_proxy_counters_feed_metrics_and_stats() {
        use beehive_proxy::{CacheResult, ProxyMetrics};
        let m = Metrics::new("beehive", 1.0);
        assert_eq!(m.http_totals(), HttpTotals::default());
        let proxy = Arc::new(ProxyMetrics::default());
        m.attach_proxy(proxy.clone());
        proxy.response(200, Some(CacheResult::Hit), 100);
        proxy.response(200, Some(CacheResult::Miss), 50);
        proxy.response(502, None, 10);
        assert_eq!(m.http_totals(), HttpTotals { requests: 3, hits: 1, response_bytes: 160 });
        let text = m.encode();
        assert!(text.contains("beehive_proxy_"), "{text}");
        assert_eq!(text.matches("# EOF").count(), 1);
    }
}
