//! Pictures of histories: the SVG, parsed as XML, is checked against the
//! history it draws (lanes, bars, times, highlights, the linearization
//! order), and the HTML page against the SVG.

use std::collections::{BTreeMap, BTreeSet};

use ipc_harness::harness::history::models::{QueueAnswer as A, QueueModel, QueueOp as Op};
use ipc_harness::harness::history::svg::{self, Drawing, MIN_BAR_WIDTH};
use ipc_harness::harness::history::{History, Verdict, check};
use roxmltree::{Document, Node};

type QH = History<Op, A>;

/// Two producers, a consumer, and an observer whose `len` answers 2 on a
/// queue bounded to one message. Times in nanoseconds.
fn failing_queue_history() -> QH {
    let mut h = QH::new();
    h.push(0, Op::Put(1), A::Ok, 0, 4_000); // #0
    h.push(1, Op::Put(2), A::Ok, 2_000, 9_000); // #1: waits for room
    h.push(2, Op::Get, A::Value(1), 3_000, 6_000); // #2
    h.push(2, Op::Get, A::Value(2), 10_000, 12_500); // #3
    h.push(3, Op::Len, A::Len(1), 1_000, 2_500); // #4
    h.push(3, Op::Len, A::Len(2), 5_000, 7_000); // #5: never true
    h.push(3, Op::IsEmpty, A::Bool(true), 13_000, 13_400); // #6
    h
}

fn counterexample_drawing() -> (QH, Drawing) {
    let h = failing_queue_history();
    let model = QueueModel::bounded(1);
    let verdict = check(&model, &h);
    let Verdict::Violation(c) = &verdict else {
        panic!("expected a violation, got {verdict:?}")
    };
    // The len alone: no queue bounded to one message ever holds two.
    assert_eq!((c.fixed.clone(), c.context.clone()), (vec![5], vec![]));
    let mut d = Drawing::from_verdict(&model, &h, &verdict);
    d.title = "len() -> 2 on a queue bounded to one message: not linearizable".into();
    (h, d)
}

fn attr<T: std::str::FromStr>(n: Node, name: &str) -> T {
    n.attribute(name)
        .unwrap_or_else(|| panic!("{:?} has no {name}", n.tag_name().name()))
        .parse()
        .unwrap_or_else(|_| panic!("{name} does not parse"))
}

fn has_class(n: Node, class: &str) -> bool {
    n.attribute("class")
        .is_some_and(|c| c.split_whitespace().any(|x| x == class))
}

fn elements<'a, 'i>(doc: &'a Document<'i>, tag: &str, class: &str) -> Vec<Node<'a, 'i>> {
    doc.descendants()
        .filter(|n| n.is_element() && n.tag_name().name() == tag && has_class(*n, class))
        .collect()
}

/// What the picture says about each operation.
#[derive(Debug, Clone, PartialEq)]
struct DrawnBar {
    lane: usize,
    call: u64,
    ret: Option<u64>,
    x: f64,
    y: f64,
    w: f64,
    h: f64,
    row: usize,
    classes: BTreeSet<String>,
}

fn bars(doc: &Document) -> BTreeMap<usize, DrawnBar> {
    let mut out = BTreeMap::new();
    for r in elements(doc, "rect", "op") {
        let lane = r
            .ancestors()
            .find(|a| a.is_element() && has_class(*a, "lane"))
            .expect("every bar is inside a lane");
        let op: usize = attr(r, "data-op");
        let bar = DrawnBar {
            lane: attr(lane, "data-process"),
            call: attr(r, "data-call"),
            ret: r.attribute("data-ret").map(|v| v.parse().unwrap()),
            x: attr(r, "x"),
            y: attr(r, "y"),
            w: attr(r, "width"),
            h: attr(r, "height"),
            row: attr(r, "data-row"),
            classes: r
                .attribute("class")
                .unwrap()
                .split_whitespace()
                .map(String::from)
                .collect(),
        };
        assert!(out.insert(op, bar).is_none(), "two bars for #{op}");
    }
    out
}

fn ops_with(bars: &BTreeMap<usize, DrawnBar>, class: &str) -> Vec<usize> {
    bars.iter()
        .filter(|(_, b)| b.classes.contains(class))
        .map(|(&i, _)| i)
        .collect()
}

