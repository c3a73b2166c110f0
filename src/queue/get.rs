//! A get: the consumer side of the ring.

use std::sync::atomic::Ordering::{Acquire, Relaxed, Release, SeqCst};
use std::time::{Duration, Instant};

use super::hooks::{KillPoint, kill_point};
use super::ring::{FIRST, LAST};
use super::shutdown::SHUT_IMMEDIATE;
use super::wait::{POLL, wait_slice};
use super::{Inner, RECORD_HEADER_LEN};
use crate::error::{Error, Result};
use crate::sys;

/// How often a get on a shut-down, empty queue re-checks for a put still in
/// progress.
const SHUTDOWN_RECHECK: Duration = Duration::from_millis(1);

impl Inner {
    pub(super) fn get(&self, deadline: Option<Instant>, nonblocking: bool) -> Result<Vec<u8>> {
        let mut buf = Vec::new();
        self.get_into(&mut buf, deadline, nonblocking)?;
        Ok(buf)
    }

    /// A get into `buf`: on success it holds exactly the message, on an
    /// error it is empty; its allocation is reused either way (and grown if
    /// the message needs more).
    pub(super) fn get_into(
        &self,
        buf: &mut Vec<u8>,
        deadline: Option<Instant>,
        nonblocking: bool,
    ) -> Result<()> {
        buf.clear();
        let got = self.take_into(buf, deadline, nonblocking);
        if got.is_err() {
            buf.clear();
        }
        got
    }

    fn take_into(
        &self,
        buf: &mut Vec<u8>,
        deadline: Option<Instant>,
        nonblocking: bool,
    ) -> Result<()> {
        if self.closed.load(Relaxed) || self.get_closed.load(Relaxed) {
            return Err(Error::Closed);
        }
        self.map_in();
        if cfg!(feature = "test-hooks") && self.racing {
            return self.get_racing(buf, deadline, nonblocking);
        }
        // The deferred-put pitfall: this process's last put goes in first.
        self.publish_deferred()?;
        let h = self.header();
        let c = &h.cons;
        if cfg!(feature = "test-hooks")
            && self.busy_lock_empty
            && (nonblocking || deadline.is_some_and(|d| Instant::now() >= d))
            && h.cons_lock.lock.owner_tid() != 0
        {
            // The pitfall: another consumer holds the lock, so "nothing to
            // take", however many messages wait behind it.
            return Err(if nonblocking {
                self.nothing_to_take()?
            } else {
                Error::Timeout
            });
        }
        if nonblocking && self.shutdown_state() != 0 && self.len() == 0 {
            // Answered without the consumer lock: its holder may be waiting.
            return Err(self.nothing_to_take()?);
        }
        let Some(_guard) = self.lock_consumer(deadline, nonblocking)? else {
            return Err(if nonblocking {
                self.nothing_to_take()?
            } else {
                Error::Timeout
            });
        };
        if self.tasks {
            c.holder_pid.store(sys::cached_pid() as u64, Relaxed);
        }
        kill_point(KillPoint::ConsumerLocked);
        if nonblocking && self.len() == 0 && c.cur_seq.load(Relaxed) == 0 {
            return Err(self.nothing_to_take()?);
        }
        // Started when a message first stalls (not on every get: reading
        // the clock is a measurable part of a same-core round trip).
        let mut last_probe: Option<Instant> = None;
        loop {
            if self.shutdown_state() == SHUT_IMMEDIATE {
                self.drain_locked()?;
                return Err(Error::ShutDown);
            }
            let tail = c.tail.load(Relaxed);
            let mut head = self.head_seen.load(Acquire);
            if head <= tail {
                head = h.prod.head.load(Acquire);
                self.head_seen.store(head, Release);
            }
            if head == tail {
                let cur = c.cur_seq.load(Relaxed);
                if cur != 0 {
                    // Mid-message and nothing more yet: is its producer alive?
                    if h.prod.abandoned_seq.load(Acquire) >= cur
                        && h.prod.head.load(Acquire) == tail
                    {
                        let taken = c.taken.load(Relaxed);
                        self.commit_consumer(tail, taken, 0, 0, 0);
                        buf.clear();
                        continue;
                    }
                    if c.discard.load(Relaxed) != 0 {
                        // Skipping a dead consumer's message: nothing of
                        // ours is at stake, so our deadline holds.
                        if nonblocking {
                            return Err(Error::Empty);
                        }
                        if deadline.is_some_and(|d| Instant::now() >= d) {
                            return Err(Error::Timeout);
                        }
                    }
                    if last_probe.get_or_insert_with(Instant::now).elapsed() >= POLL {
                        self.probe_producer()?;
                        last_probe = Some(Instant::now());
                        continue;
                    }
                    Self::wait_on(&h.not_empty, POLL, || {
                        h.prod.head.load(Acquire) != tail || self.shutdown_state() == SHUT_IMMEDIATE
                    });
                    continue;
                }
                if self.shutdown_state() != 0 {
                    // Empty and shut down: ShutDown once no put is in
                    // progress (it may still publish; see `shutdown.rs`).
                    if self.probe_producer()? && h.prod.head.load(Acquire) == tail {
                        return Err(Error::ShutDown);
                    }
                    if nonblocking {
                        return Err(Error::Empty);
                    }
                    Self::wait_on(&h.not_empty, SHUTDOWN_RECHECK, || {
                        h.prod.head.load(Acquire) != tail
                    });
                    continue;
                }
                if nonblocking {
                    return Err(Error::Empty);
                }
                // (A shutdown too: see `wait_producer`.)
                let ready = || h.prod.head.load(Acquire) != tail || self.shutdown_state() != 0;
                // Spin before the closed check: its `poll` is a system call
                // a busy queue should not pay on every get.
                if Self::spin(&h.not_empty, &ready) {
                    continue;
                }
                if self.producers_gone()
                    && self.probe_producer()?
                    && h.prod.head.load(Acquire) == tail
                {
                    return Err(Error::Closed);
                }
                let left = wait_slice(deadline)?;
                Self::sleep_on(&h.not_empty, left, ready);
                continue;
            }

            let rec = self.read_record(tail, head)?;
            let mut cur = c.cur_seq.load(Relaxed);
            let mut discard = c.discard.load(Relaxed);
            if rec.flags & FIRST != 0 {
                // A new message; one we were in the middle of was abandoned.
                cur = rec.seq;
                discard = 0;
                buf.clear();
                buf.reserve(rec.total.min(1 << 20) as usize);
            } else if rec.seq != cur || cur == 0 {
                return Err(Error::corrupt(format!(
                    "a record of message {} while taking message {cur}",
                    rec.seq
                )));
            }
            if discard == 0 {
                if buf.len() as u64 + u64::from(rec.len) > rec.total {
                    return Err(Error::corrupt("a message longer than its header says"));
                }
                self.region.ring_read_append(
                    tail + RECORD_HEADER_LEN as u64,
                    rec.len as usize,
                    buf,
                );
            }
            let new_tail = tail + rec.size();
            let taken = c.taken.load(Relaxed);
            if rec.flags & LAST != 0 {
                let delivering = if discard == 0 { rec.seq } else { 0 };
                // A get takes a task: charged to this process in the same
                // commit, so a death applies all of it or none.
                let charge = if self.tasks && discard == 0 {
                    self.charge_for(c.holder_pid.load(Relaxed))
                } else {
                    (0, 0)
                };
                self.commit_consumer_charging(new_tail, taken + 1, 0, 0, delivering, charge);
                Self::wake(&h.not_full);
                if discard != 0 {
                    buf.clear();
                    continue;
                }
                kill_point(KillPoint::ConsumerTook);
                c.delivering.store(0, Release);
                if buf.len() as u64 != rec.total {
                    return Err(Error::Truncated {
                        expected: rec.total,
                        got: buf.len() as u64,
                    });
                }
                return Ok(());
            }
            self.commit_consumer(new_tail, taken, cur, discard, 0);
            Self::wake(&h.not_full);
            if rec.flags & FIRST != 0 {
                kill_point(KillPoint::ConsumerMidItem);
            }
        }
    }

