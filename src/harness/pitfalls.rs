//! The pitfalls catalogue, and the deliberately broken transports that
//! show its pitfalls to the harness.
//!
//! [`Pitfall`] is the catalogue: ten numbered ways that IPC code goes wrong,
//! each with a name (the `ipc-harness demo` that shows it) and a one-line
//! summary. The pitfalls guide ([`crate::guide`]) explains each one.
//!
//! [`Variant`] is a naive transport: code with one of those pitfalls in it
//! that *claims* the promises of a real message transport, so the harness
//! must catch it breaking them.
//!
//! | variant | pitfall | naive code | what the oracle finds |
//! |---|---|---|---|
//! | [`Variant::Coalescing`] | 1 | one `read(fd, 65536)` per message | `Merged` |
//! | [`Variant::SplitReads`] | 2 | one `read(fd, 32)` per message | `Split` |
//! | [`Variant::InterleavedWrites`] | 3 | many writers framing > `PIPE_BUF` without a lock | `Corrupted` (torn frames) |
//! | [`Variant::RacingReaders`] | 4 | many readers of one framed pipe (or queue) without a lock | `Corrupted`, `Lost`, `Duplicated`, ... |
//! | [`Variant::IgnoredShortWrite`] | 5 | a non-blocking writer that drops `write`'s count | `Corrupted`, `Lost` |
//! | [`Variant::EofNeverComes`] | 6 | a reader that kept its own copy of the write end | `Hang` |
//! | [`Variant::NonRobustLock`] | 9 | a queue (one pipe) whose readers and writers take a plain lock, Python's way (caught under kill faults) | `Hang`, torn frames (`UnexpectedError`, `Corrupted`) |
//! | [`Variant::UnsharedTaskCounter`] | 10 | a joinable queue whose task counter each process keeps for itself | `TaskAccounting` |
//! | [`Variant::EintrAsEof`] | none | a reader that takes `EINTR` for end of stream (caught under a signal storm) | `Lost`, `UnexpectedError` |
//!
//! Pitfalls 7 and 8 (opening a FIFO, naming its path) are not about a
//! message stream: no transport shows them, their demos do.
//! [`Variant::EintrAsEof`] is not one of the ten: it is the lesson of the
//! harness's signal storm, kept beside the catalogue's variants.
//!
//! # Caught only by the history checker
//! Three naive queues deliver every message exactly once, whole, and in
//! each producer's order, so the oracle ([`check`](crate::harness::check))
//! passes every run of them; their answers are what is wrong, and only the
//! history checker ([`history`](crate::harness::history)), which knows
//! when each call began and returned, sees it. Each is a switch of the
//! crate's own `Queue`, only with the `test-hooks` feature:
//!
//! | switch | naive code | what the checker finds |
//! |---|---|---|
//! | `two_load_len_pitfall` | a `len` that reads two counters one after the other | a `len` no queue ever had (2 on a queue bounded to 1) |
//! | `busy_lock_empty_pitfall` | a non-blocking get that answers `Empty` when another consumer holds the lock (CPython's `Queue.get(block=False)`) | `try_get -> Empty` while messages put before it waited all through it |
//! | `deferred_put_pitfall` | a put that returns before its message is in the queue (CPython's feeder thread) | real-time order violated: `put(a)` returned before `put(b)` was called, yet `b` is taken first |
//!
//! They are not [`Variant`]s: a variant is a transport that the oracle
//! must catch breaking a delivery promise, and these break none. The
//! crate's tests record histories from them and show the checker catching
//! each one, the oracle passing the same runs, and the fixed queue passing
//! both.
//!
//! [`Variant::PLAIN`] are the variants that a plain campaign of
//! [`PitfallChannel`] catches. [`Variant::UnsharedTaskCounter`] is a flag
//! of the primitive itself, checked through
//! [`JoinableChannel`](crate::harness::transports::JoinableChannel) (as the
//! queue's own racing readers are through `QueueChannel`);
//! [`Variant::EintrAsEof`] and [`Variant::NonRobustLock`] are correct until a
//! fault strikes (a signal storm, a kill), so each is caught only with it.

