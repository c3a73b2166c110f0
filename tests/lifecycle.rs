//! A queue's lifecycle across forked processes: exact `len` on a busy
//! bounded queue (and the two-load pitfall caught); shutdown, CPython 3.13's
//! `test_shutdown_*` cases of `Lib/test/test_queue.py` ported to processes,
//! and a process killed inside a shutdown.
//!
//! Every test holds `fork::serial()` for its whole body; children never
//! print, they return bytes.

use std::time::{Duration, Instant};

use ipc_harness::harness::fork::{self, Outcome};
use ipc_harness::queue::{KillPoint, Queue, QueueLock, set_kill_point, set_len_pause};
use ipc_harness::{Error, JoinableQueue};

const WAIT: Duration = Duration::from_secs(30);

/// Observers of `len()` on a `bounded` queue that one producer and one
/// consumer keep busy; each observer sleeps `pause` inside every `len()`,
/// between its first loads. Returns, over all observers, how many answers
/// were each value `0..=bound + 2` (the last bucket: `bound + 2` or more),
/// stopping an observer early at its first answer above the bound if
/// `stop_at_first_bad`.
fn observe_len(
    two_load_pitfall: bool,
    bound: usize,
    observers: usize,
    samples: usize,
    pause: Duration,
    stop_at_first_bad: bool,
) -> Vec<u64> {
    let _g = fork::serial();
    let q = Queue::builder()
        .max_items(bound)
        .two_load_len_pitfall(two_load_pitfall)
        .build()
        .unwrap();
    // One message in `stop` tells the producer and the consumer to stop.
    let stop = Queue::new().unwrap();
    let busy = |put: bool| {
        let (q, stop) = (q.clone(), stop.clone());
        fork::spawn(move || {
            let mut n = 0u64;
            while stop.is_empty() {
                let ok = if put {
                    q.put_bytes_timeout(b"x", Duration::from_millis(5)).is_ok()
                } else {
                    q.get_bytes_timeout(Duration::from_millis(5)).is_ok()
                };
                n += u64::from(ok);
            }
            n.to_le_bytes().to_vec()
        })
        .unwrap()
    };
    let producer = busy(true);
    let consumer = busy(false);
    let watchers: Vec<_> = (0..observers)
        .map(|_| {
            let q = q.clone();
            fork::spawn(move || {
                set_len_pause(pause);
                let mut hist = vec![0u64; bound + 3];
                for _ in 0..samples {
                    let n = q.len().min(bound + 2);
                    hist[n] += 1;
                    if stop_at_first_bad && n > bound {
                        break;
                    }
                }
                hist.iter().flat_map(|c| c.to_le_bytes()).collect()
            })
            .unwrap()
        })
        .collect();
    let mut hist = vec![0u64; bound + 3];
    for report in fork::wait_all(watchers, WAIT).unwrap() {
        let bytes = report.expect_success();
        for (i, c) in bytes.chunks(8).enumerate() {
            hist[i] += u64::from_le_bytes(c.try_into().unwrap());
        }
    }
    stop.put_bytes(b"stop").unwrap();
    let moved: Vec<u64> = fork::wait_all(vec![producer, consumer], WAIT)
        .unwrap()
        .into_iter()
        .map(|r| u64::from_le_bytes(r.expect_success().try_into().unwrap()))
        .collect();
    // The queue was busy while it was observed (else the test proves nothing).
    assert!(moved[0] > 0 && moved[1] > 0, "puts and gets: {moved:?}");
    hist
}

/// The case: observers descheduled inside `len()` (a 300 us pause
/// between its loads) on a queue bounded to 1 that others fill and empty.
/// Every answer is 0 or 1; with the old two loads, answers of 2 and more
/// came (see `two_load_len_pitfall_is_caught`).
#[test]
fn len_is_never_above_the_bound() {
    for bound in [1, 2] {
        let hist = observe_len(false, bound, 2, 150, Duration::from_micros(300), false);
        assert_eq!(hist.iter().sum::<u64>(), 300, "bound {bound}: {hist:?}");
        assert_eq!(
            hist[bound + 1..].iter().sum::<u64>(),
            0,
            "bound {bound}: answers per value {hist:?}"
        );
    }
}

