//! `Queue` across forked processes: CPython's `_TestQueue` cases that apply,
//! the harness's properties over producers x consumers x sizes x pacing x
//! bounds x rings (with and without a member killed at one of the queue's
//! kill points), kill tests at every named kill point with the losses the
//! queue counts, and the racing-readers pitfall caught. Every verdict on
//! what was delivered is the harness's oracle's
//! ([`judge`](ipc_harness::harness::check::judge)).
//!
//! Every test holds `fork::serial()` for its whole body (the forking ones
//! for the fork rules, the others because the leak test counts fds and
//! shared mappings); children never print, they return bytes (what they
//! received, encoded with the crate's codec).

use std::time::{Duration, Instant};

use ipc_harness::Error;
use ipc_harness::codec::{decode_value, encode_value};
use ipc_harness::harness::channel::{Channel, Consumer, Ends, Promises};
use ipc_harness::harness::check::{Judgement, judge};
use ipc_harness::harness::fault::{Fault, FaultKind, Target};
use ipc_harness::harness::fork::{self, Outcome};
use ipc_harness::harness::payload::{MsgId, Verdict, make, verify};
use ipc_harness::harness::proptest_config;
use ipc_harness::harness::run::run;
use ipc_harness::harness::scenario::{Limits, Pacing, ProducerPlan, Scenario, scenarios};
use ipc_harness::harness::sizes::boundary_sizes;
use ipc_harness::harness::trace::{
    ConsumerTrace, Failure, Fate, ProducerTrace, SendOutcome, SendRecord, StreamEnd, Traces,
};
use ipc_harness::harness::transports::{QueueChannel, QueueConsumer, QueueProducer};
use ipc_harness::queue::{KillPoint, Queue, set_kill_point};
use proptest::prelude::*;

const WAIT: Duration = Duration::from_secs(30);

/// Gets until Closed (or `timeout` of silence): what the consumer took, as
/// the harness's oracle reads it.
fn consume(q: &Queue, consumer: u16, timeout: Duration) -> ConsumerTrace {
    let mut receives = Vec::new();
    let end = loop {
        match q.get_bytes_timeout(timeout) {
            Ok(m) => receives.push(m),
            Err(Error::Closed) => break StreamEnd::Closed,
            Err(Error::Timeout) => break StreamEnd::Timeout,
            Err(e) => break StreamEnd::Error(e.to_string()),
        }
    };
    ConsumerTrace {
        receives,
        ..ConsumerTrace::new(consumer, end)
    }
}

/// A consumer's trace as a child's report: its messages and how it ended.
fn encode_trace(trace: &ConsumerTrace) -> Vec<u8> {
    let end = match &trace.end {
        StreamEnd::Closed => (0u8, String::new()),
        StreamEnd::Timeout => (1, String::new()),
        other => (2, format!("{other:?}")),
    };
    encode_value(&(&trace.receives, end)).expect("a Vec of messages encodes")
}

fn decode_trace(consumer: u16, bytes: &[u8]) -> ConsumerTrace {
    let (receives, (end, error)): (Vec<Vec<u8>>, (u8, String)) =
        decode_value(bytes).expect("a child's report decodes");
    let end = match end {
        0 => StreamEnd::Closed,
        1 => StreamEnd::Timeout,
        _ => StreamEnd::Error(error),
    };
    ConsumerTrace {
        receives,
        ..ConsumerTrace::new(consumer, end)
    }
}

/// Producer `p`'s trace: `sizes` sent in order, every put returned `Ok`,
/// except the one at `cut` (if any), in its hands when it was killed and
/// the last it started.
fn producer_trace(p: u16, sizes: &[usize], cut: Option<usize>) -> Result<ProducerTrace, Failure> {
    let sends = sizes
        .iter()
        .enumerate()
        .take(cut.map_or(sizes.len(), |c| c + 1))
        .map(|(seq, &len)| SendRecord {
            seq: seq as u32,
            len,
            outcome: if Some(seq) == cut {
                SendOutcome::Cut
            } else {
                SendOutcome::Ok
            },
        })
        .collect();
    Ok(ProducerTrace {
        producer: p,
        sends,
        fate: if cut.is_some() {
            Fate::Killed
        } else {
            Fate::Finished
        },
        ..ProducerTrace::default()
    })
}

