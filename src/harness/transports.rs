//! [`Channel`] implementations: the crate's primitives, and the raw kernel
//! transports that make the lesson (a pipe, a packet-mode pipe, and
//! `SOCK_STREAM`, `SOCK_SEQPACKET`, `SOCK_DGRAM` socketpairs used the naive
//! way: one `write` per message, one `read` per receive), each declaring
//! honestly what it promises.

use std::os::fd::{AsFd, OwnedFd};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::channel::{Channel, Consumer, Ends, Producer, Promises};
use crate::duplex_pipes::PipeConnection;
use crate::error::{Error, Result};
use crate::fifo::{Fifo, FifoMode, FifoOptions, FifoReader, FifoWriter, Wait};
use crate::joinable::JoinableQueue;
use crate::pipe::{Connection, Receiver, Sender};
#[cfg(feature = "test-hooks")]
use crate::queue::KillPoint;
use crate::queue::Queue;
use crate::sys::{self, PIPE_BUF, Readiness, SocketKind, WriteKind};

fn left(deadline: Instant) -> Duration {
    deadline.saturating_duration_since(Instant::now())
}

/// One page: the least a pipe's capacity can be set to.
const TINY_CAPACITY: usize = 4096;

/// Shrinks the pipe behind `fd` to one page. Fails (and is ignored) on a
/// socket, or while the pipe holds more than that.
fn shrink_pipe(fd: impl AsFd) {
    let _ = sys::set_pipe_capacity(fd.as_fd(), TINY_CAPACITY);
}

impl Producer for Sender {
    fn send(&mut self, msg: &[u8]) -> Result<()> {
        self.send_bytes(msg)
    }

    /// Note that a frame of at least [`GROW_AT`](crate::frame::GROW_AT)
    /// bytes raises the capacity again: tiny capacities test the smaller
    /// frames.
    fn shrink_buffer(&mut self) {
        shrink_pipe(&*self);
    }
}

impl Consumer for Receiver {
    fn recv(&mut self, deadline: Instant) -> Result<Vec<u8>> {
        self.recv_bytes_timeout(left(deadline))
    }

    fn shrink_buffer(&mut self) {
        shrink_pipe(&*self);
    }
}

/// Shrinks the socket buffers behind `fd` as far as the kernel allows (it
/// rounds tiny requests up to its minimum, a few KiB).
fn shrink_socket(fd: impl AsFd) {
    use nix::sys::socket::{setsockopt, sockopt};
    let _ = setsockopt(&fd, sockopt::SndBuf, &TINY_CAPACITY);
    let _ = setsockopt(&fd, sockopt::RcvBuf, &TINY_CAPACITY);
}

impl Producer for Connection {
    fn send(&mut self, msg: &[u8]) -> Result<()> {
        self.send_bytes(msg)
    }

    fn shrink_buffer(&mut self) {
        shrink_socket(&*self);
    }
}

impl Consumer for Connection {
    fn recv(&mut self, deadline: Instant) -> Result<Vec<u8>> {
        self.recv_bytes_timeout(left(deadline))
    }

    fn shrink_buffer(&mut self) {
        shrink_socket(&*self);
    }
}

impl Producer for PipeConnection {
    fn send(&mut self, msg: &[u8]) -> Result<()> {
        self.send_bytes(msg)
    }

    /// Shrinks the pipe this end sends on (a frame of at least
    /// [`GROW_AT`](crate::frame::GROW_AT) bytes raises it again, as for a
    /// [`Sender`]).
    fn shrink_buffer(&mut self) {
        shrink_pipe(self.write_fd());
    }
}

impl Consumer for PipeConnection {
    fn recv(&mut self, deadline: Instant) -> Result<Vec<u8>> {
        self.recv_bytes_timeout(left(deadline))
    }

    fn shrink_buffer(&mut self) {
        shrink_pipe(self.read_fd());
    }
}

impl Producer for FifoWriter {
    fn send(&mut self, msg: &[u8]) -> Result<()> {
        self.send_bytes(msg)
    }

    /// Chunked mode (with the `test-hooks` feature): dies after chunk 1, 2
    /// or 3 (`point % 3 + 1`) of the next message longer than that.
    fn arm_kill_point(&mut self, point: u8) -> bool {
        arm_fifo_kill_point(self.mode(), point)
    }
}

