//! Pictures of histories: one lane per process, each operation a bar from
//! its invocation to its response, as a standalone SVG document or a
//! self-contained HTML page.
//!
//! A [`Drawing`] says what to draw: the operations (with a label each), an
//! optional linearization order, the operations to highlight and the words
//! to go with them. [`Drawing::from_verdict`] makes one from what
//! [`check()`](super::check) said; [`svg()`] and [`html()`] draw it.
//!
//! ```
//! use ipc_harness::harness::history::svg::{self, Drawing};
//! use ipc_harness::harness::history::{check, History};
//! use ipc_harness::harness::history::models::{QueueAnswer, QueueModel, QueueOp};
//!
//! let mut history = History::new();
//! history.push(0, QueueOp::Put(1), QueueAnswer::Ok, 0, 10);
//! history.push(1, QueueOp::Get, QueueAnswer::Value(1), 5, 20);
//! // A length no queue bounded to one message ever has.
//! history.push(2, QueueOp::Len, QueueAnswer::Len(2), 0, 40);
//!
//! let model = QueueModel::bounded(1);
//! let verdict = check(&model, &history);
//! let drawing = Drawing::from_verdict(&model, &history, &verdict);
//! assert_eq!(drawing.fixed, vec![2]); // the len, drawn as the counterexample
//!
//! let picture = svg::svg(&drawing);
//! assert!(picture.contains(r#"<g class="lane" data-process="2""#));
//! assert!(picture.contains("len() -&gt; 2"));
//! // A page to open in any browser: the picture, a legend, the explanation.
//! let page = svg::html(&drawing);
//! assert!(page.contains("Not linearizable"));
//! # let dir = tempfile::tempdir().unwrap();
//! std::fs::write(dir.path().join("history.html"), page).unwrap();
//! ```
//!
//! # What the picture shows
//! - One lane per process, in order of process number, labelled
//!   `process N` (`<g class="lane" data-process="N">`).
//! - Each operation a bar (`<rect class="op" data-op="I" data-call="…"
//!   data-ret="…">`, `I` its index in the history, times in nanoseconds as
//!   recorded) from its call to its return, on an x axis running from the
//!   earliest call to the latest return. A bar is at least
//!   [`MIN_BAR_WIDTH`] pixels wide, so an operation that took no time still
//!   shows. Operations of one process that overlap (a hand-made history
//!   can have them) are stacked in sub-rows (`data-row`).
//! - A pending operation (invoked, never returned) runs to the right edge
//!   of the drawing (`data-right-edge` on the root element), dashed, with
//!   class `pending`.
//! - Its label, `input -> answer`, cut short with `…` where it would run
//!   into the next bar; the full label, the exact call and return times and
//!   the operation's part in the picture are in a tooltip (`<title>`).
//! - The linearization order, if given: a numbered badge on each
//!   operation in it (`<text class="lin" data-op="I">k</text>`, from 1),
//!   at the earliest point at which it can take effect after those before
//!   it, and a thin line joining the badges in order. A linearization that
//!   stops at a failure is drawn as far as it goes.
//! - Highlighted bars: class `counterexample` (red: answers that cannot
//!   all be true) and `context` (amber: operations the counterexample needs
//!   invoked, their answers ignored).
//!
//! Every text is escaped; characters XML cannot carry are replaced with
//! `�`. No scripts, fonts or other files are referred to: both documents
//! open in any browser without a server.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::{self, Write};

use super::{History, Model, Verdict};

/// The narrowest a bar is drawn, in pixels.
pub const MIN_BAR_WIDTH: f64 = 4.0;

/// The longest label drawn on a bar, in characters (the tooltip has it
/// all).
pub const MAX_LABEL_CHARS: usize = 40;

/// One operation as drawn.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bar {
    /// Its process: the lane it is drawn in.
    pub process: usize,
    /// When it was invoked (ns).
    pub call: u64,
    /// When it returned (ns); `None`: pending.
    pub ret: Option<u64>,
    /// What it asked and what came back, in words: `put(1) -> Ok`.
    pub label: String,
}

/// What to draw: a history's operations and what to say about them.
///
/// Operations are named by their index in [`ops`](Self::ops), which is
/// their index in the history they came from. An index in
/// [`order`](Self::order), [`fixed`](Self::fixed) or
/// [`context`](Self::context) that names no operation is ignored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Drawing {
    /// The operations, in the history's order.
    pub ops: Vec<Bar>,
    /// A linearization: operation indices in the order they took effect.
    /// It may be only a prefix (the order found up to the point of
    /// failure) or empty (none drawn).
    pub order: Vec<usize>,
    /// Operations highlighted strongly (a counterexample's
    /// [`fixed`](super::Counterexample::fixed) answers).
    pub fixed: Vec<usize>,
    /// Operations highlighted weakly (a counterexample's
    /// [`context`](super::Counterexample::context)).
    pub context: Vec<usize>,
    /// A heading.
    pub title: String,
    /// Words under the picture, one paragraph a line (a counterexample's
    /// explanation).
    pub caption: String,
}

