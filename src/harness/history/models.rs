//! Built-in models: a FIFO [queue](QueueModel) (the crate's `Queue`), a
//! [per-producer FIFO channel](ChannelModel) (a pipe with many writers),
//! and [`JoinableQueue`'s tasks](TasksModel).
//!
//! Messages are `u64` values; a test puts distinct values so that each
//! answer names the message it saw.
//!
//! # Refusals are true answers
//! `Full`, `Empty` and `Timeout` are allowed only if they were true at the
//! operation's linearization point: a `try_put` may answer `Full` only at
//! an instant when the queue held its maximum, a `get_timeout` may answer
//! `Timeout` only at an instant when the queue was empty. A queue that
//! times out a `get` while a message waits all through the call is
//! therefore a violation. (A weaker model would accept a refusal at any
//! time; that one could not catch a lost wake-up.)

use std::collections::{BTreeMap, VecDeque};

use super::{History, Model, Wire};

/// An operation on a FIFO queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum QueueOp {
    /// `put`: blocks while the queue is full.
    Put(u64),
    /// `try_put`: `Full` instead of blocking.
    TryPut(u64),
    /// `put_timeout`: `Timeout` if still full at the deadline.
    PutTimeout(u64),
    /// `get`: blocks while the queue is empty.
    Get,
    /// `try_get`: `Empty` instead of blocking.
    TryGet,
    /// `get_timeout`: `Timeout` if still empty at the deadline.
    GetTimeout,
    /// `len`.
    Len,
    /// `is_empty`.
    IsEmpty,
    /// `is_full`.
    IsFull,
}

/// An answer from a FIFO queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum QueueAnswer {
    /// A put succeeded.
    Ok,
    /// A `try_put` found the queue full.
    Full,
    /// A `try_get` found the queue empty.
    Empty,
    /// A timed put or get gave up.
    Timeout,
    /// A get returned this message.
    Value(u64),
    /// `len` returned this.
    Len(usize),
    /// `is_empty` or `is_full` returned this.
    Bool(bool),
}

/// A FIFO queue, bounded or not: the sequential specification of the
/// crate's `Queue`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueModel {
    /// The most messages it holds; `None`: unbounded.
    pub max_items: Option<usize>,
}

impl QueueModel {
    /// An unbounded queue.
    pub fn unbounded() -> Self {
        QueueModel { max_items: None }
    }

    /// A queue that holds at most `max_items` messages.
    pub fn bounded(max_items: usize) -> Self {
        QueueModel {
            max_items: Some(max_items),
        }
    }

    fn full(&self, q: &VecDeque<u64>) -> bool {
        self.max_items.is_some_and(|m| q.len() >= m)
    }
}

impl Model for QueueModel {
    type State = VecDeque<u64>;
    type Input = QueueOp;
    type Output = QueueAnswer;

    fn init(&self) -> VecDeque<u64> {
        VecDeque::new()
    }

    fn step(&self, q: &VecDeque<u64>, op: &QueueOp, answer: &QueueAnswer) -> Option<VecDeque<u64>> {
        use QueueAnswer as A;
        use QueueOp as Op;
        let push = |v: u64| {
            (!self.full(q)).then(|| {
                let mut q = q.clone();
                q.push_back(v);
                q
            })
        };
        let pop = |v: u64| {
            (q.front() == Some(&v)).then(|| {
                let mut q = q.clone();
                q.pop_front();
                q
            })
        };
        let when = |true_now: bool| true_now.then(|| q.clone());
        match (op, answer) {
            (Op::Put(v) | Op::TryPut(v) | Op::PutTimeout(v), A::Ok) => push(*v),
            (Op::TryPut(_), A::Full) | (Op::PutTimeout(_), A::Timeout) => when(self.full(q)),
            (Op::Get | Op::TryGet | Op::GetTimeout, A::Value(v)) => pop(*v),
            (Op::TryGet, A::Empty) | (Op::GetTimeout, A::Timeout) => when(q.is_empty()),
            (Op::Len, A::Len(n)) => when(q.len() == *n),
            (Op::IsEmpty, A::Bool(b)) => when(q.is_empty() == *b),
            (Op::IsFull, A::Bool(b)) => when(self.full(q) == *b),
            _ => None,
        }
    }

    fn step_pending(&self, q: &VecDeque<u64>, op: &QueueOp) -> Vec<VecDeque<u64>> {
        match op {
            QueueOp::Put(v) | QueueOp::TryPut(v) | QueueOp::PutTimeout(v) if !self.full(q) => {
                let mut q = q.clone();
                q.push_back(*v);
                vec![q]
            }
            QueueOp::Get | QueueOp::TryGet | QueueOp::GetTimeout if !q.is_empty() => {
                let mut q = q.clone();
                q.pop_front();
                vec![q]
            }
            _ => Vec::new(),
        }
    }

