//! `JoinableQueue` across forked processes: CPython's `test_task_done`,
//! too many `task_done` calls, joins with nothing to wait for, get and
//! `task_done` in a grandchild, put/get/`task_done`/join in four processes,
//! a proptest of random interleavings checked against a model counter, joins
//! that explain who holds a task (a SIGKILLed worker included), and the
//! per-process-counter pitfall caught.
//!
//! Every test holds `fork::serial()`; children never print, they return
//! bytes.

use std::time::{Duration, Instant};

use ipc_harness::codec::{decode_value, encode_value};
use ipc_harness::error::TaskHolder;
use ipc_harness::harness::channel::Property;
use ipc_harness::harness::check::check;
use ipc_harness::harness::fork::{self, Child};
use ipc_harness::harness::proptest_config;
use ipc_harness::harness::run::run;
use ipc_harness::harness::scenario::{Pacing, ProducerPlan, Scenario};
use ipc_harness::harness::trace::{
    ConsumerTrace, ProducerTrace, SendOutcome, SendRecord, StreamEnd, TaskTrace, Traces,
};
use ipc_harness::harness::transports::JoinableChannel;
use ipc_harness::queue::{KillPoint, set_kill_point};
use ipc_harness::sys;
use ipc_harness::{Error, JoinableQueue, Receiver, Sender, pipe};
use proptest::prelude::*;
use proptest::test_runner::TestRunner;

const WAIT: Duration = Duration::from_secs(20);

/// CPython `_TestQueue.test_task_done`: four workers get and `task_done`,
/// the parent puts 0..9 and joins; then one sentinel per worker stops them.
#[test]
fn cpython_test_task_done() {
    let _g = fork::serial();
    let q = JoinableQueue::new().unwrap();
    let workers: Vec<Child> = (0..4)
        .map(|_| {
            let q = q.clone();
            fork::spawn(move || {
                q.close_producer();
                let mut mine = Vec::new();
                while let Some(n) = q.get::<Option<u32>>().unwrap() {
                    std::thread::sleep(Duration::from_millis(2)); // the work
                    mine.push(n);
                    q.task_done().unwrap();
                }
                encode_value(&mine).unwrap()
            })
            .unwrap()
        })
        .collect();
    for i in 0..10u32 {
        q.put(&Some(i)).unwrap();
    }
    q.join_timeout(WAIT).unwrap();
    // Returned only once every item was taken and marked done.
    assert_eq!(q.unfinished_tasks(), 0);
    assert!(q.is_empty());
    assert!(q.task_holders().is_empty());
    for _ in 0..4 {
        q.put(&None::<u32>).unwrap();
    }
    let mut all: Vec<u32> = fork::wait_all(workers, WAIT)
        .unwrap()
        .into_iter()
        .flat_map(|r| decode_value::<Vec<u32>>(&r.expect_success()).unwrap())
        .collect();
    all.sort_unstable();
    assert_eq!(all, (0..10).collect::<Vec<_>>());
    // The sentinels were taken and never marked done, as in CPython.
    assert_eq!(q.unfinished_tasks(), 4);
}

#[test]
fn too_many_task_done_calls_are_refused_and_change_nothing() {
    let _g = fork::serial();
    let q = JoinableQueue::new().unwrap();
    assert!(matches!(q.task_done(), Err(Error::TaskDoneTooManyTimes)));
    assert_eq!(q.unfinished_tasks(), 0);
    q.put_bytes(b"one").unwrap();
    q.put_bytes(b"two").unwrap();
    // Another process finishes one (taking it first) and then overreaches.
    let child = {
        let q = q.clone();
        fork::spawn(move || {
            q.close_producer();
            let got = q.get_bytes().unwrap();
            q.task_done().unwrap();
            q.task_done().unwrap(); // "two" is put, not taken: Python allows it
            let third = q.task_done();
            encode_value(&(got, matches!(third, Err(Error::TaskDoneTooManyTimes)))).unwrap()
        })
        .unwrap()
    };
    let (got, refused): (Vec<u8>, bool) =
        decode_value(&child.wait(WAIT).unwrap().expect_success()).unwrap();
    assert_eq!(got, b"one");
    assert!(refused, "the third task_done must be refused");
    assert_eq!(q.unfinished_tasks(), 0);
    assert!(matches!(q.task_done(), Err(Error::TaskDoneTooManyTimes)));
    assert_eq!(q.unfinished_tasks(), 0);
    // The refused calls changed nothing: one more put, one more task_done.
    q.put_bytes(b"three").unwrap();
    assert_eq!(q.unfinished_tasks(), 1);
    q.task_done().unwrap();
    assert!(matches!(q.task_done(), Err(Error::TaskDoneTooManyTimes)));
}

