//! What a run measured ([`Report`]), its medians and per-round ratios, the
//! targets, and the report as a text table or as JSON.

use std::fmt::Write as _;

use serde::Serialize;

use super::cases::{Case, LatencyCase};
use super::{FIRST, IDLE_AFTER, LATENCY_SIZE, Options};

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
    /// CPU time per message, ns, one per round: user + system time of all
    /// the measurement's processes, each from "go" to the end of its work,
    /// divided by the messages (NaN where not measured: Python).
    pub cpu_ns_per_msg: Vec<f64>,
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
    /// Median of the first [`FIRST`](super::FIRST) timed round trips in
    /// microseconds, one per round (NaN for Python).
    pub first_median_us: Vec<f64>,
    /// CPU time of both processes per round trip in microseconds, one per
    /// round (NaN for Python).
    pub cpu_us: Vec<f64>,
}

/// Per-round CPU cost of a consumer waiting on an empty
/// [`Queue`](ipc_harness::queue::Queue) (see
/// [`measure_idle`](super::measure_idle)).
#[derive(Debug, Clone)]
pub struct Idle {
    /// How long each wait lasts, ms.
    pub wait_ms: u64,
    /// CPU time of a fresh consumer's wait, microseconds, one per round.
    pub cold_us: Vec<f64>,
    /// CPU time of a wait right after the consumer answered
    /// [`IDLE_AFTER`](super::IDLE_AFTER) round trips, microseconds, one per round.
    pub after_busy_us: Vec<f64>,
    /// CPU time of as long in plain 10 ms sleeps, microseconds, one per
    /// round: what timer wake-ups alone cost on this machine.
    pub sleep_floor_us: Vec<f64>,
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
    /// The idle-wait CPU cost (with the round trips).
    pub idle: Option<Idle>,
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

    /// Median CPU ns per message of `case` at `size`.
    pub fn cpu_per_msg(&self, case: Case, size: usize) -> f64 {
        self.samples(case, size)
            .map_or(f64::NAN, |t| median(&t.cpu_ns_per_msg))
    }

    /// Median over rounds of `a`'s CPU per message / `b`'s at `size`, both
    /// from the same round.
    pub fn cpu_ratio(&self, a: Case, b: Case, size: usize) -> f64 {
        match (self.samples(a, size), self.samples(b, size)) {
            (Some(x), Some(y)) => median(&ratios(&x.cpu_ns_per_msg, &y.cpu_ns_per_msg)),
            _ => f64::NAN,
        }
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
        self.ratio_to_best_of(case, &Case::PEERS, size)
    }

    /// Median over rounds of `case` / the fastest of `peers` of that round.
    pub fn ratio_to_best_of(&self, case: Case, peers: &[Case], size: usize) -> f64 {
        match self.samples(case, size) {
            Some(x) => median(&ratios(&x.per_round, &self.best_of(peers, size))),
            None => f64::NAN,
        }
    }

    /// Median over rounds of `case`'s median round trip / the shortest of
    /// `peers` in that round (below 1: `case` is faster than all of them).
    pub fn latency_ratio_to_best_of(
        &self,
        case: LatencyCase,
        peers: &[LatencyCase],
        pinned: bool,
    ) -> f64 {
        let Some(x) = self.lat(case, pinned) else {
            return f64::NAN;
        };
        let best: Vec<f64> = (0..x.median_us.len())
            .map(|round| {
                peers
                    .iter()
                    .filter_map(|&p| self.lat(p, pinned))
                    .map(|l| l.median_us[round])
                    .filter(|v| v.is_finite())
                    .fold(f64::NAN, f64::min)
            })
            .collect();
        median(&ratios(&x.median_us, &best))
    }

    /// Median over rounds of `case` / the best raw transport of that round.
    pub fn ratio_to_best_raw(&self, case: Case, size: usize) -> f64 {
        match self.samples(case, size) {
            Some(x) => median(&ratios(&x.per_round, &self.best_raw(size))),
            None => f64::NAN,
        }
    }

