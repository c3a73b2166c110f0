//! [`Queue`]: many producers, many consumers, across forked processes (and
//! threads), that survives a member killed at any point.
//!
//! Python's `multiprocessing.Queue`, without its weak spots: a process
//! killed while holding the queue's lock does not wedge it (CPython
//! gh-87971), a value that fails to serialize is refused to the caller of
//! [`put`](Queue::put) (gh-84376), [`len`](Queue::len) is exact (gh-87302),
//! and a consumer waiting on a queue whose producers are all gone gets
//! [`Error::Closed`] instead of waiting forever.
//!
//! # Contract
//! - Each message is taken by exactly one consumer, whole: never merged with
//!   another, never a prefix, never corrupt.
//! - Messages put by one producer (one thread of one process) are taken in
//!   the order they were put.
//! - [`len`](Queue::len) is the number of messages whose put completed and
//!   that nobody has taken, in every process. When nothing else runs,
//!   [`is_empty`](Queue::is_empty)/[`is_full`](Queue::is_full) agree with
//!   what [`try_get_bytes`](Queue::try_get_bytes)/[`try_put_bytes`](Queue::try_put_bytes) then do.
//! - A member SIGKILLed at any point (holding a lock, mid-message, mid-commit)
//!   leaves the others working: nobody deadlocks, nobody receives a partial or
//!   mixed message. At most the message the dead process was handling is lost,
//!   and [`lost_to_dead_members`](Queue::lost_to_dead_members) counts those.
//! - **Closed.** Every process that holds the queue starts as a potential
//!   producer. A process stops being one when it calls
//!   [`close_producer`](Queue::close_producer) or [`close`](Queue::close),
//!   drops its last handle, exits, or is killed. Once no process is a
//!   producer, a consumer blocked on an empty queue gets [`Error::Closed`]
//!   (within ~10 ms). So a process that only consumes should call
//!   `close_producer()` first, and so should the parent once it has forked
//!   its producers (see the example).
//! - After [`close`](Queue::close), this process's puts and gets return
//!   [`Error::Closed`] (Python raises `ValueError: Queue is closed`).
//!
//! # Design
//! One anonymous shared mapping (`mmap(MAP_SHARED | MAP_ANONYMOUS)`, made by
//! [`Queue::new`] before any fork) holds a header and a byte **ring**.
//!
//! ```text
//! header: config | producer lock | producer state | consumer lock | consumer state | wake words
//!         | tasks lock | task state | "joined" wake word | holder table (JoinableQueue only)
//! ring:   ... [rec hdr: seq u64, total u64, len u32, flags u32][len bytes] [rec hdr][bytes] ...
//! ```
//!
//! - A message is one or more **records**; flags mark the `FIRST` and `LAST`
//!   record of a message; every record carries the message's sequence number
//!   `seq` (unique, never reused) and total length. Records are at most a
//!   quarter of the ring, so a message of any size **streams** through the
//!   ring while its producer writes and a consumer reads.
//! - `head` (bytes ever written) and `tail` (bytes ever taken) are
//!   monotonic `u64` stream positions; the ring is empty when they are equal.
//!   A producer writes a record's bytes past `head`, then publishes them with
//!   a release store of `head`; a consumer copies a record out, then frees it
//!   with a release store of `tail`. Each process keeps its last reading of
//!   the other side's position (a lower bound, since both only grow) and
//!   re-reads it only when that reading says "no room" or "nothing new", so
//!   a streaming producer and consumer do not pull each other's cache line
//!   across CPUs on every message (64 B across cores: about 1.2-1.4x).
//! - A **producer lock** is held by a producer for a whole message, a
//!   **consumer lock** by a consumer for a whole message (and while it waits
//!   for one). So the ring is single-producer single-consumer between the two
//!   lock holders, records of one message are contiguous in the stream, and
//!   a message's records all go to one consumer. Both locks are
//!   `PTHREAD_PROCESS_SHARED | PTHREAD_MUTEX_ROBUST`: if a holder dies the
//!   next locker gets `EOWNERDEAD` and repairs the state below.
//! - Waits ("not empty" for the consumer lock holder, "not full" for the
//!   producer lock holder) spin briefly, then sleep on a futex word in the
//!   mapping, with a waiter count so a waker makes a system call only when
//!   someone sleeps. A waker leaves its CPU number beside the word: a waiter
//!   on that same CPU yields instead of spinning, since the process it waits
//!   for cannot run until it does (this makes a same-core round trip one
//!   `sched_yield` per hop). Never a process-shared condition variable:
//!   glibc's are not robust. Every sleep is bounded (10 ms), so sleepers
//!   re-check for dead members and closed producers.
//!
//! ## Commits, and what a death leaves behind
//! Each side changes its shared state (`head`, `published`, `cur_seq` for
//! producers; `tail`, `taken`, `cur_seq`, `discard`, `delivering` for
//! consumers) only by a **commit**: write the new values into a `pending`
//! copy, set `phase = 1`, apply them, set `phase = 0`. A locker that gets
//! `EOWNERDEAD` first rolls a commit with `phase == 1` *forward* (the values
//! are complete), so a death never leaves half a commit. Then:
//! - **Producer died** with `cur_seq != 0` (inside a message): the message
//!   is *abandoned*: `abandoned_seq = cur_seq`, and one loss is counted. Its
//!   records already in the ring stay there; the consumer drops them when it
//!   meets the `FIRST` record of a later message or, with the ring empty,
//!   sees `abandoned_seq >= cur_seq`. A consumer stuck mid-message with the
//!   ring empty probes the producer lock every 10 ms with `trylock`, so it
//!   performs this repair itself if no producer comes.
//! - A producer whose [`put_bytes_timeout`](Queue::put_bytes_timeout) runs
//!   out mid-message abandons it the same way (not counted as a loss: the
//!   put returned [`Error::Timeout`] and the caller still has the message).
//! - **Consumer died** inside a message (`cur_seq != 0`): `discard = 1` and
//!   one loss is counted; the next consumer skips the rest of that message's
//!   records. Died after taking a whole message but before unlocking
//!   (`delivering != 0`): one loss is counted.
//!
//! ## Invariants (kept under the lock of the side that owns each field)
//! 1. `tail <= head <= tail + ring_len`; bytes in `[tail, head)` are whole
//!    committed records; a producer never writes below `tail + ring_len`.
//! 2. `published` counts messages whose `LAST` record is committed, `taken`
//!    those whose `LAST` record a consumer has committed; `len() =
//!    published - taken`, and `published - taken <= max_items` when bounded.
//! 3. Records of one `seq` are contiguous in the stream: `FIRST`, middles,
//!    `LAST`, or a prefix of that followed by nothing of that `seq` again
//!    (abandoned).
//! 4. Sequence numbers increase and are never reused, so `abandoned_seq >=
//!    cur_seq` with an empty ring proves the message being taken is dead.
//! 5. A consumer returns a message only after committing its `LAST` record,
//!    with exactly `total` bytes gathered from records of its own `seq`
//!    starting at `FIRST`.
//!
//! ## Limits of the loss count
//! The count covers deaths *inside* a queue operation. A consumer killed in
//! the few instructions between clearing `delivering` and releasing the
//! consumer lock, or after its get returned, loses its message without the
//! queue knowing: the message was already handed over.
//!
//! ## Extending it (for `JoinableQueue`)
//! The `LAST`-record commits are the linearisation points: a put takes
//! effect when the producer commits its message's `LAST` record, a get when
//! the consumer commits it. Counters that must agree with the queue belong in
//! those two commits' pending sets, so a death can never apply half of them.
//! [`JoinableQueue`](crate::JoinableQueue) does so: tasks put are
//! `published` itself, and the consumer's `LAST` commit carries the "taken,
//! not done" charge of its process (see [`crate::joinable`]).
//!
//! ## Why "Closed" uses a pipe
//! Each [`Queue`] handle holds the write end of a private "producers" pipe,
//! and every process inherits it through `fork`. The kernel counts the copies
//! and closes them when a process exits or is killed, so a consumer that
//! polls the read end sees `POLLHUP` exactly when no potential producer is
//! left: no pid table, no pid reuse, no race with a producer that has been
//! forked but has not run yet. Before returning [`Error::Closed`] the
//! consumer also takes the producer lock with `trylock` (a held lock means a
//! put is still in progress; a dead holder is repaired first, which may
//! publish a message that was fully written).
//!
//! # System calls
//! The first put or get of each process maps the whole shared region into
//! its page tables with one `madvise(MADV_POPULATE_READ)` (see
//! `SharedRegion::populate`),
//! before taking any lock, instead of a page fault per page of the ring
//! in its first messages. After that, an uncontended put or get makes none: a lock is one atomic
//! compare-and-swap (glibc's robust mutex), the copy is `memcpy` into or out
//! of the shared ring, and a wake-up is a `futex(FUTEX_WAKE)` made only when
//! the other side announced that it sleeps. Waiting spins ~200 pauses (or,
//! if the last waker ran on this CPU, skips them), makes up to 8
//! `sched_yield`s, then `futex(FUTEX_WAIT)` for at most 10 ms at a time; a
//! consumer waiting on an empty queue `poll`s the producers pipe (zero
//! timeout) before each sleep, never while spinning.
//! Contended locks sleep in the kernel through glibc (`futex`), at most
//! 10 ms at a time (`LOCK_SLICE`), and a
//! dead owner is reported by the kernel's robust-list walk at its exit. The
//! slices are not for dead owners but for dead *waiters*: glibc wakes one
//! waiter per unlock, and if that one is killed before it takes the lock
//! while another process takes it first, nothing wakes the others again
//! (see `RobustMutex::lock`); with slices, that costs them one slice.
//!
//! # Differences from Python's `multiprocessing.Queue`
//! - `put` writes into shared memory itself; there is no feeder thread. An
//!   "unbounded" queue is unbounded in messages, but a put waits while the
//!   ring has no room for its next record, as a pipe write would, until
//!   consumers take bytes. [`try_put_bytes`](Queue::try_put_bytes) refuses
//!   with [`Error::Full`] only when the message slots are full (`is_full()`).
//! - A get that has begun taking a message larger than the ring finishes it
//!   even past its timeout, because the rest is streaming in (it stops if the
//!   producer dies or gives up). Skipping the rest of a dead consumer's
//!   message does not hold a get past its timeout.
//!
//! # Example
//! ```
//! use ipc_harness::{Queue, harness::fork};
//! use std::time::Duration;
//!
//! # let _serial = fork::serial(); // doctests run on threads: see harness::fork
//! let q = Queue::bounded(2)?;
//! let producer = {
//!     let q = q.clone(); // moved into the child; the parent's clone drops
//!     fork::spawn(move || {
//!         for i in 0..5u32 {
//!             q.put(&i).unwrap(); // blocks while 2 items wait: no deadlock,
//!         }                       // the parent is taking them
//!         Vec::new()
//!     })?
//! };
//! q.close_producer(); // the parent only consumes
//! for i in 0..5u32 {
//!     assert_eq!(q.get::<u32>()?, i);
//! }
//! // The producer exited: its end of the producers pipe closed with it.
//! assert!(q.get_bytes().unwrap_err().is_closed());
//! producer.wait(Duration::from_secs(10))?.expect_success();
//! # Ok::<(), ipc_harness::Error>(())
//! ```

