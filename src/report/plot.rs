//! PNG figures. Each function checks its input, draws into an in-memory RGB buffer with
//! plotters, encodes the PNG itself and writes it atomically (temp file + rename), so a
//! bad path fails with an [`ReportError::Io`] naming it and no half-written image remains.
//!
//! Text comes from the vendored DejaVu Sans registered with plotters' `ab_glyph` backend:
//! no fontconfig or system fonts are needed.

use super::{write_atomic_report as write_atomic, ReportError};
use ndarray::ArrayView2;
use plotters::coord::Shift;
use plotters::element::DashedPathElement;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use plotters::style::{register_font, FontStyle, FontTransform};
use std::error::Error;
use std::path::Path;
use std::sync::OnceLock;

static FONT_BYTES: &[u8] = include_bytes!("../../assets/fonts/DejaVuSans.ttf");
const FONT: &str = "sans-serif";

/// Colours for classes 0–9 (matplotlib's tab10: distinct, and readable by most
/// colour-blind readers).
const PALETTE: [RGBColor; 10] = [
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
const BASELINE_COLOURS: [RGBColor; 4] = [
    RGBColor(0, 0, 0),
    RGBColor(110, 110, 110),
    RGBColor(150, 40, 40),
    RGBColor(40, 40, 150),
];

fn colour(i: usize) -> RGBColor {
    PALETTE[i % PALETTE.len()]
}

/// One line of [`plot_accuracy_vs_time`]: `points` are (time in ms, mean accuracy, sd),
/// accuracies as fractions in [0, 1] (plotted as %).
#[derive(Clone, Debug, PartialEq)]
pub struct Series {
    pub label: String,
    pub points: Vec<(f64, f64, f64)>,
}

/// One panel of [`plot_histograms`].
#[derive(Clone, Debug, PartialEq)]
pub struct HistPanel {
    pub title: String,
    pub values: Vec<f32>,
    pub bins: usize,
}

type DrawResult = Result<(), Box<dyn Error>>;
type Area<'a> = DrawingArea<BitMapBackend<'a>, Shift>;

fn ensure_font() -> Result<(), ReportError> {
    static REGISTERED: OnceLock<Result<(), String>> = OnceLock::new();
    REGISTERED
        .get_or_init(|| {
            // Plotters' defaults ask for these families; one face serves them all.
            for family in [FONT, "serif", "monospace"] {
                register_font(family, FontStyle::Normal, FONT_BYTES)
                    .map_err(|_| "assets/fonts/DejaVuSans.ttf is not a valid font".to_string())?;
            }
            Ok(())
        })
        .clone()
        .map_err(ReportError::Font)
}

/// Draws with `draw` on a white `size` canvas and writes it as a PNG at `path`.
fn render_png(
    path: &Path,
    size: (u32, u32),
    draw: impl FnOnce(&Area) -> DrawResult,
) -> Result<(), ReportError> {
    ensure_font()?;
    let plot_err = |e: &dyn std::fmt::Display| ReportError::Plot {
        path: path.to_path_buf(),
        message: e.to_string(),
    };
    let mut buf = vec![255u8; size.0 as usize * size.1 as usize * 3];
    {
        let root = BitMapBackend::with_buffer(&mut buf, size).into_drawing_area();
        root.fill(&WHITE).map_err(|e| plot_err(&e))?;
        draw(&root).map_err(|e| plot_err(&e))?;
        root.present().map_err(|e| plot_err(&e))?;
    }
    let mut png_bytes = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut png_bytes, size.0, size.1);
        enc.set_color(png::ColorType::Rgb);
        enc.set_depth(png::BitDepth::Eight);
        // Figures are mostly flat colour: the best deflate level shrinks them several-fold.
        enc.set_compression(png::Compression::Best);
        let mut w = enc.write_header().map_err(|e| plot_err(&e))?;
        w.write_image_data(&buf).map_err(|e| plot_err(&e))?;
    }
    write_atomic(path, &png_bytes)
}

fn invalid(msg: impl Into<String>) -> ReportError {
    ReportError::InvalidInput(msg.into())
}

