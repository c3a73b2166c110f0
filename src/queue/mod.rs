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
//! // The producer exited, so no producer is left: the queue says Closed.
//! assert!(q.get_bytes().unwrap_err().is_closed());
//! producer.wait(Duration::from_secs(10))?.expect_success();
//! # Ok::<(), ipc_harness::Error>(())
//! ```
//!
//! Create the queue before forking the processes that use it: a child
//! inherits it through `fork`, and every clone or inherited copy is a
//! handle to the same queue.
//!
//! # Contract
//! - Each message is taken by exactly one consumer, whole: never merged with
//!   another, never a prefix, never corrupt.
//! - Messages put by one producer (one thread of one process) are taken in
//!   the order they were put.
//! - [`len`](Queue::len) is the number of messages whose put completed and
//!   that nobody has taken, in every process: a count that held at one
//!   instant during the call (linearizable), so never above the bound, even
//!   for a caller descheduled in the middle of it. When nothing else runs,
//!   [`is_empty`](Queue::is_empty)/[`is_full`](Queue::is_full) agree with
//!   what [`try_get_bytes`](Queue::try_get_bytes) /
//!   [`try_put_bytes`](Queue::try_put_bytes) then do.
//! - **Bounded.** A queue made with [`Queue::bounded`] (or
//!   [`QueueBuilder::max_items`]) never holds more than that many messages;
//!   0 means unbounded in messages.
//! - **Kills.** A member SIGKILLed at any point (holding a lock, in the
//!   middle of a message, of a put or of a get) leaves the others working:
//!   nobody deadlocks, nobody receives a partial or mixed message. At most
//!   the message the dead process was handling is lost, and
//!   [`lost_to_dead_members`](Queue::lost_to_dead_members) counts those.
//! - **Closed.** Every process that holds the queue starts as a potential
//!   producer. A process stops being one when it calls
//!   [`close_producer`](Queue::close_producer) or [`close`](Queue::close),
//!   drops its last handle, exits, or is killed. Once no process is a
//!   producer, a consumer blocked on an empty queue gets [`Error::Closed`]
//!   (within ~10 ms). So a process that only consumes should call
//!   `close_producer()` first, and so should the parent once it has forked
//!   its producers (see the example).
//! - **No consumer left.** Symmetrically, every process that holds the
//!   queue starts as a potential consumer, and stops being one when it calls
//!   [`close_consumer`](Queue::close_consumer) or [`close`](Queue::close),
//!   drops its last handle, exits, or is killed (a forked child of a process
//!   that still is one is one too). Once no process is a consumer, a put
//!   that would wait (a full bounded queue, or no ring room) gets
//!   [`Error::Closed`] instead of waiting forever, including a put already
//!   waiting (within ~10 ms); from the first such refusal on, every put in
//!   every process gets [`Error::Closed`] at once. A put that has room
//!   before anyone noticed still succeeds (checking on every put would cost
//!   every put a system call): at most the queue's capacity (its bound or
//!   its ring) is put after the last consumer left, and nobody takes it. So
//!   a process that only produces should call `close_consumer()` first.
//! - After [`close`](Queue::close), this process's puts and gets return
//!   [`Error::Closed`] (Python raises `ValueError: Queue is closed`).
//!
//! # Blocking
//! - [`put_bytes`](Queue::put_bytes) waits while a bounded queue is full.
//!   Messages of any size stream through the queue's fixed ring of bytes
//!   ([`QueueBuilder::ring_bytes`], [`DEFAULT_RING_BYTES`] by default), so
//!   a put also waits, as a pipe write would, while the ring has no room for
//!   the next part of its message, until consumers take bytes.
//!   [`put_bytes_timeout`](Queue::put_bytes_timeout) gives up with
//!   [`Error::Timeout`]; if it gives up inside a long message, nothing of
//!   that message is delivered. [`try_put_bytes`](Queue::try_put_bytes)
//!   refuses with [`Error::Full`] when a bounded queue is full
//!   ([`is_full`](Queue::is_full)), or when another put holds the lock and
//!   the ring has no room for the start of its message; it may still wait
//!   for ring room that consumers are freeing (see
//!   [below](#non-blocking-and-timed-calls-beside-another-process)).
//! - [`get_bytes`](Queue::get_bytes) waits while the queue is empty, until
//!   a message comes or no producer is left ([`Error::Closed`]).
//!   [`get_bytes_timeout`](Queue::get_bytes_timeout) gives up with
//!   [`Error::Timeout`], never before its timeout; a get that has begun
//!   taking a message larger than the ring finishes it even past its
//!   timeout, because the rest is streaming in (it stops if the producer
//!   dies or gives up). [`try_get_bytes`](Queue::try_get_bytes) returns
//!   [`Error::Empty`] at once if no message is waiting.
//!
//! # Non-blocking and timed calls beside another process
//! Another process may hold the lock a call needs (a consumer in the middle
//! of a get, a producer in the middle of a put). What the calls then do:
//! - [`try_get_bytes`](Queue::try_get_bytes) answers [`Error::Empty`] at
//!   once if no whole message is waiting (`len() == 0` at that instant).
//!   Otherwise it waits for the holder, re-checking every 1 ms, and answers
//!   `Empty` as soon as no message is waiting any more: it waits only for a
//!   holder that is taking a message, at worst as long as that message's
//!   transfer (for a message larger than the ring, as long as its producer
//!   streams it).
//! - [`try_put_bytes`](Queue::try_put_bytes) answers [`Error::Full`] at
//!   once if a bounded queue is full, or if the ring has no room for the
//!   start of its message (the holder is then waiting for consumers, not
//!   writing). Otherwise it waits for the holder the same way, re-checking
//!   every 1 ms, at worst as long as the holder's message takes to write:
//!   no longer than `try_get_bytes` may wait. (Once it holds the lock, a
//!   message longer than the free ring still streams, waiting for ring room
//!   as described above.)
//! - A timed call ([`get_bytes_timeout`](Queue::get_bytes_timeout),
//!   [`put_bytes_timeout`](Queue::put_bytes_timeout)) waits for the lock
//!   until its deadline; a deadline that has passed (a zero timeout) then
//!   gets the `try_*` rule above. So a zero timeout is never weaker than
//!   `try_*` at the lock: it succeeds where `try_*` would, answering
//!   [`Error::Timeout`] where `try_*` answers `Empty` or `Full`. One
//!   exception, for puts of a message that does not fit the free ring: a
//!   timed put gives up at its deadline (nothing delivered), where
//!   `try_put_bytes` keeps streaming.
//! - Either kind answers [`Error::ShutDown`] and [`Error::Closed`] as a
//!   blocking call does (see [Shutdown](#shutdown)).
//!
//! # Shutdown
//! [`shutdown`](Queue::shutdown) is CPython 3.13's `Queue.shutdown`, for
//! every process that holds the queue; any of them may call it, and
//! [`is_shutdown`](Queue::is_shutdown) says so in all of them.
//! - **Puts** return [`Error::ShutDown`] (not [`Error::Closed`]): at once,
//!   and a put waiting for a slot or for ring room wakes and returns it
//!   (giving up a long message it was in the middle of: nothing of it is
//!   delivered). A put already writing its last record completes:
//!   `shutdown` returns only after it, and its message is drained like the
//!   others.
//! - **Gets** take what is left (in the usual order), then return
//!   [`Error::ShutDown`] instead of waiting; a get waiting on the empty
//!   queue wakes and returns it.
//! - **`shutdown(true)`** (immediate) discards what is left: from then on
//!   [`len`](Queue::len) is 0 and every get returns [`Error::ShutDown`] at
//!   once. On a [`JoinableQueue`](crate::JoinableQueue) the discarded
//!   messages' tasks count as done, so a join waits only for tasks that
//!   gets returned (those still need their `task_done`, which works as
//!   before; one more is refused with
//!   [`Error::TaskDoneTooManyTimes`]). A plain shutdown leaves joins
//!   waiting for every task, as CPython's does.
//! - Shutting down again is allowed; `shutdown(true)` after `shutdown(false)`
//!   discards what the first left; nothing undoes a shutdown.
//! - **Waking.** Every process blocked in a put, a get or a join wakes
//!   within a fraction of a millisecond (bounded by the queue's 10 ms
//!   sleeps if a wake-up is lost to a death).
//! - **Kills.** The decision is one atomic store: a process killed
//!   anywhere inside `shutdown` leaves the queue shut down or not, never
//!   half. Killed in the middle of an immediate shutdown's discarding, the
//!   queue is still empty for everyone (the next get, or shutdown, removes
//!   the rest) and nothing counts as lost.
//! - **Precedence.** A handle [`close`](Queue::close)d in this process
//!   answers [`Error::Closed`] first (it is this process's own state, as
//!   Python's `ValueError` for a closed queue comes first); then
//!   [`Error::ShutDown`] comes before [`Error::Full`], [`Error::Empty`] and
//!   before the [`Error::Closed`] of "no producer left" (a shut-down queue
//!   is the more specific answer). A non-blocking get on a shut-down, empty
//!   queue answers [`Error::Empty`] instead while a put is still in progress
//!   (its message may yet come).
//!
//! Differences from CPython: CPython's `multiprocessing.Queue` has no
//! `shutdown` (3.13 added it to `queue.Queue` and `asyncio.Queue`); this one
//! follows `queue.Queue` and works across processes. CPython's immediate
//! shutdown counts a discarded task as done only while its count is above
//! zero; ours computes the same count (tasks gets returned, less tasks done,
//! never below zero), so `task_done` after an immediate shutdown is
//! accepted or refused exactly as in CPython. CPython's `put` is one step
//! under its mutex; ours streams a message, so "a put in progress" exists
//! and is handled as above.
//!
//! # What a death costs
//! A producer killed inside a put before its message was published loses
//! that message: nothing of it is delivered, and
//! [`lost_by_dead_producers`](Queue::lost_by_dead_producers) counts it (a
//! message it had finished publishing is delivered as usual). A consumer
//! killed inside a get loses the message it was taking (the next consumer
//! skips the rest of it) or had taken and not yet returned, and
//! [`lost_by_dead_consumers`](Queue::lost_by_dead_consumers) counts it. The
//! counts cover deaths *inside* a queue operation. A consumer killed in the
//! last few instructions of its get, or after its get returned, loses its
//! message without the queue knowing: the message was already handed over.
//!
//! # Differences from Python's `multiprocessing.Queue`
//! - `put` writes into shared memory itself; there is no feeder thread. A
//!   put that returned has put its message: [`len`](Queue::len) counts it
//!   in every process at once.
//! - An "unbounded" queue is unbounded in messages, but a put waits for
//!   ring room (see [Blocking](#blocking)).
//! - [`shutdown`](Queue::shutdown) exists (CPython 3.13 has it on
//!   `queue.Queue` only), across processes (see [Shutdown](#shutdown)).
//!
//! # Cost
//! The queue is one shared memory mapping and one pipe, made by
//! [`Queue::new`]. A forked process does not inherit its parent's page
//! table entries for shared memory, so each process's first put or get
//! maps the whole ring in with one `madvise` (about 75 us for the default
//! 1 MiB ring on a small VM, against about 250 us for faulting it in page
//! by page), before it takes any lock. After that, a process's uncontended
//! put or get makes no system call: a lock is one atomic compare-and-swap,
//! the message is copied into or out of the shared ring, and a waiting
//! process is woken (`futex`) only if it sleeps. A waiter spins briefly,
//! then sleeps in the kernel for at most 10 ms at a time.
//!
//! [`get_bytes`](Queue::get_bytes) returns a new `Vec` per message; a
//! process's first large messages then land in memory the kernel has not
//! mapped yet, faulted in while the consumer lock is held (about 0.45 ms
//! per MiB). [`get_bytes_into`](Queue::get_bytes_into) reuses one buffer,
//! which pays that once.
//!
//! One producer and one consumer at a time move a message: more processes
//! on each side do not copy in parallel, and each one adds its own
//! first-use costs above, so a short run with many processes per CPU is
//! slower than one producer and one consumer moving the same bytes.

