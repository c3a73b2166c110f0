//! Running the benchmark: the interleaved rounds, the forked sides of each
//! measurement, and the throughput and round-trip measurements themselves.

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};

use ipc_harness::error::{Error, Result};
use ipc_harness::fifo::FifoOptions;
use ipc_harness::harness::fork;
use ipc_harness::queue::Queue;
use ipc_harness::sys::{self, SocketKind};
use ipc_harness::{duplex, duplex_pipes, pipe};

use super::cases::{Case, LatencyCase};
use super::peers::{peer_latency, peer_throughput};
use super::python::{python_latency, python_throughput};
use super::report::{Latency, Report, Throughput, size_label};
use super::{LATENCY_SIZE, MEASUREMENT_DEADLINE, Options};
use crate::fdio::{read_exact, write_all};

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
pub const NO_PEERS: &str = "the peers (ipc-channel, interprocess, iceoryx2) are not in this build: \
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
pub(super) type Job<'a> = Box<dyn FnOnce(&mut dyn FnMut() -> Result<()>) -> Result<Vec<u8>> + 'a>;

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

pub(super) fn bench_error(msg: String) -> Error {
    Error::io("benchmark", io::Error::other(msg))
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
    let mut _peer = None;
    let consumers = match case {
        Case::RawPipe | Case::RawPipe1M | Case::RawSocket => {
            let (r, w) = raw_pair(case)?;
            jobs.push(Box::new(move |go| {
                let mut buf = vec![0u8; size];
                go()?;
                for _ in 0..messages {
                    read_exact(r.as_fd(), &mut buf, None)?;
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
        Case::DuplexPipes => {
            let (a, mut b) = duplex_pipes()?;
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
        Case::Fifo | Case::FifoSmall | Case::Fifo8x1 | Case::FifoChunked | Case::FifoChunked8x1 => {
            let writers = case.producers();
            let path = fifo_path();
            let options = FifoOptions::new()
                .small_messages(case == Case::FifoSmall)
                .chunked(matches!(case, Case::FifoChunked | Case::FifoChunked8x1));
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
        Case::IpcChannel | Case::Interprocess | Case::Iceoryx2Poll | Case::Iceoryx2Event => {
            _peer = Some(peer_throughput(case, size, messages, &mut jobs)?);
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

pub(super) const WARM_UP: usize = 100;

/// A pinger's loop: `once` does one round trip; returns the timings.
pub(super) fn ping_loop(
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

pub(super) fn pin(cpu: Option<usize>) -> Result<()> {
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
    let mut _peer = None;
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
                    read_exact(pong_r.as_fd(), &mut buf, None)
                })
            }));
            jobs.push(Box::new(move |go| {
                pin(cpu)?;
                let mut buf = [0u8; LATENCY_SIZE];
                go()?;
                for _ in 0..total {
                    read_exact(ping_r.as_fd(), &mut buf, None)?;
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
                    read_exact(a.as_fd(), &mut buf, None)
                })
            }));
            jobs.push(Box::new(move |go| {
                pin(cpu)?;
                let mut buf = [0u8; LATENCY_SIZE];
                go()?;
                for _ in 0..total {
                    read_exact(b.as_fd(), &mut buf, None)?;
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
        LatencyCase::DuplexPipes => {
            let (mut a, mut b) = duplex_pipes()?;
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
        LatencyCase::IpcChannel | LatencyCase::Iceoryx2Poll | LatencyCase::Iceoryx2Event => {
            _peer = Some(peer_latency(case, n, cpu, &mut jobs)?);
        }
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
