//! The oracle on its own, without processes: hand-made traces for every
//! violation kind, and a property test that a correct delivery has no
//! violations while any single mutation of it (drop, duplicate, swap,
//! merge two, cut one, truncate one, flip a byte) yields the matching one.

use ipc_harness::harness::check::{MsgRef, Violation, check};
use ipc_harness::harness::payload::{self, ID_LEN, MsgId};
use ipc_harness::harness::proptest_config;
use ipc_harness::harness::scenario::{Limits, Scenario, scenarios};
use ipc_harness::harness::trace::{
    ConsumerTrace, Failure, ProducerTrace, SendOutcome, SendRecord, StreamEnd, Traces,
};
use proptest::prelude::*;

fn id(producer: u16, seq: u32) -> MsgId {
    MsgId { producer, seq }
}

/// Traces of a perfect delivery of `scenario` to one consumer, with the
/// producers' messages interleaved in the order `pick` chooses.
fn perfect(scenario: &Scenario, pick: &[usize]) -> (Traces, Vec<(MsgId, usize)>) {
    let mut producers = Vec::new();
    let mut queues: Vec<Vec<(MsgId, usize)>> = Vec::new();
    for (p, plan) in scenario.producers.iter().enumerate() {
        let sends = plan
            .sizes
            .iter()
            .enumerate()
            .map(|(seq, &len)| SendRecord {
                seq: seq as u32,
                len,
                outcome: SendOutcome::Ok,
            })
            .collect();
        producers.push(Ok(ProducerTrace {
            producer: p as u16,
            sends,
            ..ProducerTrace::default()
        }));
        queues.push(
            plan.sizes
                .iter()
                .enumerate()
                .rev()
                .map(|(seq, &len)| (id(p as u16, seq as u32), len))
                .collect(),
        );
    }
    let mut order = Vec::new();
    let mut i = 0;
    while queues.iter().any(|q| !q.is_empty()) {
        let nonempty: Vec<usize> = (0..queues.len())
            .filter(|&q| !queues[q].is_empty())
            .collect();
        let q = nonempty[pick.get(i).copied().unwrap_or(0) % nonempty.len()];
        order.push(queues[q].pop().expect("nonempty"));
        i += 1;
    }
    let receives = order
        .iter()
        .map(|&(m, len)| payload::make(m, len))
        .collect();
    let traces = Traces {
        producers,
        consumers: vec![Ok(ConsumerTrace {
            consumer: 0,
            receives,
            end: StreamEnd::Closed,
            tasks: None,
            stops: 0,
            storm_signals: 0,
        })],
    };
    (traces, order)
}

fn kinds(v: &[Violation]) -> Vec<&'static str> {
    v.iter().map(Violation::kind).collect()
}

fn receives(t: &mut Traces) -> &mut Vec<Vec<u8>> {
    &mut t.consumers[0].as_mut().expect("a consumer trace").receives
}

fn small_scenarios() -> impl Strategy<Value = Scenario> {
    scenarios(Limits {
        max_producers: 3,
        max_consumers: 1,
        max_message: 5000,
        min_message: 0,
        max_messages: 8,
        max_total: 64 * 1024,
    })
}

#[derive(Debug, Clone, Copy)]
enum Mutation {
    Drop,
    Duplicate,
    Swap,
    Merge,
    Cut,
    Truncate,
    Flip,
}

proptest! {
    #![proptest_config(proptest_config("proptest-regressions/oracle.txt", 256))]

    #[test]
    fn a_correct_delivery_has_no_violations(
        scenario in small_scenarios(),
        pick in proptest::collection::vec(0usize..8, 64),
    ) {
        let (traces, _) = perfect(&scenario, &pick);
        let v = check(&scenario, &traces);
        prop_assert!(v.is_empty(), "{:?}", kinds(&v));
    }

    #[test]
    fn every_single_mutation_is_found(
        scenario in small_scenarios(),
        pick in proptest::collection::vec(0usize..8, 64),
        mutation in proptest::sample::select(vec![
            Mutation::Drop, Mutation::Duplicate, Mutation::Swap, Mutation::Merge,
            Mutation::Cut, Mutation::Truncate, Mutation::Flip,
        ]),
        a in any::<prop::sample::Index>(),
        b in any::<prop::sample::Index>(),
        at in any::<prop::sample::Index>(),
    ) {
        let (mut traces, order) = perfect(&scenario, &pick);
        let n = order.len();
        let nonempty: Vec<usize> = (0..n).filter(|&i| order[i].1 > 0).collect();
        let with_id: Vec<usize> = (0..n).filter(|&i| order[i].1 >= ID_LEN).collect();
        let r = receives(&mut traces);
        let expected = match mutation {
            // A 0-byte message dropped or doubled is still a message.
            Mutation::Drop => {
                let i = a.index(n);
                r.remove(i);
                "Lost"
            }
            Mutation::Duplicate => {
                let i = a.index(n);
                let copy = r[i].clone();
                r.insert(i + 1, copy);
                "Duplicated"
            }
            Mutation::Swap => {
                // Two messages with ids from one producer.
                let pairs: Vec<(usize, usize)> = with_id
                    .iter()
                    .flat_map(|&i| with_id.iter().map(move |&j| (i, j)))
                    .filter(|&(i, j)| i < j && order[i].0.producer == order[j].0.producer)
                    .collect();
                prop_assume!(!pairs.is_empty());
                let (i, j) = pairs[a.index(pairs.len())];
                r.swap(i, j);
                "Reordered"
            }
            Mutation::Merge => {
                let adjacent: Vec<usize> = (0..n.saturating_sub(1))
                    .filter(|&i| order[i].1 > 0 && order[i + 1].1 > 0)
                    .collect();
                prop_assume!(!adjacent.is_empty());
                let i = adjacent[a.index(adjacent.len())];
                let next = r.remove(i + 1);
                r[i].extend(next);
                "Merged"
            }
            Mutation::Cut => {
                let cuttable: Vec<usize> = nonempty.iter().copied().filter(|&i| order[i].1 > 1).collect();
                prop_assume!(!cuttable.is_empty());
                let i = cuttable[a.index(cuttable.len())];
                let k = 1 + at.index(order[i].1 - 1);
                let tail = r[i].split_off(k);
                r.insert(i + 1, tail);
                "Split"
            }
            Mutation::Truncate => {
                prop_assume!(!with_id.is_empty());
                let i = with_id[a.index(with_id.len())];
                let k = ID_LEN + at.index(order[i].1 - ID_LEN);
                prop_assume!(k < order[i].1);
                r[i].truncate(k);
                "Split"
            }
            Mutation::Flip => {
                prop_assume!(!nonempty.is_empty());
                let i = nonempty[a.index(nonempty.len())];
                let len = order[i].1;
                // Past the id (a flipped length field reads as Split or
                // Merged, which is caught too, but is not this mutation).
                let k = if len > ID_LEN { ID_LEN + at.index(len - ID_LEN) } else { at.index(len) };
                r[i][k] ^= 1 << (b.index(8));
                "Corrupted"
            }
        };
        let v = check(&scenario, &traces);
        prop_assert!(
            kinds(&v).contains(&expected),
            "{:?} should give {}, got {:?}",
            mutation,
            expected,
            v.iter().map(|v| v.to_string()).collect::<Vec<_>>()
        );
    }
}