/// The pitfall switch reproduces the old two-load `len`, and the same
/// observation catches it: an answer above the bound.
#[test]
fn two_load_len_pitfall_is_caught() {
    let hist = observe_len(true, 1, 1, 2000, Duration::from_millis(1), true);
    assert_eq!(
        hist[2..].iter().sum::<u64>(),
        1,
        "answers per value {hist:?}"
    );
}

/// A result as a child reports it: one byte per outcome.
fn code<T>(r: &Result<T, Error>) -> u8 {
    match r {
        Ok(_) => b'o',
        Err(Error::ShutDown) => b'S',
        Err(Error::Closed) => b'C',
        Err(Error::Empty) => b'E',
        Err(Error::Full) => b'F',
        Err(Error::Timeout) => b'T',
        Err(Error::TaskDoneTooManyTimes) => b'D',
        Err(Error::JoinTimeout { .. }) => b'J',
        Err(_) => b'?',
    }
}

fn codes(rs: &[u8]) -> String {
    String::from_utf8(rs.to_vec()).unwrap()
}

/// Runs `f` in a child and returns what it returned.
fn in_child(f: impl FnOnce() -> Vec<u8>) -> Vec<u8> {
    fork::run(WAIT, f).unwrap().expect_success()
}

/// `test_shutdown_empty`: shut down by another process, an empty queue
/// refuses puts and gets in every form, here and in a third process.
#[test]
fn shutdown_empty_refuses_puts_and_gets_everywhere() {
    let _g = fork::serial();
    let q = Queue::bounded(2).unwrap();
    assert!(!q.is_shutdown());
    let shut = {
        let q = q.clone();
        in_child(move || vec![code(&q.shutdown(false))])
    };
    assert_eq!(codes(&shut), "o");
    assert!(q.is_shutdown());
    let here = [
        code(&q.put_bytes(b"E")),
        code(&q.try_put_bytes(b"W")),
        code(&q.put_bytes_timeout(b"T", Duration::from_secs(1))),
        code(&q.get_bytes()),
        code(&q.try_get_bytes()),
        code(&q.get_bytes_timeout(Duration::from_secs(1))),
    ];
    assert_eq!(codes(&here), "SSSSSS");
    let there = {
        let q = q.clone();
        in_child(move || {
            vec![
                u8::from(q.is_shutdown()),
                code(&q.put_bytes(b"E")),
                code(&q.get_bytes()),
            ]
        })
    };
    assert_eq!(there, [1, b'S', b'S']);
    assert_eq!(q.len(), 0);
}

/// `test_shutdown_nonempty` and `_shutdown_all_methods_in_one_thread(False)`:
/// a full queue shut down by another process refuses puts (ShutDown, not
/// Full), and gets in two processes drain it, then get ShutDown; the tasks
/// are done and join returns.
#[test]
fn shutdown_nonempty_then_drain() {
    let _g = fork::serial();
    let q = JoinableQueue::bounded(2).unwrap();
    q.put_bytes(b"L").unwrap();
    q.try_put_bytes(b"O").unwrap();
    let shut = {
        let q = q.clone();
        in_child(move || vec![code(&q.shutdown(false))])
    };
    assert_eq!(codes(&shut), "o");
    assert_eq!(
        codes(&[code(&q.put_bytes(b"E")), code(&q.try_put_bytes(b"W"))]),
        "SS"
    );
    assert_eq!(q.len(), 2);
    let first = {
        let q = q.clone();
        in_child(move || {
            let m = q.get_bytes().unwrap();
            q.task_done().unwrap();
            m
        })
    };
    assert_eq!(first, b"L");
    assert_eq!(q.get_bytes().unwrap(), b"O");
    q.task_done().unwrap();
    assert_eq!(code(&q.join_timeout(WAIT)), b'o');
    let after = [
        code(&q.get_bytes()),
        code(&q.try_get_bytes()),
        code(&q.get_bytes_timeout(Duration::from_secs(1))),
        code(&q.task_done()),
    ];
    assert_eq!(codes(&after), "SSSD");
    assert_eq!((q.len(), q.unfinished_tasks()), (0, 0));
}

