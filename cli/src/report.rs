//! What `ipc-harness check` prints: the table of properties per transport
//! (text), the same figures as one JSON object, the JUnit XML report
//! (`--junit`), and the figures of a soak (`--soak`).

use std::io::Write;
use std::time::Duration;

use ipc_harness::harness::campaign::{CampaignConfig, CampaignResult};
use ipc_harness::harness::channel::Property;
use ipc_harness::harness::check::Accounting;
use serde::Serialize;

use crate::registry::{Entry, Kind};

/// The `check` report as text: the table of properties per transport, what
/// broke and how to replay it, each pitfall caught (or missed), the verdict.
pub fn text(
    out: &mut impl Write,
    results: &[(Entry, CampaignResult)],
    config: &CampaignConfig,
    elapsed: Duration,
    include_pitfalls: bool,
    histories: Option<&Histories>,
) -> std::io::Result<()> {
    if !results.is_empty() {
        deliveries(out, results, config)?;
    }
    if let Some(h) = histories {
        crate::histories::text(out, &h.outcome, h.per_mode, h.seed)?;
        crate::histories::hunts_text(out, &h.hunts)?;
    }
    writeln!(out)?;
    let verdict = Verdict::of(results).with_histories(histories);
    write!(out, "{verdict}; {:.1}s.", elapsed.as_secs_f64())?;
    if verdict.passed() && !include_pitfalls && verdict.pitfalls == 0 && !results.is_empty() {
        write!(
            out,
            " Add --include-pitfalls to see the harness catch each naive variant."
        )?;
    }
    writeln!(out)?;
    Ok(())
}

/// The linearizability part of a check: what [`crate::histories::run`]
/// found, with how it was asked.
#[derive(Debug, Clone)]
pub struct Histories {
    /// The rows and failures.
    pub outcome: crate::histories::Outcome,
    /// Histories per primitive and fault mode.
    pub per_mode: u32,
    /// The check's seed.
    pub seed: u64,
    /// The pitfalls only a linearizability check catches, each hunted
    /// (with `--include-pitfalls`).
    pub hunts: Vec<crate::histories::Hunt>,
}

/// The delivery table, what broke, and each pitfall caught or missed.
fn deliveries(
    out: &mut impl Write,
    results: &[(Entry, CampaignResult)],
    config: &CampaignConfig,
) -> std::io::Result<()> {
    writeln!(
        out,
        "ipc-harness check: {} scenarios per transport (random producers x consumers x message sizes), seed {}",
        config.cases, config.seed
    )?;
    writeln!(out)?;
    let name_w = results
        .iter()
        .map(|(e, _)| e.name.len())
        .max()
        .unwrap_or(10)
        .max(9);
    let cells: Vec<Vec<String>> = results
        .iter()
        .map(|(_, r)| Property::ALL.iter().map(|&p| short_cell(r, p)).collect())
        .collect();
    let col_w: Vec<usize> = Property::ALL
        .iter()
        .enumerate()
        .map(|(i, p)| {
            cells
                .iter()
                .map(|row| row[i].len())
                .chain([p.title().len()])
                .max()
                .unwrap_or(4)
        })
        .collect();
    write!(out, "{:name_w$}", "transport")?;
    for (i, p) in Property::ALL.iter().enumerate() {
        write!(out, "  {:w$}", p.title(), w = col_w[i])?;
    }
    writeln!(out, "  {:>5}  {:>7}", "runs", "time")?;
    let mut notes = Vec::new();
    for ((entry, result), row) in results.iter().zip(&cells) {
        write!(out, "{:name_w$}", entry.name)?;
        for (i, p) in Property::ALL.into_iter().enumerate() {
            write!(out, "  {:w$}", row[i], w = col_w[i])?;
            let full = result.cell(p);
            if full != "pass" && full != "not promised" {
                if let Some(example) = result.tally.get(&p).and_then(|t| t.example.as_ref()) {
                    notes.push(format!("{} / {p}: {full}\n    e.g. {example}", entry.name));
                }
            }
        }
        writeln!(
            out,
            "  {:>5}  {:>6.1}s",
            result.runs,
            result.elapsed.as_secs_f64()
        )?;
    }
    writeln!(out)?;
    writeln!(
        out,
        "pass: held in every run.  FAIL: a promised property broke.  n/p: not promised.  n/p!: not promised, and broken here as the kernel allows: the lesson."
    )?;
    if config.faults || config.run.signal_storm.is_some() {
        writeln!(out, "\nUnder faults, what became of every send:")?;
        for (entry, result) in results {
            writeln!(out, "  {}: {}", entry.name, result.accounting)?;
        }
    }
    if !notes.is_empty() {
        writeln!(out, "\nWhat broke:")?;
        for n in &notes {
            writeln!(out, "  {n}")?;
        }
    }
    for (entry, result) in results {
        match (&entry.kind, &result.failure) {
            (Kind::Primitive | Kind::Raw, Some((scenario, report))) => {
                writeln!(
                    out,
                    "\nPROMISE BROKEN by {}: minimal scenario\n  {scenario}",
                    entry.name
                )?;
                writeln!(out, "{report}")?;
                writeln!(out, "replay: {}", replay_command(&entry.name, config))?;
            }
            (Kind::Pitfall(p), Some(_)) => {
                writeln!(
                    out,
                    "\ncaught pitfall {} after {} run(s): {}",
                    p.name(),
                    result.runs_to_failure.unwrap_or(result.runs),
                    p.summary()
                )?;
            }
            (Kind::Pitfall(p), None) => {
                writeln!(
                    out,
                    "\nMISSED pitfall {}: the harness did not catch it in {} runs",
                    p.name(),
                    result.runs
                )?;
            }
            _ => {}
        }
    }
    Ok(())
}

