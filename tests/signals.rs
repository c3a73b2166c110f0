//! A signal storm during transfers: `SIGALRM` every 100-500 us, from an
//! interval timer, handled by a no-op handler installed *without*
//! `SA_RESTART`, so every blocking `read`, `write`, `poll` and `wait` in
//! its way fails with `EINTR` (or returns short). Under it, large and small
//! messages over `pipe()` and both directions of `duplex()` must arrive
//! whole, in order, byte-identical, with no error surfacing, and no
//! `poll`/`recv_bytes_timeout` may return before its timeout.
//!
//! # Where the storm runs, and why
//! Both ends of every transfer run in forked processes, never on a thread of
//! this test binary. `setitimer` sends `SIGALRM` to the *process*, and Linux
//! hands a process-directed signal to the main thread whenever it can take
//! it: in a libtest binary that is the harness's main thread, parked in a
//! futex, while the test runs on another thread. Measured here: 1469
//! `SIGALRM`s during a 300 ms naive `read` on a test thread interrupted it
//! 0 times. A forked child has one thread, the one doing the IPC, so every
//! signal lands on it. So each test forks `P` (the "parent" end), which
//! arms its own storm and forks `S` (the "child" end); interval timers are
//! not inherited across `fork` (the handler is), so `S` arms its own.
//!
//! Each storm process first proves the storm bites: a naive `read` (std's
//! `File::read`, which does not retry) on an empty pipe must fail with
//! `Interrupted`. And each reports how many signals its handler ran during
//! the transfer ([`sys::noop_handler_runs`]), which must be many.
//!
//! The timer is disarmed and the old handler restored by [`Storm`]'s drop,
//! on success and on panic alike (disarm first: a `SIGALRM` with the default
//! action would kill the process).

use std::io::Read;
use std::os::fd::AsFd;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use ipc_harness::harness::fork::{self, serial};
use ipc_harness::harness::payload::{self, MsgId};
use ipc_harness::sys::{self, SavedAction, WriteKind};
use ipc_harness::{Connection, Error, Receiver, Result, Sender, duplex, pipe};
use rstest::rstest;

const MIB: usize = 1 << 20;
const DEADLINE: Duration = Duration::from_secs(60);
/// A receive that waits this long must not time out: the data is coming.
const PATIENCE: Duration = Duration::from_secs(20);
/// Each storm process must have handled at least this many signals while
/// it worked: at one per 100-500 us, a transfer of tens of MiB sees
/// hundreds at the very least.
const MIN_SIGNALS: u64 = 50;

/// Small messages interleaved with the large ones: every boundary size.
const SMALL: [usize; 11] = [0, 1, 3, 4, 5, 4095, 4096, 4097, 65535, 65536, 65537];

/// `SIGALRM` every `interval` to this process, with a counting no-op handler
/// and no `SA_RESTART`. Dropping it disarms the timer, then restores the
/// previous handler.
struct Storm {
    _saved: SavedAction,
}

impl Storm {
    fn start(interval: Duration) -> Storm {
        let saved = sys::install_noop_handler(libc::SIGALRM).unwrap();
        sys::set_interval_timer(interval).unwrap();
        Storm { _saved: saved }
    }
}

impl Drop for Storm {
    fn drop(&mut self) {
        // Disarm before the handler goes back to the default (terminate).
        let _ = sys::set_interval_timer(Duration::ZERO);
    }
}

/// True if a naive blocking read in this process is interrupted by a
/// signal (std's `File::read` returns `Interrupted` and does not retry).
/// A helper thread writes a byte after `patience`, so with no storm this
/// returns false instead of hanging.
fn naive_read_is_interrupted(patience: Duration) -> bool {
    let (r, w) = sys::pipe(false).unwrap();
    let (stop, stopped) = mpsc::channel::<()>();
    let helper = std::thread::spawn(move || {
        if stopped.recv_timeout(patience).is_err() {
            sys::write(w.as_fd(), b"x").unwrap();
        }
        w
    });
    let mut naive = std::fs::File::from(r);
    let got = naive.read(&mut [0u8; 1]);
    drop(stop);
    drop(helper.join().unwrap());
    match got {
        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => true,
        Ok(1) => false,
        other => panic!("naive read: {other:?}"),
    }
}

