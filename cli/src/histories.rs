//! What `ipc-harness check` runs for linearizability: histories recorded
//! from every primitive that has a model, under each fault mode, checked
//! against that model; their figures as text or JSON; a picture of one.
//!
//! Every plan is [derived](Plan::derived) from the check's `--seed`, the
//! primitive and the fault mode, so the same `--seed` replays the same
//! histories.

use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use ipc_harness::harness::history::scenarios::{
    self, FaultMode, Judgement, Plan, Primitive, Recorded, Report,
};
use ipc_harness::harness::history::svg;
use serde::Serialize;

/// The histories of one primitive under one fault mode.
#[derive(Debug, Clone)]
pub struct Row {
    /// The primitive.
    pub primitive: Primitive,
    /// The fault mode.
    pub faults: FaultMode,
    /// Histories recorded and checked.
    pub histories: usize,
    /// Operations begun, over all of them.
    pub ops: usize,
    /// Of those, never returned (a kill struck inside them).
    pub pending: usize,
    /// Operations checked against the model (the others answered
    /// something the model has no words for, such as a send after the
    /// reader left).
    pub checked: usize,
    /// The runs whose verdict is anything but linearizable.
    pub failures: Vec<Report>,
    /// Wall time spent recording and checking.
    pub elapsed: Duration,
}

/// Everything the linearizability part of a check found.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    /// One row per primitive and fault mode.
    pub rows: Vec<Row>,
    /// The first run that failed, else the last one recorded: the one to
    /// draw.
    pub to_draw: Option<Recorded>,
    /// Runs that could not be set up (a fork or memfd that failed), in
    /// words. Not verdicts, but the check does not pass with them.
    pub errors: Vec<String>,
}

impl Outcome {
    /// True if every history was linearizable and every run was set up.
    pub fn passed(&self) -> bool {
        self.errors.is_empty() && self.rows.iter().all(|r| r.failures.is_empty())
    }
}

/// Records and checks `per_mode` histories of each of `primitives` under
/// each fault mode; `progress` hears each primitive's name as it starts.
pub fn run(
    primitives: &[Primitive],
    per_mode: u32,
    seed: u64,
    mut progress: impl FnMut(Primitive),
) -> Outcome {
    let mut outcome = Outcome::default();
    let mut drawn_failure = false;
    for &primitive in primitives {
        progress(primitive);
        for faults in FaultMode::ALL {
            let started = Instant::now();
            let mut row = Row {
                primitive,
                faults,
                histories: 0,
                ops: 0,
                pending: 0,
                checked: 0,
                failures: Vec::new(),
                elapsed: Duration::ZERO,
            };
            for k in 0..per_mode {
                let plan = Plan::derived(seed, primitive, faults, k);
                let recorded = match scenarios::record(primitive, &plan) {
                    Ok(r) => r,
                    Err(e) => {
                        outcome.errors.push(format!(
                            "{primitive} ({plan}): {}",
                            ipc_harness::error::chain(&e)
                        ));
                        continue;
                    }
                };
                let report = scenarios::check(&recorded);
                row.histories += 1;
                row.ops += report.ops;
                row.pending += report.pending;
                row.checked += report.checked;
                let failed = !report.judgement.is_linearizable();
                if failed {
                    row.failures.push(report);
                }
                // The first failure stays the one to draw; until there is
                // one, the latest run.
                if !drawn_failure {
                    outcome.to_draw = Some(recorded);
                    drawn_failure = failed;
                }
            }
            row.elapsed = started.elapsed();
            outcome.rows.push(row);
        }
    }
    outcome
}

/// How to replay one primitive's histories.
pub fn replay_command(primitive: Primitive, seed: u64) -> String {
    format!("ipc-harness check --linearizability --primitive {primitive} --seed {seed}")
}