use std::fmt;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering, fence};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::sys::shm::{
    Fresh, Locked, RobustMutex, SharedRegion, current_cpu, futex_wait, futex_wake, shm_safe,
};
use crate::sys::{self, Readiness};

use Ordering::{Acquire, Relaxed, Release, SeqCst};

/// The ring's default size in bytes.
pub const DEFAULT_RING_BYTES: usize = 1 << 20;
/// The smallest ring a queue accepts.
pub const MIN_RING_BYTES: usize = 128;
/// Bytes of a record header in the ring.
pub const RECORD_HEADER_LEN: usize = 24;

const FIRST: u32 = 1;
const LAST: u32 = 2;
/// Longest a sleeper sleeps before re-checking dead members and producers.
const POLL: Duration = Duration::from_millis(10);
/// Pauses (about 10 ns each here) a waiter spins before yielding.
const SPINS: u32 = 192;
/// `sched_yield`s a waiter makes before it sleeps on a futex.
const YIELDS: u32 = 8;

// ---------------------------------------------------------------------------
// Shared layout
// ---------------------------------------------------------------------------

shm_safe! {
    #[repr(C, align(128))]
    struct Config {
        ring_len: AtomicU64,
        max_items: AtomicU64,
        max_message: AtomicU64,
        lost_by_producers: AtomicU64,
        lost_by_consumers: AtomicU64,
    }
}

