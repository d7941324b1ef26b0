//! `beehive-loadgen`: the load generator, and the demo origin it measures against.
//!
//! Contract: [`run()`] takes a validated [`LoadConfig`] (targets, Zipf or uniform keys, closed or
//! open loop, phases, bounds) and returns a [`Report`]: per-second and overall latency
//! percentiles from HDR histograms, throughput, the `X-Beehive-Hops` histogram, the `X-Cache`
//! mix, errors by status and kind, and origin requests from the origin's `/stats`. Every run
//! stops by itself (by duration and/or request count). Configuration errors are [`LoadError`]s
//! returned before the first request.
//!
//! Modules:
//! - [`config`]: [`LoadConfig`], its defaults and `validate()`, [`LoadError`]
//! - [`workload`]: ranks from Zipf/uniform, mapped to objects by the phases
//! - [`run`](mod@run): pre-flight, closed and open loops, the origin poll
//! - [`recorder`]: outcomes into HDR histograms per second
//! - [`report`]: [`Report`] (JSON schema in `loadgen/SCHEMA.md`), tables
//! - [`plot`]: the SVG plot of several runs
//! - [`progress`]: the terminal progress bar
//! - [`origin`]: the built-in demo origin (`beehive origin`)

pub mod config;
pub mod origin;
pub mod plot;
pub mod progress;
pub mod recorder;
pub mod report;
pub mod run;
pub mod workload;

pub use config::{Flash, LoadConfig, LoadError, LoopMode, Phases, Spread, Workload};
pub use report::{compare_table, Report, Second, Summary, SCHEMA_VERSION};
pub use run::run;
