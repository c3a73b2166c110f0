//! Histories recorded from the crate's own primitives across forked
//! processes, with faults, checked against their models.
//!
//! ```
//! use ipc_harness::harness::history::scenarios::{self, FaultMode, Plan, Primitive};
//!
//! # let _serial = ipc_harness::harness::fork::serial(); // doctests run on threads
//! let plan = Plan::new(7, FaultMode::Kill);
//! for primitive in Primitive::ALL {
//!     let report = scenarios::run(primitive, &plan)?;
//!     println!("{report}");
//!     assert!(report.judgement.is_linearizable(), "{report:#}");
//! }
//! # Ok::<(), ipc_harness::Error>(())
//! ```
//!
//! # What is recorded
//! A [`Plan`] (a seed, a [`FaultMode`] and the most operations a process
//! does) becomes, for each [`Primitive`], a [`Schedule`]: which processes
//! there are and what each does, step by step, all drawn from the seed, so
//! a failure replays from `(primitive, plan)`. [`record`] forks one process
//! per role and each records every operation through a
//! [`Recorder`]: the invocation is journalled before the call and the
//! answer after it returns, with CLOCK_MONOTONIC times.
//!
//! | primitive | processes | operations | model |
//! |---|---|---|---|
//! | [`Queue`] bounded to 1, 2, 3 or unbounded | 1-2 producers, 1-2 consumers, 1 observer | `put`, `try_put`, `put_timeout`; `get`, `try_get`, `get_timeout`; `len`, `is_empty`, `is_full` | [`QueueModel`] |
//! | [`JoinableQueue`] | 1-2 producers, 1-2 consumers, 1 joiner | `put`; `get`, `try_get`, `get_timeout`, `task_done`; `join_timeout` | [`TasksModel`] |
//! | [`pipe()`](crate::pipe()) | 1-3 senders on one [`Sender`] (frames of at most `PIPE_BUF` bytes keep their boundaries with several writers), 1 receiver | `send_bytes`; `recv_bytes`, `recv_bytes_timeout` | [`ChannelModel`] |
//! | [`duplex()`](crate::duplex()) | 1 sender on one end, 1 receiver on the other (a socket promises nothing to several writers) | as a pipe | [`ChannelModel`] |
//! | [`duplex_pipes()`](crate::duplex_pipes()) | 1 sender on one end, 1 receiver on the other | as a pipe | [`ChannelModel`] |
//! | [`Fifo`], framed or [chunked](crate::fifo::FifoOptions::chunked) | 1-3 writers, each opening the path itself, 1 reader | as a pipe | [`ChannelModel`] |
//!
//! Every message is 8 bytes: a producer's number in the high 32 bits and
//! its own count in the low ones, so values are unique and each producer's
//! increase. Timeouts are drawn from 0, 200 us, 1 ms and 5 ms (a zero
//! timeout is as likely as the others together); a join waits at most
//! 0, 1, 5 or 20 ms.
//!
//! # Answers the models have no words for
//! - A get or receive that answers `Closed` (no producer or writer is left)
//!   claims the channel was empty at an instant of the call: it is checked
//!   as a `try_get`/`try_recv` that answered `Empty`. A receive with a
//!   timeout is recorded as a `try_recv`, its `Timeout` as `Empty`.
//! - A put or send that answers `Closed` (no consumer or reader is left)
//!   delivered nothing and claims nothing: it is left out of the checked
//!   history (as are, on a `JoinableQueue`, a get that found nothing and a
//!   join that timed out). [`Report::dropped`] counts them.
//! - Any other error, a message that is not 8 bytes, a process that
//!   panicked, hung, or died unplanned makes the run
//!   [`Judgement::Broken`].
//!
//! # Faults
//! - [`FaultMode::None`].
//! - [`FaultMode::Kill`]: one process, drawn from the seed, is `SIGKILL`ed
//!   by a helper process 0-2000 us after the helper is started, just before
//!   the process begins one of its steps (so the kill may come before that
//!   step's invocation is journalled, or in any later step); if it
//!   finishes its steps first it waits to be killed, so the kill always
//!   strikes. The operation it was in stays pending (it may have taken
//!   effect or not), and the steps after it are never started. The others
//!   never hang on it: a blocking get whose producers are all gone answers
//!   `Closed`, a send to a dead reader answers `Closed`, a join only waits
//!   with a timeout.
//! - [`FaultMode::Stop`]: one process is `SIGSTOP`ped by a helper 0-300 us
//!   after it is started, just before one of the process's steps, and `SIGCONT`ed 1-20 ms later; it waits for
//!   that before it ends, so the stop always strikes. The history keeps
//!   every operation; the stopped one just lasts longer.
//! - [`FaultMode::Storm`]: every process catches `SIGALRM` without
//!   `SA_RESTART` and receives it every 100-1000 us, so blocking calls keep
//!   failing with `EINTR` inside the primitives. The history keeps every
//!   operation.
//!
//! [`Queue`]: crate::Queue
//! [`JoinableQueue`]: crate::JoinableQueue
//! [`Recorder`]: super::Recorder

use std::cell::RefCell;
use std::fmt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use proptest::prelude::*;

use super::models::{
    ChannelAnswer, ChannelModel, ChannelOp, QueueAnswer, QueueModel, QueueOp, TaskAnswer, TaskOp,
    TasksModel,
};
use super::{History, Model, Recorder, Verdict, Wire};
use crate::duplex_pipes::PipeConnection;
use crate::error::{Error, Result};
use crate::fifo::{Fifo, FifoOptions, FifoReader, FifoWriter, Wait};
use crate::harness::fault::FaultKind;
use crate::harness::fork::{self, Outcome, WaitOptions};
use crate::harness::journal::Journal;
use crate::pipe::{Connection, Receiver, Sender};
use crate::{JoinableQueue, Queue};

/// A primitive whose histories can be recorded and checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Primitive {
    /// A [`Queue`], bounded to `max_items` messages or not.
    Queue {
        /// The bound; `None`: unbounded.
        max_items: Option<usize>,
    },
    /// A [`JoinableQueue`] (unbounded).
    JoinableQueue,
    /// A one-way [`pipe()`](crate::pipe()).
    Pipe,
    /// A [`duplex()`](crate::duplex()) connection, one way.
    Duplex,
    /// A [`duplex_pipes()`](crate::duplex_pipes()) connection, one way.
    DuplexPipes,
    /// A named [`Fifo`].
    Fifo,
    /// A named [`Fifo`] in [chunked mode](crate::fifo::FifoOptions::chunked).
    FifoChunked,
}

impl Primitive {
    /// Every primitive with a model, the queue at each bound it is
    /// recorded with.
    pub const ALL: [Primitive; 10] = [
        Primitive::Queue { max_items: Some(1) },
        Primitive::Queue { max_items: Some(2) },
        Primitive::Queue { max_items: Some(3) },
        Primitive::Queue { max_items: None },
        Primitive::JoinableQueue,
        Primitive::Pipe,
        Primitive::Duplex,
        Primitive::DuplexPipes,
        Primitive::Fifo,
        Primitive::FifoChunked,
    ];

