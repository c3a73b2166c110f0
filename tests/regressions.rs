//! One test per bug found so far, each named for what must hold now, with
//! a comment saying what broke and how it showed. A bug whose regression
//! test must sit elsewhere (a unit test of private code), or whose race
//! cannot be hit on purpose, has its comment here all the same, saying
//! where it is caught.
//!
//! Every test holds `fork::serial()` for its whole body.

use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use ipc_harness::harness::fault::{Fault, FaultKind, Target};
use ipc_harness::harness::fork::{self, Outcome};
use ipc_harness::harness::run::{RunOptions, run_with};
use ipc_harness::harness::scenario::Scenario;
use ipc_harness::harness::transports::PipeChannel;
use ipc_harness::queue::{Queue, QueueLock};
use ipc_harness::sys::{self, WriteKind};
use ipc_harness::{Error, pipe};

const WAIT: Duration = Duration::from_secs(30);

// ---------------------------------------------------------------------------
// Queue: a wake-up lost to a killed lock waiter stranded the other waiters
// ---------------------------------------------------------------------------

/// Waits (at most `WAIT`) until `ready()`.
fn wait_for(what: &str, ready: impl Fn() -> bool) {
    let start = Instant::now();
    while !ready() {
        assert!(start.elapsed() < WAIT, "never happened: {what}");
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// True while `pid` sleeps in `futex` on the word at `addr`, from the
/// system call number and first argument in `/proc/PID/syscall`.
fn sleeps_on(pid: i32, addr: usize) -> bool {
    let Ok(line) = std::fs::read_to_string(format!("/proc/{pid}/syscall")) else {
        return false;
    };
    let mut fields = line.split_whitespace();
    let nr = fields.next().and_then(|n| n.parse::<i64>().ok());
    let arg0 = fields
        .next()
        .and_then(|a| usize::from_str_radix(a.trim_start_matches("0x"), 16).ok());
    nr == Some(libc::SYS_futex) && arg0 == Some(addr)
}

/// Waits until process `holder` holds the `which` lock of `q`.
fn wait_until_held(q: &Queue, which: QueueLock, holder: i32) {
    let lock = q.lock_for_tests(which);
    wait_for("the holder holds the lock", || {
        lock.owner_tid() == holder as u32
    });
}

/// Puts the `which` lock of `q` in the state a killed waiter can leave it
/// in (found by the fault harness: `SIGKILL consumer 2 400-700 us into its
/// receive #0`, with 3 other consumers): another process holds the lock
/// and `waiter` sleeps in the kernel waiting for it, but the lock word no
/// longer says that anyone waits. In the real race, an unlock cleared the
/// word and woke one waiter, which was SIGKILLed before it could take the
/// lock, and another process took the free lock first (without the flag,
/// since it never waited); the kernel's rescue for a killed waiter (wake
/// another if the lock is free) then found an owner and did nothing.
fn lose_the_wake_up_of(q: &Queue, which: QueueLock, waiter: i32) {
    let lock = q.lock_for_tests(which);
    wait_for("the waiter sleeps on the lock", || {
        sleeps_on(waiter, lock.word_addr())
    });
    assert!(
        lock.lose_wake_up(),
        "a waiter sleeps, so the lock word said so"
    );
}

// Robust locks slept in `futex` until woken. When an unlock's wake-up went
// to a waiter that was SIGKILLed before it could take the lock, and another
// process took the free lock first, the kernel's rescue (wake another
// waiter if the lock is free) found an owner and did nothing: the other
// waiters slept on, a `get_bytes` forever, beside a free lock and a waiting
// message. Found by the fault harness (`SIGKILL consumer 2 400-700 us into
// its receive #0`, with 3 other consumers), shown as a consumer hung in
// `futex`. Fixed by waiting in bounded slices ("Robust locks wait in 10 ms
// slices"). The tests build the exact state the race leaves behind.
/// A consumer waiting for the consumer lock whose wake-up was lost still
/// takes the lock once it is free, and its message. Before locks waited in
/// bounded slices it slept in `futex` until its timeout (forever for
/// `get_bytes`), although the lock was free and the message waiting.
#[test]
fn a_lost_lock_wake_up_does_not_strand_a_waiting_consumer() {
    let _g = fork::serial();
    let q = Queue::new().unwrap();
    let get = |q: &Queue| {
        let q = q.clone();
        fork::spawn(move || q.get_bytes().unwrap()).unwrap()
    };
    // Holds the consumer lock while it waits on the empty queue.
    let holder = get(&q);
    wait_until_held(&q, QueueLock::Consumer, holder.pid());
    let waiter = get(&q);
    lose_the_wake_up_of(&q, QueueLock::Consumer, waiter.pid());
    q.put_bytes(b"first").unwrap();
    q.put_bytes(b"second").unwrap();
    let reports = fork::wait_all(vec![holder, waiter], WAIT).unwrap();
    assert_eq!(reports[0].outcome, Outcome::Exited(0), "{:?}", reports[0]);
    assert_eq!(
        reports[1].outcome,
        Outcome::Exited(0),
        "the waiter never took the free lock: {:?}",
        reports[1]
    );
    assert_eq!(reports[0].output, b"first");
    assert_eq!(reports[1].output, b"second");
    assert!(q.is_empty());
}

// The same lost wake-up, for the producer lock.
/// A producer waiting for the producer lock whose wake-up was lost still
/// takes the lock once it is free (while another producer holds it,
/// waiting for ring room).
#[test]
fn a_lost_lock_wake_up_does_not_strand_a_waiting_producer() {
    let _g = fork::serial();
    let q = Queue::builder().ring_bytes(4096).build().unwrap();
    let put = |q: &Queue, msg: Vec<u8>| {
        let q = q.clone();
        fork::spawn(move || {
            q.put_bytes(&msg).unwrap();
            Vec::new()
        })
        .unwrap()
    };
    // Holds the producer lock while it waits for room: nobody takes yet.
    let big = vec![7u8; 3 * 4096];
    let holder = put(&q, big.clone());
    wait_until_held(&q, QueueLock::Producer, holder.pid());
    let waiter = put(&q, b"second".to_vec());
    lose_the_wake_up_of(&q, QueueLock::Producer, waiter.pid());
    let first = q.get_bytes_timeout(WAIT);
    let second = q.get_bytes_timeout(WAIT);
    // Reaped before any assertion, so a failure leaks no child.
    let reports = fork::wait_all(vec![holder, waiter], Duration::from_secs(5)).unwrap();
    assert!(first.unwrap() == big, "the holder's message, whole");
    assert_eq!(
        second.map_err(|e| e.to_string()),
        Ok(b"second".to_vec()),
        "the waiter never took the free lock: {:?}",
        reports[1]
    );
    for r in reports {
        assert_eq!(r.outcome, Outcome::Exited(0), "{r:?}");
    }
}

// ---------------------------------------------------------------------------
// Queue: stale position caches of a process that sat out
// ---------------------------------------------------------------------------

// Queue: each process caches the other side's stream position. A process
// that sat out while others moved both positions many rings along held
// stale copies, and would have let its put overwrite messages nobody took
// and its get read from a stale tail. Caught when the caches came in ("each
// process caches the other side's position"): the test was shown to fail
// with either guard (re-read on "no room", re-read on "nothing new")
// removed.
/// Each process caches the other side's stream position (`tail` for its
/// puts, `head` for its gets) to save a cross-CPU read per message. A process
/// that sat out while others moved both positions many rings along holds
/// stale copies: its put must still wait for room (not overwrite messages
/// nobody took) and its get must still read from the real tail.
#[test]
fn a_process_that_sat_out_while_others_wrapped_the_ring() {
    let _g = fork::serial();
    let q = Queue::builder().ring_bytes(256).build().unwrap();
    q.put_bytes(&[1; 8]).unwrap();
    q.put_bytes(&[2; 8]).unwrap();
    assert_eq!(q.get_bytes().unwrap(), [1; 8]);
    // Records are 24 + 40 bytes: the child moves the positions 20 records
    // (five rings) along, then leaves three records (192 of 256 bytes) in.
    let child = {
        let q = q.clone();
        fork::spawn(move || {
            let mut got = q.get_bytes().unwrap();
            for i in 0..20u8 {
                q.put_bytes(&[i; 40]).unwrap();
                got.extend(q.get_bytes().unwrap());
            }
            for i in 100..103u8 {
                q.put_bytes(&[i; 40]).unwrap();
            }
            got
        })
        .unwrap()
    };
    let mut expect = vec![2u8; 8];
    (0..20u8).for_each(|i| expect.extend([i; 40]));
    assert_eq!(child.wait(WAIT).unwrap().expect_success(), expect);
    // 64 bytes free; a 100-byte message needs a first record of 24 + 64.
    assert!(matches!(
        q.put_bytes_timeout(&[9; 100], Duration::from_millis(50)),
        Err(Error::Timeout)
    ));
    for i in 100..103u8 {
        assert_eq!(q.get_bytes().unwrap(), [i; 40]);
    }
    assert!(matches!(q.try_get_bytes(), Err(Error::Empty)));
    assert_eq!(q.lost_to_dead_members(), 0);
}

// ---------------------------------------------------------------------------
// Decoder: a long header near u64::MAX overflowed
// ---------------------------------------------------------------------------

// `hlen + len` overflowed for a long header claiming (nearly) `u64::MAX`
// bytes: a panic with overflow checks, and without them a read-ahead buffer
// with no room, whose 0-byte read was taken for end of stream while the
// writer was still sending. Found by tests/decoder.rs's proptest of any
// stream; the unit test `frame::tests::a_long_header_near_u64_max_does_not_overflow`
// (private decoder, in src/frame.rs) fails before the fix. This is the same
// over a real pipe, through the public `Receiver`, with more bytes following
// than the pipe holds.
#[test]
fn a_long_header_near_u64_max_over_a_pipe_is_truncated_not_an_early_end() {
    let _g = fork::serial();
    for len in [u64::MAX, u64::MAX - 11] {
        let (tx, mut rx) = pipe().unwrap();
        let fd = tx.into_fd();
        let mut stream = (-1i32).to_be_bytes().to_vec();
        stream.extend(len.to_be_bytes());
        stream.extend(vec![9u8; 100_000]);
        let got = std::thread::scope(|s| {
            s.spawn(move || {
                sys::write_all_vectored(fd.as_fd(), WriteKind::Pipe, &[&stream]).unwrap();
                // Dropping the write end ends the stream.
            });
            rx.recv_bytes_timeout(WAIT)
        });
        assert!(
            matches!(got, Err(Error::Truncated { expected, got: 100_000 }) if expected == len),
            "{got:?}"
        );
    }
}

// ---------------------------------------------------------------------------
// Fork handlers: a child forked mid-registration waited on a `Once`
// ---------------------------------------------------------------------------

// The SIGPIPE and pid caches registered their fork handlers inside a
// `Once`. A child forked while another thread of the parent was inside it
// inherited the `Once` "running" and waited on it forever in its first pipe
// write: seen as a hung tests/fifo.rs test under load. Fixed by registering
// without a `Once` (a registration under way elsewhere answers at once,
// uncached). The window is a few instructions in a fresh process, so it is
// not hit on purpose here: the unit test
// `sys::tests::a_registration_under_way_elsewhere_never_waits` (private
// state, in src/sys/mod.rs) builds the state instead.

// Fork runner: the panic hook was installed in each child, taking the
// hook's lock there, which a thread of the parent may have held at fork
// time: the child would hang on its first panic. Fixed by installing it
// once, in the parent, before the first fork. The race is not hit on
// purpose; every test of a panicking child (`harness::fork`'s own) runs
// through the fixed path.

// ---------------------------------------------------------------------------
// Saboteur: a stop raced its victim's exit
// ---------------------------------------------------------------------------

// The fault helper that SIGSTOPs a process and SIGCONTs it later was itself
// killed once its victim was done. When that kill came between the helper's
// SIGSTOP and its SIGCONT, the victim stayed stopped for good: the soak
// found a producer left in `do_signal_stop`, reported as a hang. Fixed by
// calling the helper off with a byte, so once it strikes it always
// finishes. This runs stops timed to land as a one-message producer ends;
// the window is narrow, so without the fix only some runs would hang, but
// with it none may.
#[test]
fn a_stop_that_races_its_victims_end_is_always_continued() {
    let _g = fork::serial();
    let options = RunOptions {
        deadline: Duration::from_secs(5),
        ..RunOptions::default()
    };
    for delay_us in (0..40).step_by(2) {
        let scenario = Scenario {
            faults: vec![Fault {
                target: Target::Producer(0),
                op: 0,
                kind: FaultKind::Stop {
                    delay_us,
                    pause_ms: 1,
                },
            }],
            ..Scenario::simple(&[1])
        };
        let report = run_with(&PipeChannel, &scenario, options);
        assert!(report.violations.is_empty(), "{report}");
    }
}

// ---------------------------------------------------------------------------
// Queue: a sole producer killed inside a message left consumers asleep
// ---------------------------------------------------------------------------

// A queue's repair after a dead producer counted a loss again when the
// repairer itself died mid-repair, and left the dead sleeper's waiter count
// behind, so consumers stuck inside the sole producer's message could wait
// on for a wake-up nobody would send instead of getting `Closed`. Fixed in
// "repairs count each loss once and reset a dead sleeper's waiter count".
// Its test, `a_killed_sole_producer_leaves_consumers_closed_not_hung`,
// stays in tests/queue.rs: it is one case of the kill tests there and
// shares their body.

// ---------------------------------------------------------------------------
// Queue: `len()` answered a length the queue never had
// ---------------------------------------------------------------------------

// Found by the history checker on five processes and a queue bounded to
// one message: `len()` returned 2. It read the taken counter, then the
// published one, so a process descheduled between the loads answered
// "published now minus taken then"; `is_empty` and `is_full` shared it.
// Now all three read one consistent snapshot. The two-load `len` is kept
// as a pitfall switch, so this test shows the same histories catching it.

/// Histories of a queue bounded to 1 whose observers' `len` pauses 300 us
/// between its loads (the window the bug needed): the two-load `len` is
/// caught with a `len` answer, and the exact one passes every plan up to
/// ten past the one that caught it.
#[test]
fn len_answers_a_length_the_queue_had_at_one_instant() {
    use ipc_harness::harness::history::scenarios::{self, FaultMode, Judgement, Plan};
    let _serial = fork::serial();
    ipc_harness::queue::set_len_pause(Duration::from_micros(300));
    let judge = |two_load: bool, k: u64| {
        let q = Queue::builder()
            .max_items(1)
            .two_load_len_pitfall(two_load)
            .build()
            .unwrap();
        let recorded = scenarios::record_on_queue(q, &Plan::new(k, FaultMode::None)).unwrap();
        scenarios::check(&recorded)
    };
    let caught = (0..60).find_map(|k| match judge(true, k).judgement {
        Judgement::Violation { counterexample } => Some((k, counterexample)),
        _ => None,
    });
    let (k, why) = caught.expect("the two-load len caught within 60 plans");
    assert!(
        why.contains("len() -> ")
            || why.contains("is_empty() -> ")
            || why.contains("is_full() -> "),
        "{why}"
    );
    for plan in 0..=k + 10 {
        let report = judge(false, plan);
        assert!(report.judgement.is_linearizable(), "{report:#}");
    }
    ipc_harness::queue::set_len_pause(Duration::ZERO);
}
