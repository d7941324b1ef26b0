//! Beehive replication math: counting popularity, fitting Zipf, and the closed-form levels.
//!
//! # Contract
//!
//! Pure functions and plain data. Nothing here does I/O, reads a clock or draws randomness:
//! intervals are closed by the caller ([`SpaceSaving::drain_interval`],
//! [`SmoothedRate::update`]) and the one hash seed comes in through [`SpaceSaving::new`], so the
//! simulator replays it bit for bit. Bad inputs (NaN, negative rates, impossible parameters)
//! are errors or are ignored as documented, never panics.
//!
//! The pipeline, from a request to a level (docs/replication.md):
//!
//! 1. the node that serves a request counts it in a [`SpaceSaving`] sketch (bounded memory);
//! 2. each interval the drained counts travel toward each key's home, which keeps a
//!    [`SmoothedRate`] per object;
//! 3. homes send a mergeable [`PopularitySummary`] toward the leader, which merges them,
//!    [`fit`]s α and the rank→rate curve ([`ZipfFit`]);
//! 4. the leader [`solve`]s the closed form ([`LevelParams`] → [`LevelSolution`]) and turns it
//!    into rate [`thresholds`];
//! 5. a home puts each object at [`level_for_rate`] of its smoothed rate.
//!
//! # Module map
//!
//! * [`levels`] — Beehive's closed form (with the α = 1 limit, hop cost per level, the
//!   storage-budget solve) and rate thresholds
//! * [`zipf`] — the log-binned rate histogram, the mergeable summary and the α fit
//! * [`popularity`] — the Space-Saving heavy-hitters sketch and the smoothed per-object rate
//! * [`wire`] — offers, counts, reports and the leader's result as they travel; replica arcs
//! * [`home`] — a home's objects: plausible, capped counts → smoothed rate → level
//! * [`digest`] — bucket digests that let a resync list only where two offer sets differ
//! * [`holdings`] — replicas under leases, passive caches, tombstones of purged versions
//! * [`catalogue`] — M, the number of objects, from the objects seen and the discovery share
//! * [`leader`] — merged reports → fitted α, estimated M, measured hop cost → thresholds
//!
//! The node glue (timers, messages, events) is in `node/replication/`.

pub mod catalogue;
pub mod digest;
pub mod holdings;
pub mod home;
pub mod leader;
pub mod levels;
pub mod popularity;
pub mod wire;
pub mod zipf;

pub use levels::{
    level_for_rate, solve, solve_for_budget, thresholds, LevelError, LevelParams, LevelSolution,
};
pub use popularity::{IntervalCounts, SmoothedRate, SpaceSaving, Tracked};
pub use wire::{in_arc, CountEntry, LevelResult, ObjectInfo, Offer, Pull, Report};
pub use zipf::{fit, FitConfig, FitError, PopularitySummary, RateHistogram, ZipfFit};
