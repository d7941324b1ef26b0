//! `beehive loadgen`: drive a Zipf (or uniform) load at one or more nodes and report.
//!
//! The summary table goes to stdout; `--json` writes the report (schema: loadgen/SCHEMA.md),
//! `--plot` an SVG of hops, latency and throughput over time. A progress bar is drawn on stderr
//! only when it is a terminal. Bad arguments and unreachable targets exit 2.

use anyhow::{anyhow, Context, Result};
use beehive_loadgen::{plot, Flash, LoadConfig, LoopMode, Phases, Spread, Workload};
use clap::Args;
use std::path::PathBuf;
use std::time::Duration;

/// Drive a load (closed or open loop) at beehive nodes and report latency, hops and offload.
#[derive(Debug, Args)]
pub struct LoadgenArgs {
    /// Base URL of an entry node, e.g. http://127.0.0.1:8080 (repeat for several).
    #[arg(long = "target", required = true)]
    pub targets: Vec<String>,
    /// How requests are spread over the targets.
    #[arg(long, default_value = "round-robin", value_parser = ["round-robin", "random"])]
    pub spread: String,
    /// Host header to send (the CDN name), e.g. site.beehive.localhost.
    #[arg(long)]
    pub host: Option<String>,
    /// Request path; {i} is replaced by the object index.
    #[arg(long, default_value = "/o/{i}")]
    pub path: String,
    /// Key distribution.
    #[arg(long, default_value = "zipf", value_parser = ["zipf", "uniform"])]
    pub workload: String,
    /// Zipf exponent (> 0).
    #[arg(long, default_value_t = 0.91)]
    pub alpha: f64,
    /// Number of objects M.
    #[arg(long, default_value_t = 1000)]
    pub objects: u64,
    /// Closed loop with this many workers (the default, 16).
    #[arg(long, conflicts_with = "rate")]
    pub concurrency: Option<usize>,
    /// Open loop at this many requests per second (latency from the intended send time).
    #[arg(long)]
    pub rate: Option<f64>,
    /// Open loop: most requests outstanding at once; later sends are counted as late.
    #[arg(long, default_value_t = 1000)]
    pub max_in_flight: usize,
    /// Run for this many seconds (default 10 unless --requests is given).
    #[arg(long)]
    pub duration: Option<f64>,
    /// Stop after this many requests.
    #[arg(long)]
    pub requests: Option<u64>,
    /// Seed of every random choice.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Per-request timeout in seconds.
    #[arg(long, default_value_t = 10.0)]
    pub timeout: f64,
    /// Reverse popularity (rank r → object M-1-r) from this second on.
    #[arg(long)]
    pub reverse_at: Option<f64>,
    /// Rotate popularity by --rotate-by objects from this second on.
    #[arg(long, requires = "rotate_by")]
    pub rotate_at: Option<f64>,
    #[arg(long, requires = "rotate_at")]
    pub rotate_by: Option<u64>,
    /// Start a flash crowd on --flash-object at this second.
    #[arg(long, requires = "flash_object")]
    pub flash_at: Option<f64>,
    #[arg(long, requires = "flash_at")]
    pub flash_object: Option<u64>,
    /// Share of requests that go to the flash object.
    #[arg(long, default_value_t = 0.5)]
    pub flash_share: f64,
    /// The origin's stats URL (http://ADDR/stats), polled each second for origin offload.
    #[arg(long)]
    pub origin_stats: Option<String>,
    /// Check every 200 body against the blake3 the built-in origin (the one of
    /// --origin-stats) gives at <path>/hash; the report counts the wrong ones.
    #[arg(long)]
    pub verify: bool,
    /// Write the JSON report here.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Write an SVG plot here.
    #[arg(long)]
    pub plot: Option<PathBuf>,
    /// The run's name in the plot legend.
    #[arg(long, default_value = "run")]
    pub label: String,
    /// Never draw a progress bar.
    #[arg(long)]
    pub no_progress: bool,
}

fn seconds(flag: &str, s: f64) -> Result<Duration> {
    Duration::try_from_secs_f64(s)
        .map_err(|_| anyhow!("--{flag} must be a number of seconds >= 0 (got {s})"))
}

fn opt_seconds(flag: &str, s: Option<f64>) -> Result<Option<Duration>> {
    s.map(|s| seconds(flag, s)).transpose()
}

