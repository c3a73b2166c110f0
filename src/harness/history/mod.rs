//! Histories of concurrent operations, checked for linearizability against
//! a sequential model.
//!
//! The delivery oracle ([`check`](super::check)) judges which messages
//! arrived; it cannot see an answer that was never true at any instant,
//! such as `len() == 2` on a queue bounded to one message. A [`History`]
//! holds every operation's invocation and response times (CLOCK_MONOTONIC
//! nanoseconds, which every process on the machine shares), and
//! [`check()`] searches for one sequential order of the operations that
//! respects real time (an operation that returned before another was
//! called comes first) and that a [`Model`] accepts. If there is none, it
//! shrinks the history to a minimal set of answers that cannot all be true
//! and says why.
//!
//! ```
//! use ipc_harness::harness::history::{check, History, Verdict};
//! use ipc_harness::harness::history::models::{QueueAnswer, QueueModel, QueueOp};
//!
//! let mut history = History::new();
//! // Process 0 puts 7 while process 1 gets: the get may see it.
//! history.push(0, QueueOp::Put(7), QueueAnswer::Ok, 10, 20);
//! history.push(1, QueueOp::Get, QueueAnswer::Value(7), 15, 30);
//! assert!(matches!(check(&QueueModel::bounded(1), &history), Verdict::Linearizable(_)));
//!
//! // A length no queue bounded to one message ever has.
//! history.push(2, QueueOp::Len, QueueAnswer::Len(2), 12, 18);
//! let Verdict::Violation(why) = check(&QueueModel::bounded(1), &history) else { panic!() };
//! assert_eq!(why.fixed, vec![2]); // the len alone cannot be true
//! println!("{why}");
//! ```
//!
//! # What is checked, and how
//! Wing & Gong's search with Lowe's memoisation, as in Porcupine and
//! Knossos: operations are taken in order of call time; an operation may
//! be linearized next if it was called before the earliest return among
//! those not yet linearized ("lifted"); a cache of (operations linearized
//! so far, as a bitset; model state) cuts every path that reaches a
//! configuration already explored. Two intervals that touch (one returns
//! at the instant the other is called) count as concurrent. A pending
//! operation (invoked, never returned: its process was killed) may take
//! effect at any point after its call, or never. A model that splits into
//! independent parts ([`Model::partition`]) is checked part by part.
//!
//! # Recording
//! A forked process records through a [`Recorder`] on its
//! [`Journal`]: the invocation is journalled
//! before the operation starts and the response after it returns, so a
//! process SIGKILLed inside an operation leaves it pending.
//! [`History::from_journals`] gathers the journals in the parent.

mod search;
mod shrink;

pub mod models;
pub mod scenarios;
pub mod svg;

use std::fmt;

pub use search::{Budget, check, check_with};
pub use shrink::Counterexample;

use super::journal::{self, Journal};

/// The time now, in nanoseconds of CLOCK_MONOTONIC: one clock for every
/// process on the machine, so times taken in different processes compare.
/// (`std::time::Instant` reads the same clock but does not expose it as a
/// number that can be sent to another process.)
pub fn now_ns() -> u64 {
    let t = nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC)
        .expect("CLOCK_MONOTONIC is always readable");
    t.tv_sec() as u64 * 1_000_000_000 + t.tv_nsec() as u64
}

/// One operation: who invoked what, when, and what came back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Operation<I, O> {
    /// The process (or client) that invoked it; an index chosen by the test.
    pub process: usize,
    /// What was asked (an operation and its arguments).
    pub input: I,
    /// What came back; `None` while pending.
    pub output: Option<O>,
    /// When it was invoked (ns, CLOCK_MONOTONIC).
    pub call: u64,
    /// When it returned (ns); `None` if it never did.
    pub ret: Option<u64>,
}

impl<I, O> Operation<I, O> {
    /// True if the operation was invoked and never returned.
    pub fn is_pending(&self) -> bool {
        self.ret.is_none()
    }
}

/// A history: every operation of every process, in no particular order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct History<I, O> {
    /// The operations; the checker names them by their index here.
    pub ops: Vec<Operation<I, O>>,
}

impl<I, O> Default for History<I, O> {
    fn default() -> Self {
        History { ops: Vec::new() }
    }
}

impl<I, O> History<I, O> {
    /// An empty history.
    pub fn new() -> Self {
        History::default()
    }

    /// Adds an operation that returned `output` at `ret` (ns); returns its
    /// index.
    pub fn push(&mut self, process: usize, input: I, output: O, call: u64, ret: u64) -> usize {
        assert!(call <= ret, "an operation returns after it is called");
        self.ops.push(Operation {
            process,
            input,
            output: Some(output),
            call,
            ret: Some(ret),
        });
        self.ops.len() - 1
    }

    /// Adds an operation invoked at `call` that never returned; returns its
    /// index.
    pub fn push_pending(&mut self, process: usize, input: I, call: u64) -> usize {
        self.ops.push(Operation {
            process,
            input,
            output: None,
            call,
            ret: None,
        });
        self.ops.len() - 1
    }

    /// The number of operations.
    pub fn len(&self) -> usize {
        self.ops.len()
    }

    /// True if there are no operations.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }
}

