//! Waiting: spinning, futex sleeps and wake-ups on the header's wake
//! words, and the producers pipe.

// Waits ("not empty" for the consumer lock holder, "not full" for the
// producer lock holder, "joined" for a `JoinableQueue`'s joiners) spin
// for a while that adapts to how long this thread's recent waits lasted
// (8-50 us), then sleep on a futex word in the mapping, with a waiter count
// so a waker makes a system call only when someone sleeps. A waker leaves
// its CPU number beside the word: a waiter on that same CPU yields instead
// of spinning, since the process it waits for cannot run until it does
// (this makes a same-core round trip one `sched_yield` per hop), and now and
// then sleeps instead, so that the kernel may move it to an idle CPU. Never
// a process-shared condition variable: glibc's are not robust. Every sleep
// is bounded (`POLL`, 10 ms), so sleepers re-check for dead members and
// closed producers.
//
// In system calls: waiting spins 8-50 us of pauses, reading the clock
// every 32 after the first 32 (or, if the last waker ran on this CPU,
// skips them), makes up to 8 `sched_yield`s, then `futex(FUTEX_WAIT)` for
// at most 10 ms at a time; a wake-up is a `futex(FUTEX_WAKE)` made only
// when the other side announced that it sleeps. A consumer waiting on an
// empty queue `poll`s the producers pipe (zero timeout) before each sleep,
// never while spinning. A waiter on the waker's CPU asks
// `sched_getaffinity` before it first sleeps to leave it, and then at most
// once per 1024 such waits if it may run on one CPU only. A waker that made
// a `futex(FUTEX_WAKE)` spins and yields up to 50 us through its next wait.

use std::cell::Cell;
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
/// `sched_yield`s a waiter makes before it sleeps on a futex.
const YIELDS: u32 = 8;
/// The shortest spin: well above what a reply from a process on another
/// CPU that was waiting for us takes (~0.5 us for a 64 B round trip here),
/// and what a fixed spin of ~200 pauses lasted here (~35 ns each).
pub(super) const SPIN_MIN_NS: u32 = 8_000;
/// The longest spin: however long recent waits were, a waiter burns at most
/// this much CPU before it sleeps.
pub(super) const SPIN_MAX_NS: u32 = 50_000;
/// Pauses (about 35 ns each here) between two looks at the clock.
const PAUSES_PER_CHECK: u32 = 32;
/// Same-CPU hand-offs before the first attempt to leave the waker's CPU.
const ESCAPE_MIN: u32 = 16;
/// The most same-CPU hand-offs between two attempts (there is no idle CPU,
/// or this process may run on one CPU only): an attempt costs a futex sleep
/// and wake-up on one CPU (a few microseconds) or a `sched_getaffinity`,
/// about a nanosecond per wait at this interval, and a process whose
/// affinity is widened again, or that was crowded onto one CPU by a busy
/// machine, tries again within ~1000 round trips.
const ESCAPE_MAX: u32 = 1 << 10;

// Adaptive spinning, per thread (no shared word: a waiter's spin budget is
// its own business, and a shared one would bounce a cache line between the
// processes of a round trip). `est_ns` follows how long this thread's recent
// waits lasted from the start of their spin, among those no longer than
// `SPIN_MAX_NS` (a quarter of the way each time); a spin lasts up to
// `SPIN_MIN_NS + 2 * est_ns`, capped at `SPIN_MAX_NS`. A wait that outlasts
// the cap, or a sleep slice that ends with nothing, halves `est_ns`: a
// waiter on an idle queue is back to `SPIN_MIN_NS` after a few slices (one
// that was just busy spins 50, 50, 33, 20, 14, 11 ... us before each), so
// its sleeps soon cost little more than the wake-ups of `POLL`.
//
// Leaving the waker's CPU: two processes in a round trip often start on the
// same CPU (a forked child starts where its parent ran). There, a waiter
// yields to the waker instead of spinning (see `spin`), which never blocks,
// so the kernel never gets to move either of them to an idle CPU: only its
// periodic load balancing does, after milliseconds or never, and every
// round trip costs two context switches meanwhile (3.5 us here, against
// 0.55 us on two CPUs). So after `escape_every` consecutive same-CPU
// hand-offs a waiter allowed on other CPUs sleeps on the futex once instead:
// the waker's `FUTEX_WAKE` then lets the kernel place it on an idle CPU. If
// the next wait still finds the waker on its CPU (none was idle), the
// interval doubles up to `ESCAPE_MAX`; once apart, it is back to
// `ESCAPE_MIN`, ready for the next time they share a CPU. The waker, for its
// part, spins through its next wait (`patient`) rather than sleeping at
// once: asleep, it would be woken beside the one that just left. The kernel
// places a woken process on another CPU only if one is idle: on a machine
// whose CPUs are all busy (even with low-priority work) the two stay
// together until the load balancer parts them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Adapt {
    est_ns: u32,
    /// When the spin of a wait now sleeping started.
    spun_from: Option<Instant>,
    /// Consecutive waits whose waker ran on this thread's CPU.
    same_cpu: u32,
    escape_every: u32,
    /// The last same-CPU wait slept to leave the CPU: judge it at the next.
    escaped: bool,
    /// This thread woke a sleeper since its last wait.
    woke_sleeper: bool,
}

