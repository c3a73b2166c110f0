//! The cross-process benchmark behind `ipc-harness bench` and
//! `cargo run --release --example bench`: throughput and round-trip latency
//! of every primitive against the raw kernel transports (and, optionally,
//! Python's `multiprocessing`), measured in one run on one machine.
//!
//! # What is measured
//! - **Throughput** at [`SIZES`] (64 B, 4 KiB, 64 KiB, 1 MiB, 16 MiB): one
//!   or more forked producers send a fixed number of messages, one or more
//!   forked consumers receive them all. Messages per second and GB/s. The
//!   number of messages comes from a byte budget ([`Options::budget`]),
//!   clamped to a minimum and a maximum count, so a 16 MiB run does not take
//!   forever and a 64 B run is not over before the clock ticks.
//!   The cases are in [`Case`]: raw pipe (default 64 KiB capacity), raw pipe
//!   raised to 1 MiB, raw `SOCK_STREAM` socketpair, [`pipe()`](ipc_harness::pipe())
//!   (receiving into a reused buffer, and with `recv_bytes` allocating each
//!   message), [`duplex()`](ipc_harness::duplex()), [`Fifo`](ipc_harness::fifo::Fifo) (framed),
//!   [`Queue`] with 1 producer x 1 consumer and 2 x 2.
//! - **Scaling** ([`Case::SCALING`], on by default, `--no-scaling` skips
//!   it): [`Queue`] and [`JoinableQueue`](ipc_harness::JoinableQueue) with 8
//!   producers x 8 consumers, and a [`Fifo`](ipc_harness::fifo::Fifo) with 8 writers (each opening
//!   the path) and its one reader, at every size; each is divided by its
//!   1x1 form *of the same round* (the issue's target: at least 0.7x).
//! - **Peers** ([`Case::PEERS`], `--peers`, in a build with the `peers`
//!   cargo feature): `ipc-channel`'s bytes channel and `interprocess`'s
//!   unnamed pipe (framed as a user would: it has no framing), with an
//!   `ipc-channel` round trip; each primitive's ratio to the fastest peer of
//!   the round is a target ("ahead of every peer").
//! - **Round trip** of a 64-byte message (median and 99th percentile): a
//!   pinger sends, an echoer sends it back. Once with both processes free to
//!   run anywhere, once with both pinned to the same CPU: on these VMs a
//!   cross-core wake-up costs tens of microseconds, which hides the
//!   software's own cost; on one core what remains is the primitive's own
//!   work plus a context switch.
//!
//! # Method
//! - Every process is forked ([`fork::spawn`]); each does its set-up (opening
//!   a FIFO, pinning itself), reports ready, and waits for a "go" byte. The
//!   clock starts when the parent sends "go" and stops at the last
//!   consumer's last receive (`CLOCK_MONOTONIC`, one clock for all
//!   processes). Set-up and process exit are not timed.
//! - **Interleaved rounds**: each round runs every case once at every size
//!   (and every latency case), then the next round starts. Slow drift in
//!   machine load (other people compiling) then hits every case alike. Each
//!   round starts the list at a different case, so no case always runs
//!   first or after the same neighbour.
//! - **Medians** over the rounds, never means: one noisy round moves a mean
//!   and not a median.
//! - **Ratios within a round**: every figure is divided by the raw pipe's
//!   figure *from the same round* (and for the targets, by the best raw
//!   transport of that round, or by Python's equivalent of that round), and
//!   the table gives the median of those per-round ratios. A ratio is far
//!   steadier than the absolute numbers on a shared machine.
//! - No timing is ever asserted in a test: targets are checked here, in the
//!   report, and are the reader's to judge.
//!
//! # Example
//! ```no_run
//! use ipc_harness_cli::bench::{self, Options};
//!
//! let report = bench::run(&Options { quick: true, rounds: 1, ..Options::default() }, |_| {})?;
//! println!("{}", report.table());
//! println!("{}", report.to_json());
//! # Ok::<(), ipc_harness::Error>(())
//! ```

use std::fmt::Write as _;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use ipc_harness::error::{Error, Result};
use ipc_harness::fifo::FifoOptions;
use ipc_harness::harness::fork;
use ipc_harness::queue::Queue;
use ipc_harness::sys::{self, SocketKind};
use ipc_harness::{duplex, pipe};

/// The message sizes of the throughput table.
pub const SIZES: [usize; 5] = [64, 4 << 10, 64 << 10, 1 << 20, 16 << 20];

/// The size of the round-trip message.
pub const LATENCY_SIZE: usize = 64;

/// How long any one measurement may take before its processes are killed.
const MEASUREMENT_DEADLINE: Duration = Duration::from_secs(120);

/// What to run.
#[derive(Debug, Clone)]
pub struct Options {
    /// Interleaved rounds (medians are taken over them). Default 5.
    pub rounds: usize,
    /// CI-sized: a small byte budget and few round trips.
    pub quick: bool,
    /// Add Python's `multiprocessing` equivalents (needs `python3`).
    pub python: bool,
    /// Message sizes for the throughput table (default [`SIZES`]).
    pub sizes: Vec<usize>,
    /// Bytes each throughput measurement sends (before clamping the message
    /// count). `None`: 64 MiB, or 2 MiB with `quick`.
    pub budget: Option<usize>,
    /// Run the round-trip measurements too (default true).
    pub latency: bool,
    /// Run the scaling cases ([`Case::SCALING`]: 8 producers x 8 consumers
    /// for the queues, 8 writers for a FIFO) at every size (default true).
    pub scaling: bool,
    /// Add the peers ([`Case::PEERS`]: `ipc-channel`, `interprocess`) in
    /// the same rounds. Needs a build with the `peers` cargo feature;
    /// without it the report says so in a note and runs the rest.
    pub peers: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            rounds: 5,
            quick: false,
            python: false,
            sizes: SIZES.to_vec(),
            budget: None,
            latency: true,
            scaling: true,
            peers: false,
        }
    }
}

impl Options {
    fn budget_bytes(&self) -> usize {
        self.budget
            .unwrap_or(if self.quick { 2 << 20 } else { 64 << 20 })
    }

    /// How many messages of `size` bytes one measurement of `case` sends:
    /// [`messages`](Self::messages), rounded up to a multiple of the case's
    /// producers.
    pub fn messages_for(&self, case: Case, size: usize) -> usize {
        let p = case.producers();
        self.messages(size, case.is_python()).div_ceil(p) * p
    }

    /// How many messages of `size` bytes one measurement sends.
    pub fn messages(&self, size: usize, python: bool) -> usize {
        let (min, mut max) = if self.quick { (2, 2_000) } else { (8, 200_000) };
        if python {
            // Python is 5-10x slower per small message: keep its share of
            // the wall clock comparable.
            max /= 4;
        }
        // Even, so that 2 producers send the same number each.
        ((self.budget_bytes() / size.max(1)).clamp(min, max) + 1) & !1
    }

    fn round_trips(&self, pinned: bool, python: bool) -> usize {
        match (self.quick, pinned, python) {
            (true, _, _) => 300,
            (false, true, false) => 20_000,
            (false, false, false) => 5_000,
            (false, true, true) => 5_000,
            (false, false, true) => 2_000,
        }
    }
}

/// One throughput case: a transport and a topology.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Case {
    /// `pipe2`, default capacity, fixed-size `write`/`read` (no framing).
    RawPipe,
    /// `pipe2` raised to 1 MiB with `F_SETPIPE_SZ`, no framing.
    RawPipe1M,
    /// `socketpair(AF_UNIX, SOCK_STREAM)`, no framing.
    RawSocket,
    /// [`pipe()`](ipc_harness::pipe()), `recv_bytes_into` a reused buffer.
    Pipe,
    /// [`pipe()`](ipc_harness::pipe()), `recv_bytes` (a new `Vec` per message).
    PipeAlloc,
    /// [`duplex()`](ipc_harness::duplex()), `recv_bytes_into` a reused buffer.
    Duplex,
    /// [`Fifo`](ipc_harness::fifo::Fifo), framed, `recv_bytes_into`.
    Fifo,
    /// [`Fifo`](ipc_harness::fifo::Fifo) in [small-messages mode](ipc_harness::fifo::FifoOptions::small_messages)
    /// (no lock per send; messages of at most
    /// [`SMALL_MESSAGE_MAX`](ipc_harness::fifo::SMALL_MESSAGE_MAX) bytes, so run at
    /// those sizes only).
    FifoSmall,
    /// [`Queue`], 1 producer x 1 consumer.
    Queue1x1,
    /// [`Queue`], 2 producers x 2 consumers.
    Queue2x2,
    /// [`JoinableQueue`](ipc_harness::JoinableQueue), 1 x 1, `task_done` per item,
    /// the producer joins at the end.
    Joinable1x1,
    /// [`Queue`], 8 producers x 8 consumers (the scaling run).
    Queue8x8,
    /// [`JoinableQueue`](ipc_harness::JoinableQueue), 8 x 8, `task_done` per item,
    /// every producer joins at the end (the scaling run).
    Joinable8x8,
    /// [`Fifo`](ipc_harness::fifo::Fifo), framed, 8 writers (each opening the path) x 1 reader (the
    /// scaling run: a FIFO has one reader by design).
    Fifo8x1,
    /// `ipc-channel`'s `ipc::bytes_channel()`: `IpcBytesSender::send`,
    /// `IpcBytesReceiver::recv` (a new `Vec` per message). A peer, with
    /// [`Options::peers`] and the `peers` cargo feature.
    IpcChannel,
    /// `interprocess`'s `unnamed_pipe::pipe()`, which has no message
    /// framing: each message goes out as one `write_all` of a 4-byte length
    /// and the payload (built in a reused buffer), and is read back through
    /// a 64 KiB `BufReader` with two `read_exact`s into a reused buffer, as
    /// a user of the crate would frame it. A peer, like [`Case::IpcChannel`].
    Interprocess,
    /// Python `multiprocessing.Pipe()`, `send_bytes`/`recv_bytes`.
    PyPipe,
    /// Python `multiprocessing.Queue`, 1 x 1.
    PyQueue1x1,
    /// Python `multiprocessing.Queue`, 2 x 2.
    PyQueue2x2,
    /// Python `multiprocessing.JoinableQueue`, 1 x 1, `task_done` per item.
    PyJoinable1x1,
}

