//! `beehive-proxy`: the HTTP face of a beehive node.
//!
//! # Contract
//!
//! This crate knows nothing of Chord. It serves HTTP, maps CDN host names to origins, keeps
//! the node's object store and loads objects from origins; it reaches the rest of the cluster
//! only through the [`Cluster`] trait, which the `beehive` binary implements on the ring (and
//! which [`local::LocalCluster`] implements for one node on its own).
//!
//! A request passes through named phases (see [`server`]): admission (rate limit, host
//! mapping, method) → local lookup → cluster fetch → store → respond (conditional, range,
//! header rewriting).
//!
//! # Choices worth knowing
//!
//! * The origin is asked for the *normalised* URL (tracking parameters dropped, query sorted
//!   if configured), so one key always names one origin resource. Passes send the raw URL.
//! * `X-Cache`: HIT (this node's store, fresh), MISS (through the cluster), STALE (past
//!   freshness: stale-while-revalidate or stale-if-error), PASS (not shareable).
//! * Not shared: `Set-Cookie`, `no-store`, `private`, `Vary: *`, bodies over
//!   `max_object_bytes`; such keys are passed for 30 s without asking the home first
//!   (hit-for-pass). Requests with `Authorization` or `Cookie` are passed, like Varnish.
//! * `default_ttl` applies to responses with no `max-age`, `s-maxage` or `Expires` whose
//!   status is cacheable by default (200, 203, 204, 300, 301, 308, 404, 410).
//! * The SSRF guard checks every origin that is not one of this node's named origins, so
//!   every node must carry the same named-origin table.
//!
//! # Module map
//!
//! * [`cluster`] — the trait the node implements
//! * [`local`] — [`LocalCluster`], the one-node implementation
//! * [`config`] — [`ProxyConfig`], defaults and validation
//! * [`flight`] — [`Flights`], coalescing of concurrent fetches of one key
//! * [`host`] — Host header → origin, and open mode's address classifier (SSRF guard)
//! * [`key`] — [`ObjectKey`], cache key normalisation and variant keys
//! * [`object`] — the cached object, its encoding, cache policy construction
//! * [`store`] — [`ObjectStore`], the byte-bounded quick_cache cache of encoded objects
//! * [`origin`] — the HTTP client towards origins, with timeouts
//! * [`loader`] — [`Loader`], the home's coalesced origin loads
//! * [`range`] — conditional requests and byte ranges on cached objects
//! * [`limits`] — per-client rate limiting and PURGE authorisation
//! * [`metrics`] — [`ProxyMetrics`] counters
//! * `conn` — one client connection's header and idle timeouts
//! * [`server`] — [`Proxy`], the hyper server and the request phases up to the response
//! * `respond` — the respond phase: 304/206/416/HEAD, `Location` rewriting, CDN headers, errors

pub mod cluster;
pub mod config;
mod conn;
pub mod flight;
pub mod host;
pub mod key;
pub mod limits;
pub mod loader;
pub mod local;
pub mod metrics;
pub mod object;
pub mod origin;
pub mod range;
mod respond;
pub mod server;
pub mod store;

pub use cluster::{BoxFuture, Cluster, ClusterError, Fetch, Fetched, LoadRequest};
pub use config::ProxyConfig;
pub use flight::Flights;
pub use key::ObjectKey;
pub use loader::Loader;
pub use local::LocalCluster;
pub use metrics::{CacheResult, MetricsSnapshot, ProxyMetrics};
pub use object::{CachedObject, DecodeError, Policy};
pub use server::Proxy;
pub use store::ObjectStore;