#[cfg(feature = "test-hooks")]
fn arm_fifo_kill_point(mode: FifoMode, point: u8) -> bool {
    if mode != FifoMode::Chunked {
        return false;
    }
    crate::fifo::set_chunk_kill_point(Some(u32::from(point % 3) + 1));
    true
}

#[cfg(not(feature = "test-hooks"))]
fn arm_fifo_kill_point(_mode: FifoMode, _point: u8) -> bool {
    false
}

impl Consumer for FifoReader {
    fn recv(&mut self, deadline: Instant) -> Result<Vec<u8>> {
        self.recv_bytes_timeout(left(deadline))
    }

    fn shrink_buffer(&mut self) {
        shrink_pipe(&*self);
    }
}

/// [`pipe()`](crate::pipe()): one producer, one consumer.
#[derive(Debug, Clone, Copy, Default)]
pub struct PipeChannel;

impl Channel for PipeChannel {
    type Producer = Sender;
    type Consumer = Receiver;

    fn name(&self) -> String {
        "pipe()".into()
    }

    fn promises(&self) -> Promises {
        Promises::MESSAGES.single_producer().single_consumer()
    }

    fn open(&self, _producers: usize, _consumers: usize) -> Result<Ends<Sender, Receiver>> {
        let (tx, rx) = crate::pipe()?;
        Ok(Ends {
            producers: vec![tx],
            consumers: vec![rx],
        })
    }
}

/// One direction of [`duplex()`](crate::duplex()).
#[derive(Debug, Clone, Copy)]
pub struct DuplexChannel {
    /// Send on the second end and receive on the first, instead of the
    /// other way round.
    pub reversed: bool,
}

impl Channel for DuplexChannel {
    type Producer = Connection;
    type Consumer = Connection;

    fn name(&self) -> String {
        if self.reversed {
            "duplex() b->a".into()
        } else {
            "duplex() a->b".into()
        }
    }

    fn promises(&self) -> Promises {
        Promises::MESSAGES.single_producer().single_consumer()
    }

    fn open(&self, _producers: usize, _consumers: usize) -> Result<Ends<Connection, Connection>> {
        let (a, b) = crate::duplex()?;
        let (tx, rx) = if self.reversed { (b, a) } else { (a, b) };
        Ok(Ends {
            producers: vec![tx],
            consumers: vec![rx],
        })
    }
}

/// One direction of [`duplex_pipes()`](crate::duplex_pipes()).
#[derive(Debug, Clone, Copy)]
pub struct DuplexPipesChannel {
    /// Send on the second end and receive on the first, instead of the
    /// other way round.
    pub reversed: bool,
}

impl Channel for DuplexPipesChannel {
    type Producer = PipeConnection;
    type Consumer = PipeConnection;

    fn name(&self) -> String {
        if self.reversed {
            "duplex_pipes() b->a".into()
        } else {
            "duplex_pipes() a->b".into()
        }
    }

    fn promises(&self) -> Promises {
        Promises::MESSAGES.single_producer().single_consumer()
    }

    fn open(
        &self,
        _producers: usize,
        _consumers: usize,
    ) -> Result<Ends<PipeConnection, PipeConnection>> {
        let (a, b) = crate::duplex_pipes()?;
        let (tx, rx) = if self.reversed { (b, a) } else { (a, b) };
        Ok(Ends {
            producers: vec![tx],
            consumers: vec![rx],
        })
    }
}

/// A fresh path for a FIFO in the temporary directory.
pub(crate) fn temp_fifo_path(tag: &str) -> PathBuf {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    std::env::temp_dir().join(format!("ipc-harness-{tag}-{}-{n}.fifo", sys::getpid()))
}

/// [`Fifo`] in framed mode: many writers, each opening the path on its own,
/// one reader.
#[derive(Debug, Clone, Copy, Default)]
pub struct FifoChannel;

impl Channel for FifoChannel {
    type Producer = FifoWriter;
    type Consumer = FifoReader;

    fn name(&self) -> String {
        "Fifo (framed)".into()
    }