/// The linearization numbers, as an order of operation indices.
fn numbered_order(doc: &Document) -> Vec<usize> {
    let mut by_number: BTreeMap<usize, usize> = BTreeMap::new();
    for t in elements(doc, "text", "lin") {
        let n: usize = t.text().unwrap().parse().unwrap();
        assert!(
            by_number.insert(n, attr(t, "data-op")).is_none(),
            "number {n} twice"
        );
    }
    assert_eq!(
        by_number.keys().copied().collect::<Vec<_>>(),
        (1..=by_number.len()).collect::<Vec<_>>(),
        "numbers run from 1 without gaps"
    );
    by_number.into_values().collect()
}

/// Checks everything the picture says about the history's operations.
fn check_against_history(doc: &Document, h: &QH) -> BTreeMap<usize, DrawnBar> {
    let root = doc.root_element();
    let processes: BTreeSet<usize> = h.ops.iter().map(|o| o.process).collect();
    let lanes: Vec<usize> = elements(doc, "g", "lane")
        .into_iter()
        .map(|g| attr(g, "data-process"))
        .collect();
    assert_eq!(lanes, processes.iter().copied().collect::<Vec<_>>());
    assert_eq!(attr::<usize>(root, "data-lanes"), processes.len());
    // Each lane's label names its process.
    for g in elements(doc, "g", "lane") {
        let p: usize = attr(g, "data-process");
        let label = g.children().find(|c| has_class(*c, "lane-label")).unwrap();
        assert_eq!(label.text(), Some(format!("process {p}").as_str()));
    }
    // Lane backgrounds: where each process's bars must lie.
    let bands: BTreeMap<usize, (f64, f64)> = elements(doc, "rect", "lane-bg")
        .into_iter()
        .map(|r| {
            let y: f64 = attr(r, "y");
            (attr(r, "data-process"), (y, y + attr::<f64>(r, "height")))
        })
        .collect();

    let bars = bars(doc);
    assert_eq!(
        bars.keys().copied().collect::<Vec<_>>(),
        (0..h.len()).collect::<Vec<_>>()
    );
    let right_edge: f64 = attr(root, "data-right-edge");
    let plot_right: f64 = attr(root, "data-plot-right");
    for (&i, b) in &bars {
        let op = &h.ops[i];
        assert_eq!(b.lane, op.process, "#{i} in the wrong lane");
        let (top, bottom) = bands[&op.process];
        assert!(
            b.y >= top && b.y + b.h <= bottom,
            "#{i} drawn outside process {}'s lane",
            op.process
        );
        assert_eq!((b.call, b.ret), (op.call, op.ret), "#{i}'s times");
        assert!(
            b.w >= MIN_BAR_WIDTH - 1e-9,
            "#{i} narrower than the minimum"
        );
        assert_eq!(b.classes.contains("pending"), op.is_pending(), "#{i}");
        if op.is_pending() {
            assert!((b.x + b.w - right_edge).abs() < 0.011, "#{i} stops short");
        } else {
            assert!(b.x + b.w <= plot_right + MIN_BAR_WIDTH + 0.011, "#{i}");
        }
    }
    // Left edges in the order of call times; returns likewise where the
    // minimum width does not decide.
    for (&i, a) in &bars {
        for (&j, b) in &bars {
            let (ci, cj) = (h.ops[i].call, h.ops[j].call);
            if ci < cj {
                assert!(
                    a.x < b.x,
                    "#{i} called before #{j} but drawn at or after it"
                );
            } else if ci == cj {
                assert!((a.x - b.x).abs() < 1e-9, "#{i} and #{j} called together");
            }
            if let (Some(ri), Some(rj)) = (h.ops[i].ret, h.ops[j].ret)
                && ri < rj
                && a.w > MIN_BAR_WIDTH
                && b.w > MIN_BAR_WIDTH
            {
                assert!(a.x + a.w < b.x + b.w, "#{i} returned before #{j}");
            }
        }
    }
    bars
}