#[test]
fn join_with_no_tasks_returns_at_once() {
    let _g = fork::serial();
    let q = JoinableQueue::new().unwrap();
    let t = Instant::now();
    q.join();
    q.join_timeout(Duration::ZERO).unwrap();
    assert!(t.elapsed() < Duration::from_millis(50));
    q.put_bytes(b"x").unwrap();
    q.get_bytes().unwrap();
    q.task_done().unwrap();
    let t = Instant::now();
    q.join();
    assert!(t.elapsed() < Duration::from_millis(50));
    // In another process too.
    let q2 = q.clone();
    let r = fork::run(WAIT, move || {
        let t = Instant::now();
        q2.join();
        encode_value(&(t.elapsed().as_millis() as u64)).unwrap()
    })
    .unwrap();
    assert!(decode_value::<u64>(&r.expect_success()).unwrap() < 50);
}

/// The handle's Debug shows the queue's length and its unfinished tasks;
/// a join with no end to its timeout (`Duration::MAX`) returns at once with
/// nothing unfinished and waits for the last `task_done` otherwise, as
/// `join` does.
#[test]
fn debug_output_and_a_join_timeout_with_no_end() {
    let _g = fork::serial();
    let q = JoinableQueue::new().unwrap();
    q.join_timeout(Duration::MAX).unwrap();
    q.put_bytes(b"a").unwrap();
    q.put_bytes(b"b").unwrap();
    q.get_bytes().unwrap();
    assert_eq!(
        format!("{q:?}"),
        "JoinableQueue { len: 1, unfinished_tasks: 2 }"
    );
    assert_eq!(q.as_queue().len(), 1);
    q.get_bytes().unwrap();
    q.task_done().unwrap();
    let done = {
        let q = q.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            q.task_done().unwrap();
        })
    };
    q.join_timeout(Duration::MAX).unwrap();
    assert_eq!(q.unfinished_tasks(), 0);
    done.join().unwrap();
    // The same through join(), which has no timeout at all.
    q.put_bytes(b"c").unwrap();
    q.get_bytes().unwrap();
    let done = {
        let q = q.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            q.task_done().unwrap();
        })
    };
    q.join();
    assert_eq!(q.unfinished_tasks(), 0);
    done.join().unwrap();
}

#[test]
fn join_waits_for_a_grandchild_that_gets_and_finishes() {
    let _g = fork::serial();
    let q = JoinableQueue::new().unwrap();
    for i in 0..3u32 {
        q.put(&i).unwrap();
    }
    let child = {
        let q = q.clone();
        fork::spawn(move || {
            let q2 = q.clone();
            let grandchild = fork::spawn(move || {
                q2.close_producer();
                for _ in 0..3 {
                    q2.get::<u32>().unwrap();
                    std::thread::sleep(Duration::from_millis(40));
                    q2.task_done().unwrap();
                }
                Vec::new()
            })
            .unwrap();
            drop(q);
            grandchild.wait(WAIT).unwrap().expect_success();
            Vec::new()
        })
        .unwrap()
    };
    let t = Instant::now();
    q.join_timeout(WAIT).unwrap();
    assert!(
        t.elapsed() >= Duration::from_millis(100),
        "join returned after {:?}, before the grandchild's three tasks were done",
        t.elapsed()
    );
    assert_eq!(q.unfinished_tasks(), 0);
    child.wait(WAIT).unwrap().expect_success();
}

