//! A tiny, dependency-free SVG line-chart writer for the examples: polylines, axes with tick
//! labels, a legend and a title, on a linear or logarithmic y axis.
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

use std::fmt::Write as _;
use std::path::Path;

/// Colours cycled through by the series without an explicit colour (Tableau 10).
const PALETTE: [&str; 10] = [
    "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
    "#bcbd22", "#17becf",
];

/// Colours of the horizontal reference lines, in order.
const HLINE_COLOURS: [&str; 3] = ["#555555", "#a0a000", "#8c564b"];

/// How a series is drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    /// A solid polyline.
    Solid,
    /// A dashed polyline (reference lines, baselines).
    Dashed,
    /// Dots only, no line (sparse measurements).
    Dots,
}

/// One named line of a chart.
#[derive(Debug, Clone)]
pub struct Series {
    name: String,
    points: Vec<(f64, f64)>,
    style: Style,
    colour: Option<String>,
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
    width: f64,
    height: f64,
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
            width: 800.0,
            height: 480.0,
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

    /// The size in pixels.
    pub fn size(mut self, width: f64, height: f64) -> Self {
        self.width = width.max(200.0);
        self.height = height.max(150.0);
        self
    }

    /// Adds a solid line in the next palette colour.
    pub fn line(self, name: impl Into<String>, points: Vec<(f64, f64)>) -> Self {
        self.series(name, points, Style::Solid, None)
    }