fn one(sizes: &[usize]) -> (Scenario, Traces) {
    let scenario = Scenario::simple(sizes);
    let (traces, _) = perfect(&scenario, &[]);
    (scenario, traces)
}

#[test]
fn each_violation_kind_on_a_hand_made_trace() {
    // Lost and Duplicated, with ids and small.
    let (s, mut t) = one(&[100, 5]);
    receives(&mut t).clear();
    let v = check(&s, &t);
    assert!(v.contains(&Violation::Lost {
        msg: MsgRef::Id(id(0, 0)),
        len: 100
    }));
    assert!(v.contains(&Violation::Lost {
        msg: MsgRef::Small { len: 5 },
        len: 5
    }));

    let (s, mut t) = one(&[100]);
    let m = receives(&mut t)[0].clone();
    receives(&mut t).push(m);
    assert_eq!(
        check(&s, &t),
        vec![Violation::Duplicated {
            msg: MsgRef::Id(id(0, 0)),
            times: 2
        }]
    );

    // Reordered.
    let (s, mut t) = one(&[100, 200]);
    receives(&mut t).swap(0, 1);
    assert_eq!(
        check(&s, &t),
        vec![Violation::Reordered {
            consumer: 0,
            first: id(0, 1),
            then: id(0, 0)
        }]
    );

    // Merged: "Spam 004Spam 000" as the oracle sees it.
    let (s, mut t) = one(&[20, 30]);
    let second = receives(&mut t).remove(1);
    receives(&mut t)[0].extend(second);
    let v = check(&s, &t);
    assert_eq!(kinds(&v), vec!["Merged"], "{v:?}");
    assert_eq!(
        v[0].to_string(),
        "Merged: consumer 0's receive #0 returned 2 messages glued together: p0#0 (20 bytes) + p0#1 (30 bytes)"
    );

    // Split, and its rest in the next receive: delivered once, boundaries broken.
    let (s, mut t) = one(&[100]);
    let tail = receives(&mut t)[0].split_off(32);
    receives(&mut t).push(tail);
    let v = check(&s, &t);
    assert_eq!(kinds(&v), vec!["Split"], "{v:?}");
    assert!(
        v[0].to_string()
            .contains("only 32 of the 100 bytes of p0#0")
    );

    // Corrupted: a flipped byte, and bytes from nowhere.
    let (s, mut t) = one(&[100]);
    receives(&mut t)[0][50] ^= 0x10;
    assert!(kinds(&check(&s, &t)).contains(&"Corrupted"));
    let (s, mut t) = one(&[100]);
    receives(&mut t).push(payload::make(id(3, 9), 40));
    assert!(kinds(&check(&s, &t)).contains(&"Corrupted"));

    // Hang, ChildFailed, UnexpectedError.
    let (s, mut t) = one(&[10]);
    t.consumers[0].as_mut().unwrap().end = StreamEnd::Timeout;
    assert_eq!(kinds(&check(&s, &t)), vec!["Hang"]);
    let (s, mut t) = one(&[10]);
    t.consumers[0] = Err(Failure::Hung(Some("read(fd 5) [pipe_read]".into())));
    let v = check(&s, &t);
    assert!(
        v[0].to_string().contains("blocked in read(fd 5)"),
        "{}",
        v[0]
    );
    let (s, mut t) = one(&[10]);
    t.producers[0] = Err(Failure::Crashed("panicked: boom".into()));
    assert!(kinds(&check(&s, &t)).contains(&"ChildFailed"));
    let (s, mut t) = one(&[10]);
    t.consumers[0].as_mut().unwrap().end = StreamEnd::Error("corrupt stream".into());
    assert_eq!(kinds(&check(&s, &t)), vec!["UnexpectedError"]);
}

// ---------------------------------------------------------------------------
// Under faults: what a kill excuses, and what it does not
// ---------------------------------------------------------------------------

mod under_faults {
    use super::*;
    use ipc_harness::harness::channel::Promises;
    use ipc_harness::harness::check::judge;
    use ipc_harness::harness::trace::Fate;

    const QUEUE: Promises = Promises::MESSAGES.sends_block_without_consumers();
    const PIPE: Promises = Promises::MESSAGES.single_producer().single_consumer();