#[test]
fn put_get_task_done_and_join_in_four_processes() {
    let _g = fork::serial();
    let q = JoinableQueue::new().unwrap();
    let spawn_with = |f: fn(&JoinableQueue) -> Vec<u8>| {
        let q = q.clone();
        fork::spawn(move || f(&q)).unwrap()
    };
    let putter = spawn_with(|q| {
        for i in 0..5u32 {
            q.put(&i).unwrap();
        }
        Vec::new()
    });
    putter.wait(WAIT).unwrap().expect_success();
    assert_eq!(q.unfinished_tasks(), 5);
    let joiner = spawn_with(|q| {
        let r = q.join_timeout(WAIT);
        encode_value(&(r.is_ok(), q.unfinished_tasks())).unwrap()
    });
    let joiner_pid = joiner.pid();
    std::thread::sleep(Duration::from_millis(50));
    assert!(
        sys::process_alive(joiner_pid),
        "join returned with 5 tasks unfinished"
    );
    let getter = spawn_with(|q| {
        for _ in 0..5 {
            q.get::<u32>().unwrap();
        }
        Vec::new()
    });
    let getter_pid = getter.pid();
    getter.wait(WAIT).unwrap().expect_success();
    std::thread::sleep(Duration::from_millis(30));
    assert!(
        sys::process_alive(joiner_pid),
        "join returned with 5 tasks taken, not done"
    );
    assert_eq!(
        q.task_holders(),
        vec![TaskHolder {
            pid: getter_pid,
            count: 5,
            alive: false
        }]
    );
    let finisher = spawn_with(|q| {
        for _ in 0..5 {
            q.task_done().unwrap();
        }
        Vec::new()
    });
    finisher.wait(WAIT).unwrap().expect_success();
    let (ok, counter): (bool, u64) =
        decode_value(&joiner.wait(WAIT).unwrap().expect_success()).unwrap();
    assert!(ok);
    assert_eq!(counter, 0, "the counter at the join's return");
    assert!(q.task_holders().is_empty());
}

fn now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

/// No lost wake-ups, and no waiting for the next poll: a joiner asleep in
/// the kernel is woken by the `task_done` that finishes the last task, not
/// by its 10 ms re-check. The median latency over 21 rounds must be far
/// below that period.
#[test]
fn task_done_wakes_a_sleeping_joiner_at_once() {
    let _g = fork::serial();
    let q = JoinableQueue::new().unwrap();
    let (go_tx, mut go_rx) = pipe().unwrap();
    let (back_tx, mut back_rx) = pipe().unwrap();
    const ROUNDS: usize = 21;
    let joiner = {
        let q = q.clone();
        fork::spawn(move || {
            for _ in 0..ROUNDS {
                go_rx.recv_bytes().unwrap();
                back_tx.send_bytes(b"joining").unwrap();
                q.join();
                back_tx.send_bytes(&now_ns().to_le_bytes()).unwrap();
            }
            Vec::new()
        })
        .unwrap()
    };
    let mut latencies = Vec::new();
    for _ in 0..ROUNDS {
        q.put_bytes(b"job").unwrap();
        q.get_bytes().unwrap();
        go_tx.send_bytes(b"go").unwrap();
        assert_eq!(back_rx.recv_bytes_timeout(WAIT).unwrap(), b"joining");
        std::thread::sleep(Duration::from_millis(3)); // past its spinning: asleep
        let t0 = now_ns();
        q.task_done().unwrap();
        let t1 = u64::from_le_bytes(
            back_rx.recv_bytes_timeout(WAIT).unwrap()[..8]
                .try_into()
                .unwrap(),
        );
        latencies.push(t1.saturating_sub(t0));
    }
    joiner.wait(WAIT).unwrap().expect_success();
    latencies.sort_unstable();
    let median = Duration::from_nanos(latencies[ROUNDS / 2]);
    assert!(
        median < Duration::from_millis(2),
        "a joiner woke {median:?} after the last task_done (median of {ROUNDS})"
    );
}