    /// Its name: `queue-1`..`queue-3`, `queue`, `joinable`, `pipe`,
    /// `duplex`, `duplex-pipes`, `fifo`, `fifo-chunked`.
    pub fn name(self) -> String {
        match self {
            Primitive::Queue { max_items: Some(n) } => format!("queue-{n}"),
            Primitive::Queue { max_items: None } => "queue".into(),
            Primitive::JoinableQueue => "joinable".into(),
            Primitive::Pipe => "pipe".into(),
            Primitive::Duplex => "duplex".into(),
            Primitive::DuplexPipes => "duplex-pipes".into(),
            Primitive::Fifo => "fifo".into(),
            Primitive::FifoChunked => "fifo-chunked".into(),
        }
    }

    /// The primitive of that [`name`](Self::name) (`queue-N` for any bound N
    /// of at least 1).
    pub fn from_name(name: &str) -> Option<Primitive> {
        Some(match name {
            "queue" => Primitive::Queue { max_items: None },
            "joinable" => Primitive::JoinableQueue,
            "pipe" => Primitive::Pipe,
            "duplex" => Primitive::Duplex,
            "duplex-pipes" => Primitive::DuplexPipes,
            "fifo" => Primitive::Fifo,
            "fifo-chunked" => Primitive::FifoChunked,
            _ => {
                let n: usize = name.strip_prefix("queue-")?.parse().ok()?;
                (n > 0).then_some(Primitive::Queue { max_items: Some(n) })?
            }
        })
    }

    /// Whether its docs promise that several processes may send on it at
    /// once (each message staying whole).
    pub fn several_senders(self) -> bool {
        !matches!(self, Primitive::Duplex | Primitive::DuplexPipes)
    }

    fn index(self) -> u64 {
        match self {
            Primitive::Queue { max_items } => max_items.map_or(0, |n| n as u64),
            Primitive::JoinableQueue => 101,
            Primitive::Pipe => 102,
            Primitive::Duplex => 103,
            Primitive::Fifo => 104,
            Primitive::FifoChunked => 105,
            Primitive::DuplexPipes => 106,
        }
    }
}

impl fmt::Display for Primitive {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())
    }
}

/// Which fault a run suffers (see the [module docs](self#faults)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FaultMode {
    /// None.
    None,
    /// One process `SIGKILL`ed at a random moment.
    Kill,
    /// One process `SIGSTOP`ped for a few ms, then `SIGCONT`ed.
    Stop,
    /// Every process under a storm of `SIGALRM`.
    Storm,
}

impl FaultMode {
    /// Every mode.
    pub const ALL: [FaultMode; 4] = [
        FaultMode::None,
        FaultMode::Kill,
        FaultMode::Stop,
        FaultMode::Storm,
    ];

    /// Its name: `none`, `kill`, `stop`, `storm`.
    pub fn name(self) -> &'static str {
        match self {
            FaultMode::None => "none",
            FaultMode::Kill => "kill",
            FaultMode::Stop => "stop",
            FaultMode::Storm => "storm",
        }
    }
}

impl fmt::Display for FaultMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What to run: everything else is drawn from `seed`, so a run replays
/// from its plan and primitive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Plan {
    /// The seed of every choice.
    pub seed: u64,
    /// The fault.
    pub faults: FaultMode,
    /// The most steps a process takes (at least 3; a receiver of a channel
    /// takes one more than the messages sent to it).
    pub max_ops: usize,
}

impl Plan {
    /// The default number of steps a process takes at most.
    pub const MAX_OPS: usize = 8;

    /// A plan with [`Plan::MAX_OPS`].
    pub fn new(seed: u64, faults: FaultMode) -> Plan {
        Plan {
            seed,
            faults,
            max_ops: Plan::MAX_OPS,
        }
    }

    /// A plan whose fault mode is drawn from the seed too.
    pub fn from_seed(seed: u64) -> Plan {
        let mode = FaultMode::ALL[(splitmix(seed ^ 0xFA17) % 4) as usize];
        Plan::new(seed, mode)
    }
}

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "seed {:#018x}, faults {}, up to {} steps a process",
            self.seed, self.faults, self.max_ops
        )
    }
}

/// Plans for proptest: any seed, any fault mode. Shrinks toward seed 0
/// without faults.
pub fn plans() -> impl Strategy<Value = Plan> {
    (any::<u64>(), 0usize..4).prop_map(|(seed, m)| Plan::new(seed, FaultMode::ALL[m]))
}

impl Plan {
    /// The `k`-th plan of a campaign run with `seed` on `primitive` under
    /// `faults`: each plan's own seed is drawn from all four, so a campaign
    /// replays from its one seed.
    pub fn derived(seed: u64, primitive: Primitive, faults: FaultMode, k: u32) -> Plan {
        let mode = FaultMode::ALL
            .iter()
            .position(|&m| m == faults)
            .unwrap_or(0) as u64;
        let mixed =
            splitmix(splitmix(splitmix(seed) ^ primitive.index()) ^ (mode << 32 | k as u64));
        Plan::new(mixed, faults)
    }
}

fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// A small deterministic generator (splitmix64).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(1);
        splitmix(self.0)
    }

    /// A number in `lo..=hi`.
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo + 1)
    }

    fn pick<T: Copy>(&mut self, from: &[T]) -> T {
        from[(self.next() % from.len() as u64) as usize]
    }
}

/// How a step waits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mode {
    /// As long as it takes.
    Blocking,
    /// Not at all (`try_*`).
    Try,
    /// At most this long (`*_timeout`).
    Timeout(Duration),
}

fn mode(rng: &mut Rng) -> Mode {
    match rng.range(0, 5) {
        0 | 1 => Mode::Blocking,
        2 => Mode::Try,
        _ => Mode::Timeout(rng.pick(&[
            Duration::ZERO,
            Duration::ZERO,
            Duration::ZERO,
            Duration::from_micros(200),
            Duration::from_millis(1),
            Duration::from_millis(5),
        ])),
    }
}

/// One step of one process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Step {
    /// Put (queues) or send (channels) the process's next message.
    Put(Mode),
    /// Get (queues) or receive (channels).
    Get(Mode),
    /// `len()`.
    Len,
    /// `is_empty()`.
    IsEmpty,
    /// `is_full()`.
    IsFull,
    /// `task_done()`.
    TaskDone,
    /// `join_timeout(d)`.
    Join(Duration),
}

/// What a process is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// Puts or sends; producer number `n` (the high half of its values).
    Producer(usize),
    /// Gets or receives.
    Consumer,
    /// Only looks (`len`, `is_empty`, `is_full`).
    Observer,
    /// Only joins.
    Joiner,
}

/// A process of a schedule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessPlan {
    /// Its role.
    pub role: Role,
    /// Its steps, in order.
    pub steps: Vec<Step>,
}

/// The fault that strikes one process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Strike {
    /// The process (an index into [`Schedule::processes`]).
    pub process: usize,
    /// The step just before which the helper is started.
    pub at_step: usize,
    /// `SIGKILL` or `SIGSTOP`, and when.
    pub kind: FaultKind,
}

