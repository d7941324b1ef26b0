//! `beehive-proxy`: the HTTP face of a beehive node (DESIGN.md §6).
//!
//! # Contract
//!
//! This crate knows nothing of Chord. It serves HTTP, maps CDN host names to origins, keeps
//! the node's object store and loads objects from origins; it reaches the rest of the cluster
//! only through the [`Cluster`] trait, which the `beehive` binary implements on the ring (and
//! which [`cluster::LocalCluster`] implements for one node on its own).
//!
//! A request passes through named phases (see [`server`]): admission (rate limit, host
//! mapping, method) → local lookup → cluster fetch → store → respond (conditional, range,
//! header rewriting).
//!
//! # Module map
//!
//! * [`cluster`] — the trait the node implements, and the one-node implementation
//! * [`config`] — [`ProxyConfig`], defaults and validation
//! * [`host`] — Host header → origin, and open mode's address classifier (SSRF guard)
//! * [`key`] — cache key normalisation and variant keys
//! * [`object`] — the cached object, its encoding, cache policy construction
//! * [`store`] — [`ObjectStore`], the byte-bounded moka cache of encoded objects
//! * [`origin`] — the HTTP client towards origins, with timeouts
//! * [`loader`] — [`Loader`], the home's coalesced origin loads
//! * [`range`] — conditional requests and byte ranges on cached objects
//! * [`limits`] — per-client rate limiting and PURGE authorisation
//! * [`metrics`] — [`ProxyMetrics`] counters
//! * [`server`] — [`Proxy`], the hyper server and the request phases up to the response
//! * `respond` — the respond phase: 304/206/416/HEAD, `Location` rewriting, CDN headers, errors

pub mod cluster;
pub mod config;
pub mod host;
pub mod key;
pub mod limits;
pub mod loader;
pub mod metrics;
pub mod object;
pub mod origin;
pub mod range;
mod respond;
pub mod server;
pub mod store;

pub use cluster::{
    BoxFuture, Cluster, ClusterError, Fetched, LoadRequest, LocalCluster, ObjectKey,
};
pub use config::ProxyConfig;
pub use loader::{Loaded, Loader};
pub use metrics::{CacheResult, MetricsSnapshot, ProxyMetrics};
pub use object::{CachedObject, DecodeError};
pub use server::Proxy;
pub use store::ObjectStore;
