//! The queue's robust locks, and what each repairs after its holder died.

// Three locks: the producer lock, the consumer lock (see `ring.rs` for what
// each guards), and a `JoinableQueue`'s tasks lock (`tasks.rs`). All are
// `PTHREAD_PROCESS_SHARED | PTHREAD_MUTEX_ROBUST` (`RobustMutex`), all are
// taken through `take`: if a holder dies, the kernel's robust-list walk at
// its exit marks the lock owner-dead, and the next locker gets `EOWNERDEAD`
// and repairs the state before anyone else can take the lock.
//
// A contended lock sleeps in the kernel through glibc (`futex`), at most
// `LOCK_SLICE` (10 ms) at a time. The slices are not for dead owners but for
// dead *waiters*: glibc wakes one waiter per unlock, and if that one is
// killed before it takes the lock while another process takes it first,
// nothing wakes the others again (see `RobustMutex::lock`); with slices,
// that costs them one slice.
//
// What a death leaves behind, and what the repairs below do about it (after
// rolling a half-applied commit forward, see `ring.rs`):
// - Producer died with `cur_seq != 0` (inside a message): the message is
//   abandoned, `abandoned_seq = cur_seq`, and one loss is counted. Its
//   records already in the ring stay there; the consumer drops them when it
//   meets the `FIRST` record of a later message or, with the ring empty,
//   sees `abandoned_seq >= cur_seq`. A consumer stuck mid-message with the
//   ring empty probes the producer lock every 10 ms with `trylock`
//   (`probe_producer`), so it performs this repair itself if no producer
//   comes.
// - A producer whose `put_bytes_timeout` runs out mid-message abandons it
//   the same way (`put.rs`; not counted as a loss: the put returned
//   `Error::Timeout` and the caller still has the message).
// - Consumer died inside a message (`cur_seq != 0`): `discard = 1` and one
//   loss is counted; the next consumer skips the rest of that message's
//   records. Died after taking a whole message but before unlocking
//   (`delivering != 0`): one loss is counted.

use std::io;
use std::sync::atomic::Ordering::{Acquire, Release, SeqCst};
use std::time::{Duration, Instant};

use super::Inner;
use crate::error::{Error, Result};
use crate::sys::shm::{Locked, RobustMutex};

/// Unlocks a robust mutex when dropped (a process killed while holding one
/// never drops it; the kernel marks the mutex owner-dead instead).
pub(super) struct Guard<'a>(&'a RobustMutex);

impl Drop for Guard<'_> {
    fn drop(&mut self) {
        let _ = self.0.unlock();
    }
}