/// What a plan makes of one primitive: the processes, their steps, and
/// the fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    /// The primitive.
    pub primitive: Primitive,
    /// One per process, in the order of their process numbers in the
    /// history.
    pub processes: Vec<ProcessPlan>,
    /// A kill or a stop.
    pub strike: Option<Strike>,
    /// A signal storm: `SIGALRM` every this many microseconds.
    pub storm_us: Option<u32>,
}

impl Schedule {
    /// The schedule `plan` makes for `primitive`.
    pub fn new(primitive: Primitive, plan: &Plan) -> Schedule {
        let mut rng = Rng(splitmix(plan.seed) ^ splitmix(primitive.index()));
        let max = plan.max_ops.max(3) as u64;
        let mut processes = Vec::new();
        let steps = |rng: &mut Rng, f: &mut dyn FnMut(&mut Rng) -> Step| {
            (0..rng.range(3, max)).map(|_| f(rng)).collect::<Vec<_>>()
        };
        match primitive {
            Primitive::Queue { .. } | Primitive::JoinableQueue => {
                let joinable = primitive == Primitive::JoinableQueue;
                for p in 0..rng.range(1, 2) as usize {
                    let steps = steps(&mut rng, &mut |r| {
                        Step::Put(if joinable { Mode::Blocking } else { mode(r) })
                    });
                    processes.push(ProcessPlan {
                        role: Role::Producer(p),
                        steps,
                    });
                }
                for _ in 0..rng.range(1, 2) {
                    let steps = steps(&mut rng, &mut |r| {
                        if joinable && r.range(0, 9) < 4 {
                            Step::TaskDone
                        } else {
                            Step::Get(mode(r))
                        }
                    });
                    processes.push(ProcessPlan {
                        role: Role::Consumer,
                        steps,
                    });
                }
                let steps = steps(&mut rng, &mut |r| {
                    if joinable {
                        Step::Join(Duration::from_millis(r.pick(&[0, 1, 5, 20])))
                    } else {
                        r.pick(&[Step::Len, Step::IsEmpty, Step::IsFull])
                    }
                });
                processes.push(ProcessPlan {
                    role: if joinable {
                        Role::Joiner
                    } else {
                        Role::Observer
                    },
                    steps,
                });
            }
            Primitive::Pipe
            | Primitive::Duplex
            | Primitive::DuplexPipes
            | Primitive::Fifo
            | Primitive::FifoChunked => {
                let senders = if primitive.several_senders() {
                    rng.range(1, 3)
                } else {
                    1
                };
                let mut sent = 0;
                for p in 0..senders as usize {
                    let steps = steps(&mut rng, &mut |_| Step::Put(Mode::Blocking));
                    sent += steps.len();
                    processes.push(ProcessPlan {
                        role: Role::Producer(p),
                        steps,
                    });
                }
                let steps = (0..=sent).map(|_| Step::Get(mode(&mut rng))).collect();
                processes.push(ProcessPlan {
                    role: Role::Consumer,
                    steps,
                });
            }
        }
        let strike = |rng: &mut Rng, kind: FaultKind| {
            let process = rng.range(0, processes.len() as u64 - 1) as usize;
            let at_step = rng.range(0, processes[process].steps.len() as u64 - 1) as usize;
            Some(Strike {
                process,
                at_step,
                kind,
            })
        };
        let (strike, storm_us) = match plan.faults {
            FaultMode::None => (None, None),
            FaultMode::Kill => {
                let delay_us = rng.range(0, 2000) as u32;
                (strike(&mut rng, FaultKind::KillDuring { delay_us }), None)
            }
            FaultMode::Stop => {
                let delay_us = rng.range(0, 300) as u32;
                let pause_ms = rng.range(1, 20) as u32;
                (
                    strike(&mut rng, FaultKind::Stop { delay_us, pause_ms }),
                    None,
                )
            }
            FaultMode::Storm => (None, Some(rng.range(100, 1000) as u32)),
        };
        Schedule {
            primitive,
            processes,
            strike,
            storm_us,
        }
    }

    /// The steps of every process together.
    pub fn steps(&self) -> usize {
        self.processes.iter().map(|p| p.steps.len()).sum()
    }
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:", self.primitive)?;
        for (i, p) in self.processes.iter().enumerate() {
            write!(f, "\n  process {i} ({:?}): {:?}", p.role, p.steps)?;
        }
        if let Some(s) = self.strike {
            write!(
                f,
                "\n  fault: {:?} on process {} from its step {}",
                s.kind, s.process, s.at_step
            )?;
        }
        if let Some(us) = self.storm_us {
            write!(f, "\n  signal storm: SIGALRM every {us} us")?;
        }
        Ok(())
    }
}

/// An answer as recorded, before it is put in the model's words.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Reply<A> {
    Answer(A),
    /// `Error::Closed`.
    Closed,
    /// An answer the model cannot state (see the module docs).
    NoClaim,
    /// Anything else: the run is broken.
    Unexpected(String),
}

/// How the operations and answers of every model are journalled here.
trait Code: Sized {
    fn enc(&self) -> Vec<u8>;
    fn dec(bytes: &[u8]) -> Option<Self>;
}

impl Code for QueueOp {
    fn enc(&self) -> Vec<u8> {
        self.to_wire()
    }
    fn dec(bytes: &[u8]) -> Option<Self> {
        Self::from_wire(bytes)
    }
}

impl Code for QueueAnswer {
    fn enc(&self) -> Vec<u8> {
        self.to_wire()
    }
    fn dec(bytes: &[u8]) -> Option<Self> {
        Self::from_wire(bytes)
    }
}

fn words(bytes: &[u8]) -> Option<(u8, u64, u64)> {
    let (&tag, rest) = bytes.split_first()?;
    let a = u64::from_le_bytes(rest.get(..8)?.try_into().ok()?);
    let b = u64::from_le_bytes(rest.get(8..16)?.try_into().ok()?);
    Some((tag, a, b))
}

fn enc_words(tag: u8, a: u64, b: u64) -> Vec<u8> {
    [
        vec![tag],
        a.to_le_bytes().to_vec(),
        b.to_le_bytes().to_vec(),
    ]
    .concat()
}

impl Code for TaskOp {
    fn enc(&self) -> Vec<u8> {
        match *self {
            TaskOp::Put(v) => enc_words(0, v, 0),
            TaskOp::Get => enc_words(1, 0, 0),
            TaskOp::TaskDone => enc_words(2, 0, 0),
            TaskOp::Join => enc_words(3, 0, 0),
        }
    }
    fn dec(bytes: &[u8]) -> Option<Self> {
        Some(match words(bytes)? {
            (0, v, _) => TaskOp::Put(v),
            (1, ..) => TaskOp::Get,
            (2, ..) => TaskOp::TaskDone,
            (3, ..) => TaskOp::Join,
            _ => return None,
        })
    }
}

