//! The runner: [`run`] carries a [`Scenario`] out on a [`Channel`] — forks
//! one process per producer and per consumer, lets each drive its end (and
//! suffer its [faults](super::fault)), gathers their
//! [journals](super::journal), and hands them to the oracle
//! ([`check`](super::check)) — and returns its verdict as a [`Report`].
//!
//! ```
//! use ipc_harness::harness::run::run;
//! use ipc_harness::harness::scenario::Scenario;
//! use ipc_harness::harness::transports::QueueChannel;
//!
//! let report = run(&QueueChannel::DEFAULT, &Scenario::simple(&[0, 1, 100_000]));
//! assert!(report.violations.is_empty(), "{report}");
//! assert_eq!(report.accounting.ok, 3);
//! ```

// Children are forked consumers first, then producers; each takes its own
// end and journal out of `Slots` and drops the rest, and the parent keeps
// no end at all, so end of stream depends only on the children.

use std::fmt;
use std::time::{Duration, Instant};

use super::channel::{Channel, Consumer, Producer, Promises, Property};
use super::check::{Accounting, Violation, judge};
use super::fault::{self, Fault, FaultKind, Saboteur, Target};
use super::fork::{self, Outcome};
use super::journal::Journal;
use super::payload::{self, MsgId};
use super::scenario::{Pacing, ProducerPlan, Scenario};
use super::trace::{
    ConsumerLog, ConsumerTrace, Failure, ProducerLog, ProducerTrace, SendOutcome, StreamEnd, Traces,
};

/// How [`run_with`] runs a scenario.
///
/// ```
/// use ipc_harness::harness::run::RunOptions;
/// use std::time::Duration;
///
/// let options = RunOptions::default();
/// assert_eq!(options.deadline, Duration::from_secs(20));
/// assert_eq!(options.stall, Some(Duration::from_secs(1)));
/// // A quicker verdict on a hang that the stall watch cannot see (a
/// // process spinning, or asleep on a timer):
/// let quick = RunOptions { deadline: Duration::from_secs(5), ..options };
/// # let _ = quick;
/// ```
#[derive(Debug, Clone, Copy)]
pub struct RunOptions {
    /// Every process must be done by then; consumers give up waiting then,
    /// and a process still running is killed and reported as a `Hang`.
    /// Default: 20 s, room for multi-MiB messages on a loaded machine.
    /// A real hang usually ends sooner, through [`stall`](Self::stall).
    pub deadline: Duration,
    /// Report a hang before the deadline once every process of the
    /// scenario has been blocked this long, with no journal moving (see
    /// [`WaitOptions::stall`](super::fork::WaitOptions::stall) for what
    /// counts as blocked: a process pausing between sends, running, or
    /// woken by a timer or a signal does not). Default: 1 s. `None` waits
    /// for the deadline.
    pub stall: Option<Duration>,
    /// A signal storm: every producer and consumer process installs a
    /// handler for `SIGALRM` without `SA_RESTART` and arms a timer at this
    /// interval, so its blocking system calls keep failing with `EINTR`.
    /// The contract must hold all the same.
    pub signal_storm: Option<Duration>,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            deadline: Duration::from_secs(20),
            stall: Some(Duration::from_secs(1)),
            signal_storm: None,
        }
    }
}

/// Starts the storm of `options` in this (child) process; it lasts until
/// the guard is dropped. Each forked process is single-threaded, so every
/// signal lands on the thread doing the IPC.
fn storm(options: &RunOptions, scenario: &Scenario) -> Option<StormGuard> {
    let interval = options.signal_storm.or(scenario
        .signal_storm_us
        .map(|us| Duration::from_micros(us.into())))?;
    let handler = crate::sys::install_noop_handler(libc::SIGALRM).ok()?;
    crate::sys::set_interval_timer(interval).ok()?;
    Some(StormGuard { _handler: handler })
}

struct StormGuard {
    _handler: crate::sys::SavedAction,
}

impl Drop for StormGuard {
    fn drop(&mut self) {
        // Disarm first; the handler is restored after, by its own guard.
        let _ = crate::sys::set_interval_timer(Duration::ZERO);
    }
}

/// The verdict on one run.
#[derive(Debug, Clone)]
pub struct Report {
    /// The channel's name.
    pub channel: String,
    /// What it promises.
    pub promises: Promises,
    /// What was run.
    pub scenario: Scenario,
    /// Everything the oracle found.
    pub violations: Vec<Violation>,
    /// What became of every message, and what the faults did.
    pub accounting: Accounting,
}

impl Report {
    /// The violations of properties the channel promises.
    pub fn broken_promises(&self) -> Vec<&Violation> {
        self.violations
            .iter()
            .filter(|v| self.promises.promises(v.property()))
            .collect()
    }

