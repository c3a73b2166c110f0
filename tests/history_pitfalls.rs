//! Two queue pitfalls that deliver every message exactly once and in each
//! producer's order, so the delivery oracle passes them, and that the
//! history checker catches: a non-blocking get that answers `Empty` because
//! another consumer holds the lock (`busy_lock_empty_pitfall`), and a put
//! that returns before its message is in the queue (`deferred_put_pitfall`).
//!
//! Each round forks two producers and two consumers on one queue; every
//! process journals both its history (for the checker) and its trace (for
//! the oracle), so both judge the very same run.

use std::time::Duration;

use ipc_harness::harness::channel::Promises;
use ipc_harness::harness::check::judge;
use ipc_harness::harness::fork;
use ipc_harness::harness::history::models::{QueueAnswer as A, QueueModel, QueueOp as Op};
use ipc_harness::harness::history::{
    Budget, Counterexample, History, Recorder, Verdict, Wire, check, check_with, now_ns,
};
use ipc_harness::harness::journal::{Journal, OP_CALL, OP_RETURN};
use ipc_harness::harness::payload::{self, MsgId};
use ipc_harness::harness::scenario::{Pacing, ProducerPlan, Scenario};
use ipc_harness::harness::trace::{
    ConsumerLog, ConsumerTrace, ProducerLog, ProducerTrace, SendOutcome, StreamEnd, Traces,
};
use ipc_harness::queue::QueueLock;
use ipc_harness::{Error, Queue};

type QH = History<Op, A>;

/// A short message: an id and 8 bytes of content.
const SHORT: usize = payload::ID_LEN + 8;
/// Journal tag of the instant a producer's `close_producer` returned.
const CLOSED_AT: u8 = b'Z';

/// The workload a round runs, each made to show one pitfall.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Workload {
    /// Producers put 10 messages of 64 KiB each, two at a time with a
    /// 500 us pause after each pair; consumer 0 takes with blocking gets
    /// (holding the consumer lock while it waits, and while it copies a
    /// message out, with the second of a pair waiting); consumer 1 makes 60
    /// `try_get`s 20 us apart first. The switch: `busy_lock_empty_pitfall`.
    TryGets,
    /// Producers put 10 messages each, producer 0 pausing 300 us after
    /// each put and producer 1 pausing 50 us (work between puts); both
    /// consumers take with blocking gets. The switch: `deferred_put_pitfall`.
    PacedProducers,
}

impl Workload {
    fn per_producer(self) -> usize {
        match self {
            Workload::TryGets => 10,
            Workload::PacedProducers => 10,
        }
    }

    /// The length of every message. `TryGets` uses long ones, whose copy
    /// keeps the consumer lock taken a while.
    fn len(self) -> usize {
        match self {
            Workload::TryGets => 64 * 1024,
            Workload::PacedProducers => SHORT,
        }
    }

    /// Puts between pauses.
    fn burst(self) -> usize {
        match self {
            Workload::TryGets => 2,
            Workload::PacedProducers => 1,
        }
    }

    fn pause_after_put(self, producer: usize) -> Duration {
        match (self, producer) {
            (Workload::TryGets, _) => Duration::from_micros(500),
            (Workload::PacedProducers, 0) => Duration::from_micros(300),
            (Workload::PacedProducers, _) => Duration::from_micros(50),
        }
    }

    /// The scenario the oracle judges the round against.
    fn scenario(self) -> Scenario {
        Scenario {
            producers: (0..2)
                .map(|p| ProducerPlan {
                    sizes: vec![self.len(); self.per_producer()],
                    pacing: match self.pause_after_put(p) {
                        d if d.is_zero() => Pacing::Burst,
                        d => Pacing::Pause {
                            every: self.burst(),
                            micros: d.as_micros() as u64,
                        },
                    },
                })
                .collect(),
            consumers: 2,
            ..Scenario::default()
        }
    }
}

/// A message's value in the history: its producer and sequence number.
fn value_of(id: MsgId) -> u64 {
    u64::from(id.producer) << 32 | u64::from(id.seq)
}

fn value_in(bytes: &[u8]) -> u64 {
    match payload::verify(bytes) {
        payload::Verdict::Whole(id) => value_of(id),
        other => panic!("not a whole message: {other:?}"),
    }
}

fn producer_of(value: u64) -> u64 {
    value >> 32
}

/// One consumer operation journalled after it returned (so that a get
/// answered `Closed`, the end of the stream, stays out of the history).
fn journal_op(j: &Journal, id: &mut u64, op: Op, call: u64, answer: A) {
    let ret = now_ns();
    j.record_call(*id, call, &op.to_wire());
    j.record_return(*id, ret, &answer.to_wire());
    *id += 1;
}

