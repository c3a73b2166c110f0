//! What each forked process reports back: a producer, the result of every
//! send; a consumer, the bytes of every receive and how its stream ended;
//! both, how they ended (finished, killed, closed early). The oracle
//! ([`check`](super::check)) judges only these reports.
//!
//! A process writes its report as it goes into its
//! [`Journal`] (see [`ProducerLog`] and
//! [`ConsumerLog`]), so a process killed by a fault still reports what it
//! did up to its death; the parent reads the journals back with
//! [`ProducerTrace::from_journal`] and [`ConsumerTrace::from_journal`].

use std::fmt;

use super::journal::Journal;

/// How one send ended, as the producer saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendOutcome {
    /// It returned `Ok`: the message must be delivered.
    Ok,
    /// It returned [`Error::Closed`](crate::Error::Closed): no consumer is
    /// left to take it.
    Closed,
    /// It returned another error, as text.
    Failed(String),
    /// It never returned: the process was killed during it. The message
    /// may arrive once, whole, or not at all.
    Cut,
}

/// The result of one send, as the producer saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendRecord {
    /// The message's sequence number within its producer.
    pub seq: u32,
    /// Its length in bytes.
    pub len: usize,
    /// How the send ended.
    pub outcome: SendOutcome,
}

/// How a process's part ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Fate {
    /// It did all it had to.
    #[default]
    Finished,
    /// A fault killed it.
    Killed,
    /// A fault made it close its end early.
    ClosedEarly,
}

/// Everything one producer process did.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ProducerTrace {
    /// Its producer number.
    pub producer: u16,
    /// Its sends, in order.
    pub sends: Vec<SendRecord>,
    /// How its part ended.
    pub fate: Fate,
    /// Faults it lived through: times it was stopped and continued.
    pub stops: u32,
    /// Signals of a signal storm it handled.
    pub storm_signals: u64,
}

/// How a consumer's receiving ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamEnd {
    /// `Closed`: the end of the stream, as it should.
    Closed,
    /// The deadline passed while it still waited.
    Timeout,
    /// The stream ended inside a message, or a frame was malformed
    /// ([`Error::Truncated`](crate::Error::Truncated),
    /// [`Error::Corrupt`](crate::Error::Corrupt)): what a producer killed
    /// mid-message leaves behind on a byte stream.
    Broken(String),
    /// Another error, as text.
    Error(String),
    /// A fault killed the consumer.
    Killed,
    /// A fault made the consumer close its end early.
    ClosedEarly,
    /// It never ended its stream: the runner killed it as hung. What it
    /// received before is still in its trace.
    Hung {
        /// What it was blocked in when killed, from `/proc`, if known.
        blocked_in: Option<String>,
        /// It was killed before the deadline, because every process of the
        /// scenario was blocked and no journal moved (see
        /// [`RunOptions::stall`](super::run::RunOptions::stall)).
        stalled: bool,
    },
}

impl fmt::Display for StreamEnd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StreamEnd::Closed => write!(f, "end of stream"),
            StreamEnd::Timeout => write!(f, "timed out waiting"),
            StreamEnd::Broken(e) => write!(f, "broken stream: {e}"),
            StreamEnd::Error(e) => write!(f, "error: {e}"),
            StreamEnd::Killed => write!(f, "killed by a fault"),
            StreamEnd::ClosedEarly => write!(f, "closed its end early"),
            StreamEnd::Hung {
                blocked_in: Some(b),
                ..
            } => write!(f, "hung, blocked in {b}"),
            StreamEnd::Hung {
                blocked_in: None, ..
            } => write!(f, "hung"),
        }
    }
}

/// What a consumer of a channel with task accounting did with its tasks.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TaskTrace {
    /// `task_done` calls that returned `Ok` (one is made per receive).
    pub done: u64,
    /// The errors of `task_done` calls that were refused.
    pub refused: Vec<String>,
    /// The unfinished-task counter read right after each join returned.
    pub joins: Vec<u64>,
    /// The errors of joins that did not return `Ok`.
    pub join_errors: Vec<String>,
}