impl LoadgenArgs {
    /// The library config; everything the library checks is left to `LoadConfig::validate`.
    pub fn config(&self) -> Result<LoadConfig> {
        let mode = match (self.rate, self.concurrency) {
            (Some(rate), _) => LoopMode::Open { rate, max_in_flight: self.max_in_flight },
            (None, c) => LoopMode::Closed { concurrency: c.unwrap_or(16) },
        };
        let duration = match (self.duration, self.requests) {
            (None, Some(_)) => None,
            (d, _) => Some(seconds("duration", d.unwrap_or(10.0))?),
        };
        let flash = match (self.flash_at, self.flash_object) {
            (Some(at), Some(object)) => {
                Some(Flash { at: seconds("flash-at", at)?, object, share: self.flash_share })
            }
            _ => None,
        };
        let rotate_at = match (opt_seconds("rotate-at", self.rotate_at)?, self.rotate_by) {
            (Some(at), Some(by)) => Some((at, by)),
            _ => None,
        };
        Ok(LoadConfig {
            targets: self.targets.clone(),
            spread: if self.spread == "random" { Spread::Random } else { Spread::RoundRobin },
            host: self.host.clone(),
            path_template: self.path.clone(),
            workload: if self.workload == "uniform" {
                Workload::Uniform
            } else {
                Workload::Zipf { alpha: self.alpha }
            },
            objects: self.objects,
            mode,
            duration,
            requests: self.requests,
            seed: self.seed,
            timeout: seconds("timeout", self.timeout)?,
            phases: Phases {
                reverse_at: opt_seconds("reverse-at", self.reverse_at)?,
                rotate_at,
                flash,
            },
            origin_stats: self.origin_stats.clone(),
            verify: self.verify,
            ..LoadConfig::default()
        })
    }
}

pub fn run(args: LoadgenArgs) -> Result<()> {
    let config = args.config()?;
    config.validate()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the tokio runtime")?;
    let report = runtime.block_on(beehive_loadgen::run(&config, !args.no_progress))?;
    let mut stdout = std::io::stdout().lock();
    report.print_table(&mut stdout)?;
    if let Some(path) = &args.json {
        report.write_json(path)?;
        eprintln!("report written to {}", path.display());
    }
    if let Some(path) = &args.plot {
        plot::write_svg(&[(args.label.as_str(), &report)], path)?;
        eprintln!("plot written to {}", path.display());
    }
    runtime.shutdown_timeout(Duration::from_millis(100));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        args: LoadgenArgs,
    }

    fn config(args: &[&str]) -> Result<LoadConfig> {
        let mut argv = vec!["loadgen", "--target", "http://127.0.0.1:1"];
        argv.extend_from_slice(args);
        Cli::try_parse_from(argv)?.args.config()
    }

    #[test]
    fn flags_map_to_the_config() {
        let c = config(&[]).unwrap();
        assert_eq!(c.mode, LoopMode::Closed { concurrency: 16 });
        assert_eq!(c.duration, Some(Duration::from_secs(10)));
        let c = config(&["--requests", "100"]).unwrap();
        assert_eq!((c.duration, c.requests), (None, Some(100)));
        let c = config(&["--rate", "50", "--max-in-flight", "8", "--duration", "1.5"]).unwrap();
        assert_eq!(c.mode, LoopMode::Open { rate: 50.0, max_in_flight: 8 });
        assert_eq!(c.duration, Some(Duration::from_millis(1500)));
        let c = config(&["--workload", "uniform", "--spread", "random", "--host", "a.b"]).unwrap();
        assert_eq!((c.workload, c.spread), (Workload::Uniform, Spread::Random));
        assert_eq!(c.host.as_deref(), Some("a.b"));
        let c = config(&["--reverse-at", "2", "--rotate-at", "3", "--rotate-by", "7"]).unwrap();
        assert_eq!(c.phases.reverse_at, Some(Duration::from_secs(2)));
        assert_eq!(c.phases.rotate_at, Some((Duration::from_secs(3), 7)));
        let c =
            config(&["--flash-at", "1", "--flash-object", "4", "--flash-share", "0.3"]).unwrap();
        let flash = c.phases.flash.unwrap();
        assert_eq!((flash.at, flash.object, flash.share), (Duration::from_secs(1), 4, 0.3));
    }

    #[test]
    fn bad_flags_are_refused() {
        assert!(config(&["--rate", "5", "--concurrency", "2"]).is_err(), "rate conflicts");
        assert!(config(&["--rotate-at", "3"]).is_err(), "rotate-at needs rotate-by");
        assert!(config(&["--duration", "-1"]).is_err(), "negative duration");
        assert!(config(&["--workload", "pareto"]).is_err());
        assert!(Cli::try_parse_from(["loadgen"]).is_err(), "a target is required");
    }
}