    /// The samples of one round-trip case.
    pub fn lat(&self, case: LatencyCase, pinned: bool) -> Option<&Latency> {
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

    /// The project's performance targets, each with the measured ratio.
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
        // Not among the performance targets, but what separates a primitive's own cost
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
        for case in [
            LatencyCase::Pipe,
            LatencyCase::Duplex,
            LatencyCase::DuplexPipes,
        ] {
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
            for (case, peers, whom) in [
                (
                    Case::Pipe,
                    &Case::KERNEL_PEERS[..],
                    "ipc-channel and interprocess",
                ),
                (
                    Case::Duplex,
                    &Case::KERNEL_PEERS[..],
                    "ipc-channel and interprocess",
                ),
                (Case::Queue1x1, &Case::PEERS[..], "every peer"),
            ] {
                for &size in sizes {
                    out.push(Target::at_least(
                        format!("{} ahead of {whom} at {}", case.label(), size_label(size)),
                        self.ratio_to_best_of(case, peers, size),
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
        if self.lat(LatencyCase::IpcChannel, false).is_some() {
            for pinned in [false, true] {
                out.push(Target::at_most(
                    format!(
                        "Queue round trip{} shorter than every peer's",
                        if pinned { " on one CPU" } else { "" }
                    ),
                    self.latency_ratio_to_best_of(LatencyCase::Queue, &LatencyCase::PEERS, pinned),
                    1.0,
                ));
            }
        }
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
            out.push(Target::at_least(
                format!("Fifo chunked >= 0.9x pipe() at {}", size_label(size)),
                self.ratio(Case::FifoChunked, Case::Pipe, size),
                0.9,
            ));
            out.push(Target::at_least(
                format!(
                    "(same transport) Fifo chunked >= 0.9x raw FIFO at {}",
                    size_label(size)
                ),
                self.ratio(Case::FifoChunked, Case::RawFifo, size),
                0.9,
            ));
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
        if self
            .throughput
            .iter()
            .any(|t| t.cpu_ns_per_msg.iter().any(|x| x.is_finite()))
        {
            let _ = writeln!(s);
            header(
                &mut s,
                "CPU time per message, user + system of all processes (x raw pipe of the same round)",
            );
            for &case in &cases {
                if case.is_python() {
                    continue;
                }
                let _ = write!(s, "{:<30}", case.label());
                for &size in sizes {
                    let cell = format!(
                        "{} ({})",
                        duration_ns(self.cpu_per_msg(case, size)),
                        fixed(self.cpu_ratio(case, Case::RawPipe, size))
                    );
                    let _ = write!(s, " {cell:>17}");
                }
                let _ = writeln!(s);
            }
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
                    Case::FifoChunked8x1 => "Fifo chunked 8w / 1 writer",
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
                    (Case::Iceoryx2Poll, "iceoryx2 poll"),
                    (Case::Iceoryx2Event, "iceoryx2 event"),
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
                "Round trip of {LATENCY_SIZE} B, microseconds: median of the first {FIRST}, median, p99, \
                 median x raw pipes, CPU time of both processes per round trip{}",
                self.pinned_cpu
                    .map(|c| format!("; pinned: both processes on CPU {c}"))
                    .unwrap_or_default()
            );
            let _ = writeln!(s, "{:<30}  {:-^39}  {:-^39}", "", " unpinned ", " pinned ");
            let _ = write!(s, "{:<30}", "case");
            for _ in 0..2 {
                let _ = write!(
                    s,
                    "  {:>8} {:>7} {:>7} {:>6} {:>7}",
                    "first1k", "median", "p99", "x raw", "CPU"
                );
            }
            let _ = writeln!(s);
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
                    match self.lat(*case, pinned) {
                        Some(l) => {
                            let _ = write!(
                                s,
                                "  {:>8} {:>7} {:>7} {:>6} {:>7}",
                                fixed(median(&l.first_median_us)),
                                fixed(median(&l.median_us)),
                                fixed1(median(&l.p99_us)),
                                fixed(self.latency_ratio(*case, pinned)),
                                fixed(median(&l.cpu_us)),
                            );
                        }
                        None => {
                            let _ = write!(
                                s,
                                "  {:>8} {:>7} {:>7} {:>6} {:>7}",
                                "-", "-", "-", "-", "-"
                            );
                        }
                    }
                }
                let _ = writeln!(s);
            }
        }
        if let Some(idle) = &self.idle {
            let _ = writeln!(s);
            let _ = writeln!(
                s,
                "Idle wait: CPU time of a Queue consumer waiting {} ms on an empty queue: \
                 {} us fresh, {} us right after {IDLE_AFTER} round trips \
                 (plain 10 ms sleeps as long: {} us)",
                idle.wait_ms,
                fixed1(median(&idle.cold_us)),
                fixed1(median(&idle.after_busy_us)),
                fixed1(median(&idle.sleep_floor_us)),
            );
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
        let o = &self.options;
        let json = JsonReport {
            rounds: self.rounds,
            quick: o.quick,
            python: o.python,
            scaling: o.scaling,
            peers: o.peers,
            pinned_cpu: self.pinned_cpu,
            throughput: self
                .throughput
                .iter()
                .map(|t| {
                    let rate = median(&t.per_round);
                    JsonThroughput {
                        case: t.case.key(),
                        label: t.case.label(),
                        size: t.size,
                        messages: t.messages,
                        msgs_per_s: Num(rate),
                        gb_per_s: Num(rate * t.size as f64 / 1e9),
                        x_raw_pipe: Num(self.ratio(t.case, Case::RawPipe, t.size)),
                        x_best_raw: Num(self.ratio_to_best_raw(t.case, t.size)),
                        x_python: t
                            .case
                            .python_peer()
                            .filter(|_| o.python)
                            .map(|p| Num(self.ratio(t.case, p, t.size))),
                        x_1x1: t
                            .case
                            .scales()
                            .map(|one| Num(self.ratio(t.case, one, t.size))),
                        x_best_peer: Num(self.ratio_to_best_peer(t.case, t.size)),
                        cpu_ns_per_msg: Num(median(&t.cpu_ns_per_msg)),
                        cpu_x_raw_pipe: Num(self.cpu_ratio(t.case, Case::RawPipe, t.size)),
                        per_round_msgs_per_s: t.per_round.iter().copied().map(Num).collect(),
                        per_round_cpu_ns_per_msg: t
                            .cpu_ns_per_msg
                            .iter()
                            .copied()
                            .map(Num)
                            .collect(),
                    }
                })
                .collect(),
            latency: self
                .latency
                .iter()
                .map(|l| JsonLatency {
                    case: l.case.key(),
                    label: l.case.label(),
                    pinned: l.pinned,
                    round_trips: l.round_trips,
                    median_us: Num(median(&l.median_us)),
                    p99_us: Num(median(&l.p99_us)),
                    x_raw_pipes: Num(self.latency_ratio(l.case, l.pinned)),
                    first_1000_median_us: Num(median(&l.first_median_us)),
                    cpu_us_per_round_trip: Num(median(&l.cpu_us)),
                    per_round_median_us: l.median_us.iter().copied().map(Num).collect(),
                    per_round_first_1000_median_us: l
                        .first_median_us
                        .iter()
                        .copied()
                        .map(Num)
                        .collect(),
                    per_round_cpu_us_per_round_trip: l.cpu_us.iter().copied().map(Num).collect(),
                })
                .collect(),
            idle: self.idle.as_ref().map(|i| JsonIdle {
                wait_ms: i.wait_ms,
                cpu_us_cold: Num(median(&i.cold_us)),
                cpu_us_after_busy: Num(median(&i.after_busy_us)),
                cpu_us_sleep_floor: Num(median(&i.sleep_floor_us)),
                per_round_cpu_us_cold: i.cold_us.iter().copied().map(Num).collect(),
                per_round_cpu_us_after_busy: i.after_busy_us.iter().copied().map(Num).collect(),
                per_round_cpu_us_sleep_floor: i.sleep_floor_us.iter().copied().map(Num).collect(),
            }),
            targets: self
                .targets()
                .into_iter()
                .map(|t| JsonTarget {
                    target: t.name,
                    value: Num(t.value),
                    met: t.met,
                })
                .collect(),
            notes: &self.notes,
        };
        serde_json::to_string(&json).expect("a report serializes")
    }
}

// The JSON report's shape: field order is key order.

#[derive(Serialize)]
struct JsonReport<'a> {
    rounds: usize,
    quick: bool,
    python: bool,
    scaling: bool,
    peers: bool,
    pinned_cpu: Option<usize>,
    throughput: Vec<JsonThroughput>,
    latency: Vec<JsonLatency>,
    idle: Option<JsonIdle>,
    targets: Vec<JsonTarget>,
    notes: &'a [String],
}

#[derive(Serialize)]
struct JsonThroughput {
    case: &'static str,
    label: &'static str,
    size: usize,
    messages: usize,
    msgs_per_s: Num,
    gb_per_s: Num,
    x_raw_pipe: Num,
    x_best_raw: Num,
    x_python: Option<Num>,
    x_1x1: Option<Num>,
    x_best_peer: Num,
    cpu_ns_per_msg: Num,
    cpu_x_raw_pipe: Num,
    per_round_msgs_per_s: Vec<Num>,
    per_round_cpu_ns_per_msg: Vec<Num>,
}

#[derive(Serialize)]
struct JsonLatency {
    case: &'static str,
    label: &'static str,
    pinned: bool,
    round_trips: usize,
    median_us: Num,
    p99_us: Num,
    x_raw_pipes: Num,
    first_1000_median_us: Num,
    cpu_us_per_round_trip: Num,
    per_round_median_us: Vec<Num>,
    per_round_first_1000_median_us: Vec<Num>,
    per_round_cpu_us_per_round_trip: Vec<Num>,
}

#[derive(Serialize)]
struct JsonIdle {
    wait_ms: u64,
    cpu_us_cold: Num,
    cpu_us_after_busy: Num,
    cpu_us_sleep_floor: Num,
    per_round_cpu_us_cold: Vec<Num>,
    per_round_cpu_us_after_busy: Vec<Num>,
    per_round_cpu_us_sleep_floor: Vec<Num>,
}

#[derive(Serialize)]
struct JsonTarget {
    target: String,
    value: Num,
    met: Option<bool>,
}

/// A measured figure in the JSON: `null` if not finite (a case that did
/// not run, a ratio to nothing), a whole number as an integer (`1`, not
/// `1.0`), anything else as a float.
#[derive(Debug, Clone, Copy)]
struct Num(f64);

impl Serialize for Num {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        let x = self.0;
        // A whole number is written as an integer, as Rust's `Display` of
        // an `f64` writes it, so that readers keep seeing the types they saw.
        if !x.is_finite() {
            s.serialize_none()
        } else if x.fract() == 0.0 && x.abs() < 9.0e15 {
            s.serialize_i64(x as i64)
        } else {
            s.serialize_f64(x)
        }
    }
}

/// One of the project's performance targets and what was measured against it.
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

/// A duration given in ns, in the unit that suits it: `410 ns`, `3.2 us`,
/// `4.1 ms`.
fn duration_ns(ns: f64) -> String {
    if !ns.is_finite() {
        "-".into()
    } else if ns >= 1e6 {
        format!("{:.1} ms", ns / 1e6)
    } else if ns >= 1e3 {
        format!("{:.1} us", ns / 1e3)
    } else {
        format!("{ns:.0} ns")
    }
}

fn fixed1(x: f64) -> String {
    if x.is_finite() {
        format!("{x:.1}")
    } else {
        "-".into()
    }
}