/// Three joiners in three processes all return after the last `task_done`,
/// none before it.
#[test]
fn every_waiting_process_is_released() {
    let _g = fork::serial();
    let q = JoinableQueue::new().unwrap();
    q.put_bytes(b"a").unwrap();
    q.put_bytes(b"b").unwrap();
    let joiners: Vec<Child> = (0..3)
        .map(|_| {
            let q = q.clone();
            fork::spawn(move || {
                q.join_timeout(WAIT).unwrap();
                encode_value(&(now_ns(), q.unfinished_tasks())).unwrap()
            })
            .unwrap()
        })
        .collect();
    q.get_bytes().unwrap();
    q.get_bytes().unwrap();
    q.task_done().unwrap();
    std::thread::sleep(Duration::from_millis(50));
    for j in &joiners {
        assert!(
            sys::process_alive(j.pid()),
            "a join returned with a task unfinished"
        );
    }
    let last = now_ns();
    q.task_done().unwrap();
    for r in fork::wait_all(joiners, WAIT).unwrap() {
        let (at, counter): (u64, u64) = decode_value(&r.expect_success()).unwrap();
        assert!(at >= last, "a join returned before the last task_done");
        assert_eq!(counter, 0);
    }
}

/// A worker SIGKILLed after its get and before its `task_done`, another
/// alive and holding a task, one task never taken: the join explains all.
#[test]
fn join_timeout_names_a_killed_worker() {
    let _g = fork::serial();
    let q = JoinableQueue::new().unwrap();
    for i in 0..3u32 {
        q.put(&i).unwrap();
    }
    let victim = {
        let q = q.clone();
        fork::spawn(move || {
            q.get::<u32>().unwrap();
            let _ = sys::kill(sys::getpid(), libc::SIGKILL);
            unreachable!("killed itself");
        })
        .unwrap()
    };
    let victim_pid = victim.pid();
    victim.wait(WAIT).unwrap(); // killed, and reaped
    let (release_tx, mut release_rx) = pipe().unwrap();
    let (took_tx, mut took_rx) = pipe().unwrap();
    let holder = {
        let q = q.clone();
        fork::spawn(move || {
            q.get::<u32>().unwrap();
            took_tx.send_bytes(b"took").unwrap();
            let _ = release_rx.recv_bytes(); // hold the task until told
            Vec::new()
        })
        .unwrap()
    };
    assert_eq!(took_rx.recv_bytes_timeout(WAIT).unwrap(), b"took");
    let t = Instant::now();
    let err = q.join_timeout(Duration::from_millis(100)).unwrap_err();
    assert!(t.elapsed() >= Duration::from_millis(100));
    match &err {
        Error::JoinTimeout {
            unfinished,
            holders,
        } => {
            assert_eq!(*unfinished, 3);
            let mut holders = holders.clone();
            holders.sort_by_key(|h| h.alive);
            assert_eq!(
                holders,
                vec![
                    TaskHolder {
                        pid: victim_pid,
                        count: 1,
                        alive: false
                    },
                    TaskHolder {
                        pid: holder.pid(),
                        count: 1,
                        alive: true
                    },
                ]
            );
        }
        other => panic!("expected JoinTimeout, got {other:?}"),
    }
    let text = err.to_string();
    assert!(text.starts_with("join timed out: 3 tasks unfinished; taken and not done by "));
    assert!(
        text.contains(&format!("pid {victim_pid} (1, dead)")),
        "{text}"
    );
    assert!(
        text.contains(&format!("pid {} (1)", holder.pid())),
        "{text}"
    );
    assert!(text.ends_with("; 1 not taken yet"), "{text}");
    release_tx.send_bytes(b"go").unwrap();
    holder.wait(WAIT).unwrap().expect_success();
}