/// What a `check` comes to: every primitive and raw transport must keep
/// its promises, and every pitfall must be caught (its promises broken:
/// the naive code is meant to fail). The exit status is 0 exactly when
/// [`Verdict::passed`], and the verdict line (its `Display`) says which
/// rows decided it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// Primitives checked.
    pub primitives: usize,
    /// Raw transports checked.
    pub raw: usize,
    /// Pitfall entries checked.
    pub pitfalls: usize,
    /// Primitives and raw transports that broke a promise, by name.
    pub broken: Vec<String>,
    /// Pitfall entries the harness did not catch, by name.
    pub missed: Vec<String>,
    /// Histories checked for linearizability, and their operations.
    pub histories: (usize, usize),
    /// Primitives and fault modes with a history that was not
    /// linearizable (or could not be run), as `queue-1/kill`.
    pub not_linearizable: Vec<String>,
}

impl Verdict {
    /// The verdict on `results`.
    pub fn of(results: &[(Entry, CampaignResult)]) -> Verdict {
        let mut v = Verdict {
            primitives: 0,
            raw: 0,
            pitfalls: 0,
            broken: Vec::new(),
            missed: Vec::new(),
            histories: (0, 0),
            not_linearizable: Vec::new(),
        };
        for (entry, result) in results {
            match entry.kind {
                Kind::Primitive => v.primitives += 1,
                Kind::Raw => v.raw += 1,
                Kind::Pitfall(_) => v.pitfalls += 1,
            }
            let held = result.promises_held();
            match entry.kind {
                Kind::Primitive | Kind::Raw if !held => v.broken.push(entry.name.clone()),
                Kind::Pitfall(_) if held => v.missed.push(entry.name.clone()),
                _ => {}
            }
        }
        v
    }

    /// Adds the linearizability figures of `checked`.
    pub fn with_histories(mut self, checked: Option<&Histories>) -> Verdict {
        if let Some(h) = checked {
            self.histories = (
                h.outcome.rows.iter().map(|r| r.histories).sum(),
                h.outcome.rows.iter().map(|r| r.ops).sum(),
            );
            self.not_linearizable = h
                .outcome
                .rows
                .iter()
                .filter(|r| !r.failures.is_empty())
                .map(|r| format!("{}/{}", r.primitive, r.faults))
                .collect();
            for hunt in &h.hunts {
                self.pitfalls += 1;
                if hunt.caught.is_none() {
                    self.missed
                        .push(format!("pitfall: {}", hunt.pitfall.name()));
                }
            }
            if !h.outcome.errors.is_empty() {
                self.not_linearizable.push(format!(
                    "{} run(s) that could not start",
                    h.outcome.errors.len()
                ));
            }
        }
        self
    }

