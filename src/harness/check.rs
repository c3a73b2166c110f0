//! The oracle: from the processes' [`Traces`] alone, the list of every
//! [`Violation`] of the semantics contract.
//!
//! Each receive is taken apart into the messages it holds
//! ([`payload::verify`]): a receive holding two messages is `Merged`, one
//! holding part of a message is `Split` (and the consumer's next receive
//! is checked for the rest of it, so a byte stream that splits a message
//! still delivers it once), bytes that are no message are `Corrupted`.
//! Then every message whose send returned `Ok` must have been received
//! exactly once, and each consumer must have seen each producer's messages
//! in the order they were sent. Messages too short to carry an id are
//! checked as a multiset of lengths.
//!
//! # Under faults
//! [`judge`] also knows what the [faults](super::fault) did (from the
//! traces: who was killed, who closed early) and what the channel promises:
//! - a send cut short by a kill is **indeterminate**: it may arrive once,
//!   whole, or not at all (arriving twice is still `Duplicated`);
//! - a message whose send returned `Ok` must arrive, unless it was in a
//!   killed consumer's hands: at most
//!   [`lost_per_dead_consumer`](super::channel::Promises::lost_per_dead_consumer)
//!   per killed consumer, or everything not yet received once every
//!   consumer is gone (the channel died with them);
//! - a send that fails with `Closed` is expected once every consumer is
//!   gone, and a stream that ends `Truncated` is expected once a producer
//!   was killed, where a dead writer can tear a frame (a single writer, or
//!   [`torn_by_dead_writer`](super::channel::Promises::torn_by_dead_writer));
//! - survivors must still never hang, and never see a merged, split,
//!   corrupt or duplicated message.
//!
//! The [`Accounting`] counts what became of every message the way Jepsen's
//! `total-queue` checker does: `ok`, `lost`, `recovered`, `duplicated`,
//! `unexpected`.

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use super::channel::{Promises, Property};
use super::payload::{self, ID_LEN, MsgId, Verdict};
use super::scenario::Scenario;
use super::trace::{Failure, Fate, SendOutcome, StreamEnd, TaskTrace, Traces};

/// Which message a violation is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum MsgRef {
    /// A message that carries its id.
    Id(MsgId),
    /// A message shorter than [`ID_LEN`], known only by its length.
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

/// A piece of a receive, once taken apart.
enum Piece {
    /// A whole message.
    Whole(MsgRef, usize),
    /// The start of a message of `len` bytes: `got` of them.
    Prefix(MsgId, usize, usize),
    /// The continuation of a message split by an earlier receive.
    Rest(MsgId, usize),
    /// The first bytes of a message, too few to tell which.
    Carried(usize),
    /// Bytes that are no message.
    Garbage(String),
}

impl Piece {
    fn describe(&self) -> String {
        match self {
            Piece::Whole(m, len) => format!("{m} ({len} bytes)"),
            Piece::Prefix(id, got, len) => format!("the first {got} of {len} bytes of {id}"),
            Piece::Rest(id, got) => format!("the last {got} bytes of {id}"),
            Piece::Carried(n) => format!("the first {n} bytes of a message"),
            Piece::Garbage(why) => format!("garbage ({why})"),
        }
    }
}

/// A message split across receives, waiting for its rest.
struct Pending {
    id: MsgId,
    len: usize,
    got: usize,
}

/// Finds the longest short message at the start of `bytes` after which the
/// rest is empty or starts a message with an id.
fn small_prefix(bytes: &[u8]) -> Option<usize> {
    let max = bytes.len().min(ID_LEN - 1);
    let fits = |n: usize| payload::verify(&bytes[..n]) == Verdict::Small(n);
    let clean = (1..=max)
        .rev()
        .find(|&n| fits(n) && (n == bytes.len() || bytes[n..].starts_with(b"ih")));
    clean.or_else(|| (1..=max).rev().find(|&n| fits(n)))
}

