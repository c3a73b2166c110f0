//! Scenarios (producers x consumers x message sizes x pacing), the proptest
//! strategies that generate and shrink them, and [`run`]: fork the
//! processes, let each drive its end of a [`Channel`], gather the traces,
//! and judge them with the oracle.

use std::fmt;
use std::time::{Duration, Instant};

use proptest::prelude::*;

use super::channel::{Channel, Consumer, Producer, Promises, Property};
use super::check::{Violation, check};
use super::fork::{self, Outcome};
use super::payload::{self, MsgId};
use super::sizes;
use super::trace::{
    ConsumerTrace, Failure, ProducerTrace, SendRecord, StreamEnd, TaskTrace, Traces,
};

/// How a producer spaces its sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pacing {
    /// As fast as it can.
    Burst,
    /// A pause of `micros` after every `every` sends (the seeds'
    /// `time.sleep(zzz)`), so consumers catch up and reads come one by one.
    Pause {
        /// Sends between pauses.
        every: usize,
        /// Length of each pause in microseconds.
        micros: u64,
    },
}

/// One producer's plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProducerPlan {
    /// The sizes of its messages, in sending order.
    pub sizes: Vec<usize>,
    /// How it paces them.
    pub pacing: Pacing,
}

/// A test scenario: who sends what, and how many consume.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scenario {
    /// One plan per producer process.
    pub producers: Vec<ProducerPlan>,
    /// How many consumer processes.
    pub consumers: usize,
}

impl Scenario {
    /// One producer sending `sizes` in a burst to one consumer.
    pub fn simple(sizes: &[usize]) -> Scenario {
        Scenario {
            producers: vec![ProducerPlan {
                sizes: sizes.to_vec(),
                pacing: Pacing::Burst,
            }],
            consumers: 1,
        }
    }

    /// The sizes producer `p` plans to send (empty if there is no such one).
    pub fn producer_sizes(&self, p: usize) -> &[usize] {
        self.producers.get(p).map_or(&[], |plan| &plan.sizes)
    }

    /// Messages planned in all.
    pub fn messages(&self) -> usize {
        self.producers.iter().map(|p| p.sizes.len()).sum()
    }

    /// Bytes planned in all.
    pub fn bytes(&self) -> usize {
        self.producers.iter().flat_map(|p| &p.sizes).sum()
    }
}

impl fmt::Display for Scenario {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} producer(s) x {} consumer(s), {} messages, {} bytes",
            self.producers.len(),
            self.consumers,
            self.messages(),
            self.bytes()
        )?;
        for (i, p) in self.producers.iter().enumerate() {
            write!(f, "\n  producer {i}: sizes {:?}", p.sizes)?;
            if let Pacing::Pause { every, micros } = p.pacing {
                write!(f, ", pausing {micros} us every {every} sends")?;
            }
        }
        Ok(())
    }
}

/// Bounds on the scenarios a strategy makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// At most this many producers (at least 1).
    pub max_producers: usize,
    /// At most this many consumers (at least 1).
    pub max_consumers: usize,
    /// The largest message.
    pub max_message: usize,
    /// The smallest message.
    pub min_message: usize,
    /// At most this many messages per producer.
    pub max_messages: usize,
    /// At most this many bytes in the whole scenario.
    pub max_total: usize,
}

impl Limits {
    /// The default limits for a transport with `promises`: up to 4
    /// producers and consumers, messages up to 2 MiB, 4 MiB in all.
    pub fn for_promises(promises: &Promises) -> Limits {
        Limits {
            max_producers: promises.max_producers.clamp(1, 4),
            max_consumers: promises.max_consumers.clamp(1, 4),
            max_message: promises.max_message.min(2 << 20),
            min_message: promises.min_message,
            max_messages: 16,
            max_total: 4 << 20,
        }
    }
}

