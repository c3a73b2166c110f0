//! Every pitfall variant is caught: the harness, run with its default
//! number of cases, finds the violation that pitfall causes. A pitfall the
//! harness misses is a bug in the harness.
//!
//! Seeds are fresh each run (so the claim is "every time", not "for one
//! seed"); a failure prints the seed, and `ipc-harness check --primitive
//! 'pitfall: NAME' --seed S --include-pitfalls` replays it.

use ipc_harness::harness::campaign::{CampaignConfig, fresh_seed};
use ipc_harness::harness::fork::serial;
use ipc_harness::harness::pitfalls::Pitfall;
use ipc_harness_cli::registry::{self, Kind};

/// The number of scenarios `ipc-harness check` runs by default is 64; the
/// pitfalls must be caught well within that.
const CASES: u32 = 32;

fn catches(name: &str) {
    let _serial = serial();
    let entry = registry::pitfalls()
        .into_iter()
        .find(|e| e.name == name)
        .unwrap_or_else(|| panic!("no pitfall entry named {name:?}"));
    let Kind::Pitfall(pitfall) = entry.kind else {
        panic!("{name} is not a pitfall");
    };
    let seed = fresh_seed();
    let result = entry.campaign(&CampaignConfig::new(CASES, seed));
    let (scenario, report) = result
        .failure
        .as_ref()
        .unwrap_or_else(|| panic!("MISSED {name} in {} runs (seed {seed})", result.runs));
    let seen: Vec<&str> = result
        .tally
        .values()
        .flat_map(|t| t.kinds.keys().copied())
        .collect();
    assert!(
        pitfall.shows_as().iter().any(|k| seen.contains(k)),
        "{name}: expected one of {:?}, saw {seen:?} (seed {seed})\n{scenario}\n{report}",
        pitfall.shows_as()
    );
    eprintln!(
        "{name}: caught after {} run(s) with {seen:?} (seed {seed})",
        result.runs_to_failure.unwrap_or(result.runs)
    );
}

#[test]
fn catches_coalescing() {
    catches("pitfall: coalescing");
}

#[test]
fn catches_split_reads() {
    catches("pitfall: split-reads");
}

#[test]
fn catches_interleaved_writes() {
    catches("pitfall: interleaved-writes");
}

#[test]
fn catches_racing_readers() {
    catches("pitfall: racing-readers");
}

#[test]
fn catches_ignored_short_write() {
    catches("pitfall: ignored-short-write");
}

#[test]
fn catches_eof_never_comes() {
    catches("pitfall: eof-never-comes");
}

#[test]
fn catches_racing_readers_on_the_queue() {
    catches("pitfall: racing-readers (Queue)");
}

#[test]
fn catches_unshared_task_counter() {
    catches("pitfall: unshared-task-counter (JoinableQueue)");
}

/// Pitfalls 7 to 10 are about opening, naming and accounting rather than
/// message streams: their demos run the naive code for real and check that
/// it fails and that the fix holds. (Their primitives' own test files cover
/// them in depth: tests/fifo.rs, tests/queue.rs, tests/joinable.rs.)
fn demo_shows(name: &str) {
    let mut out = Vec::new();
    let outcome = ipc_harness_cli::demo::run(name, &mut out).unwrap();
    let text = String::from_utf8_lossy(&out);
    assert!(
        outcome.naive_failed,
        "{name}: the naive code did not fail:\n{text}"
    );
    assert!(outcome.fixed_ok, "{name}: the fix did not hold:\n{text}");
}

#[test]
fn catches_fifo_open_blocks() {
    demo_shows("fifo-open-blocks");
}

#[test]
fn catches_fifo_missing_directory() {
    demo_shows("fifo-missing-directory");
}

#[test]
fn catches_queue_killed_holding_lock() {
    demo_shows("queue-killed-holding-lock");
}

#[test]
fn catches_task_done_too_many_times() {
    demo_shows("task-done-too-many-times");
}

#[test]
fn every_pitfall_of_the_catalogue_has_a_test_here() {
    // The catalogue's ten, by their demo names, each with a catches_ test above.
    let tested = [
        "coalescing",
        "split-reads",
        "interleaved-writes",
        "racing-readers",
        "ignored-short-write",
        "eof-never-comes",
        "fifo-open-blocks",
        "fifo-missing-directory",
        "queue-killed-holding-lock",
        "task-done-too-many-times",
    ];
    let catalogue: Vec<&str> = ipc_harness_cli::demo::list()
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    assert_eq!(catalogue, tested);
    for p in Pitfall::ALL {
        assert!(
            tested.contains(&p.name()),
            "{} has no catches_ test",
            p.name()
        );
    }
}
