//! `ipc-harness demo NAME`: each pitfall of the catalogue ([`Pitfall`]),
//! one file each, run for real across forked processes, explained in plain
//! words, then the fix run on the same workload.
//!
//! Every demo is deterministic: it never waits for an unlucky schedule.
//! The writer writes, *then* the reader reads (the parent paces its children
//! through pipes of its own), pipes are shrunk with `F_SETPIPE_SZ` so a
//! large write must stop half-way, and a writer is paused with `SIGSTOP` at
//! the exact point where the kernel lets another writer in. Children never
//! print: they return bytes to the parent, which does all the talking.
//!
//! [`run`] holds [`fork::serial()`] for its whole body, so tests may call
//! it from many threads (but not while holding that lock themselves).
//! The output is plain text: lines of printable ASCII, no terminal control
//! characters, whatever bytes the pitfall produced (they are shown escaped).
//!
//! ```
//! use ipc_harness_cli::demo;
//!
//! let mut out = Vec::new();
//! let outcome = demo::run("coalescing", &mut out)?;
//! assert!(outcome.naive_failed && outcome.fixed_ok);
//! let text = String::from_utf8(out).unwrap();
//! assert!(text.contains("\"Spam 004Spam 000\""));
//! # Ok::<(), ipc_harness_cli::demo::DemoError>(())
//! ```
//!
//! The pitfalls guide ([`ipc_harness::guide`]) explains each one at length.

mod kit;

mod coalescing;
mod eof_never_comes;
mod fifo_missing_directory;
mod fifo_open_blocks;
mod ignored_short_write;
mod interleaved_writes;
mod queue_killed_holding_lock;
mod racing_readers;
mod split_reads;
mod task_done_too_many_times;

use std::io::Write;

use ipc_harness::error::{Error, Result};
use ipc_harness::harness::fork;
use ipc_harness::harness::pitfalls::Pitfall;

pub use kit::quote;
use kit::say;

/// What a demo showed, for a test (or the CLI's exit status) to check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DemoOutcome {
    /// The demo's name, as in [`list`].
    pub name: &'static str,
    /// The naive code ran and broke its promise, as the lesson needs.
    pub naive_failed: bool,
    /// The fixed primitive ran on the same workload and kept every promise.
    pub fixed_ok: bool,
}

impl DemoOutcome {
    /// True if the demo showed what it must: the naive code failing and
    /// the fix working.
    pub fn shown(&self) -> bool {
        self.naive_failed && self.fixed_ok
    }
}

/// Why a demo could not be run.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// No demo has this name.
    #[error("no demo named {name:?}; `ipc-harness demo --list` lists them")]
    Unknown {
        /// The name asked for.
        name: String,
    },
    /// The demo's machinery failed (a fork, a pipe, a child that did not
    /// behave as planned, or writing the output).
    #[error("the demo could not run")]
    Failed(#[from] Error),
}

/// A demo: writes its story, returns (the naive code failed, the fix held).
type Demo = fn(&mut dyn Write) -> Result<(bool, bool)>;

/// The demo of each pitfall of the catalogue.
fn demo_of(pitfall: Pitfall) -> Demo {
    match pitfall {
        Pitfall::Coalescing => coalescing::coalescing,
        Pitfall::SplitReads => split_reads::split_reads,
        Pitfall::InterleavedWrites => interleaved_writes::interleaved_writes,
        Pitfall::RacingReaders => racing_readers::racing_readers,
        Pitfall::IgnoredShortWrite => ignored_short_write::ignored_short_write,
        Pitfall::EofNeverComes => eof_never_comes::eof_never_comes,
        Pitfall::FifoOpenBlocks => fifo_open_blocks::fifo_open_blocks,
        Pitfall::FifoMissingDirectory => fifo_missing_directory::fifo_missing_directory,
        Pitfall::QueueKilledHoldingLock => queue_killed_holding_lock::queue_killed_holding_lock,
        Pitfall::TaskDoneTooManyTimes => task_done_too_many_times::task_done_too_many_times,
    }
}

/// Every demo as `(name, one-line summary)`, in catalogue order (pitfalls
/// 1 to 10, [`Pitfall::ALL`]).
pub fn list() -> Vec<(&'static str, &'static str)> {
    Pitfall::ALL
        .iter()
        .map(|p| (p.name(), p.summary()))
        .collect()
}

/// Runs the demo called `name` (a [`Pitfall::name`]), writing its story to
/// `out`.
///
/// Holds [`fork::serial()`] while it runs. Takes under a second or two;
/// demos of a hang let it hang for 0.4 s, then kill it.
pub fn run(name: &str, out: &mut dyn Write) -> std::result::Result<DemoOutcome, DemoError> {
    let Some(pitfall) = Pitfall::from_name(name) else {
        return Err(DemoError::Unknown { name: name.into() });
    };
    let _serial = fork::serial();
    say(
        out,
        &format!("== Pitfall {}: {} ==", pitfall.number(), pitfall.name()),
    )?;
    let mut first = pitfall.summary().chars();
    let capitalized: String = first
        .next()
        .map(|c| c.to_ascii_uppercase())
        .into_iter()
        .chain(first)
        .collect();
    say(out, &format!("{capitalized}."))?;
    say(out, "")?;
    let (naive_failed, fixed_ok) = demo_of(pitfall)(out)?;
    say(out, "")?;
    let verdict = match (naive_failed, fixed_ok) {
        (true, true) => {
            "Verdict: the naive code failed, as it always does; the fix kept every promise."
        }
        (false, _) => "Verdict: UNEXPECTED: the naive code did not fail this time.",
        (true, false) => "Verdict: UNEXPECTED: the fix did not keep its promises.",
    };
    say(out, verdict)?;
    Ok(DemoOutcome {
        name: pitfall.name(),
        naive_failed,
        fixed_ok,
    })
}

/// Runs every demo in catalogue order, one after the other, each followed
/// by a blank line; stops at the first that cannot run.
pub fn run_all(out: &mut dyn Write) -> std::result::Result<Vec<DemoOutcome>, DemoError> {
    let mut outcomes = Vec::new();
    for (name, _) in list() {
        outcomes.push(run(name, out)?);
        say(out, "")?;
    }
    Ok(outcomes)
}
