//! The throughput and round-trip cases: which transport, which topology,
//! and how each is named in the tables and the JSON.

/// One throughput case: a transport and a topology.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Case {
    /// `pipe2`, default capacity, fixed-size `write`/`read` (no framing).
    RawPipe,
    /// `pipe2` raised to 1 MiB with `F_SETPIPE_SZ`, no framing.
    RawPipe1M,
    /// `socketpair(AF_UNIX, SOCK_STREAM)`, no framing.
    RawSocket,
    /// A FIFO (`mkfifo`, default capacity), fixed-size `write`/`read` on the
    /// fds of a [`FifoWriter`](ipc_harness::fifo::FifoWriter) and a
    /// [`FifoReader`](ipc_harness::fifo::FifoReader), no framing: what the
    /// kernel's FIFO path costs, the same-transport baseline of the `Fifo`
    /// cases (not one of [`Case::RAW`]: a FIFO is slower than an anonymous
    /// pipe, its inode lives in a real file system).
    RawFifo,
    /// [`pipe()`](ipc_harness::pipe()), `recv_bytes_into` a reused buffer.
    Pipe,
    /// [`pipe()`](ipc_harness::pipe()), `recv_bytes` (a new `Vec` per message).
    PipeAlloc,
    /// [`duplex()`](ipc_harness::duplex()), `recv_bytes_into` a reused buffer.
    Duplex,
    /// [`duplex_pipes()`](ipc_harness::duplex_pipes()), `recv_bytes_into` a reused buffer.
    DuplexPipes,
    /// [`Fifo`](ipc_harness::fifo::Fifo), framed, `recv_bytes_into`.
    Fifo,
    /// [`Fifo`](ipc_harness::fifo::Fifo) in [small-messages mode](ipc_harness::fifo::FifoOptions::small_messages)
    /// (no lock per send; messages of at most
    /// [`SMALL_MESSAGE_MAX`](ipc_harness::fifo::SMALL_MESSAGE_MAX) bytes, so run at
    /// those sizes only).
    FifoSmall,
    /// [`Fifo`](ipc_harness::fifo::Fifo) in [chunked mode](ipc_harness::fifo::FifoOptions::chunked)
    /// (no lock; every write one chunk of at most `PIPE_BUF` bytes), `recv_bytes_into`.
    FifoChunked,
    /// [`Queue`](ipc_harness::queue::Queue), 1 producer x 1 consumer.
    Queue1x1,
    /// [`Queue`](ipc_harness::queue::Queue), 2 producers x 2 consumers.
    Queue2x2,
    /// [`JoinableQueue`](ipc_harness::JoinableQueue), 1 x 1, `task_done` per item,
    /// the producer joins at the end.
    Joinable1x1,
    /// [`Queue`](ipc_harness::queue::Queue), 8 producers x 8 consumers (the scaling run).
    Queue8x8,
    /// [`JoinableQueue`](ipc_harness::JoinableQueue), 8 x 8, `task_done` per item,
    /// every producer joins at the end (the scaling run).
    Joinable8x8,
    /// [`Fifo`](ipc_harness::fifo::Fifo), framed, 8 writers (each opening the path) x 1 reader (the
    /// scaling run: a FIFO has one reader by design).
    Fifo8x1,
    /// [`Fifo`](ipc_harness::fifo::Fifo) in chunked mode, 8 writers x 1 reader (the scaling run).
    FifoChunked8x1,
    /// `ipc-channel`'s `ipc::bytes_channel()`: `IpcBytesSender::send`,
    /// `IpcBytesReceiver::recv` (a new `Vec` per message). A peer, with
    /// [`Options::peers`](super::Options::peers) and the `peers` cargo feature.
    IpcChannel,
    /// `interprocess`'s `unnamed_pipe::pipe()`, which has no message
    /// framing: each message goes out as one `write_all` of a 4-byte length
    /// and the payload (built in a reused buffer), and is read back through
    /// a 64 KiB `BufReader` with two `read_exact`s into a reused buffer, as
    /// a user of the crate would frame it. A peer, like [`Case::IpcChannel`].
    Interprocess,
    /// `iceoryx2` publish-subscribe over `[u8]` (shared memory, zero-copy
    /// transport, slices up to the message size), busy-polling: the
    /// publisher copies each message into a loaned sample
    /// (`loan_slice_uninit` + `write_from_slice`) and sends it, retrying
    /// while the subscriber's buffer is full (nothing is dropped); the
    /// subscriber spins on `receive()` (after 64 empty polls, a
    /// `sched_yield` after each) and copies each sample into a reused buffer. No system call
    /// per message while both keep up. Each side opens its node and ports
    /// after the fork; the connection and a warm-up of full-size samples are
    /// done before the clock starts. A peer, like [`Case::IpcChannel`].
    Iceoryx2Poll,
    /// As [`Case::Iceoryx2Poll`], event-driven: beside the data service an
    /// event service, the publisher calls `notify()` after each send (a
    /// datagram to the listener's socket, one system call), the subscriber
    /// drains `receive()` and then sleeps in the listener's
    /// `blocking_wait` until the next notification.
    Iceoryx2Event,
    /// Python `multiprocessing.Pipe()`, `send_bytes`/`recv_bytes`.
    PyPipe,
    /// Python `multiprocessing.Queue`, 1 x 1.
    PyQueue1x1,
    /// Python `multiprocessing.Queue`, 2 x 2.
    PyQueue2x2,
    /// Python `multiprocessing.JoinableQueue`, 1 x 1, `task_done` per item.
    PyJoinable1x1,
}