    /// Every promise held, every pitfall was caught and every history was
    /// linearizable: exit status 0.
    pub fn passed(&self) -> bool {
        self.broken.is_empty() && self.missed.is_empty() && self.not_linearizable.is_empty()
    }
}

/// `verdict: PASS: every promise held (2 primitives, 1 raw transport) and
/// every pitfall was caught (1 of 1)`, or `verdict: FAIL: ...` naming what
/// broke and what was missed. No trailing period: the caller adds the time.
impl std::fmt::Display for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let plural =
            |n: usize, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
        let checked = format!(
            "{}, {}",
            plural(self.primitives, "primitive", "primitives"),
            plural(self.raw, "raw transport", "raw transports")
        );
        let caught = self.pitfalls - self.missed.len();
        let mut parts = Vec::new();
        if self.broken.is_empty() {
            if self.primitives + self.raw > 0 {
                parts.push(format!("every promise held ({checked})"));
            }
        } else {
            parts.push(format!(
                "a promise was BROKEN by {} (see above; {checked} checked)",
                self.broken.join(", ")
            ));
        }
        if self.pitfalls > 0 {
            if self.missed.is_empty() {
                parts.push(format!(
                    "every pitfall was caught ({caught} of {})",
                    self.pitfalls
                ));
            } else {
                parts.push(format!(
                    "the harness MISSED {} ({caught} of {} pitfalls caught)",
                    self.missed.join(", "),
                    self.pitfalls
                ));
            }
        }
        let (histories, ops) = self.histories;
        if histories > 0 || !self.not_linearizable.is_empty() {
            if self.not_linearizable.is_empty() {
                parts.push(format!(
                    "every history was linearizable ({histories} histories, {ops} operations)"
                ));
            } else {
                parts.push(format!(
                    "a history was NOT LINEARIZABLE in {} (see above)",
                    self.not_linearizable.join(", ")
                ));
            }
        }
        if parts.is_empty() {
            parts.push("nothing was checked".into());
        }
        let outcome = if self.passed() { "PASS" } else { "FAIL" };
        write!(f, "verdict: {outcome}: {}", parts.join(" and "))
    }
}

/// A table cell: `pass`, `FAIL Merged+Split`, `n/p`, `n/p! Lost`.
fn short_cell(result: &CampaignResult, p: Property) -> String {
    let tally = result.tally.get(&p);
    // Every kind seen, e.g. `Merged+Split`: one alone can mislead.
    let kinds = tally
        .map(|t| t.kinds.keys().copied().collect::<Vec<_>>().join("+"))
        .unwrap_or_default();
    match (result.promises.promises(p), tally) {
        (true, None) => "pass".into(),
        (true, Some(_)) => format!("FAIL {kinds}"),
        (false, None) => "n/p".into(),
        (false, Some(_)) => format!("n/p! {kinds}"),
    }
}

/// The command line that replays `name`'s campaign under `config`.
pub fn replay_command(name: &str, config: &CampaignConfig) -> String {
    let mut command = format!(
        "ipc-harness check --primitive '{name}' --seed {} --cases {}",
        config.seed, config.cases
    );
    if config.faults {
        command.push_str(" --faults");
    }
    if let Some(storm) = config.run.signal_storm {
        command.push_str(&format!(" --signal-storm {}", storm.as_micros()));
    }
    command
}

/// What a soak did, added up over its rounds.
#[derive(Debug, Default)]
pub struct SoakFigures {
    /// Scenarios run.
    pub scenarios: u64,
    /// Campaigns run (one per transport per round).
    pub campaigns: u64,
    /// Each broken promise, with its replay command.
    pub broken: Vec<String>,
    /// What became of every send, and the faults that struck.
    pub accounting: Accounting,
}