/// The harness's oracle on what these producers sent (plans, and the put
/// cut by a kill) and these consumers took.
fn verdict(producers: &[(Vec<usize>, Option<usize>)], consumers: Vec<ConsumerTrace>) -> Judgement {
    let scenario = Scenario {
        producers: producers
            .iter()
            .map(|(sizes, _)| ProducerPlan {
                sizes: sizes.clone(),
                pacing: Pacing::Burst,
            })
            .collect(),
        consumers: consumers.len(),
        ..Scenario::default()
    };
    let traces = Traces {
        producers: producers
            .iter()
            .enumerate()
            .map(|(p, (sizes, cut))| producer_trace(p as u16, sizes, *cut))
            .collect(),
        consumers: consumers.into_iter().map(Ok).collect(),
    };
    judge(&scenario, &QueueChannel::DEFAULT.promises(), &traces)
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

/// `get_bytes_into` replaces the buffer's contents with exactly one whole
/// message each time (empty, one byte, messages of several records of the
/// ring, from another process), keeps one allocation once it is large
/// enough, and leaves the buffer empty on an error.
#[test]
fn get_bytes_into_reuses_one_buffer() {
    let _g = fork::serial();
    // Records carry at most a quarter of the ring: 5000 and 13000 bytes
    // are several records each.
    let q = Queue::builder().ring_bytes(4096).build().unwrap();
    let sizes = [1usize, 0, 5000, 3, 13000, 12999, 2];
    let payload =
        |n: usize, salt: usize| -> Vec<u8> { (0..n).map(|i| ((i + salt) % 251) as u8).collect() };
    let producer = {
        let q = q.clone();
        fork::spawn(move || {
            q.close_consumer();
            for (salt, &n) in sizes.iter().enumerate() {
                q.put_bytes(&payload(n, salt)).unwrap();
            }
            Vec::new()
        })
        .unwrap()
    };
    q.close_producer();
    // Old contents never show through.
    let mut buf = vec![0xeeu8; 100];
    let mut allocation = None;
    for (salt, &n) in sizes.iter().enumerate() {
        assert_eq!(q.get_bytes_into(&mut buf).unwrap(), n, "message {salt}");
        assert_eq!(buf, payload(n, salt), "message {salt}");
        if n == 13000 {
            allocation = Some(buf.as_ptr());
        } else if let Some(at) = allocation {
            // Smaller than the largest so far: the same allocation.
            assert_eq!(buf.as_ptr(), at, "message {salt}");
        }
    }
    producer.wait(WAIT).unwrap().expect_success();
    let capacity = buf.capacity();
    assert!(capacity >= 13000);
    // No producer is left: Closed, and the buffer is empty, its allocation kept.
    assert!(matches!(q.get_bytes_into(&mut buf), Err(Error::Closed)));
    assert_eq!(buf, b"");
    assert_eq!(buf.capacity(), capacity);
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
        let takers: Vec<_> = (0..2u16)
            .map(|c| {
                let q = q.clone();
                s.spawn(move || ConsumerTrace {
                    receives: (0..300).map(|_| q.get_bytes().unwrap()).collect(),
                    ..ConsumerTrace::new(c, StreamEnd::Closed)
                })
            })
            .collect();
        let taken = takers.into_iter().map(|t| t.join().unwrap()).collect();
        let plan: Vec<usize> = (0..200).map(|seq| 40 + seq).collect();
        let producers = vec![(plan, None); 3];
        let v = verdict(&producers, taken).violations;
        assert!(v.is_empty(), "{v:?}");
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

/// (size, resident) in KiB of the one shared anonymous mapping of this
/// process that is longer than `ring` bytes by less than 64 KiB (a
/// queue's header and ring), from `/proc/self/smaps`.
fn queue_mapping_kib(ring: usize) -> (u64, u64) {
    let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap();
    let mut found = Vec::new();
    let mut lines = smaps.lines();
    while let Some(l) = lines.next() {
        if !l.contains("/dev/zero") {
            continue;
        }
        let range = l.split_whitespace().next().unwrap();
        let (a, b) = range.split_once('-').unwrap();
        let len = u64::from_str_radix(b, 16).unwrap() - u64::from_str_radix(a, 16).unwrap();
        if len <= ring as u64 || len >= ring as u64 + 65536 {
            continue;
        }
        let rss = lines
            .by_ref()
            .find_map(|l| l.strip_prefix("Rss:"))
            .map(|v| {
                v.trim()
                    .trim_end_matches("kB")
                    .trim()
                    .parse::<u64>()
                    .unwrap()
            })
            .unwrap();
        found.push((len / 1024, rss));
    }
    assert_eq!(found.len(), 1, "{found:?}");
    found[0]
}

/// A forked process has none of the queue's shared memory in its page
/// tables until its first put or get, or `map_in`, which maps all of it.
#[test]
fn map_in_maps_the_whole_queue_into_a_forked_process() {
    let _g = fork::serial();
    let ring = 40 * 4096;
    let q = Queue::builder().ring_bytes(ring).build().unwrap();
    let child = {
        let q = q.clone();
        fork::spawn(move || {
            let before = queue_mapping_kib(ring);
            q.map_in();
            let after = queue_mapping_kib(ring);
            q.map_in();
            let again = queue_mapping_kib(ring);
            format!("{before:?} {after:?} {again:?}").into_bytes()
        })
        .unwrap()
    };
    let out = String::from_utf8(child.wait(WAIT).unwrap().expect_success()).unwrap();
    // The creator maps it all in when it makes the queue.
    let (kib, rss) = queue_mapping_kib(ring);
    assert_eq!(rss, kib);
    assert_eq!(out, format!("({kib}, 0) ({kib}, {kib}) ({kib}, {kib})"));
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
// The properties, through the harness: producers x consumers x sizes x
// pacing x bounds x rings, and one member killed at any kill point
// ---------------------------------------------------------------------------

/// A [`QueueChannel`] whose consumers pause after each message they take,
/// each for its own time (the harness's scenarios pace producers only).
#[derive(Debug, Clone)]
struct PacedQueue {
    queue: QueueChannel,
    /// Consumer `i` sleeps this many microseconds after each receive.
    consumer_pause_us: Vec<u64>,
}

struct PacedConsumer {
    end: QueueConsumer,
    pause: Duration,
}

impl Consumer for PacedConsumer {
    fn recv(&mut self, deadline: Instant) -> ipc_harness::Result<Vec<u8>> {
        let got = self.end.recv(deadline);
        if got.is_ok() && !self.pause.is_zero() {
            std::thread::sleep(self.pause);
        }
        got
    }

    fn shrink_buffer(&mut self) {
        self.end.shrink_buffer();
    }

    fn arm_kill_point(&mut self, point: u8) -> bool {
        self.end.arm_kill_point(point)
    }
}

impl Channel for PacedQueue {
    type Producer = QueueProducer;
    type Consumer = PacedConsumer;

    fn name(&self) -> String {
        format!(
            "{}, consumers pausing {:?} us",
            self.queue.name(),
            self.consumer_pause_us
        )
    }

    fn promises(&self) -> Promises {
        self.queue.promises()
    }

    fn open(
        &self,
        producers: usize,
        consumers: usize,
    ) -> ipc_harness::Result<Ends<QueueProducer, PacedConsumer>> {
        let ends = self.queue.open(producers, consumers)?;
        Ok(Ends {
            producers: ends.producers,
            consumers: ends
                .consumers
                .into_iter()
                .enumerate()
                .map(|(i, end)| PacedConsumer {
                    end,
                    pause: Duration::from_micros(
                        self.consumer_pause_us.get(i).copied().unwrap_or(0),
                    ),
                })
                .collect(),
        })
    }
}

/// One property case: the queue, and the scenario run on it.
#[derive(Debug, Clone)]
struct QueueCase {
    channel: PacedQueue,
    scenario: Scenario,
}

/// Up to 8 producers x 8 consumers, messages up to 4 MiB biased to the
/// boundaries, up to 16 per producer and 8 MiB in all.
const LIMITS: Limits = Limits {
    max_producers: 8,
    max_consumers: 8,
    max_message: 4 << 20,
    min_message: 0,
    max_messages: 16,
    max_total: 8 << 20,
};

/// The queue under test: unbounded or bounded to 1-4 items, a 4 KiB, 64 KiB
/// or 1 MiB ring.
fn queue(bounded: Option<usize>, ring: usize) -> QueueChannel {
    QueueChannel {
        bounded,
        ring_bytes: Some(ring),
        ..QueueChannel::DEFAULT
    }
}

/// Scenarios within [`LIMITS`] on a queue of any bound and ring, with
/// producers and consumers paced at random (three in four not at all).
fn queue_case() -> impl Strategy<Value = QueueCase> {
    (
        scenarios(LIMITS),
        prop_oneof![Just(None), (1usize..=4).prop_map(Some)],
        proptest::sample::select(vec![4096usize, 65536, 1 << 20]),
        proptest::collection::vec(prop_oneof![3 => Just(0u64), 1 => 1u64..300], 8),
    )
        .prop_map(|(scenario, bounded, ring, mut pauses)| {
            pauses.truncate(scenario.consumers);
            QueueCase {
                channel: PacedQueue {
                    queue: queue(bounded, ring),
                    consumer_pause_us: pauses,
                },
                scenario,
            }
        })
}

/// The same with one producer or consumer SIGKILLed at one of the queue's
/// kill points ([`FaultKind::KillInside`]), armed at any of its operations.
/// A consumer victim always has another consumer beside it (with none left,
/// producers would rightly wait for room forever).
fn queue_case_with_victim() -> impl Strategy<Value = QueueCase> {
    (
        queue_case(),
        any::<proptest::sample::Index>(),
        proptest::sample::select(KillPoint::ALL.to_vec()),
        any::<proptest::sample::Index>(),
    )
        .prop_map(|(mut case, who, point, op)| {
            let s = &mut case.scenario;
            // KillInside's `point` counts the kill points of the victim's
            // side, in `KillPoint::ALL` order.
            let side: Vec<KillPoint> = KillPoint::ALL
                .into_iter()
                .filter(|p| p.is_producer() == point.is_producer())
                .collect();
            let index = side.iter().position(|&p| p == point).expect("on its side") as u8;
            let (target, ops) = if point.is_producer() {
                let p = who.index(s.producers.len());
                (Target::Producer(p as u16), s.producers[p].sizes.len())
            } else {
                s.consumers = s.consumers.max(2);
                let c = who.index(s.consumers);
                (Target::Consumer(c as u16), s.messages() / s.consumers + 1)
            };
            s.faults = vec![Fault {
                target,
                op: op.index(ops.max(1)) as u32,
                kind: FaultKind::KillInside { point: index },
            }];
            case
        })
}

/// Ten cases each by default (`PROPTEST_CASES` scales them): a case costs
/// more through the harness than it did through a bespoke runner, since
/// every message a consumer takes is journalled (so that a killed one
/// still reports) and judged in the parent, and ten keep the two
/// properties within the time sixteen took before.
fn config() -> ProptestConfig {
    let mut config = proptest_config("proptest-regressions/queue.txt", 10);
    config.max_shrink_iters = 64;
    config
}

/// Runs `case` through the harness; the promises the queue broke, if any.
fn broken(case: &QueueCase) -> Result<(), String> {
    let _g = fork::serial();
    let report = run(&case.channel, &case.scenario);
    if report.broken_promises().is_empty() {
        Ok(())
    } else {
        Err(report.to_string())
    }
}

proptest! {
    #![proptest_config(config())]

    /// Exactly once, whole, per-producer order, for 1..=8 producers x 1..=8
    /// consumers, sizes up to 4 MiB biased to the boundaries, bounded and
    /// unbounded, rings smaller and larger than the messages, random pacing.
    #[test]
    fn every_message_exactly_once_whole_and_in_order(case in queue_case()) {
        if let Err(report) = broken(&case) {
            prop_assert!(false, "{}", report);
        }
    }

    /// The same with one producer or consumer SIGKILLed at a random kill
    /// point: survivors finish, every message put `Ok` is taken once and
    /// whole except at most the one in a dead consumer's hands, and the
    /// put a dead producer was inside arrives once or not at all. (What
    /// the queue itself counts as lost is checked by the kill tests below.)
    #[test]
    fn a_random_member_killed_anywhere_breaks_nobody(case in queue_case_with_victim()) {
        if let Err(report) = broken(&case) {
            prop_assert!(false, "{}", report);
        }
    }
}

#[test]
fn boundary_sizes_cross_one_producer_to_one_consumer() {
    let case = QueueCase {
        channel: PacedQueue {
            queue: queue(None, 4096),
            consumer_pause_us: Vec::new(),
        },
        scenario: Scenario::simple(&boundary_sizes(4 << 20)),
    };
    broken(&case).unwrap();
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
                encode_trace(&consume(&q, 0, WAIT))
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
    let taken: Vec<ConsumerTrace> = reports[..2]
        .iter()
        .enumerate()
        .map(|(c, r)| decode_trace(c as u16, &r.clone().expect_success()))
        .collect();
    reports[3].clone().expect_success();

    // The victim's puts before `in_hand` returned Ok; the one in its hands
    // must arrive (rolled forward) or must not, as the case says: judged as
    // sent, or as cut (may arrive) and then checked not to.
    let in_hand = in_hand as usize;
    let mut victim_sent = victim_plan();
    victim_sent.truncate(in_hand + 1);
    let producers = [
        (victim_sent, (!arrives).then_some(in_hand)),
        (survivor_plan, None),
    ];
    let got_hand = taken.iter().flat_map(|t| &t.receives).any(|m| {
        verify(m)
            == Verdict::Whole(MsgId {
                producer: 0,
                seq: in_hand as u32,
            })
    });
    let v = verdict(&producers, taken).violations;
    assert!(v.is_empty(), "{label}: {v:?}");
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
            encode_trace(&consume(&q, 0, WAIT))
        })
        .unwrap()
    };
    std::thread::sleep(Duration::from_millis(200));
    let survivors: Vec<_> = (0..2)
        .map(|_| {
            let q = q.clone();
            fork::spawn(move || {
                q.close_producer();
                encode_trace(&consume(&q, 0, WAIT))
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
    // The victim died in its first get, holding nothing it had reported.
    let mut taken = vec![ConsumerTrace::new(0, StreamEnd::Killed)];
    taken.extend(
        reports[1..3]
            .iter()
            .enumerate()
            .map(|(c, r)| decode_trace(c as u16 + 1, &r.output)),
    );
    let received: usize = taken.iter().map(|t| t.receives.len()).sum();
    let lost = if point == KillPoint::ConsumerLocked {
        0
    } else {
        1
    };
    let producers: Vec<_> = plans.iter().map(|plan| (plan.clone(), None)).collect();
    let j = verdict(&producers, taken);
    assert!(j.violations.is_empty(), "{label}: {:?}", j.violations);
    let sent = 2 * 20;
    assert_eq!(
        (received, j.accounting.lost),
        (sent - lost, lost as u64),
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
                    encode_trace(&consume(&q, 0, Duration::from_millis(500)))
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
        let taken = reports[..3]
            .iter()
            .enumerate()
            .map(|(c, r)| decode_trace(c as u16, &r.output))
            .collect();
        caught = verdict(&[(plan, None)], taken)
            .violations
            .iter()
            .map(ToString::to_string)
            .collect();
        if !caught.is_empty() {
            break;
        }
    }
    assert!(
        !caught.is_empty(),
        "racing readers went unnoticed twenty times"
    );
}