    /// One producer whose sends of `len` bytes ended as `outcomes`, and
    /// consumers that received the listed sequence numbers and ended so.
    fn traces(
        len: usize,
        outcomes: &[SendOutcome],
        fate: Fate,
        consumers: &[(&[u32], StreamEnd)],
    ) -> (Scenario, Traces) {
        let scenario = Scenario::simple(&vec![len; outcomes.len()]);
        let sends = outcomes
            .iter()
            .enumerate()
            .map(|(seq, o)| SendRecord {
                seq: seq as u32,
                len,
                outcome: o.clone(),
            })
            .collect();
        let producers = vec![Ok(ProducerTrace {
            producer: 0,
            sends,
            fate,
            ..ProducerTrace::default()
        })];
        let consumers = consumers
            .iter()
            .enumerate()
            .map(|(c, (seqs, end))| {
                let mut t = ConsumerTrace::new(c as u16, end.clone());
                t.receives = seqs.iter().map(|&s| payload::make(id(0, s), len)).collect();
                Ok(t)
            })
            .collect();
        (
            Scenario {
                consumers: outcomes.len(),
                ..scenario
            },
            Traces {
                producers,
                consumers,
            },
        )
    }

    use SendOutcome::{Closed, Cut, Ok as Acked};

    #[test]
    fn an_acked_send_of_a_killed_producer_must_still_arrive() {
        let (s, t) = traces(
            40,
            &[Acked, Acked, Cut],
            Fate::Killed,
            &[(&[0], StreamEnd::Closed)],
        );
        let j = judge(&s, &QUEUE, &t);
        assert_eq!(kinds(&j.violations), vec!["Lost"], "{:?}", j.violations);
        assert_eq!((j.accounting.ok, j.accounting.lost), (1, 1));
        assert_eq!(j.accounting.indeterminate_lost, 1);
        assert_eq!(j.accounting.killed, 1);
    }

    #[test]
    fn a_cut_send_may_arrive_once_but_not_twice() {
        let once = traces(
            40,
            &[Acked, Cut],
            Fate::Killed,
            &[(&[0, 1], StreamEnd::Closed)],
        );
        let j = judge(&once.0, &QUEUE, &once.1);
        assert_eq!(j.violations, vec![]);
        assert_eq!((j.accounting.ok, j.accounting.recovered), (1, 1));
        let twice = traces(
            40,
            &[Acked, Cut],
            Fate::Killed,
            &[(&[0, 1, 1], StreamEnd::Closed)],
        );
        let j = judge(&twice.0, &QUEUE, &twice.1);
        assert_eq!(kinds(&j.violations), vec!["Duplicated"]);
        // A send that was never started cannot arrive at all.
        let ghost = traces(40, &[Acked], Fate::Killed, &[(&[0, 1], StreamEnd::Closed)]);
        let j = judge(&ghost.0, &QUEUE, &ghost.1);
        assert_eq!(kinds(&j.violations), vec!["Corrupted"]);
        assert_eq!(j.accounting.unexpected, 1);
    }

    #[test]
    fn a_killed_consumer_of_a_queue_takes_at_most_one_message_with_it() {
        let consumers: [(&[u32], StreamEnd); 2] =
            [(&[0], StreamEnd::Killed), (&[1], StreamEnd::Closed)];
        let (s, t) = traces(40, &[Acked, Acked, Acked], Fate::Finished, &consumers);
        let j = judge(&s, &QUEUE, &t);
        assert_eq!(j.violations, vec![]);
        assert_eq!((j.accounting.lost, j.accounting.lost_to_faults), (1, 1));
        let (s, t) = traces(
            40,
            &[Acked, Acked, Acked, Acked],
            Fate::Finished,
            &consumers,
        );
        let j = judge(&s, &QUEUE, &t);
        assert_eq!(kinds(&j.violations), vec!["Lost"]);
        assert_eq!((j.accounting.lost, j.accounting.lost_to_faults), (2, 1));
        // One that closed its end between messages takes nothing.
        let closed: [(&[u32], StreamEnd); 2] =
            [(&[0], StreamEnd::ClosedEarly), (&[1], StreamEnd::Closed)];
        let (s, t) = traces(40, &[Acked, Acked, Acked], Fate::Finished, &closed);
        assert_eq!(kinds(&judge(&s, &QUEUE, &t).violations), vec!["Lost"]);
    }

    #[test]
    fn a_pipe_dies_with_its_only_consumer_and_then_refuses_sends() {
        let (s, t) = traces(
            40,
            &[Acked, Acked, Acked, Closed],
            Fate::Finished,
            &[(&[0], StreamEnd::Killed)],
        );
        let j = judge(&s, &PIPE, &t);
        assert_eq!(j.violations, vec![]);
        assert_eq!(j.accounting.lost_to_faults, 2);
        assert_eq!(j.accounting.refused, 1);
        // While a consumer is alive, Closed is an error.
        let (s, t) = traces(
            40,
            &[Acked, Closed],
            Fate::Finished,
            &[(&[0], StreamEnd::Closed)],
        );
        assert_eq!(
            kinds(&judge(&s, &PIPE, &t).violations),
            vec!["UnexpectedError"]
        );
    }

    #[test]
    fn a_torn_frame_is_expected_only_where_a_dead_writer_can_tear_one() {
        let broken = StreamEnd::Broken("the stream ended 10 bytes into a message".into());
        let (s, t) = traces(40, &[Acked, Cut], Fate::Killed, &[(&[0], broken)]);
        assert_eq!(judge(&s, &PIPE, &t).violations, vec![]);
        assert_eq!(
            kinds(&judge(&s, &QUEUE, &t).violations),
            vec!["UnexpectedError"]
        );
        // Without a killed producer, a torn frame is a bug everywhere.
        let mut t = t;
        if let Ok(p) = &mut t.producers[0] {
            p.fate = Fate::Finished;
            p.sends.pop();
        }
        assert_eq!(
            kinds(&judge(&s, &PIPE, &t).violations),
            vec!["UnexpectedError"]
        );
    }
}

// ---------------------------------------------------------------------------
// Exact figures: every field of the accounting and of each violation
// ---------------------------------------------------------------------------

mod figures {
    use super::*;
    use ipc_harness::harness::channel::{Promises, Property};
    use ipc_harness::harness::check::{Accounting, judge};
    use ipc_harness::harness::trace::{Fate, TaskTrace};