#[test]
fn counterexample_picture_matches_its_history() {
    let (h, d) = counterexample_drawing();
    let picture = svg::svg(&d);
    let doc = Document::parse(&picture).expect("the SVG is well-formed XML");
    let root = doc.root_element();
    assert_eq!(root.tag_name().name(), "svg");
    assert_eq!(
        root.tag_name().namespace(),
        Some("http://www.w3.org/2000/svg")
    );
    assert_eq!(attr::<usize>(root, "data-ops"), 7);
    let bars = check_against_history(&doc, &h);
    assert_eq!(ops_with(&bars, "counterexample"), vec![5]);
    assert_eq!(ops_with(&bars, "context"), Vec::<usize>::new());
    // For a violation, the order the search built before it got stuck:
    // put(1), len -> 1, get -> 1, put(2), then nothing lets len -> 2 be
    // true.
    assert_eq!(d.order, [0, 4, 2, 1]);
    assert_eq!(numbered_order(&doc), d.order);
    assert_eq!(elements(&doc, "polyline", "linearization").len(), 1);
    // The labels come from the model, the tooltip has the exact times.
    let group = doc
        .descendants()
        .find(|n| has_class(*n, "op-group") && n.attribute("data-op") == Some("5"))
        .unwrap();
    let label = group.children().find(|c| has_class(*c, "label")).unwrap();
    assert_eq!(label.text(), Some("len() -> 2"));
    let tip = group.children().find(|c| c.has_tag_name("title")).unwrap();
    let tip = tip.text().unwrap();
    assert!(
        tip.starts_with("#5 process 3: len() -> 2\ncalled at 5000 ns, returned at 7000 ns"),
        "{tip}"
    );
    assert!(tip.contains("counterexample"), "{tip}");
    // The caption is the explanation, word for word once unwrapped.
    let caption: Vec<String> = elements(&doc, "text", "caption")
        .into_iter()
        .map(|t| t.text().unwrap().to_string())
        .collect();
    let words = |s: &str| s.split_whitespace().map(String::from).collect::<Vec<_>>();
    assert_eq!(words(&caption.join(" ")), words(&d.caption));
    assert!(caption[0].starts_with("Not linearizable"), "{caption:?}");
}

#[test]
fn highlights_and_order_are_exactly_those_given() {
    let h = failing_queue_history();
    let mut d = Drawing::with_model(&QueueModel::bounded(1), &h);
    d.fixed = vec![2, 5];
    d.context = vec![0, 1];
    // A prefix: the order found up to the point of failure.
    d.order = vec![4, 0, 2, 1];
    let doc_text = svg::svg(&d);
    let doc = Document::parse(&doc_text).unwrap();
    let bars = check_against_history(&doc, &h);
    assert_eq!(ops_with(&bars, "counterexample"), vec![2, 5]);
    assert_eq!(ops_with(&bars, "context"), vec![0, 1]);
    assert_eq!(numbered_order(&doc), vec![4, 0, 2, 1]);
    // The line joins the badges in order, each over its own bar.
    let line = elements(&doc, "polyline", "linearization");
    assert_eq!(line.len(), 1);
    assert_eq!(line[0].attribute("data-order"), Some("4 0 2 1"));
    let points: Vec<(f64, f64)> = line[0]
        .attribute("points")
        .unwrap()
        .split_whitespace()
        .map(|p| {
            let (x, y) = p.split_once(',').unwrap();
            (x.parse().unwrap(), y.parse().unwrap())
        })
        .collect();
    assert_eq!(points.len(), 4);
    let mut last_x = f64::NEG_INFINITY;
    for (&i, &(x, y)) in d.order.iter().zip(&points) {
        let b = &bars[&i];
        assert!(x >= b.x && x <= b.x + b.w, "#{i}'s point off its bar");
        assert!(y < b.y && y > b.y - 20.0, "#{i}'s badge just above its bar");
        assert!(x >= last_x, "points in time order");
        last_x = x;
    }
}

#[test]
fn linearizable_verdict_numbers_the_order_found() {
    let mut h = QH::new();
    h.push(0, Op::Put(1), A::Ok, 0, 10);
    h.push(0, Op::Put(2), A::Ok, 20, 30);
    h.push(1, Op::Get, A::Value(2), 40, 100);
    h.push(2, Op::Get, A::Value(1), 60, 80);
    let model = QueueModel::unbounded();
    let verdict = check(&model, &h);
    assert_eq!(verdict, Verdict::Linearizable(vec![vec![0, 1, 3, 2]]));
    let d = Drawing::from_verdict(&model, &h, &verdict);
    let doc_text = svg::svg(&d);
    let doc = Document::parse(&doc_text).unwrap();
    let bars = check_against_history(&doc, &h);
    assert_eq!(numbered_order(&doc), vec![0, 1, 3, 2]);
    assert!(ops_with(&bars, "counterexample").is_empty());
    assert!(ops_with(&bars, "context").is_empty());
}