/// Panics unless the storm bites in this process: the proof that the
/// signals reach the thread doing the IPC and that blocking calls really
/// see `EINTR` (no `SA_RESTART`).
fn assert_storm_bites() {
    assert!(
        naive_read_is_interrupted(Duration::from_secs(5)),
        "the storm did not interrupt a naive blocking read"
    );
}

fn id(seq: usize) -> MsgId {
    MsgId {
        producer: 0,
        seq: seq as u32,
    }
}

/// 64 messages of 1 MiB, each followed by a small one.
fn storm_plan() -> Vec<usize> {
    (0..64)
        .flat_map(|i| [MIB, SMALL[i % SMALL.len()]])
        .collect()
}

#[derive(Debug, Clone, Copy)]
enum Way {
    Pipe,
    /// Send on the first duplex end, receive on the second.
    DuplexAB,
    /// Send on the second, receive on the first.
    DuplexBA,
}

enum Tx {
    Pipe(Sender),
    Conn(Connection),
}

enum Rx {
    Pipe(Receiver),
    Conn(Connection),
}

impl Tx {
    fn send(&self, msg: &[u8]) -> Result<()> {
        match self {
            Tx::Pipe(t) => t.send_bytes(msg),
            Tx::Conn(c) => c.send_bytes(msg),
        }
    }
}

impl Rx {
    fn recv(&mut self) -> Result<Vec<u8>> {
        match self {
            Rx::Pipe(r) => r.recv_bytes(),
            Rx::Conn(c) => c.recv_bytes(),
        }
    }
    fn recv_timeout(&mut self, t: Duration) -> Result<Vec<u8>> {
        match self {
            Rx::Pipe(r) => r.recv_bytes_timeout(t),
            Rx::Conn(c) => c.recv_bytes_timeout(t),
        }
    }
    fn poll(&self, t: Option<Duration>) -> Result<bool> {
        match self {
            Rx::Pipe(r) => r.poll(t),
            Rx::Conn(c) => c.poll(t),
        }
    }
}

fn open(way: Way) -> (Tx, Rx) {
    match way {
        Way::Pipe => {
            let (t, r) = pipe().unwrap();
            (Tx::Pipe(t), Rx::Pipe(r))
        }
        Way::DuplexAB => {
            let (a, b) = duplex().unwrap();
            (Tx::Conn(a), Rx::Conn(b))
        }
        Way::DuplexBA => {
            let (a, b) = duplex().unwrap();
            (Tx::Conn(b), Rx::Conn(a))
        }
    }
}

/// Runs `p` in a forked process `P` and returns what it returned. `P`
/// panicking (any broken check) fails the test with its message. Checks
/// that nothing is left behind in this process.
fn in_storm_process(p: impl FnOnce() -> String) -> String {
    let _serial = serial();
    let fds = sys::open_fds().unwrap();
    let report = fork::run(DEADLINE, move || p().into_bytes()).unwrap();
    let out = String::from_utf8(report.expect_success()).unwrap();
    assert_eq!(sys::open_fds().unwrap(), fds, "fds leaked");
    assert_eq!(fork::unreaped_children(), Vec::<i32>::new());
    out
}

/// Parses `key=value` pairs of a report.
fn field(report: &str, key: &str) -> u64 {
    report
        .split_whitespace()
        .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
        .unwrap_or_else(|| panic!("no {key} in {report:?}"))
        .parse()
        .unwrap()
}