/// One round's history and traces, from the same run.
struct Round {
    history: QH,
    traces: Traces,
    /// When each producer's `close_producer` returned.
    closed_at: Vec<u64>,
}

fn round(workload: Workload, pitfall: bool) -> Round {
    let q = Queue::builder()
        .busy_lock_empty_pitfall(pitfall && workload == Workload::TryGets)
        .deferred_put_pitfall(pitfall && workload == Workload::PacedProducers)
        .build()
        .unwrap();
    let journals: Vec<Journal> = (0..4).map(|_| Journal::new().unwrap()).collect();
    let mut children = Vec::new();
    for (p, j) in journals.iter().enumerate().take(2) {
        let q = &q;
        children.push(
            fork::spawn(move || {
                q.close_consumer();
                let (mut r, log) = (Recorder::new(j), ProducerLog(j));
                for seq in 0..workload.per_producer() as u32 {
                    let id = MsgId {
                        producer: p as u16,
                        seq,
                    };
                    log.starting(seq, workload.len());
                    let sent = r.record(&Op::Put(value_of(id)), || {
                        match q.put_bytes(&payload::make(id, workload.len())) {
                            Ok(()) => A::Ok,
                            Err(e) => panic!("put: {e}"),
                        }
                    });
                    assert_eq!(sent, A::Ok);
                    log.ended(seq, &SendOutcome::Ok);
                    if (seq as usize + 1) % workload.burst() == 0 {
                        std::thread::sleep(workload.pause_after_put(p));
                    }
                }
                q.close_producer();
                j.record(CLOSED_AT, &[&now_ns().to_le_bytes()]);
                Vec::new()
            })
            .unwrap(),
        );
    }
    for (c, j) in journals.iter().enumerate().skip(2) {
        let q = &q;
        children.push(
            fork::spawn(move || {
                q.close_producer();
                let log = ConsumerLog(j);
                let mut id = 0;
                if workload == Workload::TryGets && c == 3 {
                    for _ in 0..60 {
                        let call = now_ns();
                        match q.try_get_bytes() {
                            Ok(bytes) => {
                                journal_op(
                                    j,
                                    &mut id,
                                    Op::TryGet,
                                    call,
                                    A::Value(value_in(&bytes)),
                                );
                                log.received(&bytes);
                            }
                            Err(Error::Empty) => journal_op(j, &mut id, Op::TryGet, call, A::Empty),
                            Err(e) => panic!("try_get: {e}"),
                        }
                        std::thread::sleep(Duration::from_micros(20));
                    }
                }
                loop {
                    let call = now_ns();
                    match q.get_bytes() {
                        Ok(bytes) => {
                            journal_op(j, &mut id, Op::Get, call, A::Value(value_in(&bytes)));
                            log.received(&bytes);
                        }
                        Err(Error::Closed) => break,
                        Err(e) => panic!("get: {e}"),
                    }
                }
                log.ended(&StreamEnd::Closed);
                Vec::new()
            })
            .unwrap(),
        );
    }
    // The parent neither puts nor gets.
    q.close_producer();
    q.close_consumer();
    for report in fork::wait_all(children, Duration::from_secs(20)).unwrap() {
        assert!(report.is_success(), "{:?}", report.outcome);
    }
    let pairs: Vec<(usize, &Journal)> = journals.iter().enumerate().collect();
    let history = History::from_journals(&pairs).unwrap();
    let trace_records = |j: &Journal| -> Vec<(u8, Vec<u8>)> {
        j.records()
            .unwrap()
            .into_iter()
            .filter(|(tag, _)| ![OP_CALL, OP_RETURN, CLOSED_AT].contains(tag))
            .collect()
    };
    let traces = Traces {
        producers: (0..2)
            .map(|p| {
                Ok(
                    ProducerTrace::from_journal(p as u16, &trace_records(&journals[p]), false)
                        .unwrap(),
                )
            })
            .collect(),
        consumers: (0..2)
            .map(|c| {
                Ok(
                    ConsumerTrace::from_journal(c as u16, &trace_records(&journals[2 + c]), false)
                        .unwrap(),
                )
            })
            .collect(),
    };
    let closed_at = journals[..2]
        .iter()
        .map(|j| {
            let records = j.records().unwrap();
            let (_, at) = records.iter().find(|(tag, _)| *tag == CLOSED_AT).unwrap();
            u64::from_le_bytes(at[..8].try_into().unwrap())
        })
        .collect();
    Round {
        history,
        traces,
        closed_at,
    }
}

/// The oracle's verdict on the round: no violation, every message
/// delivered exactly once.
fn assert_the_oracle_passes(workload: Workload, r: &Round) {
    let j = judge(&workload.scenario(), &Promises::MESSAGES, &r.traces);
    assert_eq!(j.violations, vec![], "{}", workload.scenario());
    let messages = 2 * workload.per_producer() as u64;
    assert_eq!(
        (j.accounting.attempted, j.accounting.ok),
        (messages, messages)
    );
    assert_eq!(
        (
            j.accounting.lost,
            j.accounting.duplicated,
            j.accounting.unexpected
        ),
        (0, 0, 0)
    );
}

