//! A smoke test of the benchmark engine: tiny sizes, one round, every row
//! present and every ratio finite. No timing is asserted here: targets live
//! in the benchmark's report (`cargo run --release --example bench`), never
//! in a timed test on a shared machine.

use ipc_harness::harness::fork::serial;
use ipc_harness_cli::bench::{self, Case, FIRST, LatencyCase, Options};

fn python3_present() -> bool {
    std::process::Command::new("python3")
        .args(["-c", "import multiprocessing"])
        .output()
        .is_ok_and(|o| o.status.success())
}

#[test]
fn one_quick_round_has_every_row_and_finite_ratios() {
    let _serial = serial();
    let sizes = vec![64, 4096, 70_000];
    let opts = Options {
        rounds: 1,
        quick: true,
        python: true,
        sizes: sizes.clone(),
        budget: Some(256 * 1024),
        latency: true,
        scaling: true,
        peers: false,
    };
    let report = bench::run(&opts, |_| {}).expect("benchmark runs");
    let python = python3_present();
    assert_eq!(report.options.python, python);
    let failures: Vec<&String> = report
        .notes
        .iter()
        .filter(|n| !n.contains("skipped"))
        .collect();
    assert!(failures.is_empty(), "measurements failed: {failures:#?}");

    let mut cases = Case::RUST.to_vec();
    cases.extend(Case::SCALING);
    if python {
        cases.extend(Case::PYTHON);
    }
    for &case in &cases {
        for &size in &sizes {
            if !case.carries(size) {
                assert!(report.rate(case, size).is_nan(), "{case:?} at {size}");
                continue;
            }
            let rate = report.rate(case, size);
            assert!(rate.is_finite() && rate > 0.0, "{case:?} at {size}: {rate}");
            // CPU time is measured for every case but Python's.
            let cpu = report.cpu_per_msg(case, size);
            assert_eq!(
                cpu.is_finite(),
                !case.is_python(),
                "{case:?} at {size}: {cpu}"
            );
            if !case.is_python() {
                assert!(cpu > 0.0, "{case:?} at {size}: {cpu}");
            }
            for ratio in [
                report.ratio(case, Case::RawPipe, size),
                report.ratio_to_best_raw(case, size),
            ] {
                assert!(
                    ratio.is_finite() && ratio > 0.0,
                    "{case:?} at {size}: {ratio}"
                );
            }
            if let Some(peer) = case.python_peer().filter(|_| python) {
                assert!(
                    report.ratio(case, peer, size).is_finite(),
                    "{case:?} vs {peer:?}"
                );
            }
        }
    }
    for case in Case::SCALING {
        let one = case.scales().expect("a scaling case has a 1x1 form");
        for &size in &sizes {
            let r = report.ratio(case, one, size);
            assert!(
                r.is_finite() && r > 0.0,
                "{case:?} / {one:?} at {size}: {r}"
            );
        }
    }
    assert!(
        report
            .targets()
            .iter()
            .any(|t| t.name.starts_with("Queue 8x8 >= 0.7x") && t.met.is_some()),
        "a measured scaling target"
    );
    let mut lcases = LatencyCase::RUST.to_vec();
    if python {
        lcases.extend(LatencyCase::PYTHON);
    }
    for &case in &lcases {
        for pinned in [false, true] {
            let r = report.latency_ratio(case, pinned);
            assert!(r.is_finite() && r > 0.0, "{case:?} pinned={pinned}: {r}");
            let l = report.lat(case, pinned).expect("a latency row");
            let python = matches!(case, LatencyCase::PyPipe | LatencyCase::PyQueue);
            for (what, v) in [("first", &l.first_median_us), ("cpu", &l.cpu_us)] {
                assert_eq!(v.len(), 1);
                assert_eq!(v[0].is_finite(), !python, "{case:?} {what}: {v:?}");
            }
        }
    }
    let idle = report
        .idle
        .as_ref()
        .expect("the idle wait runs with the round trips");
    assert_eq!(idle.wait_ms, 100);
    for v in [&idle.cold_us, &idle.after_busy_us, &idle.sleep_floor_us] {
        assert!(v.len() == 1 && v[0].is_finite() && v[0] >= 0.0, "{idle:?}");
    }

    let table = report.table();
    for &case in &cases {
        assert!(
            table.contains(case.label()),
            "table lacks {case:?}:\n{table}"
        );
    }
    for case in lcases {
        assert!(
            table.contains(case.label()),
            "table lacks {case:?}:\n{table}"
        );
    }
    assert!(table.contains("Targets"), "{table}");
    assert!(table.contains("CPU time per message"), "{table}");
    assert!(table.contains("first1k"), "{table}");
    assert!(table.contains("Idle wait"), "{table}");
    assert!(table.contains("Scaling"), "{table}");

    let json: serde_json::Value = serde_json::from_str(&report.to_json()).expect("valid JSON");
    let rows = json["throughput"].as_array().expect("throughput rows");
    let carried = cases
        .iter()
        .map(|c| sizes.iter().filter(|&&s| c.carries(s)).count())
        .sum::<usize>();
    assert_eq!(rows.len(), carried);
    for row in rows {
        assert!(
            row["msgs_per_s"].as_f64().is_some_and(f64::is_finite),
            "{row}"
        );
        assert!(
            row["x_raw_pipe"].as_f64().is_some_and(f64::is_finite),
            "{row}"
        );
        assert!(row["gb_per_s"].as_f64().is_some(), "{row}");
        let python = row["case"]
            .as_str()
            .is_some_and(|c| c.starts_with("python"));
        assert_eq!(
            row["cpu_ns_per_msg"].as_f64().is_some_and(f64::is_finite),
            !python,
            "{row}"
        );
        assert_eq!(
            row["per_round_cpu_ns_per_msg"].as_array().map(Vec::len),
            Some(1)
        );
    }
    let lat = json["latency"].as_array().expect("latency rows");
    assert_eq!(
        lat.len(),
        2 * (LatencyCase::RUST.len() + if python { 2 } else { 0 })
    );
    for row in lat {
        let python = row["case"]
            .as_str()
            .is_some_and(|c| c.starts_with("python"));
        for key in ["first_1000_median_us", "cpu_us_per_round_trip"] {
            assert_eq!(row[key].as_f64().is_some(), !python, "{key}: {row}");
        }
    }
    for key in ["cpu_us_cold", "cpu_us_after_busy", "cpu_us_sleep_floor"] {
        assert!(
            json["idle"][key].as_f64().is_some(),
            "{key}: {}",
            json["idle"]
        );
    }
    assert_eq!(json["idle"]["wait_ms"], 100);
    assert!(json["targets"].as_array().is_some_and(|t| !t.is_empty()));
}

