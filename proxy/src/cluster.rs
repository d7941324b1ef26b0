//! The seam between the HTTP face and the ring.
//!
//! An *object* is opaque to the cluster: the bytes the proxy encoded (status, headers, cache
//! policy, body). The ring moves it between nodes and verifies it against its blake3 hash; the
//! proxy alone decodes it. A *load request* is equally opaque: what the home needs to fetch the
//! object from its origin, produced by the entry node's proxy and consumed by the home's.

use crate::key::ObjectKey;
use bytes::Bytes;
use std::future::Future;
use std::pin::Pin;
use thiserror::Error;

/// A boxed future, so [`Cluster`] stays object safe.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What a home needs to load an object from its origin (encoded by the proxy).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadRequest(pub Bytes);

/// An object fetched through the ring.
#[derive(Debug, Clone)]
pub struct Fetched {
    /// The encoded object.
    pub object: Bytes,
    /// Ring hops the lookup took (0: this node held it or is its home).
    pub hops: u32,
    /// The object's replication level as the node that served it knows it.
    pub level: Option<u8>,
    /// Whether the home may share this object (false: served once, not stored anywhere).
    pub cacheable: bool,
    /// The blake3 hash of `object` when the node that produced it already knew it (the home
    /// stored it), so a node keeping it need not hash it again.
    pub hash: Option<[u8; 32]>,
}

/// What asking the cluster for an object comes to: the one outcome type from the home's
/// loader through the wire to the entry node's proxy.
pub type Fetch = Result<Fetched, ClusterError>;

/// Why the cluster could not produce an object.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum ClusterError {
    /// The home could not load the object from the origin; `status` is what the entry node
    /// answers (502 unreachable, 504 timeout, ...), `message` the one-line reason.
    #[error("origin: {message}")]
    Origin { status: u16, message: String },
    /// The home will not carry this object through the ring (too large, not cacheable):
    /// the entry node fetches it from the origin directly.
    #[error("pass to the origin directly")]
    Pass,
    /// The ring could not route the request or reach the node holding the object.
    #[error("cluster unavailable: {0}")]
    Unavailable(String),
}

/// The cluster as the proxy sees it. Implemented by the node (on the ring) and by
/// [`LocalCluster`](crate::local::LocalCluster) (one node, no ring).
pub trait Cluster: Send + Sync + std::fmt::Debug + 'static {
    /// Gets the object for `key`: from a copy on the lookup path, or from the home, which
    /// loads it from the origin with `load` when it has none or its copy is stale. `refresh`
    /// skips the copies on the path and asks the home (the entry node's own copy was stale,
    /// and replicas may be as stale). Concurrent fetches of one key are coalesced on each
    /// node, and the home loads once per key.
    fn fetch(&self, key: ObjectKey, load: LoadRequest, refresh: bool) -> BoxFuture<'_, Fetch>;

    /// Counts one request served from this node's own store, for popularity (Beehive counts
    /// at the node that serves).
    fn served_locally(&self, key: ObjectKey);

    /// Purges `key` at its home and over its replica arc. Resolves once the home has
    /// invalidated it; replicas follow within the cluster's propagation bound.
    fn purge(&self, key: ObjectKey) -> BoxFuture<'_, Result<(), ClusterError>>;

    /// This node's name, for `X-Beehive-Node`.
    fn node_name(&self) -> &str;

    /// Whether the entry node keeps what it fetched. `false` when the cluster places copies
    /// itself (Beehive: only nodes inside an object's replica arc hold it, or hop counts would
    /// measure entry caching instead of replication); a copy the entry already held is still
    /// refreshed in place.
    fn keeps_fetched(&self) -> bool {
        true
    }
}
