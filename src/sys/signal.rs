//! Signals: `SIGPIPE` kept from killing a pipe writer, the counting
//! handler and interval timer of the signal-storm tests, default actions.

use std::io;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::time::Duration;

use nix::sys::signal::{SigSet, SigmaskHow, Signal, pthread_sigmask};

use super::cvt;
use super::process::{ATFORK_NONE, atfork_child_handler, to_signal};

/// Set once this process has seen `SIGPIPE` ignored; cleared in every
/// forked child and whenever this module changes a signal's disposition.
static SIGPIPE_IGNORED: AtomicBool = AtomicBool::new(false);
static FORGET_IN_CHILDREN: AtomicU8 = AtomicU8::new(ATFORK_NONE);

extern "C" fn forget_sigpipe_in_child() {
    // Async-signal-safe: one atomic store.
    SIGPIPE_IGNORED.store(false, Ordering::Relaxed);
}

/// Forgets what the pipe writers know about `SIGPIPE`'s disposition.
/// Call it after changing `SIGPIPE` from "ignore" to anything else by other
/// means than this module (see the source of `without_sigpipe`).
pub fn forget_sigpipe_disposition() {
    SIGPIPE_IGNORED.store(false, Ordering::SeqCst);
}

/// True if `SIGPIPE` is ignored, from the cache when this process has
/// already seen it ignored, else from one `sigaction` query.
fn sigpipe_ignored() -> bool {
    if SIGPIPE_IGNORED.load(Ordering::Relaxed) {
        return true;
    }
    // On libc: nix's sigaction always installs a new action; this only asks.
    // SAFETY: a zeroed sigaction is a valid out-parameter; passing a null new
    // action only queries the current disposition.
    let ignored = unsafe {
        let mut old: libc::sigaction = std::mem::zeroed();
        libc::sigaction(libc::SIGPIPE, std::ptr::null(), &mut old) == 0
            && old.sa_sigaction == libc::SIG_IGN
    };
    if ignored {
        // The fork handler is registered before the cache is first set, so no
        // child can ever inherit a set cache without the handler clearing it.
        if atfork_child_handler(&FORGET_IN_CHILDREN, forget_sigpipe_in_child) {
            SIGPIPE_IGNORED.store(true, Ordering::Relaxed);
        }
    }
    ignored
}

/// Runs `f` (a write to a pipe) so that `EPIPE` cannot kill the process.
///
/// If the process ignores `SIGPIPE` (every Rust `main` and every Python
/// interpreter does) `f` just runs. Otherwise `SIGPIPE` is blocked in this
/// thread around `f`, and a `SIGPIPE` that `f` raised is consumed before the
/// mask is restored, so the thread never sees it.
///
/// # Why the disposition may be cached
/// Asking the kernel (`sigaction`) costs about 170 ns here, as much as the
/// 64-byte `writev` it guards, and measured as a 25-40 % loss of small-message
/// throughput. So a process remembers, in one atomic flag, that it has seen
/// `SIGPIPE` ignored. The flag is only ever a shortcut to "ignored", and it is
/// cleared (so the next write asks the kernel again):
/// 1. in every child of `fork()`, by a `pthread_atfork` child handler,
///    registered before the flag is first set: a child that resets `SIGPIPE`
///    to the default before writing (as a program about to `exec` does, and
///    as our tests do) is protected as before;
/// 2. whenever this module changes a signal's disposition
///    ([`reset_signal_default`], [`install_noop_handler`] and its restore).
///
/// The one case not covered: code in the *same* process that switches
/// `SIGPIPE` from ignored to the default action with its own `sigaction`
/// after a pipe write, then writes to a pipe whose reader is gone. It must
/// call [`forget_sigpipe_disposition`] after the switch. A switch to a
/// handler of its own is harmless (the handler runs, the write still
/// returns `EPIPE`). A switch the other way (to ignored) is always seen.
pub(super) fn without_sigpipe<T>(f: impl FnOnce() -> io::Result<T>) -> io::Result<T> {
    let ignored = sigpipe_ignored();
    if ignored {
        return f();
    }
    let mut set = SigSet::empty();
    set.add(Signal::SIGPIPE);
    let mut old_mask = SigSet::empty();
    let _ = pthread_sigmask(SigmaskHow::SIG_BLOCK, Some(&set), Some(&mut old_mask));
    let was_blocked = old_mask.contains(Signal::SIGPIPE);
    let result = f();
    if !was_blocked {
        if let Err(e) = &result {
            if e.raw_os_error() == Some(libc::EPIPE) {
                let zero = libc::timespec {
                    tv_sec: 0,
                    tv_nsec: 0,
                };
                // On libc: nix has no sigtimedwait (its sigwait would block).
                // SAFETY: `set` holds SIGPIPE, which is blocked in this thread,
                // so sigtimedwait only dequeues the signal our write raised.
                unsafe { libc::sigtimedwait(set.as_ref(), std::ptr::null_mut(), &zero) };
            }
        }
        // Restores the mask saved above.
        let _ = pthread_sigmask(SigmaskHow::SIG_SETMASK, Some(&old_mask), None);
    }
    result
}

