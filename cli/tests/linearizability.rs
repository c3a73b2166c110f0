//! `ipc-harness check --linearizability` as a user runs it: histories of
//! every modelled primitive under each fault mode, the pitfalls only a
//! history check catches, pictures, replays, and a verdict that fails on a
//! history that is not linearizable.

use std::process::{Command, Output};

use ipc_harness::harness::history::scenarios::{
    FaultMode, Judgement, Plan, Primitive, ProcessReport, Report,
};
use ipc_harness_cli::histories::{Outcome, Row};
use ipc_harness_cli::report::{Histories, Verdict};

fn ipc_harness(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ipc-harness"))
        .args(args)
        .output()
        .expect("run ipc-harness")
}

fn json(o: &Output) -> serde_json::Value {
    serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&o.stdout)))
}

#[test]
fn every_fault_mode_of_each_named_primitive_is_checked_and_replays() {
    let dir = tempfile::tempdir().unwrap();
    let picture = dir.path().join("h.svg");
    let args = [
        "check",
        "--linearizability",
        "--primitive",
        "queue-1",
        "--primitive",
        "pipe",
        "--histories",
        "3",
        "--seed",
        "5",
        "--format",
        "json",
        "--history-svg",
        picture.to_str().unwrap(),
    ];
    let (a, b) = (ipc_harness(&args), ipc_harness(&args));
    assert_eq!(
        a.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&a.stderr)
    );
    let (ja, jb) = (json(&a), json(&b));
    assert_eq!(ja["passed"], true);
    // No delivery campaign ran: only histories.
    assert_eq!(ja["results"].as_array().unwrap().len(), 0);
    let rows = ja["linearizability"].as_array().unwrap();
    let cells: Vec<(String, String, u64)> = rows
        .iter()
        .map(|r| {
            assert_eq!(r["failures"].as_array().unwrap().len(), 0, "{r}");
            (
                r["primitive"].as_str().unwrap().to_string(),
                r["faults"].as_str().unwrap().to_string(),
                r["histories"].as_u64().unwrap(),
            )
        })
        .collect();
    let expected: Vec<(String, String, u64)> = ["queue-1", "pipe"]
        .iter()
        .flat_map(|p| {
            ["none", "kill", "stop", "storm"]
                .iter()
                .map(move |f| (p.to_string(), f.to_string(), 3))
        })
        .collect();
    assert_eq!(cells, expected);
    // The same seed plans the same histories: without a kill, every step
    // planned is done, so the operation counts match exactly.
    for (ra, rb) in rows.iter().zip(jb["linearizability"].as_array().unwrap()) {
        if ra["faults"] != "kill" {
            assert_eq!(ra["ops"], rb["ops"], "{ra} vs {rb}");
        }
        assert!(ra["ops"].as_u64().unwrap() > 0, "{ra}");
    }
    // Only a kill leaves operations pending.
    for r in rows.iter().filter(|r| r["faults"] != "kill") {
        assert_eq!(r["pending"], 0, "{r}");
    }
    // The picture: a bar for every operation it says it draws.
    let svg = std::fs::read_to_string(&picture).unwrap();
    assert!(svg.starts_with("<?xml"), "{svg}");
    let ops: usize = attribute(&svg, "data-ops").parse().unwrap();
    assert!(ops > 0);
    assert_eq!(svg.matches("<rect class=\"op").count(), ops, "{svg}");
    assert!(svg.contains("Linearizable"), "{svg}");
}

/// The value of the first `name="..."` in `text`.
fn attribute<'t>(text: &'t str, name: &str) -> &'t str {
    let start = text.find(&format!("{name}=\"")).expect(name) + name.len() + 2;
    &text[start..start + text[start..].find('"').unwrap()]
}