impl Case {
    /// The cases this crate runs itself, in table order.
    pub const RUST: [Case; 11] = [
        Case::RawPipe,
        Case::RawPipe1M,
        Case::RawSocket,
        Case::Pipe,
        Case::PipeAlloc,
        Case::Duplex,
        Case::Fifo,
        Case::FifoSmall,
        Case::Queue1x1,
        Case::Queue2x2,
        Case::Joinable1x1,
    ];
    /// The Python cases (with [`Options::python`]).
    pub const PYTHON: [Case; 4] = [
        Case::PyPipe,
        Case::PyQueue1x1,
        Case::PyQueue2x2,
        Case::PyJoinable1x1,
    ];
    /// The scaling cases (with [`Options::scaling`]), each compared with its
    /// 1x1 form ([`Case::scales`]) of the same round.
    pub const SCALING: [Case; 3] = [Case::Queue8x8, Case::Joinable8x8, Case::Fifo8x1];
    /// The other crates (with [`Options::peers`], in a build with the
    /// `peers` feature).
    pub const PEERS: [Case; 2] = [Case::IpcChannel, Case::Interprocess];
    /// The raw transports: the "best raw" of a round is the fastest of these.
    pub const RAW: [Case; 3] = [Case::RawPipe, Case::RawPipe1M, Case::RawSocket];

    /// The row label.
    pub fn label(self) -> &'static str {
        match self {
            Case::RawPipe => "raw pipe (64 KiB)",
            Case::RawPipe1M => "raw pipe (1 MiB)",
            Case::RawSocket => "raw socketpair",
            Case::Pipe => "pipe()",
            Case::PipeAlloc => "pipe() recv_bytes",
            Case::Duplex => "duplex()",
            Case::Fifo => "Fifo",
            Case::FifoSmall => "Fifo small_messages",
            Case::Queue1x1 => "Queue 1x1",
            Case::Queue2x2 => "Queue 2x2",
            Case::Joinable1x1 => "JoinableQueue 1x1",
            Case::Queue8x8 => "Queue 8x8",
            Case::Joinable8x8 => "JoinableQueue 8x8",
            Case::Fifo8x1 => "Fifo 8 writers",
            Case::IpcChannel => "ipc-channel bytes_channel",
            Case::Interprocess => "interprocess pipe, framed",
            Case::PyPipe => "py Pipe() send_bytes",
            Case::PyQueue1x1 => "py Queue 1x1",
            Case::PyQueue2x2 => "py Queue 2x2",
            Case::PyJoinable1x1 => "py JoinableQueue 1x1",
        }
    }

    /// A short label for the Python cases.
    fn short(self) -> &'static str {
        match self {
            Case::PyPipe => "py Pipe",
            Case::PyQueue1x1 | Case::PyQueue2x2 => "py Queue",
            _ => self.label(),
        }
    }

    /// A stable identifier for JSON.
    pub fn key(self) -> &'static str {
        match self {
            Case::RawPipe => "raw_pipe",
            Case::RawPipe1M => "raw_pipe_1mib",
            Case::RawSocket => "raw_socketpair",
            Case::Pipe => "pipe",
            Case::PipeAlloc => "pipe_recv_bytes",
            Case::Duplex => "duplex",
            Case::Fifo => "fifo",
            Case::FifoSmall => "fifo_small_messages",
            Case::Queue1x1 => "queue_1x1",
            Case::Queue2x2 => "queue_2x2",
            Case::Joinable1x1 => "joinable_1x1",
            Case::Queue8x8 => "queue_8x8",
            Case::Joinable8x8 => "joinable_8x8",
            Case::Fifo8x1 => "fifo_8_writers",
            Case::IpcChannel => "ipc_channel",
            Case::Interprocess => "interprocess_pipe",
            Case::PyPipe => "python_pipe",
            Case::PyQueue1x1 => "python_queue_1x1",
            Case::PyQueue2x2 => "python_queue_2x2",
            Case::PyJoinable1x1 => "python_joinable_1x1",
        }
    }

    /// Python's equivalent, the denominator of the "x Python" ratio.
    pub fn python_peer(self) -> Option<Case> {
        match self {
            Case::Pipe | Case::PipeAlloc | Case::Duplex | Case::Fifo | Case::FifoSmall => {
                Some(Case::PyPipe)
            }
            Case::Queue1x1 => Some(Case::PyQueue1x1),
            Case::Queue2x2 => Some(Case::PyQueue2x2),
            Case::Joinable1x1 => Some(Case::PyJoinable1x1),
            _ => None,
        }
    }

    /// For a scaling case, the 1x1 case it is compared with.
    pub fn scales(self) -> Option<Case> {
        match self {
            Case::Queue8x8 => Some(Case::Queue1x1),
            Case::Joinable8x8 => Some(Case::Joinable1x1),
            Case::Fifo8x1 => Some(Case::Fifo),
            _ => None,
        }
    }

    /// How many processes send: the message count is rounded up to a
    /// multiple of it, so every producer sends the same number.
    pub fn producers(self) -> usize {
        match self {
            Case::Queue2x2 | Case::PyQueue2x2 => 2,
            Case::Queue8x8 | Case::Joinable8x8 | Case::Fifo8x1 => 8,
            _ => 1,
        }
    }

    /// True for the Python cases.
    pub fn is_python(self) -> bool {
        Case::PYTHON.contains(&self)
    }

    /// Whether the case can carry messages of `size` bytes.
    pub fn carries(self, size: usize) -> bool {
        self != Case::FifoSmall || size <= ipc_harness::fifo::SMALL_MESSAGE_MAX
    }
}

/// One round-trip case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LatencyCase {
    /// Two raw pipes, one each way.
    RawPipe,
    /// One raw `SOCK_STREAM` socketpair (the transport under `duplex()`).
    RawSocket,
    /// Two [`pipe()`](ipc_harness::pipe())s.
    Pipe,
    /// One [`duplex()`](ipc_harness::duplex()).
    Duplex,
    /// Two [`Queue`]s.
    Queue,
    /// Two `ipc-channel` bytes channels (a peer, with the `peers` feature).
    IpcChannel,
    /// Python `Pipe()`.
    PyPipe,
    /// Two Python `Queue`s.
    PyQueue,
}

impl LatencyCase {
    /// The cases this crate runs itself.
    pub const RUST: [LatencyCase; 5] = [
        LatencyCase::RawPipe,
        LatencyCase::RawSocket,
        LatencyCase::Pipe,
        LatencyCase::Duplex,
        LatencyCase::Queue,
    ];
    /// The Python cases.
    pub const PYTHON: [LatencyCase; 2] = [LatencyCase::PyPipe, LatencyCase::PyQueue];
    /// The peers' cases (with [`Options::peers`] and the `peers` feature).
    pub const PEERS: [LatencyCase; 1] = [LatencyCase::IpcChannel];

    /// The row label.
    pub fn label(self) -> &'static str {
        match self {
            LatencyCase::RawPipe => "raw pipes",
            LatencyCase::RawSocket => "raw socketpair",
            LatencyCase::Pipe => "pipe()",
            LatencyCase::Duplex => "duplex()",
            LatencyCase::Queue => "Queue",
            LatencyCase::IpcChannel => "ipc-channel",
            LatencyCase::PyPipe => "py Pipe()",
            LatencyCase::PyQueue => "py Queue",
        }
    }

    /// A stable identifier for JSON.
    pub fn key(self) -> &'static str {
        match self {
            LatencyCase::RawPipe => "raw_pipes",
            LatencyCase::RawSocket => "raw_socketpair",
            LatencyCase::Pipe => "pipe",
            LatencyCase::Duplex => "duplex",
            LatencyCase::Queue => "queue",
            LatencyCase::IpcChannel => "ipc_channel",
            LatencyCase::PyPipe => "python_pipe",
            LatencyCase::PyQueue => "python_queue",
        }
    }
}

