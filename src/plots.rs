//! SVG plots (plotters' SVG backend): latency CDFs, KV blocks and queue length over time,
//! throughput against p99 latency across a sweep, and cost against rate for a plan. Each
//! function returns the SVG text; callers write it with their other results.

use crate::error::{Error, Result};
use plotters::prelude::*;

/// One named line of (x, y) points.
pub struct Series<'a> {
    /// Legend label.
    pub label: &'a str,
    /// Points, in drawing order.
    pub points: Vec<(f64, f64)>,
}

/// The ten "tab10" colours, so that up to ten series are told apart.
const COLORS: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

fn err<E: std::fmt::Display>(e: E) -> Error {
    Error::failure(format!("cannot draw plot: {e}"))
}

fn bounds(series: &[Series], log_x: bool) -> (f64, f64, f64, f64) {
    let pts = series.iter().flat_map(|s| s.points.iter());
    let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    for &(x, y) in pts {
        if !x.is_finite() || !y.is_finite() || (log_x && x <= 0.0) {
            continue;
        }
        x0 = x0.min(x);
        x1 = x1.max(x);
        y0 = y0.min(y);
        y1 = y1.max(y);
    }
    if x0 > x1 {
        return (
            if log_x { 1.0 } else { 0.0 },
            1.0 + log_x as u8 as f64 * 9.0,
            0.0,
            1.0,
        );
    }
    if x1 <= x0 {
        x1 = x0 + 1.0;
    }
    if y1 <= y0 {
        y1 = y0 + 1.0;
    }
    (x0, x1, y0.min(0.0), y1 * 1.05)
}

/// A line chart of several series; `markers` draws points instead of lines.
pub fn line_chart(
    title: &str,
    x_desc: &str,
    y_desc: &str,
    series: &[Series],
    log_x: bool,
    markers: bool,
) -> Result<String> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (800, 500)).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let (x0, x1, y0, y1) = bounds(series, log_x);
        let mut builder = ChartBuilder::on(&root);
        builder
            .caption(title, ("sans-serif", 20))
            .margin(15)
            .x_label_area_size(45)
            .y_label_area_size(70);
        macro_rules! draw {
            ($chart:expr) => {{
                let mut chart = $chart;
                chart
                    .configure_mesh()
                    .x_desc(x_desc)
                    .y_desc(y_desc)
                    .draw()
                    .map_err(err)?;
                for (i, s) in series.iter().enumerate() {
                    let color = COLORS[i % COLORS.len()];
                    let pts: Vec<(f64, f64)> = s
                        .points
                        .iter()
                        .copied()
                        .filter(|&(x, y)| x.is_finite() && y.is_finite() && (!log_x || x > 0.0))
                        .collect();
                    if markers {
                        chart
                            .draw_series(pts.iter().map(|&p| Circle::new(p, 4, color.filled())))
                            .map_err(err)?
                            .label(s.label)
                            .legend(move |(x, y)| Circle::new((x + 10, y), 4, color.filled()));
                    } else {
                        chart
                            .draw_series(LineSeries::new(pts, color.stroke_width(2)))
                            .map_err(err)?
                            .label(s.label)
                            .legend(move |(x, y)| {
                                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
                            });
                    }
                }
                chart
                    .configure_series_labels()
                    .background_style(WHITE.mix(0.8))
                    .border_style(BLACK)
                    .draw()
                    .map_err(err)?;
            }};
        }
        if log_x {
            draw!(builder
                .build_cartesian_2d((x0..x1).log_scale(), y0..y1)
                .map_err(err)?);
        } else {
            draw!(builder.build_cartesian_2d(x0..x1, y0..y1).map_err(err)?);
        }
        root.present().map_err(err)?;
    }
    Ok(svg)
}

/// The empirical CDF of `values` as points (value, fraction at or below), at most `max`
/// points.
pub fn cdf(values: &[f64], max: usize) -> Vec<(f64, f64)> {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n == 0 {
        return Vec::new();
    }
    let step = n.div_ceil(max.max(1)).max(1);
    let mut out: Vec<(f64, f64)> = (0..n)
        .step_by(step)
        .map(|i| (v[i], (i + 1) as f64 / n as f64))
        .collect();
    out.push((v[n - 1], 1.0));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chart_is_svg_with_labels() {
        let s = line_chart(
            "t",
            "x axis",
            "y axis",
            &[Series {
                label: "first",
                points: vec![(1.0, 2.0), (2.0, 3.0)],
            }],
            true,
            false,
        )
        .unwrap();
        assert!(s.starts_with("<svg") && s.contains("x axis") && s.contains("first"));
    }

    #[test]
    fn cdf_ends_at_one_and_is_monotone() {
        let c = cdf(&[3.0, 1.0, 2.0, 2.0], 100);
        assert_eq!(c.first(), Some(&(1.0, 0.25)));
        assert_eq!(c.last(), Some(&(3.0, 1.0)));
        assert!(c.windows(2).all(|w| w[0].0 <= w[1].0 && w[0].1 <= w[1].1));
    }
}
