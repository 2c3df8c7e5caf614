//! The examples' line charts, drawn with `plotters` (its SVG backend only: no font or system
//! libraries, the text is left to the SVG viewer): solid or dashed lines, dots, dashed horizontal
//! reference lines, a linear or logarithmic y axis, axis labels, a title, and a legend placed
//! where it hides the least data.
//!
//! ```ignore
//! plot::Chart::new("training loss")
//!     .x_label("step")
//!     .y_label("MSE")
//!     .log_y(true)
//!     .line("LSTM", lstm_points)
//!     .hline("baseline", 0.167)
//!     .save("out/loss.svg")?;
//! ```
//!
//! Non-finite points (NaN losses, or values ≤ 0 on a log axis) are skipped, breaking the line.

use std::path::Path;

use plotters::coord::ranged1d::{AsRangedCoord, ValueFormatter};
use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
use plotters::element::DashedPathElement;
use plotters::prelude::*;

/// Colours cycled through by the series without an explicit colour (Tableau 10).
const PALETTE: [&str; 10] = [
    "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
    "#bcbd22", "#17becf",
];

/// Colours of the horizontal reference lines, in order.
const HLINE_COLOURS: [&str; 3] = ["#555555", "#a0a000", "#8c564b"];

/// Size of the SVG in pixels.
const SIZE: (u32, u32) = (800, 480);
const FONT: &str = "sans-serif";

/// How a series is drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    /// A solid line.
    Solid,
    /// A dashed line (reference lines, baselines).
    Dashed,
    /// Dots only, no line (sparse measurements).
    Dots,
}

/// One named line of a chart.
#[derive(Debug, Clone)]
struct Series {
    name: String,
    points: Vec<(f64, f64)>,
    style: Style,
    colour: RGBColor,
    /// A horizontal line across the whole x range at this y (its `points` are empty).
    hline: Option<f64>,
}

/// A line chart, written as a standalone SVG file.
#[derive(Debug, Clone)]
pub struct Chart {
    title: String,
    x_label: String,
    y_label: String,
    log_y: bool,
    series: Vec<Series>,
}

impl Chart {
    /// An empty 800 × 480 chart with a title.
    pub fn new(title: impl Into<String>) -> Self {
        Self {
            title: title.into(),
            x_label: String::new(),
            y_label: String::new(),
            log_y: false,
            series: Vec::new(),
        }
    }

    /// The label under the x axis.
    pub fn x_label(mut self, label: impl Into<String>) -> Self {
        self.x_label = label.into();
        self
    }

    /// The label beside the y axis.
    pub fn y_label(mut self, label: impl Into<String>) -> Self {
        self.y_label = label.into();
        self
    }

    /// A logarithmic (base 10) y axis.
    pub fn log_y(mut self, log: bool) -> Self {
        self.log_y = log;
        self
    }

    /// Adds a solid line in the next palette colour.
    pub fn line(self, name: impl Into<String>, points: Vec<(f64, f64)>) -> Self {
        self.series(name, points, Style::Solid, None)
    }

    /// Adds a series with an explicit style and optional colour (`"#rrggbb"`; without one, the
    /// palette colour of its place among the series that are not reference lines).
    pub fn series(
        mut self,
        name: impl Into<String>,
        points: Vec<(f64, f64)>,
        style: Style,
        colour: Option<&str>,
    ) -> Self {
        let n = self.series.iter().filter(|s| s.hline.is_none()).count();
        self.series.push(Series {
            name: name.into(),
            points,
            style,
            colour: rgb(colour.unwrap_or(PALETTE[n % PALETTE.len()])),
            hline: None,
        });
        self
    }

    /// Adds a dashed horizontal reference line (a baseline) across the x range.
    pub fn hline(mut self, name: impl Into<String>, y: f64) -> Self {
        let n = self.series.iter().filter(|s| s.hline.is_some()).count();
        self.series.push(Series {
            name: name.into(),
            points: Vec::new(),
            style: Style::Dashed,
            colour: rgb(HLINE_COLOURS[n % HLINE_COLOURS.len()]),
            hline: Some(y),
        });
        self
    }

