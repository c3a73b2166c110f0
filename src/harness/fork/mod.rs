//! Run closures in forked child processes, with a deadline, and get back how
//! each one ended and the bytes it returned.
//!
//! # The fork rules this module keeps for you
//! - The child runs only the closure and then `_exit`s: it never returns into
//!   the caller (a test harness, say), never runs atexit handlers and never
//!   flushes the parent's stdio buffers twice.
//! - A panic in the child is caught (the panic message is captured, not
//!   printed) and the child exits with [`PANIC_EXIT_CODE`].
//! - The child gets a process group of its own and is SIGKILLed by the kernel
//!   if the parent dies. At its deadline the parent SIGKILLs the group and
//!   reports [`Outcome::TimedOut`], with what the child was blocked in.
//! - Every child is reaped: by [`Child::wait`], by [`wait_all`], or on drop.
//!
//! # The fork rules you keep
//! After `fork()` only the calling thread exists in the child; a lock some
//! other thread held (stdout's, a test framework's) stays held forever. So
//! the closure must not print, must not touch test-framework state, and
//! should report back only by returning bytes (or through pipes it was
//! given). Values moved into the closure belong to the child: the parent's
//! copy is dropped when [`spawn`] returns, which closes the parent's copies of
//! any fds they own. That is how a pipe's ends are divided between processes.
//! An end the *parent* keeps is copied into the child all the same; to send
//! from the parent to a child (which must see end of stream once the
//! parent is done), fork with [`spawn_keeping`], which drops the child's
//! copy of what the parent keeps.
//!
//! A multi-threaded parent (`cargo test`) can also leak one test's fds into
//! another test's child, which delays end-of-stream. Every fork here takes
//! the fork lock ([`serial()`]), and the runner holds it from a scenario's
//! channel `open` until the parent has dropped its ends, so the harness's
//! own scenarios never leak into each other. A test that divides fds
//! between processes by hand holds [`serial()`] from making them until the
//! parent has dropped its copies.
//!
//! # Example
//! ```
//! use ipc_harness::harness::fork::{self, Outcome};
//! use std::time::Duration;
//!
//! let child = fork::spawn(|| b"hello from the child".to_vec())?;
//! let report = child.wait(Duration::from_secs(10))?;
//! assert!(matches!(report.outcome, Outcome::Exited(0)));
//! assert_eq!(report.output, b"hello from the child");
//!
//! let report = fork::run(Duration::from_secs(10), || panic!("boom"))?;
//! assert!(matches!(&report.outcome, Outcome::Panicked { message } if message.contains("boom")));
//!
//! let report = fork::run(Duration::from_millis(200), || loop {
//!     std::thread::sleep(Duration::from_secs(1));
//! })?;
//! assert!(matches!(report.outcome, Outcome::TimedOut { .. }));
//! # Ok::<(), ipc_harness::Error>(())
//! ```

use std::fmt;
use std::marker::PhantomData;
use std::os::fd::{AsFd, OwnedFd};
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex, Once};
use std::thread::ThreadId;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::frame::{self, Decoder, ReadSource};
use crate::sys::{self, ExitStatus, Pid, WriteKind};

mod proc;
use proc::StallWatch;
pub use proc::{blocked_in, unreaped_children};

/// The exit code of a child whose closure panicked.
pub const PANIC_EXIT_CODE: i32 = 101;

const TAG_OUTPUT: u8 = 0;
const TAG_PANIC: u8 = 1;

/// The fork lock: which thread holds it, and how many times over.
struct ForkLock {
    state: Mutex<(Option<ThreadId>, usize)>,
    free: Condvar,
}

static FORK_LOCK: ForkLock = ForkLock {
    state: Mutex::new((None, 0)),
    free: Condvar::new(),
};

/// Holds the process-wide fork lock until dropped (see [`serial()`]).
#[derive(Debug)]
#[must_use = "the lock is released when the guard is dropped"]
pub struct SerialGuard {
    held: bool,
    // Released on the thread that took it.
    _not_send: PhantomData<*const ()>,
}