/// `[min, max]` of finite values, padded by 5% (and widened if all values are equal).
fn padded_range(values: impl Iterator<Item = f64>) -> Option<(f64, f64)> {
    let (lo, hi) = values
        .filter(|v| v.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
            (lo.min(v), hi.max(v))
        });
    if lo > hi {
        return None;
    }
    let span = hi - lo;
    let pad = if span > 0.0 {
        0.05 * span
    } else {
        0.5 * lo.abs().max(1.0)
    };
    Some((lo - pad, hi + pad))
}

/// Tick-label formatter for an axis spanning `span`: at most 4 significant digits, no
/// trailing zeros, and values that are zero up to rounding (e.g. -5.6e-17) shown as "0".
fn ticker(span: f64) -> impl Fn(&f64) -> String {
    move |&v: &f64| {
        if v == 0.0 || v.abs() <= 1e-9 * span.abs() {
            return "0".into();
        }
        let a = v.abs();
        if !(1e-3..1e5).contains(&a) {
            return format!("{v:.1e}");
        }
        let decimals = (3 - a.log10().floor() as i32).clamp(0, 6) as usize;
        let s = format!("{v:.decimals$}");
        if s.contains('.') {
            s.trim_end_matches('0').trim_end_matches('.').to_string()
        } else {
            s
        }
    }
}

/// PCA scatter: PC1–PC2, PC1–PC3 and PC2–PC3 side by side, points coloured by class,
/// with a legend of the classes present. `scores` is n × 3 (extra columns are ignored).
pub fn plot_pca_scatter(
    path: &Path,
    scores: ArrayView2<f32>,
    labels: &[u8],
    title: &str,
) -> Result<(), ReportError> {
    let n = scores.nrows();
    if n == 0 {
        return Err(invalid("PCA scatter: no points"));
    }
    if scores.ncols() < 3 {
        return Err(invalid(format!(
            "PCA scatter needs 3 components, got {}",
            scores.ncols()
        )));
    }
    if labels.len() != n {
        return Err(invalid(format!(
            "PCA scatter: {n} points but {} labels",
            labels.len()
        )));
    }
    if scores.iter().any(|v| !v.is_finite()) {
        return Err(invalid("PCA scatter: non-finite score"));
    }
    let mut classes: Vec<u8> = labels.to_vec();
    classes.sort_unstable();
    classes.dedup();
    let ranges: Vec<(f64, f64)> = (0..3)
        .map(|c| padded_range(scores.column(c).iter().map(|&v| v as f64)).unwrap_or((-1.0, 1.0)))
        .collect();
    // Big clouds need small, translucent dots to show density; small ones can be bolder.
    let (radius, alpha) = if n > 3000 { (2, 0.45) } else { (3, 0.8) };

    render_png(path, (1800, 640), |root| {
        let body = root.titled(title, (FONT, 30))?;
        let (panels_area, legend_area) = body.split_horizontally(1800 - 120);
        let panels = panels_area.split_evenly((1, 3));
        for (panel, &(a, b)) in panels.iter().zip(&[(0usize, 1usize), (0, 2), (1, 2)]) {
            let mut chart = ChartBuilder::on(panel)
                .margin(15)
                .x_label_area_size(55)
                .y_label_area_size(75)
                .build_cartesian_2d(ranges[a].0..ranges[a].1, ranges[b].0..ranges[b].1)?;
            chart
                .configure_mesh()
                .x_desc(format!("PC{}", a + 1))
                .y_desc(format!("PC{}", b + 1))
                .axis_desc_style((FONT, 20))
                .label_style((FONT, 15))
                .x_labels(7)
                .y_labels(7)
                .x_label_formatter(&ticker(ranges[a].1 - ranges[a].0))
                .y_label_formatter(&ticker(ranges[b].1 - ranges[b].0))
                .light_line_style(RGBColor(240, 240, 240))
                .draw()?;
            chart.draw_series(scores.rows().into_iter().zip(labels).map(|(row, &lab)| {
                Circle::new(
                    (row[a] as f64, row[b] as f64),
                    radius,
                    colour(lab as usize).mix(alpha).filled(),
                )
            }))?;
        }
        legend_area.draw(&Text::new("class", (15, 40), (FONT, 20)))?;
        for (i, &c) in classes.iter().enumerate() {
            let y = 80 + 30 * i as i32;
            legend_area.draw(&Circle::new((25, y), 7, colour(c as usize).filled()))?;
            legend_area.draw(&Text::new(
                c.to_string(),
                (42, y),
                TextStyle::from((FONT, 20).into_font()).pos(Pos::new(HPos::Left, VPos::Center)),
            ))?;
        }
        Ok(())
    })
}