impl Drawing {
    /// A drawing of `history`, each operation labelled with the `Debug`
    /// text of its input and output (`Put(1) -> Ok`; `Put(1) -> ?` while
    /// pending); no order, nothing highlighted, no words.
    ///
    /// ```
    /// use ipc_harness::harness::history::History;
    /// use ipc_harness::harness::history::svg::Drawing;
    ///
    /// let mut history: History<&str, u32> = History::new();
    /// history.push(0, "read", 3, 100, 250);
    /// history.push_pending(1, "write", 120);
    /// let mut drawing = Drawing::new(&history);
    /// assert_eq!(drawing.ops[0].label, r#""read" -> 3"#);
    /// assert_eq!(drawing.ops[1].label, r#""write" -> ?"#);
    /// drawing.order = vec![0]; // the write may not have taken effect
    /// drawing.title = "A register".into();
    /// ```
    pub fn new<I: fmt::Debug, O: fmt::Debug>(history: &History<I, O>) -> Self {
        Drawing::labelled(history, |input, output| match output {
            Some(o) => format!("{input:?} -> {o:?}"),
            None => format!("{input:?} -> ?"),
        })
    }

    /// A drawing of `history`, each operation labelled by
    /// [`Model::describe`] (`put(1) -> Ok` for the built-in queue).
    pub fn with_model<M: Model>(model: &M, history: &History<M::Input, M::Output>) -> Self {
        Drawing::labelled(history, |input, output| model.describe(input, output))
    }

    /// A drawing of `history` labelled by `label(input, output)`.
    pub fn labelled<I, O>(
        history: &History<I, O>,
        mut label: impl FnMut(&I, Option<&O>) -> String,
    ) -> Self {
        Drawing {
            ops: history
                .ops
                .iter()
                .map(|op| Bar {
                    process: op.process,
                    call: op.call,
                    ret: op.ret,
                    label: label(&op.input, op.output.as_ref()),
                })
                .collect(),
            order: Vec::new(),
            fixed: Vec::new(),
            context: Vec::new(),
            title: String::new(),
            caption: String::new(),
        }
    }

    /// A drawing of what [`check()`](super::check) said about `history`,
    /// labelled by [`Model::describe`]:
    /// - [`Verdict::Linearizable`]: the order found, numbered (for a model
    ///   that [partitions](Model::partition) the history, the first part's
    ///   order; the other parts' operations are drawn unnumbered);
    /// - [`Verdict::Violation`]: the counterexample's `fixed` operations
    ///   highlighted strongly and its `context` weakly, the longest order
    ///   the search found before it got stuck
    ///   ([`linearized`](super::Counterexample::linearized)) numbered, and
    ///   the explanation as the caption;
    /// - [`Verdict::Unknown`]: the operations alone, and how far the search
    ///   went.
    pub fn from_verdict<M: Model>(
        model: &M,
        history: &History<M::Input, M::Output>,
        verdict: &Verdict<M::Input, M::Output>,
    ) -> Self {
        let mut d = Drawing::with_model(model, history);
        match verdict {
            Verdict::Linearizable(orders) => {
                d.title = "Linearizable".into();
                d.order = orders.first().cloned().unwrap_or_default();
                d.caption = match orders.len() {
                    0 | 1 => format!(
                        "Linearizable: the numbers give an order of {} operation(s) the model accepts, each taking effect between its call and its return.",
                        d.order.len()
                    ),
                    n => format!(
                        "Linearizable, part by part: the numbers give the order the model accepts for the first of {n} independent parts ({} operation(s)); the other parts are linearizable too.",
                        d.order.len()
                    ),
                };
            }
            Verdict::Violation(c) => {
                d.title = "Not linearizable".into();
                d.fixed = c.fixed.clone();
                d.context = c.context.clone();
                d.order = c.linearized.clone();
                d.caption = c.explanation.trim_end().to_string();
            }
            Verdict::Unknown { explored } => {
                d.title = "Undecided".into();
                d.caption = format!(
                    "The search stopped at its budget after exploring {explored} configurations, without deciding."
                );
            }
        }
        d
    }
}

// ---- Layout ----