/// The linearizability table as text: one line per primitive, a column
/// per fault mode, then every failure in full with how to replay it.
pub fn text(
    out: &mut impl Write,
    outcome: &Outcome,
    per_mode: u32,
    seed: u64,
) -> std::io::Result<()> {
    writeln!(
        out,
        "\nLinearizability: {per_mode} histories per primitive and fault mode (producers, consumers and observers across processes), seed {seed}"
    )?;
    let name_w = outcome
        .rows
        .iter()
        .map(|r| r.primitive.name().len())
        .max()
        .unwrap_or(0)
        .max("primitive".len());
    write!(out, "\n{:<name_w$}", "primitive")?;
    for faults in FaultMode::ALL {
        write!(out, "  {:<12}", faults.name())?;
    }
    writeln!(out, "  {:>6}  {:>7}  {:>7}", "ops", "pending", "time")?;
    let mut primitives: Vec<Primitive> = Vec::new();
    for row in &outcome.rows {
        if !primitives.contains(&row.primitive) {
            primitives.push(row.primitive);
        }
    }
    for primitive in primitives {
        let rows: Vec<&Row> = outcome
            .rows
            .iter()
            .filter(|r| r.primitive == primitive)
            .collect();
        write!(out, "{:<name_w$}", primitive.name())?;
        for row in &rows {
            let cell = if row.failures.is_empty() {
                format!("ok {}", row.histories)
            } else {
                format!("FAIL {}/{}", row.failures.len(), row.histories)
            };
            write!(out, "  {cell:<12}")?;
        }
        let ops: usize = rows.iter().map(|r| r.ops).sum();
        let pending: usize = rows.iter().map(|r| r.pending).sum();
        let elapsed: Duration = rows.iter().map(|r| r.elapsed).sum();
        writeln!(
            out,
            "  {ops:>6}  {pending:>7}  {:>6.1}s",
            elapsed.as_secs_f64()
        )?;
    }
    for row in &outcome.rows {
        for failure in &row.failures {
            writeln!(out, "\nNOT LINEARIZABLE: {failure:#}")?;
            writeln!(out, "replay: {}", replay_command(row.primitive, seed))?;
        }
    }
    for e in &outcome.errors {
        writeln!(out, "\nCOULD NOT RUN: {e}")?;
    }
    Ok(())
}

/// The figures of one row, for the JSON report.
#[derive(Serialize)]
pub struct RowJson {
    primitive: String,
    faults: &'static str,
    histories: usize,
    ops: usize,
    pending: usize,
    checked: usize,
    elapsed_ms: u128,
    failures: Vec<FailureJson>,
}

#[derive(Serialize)]
struct FailureJson {
    plan_seed: u64,
    verdict: &'static str,
    explanation: String,
    report: String,
    replay: String,
}

/// The rows as JSON values.
pub fn json(outcome: &Outcome, seed: u64) -> Vec<RowJson> {
    outcome
        .rows
        .iter()
        .map(|row| RowJson {
            primitive: row.primitive.name(),
            faults: row.faults.name(),
            histories: row.histories,
            ops: row.ops,
            pending: row.pending,
            checked: row.checked,
            elapsed_ms: row.elapsed.as_millis(),
            failures: row
                .failures
                .iter()
                .map(|f| {
                    let (verdict, explanation) = match &f.judgement {
                        Judgement::Linearizable => ("linearizable", String::new()),
                        Judgement::Violation { counterexample } => {
                            ("not linearizable", counterexample.clone())
                        }
                        Judgement::Unknown { explored } => (
                            "unknown",
                            format!("the search stopped after {explored} configurations"),
                        ),
                        Judgement::Broken { why } => ("broken", why.clone()),
                    };
                    FailureJson {
                        plan_seed: f.plan.seed,
                        verdict,
                        explanation,
                        report: format!("{f:#}"),
                        replay: replay_command(row.primitive, seed),
                    }
                })
                .collect(),
        })
        .collect()
}

/// Writes a picture of `recorded` to `path`: a self-contained HTML page if
/// the name ends in `.html` or `.htm`, else an SVG.
pub fn write_picture(path: &Path, recorded: &Recorded) -> std::io::Result<()> {
    let drawing = scenarios::drawing(recorded);
    let html = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("html") || e.eq_ignore_ascii_case("htm"));
    let text = if html {
        svg::html(&drawing)
    } else {
        svg::svg(&drawing)
    };
    std::fs::write(path, text)
}

/// A queue broken on purpose in a way only a linearizability check can
/// see: no message is lost, duplicated or reordered within a producer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HistoryPitfall {
    /// `len()` reads two counters one after the other, so a caller
    /// descheduled between them answers a length that was never true.
    TwoLoadLen,
    /// A non-blocking get answers `Empty` when another consumer holds the
    /// lock, however many messages wait (CPython's `get(block=False)`).
    BusyLockEmpty,
    /// A put returns before its message is in the queue (CPython's feeder
    /// thread), so messages can be taken against real-time order.
    DeferredPut,
}