/// Per-round samples of one throughput case at one size.
#[derive(Debug, Clone)]
pub struct Throughput {
    /// The case.
    pub case: Case,
    /// Message size in bytes.
    pub size: usize,
    /// Messages sent per measurement.
    pub messages: usize,
    /// Messages per second, one per round (NaN where a round failed).
    pub per_round: Vec<f64>,
}

/// Per-round samples of one round-trip case.
#[derive(Debug, Clone)]
pub struct Latency {
    /// The case.
    pub case: LatencyCase,
    /// Both processes pinned to one CPU.
    pub pinned: bool,
    /// Round trips per measurement.
    pub round_trips: usize,
    /// Median round trip in microseconds, one per round.
    pub median_us: Vec<f64>,
    /// 99th percentile in microseconds, one per round.
    pub p99_us: Vec<f64>,
}

/// Everything one run measured.
#[derive(Debug, Clone)]
pub struct Report {
    /// The options it ran with.
    pub options: Options,
    /// Rounds actually run.
    pub rounds: usize,
    /// The CPU the pinned round trips ran on.
    pub pinned_cpu: Option<usize>,
    /// Throughput samples, case-major.
    pub throughput: Vec<Throughput>,
    /// Round-trip samples.
    pub latency: Vec<Latency>,
    /// Things worth knowing (skipped cases, failures).
    pub notes: Vec<String>,
}