    /// Whether any violation breaks `property`.
    pub fn violates(&self, property: Property) -> bool {
        self.violations.iter().any(|v| v.property() == property)
    }

    /// The hung consumer a violation follows from, if it does: once a
    /// consumer hangs and is killed, messages only it could have received
    /// are `Lost`, and a join it never reached never returns. Its
    /// receives before the hang count all the same: a message it took is
    /// never reported lost.
    pub fn follows_from_hang(&self, v: &Violation) -> Option<&str> {
        if !matches!(v, Violation::Lost { .. } | Violation::TaskAccounting { .. }) {
            return None;
        }
        self.violations.iter().find_map(|h| match h {
            Violation::Hang { process, .. } if process.starts_with("consumer") => {
                Some(process.as_str())
            }
            _ => None,
        })
    }

    /// Whether a violation of this kind (`"Merged"`, ...) was found.
    pub fn has(&self, kind: &str) -> bool {
        self.violations.iter().any(|v| v.kind() == kind)
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let broken = self.broken_promises().len();
        writeln!(f, "{}: {}", self.channel, self.scenario)?;
        if !self.scenario.faults.is_empty() {
            writeln!(f, "{}", self.accounting)?;
        }
        if self.violations.is_empty() {
            return write!(f, "no violations");
        }
        writeln!(
            f,
            "{} violation(s), {broken} of a promised property:",
            self.violations.len()
        )?;
        const SHOWN: usize = 12;
        for v in self.violations.iter().take(SHOWN) {
            let mark = if self.promises.promises(v.property()) {
                "BROKEN"
            } else {
                "not promised"
            };
            match self.follows_from_hang(v) {
                Some(hung) => writeln!(f, "  - [{mark}] {v} (follows from the hang of {hung})")?,
                None => writeln!(f, "  - [{mark}] {v}")?,
            }
            if let Violation::Hang { process, .. } = v {
                let follow = self
                    .violations
                    .iter()
                    .filter(|w| self.follows_from_hang(w) == Some(process.as_str()))
                    .count();
                if follow > 0 {
                    writeln!(f, "    ({follow} violation(s) below follow from this hang)")?;
                }
            }
        }
        if self.violations.len() > SHOWN {
            writeln!(f, "  ... and {} more", self.violations.len() - SHOWN)?;
        }
        Ok(())
    }
}

/// Runs `scenario` on `channel` with the default options.
pub fn run<C: Channel>(channel: &C, scenario: &Scenario) -> Report {
    run_with(channel, scenario, RunOptions::default())
}