impl Case {
    /// The cases this crate runs itself, in table order.
    pub const RUST: [Case; 14] = [
        Case::RawPipe,
        Case::RawPipe1M,
        Case::RawSocket,
        Case::RawFifo,
        Case::Pipe,
        Case::PipeAlloc,
        Case::Duplex,
        Case::DuplexPipes,
        Case::Fifo,
        Case::FifoSmall,
        Case::FifoChunked,
        Case::Queue1x1,
        Case::Queue2x2,
        Case::Joinable1x1,
    ];
    /// The Python cases (with [`Options::python`](super::Options::python)).
    pub const PYTHON: [Case; 4] = [
        Case::PyPipe,
        Case::PyQueue1x1,
        Case::PyQueue2x2,
        Case::PyJoinable1x1,
    ];
    /// The scaling cases (with [`Options::scaling`](super::Options::scaling)), each compared with its
    /// 1x1 form ([`Case::scales`]) of the same round.
    pub const SCALING: [Case; 4] = [
        Case::Queue8x8,
        Case::Joinable8x8,
        Case::Fifo8x1,
        Case::FifoChunked8x1,
    ];
    /// The other crates (with [`Options::peers`](super::Options::peers), in a build with the
    /// `peers` feature).
    pub const PEERS: [Case; 4] = [
        Case::IpcChannel,
        Case::Interprocess,
        Case::Iceoryx2Poll,
        Case::Iceoryx2Event,
    ];
    /// The peers that move bytes through the kernel, as [`pipe()`](ipc_harness::pipe())
    /// and [`duplex()`](ipc_harness::duplex()) do: what those two are compared with
    /// (the shared-memory iceoryx2 is the [`Queue`](ipc_harness::queue::Queue)'s peer).
    pub const KERNEL_PEERS: [Case; 2] = [Case::IpcChannel, Case::Interprocess];
    /// The raw transports: the "best raw" of a round is the fastest of these.
    pub const RAW: [Case; 3] = [Case::RawPipe, Case::RawPipe1M, Case::RawSocket];