/// A consumer killed in the middle of a multi-record message: the queue
/// skips the rest, and the join names the dead consumer as its holder.
#[test]
fn join_timeout_names_a_consumer_killed_inside_a_message() {
    let _g = fork::serial();
    let q = JoinableQueue::builder().ring_bytes(4096).build().unwrap();
    q.put_bytes(&vec![7u8; 2500]).unwrap(); // three records
    q.put_bytes(b"next").unwrap();
    let victim = {
        let q = q.clone();
        fork::spawn(move || {
            set_kill_point(Some(KillPoint::ConsumerMidItem), 1);
            let _ = q.get_bytes();
            Vec::new()
        })
        .unwrap()
    };
    let victim_pid = victim.pid();
    victim.wait(WAIT).unwrap();
    assert_eq!(q.get_bytes().unwrap(), b"next");
    q.task_done().unwrap();
    let err = q.join_timeout(Duration::from_millis(50)).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "join timed out: 1 task unfinished; taken and not done by pid {victim_pid} (1, dead)"
        )
    );
}

/// A process SIGKILLed inside `task_done`, after the holder table changed
/// and before the total did: its commit is rolled forward, so the last task
/// it finished counts, and a join already waiting returns.
#[test]
fn a_task_done_killed_mid_commit_still_counts() {
    let _g = fork::serial();
    let q = JoinableQueue::new().unwrap();
    q.put_bytes(b"a").unwrap();
    q.put_bytes(b"b").unwrap();
    q.get_bytes().unwrap();
    q.get_bytes().unwrap();
    q.task_done().unwrap();
    let joiner = {
        let q = q.clone();
        fork::spawn(move || {
            let r = q.join_timeout(WAIT);
            encode_value(&(r.is_ok(), q.unfinished_tasks(), now_ns())).unwrap()
        })
        .unwrap()
    };
    let victim = {
        let q = q.clone();
        fork::spawn(move || {
            set_kill_point(Some(KillPoint::TaskDoneMidCommit), 1);
            let _ = q.task_done();
            Vec::new()
        })
        .unwrap()
    };
    let r = victim.wait(WAIT).unwrap();
    assert_eq!(
        r.outcome,
        fork::Outcome::Signaled(libc::SIGKILL),
        "it must die at its kill point"
    );
    let dead_at = now_ns();
    let (ok, counter, returned_at): (bool, u64, u64) =
        decode_value(&joiner.wait(WAIT).unwrap().expect_success()).unwrap();
    assert!(
        ok,
        "the join must return once the dead task_done's commit lands"
    );
    let late = Duration::from_nanos(returned_at.saturating_sub(dead_at));
    assert!(
        late < Duration::from_secs(1),
        "the join returned {late:?} after the death: at its timeout, not at once"
    );
    assert_eq!(counter, 0);
    assert!(q.task_holders().is_empty());
    assert!(matches!(q.task_done(), Err(Error::TaskDoneTooManyTimes)));
}

// ---------------------------------------------------------------------------
// Random interleavings, checked against a model counter
// ---------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Put,
    Get,
    TaskDone,
    Join,
}

const R_OK: u8 = 0;
const R_TOO_MANY: u8 = 1;
const R_ERROR: u8 = 2;
const R_JOINING: u8 = 3;
const R_JOINED: u8 = 4;
const R_JOIN_TIMEOUT: u8 = 5;

fn reply(tx: &Sender, tag: u8, value: u64) {
    let mut b = vec![tag];
    b.extend_from_slice(&value.to_le_bytes());
    let _ = tx.send_bytes(&b);
}

fn parse(b: &[u8]) -> (u8, u64) {
    (b[0], u64::from_le_bytes(b[1..9].try_into().unwrap()))
}

