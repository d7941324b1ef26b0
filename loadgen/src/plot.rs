//! SVG plots: [`draw`] lays out panels of labelled lines over a shared time axis (the load
//! report here, the simulator's experiment in the `beehive` binary); [`write_svg`] is the
//! load report's three panels (average hops, latency p50/p99, throughput), one line per run
//! and metric.

use crate::config::LoadError;
use crate::report::{Report, Second};
use plotters::prelude::*;
use std::path::Path;

/// One line of a panel.
#[derive(Debug, Clone)]
pub struct Line {
    pub label: String,
    pub points: Vec<(f64, f64)>,
}

/// One panel: its title, the axes' descriptions, and its lines.
#[derive(Debug, Clone)]
pub struct Panel {
    pub title: String,
    pub x_desc: String,
    pub y_desc: String,
    pub lines: Vec<Line>,
}

/// Draws `panels` into an SVG at `path`, `grid` = (rows, columns) of them, on one x range.
pub fn draw(
    path: impl AsRef<Path>,
    size: (u32, u32),
    grid: (usize, usize),
    panels: &[Panel],
) -> Result<(), LoadError> {
    let palette = [RED, BLUE, GREEN, MAGENTA, CYAN, BLACK];
    let root = SVGBackend::new(path.as_ref(), size).into_drawing_area();
    root.fill(&WHITE).map_err(drawing)?;
    let points = || panels.iter().flat_map(|p| p.lines.iter()).flat_map(|l| l.points.iter());
    let xmax = points().map(|(x, _)| *x).fold(1.0f64, f64::max);
    for (area, panel) in root.split_evenly(grid).iter().zip(panels) {
        let ymax = panel
            .lines
            .iter()
            .flat_map(|l| l.points.iter().map(|(_, y)| *y))
            .fold(0.0f64, f64::max);
        // An empty panel (no hop headers, for example) still gets a readable axis.
        let ymax = if ymax > 0.0 { ymax * 1.1 } else { 1.0 };
        let mut chart = ChartBuilder::on(area)
            .caption(&panel.title, ("sans-serif", 18))
            .margin(10)
            .x_label_area_size(30)
            .y_label_area_size(60)
            .build_cartesian_2d(0.0..xmax, 0.0..ymax)
            .map_err(drawing)?;
        chart
            .configure_mesh()
            .x_desc(&panel.x_desc)
            .y_desc(&panel.y_desc)
            .draw()
            .map_err(drawing)?;
        for (line, c) in panel.lines.iter().zip(palette.iter().cycle()) {
            let c = *c;
            chart
                .draw_series(LineSeries::new(line.points.clone(), c.stroke_width(2)))
                .map_err(drawing)?
                .label(line.label.clone())
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], c));
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

type Metric = fn(&Second) -> Option<f64>;
/// A report panel: title, unit, and its (name, metric) lines.
type Metrics<'a> = (&'a str, &'a str, Vec<(&'a str, Metric)>);

/// Draws `runs` (label, report) into an SVG at `path`, so several runs (for example chord,
/// passive and beehive) share one plot.
pub fn write_svg(runs: &[(&str, &Report)], path: impl AsRef<Path>) -> Result<(), LoadError> {
    let panels: [Metrics; 3] = [
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
    let panels: Vec<Panel> = panels
        .into_iter()
        .map(|(title, unit, metrics)| Panel {
            title: title.to_string(),
            x_desc: "seconds".to_string(),
            y_desc: unit.to_string(),
            lines: runs
                .iter()
                .flat_map(|(label, report)| {
                    let several = metrics.len() > 1;
                    metrics.iter().map(move |(name, metric)| Line {
                        label: if several { format!("{label} {name}") } else { label.to_string() },
                        points: report
                            .series
                            .iter()
                            .filter_map(|s| metric(s).map(|v| (s.t as f64 + 0.5, v)))
                            .collect(),
                    })
                })
                .collect(),
        })
        .collect();
    draw(path, (1000, 1000), (3, 1), &panels)
}

/// plotters' errors carry the backend's error type; the message is what the user needs.
fn drawing(e: impl std::fmt::Display) -> LoadError {
    LoadError::Plot(e.to_string())
}
