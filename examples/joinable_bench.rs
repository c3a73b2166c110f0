//! Put/get/`task_done`/join rounds per second: [`JoinableQueue`] against
//! Python's `multiprocessing.JoinableQueue`, measured in the same run on the
//! same machine.
//!
//! ```text
//! cargo run --release --example joinable_bench [-- --rounds 5 --quick]
//! ```
//!
//! A **round**: the parent puts `batch` small items (64 bytes), forked
//! workers `get` each one and call `task_done`, and the parent's `join`
//! returns. Rounds run back to back; the rate is rounds per second over
//! the whole run (workers already forked and waiting). For each case (1
//! worker x 1 item, the latency-bound hand-off; 2 workers x 100 items) every
//! repetition runs both contenders back to back (interleaved, so drift in
//! machine load hits them alike); the table gives the medians and the ratio.
//! Python uses the fork start method and the same shape of program.
//!
//! Python's single-item round is bimodal on a 2-core VM (about 6k or 40k
//! rounds/s from one run to the next, depending on where the scheduler puts
//! its feeder thread), so the table also shows each side's min..max.

use std::process::Command;
use std::time::{Duration, Instant};

use ipc_harness::JoinableQueue;
use ipc_harness::harness::fork;

fn bench_rust(workers: usize, batch: usize, rounds: usize) -> f64 {
    let _g = fork::serial();
    let q = JoinableQueue::new().expect("queue");
    let kids: Vec<_> = (0..workers)
        .map(|_| {
            let q = q.clone();
            fork::spawn(move || {
                q.close_producer();
                while q.get_bytes().is_ok() {
                    q.task_done().expect("task_done");
                }
                Vec::new()
            })
            .expect("fork")
        })
        .collect();
    let msg = [0x5au8; 64];
    // One warm-up round: the workers are running and waiting.
    q.put_bytes(&msg).expect("put");
    q.join();
    let t = Instant::now();
    for _ in 0..rounds {
        for _ in 0..batch {
            q.put_bytes(&msg).expect("put");
        }
        q.join();
    }
    let rate = rounds as f64 / t.elapsed().as_secs_f64();
    q.close_producer();
    for r in fork::wait_all(kids, Duration::from_secs(60)).expect("wait") {
        r.expect_success();
    }
    rate
}

const PYTHON: &str = r#"
import multiprocessing as mp, sys, time
workers, batch, rounds = map(int, sys.argv[1:4])
def worker(q):
    while True:
        item = q.get()
        if item is None:
            q.task_done()
            break
        q.task_done()
if __name__ == "__main__":
    mp.set_start_method("fork")
    q = mp.JoinableQueue()
    ws = [mp.Process(target=worker, args=(q,)) for _ in range(workers)]
    for w in ws: w.start()
    msg = b"Z" * 64
    q.put(msg); q.join()  # warm-up
    t = time.perf_counter()
    for _ in range(rounds):
        for _ in range(batch):
            q.put(msg)
        q.join()
    rate = rounds / (time.perf_counter() - t)
    for _ in ws: q.put(None)
    for w in ws: w.join()
    print(rate)
"#;

fn bench_python(workers: usize, batch: usize, rounds: usize) -> Option<f64> {
    let out = Command::new("python3")
        .args(["-c", PYTHON])
        .args([workers, batch, rounds].map(|v| v.to_string()))
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
    let reps: usize = args
        .iter()
        .position(|a| a == "--rounds")
        .and_then(|i| args.get(i + 1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(if quick { 1 } else { 5 });
    let scale = if quick { 10 } else { 1 };
    // (workers, batch, rust rounds, python rounds)
    let cases = [
        (1usize, 1usize, 20_000usize, 2_000usize),
        (2, 100, 1_000, 100),
    ];
    println!(
        "{:>7} {:>5} | {:>14} {:>15} | {:>8} | {:>23} {:>23}",
        "workers",
        "batch",
        "rust rounds/s",
        "python rounds/s",
        "ratio",
        "rust min..max",
        "python min..max"
    );
    for (workers, batch, n, n_py) in cases {
        let (n, n_py) = ((n / scale).max(10), (n_py / scale).max(10));
        let (mut r, mut py) = (Vec::new(), Vec::new());
        for _ in 0..reps {
            r.push(bench_rust(workers, batch, n));
            if let Some(p) = bench_python(workers, batch, n_py) {
                py.push(p);
            }
        }
        let span = |v: &[f64]| {
            format!(
                "{:.0}..{:.0}",
                v.first().copied().unwrap_or(f64::NAN),
                v.last().copied().unwrap_or(f64::NAN)
            )
        };
        let (rm, pm) = (median(&mut r), median(&mut py));
        // `median` sorted both: the spans read off the ends.
        println!(
            "{:>7} {:>5} | {:>14.0} {:>15.0} | {:>7.1}x | {:>23} {:>23}",
            workers,
            batch,
            rm,
            pm,
            rm / pm,
            span(&r),
            span(&py)
        );
    }
}