/// The median of the finite values (NaN if none).
pub fn median(values: &[f64]) -> f64 {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn ratios(a: &[f64], b: &[f64]) -> Vec<f64> {
    a.iter().zip(b).map(|(x, y)| x / y).collect()
}

impl Report {
    fn samples(&self, case: Case, size: usize) -> Option<&Throughput> {
        self.throughput
            .iter()
            .find(|t| t.case == case && t.size == size)
    }

    /// Median messages/s of `case` at `size`.
    pub fn rate(&self, case: Case, size: usize) -> f64 {
        self.samples(case, size)
            .map_or(f64::NAN, |t| median(&t.per_round))
    }

    /// Median over rounds of `a / b` at `size`, both from the same round.
    pub fn ratio(&self, a: Case, b: Case, size: usize) -> f64 {
        match (self.samples(a, size), self.samples(b, size)) {
            (Some(x), Some(y)) => median(&ratios(&x.per_round, &y.per_round)),
            _ => f64::NAN,
        }
    }

    /// Per round, the fastest raw transport at `size`.
    fn best_raw(&self, size: usize) -> Vec<f64> {
        self.best_of(&Case::RAW, size)
    }

    /// Per round, the fastest of `cases` at `size`.
    fn best_of(&self, cases: &[Case], size: usize) -> Vec<f64> {
        (0..self.rounds)
            .map(|r| {
                cases
                    .iter()
                    .filter_map(|&c| self.samples(c, size).map(|t| t.per_round[r]))
                    .filter(|x| x.is_finite())
                    .fold(f64::NAN, f64::max)
            })
            .collect()
    }

    /// Median over rounds of `case` / the fastest peer ([`Case::PEERS`]) of
    /// that round; NaN without peers.
    pub fn ratio_to_best_peer(&self, case: Case, size: usize) -> f64 {
        match self.samples(case, size) {
            Some(x) => median(&ratios(&x.per_round, &self.best_of(&Case::PEERS, size))),
            None => f64::NAN,
        }
    }

    /// Median over rounds of `case` / the best raw transport of that round.
    pub fn ratio_to_best_raw(&self, case: Case, size: usize) -> f64 {
        match self.samples(case, size) {
            Some(x) => median(&ratios(&x.per_round, &self.best_raw(size))),
            None => f64::NAN,
        }
    }

    fn lat(&self, case: LatencyCase, pinned: bool) -> Option<&Latency> {
        self.latency
            .iter()
            .find(|l| l.case == case && l.pinned == pinned)
    }

    /// Median over rounds of `case`'s median round trip / the raw pipes'.
    pub fn latency_ratio(&self, case: LatencyCase, pinned: bool) -> f64 {
        match (
            self.lat(case, pinned),
            self.lat(LatencyCase::RawPipe, pinned),
        ) {
            (Some(x), Some(y)) => median(&ratios(&x.median_us, &y.median_us)),
            _ => f64::NAN,
        }
    }

    /// The issue's targets, each with the measured ratio.
    pub fn targets(&self) -> Vec<Target> {
        let mut out = Vec::new();
        let sizes = &self.options.sizes;
        for case in [Case::Pipe, Case::Duplex] {
            for &size in sizes {
                out.push(Target::at_least(
                    format!("{} >= 0.9x best raw at {}", case.label(), size_label(size)),
                    self.ratio_to_best_raw(case, size),
                    0.9,
                ));
            }
        }
        // Not the issue's targets, but what separates a primitive's own cost
        // from its transport's: each against the raw form of its own kernel
        // object (the faster raw pipe for pipe(), the socketpair for duplex()).
        for &size in sizes {
            let best_pipe: Vec<f64> = match (
                self.samples(Case::RawPipe, size),
                self.samples(Case::RawPipe1M, size),
            ) {
                (Some(a), Some(b)) => a
                    .per_round
                    .iter()
                    .zip(&b.per_round)
                    .map(|(x, y)| x.max(*y))
                    .collect(),
                _ => Vec::new(),
            };
            let pipe_ratio = self
                .samples(Case::Pipe, size)
                .map_or(f64::NAN, |p| median(&ratios(&p.per_round, &best_pipe)));
            out.push(Target::at_least(
                format!(
                    "(same transport) pipe() >= 0.9x best raw pipe at {}",
                    size_label(size)
                ),
                pipe_ratio,
                0.9,
            ));
            out.push(Target::at_least(
                format!(
                    "(same transport) duplex() >= 0.9x raw socketpair at {}",
                    size_label(size)
                ),
                self.ratio(Case::Duplex, Case::RawSocket, size),
                0.9,
            ));
        }
        for case in [LatencyCase::Pipe, LatencyCase::Duplex] {
            out.push(Target::at_most(
                format!("{} same-core round trip <= 1.2x raw pipes", case.label()),
                self.latency_ratio(case, true),
                1.2,
            ));
        }
        if self.options.python {
            for case in [Case::Queue1x1, Case::Queue2x2] {
                let peer = case.python_peer().expect("queues have a python peer");
                for (size, goal) in [(64, 10.0), (1 << 20, 2.0)] {
                    if sizes.contains(&size) {
                        out.push(Target::at_least(
                            format!(
                                "{} >= {goal}x {} at {}",
                                case.label(),
                                peer.label(),
                                size_label(size)
                            ),
                            self.ratio(case, peer, size),
                            goal,
                        ));
                    }
                }
            }
        }
        for case in Case::SCALING {
            let Some(one) = case.scales() else { continue };
            if !self.throughput.iter().any(|t| t.case == case) {
                continue;
            }
            for &size in sizes {
                out.push(Target::at_least(
                    format!(
                        "{} >= 0.7x {} at {}",
                        case.label(),
                        one.label(),
                        size_label(size)
                    ),
                    self.ratio(case, one, size),
                    0.7,
                ));
            }
        }
        if self.throughput.iter().any(|t| t.case == Case::IpcChannel) {
            for case in [Case::Pipe, Case::Duplex, Case::Queue1x1] {
                for &size in sizes {
                    out.push(Target::at_least(
                        format!(
                            "{} ahead of every peer at {}",
                            case.label(),
                            size_label(size)
                        ),
                        self.ratio_to_best_peer(case, size),
                        1.0,
                    ));
                }
            }
        }
        out.push(Target::at_most(
            "Queue same-core round trip <= 2x raw pipes".into(),
            self.latency_ratio(LatencyCase::Queue, true),
            2.0,
        ));
        for &size in sizes {
            out.push(Target::at_least(
                format!("Fifo >= 0.9x pipe() at {}", size_label(size)),
                self.ratio(Case::Fifo, Case::Pipe, size),
                0.9,
            ));
            if Case::FifoSmall.carries(size) {
                out.push(Target::at_least(
                    format!("Fifo small_messages >= 0.9x pipe() at {}", size_label(size)),
                    self.ratio(Case::FifoSmall, Case::Pipe, size),
                    0.9,
                ));
            }
        }
        out
    }

    /// The report as text tables.
    pub fn table(&self) -> String {
        let mut s = String::new();
        let sizes = &self.options.sizes;
        let cases: Vec<Case> = Case::RUST
            .iter()
            .chain(Case::SCALING.iter())
            .chain(Case::PEERS.iter())
            .chain(Case::PYTHON.iter())
            .copied()
            .filter(|&c| self.throughput.iter().any(|t| t.case == c))
            .collect();
        let header = |s: &mut String, title: &str| {
            let _ = writeln!(s, "{title}");
            let _ = write!(s, "{:<30}", "case");
            for &size in sizes {
                let _ = write!(s, " {:>17}", size_label(size));
            }
            let _ = writeln!(s);
        };
        header(
            &mut s,
            &format!(
                "Throughput, messages/s (x raw pipe of the same round); medians of {} round(s)",
                self.rounds
            ),
        );
        for &case in &cases {
            let _ = write!(s, "{:<30}", case.label());
            for &size in sizes {
                let cell = format!(
                    "{} ({})",
                    human(self.rate(case, size)),
                    fixed(self.ratio(case, Case::RawPipe, size))
                );
                let _ = write!(s, " {cell:>17}");
            }
            let _ = writeln!(s);
        }
        let _ = writeln!(s);
        header(
            &mut s,
            "Throughput, GB/s (x best raw transport of the same round)",
        );
        for &case in &cases {
            let _ = write!(s, "{:<30}", case.label());
            for &size in sizes {
                let gbs = self.rate(case, size) * size as f64 / 1e9;
                let cell = format!(
                    "{} ({})",
                    fixed(gbs),
                    fixed(self.ratio_to_best_raw(case, size))
                );
                let _ = write!(s, " {cell:>17}");
            }
            let _ = writeln!(s);
        }
        if self.throughput.iter().any(|t| t.case.scales().is_some()) {
            let _ = writeln!(s);
            header(
                &mut s,
                "Scaling: x the 1x1 form of the same round, messages/s (target >= 0.70)",
            );
            for &case in &cases {
                let Some(one) = case.scales() else {
                    continue;
                };
                let label = match case {
                    Case::Fifo8x1 => "Fifo 8 writers / 1 writer",
                    Case::Queue8x8 => "Queue 8x8 / 1x1",
                    _ => "JoinableQueue 8x8 / 1x1",
                };
                let _ = write!(s, "{label:<30}");
                for &size in sizes {
                    let cell = fixed(self.ratio(case, one, size));
                    let _ = write!(s, " {cell:>17}");
                }
                let _ = writeln!(s);
            }
        }
        if self
            .throughput
            .iter()
            .any(|t| Case::PEERS.contains(&t.case))
        {
            let _ = writeln!(s);
            header(&mut s, "x the peers of the same round, messages/s");
            for case in [Case::Pipe, Case::Duplex, Case::Fifo, Case::Queue1x1] {
                for (peer, short) in [
                    (Case::IpcChannel, "ipc-channel"),
                    (Case::Interprocess, "interprocess"),
                ] {
                    let _ = write!(s, "{:<30}", format!("{} / {short}", case.label()));
                    for &size in sizes {
                        let cell = fixed(self.ratio(case, peer, size));
                        let _ = write!(s, " {cell:>17}");
                    }
                    let _ = writeln!(s);
                }
            }
        }
        if self.options.python && self.throughput.iter().any(|t| t.case.is_python()) {
            let _ = writeln!(s);
            header(
                &mut s,
                "x Python's equivalent (named) of the same round, messages/s",
            );
            for &case in &cases {
                let Some(peer) = case.python_peer() else {
                    continue;
                };
                let _ = write!(s, "{:<30}", format!("{} / {}", case.label(), peer.short()));
                for &size in sizes {
                    let cell = fixed(self.ratio(case, peer, size));
                    let _ = write!(s, " {cell:>17}");
                }
                let _ = writeln!(s);
            }
        }
        if !self.latency.is_empty() {
            let _ = writeln!(s);
            let _ = writeln!(
                s,
                "Round trip of {LATENCY_SIZE} B, microseconds: median / p99 (median x raw pipes){}",
                self.pinned_cpu
                    .map(|c| format!("; pinned: both processes on CPU {c}"))
                    .unwrap_or_default()
            );
            let _ = writeln!(s, "{:<30} {:>26} {:>26}", "case", "unpinned", "pinned");
            for case in LatencyCase::RUST
                .iter()
                .chain(LatencyCase::PEERS.iter())
                .chain(LatencyCase::PYTHON.iter())
            {
                if !self.latency.iter().any(|l| l.case == *case) {
                    continue;
                }
                let _ = write!(s, "{:<30}", case.label());
                for pinned in [false, true] {
                    let cell = match self.lat(*case, pinned) {
                        Some(l) => format!(
                            "{} / {} ({})",
                            fixed1(median(&l.median_us)),
                            fixed1(median(&l.p99_us)),
                            fixed(self.latency_ratio(*case, pinned))
                        ),
                        None => "-".into(),
                    };
                    let _ = write!(s, " {cell:>26}");
                }
                let _ = writeln!(s);
            }
        }
        let _ = writeln!(s);
        let _ = writeln!(s, "Targets (medians of per-round ratios)");
        for t in self.targets() {
            let verdict = match t.met {
                Some(true) => "met",
                Some(false) => "MISSED",
                None => "n/a",
            };
            let _ = writeln!(s, "  {:<7} {:<64} {}", verdict, t.name, fixed(t.value));
        }
        let _ = writeln!(
            s,
            "Each ratio is the median of per-round ratios; on a shared 2-vCPU VM, \
             throughput ratios within ~1.3x and same-core round trips within ~1.15x \
             are noise."
        );
        for note in &self.notes {
            let _ = writeln!(s, "note: {note}");
        }
        s
    }

    /// The report as JSON: options, every case's per-round samples, medians
    /// and ratios, round trips, targets and notes.
    pub fn to_json(&self) -> String {
        let mut s = String::new();
        let o = &self.options;
        let _ = write!(
            s,
            "{{\"rounds\":{},\"quick\":{},\"python\":{},\"scaling\":{},\"peers\":{},\"pinned_cpu\":{},\"throughput\":[",
            self.rounds,
            o.quick,
            o.python,
            o.scaling,
            o.peers,
            self.pinned_cpu
                .map_or("null".to_string(), |c| c.to_string())
        );
        for (i, t) in self.throughput.iter().enumerate() {
            if i > 0 {
                s.push(',');
            }
            let rate = median(&t.per_round);
            let _ = write!(
                s,
                "{{\"case\":\"{}\",\"label\":{},\"size\":{},\"messages\":{},\"msgs_per_s\":{},\"gb_per_s\":{},\"x_raw_pipe\":{},\"x_best_raw\":{},\"x_python\":{},\"x_1x1\":{},\"x_best_peer\":{},\"per_round_msgs_per_s\":[{}]}}",
                t.case.key(),
                json_str(t.case.label()),
                t.size,
                t.messages,
                json_num(rate),
                json_num(rate * t.size as f64 / 1e9),
                json_num(self.ratio(t.case, Case::RawPipe, t.size)),
                json_num(self.ratio_to_best_raw(t.case, t.size)),
                t.case
                    .python_peer()
                    .filter(|_| o.python)
                    .map_or("null".into(), |p| json_num(self.ratio(t.case, p, t.size))),
                t.case.scales().map_or("null".into(), |one| json_num(
                    self.ratio(t.case, one, t.size)
                )),
                json_num(self.ratio_to_best_peer(t.case, t.size)),
                t.per_round
                    .iter()
                    .map(|&x| json_num(x))
                    .collect::<Vec<_>>()
                    .join(",")
            );
        }
        s.push_str("],\"latency\":[");
        for (i, l) in self.latency.iter().enumerate() {
            if i > 0 {
                s.push(',');
            }
            let _ = write!(
                s,
                "{{\"case\":\"{}\",\"label\":{},\"pinned\":{},\"round_trips\":{},\"median_us\":{},\"p99_us\":{},\"x_raw_pipes\":{},\"per_round_median_us\":[{}]}}",
                l.case.key(),
                json_str(l.case.label()),
                l.pinned,
                l.round_trips,
                json_num(median(&l.median_us)),
                json_num(median(&l.p99_us)),
                json_num(self.latency_ratio(l.case, l.pinned)),
                l.median_us
                    .iter()
                    .map(|&x| json_num(x))
                    .collect::<Vec<_>>()
                    .join(",")
            );
        }
        s.push_str("],\"targets\":[");
        for (i, t) in self.targets().iter().enumerate() {
            if i > 0 {
                s.push(',');
            }
            let _ = write!(
                s,
                "{{\"target\":{},\"value\":{},\"met\":{}}}",
                json_str(&t.name),
                json_num(t.value),
                t.met.map_or("null".into(), |m| m.to_string())
            );
        }
        s.push_str("],\"notes\":[");
        s.push_str(
            &self
                .notes
                .iter()
                .map(|n| json_str(n))
                .collect::<Vec<_>>()
                .join(","),
        );
        s.push_str("]}");
        s
    }
}

/// One of the issue's targets and what was measured against it.
#[derive(Debug, Clone)]
pub struct Target {
    /// What is asked.
    pub name: String,
    /// The measured ratio.
    pub value: f64,
    /// Met, missed, or not measured (`None`).
    pub met: Option<bool>,
}

impl Target {
    fn at_least(name: String, value: f64, goal: f64) -> Target {
        let met = value.is_finite().then_some(value >= goal);
        Target { name, value, met }
    }
    fn at_most(name: String, value: f64, goal: f64) -> Target {
        let met = value.is_finite().then_some(value <= goal);
        Target { name, value, met }
    }
}

/// `64 B`, `4 KiB`, `16 MiB`.
pub fn size_label(size: usize) -> String {
    if size >= 1 << 20 && size % (1 << 20) == 0 {
        format!("{} MiB", size >> 20)
    } else if size >= 1 << 10 && size % (1 << 10) == 0 {
        format!("{} KiB", size >> 10)
    } else {
        format!("{size} B")
    }
}

fn human(x: f64) -> String {
    if !x.is_finite() {
        "-".into()
    } else if x >= 1e6 {
        format!("{:.2}M", x / 1e6)
    } else if x >= 1e3 {
        format!("{:.1}k", x / 1e3)
    } else {
        format!("{x:.0}")
    }
}

fn fixed(x: f64) -> String {
    if x.is_finite() {
        format!("{x:.2}")
    } else {
        "-".into()
    }
}

fn fixed1(x: f64) -> String {
    if x.is_finite() {
        format!("{x:.1}")
    } else {
        "-".into()
    }
}

fn json_num(x: f64) -> String {
    if x.is_finite() {
        format!("{x}")
    } else {
        "null".into()
    }
}

fn json_str(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

// ---------------------------------------------------------------------------
// Running
// ---------------------------------------------------------------------------

/// Runs the benchmark: `opts.rounds` interleaved rounds. `progress` is told
/// what runs next (for a progress line on stderr; the children never print).
///
/// Forks: call it from a single-threaded program, or hold
/// [`fork::serial()`] in a multi-threaded one.
pub fn run(opts: &Options, mut progress: impl FnMut(&str)) -> Result<Report> {
    let mut notes = Vec::new();
    let python = opts.python && python_available(&mut notes);
    let cpus = sys::allowed_cpus().unwrap_or_default();
    let pinned_cpu = cpus.last().copied();
    if pinned_cpu.is_none() {
        notes.push("could not read the CPU affinity: pinned round trips skipped".into());
    }
    let mut cases: Vec<Case> = Case::RUST.to_vec();
    if opts.scaling {
        cases.extend(Case::SCALING);
    }
    let peers = opts.peers && peers_available(&mut notes, &mut progress);
    if peers {
        cases.extend(Case::PEERS);
    }
    if python {
        cases.extend(Case::PYTHON);
    }
    let rounds = opts.rounds.max(1);
    let mut throughput: Vec<Throughput> = Vec::new();
    for &case in &cases {
        for &size in opts.sizes.iter().filter(|&&size| case.carries(size)) {
            throughput.push(Throughput {
                case,
                size,
                messages: opts.messages_for(case, size),
                per_round: vec![f64::NAN; rounds],
            });
        }
    }
    let mut latency: Vec<Latency> = Vec::new();
    if opts.latency {
        let mut lcases = LatencyCase::RUST.to_vec();
        if peers {
            lcases.extend(LatencyCase::PEERS);
        }
        if python {
            lcases.extend(LatencyCase::PYTHON);
        }
        for case in lcases {
            for pinned in [false, true] {
                if pinned && pinned_cpu.is_none() {
                    continue;
                }
                let is_py = matches!(case, LatencyCase::PyPipe | LatencyCase::PyQueue);
                latency.push(Latency {
                    case,
                    pinned,
                    round_trips: opts.round_trips(pinned, is_py),
                    median_us: vec![f64::NAN; rounds],
                    p99_us: vec![f64::NAN; rounds],
                });
            }
        }
    }

    for round in 0..rounds {
        for &size in &opts.sizes {
            progress(&format!(
                "round {}/{rounds}: throughput at {}",
                round + 1,
                size_label(size)
            ));
            // Each round starts at a different case, so no case always runs
            // right after the same neighbour (or first, on a cold machine).
            let mut here: Vec<&mut Throughput> =
                throughput.iter_mut().filter(|t| t.size == size).collect();
            let k = round % here.len().max(1);
            here.rotate_left(k);
            for t in here {
                match measure_throughput(t.case, size, t.messages) {
                    Ok(secs) => t.per_round[round] = t.messages as f64 / secs,
                    Err(e) => notes.push(format!(
                        "round {}: {} at {}: {}",
                        round + 1,
                        t.case.label(),
                        size_label(size),
                        ipc_harness::error::chain(&e)
                    )),
                }
            }
        }
        if !latency.is_empty() {
            progress(&format!("round {}/{rounds}: round trips", round + 1));
        }
        let k = round % latency.len().max(1);
        let mut order: Vec<&mut Latency> = latency.iter_mut().collect();
        order.rotate_left(k);
        for l in order {
            let cpu = if l.pinned { pinned_cpu } else { None };
            match measure_latency(l.case, l.round_trips, cpu) {
                Ok((med, p99)) => {
                    l.median_us[round] = med;
                    l.p99_us[round] = p99;
                }
                Err(e) => notes.push(format!(
                    "round {}: round trip {}{}: {}",
                    round + 1,
                    l.case.label(),
                    if l.pinned { " pinned" } else { "" },
                    ipc_harness::error::chain(&e)
                )),
            }
        }
    }
    Ok(Report {
        options: Options {
            python,
            peers,
            ..opts.clone()
        },
        rounds,
        pinned_cpu,
        throughput,
        latency,
        notes,
    })
}

/// What `--peers` says in a build without the `peers` feature.
pub const NO_PEERS: &str = "the peers (ipc-channel, interprocess) are not in this build: \
     rebuild with `cargo build --release --features peers` \
     (or `cargo run --release --features peers -- bench --peers`)";

/// True if this build has the `peers` feature.
pub const PEERS_BUILT: bool = cfg!(feature = "peers");

fn peers_available(notes: &mut Vec<String>, progress: &mut impl FnMut(&str)) -> bool {
    if PEERS_BUILT {
        return true;
    }
    progress(NO_PEERS);
    notes.push(format!("--peers skipped: {NO_PEERS}"));
    false
}

fn python_available(notes: &mut Vec<String>) -> bool {
    match Command::new("python3")
        .args(["-c", "import multiprocessing"])
        .output()
    {
        Ok(out) if out.status.success() => true,
        _ => {
            notes.push("python3 with multiprocessing not found: Python cases skipped".into());
            false
        }
    }
}

/// What a forked side of a measurement runs: set-up, then `go()` (which
/// reports ready and waits for the start), then the timed work. It returns
/// extra bytes for the parent (the round-trip samples).
type Job<'a> = Box<dyn FnOnce(&mut dyn FnMut() -> Result<()>) -> Result<Vec<u8>> + 'a>;

/// What came back from one side.
struct SideResult {
    /// When its timed work ended (`CLOCK_MONOTONIC` ns).
    end_ns: u64,
    extra: Vec<u8>,
}

/// Forks every job, waits until all are ready, starts the clock and lets
/// them go; returns the start time and each job's result, in order.
fn run_sides(jobs: Vec<Job<'_>>) -> Result<(u64, Vec<SideResult>)> {
    let (ready_r, ready_w) = sys::pipe(false).map_err(|e| Error::io("pipe2", e))?;
    let (go_r, go_w) = sys::pipe(false).map_err(|e| Error::io("pipe2", e))?;
    let n = jobs.len();
    let mut kids = Vec::with_capacity(n);
    for job in jobs {
        let (ready_w, go_r) = (ready_w.as_fd(), go_r.as_fd());
        kids.push(fork::spawn(move || side_main(job, ready_w, go_r))?);
    }
    // Every side is set up and waiting: start the clock.
    let mut byte = [0u8; 1];
    for _ in 0..n {
        if sys::read(ready_r.as_fd(), &mut byte).map_err(|e| Error::io("read", e))? == 0 {
            break;
        }
    }
    let start = sys::monotonic_ns();
    write_all(go_w.as_fd(), &vec![1u8; n])?;
    let reports = fork::wait_all(kids, MEASUREMENT_DEADLINE)?;
    let mut out = Vec::with_capacity(n);
    for r in reports {
        if !r.is_success() {
            return Err(bench_error(format!("a benchmark process {}", r.outcome)));
        }
        let bytes = r.output;
        match bytes.split_first() {
            Some((0, rest)) if rest.len() >= 8 => out.push(SideResult {
                end_ns: u64::from_le_bytes(rest[..8].try_into().expect("8 bytes")),
                extra: rest[8..].to_vec(),
            }),
            Some((_, rest)) => return Err(bench_error(String::from_utf8_lossy(rest).into())),
            None => return Err(bench_error("a benchmark process returned nothing".into())),
        }
    }
    Ok((start, out))
}

fn side_main(job: Job<'_>, ready_w: BorrowedFd<'_>, go_r: BorrowedFd<'_>) -> Vec<u8> {
    let mut go = || -> Result<()> {
        write_all(ready_w, &[1])?;
        let mut byte = [0u8; 1];
        match sys::read(go_r, &mut byte) {
            Ok(1) => Ok(()),
            Ok(_) => Err(Error::Closed),
            Err(e) => Err(Error::io("read", e)),
        }
    };
    let result = job(&mut go);
    let end = sys::monotonic_ns();
    match result {
        Ok(extra) => {
            let mut out = vec![0u8];
            out.extend_from_slice(&end.to_le_bytes());
            out.extend_from_slice(&extra);
            out
        }
        Err(e) => {
            let mut out = vec![1u8];
            out.extend_from_slice(ipc_harness::error::chain(&e).as_bytes());
            out
        }
    }
}

fn bench_error(msg: String) -> Error {
    Error::io("benchmark", io::Error::other(msg))
}

/// A plain `write` loop: no framing, no SIGPIPE guard (a Rust program
/// ignores SIGPIPE, and the benchmark's readers never leave early).
fn write_all(fd: BorrowedFd<'_>, mut buf: &[u8]) -> Result<()> {
    while !buf.is_empty() {
        match nix::unistd::write(fd, buf) {
            Ok(n) => buf = &buf[n..],
            Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return Err(Error::io("write", e.into())),
        }
    }
    Ok(())
}

fn read_exact(fd: BorrowedFd<'_>, mut buf: &mut [u8]) -> Result<()> {
    while !buf.is_empty() {
        match sys::read(fd, buf) {
            Ok(0) => return Err(Error::Closed),
            Ok(n) => buf = &mut buf[n..],
            Err(e) => return Err(Error::io("read", e)),
        }
    }
    Ok(())
}

fn raw_pair(case: Case) -> Result<(OwnedFd, OwnedFd)> {
    match case {
        Case::RawSocket => {
            sys::socketpair(SocketKind::Stream).map_err(|e| Error::io("socketpair", e))
        }
        _ => {
            let (r, w) = sys::pipe(false).map_err(|e| Error::io("pipe2", e))?;
            if case == Case::RawPipe1M {
                sys::set_pipe_capacity(w.as_fd(), 1 << 20)
                    .map_err(|e| Error::io("fcntl(F_SETPIPE_SZ)", e))?;
            }
            Ok((r, w))
        }
    }
}

static FIFO_SEQ: AtomicU64 = AtomicU64::new(0);

fn fifo_path() -> PathBuf {
    std::env::temp_dir().join(format!(
        "ipc-harness-bench-{}-{}",
        sys::getpid(),
        FIFO_SEQ.fetch_add(1, Ordering::Relaxed)
    ))
}

/// One throughput measurement: seconds from "go" to the last receive.
pub fn measure_throughput(case: Case, size: usize, messages: usize) -> Result<f64> {
    if case.is_python() {
        return python_throughput(case, size, messages);
    }
    let mut jobs: Vec<Job<'_>> = Vec::new();
    let mut _keep_fifo = None;
    let consumers = match case {
        Case::RawPipe | Case::RawPipe1M | Case::RawSocket => {
            let (r, w) = raw_pair(case)?;
            jobs.push(Box::new(move |go| {
                let mut buf = vec![0u8; size];
                go()?;
                for _ in 0..messages {
                    read_exact(r.as_fd(), &mut buf)?;
                }
                Ok(Vec::new())
            }));
            jobs.push(Box::new(move |go| {
                let msg = vec![0x5au8; size];
                go()?;
                for _ in 0..messages {
                    write_all(w.as_fd(), &msg)?;
                }
                Ok(Vec::new())
            }));
            1
        }
        Case::Pipe | Case::PipeAlloc => {
            let (tx, mut rx) = pipe()?;
            jobs.push(Box::new(move |go| {
                let mut buf = vec![0u8; size];
                go()?;
                for _ in 0..messages {
                    if case == Case::PipeAlloc {
                        std::hint::black_box(rx.recv_bytes()?);
                    } else {
                        rx.recv_bytes_into(&mut buf)?;
                    }
                }
                Ok(Vec::new())
            }));
            jobs.push(Box::new(move |go| {
                let msg = vec![0x5au8; size];
                go()?;
                for _ in 0..messages {
                    tx.send_bytes(&msg)?;
                }
                Ok(Vec::new())
            }));
            1
        }
        Case::Duplex => {
            let (a, mut b) = duplex()?;
            jobs.push(Box::new(move |go| {
                let mut buf = vec![0u8; size];
                go()?;
                for _ in 0..messages {
                    b.recv_bytes_into(&mut buf)?;
                }
                Ok(Vec::new())
            }));
            jobs.push(Box::new(move |go| {
                let msg = vec![0x5au8; size];
                go()?;
                for _ in 0..messages {
                    a.send_bytes(&msg)?;
                }
                Ok(Vec::new())
            }));
            1
        }
        Case::Fifo | Case::FifoSmall | Case::Fifo8x1 => {
            let writers = case.producers();
            let path = fifo_path();
            let options = FifoOptions::new().small_messages(case == Case::FifoSmall);
            _keep_fifo = Some(options.create(&path)?);
            let p2 = path.clone();
            jobs.push(Box::new(move |go| {
                let mut rx = options.reader(&path)?;
                let mut buf = vec![0u8; size];
                go()?;
                for _ in 0..messages {
                    rx.recv_bytes_into(&mut buf)?;
                }
                Ok(Vec::new())
            }));
            for _ in 0..writers {
                let p2 = p2.clone();
                jobs.push(Box::new(move |go| {
                    let tx = options.writer(&p2)?;
                    let msg = vec![0x5au8; size];
                    go()?;
                    for _ in 0..messages / writers {
                        tx.send_bytes(&msg)?;
                    }
                    Ok(Vec::new())
                }));
            }
            1
        }
        Case::Queue1x1 | Case::Queue2x2 | Case::Queue8x8 => {
            let n = case.producers();
            let q = Queue::new()?;
            // As many producers as consumers: each producer ends with one
            // empty message, each consumer stops at its first, so every
            // consumer gets exactly one and all messages are taken (each
            // producer's empty message comes after its others).
            for _ in 0..n {
                let q = q.clone();
                jobs.push(Box::new(move |go| {
                    q.close_producer();
                    go()?;
                    while !q.get_bytes()?.is_empty() {}
                    Ok(Vec::new())
                }));
            }
            for _ in 0..n {
                let q = q.clone();
                jobs.push(Box::new(move |go| {
                    let msg = vec![0x5au8; size];
                    go()?;
                    for _ in 0..messages / n {
                        q.put_bytes(&msg)?;
                    }
                    q.put_bytes(&[])?;
                    Ok(Vec::new())
                }));
            }
            // The parent stays a potential producer until it returns: closing
            // it here would close the handles the producers inherit, and the
            // empty messages end the consumers anyway.
            n
        }
        Case::Joinable1x1 | Case::Joinable8x8 => {
            let n = case.producers();
            let q = ipc_harness::JoinableQueue::new()?;
            // Ends as the queues above: one empty message per producer.
            for _ in 0..n {
                let q = q.clone();
                jobs.push(Box::new(move |go| {
                    q.close_producer();
                    go()?;
                    loop {
                        let last = q.get_bytes()?.is_empty();
                        q.task_done()?;
                        if last {
                            break;
                        }
                    }
                    Ok(Vec::new())
                }));
            }
            for _ in 0..n {
                let q = q.clone();
                jobs.push(Box::new(move |go| {
                    let msg = vec![0x5au8; size];
                    go()?;
                    for _ in 0..messages / n {
                        q.put_bytes(&msg)?;
                    }
                    q.put_bytes(&[])?;
                    q.join();
                    Ok(Vec::new())
                }));
            }
            n
        }
        Case::IpcChannel | Case::Interprocess => {
            peer_throughput(case, size, messages, &mut jobs)?;
            1
        }
        _ => unreachable!("python cases are handled above"),
    };
    let (start, results) = run_sides(jobs)?;
    let end = results[..consumers]
        .iter()
        .map(|r| r.end_ns)
        .max()
        .unwrap_or(start);
    Ok(end.saturating_sub(start).max(1) as f64 / 1e9)
}

/// Sorted round trips (ns) as (median us, p99 us).
fn percentiles(samples: &mut [u64]) -> (f64, f64) {
    if samples.is_empty() {
        return (f64::NAN, f64::NAN);
    }
    samples.sort_unstable();
    let n = samples.len();
    let med = samples[n / 2] as f64 / 1e3;
    let p99 = samples[((n * 99) / 100).min(n - 1)] as f64 / 1e3;
    (med, p99)
}

const WARM_UP: usize = 100;

/// A pinger's loop: `once` does one round trip; returns the timings.
fn ping_loop(
    go: &mut dyn FnMut() -> Result<()>,
    n: usize,
    mut once: impl FnMut() -> Result<()>,
) -> Result<Vec<u8>> {
    go()?;
    let mut samples = Vec::with_capacity(n);
    for i in 0..n + WARM_UP {
        let t = sys::monotonic_ns();
        once()?;
        if i >= WARM_UP {
            samples.push(sys::monotonic_ns() - t);
        }
    }
    let (med, p99) = percentiles(&mut samples);
    let mut out = med.to_le_bytes().to_vec();
    out.extend_from_slice(&p99.to_le_bytes());
    Ok(out)
}

fn pin(cpu: Option<usize>) -> Result<()> {
    match cpu {
        Some(c) => sys::pin_to_cpu(c).map_err(|e| Error::io("sched_setaffinity", e)),
        None => Ok(()),
    }
}

/// One round-trip measurement of `n` round trips: (median us, p99 us).
/// `cpu`: pin both processes to it.
pub fn measure_latency(case: LatencyCase, n: usize, cpu: Option<usize>) -> Result<(f64, f64)> {
    if matches!(case, LatencyCase::PyPipe | LatencyCase::PyQueue) {
        return python_latency(case, n, cpu);
    }
    let total = n + WARM_UP;
    let mut jobs: Vec<Job<'_>> = Vec::new();
    match case {
        LatencyCase::RawPipe => {
            let (ping_r, ping_w) = raw_pair(Case::RawPipe)?;
            let (pong_r, pong_w) = raw_pair(Case::RawPipe)?;
            jobs.push(Box::new(move |go| {
                pin(cpu)?;
                let msg = [0x5au8; LATENCY_SIZE];
                let mut buf = [0u8; LATENCY_SIZE];
                ping_loop(go, n, || {
                    write_all(ping_w.as_fd(), &msg)?;
                    read_exact(pong_r.as_fd(), &mut buf)
                })
            }));
            jobs.push(Box::new(move |go| {
                pin(cpu)?;
                let mut buf = [0u8; LATENCY_SIZE];
                go()?;
                for _ in 0..total {
                    read_exact(ping_r.as_fd(), &mut buf)?;
                    write_all(pong_w.as_fd(), &buf)?;
                }
                Ok(Vec::new())
            }));
        }
        LatencyCase::RawSocket => {
            let (a, b) = raw_pair(Case::RawSocket)?;
            jobs.push(Box::new(move |go| {
                pin(cpu)?;
                let msg = [0x5au8; LATENCY_SIZE];
                let mut buf = [0u8; LATENCY_SIZE];
                ping_loop(go, n, || {
                    write_all(a.as_fd(), &msg)?;
                    read_exact(a.as_fd(), &mut buf)
                })
            }));
            jobs.push(Box::new(move |go| {
                pin(cpu)?;
                let mut buf = [0u8; LATENCY_SIZE];
                go()?;
                for _ in 0..total {
                    read_exact(b.as_fd(), &mut buf)?;
                    write_all(b.as_fd(), &buf)?;
                }
                Ok(Vec::new())
            }));
        }
        LatencyCase::Pipe => {
            let (ping_tx, mut ping_rx) = pipe()?;
            let (pong_tx, mut pong_rx) = pipe()?;
            jobs.push(Box::new(move |go| {
                pin(cpu)?;
                let msg = [0x5au8; LATENCY_SIZE];
                let mut buf = [0u8; LATENCY_SIZE];
                ping_loop(go, n, || {
                    ping_tx.send_bytes(&msg)?;
                    pong_rx.recv_bytes_into(&mut buf).map(drop)
                })
            }));
            jobs.push(Box::new(move |go| {
                pin(cpu)?;
                let mut buf = [0u8; LATENCY_SIZE];
                go()?;
                for _ in 0..total {
                    let len = ping_rx.recv_bytes_into(&mut buf)?;
                    pong_tx.send_bytes(&buf[..len])?;
                }
                Ok(Vec::new())
            }));
        }
        LatencyCase::Duplex => {
            let (mut a, mut b) = duplex()?;
            jobs.push(Box::new(move |go| {
                pin(cpu)?;
                let msg = [0x5au8; LATENCY_SIZE];
                let mut buf = [0u8; LATENCY_SIZE];
                ping_loop(go, n, || {
                    a.send_bytes(&msg)?;
                    a.recv_bytes_into(&mut buf).map(drop)
                })
            }));
            jobs.push(Box::new(move |go| {
                pin(cpu)?;
                let mut buf = [0u8; LATENCY_SIZE];
                go()?;
                for _ in 0..total {
                    let len = b.recv_bytes_into(&mut buf)?;
                    b.send_bytes(&buf[..len])?;
                }
                Ok(Vec::new())
            }));
        }
        LatencyCase::Queue => {
            let (ping, pong) = (Queue::new()?, Queue::new()?);
            let (ping2, pong2) = (ping.clone(), pong.clone());
            jobs.push(Box::new(move |go| {
                pin(cpu)?;
                let msg = [0x5au8; LATENCY_SIZE];
                ping_loop(go, n, || {
                    ping.put_bytes(&msg)?;
                    pong.get_bytes().map(drop)
                })
            }));
            jobs.push(Box::new(move |go| {
                pin(cpu)?;
                go()?;
                for _ in 0..total {
                    let m = ping2.get_bytes()?;
                    pong2.put_bytes(&m)?;
                }
                Ok(Vec::new())
            }));
        }
        LatencyCase::IpcChannel => peer_latency(n, cpu, &mut jobs)?,
        LatencyCase::PyPipe | LatencyCase::PyQueue => unreachable!("handled above"),
    }
    let (_, results) = run_sides(jobs)?;
    let extra = &results[0].extra;
    if extra.len() < 16 {
        return Err(bench_error("the pinger returned no timings".into()));
    }
    let med = f64::from_le_bytes(extra[..8].try_into().expect("8 bytes"));
    let p99 = f64::from_le_bytes(extra[8..16].try_into().expect("8 bytes"));
    Ok((med, p99))
}

// ---------------------------------------------------------------------------
// The peers: ipc-channel and interprocess (the `peers` feature)
// ---------------------------------------------------------------------------

/// Pushes a peer's consumer, then its producer. Each crate's channel is
/// created here, before the fork: both are plain file descriptors (a
/// `SOCK_SEQPACKET` socketpair for `ipc-channel` on Linux, a `pipe` for
/// `interprocess`) that the children inherit, with no thread or global
/// state behind them.
#[cfg(feature = "peers")]
fn peer_throughput<'a>(
    case: Case,
    size: usize,
    messages: usize,
    jobs: &mut Vec<Job<'a>>,
) -> Result<()> {
    use std::io::{BufReader, Read, Write};
    match case {
        Case::IpcChannel => {
            let (tx, rx) = ipc_channel::ipc::bytes_channel()
                .map_err(|e| Error::io("ipc-channel bytes_channel", e))?;
            jobs.push(Box::new(move |go| {
                go()?;
                for _ in 0..messages {
                    let m = rx.recv().map_err(|e| peer_error("ipc-channel recv", e))?;
                    std::hint::black_box(m);
                }
                Ok(Vec::new())
            }));
            jobs.push(Box::new(move |go| {
                let msg = vec![0x5au8; size];
                go()?;
                for _ in 0..messages {
                    tx.send(&msg)
                        .map_err(|e| Error::io("ipc-channel send", e))?;
                }
                Ok(Vec::new())
            }));
        }
        Case::Interprocess => {
            let (mut tx, rx) = interprocess::unnamed_pipe::pipe()
                .map_err(|e| Error::io("interprocess pipe", e))?;
            jobs.push(Box::new(move |go| {
                let mut rx = BufReader::with_capacity(64 << 10, rx);
                let mut buf = vec![0u8; size];
                go()?;
                for _ in 0..messages {
                    let mut header = [0u8; 4];
                    rx.read_exact(&mut header)
                        .map_err(|e| Error::io("interprocess read", e))?;
                    let len = u32::from_be_bytes(header) as usize;
                    rx.read_exact(&mut buf[..len])
                        .map_err(|e| Error::io("interprocess read", e))?;
                }
                Ok(Vec::new())
            }));
            jobs.push(Box::new(move |go| {
                let msg = vec![0x5au8; size];
                let mut frame = Vec::with_capacity(size + 4);
                go()?;
                for _ in 0..messages {
                    frame.clear();
                    frame.extend_from_slice(&(size as u32).to_be_bytes());
                    frame.extend_from_slice(&msg);
                    tx.write_all(&frame)
                        .map_err(|e| Error::io("interprocess write", e))?;
                }
                Ok(Vec::new())
            }));
        }
        _ => unreachable!("not a peer"),
    }
    Ok(())
}

#[cfg(feature = "peers")]
fn peer_latency<'a>(n: usize, cpu: Option<usize>, jobs: &mut Vec<Job<'a>>) -> Result<()> {
    let chan =
        || ipc_channel::ipc::bytes_channel().map_err(|e| Error::io("ipc-channel bytes_channel", e));
    let (ping_tx, ping_rx) = chan()?;
    let (pong_tx, pong_rx) = chan()?;
    jobs.push(Box::new(move |go| {
        pin(cpu)?;
        let msg = [0x5au8; LATENCY_SIZE];
        ping_loop(go, n, || {
            ping_tx
                .send(&msg)
                .map_err(|e| Error::io("ipc-channel send", e))?;
            pong_rx
                .recv()
                .map(drop)
                .map_err(|e| peer_error("ipc-channel recv", e))
        })
    }));
    jobs.push(Box::new(move |go| {
        pin(cpu)?;
        go()?;
        for _ in 0..n + WARM_UP {
            let m = ping_rx
                .recv()
                .map_err(|e| peer_error("ipc-channel recv", e))?;
            pong_tx
                .send(&m)
                .map_err(|e| Error::io("ipc-channel send", e))?;
        }
        Ok(Vec::new())
    }));
    Ok(())
}

