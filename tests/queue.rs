//! `Queue` across forked processes: CPython's `_TestQueue` cases that apply,
//! a property test over producers x consumers x sizes x pacing, kill tests at
//! every named kill point, and the racing-readers pitfall caught.
//!
//! Every test holds `fork::serial()` for its whole body (the forking ones
//! for the fork rules, the others because the leak test counts fds and
//! shared mappings); children
//! never print, they return bytes (what they received, encoded with the
//! crate's codec).

use std::collections::{BTreeMap, HashMap};
use std::os::fd::{AsFd, OwnedFd};
use std::time::{Duration, Instant};

use ipc_harness::Error;
use ipc_harness::codec::{decode_value, encode_value};
use ipc_harness::harness::fork::{self, Outcome};
use ipc_harness::harness::payload::{ID_LEN, MsgId, Verdict, make, verify};
use ipc_harness::harness::sizes::{boundary_sizes, size_plan};
use ipc_harness::queue::{KillPoint, Queue, set_kill_point};
use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;

const WAIT: Duration = Duration::from_secs(30);

/// What a consumer saw, one entry per get: (kind, producer, seq, len).
/// kind 0: a whole identified message; 1: a whole short message of `len`;
/// 2: split/merged/corrupt bytes; 3: the get returned an error other than
/// Closed/Timeout.
type Seen = Vec<(u8, u16, u32, u64)>;

fn classify(bytes: &[u8]) -> (u8, u16, u32, u64) {
    match verify(bytes) {
        Verdict::Whole(id) => (0, id.producer, id.seq, bytes.len() as u64),
        Verdict::Small(len) => (1, 0, 0, len as u64),
        _ => (2, 0, 0, bytes.len() as u64),
    }
}

/// Gets until Closed (or `timeout` of silence), classifying every message.
fn consume(q: &Queue, timeout: Duration, pace_us: u64) -> Seen {
    let mut seen = Seen::new();
    loop {
        match q.get_bytes_timeout(timeout) {
            Ok(m) => seen.push(classify(&m)),
            Err(Error::Closed) | Err(Error::Timeout) => break,
            Err(_) => {
                seen.push((3, 0, 0, 0));
                break;
            }
        }
        if pace_us > 0 {
            std::thread::sleep(Duration::from_micros(pace_us));
        }
    }
    seen
}

fn encode_seen(seen: &Seen) -> Vec<u8> {
    encode_value(seen).expect("a Vec of tuples encodes")
}

fn decode_seen(bytes: &[u8]) -> Seen {
    decode_value(bytes).expect("a child's report decodes")
}

/// The oracle's verdict on what all consumers saw, against what was sent:
/// `sent` maps each identified message to its length; `small` counts short
/// messages (which carry no id) by length; `maybe` are ids that may arrive
/// or not (a dead producer's message in flight); exactly `missing_expected`
/// sent messages must be missing (lost with a dead consumer). Returns the
/// violations: duplicates, strangers, split/merged/corrupt messages, errors,
/// per-producer order broken within a consumer, the wrong number missing.
fn judge(
    seen_by_consumer: &[Seen],
    sent: &BTreeMap<MsgId, usize>,
    small: &BTreeMap<usize, usize>,
    maybe: &[MsgId],
    missing_expected: usize,
) -> Vec<String> {
    let mut bad = Vec::new();
    let mut got: HashMap<MsgId, usize> = HashMap::new();
    let mut got_small: BTreeMap<usize, usize> = BTreeMap::new();
    for (c, seen) in seen_by_consumer.iter().enumerate() {
        let mut last_seq: HashMap<u16, u32> = HashMap::new();
        for &(kind, producer, seq, len) in seen {
            match kind {
                0 => {
                    let id = MsgId { producer, seq };
                    *got.entry(id).or_default() += 1;
                    if let Some(&prev) = last_seq.get(&producer) {
                        if seq <= prev {
                            bad.push(format!("consumer {c}: p{producer}#{seq} after #{prev}"));
                        }
                    }
                    last_seq.insert(producer, seq);
                    let _ = len;
                }
                1 => *got_small.entry(len as usize).or_default() += 1,
                2 => bad.push(format!(
                    "consumer {c}: a split/merged/corrupt message of {len} bytes"
                )),
                _ => bad.push(format!("consumer {c}: a get failed with an error")),
            }
        }
    }
    for (id, n) in &got {
        if *n > 1 {
            bad.push(format!("{id} received {n} times"));
        }
        if !sent.contains_key(id) && !maybe.contains(id) {
            bad.push(format!("{id} received but never sent"));
        }
    }
    let missing: Vec<_> = sent.keys().filter(|id| !got.contains_key(id)).collect();
    let mut small_missing = 0;
    for (len, &n) in small {
        let g = got_small.get(len).copied().unwrap_or(0);
        small_missing += n.saturating_sub(g);
    }
    for (len, &g) in &got_small {
        if g > small.get(len).copied().unwrap_or(0) {
            bad.push(format!(
                "short messages of {len} bytes: got {g}, more than sent"
            ));
        }
    }
    if missing.len() + small_missing != missing_expected {
        bad.push(format!(
            "{} messages missing ({small_missing} of them short), expected {missing_expected}: {:?}",
            missing.len() + small_missing,
            missing.iter().take(5).collect::<Vec<_>>()
        ));
    }
    bad
}