use std::os::fd::{AsFd, OwnedFd};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::frame::{self, LONG_HEADER_LEN};
use crate::harness::channel::{Channel, Consumer, Ends, Producer, Promises};
use crate::harness::transports::{RAW_READ, RawReader, RawWriter};
use crate::pipe::{Receiver, Sender};
use crate::sys::{self, Readiness, WriteKind};

/// The pitfalls catalogue, in order: pitfall `n` is `ALL[n - 1]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Pitfall {
    /// 1. Two writes read as one: `b"Spam 004Spam 000"`.
    Coalescing,
    /// 2. A fixed-size read cuts a long message: `os.read(fd, 32)`.
    SplitReads,
    /// 3. Two writers of messages over `PIPE_BUF` without a lock.
    InterleavedWrites,
    /// 4. Two readers of one stream without a lock split messages.
    RacingReaders,
    /// 5. A non-blocking write's short count is ignored.
    IgnoredShortWrite,
    /// 6. The reader kept its own copy of the write end: end of stream
    ///    never comes.
    EofNeverComes,
    /// 7. Opening a FIFO blocks until the other side opens it; with
    ///    `O_NONBLOCK`, a writer gets `ENXIO`.
    FifoOpenBlocks,
    /// 8. `mkfifo` in a directory that does not exist.
    FifoMissingDirectory,
    /// 9. A producer killed holding the queue's lock.
    QueueKilledHoldingLock,
    /// 10. `task_done()` called more times than items were put.
    TaskDoneTooManyTimes,
}

impl Pitfall {
    /// The whole catalogue, in order.
    pub const ALL: [Pitfall; 10] = [
        Pitfall::Coalescing,
        Pitfall::SplitReads,
        Pitfall::InterleavedWrites,
        Pitfall::RacingReaders,
        Pitfall::IgnoredShortWrite,
        Pitfall::EofNeverComes,
        Pitfall::FifoOpenBlocks,
        Pitfall::FifoMissingDirectory,
        Pitfall::QueueKilledHoldingLock,
        Pitfall::TaskDoneTooManyTimes,
    ];

    /// Its number in the catalogue, 1 to 10.
    pub fn number(self) -> u8 {
        match self {
            Pitfall::Coalescing => 1,
            Pitfall::SplitReads => 2,
            Pitfall::InterleavedWrites => 3,
            Pitfall::RacingReaders => 4,
            Pitfall::IgnoredShortWrite => 5,
            Pitfall::EofNeverComes => 6,
            Pitfall::FifoOpenBlocks => 7,
            Pitfall::FifoMissingDirectory => 8,
            Pitfall::QueueKilledHoldingLock => 9,
            Pitfall::TaskDoneTooManyTimes => 10,
        }
    }

    /// Its name, e.g. `coalescing`: the `ipc-harness demo` that shows it.
    pub fn name(self) -> &'static str {
        match self {
            Pitfall::Coalescing => "coalescing",
            Pitfall::SplitReads => "split-reads",
            Pitfall::InterleavedWrites => "interleaved-writes",
            Pitfall::RacingReaders => "racing-readers",
            Pitfall::IgnoredShortWrite => "ignored-short-write",
            Pitfall::EofNeverComes => "eof-never-comes",
            Pitfall::FifoOpenBlocks => "fifo-open-blocks",
            Pitfall::FifoMissingDirectory => "fifo-missing-directory",
            Pitfall::QueueKilledHoldingLock => "queue-killed-holding-lock",
            Pitfall::TaskDoneTooManyTimes => "task-done-too-many-times",
        }
    }

    /// What goes wrong, in one line.
    pub fn summary(self) -> &'static str {
        match self {
            Pitfall::Coalescing => "two writes come back as one read: \"Spam 004Spam 000\"",
            Pitfall::SplitReads => "a fixed-size read(fd, 32) cuts a long message into pieces",
            Pitfall::InterleavedWrites => {
                "two writers of messages over PIPE_BUF, no lock: one message holds both"
            }
            Pitfall::RacingReaders => {
                "two readers of one pipe, no lock: each takes part of the same message"
            }
            Pitfall::IgnoredShortWrite => {
                "a non-blocking write took only part of a message and nobody looked"
            }
            Pitfall::EofNeverComes => {
                "the reader kept a copy of the write end: end of stream never comes"
            }
            Pitfall::FifoOpenBlocks => {
                "opening a FIFO blocks until the other side opens; O_NONBLOCK gets ENXIO"
            }
            Pitfall::FifoMissingDirectory => {
                "mkfifo in a directory that does not exist: a bare \"No such file\""
            }
            Pitfall::QueueKilledHoldingLock => {
                "a producer killed holding the queue's lock: Python's Queue deadlocks, ours goes on"
            }
            Pitfall::TaskDoneTooManyTimes => "task_done() called more times than items were put",
        }
    }

    /// Parses [`name`](Self::name).
    pub fn from_name(name: &str) -> Option<Pitfall> {
        Pitfall::ALL.into_iter().find(|p| p.name() == name)
    }
}