/// The figures of a soak over `transports` transports that took `elapsed`.
pub fn soak_text(
    out: &mut impl Write,
    figures: &SoakFigures,
    elapsed: Duration,
    transports: usize,
) -> std::io::Result<()> {
    let a = &figures.accounting;
    writeln!(
        out,
        "soak: {:.0}s, {} transport(s), {} campaigns, seed fresh per campaign",
        elapsed.as_secs_f64(),
        transports,
        figures.campaigns
    )?;
    let pct = |n| 100.0 * a.fraction(n);
    let rows = [
        ("scenarios run", figures.scenarios.to_string()),
        ("processes killed", a.killed.to_string()),
        ("processes stopped and continued", a.stopped.to_string()),
        ("processes that closed early", a.closed_early.to_string()),
        (
            "signals delivered",
            format!(
                "{} ({} SIGKILL, {} SIGSTOP+SIGCONT, {} storm SIGALRM)",
                a.signals(),
                a.killed,
                2 * a.stopped,
                a.storm_signals
            ),
        ),
        ("messages sent (attempted)", a.attempted.to_string()),
        ("  ok", format!("{} ({:.2}%)", a.ok, pct(a.ok))),
        (
            "  lost to killed consumers",
            format!("{} ({:.2}%)", a.lost_to_faults, pct(a.lost_to_faults)),
        ),
        (
            "  recovered (cut by a kill, arrived)",
            format!("{} ({:.2}%)", a.recovered, pct(a.recovered)),
        ),
        (
            "  indeterminate, not arrived",
            format!(
                "{} ({:.2}%)",
                a.indeterminate_lost,
                pct(a.indeterminate_lost)
            ),
        ),
        (
            "    of which refused (no consumer left)",
            a.refused.to_string(),
        ),
        ("  duplicated", a.duplicated.to_string()),
        ("  unexpected", a.unexpected.to_string()),
        (
            "  lost without a fault to explain it",
            (a.lost - a.lost_to_faults).to_string(),
        ),
        ("violations", figures.broken.len().to_string()),
    ];
    for (name, value) in rows {
        writeln!(out, "  {name:<40} {value}")?;
    }
    for b in &figures.broken {
        writeln!(out, "\nPROMISE BROKEN: {b}")?;
    }
    Ok(())
}

/// The `check` report as one JSON object (and a newline).
pub fn json(
    out: &mut impl Write,
    results: &[(Entry, CampaignResult)],
    config: &CampaignConfig,
    elapsed: Duration,
    histories: Option<&Histories>,
) -> std::io::Result<()> {
    let report = CheckJson {
        linearizability: histories
            .map(|h| crate::histories::json(&h.outcome, h.seed))
            .unwrap_or_default(),
        history_pitfalls: histories
            .map(|h| crate::histories::hunts_json(&h.hunts))
            .unwrap_or_default(),
        passed: Verdict::of(results).with_histories(histories).passed(),
        seed: config.seed,
        cases: config.cases,
        elapsed_ms: elapsed.as_millis(),
        results: results
            .iter()
            .map(|(entry, r)| ResultJson {
                transport: &entry.name,
                kind: match entry.kind {
                    Kind::Primitive => "primitive".to_string(),
                    Kind::Raw => "raw".to_string(),
                    Kind::Pitfall(p) => format!("pitfall:{}", p.name()),
                },
                runs: r.runs,
                elapsed_ms: r.elapsed.as_millis(),
                promises_held: r.promises_held(),
                properties: InOrder(
                    Property::ALL
                        .iter()
                        .map(|&p| {
                            let t = r.tally.get(&p);
                            let json = PropertyJson {
                                promised: r.promises.promises(p),
                                status: short_cell(r, p),
                                violated_runs: t.map_or(0, |t| t.violated_runs),
                                kinds: t
                                    .map(|t| t.kinds.keys().copied().collect())
                                    .unwrap_or_default(),
                                example: t.and_then(|t| t.example.as_deref()),
                            };
                            (p.title(), json)
                        })
                        .collect(),
                ),
                accounting: AccountingJson::from(&r.accounting),
                failure: r.failure.as_ref().map(|(scenario, report)| FailureJson {
                    scenario: scenario.to_string(),
                    report,
                    replay: replay_command(&entry.name, config),
                }),
            })
            .collect(),
    };
    serde_json::to_writer(&mut *out, &report)?;
    writeln!(out)
}

// The JSON report's shape: field order is key order.

