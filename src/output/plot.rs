//! Charts of a run directory and of a sweep directory, drawn with plotters from the output
//! files only (never from model state), so `domiso run` and `domiso plot` draw the same bytes
//! from the same records.
//!
//! Owns `plots/<chart>.svg` and `plots/<chart>.png` of a run directory (`rollout_timeline`,
//! `overhead_by_app`, `failover_stalls`, `helpdesk_calls`) and `plots/sweep_<metric>.svg|png`
//! of a sweep directory. A chart is drawn only when its input file is there.
//!
//! Contract:
//! - A chart is a pure function of its input bytes: the same files give byte-identical SVG and
//!   PNG (no clock, no hash-order iteration, fixed PNG encoder settings). Results come back
//!   sorted by file name.
//! - Text is DejaVu Sans compiled into the binary: no system font is needed, and the PNG does
//!   not depend on what the machine has installed. The SVG names the family `sans-serif`, so a
//!   viewer may substitute its own sans font.
//! - Bad input (malformed CSV or JSON, a missing column) is a [`PlotError`] naming the file;
//!   nothing here panics on input.

use std::collections::BTreeMap;
use std::sync::Once;

use plotters::coord::Shift;
use plotters::coord::ranged1d::{DefaultFormatting, KeyPointHint, Ranged};
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::runner::Plan;

/// Why charts could not be drawn.
#[derive(Debug, thiserror::Error)]
pub enum PlotError {
    /// An input file is malformed or lacks a column a chart needs.
    #[error("{file}: {message}")]
    Input { file: String, message: String },
    /// The drawing backend or the PNG encoder failed.
    #[error("plots/{chart}: cannot draw: {message}")]
    Draw { chart: String, message: String },
}

fn input(file: &str, message: impl std::fmt::Display) -> PlotError {
    PlotError::Input { file: file.to_string(), message: message.to_string() }
}

/// A lookup from a file name inside the directory (`timeline.csv`) to its bytes.
pub type Read<'a> = &'a dyn Fn(&str) -> Option<Vec<u8>>;

/// Draws every chart of a run directory that its files allow: `(name under the run
/// directory, bytes)`, sorted by name.
pub fn draw_run(read: Read<'_>) -> Result<Vec<(String, Vec<u8>)>, PlotError> {
    let mut out = Vec::new();
    if let Some(bytes) = read("timeline.csv") {
        let days: Vec<TimelineIn> = read_csv("timeline.csv", &bytes)?;
        check_days("timeline.csv", days.iter().map(|d| d.day))?;
        let events: Vec<EventIn> = match read("rollout_events.csv") {
            Some(b) => read_csv("rollout_events.csv", &b)?,
            None => Vec::new(),
        };
        render("rollout_timeline", &Timeline::new(&days, &events), &mut out)?;
    }
    if let Some(bytes) = read("overhead_by_app.csv") {
        let rows: Vec<OverheadIn> = read_csv("overhead_by_app.csv", &bytes)?;
        render("overhead_by_app", &Overhead::new(rows), &mut out)?;
    }
    if let Some(bytes) = read("failover_stalls.csv") {
        let rows: Vec<StallIn> = read_csv("failover_stalls.csv", &bytes)?;
        render("failover_stalls", &Stalls::new(&rows), &mut out)?;
    }
    if let Some(bytes) = read("helpdesk.csv") {
        let rows: Vec<HelpdeskIn> = read_csv("helpdesk.csv", &bytes)?;
        check_days("helpdesk.csv", rows.iter().map(|r| r.day))?;
        render("helpdesk_calls", &Helpdesk::new(&rows), &mut out)?;
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

/// Days past this are not a run's (a century): refused rather than charted, so a corrupt
/// file cannot make a chart allocate one bar per day up to `u32::MAX`.
const MAX_DAY: u32 = 36_600;

fn check_days(file: &str, mut days: impl Iterator<Item = u32>) -> Result<(), PlotError> {
    match days.find(|d| *d > MAX_DAY) {
        Some(d) => Err(input(file, format!("day {d} is past day {MAX_DAY}: not a run's day"))),
        None => Ok(()),
    }
}

/// Draws the charts of a sweep directory (`sweep.json` + `sweep.csv`): one per numeric metric
/// column, `plots/sweep_<metric>.svg|png`, sorted by name. Nothing when either file is missing.
pub fn draw_sweep(read: Read<'_>) -> Result<Vec<(String, Vec<u8>)>, PlotError> {
    let (Some(plan_bytes), Some(csv_bytes)) = (read("sweep.json"), read("sweep.csv")) else {
        return Ok(Vec::new());
    };
    let plan: Plan = serde_json::from_slice(&plan_bytes).map_err(|e| input("sweep.json", e))?;
    // `Plan`'s point arithmetic assumes what `Plan::load` validated; a hand-edited file may not.
    for a in &plan.axes {
        if a.values.is_empty() || a.labels.as_ref().is_some_and(|l| l.len() != a.values.len()) {
            return Err(input("sweep.json", format!("axis {}: needs values, and one label per value", a.key)));
        }
    }
    let mut out = Vec::new();
    for chart in sweep_charts(&plan, &csv_bytes)? {
        render(&format!("sweep_{}", file_safe(&chart.metric)), &chart, &mut out)?;
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

// ---------------------------------------------------------------------------------------
// Rendering: every chart is drawn twice, once per backend, by the same generic code.

/// The font family charts use.
const FONT: &str = "sans-serif";

fn register_fonts() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // The bytes are a valid TrueType font compiled in; a failure is a build defect.
        plotters::style::register_font(FONT, FontStyle::Normal, dejavu::sans::regular())
            .unwrap_or_else(|_| panic!("embedded DejaVu Sans must parse"));
    });
}

/// A chart that can draw itself on any plotters backend.
trait Figure {
    /// Pixels (the SVG's user units and the PNG's size).
    fn size(&self) -> (u32, u32);
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), String>;
}

/// Draws `fig` as `plots/<name>.svg` and `plots/<name>.png` into `out`.
fn render(name: &str, fig: &impl Figure, out: &mut Vec<(String, Vec<u8>)>) -> Result<(), PlotError> {
    register_fonts();
    let fail = |message: String| PlotError::Draw { chart: name.to_string(), message };
    let (w, h) = fig.size();
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (w, h)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| fail(e.to_string()))?;
        fig.draw(&root).map_err(fail)?;
        root.present().map_err(|e| fail(e.to_string()))?;
    }
    let mut rgb = vec![0u8; w as usize * h as usize * 3];
    {
        let root = raster::Raster::new(BitMapBackend::with_buffer(&mut rgb, (w, h))).into_drawing_area();
        root.fill(&WHITE).map_err(|e| fail(e.to_string()))?;
        fig.draw(&root).map_err(fail)?;
        root.present().map_err(|e| fail(e.to_string()))?;
    }
    let png = encode_png(&rgb, w, h).map_err(|e| fail(format!("PNG encoding: {e}")))?;
    out.push((format!("plots/{name}.svg"), svg.into_bytes()));
    out.push((format!("plots/{name}.png"), png));
    Ok(())
}

mod raster {
    //! The PNG backend and text measurement (a separate module: plotters-backend's style
    //! trait in scope would make `colour.stroke_width(..)` ambiguous in the charts).

    use std::sync::OnceLock;

    use ab_glyph::{Font, FontRef, GlyphId, PxScale, ScaleFont};
    use plotters::prelude::*;
    use plotters::style::text_anchor::{HPos, VPos};
    use plotters_backend::{BackendColor, BackendCoord, BackendStyle, BackendTextStyle, DrawingErrorKind};

    fn font() -> &'static FontRef<'static> {
        static FONT: OnceLock<FontRef<'static>> = OnceLock::new();
        // The same compiled-in bytes `register_fonts` registers; a failure is a build defect.
        FONT.get_or_init(|| {
            FontRef::try_from_slice(dejavu::sans::regular())
                .unwrap_or_else(|_| panic!("embedded DejaVu Sans must parse"))
        })
    }

    /// Glyphs of `text` at em `em` pixels with their pen positions, and the advance width.
    fn layout(text: &str, em: f32) -> (PxScale, Vec<(GlyphId, f32)>, f32) {
        let scale = font().pt_to_px_scale(em).unwrap_or(PxScale::from(em));
        let scaled = font().as_scaled(scale);
        let mut glyphs = Vec::with_capacity(text.len());
        let mut pen = 0.0f32;
        let mut prev: Option<GlyphId> = None;
        for ch in text.chars() {
            let id = scaled.glyph_id(ch);
            if let Some(p) = prev {
                pen += scaled.kern(p, id);
            }
            glyphs.push((id, pen));
            pen += scaled.h_advance(id);
            prev = Some(id);
        }
        (scale, glyphs, pen)
    }