const MARGIN: f64 = 16.0;
const GUTTER: f64 = 104.0; // lane labels
const TITLE_H: f64 = 40.0;
const AXIS_H: f64 = 26.0;
/// Room above a bar in its row: for the order's badge, if there is one.
const BADGE_ROOM: f64 = 17.0;
const PLAIN_ROOM: f64 = 7.0;
const ROW_GAP: f64 = 7.0; // below a bar in its row
const BAR_H: f64 = 22.0;
const BADGE_R: f64 = 8.0;
const LANE_PAD: f64 = 4.0;
const PENDING_TAIL: f64 = 36.0;
const RIGHT_ROOM: f64 = 120.0; // for the last labels
const GAP: f64 = 2.0; // the least space between two bars in a row
const LABEL_CHAR_W: f64 = 6.7; // 11px monospace
const CAPTION_CHAR_W: f64 = 7.3; // 12px monospace
const CAPTION_LINE_H: f64 = 17.0;
const LEGEND_LINE_H: f64 = 24.0;

/// Where everything goes.
struct Layout {
    width: f64,
    height: f64,
    plot_left: f64,
    plot_right: f64,
    right_edge: f64,
    t0: u64,
    span: u64,
    lanes: Vec<Lane>,
    /// Per operation: x, width, y of its row, its row.
    bars: Vec<Placed>,
    axis_y: f64,
    /// A row's height, and where its bar starts within it.
    row_h: f64,
    bar_top: f64,
    legend_y: f64,
    caption_y: f64,
    caption: Vec<(usize, String)>,
}

struct Lane {
    process: usize,
    y: f64,
    height: f64,
    ops: Vec<usize>,
}

#[derive(Clone, Copy, Default)]
struct Placed {
    x: f64,
    w: f64,
    row_y: f64,
    row: usize,
    /// Where its label may run to.
    label_room: f64,
}

/// Which parts of the picture to draw.
#[derive(Clone, Copy)]
struct Parts {
    legend: bool,
    caption: bool,
}

fn layout(d: &Drawing, parts: Parts) -> Layout {
    let t0 = d.ops.iter().map(|b| b.call).min().unwrap_or(0);
    let t1 = d
        .ops
        .iter()
        .map(|b| b.ret.unwrap_or(b.call).max(b.call))
        .max()
        .unwrap_or(0);
    let span = (t1 - t0).max(1);

    let mut by_process: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for (i, b) in d.ops.iter().enumerate() {
        by_process.entry(b.process).or_default().push(i);
    }
    let busiest = by_process.values().map(Vec::len).max().unwrap_or(0);
    let plot_w = (busiest as f64 * 130.0).clamp(720.0, 4800.0);
    let plot_left = MARGIN + GUTTER;
    let plot_right = plot_left + plot_w;
    let right_edge = plot_right + PENDING_TAIL;
    let width = right_edge + RIGHT_ROOM + MARGIN;
    let bar_top = if d.order.iter().any(|&i| i < d.ops.len()) {
        BADGE_ROOM
    } else {
        PLAIN_ROOM
    };
    let row_h = bar_top + BAR_H + ROW_GAP;
    let x_of = |t: u64| plot_left + (t.saturating_sub(t0)) as f64 / span as f64 * plot_w;

    let mut bars = vec![Placed::default(); d.ops.len()];
    let axis_y = MARGIN + TITLE_H;
    let mut y = axis_y + AXIS_H;
    let mut lanes = Vec::new();
    for (&process, ops) in &by_process {
        let mut ops = ops.clone();
        for &i in &ops {
            let b = &d.ops[i];
            let x = x_of(b.call);
            let w = match b.ret {
                Some(r) => (x_of(r.max(b.call)) - x).max(MIN_BAR_WIDTH),
                None => (right_edge - x).max(MIN_BAR_WIDTH),
            };
            bars[i].x = x;
            bars[i].w = w;
        }
        ops.sort_by(|&a, &b| bars[a].x.total_cmp(&bars[b].x).then(a.cmp(&b)));
        // Each bar in the first row whose last bar ends before it starts.
        let mut rows: Vec<(f64, Option<usize>)> = Vec::new(); // (right end, last op)
        for &i in &ops {
            let (x, w) = (bars[i].x, bars[i].w);
            let row = match rows.iter().position(|&(end, _)| end + GAP <= x) {
                Some(r) => r,
                None => {
                    rows.push((f64::NEG_INFINITY, None));
                    rows.len() - 1
                }
            };
            if let Some(prev) = rows[row].1 {
                bars[prev].label_room = x - bars[prev].x - 4.0;
            }
            rows[row] = (x + w, Some(i));
            bars[i].row = row;
            bars[i].row_y = y + LANE_PAD + row as f64 * row_h;
        }
        for &(_, last) in &rows {
            if let Some(i) = last {
                bars[i].label_room = width - MARGIN - bars[i].x - 4.0;
            }
        }
        let height = rows.len() as f64 * row_h + 2.0 * LANE_PAD;
        lanes.push(Lane {
            process,
            y,
            height,
            ops,
        });
        y += height;
    }
    if lanes.is_empty() {
        y += row_h; // room for "no operations"
    }

    let legend_y = y + 8.0;
    if parts.legend {
        y = legend_y + legend_places(&legend_entries(d), width).1;
    }
    let caption_y = y + 10.0;
    let mut caption = Vec::new();
    if parts.caption && !d.caption.trim().is_empty() {
        let cols = ((width - 2.0 * MARGIN) / CAPTION_CHAR_W).floor().max(20.0) as usize;
        caption = wrap(&d.caption, cols);
        y = caption_y + caption.len() as f64 * CAPTION_LINE_H;
    }
    Layout {
        width,
        height: y + MARGIN,
        plot_left,
        plot_right,
        right_edge,
        t0,
        span,
        lanes,
        bars,
        axis_y,
        row_h,
        bar_top,
        legend_y,
        caption_y,
        caption,
    }
}