/// One member process: runs the parent's commands on the queue and replies.
fn member(q: &JoinableQueue, mut cmds: Receiver, replies: Sender) -> Vec<u8> {
    while let Ok(cmd) = cmds.recv_bytes() {
        let result = match cmd[0] {
            0 => q.put_bytes(b"task"),
            1 => q.get_bytes_timeout(Duration::from_secs(5)).map(drop),
            2 => q.task_done(),
            _ => {
                reply(&replies, R_JOINING, 0);
                match q.join_timeout(Duration::from_secs(5)) {
                    // The counter at the join's return.
                    Ok(()) => reply(&replies, R_JOINED, q.unfinished_tasks()),
                    Err(_) => reply(&replies, R_JOIN_TIMEOUT, q.unfinished_tasks()),
                }
                continue;
            }
        };
        match result {
            Ok(()) => reply(&replies, R_OK, 0),
            Err(Error::TaskDoneTooManyTimes) => reply(&replies, R_TOO_MANY, 0),
            Err(_) => reply(&replies, R_ERROR, 0),
        }
    }
    Vec::new()
}

/// Runs `schedule` (process, op) over `n` member processes, one step at a
/// time, against a model of the queue (messages waiting, tasks unfinished).
/// Returns every violation: a join that returns while the model count is
/// not zero (early), one that does not return once it is (late or never), a
/// counter at a join's return that is not zero, `task_done` accepted or
/// refused against the model, any other error.
fn run_schedule(q: &JoinableQueue, n: usize, schedule: &[(usize, Op)]) -> Vec<String> {
    let mut bad = Vec::new();
    let mut to_child: Vec<Option<(Receiver, Sender)>> = Vec::new();
    let mut parent_ends: Vec<(Sender, Receiver)> = Vec::new();
    for _ in 0..n {
        let (ctx, crx) = pipe().unwrap();
        let (rtx, rrx) = pipe().unwrap();
        to_child.push(Some((crx, rtx)));
        parent_ends.push((ctx, rrx));
    }
    let mut children = Vec::new();
    for i in 0..n {
        let mine = to_child[i].take().unwrap();
        let slots = &mut to_child;
        let parents = &mut parent_ends;
        let q = q.clone();
        children.push(
            fork::spawn(move || {
                slots.clear(); // other members' ends
                parents.clear(); // the parent's ends
                member(&q, mine.0, mine.1)
            })
            .unwrap(),
        );
        // `mine` moved into the closure: the parent's copy is dropped here.
    }
    let (mut len, mut unfinished) = (0u64, 0u64);
    let mut joining = vec![false; n];
    let ask = |ends: &mut (Sender, Receiver), cmd: u8| -> (u8, u64) {
        ends.0.send_bytes(&[cmd]).unwrap();
        parse(&ends.1.recv_bytes_timeout(WAIT).unwrap())
    };
    for (step, &(p, op)) in schedule.iter().enumerate() {
        // A pending join may not have returned: the count is not zero.
        for j in 0..n {
            if joining[j] {
                if let Ok(b) = parent_ends[j].1.recv_bytes_timeout(Duration::ZERO) {
                    bad.push(format!(
                        "step {step}: process {j}'s join returned {:?} with {unfinished} tasks unfinished",
                        parse(&b)
                    ));
                    joining[j] = false;
                }
            }
        }
        if joining[p] {
            continue; // busy joining
        }
        match op {
            Op::Put => {
                let (tag, _) = ask(&mut parent_ends[p], 0);
                if tag != R_OK {
                    bad.push(format!("step {step}: put failed ({tag})"));
                }
                len += 1;
                unfinished += 1;
            }
            Op::Get => {
                if len == 0 {
                    continue;
                }
                let (tag, _) = ask(&mut parent_ends[p], 1);
                if tag != R_OK {
                    bad.push(format!("step {step}: get failed ({tag})"));
                }
                len -= 1;
            }
            Op::TaskDone => {
                let (tag, _) = ask(&mut parent_ends[p], 2);
                match (tag, unfinished) {
                    (R_OK, 1..) => unfinished -= 1,
                    (R_TOO_MANY, 0) => {}
                    (tag, u) => bad.push(format!(
                        "step {step}: task_done answered {tag} with {u} tasks unfinished"
                    )),
                }
                if unfinished == 0 {
                    // Every pending join must return now, with a zero count.
                    for j in 0..n {
                        if joining[j] {
                            joining[j] = false;
                            expect_joined(&mut parent_ends[j].1, step, j, &mut bad);
                        }
                    }
                }
            }
            Op::Join => {
                parent_ends[p].0.send_bytes(&[3]).unwrap();
                let (tag, _) = parse(&parent_ends[p].1.recv_bytes_timeout(WAIT).unwrap());
                assert_eq!(tag, R_JOINING);
                if unfinished == 0 {
                    expect_joined(&mut parent_ends[p].1, step, p, &mut bad);
                } else {
                    // It must not return now: give an early return time to show.
                    if let Ok(b) = parent_ends[p]
                        .1
                        .recv_bytes_timeout(Duration::from_millis(20))
                    {
                        bad.push(format!(
                            "step {step}: process {p}'s join returned {:?} with {unfinished} tasks unfinished",
                            parse(&b)
                        ));
                    } else {
                        joining[p] = true;
                    }
                }
            }
        }
    }
    // Finish every task in the parent, so pending joins must return.
    for _ in 0..len {
        q.get_bytes_timeout(WAIT).unwrap();
    }
    for _ in 0..unfinished {
        if q.task_done().is_err() {
            bad.push("the parent's task_done was refused".into());
        }
    }
    for j in 0..n {
        if joining[j] {
            expect_joined(&mut parent_ends[j].1, schedule.len(), j, &mut bad);
        }
    }
    drop(parent_ends);
    for r in fork::wait_all(children, WAIT).unwrap() {
        if !r.is_success() {
            bad.push(format!("member {} {}", r.pid, r.outcome));
        }
    }
    bad
}