/// Confusion heatmap, row-normalised (each cell: % of the true class predicted as the
/// column's class), the percentage printed in each cell. `confusion[true][predicted]`.
// Long: one plotters drawing sequence (layout, axes, marks, labels) that
// reads top to bottom as the figure does; split, it would pass a dozen
// layout values between pieces.
pub fn plot_confusion(path: &Path, confusion: &[Vec<u64>], title: &str) -> Result<(), ReportError> {
    let k = confusion.len();
    if k == 0 {
        return Err(invalid("confusion matrix is empty"));
    }
    if let Some(bad) = confusion.iter().position(|r| r.len() != k) {
        return Err(invalid(format!(
            "confusion matrix is not square: row {bad} has {} entries, expected {k}",
            confusion[bad].len()
        )));
    }
    let rows: Vec<Option<Vec<f64>>> = confusion
        .iter()
        .map(|r| {
            let total: u64 = r.iter().sum();
            (total > 0).then(|| r.iter().map(|&c| c as f64 / total as f64).collect())
        })
        .collect();

    // Cells shrink for many classes, but the figure stays readable up to ~30.
    let cell: i32 = (560 / k as i32).clamp(18, 64);
    let grid = cell * k as i32;
    let (left, top, bar_w) = (90, 90, 110);
    let size = ((left + grid + bar_w + 30) as u32, (top + grid + 80) as u32);
    let value_font = (cell as f64 * 0.3).clamp(8.0, 18.0);

    render_png(path, size, |root| {
        root.draw(&Text::new(
            title.to_string(),
            (size.0 as i32 / 2, 30),
            TextStyle::from((FONT, 26).into_font()).pos(Pos::new(HPos::Center, VPos::Center)),
        ))?;
        root.draw(&Text::new(
            "row-normalised: % of each true class",
            (size.0 as i32 / 2, 62),
            TextStyle::from((FONT, 16).into_font())
                .color(&RGBColor(90, 90, 90))
                .pos(Pos::new(HPos::Center, VPos::Center)),
        ))?;
        let centre = |px, py, s: String, font: f64, col: RGBColor| -> DrawResult {
            root.draw(&Text::new(
                s,
                (px, py),
                TextStyle::from((FONT, font).into_font())
                    .color(&col)
                    .pos(Pos::new(HPos::Center, VPos::Center)),
            ))?;
            Ok(())
        };
        for (i, row) in rows.iter().enumerate() {
            let y0 = top + cell * i as i32;
            for j in 0..k {
                let x0 = left + cell * j as i32;
                let (fill, txt, txt_col) = match row {
                    Some(r) => {
                        let v = r[j];
                        let txt = if confusion[i][j] == 0 {
                            String::new()
                        } else {
                            format!("{:.0}", 100.0 * v)
                        };
                        let ink = if v > 0.55 { WHITE } else { BLACK };
                        (heat(v), txt, ink)
                    }
                    // A class absent from the queries: grey, so it is not read as 0%.
                    None => (RGBColor(215, 215, 215), "·".to_string(), BLACK),
                };
                root.draw(&Rectangle::new(
                    [(x0, y0), (x0 + cell, y0 + cell)],
                    fill.filled(),
                ))?;
                root.draw(&Rectangle::new(
                    [(x0, y0), (x0 + cell, y0 + cell)],
                    RGBColor(255, 255, 255).stroke_width(1),
                ))?;
                if !txt.is_empty() {
                    centre(x0 + cell / 2, y0 + cell / 2, txt, value_font, txt_col)?;
                }
            }
        }
        let label_font = (cell as f64 * 0.35).clamp(10.0, 18.0);
        for c in 0..k as i32 {
            let mid = cell * c + cell / 2;
            centre(
                left + mid,
                top + grid + 16,
                c.to_string(),
                label_font,
                BLACK,
            )?;
            centre(left - 16, top + mid, c.to_string(), label_font, BLACK)?;
        }
        centre(
            left + grid / 2,
            top + grid + 50,
            "predicted class".into(),
            20.0,
            BLACK,
        )?;
        root.draw(&Text::new(
            "true class",
            (left - 55, top + grid / 2),
            TextStyle::from((FONT, 20).into_font().transform(FontTransform::Rotate270))
                .pos(Pos::new(HPos::Center, VPos::Center)),
        ))?;
        // Colour bar: 0% at the bottom to 100% at the top.
        let bx = left + grid + 25;
        for py in 0..grid {
            let v = 1.0 - py as f64 / (grid - 1).max(1) as f64;
            root.draw(&Rectangle::new(
                [(bx, top + py), (bx + 22, top + py + 1)],
                heat(v).filled(),
            ))?;
        }
        root.draw(&Rectangle::new(
            [(bx, top), (bx + 22, top + grid)],
            BLACK.stroke_width(1),
        ))?;
        for pct in [0, 25, 50, 75, 100] {
            let py = top + ((100 - pct) as f64 / 100.0 * (grid - 1) as f64) as i32;
            root.draw(&Text::new(
                format!("{pct}%"),
                (bx + 28, py),
                TextStyle::from((FONT, 14).into_font()).pos(Pos::new(HPos::Left, VPos::Center)),
            ))?;
        }
        Ok(())
    })
}