/// 64 x 1 MiB with every small boundary size interleaved, under a storm in
/// both processes. The receiver takes them in turn with `recv_bytes`,
/// `recv_bytes_timeout` and `poll` then `recv_bytes`: every receive is the
/// next message, whole and byte-identical; no `Timeout`, `Interrupted` or
/// any other error; `poll` with a long timeout says yes; then `Closed`.
#[rstest]
fn large_transfers_lose_nothing_under_a_signal_storm(
    #[values(Way::Pipe, Way::DuplexAB, Way::DuplexBA)] way: Way,
) {
    let report = in_storm_process(move || {
        let _storm = Storm::start(Duration::from_micros(100));
        assert_storm_bites();
        let plan = storm_plan();
        let (tx, mut rx) = open(way);
        let plan_s = plan.clone();
        let sender = fork::spawn(move || {
            // Not inherited across fork: S arms its own, out of step with P's
            // (and dense enough for a pipe() that moves the 64 MiB in ~15 ms).
            let _storm = Storm::start(Duration::from_micros(113));
            assert_storm_bites();
            let before = sys::noop_handler_runs();
            for (seq, &len) in plan_s.iter().enumerate() {
                tx.send(&payload::make(id(seq), len))
                    .unwrap_or_else(|e| panic!("send #{seq} ({len} bytes): {e:?}"));
            }
            format!("{}", sys::noop_handler_runs() - before).into_bytes()
        })
        .unwrap();
        let before = sys::noop_handler_runs();
        let start = Instant::now();
        for (seq, &len) in plan.iter().enumerate() {
            let got = match seq % 3 {
                0 => rx.recv(),
                1 => rx.recv_timeout(PATIENCE),
                _ => {
                    let t = Instant::now();
                    let ready = rx.poll(Some(PATIENCE)).unwrap();
                    assert!(ready, "poll #{seq} said no after {:?}", t.elapsed());
                    rx.recv()
                }
            };
            let got = got.unwrap_or_else(|e| panic!("receive #{seq} ({len} bytes): {e:?}"));
            assert!(
                got == payload::make(id(seq), len),
                "receive #{seq}: expected {len} bytes of {}, got {} bytes judged {:?}",
                id(seq),
                got.len(),
                payload::verify(&got)
            );
        }
        let end = rx.recv_timeout(PATIENCE);
        assert!(matches!(end, Err(Error::Closed)), "after the last: {end:?}");
        let took = start.elapsed();
        let p_signals = sys::noop_handler_runs() - before;
        let s_out = sender.wait(DEADLINE).unwrap().expect_success();
        let s_signals = String::from_utf8(s_out).unwrap();
        format!("p={p_signals} s={s_signals} ms={}", took.as_millis())
    });
    eprintln!("{way:?}: signals handled during the transfer: {report}");
    assert!(field(&report, "p") >= MIN_SIGNALS, "{report}");
    assert!(field(&report, "s") >= MIN_SIGNALS, "{report}");
}

/// Under the storm, on a pipe and on a socket with nothing to read, `poll`
/// says no and `recv_bytes_timeout` says `Timeout`, each only once its
/// timeout has passed (and not absurdly later).
#[test]
fn poll_and_timeouts_never_return_early_under_a_signal_storm() {
    let report = in_storm_process(|| {
        let _storm = Storm::start(Duration::from_micros(100));
        assert_storm_bites();
        let (tx, rx) = open(Way::Pipe);
        let (a, b) = open(Way::DuplexAB);
        let before = sys::noop_handler_runs();
        for rx in [rx, b] {
            let mut rx = rx;
            for ms in [0u64, 1, 2, 5, 13, 40, 120] {
                let wait = Duration::from_millis(ms);
                let t = Instant::now();
                assert!(!rx.poll(Some(wait)).unwrap(), "poll({wait:?}) with no data");
                let took = t.elapsed();
                assert!(took >= wait, "poll({wait:?}) returned after {took:?}");
                assert!(
                    took < wait + Duration::from_secs(5),
                    "poll({wait:?}) took {took:?}"
                );
                let t = Instant::now();
                let got = rx.recv_timeout(wait);
                let took = t.elapsed();
                assert!(matches!(got, Err(Error::Timeout)), "{wait:?}: {got:?}");
                assert!(
                    took >= wait,
                    "recv_bytes_timeout({wait:?}) returned after {took:?}"
                );
                assert!(took < wait + Duration::from_secs(5), "took {took:?}");
            }
        }
        let signals = sys::noop_handler_runs() - before;
        drop((tx, a));
        format!("p={signals}")
    });
    assert!(field(&report, "p") >= MIN_SIGNALS, "{report}");
}

