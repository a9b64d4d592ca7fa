//! Line charts written as SVG files with `plotters`' SVG backend, shared by the benchmark
//! (`#[path = "support/chart.rs"] mod chart;` in `benches/sweep.rs`) and the examples
//! (`#[path = "../benches/support/chart.rs"] mod chart;`). It depends on nothing but
//! `plotters` and `std`.
//!
//! Text needs no font feature. `plotters` is built here without `ttf`/`ab_glyph`, so it uses
//! its built-in font stand-in: the layout (tick label room, caption height, ...) comes from a
//! width estimate (0.7 em per byte), and the SVG backend writes every string, rotated axis
//! descriptions included, as an SVG `<text>` element (`font-family="sans-serif"`), so the
//! viewer picks and draws the actual font. That only holds for backends that draw text
//! themselves as SVG does: a bitmap backend would need the `ttf` or `ab_glyph` feature, and
//! without one `plotters` panics on its first string.
//!
//! Layout: one panel per [`LineChart`], 720 × 320 pixels ([`PANEL`]), stacked from top to
//! bottom in one SVG; each panel has its title above the plot, tick labels and axis
//! descriptions, and a legend to the right of the plot (one line + marker sample per series,
//! dashed for a dashed series).

// Included by several crates, each using its own part of the module.
#![allow(dead_code)]

use std::error::Error;
use std::path::Path;

use plotters::coord::combinators::{BindKeyPoints, LogCoord, WithKeyPoints};
use plotters::coord::ranged1d::{AsRangedCoord, Ranged, ValueFormatter};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

/// The size of one chart panel, in pixels (width, height).
pub const PANEL: (u32, u32) = (720, 320);

/// Series colours, in order (matplotlib's `tab10`); the 11th series reuses the first.
const COLORS: [RGBColor; 10] = [
    RGBColor(0x1f, 0x77, 0xb4),
    RGBColor(0xff, 0x7f, 0x0e),
    RGBColor(0x2c, 0xa0, 0x2c),
    RGBColor(0xd6, 0x27, 0x28),
    RGBColor(0x94, 0x67, 0xbd),
    RGBColor(0x8c, 0x56, 0x4b),
    RGBColor(0xe3, 0x77, 0xc2),
    RGBColor(0x7f, 0x7f, 0x7f),
    RGBColor(0xbc, 0xbd, 0x22),
    RGBColor(0x17, 0xbe, 0xcf),
];

/// One line of a chart: its legend entry and its points `(x, y)`, drawn in the given order
/// (sort them by `x` first for a curve).
#[derive(Debug, Clone)]
pub struct Series {
    /// The legend entry.
    pub name: String,
    /// The points, joined in this order and each marked with a dot.
    pub points: Vec<(f64, f64)>,
    /// Draw the line dashed (the markers stay whole).
    pub dashed: bool,
}

impl Series {
    /// A solid series.
    pub fn new(name: impl Into<String>, points: Vec<(f64, f64)>) -> Self {
        Series {
            name: name.into(),
            points,
            dashed: false,
        }
    }

    /// The same series, dashed.
    pub fn dashed(mut self) -> Self {
        self.dashed = true;
        self
    }
}

/// One chart panel: a title, axis descriptions, linear or logarithmic axes and its series.
///
/// Axis ranges come from the data: a logarithmic axis spans the positive values with a
/// little room on both sides (points with a value ≤ 0 on it are left out, as are
/// non-finite ones everywhere); a linear axis of values ≥ 0 starts at 0 and ends 10 %
/// above the largest value, one with negative values is padded by 5 % on both sides.
#[derive(Debug, Clone)]
pub struct LineChart {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    pub log_x: bool,
    pub log_y: bool,
    pub series: Vec<Series>,
}

/// Writes one line chart to the SVG file `path` ([`PANEL`] pixels): one line with dot
/// markers per `(name, points)` entry of `series`, a legend of the names, `title` above,
/// `x_label` and `y_label` along the axes, each axis logarithmic where `log_x` / `log_y`
/// says so. See [`LineChart`] for the axis ranges and [`write_svg`] for several panels in
/// one file.
pub fn line_chart_svg(
    path: &Path,
    title: &str,
    x_label: &str,
    y_label: &str,
    log_x: bool,
    log_y: bool,
    series: &[(String, Vec<(f64, f64)>)],
) -> Result<(), Box<dyn Error>> {
    let chart = LineChart {
        title: title.into(),
        x_label: x_label.into(),
        y_label: y_label.into(),
        log_x,
        log_y,
        series: series
            .iter()
            .map(|(name, points)| Series::new(name.clone(), points.clone()))
            .collect(),
    };
    write_svg(path, &[chart])
}

