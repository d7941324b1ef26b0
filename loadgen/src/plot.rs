//! The SVG plot: three panels over time (average hops, latency p50/p99, throughput), one line
//! per run and metric, each labelled in a legend.

use crate::config::LoadError;
use crate::report::{Report, Second};
use plotters::prelude::*;
use std::path::Path;

type Metric = fn(&Second) -> Option<f64>;
/// A panel: title, unit, and its (name, metric) lines.
type Panel<'a> = (&'a str, &'a str, Vec<(&'a str, Metric)>);

/// Draws `runs` (label, report) into an SVG at `path`, so several runs (for example chord,
/// passive and beehive) share one plot.
pub fn write_svg(runs: &[(&str, &Report)], path: impl AsRef<Path>) -> Result<(), LoadError> {
    let panels: [Panel; 3] = [
        ("average hops", "hops", vec![("hops", |s| s.avg_hops)]),
        (
            "latency",
            "ms",
            vec![
                ("p50", |s| Some(s.p50_ms).filter(|_| s.requests > 0)),
                ("p99", |s| Some(s.p99_ms).filter(|_| s.requests > 0)),
            ],
        ),
        ("throughput", "req/s", vec![("req/s", |s| Some(s.requests as f64))]),
    ];
    let palette = [RED, BLUE, GREEN, MAGENTA, CYAN, BLACK];
    let root = SVGBackend::new(path.as_ref(), (1000, 1000)).into_drawing_area();
    root.fill(&WHITE).map_err(drawing)?;
    let xmax = runs.iter().map(|(_, r)| r.series.len()).max().unwrap_or(1).max(1) as f64;
    for (area, (title, unit, metrics)) in root.split_evenly((3, 1)).iter().zip(panels) {
        let ymax = runs
            .iter()
            .flat_map(|(_, r)| r.series.iter())
            .flat_map(|s| metrics.iter().filter_map(move |(_, m)| m(s)))
            .fold(0.0f64, f64::max);
        // An empty panel (no hop headers, for example) still gets a readable axis.
        let ymax = if ymax > 0.0 { ymax * 1.1 } else { 1.0 };
        let mut chart = ChartBuilder::on(area)
            .caption(title, ("sans-serif", 18))
            .margin(10)
            .x_label_area_size(30)
            .y_label_area_size(60)
            .build_cartesian_2d(0.0..xmax, 0.0..ymax)
            .map_err(drawing)?;
        chart.configure_mesh().x_desc("seconds").y_desc(unit).draw().map_err(drawing)?;
        let mut color = palette.iter().cycle();
        for (label, report) in runs {
            for (name, metric) in &metrics {
                let c = *color.next().expect("cycled palette");
                let points: Vec<(f64, f64)> = report
                    .series
                    .iter()
                    .filter_map(|s| metric(s).map(|v| (s.t as f64 + 0.5, v)))
                    .collect();
                let series_label =
                    if metrics.len() > 1 { format!("{label} {name}") } else { label.to_string() };
                chart
                    .draw_series(LineSeries::new(points, c.stroke_width(2)))
                    .map_err(drawing)?
                    .label(series_label)
                    .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], c));
            }
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()
            .map_err(drawing)?;
    }
    root.present().map_err(drawing)?;
    Ok(())
}

/// plotters' errors carry the backend's error type; the message is what the user needs.
fn drawing(e: impl std::fmt::Display) -> LoadError {
    LoadError::Plot(e.to_string())
}