/// `test_shutdown_immediate` and `_shutdown_all_methods_in_one_thread(True)`:
/// an immediate shutdown by another process discards everything (here a
/// message of three records among them): gets say ShutDown at once, the
/// discarded tasks count as done (task_done has none left to mark), join
/// returns, and nothing counts as lost.
#[test]
fn immediate_shutdown_discards_everything() {
    let _g = fork::serial();
    let q = JoinableQueue::builder()
        .max_items(3)
        .ring_bytes(4096)
        .build()
        .unwrap();
    q.put_bytes(b"L").unwrap();
    q.put_bytes(&vec![7u8; 2500]).unwrap();
    q.put_bytes(b"O").unwrap();
    assert_eq!((q.len(), q.unfinished_tasks()), (3, 3));
    let shut = {
        let q = q.clone();
        in_child(move || vec![code(&q.shutdown(true))])
    };
    assert_eq!(codes(&shut), "o");
    assert!(q.is_shutdown());
    assert_eq!((q.len(), q.unfinished_tasks()), (0, 0));
    let after = [
        code(&q.put_bytes(b"E")),
        code(&q.try_put_bytes(b"W")),
        code(&q.get_bytes()),
        code(&q.try_get_bytes()),
        code(&q.task_done()),
        code(&q.join_timeout(WAIT)),
    ];
    assert_eq!(codes(&after), "SSSSDo");
    assert_eq!(q.lost_to_dead_members(), 0);
    assert!(q.task_holders().is_empty());
}

/// `test_shutdown_allowed_transitions`: shutdown, then immediate shutdown
/// (which discards what the first left), then shutdown again (which undoes
/// nothing).
#[test]
fn shutdown_transitions() {
    let _g = fork::serial();
    let q = Queue::new().unwrap();
    q.put_bytes(b"a").unwrap();
    q.put_bytes(b"b").unwrap();
    q.shutdown(false).unwrap();
    assert_eq!(q.len(), 2);
    let upgraded = {
        let q = q.clone();
        in_child(move || vec![code(&q.shutdown(true)), q.len() as u8])
    };
    assert_eq!(upgraded, [b'o', 0]);
    q.shutdown(false).unwrap();
    assert!(q.is_shutdown());
    assert_eq!(q.len(), 0);
    assert_eq!(code(&q.get_bytes()), b'S');
}

/// Nanoseconds since `base` (an `Instant` taken before the fork: every
/// process reads the same monotonic clock).
fn since(base: Instant) -> u64 {
    base.elapsed().as_nanos() as u64
}

/// `test_shutdown_pending_get` and `_shutdown_all_methods_in_many_threads`,
/// across processes: getters blocked on an empty queue, putters blocked on a
/// full one and one blocked in the middle of a message larger than the ring
/// all return ShutDown once the parent shuts the queues down. Prints the
/// wake latency (not asserted).
#[test]
fn shutdown_wakes_blocked_getters_and_putters() {
    for immediate in [false, true] {
        let _g = fork::serial();
        let empty = Queue::new().unwrap();
        let full = Queue::builder()
            .max_items(1)
            .ring_bytes(4096)
            .build()
            .unwrap();
        full.put_bytes(b"x").unwrap();
        let streaming = Queue::builder().ring_bytes(4096).build().unwrap();
        let base = Instant::now();
        let blocked = |q: &Queue, what: u8| {
            let q = q.clone();
            fork::spawn(move || {
                let r = match what {
                    b'g' => code(&q.get_bytes()),
                    b'p' => code(&q.put_bytes(b"y")),
                    _ => code(&q.put_bytes(&vec![1u8; 100_000])),
                };
                let mut out = vec![r];
                out.extend(since(base).to_le_bytes());
                out
            })
            .unwrap()
        };
        let children = vec![
            blocked(&empty, b'g'),
            blocked(&empty, b'g'),
            blocked(&full, b'p'),
            blocked(&full, b'p'),
            blocked(&streaming, b's'),
        ];
        // Let them block (if one has not yet, it gets ShutDown all the same).
        std::thread::sleep(Duration::from_millis(100));
        let mut t0 = Vec::new();
        for q in [&empty, &full, &streaming] {
            t0.push(since(base));
            q.shutdown(immediate).unwrap();
        }
        let reports = fork::wait_all(children, WAIT).unwrap();
        let mut results = Vec::new();
        let mut waits = Vec::new();
        for (r, queue) in reports.into_iter().zip([0, 0, 1, 1, 2]) {
            let out = r.expect_success();
            results.push(out[0]);
            let woke = u64::from_le_bytes(out[1..9].try_into().unwrap());
            waits.push(woke.saturating_sub(t0[queue]) / 1000);
        }
        eprintln!(
            "shutdown(immediate={immediate}): getters, putters, streaming putter returned {waits:?} us after it began"
        );
        assert_eq!(codes(&results), "SSSSS", "immediate {immediate}");
        // The streaming put was abandoned: nothing of it is delivered, and
        // the message that was in `full` is drained (or was discarded).
        assert_eq!(code(&streaming.get_bytes()), b'S');
        let left = if immediate { "S" } else { "oS" };
        let got: Vec<u8> = (0..left.len()).map(|_| code(&full.get_bytes())).collect();
        assert_eq!(codes(&got), left);
        assert_eq!(streaming.lost_to_dead_members(), 0);
    }
}