/// Writes `charts` to the SVG file `path`, one [`PANEL`]-sized panel each, stacked from
/// top to bottom (`plotters`' `split_evenly`). With no chart the file holds one panel
/// saying "no data".
pub fn write_svg(path: &Path, charts: &[LineChart]) -> Result<(), Box<dyn Error>> {
    let (w, h) = PANEL;
    let panels = charts.len().max(1);
    let root = SVGBackend::new(path, (w, h * panels as u32)).into_drawing_area();
    root.fill(&WHITE)?;
    if charts.is_empty() {
        let style = TextStyle::from(("sans-serif", 16).into_font())
            .pos(Pos::new(HPos::Center, VPos::Center));
        root.draw(&Text::new("no data", (w as i32 / 2, h as i32 / 2), style))?;
    }
    for (chart, area) in charts.iter().zip(root.split_evenly((panels, 1))) {
        chart.draw(&area)?;
    }
    root.present()?;
    Ok(())
}

impl LineChart {
    /// Draws the chart on `area` (any `plotters` backend that can draw text; see the
    /// module's documentation).
    pub fn draw<DB>(&self, area: &DrawingArea<DB, Shift>) -> Result<(), Box<dyn Error>>
    where
        DB: DrawingBackend,
        DB::ErrorType: 'static,
    {
        let xs = self
            .series
            .iter()
            .flat_map(|s| s.points.iter().map(|p| p.0));
        let ys = self
            .series
            .iter()
            .flat_map(|s| s.points.iter().map(|p| p.1));
        let (x0, x1) = bounds(xs.clone(), self.log_x);
        let (y0, y1) = bounds(ys, self.log_y);
        // The tick labels' scale: the larger end of each axis, by magnitude.
        let spans = (x0.abs().max(x1.abs()), y0.abs().max(y1.abs()));
        match (self.log_x, self.log_y) {
            (false, false) => self.plot(area, spans, x0..x1, y0..y1),
            (true, false) => self.plot(area, spans, log_x_axis(x0..x1, xs), y0..y1),
            (false, true) => self.plot(area, spans, x0..x1, (y0..y1).log_scale()),
            (true, true) => self.plot(area, spans, log_x_axis(x0..x1, xs), (y0..y1).log_scale()),
        }
    }