impl Code for TaskAnswer {
    fn enc(&self) -> Vec<u8> {
        match *self {
            TaskAnswer::Ok => enc_words(0, 0, 0),
            TaskAnswer::Value(v) => enc_words(1, v, 0),
            TaskAnswer::TooManyTaskDone => enc_words(2, 0, 0),
        }
    }
    fn dec(bytes: &[u8]) -> Option<Self> {
        Some(match words(bytes)? {
            (0, ..) => TaskAnswer::Ok,
            (1, v, _) => TaskAnswer::Value(v),
            (2, ..) => TaskAnswer::TooManyTaskDone,
            _ => return None,
        })
    }
}

impl Code for ChannelOp {
    fn enc(&self) -> Vec<u8> {
        match *self {
            ChannelOp::Send { from, value } => enc_words(0, from as u64, value),
            ChannelOp::Recv => enc_words(1, 0, 0),
            ChannelOp::TryRecv => enc_words(2, 0, 0),
        }
    }
    fn dec(bytes: &[u8]) -> Option<Self> {
        Some(match words(bytes)? {
            (0, from, value) => ChannelOp::Send {
                from: usize::try_from(from).ok()?,
                value,
            },
            (1, ..) => ChannelOp::Recv,
            (2, ..) => ChannelOp::TryRecv,
            _ => return None,
        })
    }
}

impl Code for ChannelAnswer {
    fn enc(&self) -> Vec<u8> {
        match *self {
            ChannelAnswer::Ok => enc_words(0, 0, 0),
            ChannelAnswer::Value { from, value } => enc_words(1, from as u64, value),
            ChannelAnswer::Empty => enc_words(2, 0, 0),
        }
    }
    fn dec(bytes: &[u8]) -> Option<Self> {
        Some(match words(bytes)? {
            (0, ..) => ChannelAnswer::Ok,
            (1, from, value) => ChannelAnswer::Value {
                from: usize::try_from(from).ok()?,
                value,
            },
            (2, ..) => ChannelAnswer::Empty,
            _ => return None,
        })
    }
}

/// An operation as journalled.
#[derive(Debug, Clone)]
struct In<I>(I);

impl<I: Code> Wire for In<I> {
    fn to_wire(&self) -> Vec<u8> {
        self.0.enc()
    }
    fn from_wire(bytes: &[u8]) -> Option<Self> {
        I::dec(bytes).map(In)
    }
}

impl<A: Code> Wire for Reply<A> {
    fn to_wire(&self) -> Vec<u8> {
        match self {
            Reply::Answer(a) => [vec![0], a.enc()].concat(),
            Reply::Closed => vec![1],
            Reply::NoClaim => vec![2],
            Reply::Unexpected(why) => [vec![3], why.as_bytes().to_vec()].concat(),
        }
    }

    fn from_wire(bytes: &[u8]) -> Option<Self> {
        let (&tag, rest) = bytes.split_first()?;
        Some(match tag {
            0 => Reply::Answer(A::dec(rest)?),
            1 => Reply::Closed,
            2 => Reply::NoClaim,
            3 => Reply::Unexpected(String::from_utf8_lossy(rest).into_owned()),
            _ => return None,
        })
    }
}

/// How a process of a run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProcessEnd {
    /// It did every step and exited.
    Exited,
    /// `SIGKILL` ended it.
    Killed,
    /// It panicked, hung, or died of something else: why.
    Failed(String),
}

/// What one process of a run did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessReport {
    /// Its role.
    pub role: Role,
    /// Steps planned.
    pub planned: usize,
    /// Operations it began (all of them, unless it was killed).
    pub started: usize,
    /// Operations that returned.
    pub returned: usize,
    /// How it ended.
    pub end: ProcessEnd,
    /// Whether a stop struck it (a kill shows in [`end`](Self::end)).
    pub stopped: bool,
    /// Storm signals it caught.
    pub storm_signals: u64,
}

/// A recorded history in its model's words, with the model.
#[derive(Debug, Clone)]
pub enum RecordedHistory {
    /// A queue's.
    Queue {
        /// The model.
        model: QueueModel,
        /// The history.
        history: History<QueueOp, QueueAnswer>,
    },
    /// A `JoinableQueue`'s.
    Tasks {
        /// The model.
        model: TasksModel,
        /// The history.
        history: History<TaskOp, TaskAnswer>,
    },
    /// A pipe's, duplex's or FIFO's.
    Channel {
        /// The model.
        model: ChannelModel,
        /// The history.
        history: History<ChannelOp, ChannelAnswer>,
    },
}

impl RecordedHistory {
    /// Operations in it.
    pub fn len(&self) -> usize {
        match self {
            RecordedHistory::Queue { history, .. } => history.len(),
            RecordedHistory::Tasks { history, .. } => history.len(),
            RecordedHistory::Channel { history, .. } => history.len(),
        }
    }

    /// True if it has no operation.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Operations in it that never returned.
    pub fn pending(&self) -> usize {
        fn count<I, O>(h: &History<I, O>) -> usize {
            h.ops.iter().filter(|o| o.is_pending()).count()
        }
        match self {
            RecordedHistory::Queue { history, .. } => count(history),
            RecordedHistory::Tasks { history, .. } => count(history),
            RecordedHistory::Channel { history, .. } => count(history),
        }
    }
}

/// A run, recorded: what [`check`](check()) judges.
#[derive(Debug, Clone)]
pub struct Recorded {
    /// The plan.
    pub plan: Plan,
    /// What it made of the primitive.
    pub schedule: Schedule,
    /// Each process, in schedule order.
    pub processes: Vec<ProcessReport>,
    /// The history to check.
    pub history: RecordedHistory,
    /// Operations recorded but left out of the history: answers that claim
    /// nothing the model can state.
    pub dropped: usize,
    /// Answers no correct primitive gives, in words (the run is broken).
    pub unexpected: Vec<String>,
}

/// What [`check`](check()) makes of a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Judgement {
    /// Linearizable.
    Linearizable,
    /// Not linearizable: the minimal counterexample, in words.
    Violation {
        /// The counterexample.
        counterexample: String,
    },
    /// The checker ran out of its budget.
    Unknown {
        /// Configurations explored.
        explored: u64,
    },
    /// The run broke its contract outside the model: an unexpected error,
    /// a process that panicked or hung.
    Broken {
        /// Why.
        why: String,
    },
}

impl Judgement {
    /// True for [`Judgement::Linearizable`].
    pub fn is_linearizable(&self) -> bool {
        *self == Judgement::Linearizable
    }
}