/// The files iceoryx2 keeps for its nodes and services (in `/dev/shm`,
/// under its default directory in `/tmp`, and in the directories the
/// benchmark gives it), sorted.
fn iceoryx2_files() -> Vec<String> {
    fn walk(dir: &std::path::Path, out: &mut Vec<String>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            let path = e.path();
            if path.is_dir() {
                walk(&path, out);
            } else {
                out.push(path.display().to_string());
            }
        }
    }
    let mut out = Vec::new();
    walk(std::path::Path::new("/tmp/iceoryx2"), &mut out);
    if let Ok(entries) = std::fs::read_dir("/tmp") {
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with("iox2_") {
                out.push(e.path().display().to_string());
            }
        }
    }
    if let Ok(entries) = std::fs::read_dir("/dev/shm") {
        out.extend(
            entries
                .flatten()
                .map(|e| e.path().display().to_string())
                .filter(|p| p.contains("iox2")),
        );
    }
    out.sort();
    out
}

/// A round-trip measurement keeps every timed round trip in order, and
/// each side's CPU at each of them and its context switches per block of
/// [`FIRST`]; pinned, both sides ran on the pinned CPU at every one.
#[test]
fn round_trips_keep_every_sample_and_each_sides_trace() {
    let _serial = serial();
    let cpu = *ipc_harness::sys::allowed_cpus()
        .expect("affinity")
        .last()
        .expect("a CPU");
    let n = 2 * FIRST + 500;
    let mut cases = vec![
        LatencyCase::Queue,
        LatencyCase::RawPipe,
        LatencyCase::Duplex,
        LatencyCase::DuplexPipes,
    ];
    if bench::PEERS_BUILT {
        cases.extend(LatencyCase::PEERS);
    }
    for case in cases {
        for pin in [None, Some(cpu)] {
            let r = bench::measure_latency(case, n, pin).expect("measured");
            assert_eq!(r.samples_ns.len(), n, "{case:?}");
            assert_eq!(r.total, n + 100, "{case:?}");
            assert!(r.samples_ns.iter().all(|&s| s > 0), "{case:?}");
            for side in [&r.pinger, &r.echoer] {
                assert_eq!(side.cpus.len(), n, "{case:?}");
                assert_eq!(side.switches.len(), 3, "{case:?}");
                if let Some(c) = pin {
                    let wrong: Vec<_> = side.cpus.iter().filter(|&&x| x as usize != c).collect();
                    assert!(
                        wrong.is_empty(),
                        "{case:?} pinned to {c}: {} elsewhere",
                        wrong.len()
                    );
                }
            }
            assert!(r.cpu_ns > 0, "{case:?}");
            let first = r.first_median_us();
            assert_eq!(first, bench::percentile_us(&r.samples_ns[..FIRST], 50));
            assert!(r.median_us().is_finite() && r.p99_us() >= r.median_us());
        }
    }
}

