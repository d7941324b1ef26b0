//! The progress bar: drawn on stderr only when it is a terminal (never in CI logs or pipes).

use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;
use std::time::Duration;

/// A progress bar over the run's duration (or its request count when there is no duration).
#[derive(Debug)]
pub struct Bar {
    bar: Option<ProgressBar>,
    by_time: bool,
}

impl Bar {
    pub fn new(wanted: bool, duration: Option<Duration>, requests: Option<u64>) -> Self {
        let duration = duration.filter(|d| !d.is_zero());
        if !wanted || !std::io::stderr().is_terminal() {
            return Self { bar: None, by_time: false };
        }
        let (len, by_time) = match (duration, requests) {
            (Some(d), _) => (d.as_millis() as u64, true),
            (None, Some(n)) => (n, false),
            (None, None) => (0, false),
        };
        let bar = ProgressBar::new(len);
        let template = if by_time {
            "{spinner} [{elapsed_precise}] {wide_bar} {msg}"
        } else {
            "{spinner} [{elapsed_precise}] {wide_bar} {pos}/{len} requests"
        };
        if let Ok(style) = ProgressStyle::with_template(template) {
            bar.set_style(style);
        }
        Self { bar: Some(bar), by_time }
    }

    pub fn update(&self, elapsed: Duration, completed: u64) {
        if let Some(bar) = &self.bar {
            if self.by_time {
                bar.set_position(elapsed.as_millis() as u64);
                bar.set_message(format!("{completed} requests"));
            } else {
                bar.set_position(completed);
            }
        }
    }

    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
