//! The one trait a message transport implements to be checked by the
//! harness, and what it promises.
//!
//! A [`Channel`] is a factory: [`Channel::open`] makes, before any fork,
//! one end per producer and one per consumer. The runner then forks one
//! process per end; each child keeps its own end and drops every other one
//! (so a consumer never holds a producer's write end, and end of stream
//! can come). A producer end sends messages; a consumer end receives one
//! message per call until [`Error::Closed`](crate::Error::Closed).
//!
//! # Checking your own transport
//! ```
//! use ipc_harness::harness::channel::{Channel, Consumer, Ends, Producer, Promises};
//! use ipc_harness::harness::run::run;
//! use ipc_harness::harness::scenario::Scenario;
//! use ipc_harness::{Receiver, Result, Sender};
//! use std::time::Instant;
//!
//! /// A length-prefixed pipe of our own (here: the crate's, for brevity).
//! struct MyPipe;
//! struct MyTx(Sender);
//! struct MyRx(Receiver);
//! impl Producer for MyTx {
//!     fn send(&mut self, msg: &[u8]) -> Result<()> { self.0.send_bytes(msg) }
//! }
//! impl Consumer for MyRx {
//!     fn recv(&mut self, deadline: Instant) -> Result<Vec<u8>> {
//!         self.0.recv_bytes_timeout(deadline.saturating_duration_since(Instant::now()))
//!     }
//! }
//! impl Channel for MyPipe {
//!     type Producer = MyTx;
//!     type Consumer = MyRx;
//!     fn name(&self) -> String { "my pipe".into() }
//!     fn promises(&self) -> Promises { Promises::MESSAGES.single_producer().single_consumer() }
//!     fn open(&self, producers: usize, consumers: usize) -> Result<Ends<MyTx, MyRx>> {
//!         assert_eq!((producers, consumers), (1, 1));
//!         let (tx, rx) = ipc_harness::pipe()?;
//!         Ok(Ends { producers: vec![MyTx(tx)], consumers: vec![MyRx(rx)] })
//!     }
//! }
//!
//! let report = run(&MyPipe, &Scenario::simple(&[0, 5, 4096, 70_000]));
//! assert!(report.broken_promises().is_empty(), "{report}");
//! ```

use std::fmt;
use std::time::Instant;

use crate::error::Result;

/// The properties the harness checks, as table columns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Property {
    /// Each receive is exactly one send: never merged, never split.
    Boundaries,
    /// Every sent message is received once: none lost, none duplicated.
    ExactlyOnce,
    /// One producer's messages arrive in the order sent (per consumer).
    Order,
    /// No received byte is corrupt or foreign.
    Integrity,
    /// Nobody hangs past the deadline, crashes or sees an unexpected error.
    Liveness,
    /// Task accounting (a joinable queue): `task_done` is never refused
    /// while a task taken is unfinished, and a join never returns while a
    /// task is unfinished.
    TaskAccounting,
}

impl Property {
    /// Every property, in table order.
    pub const ALL: [Property; 6] = [
        Property::Boundaries,
        Property::ExactlyOnce,
        Property::Order,
        Property::Integrity,
        Property::Liveness,
        Property::TaskAccounting,
    ];

    /// The column title.
    pub fn title(self) -> &'static str {
        match self {
            Property::Boundaries => "boundaries",
            Property::ExactlyOnce => "exactly-once",
            Property::Order => "order",
            Property::Integrity => "integrity",
            Property::Liveness => "liveness",
            Property::TaskAccounting => "tasks",
        }
    }
}

impl fmt::Display for Property {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.title())
    }
}

/// What a transport promises, and the shapes of scenario it promises it for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Promises {
    /// Each receive returns exactly one whole send.
    pub boundaries: bool,
    /// Nothing lost or duplicated.
    pub exactly_once: bool,
    /// Per-producer order, as seen by each consumer.
    pub order: bool,
    /// No corrupt bytes.
    pub integrity: bool,
    /// How many producer processes it supports (its promises hold for up to
    /// this many; the scenarios never use more).
    pub max_producers: usize,
    /// How many consumer processes it supports.
    pub max_consumers: usize,
    /// The largest message it accepts.
    pub max_message: usize,
    /// The smallest message it can carry (1 for transports where a 0-byte
    /// message is indistinguishable from nothing or from end of stream).
    pub min_message: usize,
    /// Task accounting: consumers mark each message done and join (see
    /// [`Consumer::task_done`]).
    pub tasks: bool,
    /// Once every consumer is gone (killed, or closed its end), sends fail
    /// with [`Error::Closed`](crate::Error::Closed) instead of blocking
    /// (true of pipes, FIFOs and sockets). Without it, the fault generator
    /// always leaves one consumer alive.
    pub sends_fail_without_consumers: bool,
    /// A producer killed in the middle of a message leaves a torn frame
    /// that the other producers' messages are then read into (a byte
    /// stream shared by several writers, such as a FIFO). With it, the
    /// fault generator never kills a producer mid-message while another
    /// producer shares the channel.
    pub torn_by_dead_writer: bool,
    /// At most this many messages whose send returned `Ok` are lost with
    /// each consumer killed by a fault (the message in its hands). A
    /// channel with a single consumer dies with it: everything it had not
    /// yet received is lost, whatever this says.
    pub lost_per_dead_consumer: usize,
}