shm_safe! {
    #[repr(C, align(128))]
    struct LockLine {
        lock: RobustMutex,
    }
}

shm_safe! {
    #[repr(C, align(128))]
    struct ProducerState {
        /// Bytes ever published into the ring.
        head: AtomicU64,
        /// Messages whose LAST record is published.
        published: AtomicU64,
        /// The message being written, 0 if none.
        cur_seq: AtomicU64,
        /// The last sequence number handed out.
        next_seq: AtomicU64,
        /// The latest message abandoned mid-way (death or timeout).
        abandoned_seq: AtomicU64,
        phase: AtomicU64,
        p_head: AtomicU64,
        p_published: AtomicU64,
        p_cur_seq: AtomicU64,
    }
}

shm_safe! {
    #[repr(C, align(128))]
    struct ConsumerState {
        /// Bytes ever taken out of the ring.
        tail: AtomicU64,
        /// Messages whose LAST record was taken.
        taken: AtomicU64,
        /// The message being taken, 0 if none.
        cur_seq: AtomicU64,
        /// 1 if the rest of `cur_seq` is to be skipped (its taker died).
        discard: AtomicU64,
        /// A whole message taken by the lock holder, not yet handed to its caller.
        delivering: AtomicU64,
        phase: AtomicU64,
        p_tail: AtomicU64,
        p_taken: AtomicU64,
        p_cur_seq: AtomicU64,
        p_discard: AtomicU64,
        p_delivering: AtomicU64,
        /// The pid of the consumer lock's holder (to charge a message it dies
        /// inside to it, for `JoinableQueue`).
        holder_pid: AtomicU64,
        /// Pending task charge: 0 none, `i + 1` slot `i`, `UNTRACKED` the
        /// untracked counter; and the new value of its `taken` counter.
        p_slot: AtomicU64,
        p_slot_taken: AtomicU64,
    }
}

/// How many processes the "taken, not done" table of a `JoinableQueue`
/// tracks at once. A slot is reused once its process has no task
/// outstanding; gets by further processes are counted as untracked.
pub const TASK_SLOTS: usize = 256;
const UNTRACKED: u64 = u64::MAX;

shm_safe! {
    /// One row of the "taken, not done" table: `taken` only grows, in the
    /// consumer's `LAST`-record commits; `done` only grows, in `task_done`'s
    /// commits. Outstanding = `taken - done`.
    #[repr(C)]
    pub(crate) struct TaskSlot {
        pid: AtomicU64,
        taken: AtomicU64,
        done: AtomicU64,
    }
}

shm_safe! {
    /// `JoinableQueue` task accounting, beside the queue's own state. Tasks put
    /// are `ProducerState::published`; tasks done are `done`, changed only by a
    /// `task_done` commit under `tasks_lock`.
    #[repr(C, align(128))]
    struct TaskState {
        done: AtomicU64,
        /// Messages taken while the table was full (consumer lock).
        untracked_taken: AtomicU64,
        /// `task_done` calls charged to no slot (tasks lock).
        untracked_done: AtomicU64,
        phase: AtomicU64,
        p_done: AtomicU64,
        p_slot: AtomicU64,
        p_slot_done: AtomicU64,
    }
}

shm_safe! {
    #[repr(C, align(128))]
    struct WakeWord {
        word: AtomicU32,
        waiters: AtomicU32,
        /// The CPU (plus one; 0 unknown) the last waker ran on: a hint for
        /// spinners, any value is harmless.
        waker_cpu: AtomicU32,
    }
}

shm_safe! {
    /// The queue's shared header (see the module docs).
    #[repr(C)]
    pub(crate) struct Header {
        config: Config,
        prod_lock: LockLine,
        prod: ProducerState,
        cons_lock: LockLine,
        cons: ConsumerState,
        not_empty: WakeWord,
        not_full: WakeWord,
        tasks_lock: LockLine,
        tasks: TaskState,
        /// Bumped (generation counter) whenever tasks are done and a joiner sleeps.
        joined: WakeWord,
        slots: [TaskSlot; TASK_SLOTS],
    }
}