    const PIPE: Promises = Promises::MESSAGES.single_producer().single_consumer();

    fn acked(sizes: &[usize]) -> Vec<(usize, SendOutcome)> {
        sizes.iter().map(|&len| (len, SendOutcome::Ok)).collect()
    }

    /// One producer whose sends (length, outcome) ended so, and one
    /// consumer per entry of `consumers`, with the receives given.
    fn run(
        sends: &[(usize, SendOutcome)],
        consumers: Vec<(Vec<Vec<u8>>, StreamEnd)>,
    ) -> (Scenario, Traces) {
        let sizes: Vec<usize> = sends.iter().map(|s| s.0).collect();
        let producer = ProducerTrace {
            producer: 0,
            sends: sends
                .iter()
                .enumerate()
                .map(|(seq, (len, outcome))| SendRecord {
                    seq: seq as u32,
                    len: *len,
                    outcome: outcome.clone(),
                })
                .collect(),
            ..ProducerTrace::default()
        };
        let consumers = consumers
            .into_iter()
            .enumerate()
            .map(|(c, (receives, end))| {
                let mut t = ConsumerTrace::new(c as u16, end);
                t.receives = receives;
                Ok(t)
            })
            .collect();
        let traces = Traces {
            producers: vec![Ok(producer)],
            consumers,
        };
        (Scenario::simple(&sizes), traces)
    }

    fn msg(seq: u32, len: usize) -> Vec<u8> {
        payload::make(id(0, seq), len)
    }

    fn counts(f: impl FnOnce(&mut Accounting)) -> Accounting {
        let mut a = Accounting::default();
        f(&mut a);
        a
    }

    #[test]
    fn accounting_adds_up_field_by_field() {
        let a = Accounting {
            attempted: 3,
            ok: 4,
            lost: 5,
            lost_to_faults: 6,
            recovered: 7,
            indeterminate_lost: 8,
            duplicated: 9,
            unexpected: 10,
            refused: 11,
            killed: 12,
            stopped: 13,
            closed_early: 14,
            storm_signals: 15,
        };
        let mut sum = a;
        sum.add(&a);
        assert_eq!(
            sum,
            Accounting {
                attempted: 6,
                ok: 8,
                lost: 10,
                lost_to_faults: 12,
                recovered: 14,
                indeterminate_lost: 16,
                duplicated: 18,
                unexpected: 20,
                refused: 22,
                killed: 24,
                stopped: 26,
                closed_early: 28,
                storm_signals: 30,
            }
        );
        let faults = counts(|a| {
            a.killed = 1;
            a.stopped = 3;
            a.storm_signals = 5;
        });
        assert_eq!(faults.signals(), 12);
        assert_eq!(faults.fraction(5), 0.0, "no sends attempted");
        let four = counts(|a| a.attempted = 4);
        assert_eq!(four.fraction(1), 0.25);
        assert_eq!(four.fraction(3), 0.75);
    }

    #[test]
    fn accounting_prints_every_figure() {
        let a = Accounting {
            attempted: 8,
            ok: 4,
            lost: 2,
            lost_to_faults: 1,
            recovered: 1,
            indeterminate_lost: 1,
            duplicated: 3,
            unexpected: 5,
            refused: 6,
            killed: 7,
            stopped: 9,
            closed_early: 10,
            storm_signals: 11,
        };
        assert_eq!(
            a.to_string(),
            "sends 8: ok 4 (50.0%), lost 2 (25.0%, 1 to faults), recovered 1 (12.5%), \
             indeterminate and lost 1 (12.5%, 6 refused), duplicated 3, unexpected 5; \
             faults: 7 killed, 9 stopped, 10 closed early, 11 storm signals"
        );
    }

    #[test]
    fn every_violation_has_its_kind_property_and_words() {
        let p = id(1, 2);
        let q = id(1, 1);
        let cases = [
            (
                Violation::Lost {
                    msg: MsgRef::Id(p),
                    len: 40,
                },
                "Lost",
                Property::ExactlyOnce,
                "Lost: p1#2 (40 bytes) was sent successfully but never received",
            ),
            (
                Violation::Duplicated {
                    msg: MsgRef::Small { len: 5 },
                    times: 3,
                },
                "Duplicated",
                Property::ExactlyOnce,
                "Duplicated: a 5-byte message was received 3 times",
            ),
            (
                Violation::Reordered {
                    consumer: 2,
                    first: p,
                    then: q,
                },
                "Reordered",
                Property::Order,
                "Reordered: consumer 2 received p1#2 before p1#1, but producer 1 sent p1#1 first",
            ),
            (
                Violation::Merged {
                    consumer: 1,
                    receive: 4,
                    parts: vec!["a".into(), "b".into(), "c".into()],
                },
                "Merged",
                Property::Boundaries,
                "Merged: consumer 1's receive #4 returned 3 messages glued together: a + b + c",
            ),
            (
                Violation::Split {
                    consumer: 1,
                    receive: 4,
                    msg: MsgRef::Id(p),
                    got: 7,
                    len: 40,
                },
                "Split",
                Property::Boundaries,
                "Split: consumer 1's receive #4 returned only 7 of the 40 bytes of p1#2",
            ),
            (
                Violation::Corrupted {
                    consumer: 3,
                    receive: 0,
                    why: "why".into(),
                },
                "Corrupted",
                Property::Integrity,
                "Corrupted: consumer 3's receive #0: why",
            ),
            (
                Violation::Hang {
                    process: "producer 0".into(),
                    phase: "hung".into(),
                },
                "Hang",
                Property::Liveness,
                "Hang: producer 0 hung",
            ),
            (
                Violation::ChildFailed {
                    process: "consumer 1".into(),
                    outcome: "exited 3".into(),
                },
                "ChildFailed",
                Property::Liveness,
                "ChildFailed: consumer 1 exited 3",
            ),
            (
                Violation::UnexpectedError {
                    process: "producer 1".into(),
                    operation: "send #3".into(),
                    error: "boom".into(),
                },
                "UnexpectedError",
                Property::Liveness,
                "UnexpectedError: producer 1: send #3 failed: boom",
            ),
            (
                Violation::TaskAccounting {
                    consumer: 0,
                    what: "did".into(),
                },
                "TaskAccounting",
                Property::TaskAccounting,
                "TaskAccounting: consumer 0 did",
            ),
        ];
        for (v, kind, property, words) in cases {
            assert_eq!((v.kind(), v.property()), (kind, property), "{v:?}");
            assert_eq!(v.to_string(), words);
        }
    }

