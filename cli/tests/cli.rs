//! The `ipc-harness` binary as a user runs it: exit codes, the JSON report,
//! seeds that replay, pitfalls that fail, and plain output off a terminal.

use std::process::{Command, Output};

fn ipc_harness(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ipc-harness"))
        .args(args)
        .output()
        .expect("run ipc-harness")
}

fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).expect("utf-8 output")
}

fn json(o: &Output) -> serde_json::Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {}", stdout(o)))
}

#[test]
fn a_clean_check_exits_0_and_prints_the_table() {
    let o = ipc_harness(&[
        "check",
        "--cases",
        "4",
        "--seed",
        "1",
        "--primitive",
        "pipe()",
        "--primitive",
        "raw pipe",
    ]);
    let out = stdout(&o);
    assert_eq!(o.status.code(), Some(0), "{out}");
    for col in [
        "boundaries",
        "exactly-once",
        "order",
        "integrity",
        "liveness",
    ] {
        assert!(out.contains(col), "{out}");
    }
    assert!(out.contains("verdict: PASS: every promise held"), "{out}");
    // Off a terminal: plain text, no colour or cursor codes.
    let all = [o.stdout.as_slice(), o.stderr.as_slice()].concat();
    assert!(
        !all.iter().any(|&b| b == 0x1b || b == b'\r'),
        "control characters in non-terminal output"
    );
}

#[test]
fn json_matches_the_table_and_a_seed_replays_identically() {
    let args = [
        "check",
        "--cases",
        "6",
        "--seed",
        "42",
        "--primitive",
        "raw pipe",
        "--format",
        "json",
    ];
    let (a, b) = (ipc_harness(&args), ipc_harness(&args));
    assert_eq!(a.status.code(), Some(0));
    let (ja, jb) = (json(&a), json(&b));
    assert_eq!(ja["seed"], 42);
    let row = &ja["results"][0];
    assert_eq!(row["transport"], "raw pipe");
    assert_eq!(row["properties"]["boundaries"]["promised"], false);
    assert_eq!(row["properties"]["order"]["status"], "pass");
    // The same seed runs the same scenarios: the same verdicts, counts and kinds.
    for p in [
        "boundaries",
        "exactly-once",
        "order",
        "integrity",
        "liveness",
    ] {
        let (pa, pb) = (&row["properties"][p], &jb["results"][0]["properties"][p]);
        assert_eq!(pa["status"], pb["status"], "{p}");
        assert_eq!(pa["kinds"], pb["kinds"], "{p}");
    }
    // The text table says what the JSON says.
    let text = stdout(&ipc_harness(&[
        "check",
        "--cases",
        "6",
        "--seed",
        "42",
        "--primitive",
        "raw pipe",
    ]));
    let line = text
        .lines()
        .find(|l| l.starts_with("raw pipe"))
        .expect("a raw pipe row");
    assert!(
        line.contains(row["properties"]["boundaries"]["status"].as_str().unwrap()),
        "{line}"
    );
}

#[test]
fn caught_pitfalls_exit_0_naming_each_violation() {
    let o = ipc_harness(&[
        "check",
        "--cases",
        "16",
        "--include-pitfalls",
        "--primitive",
        "pitfall: coalescing",
        "--primitive",
        "pitfall: eof-never-comes",
        "--format",
        "json",
    ]);
    // A pitfall breaks the promises it claims: caught, as it must be.
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    let j = json(&o);
    let rows = j["results"].as_array().unwrap();
    assert_eq!(rows.len(), 2);
    let boundaries = &rows[0]["properties"]["boundaries"];
    assert!(
        boundaries["status"].as_str().unwrap().starts_with("FAIL"),
        "{boundaries}"
    );
    let kinds = boundaries["kinds"].as_array().unwrap();
    assert!(
        kinds.iter().any(|k| k == "Merged" || k == "Split"),
        "{boundaries}"
    );
    assert_eq!(rows[1]["properties"]["liveness"]["status"], "FAIL Hang");
    for r in rows {
        assert_eq!(r["promises_held"], false);
    }
}

