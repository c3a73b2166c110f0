//! The judgement of each consumer: its receives taken apart into pieces
//! (whole, merged, split, corrupt), the order it saw each producer's
//! messages in, its task accounting, and how its stream ended.

use std::collections::{BTreeMap, HashMap};

use super::pieces::{Pending, Piece, take_apart};
use super::sends::{FaultsSeen, Sent, hang, process_failure};
use super::{Accounting, MsgRef, Violation};
use crate::harness::payload::MsgId;
use crate::harness::trace::{ConsumerTrace, Failure, StreamEnd, TaskTrace};

/// What arrived, over all consumers.
#[derive(Default)]
pub(super) struct Received {
    /// How many times each id arrived whole.
    pub(super) ids: HashMap<MsgId, usize>,
    /// How many short messages of each length arrived.
    pub(super) small: BTreeMap<usize, usize>,
}

/// Judges consumer `c`: a consumer that hung or crashed is a violation;
/// otherwise its receives ([`Deliveries`]), then its order, tasks and end.
pub(super) fn judge_consumer(
    c: usize,
    result: &Result<ConsumerTrace, Failure>,
    sent: &Sent,
    faults: &FaultsSeen,
    received: &mut Received,
    acc: &mut Accounting,
    violations: &mut Vec<Violation>,
) {
    let consumer = c as u16;
    let process = format!("consumer {c}");
    let trace = match result {
        Ok(t) => t,
        Err(failure) => {
            violations.push(process_failure(&process, "while receiving", failure));
            return;
        }
    };
    let mut deliveries = Deliveries {
        consumer,
        sent,
        received,
        acc,
        violations,
        order: BTreeMap::new(),
        pending: None,
        carry: Vec::new(),
        carried_in: 0,
    };
    for (r, bytes) in trace.receives.iter().enumerate() {
        deliveries.receive(r, bytes);
    }
    let order = deliveries.finish();
    order_per_producer(consumer, order, violations);
    if let Some(tasks) = &trace.tasks {
        check_tasks(consumer, trace.receives.len() as u64, tasks, violations);
    }
    stream_end(process, &trace.end, faults, violations);
}

/// One consumer's receives, taken apart one after the other: a byte stream
/// may split a message across receives, so the rest of one (`pending`) or
/// the start of one too short to name (`carry`) goes on to the next.
struct Deliveries<'a> {
    consumer: u16,
    sent: &'a Sent,
    received: &'a mut Received,
    acc: &'a mut Accounting,
    violations: &'a mut Vec<Violation>,
    /// The delivered messages of each producer, in the order they came.
    order: BTreeMap<u16, Vec<MsgId>>,
    /// A message split across receives, waiting for its rest.
    pending: Option<Pending>,
    /// The unidentified start of a message...
    carry: Vec<u8>,
    /// ...and the receive it came in.
    carried_in: usize,
}

