//! Kill points and the other test hooks: lock access and the pitfall
//! switches (racing readers, two-load `len`, busy-lock `Empty`, deferred
//! put). Without the `test-hooks` feature a kill point
//! compiles to nothing and nothing here is public.

#[cfg(feature = "test-hooks")]
use std::sync::atomic::AtomicU32;
#[cfg(feature = "test-hooks")]
use std::sync::atomic::Ordering::{Relaxed, SeqCst};
#[cfg(feature = "test-hooks")]
use std::time::Duration;

#[cfg(feature = "test-hooks")]
use super::{Queue, QueueBuilder};
#[cfg(feature = "test-hooks")]
use crate::sys;
#[cfg(feature = "test-hooks")]
use crate::sys::shm::RobustMutex;

/// Named points inside [`Queue`] operations where a test can
/// make this process SIGKILL itself, to prove that a death there breaks
/// nobody else.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum KillPoint {
    /// A producer holds the producer lock and has written nothing.
    ProducerLocked = 1,
    /// A producer wrote a record's bytes into the ring, not yet committed.
    ProducerMidRecord,
    /// A producer is between setting `phase = 1` and applying a commit.
    ProducerMidCommit,
    /// A producer committed the first record of a multi-record message.
    ProducerMidItem,
    /// A producer published a whole message and still holds the lock.
    ProducerPublished,
    /// A consumer holds the consumer lock and has read nothing.
    ConsumerLocked,
    /// A consumer is between setting `phase = 1` and applying a commit.
    ConsumerMidCommit,
    /// A consumer committed the first record of a multi-record message.
    ConsumerMidItem,
    /// A consumer took a whole message and still holds the lock.
    ConsumerTook,
    /// A `JoinableQueue::task_done` has applied its commit to the holder
    /// table but not yet to the total of tasks done (not in [`ALL`](Self::ALL),
    /// which lists the points of plain queue operations).
    TaskDoneMidCommit,
    /// [`Queue::shutdown`] has stored the shut-down state and woken
    /// nobody yet (not in [`ALL`](Self::ALL)).
    ShutdownStored,
    /// An immediate [`Queue::shutdown`] has discarded one message, under
    /// the consumer lock, and not yet the others (not in [`ALL`](Self::ALL)).
    ShutdownMidDrain,
}

#[cfg(feature = "test-hooks")]
impl KillPoint {
    /// Every kill point of plain queue operations (puts and gets).
    pub const ALL: [KillPoint; 9] = [
        KillPoint::ProducerLocked,
        KillPoint::ProducerMidRecord,
        KillPoint::ProducerMidCommit,
        KillPoint::ProducerMidItem,
        KillPoint::ProducerPublished,
        KillPoint::ConsumerLocked,
        KillPoint::ConsumerMidCommit,
        KillPoint::ConsumerMidItem,
        KillPoint::ConsumerTook,
    ];

    /// True for the producer-side points.
    pub fn is_producer(self) -> bool {
        (self as u32) <= KillPoint::ProducerPublished as u32
    }
}

/// The queue's locks, for [`Queue::lock_for_tests`].
#[cfg(feature = "test-hooks")]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueueLock {
    /// Held by a producer for a whole message.
    Producer,
    /// Held by a consumer for a whole message, and while it waits for one.
    Consumer,
    /// Held by `JoinableQueue::task_done`.
    Tasks,
}

#[cfg(feature = "test-hooks")]
static KILL_POINT: AtomicU32 = AtomicU32::new(0);
#[cfg(feature = "test-hooks")]
static KILL_COUNTDOWN: AtomicU32 = AtomicU32::new(0);

/// Arms (or with `None` disarms) a kill point for this process: the `nth`
/// time (from 1) an operation passes `point`, the process SIGKILLs itself.
/// Costs one relaxed load per point when disarmed.
#[cfg(feature = "test-hooks")]
pub fn set_kill_point(point: Option<KillPoint>, nth: u32) {
    KILL_COUNTDOWN.store(nth.max(1), SeqCst);
    KILL_POINT.store(point.map_or(0, |p| p as u32), SeqCst);
}

#[cfg(feature = "test-hooks")]
#[inline]
pub(super) fn kill_point(point: KillPoint) {
    if KILL_POINT.load(Relaxed) == point as u32 {
        kill_point_slow();
    }
}