/// `text` wrapped at `cols` characters on spaces: (indent in characters,
/// line) pairs; a wrapped line's continuations are indented 4 more.
fn wrap(text: &str, cols: usize) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    for line in text.lines() {
        let indent = line.chars().take_while(|c| *c == ' ').count();
        let mut first = true;
        let mut cur = String::new();
        let mut cur_len = 0;
        for word in line.split_whitespace() {
            let lead = if first { indent } else { indent + 4 };
            let room = cols.saturating_sub(lead).max(10);
            let wlen = word.chars().count();
            if cur_len > 0 && cur_len + 1 + wlen > room {
                out.push((lead, std::mem::take(&mut cur)));
                cur_len = 0;
                first = false;
            }
            if cur_len > 0 {
                cur.push(' ');
                cur_len += 1;
            }
            cur.push_str(word);
            cur_len += wlen;
        }
        out.push((if first { indent } else { indent + 4 }, cur));
    }
    out
}

// ---- Text ----

/// `s` escaped for XML text or an attribute value; characters XML 1.0
/// cannot carry become U+FFFD.
fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

/// `s` cut to at most `max` characters, the last one `…` if cut.
fn truncate(s: &str, max: usize) -> String {
    let one_line: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if one_line.chars().count() <= max {
        return one_line;
    }
    if max == 0 {
        return String::new();
    }
    let mut t: String = one_line.chars().take(max - 1).collect();
    t.push('…');
    t
}

/// A pixel figure as written in the document.
fn px(v: f64) -> String {
    format!("{v:.2}")
}

