//! `beehive-proxy`: the HTTP face of a beehive node (DESIGN.md §6).
//!
//! # Contract
//!
//! This crate knows nothing of Chord. It serves HTTP, maps CDN host names to origins, keeps
//! the node's object store and loads objects from origins; it reaches the rest of the cluster
//! only through the [`Cluster`] trait, which the `beehive` binary implements on the ring (and
//! which [`cluster::LocalCluster`] implements for one node on its own).
//!
//! # Module map
//!
//! * [`cluster`] — the trait the node implements, and the one-node implementation

pub mod cluster;

pub use cluster::{BoxFuture, Cluster, ClusterError, Fetched, LoadRequest, ObjectKey};