impl Deliveries<'_> {
    /// Takes receive `r` apart (glued to the start carried from an earlier
    /// one, if any) and judges its pieces: more than one is `Merged`.
    fn receive(&mut self, r: usize, bytes: &[u8]) {
        let carried = std::mem::take(&mut self.carry);
        let joined;
        let whole: &[u8] = if carried.is_empty() {
            bytes
        } else {
            joined = [carried.as_slice(), bytes].concat();
            &joined
        };
        let mut pieces = take_apart(whole, &mut self.pending, &mut self.carry);
        if !carried.is_empty() {
            self.continue_carried(carried.len(), &mut pieces);
        }
        if !self.carry.is_empty() {
            self.carried_in = r;
        }
        if pieces.len() > 1 {
            self.violations.push(Violation::Merged {
                consumer: self.consumer,
                receive: r,
                parts: pieces.iter().map(Piece::describe).collect(),
            });
        }
        for (i, piece) in pieces.iter().enumerate() {
            // A rest glued to a carried start was counted already.
            let counted_already = i == 0 && !carried.is_empty();
            self.piece(r, piece, counted_already);
        }
    }

    /// Decides what the `carried` bytes an earlier receive ended with were:
    /// the start of the message the first piece holds (that receive was
    /// `Split`, and the piece becomes the rest of the message), or bytes
    /// that never became a message (`Corrupted`).
    fn continue_carried(&mut self, carried: usize, pieces: &mut [Piece]) {
        // (the message, its length, whether it is complete here)
        let continued = match pieces.first() {
            Some(&Piece::Whole(msg, len)) => Some((msg, len, true)),
            Some(&Piece::Prefix(id, _, len)) => Some((MsgRef::Id(id), len, false)),
            _ => None,
        };
        match continued {
            Some((msg, len, complete)) if len > carried => {
                self.violations.push(Violation::Split {
                    consumer: self.consumer,
                    receive: self.carried_in,
                    msg,
                    got: carried,
                    len,
                });
                if let MsgRef::Id(id) = msg {
                    self.order.entry(id.producer).or_default().push(id);
                    if complete {
                        *self.received.ids.entry(id).or_default() += 1;
                    }
                    let rest = match pieces[0] {
                        Piece::Prefix(_, got, _) => got - carried,
                        _ => len - carried,
                    };
                    pieces[0] = Piece::Rest(id, rest);
                }
            }
            _ => self.violations.push(Violation::Corrupted {
                consumer: self.consumer,
                receive: self.carried_in,
                why: format!("{carried} bytes that never became a message"),
            }),
        }
    }

    /// Decides the fate of one piece of receive `r`: a whole message
    /// arrived (and was it ever sent?), part of one was `Split` off, the
    /// rest of a split one completed it, or the bytes are `Corrupted`.
    fn piece(&mut self, r: usize, piece: &Piece, counted_already: bool) {
        let consumer = self.consumer;
        match *piece {
            Piece::Whole(MsgRef::Id(id), _) => {
                *self.received.ids.entry(id).or_default() += 1;
                self.order.entry(id.producer).or_default().push(id);
                if !self.sent.knows(&id) {
                    self.acc.unexpected += 1;
                    self.violations.push(Violation::Corrupted {
                        consumer,
                        receive: r,
                        why: format!("{id} was never sent"),
                    });
                }
            }
            Piece::Whole(MsgRef::Small { len }, _) => {
                *self.received.small.entry(len).or_default() += 1
            }
            Piece::Prefix(id, got, len) => {
                self.violations.push(Violation::Split {
                    consumer,
                    receive: r,
                    msg: MsgRef::Id(id),
                    got,
                    len,
                });
                // Counted as delivered in order once its rest comes.
                self.order.entry(id.producer).or_default().push(id);
            }
            Piece::Rest(id, _) => {
                let complete = self.pending.as_ref().is_none_or(|p| p.id != id);
                if complete && !counted_already {
                    *self.received.ids.entry(id).or_default() += 1;
                }
            }
            // Judged with the next receive.
            Piece::Carried(_) => {}
            Piece::Garbage(ref why) => self.violations.push(Violation::Corrupted {
                consumer,
                receive: r,
                why: why.clone(),
            }),
        }
    }

    /// Decides whether the stream ended inside a message (`Corrupted`), and
    /// returns the order the messages came in.
    fn finish(self) -> BTreeMap<u16, Vec<MsgId>> {
        if !self.carry.is_empty() {
            self.violations.push(Violation::Corrupted {
                consumer: self.consumer,
                receive: self.carried_in,
                why: format!("the stream ended {} bytes into a message", self.carry.len()),
            });
        }
        self.order
    }
}

/// Decides whether `consumer` saw each producer's messages in the order
/// they were sent: the first pair out of order is `Reordered`.
fn order_per_producer(
    consumer: u16,
    order: BTreeMap<u16, Vec<MsgId>>,
    violations: &mut Vec<Violation>,
) {
    for (_, ids) in order {
        if let Some(w) = ids.windows(2).find(|w| w[1].seq < w[0].seq) {
            violations.push(Violation::Reordered {
                consumer,
                first: w[0],
                then: w[1],
            });
        }
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

/// Decides whether the stream's end is allowed: `Closed`, a kill or an
/// early close are; a timeout or a hang is a `Hang`; a broken stream is expected
/// only where a dead writer can tear a frame; any other error is not.
fn stream_end(
    process: String,
    end: &StreamEnd,
    faults: &FaultsSeen,
    violations: &mut Vec<Violation>,
) {
    match end {
        StreamEnd::Closed => {}
        StreamEnd::Timeout => violations.push(Violation::Hang {
            process,
            phase: "was still waiting for a message or the end of stream at the deadline".into(),
        }),
        StreamEnd::Broken(_) if faults.torn_frames_expected => {}
        StreamEnd::Broken(e) | StreamEnd::Error(e) => violations.push(Violation::UnexpectedError {
            process,
            operation: "receive".into(),
            error: e.clone(),
        }),
        StreamEnd::Killed | StreamEnd::ClosedEarly => {}
        StreamEnd::Hung {
            blocked_in,
            stalled,
        } => violations.push(hang(
            &process,
            "while receiving",
            blocked_in.as_deref(),
            *stalled,
        )),
    }
}