/// One record's header in the ring.
#[derive(Debug, Clone, Copy)]
struct Record {
    seq: u64,
    total: u64,
    len: u32,
    flags: u32,
}

impl Record {
    fn encode(&self) -> [u8; RECORD_HEADER_LEN] {
        let mut b = [0u8; RECORD_HEADER_LEN];
        b[..8].copy_from_slice(&self.seq.to_le_bytes());
        b[8..16].copy_from_slice(&self.total.to_le_bytes());
        b[16..20].copy_from_slice(&self.len.to_le_bytes());
        b[20..].copy_from_slice(&self.flags.to_le_bytes());
        b
    }

    fn decode(b: &[u8; RECORD_HEADER_LEN]) -> Self {
        let u64_at = |i: usize| u64::from_le_bytes(b[i..i + 8].try_into().expect("8 bytes"));
        let u32_at = |i: usize| u32::from_le_bytes(b[i..i + 4].try_into().expect("4 bytes"));
        Record {
            seq: u64_at(0),
            total: u64_at(8),
            len: u32_at(16),
            flags: u32_at(20),
        }
    }

    fn size(&self) -> u64 {
        RECORD_HEADER_LEN as u64 + u64::from(self.len)
    }
}

// ---------------------------------------------------------------------------
// Kill points (tests only)
// ---------------------------------------------------------------------------

// A production build (without the `test-hooks` feature) keeps the calls to
// `kill_point` but they compile to nothing, and nothing outside the crate
// can name a kill point or reach a lock.
#[cfg(not(feature = "test-hooks"))]
use hooks::KillPoint;
use hooks::kill_point;
#[cfg(feature = "test-hooks")]
pub use hooks::{KillPoint, QueueLock, set_kill_point};

mod hooks {
    #[cfg(feature = "test-hooks")]
    use super::*;

    /// Named points inside [`Queue`] operations where a test can make this
    /// process SIGKILL itself, to prove that a death there breaks nobody else.
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
}

// ---------------------------------------------------------------------------
// The queue
// ---------------------------------------------------------------------------

/// Options for a [`Queue`]; start with [`Queue::builder`].
#[derive(Debug, Clone)]
pub struct QueueBuilder {
    max_items: u64,
    max_message: u64,
    ring_bytes: usize,
    racing_readers: bool,
    pub(crate) tasks: bool,
    pub(crate) local_tasks_pitfall: bool,
}

impl QueueBuilder {
    /// At most `n` messages waiting (Python's `maxsize`); 0 means no limit.
    pub fn max_items(mut self, n: usize) -> Self {
        self.max_items = n as u64;
        self
    }

    /// Refuse longer messages with [`Error::TooLarge`], before anything is
    /// written. The default is no limit.
    pub fn max_message_size(mut self, bytes: u64) -> Self {
        self.max_message = bytes;
        self
    }

    /// The shared ring's size in bytes (default [`DEFAULT_RING_BYTES`], at
    /// least [`MIN_RING_BYTES`]). Messages of any size stream through it.
    pub fn ring_bytes(mut self, bytes: usize) -> Self {
        self.ring_bytes = bytes.max(MIN_RING_BYTES);
        self
    }

    /// The racing-readers pitfall: consumers take records without the
    /// consumer lock. Broken on purpose, for the tests that prove the
    /// oracle catches it (only with the `test-hooks` feature).
    #[cfg(feature = "test-hooks")]
    pub fn racing_readers_pitfall(mut self, on: bool) -> Self {
        self.racing_readers = on;
        self
    }

    /// Creates the queue: maps its shared memory and makes its pipe. Do
    /// this before forking the processes that will use it.
    pub fn build(self) -> Result<Queue> {
        let ring_len = self.ring_bytes;
        let region = SharedRegion::<Header>::new(ring_len, |h: &Header, fresh: &Fresh| {
            h.prod_lock.lock.init(fresh)?;
            h.cons_lock.lock.init(fresh)?;
            h.tasks_lock.lock.init(fresh)?;
            h.config.ring_len.store(ring_len as u64, Relaxed);
            h.config.max_items.store(self.max_items, Relaxed);
            h.config.max_message.store(self.max_message, Relaxed);
            Ok(())
        })
        .map_err(|e| Error::io("mmap shared queue", e))?;
        let (watch, token) = sys::pipe(false).map_err(|e| Error::io("pipe2", e))?;
        let max_payload = (ring_len / 4).clamp(1, 1 << 30);
        Ok(Queue {
            inner: Arc::new(Inner {
                region,
                closed: AtomicBool::new(false),
                put_closed: AtomicBool::new(false),
                producer_token: Mutex::new(Some(token)),
                producers_watch: watch,
                ring_len: ring_len as u64,
                max_payload,
                max_items: self.max_items,
                max_message: self.max_message,
                racing: self.racing_readers,
                tasks: self.tasks,
                local_tasks_pitfall: self.local_tasks_pitfall,
                local_tasks: AtomicU64::new(0),
                slot_cache: AtomicU64::new(0),
                tail_seen: AtomicU64::new(0),
                head_seen: AtomicU64::new(0),
                populated_in: AtomicU64::new(sys::cached_pid() as u64),
            }),
        })
    }
}

/// A many-producer many-consumer message queue shared by forked processes
/// and threads. See the [module docs](self) for the contract and design.
///
/// Cloning gives another handle to the same queue in this process (for
/// threads, or to move into a forked child).
#[derive(Clone)]
pub struct Queue {
    inner: Arc<Inner>,
}