/// Everything one consumer process received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerTrace {
    /// Its consumer number.
    pub consumer: u16,
    /// The bytes of each receive, in the order received.
    pub receives: Vec<Vec<u8>>,
    /// How its receiving ended.
    pub end: StreamEnd,
    /// Its task accounting, for channels that have it.
    pub tasks: Option<TaskTrace>,
    /// Faults it lived through: times it was stopped and continued.
    pub stops: u32,
    /// Signals of a signal storm it handled.
    pub storm_signals: u64,
}

impl ConsumerTrace {
    /// A consumer's trace with nothing in it yet but how it ended.
    pub fn new(consumer: u16, end: StreamEnd) -> ConsumerTrace {
        ConsumerTrace {
            consumer,
            receives: Vec::new(),
            end,
            tasks: None,
            stops: 0,
            storm_signals: 0,
        }
    }
}

/// A process that did not report a trace: how it ended instead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// It hung past its deadline and was killed; what it was blocked in.
    Hung(Option<String>),
    /// It was killed before its deadline because every process of the
    /// scenario was blocked and no journal moved; what it
    /// was blocked in.
    Stalled(Option<String>),
    /// It crashed, panicked or exited badly; the outcome in words.
    Crashed(String),
}

/// All the reports of one run.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Traces {
    /// One entry per producer, by producer number.
    pub producers: Vec<Result<ProducerTrace, Failure>>,
    /// One entry per consumer, by consumer number.
    pub consumers: Vec<Result<ConsumerTrace, Failure>>,
}

// Journal tags.
const SEND_START: u8 = b'S';
const SEND_END: u8 = b'O';
const RECEIVE: u8 = b'M';
const TASK_DONE: u8 = b'D';
const JOIN: u8 = b'J';
const STREAM_END: u8 = b'E';
const CLOSED_EARLY: u8 = b'L';
const STOPPED: u8 = b'P';
const STORM: u8 = b'N';

/// A producer's side of its journal, used in its own process.
#[derive(Debug)]
pub struct ProducerLog<'a>(pub &'a Journal);

impl ProducerLog<'_> {
    /// Send `seq` of `len` bytes is about to start.
    pub fn starting(&self, seq: u32, len: usize) {
        self.0.record(
            SEND_START,
            &[&seq.to_le_bytes(), &(len as u64).to_le_bytes()],
        );
    }

    /// Send `seq` returned.
    pub fn ended(&self, seq: u32, outcome: &SendOutcome) {
        let (code, text): (u8, &str) = match outcome {
            SendOutcome::Ok => (0, ""),
            SendOutcome::Closed => (1, ""),
            SendOutcome::Failed(e) => (2, e),
            SendOutcome::Cut => (3, ""),
        };
        self.0
            .record(SEND_END, &[&seq.to_le_bytes(), &[code], text.as_bytes()]);
    }

    /// It closed its end early.
    pub fn closed_early(&self) {
        self.0.record(CLOSED_EARLY, &[]);
    }

    /// It was stopped and continued.
    pub fn stopped(&self) {
        self.0.record(STOPPED, &[]);
    }

    /// It handled `n` signals of a storm.
    pub fn storm_signals(&self, n: u64) {
        self.0.record(STORM, &[&n.to_le_bytes()]);
    }
}

/// A consumer's side of its journal, used in its own process.
#[derive(Debug)]
pub struct ConsumerLog<'a>(pub &'a Journal);