#[cfg(not(feature = "test-hooks"))]
#[inline(always)]
pub(super) fn kill_point(_point: KillPoint) {}

#[cfg(feature = "test-hooks")]
#[cold]
fn kill_point_slow() {
    if KILL_COUNTDOWN.fetch_sub(1, SeqCst) == 1 {
        let _ = sys::kill(sys::getpid(), libc::SIGKILL);
        loop {
            std::thread::sleep(Duration::from_secs(1));
        }
    }
}

/// Tests only: every `len()` (and `is_empty`, `is_full`) in this process
/// sleeps `pause` between its first two loads, to widen the window a
/// descheduled caller has there. `Duration::ZERO` turns it off.
#[cfg(feature = "test-hooks")]
pub fn set_len_pause(pause: Duration) {
    LEN_PAUSE_US.store(pause.as_micros().min(u32::MAX as u128) as u32, SeqCst);
}

#[cfg(feature = "test-hooks")]
static LEN_PAUSE_US: AtomicU32 = AtomicU32::new(0);

#[cfg(feature = "test-hooks")]
#[inline]
pub(super) fn len_pause() {
    let us = LEN_PAUSE_US.load(Relaxed);
    if us != 0 {
        std::thread::sleep(Duration::from_micros(u64::from(us)));
    }
}

#[cfg(not(feature = "test-hooks"))]
#[inline(always)]
pub(super) fn len_pause() {}

#[cfg(feature = "test-hooks")]
impl QueueBuilder {
    /// The two-load `len` pitfall: `len()` reads the taken counter, then the
    /// published one, with no snapshot, so a caller descheduled between the
    /// loads can answer more than the bound. Broken on purpose, for the
    /// tests that prove a linearizability checker catches it (only with the
    /// `test-hooks` feature).
    pub fn two_load_len_pitfall(mut self, on: bool) -> Self {
        self.two_load_len = on;
        self
    }

    /// The busy-lock `Empty` pitfall: a non-blocking get
    /// ([`Queue::try_get_bytes`], and a timed get whose deadline has
    /// passed, zero timeouts included) looks at the consumer lock once and
    /// answers [`Error::Empty`](crate::Error::Empty) (or
    /// [`Error::Timeout`](crate::Error::Timeout)) if another consumer holds
    /// it, although messages wait behind that consumer: what CPython's
    /// `Queue.get(block=False)` answers when another process holds the
    /// queue's read lock. No message is lost, duplicated or reordered, so
    /// only a linearizability checker catches it. Broken on purpose, for
    /// those tests (only with the `test-hooks` feature).
    pub fn busy_lock_empty_pitfall(mut self, on: bool) -> Self {
        self.busy_lock_empty = on;
        self
    }

    /// The deferred-put pitfall: a put returns before its message is in
    /// the queue, as with CPython's feeder thread. The message waits in the
    /// calling process and goes in at that process's next call on the
    /// queue (a put, a get, [`Queue::len`] and what uses it), in
    /// [`Queue::close_producer`] or [`Queue::close`], or when the process
    /// drops its last handle (a process that ends with `_exit` still
    /// holding one loses it, and a publish that fails, after a shutdown
    /// say, loses it too). Nothing is lost and each producer's order is
    /// kept, so the delivery oracle sees nothing wrong; but a message put
    /// after another one returned can be taken first, which only a
    /// linearizability checker catches. Broken on purpose, for those tests
    /// (only with the `test-hooks` feature).
    pub fn deferred_put_pitfall(mut self, on: bool) -> Self {
        self.deferred_put = on;
        self
    }

    /// The racing-readers pitfall: consumers take records without the
    /// consumer lock. Broken on purpose, for the tests that prove the
    /// oracle catches it (only with the `test-hooks` feature).
    pub fn racing_readers_pitfall(mut self, on: bool) -> Self {
        self.racing_readers = on;
        self
    }
}

#[cfg(feature = "test-hooks")]
impl Queue {
    /// Tests only: one of the queue's robust mutexes, to put it in a state
    /// a fault leaves behind (see `RobustMutex::lose_wake_up`).
    pub fn lock_for_tests(&self, which: QueueLock) -> &RobustMutex {
        let h = self.inner.header();
        match which {
            QueueLock::Producer => &h.prod_lock.lock,
            QueueLock::Consumer => &h.cons_lock.lock,
            QueueLock::Tasks => &h.tasks_lock.lock,
        }
    }
}
