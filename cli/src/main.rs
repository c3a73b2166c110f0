//! `ipc-harness`: run the property campaign over every transport and print
//! what held (`check`), and talk through named pipes (`fifo`).

#![deny(unsafe_code)]

use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand, ValueEnum};
use ipc_harness::harness::campaign::{CampaignConfig, CampaignResult, fresh_seed};
use ipc_harness::harness::history::scenarios::Primitive;
use ipc_harness_cli::fifo_cli::FifoCommand;
use ipc_harness_cli::histories::{self, HistoryPitfall};
use ipc_harness_cli::registry::{self, Entry, Kind};
use ipc_harness_cli::regressions;
use ipc_harness_cli::report::{self, SoakFigures};

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
    #[command(after_help = check_after_help(), after_long_help = check_after_long_help())]
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
    /// Named pipes by path: the father/son FIFO example (Python's `os.mkfifo`), `listen` and `send`.
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

const CHECK_EXAMPLES: &str = "Examples:
  ipc-harness check                          # every primitive and raw transport
  ipc-harness check --include-pitfalls       # and show each pitfall being caught
  ipc-harness check --primitive pipe --cases 500
  ipc-harness check --primitive queue --primitive coalescing
  ipc-harness check --seed 42                # replay the same scenarios
  ipc-harness check --signal-storm 200       # every process interrupted every 200 us
  ipc-harness check --format json > check.json";

const CHECK_EXIT_STATUS: &str =
    "Exit status: 0 when every primitive and raw transport kept its promises
and every pitfall checked was caught; 1 when a promise was broken, or a
pitfall was not caught (pitfalls are meant to break: catching them is
the harness working); 2 bad usage. The verdict line says which.";

fn check_after_help() -> String {
    format!("{CHECK_EXAMPLES}\n\n{CHECK_EXIT_STATUS}")
}

/// `check --help`: also every name `--primitive` takes, from the registry.
fn check_after_long_help() -> String {
    format!(
        "Names for --primitive (a short name or the full name, any case):\n{}\n{CHECK_EXAMPLES}\n\n{CHECK_EXIT_STATUS}",
        registry::names_table()
    )
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
    /// Check only this transport (repeatable): a short name such as `pipe`,
    /// `queue` or `coalescing`, or the full name shown in the table, in any
    /// case (`--help` lists them all).
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
    /// Also run the deliberately broken pitfall variants: each must be
    /// caught breaking its promises, or the check fails.
    #[arg(long)]
    include_pitfalls: bool,
    /// Check only histories for linearizability (no delivery campaigns):
    /// every primitive that has a model, or those named by --primitive
    /// (queue-1, queue-2, queue-3, queue, joinable, pipe, duplex,
    /// duplex-pipes, fifo, fifo-chunked).
    #[arg(long)]
    linearizability: bool,
    /// Histories per primitive and fault mode (none, kill, stop, storm)
    /// checked for linearizability; 0 leaves them out.
    #[arg(long, value_name = "N", default_value_t = 4)]
    histories: u32,
    /// Write a picture of one history here: the first that was not
    /// linearizable, else the last checked. An SVG, or a self-contained
    /// HTML page if FILE ends in .html.
    #[arg(long, value_name = "FILE")]
    history_svg: Option<std::path::PathBuf>,
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
        Command::Fifo(cmd) => {
            let asked = cmd.clone();
            match cmd.run(&mut std::io::stdout().lock(), std::io::stdin().lock()) {
                Ok(_) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("ipc-harness: {}", asked.describe(&e));
                    ExitCode::FAILURE
                }
            }
        }
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

/// The primitives whose histories a check records: every one, or those
/// `names` names; `Err` with the names if `strict` and one names none.
fn history_primitives(names: &[String], strict: bool) -> Result<Vec<Primitive>, String> {
    if names.is_empty() {
        return Ok(Primitive::ALL.to_vec());
    }
    let mut chosen = Vec::new();
    for name in names {
        match Primitive::from_name(&name.to_ascii_lowercase()) {
            Some(p) => chosen.push(p),
            None if strict => {
                let all: Vec<String> = Primitive::ALL.iter().map(|p| p.name()).collect();
                return Err(format!(
                    "no primitive with a model named {name:?}; --linearizability takes {} (queue-N for any bound N)",
                    all.join(", ")
                ));
            }
            None => {}
        }
    }
    Ok(chosen)
}