/// A naive transport: code with a pitfall in it, for the harness to catch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Variant {
    /// Pitfall 1: two writes read as one: `b"Spam 004Spam 000"`.
    Coalescing,
    /// Pitfall 2: a fixed-size read cuts a long message: `os.read(fd, 32)`.
    SplitReads,
    /// Pitfall 3: two writers of frames over `PIPE_BUF` without a lock.
    InterleavedWrites,
    /// Pitfall 4: two readers of one stream without a lock split frames.
    RacingReaders,
    /// Pitfall 5: a non-blocking write's short count is ignored.
    IgnoredShortWrite,
    /// Pitfall 6: the reader kept its own copy of the write end: end of
    /// stream never comes.
    EofNeverComes,
    /// Pitfall 10's transport form: a joinable queue's task counter is a
    /// plain variable in each process (copied by `fork`), not shared:
    /// `task_done` in a worker is refused, a join returns early or never.
    UnsharedTaskCounter,
    /// Not in the catalogue: a framed pipe reader whose read loop takes
    /// `EINTR` for end of stream: right until a signal arrives while it
    /// waits. Caught under the harness's signal storm
    /// ([`RunOptions::signal_storm`](crate::harness::run::RunOptions)).
    EintrAsEof,
    /// Pitfall 9's transport form: a queue built Python's way: one pipe, a
    /// lock for its writers and one for its readers, each a plain semaphore
    /// (here a token byte in a pipe). A process killed while holding one
    /// never gives it back: every process that wants it waits forever.
    /// Caught under the harness's kill faults
    /// ([`CampaignConfig::faults`](crate::harness::campaign::CampaignConfig)).
    NonRobustLock,
}

impl Variant {
    /// The variants that a plain campaign of [`PitfallChannel`] catches,
    /// in catalogue order.
    pub const PLAIN: [Variant; 6] = [
        Variant::Coalescing,
        Variant::SplitReads,
        Variant::InterleavedWrites,
        Variant::RacingReaders,
        Variant::IgnoredShortWrite,
        Variant::EofNeverComes,
    ];