    fn describe(&self, op: &QueueOp, answer: Option<&QueueAnswer>) -> String {
        let call = match op {
            QueueOp::Put(v) => format!("put({v})"),
            QueueOp::TryPut(v) => format!("try_put({v})"),
            QueueOp::PutTimeout(v) => format!("put_timeout({v})"),
            QueueOp::Get => "get()".into(),
            QueueOp::TryGet => "try_get()".into(),
            QueueOp::GetTimeout => "get_timeout()".into(),
            QueueOp::Len => "len()".into(),
            QueueOp::IsEmpty => "is_empty()".into(),
            QueueOp::IsFull => "is_full()".into(),
        };
        let answer = match answer {
            None => "?".to_string(),
            Some(QueueAnswer::Ok) => "Ok".into(),
            Some(QueueAnswer::Full) => "Full".into(),
            Some(QueueAnswer::Empty) => "Empty".into(),
            Some(QueueAnswer::Timeout) => "Timeout".into(),
            Some(QueueAnswer::Value(v)) => v.to_string(),
            Some(QueueAnswer::Len(n)) => n.to_string(),
            Some(QueueAnswer::Bool(b)) => b.to_string(),
        };
        format!("{call} -> {answer}")
    }
}

fn tagged(tag: u8, v: u64) -> Vec<u8> {
    let mut b = vec![tag];
    b.extend_from_slice(&v.to_le_bytes());
    b
}

fn untag(bytes: &[u8]) -> Option<(u8, u64)> {
    let (&tag, rest) = bytes.split_first()?;
    Some((tag, u64::from_le_bytes(rest.try_into().ok()?)))
}

impl Wire for QueueOp {
    fn to_wire(&self) -> Vec<u8> {
        match *self {
            QueueOp::Put(v) => tagged(0, v),
            QueueOp::TryPut(v) => tagged(1, v),
            QueueOp::PutTimeout(v) => tagged(2, v),
            QueueOp::Get => tagged(3, 0),
            QueueOp::TryGet => tagged(4, 0),
            QueueOp::GetTimeout => tagged(5, 0),
            QueueOp::Len => tagged(6, 0),
            QueueOp::IsEmpty => tagged(7, 0),
            QueueOp::IsFull => tagged(8, 0),
        }
    }

    fn from_wire(bytes: &[u8]) -> Option<Self> {
        Some(match untag(bytes)? {
            (0, v) => QueueOp::Put(v),
            (1, v) => QueueOp::TryPut(v),
            (2, v) => QueueOp::PutTimeout(v),
            (3, _) => QueueOp::Get,
            (4, _) => QueueOp::TryGet,
            (5, _) => QueueOp::GetTimeout,
            (6, _) => QueueOp::Len,
            (7, _) => QueueOp::IsEmpty,
            (8, _) => QueueOp::IsFull,
            _ => return None,
        })
    }
}

impl Wire for QueueAnswer {
    fn to_wire(&self) -> Vec<u8> {
        match *self {
            QueueAnswer::Ok => tagged(0, 0),
            QueueAnswer::Full => tagged(1, 0),
            QueueAnswer::Empty => tagged(2, 0),
            QueueAnswer::Timeout => tagged(3, 0),
            QueueAnswer::Value(v) => tagged(4, v),
            QueueAnswer::Len(n) => tagged(5, n as u64),
            QueueAnswer::Bool(b) => tagged(6, u64::from(b)),
        }
    }

    fn from_wire(bytes: &[u8]) -> Option<Self> {
        Some(match untag(bytes)? {
            (0, _) => QueueAnswer::Ok,
            (1, _) => QueueAnswer::Full,
            (2, _) => QueueAnswer::Empty,
            (3, _) => QueueAnswer::Timeout,
            (4, v) => QueueAnswer::Value(v),
            (5, n) => QueueAnswer::Len(usize::try_from(n).ok()?),
            (6, b) => QueueAnswer::Bool(b != 0),
            _ => return None,
        })
    }
}

/// An operation on a channel that keeps each producer's messages in order
/// but orders different producers' messages freely (a pipe with several
/// writers and one reader).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChannelOp {
    /// Producer `from` sends `value`.
    Send {
        /// The producer.
        from: usize,
        /// The message.
        value: u64,
    },
    /// A blocking receive.
    Recv,
    /// A receive that answers `Empty` instead of blocking.
    TryRecv,
}

/// An answer from a per-producer FIFO channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChannelAnswer {
    /// A send succeeded.
    Ok,
    /// A receive got producer `from`'s `value`.
    Value {
        /// The producer.
        from: usize,
        /// The message.
        value: u64,
    },
    /// A `TryRecv` found nothing.
    Empty,
}

/// A channel that is FIFO per producer. It partitions by producer when
/// every receive returned a message (a receive that answered `Empty`, or
/// never returned, concerns every producer at once).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ChannelModel;