/// The verdict on one run, one line when displayed (`{:#}` adds the
/// schedule and any counterexample).
#[derive(Debug, Clone)]
pub struct Report {
    /// The primitive.
    pub primitive: Primitive,
    /// The plan.
    pub plan: Plan,
    /// Each process.
    pub processes: Vec<ProcessReport>,
    /// Steps planned.
    pub planned: usize,
    /// Operations recorded (begun).
    pub ops: usize,
    /// Of those, never returned (struck by a kill).
    pub pending: usize,
    /// Of those, left out of the checked history.
    pub dropped: usize,
    /// Operations in the checked history.
    pub checked: usize,
    /// The verdict.
    pub judgement: Judgement,
    /// The schedule, in words.
    pub schedule: String,
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let verdict = match &self.judgement {
            Judgement::Linearizable => "linearizable".to_string(),
            Judgement::Violation { .. } => "NOT LINEARIZABLE".to_string(),
            Judgement::Unknown { explored } => format!("unknown after {explored} configurations"),
            Judgement::Broken { why } => format!("BROKEN: {why}"),
        };
        write!(
            f,
            "{:<9} seed {:#018x} {:<5} {:>3} ops ({} pending, {} left out): {verdict}",
            self.primitive.name(),
            self.plan.seed,
            self.plan.faults.name(),
            self.ops,
            self.pending,
            self.dropped,
        )?;
        if f.alternate() {
            write!(f, "\n{}", self.schedule)?;
            if let Judgement::Violation { counterexample } = &self.judgement {
                write!(f, "\n{counterexample}")?;
            }
        }
        Ok(())
    }
}

/// Records and checks one run of `plan` on `primitive`.
pub fn run(primitive: Primitive, plan: &Plan) -> Result<Report> {
    Ok(check(&record(primitive, plan)?))
}

/// Judges a recorded run.
pub fn check(recorded: &Recorded) -> Report {
    let broken = broken(recorded);
    let judgement = match broken {
        Some(why) => Judgement::Broken { why },
        None => match &recorded.history {
            RecordedHistory::Queue { model, history } => judge(model, history),
            RecordedHistory::Tasks { model, history } => judge(model, history),
            RecordedHistory::Channel { model, history } => judge(model, history),
        },
    };
    let ops: usize = recorded.processes.iter().map(|p| p.started).sum();
    let returned: usize = recorded.processes.iter().map(|p| p.returned).sum();
    Report {
        primitive: recorded.schedule.primitive,
        plan: recorded.plan,
        processes: recorded.processes.clone(),
        planned: recorded.schedule.steps(),
        ops,
        pending: ops - returned,
        dropped: recorded.dropped,
        checked: recorded.history.len(),
        judgement,
        schedule: recorded.schedule.to_string(),
    }
}

/// A picture of a recorded run: its history, and either the order the
/// checker found or the counterexample highlighted (see
/// [`svg`](super::svg)). Checks the history again to find them.
///
/// ```no_run
/// use ipc_harness::harness::history::{scenarios, svg};
/// use ipc_harness::harness::history::scenarios::{FaultMode, Plan, Primitive};
///
/// let recorded = scenarios::record(Primitive::Pipe, &Plan::new(1, FaultMode::Kill))?;
/// std::fs::write("pipe.svg", svg::svg(&scenarios::drawing(&recorded)))?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn drawing(recorded: &Recorded) -> super::svg::Drawing {
    fn draw<M: Model>(model: &M, history: &History<M::Input, M::Output>) -> super::svg::Drawing {
        super::svg::Drawing::from_verdict(model, history, &super::check(model, history))
    }
    let mut d = match &recorded.history {
        RecordedHistory::Queue { model, history } => draw(model, history),
        RecordedHistory::Tasks { model, history } => draw(model, history),
        RecordedHistory::Channel { model, history } => draw(model, history),
    };
    d.title = format!(
        "{}, {}: {}",
        recorded.schedule.primitive, recorded.plan, d.title
    );
    d
}

fn judge<M: Model>(model: &M, history: &History<M::Input, M::Output>) -> Judgement {
    match super::check(model, history) {
        Verdict::Linearizable(_) => Judgement::Linearizable,
        Verdict::Violation(c) => Judgement::Violation {
            counterexample: c.explanation,
        },
        Verdict::Unknown { explored } => Judgement::Unknown { explored },
    }
}

fn broken(recorded: &Recorded) -> Option<String> {
    if let Some(first) = recorded.unexpected.first() {
        return Some(format!(
            "{} unexpected answer(s), first: {first}",
            recorded.unexpected.len()
        ));
    }
    let victim = recorded
        .schedule
        .strike
        .filter(|s| s.kind.kills())
        .map(|s| s.process);
    for (i, p) in recorded.processes.iter().enumerate() {
        match &p.end {
            ProcessEnd::Failed(why) => return Some(format!("process {i} ({:?}) {why}", p.role)),
            ProcessEnd::Killed if victim != Some(i) => {
                return Some(format!("process {i} ({:?}) was killed", p.role));
            }
            ProcessEnd::Exited if victim == Some(i) => {
                return Some(format!("process {i} ({:?}) outlived its kill", p.role));
            }
            _ => {}
        }
    }
    None
}

// ---- Recording ----

/// Records one run of `plan` on `primitive` (forks its processes, waits
/// for them, gathers their journals). An `Err` is a failure to set the run
/// up (fork, memfd, creating the primitive), not a verdict.
pub fn record(primitive: Primitive, plan: &Plan) -> Result<Recorded> {
    record_on(primitive, plan, None)
}

/// Records `plan` on `queue`, a queue made with whatever
/// [builder](crate::queue::QueueBuilder) options (a ring size, say), as
/// [`record`] does on the [`Primitive::Queue`] of the same bound. The queue
/// must be new: empty, and not yet shared with another process.
pub fn record_on_queue(queue: Queue, plan: &Plan) -> Result<Recorded> {
    let primitive = Primitive::Queue {
        max_items: queue.max_items(),
    };
    record_on(primitive, plan, Some(queue))
}