fn model() -> QueueModel {
    QueueModel::unbounded()
}

/// Rounds with the pitfall on until the checker finds a violation (at most
/// `rounds`), each also judged by the oracle, which must pass it.
fn first_violation(workload: Workload, rounds: usize) -> (usize, Round, Counterexample<Op, A>) {
    let budget = Budget::default();
    for n in 1..=rounds {
        let r = round(workload, true);
        assert_the_oracle_passes(workload, &r);
        match check_with(&model(), &r.history, budget) {
            Verdict::Violation(c) => return (n, r, c),
            Verdict::Linearizable(_) => {}
            Verdict::Unknown { explored } => panic!("out of budget after {explored}"),
        }
    }
    panic!("{workload:?}: no violation in {rounds} rounds");
}

/// The switch off: the same round is linearizable, and the oracle passes it.
fn assert_the_fixed_queue_passes(workload: Workload) {
    for _ in 0..3 {
        let r = round(workload, false);
        assert_the_oracle_passes(workload, &r);
        match check(&model(), &r.history) {
            Verdict::Linearizable(_) => {}
            Verdict::Violation(c) => panic!("{workload:?} without the pitfall: {c}"),
            Verdict::Unknown { explored } => panic!("out of budget after {explored}"),
        }
    }
}

/// A `try_get` that gives up on a busy consumer lock answers `Empty` while
/// messages wait: the checker finds it, the counterexample's refusals are
/// all such `Empty`s, and without them the history is linearizable (the
/// rest of the queue behaved). The oracle passes every one of these runs.
#[test]
fn the_checker_alone_catches_empty_while_holding_messages() {
    let _serial = fork::serial();
    let (rounds, r, c) = first_violation(Workload::TryGets, 20);
    let h = &r.history;
    eprintln!("busy-lock Empty caught in round {rounds}:\n{c}");
    let refusals: Vec<(Op, A)> = c
        .fixed
        .iter()
        .map(|&i| (h.ops[i].input, h.ops[i].output.unwrap()))
        .filter(|(_, a)| !matches!(a, A::Ok | A::Value(_)))
        .collect();
    assert!(!refusals.is_empty(), "{c}");
    assert!(refusals.iter().all(|&r| r == (Op::TryGet, A::Empty)), "{c}");
    // The false Empties are the whole fault.
    let mut without = h.clone();
    without
        .ops
        .retain(|o| (o.input, o.output) != (Op::TryGet, Some(A::Empty)));
    assert!(check(&model(), &without).is_linearizable());
    assert_the_fixed_queue_passes(Workload::TryGets);
}

/// A put that returns before its message is in the queue lets a message
/// put later by another producer be taken first: the checker finds it; its
/// counterexample is a put of `a` and a get of `b` whose put was called
/// after `a`'s returned. Stretching every put to when its message really
/// went in (the producer's next call) makes the history linearizable. The
/// oracle passes every one of these runs.
#[test]
fn the_checker_alone_catches_real_time_order_violated() {
    let _serial = fork::serial();
    let (rounds, r, c) = first_violation(Workload::PacedProducers, 20);
    let h = &r.history;
    eprintln!("deferred put caught in round {rounds}:\n{c}");
    let put_of = |v: u64| {
        h.ops
            .iter()
            .position(|o| o.input == Op::Put(v))
            .unwrap_or_else(|| panic!("no put of {v:#x}"))
    };
    let fixed: Vec<(Op, A)> = c
        .fixed
        .iter()
        .map(|&i| (h.ops[i].input, h.ops[i].output.unwrap()))
        .collect();
    let gets: Vec<(usize, u64)> = c
        .fixed
        .iter()
        .filter_map(|&i| match h.ops[i].output {
            Some(A::Value(b)) => Some((i, b)),
            _ => None,
        })
        .collect();
    let puts: Vec<(usize, u64)> = c
        .fixed
        .iter()
        .filter_map(|&i| match h.ops[i].input {
            Op::Put(a) => Some((i, a)),
            _ => None,
        })
        .collect();
    assert_eq!(puts.len() + gets.len(), fixed.len(), "{c}");
    // Some fixed get took `b` although a fixed put of `a`, by the other
    // producer, returned before `b`'s put was called.
    let witness = gets.iter().any(|&(g, b)| {
        let pb = put_of(b);
        puts.iter().any(|&(pa, a)| {
            producer_of(a) != producer_of(b)
                && h.ops[pa].ret.unwrap() < h.ops[pb].call
                && h.ops[pb].call <= h.ops[g].ret.unwrap()
                && (c.fixed.contains(&pb) || c.context.contains(&pb))
        })
    });
    assert!(witness, "{fixed:?}\n{c}");
    // Each put stretched to when its message went in: linearizable.
    let mut stretched = h.clone();
    for p in 0..2 {
        let mine: Vec<usize> = (0..h.len()).filter(|&i| h.ops[i].process == p).collect();
        for (k, &i) in mine.iter().enumerate() {
            stretched.ops[i].ret = Some(match mine.get(k + 1) {
                Some(&next) => h.ops[next].ret.unwrap(),
                None => r.closed_at[p],
            });
        }
    }
    assert!(check(&model(), &stretched).is_linearizable());
    assert_the_fixed_queue_passes(Workload::PacedProducers);
}

