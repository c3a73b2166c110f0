//! Scenarios: who sends what, how many consume, and what goes wrong
//! (producers x consumers x message sizes x pacing x faults), as plain
//! data, and the proptest strategies that generate and shrink them.
//!
//! A [`Scenario`] is only a plan: the runner ([`run`](super::run)) carries
//! it out across forked processes, and the oracle ([`check`](super::check))
//! judges what they did against it.
//!
//! ```
//! use ipc_harness::harness::channel::Channel;
//! use ipc_harness::harness::scenario::{Limits, Pacing, ProducerPlan, Scenario, scenarios};
//! use ipc_harness::harness::transports::QueueChannel;
//! use proptest::strategy::{Strategy, ValueTree};
//! use proptest::test_runner::TestRunner;
//!
//! // By hand: two producers, the second pausing, to three consumers.
//! let scenario = Scenario {
//!     producers: vec![
//!         ProducerPlan { sizes: vec![0, 1, 4096], pacing: Pacing::Burst },
//!         ProducerPlan { sizes: vec![65536; 3], pacing: Pacing::Pause { every: 1, micros: 100 } },
//!     ],
//!     consumers: 3,
//!     ..Scenario::default()
//! };
//! assert_eq!((scenario.messages(), scenario.bytes()), (6, 4097 + 3 * 65536));
//!
//! // Or generated, within what a channel promises.
//! let limits = Limits::for_promises(&QueueChannel::DEFAULT.promises());
//! let generated = scenarios(limits).new_tree(&mut TestRunner::default()).unwrap().current();
//! assert!((1..=4).contains(&generated.producers.len()));
//! ```

use std::fmt;

use proptest::prelude::*;

use super::channel::Promises;
use super::fault::{self, Fault, FaultRules, Target};
use super::sizes;

/// How a producer spaces its sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pacing {
    /// As fast as it can.
    Burst,
    /// A pause of `micros` after every `every` sends, so consumers catch
    /// up and reads come one by one.
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

/// A test scenario: who sends what, how many consume, and what goes wrong.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Scenario {
    /// One plan per producer process.
    pub producers: Vec<ProducerPlan>,
    /// How many consumer processes.
    pub consumers: usize,
    /// Faults that strike its processes (at most one each).
    pub faults: Vec<Fault>,
    /// Every process shrinks the kernel buffer under its end to one page
    /// first ([`Producer::shrink_buffer`](super::channel::Producer::shrink_buffer)), so large messages cross many
    /// partial reads and writes.
    pub tiny_capacity: bool,
    /// A signal storm in every producer and consumer: `SIGALRM` every this
    /// many microseconds, without `SA_RESTART` (as
    /// [`RunOptions::signal_storm`](super::run::RunOptions::signal_storm), which takes precedence).
    pub signal_storm_us: Option<u32>,
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
            ..Scenario::default()
        }
    }

    /// The fault that strikes `target`, if any.
    pub fn fault_for(&self, target: Target) -> Option<Fault> {
        self.faults.iter().copied().find(|f| f.target == target)
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
        if self.tiny_capacity {
            write!(f, "\n  kernel buffers shrunk to one page")?;
        }
        if let Some(us) = self.signal_storm_us {
            write!(f, "\n  signal storm: SIGALRM every {us} us")?;
        }
        for fault in &self.faults {
            write!(f, "\n  fault: {fault}")?;
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
            ..Scenario::default()
        })
}

/// Scenarios within `limits` that also carry faults obeying `rules` (up to
/// two, at most one per process) and, each one time in four, tiny kernel
/// buffers and a signal storm. Shrinks toward no fault as well.
pub fn scenarios_with_faults(limits: Limits, rules: FaultRules) -> impl Strategy<Value = Scenario> {
    let storm = prop_oneof![3 => Just(None), 1 => (100u32..=1000).prop_map(Some)];
    scenarios(limits).prop_flat_map(move |scenario| {
        let sends = scenario.producers.iter().map(|p| p.sizes.len()).collect();
        let faults = fault::faults(sends, scenario.consumers, rules);
        (
            Just(scenario),
            faults,
            proptest::bool::weighted(0.25),
            storm.clone(),
        )
            .prop_map(|(mut scenario, faults, tiny, storm)| {
                scenario.faults = faults;
                scenario.tiny_capacity = tiny;
                scenario.signal_storm_us = storm;
                scenario
            })
    })
}