fn pacing() -> impl Strategy<Value = Pacing> {
    prop_oneof![
        3 => Just(Pacing::Burst),
        1 => (1usize..=4, 0u64..=2000).prop_map(|(every, micros)| Pacing::Pause { every, micros }),
    ]
}

/// Scenarios within `limits`, shrinking toward one producer, one consumer,
/// few and small messages, no pacing.
pub fn scenarios(limits: Limits) -> impl Strategy<Value = Scenario> {
    let per_producer_total = move |producers: usize| (limits.max_total / producers.max(1)).max(1);
    (
        1..=limits.max_producers.max(1),
        1..=limits.max_consumers.max(1),
    )
        .prop_flat_map(move |(producers, consumers)| {
            let plan = (
                sizes::size_plan(
                    limits.max_message,
                    limits.max_messages,
                    per_producer_total(producers),
                ),
                pacing(),
            )
                .prop_map(move |(sizes, pacing)| ProducerPlan {
                    sizes: sizes
                        .into_iter()
                        .map(|s| s.max(limits.min_message))
                        .collect(),
                    pacing,
                });
            (proptest::collection::vec(plan, producers), Just(consumers))
        })
        .prop_map(|(producers, consumers)| Scenario {
            producers,
            consumers,
        })
}

/// How [`run_with`] runs a scenario.
#[derive(Debug, Clone, Copy)]
pub struct RunOptions {
    /// Every process must be done by then; consumers give up waiting then.
    pub deadline: Duration,
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
            signal_storm: None,
        }
    }
}