#[cfg(feature = "peers")]
fn peer_error(what: &str, e: impl std::fmt::Debug) -> Error {
    bench_error(format!("{what}: {e:?}"))
}

#[cfg(not(feature = "peers"))]
fn peer_throughput(_: Case, _: usize, _: usize, _: &mut Vec<Job<'_>>) -> Result<()> {
    Err(bench_error(NO_PEERS.into()))
}

#[cfg(not(feature = "peers"))]
fn peer_latency(_: usize, _: Option<usize>, _: &mut Vec<Job<'_>>) -> Result<()> {
    Err(bench_error(NO_PEERS.into()))
}

// ---------------------------------------------------------------------------
// The command line: `ipc-harness bench` and `examples/bench.rs`
// ---------------------------------------------------------------------------

/// Output format of [`BenchArgs`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Text tables.
    Text,
    /// One JSON object.
    Json,
}

/// The arguments of `ipc-harness bench` (and `examples/bench.rs`).
#[derive(Debug, Clone, clap::Args)]
pub struct BenchArgs {
    /// Interleaved rounds; medians and ratios are taken over them.
    #[arg(long, default_value_t = 5)]
    pub rounds: usize,
    /// CI-sized run: a 2 MiB budget per measurement and few round trips.
    #[arg(long)]
    pub quick: bool,
    /// Add Python's multiprocessing Pipe(), Queue and JoinableQueue (needs python3).
    #[arg(long)]
    pub python: bool,
    /// Message sizes in bytes (repeatable); default 64, 4096, 65536, 1 MiB, 16 MiB.
    #[arg(long = "size", value_name = "BYTES")]
    pub sizes: Vec<usize>,
    /// Bytes each throughput measurement sends (default 64 MiB, 2 MiB with --quick).
    #[arg(long, value_name = "BYTES")]
    pub budget: Option<usize>,
    /// Skip the round-trip measurements.
    #[arg(long)]
    pub no_latency: bool,
    /// Add the peers ipc-channel and interprocess in the same rounds (needs
    /// a build with `--features peers`; without it, a note says so).
    #[arg(long)]
    pub peers: bool,
    /// Skip the scaling cases (Queue and JoinableQueue 8 producers x 8
    /// consumers, Fifo 8 writers), which run by default at every size.
    #[arg(long)]
    pub no_scaling: bool,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

impl BenchArgs {
    /// The [`Options`] these arguments ask for.
    pub fn options(&self) -> Options {
        Options {
            rounds: self.rounds.max(1),
            quick: self.quick,
            python: self.python,
            sizes: if self.sizes.is_empty() {
                SIZES.to_vec()
            } else {
                self.sizes.clone()
            },
            budget: self.budget,
            latency: !self.no_latency,
            scaling: !self.no_scaling,
            peers: self.peers,
        }
    }