impl ConsumerLog<'_> {
    /// A receive returned these bytes.
    pub fn received(&self, bytes: &[u8]) {
        self.0.record(RECEIVE, &[bytes]);
    }

    /// A `task_done` returned.
    pub fn task_done(&self, result: Result<(), String>) {
        match result {
            Ok(()) => self.0.record(TASK_DONE, &[&[0]]),
            Err(e) => self.0.record(TASK_DONE, &[&[1], e.as_bytes()]),
        }
    }

    /// A join returned (with the unfinished-task counter read after it).
    pub fn joined(&self, result: Result<u64, String>) {
        match result {
            Ok(counter) => self.0.record(JOIN, &[&[0], &counter.to_le_bytes()]),
            Err(e) => self.0.record(JOIN, &[&[1], e.as_bytes()]),
        }
    }

    /// Its stream ended (or it closed its end early).
    pub fn ended(&self, end: &StreamEnd) {
        let (code, text): (u8, &str) = match end {
            StreamEnd::Closed => (0, ""),
            StreamEnd::Timeout => (1, ""),
            StreamEnd::Broken(e) => (2, e),
            StreamEnd::Error(e) => (3, e),
            StreamEnd::Killed => (4, ""),
            StreamEnd::ClosedEarly => (5, ""),
            StreamEnd::Hung { .. } => (6, ""),
        };
        self.0.record(STREAM_END, &[&[code], text.as_bytes()]);
    }

    /// It was stopped and continued.
    pub fn stopped(&self) {
        self.0.record(STOPPED, &[]);
    }

    /// It handled `n` signals of a storm.
    pub fn storm_signals(&self, n: u64) {
        self.0.record(STORM, &[&n.to_le_bytes()]);
    }
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

