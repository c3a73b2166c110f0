//! `ipc-harness`: run the property campaign over every transport and print
//! what held (`check`), and talk through named pipes (`fifo`).

#![deny(unsafe_code)]

use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand, ValueEnum};
use ipc_harness::harness::campaign::{CampaignConfig, CampaignResult, fresh_seed};
use ipc_harness::harness::channel::Property;
use ipc_harness::harness::check::Accounting;
use ipc_harness_cli::fifo_cli::FifoCommand;
use ipc_harness_cli::registry::{self, Entry, Kind};

#[derive(Parser)]
#[command(
    name = "ipc-harness",
    version,
    about = "Linux IPC whose message semantics are proven by property tests across forked processes"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the property campaign over every transport and print what held.
    #[command(after_help = "Examples:
  ipc-harness check                          # every primitive and raw transport
  ipc-harness check --include-pitfalls       # and show each pitfall being caught
  ipc-harness check --primitive 'pipe()' --cases 500
  ipc-harness check --seed 42                # replay the same scenarios
  ipc-harness check --signal-storm 200       # every process interrupted every 200 us
  ipc-harness check --format json > check.json

Exit status: 0 every promise held, 1 a promise was broken, 2 bad usage.")]
    Check(CheckArgs),
    /// Run a pitfall's naive code for real, explain what happened, then run the fix.
    #[command(after_help = "Examples:
  ipc-harness demo --list
  ipc-harness demo coalescing
  ipc-harness demo --all

Exit status: 0 the demo showed the failure and the fix, 1 it did not, 2 bad usage.")]
    Demo(DemoArgs),
    /// Cross-process throughput and round-trip benchmark: every primitive against the raw transports (and Python's multiprocessing with --python).
    #[command(after_help = "Examples:
  ipc-harness bench                                   # 5 interleaved rounds, about a minute
  ipc-harness bench --quick --rounds 1                # CI-sized
  ipc-harness bench --python --format json > bench.json")]
    Bench(ipc_harness_cli::bench::BenchArgs),
    /// Show what this kernel provides: PIPE_BUF, pipe capacities, packet pipes, SEQPACKET, pidfd, RLIMIT_NOFILE.
    Probe,
    /// Named pipes by path: the second seed's father (`listen`) and son (`send`).
    #[command(subcommand)]
    Fifo(FifoCommand),
}

#[derive(clap::Args)]
#[command(group(clap::ArgGroup::new("which").required(true).args(["name", "list", "all"])))]
struct DemoArgs {
    /// The pitfall to show (see --list).
    name: Option<String>,
    /// List the demos with a one-line summary each.
    #[arg(long)]
    list: bool,
    /// Run every demo, in catalogue order.
    #[arg(long)]
    all: bool,
}