/// `ns` nanoseconds in a readable unit.
fn duration(ns: u64) -> String {
    let (unit, div) = match ns {
        0..1_000 => ("ns", 1.0),
        1_000..1_000_000 => ("µs", 1e3),
        1_000_000..1_000_000_000 => ("ms", 1e6),
        _ => ("s", 1e9),
    };
    let v = ns as f64 / div;
    let s = format!("{v:.3}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    format!("{s} {unit}")
}

/// Tick spacing: 1, 2 or 5 times a power of ten, about `target` ticks.
fn tick_step(span: u64, target: u64) -> u64 {
    let raw = (span / target.max(1)).max(1);
    let mut p = 1u64;
    while p.saturating_mul(10) <= raw {
        p *= 10;
    }
    [1, 2, 5, 10]
        .into_iter()
        .map(|m| m * p)
        .find(|&s| s >= raw)
        .unwrap_or(10 * p)
}

const STYLE: &str = "
text { font-family: 'DejaVu Sans', Verdana, Arial, sans-serif; fill: #1f2328; }
.title { font-size: 17px; font-weight: bold; }
.lane-label { font-size: 13px; fill: #444c56; }
.lane-bg.even { fill: #f3f5f8; }
.lane-bg.odd { fill: #ffffff; }
.tick { font-size: 10px; fill: #6e7781; }
.grid { stroke: #d8dee4; stroke-width: 1; }
.op, .swatch { fill: #dbe8f6; stroke: #4a7bb7; stroke-width: 1.2; }
.pending { fill: #eef3f9; stroke-dasharray: 5 3; }
.context { fill: #fce9b2; stroke: #c38a00; stroke-width: 1.6; }
.counterexample { fill: #f9c8c2; stroke: #c0392b; stroke-width: 2.4; }
.label { font-family: 'DejaVu Sans Mono', Menlo, Consolas, monospace; font-size: 11px; }
.linearization { fill: none; stroke: #5b3fa8; stroke-width: 1.3; stroke-opacity: 0.75; }
.badge, .swatch-badge { fill: #5b3fa8; stroke: #ffffff; stroke-width: 1; }
.lin, .swatch-lin { font-size: 10px; font-weight: bold; fill: #ffffff; }
.legend text { font-size: 12px; }
.caption { font-family: 'DejaVu Sans Mono', Menlo, Consolas, monospace; font-size: 12px; }
";

/// Where each legend entry goes (relative to the legend's top), wrapping
/// at `width`; and the legend's height.
fn legend_places(entries: &[(&str, &str)], width: f64) -> (Vec<(f64, f64)>, f64) {
    let (mut x, mut y) = (MARGIN + 8.0, 8.0);
    let mut places = Vec::new();
    for &(_, words) in entries {
        let w = 28.0 + words.chars().count() as f64 * 6.9;
        if x > MARGIN + 8.0 && x + w > width - MARGIN {
            x = MARGIN + 8.0;
            y += LEGEND_LINE_H;
        }
        places.push((x, y));
        x += w + 22.0;
    }
    (places, y + LEGEND_LINE_H)
}

/// What each operation is in the drawing, looked up once.
struct Roles {
    fixed: Vec<bool>,
    context: Vec<bool>,
    /// Its first position in the order, from 0.
    position: Vec<Option<usize>>,
}

impl Roles {
    fn of(d: &Drawing) -> Self {
        let n = d.ops.len();
        let mark = |v: &[usize]| {
            let mut m = vec![false; n];
            v.iter().filter(|&&i| i < n).for_each(|&i| m[i] = true);
            m
        };
        let mut position = vec![None; n];
        for (k, &i) in d.order.iter().enumerate() {
            if i < n && position[i].is_none() {
                position[i] = Some(k);
            }
        }
        Roles {
            fixed: mark(&d.fixed),
            context: mark(&d.context),
            position,
        }
    }

    /// Operation `i`'s roles, as classes.
    fn classes(&self, d: &Drawing, i: usize) -> Vec<&'static str> {
        let mut c = Vec::new();
        if d.ops[i].ret.is_none() {
            c.push("pending");
        }
        if self.fixed[i] {
            c.push("counterexample");
        }
        if self.context[i] {
            c.push("context");
        }
        c
    }
}

/// The legend entries that apply to `d`: (swatch classes, words).
fn legend_entries(d: &Drawing) -> Vec<(&'static str, &'static str)> {
    let valid = |v: &[usize]| v.iter().any(|&i| i < d.ops.len());
    let mut e = vec![("swatch", "operation: from its call to its return")];
    if valid(&d.fixed) {
        e.push((
            "swatch counterexample",
            "counterexample: answers that cannot all be true",
        ));
    }
    if valid(&d.context) {
        e.push((
            "swatch context",
            "context: invoked meanwhile, answer ignored",
        ));
    }
    if d.ops.iter().any(|b| b.ret.is_none()) {
        e.push(("swatch pending", "pending: never returned"));
    }
    if valid(&d.order) {
        e.push(("badge", "linearization order"));
    }
    e
}

fn render(d: &Drawing, parts: Parts) -> String {
    let l = layout(d, parts);
    let roles = Roles::of(d);
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" class="history" width="{w}" height="{h}" viewBox="0 0 {w} {h}" data-ops="{n}" data-lanes="{lanes}" data-t0="{t0}" data-plot-left="{pl}" data-plot-right="{pr}" data-right-edge="{re}">"#,
        w = px(l.width),
        h = px(l.height),
        n = d.ops.len(),
        lanes = l.lanes.len(),
        t0 = l.t0,
        pl = px(l.plot_left),
        pr = px(l.plot_right),
        re = px(l.right_edge),
    );
    let _ = write!(s, "\n<title>{}</title>", esc(&d.title));
    let _ = write!(s, "\n<style>{STYLE}</style>");
    let _ = write!(
        s,
        "\n<rect x=\"0\" y=\"0\" width=\"{}\" height=\"{}\" fill=\"#ffffff\"/>",
        px(l.width),
        px(l.height)
    );
    let _ = write!(
        s,
        "\n<text class=\"title\" x=\"{}\" y=\"{}\">{}</text>",
        px(MARGIN),
        px(MARGIN + 20.0),
        esc(&d.title)
    );

    // Lane backgrounds first, so the grid and the bars lie on top.
    let lanes_top = l.axis_y + AXIS_H;
    let lanes_bottom = l.lanes.last().map_or(lanes_top, |x| x.y + x.height);
    for (k, lane) in l.lanes.iter().enumerate() {
        let _ = write!(
            s,
            "\n<rect class=\"lane-bg {}\" data-process=\"{}\" x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\"/>",
            if k % 2 == 0 { "even" } else { "odd" },
            lane.process,
            px(MARGIN),
            px(lane.y),
            px(l.width - 2.0 * MARGIN),
            px(lane.height)
        );
    }

    // The time axis: ticks from the first call, a grid line each.
    if !d.ops.is_empty() {
        let step = tick_step(l.span, 8);
        let plot_w = l.plot_right - l.plot_left;
        let _ = write!(s, "\n<g class=\"axis\">");
        let mut t = 0u64;
        while t <= l.span {
            let x = l.plot_left + t as f64 / l.span as f64 * plot_w;
            let _ = write!(
                s,
                "\n<line class=\"grid\" x1=\"{x}\" y1=\"{y1}\" x2=\"{x}\" y2=\"{y2}\"/><text class=\"tick\" x=\"{x}\" y=\"{ty}\" text-anchor=\"middle\">{label}</text>",
                x = px(x),
                y1 = px(lanes_top - 6.0),
                y2 = px(lanes_bottom),
                ty = px(lanes_top - 10.0),
                label = esc(&if t == 0 {
                    "0".to_string()
                } else {
                    format!("+{}", duration(t))
                }),
            );
            t = match t.checked_add(step) {
                Some(t) => t,
                None => break,
            };
        }
        let _ = write!(s, "\n</g>");
    }

    // The linearization, under the bars (its numbered badges go on
    // top of them): each operation at the earliest instant it can each operation at the earliest instant it can
    // take effect after those before it (within its interval).
    let order: Vec<usize> = d
        .order
        .iter()
        .copied()
        .filter(|&i| i < d.ops.len())
        .collect();
    let mut points = Vec::new();
    if !order.is_empty() {
        let plot_w = l.plot_right - l.plot_left;
        let mut at = 0u64;
        for &i in &order {
            let b = &d.ops[i];
            at = at.max(b.call).min(b.ret.unwrap_or(u64::MAX));
            let p = l.bars[i];
            let x = (l.plot_left + at.saturating_sub(l.t0) as f64 / l.span as f64 * plot_w)
                .clamp(p.x, p.x + p.w);
            points.push((i, x, p.row_y + l.bar_top - BADGE_R + 2.0));
        }
        let pts: Vec<String> = points
            .iter()
            .map(|&(_, x, y)| format!("{},{}", px(x), px(y)))
            .collect();
        let _ = write!(
            s,
            "\n<polyline class=\"linearization\" data-order=\"{}\" points=\"{}\"/>",
            order
                .iter()
                .map(usize::to_string)
                .collect::<Vec<_>>()
                .join(" "),
            pts.join(" ")
        );
    }

    // Lanes and bars.
    for lane in &l.lanes {
        let _ = write!(
            s,
            "\n<g class=\"lane\" data-process=\"{}\">\n<text class=\"lane-label\" x=\"{}\" y=\"{}\">process {}</text>",
            lane.process,
            px(MARGIN + 8.0),
            px(lane.y + LANE_PAD + l.bar_top + BAR_H / 2.0 + 4.5),
            lane.process
        );
        let mut ops = lane.ops.clone();
        ops.sort_unstable();
        for i in ops {
            let b = &d.ops[i];
            let p = l.bars[i];
            let mut class = vec!["op"];
            class.extend(roles.classes(d, i));
            let ret_attr = b
                .ret
                .map_or(String::new(), |r| format!(" data-ret=\"{r}\""));
            let mut tip = format!(
                "#{i} process {}: {}\ncalled at {} ns",
                b.process, b.label, b.call
            );
            match b.ret {
                Some(r) => {
                    let _ = write!(
                        tip,
                        ", returned at {r} ns (took {})",
                        duration(r.saturating_sub(b.call))
                    );
                }
                None => tip.push_str(", never returned (pending)"),
            }
            let _ = write!(tip, "\n+{} after the first call", duration(b.call - l.t0));
            if let Some(k) = roles.position[i] {
                let _ = write!(tip, "\nlinearized at position {}", k + 1);
            }
            if roles.fixed[i] {
                tip.push_str(
                    "\ncounterexample: its answer is one of those that cannot all be true",
                );
            }
            if roles.context[i] {
                tip.push_str("\ncontext: invoked meanwhile; the counterexample ignores its answer");
            }
            // Inside the bar if it fits, else after it if more fits there.
            let fit =
                |room: f64| ((room / LABEL_CHAR_W).floor().max(0.0) as usize).min(MAX_LABEL_CHARS);
            let want = b.label.chars().count().min(MAX_LABEL_CHARS);
            let inside = fit(p.w - 8.0);
            let after = fit(p.label_room - p.w - 4.0);
            let (tx, chars) = if inside >= want || inside >= after {
                (p.x + 4.0, inside.max(1))
            } else {
                (p.x + p.w + 4.0, after)
            };
            let label = truncate(&b.label, chars);
            let bar_y = p.row_y + l.bar_top;
            let _ = write!(
                s,
                "\n<g class=\"op-group\" data-op=\"{i}\"><title>{tip}</title><rect class=\"{class}\" data-op=\"{i}\" data-process=\"{proc}\" data-call=\"{call}\"{ret_attr} data-row=\"{row}\" x=\"{x}\" y=\"{y}\" width=\"{w}\" height=\"{h}\" rx=\"3\"/><text class=\"label\" data-op=\"{i}\" x=\"{tx}\" y=\"{ty}\">{label}</text></g>",
                tip = esc(&tip),
                class = class.join(" "),
                proc = b.process,
                call = b.call,
                row = p.row,
                x = px(p.x),
                y = px(bar_y),
                w = px(p.w),
                h = px(BAR_H),
                tx = px(tx),
                ty = px(bar_y + BAR_H / 2.0 + 4.0),
                label = esc(&label),
            );
        }
        let _ = write!(s, "\n</g>");
    }
    if l.lanes.is_empty() {
        let _ = write!(
            s,
            "\n<text class=\"lane-label\" x=\"{}\" y=\"{}\">(no operations)</text>",
            px(l.plot_left),
            px(lanes_top + l.row_h / 2.0)
        );
    }

    if !points.is_empty() {
        let _ = write!(s, "\n<g class=\"order\">");
        for (k, &(i, x, y)) in points.iter().enumerate() {
            let _ = write!(
                s,
                "\n<circle class=\"badge\" data-op=\"{i}\" cx=\"{x}\" cy=\"{y}\" r=\"{r}\"/><text class=\"lin\" data-op=\"{i}\" x=\"{x}\" y=\"{ty}\" text-anchor=\"middle\">{n}</text>",
                x = px(x),
                y = px(y),
                r = px(BADGE_R),
                ty = px(y + 3.5),
                n = k + 1
            );
        }
        let _ = write!(s, "\n</g>");
    }

    if parts.legend {
        let _ = write!(s, "\n<g class=\"legend\">");
        let entries = legend_entries(d);
        let (places, _) = legend_places(&entries, l.width);
        for (&(class, words), &(x, y)) in entries.iter().zip(&places) {
            let y = l.legend_y + y;
            if class == "badge" {
                let _ = write!(
                    s,
                    "\n<circle class=\"swatch-badge\" cx=\"{}\" cy=\"{}\" r=\"{}\"/><text class=\"swatch-lin\" x=\"{}\" y=\"{}\" text-anchor=\"middle\">1</text>",
                    px(x + 8.0),
                    px(y + 7.0),
                    px(BADGE_R),
                    px(x + 8.0),
                    px(y + 10.5)
                );
            } else {
                let _ = write!(
                    s,
                    "\n<rect class=\"{class}\" x=\"{}\" y=\"{}\" width=\"22\" height=\"14\" rx=\"3\"/>",
                    px(x),
                    px(y)
                );
            }
            let _ = write!(
                s,
                "<text x=\"{}\" y=\"{}\">{}</text>",
                px(x + 28.0),
                px(y + 11.5),
                esc(words)
            );
        }
        let _ = write!(s, "\n</g>");
    }

    if !l.caption.is_empty() {
        let _ = write!(s, "\n<g class=\"caption-lines\">");
        for (k, (indent, line)) in l.caption.iter().enumerate() {
            let _ = write!(
                s,
                "\n<text class=\"caption\" x=\"{}\" y=\"{}\">{}</text>",
                px(MARGIN + *indent as f64 * CAPTION_CHAR_W),
                px(l.caption_y + (k as f64 + 0.8) * CAPTION_LINE_H),
                esc(line)
            );
        }
        let _ = write!(s, "\n</g>");
    }
    s.push_str("\n</svg>\n");
    s
}

/// `drawing` as a standalone SVG document: the title, the time axis, the
/// lanes and bars, a legend and the caption (wrapped).
///
/// ```
/// use ipc_harness::harness::history::History;
/// use ipc_harness::harness::history::svg::{svg, Drawing};
///
/// let mut history: History<&str, u32> = History::new();
/// history.push(0, "read", 3, 100, 250);
/// let picture = svg(&Drawing::new(&history));
/// assert!(picture.starts_with("<?xml"));
/// assert!(picture.contains(r#"<rect class="op" data-op="0" data-process="0" data-call="100" data-ret="250""#));
/// ```
pub fn svg(drawing: &Drawing) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n{}",
        render(
            drawing,
            Parts {
                legend: true,
                caption: true,
            },
        )
    )
}

/// `drawing` as a self-contained HTML page: the picture (the same SVG as
/// [`svg()`], less its legend and caption, which the page gives as text),
/// a legend, and the caption as preformatted text. No scripts, no files
/// or network: it opens in any browser from disk.
///
/// ```
/// use ipc_harness::harness::history::History;
/// use ipc_harness::harness::history::svg::{html, Drawing};
///
/// let mut history: History<&str, u32> = History::new();
/// history.push(0, "read", 3, 100, 250);
/// let mut drawing = Drawing::new(&history);
/// drawing.caption = "read() -> 3 & nothing else".into();
/// let page = html(&drawing);
/// assert!(page.starts_with("<!DOCTYPE html>"));
/// assert!(page.contains("<pre class=\"caption\">read() -&gt; 3 &amp; nothing else</pre>"));
/// ```
pub fn html(drawing: &Drawing) -> String {
    let picture = render(
        drawing,
        Parts {
            legend: false,
            caption: false,
        },
    );
    let mut legend = String::new();
    for (class, words) in legend_entries(drawing) {
        let swatch = if class == "badge" {
            "<svg width=\"20\" height=\"18\"><circle class=\"swatch-badge\" cx=\"10\" cy=\"9\" r=\"8\"/><text class=\"swatch-lin\" x=\"10\" y=\"12.5\" text-anchor=\"middle\">1</text></svg>".to_string()
        } else {
            format!(
                "<svg width=\"26\" height=\"18\"><rect class=\"{class}\" x=\"1\" y=\"2\" width=\"24\" height=\"14\" rx=\"3\"/></svg>"
            )
        };
        let _ = write!(legend, "\n<li>{swatch} {}</li>", esc(words));
    }
    if !drawing.order.is_empty() {
        legend.push_str("\n<li>The line joins the operations in the order they took effect, each at the earliest instant it can, after those before it.</li>");
    }
    legend.push_str("\n<li>Hover over an operation for its full label and its exact call and return times (CLOCK_MONOTONIC nanoseconds).</li>");
    let title = if drawing.title.is_empty() {
        "History".to_string()
    } else {
        drawing.title.clone()
    };
    let ids: BTreeSet<usize> = drawing.ops.iter().map(|b| b.process).collect();
    format!(
        "<!DOCTYPE html>
<html lang=\"en\">
<head>
<meta charset=\"utf-8\">
<title>{t}</title>
<style>
body {{ font-family: 'DejaVu Sans', Verdana, Arial, sans-serif; margin: 1.5em; color: #1f2328; }}
.picture {{ overflow-x: auto; border: 1px solid #d8dee4; }}
ul.legend {{ list-style: none; padding: 0; }}
ul.legend li {{ margin: 0.3em 0; }}
ul.legend svg {{ vertical-align: middle; }}
pre.caption {{ white-space: pre-wrap; background: #f6f8fa; padding: 1em; border: 1px solid #d8dee4; }}
{style}
</style>
</head>
<body>
<h1>{t}</h1>
<p>{n} operation(s) of {p} process(es).</p>
<div class=\"picture\">
{picture}</div>
<ul class=\"legend\">{legend}
</ul>
<pre class=\"caption\">{caption}</pre>
</body>
</html>
",
        t = esc(&title),
        style = STYLE,
        n = drawing.ops.len(),
        p = ids.len(),
        caption = esc(&drawing.caption),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_and_truncating() {
        assert_eq!(
            esc("a<b & \"c\">\u{1}"),
            "a&lt;b &amp; &quot;c&quot;&gt;\u{FFFD}"
        );
        assert_eq!(truncate("abcdef", 4), "abc…");
        assert_eq!(truncate("abcd", 4), "abcd");
        assert_eq!(truncate("äöüß", 3), "äö…");
    }

    #[test]
    fn ticks_and_durations() {
        assert_eq!(tick_step(40, 8), 5);
        assert_eq!(tick_step(12_000, 8), 2_000);
        assert_eq!(duration(1_500), "1.5 µs");
        assert_eq!(duration(40), "40 ns");
    }

    #[test]
    fn wrapping_keeps_indent() {
        let w = wrap("  one two three four", 12);
        assert_eq!(w, vec![(2, "one two".into()), (6, "three four".into())]);
    }
}