impl<I: Wire, O: Wire> History<I, O> {
    /// The history recorded by [`Recorder`]s into `journals`, each paired
    /// with its process's index. A record that does not decode is an
    /// error; an invocation without a response is a pending operation.
    pub fn from_journals(journals: &[(usize, &Journal)]) -> std::io::Result<Self> {
        let bad =
            |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_string());
        let mut history = History::new();
        for &(process, j) in journals {
            let mut open: std::collections::HashMap<u64, usize> = Default::default();
            for (tag, body) in j.records()? {
                if tag != journal::OP_CALL && tag != journal::OP_RETURN {
                    continue;
                }
                let (id, at, bytes) =
                    journal::split_op_record(&body).ok_or_else(|| bad("short operation record"))?;
                if tag == journal::OP_CALL {
                    let input = I::from_wire(bytes).ok_or_else(|| bad("undecodable input"))?;
                    open.insert(id, history.push_pending(process, input, at));
                } else {
                    let index = open
                        .remove(&id)
                        .ok_or_else(|| bad("a return without a call"))?;
                    let output = O::from_wire(bytes).ok_or_else(|| bad("undecodable output"))?;
                    let op = &mut history.ops[index];
                    op.output = Some(output);
                    op.ret = Some(at.max(op.call));
                }
            }
        }
        Ok(history)
    }
}

/// How an operation's input or output is written into a journal.
pub trait Wire: Sized {
    /// The bytes.
    fn to_wire(&self) -> Vec<u8>;
    /// Back from the bytes; `None` if they are not a value.
    fn from_wire(bytes: &[u8]) -> Option<Self>;
}

/// Records one process's operations into its journal. Made in the forked
/// process (or before the fork) around the journal the parent will read.
#[derive(Debug)]
pub struct Recorder<'j> {
    journal: &'j Journal,
    next: u64,
}

impl<'j> Recorder<'j> {
    /// A recorder writing into `journal`.
    pub fn new(journal: &'j Journal) -> Self {
        Recorder { journal, next: 0 }
    }

    /// Records the invocation of `input`, runs `f`, records what it
    /// returned, and returns that. The call time is read before the
    /// invocation is journalled and the return time after `f` returns, so
    /// the recorded interval contains the real one.
    pub fn record<I: Wire, O: Wire>(&mut self, input: &I, f: impl FnOnce() -> O) -> O {
        let id = self.next;
        self.next += 1;
        let call = now_ns();
        self.journal.record_call(id, call, &input.to_wire());
        let output = f();
        let ret = now_ns();
        self.journal.record_return(id, ret, &output.to_wire());
        output
    }
}

/// The outcome of [`check()`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict<I, O> {
    /// The history is linearizable: for each part of the model (one unless
    /// it [partitions](Model::partition)), an order of operation indices
    /// the model accepts. Pending operations appear only if they took
    /// effect.
    Linearizable(Vec<Vec<usize>>),
    /// No order is accepted: a minimal counterexample.
    Violation(Counterexample<I, O>),
    /// The search ran out of its [`Budget`] before deciding.
    Unknown {
        /// Configurations explored.
        explored: u64,
    },
}

impl<I, O> Verdict<I, O> {
    /// True for [`Verdict::Linearizable`].
    pub fn is_linearizable(&self) -> bool {
        matches!(self, Verdict::Linearizable(_))
    }
}

/// A sequential specification: the states an object can be in and which
/// answers each operation may give in each state.
///
/// `step` is asked about an operation that returned; `step_pending` about
/// one that never did (its answer is unknown), and must give every state it
/// could have left behind had it taken effect (leaving out "no effect",
/// which the checker always considers).
///
/// ```
/// use ipc_harness::harness::history::{check, History, Model};
///
/// /// A counter: `Some(n)` adds n and answers nothing, `None` reads it.
/// struct Counter;
/// impl Model for Counter {
///     type State = u64;
///     type Input = Option<u64>;
///     type Output = u64;
///     fn init(&self) -> u64 { 0 }
///     fn step(&self, s: &u64, input: &Option<u64>, out: &u64) -> Option<u64> {
///         match input {
///             Some(n) => Some(s + n),
///             None => (s == out).then_some(*s),
///         }
///     }
///     fn step_pending(&self, s: &u64, input: &Option<u64>) -> Vec<u64> {
///         input.map(|n| vec![s + n]).unwrap_or_default()
///     }
/// }
///
/// let mut h = History::new();
/// h.push(0, Some(2), 0, 0, 10);
/// h.push(1, None, 3, 20, 30); // reads 3 after only 2 was added
/// assert!(!check(&Counter, &h).is_linearizable());
/// ```
pub trait Model {
    /// The object's state; the checker caches states, so equal states must
    /// hash alike.
    type State: Clone + Eq + std::hash::Hash + fmt::Debug;
    /// An operation and its arguments.
    type Input: Clone + fmt::Debug;
    /// An answer.
    type Output: Clone + fmt::Debug;

    /// The state before any operation.
    fn init(&self) -> Self::State;

    /// The state after `input` answered `output` in `state`, or `None` if
    /// it cannot give that answer there.
    fn step(
        &self,
        state: &Self::State,
        input: &Self::Input,
        output: &Self::Output,
    ) -> Option<Self::State>;

    /// Every state `input` could leave behind in `state` if it took effect
    /// with an unknown answer (empty: it can only have had no effect).
    fn step_pending(&self, state: &Self::State, input: &Self::Input) -> Vec<Self::State>;

    /// Splits the history into parts the model treats independently (the
    /// keys of a map, the producers of per-producer channels), as lists of
    /// operation indices; `None` (the default) keeps it whole. Every
    /// operation must be in exactly one part.
    fn partition(&self, history: &History<Self::Input, Self::Output>) -> Option<Vec<Vec<usize>>> {
        let _ = history;
        None
    }

    /// An operation in words, for explanations: `get() -> 7`.
    fn describe(&self, input: &Self::Input, output: Option<&Self::Output>) -> String {
        match output {
            Some(o) => format!("{input:?} -> {o:?}"),
            None => format!("{input:?} -> (pending)"),
        }
    }
}
