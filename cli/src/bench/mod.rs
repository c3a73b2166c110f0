//! The cross-process benchmark behind `ipc-harness bench`: throughput and
//! round-trip latency of every primitive against the raw kernel transports
//! (and, optionally, Python's `multiprocessing`), measured in one run on one
//! machine.
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
//!   [`Queue`](ipc_harness::queue::Queue) with 1 producer x 1 consumer and 2 x 2.
//! - **Scaling** ([`Case::SCALING`], on by default, `--no-scaling` skips
//!   it): [`Queue`](ipc_harness::queue::Queue) and [`JoinableQueue`](ipc_harness::JoinableQueue) with 8
//!   producers x 8 consumers, and a [`Fifo`](ipc_harness::fifo::Fifo) with 8 writers (each opening
//!   the path) and its one reader, at every size; each is divided by its
//!   1x1 form *of the same round* (the project's performance target: at least 0.7x).
//! - **Peers** ([`Case::PEERS`], `--peers`, in a build with the `peers`
//!   cargo feature): `ipc-channel`'s bytes channel (system calls on a
//!   `SOCK_SEQPACKET` socketpair, a new `Vec` per message),
//!   `interprocess`'s unnamed pipe (framed as a user would: it has no
//!   framing; a `write` per message, reads through a `BufReader`), and
//!   `iceoryx2`'s shared-memory publish-subscribe over `[u8]` in two receive
//!   modes: busy-polling ([`Case::Iceoryx2Poll`]: no system call per message,
//!   the subscriber spins) and event-driven ([`Case::Iceoryx2Event`]: a
//!   notification after each send, the subscriber sleeps until one comes).
//!   Each iceoryx2 message is copied into a loaned sample and out into a
//!   reused buffer, as [`Queue`](ipc_harness::queue::Queue)'s are, and none is
//!   dropped (the publisher waits for room). Round trips: `ipc-channel`, and
//!   `iceoryx2` in both modes ([`LatencyCase::PEERS`]). Each primitive's
//!   ratio to the fastest peer of the round is a target ("ahead of every
//!   peer").
//! - **Round trip** of a 64-byte message (median and 99th percentile): a
//!   pinger sends, an echoer sends it back. Once with both processes free to
//!   run anywhere, once with both pinned to the same CPU: on these VMs a
//!   cross-core wake-up costs tens of microseconds, which hides the
//!   software's own cost; on one core what remains is the primitive's own
//!   work plus a context switch. Beside the median of the whole run, the
//!   median of its first [`FIRST`] timed round trips (after 100 untimed
//!   ones): a primitive that needs a long run to reach its best shows it
//!   there. The `rtt_blocks` example prints one case's round trip per block
//!   of 1000 over a long run, with the CPU each side ran on and its context
//!   switches (`cargo run --release -p ipc-harness-cli --example rtt_blocks
//!   -- queue 60000`).
//! - **CPU time** beside every figure: user + system time (`getrusage`) of
//!   all of a measurement's processes, each from "go" to the end of its
//!   work (set-up is not counted), per message for the throughput cases and
//!   per round trip for the round trips (warm-up included). A primitive
//!   that spins shows it here: it may be fast and cost a whole core.
//!   Python's cases are not measured (their processes are Python's).
//! - **Idle wait** (with the round trips): the CPU time of a
//!   [`Queue`](ipc_harness::queue::Queue) consumer waiting [`IDLE_WAIT`]
//!   (100 ms) on an empty queue, fresh and right after it answered
//!   [`IDLE_AFTER`] round trips (when its spin is at its longest), beside
//!   the same process sleeping as long in plain 10 ms sleeps: what the
//!   kernel charges for timer wake-ups alone (tens of microseconds per
//!   wake-up on these VMs), the floor of any waiter that re-checks every
//!   10 ms. A waiter that burns a core shows ~100 000 us here.
//!
//! # Method
//! - Every process is forked ([`fork::spawn`](ipc_harness::harness::fork::spawn)); each does its set-up (opening
//!   a FIFO, pinning itself), reports ready, and waits for a "go" byte. The
//!   clock starts when the parent sends "go" and stops at the last
//!   consumer's last receive (`CLOCK_MONOTONIC`, one clock for all
//!   processes). Set-up and process exit are not timed: a side that is
//!   done waits until every side is before it exits, so no exit's kernel
//!   work lands in another side's measurement. Set-up includes mapping a
//!   [`Queue`](ipc_harness::queue::Queue) in ([`Queue::map_in`](ipc_harness::queue::Queue::map_in)), as it includes
//!   opening a FIFO; consumers receive into a reused buffer whose pages were
//!   written once in set-up (but `pipe() recv_bytes` and `ipc-channel`, which
//!   allocate per message).
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
//! # Output
//! [`Report::table`] gives text tables; [`Report::to_json`] the same figures
//! under stable snake_case keys: per throughput row `msgs_per_s`,
//! `gb_per_s`, `cpu_ns_per_msg` and the ratios (`x_raw_pipe`, ...); per
//! round-trip row `median_us`, `p99_us`, `first_1000_median_us`,
//! `cpu_us_per_round_trip`; `idle` (`null` without round trips) with
//! `wait_ms`, `cpu_us_cold`, `cpu_us_after_busy` and `cpu_us_sleep_floor`;
//! each also per round (`per_round_...`). A figure not measured is `null`.
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

mod args;
mod cases;
mod peers;
mod python;
mod report;
mod runner;

use std::time::Duration;

pub use args::{BenchArgs, Format};
pub use cases::{Case, LatencyCase};
pub use report::{Idle, Latency, Report, Target, Throughput, median, size_label};
pub use runner::{
    FIRST, IDLE_AFTER, IDLE_WAIT, IdleCost, Measured, NO_PEERS, PEERS_BUILT, RoundTrips, SideTrace,
    measure_idle, measure_latency, measure_throughput, percentile_us, run,
};

/// The message sizes of the throughput table.
pub const SIZES: [usize; 5] = [64, 4 << 10, 64 << 10, 1 << 20, 16 << 20];

/// The size of the round-trip message.
pub const LATENCY_SIZE: usize = 64;

/// How long any one measurement may take before its processes are killed.
pub(crate) const MEASUREMENT_DEADLINE: Duration = Duration::from_secs(120);

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
    /// Add the peers ([`Case::PEERS`]: `ipc-channel`, `interprocess`,
    /// `iceoryx2`) in the same rounds. Needs a build with the `peers` cargo feature;
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
