//! [`JoinableQueue`]: a [`Queue`] that counts unfinished tasks, so that a
//! process can wait until every item put has been processed, across forked
//! processes. Python's `multiprocessing.JoinableQueue`, plus joins that can
//! explain why they do not finish.
//!
//! # Example
//! ```
//! use ipc_harness::{JoinableQueue, harness::fork};
//! use std::time::Duration;
//!
//! # let _serial = fork::serial(); // doctests run on threads: see harness::fork
//! let q = JoinableQueue::new()?;
//! let worker = {
//!     let q = q.clone();
//!     fork::spawn(move || {
//!         q.close_producer(); // the worker only consumes
//!         while let Ok(n) = q.get::<u32>() {
//!             let _ = n * 2; // the work
//!             q.task_done().unwrap();
//!         }
//!         Vec::new()
//!     })?
//! };
//! for i in 0..10u32 {
//!     q.put(&i)?;
//! }
//! q.join(); // every item was taken and marked done
//! assert_eq!(q.unfinished_tasks(), 0);
//! q.close_producer(); // the worker's get now says Closed
//! worker.wait(Duration::from_secs(10))?.expect_success();
//! # Ok::<(), ipc_harness::Error>(())
//! ```
//!
//! # Contract
//! Everything [`Queue`] promises (every `Queue` method works on a
//! `JoinableQueue`, through `Deref`), and:
//! - Every put that returns `Ok` adds one unfinished task, counted in the
//!   same step that makes the message visible: there is no moment when a
//!   consumer can take a message whose task is not counted yet.
//! - [`task_done`](JoinableQueue::task_done) removes one. Called more times
//!   than items were put, it returns
//!   [`Error::TaskDoneTooManyTimes`](crate::Error::TaskDoneTooManyTimes)
//!   and changes nothing (Python raises `ValueError`).
//! - [`join`](JoinableQueue::join) returns once the count is zero, in every
//!   process that waits, and at once on a queue with nothing unfinished. A
//!   `task_done` that lands between a joiner's check and its sleep still
//!   wakes it. (If a put makes the count non-zero again before a joiner has
//!   run, the joiner may keep waiting, as Python's does.)
//! - [`join_timeout`](JoinableQueue::join_timeout) that runs out returns
//!   [`Error::JoinTimeout`](crate::Error::JoinTimeout): the number of
//!   unfinished tasks and, per pid, the tasks taken with a get and not yet
//!   marked done, saying which of those processes are dead. Python's join
//!   hangs forever there.
//! - Put, get, `task_done` and join may each happen in a different process.
//! - The tasks taken and not done are tracked per process for up to
//!   [`TASK_SLOTS`](crate::queue::TASK_SLOTS) (256) processes at a time; a
//!   process's row is reused once it has nothing outstanding. Gets by
//!   further processes still count as unfinished tasks, just not attributed
//!   to a pid.
//!
//! - [`shutdown`](Queue::shutdown) (through `Deref`) shuts the queue down
//!   for every process; an immediate one discards what is left and counts
//!   the discarded tasks as done, so a blocked [`join`](JoinableQueue::join)
//!   returns once the tasks gets returned are done (see the queue's
//!   [Shutdown](crate::queue#shutdown)).
//!
//! # Deaths
//! A death never applies half a change to the counts, and the report says
//! who holds what:
//! - A consumer killed after its get took a message keeps that task: it
//!   can never be done, and [`task_holders`](JoinableQueue::task_holders)
//!   (and a join timeout's report) names the dead process. The same holds
//!   for a consumer killed in the middle of taking a message, whose rest
//!   the queue skips.
//! - A producer killed inside a put before its message was published added
//!   no task.
//! - A process killed inside `task_done` has its task counted as done once
//!   the next `task_done` or a waiting joiner (within about 10 ms) finds
//!   the tasks lock it left behind: its caller never learned that it
//!   returned, but the work was finished.

use std::fmt;
use std::ops::Deref;
use std::time::{Duration, Instant};

use crate::error::{Result, TaskHolder};
use crate::queue::{Queue, QueueBuilder};

/// Options for a [`JoinableQueue`]; start with [`JoinableQueue::builder`].
#[derive(Debug, Clone)]
pub struct JoinableQueueBuilder(QueueBuilder);

impl JoinableQueueBuilder {
    /// At most `n` messages waiting (Python's `maxsize`); 0 means no limit.
    pub fn max_items(self, n: usize) -> Self {
        JoinableQueueBuilder(self.0.max_items(n))
    }

    /// Refuse longer messages with [`Error::TooLarge`](crate::Error::TooLarge).
    pub fn max_message_size(self, bytes: u64) -> Self {
        JoinableQueueBuilder(self.0.max_message_size(bytes))
    }

    /// The shared ring's size in bytes (see [`QueueBuilder::ring_bytes`]).
    pub fn ring_bytes(self, bytes: usize) -> Self {
        JoinableQueueBuilder(self.0.ring_bytes(bytes))
    }

