//! Histories recorded from every primitive with a model, without faults and
//! under kills, stops and signal storms, are linearizable; and the check
//! catches a recorded history with one answer made false.
//!
//! `HISTORY_ROUNDS` (default 2) sets how many plans each primitive runs
//! per fault mode.

use ipc_harness::harness::fork;
use ipc_harness::harness::history::models::{ChannelAnswer, ChannelOp, QueueAnswer, QueueOp};
use ipc_harness::harness::history::models::{TaskAnswer, TaskOp};
use ipc_harness::harness::history::scenarios::{
    self, FaultMode, Judgement, Plan, Primitive, ProcessEnd, RecordedHistory, Report, Schedule,
};
use ipc_harness::harness::history::{self, Verdict};

fn rounds() -> u64 {
    std::env::var("HISTORY_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2)
}

/// Runs every primitive `rounds()` times under `mode`, checks each report's
/// figures against its schedule, and returns the reports.
fn every_primitive(mode: FaultMode, seed_base: u64) -> Vec<Report> {
    let _serial = fork::serial();
    let fds = open_fds();
    let mut reports = Vec::new();
    for primitive in Primitive::ALL {
        for round in 0..rounds() {
            let plan = Plan::new(seed_base + round, mode);
            let schedule = Schedule::new(primitive, &plan);
            let report = scenarios::run(primitive, &plan).expect("the run is set up");
            assert_eq!(report.judgement, Judgement::Linearizable, "{report:#}");
            figures_agree(&schedule, &report);
            reports.push(report);
        }
    }
    // Nothing left behind: every child reaped, every fd closed, every FIFO
    // removed.
    assert_eq!(fork::unreaped_children(), Vec::<i32>::new());
    assert_eq!(open_fds(), fds);
    let prefix = format!("ipc-harness-history-{}-", std::process::id());
    let fifos: Vec<_> = std::fs::read_dir(std::env::temp_dir())
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
        .collect();
    assert!(fifos.is_empty(), "{fifos:?}");
    let ops: usize = reports.iter().map(|r| r.ops).sum();
    let pending: usize = reports.iter().map(|r| r.pending).sum();
    eprintln!(
        "{mode}: {} histories, {ops} operations, {pending} pending",
        reports.len()
    );
    reports
}

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

/// The figures a report must show for its schedule.
fn figures_agree(schedule: &Schedule, report: &Report) {
    assert_eq!(report.planned, schedule.steps(), "{report:#}");
    assert_eq!(report.processes.len(), schedule.processes.len());
    let victim = schedule.strike.filter(|s| s.kind.kills());
    let mut never_started = 0;
    for (i, p) in report.processes.iter().enumerate() {
        assert_eq!(p.planned, schedule.processes[i].steps.len());
        if let Some(v) = victim.filter(|v| v.process == i) {
            // Killed from just before its step `at_step` on: it began every
            // step before that one, and at most the one it was in never
            // returned.
            assert_eq!(p.end, ProcessEnd::Killed, "{report:#}");
            assert!(p.started >= v.at_step && p.started <= p.planned, "{p:?}");
            assert!(p.started - p.returned <= 1, "{p:?}");
            never_started += p.planned - p.started;
        } else {
            assert_eq!(p.end, ProcessEnd::Exited, "process {i}: {report:#}");
            assert_eq!((p.started, p.returned), (p.planned, p.planned), "{p:?}");
        }
        let stopped = schedule
            .strike
            .is_some_and(|s| s.process == i && !s.kind.kills());
        assert_eq!(p.stopped, stopped, "process {i}: {report:#}");
    }
    assert_eq!(report.ops, report.planned - never_started, "{report:#}");
    let returned: usize = report.processes.iter().map(|p| p.returned).sum();
    assert_eq!(report.pending, report.ops - returned);
    assert_eq!(report.checked + report.dropped, report.ops, "{report:#}");
    if victim.is_none() {
        assert_eq!(report.pending, 0, "{report:#}");
    }
}

#[test]
fn every_primitive_without_faults() {
    let reports = every_primitive(FaultMode::None, 0x100);
    assert_eq!(reports.len() as u64, Primitive::ALL.len() as u64 * rounds());
    assert!(reports.iter().all(|r| r.ops == r.planned));
}

#[test]
fn every_primitive_with_a_process_killed() {
    let reports = every_primitive(FaultMode::Kill, 0x200);
    let killed: usize = reports
        .iter()
        .flat_map(|r| &r.processes)
        .filter(|p| p.end == ProcessEnd::Killed)
        .count();
    assert_eq!(killed, reports.len());
}

#[test]
fn every_primitive_with_a_process_stopped() {
    let reports = every_primitive(FaultMode::Stop, 0x300);
    let stopped: usize = reports
        .iter()
        .flat_map(|r| &r.processes)
        .filter(|p| p.stopped)
        .count();
    assert_eq!(stopped, reports.len());
}

#[test]
fn every_primitive_under_a_signal_storm() {
    let reports = every_primitive(FaultMode::Storm, 0x400);
    let signals: u64 = reports
        .iter()
        .flat_map(|r| &r.processes)
        .map(|p| p.storm_signals)
        .sum();
    assert!(signals > 0, "no storm signal arrived");
    eprintln!("storm signals caught: {signals}");
}

#[test]
fn plans_replay_and_names_round_trip() {
    for primitive in Primitive::ALL {
        assert_eq!(Primitive::from_name(&primitive.name()), Some(primitive));
        let plan = Plan::from_seed(42);
        assert_eq!(
            Schedule::new(primitive, &plan),
            Schedule::new(primitive, &plan)
        );
        assert_ne!(
            Schedule::new(primitive, &Plan::new(1, FaultMode::None)),
            Schedule::new(primitive, &Plan::new(2, FaultMode::None))
        );
    }
    assert_eq!(
        Primitive::from_name("queue-5"),
        Some(Primitive::Queue { max_items: Some(5) })
    );
    assert_eq!(Primitive::from_name("queue-0"), None);
    // A duplex end has one sender; the others may have several.
    for seed in 0..20 {
        let s = Schedule::new(Primitive::Duplex, &Plan::new(seed, FaultMode::None));
        assert_eq!(s.processes.len(), 2);
    }
}

/// A recorded history with one answer made false (a value that was never
/// put) is not linearizable, and that answer alone is the counterexample.
#[test]
fn a_recorded_history_with_one_false_answer_is_caught() {
    let _serial = fork::serial();
    for primitive in Primitive::ALL {
        let mut caught = None;
        for seed in 0..20 {
            // Short histories: shrinking to a minimal counterexample stays
            // quick.
            let plan = Plan {
                max_ops: 3,
                ..Plan::new(seed, FaultMode::None)
            };
            let mut recorded = scenarios::record(primitive, &plan).unwrap();
            assert!(scenarios::check(&recorded).judgement.is_linearizable());
            let k = match &mut recorded.history {
                RecordedHistory::Queue { history, .. } => {
                    let k = history.ops.iter().position(|o| {
                        matches!(o.output, Some(QueueAnswer::Value(_)))
                            && !matches!(o.input, QueueOp::Put(_))
                    });
                    k.inspect(|&k| history.ops[k].output = Some(QueueAnswer::Value(u64::MAX)))
                }
                RecordedHistory::Tasks { history, .. } => {
                    let k = history
                        .ops
                        .iter()
                        .position(|o| o.input == TaskOp::Get && o.output.is_some());
                    k.inspect(|&k| history.ops[k].output = Some(TaskAnswer::Value(u64::MAX)))
                }
                RecordedHistory::Channel { history, .. } => {
                    let k = history.ops.iter().position(|o| {
                        o.input == ChannelOp::Recv
                            && matches!(o.output, Some(ChannelAnswer::Value { .. }))
                    });
                    k.inspect(|&k| {
                        history.ops[k].output = Some(ChannelAnswer::Value {
                            from: 0,
                            value: u64::MAX,
                        })
                    })
                }
            };
            let Some(k) = k else { continue };
            let report = scenarios::check(&recorded);
            assert!(
                matches!(report.judgement, Judgement::Violation { .. }),
                "{report:#}"
            );
            let fixed = match &recorded.history {
                RecordedHistory::Queue { model, history } => fixed(history::check(model, history)),
                RecordedHistory::Tasks { model, history } => fixed(history::check(model, history)),
                RecordedHistory::Channel { model, history } => {
                    fixed(history::check(model, history))
                }
            };
            assert_eq!(fixed, vec![k], "{primitive}: {report:#}");
            caught = Some(seed);
            break;
        }
        assert!(
            caught.is_some(),
            "{primitive}: no received value in 20 plans"
        );
    }
}

fn fixed<I, O>(v: Verdict<I, O>) -> Vec<usize> {
    match v {
        Verdict::Violation(c) => c.fixed,
        _ => panic!("expected a violation"),
    }
}

/// The queue's `len` that reads its two counters one after the other (its
/// `two_load_len_pitfall`) answers lengths that were never true: recorded
/// through the same scenarios, with the observers' `len` paused between
/// its loads, it is caught within a few rounds, by an observer's answer.
#[test]
fn the_two_load_len_pitfall_is_caught() {
    let _serial = fork::serial();
    ipc_harness::queue::set_len_pause(std::time::Duration::from_micros(300));
    let mut caught = None;
    for seed in 0..40 {
        let q = ipc_harness::Queue::builder()
            .max_items(1)
            .two_load_len_pitfall(true)
            .build()
            .unwrap();
        let plan = Plan {
            max_ops: 12,
            ..Plan::new(seed, FaultMode::None)
        };
        let recorded = scenarios::record_on_queue(q, &plan).unwrap();
        let report = scenarios::check(&recorded);
        if let Judgement::Violation { counterexample } = &report.judgement {
            caught = Some((seed, counterexample.clone()));
            break;
        }
        assert_eq!(report.judgement, Judgement::Linearizable, "{report:#}");
    }
    ipc_harness::queue::set_len_pause(std::time::Duration::ZERO);
    let (seed, why) = caught.expect("the two-load len is caught within 40 rounds");
    eprintln!("caught in round {seed}:\n{why}");
    assert!(
        why.contains("len() ->") || why.contains("is_empty() ->") || why.contains("is_full() ->"),
        "{why}"
    );
}

proptest::proptest! {
    #![proptest_config(ipc_harness::harness::proptest_config(
        "proptest-regressions/history_primitives.txt",
        8
    ))]

    /// Any plan, on any primitive: a failure shrinks to a plan, which
    /// replays it.
    #[test]
    fn any_plan_on_any_primitive_is_linearizable(
        plan in scenarios::plans(),
        which in 0usize..Primitive::ALL.len(),
    ) {
        let _serial = fork::serial();
        let report = scenarios::run(Primitive::ALL[which], &plan).unwrap();
        proptest::prop_assert_eq!(&report.judgement, &Judgement::Linearizable, "{:#}", report);
    }
}