    /// Width in pixels of `text` in the charts' font at plotters size `size` (as drawn in
    /// the PNG), for sizing legends and label areas.
    pub(super) fn text_width(text: &str, size: u32) -> u32 {
        layout(text, size as f32 / 1.24).2.ceil() as u32
    }

    /// The PNG canvas: plotters' bitmap backend, except for text, which it sets the way the
    /// SVG backend asks a browser to (em = size / 1.24, baseline 0.76 em below a top anchor,
    /// half an x-height below a centre one). plotters 0.3.7's own ab_glyph rasteriser drops
    /// each glyph's side bearing and uses another em, which left PNG labels ragged
    /// ("Encryp tion") and off their anchors.
    pub(super) struct Raster<'a> {
        inner: BitMapBackend<'a>,
    }

    impl<'a> Raster<'a> {
        pub(super) fn new(inner: BitMapBackend<'a>) -> Self {
            Raster { inner }
        }
    }

    type BackendResult<E> = Result<(), DrawingErrorKind<E>>;

    impl<'a> DrawingBackend for Raster<'a> {
        type ErrorType = <BitMapBackend<'a> as DrawingBackend>::ErrorType;

        fn get_size(&self) -> (u32, u32) {
            self.inner.get_size()
        }

        fn ensure_prepared(&mut self) -> BackendResult<Self::ErrorType> {
            self.inner.ensure_prepared()
        }

        fn present(&mut self) -> BackendResult<Self::ErrorType> {
            self.inner.present()
        }

        fn draw_pixel(&mut self, point: BackendCoord, color: BackendColor) -> BackendResult<Self::ErrorType> {
            self.inner.draw_pixel(point, color)
        }

        fn draw_line<S: BackendStyle>(
            &mut self,
            from: BackendCoord,
            to: BackendCoord,
            style: &S,
        ) -> BackendResult<Self::ErrorType> {
            self.inner.draw_line(from, to, style)
        }

        fn draw_rect<S: BackendStyle>(
            &mut self,
            upper_left: BackendCoord,
            bottom_right: BackendCoord,
            style: &S,
            fill: bool,
        ) -> BackendResult<Self::ErrorType> {
            self.inner.draw_rect(upper_left, bottom_right, style, fill)
        }

        fn draw_path<S: BackendStyle, I: IntoIterator<Item = BackendCoord>>(
            &mut self,
            path: I,
            style: &S,
        ) -> BackendResult<Self::ErrorType> {
            self.inner.draw_path(path, style)
        }

        fn draw_circle<S: BackendStyle>(
            &mut self,
            center: BackendCoord,
            radius: u32,
            style: &S,
            fill: bool,
        ) -> BackendResult<Self::ErrorType> {
            self.inner.draw_circle(center, radius, style, fill)
        }

        fn fill_polygon<S: BackendStyle, I: IntoIterator<Item = BackendCoord>>(
            &mut self,
            vert: I,
            style: &S,
        ) -> BackendResult<Self::ErrorType> {
            self.inner.fill_polygon(vert, style)
        }

        fn blit_bitmap(&mut self, pos: BackendCoord, size: (u32, u32), src: &[u8]) -> BackendResult<Self::ErrorType> {
            self.inner.blit_bitmap(pos, size, src)
        }

        fn draw_text<T: BackendTextStyle>(
            &mut self,
            text: &str,
            style: &T,
            pos: BackendCoord,
        ) -> BackendResult<Self::ErrorType> {
            let color = style.color();
            if color.alpha == 0.0 || text.is_empty() {
                return Ok(());
            }
            let em = (style.size() / 1.24) as f32;
            let (scale, glyphs, width) = layout(text, em);
            let x0 = match style.anchor().h_pos {
                HPos::Left => 0.0,
                HPos::Center => -width / 2.0,
                HPos::Right => -width,
            };
            let x_height =
                font().outline_glyph(font().glyph_id('x').with_scale(scale)).map_or(em / 2.0, |g| -g.px_bounds().min.y);
            let baseline = match style.anchor().v_pos {
                VPos::Top => 0.76 * em,
                VPos::Center => 0.5 * x_height,
                VPos::Bottom => -0.5 * x_height,
            };
            let turn = style.transform();
            let mut pixels = Vec::new();
            for (id, x) in glyphs {
                let glyph = id.with_scale_and_position(scale, ab_glyph::point(x0 + x, baseline));
                if let Some(outline) = font().outline_glyph(glyph) {
                    let b = outline.px_bounds();
                    outline.draw(|gx, gy, coverage| {
                        pixels.push((b.min.x as i32 + gx as i32, b.min.y as i32 + gy as i32, coverage));
                    });
                }
            }
            for (x, y, coverage) in pixels {
                if coverage > 0.0 {
                    // Rotated about the anchor, as SVG's rotate(angle, x, y).
                    let (dx, dy) = turn.transform(x, y);
                    let alpha = color.alpha * f64::from(coverage.min(1.0));
                    self.inner.draw_pixel((pos.0 + dx, pos.1 + dy), BackendColor { alpha, rgb: color.rgb })?;
                }
            }
            Ok(())
        }
    }
}

use raster::text_width;

/// 8-bit RGB PNG with fixed encoder settings (the output is a function of the pixels).
fn encode_png(rgb: &[u8], w: u32, h: u32) -> Result<Vec<u8>, png::EncodingError> {
    let mut bytes = Vec::new();
    let mut enc = png::Encoder::new(&mut bytes, w, h);
    enc.set_color(png::ColorType::Rgb);
    enc.set_depth(png::BitDepth::Eight);
    enc.set_compression(png::Compression::Balanced);
    let mut writer = enc.write_header()?;
    writer.write_image_data(rgb)?;
    writer.finish()?;
    Ok(bytes)
}

fn err<E: std::fmt::Display>(e: E) -> String {
    e.to_string()
}

fn read_csv<T: DeserializeOwned>(file: &str, bytes: &[u8]) -> Result<Vec<T>, PlotError> {
    csv::Reader::from_reader(bytes).deserialize().map(|row| row.map_err(|e| input(file, e))).collect()
}

/// A metric name as part of a file name: anything but `[A-Za-z0-9._-]` becomes `_`.
fn file_safe(s: &str) -> String {
    s.chars().map(|c| if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') { c } else { '_' }).collect()
}

/// Axis numbers: thousands separated from 1,000 (counts of hosts, calls, SAs), else at most
/// four decimals with trailing zeros trimmed.
fn human(v: f64) -> String {
    if !v.is_finite() {
        return v.to_string();
    }
    if v.abs() >= 1e12 {
        return format!("{v:.3e}");
    }
    if v.abs() >= 1000.0 {
        let n = v.round() as i64;
        let digits = n.unsigned_abs().to_string();
        let mut s = String::new();
        for (i, c) in digits.chars().enumerate() {
            if i > 0 && (digits.len() - i) % 3 == 0 {
                s.push(',');
            }
            s.push(c);
        }
        return if n < 0 { format!("-{s}") } else { s };
    }
    let s = format!("{v:.4}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" { "0".into() } else { s.to_string() }
}

// ---------------------------------------------------------------------------------------
// Shared pieces: colours, text, legends, axes.

/// Series colours, in a fixed order (matplotlib's tab10, which prints and projects well).
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

const GRID: RGBColor = RGBColor(225, 225, 225);
const MARKER: RGBColor = RGBColor(150, 150, 150);
const INK: RGBColor = RGBColor(40, 40, 40);

/// Height of a chart's title area (title and one line under it).
const TITLE_H: u32 = 74;
/// Width of the plot part of the wide charts; legends go to its right.
const PLOT_W: u32 = 950;
const LEGEND_TEXT: u32 = 14;

fn text(size: u32) -> TextStyle<'static> {
    (FONT, size).into_font().color(&INK)
}

/// How a legend entry is drawn.
#[derive(Clone, Copy)]
enum Mark {
    Line,
    Box,
}

type LegendItem = (String, RGBColor, Mark);

/// Pixels a legend needs across (mark, gap, the longest label, margin).
fn legend_width(heading: Option<&str>, items: &[LegendItem]) -> u32 {
    let labels = items.iter().map(|i| 42 + text_width(&i.0, LEGEND_TEXT));
    let heading = heading.map(|h| 8 + text_width(h, LEGEND_TEXT));
    labels.chain(heading).max().unwrap_or(0).max(140) + 16
}

/// A legend in its own area beside a plot, so it never hides data.
fn legend<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    top: i32,
    heading: Option<&str>,
    items: &[LegendItem],
) -> Result<(), String> {
    let mut y = top;
    if let Some(h) = heading {
        area.draw(&Text::new(h.to_string(), (8, y), text(LEGEND_TEXT))).map_err(err)?;
        y += 24;
    }
    for (label, colour, mark) in items {
        match mark {
            Mark::Line => area.draw(&PathElement::new(vec![(8, y + 8), (34, y + 8)], colour.stroke_width(3))),
            Mark::Box => area.draw(&Rectangle::new([(12, y + 1), (28, y + 15)], colour.filled())),
        }
        .map_err(err)?;
        area.draw(&Text::new(label.clone(), (42, y), text(LEGEND_TEXT))).map_err(err)?;
        y += 24;
    }
    Ok(())
}

