//! The queue's shared header: everything in the shared mapping before the
//! ring. Each struct is declared with `shm_safe!`, which checks that it may
//! live in shared memory.

// In the mapping, in this order (the ring follows on the next page):
//
//     config | producer lock | producer state | consumer lock | consumer state | wake words
//     | tasks lock | task state | "joined" wake word | holder table (JoinableQueue only)
//
// The `p_` fields and `phase` of each state are its pending commit (see
// `ring.rs`).

use std::sync::atomic::{AtomicU32, AtomicU64};

use super::TASK_SLOTS;
use crate::sys::shm::{RobustMutex, shm_safe};

shm_safe! {
    #[repr(C, align(128))]
    pub(super) struct Config {
        pub(super) ring_len: AtomicU64,
        pub(super) max_items: AtomicU64,
        pub(super) max_message: AtomicU64,
        pub(super) lost_by_producers: AtomicU64,
        pub(super) lost_by_consumers: AtomicU64,
        /// 0 running, `SHUT` shut down, `SHUT_IMMEDIATE` shut down and
        /// emptied (`shutdown.rs`); only grows, one atomic store.
        pub(super) shutdown: AtomicU64,
        /// 1 once a process saw that no consumer is left (`wait.rs`); it
        /// never comes back.
        pub(super) no_consumers: AtomicU64,
    }
}

shm_safe! {
    #[repr(C, align(128))]
    pub(super) struct LockLine {
        pub(super) lock: RobustMutex,
    }
}

shm_safe! {
    #[repr(C, align(128))]
    pub(super) struct ProducerState {
        /// Bytes ever published into the ring.
        pub(super) head: AtomicU64,
        /// Messages whose LAST record is published.
        pub(super) published: AtomicU64,
        /// The message being written, 0 if none.
        pub(super) cur_seq: AtomicU64,
        /// The last sequence number handed out.
        pub(super) next_seq: AtomicU64,
        /// The latest message abandoned mid-way (death or timeout).
        pub(super) abandoned_seq: AtomicU64,
        pub(super) phase: AtomicU64,
        pub(super) p_head: AtomicU64,
        pub(super) p_published: AtomicU64,
        pub(super) p_cur_seq: AtomicU64,
    }
}

shm_safe! {
    #[repr(C, align(128))]
    pub(super) struct ConsumerState {
        /// Bytes ever taken out of the ring.
        pub(super) tail: AtomicU64,
        /// Messages whose LAST record was taken.
        pub(super) taken: AtomicU64,
        /// The message being taken, 0 if none.
        pub(super) cur_seq: AtomicU64,
        /// 1 if the rest of `cur_seq` is to be skipped (its taker died), 2
        /// if an immediate shutdown is discarding it (`shutdown.rs`).
        pub(super) discard: AtomicU64,
        /// Messages an immediate shutdown discarded (also counted in `taken`).
        pub(super) discarded: AtomicU64,
        /// A whole message taken by the lock holder, not yet handed to its caller.
        pub(super) delivering: AtomicU64,
        pub(super) phase: AtomicU64,
        pub(super) p_tail: AtomicU64,
        pub(super) p_taken: AtomicU64,
        pub(super) p_cur_seq: AtomicU64,
        pub(super) p_discard: AtomicU64,
        pub(super) p_delivering: AtomicU64,
        pub(super) p_discarded: AtomicU64,
        /// The pid of the consumer lock's holder (to charge a message it dies
        /// inside to it, for `JoinableQueue`).
        pub(super) holder_pid: AtomicU64,
        /// Pending task charge: 0 none, `i + 1` slot `i`, `UNTRACKED` the
        /// untracked counter; and the new value of its `taken` counter.
        pub(super) p_slot: AtomicU64,
        pub(super) p_slot_taken: AtomicU64,
    }
}

pub(super) const UNTRACKED: u64 = u64::MAX;

shm_safe! {
    /// One row of the "taken, not done" table: `taken` only grows, in the
    /// consumer's `LAST`-record commits; `done` only grows, in `task_done`'s
    /// commits. Outstanding = `taken - done`.
    #[repr(C)]
    pub(super) struct TaskSlot {
        pub(super) pid: AtomicU64,
        pub(super) taken: AtomicU64,
        pub(super) done: AtomicU64,
    }
}

shm_safe! {
    /// `JoinableQueue` task accounting, beside the queue's own state. Tasks put
    /// are `ProducerState::published`; tasks done are `done`, changed only by a
    /// `task_done` commit under `tasks_lock`.
    #[repr(C, align(128))]
    pub(super) struct TaskState {
        pub(super) done: AtomicU64,
        /// Messages taken while the table was full (consumer lock).
        pub(super) untracked_taken: AtomicU64,
        /// `task_done` calls charged to no slot (tasks lock).
        pub(super) untracked_done: AtomicU64,
        pub(super) phase: AtomicU64,
        pub(super) p_done: AtomicU64,
        pub(super) p_slot: AtomicU64,
        pub(super) p_slot_done: AtomicU64,
    }
}

shm_safe! {
    #[repr(C, align(128))]
    pub(super) struct WakeWord {
        pub(super) word: AtomicU32,
        pub(super) waiters: AtomicU32,
        /// The CPU (plus one; 0 unknown) the last waker ran on: a hint for
        /// spinners, any value is harmless.
        pub(super) waker_cpu: AtomicU32,
    }
}

shm_safe! {
    /// The queue's shared header (its parts in order: see the top of this
    /// file).
    #[repr(C)]
    pub(super) struct Header {
        pub(super) config: Config,
        pub(super) prod_lock: LockLine,
        pub(super) prod: ProducerState,
        pub(super) cons_lock: LockLine,
        pub(super) cons: ConsumerState,
        pub(super) not_empty: WakeWord,
        pub(super) not_full: WakeWord,
        pub(super) tasks_lock: LockLine,
        pub(super) tasks: TaskState,
        /// Bumped (generation counter) whenever tasks are done and a joiner sleeps.
        pub(super) joined: WakeWord,
        pub(super) slots: [TaskSlot; TASK_SLOTS],
    }
}