/// Takes the process-wide fork lock: no other thread forks through this
/// crate (or opens a channel in [`run`](super::run::run)) until the guard
/// is dropped.
///
/// The harness takes it itself around every fork and around a scenario's
/// channel `open` and forks, so tests that only call [`spawn`], `run` or
/// `campaign` need nothing more. Hold it for the whole of a test that makes
/// its own fds for its children (a pipe divided between processes by hand)
/// or that counts fds, so tests on other threads cannot leak fds into its
/// children (or count its fds).
///
/// It is reentrant: a thread that holds it may take it again (the harness
/// does, inside a test that holds it). A panic while holding it does not
/// poison it for the other tests. In a forked child it is a no-op: the
/// child has one thread.
pub fn serial() -> SerialGuard {
    if IN_FORKED_CHILD.load(Ordering::Relaxed) {
        return SerialGuard {
            held: false,
            _not_send: PhantomData,
        };
    }
    let me = std::thread::current().id();
    let mut state = FORK_LOCK
        .state
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    while state.0.is_some_and(|owner| owner != me) {
        state = FORK_LOCK
            .free
            .wait(state)
            .unwrap_or_else(|poisoned| poisoned.into_inner());
    }
    state.0 = Some(me);
    state.1 += 1;
    SerialGuard {
        held: true,
        _not_send: PhantomData,
    }
}

impl Drop for SerialGuard {
    fn drop(&mut self) {
        if !self.held {
            return;
        }
        let mut state = FORK_LOCK
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        state.1 -= 1;
        if state.1 == 0 {
            state.0 = None;
            FORK_LOCK.free.notify_one();
        }
    }
}

/// How a child ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// It exited with this code (0 after its closure returned).
    Exited(i32),
    /// Its closure panicked; `message` is the panic message and location.
    Panicked {
        /// What the panic said, e.g. `panicked at src/x.rs:3:5:\nboom`.
        message: String,
    },
    /// A signal (not ours) killed it.
    Signaled(i32),
    /// It was still running at its deadline and was SIGKILLed.
    TimedOut {
        /// What it was blocked in when killed, from `/proc` (e.g.
        /// `read(fd 5) [pipe_read]`), when that could be read.
        blocked_in: Option<String>,
    },
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Exited(0) => write!(f, "exited normally"),
            Outcome::Exited(code) => write!(f, "exited with code {code}"),
            Outcome::Panicked { message } => write!(f, "panicked: {message}"),
            Outcome::Signaled(sig) => write!(f, "was killed by signal {sig}"),
            Outcome::TimedOut {
                blocked_in: Some(b),
            } => {
                write!(f, "hung past its deadline, blocked in {b}, and was killed")
            }
            Outcome::TimedOut { blocked_in: None } => {
                write!(f, "hung past its deadline and was killed")
            }
        }
    }
}

/// What came back from a child.
#[derive(Debug, Clone)]
pub struct ChildReport {
    /// The child's pid.
    pub pid: Pid,
    /// How it ended.
    pub outcome: Outcome,
    /// The bytes its closure returned (empty unless it returned).
    pub output: Vec<u8>,
    /// For [`Outcome::TimedOut`]: it was killed before the deadline,
    /// because it and every other child waited for had been blocked, with
    /// no progress, for this long (see [`WaitOptions::stall`]).
    pub stalled: Option<Duration>,
}

impl ChildReport {
    /// True if the closure returned and the child exited with code 0.
    pub fn is_success(&self) -> bool {
        self.outcome == Outcome::Exited(0)
    }

    /// The output, or a panic that says how the child ended instead.
    #[track_caller]
    pub fn expect_success(self) -> Vec<u8> {
        if !self.is_success() {
            panic!("child {} {}", self.pid, self.outcome);
        }
        self.output
    }
}

/// A running child. Wait for it with [`Child::wait`] or [`wait_all`]; one
/// dropped without a wait is killed and reaped.
#[derive(Debug)]
pub struct Child {
    pid: Pid,
    pidfd: OwnedFd,
    results: OwnedFd,
    reaped: bool,
}