impl HistoryPitfall {
    /// Every one.
    pub const ALL: [HistoryPitfall; 3] = [
        HistoryPitfall::TwoLoadLen,
        HistoryPitfall::BusyLockEmpty,
        HistoryPitfall::DeferredPut,
    ];

    /// Its name in reports.
    pub fn name(self) -> &'static str {
        match self {
            HistoryPitfall::TwoLoadLen => "two-load len",
            HistoryPitfall::BusyLockEmpty => "empty while holding",
            HistoryPitfall::DeferredPut => "deferred put",
        }
    }

    /// The queue it breaks, bounded to `max_items`.
    fn queue(self, max_items: usize) -> ipc_harness::Result<ipc_harness::Queue> {
        ipc_harness::Queue::builder()
            .max_items(max_items)
            .two_load_len_pitfall(self == HistoryPitfall::TwoLoadLen)
            .busy_lock_empty_pitfall(self == HistoryPitfall::BusyLockEmpty)
            .deferred_put_pitfall(self == HistoryPitfall::DeferredPut)
            .build()
    }
}

/// How the hunt for one pitfall went.
#[derive(Debug, Clone)]
pub struct Hunt {
    /// The pitfall.
    pub pitfall: HistoryPitfall,
    /// Histories recorded until it was caught (or the budget ran out).
    pub histories: usize,
    /// The first history that was not linearizable, judged.
    pub caught: Option<Report>,
}

/// Records histories of `pitfall`'s queue (bounded to 1, 2 and 3 in turn)
/// until one is not linearizable, at most `budget` of them. The observers'
/// `len` pauses between its loads, which widens the window a two-load
/// answer needs and leaves a correct `len` exact.
pub fn hunt(pitfall: HistoryPitfall, seed: u64, budget: u32) -> Hunt {
    ipc_harness::queue::set_len_pause(Duration::from_micros(300));
    let mut hunt = Hunt {
        pitfall,
        histories: 0,
        caught: None,
    };
    for k in 0..budget {
        let max_items = 1 + k as usize % 3;
        let faults = FaultMode::None;
        let primitive = Primitive::Queue {
            max_items: Some(max_items),
        };
        let plan = Plan::derived(seed ^ pitfall as u64, primitive, faults, k);
        let Ok(queue) = pitfall.queue(max_items) else {
            continue;
        };
        let Ok(recorded) = scenarios::record_on_queue(queue, &plan) else {
            continue;
        };
        hunt.histories += 1;
        let report = scenarios::check(&recorded);
        if matches!(report.judgement, Judgement::Violation { .. }) {
            hunt.caught = Some(report);
            break;
        }
    }
    ipc_harness::queue::set_len_pause(Duration::ZERO);
    hunt
}

/// Histories a hunt records at most: a busy-lock `Empty` needs a get to
/// meet another consumer inside its lock, which took up to 90 histories
/// in 16 hunts here; the two others are caught within about a dozen.
pub const HUNT_BUDGET: u32 = 400;

/// Each hunted pitfall, caught (with its counterexample) or missed.
pub fn hunts_text(out: &mut impl Write, hunts: &[Hunt]) -> std::io::Result<()> {
    for hunt in hunts {
        match &hunt.caught {
            Some(report) => {
                writeln!(
                    out,
                    "\ncaught pitfall {} after {} histor{}: {report}",
                    hunt.pitfall.name(),
                    hunt.histories,
                    if hunt.histories == 1 { "y" } else { "ies" }
                )?;
                if let Judgement::Violation { counterexample } = &report.judgement {
                    for line in counterexample.lines() {
                        writeln!(out, "  {line}")?;
                    }
                }
            }
            None => writeln!(
                out,
                "\nMISSED pitfall {}: every one of {} histories was linearizable",
                hunt.pitfall.name(),
                hunt.histories
            )?,
        }
    }
    Ok(())
}

/// One hunt, for the JSON report.
#[derive(Serialize)]
pub struct HuntJson {
    pitfall: &'static str,
    histories: usize,
    caught: bool,
    counterexample: Option<String>,
}

/// The hunts as JSON values.
pub fn hunts_json(hunts: &[Hunt]) -> Vec<HuntJson> {
    hunts
        .iter()
        .map(|h| HuntJson {
            pitfall: h.pitfall.name(),
            histories: h.histories,
            caught: h.caught.is_some(),
            counterexample: h.caught.as_ref().and_then(|r| match &r.judgement {
                Judgement::Violation { counterexample } => Some(counterexample.clone()),
                _ => None,
            }),
        })
        .collect()
}