fn tasks(t: &mut Option<TaskTrace>) -> &mut TaskTrace {
    t.get_or_insert_with(TaskTrace::default)
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

impl ProducerTrace {
    /// Reads producer `producer`'s journal back. `killed`: the process was
    /// killed by a fault, so a send it started and never finished was cut
    /// short. `None` if the journal is malformed.
    pub fn from_journal(
        producer: u16,
        records: &[(u8, Vec<u8>)],
        killed: bool,
    ) -> Option<ProducerTrace> {
        let mut trace = ProducerTrace {
            producer,
            fate: if killed { Fate::Killed } else { Fate::Finished },
            ..ProducerTrace::default()
        };
        let mut open: Option<(u32, usize)> = None;
        for (tag, body) in records {
            match *tag {
                SEND_START => {
                    if open.is_some() {
                        return None;
                    }
                    open = Some((u32_at(body, 0)?, usize::try_from(u64_at(body, 4)?).ok()?));
                }
                SEND_END => {
                    let (seq, len) = open.take()?;
                    if u32_at(body, 0)? != seq {
                        return None;
                    }
                    let outcome = match *body.get(4)? {
                        0 => SendOutcome::Ok,
                        1 => SendOutcome::Closed,
                        2 => SendOutcome::Failed(text(&body[5..])),
                        _ => SendOutcome::Cut,
                    };
                    trace.sends.push(SendRecord { seq, len, outcome });
                }
                CLOSED_EARLY => trace.fate = Fate::ClosedEarly,
                STOPPED => trace.stops += 1,
                STORM => trace.storm_signals = u64_at(body, 0)?,
                _ => return None,
            }
        }
        if let Some((seq, len)) = open {
            if !killed {
                return None;
            }
            trace.sends.push(SendRecord {
                seq,
                len,
                outcome: SendOutcome::Cut,
            });
        }
        Some(trace)
    }
}

impl ConsumerTrace {
    /// Reads consumer `consumer`'s journal back. `killed`: the process was
    /// killed by a fault. `None` if the journal is malformed, or if a
    /// consumer that was not killed never said how its stream ended.
    pub fn from_journal(
        consumer: u16,
        records: &[(u8, Vec<u8>)],
        killed: bool,
    ) -> Option<ConsumerTrace> {
        let mut trace = ConsumerTrace::new(consumer, StreamEnd::Killed);
        let mut ended = false;
        for (tag, body) in records {
            match *tag {
                RECEIVE => trace.receives.push(body.clone()),
                TASK_DONE => match *body.first()? {
                    0 => tasks(&mut trace.tasks).done += 1,
                    _ => tasks(&mut trace.tasks).refused.push(text(&body[1..])),
                },
                JOIN => match *body.first()? {
                    0 => tasks(&mut trace.tasks).joins.push(u64_at(body, 1)?),
                    _ => tasks(&mut trace.tasks).join_errors.push(text(&body[1..])),
                },
                STREAM_END => {
                    ended = true;
                    trace.end = match *body.first()? {
                        0 => StreamEnd::Closed,
                        1 => StreamEnd::Timeout,
                        2 => StreamEnd::Broken(text(&body[1..])),
                        3 => StreamEnd::Error(text(&body[1..])),
                        4 => StreamEnd::Killed,
                        6 => StreamEnd::Hung {
                            blocked_in: None,
                            stalled: false,
                        },
                        _ => StreamEnd::ClosedEarly,
                    };
                }
                STOPPED => trace.stops += 1,
                STORM => trace.storm_signals = u64_at(body, 0)?,
                _ => return None,
            }
        }
        if killed {
            // Whatever it journalled last, it did not live to go on.
            if trace.end != StreamEnd::ClosedEarly {
                trace.end = StreamEnd::Killed;
            }
        } else if !ended {
            return None;
        }
        Some(trace)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn producer_journals_read_back_and_a_kill_cuts_the_open_send() {
        let j = Journal::new().unwrap();
        let log = ProducerLog(&j);
        log.starting(0, 10);
        log.ended(0, &SendOutcome::Ok);
        log.starting(1, 0);
        log.ended(1, &SendOutcome::Failed("boom".into()));
        log.stopped();
        log.starting(2, 7);
        let records = j.records().unwrap();
        let t = ProducerTrace::from_journal(3, &records, true).unwrap();
        assert_eq!(t.fate, Fate::Killed);
        assert_eq!(t.stops, 1);
        let outcomes: Vec<_> = t
            .sends
            .iter()
            .map(|s| (s.seq, s.len, s.outcome.clone()))
            .collect();
        assert_eq!(
            outcomes,
            vec![
                (0, 10, SendOutcome::Ok),
                (1, 0, SendOutcome::Failed("boom".into())),
                (2, 7, SendOutcome::Cut)
            ]
        );
        // The same journal from a process that was not killed is malformed:
        // a send cannot be left open by a process that went on.
        assert_eq!(ProducerTrace::from_journal(3, &records, false), None);
    }

    #[test]
    fn consumer_journals_read_back() {
        for end in [
            StreamEnd::Closed,
            StreamEnd::Timeout,
            StreamEnd::Broken("cut".into()),
            StreamEnd::Error("x".into()),
            StreamEnd::ClosedEarly,
        ] {
            let j = Journal::new().unwrap();
            let log = ConsumerLog(&j);
            log.received(b"");
            log.received(&[1, 2, 3]);
            log.task_done(Ok(()));
            log.task_done(Err("no".into()));
            log.joined(Ok(0));
            log.joined(Err("late".into()));
            log.storm_signals(9);
            log.ended(&end);
            let t = ConsumerTrace::from_journal(1, &j.records().unwrap(), false).unwrap();
            assert_eq!(t.receives, vec![vec![], vec![1, 2, 3]]);
            assert_eq!(t.end, end);
            assert_eq!(t.storm_signals, 9);
            assert_eq!(
                t.tasks,
                Some(TaskTrace {
                    done: 1,
                    refused: vec!["no".into()],
                    joins: vec![0],
                    join_errors: vec!["late".into()],
                })
            );
        }
        // Killed before it said how its stream ended: that is its end.
        let j = Journal::new().unwrap();
        ConsumerLog(&j).received(b"abc");
        let records = j.records().unwrap();
        let t = ConsumerTrace::from_journal(0, &records, true).unwrap();
        assert_eq!(t.end, StreamEnd::Killed);
        assert_eq!(ConsumerTrace::from_journal(0, &records, false), None);
    }
}