/// Forks; the child runs `f` and returns its bytes to the parent. See the
/// module docs for what `f` may do.
pub fn spawn<F>(f: F) -> Result<Child>
where
    F: FnOnce() -> Vec<u8>,
{
    install_panic_hook();
    let _serial = serial();
    let (results, results_w) = sys::pipe(false).map_err(|e| Error::io("pipe2", e))?;
    let pid = sys::fork_run(move || child_main(f, results_w)).map_err(|e| Error::io("fork", e))?;
    let pidfd = match sys::pidfd_open(pid) {
        Ok(fd) => fd,
        Err(e) => {
            let _ = sys::kill(pid, libc::SIGKILL);
            let _ = sys::waitpid(pid, true);
            return Err(Error::io("pidfd_open", e));
        }
    };
    Ok(Child {
        pid,
        pidfd,
        results,
        reaped: false,
    })
}

/// Forks like [`spawn`], and the parent keeps `keep` while the child drops
/// its copy before running `f`: the way to send from the parent to a child.
///
/// A child gets a copy of every fd the parent holds. With plain [`spawn`],
/// a child reading a pipe the parent writes still holds its own copy of
/// the parent's [`Sender`](crate::Sender), so when the parent drops its
/// end the child never sees [`Error::Closed`]: it hangs. Here `keep` (an
/// end, or a tuple of ends) is dropped in the child first, and handed back
/// to the parent with the child.
///
/// ```
/// use ipc_harness::harness::fork;
/// use ipc_harness::Error;
/// use std::time::Duration;
///
/// // Under `cargo test`, keep other threads from forking while the pipe's
/// // ends are still in this process only (see `serial`).
/// let serial = fork::serial();
/// let (tx, mut rx) = ipc_harness::pipe()?;
/// let (child, tx) = fork::spawn_keeping(tx, move || {
///     let mut got = 0u8;
///     loop {
///         match rx.recv_bytes() {
///             Ok(_) => got += 1,
///             Err(Error::Closed) => return vec![got], // the parent is done
///             Err(_) => return Vec::new(),
///         }
///     }
/// })?;
/// drop(serial);
/// for msg in [&b"one"[..], b"two", b"three"] {
///     tx.send_bytes(msg)?;
/// }
/// drop(tx); // the last write end: the child sees `Closed`
/// let report = child.wait(Duration::from_secs(10))?;
/// assert_eq!(report.expect_success(), vec![3]);
/// # Ok::<(), ipc_harness::Error>(())
/// ```
pub fn spawn_keeping<K, F>(keep: K, f: F) -> Result<(Child, K)>
where
    F: FnOnce() -> Vec<u8>,
{
    let mut slot = Some(keep);
    let child = spawn(|| {
        // The child's copy: closes the child's fds of it.
        drop(slot.take());
        f()
    })?;
    Ok((child, slot.take().expect("the parent's copy is untouched")))
}

/// Spawns `f` in a child and waits for it at most `timeout`.
pub fn run<F>(timeout: Duration, f: F) -> Result<ChildReport>
where
    F: FnOnce() -> Vec<u8>,
{
    spawn(f)?.wait(timeout)
}

/// Set in a forked child (in its copy of memory only).
static IN_FORKED_CHILD: AtomicBool = AtomicBool::new(false);
/// A forked child's panic message, captured by the hook.
static PANIC_MESSAGE: Mutex<Option<String>> = Mutex::new(None);

/// Installs, once and before the first fork, a panic hook that captures the
/// message in a forked child and hands every other panic to the hook that
/// was there before. Installing it in the child instead would take the
/// hook's lock there, which a thread of the parent may have held at fork
/// time: the child would hang on its first panic.
fn install_panic_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            if IN_FORKED_CHILD.load(Ordering::Relaxed) {
                // The default hook prints to stderr, whose lock another
                // thread of the parent may have held at fork time.
                if let Ok(mut slot) = PANIC_MESSAGE.try_lock() {
                    *slot = Some(info.to_string());
                }
            } else {
                previous(info);
            }
        }));
    });
}