/// Runs `scenario` on `channel`: opens it, forks one process per producer
/// and per consumer (each keeps only its own end and its own journal),
/// lets the faults strike, waits for all of them under one deadline, and
/// judges their journals.
pub fn run_with<C: Channel>(channel: &C, scenario: &Scenario, options: RunOptions) -> Report {
    let report = |violations, accounting| Report {
        channel: channel.name(),
        promises: channel.promises(),
        scenario: scenario.clone(),
        violations,
        accounting,
    };
    let parent_error = |operation: String, error: String| {
        report(
            vec![Violation::UnexpectedError {
                process: "the parent".into(),
                operation,
                error,
            }],
            Accounting::default(),
        )
    };
    let producers = scenario.producers.len();
    let consumers = scenario.consumers;
    // From the open until the parent has dropped its ends, no other thread
    // forks through the harness: no child of another scenario (or test)
    // inherits this channel's fds, and this scenario's children inherit no
    // other channel's. Released before the wait, so scenarios on other
    // threads run while this one does.
    let serial = fork::serial();
    let journals = match (0..producers + consumers)
        .map(|_| Journal::new())
        .collect::<std::io::Result<Vec<_>>>()
    {
        Ok(j) => j,
        Err(e) => return parent_error("making the journals".into(), e.to_string()),
    };
    let ends = match channel.open(producers, consumers) {
        Ok(ends) => ends,
        Err(e) => {
            return parent_error(
                format!(
                    "opening the channel for {producers} producer(s) and {consumers} consumer(s)"
                ),
                e.to_string(),
            );
        }
    };
    let mut slots = Slots {
        producers: ends.producers.into_iter().map(Some).collect(),
        consumers: ends.consumers.into_iter().map(Some).collect(),
        journals: journals.into_iter().map(Some).collect(),
    };
    let start = Instant::now();
    let deadline = start + options.deadline;

    let mut children = Vec::new();
    let mut spawn_error = None;
    for c in 0..consumers {
        let slots = &mut slots;
        match fork::spawn(move || {
            let end = slots.consumers[c].take().expect("one end per consumer");
            let journal = slots.journals[producers + c]
                .take()
                .expect("one journal each");
            slots.clear();
            let storm = storm(&options, scenario);
            consume(end, c as u16, scenario, deadline, &ConsumerLog(&journal));
            drop(storm);
            Vec::new()
        }) {
            Ok(child) => children.push(child),
            Err(e) => spawn_error = Some(e),
        }
    }
    for (p, plan) in scenario.producers.iter().enumerate() {
        let slots = &mut slots;
        match fork::spawn(move || {
            let end = slots.producers[p].take().expect("one end per producer");
            let journal = slots.journals[p].take().expect("one journal each");
            slots.clear();
            let storm = storm(&options, scenario);
            produce(end, p as u16, plan, scenario, &ProducerLog(&journal));
            drop(storm);
            Vec::new()
        }) {
            Ok(child) => children.push(child),
            Err(e) => spawn_error = Some(e),
        }
    }
    // The parent keeps no end: end of stream depends only on the children.
    let journals: Vec<Journal> = slots.journals.drain(..).flatten().collect();
    slots.clear();
    drop(serial);
    if let Some(e) = spawn_error {
        return parent_error("fork".into(), e.to_string());
    }

    // Consumers give up at the deadline; give them a moment to report.
    let wait = fork::WaitOptions {
        timeout: options.deadline + Duration::from_secs(2),
        stall: options.stall,
    };
    let progress = || journals.iter().map(|j| j.len().unwrap_or(0)).sum::<u64>();
    let results = match fork::wait_all_with(children, wait, progress) {
        Ok(r) => r,
        Err(e) => return parent_error("waiting for the children".into(), e.to_string()),
    };
    let mut traces = Traces::default();
    for (i, r) in results.into_iter().enumerate() {
        // Consumers were forked first; journals are producers first.
        let (target, journal) = if i < consumers {
            (Target::Consumer(i as u16), &journals[producers + i])
        } else {
            (
                Target::Producer((i - consumers) as u16),
                &journals[i - consumers],
            )
        };
        let planned_kill = scenario.fault_for(target).is_some_and(|f| f.kind.kills());
        let killed = planned_kill && r.outcome == Outcome::Signaled(libc::SIGKILL);
        let failure = match &r.outcome {
            Outcome::Exited(0) => None,
            _ if killed => None,
            Outcome::TimedOut { blocked_in } if r.stalled.is_some() => {
                Some(Failure::Stalled(blocked_in.clone()))
            }
            Outcome::TimedOut { blocked_in } => Some(Failure::Hung(blocked_in.clone())),
            other => Some(Failure::Crashed(other.to_string())),
        };
        let records = match journal.records() {
            Ok(records) => records,
            Err(e) => return parent_error("reading a journal".into(), e.to_string()),
        };
        let malformed = || Failure::Crashed("left a malformed journal".into());
        match target {
            Target::Consumer(c) => traces.consumers.push(match failure {
                None => ConsumerTrace::from_journal(c, &records, killed).ok_or_else(malformed),
                // A hung consumer's journal counts like a killed one's:
                // what it received is never reported lost.
                Some(Failure::Hung(blocked_in)) => hung_consumer(c, &records, blocked_in, false),
                Some(Failure::Stalled(blocked_in)) => hung_consumer(c, &records, blocked_in, true),
                Some(f) => Err(f),
            }),
            Target::Producer(p) => traces.producers.push(match failure {
                None => ProducerTrace::from_journal(p, &records, killed).ok_or_else(malformed),
                Some(f) => Err(f),
            }),
        }
    }
    let verdict = judge(scenario, &channel.promises(), &traces);
    report(verdict.violations, verdict.accounting)
}

/// The trace of consumer `c`, killed as hung: its journal read as a killed
/// process's, its end the hang.
fn hung_consumer(
    c: u16,
    records: &[(u8, Vec<u8>)],
    blocked_in: Option<String>,
    stalled: bool,
) -> Result<ConsumerTrace, Failure> {
    match ConsumerTrace::from_journal(c, records, true) {
        Some(mut trace) => {
            trace.end = StreamEnd::Hung {
                blocked_in,
                stalled,
            };
            Ok(trace)
        }
        None if stalled => Err(Failure::Stalled(blocked_in)),
        None => Err(Failure::Hung(blocked_in)),
    }
}

struct Slots<P, C> {
    producers: Vec<Option<P>>,
    consumers: Vec<Option<C>>,
    journals: Vec<Option<Journal>>,
}

impl<P, C> Slots<P, C> {
    fn clear(&mut self) {
        self.producers.clear();
        self.consumers.clear();
        self.journals.clear();
    }
}