#[test]
fn bad_usage_exits_2() {
    assert_eq!(
        ipc_harness(&["check", "--cases", "many"]).status.code(),
        Some(2)
    );
    assert_eq!(
        ipc_harness(&["check", "--primitive", "carrier pigeon"])
            .status
            .code(),
        Some(2)
    );
    assert_eq!(ipc_harness(&["frobnicate"]).status.code(), Some(2));
    let help = ipc_harness(&["check", "--help"]);
    assert_eq!(help.status.code(), Some(0));
    assert!(stdout(&help).contains("Examples:"));
}

#[test]
fn the_text_report_names_each_caught_pitfall_and_its_violation() {
    let o = ipc_harness(&[
        "check",
        "--cases",
        "16",
        "--include-pitfalls",
        "--primitive",
        "pitfall: split-reads",
    ]);
    assert_eq!(o.status.code(), Some(0));
    let out = stdout(&o);
    assert!(out.contains("caught pitfall split-reads after"), "{out}");
    assert!(out.contains("Split:"), "{out}");
}

#[test]
fn junit_has_a_case_per_transport_and_property_with_failures_for_broken_promises() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("check.xml");
    let o = ipc_harness(&[
        "check",
        "--cases",
        "8",
        "--include-pitfalls",
        "--primitive",
        "pipe()",
        "--primitive",
        "pitfall: coalescing",
        "--junit",
        file.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0));
    let xml = std::fs::read_to_string(&file).unwrap();
    assert!(xml.starts_with("<?xml"));
    assert_eq!(xml.matches("<testsuite ").count(), 2, "{xml}");
    let properties = ipc_harness::harness::channel::Property::ALL.len();
    assert_eq!(xml.matches("<testcase ").count(), 2 * properties, "{xml}");
    assert!(
        xml.contains(&format!(
            r#"<testsuite name="pipe()" tests="{properties}" failures="0""#
        )),
        "{xml}"
    );
    assert!(xml.contains(r#"<failure message="FAIL: "#), "{xml}");
}

#[test]
fn check_with_faults_reports_what_became_of_every_send() {
    let dir = tempfile::tempdir().unwrap();
    let regressions = dir.path().join("check.txt");
    let o = ipc_harness(&[
        "check",
        "--faults",
        "--cases",
        "8",
        "--primitive",
        "Queue",
        "--primitive",
        "pipe()",
        "--format",
        "json",
        "--regressions",
        regressions.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    let report = json(&o);
    for row in report["results"].as_array().unwrap() {
        let a = &row["accounting"];
        let attempted = a["attempted"].as_u64().unwrap();
        let parts = ["ok", "lost", "recovered", "indeterminate_lost"]
            .iter()
            .map(|k| a[k].as_u64().unwrap())
            .sum::<u64>();
        // Every send ends up in exactly one of these (none was duplicated).
        assert!(attempted > 0, "{a}");
        assert_eq!(parts, attempted, "{a}");
        assert_eq!(a["duplicated"], 0, "{a}");
        assert_eq!(a["lost"], a["lost_to_faults"], "{a}");
    }
}

#[test]
fn a_short_soak_prints_its_figures_and_no_violation() {
    let dir = tempfile::tempdir().unwrap();
    let regressions = dir.path().join("check.txt");
    let o = ipc_harness(&[
        "check",
        "--soak",
        "2s",
        "--primitive",
        "pipe()",
        "--primitive",
        "Queue",
        "--regressions",
        regressions.to_str().unwrap(),
    ]);
    let out = stdout(&o);
    assert_eq!(o.status.code(), Some(0), "{out}");
    for figure in [
        "scenarios run",
        "processes killed",
        "signals delivered",
        "messages sent",
        "lost to killed consumers",
        "violations",
    ] {
        assert!(out.contains(figure), "{figure} missing:\n{out}");
    }
    let violations = out
        .lines()
        .find(|l| l.trim_start().starts_with("violations"))
        .and_then(|l| l.split_whitespace().last())
        .unwrap();
    assert_eq!(violations, "0", "{out}");
    let bad = ipc_harness(&["check", "--soak", "ten minutes"]);
    assert_eq!(bad.status.code(), Some(2));
}

/// The verdict line of a text report.
fn verdict(o: &Output) -> String {
    let out = stdout(o);
    out.lines()
        .find(|l| l.starts_with("verdict: "))
        .unwrap_or_else(|| panic!("no verdict line:\n{out}"))
        .to_string()
}

#[test]
fn primitive_takes_short_names_in_any_case_and_full_names() {
    let o = ipc_harness(&[
        "check",
        "--cases",
        "2",
        "--seed",
        "3",
        "--primitive",
        "PIPE",
        "--primitive",
        "duplex",
        "--primitive",
        "Queue::bounded(4) (4 KiB ring)",
        "--primitive",
        "raw-pipe",
        "--primitive",
        "coalescing",
        "--primitive",
        "pipe()",
        "--format",
        "json",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    let names: Vec<String> = json(&o)["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["transport"].as_str().unwrap().to_string())
        .collect();
    // Registry order, each once: `duplex` is both directions.
    assert_eq!(
        names,
        [
            "pipe()",
            "duplex() a->b",
            "duplex() b->a",
            "Queue::bounded(4) (4 KiB ring)",
            "raw pipe",
            "pitfall: coalescing"
        ]
    );
}

#[test]
fn every_name_primitive_takes_is_in_the_help_and_an_unknown_one_lists_them() {
    let help = stdout(&ipc_harness(&["check", "--help"]));
    let unknown = ipc_harness(&["check", "--primitive", "carrier pigeon"]);
    assert_eq!(unknown.status.code(), Some(2));
    let err = String::from_utf8_lossy(&unknown.stderr).to_string();
    assert!(
        err.contains("no transport named \"carrier pigeon\""),
        "{err}"
    );
    for entry in ipc_harness_cli::registry::all(true) {
        assert!(
            !entry.aliases.is_empty(),
            "{} has no short name",
            entry.name
        );
        for name in entry.aliases.iter().copied().chain([entry.name.as_str()]) {
            assert!(help.contains(name), "--help lacks {name:?}:\n{help}");
            assert!(err.contains(name), "the refusal lacks {name:?}:\n{err}");
        }
    }
    for alias in [
        "pipe",
        "duplex-ab",
        "duplex-ba",
        "fifo",
        "queue",
        "queue-bounded",
    ] {
        assert!(help.contains(alias), "{help}");
    }
    for alias in [
        "joinable",
        "packet-pipe",
        "stream",
        "seqpacket",
        "dgram",
        "coalescing",
    ] {
        assert!(help.contains(alias), "{help}");
    }
    assert!(
        help.contains("Exit status: 0 when every primitive"),
        "{help}"
    );
}

#[test]
fn the_exit_status_and_the_verdict_line_agree() {
    // Every primitive held and the pitfall was caught: 0, and PASS.
    let caught = ipc_harness(&[
        "check",
        "--cases",
        "8",
        "--include-pitfalls",
        "--primitive",
        "pipe()",
        "--primitive",
        "pitfall: coalescing",
    ]);
    let line = verdict(&caught);
    assert_eq!(caught.status.code(), Some(0), "{}", stdout(&caught));
    assert!(
        line.starts_with("verdict: PASS: every promise held (1 primitive, 0 raw transports) and every pitfall was caught (1 of 1)"),
        "{line}"
    );
    // With one producer, writes cannot interleave: the pitfall goes
    // uncaught, and that fails the check.
    let missed = ipc_harness(&[
        "check",
        "--cases",
        "4",
        "--processes",
        "1",
        "--primitive",
        "pipe",
        "--primitive",
        "interleaved-writes",
    ]);
    let line = verdict(&missed);
    assert_eq!(missed.status.code(), Some(1), "{}", stdout(&missed));
    assert!(line.starts_with("verdict: FAIL: "), "{line}");
    assert!(
        line.contains("the harness MISSED pitfall: interleaved-writes (0 of 1 pitfalls caught)"),
        "{line}"
    );
    assert!(stdout(&missed).contains("MISSED pitfall interleaved-writes"));
    // Only pitfalls, caught: no claim about primitives that were not run.
    let only = ipc_harness(&["check", "--cases", "8", "--primitive", "split-reads"]);
    assert_eq!(only.status.code(), Some(0), "{}", stdout(&only));
    let line = verdict(&only);
    assert!(
        line.starts_with("verdict: PASS: every pitfall was caught (1 of 1);"),
        "{line}"
    );
}