fn child_main<F: FnOnce() -> Vec<u8>>(f: F, results: OwnedFd) -> i32 {
    IN_FORKED_CHILD.store(true, Ordering::Relaxed);
    let (tag, body, code) = match panic::catch_unwind(AssertUnwindSafe(f)) {
        Ok(output) => (TAG_OUTPUT, output, 0),
        Err(payload) => {
            let hooked = PANIC_MESSAGE.try_lock().ok().and_then(|mut s| s.take());
            let message = hooked.unwrap_or_else(|| {
                payload
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| payload.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "a panic with a non-string payload".into())
            });
            (TAG_PANIC, message.into_bytes(), PANIC_EXIT_CODE)
        }
    };
    let mut msg = Vec::with_capacity(body.len() + 1);
    msg.push(tag);
    msg.extend_from_slice(&body);
    // If the parent is gone there is no one to tell; exit all the same.
    let _ = frame::write_frame(results.as_fd(), WriteKind::Pipe, &msg, frame::UNLIMITED);
    code
}

impl Child {
    /// The child's pid (also its process group id).
    pub fn pid(&self) -> Pid {
        self.pid
    }

    /// Sends `signal` to the child alone.
    pub fn signal(&self, signal: libc::c_int) -> Result<()> {
        sys::kill(self.pid, signal).map_err(|e| Error::io("kill", e))
    }

    /// Waits at most `timeout` for the child to end; past it, kills its
    /// process group and reports [`Outcome::TimedOut`].
    pub fn wait(self, timeout: Duration) -> Result<ChildReport> {
        let mut reports = wait_all(vec![self], timeout)?;
        Ok(reports.pop().expect("one child, one report"))
    }

    fn kill_and_reap(&mut self) -> Option<ExitStatus> {
        if self.reaped {
            return None;
        }
        let _ = sys::kill_group(self.pid, libc::SIGKILL);
        let _ = sys::kill(self.pid, libc::SIGKILL);
        self.reaped = true;
        sys::waitpid(self.pid, true).ok().flatten()
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        self.kill_and_reap();
    }
}

/// Waits for all `children` under one deadline `timeout` from now, reading
/// their results as they come (so a child returning many bytes never blocks
/// on a full pipe). Children still running at the deadline are killed and
/// reported as [`Outcome::TimedOut`]. Reports come back in the order given.
pub fn wait_all(children: Vec<Child>, timeout: Duration) -> Result<Vec<ChildReport>> {
    wait_all_with(
        children,
        WaitOptions {
            timeout,
            stall: None,
        },
        || 0,
    )
}

/// How [`wait_all_with`] waits.
#[derive(Debug, Clone, Copy)]
pub struct WaitOptions {
    /// Children still running this long from now are killed as hung.
    pub timeout: Duration,
    /// Kill them as hung earlier, once every live child (and every process
    /// it forked) has been blocked this long: every thread asleep in a
    /// system call other than a sleep (state `S` in `/proc/PID/task/*/stat`,
    /// not in `nanosleep`), not woken once (its context-switch counts in
    /// `/proc/.../status` unchanged), while the progress counter stood
    /// still. `None` waits for the deadline.
    ///
    /// A process in a timed sleep (a pause between sends), runnable,
    /// stopped or in disk wait counts as going on, as does one woken by
    /// a timeout or a signal, so a slow but moving run is never cut short.
    pub stall: Option<Duration>,
}