/// A fault's action just before an operation: dies or closes (returns
/// `Err(())` for a close), arms the end's own kill point (`arm`, which says
/// whether the end has one), or starts the helper that strikes from then on.
fn before_op(fault: Option<Fault>, arm: impl FnOnce(u8) -> bool) -> Result<Option<Saboteur>, ()> {
    match fault.map(|f| f.kind) {
        Some(FaultKind::KillBefore) => fault::kill_self(),
        Some(FaultKind::CloseEarly) => Err(()),
        Some(FaultKind::KillInside { point }) => {
            if arm(point) {
                Ok(None)
            } else {
                Ok(Saboteur::start(FaultKind::KillDuring { delay_us: 0 }))
            }
        }
        Some(kind) => Ok(Saboteur::start(kind)),
        None => Ok(None),
    }
}

/// A fault's action once an operation returned (and was journalled).
fn after_op(fault: Option<Fault>) {
    if fault.is_some_and(|f| f.kind == FaultKind::KillAfter) {
        fault::kill_self();
    }
}

/// Ends a helper that has not struck by the time its process is done;
/// returns whether it had stopped the process.
fn end_saboteur(saboteur: Option<Saboteur>) -> bool {
    saboteur.is_some_and(Saboteur::end)
}

fn produce<P: Producer>(
    mut end: P,
    producer: u16,
    plan: &ProducerPlan,
    scenario: &Scenario,
    log: &ProducerLog<'_>,
) {
    if scenario.tiny_capacity {
        end.shrink_buffer();
    }
    let my_fault = scenario.fault_for(Target::Producer(producer));
    let mut saboteur = None;
    for (seq, &len) in plan.sizes.iter().enumerate() {
        if let Pacing::Pause { every, micros } = plan.pacing {
            if seq > 0 && seq % every.max(1) == 0 {
                std::thread::sleep(Duration::from_micros(micros));
            }
        }
        let seq = seq as u32;
        let fault = my_fault.filter(|f| f.op == seq);
        // Made first, so a fault timed from the start of the send strikes
        // the send itself, not the making of the message.
        let msg = payload::make(MsgId { producer, seq }, len);
        match before_op(fault, |point| end.arm_kill_point(point)) {
            Ok(started) => saboteur = saboteur.or(started),
            Err(()) => {
                drop(end);
                log.closed_early();
                break;
            }
        }
        log.starting(seq, len);
        let outcome = match end.send(&msg) {
            Ok(()) => SendOutcome::Ok,
            Err(crate::Error::Closed) => SendOutcome::Closed,
            Err(e) => SendOutcome::Failed(e.to_string()),
        };
        log.ended(seq, &outcome);
        after_op(fault);
    }
    if end_saboteur(saboteur) {
        log.stopped();
    }
    log.storm_signals(crate::sys::noop_handler_runs());
}

fn consume<C: Consumer>(
    mut end: C,
    consumer: u16,
    scenario: &Scenario,
    deadline: Instant,
    log: &ConsumerLog<'_>,
) {
    if scenario.tiny_capacity {
        end.shrink_buffer();
    }
    let my_fault = scenario.fault_for(Target::Consumer(consumer));
    let mut saboteur = None;
    let mut op = 0u32;
    let end_reason = loop {
        let fault = my_fault.filter(|f| f.op == op);
        op += 1;
        match before_op(fault, |point| end.arm_kill_point(point)) {
            Ok(started) => saboteur = saboteur.or(started),
            Err(()) => {
                drop(end);
                log.storm_signals(crate::sys::noop_handler_runs());
                log.ended(&StreamEnd::ClosedEarly);
                return;
            }
        }
        let result = end.recv(deadline);
        if let Ok(bytes) = &result {
            log.received(bytes);
            if let Some(done) = end.task_done() {
                log.task_done(done.map_err(|e| e.to_string()));
            }
        }
        after_op(fault);
        match result {
            Ok(_) => {}
            Err(crate::Error::Closed) => break StreamEnd::Closed,
            Err(crate::Error::Timeout) => break StreamEnd::Timeout,
            Err(e @ (crate::Error::Truncated { .. } | crate::Error::Corrupt { .. })) => {
                break StreamEnd::Broken(e.to_string());
            }
            Err(e) => break StreamEnd::Error(e.to_string()),
        }
    };
    // A consumer removed by a fault may hold a task it never marks done:
    // then joins cannot return, and are not asked for.
    let consumer_removed = scenario
        .faults
        .iter()
        .any(|f| matches!(f.target, Target::Consumer(_)) && f.kind.removes());
    if end_reason == StreamEnd::Closed && !consumer_removed {
        // Every producer is gone and the queue is empty: once every
        // consumer has marked its last message done, the join returns.
        if let Some(result) = end.join(deadline) {
            log.joined(result.map_err(|e| e.to_string()));
        }
    }
    if end_saboteur(saboteur) {
        log.stopped();
    }
    log.storm_signals(crate::sys::noop_handler_runs());
    log.ended(&end_reason);
}
