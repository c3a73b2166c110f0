//! Waiting: spinning, futex sleeps and wake-ups on the header's wake
//! words, and the producers pipe.

// Waits ("not empty" for the consumer lock holder, "not full" for the
// producer lock holder, "joined" for a `JoinableQueue`'s joiners) spin
// briefly, then sleep on a futex word in the mapping, with a waiter count so
// a waker makes a system call only when someone sleeps. A waker leaves its
// CPU number beside the word: a waiter on that same CPU yields instead of
// spinning, since the process it waits for cannot run until it does (this
// makes a same-core round trip one `sched_yield` per hop). Never a
// process-shared condition variable: glibc's are not robust. Every sleep is
// bounded (`POLL`, 10 ms), so sleepers re-check for dead members and closed
// producers.
//
// In system calls: waiting spins ~200 pauses (or, if the last waker ran on
// this CPU, skips them), makes up to 8 `sched_yield`s, then
// `futex(FUTEX_WAIT)` for at most 10 ms at a time; a wake-up is a
// `futex(FUTEX_WAKE)` made only when the other side announced that it
// sleeps. A consumer waiting on an empty queue `poll`s the producers pipe
// (zero timeout) before each sleep, never while spinning.

use std::os::fd::AsFd;
use std::sync::atomic::Ordering::{Acquire, Relaxed, SeqCst};
use std::sync::atomic::fence;
use std::time::{Duration, Instant};

use super::Inner;
use super::layout::WakeWord;
use crate::error::{Error, Result};
use crate::sys::shm::{current_cpu, futex_wait, futex_wake};
use crate::sys::{self, Readiness};

/// Longest a sleeper sleeps before re-checking dead members and producers.
pub(super) const POLL: Duration = Duration::from_millis(10);

/// How long one bounded wait may sleep before `deadline` (`None`: no
/// deadline): at most [`POLL`], or `Timeout` once the deadline has passed.
pub(super) fn wait_slice(deadline: Option<Instant>) -> Result<Duration> {
    match deadline {
        None => Ok(POLL),
        Some(d) => {
            let now = Instant::now();
            if now >= d {
                return Err(Error::Timeout);
            }
            Ok((d - now).min(POLL))
        }
    }
}
/// Pauses (about 10 ns each here) a waiter spins before yielding.
const SPINS: u32 = 192;
/// `sched_yield`s a waiter makes before it sleeps on a futex.
const YIELDS: u32 = 8;

/// Why a wait stopped.
pub(super) enum Wait {
    Ready,
    Again,
    TimedOut,
}

impl Inner {
    // Why "no producer left" is a pipe: each `Queue` handle holds the write
    // end of a private "producers" pipe, and every process inherits it
    // through `fork`. The kernel counts the copies and closes them when a
    // process exits or is killed, so a consumer that polls the read end sees
    // `POLLHUP` exactly when no potential producer is left: no pid table, no
    // pid reuse, no race with a producer that has been forked but has not
    // run yet. Before returning `Error::Closed` the consumer also takes the
    // producer lock with `trylock` (`probe_producer`: a held lock means a
    // put is still in progress; a dead holder is repaired first, which may
    // publish a message that was fully written).

    /// True once no process holds the producers pipe's write end.
    pub(super) fn producers_gone(&self) -> bool {
        matches!(
            sys::wait_readable(self.producers_watch.as_fd(), Some(Instant::now())),
            Ok(Readiness::Ready)
        )
    }

    // No consumer left is the same pipe trick the other way round: each
    // handle holds the write end of a "consumers" pipe, `close_consumer`
    // drops it, the kernel closes it at exit or death, and `POLLHUP` on the
    // read end says no potential consumer is left. That cannot be undone (a
    // write end, once every copy is closed, cannot come back), so the first
    // process to see it records it in the shared `no_consumers` word, which
    // every put reads at its start. A put polls the pipe only before it
    // sleeps, never on its fast path.

    /// True once no process holds the consumers pipe's write end.
    pub(super) fn consumers_gone(&self) -> bool {
        let seen = &self.header().config.no_consumers;
        if seen.load(Relaxed) != 0 {
            return true;
        }
        let gone = matches!(
            sys::wait_readable(self.consumers_watch.as_fd(), Some(Instant::now())),
            Ok(Readiness::Ready)
        );
        if gone {
            seen.store(1, SeqCst);
        }
        gone
    }