fn expect_joined(rx: &mut Receiver, step: usize, p: usize, bad: &mut Vec<String>) {
    match rx.recv_bytes_timeout(Duration::from_secs(3)) {
        Ok(b) => match parse(&b) {
            (R_JOINED, 0) => {}
            (R_JOINED, c) => bad.push(format!(
                "step {step}: process {p}'s join returned with the counter at {c}"
            )),
            other => bad.push(format!("step {step}: process {p}'s join ended {other:?}")),
        },
        Err(_) => bad.push(format!(
            "step {step}: process {p}'s join did not return once no task was unfinished"
        )),
    }
}

fn schedules() -> impl Strategy<Value = (usize, Vec<(usize, Op)>)> {
    (1usize..=6).prop_flat_map(|n| {
        let op = prop_oneof![
            3 => Just(Op::Put),
            3 => Just(Op::Get),
            3 => Just(Op::TaskDone),
            1 => Just(Op::Join),
        ];
        (Just(n), proptest::collection::vec((0..n, op), 1..30))
    })
}

#[test]
fn random_interleavings_join_exactly_when_the_count_reaches_zero() {
    let _g = fork::serial();
    let mut runner = TestRunner::new(proptest_config("proptest-regressions/joinable.txt", 16));
    let result = runner.run(&schedules(), |(n, schedule)| {
        let q = JoinableQueue::new().unwrap();
        let bad = run_schedule(&q, n, &schedule);
        prop_assert!(
            bad.is_empty(),
            "{n} processes, {schedule:?}:\n{}",
            bad.join("\n")
        );
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
}

/// The pitfall: a task counter each process keeps for itself. A process
/// that joins sees only its own puts, so its join returns at once while
/// another process's task is unfinished.
#[test]
fn a_per_process_counter_is_caught() {
    let _g = fork::serial();
    let pitfall = || {
        JoinableQueue::builder()
            .local_counter_pitfall(true)
            .build()
            .unwrap()
    };
    let bad = run_schedule(&pitfall(), 2, &[(0, Op::Put), (1, Op::Join)]);
    assert!(
        bad.iter()
            .any(|b| b.contains("join returned") && b.contains("1 tasks unfinished")),
        "{bad:?}"
    );
    // And from the other side: the getter's task_done is refused.
    let bad = run_schedule(
        &pitfall(),
        2,
        &[(0, Op::Put), (1, Op::Get), (1, Op::TaskDone)],
    );
    assert!(
        bad.iter().any(|b| b.contains("task_done answered 1")),
        "{bad:?}"
    );
    // The real queue passes both schedules.
    let q = JoinableQueue::new().unwrap();
    assert_eq!(
        run_schedule(
            &q,
            2,
            &[(0, Op::Put), (1, Op::Join), (0, Op::Get), (0, Op::TaskDone)]
        ),
        Vec::<String>::new()
    );
}

// ---------------------------------------------------------------------------
// The harness: JoinableChannel and the task-accounting check
// ---------------------------------------------------------------------------

fn two_by_two() -> Scenario {
    let plan = ProducerPlan {
        sizes: vec![0, 40, 5000, 100_000],
        pacing: Pacing::Burst,
    };
    Scenario {
        producers: vec![plan.clone(), plan],
        consumers: 2,
        ..Scenario::default()
    }
}

#[test]
fn the_harness_passes_the_joinable_queue_and_catches_the_pitfall() {
    let _g = fork::serial();
    let report = run(&JoinableChannel::DEFAULT, &two_by_two());
    assert!(report.broken_promises().is_empty(), "{report}");
    let pitfall = JoinableChannel {
        local_counter_pitfall: true,
        ..JoinableChannel::DEFAULT
    };
    let report = run(&pitfall, &two_by_two());
    assert!(report.has("TaskAccounting"), "{report}");
    assert!(report.violates(Property::TaskAccounting));
}

/// The oracle on made-up traces: a join that returned with a task
/// unfinished, a refused `task_done`, more done than taken, a join that never
/// returned, are each a violation; a clean trace is none.
#[test]
fn the_oracle_judges_task_accounting() {
    let scenario = Scenario::simple(&[3]);
    let traces = |tasks: TaskTrace| Traces {
        producers: vec![Ok(ProducerTrace {
            producer: 0,
            sends: vec![SendRecord {
                seq: 0,
                len: 3,
                outcome: SendOutcome::Ok,
            }],
            ..ProducerTrace::default()
        })],
        consumers: vec![Ok(ConsumerTrace {
            consumer: 0,
            receives: vec![ipc_harness::harness::payload::make(
                ipc_harness::harness::payload::MsgId {
                    producer: 0,
                    seq: 0,
                },
                3,
            )],
            end: StreamEnd::Closed,
            tasks: Some(tasks),
            stops: 0,
            storm_signals: 0,
        })],
    };
    let clean = TaskTrace {
        done: 1,
        joins: vec![0],
        ..TaskTrace::default()
    };
    assert_eq!(check(&scenario, &traces(clean.clone())), vec![]);
    let broken = [
        TaskTrace {
            joins: vec![1],
            ..clean.clone()
        },
        TaskTrace {
            done: 0,
            refused: vec!["task_done() called more times than items were put".into()],
            ..clean.clone()
        },
        TaskTrace {
            done: 2,
            ..clean.clone()
        },
        TaskTrace {
            joins: vec![],
            join_errors: vec!["join timed out".into()],
            ..clean
        },
    ];
    for t in broken {
        let v = check(&scenario, &traces(t.clone()));
        assert!(
            v.len() == 1 && v[0].kind() == "TaskAccounting",
            "{t:?} gave {v:?}"
        );
    }
}
