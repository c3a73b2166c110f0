//! Cross-process throughput of [`Queue`] against a raw pipe and Python's
//! `multiprocessing.Queue`, measured in the same run on the same machine.
//!
//! ```text
//! cargo run --release --example queue_bench [-- --rounds 5 --quick]
//! ```
//!
//! For each message size (64 B, 1 MiB) and topology (1 producer x 1
//! consumer, 2 x 2), every round runs the three contenders back to back
//! (interleaved, so drift in machine load hits them alike); the table gives
//! the median messages/s over the rounds and the ratios.
//!
//! - **queue**: forked producers `put_bytes`, forked consumers `get_bytes`
//!   until `Closed`. Time runs from the first producer's first put to the
//!   last consumer's last get (wall clock shared by all processes).
//! - **raw pipe**: the same processes `write` fixed-size messages to one
//!   pipe and `read` exactly that many bytes: no framing, no boundaries for
//!   messages over `PIPE_BUF` with 2 x 2 (a throughput baseline only).
//! - **python**: `python3` runs `multiprocessing.Queue` with the fork start
//!   method, producers `put(bytes)`, consumers `get()` until a sentinel.

use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ipc_harness::Queue;
use ipc_harness::harness::fork;
use ipc_harness::sys;

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_nanos() as u64
}

fn stamp(v: u64) -> Vec<u8> {
    v.to_le_bytes().to_vec()
}

fn unstamp(b: &[u8]) -> u64 {
    u64::from_le_bytes(b[..8].try_into().expect("8 bytes"))
}

/// Runs producers (each returns its start time) and consumers (each returns
/// its end time); messages per second over the span.
fn timed(
    producers: usize,
    consumers: usize,
    total: usize,
    producer: impl Fn(usize) + Clone,
    consumer: impl Fn() + Clone,
    parent_ready: impl FnOnce(),
) -> f64 {
    let _g = fork::serial();
    let mut kids = Vec::new();
    for _ in 0..consumers {
        let c = consumer.clone();
        kids.push(
            fork::spawn(move || {
                c();
                stamp(now_ns())
            })
            .expect("fork"),
        );
    }
    for _ in 0..producers {
        let p = producer.clone();
        kids.push(
            fork::spawn(move || {
                let t = now_ns();
                p(total / producers);
                stamp(t)
            })
            .expect("fork"),
        );
    }
    parent_ready();
    let reports = fork::wait_all(kids, Duration::from_secs(300)).expect("wait");
    let outs: Vec<u64> = reports
        .into_iter()
        .map(|r| unstamp(&r.expect_success()))
        .collect();
    let end = outs[..consumers].iter().max().copied().unwrap_or(0);
    let start = outs[consumers..].iter().min().copied().unwrap_or(0);
    let per_producer = total / producers;
    (per_producer * producers) as f64 / ((end - start) as f64 / 1e9)
}

fn bench_queue(size: usize, p: usize, c: usize, total: usize) -> f64 {
    let q = Queue::builder().ring_bytes(4 << 20).build().expect("queue");
    let msg = vec![0x5au8; size];
    let qp = q.clone();
    let qc = q.clone();
    let rate = timed(
        p,
        c,
        total,
        move |n| {
            for _ in 0..n {
                qp.put_bytes(&msg).expect("put");
            }
        },
        move || {
            qc.close_producer();
            while qc.get_bytes().is_ok() {}
        },
        || q.close_producer(),
    );
    drop(q);
    rate
}

fn bench_pipe(size: usize, p: usize, c: usize, total: usize) -> f64 {
    let (r, w) = sys::pipe(false).expect("pipe");
    let per_consumer = (total / p) * p / c;
    let msg = vec![0x5au8; size];
    let w2 = std::sync::Arc::new(w.try_clone().expect("dup"));
    let r2 = std::sync::Arc::new(r.try_clone().expect("dup"));
    let rate = timed(
        p,
        c,
        total,
        move |n| {
            use std::os::fd::AsFd;
            for _ in 0..n {
                let mut off = 0;
                while off < msg.len() {
                    off += sys::write(w2.as_fd(), &msg[off..]).expect("write");
                }
            }
        },
        move || {
            use std::os::fd::AsFd;
            let mut buf = vec![0u8; size];
            for _ in 0..per_consumer {
                let mut off = 0;
                while off < size {
                    let n = sys::read(r2.as_fd(), &mut buf[off..]).expect("read");
                    if n == 0 {
                        return;
                    }
                    off += n;
                }
            }
        },
        || {},
    );
    drop((r, w));
    rate
}

const PYTHON: &str = r#"
import multiprocessing as mp, sys, time
size, P, C, total = map(int, sys.argv[1:5])
def producer(q, n):
    msg = b"Z" * size
    for _ in range(n):
        q.put(msg)
def consumer(q):
    while q.get() is not None:
        pass
if __name__ == "__main__":
    mp.set_start_method("fork")
    q = mp.Queue()
    n = total // P
    cs = [mp.Process(target=consumer, args=(q,)) for _ in range(C)]
    ps = [mp.Process(target=producer, args=(q, n)) for _ in range(P)]
    for c in cs: c.start()
    t = time.perf_counter()
    for p in ps: p.start()
    for p in ps: p.join()
    for _ in range(C): q.put(None)
    for c in cs: c.join()
    print(n * P / (time.perf_counter() - t))
"#;

fn bench_python(size: usize, p: usize, c: usize, total: usize) -> Option<f64> {
    let out = Command::new("python3")
        .args(["-c", PYTHON])
        .args([size, p, c, total].map(|v| v.to_string()))
        .output()
        .ok()?;
    if !out.status.success() {
        eprintln!("python3 failed: {}", String::from_utf8_lossy(&out.stderr));
        return None;
    }
    String::from_utf8_lossy(&out.stdout).trim().parse().ok()
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    if v.is_empty() {
        f64::NAN
    } else {
        v[v.len() / 2]
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let quick = args.iter().any(|a| a == "--quick");
    let rounds: usize = args
        .iter()
        .position(|a| a == "--rounds")
        .and_then(|i| args.get(i + 1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(if quick { 1 } else { 5 });
    let scale = if quick { 10 } else { 1 };
    // (size, producers, consumers, queue/pipe messages, python messages)
    let cases = [
        (64usize, 1usize, 1usize, 2_000_000usize, 200_000usize),
        (64, 2, 2, 2_000_000, 200_000),
        (1 << 20, 1, 1, 2_000, 400),
        (1 << 20, 2, 2, 2_000, 400),
    ];
    println!(
        "{:>8} {:>5} | {:>13} {:>13} {:>13} | {:>10} {:>10}",
        "size", "PxC", "queue msg/s", "pipe msg/s", "python msg/s", "q/pipe", "q/python"
    );
    for (size, p, c, n, n_py) in cases {
        let (n, n_py) = (n / scale, (n_py / scale).max(p * 10));
        let (mut q, mut pi, mut py) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..rounds {
            q.push(bench_queue(size, p, c, n));
            pi.push(bench_pipe(size, p, c, n));
            if let Some(r) = bench_python(size, p, c, n_py) {
                py.push(r);
            }
        }
        let (q, pi, py) = (median(&mut q), median(&mut pi), median(&mut py));
        let label = if size >= 1 << 20 {
            format!("{} MiB", size >> 20)
        } else {
            format!("{size} B")
        };
        println!(
            "{:>8} {:>5} | {:>13.0} {:>13.0} {:>13.0} | {:>9.2}x {:>9.2}x",
            label,
            format!("{p}x{c}"),
            q,
            pi,
            py,
            q / pi,
            q / py
        );
    }
}