/// `_shutdown_put_join(True)` and `(False)`: a join blocked in another
/// process returns when an immediate shutdown discards the unfinished
/// task; after a plain shutdown it still waits, until the task is done.
#[test]
fn shutdown_and_a_blocked_join() {
    for immediate in [true, false] {
        let _g = fork::serial();
        let q = JoinableQueue::bounded(2).unwrap();
        q.put_bytes(b"Y").unwrap();
        let joiner = {
            let q = q.clone();
            fork::spawn(move || {
                q.join();
                vec![q.unfinished_tasks() as u8]
            })
            .unwrap()
        };
        std::thread::sleep(Duration::from_millis(50));
        q.shutdown(immediate).unwrap();
        if !immediate {
            let still = q.join_timeout(Duration::from_millis(20));
            assert!(matches!(
                still,
                Err(Error::JoinTimeout { unfinished: 1, .. })
            ));
            assert_eq!(q.get_bytes().unwrap(), b"Y");
            q.task_done().unwrap();
        }
        assert_eq!(joiner.wait(WAIT).unwrap().expect_success(), [0]);
        assert_eq!(q.unfinished_tasks(), 0);
    }
}

/// `test_shutdown_get_task_done_join` (immediate): a task taken before an
/// immediate shutdown still needs its task_done, which another process may
/// call; the discarded ones do not; one task_done too many is refused.
#[test]
fn task_done_after_immediate_shutdown() {
    let _g = fork::serial();
    let q = JoinableQueue::new().unwrap();
    for m in [b"a", b"b", b"c"] {
        q.put_bytes(m).unwrap();
    }
    assert_eq!(q.get_bytes().unwrap(), b"a");
    q.shutdown(true).unwrap();
    assert_eq!((q.len(), q.unfinished_tasks()), (0, 1));
    let me = std::process::id() as i32;
    match q.join_timeout(Duration::from_millis(20)) {
        Err(Error::JoinTimeout {
            unfinished,
            holders,
        }) => {
            assert_eq!(unfinished, 1);
            assert_eq!(holders.len(), 1);
            assert_eq!((holders[0].pid, holders[0].count), (me, 1));
        }
        other => panic!("{other:?}"),
    }
    let done = {
        let q = q.clone();
        in_child(move || vec![code(&q.task_done()), code(&q.task_done())])
    };
    assert_eq!(codes(&done), "oD");
    assert_eq!(q.unfinished_tasks(), 0);
    assert_eq!(code(&q.join_timeout(WAIT)), b'o');
}