    /// Runs the benchmark, shows progress on stderr, writes the report to
    /// `out`. Forks: call from a single-threaded program.
    pub fn run(&self, out: &mut impl io::Write) -> Result<Report> {
        let report = run(&self.options(), |what| eprintln!("bench: {what}"))?;
        let text = match self.format {
            Format::Text => report.table(),
            Format::Json => report.to_json() + "\n",
        };
        out.write_all(text.as_bytes())
            .map_err(|e| Error::io("write report", e))?;
        Ok(report)
    }
}

// ---------------------------------------------------------------------------
// Python
// ---------------------------------------------------------------------------

/// The Python side: the same method (set-up, ready, go, clock from go to
/// the last receive; `time.monotonic` is `CLOCK_MONOTONIC`, as ours).
const PYTHON: &str = r#"
import multiprocessing as mp, os, sys, time
mp.set_start_method("fork")
now = time.monotonic

def tp_pipe(size, n):
    a, b = mp.Pipe()
    ready, go = mp.Event(), mp.Event()
    def prod():
        msg = b"Z" * size
        ready.set(); go.wait()
        for _ in range(n):
            a.send_bytes(msg)
    p = mp.Process(target=prod); p.start()
    ready.wait()
    t0 = now(); go.set()
    for _ in range(n):
        b.recv_bytes()
    t1 = now(); p.join()
    return t1 - t0

def tp_queue(size, n, P, C, joinable):
    q = mp.JoinableQueue() if joinable else mp.Queue()
    ends, ready, go = mp.SimpleQueue(), mp.Semaphore(0), mp.Event()
    def prod(k):
        msg = b"Z" * size
        ready.release(); go.wait()
        for _ in range(k):
            q.put(msg)
        q.put(None)
    def cons():
        ready.release(); go.wait()
        while True:
            m = q.get()
            if joinable:
                q.task_done()
            if m is None:
                break
        ends.put(now())
    procs = [mp.Process(target=cons) for _ in range(C)]
    procs += [mp.Process(target=prod, args=(n // P,)) for _ in range(P)]
    for p in procs: p.start()
    for _ in procs: ready.acquire()
    t0 = now(); go.set()
    t1 = max(ends.get() for _ in range(C))
    for p in procs: p.join()
    return t1 - t0

WARM = 100
def lat(kind, n, cpu):
    if cpu >= 0:
        os.sched_setaffinity(0, {cpu})
    if kind == "pipe":
        a, b = mp.Pipe()
        send, recv = a.send_bytes, a.recv_bytes
        def echo():
            for _ in range(n + WARM):
                b.send_bytes(b.recv_bytes())
    else:
        q1, q2 = mp.Queue(), mp.Queue()
        send, recv = q1.put, q2.get
        def echo():
            for _ in range(n + WARM):
                q2.put(q1.get())
    p = mp.Process(target=echo); p.start()
    msg = b"Z" * 64
    clock = time.perf_counter_ns
    rtts = []
    for i in range(n + WARM):
        t = clock(); send(msg); recv()
        if i >= WARM:
            rtts.append(clock() - t)
    p.join()
    rtts.sort()
    return rtts[len(rtts) // 2] / 1e3, rtts[min(len(rtts) - 1, len(rtts) * 99 // 100)] / 1e3

if __name__ == "__main__":
    what = sys.argv[1]
    if what == "pipe":
        print(tp_pipe(int(sys.argv[2]), int(sys.argv[3])))
    elif what in ("queue", "joinable"):
        size, n, P, C = map(int, sys.argv[2:6])
        print(tp_queue(size, n, P, C, what == "joinable"))
    else:
        print(*lat(sys.argv[2], int(sys.argv[3]), int(sys.argv[4])))
"#;

fn python(args: &[String]) -> Result<Vec<f64>> {
    let out = Command::new("python3")
        .args(["-c", PYTHON])
        .args(args)
        .output()
        .map_err(|e| Error::io("python3", e))?;
    if !out.status.success() {
        return Err(bench_error(format!(
            "python3 failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .map(|w| {
            w.parse()
                .map_err(|_| bench_error(format!("python3 printed {w:?}")))
        })
        .collect()
}

fn python_throughput(case: Case, size: usize, messages: usize) -> Result<f64> {
    let (s, n) = (size.to_string(), messages.to_string());
    let args: Vec<String> = match case {
        Case::PyPipe => vec!["pipe".into(), s, n],
        Case::PyQueue1x1 => vec!["queue".into(), s, n, "1".into(), "1".into()],
        Case::PyQueue2x2 => vec!["queue".into(), s, n, "2".into(), "2".into()],
        Case::PyJoinable1x1 => vec!["joinable".into(), s, n, "1".into(), "1".into()],
        _ => unreachable!("not a python case"),
    };
    let v = python(&args)?;
    v.first()
        .copied()
        .ok_or_else(|| bench_error("python3 printed nothing".into()))
}

fn python_latency(case: LatencyCase, n: usize, cpu: Option<usize>) -> Result<(f64, f64)> {
    let kind = if case == LatencyCase::PyPipe {
        "pipe"
    } else {
        "queue"
    };
    let cpu = cpu.map_or("-1".to_string(), |c| c.to_string());
    let v = python(&["lat".into(), kind.into(), n.to_string(), cpu])?;
    match v[..] {
        [med, p99] => Ok((med, p99)),
        _ => Err(bench_error("python3 printed no timings".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_and_labels() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, f64::NAN, 2.0, 3.0]), 2.5);
        assert!(median(&[f64::NAN]).is_nan());
        assert_eq!(size_label(64), "64 B");
        assert_eq!(size_label(4096), "4 KiB");
        assert_eq!(size_label(16 << 20), "16 MiB");
        assert_eq!(json_str("a\"b\n"), "\"a\\\"b\\u000a\"");
    }

    #[test]
    fn message_counts_follow_the_budget() {
        let o = Options::default();
        assert_eq!(o.messages(64, false), 200_000);
        assert_eq!(o.messages(64 << 10, false), 1024);
        assert_eq!(o.messages(16 << 20, false), 8);
        assert_eq!(o.messages(64, true), 50_000);
        let q = Options {
            quick: true,
            ..Options::default()
        };
        assert!(q.messages(16 << 20, false) >= 2);
        // Every producer of a scaling case sends the same number.
        for case in Case::SCALING {
            for size in SIZES {
                let n = q.messages_for(case, size);
                assert_eq!(n % 8, 0, "{case:?} at {size}: {n}");
                assert!(n >= q.messages(size, false), "{case:?} at {size}: {n}");
            }
        }
    }
}