impl Adapt {
    const NEW: Adapt = Adapt {
        est_ns: 0,
        spun_from: None,
        same_cpu: 0,
        escape_every: ESCAPE_MIN,
        escaped: false,
        woke_sleeper: false,
    };

    /// How long the next spin may last.
    fn limit_ns(&self) -> u32 {
        (SPIN_MIN_NS + 2 * self.est_ns).min(SPIN_MAX_NS)
    }

    /// A wait was satisfied `waited_ns` after its spin began.
    fn satisfied(&mut self, waited_ns: u64) {
        if waited_ns > u64::from(SPIN_MAX_NS) {
            self.est_ns /= 2;
        } else {
            let (w, e) = (waited_ns as i64, i64::from(self.est_ns));
            self.est_ns = (e + (w - e) / 4).clamp(0, i64::from(SPIN_MAX_NS)) as u32;
        }
    }

    /// A sleep slice ended with nothing.
    fn unsatisfied(&mut self) {
        self.est_ns /= 2;
    }

    /// Before a wait, `same`: its waker ran on this thread's CPU. Judges
    /// the last attempt to leave the waker's CPU, if that is pending.
    fn judge_escape(&mut self, same: bool) {
        if self.escaped {
            self.escaped = false;
            self.escape_every = if same {
                (self.escape_every * 2).min(ESCAPE_MAX)
            } else {
                ESCAPE_MIN
            };
        }
    }

    /// A same-CPU wait: true if this one should sleep at once to leave the
    /// CPU (`may_move` tells whether this process may run elsewhere; asked
    /// only then, it is a system call).
    fn escape_now(&mut self, may_move: impl FnOnce() -> bool) -> bool {
        self.same_cpu += 1;
        if self.same_cpu < self.escape_every {
            return false;
        }
        self.same_cpu = 0;
        if may_move() {
            self.escaped = true;
            true
        } else {
            self.escape_every = ESCAPE_MAX;
            false
        }
    }
}

thread_local! {
    static ADAPT: Cell<Adapt> = const { Cell::new(Adapt::NEW) };
}

#[cfg(test)]
thread_local! {
    /// Tests only: what this thread's waits did.
    static STATS: Cell<Stats> = const { Cell::new(Stats { spins_out: 0, escapes: 0, sleeps: 0 }) };
}

/// Tests only: counts of this thread's waits.
#[cfg(test)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stats {
    /// Spins that reached their limit.
    spins_out: u32,
    /// Same-CPU waits that slept at once to leave the CPU.
    escapes: u32,
    /// `futex(FUTEX_WAIT)` calls.
    sleeps: u32,
}

/// Something a wait did, counted in tests only.
#[derive(Debug, Clone, Copy)]
enum Note {
    SpinOut,
    Escape,
    Sleep,
}

#[inline]
fn note(n: Note) {
    #[cfg(test)]
    STATS.with(|c| {
        let mut s = c.get();
        match n {
            Note::SpinOut => s.spins_out += 1,
            Note::Escape => s.escapes += 1,
            Note::Sleep => s.sleeps += 1,
        }
        c.set(s);
    });
    #[cfg(not(test))]
    let _ = n;
}

fn adapt<R>(f: impl FnOnce(&mut Adapt) -> R) -> R {
    ADAPT.with(|c| {
        let mut a = c.get();
        let r = f(&mut a);
        c.set(a);
        r
    })
}