    #[test]
    fn a_perfect_delivery_around_the_id_length_is_all_ok() {
        let sizes = [0, 1, ID_LEN - 1, ID_LEN, ID_LEN + 1, 300];
        let receives = sizes
            .iter()
            .enumerate()
            .map(|(s, &len)| msg(s as u32, len))
            .collect();
        let (s, t) = run(&acked(&sizes), vec![(receives, StreamEnd::Closed)]);
        let j = judge(&s, &Promises::MESSAGES, &t);
        assert_eq!(j.violations, vec![]);
        assert_eq!(
            j.accounting,
            counts(|a| {
                a.attempted = 6;
                a.ok = 6;
            })
        );
    }

    #[test]
    fn what_the_faults_did_is_counted_per_process() {
        let producer = |p: u16, fate, stops, storm_signals| {
            Ok(ProducerTrace {
                producer: p,
                sends: vec![SendRecord {
                    seq: 0,
                    len: 40,
                    outcome: SendOutcome::Cut,
                }],
                fate,
                stops,
                storm_signals,
            })
        };
        let consumer = |c: u16, end, stops, storm_signals| {
            let mut t = ConsumerTrace::new(c, end);
            t.stops = stops;
            t.storm_signals = storm_signals;
            Ok(t)
        };
        let traces = Traces {
            producers: vec![
                producer(0, Fate::Killed, 1, 2),
                producer(1, Fate::ClosedEarly, 3, 4),
                producer(2, Fate::Killed, 0, 0),
                producer(3, Fate::Finished, 0, 0),
            ],
            consumers: vec![
                consumer(0, StreamEnd::Killed, 5, 6),
                consumer(1, StreamEnd::ClosedEarly, 7, 8),
                consumer(2, StreamEnd::ClosedEarly, 0, 0),
            ],
        };
        let mut scenario = Scenario::simple(&[40]);
        scenario.producers = vec![scenario.producers[0].clone(); 4];
        scenario.consumers = 3;
        // Every consumer gone: nothing is owed, and the torn stream of a
        // byte stream shared by writers is expected.
        let promises = Promises::MESSAGES.torn_by_dead_writer();
        let j = judge(&scenario, &promises, &traces);
        assert_eq!(j.violations, vec![]);
        assert_eq!(
            j.accounting,
            Accounting {
                attempted: 4,
                indeterminate_lost: 4,
                killed: 3,
                stopped: 16,
                closed_early: 3,
                storm_signals: 20,
                ..Accounting::default()
            }
        );
    }

    #[test]
    fn two_killed_producers_still_explain_a_torn_frame() {
        let traces = |fates: [Fate; 2]| Traces {
            producers: fates
                .iter()
                .enumerate()
                .map(|(p, &fate)| {
                    Ok(ProducerTrace {
                        producer: p as u16,
                        fate,
                        ..ProducerTrace::default()
                    })
                })
                .collect(),
            consumers: vec![Ok(ConsumerTrace::new(0, StreamEnd::Broken("torn".into())))],
        };
        let promises = Promises::MESSAGES.torn_by_dead_writer();
        let s = Scenario::simple(&[]);
        let both = judge(&s, &promises, &traces([Fate::Killed, Fate::Killed]));
        assert_eq!(both.violations, vec![]);
        assert_eq!(both.accounting.killed, 2);
        let neither = judge(&s, &promises, &traces([Fate::Finished, Fate::Finished]));
        assert_eq!(
            neither.violations,
            vec![Violation::UnexpectedError {
                process: "consumer 0".into(),
                operation: "receive".into(),
                error: "torn".into(),
            }]
        );
    }

    #[test]
    fn a_closed_send_with_no_consumer_at_all_is_an_error() {
        // No consumer was ever there, so none was removed by a fault.
        let (s, mut t) = run(&[(40, SendOutcome::Closed)], vec![]);
        t.consumers.clear();
        let j = judge(&s, &PIPE, &t);
        assert_eq!(
            j.violations,
            vec![Violation::UnexpectedError {
                process: "producer 0".into(),
                operation: "send #0 (40 bytes)".into(),
                error: ipc_harness::Error::Closed.to_string(),
            }]
        );
        assert_eq!(
            j.accounting,
            counts(|a| {
                a.attempted = 1;
                a.refused = 1;
                a.indeterminate_lost = 1;
            })
        );
    }

    #[test]
    fn a_single_consumer_channel_owes_everything_while_its_consumer_lives() {
        let (s, t) = run(
            &acked(&[40, 50]),
            vec![(vec![msg(0, 40)], StreamEnd::Closed)],
        );
        let j = judge(&s, &PIPE, &t);
        assert_eq!(
            j.violations,
            vec![Violation::Lost {
                msg: MsgRef::Id(id(0, 1)),
                len: 50
            }]
        );
        assert_eq!(
            j.accounting,
            counts(|a| {
                a.attempted = 2;
                a.ok = 1;
                a.lost = 1;
            })
        );
        // Killed, it takes everything it had not received with it.
        let (s, t) = run(
            &acked(&[40, 50, 60]),
            vec![(vec![msg(0, 40)], StreamEnd::Killed)],
        );
        let j = judge(&s, &PIPE, &t);
        assert_eq!(j.violations, vec![]);
        assert_eq!(
            j.accounting,
            counts(|a| {
                a.attempted = 3;
                a.ok = 1;
                a.lost = 2;
                a.lost_to_faults = 2;
                a.killed = 1;
            })
        );
    }