/// Takes one receive apart, continuing `pending` if there is one. A tail
/// too short to identify (the start of a message's id) is left in `carry`
/// and reported as [`Piece::Carried`]; the caller glues it to the front of
/// the next receive.
fn take_apart(bytes: &[u8], pending: &mut Option<Pending>, carry: &mut Vec<u8>) -> Vec<Piece> {
    let mut pieces = Vec::new();
    let mut pos = 0;
    if let Some(p) = pending.take() {
        let k = (p.len - p.got).min(bytes.len());
        if payload::matches_at(p.id, p.len, p.got, &bytes[..k]) {
            pieces.push(Piece::Rest(p.id, k));
            pos = k;
            if p.got + k < p.len {
                *pending = Some(Pending {
                    got: p.got + k,
                    ..p
                });
            }
        }
        // A mismatch: the rest went elsewhere (or never came); the message
        // stays incomplete, and the bytes here are judged on their own.
    }
    if bytes.is_empty() {
        pieces.push(Piece::Whole(MsgRef::Small { len: 0 }, 0));
    }
    while pos < bytes.len() {
        let rest = &bytes[pos..];
        if !rest.starts_with(b"ih") || rest.len() < ID_LEN {
            if let Some(n) = small_prefix(rest) {
                pieces.push(Piece::Whole(MsgRef::Small { len: n }, n));
                pos += n;
                continue;
            }
            if rest.len() < ID_LEN
                && (b"ih"[..rest.len().min(2)] == rest[..rest.len().min(2)]
                    || payload::is_small_prefix(rest))
            {
                // The start of a message whose id is not all here yet.
                carry.extend_from_slice(rest);
                pieces.push(Piece::Carried(rest.len()));
            } else {
                pieces.push(Piece::Garbage(format!(
                    "{} bytes that are not the start of any message",
                    rest.len()
                )));
            }
            break;
        }
        match payload::verify(rest) {
            Verdict::Whole(id) => {
                pieces.push(Piece::Whole(MsgRef::Id(id), rest.len()));
                pos = bytes.len();
            }
            Verdict::Merged { id, extra } => {
                let len = rest.len() - extra;
                pieces.push(Piece::Whole(MsgRef::Id(id), len));
                pos += len;
            }
            Verdict::Split { id, got, len } => {
                pieces.push(Piece::Prefix(id, got, len));
                *pending = Some(Pending { id, len, got });
                pos = bytes.len();
            }
            Verdict::Small(_) => unreachable!("a message starting with an id is not short"),
            Verdict::Corrupt { why } => {
                pieces.push(Piece::Garbage(why));
                break;
            }
        }
    }
    pieces
}

/// What became of every message of one run (or of many, added up), and
/// what the faults did: Jepsen's `total-queue` figures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Accounting {
    /// Sends started.
    pub attempted: u64,
    /// Sends that returned `Ok` and arrived exactly once.
    pub ok: u64,
    /// Sends that returned `Ok` and never arrived (violations unless
    /// counted in [`lost_to_faults`](Self::lost_to_faults)).
    pub lost: u64,
    /// The part of [`lost`](Self::lost) that a fault explains: in a killed
    /// consumer's hands, or in a channel whose every consumer was gone.
    pub lost_to_faults: u64,
    /// Indeterminate sends (cut by a kill, refused, or failed) that
    /// arrived once.
    pub recovered: u64,
    /// Indeterminate sends that never arrived: allowed.
    pub indeterminate_lost: u64,
    /// Messages that arrived more than once.
    pub duplicated: u64,
    /// Messages that arrived but were never sent.
    pub unexpected: u64,
    /// Sends refused with `Closed` because no consumer was left. They are
    /// indeterminate too (a large message may have been partly written),
    /// so they are also counted in [`recovered`](Self::recovered) or
    /// [`indeterminate_lost`](Self::indeterminate_lost).
    pub refused: u64,
    /// Processes killed by faults.
    pub killed: u64,
    /// Times a process was stopped and continued by a fault.
    pub stopped: u64,
    /// Processes that closed their end early.
    pub closed_early: u64,
    /// Signals of a signal storm handled (by processes that lived to say).
    pub storm_signals: u64,
}

impl Accounting {
    /// Adds `other`'s figures to these.
    pub fn add(&mut self, other: &Accounting) {
        self.attempted += other.attempted;
        self.ok += other.ok;
        self.lost += other.lost;
        self.lost_to_faults += other.lost_to_faults;
        self.recovered += other.recovered;
        self.indeterminate_lost += other.indeterminate_lost;
        self.duplicated += other.duplicated;
        self.unexpected += other.unexpected;
        self.refused += other.refused;
        self.killed += other.killed;
        self.stopped += other.stopped;
        self.closed_early += other.closed_early;
        self.storm_signals += other.storm_signals;
    }

    /// Signals the faults sent: a `SIGKILL` per kill, a `SIGSTOP` and a
    /// `SIGCONT` per stop, plus the storm's.
    pub fn signals(&self) -> u64 {
        self.killed + 2 * self.stopped + self.storm_signals
    }

    /// `n` as a fraction of the sends attempted.
    pub fn fraction(&self, n: u64) -> f64 {
        if self.attempted == 0 {
            0.0
        } else {
            n as f64 / self.attempted as f64
        }
    }
}