    /// A short name, e.g. `coalescing`, for the command line.
    pub fn name(self) -> &'static str {
        match self {
            Variant::Coalescing => "coalescing",
            Variant::SplitReads => "split-reads",
            Variant::InterleavedWrites => "interleaved-writes",
            Variant::RacingReaders => "racing-readers",
            Variant::IgnoredShortWrite => "ignored-short-write",
            Variant::EofNeverComes => "eof-never-comes",
            Variant::UnsharedTaskCounter => "unshared-task-counter",
            Variant::EintrAsEof => "eintr-as-eof",
            Variant::NonRobustLock => "non-robust-lock",
        }
    }

    /// What the naive code does, in one line.
    pub fn summary(self) -> &'static str {
        match self {
            Variant::Coalescing => {
                "unframed writes, one read(fd, 65536) per message: writes come back glued together"
            }
            Variant::SplitReads => {
                "unframed writes, one read(fd, 32) per message: long messages come back in pieces"
            }
            Variant::InterleavedWrites => {
                "several writers send frames over PIPE_BUF into one pipe without a lock: frames tear"
            }
            Variant::RacingReaders => {
                "several readers take frames from one pipe without a lock: they steal each other's bytes"
            }
            Variant::IgnoredShortWrite => {
                "a non-blocking writer ignores how much write() took: the rest of each frame is dropped"
            }
            Variant::EofNeverComes => {
                "the reader keeps its own copy of the write end: it waits forever for an end of stream"
            }
            Variant::UnsharedTaskCounter => {
                "each process counts its own tasks: a worker's task_done is refused, a join returns early"
            }
            Variant::EintrAsEof => {
                "a reader takes EINTR for end of stream: the first signal while it waits ends it early"
            }
            Variant::NonRobustLock => {
                "a queue's readers and writers share plain locks: a process killed holding one wedges the rest"
            }
        }
    }

    /// The violation kinds that show this pitfall; the harness must find
    /// at least one of them.
    pub fn shows_as(self) -> &'static [&'static str] {
        match self {
            Variant::Coalescing => &["Merged"],
            Variant::SplitReads => &["Split"],
            Variant::InterleavedWrites => &["Corrupted", "Merged", "Split", "UnexpectedError"],
            // Readers stealing each other's bytes break everything at once.
            Variant::RacingReaders => &[
                "Corrupted",
                "Lost",
                "Duplicated",
                "Merged",
                "Split",
                "Reordered",
                "UnexpectedError",
                "Hang",
            ],
            Variant::IgnoredShortWrite => &["Corrupted", "Lost", "UnexpectedError"],
            Variant::EofNeverComes => &["Hang"],
            Variant::UnsharedTaskCounter => &["TaskAccounting"],
            Variant::EintrAsEof => &["Lost", "UnexpectedError"],
            // A process killed holding a lock wedges the others; a writer
            // killed mid-frame also leaves a torn frame behind.
            Variant::NonRobustLock => &["Hang", "UnexpectedError", "Corrupted"],
        }
    }

    /// The catalogue's pitfall this variant shows; `None` for
    /// [`EintrAsEof`](Variant::EintrAsEof), which is not one of the ten.
    pub fn pitfall(self) -> Option<Pitfall> {
        match self {
            Variant::Coalescing => Some(Pitfall::Coalescing),
            Variant::SplitReads => Some(Pitfall::SplitReads),
            Variant::InterleavedWrites => Some(Pitfall::InterleavedWrites),
            Variant::RacingReaders => Some(Pitfall::RacingReaders),
            Variant::IgnoredShortWrite => Some(Pitfall::IgnoredShortWrite),
            Variant::EofNeverComes => Some(Pitfall::EofNeverComes),
            Variant::NonRobustLock => Some(Pitfall::QueueKilledHoldingLock),
            Variant::UnsharedTaskCounter => Some(Pitfall::TaskDoneTooManyTimes),
            Variant::EintrAsEof => None,
        }
    }
}

/// A naive variant as a transport the harness can check.
#[derive(Debug, Clone, Copy)]
pub struct PitfallChannel(pub Variant);

/// The producer end of a pitfall transport.
#[derive(Debug)]
pub enum PitfallProducer {
    /// Unframed writes.
    Raw(RawWriter),
    /// Framed writes, correct on their own.
    Framed(Sender),
    /// Framed, written with one non-blocking `write` whose count is ignored.
    ShortWriter(OwnedFd),
    /// Framed, each frame written holding the writers' plain lock; `true`:
    /// a kill point is armed there (see [`Producer::arm_kill_point`]).
    Locked(Sender, TokenLock, bool),
}

/// The consumer end of a pitfall transport.
#[derive(Debug)]
pub enum PitfallConsumer {
    /// One `read` per receive, after `pause` of work between reads.
    Raw(RawReader, Duration),
    /// A framed reader.
    Framed(Receiver),
    /// A framed reader holding a copy of the write end.
    HoldingWriteEnd(Receiver, OwnedFd),
    /// A framed reader (header, then payload, blocking reads) that takes
    /// `EINTR` for end of stream.
    EintrAsEof(OwnedFd),
    /// Reads one whole frame holding the readers' plain lock; `true`: a
    /// kill point is armed there.
    Locked(OwnedFd, TokenLock, bool),
}