    /// A writer killed mid-frame leaves a torn frame in the FIFO that the
    /// next writer's frame is read into: see the [`fifo`](crate::fifo)
    /// module's contract.
    fn promises(&self) -> Promises {
        Promises::MESSAGES.single_consumer().torn_by_dead_writer()
    }

    fn open(&self, producers: usize, _consumers: usize) -> Result<Ends<FifoWriter, FifoReader>> {
        let fifo = Fifo::create(temp_fifo_path("check"))?;
        // The reader first, so that writers can open without waiting.
        let reader = FifoReader::open(fifo.path(), Wait::NonBlocking)?;
        let writers = (0..producers)
            .map(|_| FifoWriter::open(fifo.path(), Wait::NonBlocking))
            .collect::<Result<Vec<_>>>()?;
        // The open fds keep the FIFO alive; the name is no longer needed.
        drop(fifo);
        Ok(Ends {
            producers: writers,
            consumers: vec![reader],
        })
    }
}

/// [`Fifo`] in chunked mode ([`FifoOptions::chunked`]): many writers, each
/// opening the path on its own, one reader. Unlike [`FifoChannel`], a
/// writer killed in the middle of a message loses that message only, so
/// the fault generator may kill writers anywhere.
#[derive(Debug, Clone, Copy, Default)]
pub struct FifoChunkedChannel;

impl Channel for FifoChunkedChannel {
    type Producer = FifoWriter;
    type Consumer = FifoReader;

    fn name(&self) -> String {
        "Fifo (chunked)".into()
    }

    fn promises(&self) -> Promises {
        Promises::MESSAGES.single_consumer()
    }

    fn open(&self, producers: usize, _consumers: usize) -> Result<Ends<FifoWriter, FifoReader>> {
        let opts = FifoOptions::new().wait(Wait::NonBlocking).chunked(true);
        let fifo = opts.create(temp_fifo_path("check-chunked"))?;
        // The reader first, so that writers can open without waiting.
        let reader = opts.reader(fifo.path())?;
        let writers = (0..producers)
            .map(|_| opts.writer(fifo.path()))
            .collect::<Result<Vec<_>>>()?;
        drop(fifo);
        Ok(Ends {
            producers: writers,
            consumers: vec![reader],
        })
    }
}

/// A producer that writes each message with plain `write` calls (looping
/// over short writes, as careful naive code does), without framing.
#[derive(Debug)]
pub struct RawWriter {
    fd: OwnedFd,
    kind: WriteKind,
}

impl RawWriter {
    /// Wraps a pipe's or socket's fd.
    pub fn new(fd: OwnedFd, kind: WriteKind) -> Self {
        RawWriter { fd, kind }
    }
}

impl Producer for RawWriter {
    fn send(&mut self, msg: &[u8]) -> Result<()> {
        if msg.is_empty() {
            // One empty write: an empty datagram or packet on a socket,
            // nothing at all on a pipe.
            return sys::write(self.fd.as_fd(), msg)
                .map(drop)
                .map_err(crate::frame::write_error);
        }
        sys::write_all_vectored(self.fd.as_fd(), self.kind, &[msg])
            .map_err(crate::frame::write_error)
    }
}

/// A consumer that does one `read` of up to `buf` bytes per receive, as
/// naive code does: `os.read(fd, 65536)`. A read of 0 bytes is taken as
/// end of stream.
#[derive(Debug)]
pub struct RawReader {
    fd: OwnedFd,
    buf: usize,
    /// For transports without end of stream: stop after this much silence.
    idle_end: Option<Duration>,
}

impl RawReader {
    /// Wraps a pipe's or socket's fd; each receive reads at most `buf` bytes.
    pub fn new(fd: OwnedFd, buf: usize) -> Self {
        RawReader {
            fd,
            buf,
            idle_end: None,
        }
    }
}

impl Consumer for RawReader {
    fn recv(&mut self, deadline: Instant) -> Result<Vec<u8>> {
        let wait_until = match self.idle_end {
            Some(idle) => deadline.min(Instant::now() + idle),
            None => deadline,
        };
        match sys::wait_readable(self.fd.as_fd(), Some(wait_until))
            .map_err(|e| Error::io("poll", e))?
        {
            Readiness::TimedOut if self.idle_end.is_some() && Instant::now() < deadline => {
                return Err(Error::Closed);
            }
            Readiness::TimedOut => return Err(Error::Timeout),
            Readiness::Ready => {}
        }
        let mut out = vec![0u8; self.buf];
        let n = sys::read(self.fd.as_fd(), &mut out).map_err(|e| Error::io("read", e))?;
        if n == 0 && self.idle_end.is_none() {
            return Err(Error::Closed);
        }
        out.truncate(n);
        Ok(out)
    }
}