/// `--peers` measures ipc-channel, interprocess and iceoryx2 in a build
/// with the `peers` feature (leaving none of iceoryx2's files behind), and
/// says how to get them in one without.
#[test]
fn peers_are_measured_or_the_report_says_how_to_get_them() {
    let _serial = serial();
    let opts = Options {
        rounds: 1,
        quick: true,
        python: false,
        sizes: vec![64, 70_000],
        budget: Some(256 * 1024),
        latency: true,
        scaling: false,
        peers: true,
    };
    let before = iceoryx2_files();
    let report = bench::run(&opts, |_| {}).expect("benchmark runs");
    let table = report.table();
    if bench::PEERS_BUILT {
        assert!(report.options.peers);
        assert!(report.notes.is_empty(), "{:#?}", report.notes);
        assert_eq!(
            Case::PEERS,
            [
                Case::IpcChannel,
                Case::Interprocess,
                Case::Iceoryx2Poll,
                Case::Iceoryx2Event
            ]
        );
        for case in Case::PEERS {
            for size in [64, 70_000] {
                let r = report.rate(case, size);
                assert!(r.is_finite() && r > 0.0, "{case:?} at {size}: {r}");
                assert!(report.ratio_to_best_peer(Case::Pipe, size).is_finite());
            }
            assert!(table.contains(case.label()), "{table}");
        }
        assert_eq!(
            LatencyCase::PEERS,
            [
                LatencyCase::IpcChannel,
                LatencyCase::Iceoryx2Poll,
                LatencyCase::Iceoryx2Event
            ]
        );
        for case in LatencyCase::PEERS {
            for pinned in [false, true] {
                let r = report.latency_ratio(case, pinned);
                assert!(r.is_finite() && r > 0.0, "{case:?} pinned={pinned}: {r}");
            }
            assert!(table.contains(case.label()), "{table}");
        }
        // The best peer of a round is the fastest of all four.
        for size in [64, 70_000] {
            let best = Case::PEERS
                .iter()
                .map(|&c| report.rate(c, size))
                .fold(f64::NAN, f64::max);
            let x = report.ratio_to_best_peer(Case::Queue1x1, size);
            let want = report.rate(Case::Queue1x1, size) / best;
            assert!((x - want).abs() <= 1e-9 * want, "at {size}: {x} vs {want}");
        }
        assert!(table.contains("ahead of every peer"), "{table}");
        assert!(table.contains("Queue 1x1 / iceoryx2 poll"), "{table}");
        assert!(table.contains("Queue 1x1 / iceoryx2 event"), "{table}");
        let json: serde_json::Value = serde_json::from_str(&report.to_json()).expect("valid JSON");
        let keys = |what: &str| -> Vec<String> {
            json[what]
                .as_array()
                .expect("rows")
                .iter()
                .map(|r| r["case"].as_str().expect("a key").to_owned())
                .collect()
        };
        for key in ["iceoryx2_poll", "iceoryx2_event"] {
            assert_eq!(
                keys("throughput").iter().filter(|k| *k == key).count(),
                2,
                "{key}"
            );
            assert_eq!(
                keys("latency").iter().filter(|k| *k == key).count(),
                2,
                "{key}"
            );
        }
        assert_eq!(iceoryx2_files(), before, "iceoryx2 files left behind");
    } else {
        assert!(!report.options.peers);
        assert!(
            report
                .throughput
                .iter()
                .all(|t| !Case::PEERS.contains(&t.case)),
            "no peer rows without the feature"
        );
        assert!(table.contains("--features peers"), "{table}");
    }
}