/// A plain process-shared lock, as a semaphore of one: the token is a byte
/// in a pipe; taking the lock reads it, giving it back writes it. Nothing
/// gives back the token of a process that dies holding it.
#[derive(Debug)]
pub struct TokenLock {
    take: OwnedFd,
    give: OwnedFd,
}

impl TokenLock {
    fn new() -> Result<TokenLock> {
        let (take, give) = sys::pipe(false).map_err(|e| Error::io("pipe2", e))?;
        // Non-blocking, so that two waiters woken for one token do not
        // both block in read: the loser polls again.
        sys::set_nonblocking(take.as_fd(), true).map_err(|e| Error::io("O_NONBLOCK", e))?;
        sys::write(give.as_fd(), b"t").map_err(|e| Error::io("write", e))?;
        Ok(TokenLock { take, give })
    }

    fn try_clone(&self) -> Result<TokenLock> {
        let dup = |fd: &OwnedFd| fd.try_clone().map_err(|e| Error::io("dup", e));
        Ok(TokenLock {
            take: dup(&self.take)?,
            give: dup(&self.give)?,
        })
    }

    /// Takes the lock, waiting until `deadline` (`None`: forever).
    fn lock(&self, deadline: Option<Instant>) -> Result<()> {
        loop {
            match sys::wait_readable(self.take.as_fd(), deadline) {
                Ok(Readiness::TimedOut) => return Err(Error::Timeout),
                Ok(Readiness::Ready) => {}
                Err(e) => return Err(Error::io("poll", e)),
            }
            let mut token = [0u8; 1];
            match sys::read(self.take.as_fd(), &mut token) {
                Ok(1) => return Ok(()),
                Ok(_) => return Err(Error::Closed),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(Error::io("read", e)),
            }
        }
    }

    fn unlock(&self) -> Result<()> {
        sys::write(self.give.as_fd(), b"t")
            .map(drop)
            .map_err(|e| Error::io("write", e))
    }
}

/// Reads exactly `buf.len()` bytes (retrying `EINTR`): `Ok(false)` at end
/// of stream before the first byte, `Truncated` inside.
fn read_exact(fd: &OwnedFd, buf: &mut [u8], deadline: Instant) -> Result<bool> {
    let mut got = 0;
    while got < buf.len() {
        if sys::wait_readable(fd.as_fd(), Some(deadline)).map_err(|e| Error::io("poll", e))?
            == Readiness::TimedOut
        {
            return Err(Error::Timeout);
        }
        match sys::read(fd.as_fd(), &mut buf[got..]) {
            Ok(0) if got == 0 => return Ok(false),
            Ok(0) => {
                return Err(Error::Truncated {
                    expected: buf.len() as u64,
                    got: got as u64,
                });
            }
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(Error::io("read", e)),
        }
    }
    Ok(true)
}

/// Reads one frame from a pipe shared by several readers, all of it, no
/// more (a buffered reader would take its neighbours' frames).
fn read_one_frame(fd: &OwnedFd, deadline: Instant) -> Result<Vec<u8>> {
    let mut header = [0u8; LONG_HEADER_LEN];
    if !read_exact(fd, &mut header[..frame::HEADER_LEN], deadline)? {
        return Err(Error::Closed);
    }
    let len = match frame::parse_header(&header[..frame::HEADER_LEN])? {
        Some((_, len)) => len,
        None => {
            read_exact(fd, &mut header[frame::HEADER_LEN..], deadline)?;
            frame::parse_header(&header)?
                .expect("a whole long header")
                .1
        }
    };
    let mut msg = vec![0u8; usize::try_from(len).map_err(|_| Error::corrupt("huge length"))?];
    if !read_exact(fd, &mut msg, deadline)? && len > 0 {
        return Err(Error::Truncated {
            expected: len,
            got: 0,
        });
    }
    Ok(msg)
}

/// Reads exactly `buf.len()` bytes the naive way: `Ok(false)` at end of
/// stream, and the bug: `EINTR` counts as end of stream too.
fn read_exact_naive(fd: &OwnedFd, buf: &mut [u8]) -> Result<bool> {
    let mut got = 0;
    while got < buf.len() {
        match nix::unistd::read(fd, &mut buf[got..]) {
            Ok(0) | Err(nix::errno::Errno::EINTR) => return Ok(false),
            Ok(n) => got += n,
            Err(e) => return Err(Error::io("read", e.into())),
        }
    }
    Ok(true)
}