/// The raw kernel transports, used the naive way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RawKind {
    /// A pipe read with a 64 KiB buffer.
    Pipe,
    /// A packet-mode (`O_DIRECT`) pipe.
    PacketPipe,
    /// A `SOCK_STREAM` socketpair.
    Stream,
    /// A `SOCK_SEQPACKET` socketpair.
    SeqPacket,
    /// A `SOCK_DGRAM` socketpair.
    Datagram,
}

/// A raw transport as a [`Channel`].
#[derive(Debug, Clone, Copy)]
pub struct RawChannel(pub RawKind);

/// The read buffer of raw consumers.
pub const RAW_READ: usize = 64 * 1024;
/// The largest datagram or packet the socket transports are asked to carry.
pub const SOCKET_MESSAGE_MAX: usize = 64 * 1024;

impl RawChannel {
    /// All of them, in table order.
    pub const ALL: [RawChannel; 5] = [
        RawChannel(RawKind::Pipe),
        RawChannel(RawKind::PacketPipe),
        RawChannel(RawKind::Stream),
        RawChannel(RawKind::SeqPacket),
        RawChannel(RawKind::Datagram),
    ];
}

impl Channel for RawChannel {
    type Producer = RawWriter;
    type Consumer = RawReader;

    fn name(&self) -> String {
        match self.0 {
            RawKind::Pipe => "raw pipe",
            RawKind::PacketPipe => "packet pipe (<=4096 B, >=1 B)",
            RawKind::Stream => "SOCK_STREAM pair",
            RawKind::SeqPacket => "SOCK_SEQPACKET pair (>=1 B)",
            RawKind::Datagram => "SOCK_DGRAM pair",
        }
        .into()
    }

    fn promises(&self) -> Promises {
        let p = match self.0 {
            RawKind::Pipe | RawKind::Stream => Promises::BYTE_STREAM,
            // One packet per write up to PIPE_BUF (larger writes are cut);
            // a 0-byte write sends nothing at all.
            RawKind::PacketPipe => Promises::MESSAGES.max_message(PIPE_BUF).min_message(1),
            // A 0-byte packet reads as 0, which a reader takes for the end.
            RawKind::SeqPacket => Promises::MESSAGES
                .max_message(SOCKET_MESSAGE_MAX)
                .min_message(1),
            RawKind::Datagram => Promises::MESSAGES.max_message(SOCKET_MESSAGE_MAX),
        };
        p.single_producer().single_consumer()
    }

    fn open(&self, _producers: usize, _consumers: usize) -> Result<Ends<RawWriter, RawReader>> {
        let (read, write, kind) = match self.0 {
            RawKind::Pipe | RawKind::PacketPipe => {
                let (r, w) =
                    sys::pipe(self.0 == RawKind::PacketPipe).map_err(|e| Error::io("pipe2", e))?;
                (r, w, WriteKind::Pipe)
            }
            RawKind::Stream | RawKind::SeqPacket | RawKind::Datagram => {
                let sk = match self.0 {
                    RawKind::Stream => SocketKind::Stream,
                    RawKind::SeqPacket => SocketKind::SeqPacket,
                    _ => SocketKind::Datagram,
                };
                let (a, b) = sys::socketpair(sk).map_err(|e| Error::io("socketpair", e))?;
                (b, a, WriteKind::Socket)
            }
        };
        let mut reader = RawReader::new(read, RAW_READ);
        if self.0 == RawKind::Datagram {
            // Datagram sockets have no end of stream: stop after silence.
            reader.idle_end = Some(Duration::from_millis(100));
        }
        Ok(Ends {
            producers: vec![RawWriter::new(write, kind)],
            consumers: vec![reader],
        })
    }
}