/// Under the storm, a receive with a timeout whose message comes late (the
/// sender sleeps, then sends a frame in two parts with a pause inside it)
/// times out only after its timeout, never loses or splits the message, and
/// a long wait returns the message rather than `Timeout`.
#[rstest]
fn a_slow_sender_under_a_signal_storm_loses_nothing_to_timeouts(
    #[values(Way::Pipe, Way::DuplexAB)] way: Way,
) {
    let report = in_storm_process(move || {
        let _storm = Storm::start(Duration::from_micros(250));
        assert_storm_bites();
        let (tx, mut rx) = open(way);
        let first = payload::make(id(0), 3 * MIB);
        let second = payload::make(id(1), 4097);
        let (first_s, second_s) = (first.clone(), second.clone());
        let sender = fork::spawn(move || {
            let _storm = Storm::start(Duration::from_micros(500));
            std::thread::sleep(Duration::from_millis(150));
            // The first frame in two writes, with a pause inside it.
            let frame = ipc_harness::frame::encode(&first_s);
            let (head, tail) = frame.split_at(MIB + 7);
            let kind = match &tx {
                Tx::Pipe(_) => WriteKind::Pipe,
                Tx::Conn(_) => WriteKind::Socket,
            };
            let fd = match &tx {
                Tx::Pipe(t) => t.as_fd(),
                Tx::Conn(c) => c.as_fd(),
            };
            sys::write_all_vectored(fd, kind, &[head]).unwrap();
            std::thread::sleep(Duration::from_millis(150));
            sys::write_all_vectored(fd, kind, &[tail]).unwrap();
            std::thread::sleep(Duration::from_millis(150));
            tx.send(&second_s).unwrap();
            Vec::new()
        })
        .unwrap();
        let before = sys::noop_handler_runs();
        let short = Duration::from_millis(20);
        let mut timeouts = 0;
        let got = loop {
            let t = Instant::now();
            match rx.recv_timeout(short) {
                Ok(m) => break m,
                Err(Error::Timeout) => {
                    assert!(t.elapsed() >= short, "Timeout after {:?}", t.elapsed());
                    timeouts += 1;
                }
                Err(e) => panic!("{e:?}"),
            }
        };
        // About 14 at 20 ms each across 300 ms of pauses; 2 even if starved.
        assert!(
            timeouts >= 2,
            "only {timeouts} timeouts before the first message"
        );
        assert!(got == first, "first message: {:?}", payload::verify(&got));
        // The second comes ~150 ms later: a long wait must return it.
        let t = Instant::now();
        let got = rx.recv_timeout(PATIENCE).unwrap();
        assert!(got == second, "second message: {:?}", payload::verify(&got));
        assert!(t.elapsed() < PATIENCE);
        assert!(rx.recv_timeout(PATIENCE).unwrap_err().is_closed());
        let signals = sys::noop_handler_runs() - before;
        sender.wait(DEADLINE).unwrap().expect_success();
        format!("p={signals} timeouts={timeouts}")
    });
    assert!(field(&report, "p") >= MIN_SIGNALS, "{report}");
}

/// The check that guards every test above can fail: with no storm, a
/// naive read is not interrupted (it gets the helper's byte).
#[test]
fn the_storm_check_fails_without_a_storm() {
    // Its pipe must not show up in another test's fd count.
    let _serial = serial();
    assert!(!naive_read_is_interrupted(Duration::from_millis(100)));
}