impl fmt::Display for Accounting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let pct = |n| 100.0 * self.fraction(n);
        write!(
            f,
            "sends {}: ok {} ({:.1}%), lost {} ({:.1}%, {} to faults), recovered {} ({:.1}%), \
             indeterminate and lost {} ({:.1}%, {} refused), duplicated {}, unexpected {}; \
             faults: {} killed, {} stopped, {} closed early, {} storm signals",
            self.attempted,
            self.ok,
            pct(self.ok),
            self.lost,
            pct(self.lost),
            self.lost_to_faults,
            self.recovered,
            pct(self.recovered),
            self.indeterminate_lost,
            pct(self.indeterminate_lost),
            self.refused,
            self.duplicated,
            self.unexpected,
            self.killed,
            self.stopped,
            self.closed_early,
            self.storm_signals,
        )
    }
}

/// The oracle's verdict on one run.
#[derive(Debug, Clone, Default)]
pub struct Judgement {
    /// Every violation found.
    pub violations: Vec<Violation>,
    /// What became of every message.
    pub accounting: Accounting,
}

/// Judges one run without faults of a channel that promises everything:
/// every violation of the contract in `traces`, for the messages
/// `scenario` planned. See [`judge`].
pub fn check(scenario: &Scenario, traces: &Traces) -> Vec<Violation> {
    judge(scenario, &Promises::MESSAGES, traces).violations
}