    #[test]
    fn two_killed_consumers_excuse_two_losses_and_no_more() {
        let two_killed = |n: usize| {
            let sends = acked(&vec![40; n]);
            run(
                &sends,
                vec![
                    (vec![], StreamEnd::Killed),
                    (vec![], StreamEnd::Killed),
                    (vec![msg(0, 40)], StreamEnd::Closed),
                ],
            )
        };
        let (s, t) = two_killed(3);
        let j = judge(&s, &Promises::MESSAGES, &t);
        assert_eq!(j.violations, vec![]);
        assert_eq!(
            j.accounting,
            counts(|a| {
                a.attempted = 3;
                a.ok = 1;
                a.lost = 2;
                a.lost_to_faults = 2;
                a.killed = 2;
            })
        );
        let (s, t) = two_killed(4);
        let j = judge(&s, &Promises::MESSAGES, &t);
        assert_eq!(
            j.violations,
            vec![Violation::Lost {
                msg: MsgRef::Id(id(0, 3)),
                len: 40
            }]
        );
        assert_eq!((j.accounting.lost, j.accounting.lost_to_faults), (3, 2));
    }

    #[test]
    fn duplicates_are_counted_once_per_message() {
        let sends = [(40, SendOutcome::Ok), (40, SendOutcome::Cut)];
        let receives = vec![msg(0, 40), msg(0, 40), msg(0, 40), msg(1, 40), msg(1, 40)];
        let (s, t) = run(&sends, vec![(receives, StreamEnd::Closed)]);
        let j = judge(&s, &Promises::MESSAGES, &t);
        assert_eq!(
            j.violations,
            vec![
                Violation::Duplicated {
                    msg: MsgRef::Id(id(0, 0)),
                    times: 3
                },
                Violation::Duplicated {
                    msg: MsgRef::Id(id(0, 1)),
                    times: 2
                },
            ]
        );
        assert_eq!(
            j.accounting,
            counts(|a| {
                a.attempted = 2;
                a.duplicated = 2;
            })
        );
    }

    /// Short messages of one length: `sure` acked, `maybe` cut, `got` received,
    /// after one 40-byte message acked and received.
    fn small(sure: usize, maybe: usize, got: usize) -> (Vec<Violation>, Accounting) {
        let mut sends = vec![(40, SendOutcome::Ok)];
        sends.extend((0..sure).map(|_| (5, SendOutcome::Ok)));
        sends.extend((0..maybe).map(|_| (5, SendOutcome::Cut)));
        let mut receives = vec![msg(0, 40)];
        receives.extend((0..got).map(|_| msg(1, 5)));
        let (s, t) = run(&sends, vec![(receives, StreamEnd::Closed)]);
        let j = judge(&s, &Promises::MESSAGES, &t);
        (j.violations, j.accounting)
    }

    #[test]
    fn short_messages_are_judged_by_length() {
        let five = MsgRef::Small { len: 5 };
        let lost = Violation::Lost { msg: five, len: 5 };
        // Fewer than sure: the missing ones lost, the maybe ones too.
        let (v, a) = small(3, 1, 1);
        assert_eq!(v, vec![lost.clone(), lost]);
        assert_eq!(
            a,
            counts(|a| {
                a.attempted = 5;
                a.ok = 2;
                a.lost = 2;
                a.indeterminate_lost = 1;
            })
        );
        // More than were sent at all: duplicated.
        let (v, a) = small(1, 2, 6);
        assert_eq!(
            v,
            vec![Violation::Duplicated {
                msg: five,
                times: 4
            }]
        );
        assert_eq!(
            a,
            counts(|a| {
                a.attempted = 4;
                a.ok = 2;
                a.recovered = 2;
                a.duplicated = 3;
            })
        );
        // In between: the sure ones and some maybe ones arrived.
        for (got, recovered) in [(2, 1), (3, 2), (1, 0)] {
            let (v, a) = small(1, 2, got);
            assert_eq!(v, vec![], "{got} received");
            assert_eq!(
                a,
                counts(|a| {
                    a.attempted = 4;
                    a.ok = 2;
                    a.recovered = recovered;
                    a.indeterminate_lost = 2 - recovered;
                }),
                "{got} received"
            );
        }
    }

    #[test]
    fn a_failed_send_and_a_failed_producer_name_themselves() {
        let sends = [
            (40, SendOutcome::Ok),
            (50, SendOutcome::Failed("boom".into())),
        ];
        let (s, t) = run(&sends, vec![(vec![msg(0, 40)], StreamEnd::Closed)]);
        let j = judge(&s, &Promises::MESSAGES, &t);
        assert_eq!(
            j.violations,
            vec![Violation::UnexpectedError {
                process: "producer 0".into(),
                operation: "send #1 (50 bytes)".into(),
                error: "boom".into(),
            }]
        );
        assert_eq!(
            j.accounting,
            counts(|a| {
                a.attempted = 2;
                a.ok = 1;
                a.indeterminate_lost = 1;
            })
        );
        // A producer that crashed: any of its planned sends may have happened.
        let (s, mut t) = run(&acked(&[40, 50, 60]), vec![]);
        t.producers[0] = Err(Failure::Crashed("exited with 3".into()));
        t.consumers = vec![Ok(ConsumerTrace {
            receives: vec![msg(1, 50)],
            ..ConsumerTrace::new(0, StreamEnd::Closed)
        })];
        let j = judge(&s, &Promises::MESSAGES, &t);
        assert_eq!(
            j.violations,
            vec![Violation::ChildFailed {
                process: "producer 0".into(),
                outcome: "exited with 3 while sending".into(),
            }]
        );
        assert_eq!(
            j.accounting,
            counts(|a| {
                a.attempted = 3;
                a.recovered = 1;
                a.indeterminate_lost = 2;
            })
        );
    }