fn record_on(primitive: Primitive, plan: &Plan, queue: Option<Queue>) -> Result<Recorded> {
    let schedule = Schedule::new(primitive, plan);
    let journals = (0..schedule.processes.len())
        .map(|_| Journal::new().map_err(|e| Error::io("memfd_create", e)))
        .collect::<Result<Vec<_>>>()?;
    let serial = fork::serial();
    let (history, processes, dropped, unexpected) = match primitive {
        Primitive::Queue { max_items } => {
            let q = match (queue, max_items) {
                (Some(q), _) => q,
                (None, Some(n)) => Queue::bounded(n)?,
                (None, None) => Queue::new()?,
            };
            let children = spawn_all(&schedule, &journals, |p, j| {
                queue_process(&q, &schedule, p, j)
            });
            q.close_producer();
            q.close_consumer();
            drop(q);
            drop(serial);
            let (h, processes) = gather::<QueueOp, QueueAnswer>(&schedule, &journals, children?)?;
            let (history, dropped, unexpected) = convert(h, |op, reply| match reply {
                Reply::Closed
                    if matches!(op, QueueOp::Get | QueueOp::TryGet | QueueOp::GetTimeout) =>
                {
                    Keep::Op(QueueOp::TryGet, QueueAnswer::Empty)
                }
                _ => Keep::Drop,
            });
            let model = QueueModel { max_items };
            (
                RecordedHistory::Queue { model, history },
                processes,
                dropped,
                unexpected,
            )
        }
        Primitive::JoinableQueue => {
            let q = JoinableQueue::new()?;
            let children = spawn_all(&schedule, &journals, |p, j| {
                joinable_process(&q, &schedule, p, j)
            });
            q.close_producer();
            q.close_consumer();
            drop(q);
            drop(serial);
            let (h, processes) = gather::<TaskOp, TaskAnswer>(&schedule, &journals, children?)?;
            let (history, dropped, unexpected) = convert(h, |_, _| Keep::Drop);
            let model = TasksModel;
            (
                RecordedHistory::Tasks { model, history },
                processes,
                dropped,
                unexpected,
            )
        }
        Primitive::Pipe
        | Primitive::Duplex
        | Primitive::DuplexPipes
        | Primitive::Fifo
        | Primitive::FifoChunked => {
            let ends = RefCell::new(Ends::new(primitive)?);
            let children = spawn_all(&schedule, &journals, |p, j| {
                channel_process(&ends, &schedule, p, j)
            });
            // The parent's ends go; a FIFO's path stays until every writer
            // has opened it.
            let mut ends = ends.into_inner();
            let _fifo = ends.fifo.take().map(|(fifo, holder, _)| {
                drop(holder);
                fifo
            });
            drop(ends);
            drop(serial);
            let (h, processes) =
                gather::<ChannelOp, ChannelAnswer>(&schedule, &journals, children?)?;
            let (history, dropped, unexpected) = convert(h, |op, reply| match (op, reply) {
                (ChannelOp::Recv | ChannelOp::TryRecv, Reply::Closed) => {
                    Keep::Op(ChannelOp::TryRecv, ChannelAnswer::Empty)
                }
                _ => Keep::Drop,
            });
            let model = ChannelModel;
            (
                RecordedHistory::Channel { model, history },
                processes,
                dropped,
                unexpected,
            )
        }
    };
    Ok(Recorded {
        plan: *plan,
        schedule,
        processes,
        history,
        dropped,
        unexpected,
    })
}

fn spawn_all(
    schedule: &Schedule,
    journals: &[Journal],
    mut body: impl FnMut(usize, &Journal) -> Vec<u8>,
) -> Result<Vec<fork::Child>> {
    let mut children = Vec::new();
    for (p, journal) in journals.iter().enumerate().take(schedule.processes.len()) {
        let body = &mut body;
        children.push(fork::spawn(move || body(p, journal))?);
    }
    Ok(children)
}

/// The deadline of a whole run, and how long every process may sit
/// blocked with no journal moving before the run counts as hung.
const DEADLINE: Duration = Duration::from_secs(30);
const STALL: Duration = Duration::from_secs(3);

type Gathered<I, A> = (History<In<I>, Reply<A>>, Vec<ProcessReport>);

fn gather<I: Code + Clone, A: Code + Clone>(
    schedule: &Schedule,
    journals: &[Journal],
    children: Vec<fork::Child>,
) -> Result<Gathered<I, A>> {
    let reports = fork::wait_all_with(
        children,
        WaitOptions {
            timeout: DEADLINE,
            stall: Some(STALL),
        },
        || journals.iter().map(|j| j.len().unwrap_or(0)).sum(),
    )?;
    let pairs: Vec<(usize, &Journal)> = journals.iter().enumerate().collect();
    let history: History<In<I>, Reply<A>> =
        History::from_journals(&pairs).map_err(|e| Error::io("read a journal", e))?;
    let processes = reports
        .into_iter()
        .enumerate()
        .map(|(p, report)| {
            let mine = history.ops.iter().filter(|o| o.process == p);
            let started = mine.clone().count();
            let returned = mine.filter(|o| !o.is_pending()).count();
            let (stopped, storm_signals) = match report.output.as_slice() {
                [s, runs @ ..] if runs.len() == 8 => {
                    (*s != 0, u64::from_le_bytes(runs.try_into().expect("8")))
                }
                _ => (false, 0),
            };
            let end = match &report.outcome {
                Outcome::Exited(0) => ProcessEnd::Exited,
                Outcome::Signaled(libc::SIGKILL) => ProcessEnd::Killed,
                other => ProcessEnd::Failed(other.to_string()),
            };
            ProcessReport {
                role: schedule.processes[p].role,
                planned: schedule.processes[p].steps.len(),
                started,
                returned,
                end,
                stopped,
                storm_signals,
            }
        })
        .collect();
    Ok((history, processes))
}

enum Keep<I, A> {
    Op(I, A),
    Drop,
}

/// Puts the recorded answers in the model's words: `closed` says what a
/// `Closed` or no-claim answer becomes.
fn convert<I: Clone, A: Clone>(
    recorded: History<In<I>, Reply<A>>,
    closed: impl Fn(&I, &Reply<A>) -> Keep<I, A>,
) -> (History<I, A>, usize, Vec<String>) {
    let mut history = History::new();
    let (mut dropped, mut unexpected) = (0, Vec::new());
    for op in recorded.ops {
        let In(input) = op.input;
        let (input, output) = match op.output {
            None => {
                history.push_pending(op.process, input, op.call);
                continue;
            }
            Some(Reply::Answer(a)) => (input, a),
            Some(Reply::Unexpected(why)) => {
                unexpected.push(format!("process {}: {why}", op.process));
                continue;
            }
            Some(other) => match closed(&input, &other) {
                Keep::Op(i, a) => (i, a),
                Keep::Drop => {
                    dropped += 1;
                    continue;
                }
            },
        };
        let ret = op.ret.expect("an answered operation returned");
        history.push(op.process, input, output, op.call, ret);
    }
    (history, dropped, unexpected)
}

/// The storm of a process: lasts until dropped.
struct Storm {
    _handler: crate::sys::SavedAction,
}

impl Storm {
    fn start(interval: Duration) -> Option<Storm> {
        let handler = crate::sys::install_noop_handler(libc::SIGALRM).ok()?;
        crate::sys::set_interval_timer(interval).ok()?;
        Some(Storm { _handler: handler })
    }
}

impl Drop for Storm {
    fn drop(&mut self) {
        let _ = crate::sys::set_interval_timer(Duration::ZERO);
    }
}

/// A helper process that kills or stops (then continues) its parent after
/// a delay, and always strikes: the parent waits for it.
struct Helper {
    pid: crate::sys::Pid,
}

impl Helper {
    fn start(kind: FaultKind) -> Option<Helper> {
        let (delay_us, pause_ms, stop) = match kind {
            FaultKind::KillDuring { delay_us } => (delay_us, 0, false),
            FaultKind::Stop { delay_us, pause_ms } => (delay_us, pause_ms, true),
            _ => return None,
        };
        let victim = crate::sys::getpid();
        // The helper only sleeps and signals. It dies with the victim
        // (PR_SET_PDEATHSIG), and a victim that lives waits for it to exit,
        // so the victim's pid cannot have been reused when a signal goes.
        let pid = crate::sys::fork_run(move || {
            std::thread::sleep(Duration::from_micros(delay_us.into()));
            if stop {
                let _ = crate::sys::kill(victim, libc::SIGSTOP);
                std::thread::sleep(Duration::from_millis(pause_ms.into()));
                let _ = crate::sys::kill(victim, libc::SIGCONT);
            } else {
                let _ = crate::sys::kill(victim, libc::SIGKILL);
            }
            0
        })
        .ok()?;
        Some(Helper { pid })
    }

