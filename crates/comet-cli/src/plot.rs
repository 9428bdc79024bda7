//! PNG charts (plotters, with an embedded DejaVu Sans so no system fonts are needed).

use std::path::Path;
use std::sync::Once;

use anyhow::{anyhow, Result};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

static FONT: &[u8] = include_bytes!("../../../assets/fonts/DejaVuSans.ttf");
static REGISTER: Once = Once::new();

fn register_font() {
    REGISTER.call_once(|| {
        // The bytes are a valid TTF compiled into the binary.
        let _ = plotters::style::register_font("sans-serif", FontStyle::Normal, FONT);
    });
}

/// One line of a chart: a label and its (x, y) points.
pub struct Series {
    /// Legend text.
    pub label: String,
    /// Points, x ascending.
    pub points: Vec<(f64, f64)>,
}

/// One panel of a log-log chart.
pub struct Panel {
    /// Title above the panel.
    pub title: String,
    /// Y axis label.
    pub y_label: String,
    /// Lines drawn.
    pub series: Vec<Series>,
}

fn bounds(panel: &Panel, pick: impl Fn(&(f64, f64)) -> f64) -> (f64, f64) {
    let values: Vec<f64> = panel
        .series
        .iter()
        .flat_map(|s| s.points.iter().map(&pick))
        .filter(|v| *v > 0.0)
        .collect();
    let lo = values.iter().cloned().fold(f64::MAX, f64::min);
    let hi = values.iter().cloned().fold(f64::MIN, f64::max);
    if values.is_empty() {
        (1.0, 10.0)
    } else {
        (lo / 1.5, hi * 1.5)
    }
}

/// Draws panels side by side, both axes logarithmic, into a PNG.
pub fn log_log_panels(path: &Path, x_label: &str, panels: &[Panel]) -> Result<()> {
    register_font();
    let width = 640 * panels.len() as u32;
    let root = BitMapBackend::new(path, (width, 480)).into_drawing_area();
    root.fill(&WHITE)
        .map_err(|e| anyhow!("drawing {}: {e}", path.display()))?;
    let areas = root.split_evenly((1, panels.len()));
    let colors = [
        RGBColor(31, 119, 180),
        RGBColor(214, 39, 40),
        RGBColor(44, 160, 44),
        RGBColor(148, 103, 189),
    ];
    for (area, panel) in areas.iter().zip(panels) {
        draw_panel(area, x_label, panel, &colors)?;
    }
    root.present()
        .map_err(|e| anyhow!("writing {}: {e}", path.display()))
}

/// Black text of `size` px centred on its position.
fn centred(size: u32) -> TextStyle<'static> {
    ("sans-serif", size)
        .into_font()
        .color(&BLACK)
        .pos(Pos::new(HPos::Center, VPos::Center))
}

/// Where a heatmap's cells lie.
struct Grid {
    left: i32,
    top: i32,
    /// Cell width and height.
    cell: (i32, i32),
}

/// The heatmap's row labels and coloured cells, each with its value printed.
fn draw_cells<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    grid: &Grid,
    columns: usize,
    rows: &[String],
    value: &impl Fn(usize, usize) -> Option<f64>,
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    let (cw, ch) = grid.cell;
    for (r, row) in rows.iter().enumerate() {
        let y = grid.top + ch * r as i32;
        root.draw(&Text::new(
            row.clone(),
            (grid.left / 2, y + ch / 2),
            centred(14),
        ))?;
        for c in 0..columns {
            let x = grid.left + cw * c as i32;
            let (fill, label) = match value(r, c) {
                Some(v) => {
                    let v = v.clamp(0.0, 1.0);
                    let colour = RGBColor(
                        (215.0 - 170.0 * v) as u8,
                        (48.0 + 140.0 * v) as u8,
                        (39.0 + 40.0 * v) as u8,
                    );
                    (colour, format!("{:.0}%", v * 100.0))
                }
                None => (RGBColor(220, 220, 220), "-".to_string()),
            };
            root.draw(&Rectangle::new(
                [(x, y), (x + cw - 2, y + ch - 2)],
                fill.filled(),
            ))?;
            let label_style = centred(14).color(&WHITE);
            root.draw(&Text::new(label, (x + cw / 2, y + ch / 2), label_style))?;
        }
    }
    Ok(())
}