impl Producer for PitfallProducer {
    /// The plain-lock queue has one kill point: holding the writers' lock.
    fn arm_kill_point(&mut self, _point: u8) -> bool {
        match self {
            PitfallProducer::Locked(_, _, kill_holding) => {
                *kill_holding = true;
                true
            }
            _ => false,
        }
    }

    fn send(&mut self, msg: &[u8]) -> Result<()> {
        match self {
            PitfallProducer::Raw(w) => w.send(msg),
            PitfallProducer::Framed(s) => s.send_bytes(msg),
            PitfallProducer::ShortWriter(fd) => {
                let mut header = [0u8; LONG_HEADER_LEN];
                let n = frame::encode_header(msg.len() as u64, &mut header);
                let mut whole = header[..n].to_vec();
                whole.extend_from_slice(msg);
                // The bug: whatever write() returns, carry on as if it all went.
                let _ = sys::write(fd.as_fd(), &whole);
                Ok(())
            }
            PitfallProducer::Locked(s, lock, kill_holding) => {
                // Correct, as long as nobody dies holding the lock.
                lock.lock(None)?;
                if *kill_holding {
                    crate::harness::fault::kill_self();
                }
                let sent = s.send_bytes(msg);
                lock.unlock()?;
                sent
            }
        }
    }
}

impl Consumer for PitfallConsumer {
    /// The plain-lock queue has one kill point: holding the readers' lock.
    fn arm_kill_point(&mut self, _point: u8) -> bool {
        match self {
            PitfallConsumer::Locked(_, _, kill_holding) => {
                *kill_holding = true;
                true
            }
            _ => false,
        }
    }

    fn recv(&mut self, deadline: Instant) -> Result<Vec<u8>> {
        match self {
            PitfallConsumer::Raw(r, pause) => {
                // Work between reads, as real code does: writes pile up.
                std::thread::sleep(*pause);
                r.recv(deadline)
            }
            PitfallConsumer::EintrAsEof(fd) => {
                let mut header = [0u8; 4];
                if !read_exact_naive(fd, &mut header)? {
                    return Err(Error::Closed);
                }
                let len = i32::from_be_bytes(header).max(0) as usize;
                let mut msg = vec![0u8; len];
                if !read_exact_naive(fd, &mut msg)? {
                    return Err(Error::Closed);
                }
                Ok(msg)
            }
            PitfallConsumer::Locked(fd, lock, kill_holding) => {
                lock.lock(Some(deadline))?;
                if *kill_holding {
                    crate::harness::fault::kill_self();
                }
                let msg = read_one_frame(fd, deadline);
                lock.unlock()?;
                msg
            }
            PitfallConsumer::Framed(r) | PitfallConsumer::HoldingWriteEnd(r, _) => {
                r.recv_bytes_timeout(deadline.saturating_duration_since(Instant::now()))
            }
        }
    }
}

impl Channel for PitfallChannel {
    type Producer = PitfallProducer;
    type Consumer = PitfallConsumer;

    fn name(&self) -> String {
        format!("pitfall: {}", self.0.name())
    }

    fn promises(&self) -> Promises {
        // Each claims what the real primitive promises, for the shape the
        // naive code is used in.
        match self.0 {
            // Messages well under the 64 KiB read and never empty, so what
            // shows is the coalescing itself, not a long message cut by the
            // buffer or a 0-byte message that a stream cannot carry.
            Variant::Coalescing => Promises::MESSAGES
                .single_producer()
                .single_consumer()
                .max_message(RAW_READ / 4)
                .min_message(1),
            // Messages longer than the 32-byte read, so every one is cut.
            Variant::SplitReads => Promises::MESSAGES
                .single_producer()
                .single_consumer()
                .min_message(64),
            Variant::InterleavedWrites => Promises::MESSAGES.single_consumer(),
            Variant::RacingReaders => Promises::MESSAGES.single_producer(),
            Variant::IgnoredShortWrite | Variant::EofNeverComes => {
                Promises::MESSAGES.single_producer().single_consumer()
            }
            Variant::UnsharedTaskCounter => Promises::MESSAGES.with_tasks(),
            Variant::EintrAsEof => Promises::MESSAGES.single_producer().single_consumer(),
            // What the crate's Queue promises.
            Variant::NonRobustLock => Promises::MESSAGES.sends_block_without_consumers(),
        }
    }