/// A [`Queue`]: many producers, many consumers.
#[derive(Debug, Clone, Copy)]
pub struct QueueChannel {
    /// `Some(n)`: bounded to `n` items.
    pub bounded: Option<usize>,
    /// The ring's size in bytes (`None`: the default).
    pub ring_bytes: Option<usize>,
    /// The racing-readers pitfall: no consumer lock (only with the
    /// `test-hooks` feature).
    #[cfg(feature = "test-hooks")]
    pub racing_readers: bool,
}

impl QueueChannel {
    /// The default queue.
    pub const DEFAULT: QueueChannel = QueueChannel {
        bounded: None,
        ring_bytes: None,
        #[cfg(feature = "test-hooks")]
        racing_readers: false,
    };
}

/// A queue handle used by a producer process: it stops counting as a
/// consumer on its first send (in its own process, after the fork).
#[derive(Debug)]
pub struct QueueProducer {
    queue: Queue,
    declared: bool,
}

/// A queue handle used by a consumer process: it stops counting as a
/// producer on its first receive (in its own process, after the fork).
#[derive(Debug)]
pub struct QueueConsumer {
    queue: Queue,
    declared: bool,
}

/// Arms the `point`-th (modulo their number) of the queue's kill points on
/// the producer side (`producer`) or the consumer side, for the next time
/// this process passes it. Without the `test-hooks` feature the queue has
/// no kill points: false, and the harness falls back to a timed kill.
#[cfg(not(feature = "test-hooks"))]
fn arm_queue_kill_point(_point: u8, _producer: bool) -> bool {
    false
}

#[cfg(feature = "test-hooks")]
fn arm_queue_kill_point(point: u8, producer: bool) -> bool {
    let points: Vec<KillPoint> = KillPoint::ALL
        .into_iter()
        .filter(|p| p.is_producer() == producer)
        .collect();
    let chosen = points[usize::from(point) % points.len()];
    crate::queue::set_kill_point(Some(chosen), 1);
    true
}

/// A producer's send: on the first, the process stops counting as a
/// consumer (so that `Closed` can come once the consumers are gone).
fn producer_put(queue: &Queue, declared: &mut bool, msg: &[u8]) -> Result<()> {
    if !*declared {
        queue.close_consumer();
        *declared = true;
    }
    queue.put_bytes(msg)
}

impl Producer for QueueProducer {
    fn send(&mut self, msg: &[u8]) -> Result<()> {
        producer_put(&self.queue, &mut self.declared, msg)
    }

    fn arm_kill_point(&mut self, point: u8) -> bool {
        arm_queue_kill_point(point, true)
    }
}

/// A consumer's receive: on the first, the process stops counting as a
/// producer (so that `Closed` can come once the producers are gone).
fn consumer_get(queue: &Queue, declared: &mut bool, deadline: Instant) -> Result<Vec<u8>> {
    if !*declared {
        queue.close_producer();
        *declared = true;
    }
    queue.get_bytes_timeout(left(deadline))
}

impl Consumer for QueueConsumer {
    fn recv(&mut self, deadline: Instant) -> Result<Vec<u8>> {
        consumer_get(&self.queue, &mut self.declared, deadline)
    }

    fn arm_kill_point(&mut self, point: u8) -> bool {
        arm_queue_kill_point(point, false)
    }
}

impl Channel for QueueChannel {
    type Producer = QueueProducer;
    type Consumer = QueueConsumer;

    fn name(&self) -> String {
        let mut name = match self.bounded {
            Some(n) => format!("Queue::bounded({n})"),
            None => "Queue".to_string(),
        };
        if let Some(r) = self.ring_bytes {
            name.push_str(&format!(" ({} KiB ring)", r / 1024));
        }
        #[cfg(feature = "test-hooks")]
        if self.racing_readers {
            name = format!("pitfall: racing-readers ({name})");
        }
        name
    }

    /// Once every consumer is gone, a put that would wait for a slot or for
    /// ring room gets `Closed` (each producer declares on its first send
    /// that it will not consume), so the fault generator may remove every
    /// consumer.
    fn promises(&self) -> Promises {
        Promises::MESSAGES
    }