// ---------------------------------------------------------------------------
// CPython _TestQueue, translated
// ---------------------------------------------------------------------------

/// `test_put`: every put form, fullness, and the timing lower bounds.
#[test]
fn put_forms_full_and_timeouts() {
    let _g = fork::serial();
    let q = Queue::bounded(6).unwrap();
    assert!(q.is_empty() && !q.is_full());
    q.put(&1u8).unwrap();
    q.put_timeout(&2u8, Duration::from_secs(1)).unwrap();
    q.put_bytes(&[3]).unwrap();
    q.put_bytes_timeout(&[4], Duration::from_secs(1)).unwrap();
    q.try_put_bytes(&[5]).unwrap();
    q.try_put_bytes(&[6]).unwrap();
    assert_eq!(q.len(), 6);
    assert!(q.is_full() && !q.is_empty());
    assert!(matches!(q.try_put_bytes(&[7]), Err(Error::Full)));
    let t = Instant::now();
    assert!(matches!(
        q.put_bytes_timeout(&[7], Duration::from_millis(100)),
        Err(Error::Timeout)
    ));
    assert!(t.elapsed() >= Duration::from_millis(100));
    assert_eq!(q.len(), 6, "a refused put leaves nothing behind");

    // A blocking put completes once another process takes one (and not
    // before it does).
    let child = {
        let q = q.clone();
        fork::spawn(move || {
            std::thread::sleep(Duration::from_millis(200));
            q.get_bytes().unwrap()
        })
        .unwrap()
    };
    let t = Instant::now();
    q.put_bytes(&[7]).unwrap();
    assert!(
        t.elapsed() >= Duration::from_millis(150),
        "{:?}",
        t.elapsed()
    );
    assert_eq!(child.wait(WAIT).unwrap().expect_success(), [1]);
    for want in 2..=7u8 {
        assert_eq!(q.try_get_bytes().unwrap(), [want]);
    }
    assert!(matches!(q.try_get_bytes(), Err(Error::Empty)));
}

/// `test_get`: every get form, emptiness, timing lower bounds.
#[test]
fn get_forms_empty_and_timeouts() {
    let _g = fork::serial();
    let q = Queue::new().unwrap();
    for i in 1..=4u32 {
        q.put(&i).unwrap();
    }
    assert_eq!(q.get::<u32>().unwrap(), 1);
    assert_eq!(q.get_timeout::<u32>(Duration::from_secs(1)).unwrap(), 2);
    assert_eq!(q.try_get_bytes().unwrap(), encode_value(&3u32).unwrap());
    assert_eq!(
        q.get_bytes_timeout(Duration::from_secs(1)).unwrap(),
        encode_value(&4u32).unwrap()
    );
    assert!(q.is_empty());
    assert!(matches!(q.try_get_bytes(), Err(Error::Empty)));
    let t = Instant::now();
    assert!(matches!(
        q.get_bytes_timeout(Duration::from_millis(100)),
        Err(Error::Timeout)
    ));
    assert!(t.elapsed() >= Duration::from_millis(100));

    // A blocking get waits for a put in another process.
    let child = {
        let q = q.clone();
        fork::spawn(move || {
            std::thread::sleep(Duration::from_millis(200));
            q.put(&"late").unwrap();
            Vec::new()
        })
        .unwrap()
    };
    let t = Instant::now();
    assert_eq!(q.get::<String>().unwrap(), "late");
    assert!(t.elapsed() >= Duration::from_millis(150));
    child.wait(WAIT).unwrap().expect_success();
}

/// `test_qsize`: 0, 1, 2, 1, 0, seen from another process too.
#[test]
fn qsize_sequence() {
    let _g = fork::serial();
    let q = Queue::new().unwrap();
    let mut sizes = vec![q.len()];
    q.put(&1).unwrap();
    sizes.push(q.len());
    q.put(&5).unwrap();
    sizes.push(q.len());
    let seen_by_child = {
        let q = q.clone();
        fork::run(WAIT, move || vec![q.len() as u8]).unwrap()
    };
    assert_eq!(seen_by_child.expect_success(), [2]);
    q.get::<i32>().unwrap();
    sizes.push(q.len());
    q.get::<i32>().unwrap();
    sizes.push(q.len());
    assert_eq!(sizes, [0, 1, 2, 1, 0]);
}

/// `test_fork`: items queued before the fork are there in the child, and
/// items the child puts come after them.
#[test]
fn fork_with_items_already_queued() {
    let _g = fork::serial();
    let q = Queue::new().unwrap();
    for i in 0..5u32 {
        q.put(&i).unwrap();
    }
    let child = {
        let q = q.clone();
        fork::spawn(move || {
            // Take two of the parent's, then put five more.
            let a: u32 = q.get().unwrap();
            let b: u32 = q.get().unwrap();
            for i in 5..10u32 {
                q.put(&i).unwrap();
            }
            vec![a as u8, b as u8]
        })
        .unwrap()
    };
    assert_eq!(child.wait(WAIT).unwrap().expect_success(), [0, 1]);
    let rest: Vec<u32> = (0..8).map(|_| q.get().unwrap()).collect();
    assert_eq!(rest, [2, 3, 4, 5, 6, 7, 8, 9]);
    assert!(q.is_empty());
}