    /// Writes the SVG to `path`, creating its parent folder.
    pub fn save(&self, path: impl AsRef<Path>) -> std::io::Result<()> {
        let path = path.as_ref();
        if let Some(dir) = path.parent() {
            if !dir.as_os_str().is_empty() {
                std::fs::create_dir_all(dir)?;
            }
        }
        let mut svg = String::new();
        {
            let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
            let (x0, x1, y0, y1) = self.ranges();
            if self.log_y {
                let (labelled, grid) = log_ticks(y0, y1);
                let y = (y0..y1).log_scale().with_key_points(labelled);
                self.draw(&root, x0..x1, y.with_light_points(grid))
            } else {
                self.draw(&root, x0..x1, y0..y1)
            }
            .and_then(|()| root.present())
            .map_err(|e| std::io::Error::other(format!("drawing {}: {e}", path.display())))?;
        }
        std::fs::write(path, svg)
    }

    fn usable(&self, y: f64) -> bool {
        y.is_finite() && (!self.log_y || y > 0.0)
    }

    /// The data ranges `(x0, x1, y0, y1)` with a 4% margin in y (a factor on a log axis).
    fn ranges(&self) -> (f64, f64, f64, f64) {
        let (mut x0, mut x1) = (f64::INFINITY, f64::NEG_INFINITY);
        let (mut y0, mut y1) = (f64::INFINITY, f64::NEG_INFINITY);
        for s in &self.series {
            for &(x, y) in s
                .points
                .iter()
                .filter(|p| p.0.is_finite() && self.usable(p.1))
            {
                (x0, x1) = (x0.min(x), x1.max(x));
                (y0, y1) = (y0.min(y), y1.max(y));
            }
            if let Some(y) = s.hline.filter(|&y| self.usable(y)) {
                (y0, y1) = (y0.min(y), y1.max(y));
            }
        }
        if !x0.is_finite() {
            (x0, x1) = (0.0, 1.0);
        }
        if x1 - x0 <= f64::EPSILON * x0.abs().max(1.0) {
            (x0, x1) = (x0 - 0.5, x1 + 0.5);
        }
        // The y range and its padding in axis units (log10 on a log axis).
        let axis = |y: f64| if self.log_y { y.log10() } else { y };
        let (mut a, mut b) = if y0.is_finite() {
            (axis(y0), axis(y1))
        } else {
            (0.0, 1.0)
        };
        if b - a <= f64::EPSILON * a.abs().max(1.0) {
            (a, b) = (a - 0.5, b + 0.5);
        }
        let pad = 0.04 * (b - a);
        let value = |v: f64| if self.log_y { 10f64.powf(v) } else { v };
        (x0, x1, value(a - pad), value(b + pad))
    }

