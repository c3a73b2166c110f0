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