/// `test_closed_queue`: after close, this process's put and get fail with
/// Closed; another process is unaffected.
#[test]
fn closed_queue_errors() {
    let _g = fork::serial();
    let q = Queue::new().unwrap();
    q.put(&1).unwrap();
    let other = {
        let q = q.clone();
        fork::spawn(move || {
            std::thread::sleep(Duration::from_millis(100));
            vec![q.get::<i32>().unwrap() as u8]
        })
        .unwrap()
    };
    q.close();
    assert!(q.is_closed());
    assert!(matches!(q.put(&2), Err(Error::Closed)));
    assert!(matches!(q.get_bytes(), Err(Error::Closed)));
    assert!(matches!(q.try_get_bytes(), Err(Error::Closed)));
    assert_eq!(other.wait(WAIT).unwrap().expect_success(), [1]);
}

struct Unserializable;
impl serde::Serialize for Unserializable {
    fn serialize<S: serde::Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
        Err(serde::ser::Error::custom("refuses to serialize"))
    }
}

/// gh-84376: a value that fails to serialize is refused to the caller and
/// leaks no slot of a bounded queue.
#[test]
fn failed_serialization_frees_its_slot() {
    let _g = fork::serial(); // counts shared mappings: see no_fd_or_shared_memory_leaks
    let q = Queue::bounded(1).unwrap();
    assert!(matches!(q.put(&Unserializable), Err(Error::Codec { .. })));
    assert!(q.is_empty() && !q.is_full());
    q.try_put_bytes(b"fits").unwrap();
    assert!(q.is_full());
    assert_eq!(q.try_get_bytes().unwrap(), b"fits");
}

#[test]
fn too_large_is_refused_before_anything_is_written() {
    let _g = fork::serial(); // counts shared mappings: see no_fd_or_shared_memory_leaks
    let q = Queue::builder().max_message_size(100).build().unwrap();
    assert!(matches!(
        q.put_bytes(&[0; 101]),
        Err(Error::TooLarge { len: 101, max: 100 })
    ));
    assert!(q.is_empty());
    q.put_bytes(&[0; 100]).unwrap();
    assert_eq!(q.get_bytes().unwrap().len(), 100);
}

/// The closing rule: consumers blocked on an empty queue get Closed once
/// every producer has closed, exited or been SIGKILLed.
#[test]
fn consumers_get_closed_when_producers_close_exit_or_die() {
    let _g = fork::serial();
    let q = Queue::new().unwrap();
    let consumers: Vec<_> = (0..2)
        .map(|_| {
            let q = q.clone();
            fork::spawn(move || {
                q.close_producer();
                let mut n = 0u8;
                loop {
                    match q.get_bytes() {
                        Ok(_) => n += 1,
                        Err(Error::Closed) => return vec![n],
                        Err(e) => panic!("{e}"),
                    }
                }
            })
            .unwrap()
        })
        .collect();
    let closer = {
        let q = q.clone();
        fork::spawn(move || {
            q.put_bytes(b"a").unwrap();
            q.close();
            std::thread::sleep(Duration::from_millis(300)); // alive, but closed
            Vec::new()
        })
        .unwrap()
    };
    let exiter = {
        let q = q.clone();
        fork::spawn(move || {
            q.put_bytes(b"b").unwrap();
            Vec::new()
        })
        .unwrap()
    };
    let victim = {
        let q = q.clone();
        fork::spawn(move || {
            q.put_bytes(b"c").unwrap();
            loop {
                std::thread::sleep(Duration::from_secs(1));
            }
        })
        .unwrap()
    };
    q.close_producer();
    std::thread::sleep(Duration::from_millis(100));
    victim.signal(libc::SIGKILL).unwrap();
    let mut all = consumers;
    all.extend([closer, exiter, victim]);
    let reports = fork::wait_all(all, WAIT).unwrap();
    let n: u8 = reports[..2]
        .iter()
        .map(|r| r.clone().expect_success()[0])
        .sum();
    assert_eq!(n, 3);
    assert_eq!(reports[4].outcome, Outcome::Signaled(libc::SIGKILL));
}

/// While one consumer holds the consumer lock waiting on an empty queue,
/// another's timed get still times out (not before its timeout) and its
/// try_get says Empty at once.
#[test]
fn timed_and_try_gets_beside_a_blocked_consumer() {
    let _g = fork::serial();
    let q = Queue::new().unwrap();
    std::thread::scope(|s| {
        let blocked = s.spawn(|| q.get_bytes().unwrap());
        std::thread::sleep(Duration::from_millis(50));
        let t = Instant::now();
        assert!(matches!(
            q.get_bytes_timeout(Duration::from_millis(100)),
            Err(Error::Timeout)
        ));
        assert!(t.elapsed() >= Duration::from_millis(100));
        let t = Instant::now();
        assert!(matches!(q.try_get_bytes(), Err(Error::Empty)));
        assert!(t.elapsed() < Duration::from_secs(1));
        q.put_bytes(b"wake").unwrap();
        assert_eq!(blocked.join().unwrap(), b"wake");
    });
}