#[derive(Serialize)]
struct CheckJson<'a> {
    passed: bool,
    linearizability: Vec<crate::histories::RowJson>,
    history_pitfalls: Vec<crate::histories::HuntJson>,
    seed: u64,
    cases: u32,
    elapsed_ms: u128,
    results: Vec<ResultJson<'a>>,
}

#[derive(Serialize)]
struct ResultJson<'a> {
    transport: &'a str,
    kind: String,
    runs: u32,
    elapsed_ms: u128,
    promises_held: bool,
    properties: InOrder<&'static str, PropertyJson<'a>>,
    accounting: AccountingJson,
    failure: Option<FailureJson<'a>>,
}

#[derive(Serialize)]
struct PropertyJson<'a> {
    promised: bool,
    status: String,
    violated_runs: u32,
    kinds: Vec<&'static str>,
    example: Option<&'a str>,
}

#[derive(Serialize)]
struct FailureJson<'a> {
    scenario: String,
    report: &'a str,
    replay: String,
}

#[derive(Serialize)]
struct AccountingJson {
    attempted: u64,
    ok: u64,
    lost: u64,
    lost_to_faults: u64,
    recovered: u64,
    indeterminate_lost: u64,
    duplicated: u64,
    unexpected: u64,
    refused: u64,
    killed: u64,
    stopped: u64,
    closed_early: u64,
    storm_signals: u64,
}

impl From<&Accounting> for AccountingJson {
    fn from(a: &Accounting) -> Self {
        AccountingJson {
            attempted: a.attempted,
            ok: a.ok,
            lost: a.lost,
            lost_to_faults: a.lost_to_faults,
            recovered: a.recovered,
            indeterminate_lost: a.indeterminate_lost,
            duplicated: a.duplicated,
            unexpected: a.unexpected,
            refused: a.refused,
            killed: a.killed,
            stopped: a.stopped,
            closed_early: a.closed_early,
            storm_signals: a.storm_signals,
        }
    }
}

/// A JSON object whose keys keep the order given (a `serde_json::Map`
/// sorts them unless serde_json's `preserve_order` is on).
struct InOrder<K, V>(Vec<(K, V)>);

impl<K: Serialize, V: Serialize> Serialize for InOrder<K, V> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.0.iter().map(|(k, v)| (k, v)))
    }
}

/// A JUnit report: a test suite per transport, a test case per property;
/// a broken promise is a `<failure>`, a property not promised `<skipped>`.
pub fn junit(results: &[(Entry, CampaignResult)]) -> String {
    // A small writer: the format is a dozen lines, and a JUnit crate would
    // reorder attributes and add its own (see the report for the choice).
    // Escaping is quick-xml's: `escape` for attribute values, and for text
    // `partial_escape`, which leaves quotes and apostrophes as they are.
    use quick_xml::escape::{escape as xml, partial_escape as xml_text};
    let mut out = String::from(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites name=\"ipc-harness check\">\n",
    );
    for (entry, r) in results {
        let failures = Property::ALL
            .iter()
            .filter(|&&p| r.promises.promises(p) && r.tally.contains_key(&p))
            .count();
        out.push_str(&format!(
            "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{failures}\" time=\"{:.3}\">\n",
            xml(&entry.name),
            Property::ALL.len(),
            r.elapsed.as_secs_f64()
        ));
        for p in Property::ALL {
            out.push_str(&format!(
                "    <testcase classname=\"{}\" name=\"{}\"",
                xml(&entry.name),
                xml(p.title())
            ));
            let tally = r.tally.get(&p);
            match (r.promises.promises(p), tally) {
                (true, Some(t)) => out.push_str(&format!(
                    ">\n      <failure message=\"{}\">{}</failure>\n    </testcase>\n",
                    xml(r.cell(p)),
                    xml_text(t.example.as_deref().unwrap_or(""))
                )),
                (false, _) => {
                    out.push_str(">\n      <skipped message=\"not promised\"/>\n    </testcase>\n")
                }
                (true, None) => out.push_str("/>\n"),
            }
        }
        out.push_str("  </testsuite>\n");
    }
    out.push_str("</testsuites>\n");
    out
}