/// Installs a handler for `signal` that only counts (see
/// [`noop_handler_runs`]), without `SA_RESTART`, so every blocking system call
/// it interrupts fails with `EINTR`. Used by signal-storm tests; returns the
/// previous action so it can be restored.
pub fn install_noop_handler(signal: libc::c_int) -> io::Result<SavedAction> {
    // On libc: nix's `Signal` cannot name real-time signals, which this
    // takes as the kernel does.
    extern "C" fn noop(_: libc::c_int) {
        // An atomic add on a lock-free integer is async-signal-safe.
        NOOP_HANDLER_RUNS.fetch_add(1, Ordering::Relaxed);
    }
    // SAFETY: a zeroed sigaction is valid; we fill in a handler that is
    // async-signal-safe (one atomic add, no locks, no allocation) and an
    // empty mask.
    unsafe {
        let mut new: libc::sigaction = std::mem::zeroed();
        new.sa_sigaction = noop as extern "C" fn(libc::c_int) as libc::sighandler_t;
        libc::sigemptyset(&mut new.sa_mask);
        new.sa_flags = 0;
        let mut old: libc::sigaction = std::mem::zeroed();
        cvt(libc::sigaction(signal, &new, &mut old))?;
        forget_sigpipe_disposition();
        Ok(SavedAction { signal, old })
    }
}

static NOOP_HANDLER_RUNS: AtomicU64 = AtomicU64::new(0);

/// How many times, in this process, a handler installed by
/// [`install_noop_handler`] has run (for any signal). Signal-storm tests read
/// it before and after a transfer to prove the signals really arrived. A
/// forked child starts with the parent's count and counts on its own.
pub fn noop_handler_runs() -> u64 {
    NOOP_HANDLER_RUNS.load(Ordering::Relaxed)
}

/// A signal's previous action, restored on drop.
pub struct SavedAction {
    signal: libc::c_int,
    old: libc::sigaction,
}

impl Drop for SavedAction {
    fn drop(&mut self) {
        // SAFETY: `old` was filled in by sigaction and is a valid action.
        unsafe { libc::sigaction(self.signal, &self.old, std::ptr::null_mut()) };
        forget_sigpipe_disposition();
    }
}

// On libc: nix has no setitimer (only alarm and POSIX timers).
/// Arms `ITIMER_REAL` to deliver `SIGALRM` to this process every `interval`
/// (zero disarms it).
pub fn set_interval_timer(interval: Duration) -> io::Result<()> {
    let tv = libc::timeval {
        tv_sec: interval.as_secs() as libc::time_t,
        tv_usec: interval.subsec_micros() as libc::suseconds_t,
    };
    let it = libc::itimerval {
        it_interval: tv,
        it_value: tv,
    };
    // SAFETY: `it` is a valid itimerval; the old value is not requested.
    cvt(unsafe { libc::setitimer(libc::ITIMER_REAL, &it, std::ptr::null_mut()) }).map(drop)
}

/// Restores the default action of `signal` (for `SIGPIPE`: kill the
/// process). Tests use it to prove a write can never raise `SIGPIPE`.
pub fn reset_signal_default(signal: libc::c_int) -> io::Result<()> {
    use nix::sys::signal::{SigHandler, signal as set_signal};
    // SAFETY: SIG_DFL installs no handler code, so no handler can run with
    // broken invariants; this only changes the disposition.
    unsafe { set_signal(to_signal(signal)?, SigHandler::SigDfl) }?;
    // After the change: a write racing with it could re-learn "ignored".
    forget_sigpipe_disposition();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::harness::fork;
    use crate::sys::{WriteKind, pipe, write_all_vectored};
    use std::os::fd::AsFd;

    #[test]
    fn the_cached_sigpipe_disposition_is_forgotten_in_a_child_and_after_a_reset() {
        let _serial = fork::serial();
        // A Rust test binary ignores SIGPIPE: one write teaches the cache.
        let (live_r, live_w) = pipe(false).unwrap();
        write_all_vectored(live_w.as_fd(), WriteKind::Pipe, &[b"x"]).unwrap();
        assert!(SIGPIPE_IGNORED.load(Ordering::SeqCst));
        let (dead_r, dead_w) = pipe(false).unwrap();
        drop(dead_r);
        let report = fork::run(Duration::from_secs(10), move || {
            let forgotten_by_fork = !SIGPIPE_IGNORED.load(Ordering::SeqCst);
            // Learn "ignored" again in the child, then switch to the default
            // action: the next write must not trust the cache.
            write_all_vectored(live_w.as_fd(), WriteKind::Pipe, &[b"y"]).unwrap();
            let relearned = SIGPIPE_IGNORED.load(Ordering::SeqCst);
            reset_signal_default(libc::SIGPIPE).unwrap();
            let e = write_all_vectored(dead_w.as_fd(), WriteKind::Pipe, &[b"z"]).unwrap_err();
            format!("{forgotten_by_fork} {relearned} {:?}", e.raw_os_error()).into_bytes()
        })
        .unwrap();
        assert!(report.is_success(), "child {}", report.outcome);
        assert_eq!(
            String::from_utf8(report.output).unwrap(),
            format!("true true Some({})", libc::EPIPE)
        );
        drop(live_r);
    }
}
