//! A property campaign: many generated scenarios on one channel, a tally of
//! which properties each broke, and, if a *promised* property broke, the
//! minimal scenario proptest shrank it to.

use std::collections::BTreeMap;
use std::fmt;
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
    /// The random seed; the same seed replays the same scenarios.
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
    /// Scenarios run, shrinking runs included.
    pub runs: u32,
    /// Runs before the first failure (or all runs if none failed): the
    /// number of cases it took to find it.
    pub runs_to_failure: Option<u32>,
    /// Per property: how often it broke.
    pub tally: BTreeMap<Property, PropertyTally>,
    /// A broken promise: the minimal scenario and its report.
    pub failure: Option<(Scenario, String)>,
    /// Wall time.
    pub elapsed: Duration,
    /// What became of every message, over all runs, and what the faults
    /// did.
    pub accounting: Accounting,
}

impl CampaignResult {
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
            "{}: {} runs in {:.1?}",
            self.channel, self.runs, self.elapsed
        )?;
        if self.accounting.killed + self.accounting.stopped + self.accounting.closed_early > 0 {
            write!(f, "\n{}", self.accounting)?;
        }
        if let Some((scenario, report)) = &self.failure {
            write!(f, "\nminimal failing scenario: {scenario}\n{report}")?;
        }
        Ok(())
    }
}

/// Runs a campaign of generated scenarios on `channel`.
pub fn campaign<C: Channel>(channel: &C, config: &CampaignConfig) -> CampaignResult {
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
    CampaignResult {
        channel: channel.name(),
        promises,
        seed: config.seed,
        runs: runs.get(),
        runs_to_failure: first_failure.get(),
        tally: tally.into_inner(),
        failure,
        elapsed: start.elapsed(),
        accounting: accounting.into_inner(),
    }
}
