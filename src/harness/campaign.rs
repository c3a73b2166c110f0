//! A property campaign: many generated scenarios on one channel, a tally of
//! which properties each broke, and, if a *promised* property broke, the
//! minimal scenario proptest shrank it to.
//!
//! # Every failure replayable
//! - The result's display prints the seed and a line to paste that replays
//!   the campaign: the environment variable [`SEED_ENV`]
//!   (`IPC_HARNESS_SEED=...`) overrides [`CampaignConfig::seed`].
//! - A campaign run from a test keeps each seed with which it broke a
//!   promise in [`CampaignConfig::regressions`]
//!   (`proptest-regressions/campaigns.txt` by default, when that directory
//!   exists) and replays them first on every later run.
//! - The minimal scenario is run again alone a few times; if it then
//!   passes, the failure depends on timing, and the result says so and how
//!   often it failed ([`CampaignResult::replays`]).
//!
//! ```
//! use ipc_harness::harness::campaign::{CampaignConfig, campaign};
//! use ipc_harness::harness::transports::PipeChannel;
//!
//! let mut config = CampaignConfig::new(4, 7);
//! config.max_size = Some(5000);
//! config.regressions = None; // keep no file from this example
//! let result = campaign(&PipeChannel, &config);
//! assert!(result.promises_held(), "{result}");
//! assert!(result.to_string().contains("seed 7"));
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use proptest::test_runner::{Config, RngAlgorithm, TestCaseError, TestError, TestRng, TestRunner};

use proptest::strategy::Strategy;

use super::channel::{Channel, Promises, Property};
use super::check::Accounting;
use super::fault::FaultRules;
use super::run::{RunOptions, run_with};
use super::scenario::{Limits, Scenario, scenarios, scenarios_with_faults};

/// How to run a campaign.
#[derive(Debug, Clone)]
pub struct CampaignConfig {
    /// Scenarios to generate (shrinking runs come on top).
    pub cases: u32,
    /// The random seed; the same seed replays the same scenarios. The
    /// environment variable [`SEED_ENV`] (`IPC_HARNESS_SEED`), when set,
    /// overrides it.
    pub seed: u64,
    /// Stop generating new scenarios after this long.
    pub time_budget: Option<Duration>,
    /// Cap on processes per side (producers, consumers).
    pub max_processes: Option<usize>,
    /// Cap on the message size.
    pub max_size: Option<usize>,
    /// How each scenario runs.
    pub run: RunOptions,
    /// Generate scenarios with faults (kills, stops, early closes, tiny
    /// buffers), as far as the channel's promises allow (see
    /// [`fault`](super::fault)).
    pub faults: bool,
    /// Shrink a failure to a minimal scenario (costs extra runs).
    pub shrink: bool,
    /// Where each seed that broke a promise is kept, one
    /// `channel<TAB>seed<TAB>cases` line each, replayed first (for this
    /// channel) by every later campaign. [`CampaignConfig::new`] sets it to
    /// [`DEFAULT_REGRESSIONS`] when called on a test thread (any thread not
    /// named `main`, as `cargo test` runs tests on) and the directory
    /// `proptest-regressions/` exists where it runs (the package root,
    /// under `cargo test`); otherwise `None`, which keeps nothing.
    pub regressions: Option<PathBuf>,
    /// How many times a failure's minimal scenario is run again alone, to
    /// tell a failure that replays from one that depends on timing.
    pub replays: u32,
}

/// The environment variable that overrides [`CampaignConfig::seed`]: paste
/// the line a failing campaign prints to replay it.
pub const SEED_ENV: &str = "IPC_HARNESS_SEED";

/// The file a campaign run from a test keeps its failing seeds in.
pub const DEFAULT_REGRESSIONS: &str = "proptest-regressions/campaigns.txt";