impl Model for ChannelModel {
    type State = BTreeMap<usize, VecDeque<u64>>;
    type Input = ChannelOp;
    type Output = ChannelAnswer;

    fn init(&self) -> Self::State {
        BTreeMap::new()
    }

    fn step(&self, s: &Self::State, op: &ChannelOp, answer: &ChannelAnswer) -> Option<Self::State> {
        match (op, answer) {
            (ChannelOp::Send { from, value }, ChannelAnswer::Ok) => {
                let mut s = s.clone();
                s.entry(*from).or_default().push_back(*value);
                Some(s)
            }
            (ChannelOp::Recv | ChannelOp::TryRecv, ChannelAnswer::Value { from, value }) => {
                if s.get(from).and_then(|q| q.front()) != Some(value) {
                    return None;
                }
                let mut s = s.clone();
                let q = s.get_mut(from).expect("checked");
                q.pop_front();
                if q.is_empty() {
                    s.remove(from);
                }
                Some(s)
            }
            (ChannelOp::TryRecv, ChannelAnswer::Empty) => s.is_empty().then(|| s.clone()),
            _ => None,
        }
    }

    fn step_pending(&self, s: &Self::State, op: &ChannelOp) -> Vec<Self::State> {
        match op {
            ChannelOp::Send { from, value } => {
                let mut s = s.clone();
                s.entry(*from).or_default().push_back(*value);
                vec![s]
            }
            ChannelOp::Recv | ChannelOp::TryRecv => s
                .keys()
                .map(|from| {
                    let mut s = s.clone();
                    let q = s.get_mut(from).expect("a key");
                    q.pop_front();
                    if q.is_empty() {
                        s.remove(from);
                    }
                    s
                })
                .collect(),
        }
    }

    fn partition(&self, history: &History<ChannelOp, ChannelAnswer>) -> Option<Vec<Vec<usize>>> {
        let mut parts: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
        for (i, op) in history.ops.iter().enumerate() {
            let from = match (op.input, op.output) {
                (ChannelOp::Send { from, .. }, _) => from,
                (_, Some(ChannelAnswer::Value { from, .. })) => from,
                _ => return None,
            };
            parts.entry(from).or_default().push(i);
        }
        Some(parts.into_values().collect())
    }
}

/// An operation on a `JoinableQueue`, as far as its tasks go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TaskOp {
    /// `put`: one more unfinished task.
    Put(u64),
    /// `get`.
    Get,
    /// `task_done`.
    TaskDone,
    /// `join`: returns once every task put is done.
    Join,
}

/// An answer from a `JoinableQueue`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TaskAnswer {
    /// A put, `task_done` or `join` returned.
    Ok,
    /// A get returned this message.
    Value(u64),
    /// `task_done` was refused: no task was unfinished.
    TooManyTaskDone,
}

/// `JoinableQueue`: an unbounded FIFO queue plus a count of unfinished
/// tasks. `join` may return only at an instant when that count is zero.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TasksModel;

impl Model for TasksModel {
    /// The messages waiting, and the tasks unfinished.
    type State = (VecDeque<u64>, u64);
    type Input = TaskOp;
    type Output = TaskAnswer;

    fn init(&self) -> Self::State {
        (VecDeque::new(), 0)
    }

    fn step(
        &self,
        (q, open): &Self::State,
        op: &TaskOp,
        answer: &TaskAnswer,
    ) -> Option<Self::State> {
        match (op, answer) {
            (TaskOp::Put(v), TaskAnswer::Ok) => {
                let mut q = q.clone();
                q.push_back(*v);
                Some((q, open + 1))
            }
            (TaskOp::Get, TaskAnswer::Value(v)) if q.front() == Some(v) => {
                Some((q.iter().skip(1).copied().collect(), *open))
            }
            (TaskOp::TaskDone, TaskAnswer::Ok) if *open > 0 => Some((q.clone(), open - 1)),
            (TaskOp::TaskDone, TaskAnswer::TooManyTaskDone) if *open == 0 => Some((q.clone(), 0)),
            (TaskOp::Join, TaskAnswer::Ok) if *open == 0 => Some((q.clone(), 0)),
            _ => None,
        }
    }

    fn step_pending(&self, s: &Self::State, op: &TaskOp) -> Vec<Self::State> {
        let (q, open) = s;
        match op {
            TaskOp::Put(v) => self
                .step(s, &TaskOp::Put(*v), &TaskAnswer::Ok)
                .into_iter()
                .collect(),
            TaskOp::Get => q
                .front()
                .map(|_| (q.iter().skip(1).copied().collect(), *open))
                .into_iter()
                .collect(),
            TaskOp::TaskDone if *open > 0 => vec![(q.clone(), open - 1)],
            _ => Vec::new(),
        }
    }
}