    fn plot<DB, X, Y>(
        &self,
        area: &DrawingArea<DB, Shift>,
        (x_span, y_span): (f64, f64),
        x: X,
        y: Y,
    ) -> Result<(), Box<dyn Error>>
    where
        DB: DrawingBackend,
        DB::ErrorType: 'static,
        X: AsRangedCoord<Value = f64>,
        Y: AsRangedCoord<Value = f64>,
        X::CoordDescType: ValueFormatter<f64>,
        Y::CoordDescType: ValueFormatter<f64>,
    {
        // The legend gets a strip to the right of the plot, as wide as its longest entry.
        let longest = self.series.iter().map(|s| s.name.len()).max().unwrap_or(0);
        let legend_w = (45 + 7 * longest as u32).min(area.dim_in_pixel().0 / 2);
        let (plot_area, legend_area) =
            area.split_horizontally(area.dim_in_pixel().0.saturating_sub(legend_w));

        let mut chart = ChartBuilder::on(&plot_area)
            .caption(
                &self.title,
                ("sans-serif", 16).into_font().style(FontStyle::Bold),
            )
            .margin(10)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d(x, y)?;
        chart
            .configure_mesh()
            .x_desc(self.x_label.as_str())
            .y_desc(self.y_label.as_str())
            .label_style(("sans-serif", 14))
            .axis_desc_style(("sans-serif", 15))
            .x_label_formatter(&|v| fmt_num(*v, x_span))
            .y_label_formatter(&|v| fmt_num(*v, y_span))
            .bold_line_style(BLACK.mix(0.12))
            .light_line_style(BLACK.mix(0.04))
            .draw()?;

        let (log_x, log_y) = (self.log_x, self.log_y);
        let plottable = |&(x, y): &(f64, f64)| {
            x.is_finite() && y.is_finite() && (!log_x || x > 0.0) && (!log_y || y > 0.0)
        };
        for (k, s) in self.series.iter().enumerate() {
            let color = COLORS[k % COLORS.len()];
            let line = color.stroke_width(2);
            let points: Vec<(f64, f64)> = s.points.iter().copied().filter(plottable).collect();
            if s.dashed {
                chart.draw_series(DashedLineSeries::new(points.iter().copied(), 6, 4, line))?;
            } else {
                chart.draw_series(LineSeries::new(points.iter().copied(), line))?;
            }
            chart.draw_series(points.iter().map(|&p| Circle::new(p, 3, color.filled())))?;
        }

        // The legend: a line sample (dashed: two dashes) with a marker, then the name.
        let text =
            TextStyle::from(("sans-serif", 13).into_font()).pos(Pos::new(HPos::Left, VPos::Center));
        for (k, s) in self.series.iter().enumerate() {
            let color = COLORS[k % COLORS.len()];
            let line = color.stroke_width(2);
            let y = 40 + 16 * k as i32;
            if s.dashed {
                legend_area.draw(&PathElement::new(vec![(3, y), (9, y)], line))?;
                legend_area.draw(&PathElement::new(vec![(21, y), (27, y)], line))?;
            } else {
                legend_area.draw(&PathElement::new(vec![(3, y), (27, y)], line))?;
            }
            legend_area.draw(&Circle::new((15, y), 3, color.filled()))?;
            legend_area.draw(&Text::new(s.name.as_str(), (33, y), text.clone()))?;
        }
        Ok(())
    }
}

/// A logarithmic x axis over `range`: its ticks at the distinct positive values of `xs`
/// where there are 1 to 12 of them (the sizes a sweep went through), else at
/// `plotters`' own logarithmic key points; light grid lines at the latter either way.
fn log_x_axis(
    range: std::ops::Range<f64>,
    xs: impl Iterator<Item = f64>,
) -> WithKeyPoints<LogCoord<f64>> {
    let coord: LogCoord<f64> = range.clone().log_scale().into();
    let light = coord.key_points(30);
    let mut ticks: Vec<f64> = xs.filter(|x| x.is_finite() && *x > 0.0).collect();
    ticks.sort_by(f64::total_cmp);
    ticks.dedup();
    if ticks.is_empty() || ticks.len() > 12 {
        ticks = coord.key_points(10);
    }
    range
        .log_scale()
        .with_key_points(ticks)
        .with_light_points(light)
}

/// An axis range holding every plottable value (see [`LineChart`]).
fn bounds(values: impl Iterator<Item = f64>, log: bool) -> (f64, f64) {
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for v in values.filter(|v| v.is_finite() && (!log || *v > 0.0)) {
        lo = lo.min(v);
        hi = hi.max(v);
    }
    if lo > hi {
        return if log { (1.0, 10.0) } else { (0.0, 1.0) };
    }
    if log {
        if lo == hi {
            return (lo / 2.0, hi * 2.0);
        }
        let pad = (hi / lo).powf(0.06);
        (lo / pad, hi * pad)
    } else if lo >= 0.0 {
        (0.0, if hi > 0.0 { hi * 1.1 } else { 1.0 })
    } else {
        let pad = if hi > lo { (hi - lo) * 0.05 } else { 1.0 };
        (lo - pad, hi + pad)
    }
}

/// A tick label on an axis reaching `span` (by magnitude): whole numbers without
/// decimals, others to three significant digits, very large or small ones in exponent
/// form, and rounding noise of a linear axis' zero (below `span`·10⁻⁹) as 0.
fn fmt_num(v: f64, span: f64) -> String {
    let a = v.abs();
    if a <= span * 1e-9 {
        "0".into()
    } else if !(1e-3..1e9).contains(&a) {
        format!("{v:.2e}")
    } else if (v - v.round()).abs() <= 1e-9 * a {
        format!("{}", v.round())
    } else {
        let decimals = (2 - a.log10().floor() as i32).max(0) as usize;
        let s = format!("{v:.decimals$}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}