    /// Adds a series with an explicit style and optional colour (`"#rrggbb"`).
    pub fn series(
        mut self,
        name: impl Into<String>,
        points: Vec<(f64, f64)>,
        style: Style,
        colour: Option<&str>,
    ) -> Self {
        self.series.push(Series {
            name: name.into(),
            points,
            style,
            colour: colour.map(str::to_string),
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
            colour: Some(HLINE_COLOURS[n % HLINE_COLOURS.len()].into()),
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
        std::fs::write(path, self.to_svg())
    }

    fn usable(&self, y: f64) -> bool {
        y.is_finite() && (!self.log_y || y > 0.0)
    }

    fn ty(&self, y: f64) -> f64 {
        if self.log_y {
            y.log10()
        } else {
            y
        }
    }

    /// The data ranges `(x0, x1, y0, y1)`, y in axis units (log10 on a log axis).
    fn ranges(&self) -> (f64, f64, f64, f64) {
        let (mut x0, mut x1) = (f64::INFINITY, f64::NEG_INFINITY);
        let (mut y0, mut y1) = (f64::INFINITY, f64::NEG_INFINITY);
        for s in &self.series {
            for &(x, y) in &s.points {
                if x.is_finite() && self.usable(y) {
                    x0 = x0.min(x);
                    x1 = x1.max(x);
                    y0 = y0.min(self.ty(y));
                    y1 = y1.max(self.ty(y));
                }
            }
            if let Some(y) = s.hline.filter(|&y| self.usable(y)) {
                y0 = y0.min(self.ty(y));
                y1 = y1.max(self.ty(y));
            }
        }
        if !x0.is_finite() {
            (x0, x1) = (0.0, 1.0);
        }
        if !y0.is_finite() {
            (y0, y1) = (0.0, 1.0);
        }
        if x1 - x0 <= f64::EPSILON * x0.abs().max(1.0) {
            (x0, x1) = (x0 - 0.5, x1 + 0.5);
        }
        if y1 - y0 <= f64::EPSILON * y0.abs().max(1.0) {
            (y0, y1) = (y0 - 0.5, y1 + 0.5);
        }
        let pad = 0.04 * (y1 - y0);
        (x0, x1, y0 - pad, y1 + pad)
    }

    /// The chart as a standalone SVG document.
    pub fn to_svg(&self) -> String {
        let (w, h) = (self.width, self.height);
        let (left, right, top, bottom) = (78.0, 24.0, 44.0, 58.0);
        let (pw, ph) = (w - left - right, h - top - bottom);
        let (x0, x1, y0, y1) = self.ranges();
        let px = |x: f64| left + (x - x0) / (x1 - x0) * pw;
        let py = |y: f64| top + ph - (y - y0) / (y1 - y0) * ph;

        let mut svg = String::new();
        let _ = writeln!(
            svg,
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" font-family="Helvetica, Arial, sans-serif" font-size="12">"#
        );
        let _ = writeln!(svg, r#"<rect width="{w}" height="{h}" fill="white"/>"#);
        let _ = writeln!(
            svg,
            r#"<text x="{}" y="26" text-anchor="middle" font-size="16" font-weight="bold">{}</text>"#,
            w / 2.0,
            escape(&self.title)
        );

        // Grid, ticks and tick labels.
        let x_ticks = linear_ticks(x0, x1, 8);
        let y_ticks = if self.log_y {
            log_ticks(y0, y1)
        } else {
            linear_ticks(y0, y1, 7)
                .into_iter()
                .map(|(v, l)| (v, l, true))
                .collect()
        };
        for (v, label) in &x_ticks {
            let x = px(*v);
            let _ = writeln!(
                svg,
                r##"<line x1="{x:.1}" y1="{top}" x2="{x:.1}" y2="{:.1}" stroke="#e5e5e5"/>"##,
                top + ph
            );
            let _ = writeln!(
                svg,
                r##"<line x1="{x:.1}" y1="{:.1}" x2="{x:.1}" y2="{:.1}" stroke="#333"/>"##,
                top + ph,
                top + ph + 5.0
            );
            let _ = writeln!(
                svg,
                r#"<text x="{x:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
                top + ph + 19.0,
                escape(label)
            );
        }
        for (v, label, major) in &y_ticks {
            let y = py(*v);
            let grid = if *major { "#e5e5e5" } else { "#f3f3f3" };
            let _ = writeln!(
                svg,
                r#"<line x1="{left}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="{grid}"/>"#,
                left + pw
            );
            let tick = if *major { 5.0 } else { 3.0 };
            let _ = writeln!(
                svg,
                r##"<line x1="{:.1}" y1="{y:.1}" x2="{left}" y2="{y:.1}" stroke="#333"/>"##,
                left - tick
            );
            if !label.is_empty() {
                let _ = writeln!(
                    svg,
                    r#"<text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"#,
                    left - 8.0,
                    y + 4.0,
                    escape(label)
                );
            }
        }
        // Axes.
        let _ = writeln!(
            svg,
            r##"<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="none" stroke="#333"/>"##
        );
        let _ = writeln!(
            svg,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
            left + pw / 2.0,
            h - 14.0,
            escape(&self.x_label)
        );
        let _ = writeln!(
            svg,
            r#"<text transform="translate(18 {:.1}) rotate(-90)" text-anchor="middle">{}</text>"#,
            top + ph / 2.0,
            escape(&self.y_label)
        );

        // Data, clipped to the plot area.
        let _ = writeln!(
            svg,
            r#"<clipPath id="plot"><rect x="{left}" y="{top}" width="{pw}" height="{ph}"/></clipPath>"#
        );
        let _ = writeln!(svg, r#"<g clip-path="url(#plot)" fill="none">"#);
        let mut colours = Vec::with_capacity(self.series.len());
        let mut next = 0;
        for s in &self.series {
            let colour = s.colour.clone().unwrap_or_else(|| {
                next += 1;
                PALETTE[(next - 1) % PALETTE.len()].to_string()
            });
            let dash = if s.style == Style::Dashed {
                r#" stroke-dasharray="6 4""#
            } else {
                ""
            };
            if let Some(y) = s.hline.filter(|&y| self.usable(y)) {
                let yy = py(self.ty(y));
                let _ = writeln!(
                    svg,
                    r#"<line x1="{left}" y1="{yy:.1}" x2="{:.1}" y2="{yy:.1}" stroke="{colour}" stroke-width="1.5"{dash}/>"#,
                    left + pw
                );
            } else if s.style == Style::Dots {
                for &(x, y) in &s.points {
                    if x.is_finite() && self.usable(y) {
                        let _ = writeln!(
                            svg,
                            r#"<circle cx="{:.1}" cy="{:.1}" r="3" fill="{colour}"/>"#,
                            px(x),
                            py(self.ty(y))
                        );
                    }
                }
            } else {
                // One polyline per run of usable points.
                let mut run: Vec<String> = Vec::new();
                let flush = |run: &mut Vec<String>, svg: &mut String| {
                    if run.len() >= 2 {
                        let _ = writeln!(
                            svg,
                            r#"<polyline points="{}" stroke="{colour}" stroke-width="1.6" stroke-linejoin="round"{dash}/>"#,
                            run.join(" ")
                        );
                    }
                    run.clear();
                };
                for &(x, y) in &s.points {
                    if x.is_finite() && self.usable(y) {
                        run.push(format!("{:.1},{:.1}", px(x), py(self.ty(y))));
                    } else {
                        flush(&mut run, &mut svg);
                    }
                }
                flush(&mut run, &mut svg);
            }
            colours.push(colour);
        }
        let _ = writeln!(svg, "</g>");

        // Legend, inside the plot, where it hides the least.
        if !self.series.is_empty() {
            let longest = self
                .series
                .iter()
                .map(|s| s.name.chars().count())
                .max()
                .unwrap_or(0) as f64;
            let lw = 40.0 + 6.8 * longest;
            let lh = 8.0 + 18.0 * self.series.len() as f64;
            // The place (corners, then the middles of the sides) whose box covers the least of
            // the data: points, and the segments between them sampled every 4 pixels.
            let places = [
                (left + pw - lw - 8.0, top + 8.0),
                (left + 8.0, top + 8.0),
                (left + pw - lw - 8.0, top + ph - lh - 8.0),
                (left + 8.0, top + ph - lh - 8.0),
                (left + pw - lw - 8.0, top + (ph - lh) / 2.0),
                (left + 8.0, top + (ph - lh) / 2.0),
            ];
            let mut pixels: Vec<(f64, f64)> = Vec::new();
            for s in &self.series {
                if let Some(y) = s.hline.filter(|&y| self.usable(y)) {
                    let yy = py(self.ty(y));
                    pixels.extend((0..=40).map(|i| (left + pw * f64::from(i) / 40.0, yy)));
                    continue;
                }
                let pts: Vec<(f64, f64)> = s
                    .points
                    .iter()
                    .filter(|&&(x, y)| x.is_finite() && self.usable(y))
                    .map(|&(x, y)| (px(x), py(self.ty(y))))
                    .collect();
                pixels.extend(pts.iter().copied());
                if s.style != Style::Dots {
                    for w in pts.windows(2) {
                        let (dx, dy) = (w[1].0 - w[0].0, w[1].1 - w[0].1);
                        let n = ((dx * dx + dy * dy).sqrt() / 4.0).ceil().min(200.0) as usize;
                        for i in 1..n {
                            let f = i as f64 / n as f64;
                            pixels.push((w[0].0 + f * dx, w[0].1 + f * dy));
                        }
                    }
                }
            }
            let covered = |&(cx, cy): &(f64, f64)| {
                pixels
                    .iter()
                    .filter(|&&(x, y)| x >= cx && x <= cx + lw && y >= cy && y <= cy + lh)
                    .count()
            };
            let (lx, ly) = places
                .iter()
                .copied()
                .min_by_key(|c| covered(c))
                .unwrap_or(places[0]);
            let _ = writeln!(
                svg,
                r##"<rect x="{lx:.1}" y="{ly:.1}" width="{lw:.1}" height="{lh:.1}" fill="white" fill-opacity="0.85" stroke="#999"/>"##
            );
            for (i, (s, colour)) in self.series.iter().zip(&colours).enumerate() {
                let y = ly + 16.0 + 18.0 * i as f64;
                if s.style == Style::Dots {
                    let _ = writeln!(
                        svg,
                        r#"<circle cx="{:.1}" cy="{:.1}" r="3" fill="{colour}"/>"#,
                        lx + 19.0,
                        y - 4.0
                    );
                } else {
                    let dash = if s.style == Style::Dashed {
                        r#" stroke-dasharray="6 4""#
                    } else {
                        ""
                    };
                    let _ = writeln!(
                        svg,
                        r#"<line x1="{:.1}" y1="{:.1}" x2="{:.1}" y2="{:.1}" stroke="{colour}" stroke-width="2"{dash}/>"#,
                        lx + 8.0,
                        y - 4.0,
                        lx + 30.0,
                        y - 4.0
                    );
                }
                let _ = writeln!(
                    svg,
                    r#"<text x="{:.1}" y="{y:.1}">{}</text>"#,
                    lx + 36.0,
                    escape(&s.name)
                );
            }
        }
        svg.push_str("</svg>\n");
        svg
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

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A "nice" step (1, 2 or 5 × 10^k) for about `n` intervals over `span`.
fn nice_step(span: f64, n: usize) -> f64 {
    let raw = span / n.max(1) as f64;
    let mag = 10f64.powf(raw.log10().floor());
    let f = raw / mag;
    let nice = if f <= 1.0 {
        1.0
    } else if f <= 2.0 {
        2.0
    } else if f <= 5.0 {
        5.0
    } else {
        10.0
    };
    nice * mag
}

/// Ticks at multiples of a nice step within `[lo, hi]`, with labels.
fn linear_ticks(lo: f64, hi: f64, n: usize) -> Vec<(f64, String)> {
    let step = nice_step(hi - lo, n);
    let decimals = if step >= 1.0 {
        0
    } else {
        (-step.log10().floor()) as usize
    };
    let first = (lo / step).ceil() as i64;
    let last = (hi / step).floor() as i64;
    (first..=last)
        .map(|k| {
            let v = k as f64 * step;
            let v = if v.abs() < step * 1e-9 { 0.0 } else { v };
            (v, format_tick(v, decimals))
        })
        .collect()
}

fn format_tick(v: f64, decimals: usize) -> String {
    if v != 0.0 && (v.abs() >= 1e6 || v.abs() < 1e-4) {
        format!("{v:.1e}")
    } else {
        format!("{v:.decimals$}")
    }
}

/// Ticks of a log10 axis spanning `[lo, hi]` (in log10 units): `(position, label, major)`.
/// Every decade is major; 2× and 5× minors are labelled when the axis spans few decades.
fn log_ticks(lo: f64, hi: f64) -> Vec<(f64, String, bool)> {
    let decades = hi - lo;
    if decades < 0.6 {
        // Less than a decade: linear ticks in value space, placed on the log axis.
        let (a, b) = (10f64.powf(lo), 10f64.powf(hi));
        return linear_ticks(a, b, 5)
            .into_iter()
            .filter(|(v, _)| *v > 0.0)
            .map(|(v, l)| (v.log10(), l, true))
            .collect();
    }
    let stride = (decades / 8.0).ceil().max(1.0) as i64;
    let mut ticks = Vec::new();
    for e in (lo.floor() as i64)..=(hi.ceil() as i64) {
        for (m, major) in [(1.0, true), (2.0, false), (5.0, false)] {
            let v = m * 10f64.powi(e as i32);
            let pos = v.log10();
            if pos < lo || pos > hi {
                continue;
            }
            if major && e.rem_euclid(stride) != 0 {
                continue;
            }
            if !major && decades > 3.0 {
                continue;
            }
            let label = if major || decades <= 2.0 {
                format_log(v)
            } else {
                String::new()
            };
            ticks.push((pos, label, major));
        }
    }
    ticks
}

fn format_log(v: f64) -> String {
    if (1e-3..1e5).contains(&v) {
        let decimals = if v >= 1.0 {
            0
        } else {
            (-v.log10().floor()) as usize
        };
        format!("{v:.decimals$}")
    } else {
        format!("{v:.0e}")
    }
}
