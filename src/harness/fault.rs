//! Faults: what can happen to a process of a scenario while it works, as
//! data that proptest generates and shrinks with the rest of the scenario.
//!
//! A [`Fault`] strikes one producer or consumer at one of its operations
//! (a producer's send `#op`, a consumer's receive `#op`):
//!
//! | kind | what happens | what it tests |
//! |---|---|---|
//! | [`FaultKind::KillBefore`] | `SIGKILL` just before the operation | a peer that vanishes between messages |
//! | [`FaultKind::KillDuring`] | `SIGKILL` `delay_us` after the operation began, from a helper process, wherever the process then is | a peer dying mid-frame, mid-copy, holding a lock |
//! | [`FaultKind::KillInside`] | `SIGKILL` at one of the channel's own kill points inside the operation (a queue: holding its lock, mid-record, mid-commit, mid-message) | a death at the worst moment, every time |
//! | [`FaultKind::KillAfter`] | `SIGKILL` just after the operation returned | a peer dying with a message in its hands |
//! | [`FaultKind::Stop`] | `SIGSTOP` `delay_us` after the operation began (wherever the process then is), `SIGCONT` `pause_ms` later | a peer that stalls (a debugger, a laptop lid, an overloaded host) |
//! | [`FaultKind::CloseEarly`] | drops its end instead of doing the operation, and exits | a peer that gives up early |
//!
//! A scenario may also shrink the kernel buffers of its ends to one page
//! ([`Scenario::tiny_capacity`](super::scenario::Scenario::tiny_capacity)),
//! so large messages cross many partial reads and writes, and run every
//! process under a signal storm
//! ([`Scenario::signal_storm_us`](super::scenario::Scenario::signal_storm_us)),
//! so every blocking call keeps failing with `EINTR`.
//!
//! What each process did is kept in its journal
//! ([`journal`](super::journal)) as it goes, so a killed process still
//! reports everything up to its death, and the oracle
//! ([`check`](super::check)) can tell a send that returned `Ok` (which must
//! be delivered) from one cut short by the kill (which may arrive once,
//! whole, or not at all).
//!
//! The faults a channel is given depend on what it promises
//! ([`Promises`]): a channel whose producers would block forever once every
//! consumer is gone never loses all its consumers (a queue does not block
//! then: its puts get `Closed`, so it may lose them all); one where a
//! writer killed mid-message tears the stream for the others (a FIFO with
//! several writers) never has a writer killed mid-message. Both limits are
//! promises of their own, stated in the channel's docs, and a test shows
//! what happens past them.

use std::fmt;
use std::time::Duration;

use proptest::prelude::*;

use super::channel::Promises;
use crate::sys::{self, Pid};

/// Which process a fault strikes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Target {
    /// Producer number `n`.
    Producer(u16),
    /// Consumer number `n`.
    Consumer(u16),
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Producer(n) => write!(f, "producer {n}"),
            Target::Consumer(n) => write!(f, "consumer {n}"),
        }
    }
}

/// What a fault does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FaultKind {
    /// `SIGKILL` just before the operation starts.
    KillBefore,
    /// `SIGKILL` from a helper process `delay_us` after the operation
    /// began, wherever the process then is: mid-send, mid-frame, holding a
    /// lock, or (if the operation was quicker) in a later one. The process
    /// does not wait for it: if it finishes first, the fault never strikes.
    KillDuring {
        /// Microseconds from the start of the operation.
        delay_us: u32,
    },
    /// `SIGKILL` at one of the channel's own kill points inside the
    /// operation ([`Producer::arm_kill_point`](super::channel::Producer::arm_kill_point)),
    /// the `point`-th modulo how many it has; a channel without any is
    /// killed from outside as the operation starts. A point the operation
    /// does not pass (a single-record message has no "mid-message") strikes
    /// in a later operation, or never.
    KillInside {
        /// Which of the channel's kill points.
        point: u8,
    },
    /// `SIGKILL` just after the operation returned and was journalled.
    KillAfter,
    /// `SIGSTOP` from a helper process `delay_us` after the operation
    /// began (wherever the process then is), then `SIGCONT` `pause_ms`
    /// later. If the process finishes first, it never strikes.
    Stop {
        /// Microseconds from the start of the operation to the stop.
        delay_us: u32,
        /// Milliseconds stopped.
        pause_ms: u32,
    },
    /// The process drops its end instead of doing the operation, and
    /// reports normally.
    CloseEarly,
}