/// Records and checks the histories a check asks for, with a progress
/// line per primitive on a terminal.
fn check_histories(args: &CheckArgs, seed: u64) -> Result<Option<report::Histories>, String> {
    if args.soak.is_some() || (args.histories == 0 && !args.linearizability) {
        return Ok(None);
    }
    let per_mode = args.histories.max(1);
    let primitives = history_primitives(&args.primitives, args.linearizability)?;
    if primitives.is_empty() {
        // --primitive named only transports without a model.
        return Ok(None);
    }
    let quiet = args.format != Format::Text || std::io::stderr().is_terminal();
    let outcome = histories::run(&primitives, per_mode, seed, |p| {
        if !quiet {
            eprintln!("checking histories of {p} ...");
        }
    });
    if let (Some(path), Some(recorded)) = (&args.history_svg, &outcome.to_draw) {
        histories::write_picture(path, recorded)
            .map_err(|e| format!("writing {}: {e}", path.display()))?;
    }
    // The history-only pitfalls are queues: hunted when queues are checked.
    let queues = primitives
        .iter()
        .any(|p| matches!(p, Primitive::Queue { .. }));
    let hunts = if args.include_pitfalls && queues {
        HistoryPitfall::ALL
            .into_iter()
            .map(|p| {
                if !quiet {
                    eprintln!("hunting pitfall {} ...", p.name());
                }
                histories::hunt(p, seed, histories::HUNT_BUDGET)
            })
            .collect()
    } else {
        Vec::new()
    };
    Ok(Some(report::Histories {
        outcome,
        per_mode,
        seed,
        hunts,
    }))
}

fn check(args: CheckArgs) -> ExitCode {
    if args.linearizability {
        let seed = args.seed.unwrap_or_else(fresh_seed);
        let start = Instant::now();
        let checked = match check_histories(&args, seed) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("ipc-harness: {e}");
                return ExitCode::from(2);
            }
        };
        let config = CampaignConfig::new(0, seed);
        return write_report(&args, &[], &config, start.elapsed(), checked.as_ref());
    }
    let mut entries = registry::all(args.include_pitfalls);
    if args.soak.is_some() && args.primitives.is_empty() {
        entries = registry::primitives();
    }
    if !args.primitives.is_empty() {
        match registry::select(args.primitives.iter().map(String::as_str)) {
            Ok(chosen) => entries = chosen,
            Err(unknown) => {
                eprintln!(
                    "ipc-harness: no transport named {unknown:?}; --primitive takes a short name or the full name, any case:\n{}",
                    registry::names_table()
                );
                return ExitCode::from(2);
            }
        }
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

    let replays = regressions::read(&args.regressions);
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
            if let Err(e) =
                regressions::append(&args.regressions, &entry.name, &result, config.cases)
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
    let checked = match check_histories(&args, config.seed) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("ipc-harness: {e}");
            return ExitCode::FAILURE;
        }
    };
    write_report(&args, &results, &config, start.elapsed(), checked.as_ref())
}

/// Prints the check's report; the exit status follows its verdict.
fn write_report(
    args: &CheckArgs,
    results: &[(Entry, CampaignResult)],
    config: &CampaignConfig,
    elapsed: Duration,
    histories: Option<&report::Histories>,
) -> ExitCode {
    if let Some(path) = &args.junit {
        if let Err(e) = std::fs::write(path, report::junit(results)) {
            eprintln!("ipc-harness: writing {}: {e}", path.display());
            return ExitCode::FAILURE;
        }
    }
    // Pitfall rows break promises by design: the verdict (and the exit
    // status, from the same value) asks that each be caught.
    let verdict = report::Verdict::of(results).with_histories(histories);
    let out = &mut std::io::stdout().lock();
    let written = match args.format {
        Format::Text => report::text(
            out,
            results,
            config,
            elapsed,
            args.include_pitfalls,
            histories,
        ),
        Format::Json => report::json(out, results, config, elapsed, histories),
    };
    if let Err(e) = written {
        eprintln!("ipc-harness: writing the report: {e}");
        return ExitCode::FAILURE;
    }
    if verdict.passed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
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
                let _ = regressions::append(&args.regressions, &entry.name, &result, cfg.cases);
                figures.broken.push(format!(
                    "{result}\nreplay: {}",
                    report::replay_command(&entry.name, &cfg)
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
    let written = report::soak_text(
        &mut std::io::stdout().lock(),
        &figures,
        start.elapsed(),
        entries.len(),
    );
    if let Err(e) = written {
        eprintln!("ipc-harness: writing the report: {e}");
        return ExitCode::FAILURE;
    }
    if figures.broken.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}
