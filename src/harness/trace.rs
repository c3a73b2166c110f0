//! What each forked process reports back: a producer, the result of every
//! send; a consumer, the bytes of every receive and how its stream ended.
//! The oracle ([`check`](super::check)) judges only these reports.
//!
//! Traces cross the process boundary in a small binary encoding of their
//! own ([`ProducerTrace::encode`], [`ConsumerTrace::encode`]), so the harness
//! does not depend on the optional serde feature.

use std::fmt;

/// The result of one send, as the producer saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendRecord {
    /// The message's sequence number within its producer.
    pub seq: u32,
    /// Its length in bytes.
    pub len: usize,
    /// `None` if the send returned `Ok`, else the error's text.
    pub error: Option<String>,
}

/// Everything one producer process did.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ProducerTrace {
    /// Its producer number.
    pub producer: u16,
    /// Its sends, in order.
    pub sends: Vec<SendRecord>,
}

/// How a consumer's receiving ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamEnd {
    /// `Closed`: the end of the stream, as it should.
    Closed,
    /// The deadline passed while it still waited.
    Timeout,
    /// Another error, as text.
    Error(String),
}

impl fmt::Display for StreamEnd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StreamEnd::Closed => write!(f, "end of stream"),
            StreamEnd::Timeout => write!(f, "timed out waiting"),
            StreamEnd::Error(e) => write!(f, "error: {e}"),
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
}

/// A process that did not report a trace: how it ended instead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// It hung past its deadline and was killed; what it was blocked in.
    Hung(Option<String>),
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

struct Writer(Vec<u8>);

impl Writer {
    fn u8(&mut self, v: u8) {
        self.0.push(v);
    }
    fn u32(&mut self, v: u32) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn bytes(&mut self, b: &[u8]) {
        self.u64(b.len() as u64);
        self.0.extend_from_slice(b);
    }
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Some(head)
    }
    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }
    fn u32(&mut self) -> Option<u32> {
        self.take(4)
            .map(|b| u32::from_le_bytes(b.try_into().expect("4 bytes")))
    }
    fn u64(&mut self) -> Option<u64> {
        self.take(8)
            .map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")))
    }
    fn bytes(&mut self) -> Option<&'a [u8]> {
        let n = usize::try_from(self.u64()?).ok()?;
        self.take(n)
    }
    fn string(&mut self) -> Option<String> {
        Some(String::from_utf8_lossy(self.bytes()?).into_owned())
    }
}

impl ProducerTrace {
    /// Encodes the trace for the trip to the parent.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer(Vec::new());
        w.u8(b'P');
        w.u32(self.producer.into());
        w.u64(self.sends.len() as u64);
        for s in &self.sends {
            w.u32(s.seq);
            w.u64(s.len as u64);
            match &s.error {
                None => w.u8(0),
                Some(e) => {
                    w.u8(1);
                    w.bytes(e.as_bytes());
                }
            }
        }
        w.0
    }

    /// Decodes what [`encode`](Self::encode) made; `None` if malformed.
    pub fn decode(bytes: &[u8]) -> Option<Self> {
        let mut r = Reader(bytes);
        if r.u8()? != b'P' {
            return None;
        }
        let producer = u16::try_from(r.u32()?).ok()?;
        let n = r.u64()?;
        let mut sends = Vec::new();
        for _ in 0..n {
            let seq = r.u32()?;
            let len = usize::try_from(r.u64()?).ok()?;
            let error = match r.u8()? {
                0 => None,
                _ => Some(r.string()?),
            };
            sends.push(SendRecord { seq, len, error });
        }
        r.0.is_empty().then_some(ProducerTrace { producer, sends })
    }
}

impl ConsumerTrace {
    /// Encodes the trace for the trip to the parent.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer(Vec::new());
        w.u8(b'C');
        w.u32(self.consumer.into());
        w.u64(self.receives.len() as u64);
        for r in &self.receives {
            w.bytes(r);
        }
        match &self.end {
            StreamEnd::Closed => w.u8(0),
            StreamEnd::Timeout => w.u8(1),
            StreamEnd::Error(e) => {
                w.u8(2);
                w.bytes(e.as_bytes());
            }
        }
        if let Some(t) = &self.tasks {
            w.u64(t.done);
            for list in [&t.refused, &t.join_errors] {
                w.u64(list.len() as u64);
                for e in list {
                    w.bytes(e.as_bytes());
                }
            }
            w.u64(t.joins.len() as u64);
            for &j in &t.joins {
                w.u64(j);
            }
        }
        w.0
    }

    /// Decodes what [`encode`](Self::encode) made; `None` if malformed.
    pub fn decode(bytes: &[u8]) -> Option<Self> {
        let mut r = Reader(bytes);
        if r.u8()? != b'C' {
            return None;
        }
        let consumer = u16::try_from(r.u32()?).ok()?;
        let n = r.u64()?;
        let mut receives = Vec::new();
        for _ in 0..n {
            receives.push(r.bytes()?.to_vec());
        }
        let end = match r.u8()? {
            0 => StreamEnd::Closed,
            1 => StreamEnd::Timeout,
            _ => StreamEnd::Error(r.string()?),
        };
        let tasks = if r.0.is_empty() {
            None
        } else {
            let done = r.u64()?;
            let mut lists = [Vec::new(), Vec::new()];
            for list in &mut lists {
                for _ in 0..r.u64()? {
                    list.push(r.string()?);
                }
            }
            let [refused, join_errors] = lists;
            let mut joins = Vec::new();
            for _ in 0..r.u64()? {
                joins.push(r.u64()?);
            }
            Some(TaskTrace {
                done,
                refused,
                joins,
                join_errors,
            })
        };
        r.0.is_empty().then_some(ConsumerTrace {
            consumer,
            receives,
            end,
            tasks,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traces_round_trip() {
        let p = ProducerTrace {
            producer: 3,
            sends: vec![
                SendRecord {
                    seq: 0,
                    len: 10,
                    error: None,
                },
                SendRecord {
                    seq: 1,
                    len: 0,
                    error: Some("the channel is closed".into()),
                },
            ],
        };
        assert_eq!(ProducerTrace::decode(&p.encode()), Some(p));
        for end in [
            StreamEnd::Closed,
            StreamEnd::Timeout,
            StreamEnd::Error("x".into()),
        ] {
            let mut c = ConsumerTrace {
                consumer: 1,
                receives: vec![vec![], vec![1, 2, 3]],
                end,
                tasks: None,
            };
            assert_eq!(ConsumerTrace::decode(&c.encode()), Some(c.clone()));
            c.tasks = Some(TaskTrace {
                done: 2,
                refused: vec!["no".into()],
                joins: vec![0, 3],
                join_errors: vec!["late".into()],
            });
            assert_eq!(ConsumerTrace::decode(&c.encode()), Some(c));
        }
        assert_eq!(ConsumerTrace::decode(b"C\x01"), None);
    }
}