#[test]
fn threads_share_a_queue() {
    let _g = fork::serial(); // counts shared mappings: see no_fd_or_shared_memory_leaks
    let q = Queue::bounded(4).unwrap();
    std::thread::scope(|s| {
        for p in 0..3u16 {
            let q = q.clone();
            s.spawn(move || {
                for seq in 0..200u32 {
                    q.put_bytes(&make(MsgId { producer: p, seq }, 40 + seq as usize))
                        .unwrap();
                }
            });
        }
        let takers: Vec<_> = (0..2)
            .map(|_| {
                let q = q.clone();
                s.spawn(move || {
                    (0..300)
                        .map(|_| classify(&q.get_bytes().unwrap()))
                        .collect::<Seen>()
                })
            })
            .collect();
        let seen: Vec<Seen> = takers.into_iter().map(|t| t.join().unwrap()).collect();
        let sent: BTreeMap<MsgId, usize> = (0..3u16)
            .flat_map(|p| (0..200u32).map(move |seq| (MsgId { producer: p, seq }, 0)))
            .collect();
        let bad = judge(&seen, &sent, &BTreeMap::new(), &[], 0);
        assert!(bad.is_empty(), "{bad:?}");
    });
}

/// Shared anonymous mappings of this process (`/dev/zero (deleted)` in
/// `/proc/self/maps`).
fn shared_mappings() -> usize {
    std::fs::read_to_string("/proc/self/maps")
        .unwrap()
        .lines()
        .filter(|l| l.contains("/dev/zero"))
        .count()
}

#[test]
fn no_fd_or_shared_memory_leaks() {
    let _g = fork::serial();
    let fds = ipc_harness::sys::open_fds().unwrap();
    let maps = shared_mappings();
    for _ in 0..50 {
        let q = Queue::builder().ring_bytes(1 << 16).build().unwrap();
        assert_eq!(shared_mappings(), maps + 1);
        let q2 = q.clone();
        q2.put_bytes(b"x").unwrap();
        drop(q);
        drop(q2);
    }
    assert_eq!(ipc_harness::sys::open_fds().unwrap(), fds);
    assert_eq!(shared_mappings(), maps);
}

/// A put that times out inside a message larger than the ring gives the
/// message up: no part of it is ever delivered, nothing counts as lost, and
/// the next message arrives whole.
#[test]
fn a_put_timing_out_mid_message_leaves_nothing_behind() {
    let _g = fork::serial(); // counts shared mappings: see no_fd_or_shared_memory_leaks
    let q = Queue::builder().ring_bytes(4096).build().unwrap();
    let big = make(
        MsgId {
            producer: 0,
            seq: 0,
        },
        3 * 4096,
    );
    let t = Instant::now();
    assert!(matches!(
        q.put_bytes_timeout(&big, Duration::from_millis(100)),
        Err(Error::Timeout)
    ));
    assert!(t.elapsed() >= Duration::from_millis(100));
    assert_eq!(q.len(), 0);
    let after = make(
        MsgId {
            producer: 0,
            seq: 1,
        },
        100,
    );
    q.put_bytes(&after).unwrap();
    assert_eq!(q.len(), 1);
    assert_eq!(q.get_bytes().unwrap(), after);
    assert!(matches!(q.try_get_bytes(), Err(Error::Empty)));
    assert_eq!(q.lost_to_dead_members(), 0);
    // And a message bigger than the ring does cross when someone takes it.
    std::thread::scope(|s| {
        s.spawn(|| q.put_bytes(&big).unwrap());
        assert_eq!(q.get_bytes().unwrap(), big);
    });
}

// ---------------------------------------------------------------------------
// The property: producers x consumers x sizes x pacing
// ---------------------------------------------------------------------------

#[derive(Debug, Clone)]
struct Scenario {
    plans: Vec<Vec<usize>>,
    consumers: usize,
    max_items: usize,
    ring: usize,
    pace_us: Vec<u64>,
    /// One member killed at a kill point: (member, point, nth hit). Members
    /// are numbered producers first, then consumers.
    victim: Option<(usize, KillPoint, u32)>,
}

fn scenario() -> impl Strategy<Value = Scenario> {
    (
        1usize..=8,
        1usize..=8,
        prop_oneof![Just(0usize), 1usize..=4],
    )
        .prop_flat_map(|(producers, consumers, max_items)| {
            let budget = (8 << 20) / producers;
            (
                proptest::collection::vec(size_plan(4 << 20, 16, budget), producers),
                Just(consumers),
                Just(max_items),
                proptest::sample::select(vec![4096usize, 65536, 1 << 20]),
                proptest::collection::vec(
                    prop_oneof![3 => Just(0u64), 1 => 1u64..300],
                    producers + consumers,
                ),
            )
        })
        .prop_map(|(plans, consumers, max_items, ring, pace_us)| Scenario {
            plans,
            consumers,
            max_items,
            ring,
            pace_us,
            victim: None,
        })
}