pub(crate) struct Inner {
    region: SharedRegion<Header>,
    /// `close()` was called in this process.
    closed: AtomicBool,
    /// This process will put no more.
    put_closed: AtomicBool,
    /// Write end of the producers pipe: this process may still put.
    producer_token: Mutex<Option<OwnedFd>>,
    /// Read end: `POLLHUP` once no process holds a write end.
    producers_watch: OwnedFd,
    ring_len: u64,
    max_payload: usize,
    max_items: u64,
    max_message: u64,
    racing: bool,
    /// Count tasks (a `JoinableQueue`): charge gets to the holder table.
    tasks: bool,
    /// The per-process task counter pitfall (`local_tasks` instead of the
    /// shared counters).
    local_tasks_pitfall: bool,
    /// The pitfall's counter: private to each process (a copy after fork).
    local_tasks: AtomicU64,
    /// `pid << 32 | slot + 1` of this process's row in the holder table.
    slot_cache: AtomicU64,
    /// The consumers' `tail` as this process last read it: `tail` only
    /// grows, so this is a lower bound of it, and room computed from it is
    /// room there is. Saves producers a cross-CPU read per put.
    tail_seen: AtomicU64,
    /// The producers' `head` as this process last read it: a lower bound, so
    /// records below it are committed. Saves consumers a read per get.
    head_seen: AtomicU64,
    /// The process whose page tables map the whole region (see
    /// [`Inner::map_in`]): a forked child still has its parent's pid here.
    populated_in: AtomicU64,
}

impl fmt::Debug for Queue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Queue")
            .field("len", &self.len())
            .field("max_items", &self.inner.max_items)
            .field("ring_bytes", &self.inner.ring_len)
            .finish()
    }
}

/// Unlocks a robust mutex when dropped (a process killed while holding one
/// never drops it; the kernel marks the mutex owner-dead instead).
struct Guard<'a>(&'a RobustMutex);

impl Drop for Guard<'_> {
    fn drop(&mut self) {
        let _ = self.0.unlock();
    }
}

/// Why a wait stopped.
enum Wait {
    Ready,
    Again,
    TimedOut,
}

impl Queue {
    /// Options: bounded or not, maximum message size, ring size.
    pub fn builder() -> QueueBuilder {
        QueueBuilder {
            max_items: 0,
            max_message: u64::MAX,
            ring_bytes: DEFAULT_RING_BYTES,
            racing_readers: false,
            tasks: false,
            local_tasks_pitfall: false,
        }
    }

    /// An unbounded queue (in messages) with a [`DEFAULT_RING_BYTES`] ring.
    pub fn new() -> Result<Queue> {
        Queue::builder().build()
    }

    /// A queue holding at most `max_items` messages (Python's `maxsize`; 0
    /// means unbounded).
    pub fn bounded(max_items: usize) -> Result<Queue> {
        Queue::builder().max_items(max_items).build()
    }

    /// The maximum number of waiting messages, `None` if unbounded.
    pub fn max_items(&self) -> Option<usize> {
        (self.inner.max_items != 0).then_some(self.inner.max_items as usize)
    }

    /// The maximum message size in bytes.
    pub fn max_message_size(&self) -> u64 {
        self.inner.max_message
    }

    /// Messages put (completely) and not yet taken, across all processes.
    pub fn len(&self) -> usize {
        let h = self.inner.header();
        let taken = h.cons.taken.load(Acquire);
        let published = h.prod.published.load(Acquire);
        published.saturating_sub(taken) as usize
    }

    /// True if no message is waiting.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// True if the queue is bounded and holds its maximum of messages.
    pub fn is_full(&self) -> bool {
        self.inner.max_items != 0 && self.len() as u64 >= self.inner.max_items
    }

    /// Messages lost because the process handling them was killed: a
    /// producer that died inside a put (its put never returned), plus a
    /// consumer that died inside a get (mid-message, or holding a message it
    /// had taken but not yet returned).
    ///
    /// ```
    /// use ipc_harness::{Queue, harness::fork};
    /// use std::time::Duration;
    ///
    /// # let _serial = fork::serial(); // doctests run on threads: see harness::fork
    /// let q = Queue::builder().ring_bytes(4096).build()?;
    /// // Records carry at most a quarter of the ring: this message is three
    /// // records, and both messages fit the ring, so neither put blocks.
    /// q.put_bytes(&vec![7u8; 2500])?;
    /// q.put_bytes(b"next")?;
    /// // A consumer that dies after taking the first record of the first
    /// // message (here the crate's own test hook kills it at exactly that
    /// // point; a real crash there behaves the same).
    /// let victim = {
    ///     let q = q.clone();
    ///     fork::spawn(move || {
    ///         # ipc_harness::queue::set_kill_point(
    ///         #     Some(ipc_harness::queue::KillPoint::ConsumerMidItem),
    ///         #     1,
    ///         # );
    ///         let _ = q.get_bytes();
    ///         Vec::new()
    ///     })?
    /// };
    /// victim.wait(Duration::from_secs(10))?;
    /// // The survivor skips the rest of the dead consumer's message.
    /// assert_eq!(q.get_bytes()?, b"next");
    /// assert_eq!(q.lost_to_dead_members(), 1);
    /// # Ok::<(), ipc_harness::Error>(())
    /// ```
    pub fn lost_to_dead_members(&self) -> u64 {
        self.lost_by_dead_producers() + self.lost_by_dead_consumers()
    }

    /// The producer part of [`lost_to_dead_members`](Self::lost_to_dead_members).
    pub fn lost_by_dead_producers(&self) -> u64 {
        self.inner.header().config.lost_by_producers.load(Acquire)
    }

    /// The consumer part of [`lost_to_dead_members`](Self::lost_to_dead_members).
    pub fn lost_by_dead_consumers(&self) -> u64 {
        self.inner.header().config.lost_by_consumers.load(Acquire)
    }

