//! `beehive`: a content distribution network on a Chord ring with Beehive replication.
//!
//! # Contract
//!
//! The protocol itself — ring state, replication, the simulator — lives in the sans-IO
//! `beehive-replication` crate. This library holds what a live node adds around it: the
//! transport pieces the `beehive` binary's drivers are built from. [`rpc`] does no I/O;
//! [`node`] is the live node's runtime (sockets, tasks, signals).
//!
//! # Module map
//!
//! * [`rpc`] — node-to-node RPC frames: layout, MAC, the per-connection codec
//! * [`node`] — the live node: config, driver task, transport, admin listener, metrics
//! * [`launch`] — child `beehive` processes on loopback, for the demo and the e2e tests
#![forbid(unsafe_code)]

pub mod launch;
pub mod node;
pub mod rpc;