/// One log-log panel: its curves, points and legend.
fn draw_panel(
    area: &DrawingArea<BitMapBackend<'_>, Shift>,
    x_label: &str,
    panel: &Panel,
    colors: &[RGBColor],
) -> Result<()> {
    let (x0, x1) = bounds(panel, |p| p.0);
    let (y0, y1) = bounds(panel, |p| p.1);
    let mut chart = ChartBuilder::on(area)
        .caption(&panel.title, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(64)
        .build_cartesian_2d((x0..x1).log_scale(), (y0..y1).log_scale())
        .map_err(|e| anyhow!("chart: {e}"))?;
    chart
        .configure_mesh()
        .x_desc(x_label)
        .y_desc(&panel.y_label)
        .label_style(("sans-serif", 13))
        // Many key points, labelled only at 1-2-5 values; no fine grid (it piles up
        // into grey bands on a log axis).
        .x_labels(30)
        .y_labels(30)
        .light_line_style(WHITE)
        .x_label_formatter(&|x| log_tick(*x))
        .y_label_formatter(&|y| log_tick(*y))
        .draw()
        .map_err(|e| anyhow!("chart: {e}"))?;
    for (series, color) in panel.series.iter().zip(colors.iter().cycle()) {
        let color = *color;
        chart
            .draw_series(LineSeries::new(
                series.points.clone(),
                color.stroke_width(2),
            ))
            .map_err(|e| anyhow!("chart: {e}"))?
            .label(&series.label)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2))
            });
        chart
            .draw_series(
                series
                    .points
                    .iter()
                    .map(|&p| Circle::new(p, 3, color.filled())),
            )
            .map_err(|e| anyhow!("chart: {e}"))?;
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .label_font(("sans-serif", 14))
        .position(SeriesLabelPosition::UpperLeft)
        .draw()
        .map_err(|e| anyhow!("chart: {e}"))?;
    Ok(())
}

/// A log axis's tick label: only at 1, 2 and 5 times a power of ten (plotters puts a
/// tick at every integer multiple, whose labels would run into each other).
fn log_tick(x: f64) -> String {
    let mantissa = x / 10f64.powf(x.log10().floor());
    let nice = [1.0, 2.0, 5.0, 10.0]
        .iter()
        .any(|m| (mantissa - m).abs() < 1e-6 * m);
    if nice {
        format_number(x)
    } else {
        String::new()
    }
}

/// Words of `title` (split after commas) in lines of at most `max_chars` characters.
fn wrap(title: &str, max_chars: usize) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    for part in title.split_inclusive(", ") {
        match lines.last_mut() {
            Some(line) if line.len() + part.len() <= max_chars => line.push_str(part),
            _ => lines.push(part.to_string()),
        }
    }
    lines.iter().map(|l| l.trim_end().to_string()).collect()
}

