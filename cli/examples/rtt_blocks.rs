//! The round trip of one case, block by block: how it settles over a long
//! run. Prints, per block of 1000 timed round trips, the median, 10th and
//! 90th percentiles, p99, the share of round trips over 10 us, how often
//! the two processes ran on the same CPU, how many CPUs the pinger moved
//! between, and each side's context switches (voluntary: blocked in the
//! kernel; involuntary: preempted or yielded to someone).
//!
//! ```text
//! cargo run --release -p ipc-harness-cli --example rtt_blocks -- [queue|raw_pipes|...] [ROUND_TRIPS] [CPU]
//! ```

use std::process::ExitCode;

use ipc_harness_cli::bench::{FIRST, LatencyCase, measure_latency, percentile_us};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let case = match args.first().map(String::as_str).unwrap_or("queue") {
        "queue" => LatencyCase::Queue,
        "raw_pipes" => LatencyCase::RawPipe,
        "raw_socketpair" => LatencyCase::RawSocket,
        "pipe" => LatencyCase::Pipe,
        "duplex" => LatencyCase::Duplex,
        other => {
            eprintln!("rtt_blocks: unknown case {other:?}");
            return ExitCode::FAILURE;
        }
    };
    let n: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(60_000);
    let cpu: Option<usize> = args.get(2).and_then(|a| a.parse().ok());
    let r = match measure_latency(case, n, cpu) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("rtt_blocks: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!(
        "{} x {n}{}: median {:.2} us, p99 {:.1} us, first {FIRST} median {:.2} us, CPU {:.2} us per round trip",
        case.label(),
        cpu.map(|c| format!(" pinned to CPU {c}"))
            .unwrap_or_default(),
        r.median_us(),
        r.p99_us(),
        r.first_median_us(),
        r.cpu_us_per_round_trip()
    );
    println!(
        "{:>6} {:>7} {:>7} {:>7} {:>7} {:>6} {:>6} {:>5} {:>9} {:>9}",
        "block", "p10", "median", "p90", "p99", ">10us", "same", "moves", "ping v/i", "echo v/i"
    );
    for (b, block) in r.samples_ns.chunks(FIRST).enumerate() {
        let over = block.iter().filter(|&&s| s > 10_000).count();
        let range = b * FIRST..(b * FIRST + block.len());
        let ping_cpus = r.pinger.cpus.get(range.clone()).unwrap_or(&[]);
        let echo_cpus = r.echoer.cpus.get(range).unwrap_or(&[]);
        let same = ping_cpus
            .iter()
            .zip(echo_cpus)
            .filter(|(a, b)| a == b)
            .count();
        let moves = ping_cpus.windows(2).filter(|w| w[0] != w[1]).count();
        let sw = |t: &ipc_harness_cli::bench::SideTrace| {
            t.switches
                .get(b)
                .map_or("-".to_string(), |(v, i)| format!("{v}/{i}"))
        };
        println!(
            "{:>6} {:>7.2} {:>7.2} {:>7.2} {:>7.1} {:>5.1}% {:>5.1}% {:>5} {:>9} {:>9}",
            b,
            percentile_us(block, 10),
            percentile_us(block, 50),
            percentile_us(block, 90),
            percentile_us(block, 99),
            100.0 * over as f64 / block.len() as f64,
            100.0 * same as f64 / block.len().max(1) as f64,
            moves,
            sw(&r.pinger),
            sw(&r.echoer),
        );
    }
    ExitCode::SUCCESS
}