    /// The row label.
    pub fn label(self) -> &'static str {
        match self {
            Case::RawPipe => "raw pipe (64 KiB)",
            Case::RawPipe1M => "raw pipe (1 MiB)",
            Case::RawSocket => "raw socketpair",
            Case::RawFifo => "raw FIFO",
            Case::Pipe => "pipe()",
            Case::PipeAlloc => "pipe() recv_bytes",
            Case::Duplex => "duplex()",
            Case::DuplexPipes => "duplex_pipes()",
            Case::Fifo => "Fifo",
            Case::FifoSmall => "Fifo small_messages",
            Case::FifoChunked => "Fifo chunked",
            Case::Queue1x1 => "Queue 1x1",
            Case::Queue2x2 => "Queue 2x2",
            Case::Joinable1x1 => "JoinableQueue 1x1",
            Case::Queue8x8 => "Queue 8x8",
            Case::Joinable8x8 => "JoinableQueue 8x8",
            Case::Fifo8x1 => "Fifo 8 writers",
            Case::FifoChunked8x1 => "Fifo chunked 8 writers",
            Case::IpcChannel => "ipc-channel bytes_channel",
            Case::Interprocess => "interprocess pipe, framed",
            Case::Iceoryx2Poll => "iceoryx2 pub-sub, busy-poll",
            Case::Iceoryx2Event => "iceoryx2 pub-sub, event",
            Case::PyPipe => "py Pipe() send_bytes",
            Case::PyQueue1x1 => "py Queue 1x1",
            Case::PyQueue2x2 => "py Queue 2x2",
            Case::PyJoinable1x1 => "py JoinableQueue 1x1",
        }
    }

    /// A short label for the Python cases.
    pub(super) fn short(self) -> &'static str {
        match self {
            Case::PyPipe => "py Pipe",
            Case::PyQueue1x1 | Case::PyQueue2x2 => "py Queue",
            _ => self.label(),
        }
    }

    /// A stable identifier for JSON.
    pub fn key(self) -> &'static str {
        match self {
            Case::RawPipe => "raw_pipe",
            Case::RawPipe1M => "raw_pipe_1mib",
            Case::RawSocket => "raw_socketpair",
            Case::RawFifo => "raw_fifo",
            Case::Pipe => "pipe",
            Case::PipeAlloc => "pipe_recv_bytes",
            Case::Duplex => "duplex",
            Case::DuplexPipes => "duplex_pipes",
            Case::Fifo => "fifo",
            Case::FifoSmall => "fifo_small_messages",
            Case::FifoChunked => "fifo_chunked",
            Case::Queue1x1 => "queue_1x1",
            Case::Queue2x2 => "queue_2x2",
            Case::Joinable1x1 => "joinable_1x1",
            Case::Queue8x8 => "queue_8x8",
            Case::Joinable8x8 => "joinable_8x8",
            Case::Fifo8x1 => "fifo_8_writers",
            Case::FifoChunked8x1 => "fifo_chunked_8_writers",
            Case::IpcChannel => "ipc_channel",
            Case::Interprocess => "interprocess_pipe",
            Case::Iceoryx2Poll => "iceoryx2_poll",
            Case::Iceoryx2Event => "iceoryx2_event",
            Case::PyPipe => "python_pipe",
            Case::PyQueue1x1 => "python_queue_1x1",
            Case::PyQueue2x2 => "python_queue_2x2",
            Case::PyJoinable1x1 => "python_joinable_1x1",
        }
    }

    /// Python's equivalent, the denominator of the "x Python" ratio.
    pub fn python_peer(self) -> Option<Case> {
        match self {
            Case::Pipe
            | Case::PipeAlloc
            | Case::Duplex
            | Case::DuplexPipes
            | Case::Fifo
            | Case::FifoSmall
            | Case::FifoChunked => Some(Case::PyPipe),
            Case::Queue1x1 => Some(Case::PyQueue1x1),
            Case::Queue2x2 => Some(Case::PyQueue2x2),
            Case::Joinable1x1 => Some(Case::PyJoinable1x1),
            _ => None,
        }
    }

    /// For a scaling case, the 1x1 case it is compared with.
    pub fn scales(self) -> Option<Case> {
        match self {
            Case::Queue8x8 => Some(Case::Queue1x1),
            Case::Joinable8x8 => Some(Case::Joinable1x1),
            Case::Fifo8x1 => Some(Case::Fifo),
            Case::FifoChunked8x1 => Some(Case::FifoChunked),
            _ => None,
        }
    }

    /// How many processes send: the message count is rounded up to a
    /// multiple of it, so every producer sends the same number.
    pub fn producers(self) -> usize {
        match self {
            Case::Queue2x2 | Case::PyQueue2x2 => 2,
            Case::Queue8x8 | Case::Joinable8x8 | Case::Fifo8x1 | Case::FifoChunked8x1 => 8,
            _ => 1,
        }
    }

    /// True for the Python cases.
    pub fn is_python(self) -> bool {
        Case::PYTHON.contains(&self)
    }

    /// Whether the case can carry messages of `size` bytes.
    pub fn carries(self, size: usize) -> bool {
        self != Case::FifoSmall || size <= ipc_harness::fifo::SMALL_MESSAGE_MAX
    }
}