/// A message in the middle of an empty plot.
fn note<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, message: &str) -> Result<(), String> {
    let (w, h) = area.dim_in_pixel();
    let style = text(17).pos(Pos::new(HPos::Center, VPos::Center));
    area.draw(&Text::new(message.to_string(), (w as i32 / 2, h as i32 / 2), style)).map_err(err)
}

/// Title and a line under it, centred in the `TITLE_H` strip at the top; the rest of `root`.
fn titled<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    title: &str,
    subtitle: &str,
) -> Result<DrawingArea<DB, Shift>, String> {
    let (top, rest) = root.split_vertically(TITLE_H);
    let centre = top.dim_in_pixel().0 as i32 / 2;
    let style = |size| text(size).pos(Pos::new(HPos::Center, VPos::Center));
    top.draw(&Text::new(title.to_string(), (centre, 24), style(24))).map_err(err)?;
    if !subtitle.is_empty() {
        top.draw(&Text::new(subtitle.to_string(), (centre, 54), style(14))).map_err(err)?;
    }
    Ok(rest)
}

/// A numeric axis with ticks exactly where asked (days at week starts, category centres,
/// sweep values, 1-2-5 on a log scale). plotters' own `with_key_points` has no label formatter
/// on f64 axes, and its log axis crowds labels, hence this.
#[derive(Clone)]
struct Axis {
    lo: f64,
    hi: f64,
    log: bool,
    keys: Vec<f64>,
}

impl Axis {
    fn keyed(lo: f64, hi: f64, keys: Vec<f64>) -> Self {
        Axis { lo, hi, log: false, keys }
    }

    /// Ticks at multiples of the first step that gives at most `max` of them.
    fn stepped(lo: f64, hi: f64, steps: &[f64], max: usize) -> Self {
        let step = steps.iter().copied().find(|s| (hi - lo) / s <= max as f64).unwrap_or((hi - lo) / max as f64);
        let first = (lo / step).ceil() as i64;
        let last = (hi / step).floor() as i64;
        Axis::keyed(lo, hi, (first..=last).map(|k| k as f64 * step).collect())
    }

    /// Log scale with ticks at 1, 2 and 5 times powers of ten.
    fn log(lo: f64, hi: f64) -> Self {
        let mut keys = Vec::new();
        for exp in (lo.log10().floor() as i32)..=(hi.log10().ceil() as i32) {
            for m in [1.0, 2.0, 5.0] {
                let k = m * 10f64.powi(exp);
                if k >= lo && k <= hi {
                    keys.push(k);
                }
            }
        }
        Axis { lo, hi, log: true, keys }
    }
}

impl Ranged for Axis {
    type FormatOption = DefaultFormatting;
    type ValueType = f64;

    fn map(&self, value: &f64, limit: (i32, i32)) -> i32 {
        let f = |v: f64| if self.log { v.max(f64::MIN_POSITIVE).ln() } else { v };
        let (a, b) = (f(self.lo), f(self.hi));
        if b == a {
            return limit.0;
        }
        let share = (f(*value) - a) / (b - a);
        // As plotters' RangedCoordf64 rounds, so grid lines and data agree.
        limit.0 + (f64::from(limit.1 - limit.0) * share + 1e-3).floor() as i32
    }

    fn key_points<Hint: KeyPointHint>(&self, hint: Hint) -> Vec<f64> {
        // Bold points only: no light grid lines between ticks.
        if hint.weight().allow_light_points() { Vec::new() } else { self.keys.clone() }
    }

    fn range(&self) -> std::ops::Range<f64> {
        self.lo..self.hi
    }
}

type XyChart<'a, DB> = ChartContext<'a, DB, Cartesian2d<Axis, RangedCoordf64>>;

/// A plot with a light grid, axis descriptions and thousands-separated numbers.
fn xy_chart<'a, DB: DrawingBackend>(
    area: &'a DrawingArea<DB, Shift>,
    caption: &str,
    x: Axis,
    y: (f64, f64),
    x_desc: &str,
    y_desc: &str,
) -> Result<XyChart<'a, DB>, String> {
    let mut builder = ChartBuilder::on(area);
    if !caption.is_empty() {
        builder.caption(caption, text(18));
    }
    let mut chart =
        builder.margin(10).x_label_area_size(44).y_label_area_size(86).build_cartesian_2d(x, y.0..y.1).map_err(err)?;
    chart
        .configure_mesh()
        .x_desc(x_desc)
        .y_desc(y_desc)
        .label_style(text(13))
        .axis_desc_style(text(14))
        .x_label_formatter(&|v| human(*v))
        .y_label_formatter(&|v| human(*v))
        .bold_line_style(GRID)
        .light_line_style(WHITE)
        .draw()
        .map_err(err)?;
    Ok(chart)
}

/// Upper end of a value axis: a little above the data, never an empty range.
fn headroom(max: f64) -> f64 {
    if max > 0.0 { max * 1.08 } else { 1.0 }
}

/// The x axis of day-indexed panels: day d is centred on d; ticks at week starts (every day
/// in short runs).
fn day_axis(days: u32) -> Axis {
    Axis::stepped(-0.5, f64::from(days.max(1)) - 0.5, &[1.0, 7.0, 14.0, 28.0, 56.0, 91.0, 182.0, 364.0], 16)
}

/// Runs shorter than this show calls per day, not per (mostly partial) week.
const WEEKLY_FROM_DAYS: u32 = 14;

// ---------------------------------------------------------------------------------------
// rollout_timeline: timeline.csv (+ rollout_events.csv)

#[derive(Debug, Deserialize)]
struct TimelineIn {
    day: u32,
    #[serde(default)]
    date: Option<String>,
    #[serde(default)]
    hosts_no_policy: Option<f64>,
    #[serde(default)]
    hosts_permit_only: Option<f64>,
    #[serde(default)]
    hosts_request: Option<f64>,
    #[serde(default)]
    hosts_secure_request: Option<f64>,
    #[serde(default)]
    hosts_require: Option<f64>,
    #[serde(default)]
    hosts_require_encryption: Option<f64>,
    #[serde(default)]
    protected_pct_managed: Option<f64>,
    #[serde(default)]
    calls_ipsec: Option<f64>,
    #[serde(default)]
    calls_total: Option<f64>,
}

#[derive(Debug, Deserialize)]
struct EventIn {
    day: u32,
    #[serde(default)]
    date: Option<String>,
    wave: String,
    event: String,
}

/// Waves that started on one day: a vertical marker numbered `n`.
struct WaveMark {
    n: usize,
    day: u32,
    date: String,
    waves: Vec<String>,
}

/// A labelled, coloured series of points.
struct Series<P> {
    label: String,
    colour: RGBColor,
    points: Vec<P>,
}

impl<P> Series<P> {
    fn new(label: &str, colour: RGBColor, points: Vec<P>) -> Self {
        Series { label: label.to_string(), colour, points }
    }
}

/// One panel of the timeline: day-indexed lines, or bars one bin (a day or a week) wide.
struct Panel {
    caption: String,
    y_desc: String,
    /// Fixed value range (percentages), else from the data.
    y_max: Option<f64>,
    /// (day, value).
    lines: Vec<Series<(f64, f64)>>,
    /// (bin, value): a bar over days [bin * bin_days, (bin + 1) * bin_days).
    bars: Option<Series<(u32, f64)>>,
    empty: &'static str,
}

impl Panel {
    fn has_data(&self) -> bool {
        self.lines.iter().any(|l| !l.points.is_empty()) || self.bars.as_ref().is_some_and(|b| !b.points.is_empty())
    }

    fn max(&self) -> f64 {
        let lines = self.lines.iter().flat_map(|l| l.points.iter().map(|p| p.1));
        let bars = self.bars.iter().flat_map(|b| b.points.iter().map(|p| p.1));
        lines.chain(bars).fold(0.0, f64::max)
    }

    fn legend(&self, marks: bool) -> Vec<LegendItem> {
        let mut items: Vec<LegendItem> = Vec::new();
        if let Some(b) = &self.bars {
            items.push((b.label.clone(), b.colour, Mark::Box));
        }
        items.extend(self.lines.iter().map(|l| (l.label.clone(), l.colour, Mark::Line)));
        if marks {
            items.push(("wave started (key below)".into(), MARKER, Mark::Line));
        }
        items
    }
}

struct Timeline {
    days: u32,
    bin_days: u32,
    x_desc: String,
    panels: Vec<Panel>,
    marks: Vec<WaveMark>,
    legend_w: u32,
    /// Lines of the wave key and how many columns they fit in.
    key: Vec<String>,
    key_columns: usize,
}

const PANEL_H: u32 = 270;
const KEY_ROW_H: u32 = 21;
const KEY_TEXT: u32 = 13;

