//! `JoinableQueue`'s task accounting: the holder table, the counters, and
//! the internals of `task_done` and `join`.

// All counters live in the queue's shared mapping (`layout.rs`):
// - Tasks put is the queue's own `published` counter, which the producer
//   commits with a message's `LAST` record.
// - Tasks done is one counter changed only by `task_done`, under a third
//   robust lock, by a commit of its own (a `pending` copy and a `phase`
//   word, rolled forward by the next locker if the caller dies mid-way).
//   `task_done` checks `done < published` under that lock, so `done` never
//   passes `published`; unfinished = `published - done`, read `done` first,
//   so a zero read is a zero that held at one instant.
// - Taken, not done: a table of `TASK_SLOTS` (256) rows `(pid, taken,
//   done)`. A get adds one to its process's `taken` inside the consumer's
//   `LAST`-record commit (the same commit that takes the message, so a death
//   applies both or neither). A `task_done` adds one to `done` of the
//   caller's row if it holds a task, else of the first live holder's row
//   (the task may be finished by a process other than the one that took
//   it), in its own commit. A row is reused once its process has nothing
//   outstanding; when all 256 rows hold tasks, further gets are counted as
//   untracked (still unfinished, just not attributed to a pid).
// - Deaths: a consumer killed after its `LAST` commit keeps the task in its
//   row: the join report names it, dead. A consumer killed inside a message
//   (whose rest the queue then skips) is charged for it by the repair
//   (`locks.rs`), using the lock holder's pid recorded in `holder_pid`: its
//   task can never be done, and the report says who had it. A producer
//   killed inside a put never published, so no task was added. A process
//   killed inside `task_done` leaves the tasks lock owner-dead with its
//   commit complete in `pending`: the next `task_done`, or a joiner probing
//   the lock each time its 10 ms sleep runs out, rolls it forward, so the
//   task counts as done (its caller never learned it returned, but the work
//   was finished).
// - Waking joiners: the `joined` wake word (`wait.rs`). A joiner reads the
//   word, adds itself to the waiters, fences, re-checks the count, and only
//   then sleeps with `futex(FUTEX_WAIT)` on the word it read; `task_done`
//   stores `done`, fences, and if anyone waits bumps the word and
//   `futex(FUTEX_WAKE)`s them all. Either the joiner's re-check sees the new
//   `done`, or the waker sees the joiner and the word changes under it, so
//   the sleep returns at once. Sleeps are also bounded (10 ms), so even a
//   waker killed between the two steps delays a join by at most that.

use std::io;
use std::sync::atomic::Ordering::{Acquire, Relaxed, Release, SeqCst};
use std::time::Instant;

use super::Inner;
use super::hooks::{KillPoint, kill_point};
use super::layout::{TaskSlot, UNTRACKED};
use super::locks::Guard;
use super::shutdown::SHUT_IMMEDIATE;
use super::wait::{POLL, Wait};
use crate::error::{Error, Result};
use crate::sys;

impl Inner {
    pub(super) fn apply_charge(&self, slot: u64, taken: u64) {
        let h = self.header();
        match slot {
            0 => {}
            UNTRACKED => h.tasks.untracked_taken.store(taken, Release),
            i => h.slots[(i - 1) as usize].taken.store(taken, Release),
        }
    }