    #[test]
    fn hangs_say_where_and_how_they_were_ended() {
        let (s, mut t) = run(&acked(&[]), vec![]);
        t.producers[0] = Err(Failure::Hung(None));
        t.consumers = vec![
            Err(Failure::Stalled(Some("read(fd 5)".into()))),
            Ok(ConsumerTrace::new(1, StreamEnd::Timeout)),
            Ok(ConsumerTrace::new(
                2,
                StreamEnd::Hung {
                    blocked_in: None,
                    stalled: true,
                },
            )),
            Ok(ConsumerTrace::new(
                3,
                StreamEnd::Hung {
                    blocked_in: Some("poll".into()),
                    stalled: false,
                },
            )),
            Ok(ConsumerTrace::new(4, StreamEnd::Error("bad".into()))),
        ];
        let hang = |process: &str, phase: &str| Violation::Hang {
            process: process.into(),
            phase: phase.into(),
        };
        let stalled =
            "was killed once every process of the scenario had been blocked with no progress";
        assert_eq!(
            judge(&s, &Promises::MESSAGES, &t).violations,
            vec![
                hang(
                    "producer 0",
                    "hung while sending and was killed at the deadline"
                ),
                hang(
                    "consumer 0",
                    &format!("hung while receiving, blocked in read(fd 5), and {stalled}")
                ),
                hang(
                    "consumer 1",
                    "was still waiting for a message or the end of stream at the deadline"
                ),
                hang("consumer 2", &format!("hung while receiving and {stalled}")),
                hang(
                    "consumer 3",
                    "hung while receiving, blocked in poll, and was killed at the deadline"
                ),
                Violation::UnexpectedError {
                    process: "consumer 4".into(),
                    operation: "receive".into(),
                    error: "bad".into(),
                },
            ]
        );
        t.consumers = vec![Err(Failure::Crashed("panicked: boom".into()))];
        assert_eq!(
            judge(&s, &Promises::MESSAGES, &t).violations[1],
            Violation::ChildFailed {
                process: "consumer 0".into(),
                outcome: "panicked: boom while receiving".into(),
            }
        );
    }

    #[test]
    fn task_accounting_names_each_breach() {
        let (s, mut t) = run(&acked(&[40, 50]), vec![]);
        let consumer = |tasks| {
            Ok(ConsumerTrace {
                receives: vec![msg(0, 40), msg(1, 50)],
                tasks: Some(tasks),
                ..ConsumerTrace::new(1, StreamEnd::Closed)
            })
        };
        // As many done as gets, joins at zero: fine.
        t.consumers = vec![Ok(ConsumerTrace::new(0, StreamEnd::Closed))];
        t.consumers.push(consumer(TaskTrace {
            done: 2,
            joins: vec![0, 0],
            ..TaskTrace::default()
        }));
        assert_eq!(judge(&s, &Promises::MESSAGES, &t).violations, vec![]);
        t.consumers[1] = consumer(TaskTrace {
            done: 3,
            refused: vec!["e1".into()],
            joins: vec![0, 2],
            join_errors: vec!["j1".into()],
        });
        let task = |what: &str| Violation::TaskAccounting {
            consumer: 1,
            what: what.into(),
        };
        assert_eq!(
            judge(&s, &Promises::MESSAGES, &t).violations,
            vec![
                task("marked 3 tasks done after only 2 gets"),
                task("had task_done refused with a task taken and not done: e1"),
                task("saw a join return while 2 task(s) were unfinished"),
                task("joined and the join did not return: j1"),
            ]
        );
    }

    fn judged(sizes: &[usize], receives: Vec<Vec<u8>>) -> (Vec<Violation>, Accounting) {
        let (s, t) = run(&acked(sizes), vec![(receives, StreamEnd::Closed)]);
        let j = judge(&s, &Promises::MESSAGES, &t);
        (j.violations, j.accounting)
    }

    fn ok(n: u64) -> Accounting {
        counts(|a| {
            a.attempted = n;
            a.ok = n;
        })
    }

    fn split(receive: usize, msg: MsgRef, got: usize, len: usize) -> Violation {
        Violation::Split {
            consumer: 0,
            receive,
            msg,
            got,
            len,
        }
    }

    fn merged(receive: usize, parts: &[&str]) -> Violation {
        Violation::Merged {
            consumer: 0,
            receive,
            parts: parts.iter().map(|p| p.to_string()).collect(),
        }
    }

    #[test]
    fn a_message_split_across_receives_is_delivered_once() {
        let a = msg(1, 100);
        let first = MsgRef::Id(id(0, 1));
        // In two receives.
        let (v, acc) = judged(
            &[40, 100],
            vec![msg(0, 40), a[..32].to_vec(), a[32..].to_vec()],
        );
        assert_eq!(v, vec![split(1, first, 32, 100)]);
        assert_eq!(acc, ok(2));
        // In three.
        let (v, acc) = judged(
            &[40, 100],
            vec![
                msg(0, 40),
                a[..30].to_vec(),
                a[30..60].to_vec(),
                a[60..].to_vec(),
            ],
        );
        assert_eq!(v, vec![split(1, first, 30, 100)]);
        assert_eq!(acc, ok(2));
        // Its rest glued to the next message.
        let rest_and_next = [&a[30..], &msg(2, 40)[..]].concat();
        let (v, acc) = judged(
            &[40, 100, 40],
            vec![msg(0, 40), a[..30].to_vec(), rest_and_next],
        );
        assert_eq!(
            v,
            vec![
                split(1, first, 30, 100),
                merged(2, &["the last 70 bytes of p0#1", "p0#2 (40 bytes)"]),
            ]
        );
        assert_eq!(acc, ok(3));
        // Its rest never came: lost.
        let (v, acc) = judged(&[100, 40], vec![msg(0, 100)[..50].to_vec(), msg(1, 40)]);
        assert_eq!(
            v,
            vec![
                split(0, MsgRef::Id(id(0, 0)), 50, 100),
                Violation::Lost {
                    msg: MsgRef::Id(id(0, 0)),
                    len: 100
                }
            ]
        );
        assert_eq!(
            acc,
            counts(|a| {
                a.attempted = 2;
                a.ok = 1;
                a.lost = 1;
            })
        );
    }