impl FaultKind {
    /// Whether the process dies of it.
    pub fn kills(self) -> bool {
        matches!(
            self,
            FaultKind::KillBefore
                | FaultKind::KillDuring { .. }
                | FaultKind::KillInside { .. }
                | FaultKind::KillAfter
        )
    }

    /// Whether the process stops taking part (killed or closed early).
    pub fn removes(self) -> bool {
        self.kills() || self == FaultKind::CloseEarly
    }
}

/// One fault: `kind`, striking `target` at its operation number `op`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fault {
    /// The process struck.
    pub target: Target,
    /// Its operation (from 0): a producer's send, a consumer's receive. An
    /// operation the process never reaches means the fault never strikes.
    pub op: u32,
    /// What happens.
    pub kind: FaultKind,
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let op = match self.target {
            Target::Producer(_) => format!("send #{}", self.op),
            Target::Consumer(_) => format!("receive #{}", self.op),
        };
        let t = self.target;
        match self.kind {
            FaultKind::KillBefore => write!(f, "SIGKILL {t} just before its {op}"),
            FaultKind::KillDuring { delay_us } => {
                write!(f, "SIGKILL {t} {delay_us} us into its {op}")
            }
            FaultKind::KillInside { point } => {
                write!(f, "SIGKILL {t} at its kill point {point} inside its {op}")
            }
            FaultKind::KillAfter => write!(f, "SIGKILL {t} just after its {op}"),
            FaultKind::Stop { delay_us, pause_ms } => write!(
                f,
                "SIGSTOP {t} {delay_us} us into its {op}, SIGCONT {pause_ms} ms later"
            ),
            FaultKind::CloseEarly => write!(f, "{t} closes its end instead of its {op}"),
        }
    }
}

/// What the fault generator may do to a channel, from its promises.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FaultRules {
    /// Kill or close every consumer (only if sends then fail rather than
    /// block: [`Promises::sends_fail_without_consumers`]).
    pub may_remove_every_consumer: bool,
    /// Kill a producer mid-message while another producer shares the
    /// channel (not if [`Promises::torn_by_dead_writer`]).
    pub may_kill_writer_mid_message: bool,
}

impl FaultRules {
    /// The rules for a channel with `promises`.
    pub fn for_promises(promises: &Promises) -> FaultRules {
        FaultRules {
            may_remove_every_consumer: promises.sends_fail_without_consumers,
            may_kill_writer_mid_message: !promises.torn_by_dead_writer,
        }
    }
}

/// A delay after an operation began, biased short: most operations take
/// microseconds, and the scenario is over in a few milliseconds.
fn delay_us() -> impl Strategy<Value = u32> {
    prop_oneof![0u32..=100, 100u32..=1000, 1000u32..=5000]
}

fn kind() -> impl Strategy<Value = FaultKind> {
    prop_oneof![
        2 => Just(FaultKind::KillBefore),
        4 => delay_us().prop_map(|delay_us| FaultKind::KillDuring { delay_us }),
        3 => any::<u8>().prop_map(|point| FaultKind::KillInside { point }),
        2 => Just(FaultKind::KillAfter),
        3 => (delay_us(), 1u32..=30)
            .prop_map(|(delay_us, pause_ms)| FaultKind::Stop { delay_us, pause_ms }),
        1 => Just(FaultKind::CloseEarly),
    ]
}

/// Up to two faults for a scenario with these producers (each with its
/// number of sends) and `consumers`, obeying `rules`: at most one fault per
/// process. Shrinks toward no fault.
pub fn faults(
    sends: Vec<usize>,
    consumers: usize,
    rules: FaultRules,
) -> impl Strategy<Value = Vec<Fault>> {
    let producers = sends.len();
    let messages: usize = sends.iter().sum();
    let one = (
        0..producers + consumers,
        any::<prop::sample::Index>(),
        kind(),
    )
        .prop_map(move |(who, op, kind)| {
            if who < producers {
                Fault {
                    target: Target::Producer(who as u16),
                    op: op.index(sends[who].max(1)) as u32,
                    kind,
                }
            } else {
                Fault {
                    target: Target::Consumer((who - producers) as u16),
                    // Consumers share the messages; a receive past its
                    // share is (likely) the wait for the end of stream.
                    op: op.index(messages / consumers.max(1) + 1) as u32,
                    kind,
                }
            }
        });
    proptest::collection::vec(one, 0..=2)
        .prop_map(move |list| legal(list, producers, consumers, rules))
}