/// Starts the storm of `options` in this (child) process; it lasts until
/// the guard is dropped. Each forked process is single-threaded, so every
/// signal lands on the thread doing the IPC.
fn storm(options: &RunOptions) -> Option<StormGuard> {
    let interval = options.signal_storm?;
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

    /// Whether a violation of this kind (`"Merged"`, ...) was found.
    pub fn has(&self, kind: &str) -> bool {
        self.violations.iter().any(|v| v.kind() == kind)
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let broken = self.broken_promises().len();
        writeln!(f, "{}: {}", self.channel, self.scenario)?;
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
            writeln!(f, "  - [{mark}] {v}")?;
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
/// and per consumer (each keeps only its own end), waits for all of them
/// under one deadline, and judges their traces.
pub fn run_with<C: Channel>(channel: &C, scenario: &Scenario, options: RunOptions) -> Report {
    let report = |violations| Report {
        channel: channel.name(),
        promises: channel.promises(),
        scenario: scenario.clone(),
        violations,
    };
    let producers = scenario.producers.len();
    let consumers = scenario.consumers;
    let ends = match channel.open(producers, consumers) {
        Ok(ends) => ends,
        Err(e) => {
            return report(vec![Violation::UnexpectedError {
                process: "the parent".into(),
                operation: format!(
                    "opening the channel for {producers} producer(s) and {consumers} consumer(s)"
                ),
                error: e.to_string(),
            }]);
        }
    };
    let mut slots = Slots {
        producers: ends.producers.into_iter().map(Some).collect(),
        consumers: ends.consumers.into_iter().map(Some).collect(),
    };
    let start = Instant::now();
    let deadline = start + options.deadline;

    let mut children = Vec::new();
    let mut spawn_error = None;
    for c in 0..consumers {
        let slots = &mut slots;
        match fork::spawn(move || {
            let end = slots.consumers[c].take().expect("one end per consumer");
            slots.clear();
            let storm = storm(&options);
            let trace = consume(end, c as u16, deadline);
            drop(storm);
            trace.encode()
        }) {
            Ok(child) => children.push(child),
            Err(e) => spawn_error = Some(e),
        }
    }
    for (p, plan) in scenario.producers.iter().enumerate() {
        let slots = &mut slots;
        match fork::spawn(move || {
            let end = slots.producers[p].take().expect("one end per producer");
            slots.clear();
            let storm = storm(&options);
            let trace = produce(end, p as u16, plan);
            drop(storm);
            trace.encode()
        }) {
            Ok(child) => children.push(child),
            Err(e) => spawn_error = Some(e),
        }
    }
    // The parent keeps no end: end of stream depends only on the children.
    slots.clear();
    if let Some(e) = spawn_error {
        return report(vec![Violation::UnexpectedError {
            process: "the parent".into(),
            operation: "fork".into(),
            error: e.to_string(),
        }]);
    }

    // Consumers give up at the deadline; give them a moment to report.
    let results = match fork::wait_all(children, options.deadline + Duration::from_secs(2)) {
        Ok(r) => r,
        Err(e) => {
            return report(vec![Violation::UnexpectedError {
                process: "the parent".into(),
                operation: "waiting for the children".into(),
                error: e.to_string(),
            }]);
        }
    };
    let mut traces = Traces::default();
    for (i, r) in results.into_iter().enumerate() {
        let failure = match &r.outcome {
            Outcome::Exited(0) => None,
            Outcome::TimedOut { blocked_in } => Some(Failure::Hung(blocked_in.clone())),
            other => Some(Failure::Crashed(other.to_string())),
        };
        if i < consumers {
            traces.consumers.push(match failure {
                None => ConsumerTrace::decode(&r.output)
                    .ok_or_else(|| Failure::Crashed("returned a malformed trace".into())),
                Some(f) => Err(f),
            });
        } else {
            traces.producers.push(match failure {
                None => ProducerTrace::decode(&r.output)
                    .ok_or_else(|| Failure::Crashed("returned a malformed trace".into())),
                Some(f) => Err(f),
            });
        }
    }
    report(check(scenario, &traces))
}

struct Slots<P, C> {
    producers: Vec<Option<P>>,
    consumers: Vec<Option<C>>,
}

impl<P, C> Slots<P, C> {
    fn clear(&mut self) {
        self.producers.clear();
        self.consumers.clear();
    }
}

fn produce<P: Producer>(mut end: P, producer: u16, plan: &ProducerPlan) -> ProducerTrace {
    let mut trace = ProducerTrace {
        producer,
        sends: Vec::with_capacity(plan.sizes.len()),
    };
    for (seq, &len) in plan.sizes.iter().enumerate() {
        if let Pacing::Pause { every, micros } = plan.pacing {
            if seq > 0 && seq % every.max(1) == 0 {
                std::thread::sleep(Duration::from_micros(micros));
            }
        }
        let id = MsgId {
            producer,
            seq: seq as u32,
        };
        let error = end
            .send(&payload::make(id, len))
            .err()
            .map(|e| e.to_string());
        trace.sends.push(SendRecord {
            seq: seq as u32,
            len,
            error,
        });
    }
    trace
}

fn consume<C: Consumer>(mut end: C, consumer: u16, deadline: Instant) -> ConsumerTrace {
    let mut receives = Vec::new();
    let mut tasks: Option<TaskTrace> = None;
    let end_reason = loop {
        match end.recv(deadline) {
            Ok(bytes) => {
                receives.push(bytes);
                if let Some(result) = end.task_done() {
                    let t = tasks.get_or_insert_with(TaskTrace::default);
                    match result {
                        Ok(()) => t.done += 1,
                        Err(e) => t.refused.push(e.to_string()),
                    }
                }
            }
            Err(crate::Error::Closed) => break StreamEnd::Closed,
            Err(crate::Error::Timeout) => break StreamEnd::Timeout,
            Err(e) => break StreamEnd::Error(e.to_string()),
        }
    };
    if end_reason == StreamEnd::Closed {
        // Every producer is gone and the queue is empty: once every
        // consumer has marked its last message done, the join returns.
        if let Some(result) = end.join(deadline) {
            let t = tasks.get_or_insert_with(TaskTrace::default);
            match result {
                Ok(counter) => t.joins.push(counter),
                Err(e) => t.join_errors.push(e.to_string()),
            }
        }
    }
    ConsumerTrace {
        consumer,
        receives,
        end: end_reason,
        tasks,
    }
}