/// Sums per bin of `bin_days` days from day 0, for the days that have the column.
fn binned(days: &[TimelineIn], bin_days: u32, f: impl Fn(&TimelineIn) -> Option<f64>) -> Vec<(u32, f64)> {
    let mut bins: BTreeMap<u32, f64> = BTreeMap::new();
    for d in days {
        if let Some(v) = f(d) {
            *bins.entry(d.day / bin_days).or_default() += v;
        }
    }
    bins.into_iter().collect()
}

impl Timeline {
    fn new(days: &[TimelineIn], events: &[EventIn]) -> Self {
        let last = days.iter().map(|d| d.day).max().unwrap_or(0);
        let (bin_days, per) = if last + 1 < WEEKLY_FROM_DAYS { (1, "day") } else { (7, "week") };
        let series = |f: &dyn Fn(&TimelineIn) -> Option<f64>| -> Vec<(f64, f64)> {
            days.iter().filter_map(|d| f(d).map(|v| (f64::from(d.day), v))).collect()
        };
        // Colours by how much protection a state gives: grey (none) to red (encryption).
        type Column = fn(&TimelineIn) -> Option<f64>;
        let states: [(&str, RGBColor, Column); 6] = [
            ("no policy", RGBColor(127, 127, 127), |d| d.hosts_no_policy),
            ("permit only", RGBColor(188, 189, 34), |d| d.hosts_permit_only),
            ("Request", PALETTE[0], |d| d.hosts_request),
            ("Secure Request", PALETTE[2], |d| d.hosts_secure_request),
            ("Require", PALETTE[1], |d| d.hosts_require),
            ("Require Encryption", PALETTE[3], |d| d.hosts_require_encryption),
        ];
        let panels = vec![
            Panel {
                caption: "Hosts by IPsec policy state".into(),
                y_desc: "hosts".into(),
                y_max: None,
                lines: states.iter().map(|(label, c, f)| Series::new(label, *c, series(f))).collect(),
                bars: None,
                empty: "no IPsec policy in this run",
            },
            Panel {
                caption: "Protected share of traffic between managed hosts".into(),
                y_desc: "bytes under IPsec (%)".into(),
                y_max: Some(100.0),
                lines: vec![Series::new("protected", PALETTE[2], series(&|d| d.protected_pct_managed))],
                bars: None,
                empty: "no IPsec in this run",
            },
            Panel {
                caption: format!("IPsec-related helpdesk calls per {per}"),
                y_desc: format!("calls per {per}"),
                y_max: None,
                lines: Vec::new(),
                bars: Some(Series::new("IPsec-related calls", PALETTE[3], binned(days, bin_days, |d| d.calls_ipsec))),
                empty: "no helpdesk in this run",
            },
            Panel {
                caption: format!("All helpdesk calls per {per}"),
                y_desc: format!("calls per {per}"),
                y_max: None,
                lines: Vec::new(),
                bars: Some(Series::new("all calls", PALETTE[0], binned(days, bin_days, |d| d.calls_total))),
                empty: "no helpdesk in this run",
            },
        ];
        let mut by_day: BTreeMap<u32, WaveMark> = BTreeMap::new();
        for e in events.iter().filter(|e| e.event == "started") {
            let m = by_day.entry(e.day).or_insert_with(|| WaveMark {
                n: 0,
                day: e.day,
                date: e.date.clone().unwrap_or_default(),
                waves: Vec::new(),
            });
            m.waves.push(e.wave.clone());
        }
        let marks: Vec<WaveMark> = by_day.into_values().enumerate().map(|(i, m)| WaveMark { n: i + 1, ..m }).collect();
        let start = days.iter().find(|d| d.day == 0).and_then(|d| d.date.as_deref()).filter(|s| !s.is_empty());
        let x_desc = match (start, bin_days) {
            (Some(date), 7) => format!("day of the run (day 0 = {date}); weeks are 7-day blocks from day 0"),
            (Some(date), _) => format!("day of the run (day 0 = {date})"),
            (None, _) => "day of the run".to_string(),
        };
        let items: Vec<LegendItem> = panels.iter().flat_map(|p| p.legend(!marks.is_empty())).collect();
        let legend_w = legend_width(None, &items);
        let key: Vec<String> = marks
            .iter()
            .map(|m| {
                let when =
                    if m.date.is_empty() { format!("day {}", m.day) } else { format!("day {} ({})", m.day, m.date) };
                format!("{:>2}  {when}: {}", m.n, m.waves.join("; "))
            })
            .collect();
        let width = PLOT_W + legend_w;
        // Two columns when every line fits in half the width.
        let key_columns = if key.iter().all(|l| text_width(l, KEY_TEXT) + 40 < width / 2) { 2 } else { 1 };
        Timeline { days: last + 1, bin_days, x_desc, panels, marks, legend_w, key, key_columns }
    }

    fn key_h(&self) -> u32 {
        if self.key.is_empty() { 0 } else { (self.key.len().div_ceil(self.key_columns) as u32 + 1) * KEY_ROW_H + 24 }
    }

    /// One panel; `numbered` puts the wave numbers at the top of its markers (the first
    /// panel only, given headroom for them, so they never sit on data).
    fn draw_panel<DB: DrawingBackend>(
        &self,
        area: &DrawingArea<DB, Shift>,
        p: &Panel,
        numbered: bool,
    ) -> Result<(), String> {
        let (plot, side) = area.split_horizontally(PLOT_W);
        let y_max = match p.y_max {
            Some(m) => m,
            None if numbered && !self.marks.is_empty() => headroom(p.max()) * 1.2,
            None => headroom(p.max()),
        };
        let mut chart = xy_chart(&plot, &p.caption, day_axis(self.days), (0.0, y_max), &self.x_desc, &p.y_desc)?;
        if let Some(bars) = &p.bars {
            let (b, colour) = (f64::from(self.bin_days), bars.colour);
            chart
                .draw_series(bars.points.iter().map(|&(i, v)| {
                    // Week bars touch (1 px apart); day bars leave a gap, as days are points.
                    let (x, w) = if b > 1.0 { (f64::from(i) * b - 0.5, b) } else { (f64::from(i) - 0.4, 0.8) };
                    let mut r = Rectangle::new([(x, 0.0), (x + w, v)], colour.mix(0.85).filled());
                    r.set_margin(0, 0, 1, 1);
                    r
                }))
                .map_err(err)?;
        }
        // Over the bars (thin, so they hide little) but under the lines.
        for m in &self.marks {
            let x = f64::from(m.day);
            chart.draw_series(LineSeries::new([(x, 0.0), (x, y_max)], MARKER.stroke_width(1))).map_err(err)?;
        }
        for line in &p.lines {
            let (points, colour) = (&line.points, line.colour);
            chart.draw_series(LineSeries::new(points.iter().copied(), colour.stroke_width(2))).map_err(err)?;
            // A line needs two days; short runs get a dot per day as well.
            if points.len() <= 31 {
                chart.draw_series(points.iter().map(|&(x, y)| Circle::new((x, y), 3, colour.filled()))).map_err(err)?;
            }
        }
        if numbered {
            for m in &self.marks {
                // Staggered so numbers of waves a day or two apart do not overprint.
                let dy = if m.n % 2 == 0 { 18 } else { 2 };
                let label = Text::new(m.n.to_string(), (3, dy), text(12).color(&MARKER));
                chart.draw_series(std::iter::once(EmptyElement::at((f64::from(m.day), y_max)) + label)).map_err(err)?;
            }
        }
        if !p.has_data() {
            note(&plot, p.empty)?;
        }
        legend(&side, 40, None, &p.legend(!self.marks.is_empty()))
    }
}