    /// Under the consumer lock: the charge that adds one task taken by
    /// `pid` (finding or claiming its row of the holder table).
    pub(super) fn charge_for(&self, pid: u64) -> (u64, u64) {
        let h = self.header();
        let cached = self.slot_cache.load(Relaxed);
        if cached >> 32 == pid && cached as u32 != 0 {
            let i = (cached as u32 - 1) as usize;
            if h.slots[i].pid.load(Acquire) == pid {
                return (i as u64 + 1, h.slots[i].taken.load(Relaxed) + 1);
            }
        }
        let found = h.slots.iter().position(|s| s.pid.load(Acquire) == pid);
        // Else a free row, or one whose process has nothing outstanding.
        let found = found.or_else(|| {
            h.slots.iter().position(|s| {
                s.pid.load(Acquire) == 0 || s.taken.load(Acquire) == s.done.load(Acquire)
            })
        });
        match found {
            Some(i) => {
                // Claimed before the commit: a death in between leaves a row
                // with nothing outstanding, which the next claimer reuses.
                h.slots[i].pid.store(pid, Release);
                self.slot_cache.store(pid << 32 | (i as u64 + 1), Relaxed);
                (i as u64 + 1, h.slots[i].taken.load(Relaxed) + 1)
            }
            None => (UNTRACKED, h.tasks.untracked_taken.load(Relaxed) + 1),
        }
    }

    /// Tasks put and not yet done. Reads `done` before `published`: both
    /// only grow and `done <= published` always, so equal values mean the
    /// count was zero at the moment `published` was read.
    pub(crate) fn unfinished_tasks(&self) -> u64 {
        if cfg!(feature = "test-hooks") && self.local_tasks_pitfall {
            return self.local_tasks.load(SeqCst);
        }
        if self.shutdown_state() == SHUT_IMMEDIATE {
            return self.unfinished_after_immediate();
        }
        let h = self.header();
        let done = h.tasks.done.load(SeqCst);
        let published = h.prod.published.load(SeqCst);
        published.saturating_sub(done)
    }