    /// The pitfall: each process keeps its own task counter (a plain
    /// variable, copied by `fork`), as naive code that forgets the counter
    /// must be shared does. Joins return early or never. Broken on purpose,
    /// for the tests that prove it is caught (only with the `test-hooks`
    /// feature).
    #[cfg(feature = "test-hooks")]
    pub fn local_counter_pitfall(mut self, on: bool) -> Self {
        self.0.local_tasks_pitfall = on;
        self
    }

    /// Creates the queue. Do this before forking the processes that use it.
    pub fn build(mut self) -> Result<JoinableQueue> {
        self.0.tasks = true;
        Ok(JoinableQueue {
            queue: self.0.build()?,
        })
    }
}

/// A [`Queue`] with task accounting: [`task_done`](Self::task_done) and
/// [`join`](Self::join). See the [module docs](self) for the contract.
///
/// Every [`Queue`] method is available through `Deref`; cloning gives another
/// handle to the same queue.
#[derive(Clone)]
pub struct JoinableQueue {
    queue: Queue,
}

impl fmt::Debug for JoinableQueue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JoinableQueue")
            .field("len", &self.queue.len())
            .field("unfinished_tasks", &self.unfinished_tasks())
            .finish()
    }
}

impl Deref for JoinableQueue {
    type Target = Queue;

    fn deref(&self) -> &Queue {
        &self.queue
    }
}

impl JoinableQueue {
    /// Options: bounded or not, maximum message size, ring size.
    pub fn builder() -> JoinableQueueBuilder {
        JoinableQueueBuilder(Queue::builder())
    }

    /// An unbounded queue with the default ring.
    pub fn new() -> Result<JoinableQueue> {
        JoinableQueue::builder().build()
    }

    /// A queue holding at most `max_items` messages (0: unbounded).
    pub fn bounded(max_items: usize) -> Result<JoinableQueue> {
        JoinableQueue::builder().max_items(max_items).build()
    }

    /// The underlying [`Queue`] handle (its puts still count tasks).
    pub fn as_queue(&self) -> &Queue {
        &self.queue
    }

    /// Marks one task done (Python's `task_done()`), in any process.
    /// [`Error::TaskDoneTooManyTimes`](crate::Error::TaskDoneTooManyTimes) if every task put is already done;
    /// nothing changes then.
    ///
    /// ```
    /// use ipc_harness::{Error, JoinableQueue};
    ///
    /// let q = JoinableQueue::new()?;
    /// q.put_bytes(b"job")?;
    /// q.get_bytes()?;
    /// q.task_done()?;
    /// assert!(matches!(q.task_done(), Err(Error::TaskDoneTooManyTimes)));
    /// assert_eq!(q.unfinished_tasks(), 0);
    /// # Ok::<(), Error>(())
    /// ```
    pub fn task_done(&self) -> Result<()> {
        self.queue.tasks().task_done()
    }

    /// Waits until every task put has been marked done. Returns at once if
    /// none is unfinished. Blocks forever if one never is: prefer
    /// [`join_timeout`](Self::join_timeout) where that can happen.
    pub fn join(&self) {
        // Without a deadline the only errors are timeouts, which cannot occur.
        let _ = self.queue.tasks().join(None);
    }

    /// Like [`join`](Self::join), giving up after `timeout` with
    /// [`Error::JoinTimeout`](crate::Error::JoinTimeout), which says how many tasks are unfinished and
    /// which processes took them and have not marked them done.
    ///
    /// ```
    /// use ipc_harness::{Error, JoinableQueue};
    /// use std::time::Duration;
    ///
    /// let q = JoinableQueue::new()?;
    /// q.put_bytes(b"a")?;
    /// q.put_bytes(b"b")?;
    /// q.get_bytes()?; // taken by this process, never marked done
    /// let err = q.join_timeout(Duration::from_millis(20)).unwrap_err();
    /// let me = std::process::id();
    /// assert_eq!(
    ///     err.to_string(),
    ///     format!("join timed out: 2 tasks unfinished; taken and not done by pid {me} (1); 1 not taken yet")
    /// );
    /// # Ok::<(), Error>(())
    /// ```
    pub fn join_timeout(&self, timeout: Duration) -> Result<()> {
        let deadline = Instant::now()
            .checked_add(timeout)
            .unwrap_or_else(|| Instant::now() + Duration::from_secs(100 * 365 * 24 * 3600));
        self.queue.tasks().join(Some(deadline))
    }

    /// Tasks put and not yet marked done, across all processes.
    pub fn unfinished_tasks(&self) -> u64 {
        self.queue.tasks().unfinished_tasks()
    }

    /// The processes that took tasks with a get and have not marked them
    /// done, with how many each, and whether each is still alive.
    pub fn task_holders(&self) -> Vec<TaskHolder> {
        self.queue.tasks().task_holders()
    }
}
