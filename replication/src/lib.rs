//! The beehive protocol core: the Chord ring, Beehive replication and the deterministic
//! simulator. No I/O.
//!
//! # Contract
//!
//! Nothing in this crate opens a socket, reads a clock, spawns a task or draws from a global
//! RNG. A node is a state machine in the style of `quinn-proto`:
//!
//! * **inputs** — [`Node::handle_message`]`(now, from, msg)` for every message that arrives,
//!   [`Node::handle_timeout`]`(now)` when the deadline from [`Node::poll_timeout`] passes, and
//!   the commands [`Node::join`], [`Node::lookup`] and [`Node::leave`];
//! * **outputs** — after every input the caller drains [`Node::poll_transmit`] (messages to
//!   send) and [`Node::poll_event`] (lookups done, predecessor changed, …) until both return
//!   `None`, then waits for the next message or for [`Node::poll_timeout`].
//!
//! `now` is a [`Time`]: a duration since an epoch the caller picks. The tokio driver in the
//! `beehive` binary and the [`sim`] simulator are the two callers of the very same code, so a
//! bug seen in a simulation replays from its seed.
//!
//! # Module map
//!
//! * [`id`] — ring ids (`u128` from blake3) and wrap-around arc arithmetic
//! * [`peer`], [`rtt`] — peers, their standing (misses, suspicion) and RTT-based timeouts
//! * [`routing`] — predecessor, successor list, finger table; the next-hop decision
//! * [`lookup`] — an iterative lookup in flight at its entry node
//! * [`node`] — the Chord state machine: join, stabilize, notify, fix-fingers,
//!   check-predecessor, ring merge, leave
//! * [`message`] — what nodes say to each other; [`error`] — why an input was refused
//! * [`config`] — tuning with defaults and validation; [`hash`] — the maps' fixed hasher
//! * [`beehive`] — popularity counting, the Zipf fit and Beehive's closed-form levels
//! * [`sim`] — the deterministic simulator: virtual clock, latency, loss, partitions,
//!   crashes, churn, and the reports
#![forbid(unsafe_code)]

pub mod beehive;
pub mod config;
pub mod error;
pub mod hash;
pub mod id;
pub mod lookup;
pub mod message;
pub mod node;
pub mod peer;
pub mod routing;
pub mod rtt;
pub mod sim;
pub mod time;

pub use config::ChordConfig;
pub use error::{ConfigError, ProtocolError};
pub use id::Id;
pub use lookup::LookupId;
pub use message::{Message, NextHop, Request, Response};
pub use node::{Event, Node, Transmit};
pub use peer::Peer;
pub use time::Time;