fn demo(args: DemoArgs) -> ExitCode {
    use ipc_harness_cli::demo::{self, DemoError};
    if args.list {
        for (name, summary) in demo::list() {
            println!("  {name:<27} {summary}");
        }
        return ExitCode::SUCCESS;
    }
    let mut out = std::io::stdout().lock();
    let result = match &args.name {
        Some(name) => demo::run(name, &mut out).map(|o| vec![o]),
        None => demo::run_all(&mut out),
    };
    match result {
        Ok(o) if o.iter().all(|o| o.shown()) => ExitCode::SUCCESS,
        Ok(_) => ExitCode::from(1),
        Err(e @ DemoError::Unknown { .. }) => {
            eprintln!("ipc-harness: {e}");
            ExitCode::from(2)
        }
        Err(e) => {
            eprintln!("ipc-harness: {}", ipc_harness::error::chain(&e));
            ExitCode::FAILURE
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Format {
    Text,
    Json,
}

#[derive(clap::Args)]
struct CheckArgs {
    /// Check only this transport (repeatable); see the table for names.
    #[arg(long = "primitive", value_name = "NAME")]
    primitives: Vec<String>,
    /// Scenarios per transport.
    #[arg(long, default_value_t = 128)]
    cases: u32,
    /// Random seed; the same seed replays the same scenarios.
    #[arg(long)]
    seed: Option<u64>,
    /// Stop starting new scenarios for a transport after this many seconds.
    #[arg(long, value_name = "SECONDS")]
    time_budget: Option<f64>,
    /// At most this many producer and consumer processes each.
    #[arg(long, value_name = "N")]
    processes: Option<usize>,
    /// Largest message in bytes.
    #[arg(long, value_name = "BYTES")]
    max_size: Option<usize>,
    /// Run every producer and consumer under a signal storm: SIGALRM every
    /// MICROS microseconds, no SA_RESTART, so blocking calls keep failing with EINTR.
    #[arg(long, value_name = "MICROS")]
    signal_storm: Option<u64>,
    /// Generate scenarios with faults: processes SIGKILLed before, during
    /// or after a send or receive, SIGSTOPped and continued, closing their
    /// end early, and kernel buffers shrunk to one page.
    #[arg(long)]
    faults: bool,
    /// Soak: run random scenarios with faults (and, every other round, a
    /// signal storm) on every primitive until DURATION is up (e.g. 90s,
    /// 10m, 1h), then print the figures. Exit 1 if any promise broke.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    soak: Option<Duration>,
    /// Also run the deliberately broken pitfall variants (they must fail).
    #[arg(long)]
    include_pitfalls: bool,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
    /// Also write a JUnit XML report here (one test case per transport and property).
    #[arg(long, value_name = "FILE")]
    junit: Option<std::path::PathBuf>,
    /// Failing seeds are appended here, and replayed first by later runs.
    #[arg(
        long,
        value_name = "FILE",
        default_value = "proptest-regressions/check.txt"
    )]
    regressions: std::path::PathBuf,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Check(args) => check(args),
        Command::Demo(args) => demo(args),
        Command::Bench(args) => match args.run(&mut std::io::stdout().lock()) {
            Ok(_) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("ipc-harness: {}", ipc_harness::error::chain(&e));
                ExitCode::FAILURE
            }
        },
        Command::Probe => {
            print!("{}", ipc_harness::probe::probe());
            ExitCode::SUCCESS
        }
        Command::Fifo(cmd) => match cmd.run(&mut std::io::stdout().lock(), std::io::stdin().lock())
        {
            Ok(_) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("ipc-harness: {}", ipc_harness::error::chain(&e));
                ExitCode::FAILURE
            }
        },
    }
}

/// Parses `90`, `90s`, `10m`, `1h`, `1.5h`.
fn parse_duration(s: &str) -> Result<Duration, String> {
    let (number, unit) = match s.find(|c: char| c.is_ascii_alphabetic()) {
        Some(i) => s.split_at(i),
        None => (s, "s"),
    };
    let scale = match unit {
        "s" => 1.0,
        "m" => 60.0,
        "h" => 3600.0,
        _ => return Err(format!("unknown unit {unit:?}: use s, m or h")),
    };
    match number.parse::<f64>() {
        Ok(n) if n.is_finite() && n > 0.0 => Ok(Duration::from_secs_f64(n * scale)),
        _ => Err(format!("{s:?} is not a duration such as 90s, 10m or 1h")),
    }
}