/// One round-trip case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LatencyCase {
    /// Two raw pipes, one each way.
    RawPipe,
    /// One raw `SOCK_STREAM` socketpair (the transport under `duplex()`).
    RawSocket,
    /// Two [`pipe()`](ipc_harness::pipe())s.
    Pipe,
    /// One [`duplex()`](ipc_harness::duplex()).
    Duplex,
    /// One [`duplex_pipes()`](ipc_harness::duplex_pipes()).
    DuplexPipes,
    /// Two [`Queue`](ipc_harness::queue::Queue)s.
    Queue,
    /// Two `ipc-channel` bytes channels (a peer, with the `peers` feature).
    IpcChannel,
    /// Two `iceoryx2` publish-subscribe services (ping, pong) over `[u8]`,
    /// each side busy-polling `receive()` as in [`Case::Iceoryx2Poll`]
    /// (a peer, with the `peers` feature).
    Iceoryx2Poll,
    /// Two `iceoryx2` publish-subscribe services, each with an event
    /// service: `notify()` after each send, `blocking_wait` before each
    /// receive, as in [`Case::Iceoryx2Event`] (a peer, with the `peers` feature).
    Iceoryx2Event,
    /// Python `Pipe()`.
    PyPipe,
    /// Two Python `Queue`s.
    PyQueue,
}

impl LatencyCase {
    /// The cases this crate runs itself.
    pub const RUST: [LatencyCase; 6] = [
        LatencyCase::RawPipe,
        LatencyCase::RawSocket,
        LatencyCase::Pipe,
        LatencyCase::Duplex,
        LatencyCase::DuplexPipes,
        LatencyCase::Queue,
    ];
    /// The Python cases.
    pub const PYTHON: [LatencyCase; 2] = [LatencyCase::PyPipe, LatencyCase::PyQueue];
    /// The peers' cases (with [`Options::peers`](super::Options::peers) and the `peers` feature).
    pub const PEERS: [LatencyCase; 3] = [
        LatencyCase::IpcChannel,
        LatencyCase::Iceoryx2Poll,
        LatencyCase::Iceoryx2Event,
    ];

    /// The row label.
    pub fn label(self) -> &'static str {
        match self {
            LatencyCase::RawPipe => "raw pipes",
            LatencyCase::RawSocket => "raw socketpair",
            LatencyCase::Pipe => "pipe()",
            LatencyCase::Duplex => "duplex()",
            LatencyCase::DuplexPipes => "duplex_pipes()",
            LatencyCase::Queue => "Queue",
            LatencyCase::IpcChannel => "ipc-channel",
            LatencyCase::Iceoryx2Poll => "iceoryx2 busy-poll",
            LatencyCase::Iceoryx2Event => "iceoryx2 event",
            LatencyCase::PyPipe => "py Pipe()",
            LatencyCase::PyQueue => "py Queue",
        }
    }

    /// A stable identifier for JSON.
    pub fn key(self) -> &'static str {
        match self {
            LatencyCase::RawPipe => "raw_pipes",
            LatencyCase::RawSocket => "raw_socketpair",
            LatencyCase::Pipe => "pipe",
            LatencyCase::Duplex => "duplex",
            LatencyCase::DuplexPipes => "duplex_pipes",
            LatencyCase::Queue => "queue",
            LatencyCase::IpcChannel => "ipc_channel",
            LatencyCase::Iceoryx2Poll => "iceoryx2_poll",
            LatencyCase::Iceoryx2Event => "iceoryx2_event",
            LatencyCase::PyPipe => "python_pipe",
            LatencyCase::PyQueue => "python_queue",
        }
    }
}