/// White (0) to dark blue (1).
fn heat(v: f64) -> RGBColor {
    let v = v.clamp(0.0, 1.0);
    let lerp = |a: f64, b: f64| (a + (b - a) * v).round() as u8;
    RGBColor(lerp(247.0, 8.0), lerp(251.0, 48.0), lerp(255.0, 107.0))
}

/// Accuracy against readout time: one line per series with ± sd error bars, each
/// baseline `(label, accuracy)` as a dashed horizontal line, legend on the right.
/// Accuracies are fractions in [0, 1]; the y axis shows them in %.
// Long: one plotters drawing sequence (layout, axes, marks, labels) that
// reads top to bottom as the figure does; split, it would pass a dozen
// layout values between pieces.
pub fn plot_accuracy_vs_time(
    path: &Path,
    series: &[Series],
    baselines: &[(String, f64)],
    title: &str,
) -> Result<(), ReportError> {
    plot_accuracy_lines(path, series, baselines, title, &XAxis::readout_time())
}

/// The x axis of [`plot_accuracy_lines`]: its description and whether the
/// points' x values are log10 of the quantity (drawn on a linear axis whose
/// ticks are labelled with 10^x, so a ratio from 0.1 to 10 spreads evenly).
#[derive(Clone, Debug, PartialEq)]
pub struct XAxis {
    pub desc: String,
    pub log10: bool,
}

impl XAxis {
    /// Readout time in ms, linear, from 0.
    pub fn readout_time() -> XAxis {
        XAxis {
            desc: "readout time (ms)".into(),
            log10: false,
        }
    }
}

