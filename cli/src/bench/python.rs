//! Python's `multiprocessing` measured the same way (`--python`): the
//! program is `python.py`, run with `python3 -c`.

use std::process::Command;

use ipc_harness::error::{Error, Result};

use super::cases::{Case, LatencyCase};
use super::runner::bench_error;

/// The Python side: the same method (set-up, ready, go, clock from go to
/// the last receive; `time.monotonic` is `CLOCK_MONOTONIC`, as ours).
const PYTHON: &str = include_str!("python.py");

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

pub(super) fn python_throughput(case: Case, size: usize, messages: usize) -> Result<f64> {
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

pub(super) fn python_latency(
    case: LatencyCase,
    n: usize,
    cpu: Option<usize>,
) -> Result<(f64, f64)> {
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
