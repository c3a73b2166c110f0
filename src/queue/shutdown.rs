//! Shutting a queue down (CPython 3.13's `Queue.shutdown`), across
//! processes: the state word, the drain of an immediate shutdown, and what
//! tasks it leaves.

// The state is one word in the shared config, `shutdown`: 0 running, `SHUT`,
// `SHUT_IMMEDIATE`. It only grows (`fetch_max`), and storing it is the whole
// of the decision, so a process killed anywhere inside `shutdown` leaves the
// queue shut down (the store happened) or not (it did not), never half:
// - `SHUT`: puts are refused with `Error::ShutDown` (at their start, after
//   taking the producer lock, and whenever they would wait for a slot or for
//   ring room: a message they were in the middle of is abandoned as a timed
//   out put's is). Gets take what is left, then answer `ShutDown` instead of
//   waiting.
// - `SHUT_IMMEDIATE`: every message in the queue is discarded. Logically at
//   the store: from then on `len()` is 0, gets answer `ShutDown` at once, and
//   a `JoinableQueue` counts the discarded messages' tasks as done. Physically
//   the records are removed from the ring by a drain under the consumer lock,
//   one consumer commit per message (`discarded` counts them, in the same
//   commit as `taken`), by the shutting process and again by any get that
//   finds the state; a drainer killed mid-way leaves the rest to the next.
//   A message the drain starts is marked `discard = 2`: the consumer repair
//   neither counts it as lost nor charges it to anyone.
//
// Waking: after the store, the shutting process bumps the "not empty", "not
// full" and "joined" words, so every sleeper re-checks at once (a sleeper it
// misses, say because it was killed before waking them, re-checks within its
// 10 ms sleep anyway). Processes blocked on a lock behind a holder follow as
// each holder gives up.
//
// A put already writing its last record when the state is stored (it needs
// no wait, so it checks nothing more) completes: `shutdown` takes and
// releases the producer lock before it returns, so no put that began before
// it is still in progress when it returns, and a get does not answer
// `ShutDown` while the producer lock is held (the put may yet publish). A
// message published in that window is delivered (`SHUT`) or discarded by the
// drain that follows (`SHUT_IMMEDIATE`).

use std::sync::atomic::Ordering::{Acquire, Relaxed, SeqCst};

use super::Inner;
use super::hooks::{KillPoint, kill_point};
use super::ring::{FIRST, LAST};
use crate::error::Result;

pub(super) const SHUT: u64 = 1;
pub(super) const SHUT_IMMEDIATE: u64 = 2;

/// `discard` of a message an immediate shutdown is discarding.
const DRAINING: u64 = 2;

impl Inner {
    /// 0, `SHUT` or `SHUT_IMMEDIATE`.
    pub(super) fn shutdown_state(&self) -> u64 {
        self.header().config.shutdown.load(SeqCst)
    }

    pub(super) fn shutdown(&self, immediate: bool) -> Result<()> {
        let h = self.header();
        let state = if immediate { SHUT_IMMEDIATE } else { SHUT };
        // The decision, in one store.
        h.config.shutdown.fetch_max(state, SeqCst);
        kill_point(KillPoint::ShutdownStored);
        self.wake_all();
        // Wait out a put in progress (it gives up at its next wait).
        drop(self.lock_producer(None)?);
        if self.shutdown_state() == SHUT_IMMEDIATE {
            self.drain()?;
        }
        self.wake_all();
        Ok(())
    }

    fn wake_all(&self) {
        let h = self.header();
        Self::wake(&h.not_empty);
        Self::wake(&h.not_full);
        Self::wake(&h.joined);
    }

    /// Takes the consumer lock and discards everything in the ring.
    pub(super) fn drain(&self) -> Result<()> {
        let _guard = self.lock_consumer(None, false)?;
        self.drain_locked()
    }

    /// Under the consumer lock: discards every record in the ring.
    pub(super) fn drain_locked(&self) -> Result<()> {
        let h = self.header();
        let c = &h.cons;
        loop {
            let tail = c.tail.load(Relaxed);
            let head = h.prod.head.load(Acquire);
            self.head_seen.store(head, Relaxed);
            let mut cur = c.cur_seq.load(Relaxed);
            let mut discard = c.discard.load(Relaxed);
            if head == tail {
                if cur != 0 && discard == 0 {
                    // A message a get began, whose rest may still come:
                    // discarded, not lost.
                    self.commit_consumer(tail, c.taken.load(Relaxed), cur, DRAINING, 0);
                }
                return Ok(());
            }
            let rec = self.read_record(tail, head)?;
            if rec.flags & FIRST != 0 {
                cur = rec.seq;
                discard = DRAINING;
            } else if discard == 0 {
                discard = DRAINING;
            }
            let new_tail = tail + rec.size();
            let taken = c.taken.load(Relaxed);
            if rec.flags & LAST != 0 {
                // A message a dead consumer was taking (`discard == 1`) is
                // already counted as lost, not discarded.
                let discarded = c.discarded.load(Relaxed) + u64::from(discard == DRAINING);
                self.commit_consumer_discarding(new_tail, taken + 1, discarded);
                kill_point(KillPoint::ShutdownMidDrain);
            } else {
                self.commit_consumer(new_tail, taken, cur, discard, 0);
            }
            Self::wake(&h.not_full);
        }
    }

    /// Tasks put and not done once an immediate shutdown discarded the rest:
    /// the messages gets returned, less the tasks done. Reads `done`, then
    /// `discarded`, then `taken`: all only grow, so an answer can be too high
    /// for a moment (a drain commit in between), never too low, and a zero
    /// held at the instant `taken` was read.
    pub(super) fn unfinished_after_immediate(&self) -> u64 {
        let h = self.header();
        let done = h.tasks.done.load(SeqCst);
        let discarded = h.cons.discarded.load(SeqCst);
        let taken = h.cons.taken.load(SeqCst);
        taken.saturating_sub(discarded).saturating_sub(done)
    }

    /// Tasks a `task_done` may still mark done after an immediate shutdown.
    pub(super) fn tasks_gotten(&self) -> u64 {
        let h = self.header();
        let discarded = h.cons.discarded.load(SeqCst);
        h.cons.taken.load(SeqCst).saturating_sub(discarded)
    }
}