    /// Waits for the helper to have struck and exited; true if it did.
    fn wait(self) -> bool {
        matches!(
            crate::sys::waitpid(self.pid, true),
            Ok(Some(crate::sys::ExitStatus::Code(0)))
        )
    }
}

/// Runs process `me`'s steps under its faults; returns `[stopped][storm
/// signals: u64 LE]`.
fn drive(me: usize, schedule: &Schedule, mut step: impl FnMut(usize, Step)) -> Vec<u8> {
    let storm_runs = crate::sys::noop_handler_runs();
    let storm = schedule
        .storm_us
        .and_then(|us| Storm::start(Duration::from_micros(us.into())));
    let strike = schedule.strike.filter(|s| s.process == me);
    let mut helper = None;
    for (i, &s) in schedule.processes[me].steps.iter().enumerate() {
        if let Some(strike) = strike.filter(|s| s.at_step == i) {
            helper = Helper::start(strike.kind);
        }
        step(i, s);
    }
    let mut stopped = false;
    if let (Some(strike), Some(helper)) = (strike, helper) {
        if strike.kind.kills() {
            // The steps were quicker than the kill: wait for it.
            loop {
                std::thread::sleep(Duration::from_secs(1));
            }
        }
        stopped = helper.wait();
    }
    drop(storm);
    let runs = crate::sys::noop_handler_runs() - storm_runs;
    [vec![u8::from(stopped)], runs.to_le_bytes().to_vec()].concat()
}

fn value_of(role: Role, i: usize) -> u64 {
    match role {
        Role::Producer(p) => ((p as u64) << 32) | i as u64,
        _ => unreachable!("only producers put"),
    }
}

fn reply_of_put<A>(r: Result<()>, ok: A, full: Option<A>, timeout: Option<A>) -> Reply<A> {
    match r {
        Ok(()) => Reply::Answer(ok),
        Err(Error::Full) if full.is_some() => Reply::Answer(full.expect("checked")),
        Err(Error::Timeout) if timeout.is_some() => Reply::Answer(timeout.expect("checked")),
        Err(Error::Closed) => Reply::Closed,
        Err(e) => Reply::Unexpected(format!("a put answered: {e}")),
    }
}

/// The value in a message, or why it is not one.
fn message_value<A>(r: Result<Vec<u8>>) -> std::result::Result<u64, Reply<A>> {
    match r {
        Ok(bytes) => match <[u8; 8]>::try_from(bytes.as_slice()) {
            Ok(b) => Ok(u64::from_le_bytes(b)),
            Err(_) => Err(Reply::Unexpected(format!(
                "a message of {} bytes (all are 8)",
                bytes.len()
            ))),
        },
        Err(Error::Closed) => Err(Reply::Closed),
        Err(e) => Err(Reply::Unexpected(format!("a get answered: {e}"))),
    }
}

fn queue_process(q: &Queue, schedule: &Schedule, me: usize, journal: &Journal) -> Vec<u8> {
    let role = schedule.processes[me].role;
    match role {
        Role::Producer(_) => q.close_consumer(),
        Role::Consumer => q.close_producer(),
        _ => {
            q.close_producer();
            q.close_consumer();
        }
    }
    let mut r = Recorder::new(journal);
    use QueueAnswer as A;
    drive(me, schedule, |i, step| match step {
        Step::Put(mode) => {
            let v = value_of(role, i);
            let msg = v.to_le_bytes();
            let _: Reply<A> = match mode {
                Mode::Blocking => r.record(&In(QueueOp::Put(v)), || {
                    reply_of_put(q.put_bytes(&msg), A::Ok, None, None)
                }),
                Mode::Try => r.record(&In(QueueOp::TryPut(v)), || {
                    reply_of_put(q.try_put_bytes(&msg), A::Ok, Some(A::Full), None)
                }),
                Mode::Timeout(t) => r.record(&In(QueueOp::PutTimeout(v)), || {
                    reply_of_put(q.put_bytes_timeout(&msg, t), A::Ok, None, Some(A::Timeout))
                }),
            };
        }
        Step::Get(mode) => {
            let (op, got) = match mode {
                Mode::Blocking => (QueueOp::Get, None),
                Mode::Try => (QueueOp::TryGet, Some(A::Empty)),
                Mode::Timeout(_) => (QueueOp::GetTimeout, Some(A::Timeout)),
            };
            let _: Reply<A> = r.record(&In(op), || {
                let result = match mode {
                    Mode::Blocking => q.get_bytes(),
                    Mode::Try => q.try_get_bytes(),
                    Mode::Timeout(t) => q.get_bytes_timeout(t),
                };
                match result {
                    Err(Error::Empty) if mode == Mode::Try => Reply::Answer(A::Empty),
                    Err(Error::Timeout) if got == Some(A::Timeout) => Reply::Answer(A::Timeout),
                    other => match message_value(other) {
                        Ok(v) => Reply::Answer(A::Value(v)),
                        Err(reply) => reply,
                    },
                }
            });
        }
        Step::Len => {
            let _: Reply<A> = r.record(&In(QueueOp::Len), || Reply::Answer(A::Len(q.len())));
        }
        Step::IsEmpty => {
            let _: Reply<A> = r.record(&In(QueueOp::IsEmpty), || {
                Reply::Answer(A::Bool(q.is_empty()))
            });
        }
        Step::IsFull => {
            let _: Reply<A> =
                r.record(&In(QueueOp::IsFull), || Reply::Answer(A::Bool(q.is_full())));
        }
        Step::TaskDone | Step::Join(_) => unreachable!("not a queue step"),
    })
}

fn joinable_process(
    q: &JoinableQueue,
    schedule: &Schedule,
    me: usize,
    journal: &Journal,
) -> Vec<u8> {
    let role = schedule.processes[me].role;
    match role {
        Role::Producer(_) => q.close_consumer(),
        Role::Consumer => q.close_producer(),
        _ => {
            q.close_producer();
            q.close_consumer();
        }
    }
    let mut r = Recorder::new(journal);
    use TaskAnswer as A;
    drive(me, schedule, |i, step| {
        let _: Reply<A> = match step {
            Step::Put(_) => {
                let v = value_of(role, i);
                r.record(&In(TaskOp::Put(v)), || {
                    reply_of_put(q.put_bytes(&v.to_le_bytes()), A::Ok, None, None)
                })
            }
            Step::Get(mode) => r.record(&In(TaskOp::Get), || {
                let result = match mode {
                    Mode::Blocking => q.get_bytes(),
                    Mode::Try => q.try_get_bytes(),
                    Mode::Timeout(t) => q.get_bytes_timeout(t),
                };
                match result {
                    Err(Error::Empty) if mode == Mode::Try => Reply::NoClaim,
                    Err(Error::Timeout) if matches!(mode, Mode::Timeout(_)) => Reply::NoClaim,
                    other => match message_value(other) {
                        Ok(v) => Reply::Answer(A::Value(v)),
                        Err(reply) => reply,
                    },
                }
            }),
            Step::TaskDone => r.record(&In(TaskOp::TaskDone), || match q.task_done() {
                Ok(()) => Reply::Answer(A::Ok),
                Err(Error::TaskDoneTooManyTimes) => Reply::Answer(A::TooManyTaskDone),
                Err(e) => Reply::Unexpected(format!("task_done answered: {e}")),
            }),
            Step::Join(t) => r.record(&In(TaskOp::Join), || match q.join_timeout(t) {
                Ok(()) => Reply::Answer(A::Ok),
                Err(Error::JoinTimeout { .. }) => Reply::NoClaim,
                Err(e) => Reply::Unexpected(format!("join_timeout answered: {e}")),
            }),
            _ => unreachable!("not a joinable queue step"),
        };
    })
}