// ---- Each switch on its own, step by step. ----

/// A child holds `q`'s consumer lock (as a consumer in the middle of a get
/// would) for `hold`, then lets go. Returns once it holds it.
fn hold_consumer_lock(q: &Queue, hold: Duration) -> fork::Child {
    let ready = Queue::new().unwrap();
    let child = {
        let (q, ready) = (q.clone(), ready.clone());
        fork::spawn(move || {
            let lock = q.lock_for_tests(QueueLock::Consumer);
            lock.lock(None).unwrap();
            ready.put_bytes(b"held").unwrap();
            std::thread::sleep(hold);
            lock.unlock().unwrap();
            Vec::new()
        })
        .unwrap()
    };
    ready.close_producer();
    assert_eq!(ready.get_bytes().unwrap(), b"held");
    child
}

/// With the switch, `try_get` and a zero-timeout get beside a held consumer
/// lock answer `Empty` and `Timeout` although two messages wait; once the
/// holder lets go they are there. Without it, both wait for the holder and
/// take the messages.
#[test]
fn busy_lock_empty_gives_up_on_a_held_lock() {
    let _serial = fork::serial();
    for pitfall in [true, false] {
        let q = Queue::builder()
            .busy_lock_empty_pitfall(pitfall)
            .build()
            .unwrap();
        q.put_bytes(b"a").unwrap();
        q.put_bytes(b"b").unwrap();
        let holder = hold_consumer_lock(&q, Duration::from_millis(50));
        let answers = [q.try_get_bytes(), q.get_bytes_timeout(Duration::ZERO)];
        holder
            .wait(Duration::from_secs(10))
            .unwrap()
            .expect_success();
        if pitfall {
            assert!(
                matches!(answers, [Err(Error::Empty), Err(Error::Timeout)]),
                "{answers:?}"
            );
            assert_eq!(q.len(), 2);
            assert_eq!(q.try_get_bytes().unwrap(), b"a");
        } else {
            let taken: Vec<Vec<u8>> = answers.into_iter().map(Result::unwrap).collect();
            assert_eq!(taken, [b"a".to_vec(), b"b".to_vec()]);
            assert_eq!(q.len(), 0);
        }
    }
}

/// With the switch, a put returns with its message still in the putting
/// process: another process sees an empty queue until the putter's next
/// call on the queue (here `len`) or its `close_producer`. A forked child
/// does not publish the copy it inherited. Without it, the message is in
/// the queue when the put returns.
#[test]
fn deferred_put_publishes_at_the_next_call() {
    let _serial = fork::serial();
    // What another process sees: (len, then what try_get answers).
    let look = |q: &Queue| -> (usize, Option<Vec<u8>>) {
        let q = q.clone();
        let report = fork::run(Duration::from_secs(10), move || {
            q.close_producer(); // drops its inherited copy of a waiting put
            let len = q.len();
            let got = q.try_get_bytes().ok();
            let mut out = vec![len as u8];
            out.extend(got.unwrap_or_else(|| b"-".to_vec()));
            out
        })
        .unwrap();
        let out = report.expect_success();
        let got = (&out[1..] != b"-").then(|| out[1..].to_vec());
        (usize::from(out[0]), got)
    };
    for pitfall in [true, false] {
        let q = Queue::builder()
            .deferred_put_pitfall(pitfall)
            .build()
            .unwrap();
        q.put_bytes(b"a").unwrap();
        if pitfall {
            assert_eq!(look(&q), (0, None));
            // This process's next call puts `a` in first.
            assert_eq!(q.len(), 1);
            q.put_bytes(b"b").unwrap();
            assert_eq!(look(&q), (1, Some(b"a".to_vec())));
            q.close_producer();
            assert_eq!(look(&q), (1, Some(b"b".to_vec())));
        } else {
            assert_eq!(look(&q), (1, Some(b"a".to_vec())));
            q.put_bytes(b"b").unwrap();
            assert_eq!(look(&q), (1, Some(b"b".to_vec())));
        }
        assert_eq!(q.len(), 0);
    }
}