/// [`wait_all`], and with [`WaitOptions::stall`] the children are killed as
/// hung once they are all blocked and `progress` (a counter that moves
/// whenever they do something, such as the total size of their journals)
/// has not moved for that long; their reports then say so in
/// [`ChildReport::stalled`].
pub fn wait_all_with(
    mut children: Vec<Child>,
    options: WaitOptions,
    mut progress: impl FnMut() -> u64,
) -> Result<Vec<ChildReport>> {
    const TICK: Duration = Duration::from_millis(100);
    let deadline = Instant::now() + options.timeout;
    let mut stall_watch = options.stall.map(|window| StallWatch {
        window,
        since: Instant::now(),
        progress: progress(),
        snapshot: None,
    });
    let mut stalled = None;
    let n = children.len();
    let mut outputs: Vec<Vec<u8>> = vec![Vec::new(); n];
    let mut results_open = vec![true; n];
    let mut statuses: Vec<Option<ExitStatus>> = vec![None; n];
    let mut timed_out: Vec<Option<Option<String>>> = vec![None; n];

    loop {
        // Poll every open results pipe and every live child's pidfd.
        let mut pollfds = Vec::new();
        let mut owners = Vec::new();
        for (i, c) in children.iter().enumerate() {
            if statuses[i].is_none() {
                pollfds.push(pollfd(&c.pidfd));
                owners.push((i, false));
            }
            if results_open[i] {
                pollfds.push(pollfd(&c.results));
                owners.push((i, true));
            }
        }
        if statuses.iter().all(Option::is_some) {
            break;
        }
        let wake = match stall_watch {
            Some(_) => deadline.min(Instant::now() + TICK),
            None => deadline,
        };
        let ready = sys::poll_fds(&mut pollfds, Some(wake)).map_err(|e| Error::io("poll", e))?;
        if ready == 0 && Instant::now() < deadline {
            if let Some(watch) = &mut stall_watch {
                let live: Vec<Pid> = children
                    .iter()
                    .zip(&statuses)
                    .filter(|(_, st)| st.is_none())
                    .map(|(c, _)| c.pid)
                    .collect();
                stalled = watch.check(progress(), &live);
            }
            if stalled.is_none() {
                continue;
            }
        }
        if ready == 0 {
            for (i, c) in children.iter_mut().enumerate() {
                if statuses[i].is_none() {
                    timed_out[i] = Some(blocked_in(c.pid));
                    statuses[i] = Some(
                        c.kill_and_reap()
                            .unwrap_or(ExitStatus::Signal(libc::SIGKILL)),
                    );
                }
            }
            break;
        }
        for (pfd, &(i, is_results)) in pollfds.iter().zip(&owners) {
            if pfd.revents == 0 {
                continue;
            }
            if is_results {
                if drain_once(&children[i].results, &mut outputs[i])? == 0 {
                    results_open[i] = false;
                }
            } else {
                let c = &mut children[i];
                statuses[i] = sys::waitpid(c.pid, true).map_err(|e| Error::io("waitpid", e))?;
                c.reaped = true;
            }
        }
    }

    // Everything the children wrote before exiting is in the pipes now;
    // take it without waiting on grandchildren that may hold a copy.
    for (i, c) in children.iter().enumerate() {
        while results_open[i] {
            let mut p = [pollfd(&c.results)];
            let ready =
                sys::poll_fds(&mut p, Some(Instant::now())).map_err(|e| Error::io("poll", e))?;
            if ready == 0 || drain_once(&c.results, &mut outputs[i])? == 0 {
                results_open[i] = false;
            }
        }
    }

    let mut reports = Vec::with_capacity(n);
    for (i, c) in children.iter().enumerate() {
        let (tag, body) = decode_result(&outputs[i]);
        let outcome = match (
            timed_out[i].take(),
            statuses[i].expect("every child reaped"),
        ) {
            (Some(blocked_in), _) => Outcome::TimedOut { blocked_in },
            (None, _) if tag == Some(TAG_PANIC) => Outcome::Panicked {
                message: String::from_utf8_lossy(&body).into_owned(),
            },
            (None, ExitStatus::Code(code)) => Outcome::Exited(code),
            (None, ExitStatus::Signal(sig)) => Outcome::Signaled(sig),
        };
        let output = if tag == Some(TAG_OUTPUT) {
            body
        } else {
            Vec::new()
        };
        reports.push(ChildReport {
            pid: c.pid,
            stalled: stalled.filter(|_| matches!(outcome, Outcome::TimedOut { .. })),
            outcome,
            output,
        });
    }
    Ok(reports)
}