    fn draw<Y>(
        &self,
        root: &DrawingArea<SVGBackend<'_>, Shift>,
        x: std::ops::Range<f64>,
        y: Y,
    ) -> Result<(), DrawingAreaErrorKind<std::io::Error>>
    where
        Y: AsRangedCoord<Value = f64>,
        Y::CoordDescType: ValueFormatter<f64>,
    {
        root.fill(&WHITE)?;
        let (x0, x1) = (x.start, x.end);
        let mut chart = ChartBuilder::on(root)
            .caption(&self.title, (FONT, 20).into_font().style(FontStyle::Bold))
            .margin(14)
            .x_label_area_size(44)
            .y_label_area_size(70)
            .build_cartesian_2d(x, y)?;
        let log_y = self.log_y;
        chart
            .configure_mesh()
            .x_desc(&self.x_label)
            .y_desc(&self.y_label)
            .label_style((FONT, 15))
            .axis_desc_style((FONT, 15))
            .bold_line_style(RGBColor(0xe5, 0xe5, 0xe5))
            // Light grid lines only at the log axis' 2×…9× multiples (set by `log_ticks`).
            .max_light_lines(0)
            .light_line_style(RGBColor(0xf3, 0xf3, 0xf3))
            .x_label_formatter(&|v| tick(*v, false))
            .y_label_formatter(&|v| tick(*v, log_y))
            .draw()?;

        for s in &self.series {
            let style = s.colour.stroke_width(2);
            if let Some(y) = s.hline.filter(|&y| self.usable(y)) {
                chart.draw_series(DashedLineSeries::new([(x0, y), (x1, y)], 6, 4, style))?;
            }
            for run in self.runs(&s.points) {
                if run.len() < 2 && s.style != Style::Dots {
                    continue;
                }
                match s.style {
                    Style::Solid => chart.draw_series(LineSeries::new(run, style))?,
                    Style::Dashed => chart.draw_series(DashedLineSeries::new(run, 6, 4, style))?,
                    Style::Dots => chart.draw_series(
                        run.into_iter()
                            .map(|p| Circle::new(p, 3, s.colour.filled())),
                    )?,
                };
            }
            // The legend entry, on an empty series.
            let (colour, kind) = (s.colour, s.style);
            chart
                .draw_series(std::iter::empty::<Circle<(f64, f64), i32>>())?
                .label(&s.name)
                .legend(move |(x, y)| match kind {
                    Style::Solid => PathElement::new([(x, y), (x + 20, y)], style).into_dyn(),
                    Style::Dashed => {
                        DashedPathElement::new([(x, y), (x + 20, y)], 6, 4, style).into_dyn()
                    }
                    Style::Dots => Circle::new((x + 10, y), 3, colour.filled()).into_dyn(),
                });
        }
        if self.series.is_empty() {
            return Ok(());
        }

        // The legend goes to the corner (or the middle of a side) whose box covers the fewest
        // data pixels: the points, and the segments between them sampled every 4 pixels.
        let font: TextStyle = (FONT, 15).into_font().into();
        let text_w = self
            .series
            .iter()
            .map(|s| root.estimate_text_size(&s.name, &font).map_or(0, |d| d.0))
            .max()
            .unwrap_or(0);
        let (lw, lh) = (text_w as f64 + 50.0, 20.0 * self.series.len() as f64 + 20.0);
        let area = chart.plotting_area().get_pixel_range();
        let (l, t) = (f64::from(area.0.start), f64::from(area.1.start));
        let (r, b) = (f64::from(area.0.end), f64::from(area.1.end));
        let mut pixels = Vec::new();
        for s in &self.series {
            let px = |p: (f64, f64)| {
                let (a, b) = chart.backend_coord(&p);
                (f64::from(a), f64::from(b))
            };
            if let Some(y) = s.hline.filter(|&y| self.usable(y)) {
                let ((a, yy), (b, _)) = (px((x0, y)), px((x1, y)));
                pixels.extend((0..=40).map(|i| (a + (b - a) * f64::from(i) / 40.0, yy)));
                continue;
            }
            for run in self.runs(&s.points) {
                let pts: Vec<_> = run.into_iter().map(px).collect();
                pixels.extend(&pts);
                for w in pts.windows(2).filter(|_| s.style != Style::Dots) {
                    let (dx, dy) = (w[1].0 - w[0].0, w[1].1 - w[0].1);
                    let n = ((dx * dx + dy * dy).sqrt() / 4.0).ceil().min(200.0) as usize;
                    pixels.extend((1..n).map(|i| {
                        let f = i as f64 / n as f64;
                        (w[0].0 + f * dx, w[0].1 + f * dy)
                    }));
                }
            }
        }
        use SeriesLabelPosition::*;
        let places = [
            (UpperRight, r - lw - 5.0, t + 5.0),
            (UpperLeft, l + 5.0, t + 5.0),
            (LowerRight, r - lw - 5.0, b - lh - 5.0),
            (LowerLeft, l + 5.0, b - lh - 5.0),
            (MiddleRight, r - lw - 5.0, (t + b - lh) / 2.0),
            (MiddleLeft, l + 5.0, (t + b - lh) / 2.0),
        ];
        let covered = |&(_, cx, cy): &(SeriesLabelPosition, f64, f64)| {
            let inside =
                |&&(x, y): &&(f64, f64)| x >= cx && x <= cx + lw && y >= cy && y <= cy + lh;
            pixels.iter().filter(inside).count()
        };
        let best = places
            .into_iter()
            .min_by_key(covered)
            .map_or(UpperRight, |p| p.0);
        chart
            .configure_series_labels()
            .position(best)
            .label_font((FONT, 15))
            .margin(10)
            .legend_area_size(24)
            .background_style(WHITE.mix(0.85))
            .border_style(RGBColor(0x99, 0x99, 0x99))
            .draw()
    }