/// A process SIGKILLed inside a shutdown leaves the queue shut down or not,
/// never half: killed right after the decision (plain shutdown), the queue
/// is shut down and its messages are still drained; killed in the middle of
/// an immediate shutdown's drain (after one message, or inside a commit of
/// a message of three records), the queue is shut down, empty, and its
/// tasks done for every process at once; the next get finishes the drain;
/// nothing counts as lost.
#[test]
fn a_process_killed_inside_shutdown() {
    let cases = [
        (KillPoint::ShutdownStored, 1, false),
        (KillPoint::ShutdownMidDrain, 1, true),
        (KillPoint::ConsumerMidCommit, 1, true),
        (KillPoint::ConsumerMidCommit, 3, true),
    ];
    for (point, nth, immediate) in cases {
        let _g = fork::serial();
        let q = JoinableQueue::builder().ring_bytes(4096).build().unwrap();
        q.put_bytes(&vec![7u8; 2500]).unwrap();
        q.put_bytes(b"b").unwrap();
        q.put_bytes(b"c").unwrap();
        let victim = {
            let q = q.clone();
            fork::run(WAIT, move || {
                set_kill_point(Some(point), nth);
                let _ = q.shutdown(immediate);
                vec![b'!'] // not reached
            })
            .unwrap()
        };
        let case = format!("{point:?} #{nth}");
        assert_eq!(victim.outcome, Outcome::Signaled(libc::SIGKILL), "{case}");
        assert!(q.is_shutdown(), "{case}");
        assert_eq!(code(&q.put_bytes(b"late")), b'S', "{case}");
        if immediate {
            assert_eq!((q.len(), q.unfinished_tasks()), (0, 0), "{case}");
            let seen_elsewhere = {
                let q = q.clone();
                in_child(move || {
                    vec![
                        q.len() as u8,
                        q.unfinished_tasks() as u8,
                        code(&q.join_timeout(WAIT)),
                        code(&q.get_bytes()),
                    ]
                })
            };
            assert_eq!(seen_elsewhere, [0, 0, b'o', b'S'], "{case}");
        } else {
            assert_eq!(q.len(), 3, "{case}");
            assert_eq!(q.get_bytes().unwrap().len(), 2500, "{case}");
            assert_eq!(q.get_bytes().unwrap(), b"b", "{case}");
            assert_eq!(q.get_bytes().unwrap(), b"c", "{case}");
            for _ in 0..3 {
                q.task_done().unwrap();
            }
        }
        assert_eq!(code(&q.get_bytes()), b'S', "{case}");
        assert_eq!(q.lost_to_dead_members(), 0, "{case}");
        assert!(q.task_holders().is_empty(), "{case}");
    }
}

/// How the last consumer goes away. (Dropping its handle is not here: a
/// forked child holds a copy of every handle its parent had, in memory it
/// never frees, so only `close_consumer`, `close`, exit or death make a
/// child stop being a consumer.)
#[derive(Debug, Clone, Copy)]
enum Leaves {
    CloseConsumer,
    Close,
    Exits,
    IsKilled,
}

/// No consumer left: a put waiting for room on a full queue (in another
/// process) gets Closed once the last consumer goes, whichever way it goes;
/// from then on every put gets Closed at once, `try_put` too (not Full).
/// What was put stays put.
#[test]
fn puts_get_closed_once_every_consumer_is_gone() {
    use Leaves::*;
    for how in [CloseConsumer, Close, Exits, IsKilled] {
        let _g = fork::serial();
        let q = Queue::bounded(1).unwrap();
        let go = Queue::new().unwrap();
        let consumer = {
            let (q, go) = (q.clone(), go.clone());
            fork::spawn(move || {
                q.close_producer();
                go.close_producer();
                let _ = go.get_bytes(); // "go"
                match how {
                    CloseConsumer => q.close_consumer(),
                    Close => q.close(),
                    Exits => return Vec::new(),
                    IsKilled => {}
                }
                let _ = go.get_bytes(); // "release" (or killed waiting)
                Vec::new()
            })
            .unwrap()
        };
        q.close_consumer(); // this process only produces
        let putter = {
            let q = q.clone();
            fork::spawn(move || vec![code(&q.put_bytes(b"1")), code(&q.put_bytes(b"2"))]).unwrap()
        };
        // Let the second put wait for room (if it has not yet, it gets
        // Closed all the same).
        std::thread::sleep(Duration::from_millis(50));
        if let IsKilled = how {
            consumer.signal(libc::SIGKILL).unwrap();
        } else {
            go.put_bytes(b"go").unwrap();
        }
        let case = format!("{how:?}");
        assert_eq!(
            codes(&putter.wait(WAIT).unwrap().expect_success()),
            "oC",
            "{case}"
        );
        let after = [
            code(&q.put_bytes(b"3")),
            code(&q.try_put_bytes(b"4")),
            code(&q.put_bytes_timeout(b"5", WAIT)),
        ];
        assert_eq!(codes(&after), "CCC", "{case}");
        assert_eq!(q.len(), 1, "{case}");
        go.put_bytes(b"release").unwrap();
        let outcome = consumer.wait(WAIT).unwrap().outcome;
        let expected = match how {
            IsKilled => Outcome::Signaled(libc::SIGKILL),
            _ => Outcome::Exited(0),
        };
        assert_eq!(outcome, expected, "{case}");
    }
}