    /// Tests only: one of the queue's robust mutexes, to put it in a state
    /// a fault leaves behind (see `RobustMutex::lose_wake_up`).
    #[cfg(feature = "test-hooks")]
    pub fn lock_for_tests(&self, which: QueueLock) -> &RobustMutex {
        let h = self.inner.header();
        match which {
            QueueLock::Producer => &h.prod_lock.lock,
            QueueLock::Consumer => &h.cons_lock.lock,
            QueueLock::Tasks => &h.tasks_lock.lock,
        }
    }

    /// This process will put no more: it stops counting as a producer, so
    /// consumers can see [`Error::Closed`] once every producer is gone. Its
    /// later puts return [`Error::Closed`]; gets work as before.
    pub fn close_producer(&self) {
        self.inner.put_closed.store(true, SeqCst);
        let mut token = self
            .inner
            .producer_token
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        token.take();
    }

    /// Closes the queue in this process: later puts and gets here return
    /// [`Error::Closed`], and it stops counting as a producer. Other
    /// processes are unaffected. Everything already put stays in the queue.
    pub fn close(&self) {
        self.inner.closed.store(true, SeqCst);
        self.close_producer();
    }

    /// True after [`close`](Self::close) in this process.
    pub fn is_closed(&self) -> bool {
        self.inner.closed.load(Relaxed)
    }

    /// Puts one message, waiting while the queue is full.
    pub fn put_bytes(&self, msg: &[u8]) -> Result<()> {
        self.inner.put(msg, None, false)
    }

    /// Puts one message, giving up with [`Error::Timeout`] after `timeout`
    /// (if it gives up inside a long message, the part already in the ring is
    /// discarded by the consumer: nothing of it is delivered).
    pub fn put_bytes_timeout(&self, msg: &[u8], timeout: Duration) -> Result<()> {
        self.inner
            .put(msg, Some(sys::deadline_after(timeout)), false)
    }

    /// Puts one message if a message slot is free, else [`Error::Full`]
    /// (only bounded queues are ever full). See the module docs: it may still
    /// wait for ring space that consumers are freeing.
    ///
    /// ```
    /// use ipc_harness::{Error, Queue};
    ///
    /// let q = Queue::bounded(1)?;
    /// q.try_put_bytes(b"one")?;
    /// assert!(q.is_full());
    /// // Refused, and the caller still has the message.
    /// let msg = b"two";
    /// assert!(matches!(q.try_put_bytes(msg), Err(Error::Full)));
    /// assert_eq!(q.try_get_bytes()?, b"one");
    /// assert!(matches!(q.try_get_bytes(), Err(Error::Empty)));
    /// # Ok::<(), Error>(())
    /// ```
    pub fn try_put_bytes(&self, msg: &[u8]) -> Result<()> {
        self.inner.put(msg, None, true)
    }

    /// Takes one whole message, waiting while the queue is empty.
    /// [`Error::Closed`] once the queue is empty and no producer is left.
    pub fn get_bytes(&self) -> Result<Vec<u8>> {
        self.inner.get(None, false)
    }

    /// Takes one whole message, or gives up with [`Error::Timeout`] after
    /// `timeout` (never before it).
    pub fn get_bytes_timeout(&self, timeout: Duration) -> Result<Vec<u8>> {
        self.inner.get(Some(sys::deadline_after(timeout)), false)
    }

    /// Takes one whole message if one is waiting, else [`Error::Empty`].
    pub fn try_get_bytes(&self) -> Result<Vec<u8>> {
        self.inner.get(None, true)
    }

    /// Puts a value encoded with the crate's serde codec. A value that fails
    /// to encode is refused with [`Error::Codec`] before anything is taken
    /// from the queue: no slot leaks.
    #[cfg(feature = "serde")]
    pub fn put<T: serde::Serialize + ?Sized>(&self, value: &T) -> Result<()> {
        self.put_bytes(&crate::codec::encode_value(value)?)
    }

    /// Like [`put`](Self::put), with a timeout.
    #[cfg(feature = "serde")]
    pub fn put_timeout<T: serde::Serialize + ?Sized>(
        &self,
        value: &T,
        timeout: Duration,
    ) -> Result<()> {
        self.put_bytes_timeout(&crate::codec::encode_value(value)?, timeout)
    }

    /// Takes a value put with [`put`](Self::put).
    #[cfg(feature = "serde")]
    pub fn get<T: serde::de::DeserializeOwned>(&self) -> Result<T> {
        crate::codec::decode_value(&self.get_bytes()?)
    }

    /// Like [`get`](Self::get), with a timeout.
    #[cfg(feature = "serde")]
    pub fn get_timeout<T: serde::de::DeserializeOwned>(&self, timeout: Duration) -> Result<T> {
        crate::codec::decode_value(&self.get_bytes_timeout(timeout)?)
    }
}

impl Queue {
    pub(crate) fn tasks(&self) -> &Inner {
        &self.inner
    }
}

impl Inner {
    fn header(&self) -> &Header {
        self.region.header()
    }

    /// Maps the shared region into this process's page tables the first
    /// time this process uses the queue (after a fork), before taking any
    /// lock: one `madvise` instead of a page fault per page of the ring in
    /// the middle of its first messages, and none while holding a lock the
    /// other members wait for.
    fn map_in(&self) {
        let pid = sys::cached_pid() as u64;
        if self.populated_in.load(Relaxed) != pid {
            self.region.populate();
            self.populated_in.store(pid, Relaxed);
        }
    }

    fn producers_gone(&self) -> bool {
        matches!(
            sys::wait_readable(self.producers_watch.as_fd(), Some(Instant::now())),
            Ok(Readiness::Ready)
        )
    }