impl Inner {
    /// The one way every lock of the queue is taken: turns what a lock
    /// attempt `got` into a guard, and after `EOWNERDEAD` runs `repair`
    /// under the lock and marks it consistent before anyone else can take
    /// it. `None` if the lock was busy or the deadline passed.
    pub(super) fn take<'a>(
        &self,
        lock: &'a RobustMutex,
        got: io::Result<Locked>,
        repair: fn(&Self),
    ) -> Result<Option<Guard<'a>>> {
        match got.map_err(|e| Error::io("lock queue", e))? {
            Locked::Acquired => Ok(Some(Guard(lock))),
            Locked::OwnerDied => {
                let guard = Guard(lock);
                repair(self);
                lock.mark_consistent()
                    .map_err(|e| Error::io("repair queue", e))?;
                Ok(Some(guard))
            }
            Locked::Busy | Locked::TimedOut => Ok(None),
        }
    }

    pub(super) fn lock_producer(&self, deadline: Option<Instant>) -> Result<Option<Guard<'_>>> {
        let lock = &self.header().prod_lock.lock;
        self.take(lock, lock.lock(deadline), Self::repair_producer)
    }

    /// The producer lock for a put of a message whose first record is
    /// `need` bytes. Blocking: waits until `deadline`; a deadline that runs
    /// out (or is zero) then gets the non-blocking rule, so a timed put is
    /// never weaker than `try_put`. Non-blocking: while another put holds
    /// the lock, waits for it (in 1 ms slices) only while the queue has a
    /// slot and the ring has room for `need` bytes, i.e. while the holder is
    /// writing rather than waiting: `None` (`Full`) as soon as it has not.
    pub(super) fn lock_producer_for_put(
        &self,
        deadline: Option<Instant>,
        nonblocking: bool,
        need: u64,
    ) -> Result<Option<Guard<'_>>> {
        let lock = &self.header().prod_lock.lock;
        if !nonblocking {
            match lock.lock(deadline) {
                Ok(Locked::TimedOut) if deadline.is_some() => {}
                got => return self.take(lock, got, Self::repair_producer),
            }
        }
        let got = loop {
            match lock.try_lock() {
                Ok(Locked::Busy) => {}
                got => break got,
            }
            if self.no_room_now(need) {
                return Ok(None);
            }
            match lock.lock(Some(Instant::now() + Duration::from_millis(1))) {
                Ok(Locked::TimedOut | Locked::Busy) => continue,
                got => break got,
            }
        };
        self.take(lock, got, Self::repair_producer)
    }

    /// True if a bounded queue is full, or the ring has not `need` free
    /// bytes, at one instant (`tail` is read first: `head` only grows, so
    /// the difference is never below the true one).
    fn no_room_now(&self, need: u64) -> bool {
        let h = self.header();
        let tail = h.cons.tail.load(Acquire);
        let head = h.prod.head.load(Acquire);
        (self.max_items != 0 && self.len() as u64 >= self.max_items)
            || self.ring_len.saturating_sub(head.saturating_sub(tail)) < need
    }

    /// Takes the producer lock if it is free, repairs it if its owner died,
    /// and releases it. True if it was free (no put in progress).
    pub(super) fn probe_producer(&self) -> Result<bool> {
        let lock = &self.header().prod_lock.lock;
        Ok(self
            .take(lock, lock.try_lock(), Self::repair_producer)?
            .is_some())
    }

    /// After `EOWNERDEAD` on the producer lock: finish a half-applied commit,
    /// then abandon the message the dead producer was writing.
    fn repair_producer(&self) {
        let h = self.header();
        let p = &h.prod;
        if p.phase.load(Acquire) == 1 {
            Self::apply_producer_commit(p);
        }
        // Mark the message abandoned before forgetting it, so a repairer that
        // dies here leaves the repair for the next one to redo.
        let cur = p.cur_seq.load(Acquire);
        if cur != 0 {
            p.abandoned_seq.store(cur, SeqCst);
            if p.cur_seq.swap(0, SeqCst) != 0 {
                h.config.lost_by_producers.fetch_add(1, SeqCst);
            }
        }
        // Only the producer lock holder sleeps on "not full".
        h.not_full.waiters.store(0, SeqCst);
        Self::wake(&h.not_empty);
        Self::wake(&h.not_full);
    }

    pub(super) fn lock_consumer(
        &self,
        deadline: Option<Instant>,
        nonblocking: bool,
    ) -> Result<Option<Guard<'_>>> {
        let lock = &self.header().cons_lock.lock;
        let got = if nonblocking {
            loop {
                match lock.try_lock() {
                    Ok(Locked::Busy) => {}
                    got => break got,
                }
                // Someone is taking; wait for them only if there is more.
                if self.len() == 0 {
                    return Ok(None);
                }
                match lock.lock(Some(Instant::now() + Duration::from_millis(1))) {
                    Ok(Locked::TimedOut | Locked::Busy) => continue,
                    got => break got,
                }
            }
        } else {
            match lock.lock(deadline) {
                // A deadline that ran out (or was zero) gets the
                // non-blocking rule: never weaker than `try_get`.
                Ok(Locked::TimedOut) if deadline.is_some() => {
                    return self.lock_consumer(None, true);
                }
                got => got,
            }
        };
        self.take(lock, got, Self::repair_consumer)
    }

    /// After `EOWNERDEAD` on the consumer lock: finish a half-applied commit,
    /// then skip the rest of the message the dead consumer was taking.
    fn repair_consumer(&self) {
        let h = self.header();
        let c = &h.cons;
        if c.phase.load(Acquire) == 1 {
            self.apply_consumer_commit();
        }
        // Each loss is counted once even if a repairer dies mid-repair: the
        // swaps clear the evidence before the count goes up.
        if c.cur_seq.load(Acquire) != 0 {
            // (A message an immediate shutdown was discarding, `discard ==
            // 2`, is no loss: it stays discarded.)
            if c.discard.compare_exchange(0, 1, SeqCst, SeqCst).is_ok() {
                h.config.lost_by_consumers.fetch_add(1, SeqCst);
                if self.tasks {
                    // The dead consumer was inside a message: its task can
                    // never be done, and the holder table says who had it.
                    let (slot, taken) = self.charge_for(c.holder_pid.load(Acquire));
                    self.apply_charge(slot, taken);
                }
            }
        } else if c.delivering.swap(0, SeqCst) != 0 {
            h.config.lost_by_consumers.fetch_add(1, SeqCst);
        }
        c.delivering.store(0, Release);
        // Only the consumer lock holder sleeps on "not empty": the dead one
        // may have left its waiter count behind.
        h.not_empty.waiters.store(0, SeqCst);
        Self::wake(&h.not_full);
    }
}
