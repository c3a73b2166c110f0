//! Running the benchmark: the interleaved rounds, the forked sides of each
//! measurement, and the throughput and round-trip measurements themselves.

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use ipc_harness::error::{Error, Result};
use ipc_harness::fifo::FifoOptions;
use ipc_harness::harness::fork;
use ipc_harness::queue::Queue;
use ipc_harness::sys::{self, SocketKind};
use ipc_harness::{Connection, PipeConnection, duplex, duplex_pipes, pipe};

use super::cases::{Case, LatencyCase};
use super::peers::{peer_latency, peer_throughput};
use super::python::{python_latency, python_throughput};
use super::report::{Idle, Latency, Report, Throughput, size_label};
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
                cpu_ns_per_msg: vec![f64::NAN; rounds],
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
                    first_median_us: vec![f64::NAN; rounds],
                    cpu_us: vec![f64::NAN; rounds],
                });
            }
        }
    }

    let mut idle = opts.latency.then(|| Idle {
        wait_ms: IDLE_WAIT.as_millis() as u64,
        cold_us: vec![f64::NAN; rounds],
        after_busy_us: vec![f64::NAN; rounds],
        sleep_floor_us: vec![f64::NAN; rounds],
    });

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
                    Ok(m) => {
                        t.per_round[round] = t.messages as f64 / m.secs;
                        t.cpu_ns_per_msg[round] = m.cpu_secs * 1e9 / t.messages as f64;
                    }
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
                Ok(r) => {
                    l.median_us[round] = r.median_us();
                    l.p99_us[round] = r.p99_us();
                    l.first_median_us[round] = r.first_median_us();
                    l.cpu_us[round] = r.cpu_us_per_round_trip();
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
        if let Some(idle) = idle.as_mut() {
            match measure_idle() {
                Ok(c) => {
                    idle.cold_us[round] = c.cold_us;
                    idle.after_busy_us[round] = c.after_busy_us;
                    idle.sleep_floor_us[round] = c.sleep_floor_us;
                }
                Err(e) => notes.push(format!(
                    "round {}: idle wait: {}",
                    round + 1,
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
        idle,
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
#[derive(Debug)]
struct SideResult {
    /// When its timed work ended (`CLOCK_MONOTONIC` ns).
    end_ns: u64,
    /// User + system CPU time it used from "go" to the end of its work.
    cpu_ns: u64,
    extra: Vec<u8>,
}

/// What this process has used, from `getrusage(RUSAGE_SELF)`.
#[derive(Debug, Clone, Copy, Default)]
struct Usage {
    /// User + system CPU time, ns.
    cpu_ns: u64,
    /// Voluntary context switches (the process blocked: a futex sleep, a
    /// read with nothing to read).
    voluntary: u64,
    /// Involuntary context switches (preempted, or a `sched_yield` that
    /// ran someone else).
    involuntary: u64,
}

fn usage() -> Usage {
    use nix::sys::resource::{UsageWho, getrusage};
    use nix::sys::time::TimeValLike;
    match getrusage(UsageWho::RUSAGE_SELF) {
        Ok(u) => Usage {
            cpu_ns: (u.user_time().num_microseconds() + u.system_time().num_microseconds()).max(0)
                as u64
                * 1000,
            voluntary: u.voluntary_context_switches().max(0) as u64,
            involuntary: u.involuntary_context_switches().max(0) as u64,
        },
        Err(_) => Usage::default(),
    }
}

/// Forks every job, waits until all are ready, starts the clock and lets
/// them go; returns the start time and each job's result, in order.
fn run_sides(jobs: Vec<Job<'_>>) -> Result<(u64, Vec<SideResult>)> {
    run_sides_within(jobs, MEASUREMENT_DEADLINE)
}

/// [`run_sides`], giving up on the sides after `limit`.
fn run_sides_within(jobs: Vec<Job<'_>>, limit: Duration) -> Result<(u64, Vec<SideResult>)> {
    let (ready_r, ready_w) = sys::pipe(false).map_err(|e| Error::io("pipe2", e))?;
    let (go_r, go_w) = sys::pipe(false).map_err(|e| Error::io("pipe2", e))?;
    let (release_r, release_w) = sys::pipe(false).map_err(|e| Error::io("pipe2", e))?;
    let n = jobs.len();
    let mut kids = Vec::with_capacity(n);
    for job in jobs {
        let (ready_w, go_r, release_r) = (ready_w.as_fd(), go_r.as_fd(), release_r.as_fd());
        kids.push(fork::spawn(move || {
            side_main(job, ready_w, go_r, release_r)
        })?);
    }
    // Only the sides write to `ready`: once they are all gone, it ends.
    drop(ready_w);
    let deadline = Instant::now() + limit;
    // Every side is set up and waiting: start the clock.
    count_bytes(ready_r.as_fd(), n, deadline)?;
    let start = sys::monotonic_ns();
    write_all(go_w.as_fd(), &vec![1u8; n])?;
    // Every side stays until the last one is done, so that no process's
    // exit (about 0.4 ms of kernel work each) falls inside another's
    // measurement.
    count_bytes(ready_r.as_fd(), n, deadline)?;
    let _ = write_all(release_w.as_fd(), &vec![1u8; n]);
    let reports = fork::wait_all(kids, deadline.saturating_duration_since(Instant::now()))?;
    let mut out = Vec::with_capacity(n);
    for r in reports {
        if !r.is_success() {
            return Err(bench_error(format!("a benchmark process {}", r.outcome)));
        }
        let bytes = r.output;
        match bytes.split_first() {
            Some((0, rest)) if rest.len() >= 16 => out.push(SideResult {
                end_ns: u64::from_le_bytes(rest[..8].try_into().expect("8 bytes")),
                cpu_ns: u64::from_le_bytes(rest[8..16].try_into().expect("8 bytes")),
                extra: rest[16..].to_vec(),
            }),
            Some((_, rest)) => return Err(bench_error(String::from_utf8_lossy(rest).into())),
            None => return Err(bench_error("a benchmark process returned nothing".into())),
        }
    }
    Ok((start, out))
}

/// A receive buffer of `size` bytes whose pages are in memory: written
/// once during set-up, so that no consumer's first receives pay its page
/// faults inside the measurement (`vec![0; n]` of a large `n` maps pages
/// that only the first write brings in).
pub(super) fn warm_buffer(size: usize) -> Vec<u8> {
    vec![0xa5u8; size]
}

/// A consumer's timed work: `messages` receives into a buffer of `size`
/// bytes written in set-up.
fn receive_loop(
    go: &mut dyn FnMut() -> Result<()>,
    size: usize,
    messages: usize,
    mut recv: impl FnMut(&mut [u8]) -> Result<()>,
) -> Result<Vec<u8>> {
    let mut buf = warm_buffer(size);
    go()?;
    for _ in 0..messages {
        recv(&mut buf)?;
    }
    Ok(Vec::new())
}

/// A producer's timed work: `messages` sends of one `size`-byte message.
fn send_loop(
    go: &mut dyn FnMut() -> Result<()>,
    size: usize,
    messages: usize,
    mut send: impl FnMut(&[u8]) -> Result<()>,
) -> Result<Vec<u8>> {
    let msg = vec![0x5au8; size];
    go()?;
    for _ in 0..messages {
        send(&msg)?;
    }
    Ok(Vec::new())
}

/// Reads `n` bytes from `fd` (each side writes one when it is ready, and
/// one when it is done), or fewer if every writer is gone, or until
/// `deadline` (then the caller's wait for the sides reports the one that
/// hangs).
fn count_bytes(fd: BorrowedFd<'_>, n: usize, deadline: Instant) -> Result<()> {
    let mut got = 0;
    let mut buf = vec![0u8; n.max(1)];
    while got < n {
        let ready = sys::wait_readable(fd, Some(deadline)).map_err(|e| Error::io("poll", e))?;
        if ready != sys::Readiness::Ready {
            return Ok(());
        }
        match sys::read(fd, &mut buf[..n - got]).map_err(|e| Error::io("read", e))? {
            0 => return Ok(()),
            k => got += k,
        }
    }
    Ok(())
}

fn side_main(
    job: Job<'_>,
    ready_w: BorrowedFd<'_>,
    go_r: BorrowedFd<'_>,
    release_r: BorrowedFd<'_>,
) -> Vec<u8> {
    // CPU time is counted from "go" on: set-up (mapping, opening, pinning,
    // first page faults before go) is not the measurement's.
    let at_go = std::cell::Cell::new(None);
    let mut go = || -> Result<()> {
        write_all(ready_w, &[1])?;
        let mut byte = [0u8; 1];
        match sys::read(go_r, &mut byte) {
            Ok(1) => {
                at_go.set(Some(usage().cpu_ns));
                Ok(())
            }
            Ok(_) => Err(Error::Closed),
            Err(e) => Err(Error::io("read", e)),
        }
    };
    let result = job(&mut go);
    let end = sys::monotonic_ns();
    let cpu = at_go
        .get()
        .map_or(0, |start| usage().cpu_ns.saturating_sub(start));
    if at_go.get().is_none() {
        // Failed before it was ready: say ready anyway, so that the others
        // are not kept waiting for the start.
        let _ = write_all(ready_w, &[1]);
    }
    // Done; then wait until every side is, before exiting.
    let _ = write_all(ready_w, &[1]);
    let _ = sys::read(release_r, &mut [0u8; 1]);
    match result {
        Ok(extra) => {
            let mut out = vec![0u8];
            out.extend_from_slice(&end.to_le_bytes());
            out.extend_from_slice(&cpu.to_le_bytes());
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

/// What one throughput measurement took.
#[derive(Debug, Clone, Copy)]
pub struct Measured {
    /// Seconds from "go" to the last consumer's last receive.
    pub secs: f64,
    /// User + system CPU seconds of all the measurement's processes, each
    /// from "go" to the end of its work (NaN where not measured: Python).
    pub cpu_secs: f64,
}

/// One throughput measurement: the time from "go" to the last receive, and
/// the CPU time all its processes used.
pub fn measure_throughput(case: Case, size: usize, messages: usize) -> Result<Measured> {
    if case.is_python() {
        return Ok(Measured {
            secs: python_throughput(case, size, messages)?,
            cpu_secs: f64::NAN,
        });
    }
    let mut jobs: Vec<Job<'_>> = Vec::new();
    let mut _keep_fifo = None;
    let mut _peer = None;
    let consumers = match case {
        Case::RawPipe | Case::RawPipe1M | Case::RawSocket => {
            let (r, w) = raw_pair(case)?;
            jobs.push(Box::new(move |go| {
                receive_loop(go, size, messages, |buf| read_exact(r.as_fd(), buf, None))
            }));
            jobs.push(Box::new(move |go| {
                send_loop(go, size, messages, |msg| write_all(w.as_fd(), msg))
            }));
            1
        }
        Case::RawFifo => {
            let path = fifo_path();
            let options = FifoOptions::new();
            _keep_fifo = Some(options.create(&path)?);
            let p2 = path.clone();
            jobs.push(Box::new(move |go| {
                let rx = options.reader(&path)?;
                receive_loop(go, size, messages, |buf| read_exact(rx.as_fd(), buf, None))
            }));
            jobs.push(Box::new(move |go| {
                // Its fd only: plain writes, no lock, no framing.
                let tx = options.writer(&p2)?;
                send_loop(go, size, messages, |msg| write_all(tx.as_fd(), msg))
            }));
            1
        }
        Case::Pipe | Case::PipeAlloc => {
            let (tx, mut rx) = pipe()?;
            jobs.push(Box::new(move |go| {
                let mut buf = warm_buffer(size);
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
                send_loop(go, size, messages, |msg| tx.send_bytes(msg))
            }));
            1
        }
        Case::Duplex => {
            let (a, mut b) = duplex()?;
            jobs.push(Box::new(move |go| {
                receive_loop(go, size, messages, |buf| b.recv_bytes_into(buf).map(drop))
            }));
            jobs.push(Box::new(move |go| {
                send_loop(go, size, messages, |msg| a.send_bytes(msg))
            }));
            1
        }
        Case::DuplexPipes => {
            let (a, mut b) = duplex_pipes()?;
            jobs.push(Box::new(move |go| {
                receive_loop(go, size, messages, |buf| b.recv_bytes_into(buf).map(drop))
            }));
            jobs.push(Box::new(move |go| {
                send_loop(go, size, messages, |msg| a.send_bytes(msg))
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
                receive_loop(go, size, messages, |buf| rx.recv_bytes_into(buf).map(drop))
            }));
            for _ in 0..writers {
                let p2 = p2.clone();
                jobs.push(Box::new(move |go| {
                    let tx = options.writer(&p2)?;
                    send_loop(go, size, messages / writers, |msg| tx.send_bytes(msg))
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
                    // Set-up, as opening a FIFO is: the mapping is faulted
                    // in before the clock starts.
                    q.map_in();
                    // Into a reused buffer, as `pipe()` receives.
                    let mut buf = warm_buffer(size);
                    buf.clear();
                    go()?;
                    while q.get_bytes_into(&mut buf)? != 0 {}
                    Ok(Vec::new())
                }));
            }
            for _ in 0..n {
                let q = q.clone();
                jobs.push(Box::new(move |go| {
                    q.map_in();
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
                    q.map_in();
                    let mut buf = warm_buffer(size);
                    buf.clear();
                    go()?;
                    loop {
                        let last = q.get_bytes_into(&mut buf)? == 0;
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
                    q.map_in();
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
    Ok(Measured {
        secs: end.saturating_sub(start).max(1) as f64 / 1e9,
        cpu_secs: results.iter().map(|r| r.cpu_ns).sum::<u64>() as f64 / 1e9,
    })
}

// ---------------------------------------------------------------------------
// Round trips
// ---------------------------------------------------------------------------

/// Round trips not timed at the start of each measurement.
pub(super) const WARM_UP: usize = 100;

/// The round trips a "first thousand" median is taken over.
pub const FIRST: usize = 1000;

/// The pinger's and the echoer's jobs over the two ends of one two-way
/// connection (`duplex()`, `duplex_pipes()`), `send` and `recv` being its
/// methods.
#[allow(clippy::too_many_arguments)]
fn connection_round_trips<'a, C: 'a>(
    jobs: &mut Vec<Job<'a>>,
    n: usize,
    total: usize,
    cpu: Option<usize>,
    mut a: C,
    mut b: C,
    send: fn(&C, &[u8]) -> Result<()>,
    recv: fn(&mut C, &mut [u8]) -> Result<usize>,
) {
    jobs.push(Box::new(move |go| {
        pin(cpu)?;
        let msg = [0x5au8; LATENCY_SIZE];
        let mut buf = [0u8; LATENCY_SIZE];
        ping_loop(go, n, || {
            send(&a, &msg)?;
            recv(&mut a, &mut buf).map(drop)
        })
    }));
    jobs.push(Box::new(move |go| {
        pin(cpu)?;
        let mut buf = [0u8; LATENCY_SIZE];
        echo_loop(go, total, || {
            let len = recv(&mut b, &mut buf)?;
            send(&b, &buf[..len])
        })
    }));
}

/// One round-trip measurement: every timed round trip, in order, and what
/// each side saw.
#[derive(Debug, Clone, Default)]
pub struct RoundTrips {
    /// Timed round trips (after 100 untimed ones), ns, in
    /// the order they ran. Empty for Python, which reports only its
    /// median and p99.
    pub samples_ns: Vec<u64>,
    /// Round trips run, warm-up included.
    pub total: usize,
    /// User + system CPU time of both processes from "go" to the end of
    /// their loops, ns (0 where not measured).
    pub cpu_ns: u64,
    /// The pinger's trace (see [`SideTrace`]).
    pub pinger: SideTrace,
    /// The echoer's trace, where its loop records one.
    pub echoer: SideTrace,
    python: Option<(f64, f64)>,
}

/// What one side of a round-trip measurement saw, per round trip and per
/// block of [`FIRST`] round trips.
#[derive(Debug, Clone, Default)]
pub struct SideTrace {
    /// The CPU it ran on (from `sched_getcpu`, 255 if unknown) at the
    /// start of each timed round trip; empty if not recorded.
    pub cpus: Vec<u8>,
    /// Per block of [`FIRST`] timed round trips: its voluntary (blocked:
    /// futex sleep, empty read) and involuntary (preempted, or a yield that
    /// ran another process) context switches.
    pub switches: Vec<(u64, u64)>,
}

impl RoundTrips {
    /// Median round trip, microseconds.
    pub fn median_us(&self) -> f64 {
        match self.python {
            Some((med, _)) => med,
            None => percentile_us(&self.samples_ns, 50),
        }
    }

    /// 99th percentile, microseconds.
    pub fn p99_us(&self) -> f64 {
        match self.python {
            Some((_, p99)) => p99,
            None => percentile_us(&self.samples_ns, 99),
        }
    }

    /// Median of the first [`FIRST`] timed round trips, microseconds (NaN
    /// where the samples are not known).
    pub fn first_median_us(&self) -> f64 {
        percentile_us(&self.samples_ns[..self.samples_ns.len().min(FIRST)], 50)
    }

    /// CPU time of both processes per round trip (warm-up included in both
    /// the time and the count), microseconds; NaN where not measured.
    pub fn cpu_us_per_round_trip(&self) -> f64 {
        if self.cpu_ns == 0 || self.total == 0 {
            f64::NAN
        } else {
            self.cpu_ns as f64 / 1e3 / self.total as f64
        }
    }
}

/// The `pct`th percentile of `samples` (ns) in microseconds; NaN if empty.
pub fn percentile_us(samples: &[u64], pct: usize) -> f64 {
    if samples.is_empty() {
        return f64::NAN;
    }
    let mut v = samples.to_vec();
    v.sort_unstable();
    let n = v.len();
    v[((n * pct) / 100).min(n - 1)] as f64 / 1e3
}

/// Records one side's trace as its loop runs: the CPU at each timed round
/// trip, context switches at each block boundary. Costs a `sched_getcpu`
/// (no system call with `rseq`) per round trip and a `getrusage` per block.
struct Tracer {
    cpus: Vec<u8>,
    marks: Vec<Usage>,
}

impl Tracer {
    fn new(n: usize) -> Tracer {
        Tracer {
            cpus: Vec::with_capacity(n),
            marks: Vec::with_capacity(n / FIRST + 2),
        }
    }

    /// Called before round trip `i` (warm-up included).
    #[inline]
    fn at(&mut self, i: usize) {
        if i >= WARM_UP {
            let k = i - WARM_UP;
            if k % FIRST == 0 {
                self.marks.push(usage());
            }
            // `current_cpu` is the CPU plus one, 0 if unknown (255 here).
            self.cpus
                .push(ipc_harness::sys::shm::current_cpu().wrapping_sub(1) as u8);
        }
    }

    fn finish(mut self, out: &mut Vec<u8>) {
        self.marks.push(usage());
        out.extend_from_slice(&(self.cpus.len() as u64).to_le_bytes());
        out.extend_from_slice(&self.cpus);
        let blocks: Vec<(u64, u64)> = self
            .marks
            .windows(2)
            .map(|w| {
                (
                    w[1].voluntary.saturating_sub(w[0].voluntary),
                    w[1].involuntary.saturating_sub(w[0].involuntary),
                )
            })
            .collect();
        out.extend_from_slice(&(blocks.len() as u64).to_le_bytes());
        for (v, i) in blocks {
            out.extend_from_slice(&v.to_le_bytes());
            out.extend_from_slice(&i.to_le_bytes());
        }
    }
}

/// Reads what [`Tracer::finish`] wrote; `None` if `bytes` holds none.
fn read_trace(bytes: &[u8]) -> Option<SideTrace> {
    let word = |at: usize| -> Option<u64> {
        Some(u64::from_le_bytes(bytes.get(at..at + 8)?.try_into().ok()?))
    };
    let n = word(0)? as usize;
    let cpus = bytes.get(8..8 + n)?.to_vec();
    let k = word(8 + n)? as usize;
    let mut switches = Vec::with_capacity(k);
    for b in 0..k {
        let at = 16 + n + 16 * b;
        switches.push((word(at)?, word(at + 8)?));
    }
    Some(SideTrace { cpus, switches })
}

/// A pinger's loop: `once` does one round trip; returns its timings and
/// trace for [`measure_latency`].
pub(super) fn ping_loop(
    go: &mut dyn FnMut() -> Result<()>,
    n: usize,
    mut once: impl FnMut() -> Result<()>,
) -> Result<Vec<u8>> {
    let mut samples = Vec::with_capacity(n);
    let mut tracer = Tracer::new(n);
    go()?;
    for i in 0..n + WARM_UP {
        tracer.at(i);
        let t = sys::monotonic_ns();
        once()?;
        if i >= WARM_UP {
            samples.push(sys::monotonic_ns() - t);
        }
    }
    let mut out = Vec::with_capacity(16 + 9 * n);
    out.extend_from_slice(&(samples.len() as u64).to_le_bytes());
    for s in &samples {
        out.extend_from_slice(&s.to_le_bytes());
    }
    tracer.finish(&mut out);
    Ok(out)
}

/// An echoer's loop: `once` answers one round trip, `total` times (warm-up
/// included); returns its trace.
pub(super) fn echo_loop(
    go: &mut dyn FnMut() -> Result<()>,
    total: usize,
    once: impl FnMut() -> Result<()>,
) -> Result<Vec<u8>> {
    go()?;
    echoes(total, once)
}

/// [`echo_loop`] for an echoer that has already called `go` (as one whose
/// set-up ends by greeting its peer does).
pub(super) fn echoes(total: usize, mut once: impl FnMut() -> Result<()>) -> Result<Vec<u8>> {
    let mut tracer = Tracer::new(total.saturating_sub(WARM_UP));
    for i in 0..total {
        tracer.at(i);
        once()?;
    }
    let mut out = Vec::new();
    tracer.finish(&mut out);
    Ok(out)
}

pub(super) fn pin(cpu: Option<usize>) -> Result<()> {
    match cpu {
        Some(c) => sys::pin_to_cpu(c).map_err(|e| Error::io("sched_setaffinity", e)),
        None => Ok(()),
    }
}

/// One round-trip measurement of `n` timed round trips (after
/// 100 untimed ones). `cpu`: pin both processes to it.
pub fn measure_latency(case: LatencyCase, n: usize, cpu: Option<usize>) -> Result<RoundTrips> {
    if matches!(case, LatencyCase::PyPipe | LatencyCase::PyQueue) {
        let (med, p99) = python_latency(case, n, cpu)?;
        return Ok(RoundTrips {
            total: n + WARM_UP,
            python: Some((med, p99)),
            ..RoundTrips::default()
        });
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
                echo_loop(go, total, || {
                    read_exact(ping_r.as_fd(), &mut buf, None)?;
                    write_all(pong_w.as_fd(), &buf)
                })
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
                echo_loop(go, total, || {
                    read_exact(b.as_fd(), &mut buf, None)?;
                    write_all(b.as_fd(), &buf)
                })
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
                echo_loop(go, total, || {
                    let len = ping_rx.recv_bytes_into(&mut buf)?;
                    pong_tx.send_bytes(&buf[..len])
                })
            }));
        }
        LatencyCase::Duplex => {
            let (a, b) = duplex()?;
            connection_round_trips(
                &mut jobs,
                n,
                total,
                cpu,
                a,
                b,
                Connection::send_bytes,
                Connection::recv_bytes_into,
            );
        }
        LatencyCase::DuplexPipes => {
            let (a, b) = duplex_pipes()?;
            connection_round_trips(
                &mut jobs,
                n,
                total,
                cpu,
                a,
                b,
                PipeConnection::send_bytes,
                PipeConnection::recv_bytes_into,
            );
        }
        LatencyCase::Queue => {
            let (ping, pong) = (Queue::new()?, Queue::new()?);
            let (ping2, pong2) = (ping.clone(), pong.clone());
            jobs.push(Box::new(move |go| {
                pin(cpu)?;
                let msg = [0x5au8; LATENCY_SIZE];
                let mut buf = Vec::with_capacity(LATENCY_SIZE);
                ping.map_in();
                pong.map_in();
                ping_loop(go, n, || {
                    ping.put_bytes(&msg)?;
                    pong.get_bytes_into(&mut buf).map(drop)
                })
            }));
            jobs.push(Box::new(move |go| {
                pin(cpu)?;
                let mut buf = Vec::with_capacity(LATENCY_SIZE);
                ping2.map_in();
                pong2.map_in();
                echo_loop(go, total, || {
                    ping2.get_bytes_into(&mut buf)?;
                    pong2.put_bytes(&buf)
                })
            }));
        }
        LatencyCase::IpcChannel | LatencyCase::Iceoryx2Poll | LatencyCase::Iceoryx2Event => {
            _peer = Some(peer_latency(case, n, cpu, &mut jobs)?);
        }
        LatencyCase::PyPipe | LatencyCase::PyQueue => unreachable!("handled above"),
    }
    let (_, results) = run_sides(jobs)?;
    let extra = &results[0].extra;
    let count = extra
        .get(..8)
        .map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")) as usize);
    let Some(samples_ns) = count.and_then(|k| {
        let body = extra.get(8..8 + 8 * k)?;
        Some(
            body.chunks_exact(8)
                .map(|c| u64::from_le_bytes(c.try_into().expect("8 bytes")))
                .collect::<Vec<u64>>(),
        )
    }) else {
        return Err(bench_error("the pinger returned no timings".into()));
    };
    let pinger = read_trace(&extra[8 + 8 * samples_ns.len()..]).unwrap_or_default();
    let echoer = results
        .get(1)
        .and_then(|r| read_trace(&r.extra))
        .unwrap_or_default();
    Ok(RoundTrips {
        samples_ns,
        total,
        cpu_ns: results.iter().map(|r| r.cpu_ns).sum(),
        pinger,
        echoer,
        python: None,
    })
}

// ---------------------------------------------------------------------------
// Idle waiting
// ---------------------------------------------------------------------------

/// How long the idle measurement's consumer waits on an empty queue.
pub const IDLE_WAIT: std::time::Duration = std::time::Duration::from_millis(100);

/// Round trips the idle measurement's consumer answers before its second
/// idle wait (so its waits have just been answered quickly, as on a busy
/// queue that falls quiet).
pub const IDLE_AFTER: usize = 1000;

/// What a consumer waiting [`IDLE_WAIT`] on an empty [`Queue`] costs, in
/// microseconds of CPU time (user + system).
#[derive(Debug, Clone, Copy)]
pub struct IdleCost {
    /// A fresh consumer's first wait.
    pub cold_us: f64,
    /// Its wait right after it answered [`IDLE_AFTER`] round trips.
    pub after_busy_us: f64,
    /// The same process sleeping as long in `std::thread::sleep`s of the
    /// queue's sleep slice (10 ms): what the kernel charges for the timer
    /// wake-ups alone, the floor of any bounded-sleep wait.
    pub sleep_floor_us: f64,
}

/// Measures [`IdleCost`]. Each wait must end in `Error::Timeout`.
pub fn measure_idle() -> Result<IdleCost> {
    let (ping, pong) = (Queue::new()?, Queue::new()?);
    let (ping2, pong2) = (ping.clone(), pong.clone());
    let mut jobs: Vec<Job<'_>> = Vec::new();
    jobs.push(Box::new(move |go| {
        go()?;
        let idle = |q: &Queue| -> Result<u64> {
            let before = usage().cpu_ns;
            match q.get_bytes_timeout(IDLE_WAIT) {
                Err(Error::Timeout) => Ok(usage().cpu_ns.saturating_sub(before)),
                Ok(_) => Err(bench_error("an idle wait got a message".into())),
                Err(e) => Err(e),
            }
        };
        let cold = idle(&ping2)?;
        // The pinger starts once the first wait is over.
        pong2.put_bytes(b"go")?;
        for _ in 0..IDLE_AFTER {
            let m = ping2.get_bytes()?;
            pong2.put_bytes(&m)?;
        }
        let warm = idle(&ping2)?;
        let before = usage().cpu_ns;
        let slice = std::time::Duration::from_millis(10);
        for _ in 0..IDLE_WAIT.as_millis() / slice.as_millis() {
            std::thread::sleep(slice);
        }
        let floor = usage().cpu_ns.saturating_sub(before);
        let mut out = cold.to_le_bytes().to_vec();
        out.extend_from_slice(&warm.to_le_bytes());
        out.extend_from_slice(&floor.to_le_bytes());
        Ok(out)
    }));
    jobs.push(Box::new(move |go| {
        go()?;
        pong.get_bytes()?;
        let msg = [0x5au8; LATENCY_SIZE];
        for _ in 0..IDLE_AFTER {
            ping.put_bytes(&msg)?;
            pong.get_bytes()?;
        }
        Ok(Vec::new())
    }));
    let (_, results) = run_sides(jobs)?;
    let extra = &results[0].extra;
    if extra.len() < 24 {
        return Err(bench_error("the idle consumer returned nothing".into()));
    }
    let us = |b: &[u8]| u64::from_le_bytes(b.try_into().expect("8 bytes")) as f64 / 1e3;
    Ok(IdleCost {
        cold_us: us(&extra[..8]),
        after_busy_us: us(&extra[8..16]),
        sleep_floor_us: us(&extra[16..24]),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A side that fails in its set-up, before it is ready, ends the
    /// measurement with its error; the other side is started and released,
    /// and nobody waits for the start forever.
    #[test]
    fn a_side_that_fails_before_it_is_ready_ends_the_measurement() {
        let (done_tx, done_rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _serial = fork::serial();
            let jobs: Vec<Job<'_>> = vec![
                Box::new(|go| {
                    go()?;
                    Ok(b"ran".to_vec())
                }),
                Box::new(|_go| Err(bench_error("set-up failed".into()))),
            ];
            // No deadline to save it: only the sides' own handshake can.
            let _ = done_tx.send(run_sides_within(jobs, Duration::from_secs(3600)));
        });
        let e = done_rx
            .recv_timeout(Duration::from_secs(60))
            .expect("the measurement hung waiting for a side that had failed")
            .unwrap_err();
        assert!(
            ipc_harness::error::chain(&e).contains("set-up failed"),
            "{e:?}"
        );
    }

    /// Every side waits until the last is done before it exits: the first
    /// side is done at once, and is still there, waiting, while the second
    /// goes on.
    #[test]
    fn sides_stay_until_every_side_is_done() {
        let _serial = fork::serial();
        let (pid_r, pid_w) = sys::pipe(false).unwrap();
        let (word_r, word_w) = sys::pipe(false).unwrap();
        let jobs: Vec<Job<'_>> = vec![
            Box::new(move |go| {
                go()?;
                write_all(pid_w.as_fd(), &sys::getpid().to_le_bytes())?;
                Ok(Vec::new())
            }),
            Box::new(move |go| {
                go()?;
                // Until the parent has looked at the first side.
                let mut b = [0u8; 1];
                sys::read(word_r.as_fd(), &mut b).map_err(|e| Error::io("read", e))?;
                Ok(Vec::new())
            }),
        ];
        let checker = std::thread::spawn(move || {
            let mut pid = [0u8; 4];
            read_exact(pid_r.as_fd(), &mut pid, None).unwrap();
            // Had it exited when done, it would be reaped or a zombie by now.
            std::thread::sleep(std::time::Duration::from_millis(200));
            let pid = i32::from_le_bytes(pid);
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            write_all(word_w.as_fd(), &[1]).unwrap();
            stat.rsplit(')').next().unwrap_or("").trim().chars().next()
        });
        let (_, results) = run_sides(jobs).unwrap();
        assert_eq!(
            checker.join().unwrap(),
            Some('S'),
            "the first side, waiting"
        );
        assert_eq!(results.len(), 2);
        assert!(results[0].end_ns <= results[1].end_ns);
    }
}