/// A channel's ends in the parent, before the fork; each child takes its
/// own and drops the rest, so that end of stream depends on the children
/// alone.
struct Ends {
    tx: Option<Tx>,
    rx: Option<Rx>,
    /// A FIFO: the creator's handle, and a write end held until every
    /// writer has opened its own (so the reader cannot see end of stream
    /// before the last writer came).
    fifo: Option<(Fifo, FifoWriter, FifoOptions)>,
}

enum Tx {
    Pipe(Sender),
    Duplex(Connection),
    DuplexPipes(PipeConnection),
    Fifo(FifoWriter),
}

enum Rx {
    Pipe(Receiver),
    Duplex(Connection),
    DuplexPipes(PipeConnection),
    Fifo(FifoReader),
}

static FIFO_COUNT: AtomicU64 = AtomicU64::new(0);

impl Ends {
    fn new(primitive: Primitive) -> Result<Ends> {
        Ok(match primitive {
            Primitive::Pipe => {
                let (tx, rx) = crate::pipe()?;
                Ends {
                    tx: Some(Tx::Pipe(tx)),
                    rx: Some(Rx::Pipe(rx)),
                    fifo: None,
                }
            }
            Primitive::Duplex => {
                let (a, b) = crate::duplex()?;
                Ends {
                    tx: Some(Tx::Duplex(a)),
                    rx: Some(Rx::Duplex(b)),
                    fifo: None,
                }
            }
            Primitive::DuplexPipes => {
                let (a, b) = crate::duplex_pipes()?;
                Ends {
                    tx: Some(Tx::DuplexPipes(a)),
                    rx: Some(Rx::DuplexPipes(b)),
                    fifo: None,
                }
            }
            Primitive::Fifo | Primitive::FifoChunked => {
                let options = FifoOptions::new()
                    .wait(Wait::NonBlocking)
                    .chunked(primitive == Primitive::FifoChunked);
                let path: PathBuf = std::env::temp_dir().join(format!(
                    "ipc-harness-history-{}-{}",
                    std::process::id(),
                    FIFO_COUNT.fetch_add(1, Ordering::Relaxed)
                ));
                let fifo = Fifo::create(&path)?;
                let rx = options.reader(&path)?;
                let holder = options.writer(&path)?;
                Ends {
                    tx: None,
                    rx: Some(Rx::Fifo(rx)),
                    fifo: Some((fifo, holder, options)),
                }
            }
            _ => unreachable!("not a channel"),
        })
    }
}

impl Tx {
    fn send(&self, msg: &[u8]) -> Result<()> {
        match self {
            Tx::Pipe(t) => t.send_bytes(msg),
            Tx::Duplex(t) => t.send_bytes(msg),
            Tx::DuplexPipes(t) => t.send_bytes(msg),
            Tx::Fifo(t) => t.send_bytes(msg),
        }
    }
}

impl Rx {
    fn recv(&mut self, timeout: Option<Duration>) -> Result<Vec<u8>> {
        match (self, timeout) {
            (Rx::Pipe(r), None) => r.recv_bytes(),
            (Rx::Pipe(r), Some(t)) => r.recv_bytes_timeout(t),
            (Rx::Duplex(r), None) => r.recv_bytes(),
            (Rx::Duplex(r), Some(t)) => r.recv_bytes_timeout(t),
            (Rx::DuplexPipes(r), None) => r.recv_bytes(),
            (Rx::DuplexPipes(r), Some(t)) => r.recv_bytes_timeout(t),
            (Rx::Fifo(r), None) => r.recv_bytes(),
            (Rx::Fifo(r), Some(t)) => r.recv_bytes_timeout(t),
        }
    }
}

fn channel_process(
    ends: &RefCell<Ends>,
    schedule: &Schedule,
    me: usize,
    journal: &Journal,
) -> Vec<u8> {
    let role = schedule.processes[me].role;
    let mut ends = ends.borrow_mut();
    let (tx, mut rx) = match role {
        Role::Producer(_) => {
            let tx = match ends.fifo.as_ref() {
                // Opened while this process still holds a read end, so it
                // never waits and never finds the reader gone.
                Some((fifo, _, options)) => Tx::Fifo(
                    options
                        .writer(fifo.path())
                        .expect("a writer opens while a reader holds the FIFO"),
                ),
                None => ends.tx.take().expect("a sender"),
            };
            (Some(tx), None)
        }
        _ => (None, Some(ends.rx.take().expect("a receiver"))),
    };
    // The ends that are not this process's.
    ends.tx = None;
    ends.rx = None;
    if let Some((fifo, holder, _)) = ends.fifo.take() {
        drop(holder);
        // The FIFO is removed by the parent's handle, not this copy.
        let _ = fifo.keep();
    }
    drop(ends);
    let mut r = Recorder::new(journal);
    use ChannelAnswer as A;
    drive(me, schedule, |i, step| {
        let _: Reply<A> = match step {
            Step::Put(_) => {
                let Role::Producer(from) = role else {
                    unreachable!("only producers send")
                };
                let value = value_of(role, i);
                let tx = tx.as_ref().expect("a sender");
                r.record(&In(ChannelOp::Send { from, value }), || {
                    reply_of_put(tx.send(&value.to_le_bytes()), A::Ok, None, None)
                })
            }
            Step::Get(mode) => {
                let rx = rx.as_mut().expect("a receiver");
                let (op, timeout) = match mode {
                    Mode::Blocking => (ChannelOp::Recv, None),
                    Mode::Try => (ChannelOp::TryRecv, Some(Duration::ZERO)),
                    Mode::Timeout(t) => (ChannelOp::TryRecv, Some(t)),
                };
                r.record(&In(op), || match rx.recv(timeout) {
                    Err(Error::Timeout) if timeout.is_some() => Reply::Answer(A::Empty),
                    other => match message_value(other) {
                        Ok(value) => Reply::Answer(A::Value {
                            from: (value >> 32) as usize,
                            value,
                        }),
                        Err(reply) => reply,
                    },
                })
            }
            _ => unreachable!("not a channel step"),
        };
    })
}