#[test]
fn pending_operations_run_to_the_right_edge() {
    let mut h = QH::new();
    h.push(0, Op::Put(1), A::Ok, 0, 10);
    h.push_pending(1, Op::Put(2), 5); // killed inside its put
    h.push(2, Op::Get, A::Value(1), 12, 20);
    h.push_pending(2, Op::Get, 30); // called after the latest return
    let d = Drawing::new(&h);
    let doc_text = svg::svg(&d);
    let doc = Document::parse(&doc_text).unwrap();
    let bars = check_against_history(&doc, &h);
    assert_eq!(ops_with(&bars, "pending"), vec![1, 3]);
    // Labels from `Debug` when no model is given.
    let labels: Vec<&str> = elements(&doc, "text", "label")
        .into_iter()
        .map(|t| t.text().unwrap())
        .collect();
    assert_eq!(
        labels,
        vec!["Put(1) -> Ok", "Put(2) -> ?", "Get -> Value(1)", "Get -> ?"]
    );
}

#[test]
fn overlapping_operations_of_one_process_are_stacked() {
    let mut h = QH::new();
    h.push(0, Op::Put(1), A::Ok, 0, 100); // #0 row 0
    h.push(0, Op::Put(2), A::Ok, 50, 150); // #1 overlaps #0: row 1
    h.push(0, Op::Len, A::Len(2), 100, 120); // #2 touches #0's end: row 2
    h.push(0, Op::Len, A::Len(1), 200, 200); // #3 after all: row 0
    h.push(1, Op::Get, A::Value(1), 10, 20);
    let doc_text = svg::svg(&Drawing::new(&h));
    let doc = Document::parse(&doc_text).unwrap();
    let bars = check_against_history(&doc, &h);
    let rows: Vec<usize> = (0..5).map(|i| bars[&i].row).collect();
    assert_eq!(rows, vec![0, 1, 2, 0, 0]);
    // Bars in one lane never cover each other.
    for i in 0..4 {
        for j in i + 1..4 {
            let (a, b) = (&bars[&i], &bars[&j]);
            let apart_x = a.x + a.w < b.x || b.x + b.w < a.x;
            let apart_y = a.y + a.h <= b.y || b.y + b.h <= a.y;
            assert!(apart_x || apart_y, "#{i} and #{j} overlap");
        }
    }
    // An instant operation is still visible.
    assert!((bars[&3].w - MIN_BAR_WIDTH).abs() < 1e-9);
}