    /// Waits on `w` until `ready()` or `timeout`; spins a little first.
    pub(super) fn wait_on(w: &WakeWord, timeout: Duration, ready: impl Fn() -> bool) -> Wait {
        if Self::spin(w, &ready) {
            return Wait::Ready;
        }
        Self::sleep_on(w, timeout, ready)
    }

    /// Waits for `ready()` without sleeping in the kernel, for about 2 us
    /// of pauses and then a few `sched_yield`s; true if it became ready.
    ///
    /// Spinning only pays when whoever will make us ready runs on another
    /// CPU. If the last waker ran on this CPU, it cannot run while we spin:
    /// we skip the pauses and yield at once, which runs it if it is
    /// runnable here (a same-core round trip then costs one yield per hop
    /// instead of ~2 us of pauses, measured at 10 ns each on these VMs).
    pub(super) fn spin(w: &WakeWord, ready: &impl Fn() -> bool) -> bool {
        let mut pauses = 0;
        let mut yields = 0;
        loop {
            if ready() {
                return true;
            }
            let waker = w.waker_cpu.load(Relaxed);
            if pauses < SPINS && (waker == 0 || waker != current_cpu()) {
                std::hint::spin_loop();
                pauses += 1;
            } else if yields < YIELDS {
                std::thread::yield_now();
                yields += 1;
            } else {
                return false;
            }
        }
    }

    /// Sleeps on `w`'s futex word until `ready()` or `timeout` (without
    /// spinning first). No lost wake-up: it reads the word, announces itself
    /// in `waiters`, fences, and re-checks `ready()` before it sleeps; a
    /// waker changes the condition, fences, and bumps the word if anyone
    /// announced. One of the two sees the other.
    pub(super) fn sleep_on(w: &WakeWord, timeout: Duration, ready: impl Fn() -> bool) -> Wait {
        let seen = w.word.load(Acquire);
        w.waiters.fetch_add(1, SeqCst);
        fence(SeqCst);
        if ready() {
            w.waiters.fetch_sub(1, SeqCst);
            return Wait::Ready;
        }
        let start = Instant::now();
        futex_wait(&w.word, seen, Some(timeout));
        w.waiters.fetch_sub(1, SeqCst);
        if ready() {
            Wait::Ready
        } else if start.elapsed() >= timeout {
            Wait::TimedOut
        } else {
            Wait::Again
        }
    }

    /// Tells `w`'s sleepers (if any) that its condition may have changed,
    /// and leaves this CPU as the spinners' hint.
    pub(super) fn wake(w: &WakeWord) {
        let cpu = current_cpu();
        if w.waker_cpu.load(Relaxed) != cpu {
            w.waker_cpu.store(cpu, Relaxed);
        }
        fence(SeqCst);
        if w.waiters.load(SeqCst) != 0 {
            w.word.fetch_add(1, SeqCst);
            futex_wake(&w.word, i32::MAX);
        }
    }

    /// One bounded wait of the producer lock holder for `ready`.
    pub(super) fn wait_producer(
        &self,
        deadline: Option<Instant>,
        ready: &dyn Fn() -> bool,
    ) -> Result<()> {
        // A shut-down queue has no room for anyone (`shutdown.rs`).
        if self.shutdown_state() != 0 {
            return Err(Error::ShutDown);
        }
        let left = wait_slice(deadline)?;
        // Shutdown is part of the condition: a shutdown that lands while
        // this waiter spins (not yet counted in `waiters`) must not leave it
        // to sleep a whole `POLL`.
        let not_full = &self.header().not_full;
        let ready = || ready() || self.shutdown_state() != 0;
        // Spin before the consumers check: its `poll` is a system call a
        // busy queue should not pay on every wait.
        if Self::spin(not_full, &ready) {
            return Ok(());
        }
        if self.consumers_gone() {
            return Err(Error::Closed);
        }
        Self::sleep_on(not_full, left, ready);
        Ok(())
    }
}