#[test]
fn an_html_picture_is_asked_for_by_its_name() {
    let dir = tempfile::tempdir().unwrap();
    let page = dir.path().join("h.html");
    let o = ipc_harness(&[
        "check",
        "--linearizability",
        "--primitive",
        "duplex",
        "--histories",
        "1",
        "--history-svg",
        page.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0));
    let html = std::fs::read_to_string(&page).unwrap();
    assert!(html.starts_with("<!DOCTYPE html>"), "{html}");
    assert!(html.contains("<svg"), "{html}");
}

#[test]
fn the_pitfalls_only_histories_show_are_each_caught() {
    let o = ipc_harness(&[
        "check",
        "--linearizability",
        "--include-pitfalls",
        "--primitive",
        "queue-1",
        "--histories",
        "1",
        "--seed",
        "3",
        "--format",
        "json",
    ]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
    let j = json(&o);
    let hunts = j["history_pitfalls"].as_array().unwrap();
    let names: Vec<&str> = hunts
        .iter()
        .map(|h| h["pitfall"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["two-load len", "empty while holding", "deferred put"]
    );
    for h in hunts {
        assert_eq!(h["caught"], true, "{h}");
        assert!(h["histories"].as_u64().unwrap() >= 1, "{h}");
    }
    // The two-load len is caught by a length no queue bounded to 1, 2 or
    // 3 had at that instant.
    let why = hunts[0]["counterexample"].as_str().unwrap();
    assert!(why.contains("len() -> "), "{why}");
}

#[test]
fn a_name_without_a_model_is_refused_with_the_names_there_are() {
    let o = ipc_harness(&["check", "--linearizability", "--primitive", "raw pipe"]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("no primitive with a model named \"raw pipe\"")
            && err.contains(
                "queue-1, queue-2, queue-3, queue, joinable, pipe, duplex, duplex-pipes, fifo, fifo-chunked"
            ),
        "{err}"
    );
}

/// A history that is not linearizable fails the verdict (exit status 1)
/// and is named in it; a missed pitfall too. The real primitives give
/// none, so the outcome is made by hand.
#[test]
fn a_history_not_linearizable_fails_the_verdict() {
    let failing = Report {
        primitive: Primitive::Queue { max_items: Some(1) },
        plan: Plan::new(9, FaultMode::Kill),
        processes: Vec::<ProcessReport>::new(),
        planned: 3,
        ops: 3,
        pending: 1,
        dropped: 0,
        checked: 3,
        judgement: Judgement::Violation {
            counterexample: "len() -> 2".into(),
        },
        schedule: String::new(),
    };
    let row = |faults, failures: Vec<Report>| Row {
        primitive: Primitive::Queue { max_items: Some(1) },
        faults,
        histories: 2,
        ops: 10,
        pending: 0,
        checked: 10,
        failures,
        elapsed: std::time::Duration::ZERO,
    };
    let mut histories = Histories {
        outcome: Outcome {
            rows: vec![
                row(FaultMode::None, vec![]),
                row(FaultMode::Kill, vec![failing]),
            ],
            to_draw: None,
            errors: Vec::new(),
        },
        per_mode: 2,
        seed: 1,
        hunts: Vec::new(),
    };
    let verdict = Verdict::of(&[]).with_histories(Some(&histories));
    assert!(!verdict.passed());
    assert_eq!(verdict.not_linearizable, ["queue-1/kill"]);
    assert_eq!(
        verdict.to_string(),
        "verdict: FAIL: a history was NOT LINEARIZABLE in queue-1/kill (see above)"
    );
    histories.outcome.rows.pop();
    let verdict = Verdict::of(&[]).with_histories(Some(&histories));
    assert!(verdict.passed());
    assert_eq!(
        verdict.to_string(),
        "verdict: PASS: every history was linearizable (2 histories, 10 operations)"
    );
    histories.hunts.push(ipc_harness_cli::histories::Hunt {
        pitfall: ipc_harness_cli::histories::HistoryPitfall::DeferredPut,
        histories: 400,
        caught: None,
    });
    let verdict = Verdict::of(&[]).with_histories(Some(&histories));
    assert!(!verdict.passed());
    assert_eq!(verdict.missed, ["pitfall: deferred put"]);
}