impl Figure for Timeline {
    fn size(&self) -> (u32, u32) {
        (PLOT_W + self.legend_w, TITLE_H + PANEL_H * self.panels.len() as u32 + self.key_h())
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), String> {
        let subtitle = if self.marks.is_empty() {
            String::new()
        } else {
            "grey vertical lines: days on which rollout waves started (numbered in the top panel, key at the bottom)"
                .to_string()
        };
        let rest = titled(root, "Rollout timeline", &subtitle)?;
        let (panels, key) = rest.split_vertically(PANEL_H * self.panels.len() as u32);
        for (i, (area, p)) in panels.split_evenly((self.panels.len(), 1)).iter().zip(&self.panels).enumerate() {
            self.draw_panel(area, p, i == 0)?;
        }
        if self.key.is_empty() {
            return Ok(());
        }
        key.draw(&Text::new("Waves started", (20, 12), text(15))).map_err(err)?;
        let per_col = self.key.len().div_ceil(self.key_columns);
        let col_w = key.dim_in_pixel().0 as i32 / self.key_columns as i32;
        for (i, line) in self.key.iter().enumerate() {
            let (col, row) = ((i / per_col) as i32, (i % per_col) as i32);
            let pos = (20 + col * col_w, 12 + KEY_ROW_H as i32 * (row + 1));
            key.draw(&Text::new(line.clone(), pos, text(KEY_TEXT))).map_err(err)?;
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------
// overhead_by_app: overhead_by_app.csv

#[derive(Debug, Deserialize)]
struct OverheadIn {
    app: String,
    #[serde(default)]
    clear_bytes: Option<f64>,
    #[serde(default)]
    wire_bytes: Option<f64>,
    #[serde(default)]
    overhead_pct: Option<f64>,
}

struct Overhead {
    /// Top bar first: largest overhead first, applications without IPsec traffic last.
    rows: Vec<OverheadIn>,
    /// Byte-weighted over all applications.
    overall_pct: Option<f64>,
}

const BAR_H: u32 = 30;

fn pct(v: f64) -> String {
    format!("{v:.2}%")
}

impl Overhead {
    fn new(mut rows: Vec<OverheadIn>) -> Self {
        rows.sort_by(|a, b| match (a.overhead_pct, b.overhead_pct) {
            (Some(x), Some(y)) => y.total_cmp(&x).then_with(|| a.app.cmp(&b.app)),
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (None, None) => a.app.cmp(&b.app),
        });
        let clear: f64 = rows.iter().filter_map(|r| r.clear_bytes).sum();
        let wire: f64 = rows.iter().filter_map(|r| r.wire_bytes).sum();
        let overall_pct = (clear > 0.0).then(|| 100.0 * (wire - clear) / clear);
        Overhead { rows, overall_pct }
    }
}

impl Figure for Overhead {
    fn size(&self) -> (u32, u32) {
        (1000, TITLE_H + 70 + BAR_H * self.rows.len().max(1) as u32)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), String> {
        let subtitle = match self.overall_pct {
            Some(v) => format!("red dashed line: all applications together, {} (byte-weighted)", pct(v)),
            None => String::new(),
        };
        let area = titled(root, "IPsec bandwidth overhead by application", &subtitle)?;
        let n = self.rows.len();
        let max = self.rows.iter().filter_map(|r| r.overhead_pct).chain(self.overall_pct).fold(0.0, f64::max);
        // Room on the right for the value labels.
        let x_max = if max > 0.0 { max * 1.2 } else { 1.0 };
        let names: Vec<&str> = self.rows.iter().map(|r| r.app.as_str()).collect();
        let name_w = names.iter().map(|s| text_width(s, 13)).max().unwrap_or(0);
        // Row i (from the top) is the band [n - i - 1, n - i); labels at band centres.
        let centres: Vec<f64> = (0..n).map(|i| i as f64 + 0.5).collect();
        let mut chart = ChartBuilder::on(&area)
            .margin(14)
            .x_label_area_size(48)
            .y_label_area_size(name_w + 20)
            .build_cartesian_2d(Axis::stepped(0.0, x_max, &[0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 50.0], 12), {
                Axis::keyed(0.0, n.max(1) as f64, centres)
            })
            .map_err(err)?;
        let label = |y: &f64| {
            let i = n.saturating_sub(1 + y.floor() as usize);
            names.get(i).map_or(String::new(), |s| s.to_string())
        };
        chart
            .configure_mesh()
            .x_desc("extra bytes on the wire over clear IP bytes, traffic under IPsec (%)")
            .label_style(text(13))
            .axis_desc_style(text(14))
            .x_label_formatter(&|v| human(*v))
            .y_label_formatter(&label)
            .disable_y_mesh()
            .bold_line_style(GRID)
            .light_line_style(WHITE)
            .draw()
            .map_err(err)?;
        let band = |i: usize| (n - i - 1) as f64;
        chart
            .draw_series(self.rows.iter().enumerate().filter_map(|(i, r)| {
                let v = r.overhead_pct.filter(|v| *v > 0.0)?;
                Some(Rectangle::new([(0.0, band(i) + 0.18), (v, band(i) + 0.82)], PALETTE[0].filled()))
            }))
            .map_err(err)?;
        if let Some(v) = self.overall_pct {
            let top = n.max(1) as f64;
            chart
                .draw_series(DashedLineSeries::new([(v, 0.0), (v, top)], 6, 4, PALETTE[3].stroke_width(2)))
                .map_err(err)?;
        }
        for (i, r) in self.rows.iter().enumerate() {
            let (end, caption) = match r.overhead_pct {
                Some(v) => (v.max(0.0), pct(v)),
                None => (0.0, "no IPsec traffic".to_string()),
            };
            // On a white patch, so the dashed line does not run through the figure.
            let w = text_width(&caption, 13) as i32;
            let patch = Rectangle::new([(3, -9), (w + 9, 9)], WHITE.filled());
            let style = text(13).pos(Pos::new(HPos::Left, VPos::Center));
            chart
                .draw_series(std::iter::once(
                    EmptyElement::at((end, band(i) + 0.5)) + patch + Text::new(caption, (6, 0), style),
                ))
                .map_err(err)?;
        }
        if n == 0 {
            note(&area, "no application carried packets")?;
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------
// failover_stalls: failover_stalls.csv

#[derive(Debug, Deserialize)]
struct StallIn {
    client_os: String,
    stall_s: f64,
    /// Connections the row stands for (sampled runs); 1 when absent.
    #[serde(default)]
    weight: Option<f64>,
}

struct Stalls {
    /// Per client OS (sorted): (stall seconds, weight), sorted by stall.
    by_os: BTreeMap<String, Vec<(f64, f64)>>,
    x_max: f64,
}

/// The log axis starts here: shorter stalls are drawn at it.
const STALL_MIN_S: f64 = 0.1;

impl Stalls {
    fn new(rows: &[StallIn]) -> Self {
        let mut by_os: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
        for r in rows {
            let stall = if r.stall_s.is_finite() { r.stall_s.max(STALL_MIN_S) } else { STALL_MIN_S };
            by_os.entry(r.client_os.clone()).or_default().push((stall, r.weight.unwrap_or(1.0)));
        }
        by_os.values_mut().for_each(|v| v.sort_by(|a, b| a.0.total_cmp(&b.0)));
        let x_max = rows.iter().map(|r| r.stall_s).filter(|s| s.is_finite()).fold(10.0f64, f64::max) * 1.5;
        Stalls { by_os, x_max }
    }
}

impl Figure for Stalls {
    fn size(&self) -> (u32, u32) {
        (960, 580)
    }

    /// For each client OS, the share of affected connections (weighted) that stalled at most x
    /// seconds (x on a log scale).
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), String> {
        let area = titled(
            root,
            "NLB failover stalls by client OS",
            "share of the connections that met a failed node which stalled at most x seconds",
        )?;
        let mut chart = ChartBuilder::on(&area)
            .margin(16)
            .x_label_area_size(48)
            .y_label_area_size(70)
            .build_cartesian_2d(Axis::log(STALL_MIN_S, self.x_max), 0f64..1.0)
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_desc("stall (seconds, log scale)")
            .y_desc("share of affected connections (cumulative)")
            .label_style(text(13))
            .axis_desc_style(text(14))
            .x_label_formatter(&|v| human(*v))
            .bold_line_style(GRID)
            .light_line_style(WHITE)
            .draw()
            .map_err(err)?;
        for (i, (os, points)) in self.by_os.iter().enumerate() {
            let total: f64 = points.iter().map(|p| p.1).sum();
            if total <= 0.0 {
                continue;
            }
            let mut acc = 0.0;
            let mut steps = Vec::with_capacity(points.len() * 2 + 1);
            steps.push((points[0].0, 0.0));
            for &(x, w) in points {
                steps.push((x, acc / total));
                acc += w;
                steps.push((x, acc / total));
            }
            let colour = PALETTE[i % PALETTE.len()];
            chart
                .draw_series(LineSeries::new(steps, colour.stroke_width(2)))
                .map_err(err)?
                .label(format!("{os} ({} row{})", points.len(), if points.len() == 1 { "" } else { "s" }))
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], colour.stroke_width(2)));
        }
        if self.by_os.is_empty() {
            note(&area, "no connection met a failed node")?;
        } else {
            // Lower right: cumulative curves leave it empty until their last steps.
            chart
                .configure_series_labels()
                .background_style(WHITE.mix(0.9))
                .border_style(INK)
                .label_font(text(14))
                .position(SeriesLabelPosition::LowerRight)
                .draw()
                .map_err(err)?;
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------
// helpdesk_calls: helpdesk.csv

#[derive(Debug, Deserialize)]
struct HelpdeskIn {
    day: u32,
    #[serde(default)]
    date: Option<String>,
    #[serde(default)]
    calls_ipsec_blocked: Option<f64>,
    #[serde(default)]
    calls_ipsec_delay: Option<f64>,
    #[serde(default)]
    calls_failover_stall: Option<f64>,
    #[serde(default)]
    calls_nap_notice: Option<f64>,
    #[serde(default)]
    calls_nap_blocked: Option<f64>,
    #[serde(default)]
    calls_firewall: Option<f64>,
    #[serde(default)]
    calls_other: Option<f64>,
}

/// Causes in stacking order (bottom first); `other` last because it dwarfs the rest.
const CAUSES: [(&str, RGBColor); 7] = [
    ("IPsec: blocked", RGBColor(214, 39, 40)),
    ("IPsec: slow connection", RGBColor(255, 127, 14)),
    ("NLB failover stall", RGBColor(148, 103, 189)),
    ("NAP: notice", RGBColor(23, 190, 207)),
    ("NAP: blocked", RGBColor(31, 119, 180)),
    ("Windows Firewall", RGBColor(140, 86, 75)),
    ("other causes", RGBColor(199, 199, 199)),
];

struct Helpdesk {
    /// Per bin (a week, or a day in short runs): calls by cause, in `CAUSES` order.
    bins: Vec<[f64; 7]>,
    per: &'static str,
    x_desc: String,
    legend_w: u32,
}

const STACK_H: u32 = 380;

impl Helpdesk {
    fn new(rows: &[HelpdeskIn]) -> Self {
        let days = rows.iter().map(|r| r.day + 1).max().unwrap_or(0);
        let (bin_days, per) = if days < WEEKLY_FROM_DAYS { (1, "day") } else { (7, "week") };
        let mut bins = vec![[0.0; 7]; days.div_ceil(bin_days) as usize];
        for r in rows {
            let causes = [
                r.calls_ipsec_blocked,
                r.calls_ipsec_delay,
                r.calls_failover_stall,
                r.calls_nap_notice,
                r.calls_nap_blocked,
                r.calls_firewall,
                r.calls_other,
            ];
            for (acc, v) in bins[(r.day / bin_days) as usize].iter_mut().zip(causes) {
                *acc += v.unwrap_or(0.0);
            }
        }
        let start = rows.iter().find(|r| r.day == 0).and_then(|r| r.date.as_deref()).filter(|s| !s.is_empty());
        let x_desc = match (start, bin_days) {
            (Some(date), 7) => format!("week of the run (7-day blocks; week 0 starts {date})"),
            (None, 7) => "week of the run (7-day blocks from day 0)".to_string(),
            (Some(date), _) => format!("day of the run (day 0 = {date})"),
            (None, _) => "day of the run".to_string(),
        };
        let items: Vec<LegendItem> = CAUSES.iter().map(|(l, c)| (l.to_string(), *c, Mark::Box)).collect();
        Helpdesk { bins, per, x_desc, legend_w: legend_width(None, &items) }
    }

    fn draw_stack<DB: DrawingBackend>(
        &self,
        area: &DrawingArea<DB, Shift>,
        caption: &str,
        causes: usize,
    ) -> Result<(), String> {
        let (plot, side) = area.split_horizontally(PLOT_W);
        let max = self.bins.iter().map(|w| w[..causes].iter().sum::<f64>()).fold(0.0, f64::max);
        // Bin i is the bar centred on i.
        let x = Axis::stepped(-0.5, self.bins.len().max(1) as f64 - 0.5, &[1.0, 2.0, 4.0, 5.0, 10.0, 20.0, 50.0], 20);
        let y_desc = format!("calls per {}", self.per);
        let mut chart = xy_chart(&plot, caption, x, (0.0, headroom(max)), &self.x_desc, &y_desc)?;
        for (k, (_, colour)) in CAUSES.iter().enumerate().take(causes) {
            chart
                .draw_series(self.bins.iter().enumerate().filter(|(_, w)| w[k] > 0.0).map(|(i, w)| {
                    let base: f64 = w[..k].iter().sum();
                    let x = i as f64;
                    Rectangle::new([(x - 0.4, base), (x + 0.4, base + w[k])], colour.filled())
                }))
                .map_err(err)?;
        }
        if max <= 0.0 {
            note(&plot, "no calls")?;
        }
        // Legend top to bottom in the order the stack reads from the top.
        let items: Vec<LegendItem> =
            CAUSES.iter().take(causes).rev().map(|(label, colour)| (label.to_string(), *colour, Mark::Box)).collect();
        legend(&side, 40, None, &items)
    }
}

impl Figure for Helpdesk {
    fn size(&self) -> (u32, u32) {
        (PLOT_W + self.legend_w, TITLE_H + 2 * STACK_H)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), String> {
        let title = format!("Helpdesk calls per {} by cause", self.per);
        let rest = titled(root, &title, "stacked; the lower chart leaves out the other causes to show the rest")?;
        let (top, bottom) = rest.split_vertically(STACK_H);
        self.draw_stack(&top, "All causes", CAUSES.len())?;
        self.draw_stack(&bottom, "IPsec, NLB, NAP and firewall causes only", CAUSES.len() - 1)
    }
}

// ---------------------------------------------------------------------------------------
// sweep_<metric>: sweep.json + sweep.csv

/// A point on the first axis: mean and range over the rows (replications) there.
struct Stat {
    x: usize,
    min: f64,
    mean: f64,
    max: f64,
}

struct SweepChart {
    name: String,
    metric: String,
    x_key: String,
    /// Labels of the first axis's values, in sweep order.
    x_labels: Vec<String>,
    /// The values themselves when they are all numbers (then the x axis is numeric).
    x_numeric: Option<Vec<f64>>,
    /// The other axes' keys (the legend's heading), if any.
    series_key: Option<String>,
    /// Per series (a value of the other axes, in sweep order): its label and points.
    series: Vec<(String, Vec<Stat>)>,
    seeds: usize,
}

/// One chart per metric column whose cells are numbers (empty cells are runs that computed
/// nothing of the kind; a column of text, such as a link name, is not charted).
fn sweep_charts(plan: &Plan, csv_bytes: &[u8]) -> Result<Vec<SweepChart>, PlotError> {
    let file = "sweep.csv";
    let mut reader = csv::Reader::from_reader(csv_bytes);
    let header: Vec<String> = reader.headers().map_err(|e| input(file, e))?.iter().map(str::to_string).collect();
    let expected: Vec<&str> =
        ["run", "point", "seed"].into_iter().chain(plan.axes.iter().map(|a| a.key.as_str())).collect();
    if header.len() < expected.len() || header.iter().zip(&expected).any(|(h, e)| h != e) {
        return Err(input(
            file,
            format!("header does not start with {} (the columns sweep.json implies)", expected.join(",")),
        ));
    }
    let points = plan.points();
    let metric_cols = expected.len()..header.len();
    // cells[point] = the rows of that point, each the metric cells.
    let mut cells: Vec<Vec<Vec<String>>> = vec![Vec::new(); points];
    for (i, rec) in reader.records().enumerate() {
        let rec = rec.map_err(|e| input(file, e))?;
        let point: usize =
            rec[1].parse().ok().filter(|p| *p < points).ok_or_else(|| {
                input(file, format!("row {}: point `{}` is not a point of the sweep", i + 1, &rec[1]))
            })?;
        cells[point].push(metric_cols.clone().map(|c| rec[c].to_string()).collect());
    }
    let indices: Vec<Vec<usize>> = (0..points).map(|p| plan.point_indices(p)).collect();
    let labels: Vec<Vec<String>> = (0..points).map(|p| plan.point_labels(p)).collect();
    let (x_key, x_labels, x_numeric) = match plan.axes.first() {
        Some(a) => {
            let mut names = vec![String::new(); a.values.len()];
            for (ix, l) in indices.iter().zip(&labels) {
                names[ix[0]].clone_from(&l[0]);
            }
            let numeric: Option<Vec<f64>> = if a.labels.is_some() {
                None
            } else {
                a.values.iter().map(|v| v.as_float().or_else(|| v.as_integer().map(|i| i as f64))).collect()
            };
            (a.key.clone(), names, numeric)
        }
        None => ("(no axis)".to_string(), vec!["base".to_string()], None),
    };
    // Series: the other axes' values, in the order points run.
    let others: Vec<&str> = plan.axes.iter().skip(1).map(|a| a.key.as_str()).collect();
    let series_key = (!others.is_empty()).then(|| others.join(", "));
    let mut series_of_point = vec![0usize; points];
    let mut series_names: Vec<String> = Vec::new();
    let mut seen: BTreeMap<Vec<usize>, usize> = BTreeMap::new();
    for (p, ix) in indices.iter().enumerate() {
        let rest = ix.get(1..).unwrap_or_default().to_vec();
        let next = seen.len();
        let s = *seen.entry(rest).or_insert(next);
        if s == series_names.len() {
            let name =
                if others.is_empty() { "mean, min-max over seeds".to_string() } else { labels[p][1..].join(", ") };
            series_names.push(name);
        }
        series_of_point[p] = s;
    }
    let mut charts = Vec::new();
    for (m, metric) in header[metric_cols.clone()].iter().enumerate() {
        let mut numeric = true;
        let mut series: Vec<(String, Vec<Stat>)> = series_names.iter().map(|n| (n.clone(), Vec::new())).collect();
        for p in 0..points {
            let mut vals = Vec::new();
            for row in &cells[p] {
                let cell = row[m].trim();
                if cell.is_empty() {
                    continue;
                }
                match cell.parse::<f64>() {
                    Ok(v) if v.is_finite() => vals.push(v),
                    _ => numeric = false,
                }
            }
            if vals.is_empty() {
                continue;
            }
            let x = indices[p].first().copied().unwrap_or(0);
            let mean = vals.iter().sum::<f64>() / vals.len() as f64;
            let min = vals.iter().copied().fold(f64::INFINITY, f64::min);
            let max = vals.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            series[series_of_point[p]].1.push(Stat { x, min, mean, max });
        }
        if !numeric {
            continue;
        }
        charts.push(SweepChart {
            name: plan.name.clone(),
            metric: metric.clone(),
            x_key: x_key.clone(),
            x_labels: x_labels.clone(),
            x_numeric: x_numeric.clone(),
            series_key: series_key.clone(),
            series,
            seeds: plan.seeds.len(),
        });
    }
    Ok(charts)
}

const SWEEP_PLOT_W: u32 = 820;

impl SweepChart {
    fn legend_items(&self) -> Vec<LegendItem> {
        self.series
            .iter()
            .enumerate()
            .map(|(s, (label, _))| (label.clone(), PALETTE[s % PALETTE.len()], Mark::Line))
            .collect()
    }
}

impl Figure for SweepChart {
    fn size(&self) -> (u32, u32) {
        (SWEEP_PLOT_W + legend_width(self.series_key.as_deref(), &self.legend_items()), 620)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), String> {
        let sub = format!(
            "sweep {}: dots are the mean over {} seed(s), bars the min-max across seeds",
            self.name, self.seeds
        );
        let rest = titled(root, &format!("{} by {}", self.metric, self.x_key), &sub)?;
        let (plot, side) = rest.split_horizontally(SWEEP_PLOT_W);
        // x positions: the values on a numeric axis, else 0, 1, 2 ... with labels.
        let xs: Vec<f64> = match &self.x_numeric {
            Some(v) => v.clone(),
            None => (0..self.x_labels.len()).map(|i| i as f64).collect(),
        };
        let (lo, hi) = xs.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &x| (a.min(x), b.max(x)));
        let span = if hi > lo { hi - lo } else { 1.0 };
        let pad = if self.x_numeric.is_some() { span * 0.08 } else { 0.5 };
        // Series side by side around each x, so their bars do not overlap.
        let step = if self.x_numeric.is_some() { span * 0.012 } else { 0.06 };
        let offset = |s: usize| (s as f64 - (self.series.len() as f64 - 1.0) / 2.0) * step;
        let stats = self.series.iter().flat_map(|s| s.1.iter());
        let (ymin, ymax) = stats.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), st| (a.min(st.min), b.max(st.max)));
        let (ylo, yhi) = if ymin > ymax {
            (0.0, 1.0)
        } else {
            let r = if ymax > ymin { ymax - ymin } else { ymax.abs().max(1.0) * 0.05 };
            (ymin - 0.1 * r, ymax + 0.1 * r)
        };
        let mut chart = ChartBuilder::on(&plot)
            .margin(10)
            .x_label_area_size(48)
            .y_label_area_size(100)
            .build_cartesian_2d(Axis::keyed(lo - pad, hi + pad, xs.clone()), ylo..yhi)
            .map_err(err)?;
        let x_label = |v: &f64| match &self.x_numeric {
            Some(_) => human(*v),
            None => {
                let i = v.round();
                if (v - i).abs() < 1e-9 && i >= 0.0 {
                    self.x_labels.get(i as usize).cloned().unwrap_or_default()
                } else {
                    String::new()
                }
            }
        };
        chart
            .configure_mesh()
            .x_desc(self.x_key.as_str())
            .y_desc(self.metric.as_str())
            .label_style(text(13))
            .axis_desc_style(text(14))
            .x_label_formatter(&x_label)
            .y_label_formatter(&|v| human(*v))
            .bold_line_style(GRID)
            .light_line_style(WHITE)
            .draw()
            .map_err(err)?;
        for (s, (_, stats)) in self.series.iter().enumerate() {
            let colour = PALETTE[s % PALETTE.len()];
            let at = |st: &Stat| xs[st.x] + offset(s);
            chart
                .draw_series(LineSeries::new(stats.iter().map(|st| (at(st), st.mean)), colour.stroke_width(2)))
                .map_err(err)?;
            chart
                .draw_series(
                    stats
                        .iter()
                        .map(|st| ErrorBar::new_vertical(at(st), st.min, st.mean, st.max, colour.stroke_width(2), 10)),
                )
                .map_err(err)?;
            chart
                .draw_series(stats.iter().map(|st| Circle::new((at(st), st.mean), 5, colour.filled())))
                .map_err(err)?;
        }
        if self.series.iter().all(|s| s.1.is_empty()) {
            note(&plot, "no run computed this metric")?;
        }
        legend(&side, 20, self.series_key.as_deref(), &self.legend_items())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run_files(files: &[(&str, &str)]) -> Result<Vec<(String, Vec<u8>)>, PlotError> {
        let map: BTreeMap<String, Vec<u8>> =
            files.iter().map(|(n, b)| (n.to_string(), b.as_bytes().to_vec())).collect();
        draw_run(&|name| map.get(name).cloned())
    }

    fn names(out: &[(String, Vec<u8>)]) -> Vec<&str> {
        out.iter().map(|(n, _)| n.as_str()).collect()
    }

    fn png_size(bytes: &[u8]) -> (u32, u32) {
        let reader = png::Decoder::new(std::io::Cursor::new(bytes)).read_info().expect("a valid PNG");
        let info = reader.info();
        (info.width, info.height)
    }

    /// Share of the pixels in rows `rows` of a PNG that are not white.
    fn png_ink(bytes: &[u8], rows: std::ops::Range<usize>) -> f64 {
        let mut reader = png::Decoder::new(std::io::Cursor::new(bytes)).read_info().expect("a valid PNG");
        let mut buf = vec![0; reader.output_buffer_size().expect("a sane size")];
        let info = reader.next_frame(&mut buf).expect("one frame");
        assert_eq!(info.color_type, png::ColorType::Rgb);
        let line = info.line_size;
        let rows = rows.start..rows.end.min(info.height as usize);
        let pixels: Vec<&[u8]> = rows.clone().flat_map(|r| buf[r * line..(r + 1) * line].chunks(3)).collect();
        pixels.iter().filter(|p| **p != [255, 255, 255]).count() as f64 / pixels.len().max(1) as f64
    }

    const TIMELINE: &str = "day,weekday,date,hosts_no_policy,hosts_permit_only,hosts_request,hosts_secure_request,\
hosts_require,hosts_require_encryption,protected_pct_managed,calls_ipsec,calls_total,bytes_dns
0,mon,2007-01-08,100,50,0,0,0,0,0,1,300,5
1,tue,2007-01-09,80,50,20,0,0,0,12.5,3,280,5
7,mon,2007-01-15,20,50,60,20,0,0,80,2,310,5
8,tue,2007-01-16,10,50,40,50,0,0,,0,290,5
";
    const EVENTS: &str = "day,date,phase,wave,event,detail
1,2007-01-09,1 Request,Request pilot,started,1 units
1,2007-01-09,1 Request,Request pilot,done,1 units
7,2007-01-15,2 Secure Request,Secure pilot,started,1 units
";
    const OVERHEAD: &str =
        "app,packets,clear_bytes,wire_bytes,overhead_pct,sessions,sessions_protected,protected_share_pct
dns,10,1000,1100,10.0,5,5,100.0
smb-file,100,100000,103000,3.0,5,5,100.0
xbox,0,0,0,,3,0,
";
    const STALLS: &str = "day,time,cluster,service,node,client,client_os,app,in_progress,cluster_down,ipsec,detection,stall_s,app_failed,weight
0,10:00:00.000,0,web,0,1,win2000,web,true,false,true,idle-timer,320.5,true,25.0
0,10:00:01.000,0,web,0,2,win2000,web,true,false,true,idle-timer,300.0,true,25.0
0,10:00:02.000,0,web,0,3,vista,web,true,false,true,tcp-retransmit,7.5,false,25.0
";
    const HELPDESK: &str = "day,date,weekday,agents,calls_total,calls_ipsec,calls_ipsec_blocked,calls_ipsec_delay,\
calls_failover_stall,calls_nap_notice,calls_nap_blocked,calls_firewall,calls_other
0,2007-01-08,mon,12,311,1,0,0,1,0,0,0,310
1,2007-01-09,tue,12,276,3,2,1,0,0,0,0,273
9,2007-01-17,wed,12,300,4,1,1,0,1,0,1,296
";

    fn all() -> Vec<(&'static str, &'static str)> {
        vec![
            ("timeline.csv", TIMELINE),
            ("rollout_events.csv", EVENTS),
            ("overhead_by_app.csv", OVERHEAD),
            ("failover_stalls.csv", STALLS),
            ("helpdesk.csv", HELPDESK),
        ]
    }

    #[test]
    fn every_chart_draws_as_svg_and_png_deterministically() {
        let a = run_files(&all()).unwrap();
        let b = run_files(&all()).unwrap();
        assert_eq!(
            names(&a),
            [
                "plots/failover_stalls.png",
                "plots/failover_stalls.svg",
                "plots/helpdesk_calls.png",
                "plots/helpdesk_calls.svg",
                "plots/overhead_by_app.png",
                "plots/overhead_by_app.svg",
                "plots/rollout_timeline.png",
                "plots/rollout_timeline.svg",
            ]
        );
        assert!(a == b, "same input, same bytes");
        for (name, bytes) in &a {
            if name.ends_with(".svg") {
                assert!(bytes.starts_with(b"<svg"), "{name}");
            } else {
                let svg = &a.iter().find(|(n, _)| *n == name.replace(".png", ".svg")).unwrap().1;
                let text = String::from_utf8_lossy(svg);
                // The PNG has the SVG's pixel size.
                let (w, h) = png_size(bytes);
                assert!(text.contains(&format!(r#"width="{w}" height="{h}""#)), "{name}: {w}x{h}");
                // Something is drawn, and the title strip holds text (a few percent of ink).
                assert!(png_ink(bytes, 0..h as usize) > 0.02, "{name} is nearly blank");
                let title = png_ink(bytes, 0..TITLE_H as usize);
                assert!(title > 0.005 && title < 0.2, "{name}: title strip ink {title}");
            }
        }
    }

    #[test]
    fn charts_carry_titles_labels_and_legends() {
        let out = run_files(&all()).unwrap();
        let svg = |n: &str| String::from_utf8(out.iter().find(|(name, _)| name == n).unwrap().1.clone()).unwrap();
        let t = svg("plots/rollout_timeline.svg");
        for s in [
            "Rollout timeline",
            "Secure Request",
            "bytes under IPsec (%)",
            "calls per day",
            "Request pilot",
            "day 0 = 2007-01-08",
        ] {
            assert!(t.contains(s), "timeline lacks {s:?}");
        }
        let o = svg("plots/overhead_by_app.svg");
        for s in ["smb-file", "10.00%", "no IPsec traffic", "all applications together, 3.07%"] {
            assert!(o.contains(s), "overhead lacks {s:?}");
        }
        let h = svg("plots/helpdesk_calls.svg");
        for s in ["IPsec: blocked", "other causes", "calls per day", "day 0 = 2007-01-08"] {
            assert!(h.contains(s), "helpdesk lacks {s:?}");
        }
        let f = svg("plots/failover_stalls.svg");
        assert!(f.contains("win2000 (2 rows)") && f.contains("vista (1 row)"));
    }

    #[test]
    fn only_charts_whose_input_is_there() {
        let out = run_files(&[("overhead_by_app.csv", OVERHEAD)]).unwrap();
        assert_eq!(names(&out), ["plots/overhead_by_app.png", "plots/overhead_by_app.svg"]);
        assert!(run_files(&[]).unwrap().is_empty());
    }

    #[test]
    fn empty_inputs_say_so() {
        let header = |s: &str| s.lines().next().unwrap().to_string() + "\n";
        let (stalls, overhead, helpdesk) = (header(STALLS), header(OVERHEAD), header(HELPDESK));
        let timeline = "day,weekday,hosts_no_policy,protected_pct_managed,calls_ipsec,calls_total\n0,mon,,,,\n";
        let out = run_files(&[
            ("failover_stalls.csv", &stalls),
            ("overhead_by_app.csv", &overhead),
            ("helpdesk.csv", &helpdesk),
            ("timeline.csv", timeline),
        ])
        .unwrap();
        let all: String =
            out.iter().filter(|(n, _)| n.ends_with(".svg")).map(|(_, b)| String::from_utf8_lossy(b)).collect();
        for s in
            ["no connection met a failed node", "no application carried packets", "no calls", "no helpdesk in this run"]
        {
            assert!(all.contains(s), "{s:?}");
        }
    }

    #[test]
    fn bad_csv_is_an_error_naming_the_file() {
        let e = run_files(&[("helpdesk.csv", "day,calls_other\nmonday,3\n")]).unwrap_err();
        assert!(matches!(&e, PlotError::Input { file, .. } if file == "helpdesk.csv"), "{e}");
        assert!(e.to_string().starts_with("helpdesk.csv: "), "{e}");
        let e = run_files(&[("failover_stalls.csv", "client_os,stall_s\nxp,1,2\n")]).unwrap_err();
        assert!(e.to_string().starts_with("failover_stalls.csv: "), "{e}");
        let e = run_files(&[("helpdesk.csv", "day,calls_other\n4294967295,3\n")]).unwrap_err();
        assert!(e.to_string().starts_with("helpdesk.csv: day 4294967295"), "{e}");
        let e = run_files(&[("timeline.csv", "weekday\nmon\n")]).unwrap_err();
        assert!(e.to_string().contains("day"), "a missing column is named: {e}");
    }

    const PLAN: &str = r#"{"name":"t","base":"x.toml","axes":[
        {"key":"ipsec.fallback_delay","values":["1 s","3 s"],"labels":null},
        {"key":"campus.clients","values":[100,200],"labels":null}],
        "seeds":[1,2],"days":null,"granularity":"sa","metrics":[],"keep_runs":false}"#;
    const SWEEP: &str = "run,point,seed,ipsec.fallback_delay,campus.clients,waits,link,empty
0,0,1,1 s,100,10,a,
1,0,2,1 s,100,12,a,
2,1,1,1 s,200,20,b,
3,1,2,1 s,200,24,b,
4,2,1,3 s,100,11,a,
5,2,2,3 s,100,11,a,
6,3,1,3 s,200,30,b,
7,3,2,3 s,200,34,b,
";

    fn sweep_files(plan: &str, csv: &str) -> Result<Vec<(String, Vec<u8>)>, PlotError> {
        let (plan, csv) = (plan.as_bytes().to_vec(), csv.as_bytes().to_vec());
        draw_sweep(&|name| match name {
            "sweep.json" => Some(plan.clone()),
            "sweep.csv" => Some(csv.clone()),
            _ => None,
        })
    }

    #[test]
    fn sweep_charts_one_per_numeric_metric() {
        let a = sweep_files(PLAN, SWEEP).unwrap();
        assert_eq!(
            names(&a),
            ["plots/sweep_empty.png", "plots/sweep_empty.svg", "plots/sweep_waits.png", "plots/sweep_waits.svg"]
        );
        assert!(a == sweep_files(PLAN, SWEEP).unwrap(), "deterministic");
        let svg = String::from_utf8(a[3].1.clone()).unwrap();
        for s in ["waits by ipsec.fallback_delay", "campus.clients", "\n100\n", "\n200\n", "\n1 s\n", "\n3 s\n"] {
            assert!(svg.contains(s), "{s:?}");
        }
        assert!(String::from_utf8_lossy(&a[1].1).contains("no run computed this metric"));
        let (w, h) = png_size(&a[2].1);
        assert!(svg.contains(&format!(r#"width="{w}" height="{h}""#)), "the PNG has the SVG's size: {w}x{h}");
    }

    #[test]
    fn sweep_input_errors_name_the_file() {
        let e = sweep_files("{", SWEEP).unwrap_err();
        assert!(e.to_string().starts_with("sweep.json: "), "{e}");
        let e = sweep_files(PLAN, "run,point,seed,other\n").unwrap_err();
        assert!(e.to_string().starts_with("sweep.csv: header"), "{e}");
        let bad_point = SWEEP.replace("7,3,2,", "7,9,2,");
        let e = sweep_files(PLAN, &bad_point).unwrap_err();
        assert!(e.to_string().contains("point `9`"), "{e}");
        assert!(sweep_files(PLAN, "run,point,seed,ipsec.fallback_delay,campus.clients,x\n0,0,1,1 s\n").is_err());
        let bad_labels = PLAN.replace(r#""labels":null}]"#, r#""labels":["one"]}]"#);
        let e = sweep_files(&bad_labels, SWEEP).unwrap_err();
        assert!(e.to_string().starts_with("sweep.json: axis campus.clients"), "{e}");
    }

    #[test]
    fn numbers_read_well() {
        assert_eq!(human(1975662.0), "1,975,662");
        assert_eq!(human(-2500.0), "-2,500");
        assert_eq!(human(0.5625), "0.5625");
        assert_eq!(human(12.5), "12.5");
        assert_eq!(human(0.0), "0");
        assert_eq!(file_safe("failover_stall_p95_s_by_os.xp sp2"), "failover_stall_p95_s_by_os.xp_sp2");
    }
}