/// A scenario with one member SIGKILLed at a random kill point. A consumer
/// victim always has another consumer beside it (with none left, producers
/// would rightly wait for room forever).
fn scenario_with_victim() -> impl Strategy<Value = Scenario> {
    (
        scenario(),
        any::<proptest::sample::Index>(),
        proptest::sample::select(KillPoint::ALL.to_vec()),
        1u32..=6,
    )
        .prop_map(|(mut s, who, point, nth)| {
            let member = if point.is_producer() {
                who.index(s.plans.len())
            } else {
                s.consumers = s.consumers.max(2);
                s.pace_us.resize(s.plans.len() + s.consumers, 0);
                s.plans.len() + who.index(s.consumers)
            };
            s.victim = Some((member, point, nth));
            s
        })
}

/// The victim's reports through a pipe: one fixed-size record per put that
/// returned Ok (producer) or per message taken (consumer), written before it
/// goes on, so what it did before dying is known.
const REPORT_LEN: usize = 16;

fn report(fd: &OwnedFd, (kind, producer, seq, len): (u8, u16, u32, u64)) {
    let mut rec = [0u8; REPORT_LEN];
    rec[0] = kind;
    rec[1..3].copy_from_slice(&producer.to_le_bytes());
    rec[3..7].copy_from_slice(&seq.to_le_bytes());
    rec[7..15].copy_from_slice(&len.to_le_bytes());
    // One write of 16 bytes to a pipe is atomic: whole or not at all.
    assert_eq!(
        ipc_harness::sys::write(fd.as_fd(), &rec).unwrap(),
        REPORT_LEN
    );
}

fn read_reports(fd: OwnedFd) -> Seen {
    let mut bytes = Vec::new();
    while ipc_harness::sys::read_append(fd.as_fd(), &mut bytes, 1 << 16).unwrap() > 0 {}
    bytes
        .chunks_exact(REPORT_LEN)
        .map(|r| {
            (
                r[0],
                u16::from_le_bytes([r[1], r[2]]),
                u32::from_le_bytes(r[3..7].try_into().unwrap()),
                u64::from_le_bytes(r[7..15].try_into().unwrap()),
            )
        })
        .collect()
}