    // --- waiting --------------------------------------------------------

    /// Waits on `w` until `ready()` or `timeout`; spins a little first.
    fn wait_on(w: &WakeWord, timeout: Duration, ready: impl Fn() -> bool) -> Wait {
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
    fn spin(w: &WakeWord, ready: &impl Fn() -> bool) -> bool {
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
    fn sleep_on(w: &WakeWord, timeout: Duration, ready: impl Fn() -> bool) -> Wait {
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
    fn wake(w: &WakeWord) {
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

    // --- locks and repairs ------------------------------------------------

    /// The one way every lock of the queue is taken: turns what a lock
    /// attempt `got` into a guard, and after `EOWNERDEAD` runs `repair`
    /// under the lock and marks it consistent before anyone else can take
    /// it. `None` if the lock was busy or the deadline passed.
    fn take<'a>(
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

    fn lock_producer(&self, deadline: Option<Instant>) -> Result<Option<Guard<'_>>> {
        let lock = &self.header().prod_lock.lock;
        self.take(lock, lock.lock(deadline), Self::repair_producer)
    }

    /// Takes the producer lock if it is free, repairs it if its owner died,
    /// and releases it. True if it was free (no put in progress).
    fn probe_producer(&self) -> Result<bool> {
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

    fn lock_consumer(
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
            lock.lock(deadline)
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
            if c.discard.swap(1, SeqCst) == 0 {
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

    fn len(&self) -> usize {
        let h = self.header();
        let taken = h.cons.taken.load(Acquire);
        h.prod.published.load(Acquire).saturating_sub(taken) as usize
    }

    // --- commits -----------------------------------------------------------

    fn commit_producer(&self, head: u64, published: u64, cur_seq: u64) {
        let p = &self.header().prod;
        p.p_head.store(head, Relaxed);
        p.p_published.store(published, Relaxed);
        p.p_cur_seq.store(cur_seq, Relaxed);
        p.phase.store(1, Release);
        kill_point(KillPoint::ProducerMidCommit);
        Self::apply_producer_commit(p);
    }

    /// Applies the pending producer commit (`phase == 1`): by its committer,
    /// or by the repairer of a committer that died.
    fn apply_producer_commit(p: &ProducerState) {
        p.head.store(p.p_head.load(Relaxed), Release);
        p.published.store(p.p_published.load(Relaxed), Release);
        p.cur_seq.store(p.p_cur_seq.load(Relaxed), Release);
        p.phase.store(0, Release);
    }

    fn commit_consumer(&self, tail: u64, taken: u64, cur_seq: u64, discard: u64, delivering: u64) {
        self.commit_consumer_charging(tail, taken, cur_seq, discard, delivering, (0, 0));
    }

    /// A consumer commit that also sets the `taken` counter of a holder
    /// table row (`charge = (slot + 1 or UNTRACKED, new taken)`; slot 0: none).
    fn commit_consumer_charging(
        &self,
        tail: u64,
        taken: u64,
        cur_seq: u64,
        discard: u64,
        delivering: u64,
        charge: (u64, u64),
    ) {
        let c = &self.header().cons;
        c.p_slot.store(charge.0, Relaxed);
        c.p_slot_taken.store(charge.1, Relaxed);
        c.p_tail.store(tail, Relaxed);
        c.p_taken.store(taken, Relaxed);
        c.p_cur_seq.store(cur_seq, Relaxed);
        c.p_discard.store(discard, Relaxed);
        c.p_delivering.store(delivering, Relaxed);
        c.phase.store(1, Release);
        kill_point(KillPoint::ConsumerMidCommit);
        self.apply_consumer_commit();
    }

    /// Applies the pending consumer commit (`phase == 1`): by its committer,
    /// or by the repairer of a committer that died.
    fn apply_consumer_commit(&self) {
        let c = &self.header().cons;
        c.tail.store(c.p_tail.load(Relaxed), Release);
        c.taken.store(c.p_taken.load(Relaxed), Release);
        c.cur_seq.store(c.p_cur_seq.load(Relaxed), Release);
        c.discard.store(c.p_discard.load(Relaxed), Release);
        c.delivering.store(c.p_delivering.load(Relaxed), Release);
        self.apply_charge(c.p_slot.load(Relaxed), c.p_slot_taken.load(Relaxed));
        c.phase.store(0, Release);
    }

    fn apply_charge(&self, slot: u64, taken: u64) {
        let h = self.header();
        match slot {
            0 => {}
            UNTRACKED => h.tasks.untracked_taken.store(taken, Release),
            i => h.slots[(i - 1) as usize].taken.store(taken, Release),
        }
    }

    /// Under the consumer lock: the charge that adds one task taken by
    /// `pid` (finding or claiming its row of the holder table).
    fn charge_for(&self, pid: u64) -> (u64, u64) {
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

    // --- put -------------------------------------------------------------

    fn put(&self, msg: &[u8], deadline: Option<Instant>, nonblocking: bool) -> Result<()> {
        if self.closed.load(Relaxed) || self.put_closed.load(Relaxed) {
            return Err(Error::Closed);
        }
        crate::frame::check_len(msg.len() as u64, self.max_message)?;
        self.map_in();
        let h = self.header();
        let p = &h.prod;
        let Some(_guard) = self.lock_producer(deadline)? else {
            return Err(Error::Timeout);
        };
        kill_point(KillPoint::ProducerLocked);

        if self.max_items != 0 {
            let has_slot = || {
                let taken = h.cons.taken.load(Acquire);
                p.published.load(Relaxed) - taken.min(p.published.load(Relaxed)) < self.max_items
            };
            while !has_slot() {
                if nonblocking {
                    return Err(Error::Full);
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
            while !has_room() {
                if let Err(e) = self.wait_producer(deadline, &has_room) {
                    // Give the message up: the consumer drops what it saw.
                    p.abandoned_seq.store(seq, Release);
                    p.cur_seq.store(0, Release);
                    Self::wake(&h.not_empty);
                    return Err(e);
                }
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

    /// One bounded wait of the producer lock holder for `ready`.
    fn wait_producer(&self, deadline: Option<Instant>, ready: &dyn Fn() -> bool) -> Result<()> {
        let left = match deadline {
            None => POLL,
            Some(d) => {
                let now = Instant::now();
                if now >= d {
                    return Err(Error::Timeout);
                }
                (d - now).min(POLL)
            }
        };
        Self::wait_on(&self.header().not_full, left, ready);
        Ok(())
    }

    // --- get ---------------------------------------------------------------

    fn get(&self, deadline: Option<Instant>, nonblocking: bool) -> Result<Vec<u8>> {
        if self.closed.load(Relaxed) {
            return Err(Error::Closed);
        }
        self.map_in();
        if cfg!(feature = "test-hooks") && self.racing {
            return self.get_racing(deadline, nonblocking);
        }
        let h = self.header();
        let c = &h.cons;
        let Some(_guard) = self.lock_consumer(deadline, nonblocking)? else {
            return Err(if nonblocking {
                Error::Empty
            } else {
                Error::Timeout
            });
        };
        if self.tasks {
            c.holder_pid.store(sys::cached_pid() as u64, Relaxed);
        }
        kill_point(KillPoint::ConsumerLocked);
        if nonblocking && self.len() == 0 && c.cur_seq.load(Relaxed) == 0 {
            return Err(Error::Empty);
        }
        let mut buf = Vec::new();
        // Started when a message first stalls (not on every get: reading
        // the clock is a measurable part of a same-core round trip).
        let mut last_probe: Option<Instant> = None;
        loop {
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
                    Self::wait_on(&h.not_empty, POLL, || h.prod.head.load(Acquire) != tail);
                    continue;
                }
                if nonblocking {
                    return Err(Error::Empty);
                }
                let ready = || h.prod.head.load(Acquire) != tail;
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
                let left = match deadline {
                    None => POLL,
                    Some(d) => {
                        let now = Instant::now();
                        if now >= d {
                            return Err(Error::Timeout);
                        }
                        (d - now).min(POLL)
                    }
                };
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
                    &mut buf,
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
                return Ok(buf);
            }
            self.commit_consumer(new_tail, taken, cur, discard, 0);
            Self::wake(&h.not_full);
            if rec.flags & FIRST != 0 {
                kill_point(KillPoint::ConsumerMidItem);
            }
        }
    }

    /// Reads and checks the record header at `tail` (with `head` published).
    fn read_record(&self, tail: u64, head: u64) -> Result<Record> {
        let avail = head.wrapping_sub(tail);
        if avail < RECORD_HEADER_LEN as u64 || avail > self.ring_len {
            return Err(Error::corrupt(format!(
                "{avail} bytes between tail and head"
            )));
        }
        let mut hb = [0u8; RECORD_HEADER_LEN];
        self.region.ring_read(tail, &mut hb);
        let rec = Record::decode(&hb);
        if rec.size() > avail
            || rec.total > self.max_message
            || rec.flags & !(FIRST | LAST) != 0
            || rec.seq == 0
        {
            return Err(Error::corrupt(format!("a bad record header {rec:?}")));
        }
        Ok(rec)
    }

    /// The racing-readers pitfall: no consumer lock, private progress.
    fn get_racing(&self, deadline: Option<Instant>, nonblocking: bool) -> Result<Vec<u8>> {
        let h = self.header();
        let c = &h.cons;
        let mut buf = Vec::new();
        let mut started = false;
        loop {
            let tail = c.tail.load(Acquire);
            let head = h.prod.head.load(Acquire);
            if head <= tail {
                if nonblocking && !started {
                    return Err(Error::Empty);
                }
                if !started && self.producers_gone() && self.probe_producer()? {
                    return Err(Error::Closed);
                }
                let left = match deadline {
                    None => POLL,
                    Some(d) => {
                        let now = Instant::now();
                        if now >= d {
                            return Err(Error::Timeout);
                        }
                        (d - now).min(POLL)
                    }
                };
                Self::wait_on(&h.not_empty, left, || h.prod.head.load(Acquire) > tail);
                continue;
            }
            let rec = self.read_record(tail, head)?;
            if rec.flags & FIRST != 0 {
                buf.clear();
            }
            started = true;
            self.region.ring_read_append(
                tail + RECORD_HEADER_LEN as u64,
                rec.len as usize,
                &mut buf,
            );
            // The pitfall: another reader may have moved the tail meanwhile.
            c.tail.store(tail + rec.size(), Release);
            Self::wake(&h.not_full);
            if rec.flags & LAST != 0 {
                c.taken.fetch_add(1, SeqCst);
                return Ok(buf);
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Task accounting (JoinableQueue)
// ---------------------------------------------------------------------------

impl Inner {
    /// Tasks put and not yet done. Reads `done` before `published`: both
    /// only grow and `done <= published` always, so equal values mean the
    /// count was zero at the moment `published` was read.
    pub(crate) fn unfinished_tasks(&self) -> u64 {
        if cfg!(feature = "test-hooks") && self.local_tasks_pitfall {
            return self.local_tasks.load(SeqCst);
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
        if done >= h.prod.published.load(SeqCst) {
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
        if done + 1 >= h.prod.published.load(SeqCst) {
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