/// Judges one run of a channel with `promises`: every violation of the
/// contract in `traces` for the messages `scenario` planned, taking the
/// faults the traces show into account (see the module docs), and what
/// became of every message.
pub fn judge(scenario: &Scenario, promises: &Promises, traces: &Traces) -> Judgement {
    let mut violations = Vec::new();
    let mut acc = Accounting::default();

    // What the faults did.
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
    let no_consumer_left = consumers_removed > 0 && consumers_removed == traces.consumers.len();
    // A writer killed mid-frame leaves a torn frame the reader must report.
    let torn_frames_expected =
        producer_killed && (promises.max_producers == 1 || promises.torn_by_dead_writer);

    // What was sent: ids and small lengths whose send returned Ok.
    let mut sent: BTreeMap<MsgId, usize> = BTreeMap::new();
    let mut maybe_sent: BTreeMap<MsgId, usize> = BTreeMap::new();
    let mut small_sent: BTreeMap<usize, usize> = BTreeMap::new();
    let mut small_maybe: BTreeMap<usize, usize> = BTreeMap::new();
    for (p, result) in traces.producers.iter().enumerate() {
        let process = format!("producer {p}");
        match result {
            Ok(trace) => {
                for s in &trace.sends {
                    acc.attempted += 1;
                    let id = MsgId {
                        producer: p as u16,
                        seq: s.seq,
                    };
                    let certain = match &s.outcome {
                        SendOutcome::Ok => true,
                        SendOutcome::Cut => false,
                        SendOutcome::Closed => {
                            acc.refused += 1;
                            if !no_consumer_left {
                                violations.push(Violation::UnexpectedError {
                                    process: process.clone(),
                                    operation: format!("send #{} ({} bytes)", s.seq, s.len),
                                    error: crate::Error::Closed.to_string(),
                                });
                            }
                            false
                        }
                        SendOutcome::Failed(error) => {
                            violations.push(Violation::UnexpectedError {
                                process: process.clone(),
                                operation: format!("send #{} ({} bytes)", s.seq, s.len),
                                error: error.clone(),
                            });
                            false
                        }
                    };
                    match (certain, s.len < ID_LEN) {
                        (true, true) => *small_sent.entry(s.len).or_default() += 1,
                        (true, false) => {
                            sent.insert(id, s.len);
                        }
                        (false, true) => *small_maybe.entry(s.len).or_default() += 1,
                        (false, false) => {
                            maybe_sent.insert(id, s.len);
                        }
                    }
                }
            }
            Err(failure) => {
                violations.push(process_failure(&process, "while sending", failure));
                // We cannot know which of its sends happened: any may arrive.
                for (seq, &len) in scenario.producer_sizes(p).iter().enumerate() {
                    acc.attempted += 1;
                    let id = MsgId {
                        producer: p as u16,
                        seq: seq as u32,
                    };
                    if len < ID_LEN {
                        *small_maybe.entry(len).or_default() += 1;
                    } else {
                        maybe_sent.insert(id, len);
                    }
                }
            }
        }
    }

    // What arrived.
    let mut received: HashMap<MsgId, usize> = HashMap::new();
    let mut small_received: BTreeMap<usize, usize> = BTreeMap::new();
    for (c, result) in traces.consumers.iter().enumerate() {
        let consumer = c as u16;
        let process = format!("consumer {c}");
        let trace = match result {
            Ok(t) => t,
            Err(failure) => {
                violations.push(process_failure(&process, "while receiving", failure));
                continue;
            }
        };
        // (seq, order key) of each delivered message, per producer.
        let mut order: BTreeMap<u16, Vec<MsgId>> = BTreeMap::new();
        let mut pending: Option<Pending> = None;
        // The unidentified start of a message, and the receive it came in.
        let mut carry: Vec<u8> = Vec::new();
        let mut carried_in = 0;
        for (r, bytes) in trace.receives.iter().enumerate() {
            let carried = std::mem::take(&mut carry);
            let joined;
            let whole: &[u8] = if carried.is_empty() {
                bytes
            } else {
                joined = [carried.as_slice(), bytes].concat();
                &joined
            };
            let mut pieces = take_apart(whole, &mut pending, &mut carry);
            if !carried.is_empty() {
                // The first piece began in an earlier receive: that one was
                // split, and this piece is the rest of the message.
                // (the message, its length, whether it is complete here)
                let continued = match pieces.first() {
                    Some(&Piece::Whole(msg, len)) => Some((msg, len, true)),
                    Some(&Piece::Prefix(id, _, len)) => Some((MsgRef::Id(id), len, false)),
                    _ => None,
                };
                match continued {
                    Some((msg, len, complete)) if len > carried.len() => {
                        violations.push(Violation::Split {
                            consumer,
                            receive: carried_in,
                            msg,
                            got: carried.len(),
                            len,
                        });
                        if let MsgRef::Id(id) = msg {
                            order.entry(id.producer).or_default().push(id);
                            if complete {
                                *received.entry(id).or_default() += 1;
                            }
                            let rest = match pieces[0] {
                                Piece::Prefix(_, got, _) => got - carried.len(),
                                _ => len - carried.len(),
                            };
                            pieces[0] = Piece::Rest(id, rest);
                        }
                    }
                    _ => violations.push(Violation::Corrupted {
                        consumer,
                        receive: carried_in,
                        why: format!("{} bytes that never became a message", carried.len()),
                    }),
                }
            }
            if !carry.is_empty() {
                carried_in = r;
            }
            if pieces.len() > 1 {
                violations.push(Violation::Merged {
                    consumer,
                    receive: r,
                    parts: pieces.iter().map(Piece::describe).collect(),
                });
            }
            for (i, piece) in pieces.iter().enumerate() {
                match *piece {
                    Piece::Whole(MsgRef::Id(id), _) => {
                        *received.entry(id).or_default() += 1;
                        order.entry(id.producer).or_default().push(id);
                        if !sent.contains_key(&id) && !maybe_sent.contains_key(&id) {
                            acc.unexpected += 1;
                            violations.push(Violation::Corrupted {
                                consumer,
                                receive: r,
                                why: format!("{id} was never sent"),
                            });
                        }
                    }
                    Piece::Whole(MsgRef::Small { len }, _) => {
                        *small_received.entry(len).or_default() += 1
                    }
                    Piece::Prefix(id, got, len) => {
                        violations.push(Violation::Split {
                            consumer,
                            receive: r,
                            msg: MsgRef::Id(id),
                            got,
                            len,
                        });
                        // Counted as delivered in order once its rest comes.
                        order.entry(id.producer).or_default().push(id);
                    }
                    Piece::Rest(id, _) => {
                        let complete = pending.as_ref().is_none_or(|p| p.id != id);
                        // A rest glued to a carried start was counted above.
                        let counted_already = i == 0 && !carried.is_empty();
                        if complete && !counted_already {
                            *received.entry(id).or_default() += 1;
                        }
                    }
                    // Judged with the next receive.
                    Piece::Carried(_) => {}
                    Piece::Garbage(ref why) => violations.push(Violation::Corrupted {
                        consumer,
                        receive: r,
                        why: why.clone(),
                    }),
                }
            }
        }
        if !carry.is_empty() {
            violations.push(Violation::Corrupted {
                consumer,
                receive: carried_in,
                why: format!("the stream ended {} bytes into a message", carry.len()),
            });
        }
        for (_, ids) in order {
            if let Some(w) = ids.windows(2).find(|w| w[1].seq < w[0].seq) {
                violations.push(Violation::Reordered {
                    consumer,
                    first: w[0],
                    then: w[1],
                });
            }
        }
        if let Some(tasks) = &trace.tasks {
            check_tasks(
                consumer,
                trace.receives.len() as u64,
                tasks,
                &mut violations,
            );
        }
        match &trace.end {
            StreamEnd::Closed => {}
            StreamEnd::Timeout => violations.push(Violation::Hang {
                process,
                phase: "was still waiting for a message or the end of stream at the deadline"
                    .into(),
            }),
            StreamEnd::Broken(_) if torn_frames_expected => {}
            StreamEnd::Broken(e) | StreamEnd::Error(e) => {
                violations.push(Violation::UnexpectedError {
                    process,
                    operation: "receive".into(),
                    error: e.clone(),
                })
            }
            StreamEnd::Killed | StreamEnd::ClosedEarly => {}
        }
    }

    // Exactly once. A lost message is explained by a fault if it may have
    // been in a killed consumer's hands (a bounded number), or if no
    // consumer was left to take it.
    let mut excusable = if no_consumer_left || promises.max_consumers == 1 && consumers_removed > 0
    {
        u64::MAX
    } else {
        consumers_killed.saturating_mul(promises.lost_per_dead_consumer as u64)
    };
    let mut lose = |msg: MsgRef, len: usize, violations: &mut Vec<Violation>| {
        acc.lost += 1;
        if excusable > 0 {
            excusable -= 1;
            acc.lost_to_faults += 1;
        } else {
            violations.push(Violation::Lost { msg, len });
        }
    };
    for (&id, &len) in &sent {
        match received.get(&id).copied().unwrap_or(0) {
            0 => lose(MsgRef::Id(id), len, &mut violations),
            1 => acc.ok += 1,
            times => {
                acc.duplicated += 1;
                violations.push(Violation::Duplicated {
                    msg: MsgRef::Id(id),
                    times,
                })
            }
        }
    }
    for &id in maybe_sent.keys() {
        match received.get(&id).copied().unwrap_or(0) {
            0 => acc.indeterminate_lost += 1,
            1 => acc.recovered += 1,
            times => {
                acc.duplicated += 1;
                violations.push(Violation::Duplicated {
                    msg: MsgRef::Id(id),
                    times,
                })
            }
        }
    }
    let lens: std::collections::BTreeSet<usize> = small_sent
        .keys()
        .chain(small_received.keys())
        .chain(small_maybe.keys())
        .copied()
        .collect();
    for len in lens {
        let s = small_sent.get(&len).copied().unwrap_or(0);
        let m = small_maybe.get(&len).copied().unwrap_or(0);
        let r = small_received.get(&len).copied().unwrap_or(0);
        let msg = MsgRef::Small { len };
        if r < s {
            acc.ok += r as u64;
            for _ in r..s {
                lose(msg, len, &mut violations);
            }
            acc.indeterminate_lost += m as u64;
        } else if r > s + m {
            acc.ok += s as u64;
            acc.recovered += m as u64;
            acc.duplicated += (r - s - m) as u64;
            violations.push(Violation::Duplicated { msg, times: r - m });
        } else {
            acc.ok += s as u64;
            acc.recovered += (r - s) as u64;
            acc.indeterminate_lost += (s + m - r) as u64;
        }
    }
    Judgement {
        violations,
        accounting: acc,
    }
}