fn run_scenario(s: &Scenario) -> Vec<String> {
    let _g = fork::serial();
    let q = Queue::builder()
        .max_items(s.max_items)
        .ring_bytes(s.ring)
        .build()
        .unwrap();
    let (report_r, report_w) = ipc_harness::sys::pipe(false).unwrap();
    let n_prod = s.plans.len();
    let is_victim = |member: usize| s.victim.filter(|v| v.0 == member).map(|v| (v.1, v.2));
    // A victim producer's messages all carry ids, so its in-flight one is
    // known by name.
    let plans: Vec<Vec<usize>> = s
        .plans
        .iter()
        .enumerate()
        .map(|(p, plan)| match is_victim(p) {
            Some(_) => plan.iter().map(|&l| l.max(ID_LEN)).collect(),
            None => plan.clone(),
        })
        .collect();
    let mut children = Vec::new();
    for c in 0..s.consumers {
        let q = q.clone();
        let pace = s.pace_us[n_prod + c];
        let kill = is_victim(n_prod + c);
        let rw = &report_w;
        children.push(
            fork::spawn(move || {
                q.close_producer();
                let Some((point, nth)) = kill else {
                    return encode_seen(&consume(&q, WAIT, pace));
                };
                set_kill_point(Some(point), nth);
                loop {
                    match q.get_bytes_timeout(WAIT) {
                        Ok(m) => report(rw, classify(&m)),
                        Err(Error::Closed) | Err(Error::Timeout) => break,
                        Err(_) => {
                            report(rw, (3, 0, 0, 0));
                            break;
                        }
                    }
                }
                Vec::new()
            })
            .unwrap(),
        );
    }
    for (p, plan) in plans.iter().enumerate() {
        let q = q.clone();
        let plan = plan.clone();
        let pace = s.pace_us[p];
        let kill = is_victim(p);
        let rw = &report_w;
        children.push(
            fork::spawn(move || {
                if let Some((point, nth)) = kill {
                    set_kill_point(Some(point), nth);
                }
                for (seq, &len) in plan.iter().enumerate() {
                    let id = MsgId {
                        producer: p as u16,
                        seq: seq as u32,
                    };
                    q.put_bytes(&make(id, len)).unwrap();
                    if kill.is_some() {
                        report(rw, (0, p as u16, seq as u32, len as u64));
                    }
                    if pace > 0 {
                        std::thread::sleep(Duration::from_micros(pace));
                    }
                }
                Vec::new()
            })
            .unwrap(),
        );
    }
    q.close_producer();
    let reports = fork::wait_all(children, WAIT).unwrap();
    drop(report_w);
    let victim_reports = read_reports(report_r);

    let mut bad = Vec::new();
    let mut seen = Vec::new();
    let mut victim_died = false;
    for (i, r) in reports.iter().enumerate() {
        let member = if i < s.consumers {
            n_prod + i
        } else {
            i - s.consumers
        };
        if is_victim(member).is_some() && r.outcome == Outcome::Signaled(libc::SIGKILL) {
            victim_died = true;
        } else if !r.is_success() {
            bad.push(format!("child {} {}", r.pid, r.outcome));
        } else if !r.output.is_empty() {
            seen.push(decode_seen(&r.output));
        }
    }
    let mut sent = BTreeMap::new();
    let mut small = BTreeMap::new();
    let mut maybe = Vec::new();
    let mut missing_expected = 0;
    for (p, plan) in plans.iter().enumerate() {
        // A producer victim that died had its puts up to `done` return Ok;
        // the next one was in its hands: it may arrive (rolled forward) or
        // not; the ones after it were never put.
        let done = match is_victim(p) {
            Some(_) if victim_died => victim_reports.len(),
            _ => plan.len(),
        };
        for (seq, &len) in plan.iter().enumerate().take(done) {
            let id = MsgId {
                producer: p as u16,
                seq: seq as u32,
            };
            if len >= ID_LEN {
                sent.insert(id, len);
            } else {
                *small.entry(len).or_default() += 1;
            }
        }
        if done < plan.len() {
            maybe.push(MsgId {
                producer: p as u16,
                seq: done as u32,
            });
        }
    }
    let consumer_victim = s.victim.is_some_and(|v| v.0 >= n_prod);
    if consumer_victim {
        seen.push(victim_reports);
        missing_expected = q.lost_by_dead_consumers() as usize;
        if missing_expected > 1 {
            bad.push(format!("{missing_expected} losses from one dead consumer"));
        }
    }
    bad.extend(judge(&seen, &sent, &small, &maybe, missing_expected));
    if let Some(&hand) = maybe.first() {
        let arrived = seen.iter().flatten().any(|&(k, p, sq, _)| {
            k == 0
                && MsgId {
                    producer: p,
                    seq: sq,
                } == hand
        });
        let lost = q.lost_by_dead_producers();
        // Dead before or after the message existed, nothing is counted; inside
        // it, exactly one loss, and then it must not arrive.
        if lost > 1 || (arrived && lost != 0) {
            bad.push(format!(
                "{hand} arrived: {arrived}, producer losses: {lost}"
            ));
        }
    } else if q.lost_by_dead_producers() != 0 {
        bad.push("producer losses reported with no producer dead".into());
    }
    if !consumer_victim && q.lost_by_dead_consumers() != 0 {
        bad.push("consumer losses reported with no consumer dead".into());
    }
    if !q.is_empty() {
        bad.push(format!("{} messages left in the queue", q.len()));
    }
    bad
}

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(16)
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: cases(),
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(
            "proptest-regressions/queue.txt"
        ))),
        max_shrink_iters: 64,
        ..ProptestConfig::default()
    })]

    /// Exactly once, whole, per-producer order, for 1..=8 producers x 1..=8
    /// consumers, sizes up to 4 MiB biased to the boundaries, bounded and
    /// unbounded, rings smaller and larger than the messages, random pacing.
    #[test]
    fn every_message_exactly_once_whole_and_in_order(s in scenario()) {
        let bad = run_scenario(&s);
        prop_assert!(bad.is_empty(), "{:?}", bad);
    }

    /// The same with one producer or consumer SIGKILLed at a random kill
    /// point (its nth pass there): survivors finish, every message put Ok is
    /// taken once and whole except exactly the losses the queue reports.
    #[test]
    fn a_random_member_killed_anywhere_breaks_nobody(s in scenario_with_victim()) {
        let bad = run_scenario(&s);
        prop_assert!(bad.is_empty(), "{:?}", bad);
    }
}

#[test]
fn boundary_sizes_cross_one_producer_to_one_consumer() {
    let sizes = boundary_sizes(4 << 20);
    let s = Scenario {
        plans: vec![sizes.clone()],
        consumers: 1,
        max_items: 0,
        ring: 4096,
        pace_us: vec![0, 0],
        victim: None,
    };
    let bad = run_scenario(&s);
    assert!(bad.is_empty(), "{bad:?}");
}

// ---------------------------------------------------------------------------
// Kill tests
// ---------------------------------------------------------------------------

const KILL_RING: usize = 4096;

/// The victim producer's plan: two single-record messages, then one three
/// times the ring (13 records), then one more.
fn victim_plan() -> Vec<usize> {
    vec![100, 800, 3 * KILL_RING + 77, 300]
}

/// (point, nth hit, index of the message in the victim's hands, whether it
/// must arrive (true), must not (false), and the producer loss count).
fn producer_cases() -> Vec<(KillPoint, u32, u32, bool, u64)> {
    vec![
        // Holding the lock, nothing written: message 2 never existed.
        (KillPoint::ProducerLocked, 3, 2, false, 0),
        // Second record of the big message written but not committed.
        (KillPoint::ProducerMidRecord, 4, 2, false, 1),
        // Mid-commit of the single (LAST) record of message 1: rolled
        // forward by the repair, so it arrives.
        (KillPoint::ProducerMidCommit, 2, 1, true, 0),
        // Mid-commit of the big message's second record: abandoned.
        (KillPoint::ProducerMidCommit, 4, 2, false, 1),
        // After the big message's first record.
        (KillPoint::ProducerMidItem, 1, 2, false, 1),
        // Published the big message, still holding the lock.
        (KillPoint::ProducerPublished, 3, 2, true, 0),
    ]
}