/// Drops the faults `rules` forbid, and all but the first on each process.
fn legal(list: Vec<Fault>, producers: usize, consumers: usize, rules: FaultRules) -> Vec<Fault> {
    let mut kept: Vec<Fault> = Vec::new();
    for f in list {
        if kept.iter().any(|k| k.target == f.target) {
            continue;
        }
        if matches!(f.target, Target::Producer(_))
            && matches!(
                f.kind,
                FaultKind::KillDuring { .. } | FaultKind::KillInside { .. }
            )
            && !rules.may_kill_writer_mid_message
            && producers > 1
        {
            // Only between messages would be safe for the other writers,
            // and a kill timed by a helper process cannot promise that.
            continue;
        }
        if let Target::Consumer(_) = f.target {
            let removed = kept
                .iter()
                .filter(|k| matches!(k.target, Target::Consumer(_)) && k.kind.removes())
                .count();
            if f.kind.removes() && !rules.may_remove_every_consumer && removed + 1 >= consumers {
                continue;
            }
        }
        kept.push(f);
    }
    kept
}

/// A helper process that stops or kills the calling process after a delay
/// (see [`FaultKind::KillDuring`] and [`FaultKind::Stop`]) while the
/// caller goes on with its work; the caller calls [`Saboteur::end`] before
/// it exits.
#[derive(Debug)]
pub(crate) struct Saboteur {
    pid: Pid,
    /// A byte written here asks the helper not to strike (if it has not
    /// yet decided to).
    call_off: std::os::fd::OwnedFd,
}

impl Saboteur {
    /// Forks the helper for `kind` (only `KillDuring` and `Stop` need one).
    pub(crate) fn start(kind: FaultKind) -> Option<Saboteur> {
        let (delay_us, pause_ms, stop) = match kind {
            FaultKind::KillDuring { delay_us } => (delay_us, 0, false),
            FaultKind::Stop { delay_us, pause_ms } => (delay_us, pause_ms, true),
            _ => return None,
        };
        let victim = sys::getpid();
        let (called_off, call_off) = sys::pipe(false).ok()?;
        let strike_at = std::time::Instant::now() + Duration::from_micros(delay_us.into());
        // The helper is single-threaded and only waits and signals. It dies
        // with the victim (the fork runner sets PR_SET_PDEATHSIG), and a
        // victim that lives waits for it to exit, so the victim's pid
        // cannot have been reused when a signal goes. Once it decides to
        // strike it finishes (a stop is always followed by its SIGCONT):
        // it is never killed halfway, which could leave the victim stopped
        // for good.
        let pid = sys::fork_run(move || {
            use std::os::fd::AsFd;
            match sys::wait_readable(called_off.as_fd(), Some(strike_at)) {
                Ok(sys::Readiness::TimedOut) => {}
                _ => return 1, // called off
            }
            if stop {
                let _ = sys::kill(victim, libc::SIGSTOP);
                std::thread::sleep(Duration::from_millis(pause_ms.into()));
                let _ = sys::kill(victim, libc::SIGCONT);
            } else {
                let _ = sys::kill(victim, libc::SIGKILL);
            }
            0
        })
        .ok()?;
        Some(Saboteur { pid, call_off })
    }

    /// Calls the helper off if it has not struck yet, and waits for it to
    /// exit. Returns whether it struck (for a stop: stopped and continued
    /// this process; a kill that struck never lets this return).
    pub(crate) fn end(self) -> bool {
        let _ = sys::write(std::os::fd::AsFd::as_fd(&self.call_off), b"x");
        matches!(
            sys::waitpid(self.pid, true),
            Ok(Some(sys::ExitStatus::Code(0)))
        )
    }
}