/// Task accounting of one consumer that received `gets` messages and
/// called `task_done` after each: never more done than gets, never refused,
/// every join returned, with the counter at zero.
fn check_tasks(consumer: u16, gets: u64, tasks: &TaskTrace, violations: &mut Vec<Violation>) {
    let mut v = |what: String| violations.push(Violation::TaskAccounting { consumer, what });
    if tasks.done > gets {
        v(format!(
            "marked {} tasks done after only {gets} gets",
            tasks.done
        ));
    }
    for e in &tasks.refused {
        v(format!(
            "had task_done refused with a task taken and not done: {e}"
        ));
    }
    for &counter in &tasks.joins {
        if counter != 0 {
            v(format!(
                "saw a join return while {counter} task(s) were unfinished"
            ));
        }
    }
    for e in &tasks.join_errors {
        v(format!("joined and the join did not return: {e}"));
    }
}

fn process_failure(process: &str, phase: &str, failure: &Failure) -> Violation {
    match failure {
        Failure::Hung(blocked) => Violation::Hang {
            process: process.to_string(),
            phase: match blocked {
                Some(b) => format!("hung {phase}, blocked in {b}, and was killed at the deadline"),
                None => format!("hung {phase} and was killed at the deadline"),
            },
        },
        Failure::Crashed(outcome) => Violation::ChildFailed {
            process: process.to_string(),
            outcome: format!("{outcome} {phase}"),
        },
    }
}