fn run_producer_kill(
    point: KillPoint,
    nth: u32,
    in_hand: u32,
    arrives: bool,
    lost: u64,
    with_survivor: bool,
) {
    let _g = fork::serial();
    let q = Queue::builder().ring_bytes(KILL_RING).build().unwrap();
    let consumers: Vec<_> = (0..2)
        .map(|_| {
            let q = q.clone();
            fork::spawn(move || {
                q.close_producer();
                encode_seen(&consume(&q, WAIT, 0))
            })
            .unwrap()
        })
        .collect();
    let victim = {
        let q = q.clone();
        fork::spawn(move || {
            set_kill_point(Some(point), nth);
            for (seq, len) in victim_plan().into_iter().enumerate() {
                q.put_bytes(&make(
                    MsgId {
                        producer: 0,
                        seq: seq as u32,
                    },
                    len,
                ))
                .unwrap();
            }
            Vec::new()
        })
        .unwrap()
    };
    let survivor_len = if with_survivor { 40 } else { 0 };
    let survivor_plan: Vec<usize> = (0..survivor_len)
        .map(|i| 20 + (i * 997) % (2 * KILL_RING))
        .collect();
    let survivor = {
        let q = q.clone();
        let plan = survivor_plan.clone();
        fork::spawn(move || {
            for (seq, len) in plan.into_iter().enumerate() {
                q.put_bytes(&make(
                    MsgId {
                        producer: 1,
                        seq: seq as u32,
                    },
                    len,
                ))
                .unwrap();
            }
            Vec::new()
        })
        .unwrap()
    };
    q.close_producer();
    let mut all = consumers;
    all.push(victim);
    all.push(survivor);
    let reports = fork::wait_all(all, WAIT).unwrap();
    let label = format!("{point:?}@{nth}, other producer: {with_survivor}");
    assert_eq!(
        reports[2].outcome,
        Outcome::Signaled(libc::SIGKILL),
        "{label}: the victim must die at its kill point"
    );
    let seen: Vec<Seen> = reports[..2]
        .iter()
        .map(|r| decode_seen(&r.clone().expect_success()))
        .collect();
    reports[3].clone().expect_success();

    let mut sent = BTreeMap::new();
    for seq in 0..in_hand {
        sent.insert(MsgId { producer: 0, seq }, 0);
    }
    let hand = MsgId {
        producer: 0,
        seq: in_hand,
    };
    if arrives {
        sent.insert(hand, 0);
    }
    for seq in 0..survivor_plan.len() as u32 {
        sent.insert(MsgId { producer: 1, seq }, 0);
    }
    let bad = judge(&seen, &sent, &BTreeMap::new(), &[], 0);
    assert!(bad.is_empty(), "{label}: {bad:?}");
    let got_hand = seen
        .iter()
        .flatten()
        .any(|&(k, p, s, _)| k == 0 && p == 0 && s == in_hand);
    assert_eq!(
        got_hand, arrives,
        "{label}: the message in the victim's hands"
    );
    assert_eq!(q.lost_by_dead_producers(), lost, "{label}");
    assert_eq!(q.lost_by_dead_consumers(), 0, "{label}");
    assert!(q.is_empty(), "{label}: {} left", q.len());
}

/// A producer SIGKILLed at each producer kill point, including holding the
/// lock mid-way through a message three times the ring: the other producer
/// and both consumers finish, and the oracle's verdict is clean apart from
/// the message in the victim's hands.
#[test]
fn a_killed_producer_breaks_nobody() {
    for (point, nth, in_hand, arrives, lost) in producer_cases() {
        run_producer_kill(point, nth, in_hand, arrives, lost, true);
    }
}

/// The same, with the victim as the only producer: consumers stuck inside
/// its message repair the lock themselves, and then get Closed, not a hang.
#[test]
fn a_killed_sole_producer_leaves_consumers_closed_not_hung() {
    for (point, nth, in_hand, arrives, lost) in producer_cases() {
        run_producer_kill(point, nth, in_hand, arrives, lost, false);
    }
}