/// Axis numbers without spurious decimals: 1000 -> "1000", 0.25 -> "0.25", 65536 -> "65536".
fn format_number(x: f64) -> String {
    if x >= 10.0 {
        format!("{}", x.round() as u64)
    } else {
        let s = format!("{x:.3}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

/// A grid of accuracies (rows: depths, columns: lengths), coloured red (0) to green (1)
/// with each value printed in its cell, like the paper's passkey figure.
pub fn heatmap(
    path: &Path,
    title: &str,
    columns: &[String],
    rows: &[String],
    value: impl Fn(usize, usize) -> Option<f64>,
) -> Result<()> {
    register_font();
    let (cw, ch) = (96i32, 40i32);
    let left = 96i32;
    // The title wraps to the grid's width (about 8 px per character at 17 px), at least 40
    // characters, so a long title does not leave the image mostly empty.
    let grid_width = left + cw * columns.len() as i32 + 24;
    let title = wrap(title, ((grid_width - 24) / 8).max(40) as usize);
    let longest = title.iter().map(String::len).max().unwrap_or(0) as i32;
    let top = 30 + 22 * title.len() as i32;
    let width = grid_width.max(8 * longest + 48) as u32;
    let height = (top + ch * rows.len() as i32 + 64) as u32;
    let root = BitMapBackend::new(path, (width, height)).into_drawing_area();
    let err = |e: DrawingAreaErrorKind<_>| anyhow!("drawing {}: {e}", path.display());
    root.fill(&WHITE).map_err(err)?;
    for (i, line) in title.iter().enumerate() {
        let style = ("sans-serif", 17).into_font().color(&BLACK);
        root.draw(&Text::new(line.clone(), (24, 10 + 22 * i as i32), style))
            .map_err(err)?;
    }
    let grid = Grid {
        left,
        top,
        cell: (cw, ch),
    };
    draw_cells(&root, &grid, columns.len(), rows, &value).map_err(err)?;
    let bottom = top + ch * rows.len() as i32;
    for (c, column) in columns.iter().enumerate() {
        let x = left + cw * c as i32 + cw / 2;
        root.draw(&Text::new(column.clone(), (x, bottom + 14), centred(13)))
            .map_err(err)?;
    }
    let x_mid = left + cw * columns.len() as i32 / 2;
    root.draw(&Text::new(
        "input length (tokens)".to_string(),
        (x_mid, bottom + 40),
        centred(14),
    ))
    .map_err(err)?;
    root.draw(&Text::new(
        "depth".to_string(),
        (left / 2, top - 14),
        centred(14),
    ))
    .map_err(err)?;
    root.present()
        .map_err(|e| anyhow!("writing {}: {e}", path.display()))
}

/// One bar of a ratio chart: what is compared, and how many times the reference it does.
pub struct Ratio {
    /// Row text, e.g. "prefill 2,048 tokens vs llama.cpp F32".
    pub label: String,
    /// Ours over theirs (1 = as fast).
    pub value: f64,
}

/// Horizontal bars of ratios against a reference, with the parity line at 1 drawn across.
pub fn ratio_bars(path: &Path, title: &str, ratios: &[Ratio]) -> Result<()> {
    register_font();
    let height = 90 + 34 * ratios.len() as u32;
    let root = BitMapBackend::new(path, (900, height)).into_drawing_area();
    root.fill(&WHITE)
        .map_err(|e| anyhow!("drawing {}: {e}", path.display()))?;
    // Room right of the longest bar (and of the parity line) for the labels.
    let top = ratios.iter().map(|r| r.value).fold(1.0, f64::max) * 1.1 + 1.5;
    let rows = ratios.len() as f64;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(14)
        .x_label_area_size(36)
        .build_cartesian_2d(0.0..top, 0.0..rows)
        .map_err(|e| anyhow!("chart: {e}"))?;
    chart
        .configure_mesh()
        .disable_y_mesh()
        .disable_y_axis()
        .light_line_style(WHITE)
        .x_desc("times the reference's speed (1 = as fast)")
        .label_style(("sans-serif", 13))
        .draw()
        .map_err(|e| anyhow!("chart: {e}"))?;
    let (green, red) = (RGBColor(44, 160, 44), RGBColor(214, 39, 40));
    for (i, ratio) in ratios.iter().enumerate() {
        // First row at the top.
        let y = rows - 1.0 - i as f64;
        let color = if ratio.value >= 1.0 { green } else { red };
        let bar = Rectangle::new(
            [(0.0, y + 0.15), (ratio.value, y + 0.85)],
            color.mix(0.75).filled(),
        );
        let text = format!("{:.2}x  {}", ratio.value, ratio.label);
        let label = Text::new(
            text,
            (ratio.value.max(1.0) + top * 0.01, y + 0.5),
            ("sans-serif", 14)
                .into_font()
                .color(&BLACK)
                .pos(Pos::new(HPos::Left, VPos::Center)),
        );
        chart
            .draw_series([bar])
            .map_err(|e| anyhow!("chart: {e}"))?;
        chart
            .draw_series([label])
            .map_err(|e| anyhow!("chart: {e}"))?;
    }
    chart
        .draw_series([PathElement::new(
            vec![(1.0, 0.0), (1.0, rows)],
            BLACK.stroke_width(2),
        )])
        .map_err(|e| anyhow!("chart: {e}"))?;
    root.present()
        .map_err(|e| anyhow!("writing {}: {e}", path.display()))
}