    /// The runs of consecutive usable points of a line (a non-usable point breaks it).
    fn runs(&self, points: &[(f64, f64)]) -> Vec<Vec<(f64, f64)>> {
        points
            .split(|&(x, y)| !(x.is_finite() && self.usable(y)))
            .filter(|run| !run.is_empty())
            .map(<[_]>::to_vec)
            .collect()
    }
}

/// The ticks of a log axis over `[lo, hi]`: `(labelled, grid only)`. Every decade is labelled
/// (every few on a wide axis), 2× and 5× too when the axis spans at most two decades, every
/// multiple when it spans at most one (else those are grid lines, up to three decades); less
/// than ~half a decade gets linear ticks.
fn log_ticks(lo: f64, hi: f64) -> (Vec<f64>, Vec<f64>) {
    let decades = (hi / lo).log10();
    let stride = (decades / 8.0).ceil().max(1.0) as i32;
    let (mut labelled, mut grid) = (Vec::new(), Vec::new());
    for e in lo.log10().floor() as i32..=hi.log10().ceil() as i32 {
        for m in 1..10 {
            let v = f64::from(m) * 10f64.powi(e);
            if (lo..=hi).contains(&v) {
                match m {
                    1 if e.rem_euclid(stride) == 0 => labelled.push(v),
                    2 | 5 if decades <= 2.0 => labelled.push(v),
                    _ if decades <= 1.0 => labelled.push(v),
                    _ if decades <= 3.0 => grid.push(v),
                    _ => {}
                }
            }
        }
    }
    if decades < 0.6 || labelled.len() < 2 {
        labelled = RangedCoordf64::from(lo..hi).key_points(6);
    }
    (labelled, grid)
}

/// `"#rrggbb"` as a colour (grey if malformed).
fn rgb(hex: &str) -> RGBColor {
    let c = |i: usize| {
        hex.get(i..i + 2)
            .and_then(|s| u8::from_str_radix(s, 16).ok())
            .unwrap_or(0x80)
    };
    RGBColor(c(1), c(3), c(5))
}

/// A tick label: up to 4 significant digits without trailing zeros, or scientific notation for
/// very large or small values.
fn tick(v: f64, log: bool) -> String {
    if v == 0.0 {
        return "0".into();
    }
    let a = v.abs();
    if !(1e-4..1e6).contains(&a) {
        return if log {
            format!("{v:.0e}")
        } else {
            format!("{v:.1e}")
        };
    }
    let decimals = (3 - a.log10().floor() as i32).max(0) as usize;
    let s = format!("{v:.decimals$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

/// Averages consecutive points into at most `max_points` buckets (a smoothed curve that keeps the
/// SVG small). Non-finite values are skipped inside a bucket.
pub fn downsample(points: &[(f64, f64)], max_points: usize) -> Vec<(f64, f64)> {
    let max_points = max_points.max(1);
    let per = points.len().div_ceil(max_points).max(1);
    points
        .chunks(per)
        .filter_map(|c| {
            let good: Vec<_> = c.iter().filter(|p| p.1.is_finite()).collect();
            if good.is_empty() {
                return None;
            }
            let n = good.len() as f64;
            Some((
                good.iter().map(|p| p.0).sum::<f64>() / n,
                good.iter().map(|p| p.1).sum::<f64>() / n,
            ))
        })
        .collect()
}