/// Accuracy lines against any x (see [`XAxis`]): as
/// [`plot_accuracy_vs_time`], whose x is the readout time.
pub fn plot_accuracy_lines(
    path: &Path,
    series: &[Series],
    baselines: &[(String, f64)],
    title: &str,
    axis: &XAxis,
) -> Result<(), ReportError> {
    if series.iter().all(|s| s.points.is_empty()) {
        return Err(invalid("accuracy plot: no series with points"));
    }
    let frac = |what: &str, v: f64| {
        if v.is_finite() && (-1e-9..=1.0 + 1e-9).contains(&v) {
            Ok(())
        } else {
            Err(invalid(format!(
                "accuracy plot: {what} = {v} is not a fraction in [0, 1]"
            )))
        }
    };
    for s in series {
        for &(t, m, sd) in &s.points {
            if !t.is_finite() || !sd.is_finite() || sd < 0.0 {
                return Err(invalid(format!(
                    "accuracy plot: series '{}' has a bad point ({t}, {m}, {sd})",
                    s.label
                )));
            }
            frac(&format!("series '{}' accuracy", s.label), m)?;
        }
    }
    for (label, v) in baselines {
        frac(&format!("baseline '{label}'"), *v)?;
    }

    let pts = || series.iter().flat_map(|s| s.points.iter());
    let t_max = pts().map(|p| p.0).fold(f64::NEG_INFINITY, f64::max);
    let t_min = pts().map(|p| p.0).fold(f64::INFINITY, f64::min);
    let (x0, x1) = if axis.log10 {
        padded_range(pts().map(|p| p.0)).unwrap_or((0.0, 1.0))
    } else if t_min >= 0.0 {
        (0.0, if t_max > 0.0 { t_max * 1.05 } else { 1.0 })
    } else {
        padded_range(pts().map(|p| p.0)).unwrap_or((0.0, 1.0))
    };
    let ys = pts()
        .flat_map(|p| [p.1 - p.2, p.1 + p.2])
        .chain(baselines.iter().map(|b| b.1))
        .map(|v| 100.0 * v);
    let (y0, y1) = padded_range(ys).unwrap_or((0.0, 100.0));
    let (y0, y1) = (y0.max(0.0), y1.min(100.0).max(y0.max(0.0) + 1.0));

    let legend_rows: Vec<(String, RGBColor, bool)> = series
        .iter()
        .enumerate()
        .map(|(i, s)| (s.label.clone(), colour(i), false))
        .chain(baselines.iter().enumerate().map(|(i, (l, v))| {
            (
                format!("{l} ({:.2}%)", 100.0 * v),
                BASELINE_COLOURS[i % BASELINE_COLOURS.len()],
                true,
            )
        }))
        .collect();
    // Legend column as wide as its longest label (~0.6 em per character at 17 px).
    let longest = legend_rows
        .iter()
        .map(|r| r.0.chars().count())
        .max()
        .unwrap_or(0);
    let legend_w = (70 + (longest as f64 * 10.5) as u32).clamp(140, 520);
    let height = 640u32.max(110 + 28 * legend_rows.len() as u32);
    let width = 1000 + legend_w;

    let linear_ticks = ticker(x1 - x0);
    let x_ticks = |v: &f64| {
        if axis.log10 {
            let x = 10f64.powf(*v);
            // Three significant digits: 0.0316, 0.316, 3.16, 31.6.
            let digits = (2 - x.log10().floor() as i32).max(0) as usize;
            let s = format!("{x:.digits$}");
            if s.contains('.') {
                s.trim_end_matches('0').trim_end_matches('.').to_string()
            } else {
                s
            }
        } else {
            linear_ticks(v)
        }
    };
    render_png(path, (width, height), |root| {
        let body = root.titled(title, (FONT, 28))?;
        let (plot_area, legend_area) = body.split_horizontally(1000);
        let mut chart = ChartBuilder::on(&plot_area)
            .margin(20)
            .x_label_area_size(55)
            .y_label_area_size(75)
            .build_cartesian_2d(x0..x1, y0..y1)?;
        chart
            .configure_mesh()
            .x_desc(axis.desc.as_str())
            .y_desc("accuracy (%)")
            .axis_desc_style((FONT, 20))
            .label_style((FONT, 16))
            .x_label_formatter(&x_ticks)
            .y_label_formatter(&ticker(y1 - y0))
            .light_line_style(RGBColor(238, 238, 238))
            .draw()?;
        for (i, (_, v)) in baselines.iter().enumerate() {
            let c = BASELINE_COLOURS[i % BASELINE_COLOURS.len()];
            chart.draw_series(DashedLineSeries::new(
                [(x0, 100.0 * v), (x1, 100.0 * v)],
                12,
                8,
                c.stroke_width(2),
            ))?;
        }
        // Error bars: cap width a fixed fraction of the x range.
        let cap = 0.006 * (x1 - x0);
        for (i, s) in series.iter().enumerate() {
            let c = colour(i);
            let mut p = s.points.clone();
            p.sort_by(|a, b| a.0.total_cmp(&b.0));
            for &(t, m, sd) in &p {
                let (lo, hi) = (100.0 * (m - sd), 100.0 * (m + sd));
                for seg in [
                    vec![(t, lo), (t, hi)],
                    vec![(t - cap, lo), (t + cap, lo)],
                    vec![(t - cap, hi), (t + cap, hi)],
                ] {
                    chart.draw_series(std::iter::once(PathElement::new(seg, c.stroke_width(1))))?;
                }
            }
            chart.draw_series(LineSeries::new(
                p.iter().map(|&(t, m, _)| (t, 100.0 * m)),
                c.stroke_width(2),
            ))?;
            chart.draw_series(
                p.iter()
                    .map(|&(t, m, _)| Circle::new((t, 100.0 * m), 4, c.filled())),
            )?;
        }
        for (i, (label, c, dashed)) in legend_rows.iter().enumerate() {
            let y = 40 + 28 * i as i32;
            if *dashed {
                legend_area.draw(&DashedPathElement::new(
                    vec![(8, y), (48, y)],
                    8,
                    5,
                    c.stroke_width(2),
                ))?;
            } else {
                legend_area.draw(&PathElement::new(vec![(8, y), (48, y)], c.stroke_width(2)))?;
                legend_area.draw(&Circle::new((28, y), 4, c.filled()))?;
            }
            legend_area.draw(&Text::new(
                label.clone(),
                (56, y),
                TextStyle::from((FONT, 17).into_font()).pos(Pos::new(HPos::Left, VPos::Center)),
            ))?;
        }
        Ok(())
    })
}