/// Ends this process at once with `SIGKILL`, as a crash would.
pub(crate) fn kill_self() -> ! {
    let _ = sys::kill(sys::getpid(), libc::SIGKILL);
    // SIGKILL cannot be caught, blocked or ignored.
    unreachable!("survived SIGKILL")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fault(target: Target, kind: FaultKind) -> Fault {
        Fault {
            target,
            op: 0,
            kind,
        }
    }

    #[test]
    fn the_last_consumer_is_spared_unless_sends_then_fail() {
        let strict = FaultRules {
            may_remove_every_consumer: false,
            may_kill_writer_mid_message: true,
        };
        let kill = |c| fault(Target::Consumer(c), FaultKind::KillAfter);
        assert_eq!(legal(vec![kill(0)], 1, 1, strict), vec![]);
        assert_eq!(legal(vec![kill(0), kill(1)], 1, 2, strict), vec![kill(0)]);
        let stop = fault(
            Target::Consumer(0),
            FaultKind::Stop {
                delay_us: 0,
                pause_ms: 1,
            },
        );
        assert_eq!(legal(vec![stop], 1, 1, strict), vec![stop]);
        let lenient = FaultRules {
            may_remove_every_consumer: true,
            ..strict
        };
        assert_eq!(legal(vec![kill(0)], 1, 1, lenient), vec![kill(0)]);
    }

    #[test]
    fn writers_of_a_shared_stream_are_not_killed_mid_message() {
        let rules = FaultRules {
            may_remove_every_consumer: true,
            may_kill_writer_mid_message: false,
        };
        let during = fault(Target::Producer(0), FaultKind::KillDuring { delay_us: 5 });
        let after = fault(Target::Producer(0), FaultKind::KillAfter);
        assert_eq!(legal(vec![during], 2, 1, rules), vec![]);
        assert_eq!(legal(vec![during], 1, 1, rules), vec![during]);
        assert_eq!(legal(vec![after], 2, 1, rules), vec![after]);
    }

    #[test]
    fn one_fault_per_process() {
        let rules = FaultRules {
            may_remove_every_consumer: true,
            may_kill_writer_mid_message: true,
        };
        let a = fault(Target::Producer(0), FaultKind::KillAfter);
        let b = fault(Target::Producer(0), FaultKind::CloseEarly);
        assert_eq!(legal(vec![a, b], 1, 1, rules), vec![a]);
    }

    const KINDS: [FaultKind; 6] = [
        FaultKind::KillBefore,
        FaultKind::KillDuring { delay_us: 5 },
        FaultKind::KillInside { point: 3 },
        FaultKind::KillAfter,
        FaultKind::Stop {
            delay_us: 7,
            pause_ms: 2,
        },
        FaultKind::CloseEarly,
    ];

    #[test]
    fn each_kind_kills_removes_and_reads_as_it_should() {
        let kills: Vec<bool> = KINDS.iter().map(|k| k.kills()).collect();
        assert_eq!(kills, [true, true, true, true, false, false]);
        let removes: Vec<bool> = KINDS.iter().map(|k| k.removes()).collect();
        assert_eq!(removes, [true, true, true, true, false, true]);
        let words: Vec<String> = KINDS
            .iter()
            .map(|&kind| {
                Fault {
                    target: Target::Producer(1),
                    op: 4,
                    kind,
                }
                .to_string()
            })
            .collect();
        assert_eq!(
            words,
            [
                "SIGKILL producer 1 just before its send #4",
                "SIGKILL producer 1 5 us into its send #4",
                "SIGKILL producer 1 at its kill point 3 inside its send #4",
                "SIGKILL producer 1 just after its send #4",
                "SIGSTOP producer 1 7 us into its send #4, SIGCONT 2 ms later",
                "producer 1 closes its end instead of its send #4",
            ]
        );
        let consumer = Fault {
            target: Target::Consumer(2),
            op: 0,
            kind: FaultKind::KillAfter,
        };
        assert_eq!(
            consumer.to_string(),
            "SIGKILL consumer 2 just after its receive #0"
        );
    }

    #[test]
    fn the_rules_follow_the_promises() {
        assert_eq!(
            FaultRules::for_promises(&Promises::MESSAGES),
            FaultRules {
                may_remove_every_consumer: true,
                may_kill_writer_mid_message: true,
            }
        );
        let fifo = Promises::MESSAGES
            .sends_block_without_consumers()
            .torn_by_dead_writer();
        assert_eq!(
            FaultRules::for_promises(&fifo),
            FaultRules {
                may_remove_every_consumer: false,
                may_kill_writer_mid_message: false,
            }
        );
    }

    #[test]
    fn removals_count_only_consumers_removed() {
        let strict = FaultRules {
            may_remove_every_consumer: false,
            may_kill_writer_mid_message: false,
        };
        let at = |target, kind| fault(target, kind);
        let kill = |c| at(Target::Consumer(c), FaultKind::KillBefore);
        let stop = |c| {
            at(
                Target::Consumer(c),
                FaultKind::Stop {
                    delay_us: 0,
                    pause_ms: 1,
                },
            )
        };
        // Two of three consumers may go, not the third.
        assert_eq!(
            legal(vec![kill(0), kill(1)], 1, 3, strict),
            vec![kill(0), kill(1)]
        );
        let close = at(Target::Consumer(1), FaultKind::CloseEarly);
        assert_eq!(legal(vec![kill(0), close], 1, 2, strict), vec![kill(0)]);
        // A stopped consumer, or a killed producer, is no removal.
        assert_eq!(
            legal(vec![stop(0), kill(1)], 1, 2, strict),
            vec![stop(0), kill(1)]
        );
        let producer = at(Target::Producer(0), FaultKind::KillAfter);
        assert_eq!(
            legal(vec![producer, kill(0)], 1, 2, strict),
            vec![producer, kill(0)]
        );
        // Mid-message kills of a writer sharing the stream go; a consumer's stay.
        let inside = at(Target::Producer(1), FaultKind::KillInside { point: 0 });
        let during = at(Target::Consumer(0), FaultKind::KillDuring { delay_us: 1 });
        let lenient = FaultRules {
            may_remove_every_consumer: true,
            ..strict
        };
        assert_eq!(legal(vec![inside, during], 2, 1, lenient), vec![during]);
    }

    #[test]
    fn generated_faults_aim_at_real_processes_and_operations() {
        use proptest::strategy::ValueTree;
        use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
        let rules = FaultRules {
            may_remove_every_consumer: true,
            may_kill_writer_mid_message: true,
        };
        // Three producers and two consumers: 3 + 2 processes, 9 messages.
        let strategy = faults(vec![1, 3, 5], 2, rules);
        let rng = TestRng::from_seed(RngAlgorithm::ChaCha, &[7; 32]);
        let mut runner = TestRunner::new_with_rng(Config::default(), rng);
        let mut top = std::collections::BTreeMap::new();
        let mut counts = [0usize; 3];
        for _ in 0..3000 {
            let list = strategy.new_tree(&mut runner).unwrap().current();
            counts[list.len()] += 1;
            for f in list {
                let op = top.entry(f.target).or_insert(0);
                *op = (*op).max(f.op);
            }
        }
        assert!(
            counts.iter().all(|&n| n > 0),
            "0, 1 and 2 faults: {counts:?}"
        );
        // Every process is hit, and the last operation of each is reached:
        // a producer's last send, a consumer's wait past its share (9 / 2).
        let expected: std::collections::BTreeMap<Target, u32> = [
            (Target::Producer(0), 0),
            (Target::Producer(1), 2),
            (Target::Producer(2), 4),
            (Target::Consumer(0), 4),
            (Target::Consumer(1), 4),
        ]
        .into();
        assert_eq!(top, expected);
    }

    #[test]
    fn a_saboteur_that_is_called_off_does_nothing() {
        assert!(Saboteur::start(FaultKind::KillBefore).is_none());
        assert!(Saboteur::start(FaultKind::CloseEarly).is_none());
        let later = Saboteur::start(FaultKind::KillDuring {
            delay_us: 60_000_000,
        })
        .expect("a saboteur");
        // Long enough for a helper that struck at once to have killed us.
        std::thread::sleep(Duration::from_millis(100));
        assert!(!later.end(), "called off before it struck");
        // A stop of 1 ms, at once: it strikes, continues us, and says so.
        let stop = Saboteur::start(FaultKind::Stop {
            delay_us: 0,
            pause_ms: 1,
        })
        .expect("a saboteur");
        std::thread::sleep(Duration::from_millis(200));
        assert!(stop.end(), "struck");
    }
}