fn check(args: CheckArgs) -> ExitCode {
    let mut entries = registry::all(args.include_pitfalls);
    if args.soak.is_some() && args.primitives.is_empty() {
        entries = registry::primitives();
    }
    if !args.primitives.is_empty() {
        let all_names: Vec<String> = registry::all(true).iter().map(|e| e.name.clone()).collect();
        for wanted in &args.primitives {
            if !all_names.contains(wanted) {
                eprintln!(
                    "ipc-harness: no transport named {wanted:?}; known: {}",
                    all_names.join(", ")
                );
                return ExitCode::from(2);
            }
        }
        entries = registry::all(true)
            .into_iter()
            .filter(|e| args.primitives.contains(&e.name))
            .collect();
    }
    let seed = args.seed.unwrap_or_else(fresh_seed);
    let mut config = CampaignConfig::new(args.cases, seed);
    config.time_budget = args.time_budget.map(Duration::from_secs_f64);
    config.max_processes = args.processes;
    config.max_size = args.max_size;
    config.run.signal_storm = args.signal_storm.map(Duration::from_micros);
    config.faults = args.faults;
    if let Some(duration) = args.soak {
        return soak(entries, config, duration, &args);
    }

    let replays = read_regressions(&args.regressions);
    let start = Instant::now();
    let bar = if std::io::stderr().is_terminal() {
        let bar = indicatif::ProgressBar::new(entries.len() as u64);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{bar:30} {pos}/{len} {elapsed} checking {msg}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        Some(bar)
    } else {
        None
    };
    let mut results: Vec<(Entry, CampaignResult)> = Vec::new();
    let mut skipped = Vec::new();
    for entry in entries {
        if let Some(reason) = entry.skip_reason() {
            skipped.push(format!("skipped {}: {reason}", entry.name));
            continue;
        }
        match &bar {
            Some(bar) => bar.set_message(entry.name.clone()),
            None if args.format == Format::Text => eprintln!("checking {} ...", entry.name),
            None => {}
        }
        // Seeds that failed before come first; a failure among them is the
        // transport's result.
        let mut result = None;
        for (seed, cases) in replays
            .iter()
            .filter(|r| r.0 == entry.name)
            .map(|r| (r.1, r.2))
        {
            let mut replay = config.clone();
            replay.seed = seed;
            replay.cases = cases;
            let r = entry.campaign(&replay);
            if !r.promises_held() {
                result = Some(r);
                break;
            }
        }
        let result = result.unwrap_or_else(|| entry.campaign(&config));
        if !result.promises_held() && !matches!(entry.kind, Kind::Pitfall(_)) {
            if let Err(e) = append_regression(&args.regressions, &entry.name, &result, config.cases)
            {
                eprintln!(
                    "ipc-harness: could not record the failing seed in {}: {e}",
                    args.regressions.display()
                );
            }
        }
        results.push((entry, result));
        if let Some(bar) = &bar {
            bar.inc(1);
        }
    }
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    for line in &skipped {
        eprintln!("ipc-harness: {line}");
    }
    if let Some(path) = &args.junit {
        if let Err(e) = std::fs::write(path, junit(&results)) {
            eprintln!("ipc-harness: writing {}: {e}", path.display());
            return ExitCode::FAILURE;
        }
    }
    // Pitfall rows break promises by design: with --include-pitfalls the
    // expected exit status is 1, and a pitfall the harness missed is
    // printed as MISSED.
    let broken = results.iter().any(|(_, r)| !r.promises_held());
    let out = &mut std::io::stdout().lock();
    let written = match args.format {
        Format::Text => print_text(out, &results, &config, start.elapsed(), &args),
        Format::Json => print_json(out, &results, &config, start.elapsed()),
    };
    if let Err(e) = written {
        eprintln!("ipc-harness: writing the report: {e}");
        return ExitCode::FAILURE;
    }
    if broken {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

fn replay_command(name: &str, config: &CampaignConfig) -> String {
    let mut command = format!(
        "ipc-harness check --primitive '{name}' --seed {} --cases {}",
        config.seed, config.cases
    );
    if config.faults {
        command.push_str(" --faults");
    }
    if let Some(storm) = config.run.signal_storm {
        command.push_str(&format!(" --signal-storm {}", storm.as_micros()));
    }
    command
}

/// What a soak did, added up over its rounds.
#[derive(Default)]
struct SoakFigures {
    scenarios: u64,
    campaigns: u64,
    broken: Vec<String>,
    accounting: Accounting,
}

/// `check --soak`: rounds of fault campaigns over `entries` (a fresh seed
/// each; every other round under a signal storm) until `duration` is up.
fn soak(
    entries: Vec<Entry>,
    mut config: CampaignConfig,
    duration: Duration,
    args: &CheckArgs,
) -> ExitCode {
    let entries: Vec<Entry> = entries
        .into_iter()
        .filter(|e| e.skip_reason().is_none())
        .collect();
    let start = Instant::now();
    let end = start + duration;
    config.faults = true;
    // Small campaigns, so the time is spread over every entry and seed.
    config.cases = config.cases.min(16);
    let storm = config
        .run
        .signal_storm
        .unwrap_or(Duration::from_micros(200));
    let mut figures = SoakFigures::default();
    let mut round = 0u64;
    eprintln!(
        "ipc-harness check --soak: {} transport(s), {:.0}s",
        entries.len(),
        duration.as_secs_f64()
    );
    'soak: loop {
        for entry in &entries {
            let now = Instant::now();
            if now >= end {
                break 'soak;
            }
            let mut cfg = config.clone();
            cfg.seed = fresh_seed();
            cfg.time_budget = Some(end - now);
            cfg.run.signal_storm = (round % 2 == 1).then_some(storm);
            let result = entry.campaign(&cfg);
            figures.scenarios += u64::from(result.runs);
            figures.campaigns += 1;
            figures.accounting.add(&result.accounting);
            if !result.promises_held() && !matches!(entry.kind, Kind::Pitfall(_)) {
                let _ = append_regression(&args.regressions, &entry.name, &result, cfg.cases);
                figures.broken.push(format!(
                    "{result}\nreplay: {}",
                    replay_command(&entry.name, &cfg)
                ));
            }
        }
        round += 1;
        eprintln!(
            "  {:>6.0}s: {} scenarios, {} killed, {} violations",
            start.elapsed().as_secs_f64(),
            figures.scenarios,
            figures.accounting.killed,
            figures.broken.len()
        );
    }
    let a = &figures.accounting;
    let out = &mut std::io::stdout().lock();
    let _ = writeln!(
        out,
        "soak: {:.0}s, {} transport(s), {} campaigns, seed fresh per campaign",
        start.elapsed().as_secs_f64(),
        entries.len(),
        figures.campaigns
    );
    let pct = |n| 100.0 * a.fraction(n);
    let rows = [
        ("scenarios run", figures.scenarios.to_string()),
        ("processes killed", a.killed.to_string()),
        ("processes stopped and continued", a.stopped.to_string()),
        ("processes that closed early", a.closed_early.to_string()),
        (
            "signals delivered",
            format!(
                "{} ({} SIGKILL, {} SIGSTOP+SIGCONT, {} storm SIGALRM)",
                a.signals(),
                a.killed,
                2 * a.stopped,
                a.storm_signals
            ),
        ),
        ("messages sent (attempted)", a.attempted.to_string()),
        ("  ok", format!("{} ({:.2}%)", a.ok, pct(a.ok))),
        (
            "  lost to killed consumers",
            format!("{} ({:.2}%)", a.lost_to_faults, pct(a.lost_to_faults)),
        ),
        (
            "  recovered (cut by a kill, arrived)",
            format!("{} ({:.2}%)", a.recovered, pct(a.recovered)),
        ),
        (
            "  indeterminate, not arrived",
            format!(
                "{} ({:.2}%)",
                a.indeterminate_lost,
                pct(a.indeterminate_lost)
            ),
        ),
        (
            "    of which refused (no consumer left)",
            a.refused.to_string(),
        ),
        ("  duplicated", a.duplicated.to_string()),
        ("  unexpected", a.unexpected.to_string()),
        (
            "  lost without a fault to explain it",
            (a.lost - a.lost_to_faults).to_string(),
        ),
        ("violations", figures.broken.len().to_string()),
    ];
    for (name, value) in rows {
        let _ = writeln!(out, "  {name:<40} {value}");
    }
    for b in &figures.broken {
        let _ = writeln!(out, "\nPROMISE BROKEN: {b}");
    }
    if figures.broken.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

fn print_text(
    out: &mut impl Write,
    results: &[(Entry, CampaignResult)],
    config: &CampaignConfig,
    elapsed: Duration,
    args: &CheckArgs,
) -> std::io::Result<()> {
    writeln!(
        out,
        "ipc-harness check: {} scenarios per transport (random producers x consumers x message sizes), seed {}",
        config.cases, config.seed
    )?;
    writeln!(out)?;
    let name_w = results
        .iter()
        .map(|(e, _)| e.name.len())
        .max()
        .unwrap_or(10)
        .max(9);
    let cells: Vec<Vec<String>> = results
        .iter()
        .map(|(_, r)| Property::ALL.iter().map(|&p| short_cell(r, p)).collect())
        .collect();
    let col_w: Vec<usize> = Property::ALL
        .iter()
        .enumerate()
        .map(|(i, p)| {
            cells
                .iter()
                .map(|row| row[i].len())
                .chain([p.title().len()])
                .max()
                .unwrap_or(4)
        })
        .collect();
    write!(out, "{:name_w$}", "transport")?;
    for (i, p) in Property::ALL.iter().enumerate() {
        write!(out, "  {:w$}", p.title(), w = col_w[i])?;
    }
    writeln!(out, "  {:>5}  {:>7}", "runs", "time")?;
    let mut notes = Vec::new();
    for ((entry, result), row) in results.iter().zip(&cells) {
        write!(out, "{:name_w$}", entry.name)?;
        for (i, p) in Property::ALL.into_iter().enumerate() {
            write!(out, "  {:w$}", row[i], w = col_w[i])?;
            let full = result.cell(p);
            if full != "pass" && full != "not promised" {
                if let Some(example) = result.tally.get(&p).and_then(|t| t.example.as_ref()) {
                    notes.push(format!("{} / {p}: {full}\n    e.g. {example}", entry.name));
                }
            }
        }
        writeln!(
            out,
            "  {:>5}  {:>6.1}s",
            result.runs,
            result.elapsed.as_secs_f64()
        )?;
    }
    writeln!(out)?;
    writeln!(
        out,
        "pass: held in every run.  FAIL: a promised property broke.  n/p: not promised.  n/p!: not promised, and broken here as the kernel allows: the lesson."
    )?;
    if config.faults || config.run.signal_storm.is_some() {
        writeln!(out, "\nUnder faults, what became of every send:")?;
        for (entry, result) in results {
            writeln!(out, "  {}: {}", entry.name, result.accounting)?;
        }
    }
    if !notes.is_empty() {
        writeln!(out, "\nWhat broke:")?;
        for n in &notes {
            writeln!(out, "  {n}")?;
        }
    }
    for (entry, result) in results {
        match (&entry.kind, &result.failure) {
            (Kind::Primitive | Kind::Raw, Some((scenario, report))) => {
                writeln!(
                    out,
                    "\nPROMISE BROKEN by {}: minimal scenario\n  {scenario}",
                    entry.name
                )?;
                writeln!(out, "{report}")?;
                writeln!(out, "replay: {}", replay_command(&entry.name, config))?;
            }
            (Kind::Pitfall(p), Some(_)) => {
                writeln!(
                    out,
                    "\ncaught pitfall {} after {} run(s): {}",
                    p.name(),
                    result.runs_to_failure.unwrap_or(result.runs),
                    p.summary()
                )?;
            }
            (Kind::Pitfall(p), None) => {
                writeln!(
                    out,
                    "\nMISSED pitfall {}: the harness did not catch it in {} runs",
                    p.name(),
                    result.runs
                )?;
            }
            _ => {}
        }
    }
    let primitives = results
        .iter()
        .filter(|(e, _)| e.kind == Kind::Primitive)
        .count();
    let ok = results
        .iter()
        .filter(|(e, _)| !matches!(e.kind, Kind::Pitfall(_)))
        .all(|(_, r)| r.promises_held());
    writeln!(out)?;
    if ok {
        writeln!(
            out,
            "verdict: every promise held ({primitives} primitive(s), {} transports, {:.1}s).{}",
            results.len(),
            elapsed.as_secs_f64(),
            if args.include_pitfalls {
                ""
            } else {
                " Add --include-pitfalls to see the harness catch each naive variant."
            }
        )?;
    } else {
        writeln!(
            out,
            "verdict: a promise was BROKEN (see above); {:.1}s",
            elapsed.as_secs_f64()
        )?;
    }
    Ok(())
}

fn short_cell(result: &CampaignResult, p: Property) -> String {
    let tally = result.tally.get(&p);
    // Every kind seen, e.g. `Merged+Split`: one alone can mislead.
    let kinds = tally
        .map(|t| t.kinds.keys().copied().collect::<Vec<_>>().join("+"))
        .unwrap_or_default();
    match (result.promises.promises(p), tally) {
        (true, None) => "pass".into(),
        (true, Some(_)) => format!("FAIL {kinds}"),
        (false, None) => "n/p".into(),
        (false, Some(_)) => format!("n/p! {kinds}"),
    }
}

fn json_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn print_json(
    out: &mut impl Write,
    results: &[(Entry, CampaignResult)],
    config: &CampaignConfig,
    elapsed: Duration,
) -> std::io::Result<()> {
    let mut rows = Vec::new();
    for (entry, r) in results {
        let kind = match entry.kind {
            Kind::Primitive => "primitive".to_string(),
            Kind::Raw => "raw".to_string(),
            Kind::Pitfall(p) => format!("pitfall:{}", p.name()),
        };
        let props: Vec<String> = Property::ALL
            .iter()
            .map(|&p| {
                let t = r.tally.get(&p);
                let kinds: Vec<String> = t
                    .map(|t| t.kinds.keys().map(|k| json_str(k)).collect())
                    .unwrap_or_default();
                format!(
                    "{}:{{\"promised\":{},\"status\":{},\"violated_runs\":{},\"kinds\":[{}],\"example\":{}}}",
                    json_str(p.title()),
                    r.promises.promises(p),
                    json_str(&short_cell(r, p)),
                    t.map_or(0, |t| t.violated_runs),
                    kinds.join(","),
                    t.and_then(|t| t.example.as_deref()).map_or("null".into(), json_str),
                )
            })
            .collect();
        let failure = match &r.failure {
            None => "null".to_string(),
            Some((scenario, report)) => format!(
                "{{\"scenario\":{},\"report\":{},\"replay\":{}}}",
                json_str(&scenario.to_string()),
                json_str(report),
                json_str(&replay_command(&entry.name, config))
            ),
        };
        let a = &r.accounting;
        let accounting = format!(
            "{{\"attempted\":{},\"ok\":{},\"lost\":{},\"lost_to_faults\":{},\"recovered\":{},\"indeterminate_lost\":{},\"duplicated\":{},\"unexpected\":{},\"refused\":{},\"killed\":{},\"stopped\":{},\"closed_early\":{},\"storm_signals\":{}}}",
            a.attempted,
            a.ok,
            a.lost,
            a.lost_to_faults,
            a.recovered,
            a.indeterminate_lost,
            a.duplicated,
            a.unexpected,
            a.refused,
            a.killed,
            a.stopped,
            a.closed_early,
            a.storm_signals
        );
        rows.push(format!(
            "{{\"transport\":{},\"kind\":{},\"runs\":{},\"elapsed_ms\":{},\"promises_held\":{},\"properties\":{{{}}},\"accounting\":{},\"failure\":{}}}",
            json_str(&entry.name),
            json_str(&kind),
            r.runs,
            r.elapsed.as_millis(),
            r.promises_held(),
            props.join(","),
            accounting,
            failure
        ));
    }
    writeln!(
        out,
        "{{\"seed\":{},\"cases\":{},\"elapsed_ms\":{},\"results\":[{}]}}",
        config.seed,
        config.cases,
        elapsed.as_millis(),
        rows.join(",")
    )
}

/// `(transport, seed, cases)` lines of the regressions file; a missing file
/// is an empty list.
fn read_regressions(path: &std::path::Path) -> Vec<(String, u64, u32)> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Vec::new();
    };
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let mut f = l.split('\t');
            let name = f.next()?.to_string();
            let seed = f.next()?.trim().parse().ok()?;
            let cases = f.next()?.trim().parse().ok()?;
            Some((name, seed, cases))
        })
        .collect()
}