fn run_consumer_kill(point: KillPoint) {
    let _g = fork::serial();
    let q = Queue::builder().ring_bytes(KILL_RING).build().unwrap();
    // The victim starts first and holds the consumer lock, waiting on the
    // empty queue, so the first message is its.
    let victim = {
        let q = q.clone();
        fork::spawn(move || {
            q.close_producer();
            set_kill_point(Some(point), 1);
            let seen = consume(&q, WAIT, 0);
            encode_seen(&seen)
        })
        .unwrap()
    };
    std::thread::sleep(Duration::from_millis(200));
    let survivors: Vec<_> = (0..2)
        .map(|_| {
            let q = q.clone();
            fork::spawn(move || {
                q.close_producer();
                encode_seen(&consume(&q, WAIT, 0))
            })
            .unwrap()
        })
        .collect();
    // Every message is bigger than a record (1 KiB here), and some are
    // bigger than the ring.
    let plans: Vec<Vec<usize>> = (0..2)
        .map(|p| {
            (0..20)
                .map(|i| 1500 + ((i + p) * 1777) % (3 * KILL_RING))
                .collect()
        })
        .collect();
    let producers: Vec<_> = plans
        .iter()
        .enumerate()
        .map(|(p, plan)| {
            let q = q.clone();
            let plan = plan.clone();
            fork::spawn(move || {
                for (seq, len) in plan.into_iter().enumerate() {
                    q.put_bytes(&make(
                        MsgId {
                            producer: p as u16,
                            seq: seq as u32,
                        },
                        len,
                    ))
                    .unwrap();
                }
                Vec::new()
            })
            .unwrap()
        })
        .collect();
    q.close_producer();
    let mut all = vec![victim];
    all.extend(survivors);
    all.extend(producers);
    let reports = fork::wait_all(all, WAIT).unwrap();
    let label = format!("{point:?}");
    assert_eq!(
        reports[0].outcome,
        Outcome::Signaled(libc::SIGKILL),
        "{label}: the victim must die at its kill point"
    );
    for r in &reports[1..] {
        assert!(r.is_success(), "{label}: child {} {}", r.pid, r.outcome);
    }
    let seen: Vec<Seen> = reports[1..3]
        .iter()
        .map(|r| decode_seen(&r.output))
        .collect();
    let sent: BTreeMap<MsgId, usize> = plans
        .iter()
        .enumerate()
        .flat_map(|(p, plan)| {
            (0..plan.len() as u32).map(move |seq| {
                (
                    MsgId {
                        producer: p as u16,
                        seq,
                    },
                    0,
                )
            })
        })
        .collect();
    let lost = if point == KillPoint::ConsumerLocked {
        0
    } else {
        1
    };
    let bad = judge(&seen, &sent, &BTreeMap::new(), &[], lost);
    assert!(bad.is_empty(), "{label}: {bad:?}");
    let received: usize = seen.iter().map(Vec::len).sum();
    assert_eq!(
        received,
        sent.len() - lost,
        "{label}: exactly the victim's message is lost"
    );
    assert_eq!(q.lost_by_dead_consumers(), lost as u64, "{label}");
    assert_eq!(q.lost_by_dead_producers(), 0, "{label}");
    assert!(q.is_empty(), "{label}: {} left", q.len());
}

/// A consumer SIGKILLed at each consumer kill point, including mid-way
/// through a message bigger than a record while producers keep streaming:
/// the other consumers take everything else, whole and once, and the queue
/// reports the one message lost.
#[test]
fn a_killed_consumer_breaks_nobody() {
    for point in KillPoint::ALL.into_iter().filter(|p| !p.is_producer()) {
        run_consumer_kill(point);
    }
}

// ---------------------------------------------------------------------------
// The racing-readers pitfall
// ---------------------------------------------------------------------------

/// The same queue without its consumer lock: three readers race for the
/// records of multi-record messages, and the oracle catches split, merged,
/// corrupt, duplicated or missing messages.
#[test]
fn racing_readers_are_caught() {
    let _g = fork::serial();
    let mut caught = Vec::new();
    for _attempt in 0..20 {
        let q = Queue::builder()
            .ring_bytes(4096)
            .racing_readers_pitfall(true)
            .build()
            .unwrap();
        let readers: Vec<_> = (0..3)
            .map(|_| {
                let q = q.clone();
                fork::spawn(move || {
                    q.close_producer();
                    encode_seen(&consume(&q, Duration::from_millis(500), 0))
                })
                .unwrap()
            })
            .collect();
        let plan: Vec<usize> = (0..300).map(|i| 16 + (i * 131) % 3000).collect();
        let producer = {
            let q = q.clone();
            let plan = plan.clone();
            fork::spawn(move || {
                for (seq, len) in plan.into_iter().enumerate() {
                    let msg = make(
                        MsgId {
                            producer: 0,
                            seq: seq as u32,
                        },
                        len,
                    );
                    if q.put_bytes_timeout(&msg, Duration::from_millis(500))
                        .is_err()
                    {
                        break;
                    }
                }
                Vec::new()
            })
            .unwrap()
        };
        q.close_producer();
        let mut all = readers;
        all.push(producer);
        let reports = fork::wait_all(all, WAIT).unwrap();
        // A reader that crashed or hung on what it took is caught too.
        if let Some(r) = reports[..3].iter().find(|r| !r.is_success()) {
            caught = vec![format!("a racing reader {}", r.outcome)];
            break;
        }
        let seen: Vec<Seen> = reports[..3]
            .iter()
            .filter(|r| r.is_success())
            .map(|r| decode_seen(&r.output))
            .collect();
        let sent: BTreeMap<MsgId, usize> = (0..plan.len() as u32)
            .map(|seq| (MsgId { producer: 0, seq }, 0))
            .collect();
        caught = judge(&seen, &sent, &BTreeMap::new(), &[], 0);
        if !caught.is_empty() {
            break;
        }
    }
    assert!(
        !caught.is_empty(),
        "racing readers went unnoticed twenty times"
    );
}