impl Promises {
    /// A message transport: every property, up to 8 producers and 8
    /// consumers (the most a scenario runs; the default strategies use up
    /// to 4 of each), messages of any size.
    pub const MESSAGES: Promises = Promises {
        boundaries: true,
        exactly_once: true,
        order: true,
        integrity: true,
        max_producers: 8,
        max_consumers: 8,
        max_message: usize::MAX,
        min_message: 0,
        tasks: false,
        sends_fail_without_consumers: true,
        torn_by_dead_writer: false,
        lost_per_dead_consumer: 1,
    };

    /// A byte stream: bytes in order and intact, but no boundaries, so no
    /// promise about messages as such (a 0-byte message cannot even exist).
    pub const BYTE_STREAM: Promises = Promises {
        boundaries: false,
        exactly_once: false,
        ..Promises::MESSAGES
    };

    /// The same promises for messages of at least `min` bytes.
    pub const fn min_message(mut self, min: usize) -> Self {
        self.min_message = min;
        self
    }

    /// The same promises, plus task accounting.
    pub const fn with_tasks(mut self) -> Self {
        self.tasks = true;
        self
    }

    /// The same promises without exactly-once delivery.
    pub const fn without_exactly_once(mut self) -> Self {
        self.exactly_once = false;
        self
    }

    /// The same promises for one producer only.
    pub const fn single_producer(mut self) -> Self {
        self.max_producers = 1;
        self
    }

    /// The same promises for one consumer only.
    pub const fn single_consumer(mut self) -> Self {
        self.max_consumers = 1;
        self
    }

    /// The same promises for a channel whose sends block (rather than fail)
    /// once every consumer is gone: see
    /// [`sends_fail_without_consumers`](Self::sends_fail_without_consumers).
    pub const fn sends_block_without_consumers(mut self) -> Self {
        self.sends_fail_without_consumers = false;
        self
    }

    /// The same promises for a channel that a producer killed mid-message
    /// tears for the others: see [`torn_by_dead_writer`](Self::torn_by_dead_writer).
    pub const fn torn_by_dead_writer(mut self) -> Self {
        self.torn_by_dead_writer = true;
        self
    }

    /// The same promises for messages of at most `max` bytes.
    pub const fn max_message(mut self, max: usize) -> Self {
        self.max_message = max;
        self
    }

    /// Whether `property` is promised (liveness always is).
    pub fn promises(&self, property: Property) -> bool {
        match property {
            Property::Boundaries => self.boundaries,
            Property::ExactlyOnce => self.exactly_once,
            Property::Order => self.order,
            Property::Integrity => self.integrity,
            Property::Liveness => true,
            Property::TaskAccounting => self.tasks,
        }
    }
}

/// The ends of one freshly opened channel.
#[derive(Debug)]
pub struct Ends<P, C> {
    /// One end per producer process.
    pub producers: Vec<P>,
    /// One end per consumer process.
    pub consumers: Vec<C>,
}

/// A producer's end, used in its own process.
pub trait Producer {
    /// Sends one message.
    fn send(&mut self, msg: &[u8]) -> Result<()>;

    /// Shrinks the kernel buffer under this end as far as it goes (one
    /// page for a pipe), for scenarios with
    /// [`tiny_capacity`](super::scenario::Scenario::tiny_capacity). The
    /// default does nothing: not every transport has such a buffer.
    fn shrink_buffer(&mut self) {}

    /// Arms one of the end's own kill points, inside its next send (the
    /// `point`-th of them, modulo how many it has: e.g. holding a lock,
    /// mid-record, mid-commit), so that the process SIGKILLs itself there
    /// (see [`FaultKind::KillInside`](super::fault::FaultKind::KillInside)).
    /// Returns false (the default) if the end has no such points; the
    /// harness then kills the process from outside at the start of the send.
    fn arm_kill_point(&mut self, point: u8) -> bool {
        let _ = point;
        false
    }
}

/// A consumer's end, used in its own process.
pub trait Consumer {
    /// Receives one message, or [`Error::Closed`](crate::Error::Closed)
    /// once every producer is done and everything was taken, or
    /// [`Error::Timeout`](crate::Error::Timeout) at `deadline`.
    fn recv(&mut self, deadline: Instant) -> Result<Vec<u8>>;

    /// Like [`Producer::shrink_buffer`], for the consumer's end.
    fn shrink_buffer(&mut self) {}

    /// Like [`Producer::arm_kill_point`], inside the next receive.
    fn arm_kill_point(&mut self, point: u8) -> bool {
        let _ = point;
        false
    }

    /// For a channel with task accounting (a joinable queue): marks the
    /// message last received as processed. The harness calls it after every
    /// receive. `None` (the default): the channel has no tasks.
    fn task_done(&mut self) -> Option<Result<()>> {
        None
    }

    /// For a channel with task accounting: waits (until `deadline`) for
    /// every task to be done and returns the unfinished-task counter read
    /// right after the join returned. The harness calls it once the stream
    /// has ended. `None` (the default): the channel has no tasks.
    fn join(&mut self, deadline: Instant) -> Option<Result<u64>> {
        let _ = deadline;
        None
    }
}

/// A transport the harness can check.
pub trait Channel {
    /// A producer process's end.
    type Producer: Producer;
    /// A consumer process's end.
    type Consumer: Consumer;

    /// A short name for reports and tables, e.g. `"pipe()"`.
    fn name(&self) -> String;

    /// What it promises.
    fn promises(&self) -> Promises;

    /// Makes a new channel with `producers` producer ends and `consumers`
    /// consumer ends (within [`Promises::max_producers`] and
    /// [`Promises::max_consumers`]). Called in the parent, before forking.
    fn open(
        &self,
        producers: usize,
        consumers: usize,
    ) -> Result<Ends<Self::Producer, Self::Consumer>>;
}
