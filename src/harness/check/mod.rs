//! The oracle: from the processes' [`Traces`] alone, the list of every
//! [`Violation`] of the semantics contract.
//!
//! Each receive is taken apart into the messages it holds
//! ([`payload::verify`](super::payload::verify)): a receive holding two messages is `Merged`, one
//! holding part of a message is `Split` (and the consumer's next receive
//! is checked for the rest of it, so a byte stream that splits a message
//! still delivers it once), bytes that are no message are `Corrupted`.
//! Then every message whose send returned `Ok` must have been received
//! exactly once, and each consumer must have seen each producer's messages
//! in the order they were sent. Messages too short to carry an id are
//! checked as a multiset of lengths.
//!
//! # Under faults
//! [`judge`] also knows what the [faults](super::fault) did (from the
//! traces: who was killed, who closed early) and what the channel promises:
//! - a send cut short by a kill is **indeterminate**: it may arrive once,
//!   whole, or not at all (arriving twice is still `Duplicated`);
//! - a message whose send returned `Ok` must arrive, unless it was in a
//!   killed consumer's hands: at most
//!   [`lost_per_dead_consumer`](super::channel::Promises::lost_per_dead_consumer)
//!   per killed consumer, or everything not yet received once every
//!   consumer is gone (the channel died with them);
//! - a send that fails with `Closed` is expected once every consumer is
//!   gone, and a stream that ends `Truncated` is expected once a producer
//!   was killed, where a dead writer can tear a frame (a single writer, or
//!   [`torn_by_dead_writer`](super::channel::Promises::torn_by_dead_writer));
//! - survivors must still never hang, and never see a merged, split,
//!   corrupt or duplicated message.
//!
//! The [`Accounting`] counts what became of every message the way Jepsen's
//! `total-queue` checker does: `ok`, `lost`, `recovered`, `duplicated`,
//! `unexpected`.
//!
//! ```
//! use ipc_harness::harness::check::{MsgRef, Violation, check};
//! use ipc_harness::harness::payload::{MsgId, make};
//! use ipc_harness::harness::scenario::Scenario;
//! use ipc_harness::harness::trace::{
//!     ConsumerTrace, ProducerTrace, SendOutcome, SendRecord, StreamEnd, Traces,
//! };
//!
//! // One producer sent two messages; the consumer got the second only.
//! let scenario = Scenario::simple(&[100, 200]);
//! let sends = (0..2)
//!     .map(|seq| SendRecord { seq, len: [100, 200][seq as usize], outcome: SendOutcome::Ok })
//!     .collect();
//! let traces = Traces {
//!     producers: vec![Ok(ProducerTrace { producer: 0, sends, ..ProducerTrace::default() })],
//!     consumers: vec![Ok(ConsumerTrace {
//!         consumer: 0,
//!         receives: vec![make(MsgId { producer: 0, seq: 1 }, 200)],
//!         end: StreamEnd::Closed,
//!         tasks: None,
//!         stops: 0,
//!         storm_signals: 0,
//!     })],
//! };
//! let lost = MsgRef::Id(MsgId { producer: 0, seq: 0 });
//! assert_eq!(check(&scenario, &traces), vec![Violation::Lost { msg: lost, len: 100 }]);
//! ```

// The judgement runs in steps, each in its own file: what the faults did
// and the fates of the sends (`sends`), then each consumer's receives taken
// apart into pieces, with the order, task and stream-end checks
// (`receives`), and last the tally of every message against what arrived
// (`tally`). Violations come out in that order: the producers', then each
// consumer's, then the lost and duplicated messages.

mod accounting;
mod pieces;
mod receives;
mod sends;
mod tally;
mod violation;

pub use accounting::Accounting;
pub use violation::{MsgRef, Violation};

use super::channel::Promises;
use super::scenario::Scenario;
use super::trace::Traces;

/// The oracle's verdict on one run.
#[derive(Debug, Clone, Default)]
pub struct Judgement {
    /// Every violation found.
    pub violations: Vec<Violation>,
    /// What became of every message.
    pub accounting: Accounting,
}

/// Judges one run without faults of a channel that promises everything:
/// every violation of the contract in `traces`, for the messages
/// `scenario` planned. See [`judge`].
pub fn check(scenario: &Scenario, traces: &Traces) -> Vec<Violation> {
    judge(scenario, &Promises::MESSAGES, traces).violations
}

/// Judges one run of a channel with `promises`: every violation of the
/// contract in `traces` for the messages `scenario` planned, taking the
/// faults the traces show into account (see the module docs), and what
/// became of every message.
pub fn judge(scenario: &Scenario, promises: &Promises, traces: &Traces) -> Judgement {
    let mut violations = Vec::new();
    let mut acc = Accounting::default();
    let faults = sends::what_the_faults_did(promises, traces, &mut acc);
    let sent = sends::fates_of_sends(scenario, traces, &faults, &mut acc, &mut violations);
    let mut received = receives::Received::default();
    for (c, result) in traces.consumers.iter().enumerate() {
        receives::judge_consumer(
            c,
            result,
            &sent,
            &faults,
            &mut received,
            &mut acc,
            &mut violations,
        );
    }
    tally::exactly_once(
        promises,
        &faults,
        &sent,
        &received,
        &mut acc,
        &mut violations,
    );
    Judgement {
        violations,
        accounting: acc,
    }
}