fn default_regressions() -> Option<PathBuf> {
    let on_test_thread = std::thread::current().name().is_some_and(|n| n != "main");
    let kept = Path::new(DEFAULT_REGRESSIONS);
    (on_test_thread && kept.parent().is_some_and(Path::is_dir)).then(|| kept.to_path_buf())
}

/// The `(channel, seed, cases)` lines of the regressions file at `path`; a
/// missing file is an empty list.
pub fn read_regressions(path: &Path) -> Vec<(String, u64, u32)> {
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

/// Appends `(channel, seed, cases)` to the regressions file at `path`
/// (creating it and its directory, with a header), unless the seed is there
/// for the channel. The `ipc-harness check` tool keeps its file the same way.
pub fn keep_regression(path: &Path, channel: &str, seed: u64, cases: u32) -> std::io::Result<()> {
    if read_regressions(path)
        .iter()
        .any(|r| r.0 == channel && r.1 == seed)
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
            "# Seeds with which a campaign broke a promise: channel, seed, cases.\n# Later campaigns on the channel replay them first. Commit this file."
        )?;
    }
    writeln!(f, "{channel}\t{seed}\t{cases}")
}

/// How the minimal failing scenario did when run again alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Replays {
    /// Runs that broke a promise again.
    pub failed: u32,
    /// Runs made.
    pub of: u32,
}

impl Replays {
    /// It did not fail every time: the failure depends on timing (on how
    /// the processes interleave), not on the scenario alone.
    pub fn timing_dependent(&self) -> bool {
        self.failed < self.of
    }
}

impl CampaignConfig {
    /// `cases` scenarios from `seed`, with default limits.
    pub fn new(cases: u32, seed: u64) -> Self {
        CampaignConfig {
            cases,
            seed,
            time_budget: None,
            max_processes: None,
            max_size: None,
            run: RunOptions::default(),
            faults: false,
            shrink: true,
            regressions: default_regressions(),
            replays: 3,
        }
    }

    /// The scenario limits for a channel with `promises`.
    pub fn limits(&self, promises: &Promises) -> Limits {
        let mut limits = Limits::for_promises(promises);
        if let Some(p) = self.max_processes {
            limits.max_producers = limits.max_producers.min(p.max(1));
            limits.max_consumers = limits.max_consumers.min(p.max(1));
        }
        if let Some(s) = self.max_size {
            limits.max_message = limits.max_message.min(s);
            limits.max_total = limits
                .max_total
                .min(s.saturating_mul(limits.max_messages))
                .max(1);
        }
        limits
    }
}

/// A seed from the clock and pid, for runs that were not given one.
pub fn fresh_seed() -> u64 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    (t ^ (u64::from(crate::sys::getpid().unsigned_abs()) << 32)).wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

/// What one property did over a campaign.
#[derive(Debug, Clone, Default)]
pub struct PropertyTally {
    /// Runs in which it was violated.
    pub violated_runs: u32,
    /// Violation kinds seen, with counts over all runs.
    pub kinds: BTreeMap<&'static str, u32>,
    /// The first violation seen, in words.
    pub example: Option<String>,
}

/// The result of a campaign on one channel.
#[derive(Debug, Clone)]
pub struct CampaignResult {
    /// The channel's name.
    pub channel: String,
    /// What it promises.
    pub promises: Promises,
    /// The seed used.
    pub seed: u64,
    /// The seed came from a regressions file, replayed before the
    /// campaign's own.
    pub replayed_regression: bool,
    /// The test that ran the campaign (its thread's name), if any: the
    /// replay line names it.
    pub test: Option<String>,
    /// Scenarios run, shrinking runs included.
    pub runs: u32,
    /// Runs before the first failure (or all runs if none failed): the
    /// number of cases it took to find it.
    pub runs_to_failure: Option<u32>,
    /// Per property: how often it broke.
    pub tally: BTreeMap<Property, PropertyTally>,
    /// A broken promise: the minimal scenario and its report.
    pub failure: Option<(Scenario, String)>,
    /// How the minimal scenario did when run again alone
    /// ([`CampaignConfig::replays`] times); `None` without a failure.
    pub replays: Option<Replays>,
    /// Wall time.
    pub elapsed: Duration,
    /// What became of every message, over all runs, and what the faults
    /// did.
    pub accounting: Accounting,
}