    fn open(
        &self,
        producers: usize,
        consumers: usize,
    ) -> Result<Ends<PitfallProducer, PitfallConsumer>> {
        if self.0 == Variant::UnsharedTaskCounter {
            return Err(Error::io(
                "open the unshared-task-counter pitfall (check it through JoinableChannel)",
                std::io::Error::from(std::io::ErrorKind::Unsupported),
            ));
        }
        let (r, w) = sys::pipe(false).map_err(|e| Error::io("pipe2", e))?;
        let dup = |fd: &OwnedFd| fd.try_clone().map_err(|e| Error::io("dup", e));
        let ends = match self.0 {
            Variant::Coalescing | Variant::SplitReads => {
                // The coalescing reader works a little between reads, so
                // writes pile up in the pipe, as they do in real programs.
                let (buf, pause) = if self.0 == Variant::Coalescing {
                    (RAW_READ, Duration::from_millis(1))
                } else {
                    (32, Duration::ZERO)
                };
                Ends {
                    producers: vec![PitfallProducer::Raw(RawWriter::new(w, WriteKind::Pipe))],
                    consumers: vec![PitfallConsumer::Raw(RawReader::new(r, buf), pause)],
                }
            }
            Variant::InterleavedWrites => Ends {
                producers: (0..producers)
                    .map(|_| Ok(PitfallProducer::Framed(Sender::from_fd(dup(&w)?))))
                    .collect::<Result<_>>()?,
                consumers: vec![PitfallConsumer::Framed(Receiver::from_fd(r))],
            },
            Variant::RacingReaders => Ends {
                producers: vec![PitfallProducer::Framed(Sender::from_fd(w))],
                consumers: (0..consumers)
                    .map(|_| Ok(PitfallConsumer::Framed(Receiver::from_fd(dup(&r)?))))
                    .collect::<Result<_>>()?,
            },
            Variant::IgnoredShortWrite => {
                // A one-page pipe, so any frame over 4 KiB is a short write.
                sys::set_pipe_capacity(w.as_fd(), 4096)
                    .map_err(|e| Error::io("F_SETPIPE_SZ", e))?;
                sys::set_nonblocking(w.as_fd(), true).map_err(|e| Error::io("O_NONBLOCK", e))?;
                Ends {
                    producers: vec![PitfallProducer::ShortWriter(w)],
                    consumers: vec![PitfallConsumer::Framed(Receiver::from_fd(r))],
                }
            }
            Variant::EofNeverComes => {
                let kept = dup(&w)?;
                Ends {
                    producers: vec![PitfallProducer::Framed(Sender::from_fd(w))],
                    consumers: vec![PitfallConsumer::HoldingWriteEnd(Receiver::from_fd(r), kept)],
                }
            }
            Variant::EintrAsEof => Ends {
                producers: vec![PitfallProducer::Framed(Sender::from_fd(w))],
                consumers: vec![PitfallConsumer::EintrAsEof(r)],
            },
            Variant::NonRobustLock => {
                let (writers, readers) = (TokenLock::new()?, TokenLock::new()?);
                Ends {
                    producers: (0..producers)
                        .map(|_| {
                            Ok(PitfallProducer::Locked(
                                Sender::from_fd(dup(&w)?),
                                writers.try_clone()?,
                                false,
                            ))
                        })
                        .collect::<Result<_>>()?,
                    consumers: (0..consumers)
                        .map(|_| {
                            Ok(PitfallConsumer::Locked(
                                dup(&r)?,
                                readers.try_clone()?,
                                false,
                            ))
                        })
                        .collect::<Result<_>>()?,
                }
            }
            Variant::UnsharedTaskCounter => unreachable!("refused above"),
        };
        Ok(ends)
    }
}
