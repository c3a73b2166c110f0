//! The first steps of the judgement: what the faults did, and what each
//! producer's sends came to.

use std::collections::BTreeMap;

use super::{Accounting, Violation};
use crate::harness::channel::Promises;
use crate::harness::payload::{ID_LEN, MsgId};
use crate::harness::scenario::Scenario;
use crate::harness::trace::{Failure, Fate, SendOutcome, StreamEnd, Traces};

/// What the faults did to the processes, as the traces tell it.
pub(super) struct FaultsSeen {
    /// Consumers killed.
    pub(super) consumers_killed: u64,
    /// Consumers killed or closed early.
    pub(super) consumers_removed: usize,
    /// Every consumer was removed: the channel died with them.
    pub(super) no_consumer_left: bool,
    /// A producer was killed where a dead writer can tear a frame, so a
    /// stream that ends `Truncated` is expected.
    pub(super) torn_frames_expected: bool,
}

/// Decides what the faults did (who was killed, stopped, closed early) and
/// counts it in `acc`.
pub(super) fn what_the_faults_did(
    promises: &Promises,
    traces: &Traces,
    acc: &mut Accounting,
) -> FaultsSeen {
    let mut producer_killed = false;
    for t in traces.producers.iter().flatten() {
        producer_killed |= t.fate == Fate::Killed;
        acc.killed += u64::from(t.fate == Fate::Killed);
        acc.closed_early += u64::from(t.fate == Fate::ClosedEarly);
        acc.stopped += u64::from(t.stops);
        acc.storm_signals += t.storm_signals;
    }
    let mut consumers_killed = 0u64;
    let mut consumers_removed = 0usize;
    for t in traces.consumers.iter().flatten() {
        match t.end {
            StreamEnd::Killed => {
                consumers_killed += 1;
                consumers_removed += 1;
            }
            StreamEnd::ClosedEarly => consumers_removed += 1,
            _ => {}
        }
        acc.stopped += u64::from(t.stops);
        acc.storm_signals += t.storm_signals;
    }
    acc.killed += consumers_killed;
    acc.closed_early += (consumers_removed as u64) - consumers_killed;
    FaultsSeen {
        consumers_killed,
        consumers_removed,
        no_consumer_left: consumers_removed > 0 && consumers_removed == traces.consumers.len(),
        // A writer killed mid-frame leaves a torn frame the reader must report.
        torn_frames_expected: producer_killed
            && (promises.max_producers == 1 || promises.torn_by_dead_writer),
    }
}

/// What was sent: the messages that must arrive (their send returned
/// `Ok`) and those that may (indeterminate), by id, and the short ones
/// (no id) counted by length.
#[derive(Default)]
pub(super) struct Sent {
    /// Ids whose send returned `Ok`, with their lengths.
    pub(super) sure: BTreeMap<MsgId, usize>,
    /// Ids whose send was cut, refused or failed, with their lengths.
    pub(super) maybe: BTreeMap<MsgId, usize>,
    /// Short messages whose send returned `Ok`: how many of each length.
    pub(super) small_sure: BTreeMap<usize, usize>,
    /// Short indeterminate messages: how many of each length.
    pub(super) small_maybe: BTreeMap<usize, usize>,
}

impl Sent {
    /// Whether `id` was sent at all (surely or maybe).
    pub(super) fn knows(&self, id: &MsgId) -> bool {
        self.sure.contains_key(id) || self.maybe.contains_key(id)
    }

    fn add(&mut self, id: MsgId, len: usize, certain: bool) {
        match (certain, len < ID_LEN) {
            (true, true) => *self.small_sure.entry(len).or_default() += 1,
            (true, false) => {
                self.sure.insert(id, len);
            }
            (false, true) => *self.small_maybe.entry(len).or_default() += 1,
            (false, false) => {
                self.maybe.insert(id, len);
            }
        }
    }
}

/// Decides the fate of every send: certain (`Ok`), indeterminate (cut by a
/// kill, refused with `Closed`, failed), and whether a refusal or a failure
/// breaks the contract (a `Closed` is expected only once no consumer is
/// left). A producer that hung or crashed is a violation, and any of its
/// planned sends may have happened.
pub(super) fn fates_of_sends(
    scenario: &Scenario,
    traces: &Traces,
    faults: &FaultsSeen,
    acc: &mut Accounting,
    violations: &mut Vec<Violation>,
) -> Sent {
    let mut sent = Sent::default();
    for (p, result) in traces.producers.iter().enumerate() {
        let process = format!("producer {p}");
        let producer = p as u16;
        match result {
            Ok(trace) => {
                for s in &trace.sends {
                    acc.attempted += 1;
                    let failed = |error: String| Violation::UnexpectedError {
                        process: process.clone(),
                        operation: format!("send #{} ({} bytes)", s.seq, s.len),
                        error,
                    };
                    let certain = match &s.outcome {
                        SendOutcome::Ok => true,
                        SendOutcome::Cut => false,
                        SendOutcome::Closed => {
                            acc.refused += 1;
                            if !faults.no_consumer_left {
                                violations.push(failed(crate::Error::Closed.to_string()));
                            }
                            false
                        }
                        SendOutcome::Failed(error) => {
                            violations.push(failed(error.clone()));
                            false
                        }
                    };
                    let id = MsgId {
                        producer,
                        seq: s.seq,
                    };
                    sent.add(id, s.len, certain);
                }
            }
            Err(failure) => {
                violations.push(process_failure(&process, "while sending", failure));
                // We cannot know which of its sends happened: any may arrive.
                for (seq, &len) in scenario.producer_sizes(p).iter().enumerate() {
                    acc.attempted += 1;
                    let id = MsgId {
                        producer,
                        seq: seq as u32,
                    };
                    sent.add(id, len, false);
                }
            }
        }
    }
    sent
}

/// The violation of a process that hung or crashed `phase` (e.g. `while
/// sending`).
pub(super) fn process_failure(process: &str, phase: &str, failure: &Failure) -> Violation {
    match failure {
        Failure::Hung(blocked) => hang(process, phase, blocked.as_deref(), false),
        Failure::Stalled(blocked) => hang(process, phase, blocked.as_deref(), true),
        Failure::Crashed(outcome) => Violation::ChildFailed {
            process: process.to_string(),
            outcome: format!("{outcome} {phase}"),
        },
    }
}

/// The `Hang` of `process`, which hung `phase` (e.g. `while receiving`),
/// blocked in `blocked` if known; `stalled`: killed before the deadline
/// because every process was blocked and no journal moved.
pub(super) fn hang(process: &str, phase: &str, blocked: Option<&str>, stalled: bool) -> Violation {
    let killed = if stalled {
        "was killed once every process of the scenario had been blocked with no progress"
    } else {
        "was killed at the deadline"
    };
    Violation::Hang {
        process: process.to_string(),
        phase: match blocked {
            Some(b) => format!("hung {phase}, blocked in {b}, and {killed}"),
            None => format!("hung {phase} and {killed}"),
        },
    }
}