impl CampaignResult {
    /// The line to paste that replays this campaign, e.g.
    /// `IPC_HARNESS_SEED=42 cargo test my_test -- --exact`.
    pub fn replay_line(&self) -> String {
        match &self.test {
            Some(test) => format!("{SEED_ENV}={} cargo test {test} -- --exact", self.seed),
            None => format!("{SEED_ENV}={} <the same command>", self.seed),
        }
    }

    /// True if every promised property held in every run.
    pub fn promises_held(&self) -> bool {
        self.failure.is_none()
    }

    /// The table cell for `property`: `pass`, `FAIL: Kind`, or
    /// `not promised` (with what was seen anyway).
    pub fn cell(&self, property: Property) -> String {
        let tally = self.tally.get(&property);
        let kinds = tally.map(|t| t.kinds.keys().copied().collect::<Vec<_>>().join(", "));
        match (self.promises.promises(property), tally) {
            (true, None) => "pass".into(),
            (true, Some(_)) => format!("FAIL: {}", kinds.unwrap_or_default()),
            (false, None) => "not promised".into(),
            (false, Some(t)) => format!(
                "not promised; broke {}/{}: {}",
                t.violated_runs,
                self.runs,
                kinds.unwrap_or_default()
            ),
        }
    }
}

impl fmt::Display for CampaignResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {} runs in {:.1?}, seed {}",
            self.channel, self.runs, self.elapsed, self.seed
        )?;
        if self.replayed_regression {
            write!(f, " (a kept regression, replayed first)")?;
        }
        if self.accounting.killed + self.accounting.stopped + self.accounting.closed_early > 0 {
            write!(f, "\n{}", self.accounting)?;
        }
        if let Some((_, report)) = &self.failure {
            match self.replays {
                Some(r) if r.timing_dependent() => write!(
                    f,
                    "\nminimal failing scenario; TIMING-DEPENDENT: run again alone it failed {} of {} times, so the failure depends on how the processes interleave, not on the scenario alone:",
                    r.failed, r.of
                )?,
                Some(r) => write!(
                    f,
                    "\nminimal failing scenario (failed {} of {} times run again alone):",
                    r.failed, r.of
                )?,
                None => write!(f, "\nminimal failing scenario:")?,
            }
            write!(f, "\n{report}")?;
            if !report.ends_with('\n') {
                writeln!(f)?;
            }
            write!(f, "replay: {}", self.replay_line())?;
        }
        Ok(())
    }
}

/// Runs a campaign of generated scenarios on `channel`: first each seed
/// kept for it in [`CampaignConfig::regressions`], then its own (from
/// [`SEED_ENV`] if set, else [`CampaignConfig::seed`]). A failure's seed is
/// kept there, and its minimal scenario is run again alone
/// [`CampaignConfig::replays`] times.
pub fn campaign<C: Channel>(channel: &C, config: &CampaignConfig) -> CampaignResult {
    let start = Instant::now();
    let name = channel.name();
    let mut replayed_runs = 0;
    if let Some(path) = &config.regressions {
        for (_, seed, cases) in read_regressions(path).into_iter().filter(|r| r.0 == name) {
            let mut replay = config.clone();
            replay.seed = seed;
            replay.cases = cases;
            let mut result = campaign_once(channel, &replay);
            replayed_runs += result.runs;
            if !result.promises_held() {
                result.replayed_regression = true;
                result.elapsed = start.elapsed();
                return result;
            }
        }
    }
    let mut config = config.clone();
    if let Some(seed) = std::env::var(SEED_ENV)
        .ok()
        .and_then(|s| s.trim().parse().ok())
    {
        config.seed = seed;
    }
    let mut result = campaign_once(channel, &config);
    if !result.promises_held() {
        if let Some(path) = &config.regressions {
            // Best effort: a read-only tree loses the seed, not the verdict.
            let _ = keep_regression(path, &name, config.seed, config.cases);
        }
    }
    result.runs += replayed_runs;
    result.elapsed = start.elapsed();
    result
}