/// Histograms side by side, one per panel, each with its own range and `bins` bins.
/// Non-finite values are left out (their count is shown in the panel title).
// Long: one plotters drawing sequence (layout, axes, marks, labels) that
// reads top to bottom as the figure does; split, it would pass a dozen
// layout values between pieces.
pub fn plot_histograms(path: &Path, panels: &[HistPanel], title: &str) -> Result<(), ReportError> {
    if panels.is_empty() {
        return Err(invalid("histogram: no panels"));
    }
    struct Hist {
        lo: f64,
        width: f64,
        counts: Vec<u64>,
        dropped: usize,
    }
    let mut hists = Vec::with_capacity(panels.len());
    for p in panels {
        if p.bins == 0 {
            return Err(invalid(format!("histogram '{}': 0 bins", p.title)));
        }
        let finite: Vec<f64> = p
            .values
            .iter()
            .filter(|v| v.is_finite())
            .map(|&v| v as f64)
            .collect();
        if finite.is_empty() {
            return Err(invalid(format!(
                "histogram '{}': no finite values",
                p.title
            )));
        }
        let (mut lo, mut hi) = finite
            .iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &v| {
                (a.min(v), b.max(v))
            });
        if hi == lo {
            // One value: centre a unit-wide (or 10%-wide) bin on it.
            let pad = 0.05 * lo.abs().max(10.0);
            (lo, hi) = (lo - pad, hi + pad);
        }
        let width = (hi - lo) / p.bins as f64;
        let mut counts = vec![0u64; p.bins];
        for v in &finite {
            let b = (((v - lo) / width) as usize).min(p.bins - 1);
            counts[b] += 1;
        }
        hists.push(Hist {
            lo,
            width,
            counts,
            dropped: p.values.len() - finite.len(),
        });
    }

    let panel_w = 560u32;
    render_png(path, (panel_w * panels.len() as u32, 520), |root| {
        let body = root.titled(title, (FONT, 28))?;
        let areas = body.split_evenly((1, panels.len()));
        for ((area, p), h) in areas.iter().zip(panels).zip(&hists) {
            let hi = h.lo + h.width * h.counts.len() as f64;
            let top = *h.counts.iter().max().unwrap_or(&1) as f64 * 1.08;
            let caption = if h.dropped > 0 {
                format!("{} ({} non-finite left out)", p.title, h.dropped)
            } else {
                p.title.clone()
            };
            let mut chart = ChartBuilder::on(area)
                .caption(caption, (FONT, 20))
                .margin(15)
                .x_label_area_size(50)
                .y_label_area_size(75)
                .build_cartesian_2d(h.lo..hi, 0.0..top.max(1.0))?;
            chart
                .configure_mesh()
                .x_desc("value")
                .y_desc("count")
                .axis_desc_style((FONT, 18))
                .label_style((FONT, 14))
                .x_labels(6)
                .y_labels(6)
                .x_label_formatter(&ticker(hi - h.lo))
                .y_label_formatter(&ticker(top))
                .light_line_style(RGBColor(238, 238, 238))
                .draw()?;
            // Opaque bars with a white outline, so neighbouring bins stay distinct.
            chart.draw_series(h.counts.iter().enumerate().filter(|(_, &c)| c > 0).map(
                |(b, &c)| {
                    let x0 = h.lo + h.width * b as f64;
                    Rectangle::new([(x0, 0.0), (x0 + h.width, c as f64)], PALETTE[0].filled())
                },
            ))?;
            if h.counts.len() <= 120 {
                chart.draw_series(h.counts.iter().enumerate().filter(|(_, &c)| c > 0).map(
                    |(b, &c)| {
                        let x0 = h.lo + h.width * b as f64;
                        Rectangle::new([(x0, 0.0), (x0 + h.width, c as f64)], WHITE.stroke_width(1))
                    },
                ))?;
            }
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array2;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    /// Decodes the PNG at `path`, checks the signature and returns (width, height, and
    /// the number of distinct colours, to tell a drawn figure from a blank canvas).
    fn check_png(path: &Path) -> (u32, u32, usize) {
        let bytes = std::fs::read(path).unwrap();
        assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
        let dec = png::Decoder::new(std::io::Cursor::new(bytes));
        let mut reader = dec.read_info().unwrap();
        let mut buf = vec![0; reader.output_buffer_size()];
        let info = reader.next_frame(&mut buf).unwrap();
        let mut colours: Vec<&[u8]> = buf[..info.buffer_size()].chunks(3).collect();
        colours.sort_unstable();
        colours.dedup();
        (info.width, info.height, colours.len())
    }

    /// Where the figures of the test go: `GEODYN_REPORT_FIGURES=dir` keeps them for a
    /// look; otherwise a temp dir that is removed.
    fn out_dir() -> (Option<tempfile::TempDir>, std::path::PathBuf) {
        match std::env::var_os("GEODYN_REPORT_FIGURES") {
            Some(d) => {
                std::fs::create_dir_all(&d).unwrap();
                (None, d.into())
            }
            None => {
                let t = tempfile::tempdir().unwrap();
                let p = t.path().to_path_buf();
                (Some(t), p)
            }
        }
    }

    #[test]
    fn pca_scatter_png() {
        let (_keep, dir) = out_dir();
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let n = 2000;
        let labels: Vec<u8> = (0..n).map(|i| (i % 10) as u8).collect();
        let scores = Array2::from_shape_fn((n, 3), |(i, c)| {
            let l = labels[i] as f32;
            (l * (c as f32 + 1.0)).sin() * 4.0 + rng.gen::<f32>() * 1.5
        });
        let path = dir.join("pca_scatter.png");
        plot_pca_scatter(
            &path,
            scores.view(),
            &labels,
            "Activation-path embeddings: PCA",
        )
        .unwrap();
        let (w, h, colours) = check_png(&path);
        assert_eq!((w, h), (1800, 640));
        assert!(colours > 20);
    }

    #[test]
    fn confusion_png() {
        let (_keep, dir) = out_dir();
        let conf = crate::report::tests::sample_report().results[0]
            .confusion
            .clone();
        let path = dir.join("confusion.png");
        plot_confusion(
            &path,
            &conf,
            "Confusion (recurrent weights, N = 200, 300 ms)",
        )
        .unwrap();
        let (w, h, colours) = check_png(&path);
        assert!(w > 600 && h > 600 && colours > 20);
    }

    #[test]
    fn accuracy_png() {
        let (_keep, dir) = out_dir();
        let series: Vec<Series> = [5usize, 50, 200, 400]
            .iter()
            .map(|&n| Series {
                label: format!("N = {n}"),
                points: (1..=6)
                    .map(|k| {
                        let t = 100.0 * k as f64;
                        let peak =
                            0.72 + 0.245 * (n as f64 / 200.0).min(1.0) - 0.004 * (n / 400) as f64;
                        let m = peak - 0.0000015 * (t - 300.0).powi(2);
                        (t, m, 0.004 + 0.002 * (k % 3) as f64)
                    })
                    .collect(),
            })
            .collect();
        let baselines = vec![
            ("raw pixels, kNN k = 5".to_string(), 0.950),
            ("no-plasticity control".to_string(), 0.91),
        ];
        let path = dir.join("accuracy_vs_time.png");
        plot_accuracy_vs_time(&path, &series, &baselines, "Weight-state kNN accuracy").unwrap();
        let (_, h, colours) = check_png(&path);
        assert!(h >= 640 && colours > 20);
    }

    #[test]
    fn histograms_png() {
        let (_keep, dir) = out_dir();
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        let before: Vec<f32> = (0..5000).map(|_| rng.gen_range(-0.3..0.7)).collect();
        let after: Vec<f32> = before
            .iter()
            .map(|w| (w + rng.gen_range(-0.4..0.3f32)).clamp(-0.5, 1.0))
            .collect();
        let change: Vec<f32> = before.iter().zip(&after).map(|(a, b)| b - a).collect();
        let panels = vec![
            HistPanel {
                title: "weights before STDP".into(),
                values: before,
                bins: 40,
            },
            HistPanel {
                title: "weights after STDP".into(),
                values: after,
                bins: 40,
            },
            HistPanel {
                title: "change".into(),
                values: change,
                bins: 40,
            },
        ];
        let path = dir.join("weights_hist.png");
        plot_histograms(&path, &panels, "Recurrent weights, 1,000 stimuli").unwrap();
        let (w, h, colours) = check_png(&path);
        assert_eq!((w, h), (1680, 520));
        assert!(colours > 20);
    }

    #[test]
    fn bad_input_is_an_error_not_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.png");
        let empty = Array2::<f32>::zeros((0, 3));
        assert!(plot_pca_scatter(&p, empty.view(), &[], "t").is_err());
        let two = Array2::<f32>::zeros((4, 2));
        assert!(plot_pca_scatter(&p, two.view(), &[0; 4], "t").is_err());
        let three = Array2::<f32>::zeros((4, 3));
        assert!(plot_pca_scatter(&p, three.view(), &[0; 3], "t").is_err());
        assert!(plot_confusion(&p, &[], "t").is_err());
        assert!(plot_confusion(&p, &[vec![1, 2], vec![3]], "t").is_err());
        assert!(plot_accuracy_vs_time(&p, &[], &[], "t").is_err());
        let pct = Series {
            label: "pct".into(),
            points: vec![(100.0, 95.0, 0.5)],
        };
        assert!(plot_accuracy_vs_time(&p, &[pct], &[], "t").is_err());
        assert!(plot_histograms(&p, &[], "t").is_err());
        let nan = HistPanel {
            title: "n".into(),
            values: vec![f32::NAN],
            bins: 5,
        };
        assert!(plot_histograms(&p, &[nan], "t").is_err());
        let zero = HistPanel {
            title: "z".into(),
            values: vec![1.0],
            bins: 0,
        };
        assert!(plot_histograms(&p, &[zero], "t").is_err());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn degenerate_but_valid_input_plots() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("d.png");
        let same = Array2::<f32>::ones((5, 3));
        plot_pca_scatter(&p, same.view(), &[3; 5], "constant").unwrap();
        plot_confusion(&p, &[vec![0, 0], vec![2, 3]], "empty row").unwrap();
        let one = Series {
            label: "one".into(),
            points: vec![(0.0, 0.5, 0.0)],
        };
        plot_accuracy_vs_time(&p, &[one], &[], "one point").unwrap();
        let c = HistPanel {
            title: "c".into(),
            values: vec![2.0; 7],
            bins: 3,
        };
        plot_histograms(&p, &[c], "constant").unwrap();
        check_png(&p);
    }

    #[test]
    fn missing_directory_error_names_path() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("missing/fig.png");
        let err = plot_confusion(&p, &[vec![1]], "t").unwrap_err();
        assert!(matches!(err, ReportError::Io { .. }));
        assert!(err.to_string().contains("missing/fig.png"), "{err}");
    }
}