    /// What a non-blocking get that found no message answers: `ShutDown` if
    /// the queue is shut down and no put is in progress (whose message may
    /// yet come: `Empty` then), else `Empty`.
    fn nothing_to_take(&self) -> Result<Error> {
        Ok(match self.shutdown_state() {
            0 => Error::Empty,
            SHUT_IMMEDIATE => Error::ShutDown,
            _ if self.probe_producer()? => Error::ShutDown,
            _ => Error::Empty,
        })
    }

    /// The racing-readers pitfall: no consumer lock, private progress.
    fn get_racing(
        &self,
        buf: &mut Vec<u8>,
        deadline: Option<Instant>,
        nonblocking: bool,
    ) -> Result<()> {
        let h = self.header();
        let c = &h.cons;
        let mut started = false;
        loop {
            let tail = c.tail.load(Acquire);
            let head = h.prod.head.load(Acquire);
            if head <= tail {
                if !started && self.shutdown_state() != 0 {
                    return Err(Error::ShutDown);
                }
                if nonblocking && !started {
                    return Err(Error::Empty);
                }
                if !started && self.producers_gone() && self.probe_producer()? {
                    return Err(Error::Closed);
                }
                let left = wait_slice(deadline)?;
                Self::wait_on(&h.not_empty, left, || h.prod.head.load(Acquire) > tail);
                continue;
            }
            let rec = self.read_record(tail, head)?;
            if rec.flags & FIRST != 0 {
                buf.clear();
            }
            started = true;
            self.region
                .ring_read_append(tail + RECORD_HEADER_LEN as u64, rec.len as usize, buf);
            // The pitfall: another reader may have moved the tail meanwhile.
            c.tail.store(tail + rec.size(), Release);
            Self::wake(&h.not_full);
            if rec.flags & LAST != 0 {
                c.taken.fetch_add(1, SeqCst);
                return Ok(());
            }
        }
    }
}