fn campaign_once<C: Channel>(channel: &C, config: &CampaignConfig) -> CampaignResult {
    let promises = channel.promises();
    let limits = config.limits(&promises);
    let strategy = if config.faults {
        scenarios_with_faults(limits, FaultRules::for_promises(&promises)).boxed()
    } else {
        scenarios(limits).boxed()
    };
    let mut seed_bytes = [0u8; 32];
    seed_bytes[..8].copy_from_slice(&config.seed.to_le_bytes());
    let rng = TestRng::from_seed(RngAlgorithm::ChaCha, &seed_bytes);
    let proptest_config = Config {
        cases: config.cases,
        failure_persistence: None,
        max_shrink_iters: if config.shrink { 256 } else { 0 },
        // Shrinking forks many processes: bound it in time, too.
        max_shrink_time: 60_000,
        ..Config::default()
    };
    let mut runner = TestRunner::new_with_rng(proptest_config, rng);

    let start = Instant::now();
    let tally = std::cell::RefCell::new(BTreeMap::<Property, PropertyTally>::new());
    let runs = std::cell::Cell::new(0u32);
    let first_failure = std::cell::Cell::new(None::<u32>);
    let accounting = std::cell::RefCell::new(Accounting::default());
    let outcome = runner.run(&strategy, |scenario| {
        if first_failure.get().is_none() && config.time_budget.is_some_and(|b| start.elapsed() > b)
        {
            return Ok(()); // out of time: not run, not counted
        }
        runs.set(runs.get() + 1);
        let report = run_with(channel, &scenario, config.run);
        accounting.borrow_mut().add(&report.accounting);
        let mut tally = tally.borrow_mut();
        for v in &report.violations {
            let t = tally.entry(v.property()).or_default();
            *t.kinds.entry(v.kind()).or_default() += 1;
            if t.example.is_none() {
                t.example = Some(v.to_string());
            }
        }
        for p in Property::ALL {
            if report.violates(p) {
                tally.entry(p).or_default().violated_runs += 1;
            }
        }
        if report.broken_promises().is_empty() {
            Ok(())
        } else {
            if first_failure.get().is_none() {
                first_failure.set(Some(runs.get()));
            }
            Err(TestCaseError::fail(report.to_string()))
        }
    });
    let failure = match outcome {
        Ok(()) => None,
        Err(TestError::Fail(reason, minimal)) => Some((minimal, reason.message().to_string())),
        Err(TestError::Abort(reason)) => Some((
            Scenario::simple(&[]),
            format!("aborted: {}", reason.message()),
        )),
    };
    let replays = match &failure {
        Some((minimal, _)) if config.replays > 0 => {
            let failed = (0..config.replays)
                .filter(|_| {
                    !run_with(channel, minimal, config.run)
                        .broken_promises()
                        .is_empty()
                })
                .count() as u32;
            runs.set(runs.get() + config.replays);
            Some(Replays {
                failed,
                of: config.replays,
            })
        }
        _ => None,
    };
    CampaignResult {
        channel: channel.name(),
        promises,
        seed: config.seed,
        replayed_regression: false,
        test: std::thread::current()
            .name()
            .filter(|n| *n != "main")
            .map(str::to_string),
        runs: runs.get(),
        runs_to_failure: first_failure.get(),
        tally: tally.into_inner(),
        failure,
        replays,
        elapsed: start.elapsed(),
        accounting: accounting.into_inner(),
    }
}