/// A consumer's handle after `close_consumer()`: its gets say Closed, its
/// puts still work; while another process may still consume, a full
/// queue's `try_put` says Full, not Closed.
#[test]
fn close_consumer_in_one_process() {
    let _g = fork::serial();
    let q = Queue::bounded(1).unwrap();
    let other = {
        let q = q.clone();
        fork::spawn(move || {
            q.close_consumer();
            vec![
                code(&q.get_bytes()),
                code(&q.try_get_bytes()),
                code(&q.put_bytes(b"x")),
                code(&q.try_put_bytes(b"y")),
            ]
        })
        .unwrap()
    };
    assert_eq!(codes(&other.wait(WAIT).unwrap().expect_success()), "CCoF");
    assert_eq!(q.get_bytes().unwrap(), b"x");
}

/// A child holds one of `q`'s locks (as a process in the middle of a put or
/// a get would) for `hold`, then releases it. Returns once it holds it.
fn hold_lock(q: &Queue, which: QueueLock, hold: Duration) -> fork::Child {
    let ready = Queue::new().unwrap();
    let child = {
        let (q, ready) = (q.clone(), ready.clone());
        fork::spawn(move || {
            let lock = q.lock_for_tests(which);
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

/// Non-blocking and timed calls beside a lock held by another process:
/// a zero timeout is never weaker than `try_*` (it waits, as they do, for a
/// holder that is moving a message: here one that lets go after 50 ms), and
/// `try_put` beside a put waiting on a full queue says Full instead of
/// waiting for it.
#[test]
fn zero_timeouts_and_try_calls_beside_a_held_lock() {
    let _g = fork::serial();
    let q = Queue::bounded(2).unwrap();
    q.put_bytes(b"a").unwrap();
    q.put_bytes(b"b").unwrap();
    let mut results = Vec::new();
    // A get beside a consumer that holds the lock, with messages waiting.
    let holder = hold_lock(&q, QueueLock::Consumer, Duration::from_millis(50));
    results.push(code(&q.get_bytes_timeout(Duration::ZERO)));
    holder.wait(WAIT).unwrap().expect_success();
    let holder = hold_lock(&q, QueueLock::Consumer, Duration::from_millis(50));
    results.push(code(&q.try_get_bytes()));
    holder.wait(WAIT).unwrap().expect_success();
    // A put beside a producer that holds the lock, with a slot free.
    let holder = hold_lock(&q, QueueLock::Producer, Duration::from_millis(50));
    results.push(code(&q.put_bytes_timeout(b"c", Duration::ZERO)));
    holder.wait(WAIT).unwrap().expect_success();
    let holder = hold_lock(&q, QueueLock::Producer, Duration::from_millis(50));
    results.push(code(&q.try_put_bytes(b"d")));
    holder.wait(WAIT).unwrap().expect_success();
    assert_eq!(codes(&results), "oooo");
    // Full: a put in another process waits for a slot, holding the lock;
    // try_put and a zero timeout answer at once (Full, Timeout).
    let waiting = {
        let q = q.clone();
        fork::spawn(move || vec![code(&q.put_bytes(b"e"))]).unwrap()
    };
    std::thread::sleep(Duration::from_millis(50));
    let answers = {
        let q = q.clone();
        fork::run(Duration::from_secs(5), move || {
            vec![
                code(&q.try_put_bytes(b"f")),
                code(&q.put_bytes_timeout(b"g", Duration::ZERO)),
            ]
        })
        .unwrap()
    };
    assert_eq!(answers.outcome, Outcome::Exited(0));
    assert_eq!(codes(&answers.output), "FT");
    assert_eq!(q.get_bytes().unwrap(), b"c");
    assert_eq!(codes(&waiting.wait(WAIT).unwrap().expect_success()), "o");
    let rest: Vec<Vec<u8>> = (0..2).map(|_| q.get_bytes().unwrap()).collect();
    assert_eq!(rest, [b"d".to_vec(), b"e".to_vec()]);
}