#[test]
fn text_is_escaped_and_long_labels_cut() {
    let mut h: History<String, String> = History::new();
    h.push(0, "a<b & \"c\">".to_string(), "</svg>".to_string(), 0, 10);
    h.push(1, "x".repeat(200), "y".into(), 20, 30);
    h.push(1, "z".into(), "w".into(), 40, 50);
    let mut d = Drawing::new(&h);
    d.title = "<script>alert(1)</script> & more".into();
    d.caption = "x < y && \"z\" > w\n  indented <line>".into();
    let svg_text = svg::svg(&d);
    assert!(!svg_text.contains("<script"));
    let doc = Document::parse(&svg_text).expect("escaped text still parses");
    let title = elements(&doc, "text", "title");
    assert_eq!(title[0].text(), Some("<script>alert(1)</script> & more"));
    let labels: Vec<&str> = elements(&doc, "text", "label")
        .into_iter()
        .map(|t| t.text().unwrap())
        .collect();
    assert_eq!(labels[0], r#""a<b & \"c\">" -> "</svg>""#);
    // The long one is cut where the next bar starts, the tooltip has it all.
    assert!(labels[1].ends_with('…'), "{}", labels[1]);
    assert!(
        labels[1].chars().count() <= svg::MAX_LABEL_CHARS,
        "{}",
        labels[1]
    );
    assert!(labels[1].starts_with("\"xxxx"), "{}", labels[1]);
    let full = format!("{:?} -> {:?}", "x".repeat(200), "y");
    let tips: Vec<&str> = doc
        .descendants()
        .filter(|n| n.has_tag_name("title") && n.parent().is_some_and(|p| has_class(p, "op-group")))
        .map(|n| n.text().unwrap())
        .collect();
    assert!(tips[1].contains(&full), "{}", tips[1]);
    let caption: Vec<&str> = elements(&doc, "text", "caption")
        .into_iter()
        .map(|t| t.text().unwrap())
        .collect();
    assert_eq!(caption, vec!["x < y && \"z\" > w", "indented <line>"]);

    let page = svg::html(&d);
    assert!(!page.contains("<script"));
    assert!(page.contains("<pre class=\"caption\">x &lt; y &amp;&amp; &quot;z&quot; &gt; w\n  indented &lt;line&gt;</pre>"));
}

/// The `<svg>` element inside an HTML page.
fn embedded_svg(page: &str) -> &str {
    let start = page.find("<svg xmlns").expect("the page holds the picture");
    let end = page[start..].find("</svg>\n").unwrap() + start + "</svg>".len();
    &page[start..end]
}

#[test]
fn html_page_holds_the_picture_legend_and_caption() {
    let (h, d) = counterexample_drawing();
    let page = svg::html(&d);
    assert!(page.starts_with("<!DOCTYPE html>"));
    for outside in ["<script", "src=", "href=", "@import", "url("] {
        assert!(!page.contains(outside), "the page refers to {outside}");
    }
    let inner = embedded_svg(&page);
    let inner_doc = Document::parse(inner).expect("the embedded SVG parses");
    let inner_bars = check_against_history(&inner_doc, &h);
    let standalone = svg::svg(&d);
    let doc = Document::parse(&standalone).unwrap();
    // The same bars, in the same places, as the standalone picture.
    assert_eq!(inner_bars, bars(&doc));
    // The legend names the counterexample, the caption is the explanation.
    assert!(page.contains("counterexample: answers that cannot all be true"));
    let caption = d
        .caption
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;");
    assert!(
        page.contains(&format!("<pre class=\"caption\">{caption}</pre>")),
        "{page}"
    );
    assert!(d.caption.contains("#5 process 3"), "{}", d.caption);
}

const DOCS_PICTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/history.svg");

/// Writes `docs/history.svg`:
/// `cargo test --test history_svg -- --ignored write_docs_picture`.
#[test]
#[ignore = "writes docs/history.svg"]
fn write_docs_picture() {
    std::fs::write(DOCS_PICTURE, svg::svg(&counterexample_drawing().1)).unwrap();
}

#[test]
fn docs_picture_is_current() {
    let on_disk = std::fs::read_to_string(DOCS_PICTURE).unwrap_or_default();
    assert!(
        on_disk == svg::svg(&counterexample_drawing().1),
        "docs/history.svg is out of date: cargo test --test history_svg -- --ignored write_docs_picture"
    );
}

#[test]
fn partitioned_and_undecided_verdicts() {
    use ipc_harness::harness::history::models::{ChannelAnswer, ChannelModel, ChannelOp};
    use ipc_harness::harness::history::{Budget, check_with};
    let mut h = History::new();
    let send = |from, value| ChannelOp::Send { from, value };
    let got = |from, value| ChannelAnswer::Value { from, value };
    h.push(0, send(0, 1), ChannelAnswer::Ok, 0, 1);
    h.push(1, send(1, 10), ChannelAnswer::Ok, 0, 1);
    h.push(2, ChannelOp::Recv, got(1, 10), 4, 5);
    h.push(2, ChannelOp::Recv, got(0, 1), 6, 7);
    let verdict = check(&ChannelModel, &h);
    assert_eq!(verdict, Verdict::Linearizable(vec![vec![0, 3], vec![1, 2]]));
    let d = Drawing::from_verdict(&ChannelModel, &h, &verdict);
    // The first part's order only.
    assert_eq!(d.order, vec![0, 3]);
    assert!(
        d.caption.contains("first of 2 independent parts"),
        "{}",
        d.caption
    );
    let doc_text = svg::svg(&d);
    let doc = Document::parse(&doc_text).unwrap();
    assert_eq!(numbered_order(&doc), vec![0, 3]);

    let budget = Budget {
        configurations: 1,
        shrink_configurations: 1,
    };
    let mut h = QH::new();
    for i in 0..6 {
        h.push(i, Op::Put(i as u64), A::Ok, 0, 10);
    }
    let verdict = check_with(&QueueModel::unbounded(), &h, budget);
    assert!(matches!(verdict, Verdict::Unknown { .. }), "{verdict:?}");
    let d = Drawing::from_verdict(&QueueModel::unbounded(), &h, &verdict);
    assert_eq!(d.title, "Undecided");
    assert!(d.order.is_empty() && d.fixed.is_empty() && d.context.is_empty());
    check_against_history(&Document::parse(&svg::svg(&d)).unwrap(), &h);
}
