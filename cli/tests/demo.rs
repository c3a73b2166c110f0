//! Every demo runs its naive code for real, shows the failure it must show
//! (`naive_failed`), runs the fix on the same workload (`fixed_ok`), and
//! prints plain text with no terminal control characters.
//!
//! `demo::run` holds the fork lock itself, so these tests may run on
//! threads side by side. `DEMO_PRINT=1 cargo test --test demo -- --nocapture
//! --test-threads 1` prints every demo's text.

use std::sync::Mutex;

use ipc_harness::harness::fork;
use ipc_harness::harness::pitfalls::Pitfall;
use ipc_harness::sys;
use ipc_harness_cli::demo::{self, DemoError, DemoOutcome};

/// Every test here takes this lock, so each can check that its demo left
/// no fd, child or scratch directory behind without another test's demo
/// running meanwhile. (`demo::run` takes `fork::serial()` itself.)
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn scratch_dirs() -> Vec<String> {
    let prefix = format!("ipc-harness-demo-{}-", std::process::id());
    let mut dirs: Vec<String> = std::fs::read_dir(std::env::temp_dir())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(&prefix))
        .collect();
    dirs.sort();
    dirs
}

/// Runs `f` and checks it leaked no fd, left no child unreaped and no
/// scratch directory behind.
fn hygienic<T>(f: impl FnOnce() -> T) -> T {
    let _g = ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let fds = sys::open_fds().unwrap();
    let value = f();
    assert_eq!(sys::open_fds().unwrap(), fds, "a demo leaked fds");
    assert_eq!(fork::unreaped_children(), Vec::<i32>::new());
    assert_eq!(scratch_dirs(), Vec::<String>::new());
    value
}

fn run(name: &str) -> (DemoOutcome, String) {
    let mut out = Vec::new();
    let outcome =
        hygienic(|| demo::run(name, &mut out)).unwrap_or_else(|e| panic!("demo {name}: {e:?}"));
    let text = String::from_utf8(out).expect("demo output is UTF-8");
    if let Some(c) = text.chars().find(|&c| c.is_control() && c != '\n') {
        panic!("demo {name} printed the control character {c:?}:\n{text}");
    }
    if std::env::var_os("DEMO_PRINT").is_some() {
        println!("{text}");
    }
    (outcome, text)
}

/// Runs a demo that must show the naive code failing and the fix working,
/// and checks that its text says so in the words given.
fn shows(name: &str, must_say: &[&str]) {
    let (outcome, text) = run(name);
    assert_eq!(outcome.name, name);
    assert!(
        outcome.naive_failed,
        "demo {name}: the naive code did not fail:\n{text}"
    );
    assert!(
        outcome.fixed_ok,
        "demo {name}: the fix did not work:\n{text}"
    );
    assert!(outcome.shown());
    for words in must_say {
        assert!(
            text.contains(words),
            "demo {name} does not say {words:?}:\n{text}"
        );
    }
    assert!(text.contains("Verdict: the naive code failed"), "{text}");
}

#[test]
fn list_covers_the_catalogue_in_order() {
    let expected: Vec<(&str, &str)> = Pitfall::ALL
        .iter()
        .map(|p| (p.name(), p.summary()))
        .collect();
    assert_eq!(demo::list(), expected);
    for (name, summary) in demo::list() {
        assert!(!summary.is_empty(), "{name}");
    }
}

#[test]
fn an_unknown_demo_is_refused() {
    let mut out = Vec::new();
    let e = hygienic(|| demo::run("no-such-pitfall", &mut out)).unwrap_err();
    assert!(matches!(e, DemoError::Unknown { .. }), "{e:?}");
    assert!(out.is_empty());
}

#[test]
fn coalescing() {
    shows(
        "coalescing",
        &[
            "read 3: \"Spam 004Spam 000\"",
            "that is 2 messages glued together: all of write 5 + all of write 6",
            "6 messages sent, 6 received",
        ],
    );
}

#[test]
fn split_reads() {
    shows(
        "split-reads",
        &[
            "bytes 0..32 of write 1",
            "BufferTooSmall, holding all 38 bytes",
        ],
    );
}

#[test]
fn interleaved_writes() {
    shows(
        "interleaved-writes",
        &[
            "4092 x 'A' + \"\\x00\\x00\\x18\\x00\" + 2048 x 'B'",
            "it waits for A's lock",
        ],
    );
}

#[test]
fn racing_readers() {
    shows(
        "racing-readers",
        &[
            "Reader 2 read a header: \"Spam\" -> 1399873901 bytes follow",
            "reader 2 got: \"Spam 001: Geek University.\"",
        ],
    );
}

#[test]
fn ignored_short_write() {
    shows(
        "ignored-short-write",
        &[
            "write of a 6148-byte frame returned 4096",
            "got 4116 of 6144 bytes",
        ],
    );
}

#[test]
fn eof_never_comes() {
    shows(
        "eof-never-comes",
        &[
            // What it was blocked in is reported when /proc allows; the
            // hang itself is what must show.
            "400 ms later the reader had still seen no end of stream",
            "end of stream (Error::Closed)",
        ],
    );
}

#[test]
fn fifo_open_blocks() {
    shows(
        "fifo-open-blocks",
        &[
            "after 400 ms its open had not returned",
            "No such device or address",
            "has no reader",
        ],
    );
}

#[test]
fn fifo_missing_directory() {
    shows(
        "fifo-missing-directory",
        &[
            "No such file or directory",
            "the directory $TMP/missing does not exist",
        ],
    );
}

#[test]
fn queue_killed_holding_lock() {
    shows(
        "queue-killed-holding-lock",
        &[
            "was killed by signal 9",
            "Producer B (pid",
            "The consumer got: \"A 000\" and then nothing, ever.",
            "\"A 000\", \"B 000\", \"B 001\", \"B 002\"",
        ],
    );
}

#[test]
fn task_done_too_many_times() {
    let (outcome, text) = run("task-done-too-many-times");
    assert!(outcome.naive_failed && outcome.fixed_ok, "{outcome:?}");
    assert!(text.contains("the counter says -1"), "{text}");
    assert!(
        text.contains("refused: task_done() called more times than items were put"),
        "{text}"
    );
    assert!(text.contains("join timed out: 1 task unfinished"), "{text}");
}

#[test]
fn run_all_runs_every_demo_in_order() {
    let mut out = Vec::new();
    let outcomes = hygienic(|| demo::run_all(&mut out)).unwrap();
    let names: Vec<&str> = outcomes.iter().map(|o| o.name).collect();
    let listed: Vec<&str> = demo::list().into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, listed);
    assert!(outcomes.iter().all(DemoOutcome::shown), "{outcomes:?}");
    let text = String::from_utf8(out).unwrap();
    for p in Pitfall::ALL {
        assert!(
            text.contains(&format!("== Pitfall {}: {} ==", p.number(), p.name())),
            "{text}"
        );
    }
}