mod get;
mod hooks;
mod layout;
mod locks;
mod put;
mod ring;
mod shutdown;
mod tasks;
mod wait;

use std::fmt;
use std::os::fd::OwnedFd;
use std::sync::atomic::Ordering::{Acquire, Relaxed, SeqCst};
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::error::{Error, Result};
use crate::sys;
use crate::sys::shm::{Fresh, SharedRegion};
use layout::Header;

/// The ring's default size in bytes.
pub const DEFAULT_RING_BYTES: usize = 1 << 20;
/// The smallest ring a queue accepts.
pub const MIN_RING_BYTES: usize = 128;
/// Bytes of a record header in the ring.
pub const RECORD_HEADER_LEN: usize = 24;

/// How many processes the "taken, not done" table of a `JoinableQueue`
/// tracks at once. A slot is reused once its process has no task
/// outstanding; gets by further processes are counted as untracked.
pub const TASK_SLOTS: usize = 256;

// A production build (without the `test-hooks` feature) keeps the calls to
// `kill_point` but they compile to nothing, and nothing outside the crate
// can name a kill point or reach a lock.
#[cfg(feature = "test-hooks")]
pub use hooks::{KillPoint, QueueLock, set_kill_point, set_len_pause};

/// Options for a [`Queue`]; start with [`Queue::builder`].
#[derive(Debug, Clone)]
pub struct QueueBuilder {
    max_items: u64,
    max_message: u64,
    ring_bytes: usize,
    racing_readers: bool,
    two_load_len: bool,
    busy_lock_empty: bool,
    deferred_put: bool,
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
        let (consumers_watch, consumer_token) =
            sys::pipe(false).map_err(|e| Error::io("pipe2", e))?;
        remember_producers_pipe(&watch);
        // A record carries at most a quarter of the ring (see `ring.rs`).
        let max_payload = (ring_len / 4).clamp(1, 1 << 30);
        Ok(Queue {
            inner: Arc::new(Inner {
                region,
                closed: AtomicBool::new(false),
                put_closed: AtomicBool::new(false),
                producer_token: Mutex::new(Some(token)),
                producers_watch: watch,
                get_closed: AtomicBool::new(false),
                consumer_token: Mutex::new(Some(consumer_token)),
                consumers_watch,
                ring_len: ring_len as u64,
                max_payload,
                max_items: self.max_items,
                max_message: self.max_message,
                racing: self.racing_readers,
                two_load_len: self.two_load_len,
                busy_lock_empty: self.busy_lock_empty,
                deferred_put: self.deferred_put,
                deferred: Mutex::new(None),
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
/// and threads. See the [module docs](self) for the contract.
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
    /// Write end of the producers pipe: this process may still put (see
    /// `Inner::producers_gone`).
    producer_token: Mutex<Option<OwnedFd>>,
    /// Read end: `POLLHUP` once no process holds a write end.
    producers_watch: OwnedFd,
    /// This process will get no more.
    get_closed: AtomicBool,
    /// Write end of the consumers pipe: this process may still get (see
    /// `Inner::consumers_gone`).
    consumer_token: Mutex<Option<OwnedFd>>,
    /// Read end: `POLLHUP` once no process holds a write end.
    consumers_watch: OwnedFd,
    ring_len: u64,
    max_payload: usize,
    max_items: u64,
    max_message: u64,
    racing: bool,
    /// The two-load `len` pitfall (`QueueBuilder::two_load_len_pitfall`).
    two_load_len: bool,
    /// The busy-lock `Empty` pitfall
    /// (`QueueBuilder::busy_lock_empty_pitfall`).
    busy_lock_empty: bool,
    /// The deferred-put pitfall (`QueueBuilder::deferred_put_pitfall`).
    deferred_put: bool,
    /// The deferred-put pitfall's message not yet in the queue, with the
    /// pid of the process that put it (a forked child's copy is not its).
    deferred: Mutex<Option<(sys::Pid, Vec<u8>)>>,
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
    /// room there is. Saves producers a cross-CPU read per put: re-read
    /// only when it says "no room", so a streaming producer and consumer
    /// do not pull each other's cache line across CPUs on every message
    /// (64 B across cores: about 1.2-1.4x).
    tail_seen: AtomicU64,
    /// The producers' `head` as this process last read it: a lower bound, so
    /// records below it are committed. Saves consumers a read per get.
    head_seen: AtomicU64,
    /// The process whose page tables map the whole region (see
    /// `Inner::map_in`): a forked child still has its parent's pid here.
    populated_in: AtomicU64,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // The deferred-put pitfall: the last handle in this process puts
        // the message its last put left waiting (a process that ends with
        // `_exit` holding a handle loses it).
        let _ = self.publish_deferred();
    }
}

impl fmt::Debug for Queue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Queue")
            .field("len", &self.inner.len())
            .field("max_items", &self.inner.max_items)
            .field("ring_bytes", &self.inner.ring_len)
            .finish()
    }
}

impl Queue {
    /// Options: bounded or not, maximum message size, ring size.
    pub fn builder() -> QueueBuilder {
        QueueBuilder {
            max_items: 0,
            max_message: u64::MAX,
            ring_bytes: DEFAULT_RING_BYTES,
            racing_readers: false,
            two_load_len: false,
            busy_lock_empty: false,
            deferred_put: false,
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

    /// Messages put (completely) and not yet taken, across all processes:
    /// a value that was exact at one instant during the call, so never more
    /// than [`max_items`](Self::max_items) (see `Inner::len` for why).
    pub fn len(&self) -> usize {
        // (The deferred-put pitfall's message goes in first.)
        let _ = self.inner.publish_deferred();
        self.inner.len()
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

    /// This process will put no more: it stops counting as a producer, so
    /// consumers can see [`Error::Closed`] once every producer is gone. Its
    /// later puts return [`Error::Closed`]; gets work as before.
    pub fn close_producer(&self) {
        // (The deferred-put pitfall's message goes in before the end.)
        let _ = self.inner.publish_deferred();
        self.inner.put_closed.store(true, SeqCst);
        let mut token = self
            .inner
            .producer_token
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        token.take();
    }

    /// This process will get no more: it stops counting as a consumer, so
    /// producers can see [`Error::Closed`] once every consumer is gone (see
    /// [Closed](self#contract)). Its later gets return [`Error::Closed`];
    /// puts work as before. The counterpart of
    /// [`close_producer`](Self::close_producer).
    ///
    /// ```
    /// use ipc_harness::{Error, Queue, harness::fork};
    /// use std::time::Duration;
    ///
    /// # let _serial = fork::serial(); // doctests run on threads: see harness::fork
    /// let q = Queue::bounded(1)?;
    /// let consumer = {
    ///     let q = q.clone();
    ///     fork::spawn(move || {
    ///         q.close_producer();
    ///         let first = q.get_bytes().unwrap();
    ///         first // and exits: no consumer is left
    ///     })?
    /// };
    /// q.close_consumer(); // this process only produces
    /// q.put_bytes(b"one")?;
    /// assert_eq!(consumer.wait(Duration::from_secs(10))?.expect_success(), b"one");
    /// q.put_bytes(b"two")?; // fits: the queue holds one
    /// // Full, and nobody will ever take from it: Closed, not a hang.
    /// assert!(matches!(q.put_bytes(b"three"), Err(Error::Closed)));
    /// # Ok::<(), Error>(())
    /// ```
    pub fn close_consumer(&self) {
        self.inner.get_closed.store(true, SeqCst);
        let mut token = self
            .inner
            .consumer_token
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        token.take();
    }

    /// Closes the queue in this process: later puts and gets here return
    /// [`Error::Closed`], and it stops counting as a producer and as a
    /// consumer. Other processes are unaffected. Everything already put
    /// stays in the queue.
    pub fn close(&self) {
        let _ = self.inner.publish_deferred();
        self.inner.closed.store(true, SeqCst);
        self.close_producer();
        self.close_consumer();
    }

    /// Shuts the queue down, for every process (CPython 3.13's
    /// `Queue.shutdown`): later puts anywhere return [`Error::ShutDown`],
    /// gets take what is left and then return [`Error::ShutDown`] instead
    /// of waiting. With `immediate`, what is left is discarded: gets return
    /// [`Error::ShutDown`] at once, [`len`](Self::len) is 0, and a
    /// [`JoinableQueue`](crate::JoinableQueue) counts the discarded
    /// messages' tasks as done, so a join waits only for tasks that gets
    /// returned. Every process blocked in a put, a get or a join wakes. See
    /// [Shutdown](self#shutdown).
    ///
    /// ```
    /// use ipc_harness::{Error, Queue};
    ///
    /// let q = Queue::new()?;
    /// q.put_bytes(b"left")?;
    /// q.shutdown(false)?;
    /// assert!(q.is_shutdown());
    /// assert!(matches!(q.put_bytes(b"late"), Err(Error::ShutDown)));
    /// assert_eq!(q.get_bytes()?, b"left"); // drained,
    /// assert!(matches!(q.get_bytes(), Err(Error::ShutDown))); // then ShutDown
    /// # Ok::<(), Error>(())
    /// ```
    pub fn shutdown(&self, immediate: bool) -> Result<()> {
        self.inner.shutdown(immediate)
    }

    /// True once any process has called [`shutdown`](Self::shutdown).
    pub fn is_shutdown(&self) -> bool {
        self.inner.shutdown_state() != 0
    }

    /// Maps the queue's shared memory into this process now, as its first
    /// put or get would otherwise do (see [Cost](self#cost)): a forked
    /// process that calls it while it sets up pays that cost before its
    /// first message rather than with it. Calling it again in the same
    /// process does nothing.
    ///
    /// ```
    /// use ipc_harness::{Queue, harness::fork};
    /// use std::time::Duration;
    ///
    /// # let _serial = fork::serial(); // doctests run on threads: see harness::fork
    /// let q = Queue::new()?;
    /// let consumer = {
    ///     let q = q.clone();
    ///     fork::spawn(move || {
    ///         q.map_in(); // set-up, before the first message
    ///         q.get_bytes().unwrap()
    ///     })?
    /// };
    /// q.put_bytes(b"hello")?;
    /// assert_eq!(consumer.wait(Duration::from_secs(10))?.expect_success(), b"hello");
    /// # Ok::<(), ipc_harness::Error>(())
    /// ```
    pub fn map_in(&self) {
        self.inner.map_in();
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
    /// (only bounded queues are ever full, or a ring with no room while
    /// another put holds the lock). It may still wait for ring space that
    /// consumers are freeing, and for another put that is writing (see
    /// [Blocking](self#blocking) and the [worst-case
    /// waits](self#non-blocking-and-timed-calls-beside-another-process)).
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

    /// Takes one whole message into `buf`, as [`get_bytes`](Self::get_bytes)
    /// does, and returns its length. `buf`'s old contents are replaced and
    /// its allocation is reused: it grows only for a message longer than it
    /// has room for, so a consumer that keeps one buffer allocates (and
    /// faults in) its memory once, not once per message. On an error `buf`
    /// is left empty, its allocation kept.
    ///
    /// ```
    /// use ipc_harness::Queue;
    ///
    /// let q = Queue::new()?;
    /// q.put_bytes(b"a first message")?;
    /// q.put_bytes(b"second")?;
    /// let mut buf = Vec::new();
    /// assert_eq!(q.get_bytes_into(&mut buf)?, 15);
    /// assert_eq!(buf, b"a first message");
    /// let allocation = buf.as_ptr();
    /// assert_eq!(q.get_bytes_into(&mut buf)?, 6);
    /// assert_eq!(buf, b"second");
    /// assert_eq!(buf.as_ptr(), allocation); // no new allocation
    /// # Ok::<(), ipc_harness::Error>(())
    /// ```
    pub fn get_bytes_into(&self, buf: &mut Vec<u8>) -> Result<usize> {
        self.inner.get_into(buf, None, false)?;
        Ok(buf.len())
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
    /// other members wait for (`SharedRegion::populate` has the numbers).
    fn map_in(&self) {
        let pid = sys::cached_pid() as u64;
        if self.populated_in.load(Relaxed) != pid {
            self.region.populate();
            self.populated_in.store(pid, Relaxed);
        }
    }

    // Why `len` is exact. `published` and `taken` only grow. One load of
    // each, one after the other, is not a snapshot: a process descheduled
    // between them answered 2 on a queue bounded to 1 (it read `taken`,
    // others then put and took, and it read a `published` far ahead of the
    // `taken` it had). So `len` reads `taken` (t1), `published` (p), and
    // `taken` again (t2), and retries until t1 == t2:
    // - Exact at an instant: `taken` only grows, so it held t1 during the
    //   whole interval between its two loads, in particular when `published`
    //   was read: `p - t1` was the count at that instant.
    // - Never above the bound: the producer that published p checked, under
    //   the producer lock, that `p - 1 - t' < max_items` for a `taken` t' it
    //   read before publishing. Our load of p synchronizes with that publish
    //   (release/acquire), so our later load t2 is not older than t': t1 =
    //   t2 >= t' >= p - max_items.
    // - `taken` may pass `published` by one for the few instructions between
    //   a producer's commit of `head` and of `published` (a consumer can take
    //   the message in between; one producer commits at a time, by one). The
    //   message is then both put and taken: the exact count is 0, which the
    //   saturating subtraction answers.
    // - Progress: lock-free, never waits on anyone. A retry means a message
    //   was taken during the call; it takes no lock and sleeps never.
    fn len(&self) -> usize {
        let h = self.header();
        if self.shutdown_state() == shutdown::SHUT_IMMEDIATE {
            // Everything in the queue is discarded (`shutdown.rs`).
            return 0;
        }
        if cfg!(feature = "test-hooks") && self.two_load_len {
            // The pitfall: two loads, no snapshot.
            let taken = h.cons.taken.load(Acquire);
            hooks::len_pause();
            return h.prod.published.load(Acquire).saturating_sub(taken) as usize;
        }
        let mut taken = h.cons.taken.load(SeqCst);
        // The test hook widens the window once per call (a retry without it
        // then has its usual few nanoseconds).
        hooks::len_pause();
        loop {
            let published = h.prod.published.load(SeqCst);
            let again = h.cons.taken.load(SeqCst);
            if again == taken {
                return published.saturating_sub(taken) as usize;
            }
            taken = again;
        }
    }
}

// The producers pipes of the queues this process made, by inode, so that a
// hang report can say that a blocked process still holds one's write end
// (it counts as a producer until it calls `close_producer()`). Pipe inodes
// are not reused for a long time; the list keeps the newest few thousand.
static PRODUCERS_PIPES: std::sync::Mutex<Vec<u64>> = std::sync::Mutex::new(Vec::new());
const PRODUCERS_PIPES_KEPT: usize = 4096;

fn remember_producers_pipe(watch: &OwnedFd) {
    let Ok(st) = sys::fifo::fstat(std::os::fd::AsFd::as_fd(watch)) else {
        return;
    };
    let mut pipes = PRODUCERS_PIPES.lock().unwrap_or_else(|e| e.into_inner());
    if pipes.len() >= PRODUCERS_PIPES_KEPT {
        pipes.remove(0);
    }
    pipes.push(st.id.1);
}

/// True if `inode` is the producers pipe of a queue this process made: a
/// process holding its write end counts as one of that queue's producers.
#[cfg_attr(not(feature = "harness"), allow(dead_code))]
pub(crate) fn is_producers_pipe(inode: u64) -> bool {
    PRODUCERS_PIPES
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .contains(&inode)
}