fn append_regression(
    path: &std::path::Path,
    name: &str,
    result: &CampaignResult,
    cases: u32,
) -> std::io::Result<()> {
    if read_regressions(path)
        .iter()
        .any(|r| r.0 == name && r.1 == result.seed)
    {
        return Ok(());
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let new = !path.exists();
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    if new {
        writeln!(
            f,
            "# Seeds with which `ipc-harness check` found a broken promise: transport, seed, cases.\n# Later runs replay them first. Commit this file."
        )?;
    }
    writeln!(f, "{name}\t{}\t{cases}", result.seed)
}

fn xml(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A JUnit report: a test suite per transport, a test case per property.
fn junit(results: &[(Entry, CampaignResult)]) -> String {
    let mut out = String::from(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites name=\"ipc-harness check\">\n",
    );
    for (entry, r) in results {
        let failures = Property::ALL
            .iter()
            .filter(|&&p| r.promises.promises(p) && r.tally.contains_key(&p))
            .count();
        out.push_str(&format!(
            "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{failures}\" time=\"{:.3}\">\n",
            xml(&entry.name),
            Property::ALL.len(),
            r.elapsed.as_secs_f64()
        ));
        for p in Property::ALL {
            out.push_str(&format!(
                "    <testcase classname=\"{}\" name=\"{}\"",
                xml(&entry.name),
                p.title()
            ));
            let tally = r.tally.get(&p);
            match (r.promises.promises(p), tally) {
                (true, Some(t)) => out.push_str(&format!(
                    ">\n      <failure message=\"{}\">{}</failure>\n    </testcase>\n",
                    xml(&r.cell(p)),
                    xml(t.example.as_deref().unwrap_or(""))
                )),
                (false, _) => {
                    out.push_str(">\n      <skipped message=\"not promised\"/>\n    </testcase>\n")
                }
                (true, None) => out.push_str("/>\n"),
            }
        }
        out.push_str("  </testsuite>\n");
    }
    out.push_str("</testsuites>\n");
    out
}