    fn open(
        &self,
        producers: usize,
        consumers: usize,
    ) -> Result<Ends<QueueProducer, QueueConsumer>> {
        let mut builder = Queue::builder();
        #[cfg(feature = "test-hooks")]
        {
            builder = builder.racing_readers_pitfall(self.racing_readers);
        }
        if let Some(n) = self.bounded {
            builder = builder.max_items(n);
        }
        if let Some(r) = self.ring_bytes {
            builder = builder.ring_bytes(r);
        }
        let queue = builder.build()?;
        Ok(Ends {
            producers: (0..producers)
                .map(|_| QueueProducer {
                    queue: queue.clone(),
                    declared: false,
                })
                .collect(),
            consumers: (0..consumers)
                .map(|_| QueueConsumer {
                    queue: queue.clone(),
                    declared: false,
                })
                .collect(),
        })
    }
}

/// A [`JoinableQueue`]: many producers, many consumers, and task
/// accounting: each consumer marks every message done after receiving it,
/// and joins once its stream has ended.
#[derive(Debug, Clone, Copy)]
pub struct JoinableChannel {
    /// `Some(n)`: bounded to `n` items.
    pub bounded: Option<usize>,
    /// The pitfall: a task counter each process keeps for itself (only
    /// with the `test-hooks` feature).
    #[cfg(feature = "test-hooks")]
    pub local_counter_pitfall: bool,
}

impl JoinableChannel {
    /// The default joinable queue.
    pub const DEFAULT: JoinableChannel = JoinableChannel {
        bounded: None,
        #[cfg(feature = "test-hooks")]
        local_counter_pitfall: false,
    };
}

/// A joinable queue handle used by a producer process: it stops counting
/// as a consumer on its first send.
#[derive(Debug)]
pub struct JoinableProducer {
    queue: JoinableQueue,
    declared: bool,
}

/// A joinable queue handle used by a consumer process: it stops counting as
/// a producer on its first receive, marks each message done after taking
/// it, and joins at the end.
#[derive(Debug)]
pub struct JoinableConsumer {
    queue: JoinableQueue,
    declared: bool,
}

impl Producer for JoinableProducer {
    fn send(&mut self, msg: &[u8]) -> Result<()> {
        producer_put(&self.queue, &mut self.declared, msg)
    }

    fn arm_kill_point(&mut self, point: u8) -> bool {
        arm_queue_kill_point(point, true)
    }
}

impl Consumer for JoinableConsumer {
    fn recv(&mut self, deadline: Instant) -> Result<Vec<u8>> {
        consumer_get(&self.queue, &mut self.declared, deadline)
    }

    fn arm_kill_point(&mut self, point: u8) -> bool {
        arm_queue_kill_point(point, false)
    }

    fn task_done(&mut self) -> Option<Result<()>> {
        Some(self.queue.task_done())
    }

    fn join(&mut self, deadline: Instant) -> Option<Result<u64>> {
        Some(
            self.queue
                .join_timeout(left(deadline))
                .map(|()| self.queue.unfinished_tasks()),
        )
    }
}

impl Channel for JoinableChannel {
    type Producer = JoinableProducer;
    type Consumer = JoinableConsumer;

    fn name(&self) -> String {
        let name = match self.bounded {
            Some(n) => format!("JoinableQueue::bounded({n})"),
            None => "JoinableQueue".to_string(),
        };
        #[cfg(feature = "test-hooks")]
        if self.local_counter_pitfall {
            return format!("pitfall: unshared-task-counter ({name})");
        }
        name
    }

    fn promises(&self) -> Promises {
        // Sends fail without consumers, as `QueueChannel`'s do.
        Promises::MESSAGES.with_tasks()
    }

    fn open(
        &self,
        producers: usize,
        consumers: usize,
    ) -> Result<Ends<JoinableProducer, JoinableConsumer>> {
        let mut builder = JoinableQueue::builder();
        #[cfg(feature = "test-hooks")]
        {
            builder = builder.local_counter_pitfall(self.local_counter_pitfall);
        }
        if let Some(n) = self.bounded {
            builder = builder.max_items(n);
        }
        let queue = builder.build()?;
        Ok(Ends {
            producers: (0..producers)
                .map(|_| JoinableProducer {
                    queue: queue.clone(),
                    declared: false,
                })
                .collect(),
            consumers: (0..consumers)
                .map(|_| JoinableConsumer {
                    queue: queue.clone(),
                    declared: false,
                })
                .collect(),
        })
    }
}
