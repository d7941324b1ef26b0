//! `beehive`: a content distribution network on a Chord ring with Beehive replication.
//!
//! # Contract
//!
//! The protocol itself — ring state, replication, the simulator — lives in the sans-IO
//! `beehive-replication` crate. This library holds what a live node adds around it: the
//! transport pieces the `beehive` binary's drivers are built from. Modules here may do I/O
//! only where their docs say so; today none does.
//!
//! # Module map
//!
//! * [`rpc`] — node-to-node RPC frames: layout, MAC, the per-connection codec
#![forbid(unsafe_code)]

pub mod rpc;
