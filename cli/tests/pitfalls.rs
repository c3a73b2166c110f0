//! Every pitfall variant is caught: the harness, run with its default
//! number of cases, finds the violation that pitfall causes. A pitfall the
//! harness misses is a bug in the harness.
//!
//! Seeds are fresh each run (so the claim is "every time", not "for one
//! seed"); a failure prints the seed, and `ipc-harness check --primitive
//! 'pitfall: NAME' --seed S --include-pitfalls` replays it.

mod common;

use common::{catches, demo_shows, pitfall_entry};
use ipc_harness::harness::pitfalls::Pitfall;
use ipc_harness_cli::registry::{self, Kind};

/// The number of scenarios `ipc-harness check` runs by default is 128; the
/// pitfalls must be caught well within that.
const CASES: u32 = 32;

fn catches_entry(name: &str) {
    catches(&pitfall_entry(name), CASES);
}

#[test]
fn catches_coalescing() {
    catches_entry("pitfall: coalescing");
}

#[test]
fn catches_split_reads() {
    catches_entry("pitfall: split-reads");
}

#[test]
fn catches_interleaved_writes() {
    catches_entry("pitfall: interleaved-writes");
}

#[test]
fn catches_racing_readers() {
    catches_entry("pitfall: racing-readers");
}

#[test]
fn catches_ignored_short_write() {
    catches_entry("pitfall: ignored-short-write");
}

#[test]
fn catches_eof_never_comes() {
    catches_entry("pitfall: eof-never-comes");
}

#[test]
fn catches_racing_readers_on_the_queue() {
    catches_entry("pitfall: racing-readers (Queue)");
}

#[test]
fn catches_unshared_task_counter() {
    catches_entry("pitfall: unshared-task-counter (JoinableQueue)");
}

// Pitfalls 7 to 10 are about opening, naming and accounting rather than
// message streams: their demos run the naive code for real and check that
// it fails and that the fix holds. (Their primitives' own test files cover
// them in depth: tests/fifo.rs, tests/queue.rs, tests/joinable.rs.)

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
fn every_pitfall_of_the_catalogue_has_a_demo_and_its_variants_are_entries() {
    for (i, p) in Pitfall::ALL.into_iter().enumerate() {
        assert_eq!(usize::from(p.number()), i + 1, "{p:?}");
        assert_eq!(Pitfall::from_name(p.name()), Some(p));
        assert!(!p.summary().is_empty(), "{p:?}");
    }
    let demos: Vec<&str> = ipc_harness_cli::demo::list()
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    let names: Vec<&str> = Pitfall::ALL.iter().map(|p| p.name()).collect();
    assert_eq!(demos, names);
    // Every pitfall entry of the registry shows a pitfall of the catalogue
    // (or is the signal storm's eintr-as-eof), and the transport pitfalls
    // 1 to 6 each have one that a plain campaign catches.
    for entry in registry::pitfalls() {
        let Kind::Pitfall(v) = entry.kind else {
            panic!("{} is not a pitfall", entry.name);
        };
        assert!(
            v.pitfall().is_some() || v.name() == "eintr-as-eof",
            "{}",
            entry.name
        );
    }
    for v in ipc_harness::harness::pitfalls::Variant::PLAIN {
        let p = v.pitfall().expect("a plain variant is in the catalogue");
        assert!(
            !registry::pitfall_entries(p).is_empty(),
            "{} has no registry entry",
            p.name()
        );
    }
}