    #[test]
    fn a_message_cut_inside_its_id_is_carried_to_the_next_receive() {
        let a = msg(1, 100);
        let first = MsgRef::Id(id(0, 1));
        for cut in [1, 2, 5, ID_LEN - 1] {
            let (v, acc) = judged(
                &[40, 100],
                vec![msg(0, 40), a[..cut].to_vec(), a[cut..].to_vec()],
            );
            assert_eq!(v, vec![split(1, first, cut, 100)], "cut at {cut}");
            assert_eq!(acc, ok(2), "cut at {cut}");
        }
        // The rest split again.
        let (v, acc) = judged(
            &[40, 100],
            vec![
                msg(0, 40),
                a[..5].to_vec(),
                a[5..50].to_vec(),
                a[50..].to_vec(),
            ],
        );
        assert_eq!(v, vec![split(1, first, 5, 100)]);
        assert_eq!(acc, ok(2));
        // The rest glued to the next message.
        let rest_and_next = [&a[5..], &msg(2, 40)[..]].concat();
        let (v, acc) = judged(
            &[40, 100, 40],
            vec![msg(0, 40), a[..5].to_vec(), rest_and_next],
        );
        assert_eq!(
            v,
            vec![
                split(1, first, 5, 100),
                merged(2, &["the last 95 bytes of p0#1", "p0#2 (40 bytes)"]),
            ]
        );
        assert_eq!(acc, ok(3));
        // A short message cut in two.
        let short = msg(0, 10);
        let (v, acc) = judged(
            &[40, 10],
            vec![msg(0, 40), short[..4].to_vec(), short[4..].to_vec()],
        );
        assert_eq!(v, vec![split(1, MsgRef::Small { len: 10 }, 4, 10)]);
        assert_eq!(acc, ok(2));
    }

    #[test]
    fn a_stream_that_ends_inside_an_id_is_corrupt() {
        let a = msg(1, 100);
        let (v, acc) = judged(&[40, 100], vec![msg(0, 40), a[..5].to_vec()]);
        assert_eq!(
            v,
            vec![
                Violation::Corrupted {
                    consumer: 0,
                    receive: 1,
                    why: "the stream ended 5 bytes into a message".into(),
                },
                Violation::Lost {
                    msg: MsgRef::Id(id(0, 1)),
                    len: 100
                },
            ]
        );
        assert_eq!(
            acc,
            counts(|a| {
                a.attempted = 2;
                a.ok = 1;
                a.lost = 1;
            })
        );
    }

    #[test]
    fn glued_receives_name_every_part() {
        let a = msg(0, 100);
        let five = msg(1, 5);
        // A short message, then one with an id.
        let (v, acc) = judged(&[100, 5], vec![[&five[..], &a[..]].concat()]);
        assert_eq!(
            v,
            vec![merged(
                0,
                &["a 5-byte message (5 bytes)", "p0#0 (100 bytes)"]
            )]
        );
        assert_eq!(acc, ok(2));
        // Two short ones.
        let (v, acc) = judged(&[3, 4], vec![[&msg(0, 3)[..], &msg(1, 4)[..]].concat()]);
        assert_eq!(
            v,
            vec![merged(
                0,
                &["a 3-byte message (3 bytes)", "a 4-byte message (4 bytes)"]
            )]
        );
        assert_eq!(acc, ok(2));
        // A message, then bytes from nowhere.
        let (v, _) = judged(&[100], vec![[&a[..], b"xyz"].concat()]);
        let garbage = "3 bytes that are not the start of any message";
        assert_eq!(
            v,
            vec![
                merged(0, &["p0#0 (100 bytes)", &format!("garbage ({garbage})")]),
                Violation::Corrupted {
                    consumer: 0,
                    receive: 0,
                    why: garbage.into()
                },
            ]
        );
        // A message and the first bytes of the next, which never came whole.
        let (v, _) = judged(&[100, 40], vec![[&a[..], &msg(1, 40)[..6]].concat()]);
        assert_eq!(
            v,
            vec![
                merged(0, &["p0#0 (100 bytes)", "the first 6 bytes of a message"]),
                Violation::Corrupted {
                    consumer: 0,
                    receive: 0,
                    why: "the stream ended 6 bytes into a message".into()
                },
                Violation::Lost {
                    msg: MsgRef::Id(id(0, 1)),
                    len: 40
                },
            ]
        );
        // A message and the first part of the next.
        let b = msg(1, 40);
        let (v, acc) = judged(
            &[100, 40],
            vec![[&a[..], &b[..20]].concat(), b[20..].to_vec()],
        );
        assert_eq!(
            v,
            vec![
                merged(0, &["p0#0 (100 bytes)", "the first 20 of 40 bytes of p0#1"]),
                split(0, MsgRef::Id(id(0, 1)), 20, 40),
            ]
        );
        assert_eq!(acc, ok(2));
    }

    #[test]
    fn an_empty_receive_is_a_zero_byte_message_and_foreign_bytes_are_corrupt() {
        let (v, acc) = judged(&[0, 40], vec![vec![], msg(1, 40)]);
        assert_eq!(v, vec![]);
        assert_eq!(acc, ok(2));
        let (v, acc) = judged(
            &[40],
            vec![msg(0, 40), b"xyz".to_vec(), payload::make(id(3, 9), 20)],
        );
        assert_eq!(
            v,
            vec![
                Violation::Corrupted {
                    consumer: 0,
                    receive: 1,
                    why: "3 bytes that are not the start of any message".into()
                },
                Violation::Corrupted {
                    consumer: 0,
                    receive: 2,
                    why: "p3#9 was never sent".into()
                },
            ]
        );
        assert_eq!(
            acc,
            counts(|a| {
                a.attempted = 1;
                a.ok = 1;
                a.unexpected = 1;
            })
        );
    }
}