fn pollfd(fd: &OwnedFd) -> libc::pollfd {
    use std::os::fd::AsRawFd;
    libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    }
}

fn drain_once(fd: &OwnedFd, out: &mut Vec<u8>) -> Result<usize> {
    sys::read_append(fd.as_fd(), out, 64 * 1024).map_err(|e| Error::io("read child result", e))
}

fn decode_result(bytes: &[u8]) -> (Option<u8>, Vec<u8>) {
    let mut dec = Decoder::default();
    match dec.recv(&mut ReadSource(bytes), None) {
        Ok(f) => {
            let msg = f.as_slice();
            match msg.split_first() {
                Some((&tag, body)) => (Some(tag), body.to_vec()),
                None => (None, Vec::new()),
            }
        }
        Err(_) => (None, Vec::new()),
    }
}

#[cfg(test)]
mod tests {
    use super::proc::describe_syscall;
    use super::*;

    #[test]
    fn a_reader_holding_its_own_write_end_is_named_in_the_hang_report() {
        let _serial = serial();
        let (r, w) = crate::sys::pipe(false).unwrap();
        let report = run(Duration::from_millis(300), move || {
            // The bug: this process still holds `w`, so read never ends.
            let _keep = &w;
            let mut buf = [0u8; 8];
            let _ = crate::sys::read(r.as_fd(), &mut buf);
            Vec::new()
        })
        .unwrap();
        let Outcome::TimedOut {
            blocked_in: Some(b),
        } = &report.outcome
        else {
            panic!("expected a hang, got {}", report.outcome);
        };
        assert!(b.starts_with("read(fd "), "{b}");
        assert!(
            b.contains(&format!("pid {} (the reader itself)", report.pid)),
            "{b}"
        );
        assert!(
            report
                .outcome
                .to_string()
                .contains("no end of stream can come")
        );
    }

    #[test]
    fn a_child_the_parent_sends_to_sees_closed_once_the_parent_drops_its_end() {
        let serial = serial();
        let (tx, mut rx) = crate::pipe().unwrap();
        let (child, tx) = spawn_keeping(tx, move || {
            let mut got = Vec::new();
            loop {
                match rx.recv_bytes() {
                    Ok(m) => got.extend_from_slice(&m),
                    Err(crate::Error::Closed) => return got,
                    Err(e) => panic!("{e}"),
                }
            }
        })
        .unwrap();
        drop(serial);
        tx.send_bytes(b"ab").unwrap();
        tx.send_bytes(b"c").unwrap();
        drop(tx);
        let report = child.wait(Duration::from_secs(10)).unwrap();
        assert_eq!(report.expect_success(), b"abc");
    }

    #[test]
    fn with_plain_spawn_the_child_keeps_the_parents_sender_and_hangs() {
        let serial = serial();
        let (tx, mut rx) = crate::pipe().unwrap();
        let child = spawn(move || {
            while rx.recv_bytes().is_ok() {}
            Vec::new()
        })
        .unwrap();
        drop(serial);
        drop(tx);
        let report = child.wait(Duration::from_millis(300)).unwrap();
        let Outcome::TimedOut {
            blocked_in: Some(b),
        } = &report.outcome
        else {
            panic!("expected a hang, got {}", report.outcome);
        };
        assert!(b.contains("(the reader itself)"), "{b}");
    }

    #[test]
    fn serial_is_reentrant() {
        let _outer = serial();
        let inner = serial();
        drop(inner);
        let child = spawn(Vec::new).unwrap();
        assert!(child.wait(Duration::from_secs(10)).unwrap().is_success());
    }

    #[test]
    fn syscall_lines_are_described() {
        assert_eq!(
            describe_syscall("0 0x5 0x7ffd 0x10 0 0 0 0x7ffd 0x7f").as_deref(),
            Some("read(fd 5)")
        );
        assert_eq!(
            describe_syscall("7 0x1 0x1 0xffffffff 0 0 0 0x1 0x2").as_deref(),
            Some("poll")
        );
        assert_eq!(describe_syscall("running"), None);
    }
}