/// True if this process may run on more than one CPU.
fn may_move() -> bool {
    sys::allowed_cpus().is_ok_and(|cpus| cpus.len() > 1)
}

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

    /// Waits for `ready()` without sleeping in the kernel: spins (pauses)
    /// for an adaptive 8-50 us, then makes a few `sched_yield`s; true if it
    /// became ready. False at once now and then on the waker's CPU, to
    /// leave it (see "Leaving the waker's CPU" above).
    ///
    /// Spinning only pays when whoever will make us ready runs on another
    /// CPU. If the last waker ran on this CPU, it cannot run while we spin:
    /// we skip the pauses and yield at once, which runs it if it is
    /// runnable here (a same-core round trip then costs one yield per hop
    /// instead of microseconds of pauses).
    pub(super) fn spin(w: &WakeWord, ready: &impl Fn() -> bool) -> bool {
        if ready() {
            return true;
        }
        let waker = w.waker_cpu.load(Relaxed);
        let same = waker != 0 && waker == current_cpu();
        let mut a = ADAPT.with(Cell::get);
        // (Left by a wait that gave up after its spin, e.g. at its deadline.)
        a.spun_from = None;
        a.judge_escape(same);
        if std::mem::take(&mut a.woke_sleeper) {
            ADAPT.with(|c| c.set(a));
            return Self::patient(ready);
        }
        if same {
            let escape = a.escape_now(may_move);
            ADAPT.with(|c| c.set(a));
            if escape {
                note(Note::Escape);
                return false;
            }
            return Self::yields(ready);
        }
        a.same_cpu = 0;
        // The first pauses without the clock: a wait this short (the common
        // one in a round trip across CPUs) counts as no wait at all.
        for _ in 0..PAUSES_PER_CHECK {
            std::hint::spin_loop();
            if ready() {
                a.satisfied(0);
                ADAPT.with(|c| c.set(a));
                return true;
            }
        }
        let start = Instant::now();
        let limit = Duration::from_nanos(u64::from(a.limit_ns()));
        loop {
            for _ in 0..PAUSES_PER_CHECK {
                std::hint::spin_loop();
                if ready() {
                    a.satisfied(start.elapsed().as_nanos() as u64);
                    ADAPT.with(|c| c.set(a));
                    return true;
                }
            }
            if start.elapsed() >= limit {
                break;
            }
        }
        note(Note::SpinOut);
        // Learnt from in `sleep_on`, by how long the wait lasts in all.
        a.spun_from = Some(start);
        ADAPT.with(|c| c.set(a));
        Self::yields(ready)
    }

    /// The wait after waking a sleeper, whose answer it often is: the
    /// sleeper takes a while to run (tens of microseconds from an idle CPU
    /// here) and may run on this CPU or another. Spins up to `SPIN_MAX_NS`,
    /// yielding every `PAUSES_PER_CHECK` pauses so that it runs at once if
    /// it is here; never sleeps at once, which would let the kernel place
    /// this process beside it again when it has just moved away (see
    /// "Leaving the waker's CPU"). Not learnt from: such waits are not the
    /// thread's usual ones.
    fn patient(ready: &impl Fn() -> bool) -> bool {
        let start = Instant::now();
        let limit = Duration::from_nanos(u64::from(SPIN_MAX_NS));
        loop {
            for _ in 0..PAUSES_PER_CHECK {
                std::hint::spin_loop();
                if ready() {
                    return true;
                }
            }
            std::thread::yield_now();
            if ready() {
                return true;
            }
            if start.elapsed() >= limit {
                note(Note::SpinOut);
                return false;
            }
        }
    }

    /// Up to `YIELDS` `sched_yield`s, for a waker that is runnable on this
    /// CPU; true if `ready()` came.
    fn yields(ready: &impl Fn() -> bool) -> bool {
        for _ in 0..YIELDS {
            std::thread::yield_now();
            if ready() {
                return true;
            }
        }
        false
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
        let spun_from = adapt(|a| a.spun_from.take());
        let learn = |ready: bool| {
            adapt(|a| match (ready, spun_from) {
                (true, Some(from)) => a.satisfied(from.elapsed().as_nanos() as u64),
                (true, None) => {}
                (false, _) => a.unsatisfied(),
            })
        };
        if ready() {
            w.waiters.fetch_sub(1, SeqCst);
            learn(true);
            return Wait::Ready;
        }
        let start = Instant::now();
        note(Note::Sleep);
        futex_wait(&w.word, seen, Some(timeout));
        w.waiters.fetch_sub(1, SeqCst);
        let done = ready();
        learn(done);
        if done {
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
            adapt(|a| a.woke_sleeper = true);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::queue::Queue;
    use std::sync::atomic::AtomicU32;

    fn stats() -> Stats {
        STATS.with(Cell::get)
    }

    #[test]
    fn the_spin_follows_short_waits_and_backs_off_from_long_ones() {
        let mut a = Adapt::NEW;
        assert_eq!(a.limit_ns(), SPIN_MIN_NS);
        // Waits of 8 us: a quarter of the way each time.
        a.satisfied(8_000);
        assert_eq!((a.est_ns, a.limit_ns()), (2_000, SPIN_MIN_NS + 4_000));
        a.satisfied(8_000);
        assert_eq!((a.est_ns, a.limit_ns()), (3_500, SPIN_MIN_NS + 7_000));
        for _ in 0..40 {
            a.satisfied(8_000);
        }
        assert_eq!((a.est_ns, a.limit_ns()), (7_997, SPIN_MIN_NS + 15_994));
        // Never past the cap, however long the waits that fit under it.
        for _ in 0..40 {
            a.satisfied(u64::from(SPIN_MAX_NS));
        }
        assert_eq!(a.limit_ns(), SPIN_MAX_NS);
        // A wait longer than the cap halves it, as does a slice with nothing.
        let e = a.est_ns;
        a.satisfied(u64::from(SPIN_MAX_NS) + 1);
        assert_eq!(a.est_ns, e / 2);
        a.unsatisfied();
        assert_eq!(a.est_ns, e / 4);
        for _ in 0..16 {
            a.unsatisfied();
        }
        assert_eq!((a.est_ns, a.limit_ns()), (0, SPIN_MIN_NS));
    }

    #[test]
    fn leaving_the_wakers_cpu_is_tried_less_often_while_it_fails() {
        let mut a = Adapt::NEW;
        let asked = Cell::new(0);
        let waits_until_escape = |a: &mut Adapt, may: bool| {
            let mut n = 0;
            loop {
                n += 1;
                a.judge_escape(true);
                if a.escape_now(|| {
                    asked.set(asked.get() + 1);
                    may
                }) {
                    return n;
                }
                if n > 10 * ESCAPE_MAX {
                    return 0;
                }
            }
        };
        assert_eq!(waits_until_escape(&mut a, true), ESCAPE_MIN);
        // Still on the waker's CPU: twice as long before the next try.
        assert_eq!(waits_until_escape(&mut a, true), 2 * ESCAPE_MIN);
        assert_eq!(waits_until_escape(&mut a, true), 4 * ESCAPE_MIN);
        // Apart: back to the shortest interval.
        a.judge_escape(false);
        assert_eq!(a.escape_every, ESCAPE_MIN);
        assert!(!a.escaped);
        // A process that may run on one CPU only asks once per ESCAPE_MAX.
        assert_eq!(asked.get(), 3);
        a.same_cpu = 0;
        assert_eq!(waits_until_escape(&mut a, false), 0);
        assert_eq!(a.escape_every, ESCAPE_MAX);
        // (Asked at the 16th wait, then every ESCAPE_MAX-th.)
        assert_eq!(asked.get(), 3 + 10);
    }

    /// The wait after waking a sleeper spins (and yields) up to
    /// `SPIN_MAX_NS` even on the waker's CPU, once: the next wait there
    /// yields as before.
    #[test]
    fn the_wait_after_waking_a_sleeper_spins_once_even_on_the_wakers_cpu() {
        std::thread::spawn(|| {
            // Stay on one CPU: the waker's CPU is this one throughout.
            crate::sys::pin_to_cpu(current_cpu() as usize - 1).unwrap();
            let word = |waiters| WakeWord {
                word: AtomicU32::new(0),
                waiters: AtomicU32::new(waiters),
                waker_cpu: AtomicU32::new(current_cpu()),
            };
            let (asleep, here) = (word(1), word(0));
            let s0 = stats();
            // Nobody sleeps on `here`: no futex call, nothing learnt.
            Inner::wake(&here);
            assert!(!Inner::spin(&here, &|| false));
            let s1 = stats();
            assert_eq!(s1.spins_out, s0.spins_out);
            // Someone announced a sleep on `asleep`: the next wait spins out.
            Inner::wake(&asleep);
            assert!(!Inner::spin(&here, &|| false));
            let s2 = stats();
            assert_eq!(s2.spins_out, s1.spins_out + 1);
            assert!(!Inner::spin(&here, &|| false));
            assert_eq!(stats(), s2);
        })
        .join()
        .unwrap();
    }

    /// An idle waiter sleeps in `futex(FUTEX_WAIT)`: every slice spins out
    /// once and sleeps once (and one last spin finds the deadline passed),
    /// and a waiter that was just spinning for long waits halves its spin
    /// at each slice.
    #[test]
    fn an_idle_waiter_ends_in_futex_sleep() {
        std::thread::spawn(|| {
            let q = Queue::new().unwrap();
            // Busy just before: spinning the longest.
            adapt(|a| a.est_ns = SPIN_MAX_NS);
            let before = stats();
            assert!(matches!(
                q.get_bytes_timeout(Duration::from_millis(60)),
                Err(Error::Timeout)
            ));
            let after = stats();
            let sleeps = after.sleeps - before.sleeps;
            // (How many depends on how late each 10 ms sleep wakes up.)
            assert!(sleeps >= 1, "{before:?} {after:?}");
            assert_eq!(after.spins_out - before.spins_out, sleeps + 1);
            assert_eq!(after.escapes, before.escapes);
            let est = adapt(|a| a.est_ns);
            assert_eq!(est, SPIN_MAX_NS >> sleeps.min(31));
        })
        .join()
        .unwrap();
    }
}
