//! A put: the producer side of the ring.

use std::sync::atomic::Ordering::{Acquire, Relaxed, Release, SeqCst};
use std::time::Instant;

use super::hooks::{KillPoint, kill_point};
use super::ring::{FIRST, LAST, Record};
use super::shutdown::SHUT_IMMEDIATE;
use super::{Inner, RECORD_HEADER_LEN};
use crate::error::{Error, Result};
use crate::sys;

impl Inner {
    pub(super) fn put(
        &self,
        msg: &[u8],
        deadline: Option<Instant>,
        nonblocking: bool,
    ) -> Result<()> {
        self.check_put(msg)?;
        if cfg!(feature = "test-hooks") && self.deferred_put {
            // The pitfall: the previous message goes in now, this one
            // waits in this process for its next queue call.
            self.publish_deferred()?;
            let mut slot = self.deferred.lock().unwrap_or_else(|p| p.into_inner());
            *slot = Some((sys::cached_pid(), msg.to_vec()));
            return Ok(());
        }
        self.put_now(msg, deadline, nonblocking)
    }

    /// What refuses a put before it starts.
    fn check_put(&self, msg: &[u8]) -> Result<()> {
        if self.closed.load(Relaxed) || self.put_closed.load(Relaxed) {
            return Err(Error::Closed);
        }
        if self.shutdown_state() != 0 {
            return Err(Error::ShutDown);
        }
        // Someone saw that no consumer is left (`wait.rs`).
        if self.header().config.no_consumers.load(Relaxed) != 0 {
            return Err(Error::Closed);
        }
        crate::frame::check_len(msg.len() as u64, self.max_message)
    }

    /// The deferred-put pitfall: puts the message this process's last put
    /// left waiting, if any (a blocking put: it may wait for room). Called
    /// at the start of this process's next queue call, in
    /// `close_producer`, and when its last handle drops. A message a
    /// forked child inherited is its parent's: the child drops it.
    pub(super) fn publish_deferred(&self) -> Result<()> {
        if !(cfg!(feature = "test-hooks") && self.deferred_put) {
            return Ok(());
        }
        let waiting = self
            .deferred
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        match waiting {
            Some((pid, msg)) if pid == sys::cached_pid() => {
                self.check_put(&msg)?;
                self.put_now(&msg, None, false)
            }
            _ => Ok(()),
        }
    }

    /// A put, into the queue at once.
    fn put_now(&self, msg: &[u8], deadline: Option<Instant>, nonblocking: bool) -> Result<()> {
        self.map_in();
        let h = self.header();
        let p = &h.prod;
        let first_record = (RECORD_HEADER_LEN + msg.len().min(self.max_payload)) as u64;
        let Some(_guard) = self.lock_producer_for_put(deadline, nonblocking, first_record)? else {
            return Err(if nonblocking {
                Error::Full
            } else {
                Error::Timeout
            });
        };
        kill_point(KillPoint::ProducerLocked);
        // A shutdown that waited for this lock (see `shutdown.rs`).
        if self.shutdown_state() != 0 {
            return Err(Error::ShutDown);
        }

        if self.max_items != 0 {
            let has_slot = || {
                let taken = h.cons.taken.load(Acquire);
                p.published.load(Relaxed) - taken.min(p.published.load(Relaxed)) < self.max_items
            };
            while !has_slot() {
                if nonblocking {
                    // Full for good if nobody is left to take (a `poll`,
                    // only on this path).
                    return Err(if self.consumers_gone() {
                        Error::Closed
                    } else {
                        Error::Full
                    });
                }
                self.wait_producer(deadline, &has_slot)?;
            }
        }

        let seq = p.next_seq.fetch_add(1, SeqCst) + 1;
        p.cur_seq.store(seq, Release);
        let total = msg.len();
        let mut off = 0;
        let mut first = true;
        loop {
            let chunk = (total - off).min(self.max_payload);
            let need = (RECORD_HEADER_LEN + chunk) as u64;
            let has_room = || {
                let head = p.head.load(Relaxed);
                // The cached tail first: reading the consumers' cache line
                // on every put would pull it across CPUs each time.
                // (Stale by more than the ring if another process did the
                // putting meanwhile: then it says "no room" and we re-read.)
                let seen = self.tail_seen.load(Acquire);
                if self.ring_len.saturating_sub(head - seen) >= need {
                    return true;
                }
                let tail = h.cons.tail.load(Acquire);
                self.tail_seen.store(tail, Release);
                self.ring_len - (head - tail) >= need
            };
            // An immediate shutdown stops a long message between records.
            let ready = loop {
                if self.shutdown_state() == SHUT_IMMEDIATE {
                    break Err(Error::ShutDown);
                }
                if has_room() {
                    break Ok(());
                }
                if let Err(e) = self.wait_producer(deadline, &has_room) {
                    break Err(e);
                }
            };
            if let Err(e) = ready {
                // Give the message up: the consumer drops what it saw.
                p.abandoned_seq.store(seq, Release);
                p.cur_seq.store(0, Release);
                Self::wake(&h.not_empty);
                return Err(e);
            }
            let head = p.head.load(Relaxed);
            let last = off + chunk == total;
            let rec = Record {
                seq,
                total: total as u64,
                len: chunk as u32,
                flags: if first { FIRST } else { 0 } | if last { LAST } else { 0 },
            };
            self.region.ring_write(head, &rec.encode());
            self.region
                .ring_write(head + RECORD_HEADER_LEN as u64, &msg[off..off + chunk]);
            kill_point(KillPoint::ProducerMidRecord);
            let published = p.published.load(Relaxed) + u64::from(last);
            self.commit_producer(head + rec.size(), published, if last { 0 } else { seq });
            Self::wake(&h.not_empty);
            off += chunk;
            if last {
                break;
            }
            if first {
                kill_point(KillPoint::ProducerMidItem);
            }
            first = false;
        }
        kill_point(KillPoint::ProducerPublished);
        if cfg!(feature = "test-hooks") && self.local_tasks_pitfall {
            self.local_tasks.fetch_add(1, SeqCst);
        }
        Ok(())
    }
}