    fn lock_tasks(&self) -> Result<Guard<'_>> {
        let lock = &self.header().tasks_lock.lock;
        self.take(lock, lock.lock(None), Self::repair_tasks)?
            .ok_or_else(|| Error::io("lock queue", io::Error::other("an untimed lock gave up")))
    }

    /// After `EOWNERDEAD` on the tasks lock: finish a half-applied commit.
    fn repair_tasks(&self) {
        let t = &self.header().tasks;
        if t.phase.load(Acquire) == 1 {
            self.apply_task_done_slot(t.p_slot.load(Relaxed), t.p_slot_done.load(Relaxed));
            t.done.store(t.p_done.load(Relaxed), SeqCst);
            t.phase.store(0, Release);
        }
        Self::wake(&self.header().joined);
    }

    fn apply_task_done_slot(&self, slot: u64, slot_done: u64) {
        let h = self.header();
        match slot {
            0 => {}
            UNTRACKED => h.tasks.untracked_done.store(slot_done, Release),
            i => h.slots[(i - 1) as usize].done.store(slot_done, Release),
        }
    }

    /// Takes the tasks lock if it is free, to repair it if its owner died
    /// inside a `task_done` (whose commit then lands); releases it at once.
    fn probe_tasks(&self) -> Result<()> {
        let lock = &self.header().tasks_lock.lock;
        self.take(lock, lock.try_lock(), Self::repair_tasks)?;
        Ok(())
    }

    /// Marks one task done: one commit of the total and of one row of the
    /// holder table (this process's if it holds a task, else the first live
    /// holder's, else any holder's).
    pub(crate) fn task_done(&self) -> Result<()> {
        if cfg!(feature = "test-hooks") && self.local_tasks_pitfall {
            // The pitfall: a counter each process keeps for itself.
            return match self.local_tasks.load(SeqCst) {
                0 => Err(Error::TaskDoneTooManyTimes),
                _ => {
                    self.local_tasks.fetch_sub(1, SeqCst);
                    Ok(())
                }
            };
        }
        let h = self.header();
        let t = &h.tasks;
        let _guard = self.lock_tasks()?;
        let done = t.done.load(Relaxed);
        // After an immediate shutdown, only the tasks gets returned can be
        // done (the discarded ones count as done: CPython 3.13 subtracts them).
        let limit = if self.shutdown_state() == SHUT_IMMEDIATE {
            self.tasks_gotten()
        } else {
            h.prod.published.load(SeqCst)
        };
        if done >= limit {
            return Err(Error::TaskDoneTooManyTimes);
        }
        let me = sys::cached_pid() as u64;
        let outstanding = |s: &TaskSlot| s.taken.load(Acquire) > s.done.load(Relaxed);
        let mine = h
            .slots
            .iter()
            .position(|s| s.pid.load(Acquire) == me && outstanding(s));
        let slot = mine
            .or_else(|| {
                h.slots.iter().position(|s| {
                    outstanding(s) && sys::process_alive(s.pid.load(Acquire) as sys::Pid)
                })
            })
            .or_else(|| h.slots.iter().position(outstanding));
        let (slot, slot_done) = match slot {
            Some(i) => (i as u64 + 1, h.slots[i].done.load(Relaxed) + 1),
            None if t.untracked_taken.load(Acquire) > t.untracked_done.load(Relaxed) => {
                (UNTRACKED, t.untracked_done.load(Relaxed) + 1)
            }
            // A task not taken yet (Python allows it): no row changes.
            None => (0, 0),
        };
        t.p_done.store(done + 1, Relaxed);
        t.p_slot.store(slot, Relaxed);
        t.p_slot_done.store(slot_done, Relaxed);
        t.phase.store(1, Release);
        self.apply_task_done_slot(slot, slot_done);
        kill_point(KillPoint::TaskDoneMidCommit);
        t.done.store(done + 1, SeqCst);
        t.phase.store(0, Release);
        // Joiners wait for zero only. `published` only grows, so if this
        // read says the count is not zero, it was not zero when `done` was
        // stored, and the task_done that does reach zero will wake them.
        if done + 1 >= h.prod.published.load(SeqCst) || self.unfinished_tasks() == 0 {
            Self::wake(&h.joined);
        }
        Ok(())
    }

    /// Waits until no task is unfinished, or `deadline`.
    pub(crate) fn join(&self, deadline: Option<Instant>) -> Result<()> {
        loop {
            if self.unfinished_tasks() == 0 {
                return Ok(());
            }
            let left = match deadline {
                None => POLL,
                Some(d) => {
                    let now = Instant::now();
                    if now >= d {
                        // Under the tasks lock (repaired if need be): the
                        // count and the table agree.
                        let _guard = self.lock_tasks()?;
                        let unfinished = self.unfinished_tasks();
                        if unfinished == 0 {
                            return Ok(());
                        }
                        return Err(Error::JoinTimeout {
                            unfinished,
                            holders: self.task_holders(),
                        });
                    }
                    (d - now).min(POLL)
                }
            };
            if cfg!(feature = "test-hooks") && self.local_tasks_pitfall {
                // Nobody else can change this process's own counter.
                std::thread::sleep(left);
                continue;
            }
            // No lost wake-up: `wait_on` reads the generation word, announces
            // itself in `waiters`, fences, and re-checks the count before it
            // sleeps; `task_done` stores `done`, fences, and bumps the word if
            // anyone announced. One of the two sees the other.
            if let Wait::TimedOut =
                Self::wait_on(&self.header().joined, left, || self.unfinished_tasks() == 0)
            {
                // A task_done killed mid-commit leaves its lock owner-dead
                // and its commit unapplied; land it rather than wait on it.
                self.probe_tasks()?;
            }
        }
    }

    /// Who took tasks and has not marked them done.
    pub(crate) fn task_holders(&self) -> Vec<crate::error::TaskHolder> {
        self.header()
            .slots
            .iter()
            .filter_map(|s| {
                let pid = s.pid.load(Acquire);
                let taken = s.taken.load(Acquire);
                let done = s.done.load(Acquire);
                (pid != 0 && taken > done).then(|| crate::error::TaskHolder {
                    pid: pid as sys::Pid,
                    count: taken - done,
                    alive: sys::process_alive(pid as sys::Pid),
                })
            })
            .collect()
    }
}
