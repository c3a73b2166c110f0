//! What the oracle reports: each [`Violation`] of the contract, and the
//! [`MsgRef`] it names.

use std::fmt;

use crate::harness::channel::Property;
use crate::harness::payload::MsgId;

/// Which message a violation is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum MsgRef {
    /// A message that carries its id.
    Id(MsgId),
    /// A message shorter than [`ID_LEN`](crate::harness::payload::ID_LEN), known only by its length.
    Small {
        /// Its length.
        len: usize,
    },
}

impl fmt::Display for MsgRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MsgRef::Id(id) => write!(f, "{id}"),
            MsgRef::Small { len } => write!(f, "a {len}-byte message"),
        }
    }
}

/// One breach of the contract, with the messages and processes involved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Violation {
    /// A message whose send returned `Ok` never arrived.
    Lost {
        /// The message.
        msg: MsgRef,
        /// Its length.
        len: usize,
    },
    /// A message arrived more than once.
    Duplicated {
        /// The message.
        msg: MsgRef,
        /// How many times it arrived.
        times: usize,
    },
    /// A consumer saw a producer's message `later` before its `earlier` one.
    Reordered {
        /// The consumer.
        consumer: u16,
        /// The message that came first although it was sent later.
        first: MsgId,
        /// The message sent earlier that came after it.
        then: MsgId,
    },
    /// One receive returned two or more messages glued together.
    Merged {
        /// The consumer.
        consumer: u16,
        /// Which of its receives (from 0).
        receive: usize,
        /// The parts, in words, e.g. `p0#1 (20 bytes)`.
        parts: Vec<String>,
    },
    /// One receive returned part of a message.
    Split {
        /// The consumer.
        consumer: u16,
        /// Which of its receives.
        receive: usize,
        /// The message cut.
        msg: MsgRef,
        /// Bytes of it in this receive.
        got: usize,
        /// Its whole length.
        len: usize,
    },
    /// A receive held bytes that are not (part of) any message sent.
    Corrupted {
        /// The consumer.
        consumer: u16,
        /// Which of its receives.
        receive: usize,
        /// What was wrong.
        why: String,
    },
    /// A process was still waiting at the deadline.
    Hang {
        /// E.g. `consumer 0`.
        process: String,
        /// What it was doing, and what it was blocked in if known.
        phase: String,
    },
    /// A process crashed, panicked or exited badly.
    ChildFailed {
        /// E.g. `producer 1`.
        process: String,
        /// How it ended.
        outcome: String,
    },
    /// Task accounting broke: a `task_done` refused although the consumer
    /// had taken a task it had not marked done, more `task_done`s than
    /// receives, a join that returned while tasks were unfinished, or one
    /// that did not return.
    TaskAccounting {
        /// The consumer.
        consumer: u16,
        /// What happened, in words.
        what: String,
    },
    /// An operation failed with an error the contract does not allow.
    UnexpectedError {
        /// E.g. `producer 1`.
        process: String,
        /// E.g. `send #3`.
        operation: String,
        /// The error.
        error: String,
    },
}

impl Violation {
    /// The property this violation breaks.
    pub fn property(&self) -> Property {
        match self {
            Violation::Lost { .. } | Violation::Duplicated { .. } => Property::ExactlyOnce,
            Violation::Reordered { .. } => Property::Order,
            Violation::Merged { .. } | Violation::Split { .. } => Property::Boundaries,
            Violation::Corrupted { .. } => Property::Integrity,
            Violation::Hang { .. }
            | Violation::ChildFailed { .. }
            | Violation::UnexpectedError { .. } => Property::Liveness,
            Violation::TaskAccounting { .. } => Property::TaskAccounting,
        }
    }

    /// The violation's kind as a word: `Lost`, `Merged`, ...
    pub fn kind(&self) -> &'static str {
        match self {
            Violation::Lost { .. } => "Lost",
            Violation::Duplicated { .. } => "Duplicated",
            Violation::Reordered { .. } => "Reordered",
            Violation::Merged { .. } => "Merged",
            Violation::Split { .. } => "Split",
            Violation::Corrupted { .. } => "Corrupted",
            Violation::Hang { .. } => "Hang",
            Violation::ChildFailed { .. } => "ChildFailed",
            Violation::UnexpectedError { .. } => "UnexpectedError",
            Violation::TaskAccounting { .. } => "TaskAccounting",
        }
    }
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Violation::Lost { msg, len } => {
                write!(
                    f,
                    "Lost: {msg} ({len} bytes) was sent successfully but never received"
                )
            }
            Violation::Duplicated { msg, times } => {
                write!(f, "Duplicated: {msg} was received {times} times")
            }
            Violation::Reordered {
                consumer,
                first,
                then,
            } => write!(
                f,
                "Reordered: consumer {consumer} received {first} before {then}, but producer {} sent {then} first",
                first.producer
            ),
            Violation::Merged {
                consumer,
                receive,
                parts,
            } => write!(
                f,
                "Merged: consumer {consumer}'s receive #{receive} returned {} messages glued together: {}",
                parts.len(),
                parts.join(" + ")
            ),
            Violation::Split {
                consumer,
                receive,
                msg,
                got,
                len,
            } => write!(
                f,
                "Split: consumer {consumer}'s receive #{receive} returned only {got} of the {len} bytes of {msg}"
            ),
            Violation::Corrupted {
                consumer,
                receive,
                why,
            } => write!(
                f,
                "Corrupted: consumer {consumer}'s receive #{receive}: {why}"
            ),
            Violation::Hang { process, phase } => write!(f, "Hang: {process} {phase}"),
            Violation::TaskAccounting { consumer, what } => {
                write!(f, "TaskAccounting: consumer {consumer} {what}")
            }
            Violation::ChildFailed { process, outcome } => {
                write!(f, "ChildFailed: {process} {outcome}")
            }
            Violation::UnexpectedError {
                process,
                operation,
                error,
            } => write!(f, "UnexpectedError: {process}: {operation} failed: {error}"),
        }
    }
}
