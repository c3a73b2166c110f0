//! Framed pipes: [`pipe()`] gives a one-way `(Sender, Receiver)` over
//! `pipe2(O_CLOEXEC)`, [`duplex()`] a two-way pair of [`Connection`]s over an
//! `AF_UNIX` `SOCK_STREAM` socketpair, like Python's `Pipe(duplex=False)` and
//! `Pipe()`. [`duplex_pipes()`](crate::duplex_pipes()) is the two-way
//! connection on two pipes: faster for small messages, two fds per end.
//!
//! # Example
//! ```
//! use ipc_harness::pipe;
//! use ipc_harness::harness::fork;
//! use std::time::Duration;
//!
//! let (tx, mut rx) = pipe()?;
//! let child = fork::spawn(move || {
//!     // The child keeps only the sender; the parent's receiver copy is
//!     // dropped here so that the parent sees end of stream when we exit.
//!     tx.send_bytes(b"Spam 004").unwrap();
//!     tx.send_bytes(b"Spam 000").unwrap();
//!     Vec::new()
//! })?;
//! // Cannot deadlock: each message is smaller than the pipe's capacity.
//! assert_eq!(rx.recv_bytes()?, b"Spam 004"); // one message per receive,
//! assert_eq!(rx.recv_bytes()?, b"Spam 000"); // never "Spam 004Spam 000"
//! child.wait(Duration::from_secs(10))?.expect_success();
//! # drop(rx);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Contract
//! - Each receive returns exactly one message, byte-identical to one send:
//!   never two merged, never a prefix (the [`crate::frame`] format).
//! - Messages arrive in the order they were sent.
//! - The end of the stream at a message boundary is [`Error::Closed`]; inside
//!   a message it is [`Error::Truncated`]. A send to a peer that is gone is
//!   [`Error::Closed`], never a `SIGPIPE`.
//! - `EINTR` never surfaces; a receive with a timeout that expires keeps what
//!   it had read, and the next receive continues the same message.
//! - One process sends on a given end and one receives: a receiver reads
//!   ahead, so two processes reading the same end would steal each other's
//!   bytes (use a [`Queue`](crate) for many readers). Likewise two writers
//!   on one end keep boundaries only for frames of at most `PIPE_BUF` bytes.
//!
//! System calls: a send is one `write` (a frame of at most 512 payload
//! bytes, copied with its header into one stack buffer), or one `writev` of
//! header and payload (pipes) / `sendmsg(MSG_NOSIGNAL)` (sockets) when the
//! kernel takes it whole, more for frames larger than the pipe's free space.
//! A [`pipe()`]'s sender sends a frame of at least [`SPLICE_AT`] bytes
//! through its ring of pages instead (see [`Sender::set_zero_copy`]): one
//! `vmsplice` per piece of at most 256 KiB, each after one `ioctl(FIONREAD)`
//! that tells whether the ring's next range has been read (a plain `write`
//! of that piece if not), plus one `fcntl(F_GETPIPE_SZ)` per frame.
//! A receive with nothing buffered is one `read`: of one frame's worth when
//! the last frame was small (at most 1 KiB), else of up to 64 KiB that may
//! bring in many frames; either way header and payload come in one call.
//! `recv_bytes_into` after a frame of more than 1 KiB makes it one `readv`
//! of a frame of that size (at most 64 KiB of it), header into the decoder
//! and payload straight into the caller's buffer, then reads of the rest
//! of a larger one into the caller's buffer too (a frame of another size is
//! taken from what was read, never lost).
//! A large frame is read straight into its own buffer, or with
//! `recv_bytes_into` straight into the caller's. A receive with a timeout
//! polls before each read. Nothing on the send path allocates (but the
//! ring, mapped once on the first large frame), and `recv_bytes_into`
//! allocates nothing once its read-ahead buffer exists.
//!
//! # Performance
//! Measured with `ipc-harness bench` (2 vCPUs, medians of interleaved
//! rounds):
//! - Small messages: at 64 B, `pipe()` moves 0.85-0.9x the messages of a raw
//!   pipe that sends one unframed write per message (one `read` and one
//!   `write` per message, as the raw pipe, no allocation, no `poll`; about
//!   175 user-space instructions per send and per receive against 27 for a
//!   bare `write`/`read` loop): what remains is the 4 header bytes and the
//!   scheduling of two processes.
//! - Large messages: the default 64 KiB pipe caps them near 1 GB/s. A frame
//!   of at least [`GROW_AT`] bytes sent on a pipe or FIFO first raises the
//!   pipe's capacity to [`LARGE_CAPACITY`] (1 MiB, `F_SETPIPE_SZ`) if it is
//!   smaller, silently keeping the old capacity if the kernel refuses:
//!   2.5-3.5x the default pipe from 64 KiB up. A
//!   [`Fifo`](crate::Fifo) gets this too. The capacity is raised on the first
//!   large frame, not at creation: a 1 MiB pipe is charged to the user's pipe
//!   budget (`pipe-user-pages-soft`, 64 MiB by default), and a program with
//!   many pipes carrying only small messages should not exhaust it for
//!   nothing (past it, the kernel gives new pipes just two pages).
//! - On top of that a [`pipe()`]'s sender skips the kernel's copy of large
//!   payloads ([`Sender::set_zero_copy`]) and `recv_bytes_into` reads them
//!   straight into the caller's buffer: 1.7-2.0x a raw 1 MiB pipe at
//!   64 KiB, 2.5-3.4x at 1 MiB; against `ipc-channel`'s `SOCK_SEQPACKET`
//!   channel in the same runs, 0.9-1.3x at 64 KiB (level, within the
//!   noise) and 1.9-2.2x at 1 MiB. The sender keeps a 2 MiB ring of pages
//!   for it.
//! - [`duplex()`] is one `SOCK_STREAM` socketpair, whose end is one fd that
//!   CPython's `Connection(fd)` takes as is. It moves large messages faster
//!   than a pipe (about 7x the default pipe at 1 MiB) and small ones slower:
//!   at 64 B, 0.3x the messages of a raw pipe and twice its round trip on
//!   one CPU. That is the socket's own cost, not the code's: `duplex()`
//!   moves 1.06x the 64 B messages of a raw socketpair, with one `sendto`
//!   per send and one `read` per receive. No setting of the socket brings
//!   it near a pipe (table below). A program whose two directions carry
//!   small messages and that needs no single-fd end gets the pipe figures
//!   from [`duplex_pipes()`](crate::duplex_pipes()).
//!
//! ## Two-way transports at 64 B
//! Each figure is the median over 7 interleaved rounds of the ratio to two
//! raw pipes of the same round (raw fds, fixed-size `write`/`read`, no
//! framing unless said; 2 vCPUs). Throughput: higher is better; round trip:
//! lower is better. "Free": the two processes may run on either CPU; the
//! free round trip mostly measures where the scheduler puts them.
//!
//! | transport at 64 B | one way, free | one way, 1 CPU | round trip, free | round trip, 1 CPU |
//! |---|---|---|---|---|
//! | two pipes | 1.00 | 1.00 | 1.00 | 1.00 |
//! | two pipes, framed (one `write`, one `read` per frame) | 0.97 | 0.94 | 1.02 | 1.01 |
//! | two pipes, framed, 64 KiB read-ahead | 0.80 | 0.81 | 1.01 | 1.01 |
//! | `SOCK_STREAM`, `write`/`read` | 0.30 | 0.30 | 2.06 | 1.95 |
//! | `SOCK_STREAM`, `send(MSG_NOSIGNAL)`/`recv` | 0.34 | 0.32 | 2.01 | 1.94 |
//! | `SOCK_STREAM`, `recv(MSG_DONTWAIT)`, `poll` when empty | 0.29 | 0.27 | 1.79 | 1.78 |
//! | `SOCK_STREAM`, `SO_SNDBUF`/`SO_RCVBUF` 4 MiB | 0.32 | 0.27 | 2.04 | 2.00 |
//! | `SOCK_STREAM`, `SO_SNDBUF`/`SO_RCVBUF` 16 KiB | 0.32 | 0.28 | 2.03 | 1.96 |
//! | `SOCK_STREAM`, framed, one `read` per frame (as `duplex()`) | 0.33 | 0.29 | 2.26 | 2.00 |
//! | `SOCK_STREAM`, framed, header and payload in two `read`s | 0.23 | 0.23 | 2.48 | 2.55 |
//! | `SOCK_STREAM`, framed, 64 KiB read-ahead | 0.33 | 0.31 | 2.05 | 1.97 |
//! | `SOCK_SEQPACKET`, `send`/`recv` | 0.30 | 0.27 | 1.65 | 1.63 |
//! | `SOCK_DGRAM`, `send`/`recv` | 0.29 | 0.27 | 1.69 | 1.63 |
//!
//! Differences under about 1.15x are noise on these machines. The packet
//! sockets round-trip a little faster but cannot carry CPython's framing (a
//! `recv` of the 4-byte header would discard the rest of the packet), and
//! the non-blocking receive saves less than the noise while costing
//! throughput. Measured with `ipc-harness bench` in the same rounds (64 B):
//!
//! | | one way, x raw pipe | round trip on 1 CPU, x two raw pipes |
//! |---|---|---|
//! | raw socketpair | 0.29 | 1.96 |
//! | `duplex()` | 0.32 | 2.03 |
//! | [`pipe()`] | 0.91 | 1.09 |
//! | [`duplex_pipes()`](crate::duplex_pipes()) | 0.89 | 1.08 |
//!
//! At 1 MiB the socketpair wins: `duplex()` 7.0x the default raw pipe,
//! `duplex_pipes()` 2.9x (its pipes raised to 1 MiB).

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::frame::{self, Decoder, FdSource, Frame};
use crate::sys::{self, Readiness, SocketKind, SpliceRing, WriteKind};

/// Creates a one-way framed pipe: what the [`Sender`] sends, the
/// [`Receiver`] receives, one whole message at a time. The pipe has the
/// kernel's default capacity (64 KiB) until the first message of at least
/// [`GROW_AT`] bytes raises it (see the module docs).
pub fn pipe() -> Result<(Sender, Receiver)> {
    let (r, w) = sys::pipe(false).map_err(|e| Error::io("pipe2", e))?;
    let mut tx = Sender::from_fd(w);
    tx.set_zero_copy(true);
    Ok((tx, Receiver::from_fd(r)))
}

// Two pipes or one socketpair: measured in the same rounds (one direction of
// a two-pipe duplex is exactly a `pipe()`; 5 rounds, medians of per-round
// ratios), two pipes / socketpair = 2.20x at 64 B, 1.23x at 4 KiB, 0.95x at
// 64 KiB, 0.69x at 1 MiB; same-core round trip 1.06x vs 1.68x the raw
// pipes. duplex() nevertheless stays one socketpair: its end is one fd that
// a CPython Connection(fd) takes as is (the interop tests hand our end to
// Python), Connection::split is a dup, and Connection::from_fd must take
// Python's socket anyway. The two-pipe connection is duplex_pipes().
//
// Our own cost on this path, counted with callgrind in one process (send on
// one end, receive on the other, 64 B): 574 instructions per message for
// duplex(), 554 for duplex_pipes(), 94 for a raw 68-byte write and read;
// strace: one sendto per send, one read per receive, nothing else. What is
// left is in frame::write_frame (it zeroes its 516-byte stack buffer on
// every send: memset is 49 of the 574), sys::write_all_vectored (134 for
// one slice) and the decoder (about 190). Tried and not kept here: a
// 128-byte stack buffer for payloads of at most 124 bytes (574 -> 543) and
// a one-slice fast path in write_all_vectored (543 -> 435; duplex_pipes()
// 554 -> 418) moved neither duplex() nor pipe() beyond the noise in the
// bench (7 rounds: duplex() 0.29x the raw pipe, pinned round trip 2.02x;
// pipe() 0.82x and 1.07x): the kernel's side of a socket or pipe message
// dwarfs it.
/// Creates a two-way framed connection on a `SOCK_STREAM` socketpair: each
/// [`Connection`] sends to and receives from the other. Each end is one fd,
/// which a Python peer takes as `Connection(fd)`. For small messages
/// [`duplex_pipes()`](crate::duplex_pipes()) is about 3x faster (two fds per
/// end; see the module docs).
pub fn duplex() -> Result<(Connection, Connection)> {
    let (a, b) = sys::socketpair(SocketKind::Stream).map_err(|e| Error::io("socketpair", e))?;
    Ok((Connection::from_fd(a), Connection::from_fd(b)))
}

/// The receiving half shared by [`Receiver`] and [`Connection`].
#[derive(Debug)]
struct Inbox {
    decoder: Decoder,
}

impl Inbox {
    fn recv(&mut self, fd: BorrowedFd<'_>, deadline: Option<Instant>) -> Result<Frame<'_>> {
        self.decoder.recv(&mut FdSource(fd), deadline)
    }

    fn recv_into(&mut self, fd: BorrowedFd<'_>, buf: &mut [u8]) -> Result<usize> {
        self.decoder.recv_into(&mut FdSource(fd), buf)
    }

    fn poll(&self, fd: BorrowedFd<'_>, timeout: Option<Duration>) -> Result<bool> {
        if self.decoder.has_buffered() {
            return Ok(true);
        }
        let deadline = timeout.map(sys::deadline_after);
        let ready = sys::wait_readable(fd, deadline).map_err(|e| Error::io("poll", e))?;
        Ok(ready == Readiness::Ready)
    }
}

#[cfg(feature = "serde")]
use crate::codec::{decode_value, encode_value};

/// The sending end of a [`pipe()`].
#[derive(Debug)]
pub struct Sender {
    fd: OwnedFd,
    kind: WriteKind,
    max: u64,
    zero_copy: bool,
    /// The pages large frames go through (see `set_zero_copy`), mapped on
    /// the first; locked for a send, so that two threads sending at once
    /// never share it (the one that finds it taken writes plainly).
    ring: Mutex<Option<SpliceRing>>,
}

pub use crate::frame::{GROW_AT, LARGE_CAPACITY, SPLICE_AT};

impl Sender {
    /// Wraps the write end of a pipe (or a FIFO, or anything `writev` works on)
    /// that carries this crate's frames, e.g. one inherited from Python.
    pub fn from_fd(fd: OwnedFd) -> Self {
        Sender {
            fd,
            kind: WriteKind::Pipe,
            max: frame::UNLIMITED,
            zero_copy: false,
            ring: Mutex::new(None),
        }
    }

    /// Gives the fd back.
    pub fn into_fd(self) -> OwnedFd {
        self.fd
    }

    /// Refuses, with [`Error::TooLarge`] and before writing anything, any
    /// message longer than `max` bytes. The default is no limit.
    pub fn set_max_message_size(&mut self, max: u64) {
        self.max = max;
    }

    /// The maximum message size.
    pub fn max_message_size(&self) -> u64 {
        self.max
    }

    /// Sends one message. Blocks while the pipe is full. [`Error::Closed`]
    /// if the receiver is gone; [`Error::TooLarge`] (nothing written) if the
    /// message is over the limit.
    pub fn send_bytes(&self, msg: &[u8]) -> Result<()> {
        if self.zero_copy && msg.len() >= SPLICE_AT {
            // Taken by another thread's send, or poisoned by a panic inside
            // one: write plainly (and never touch a poisoned ring again).
            if let Ok(mut ring) = self.ring.try_lock() {
                return frame::write_frame_spliced(self.fd.as_fd(), &mut ring, msg, self.max);
            }
        }
        frame::write_frame(self.fd.as_fd(), self.kind, msg, self.max)
    }

    /// Whether messages of at least [`SPLICE_AT`] bytes skip the kernel's
    /// copy: copied into a 2 MiB ring of pages this sender owns and handed
    /// to the pipe with `vmsplice`, each page reused only once its bytes
    /// have been read out of the pipe (about 3x the throughput of a plain
    /// `write` at 1 MiB). On for a [`pipe()`]'s sender, off for one made
    /// with [`from_fd`](Self::from_fd) or [`Connection::split`].
    ///
    /// Only for pipes whose read end is read by copying: a [`Receiver`],
    /// `read(2)`, Python's `Connection`. A program that moves bytes out of
    /// the read end with `splice(2)` or `tee(2)` keeps references to the
    /// ring's pages after they left the pipe, and could see a later
    /// message's bytes in an earlier one: turn this off for it. Has no
    /// effect on an fd that is not a pipe.
    pub fn set_zero_copy(&mut self, on: bool) {
        self.zero_copy = on && self.kind == WriteKind::Pipe;
    }

    /// Sends a value encoded with the crate's serde codec (postcard).
    #[cfg(feature = "serde")]
    pub fn send<T: serde::Serialize + ?Sized>(&self, value: &T) -> Result<()> {
        self.send_bytes(&encode_value(value)?)
    }
}

/// The receiving end of a [`pipe()`].
#[derive(Debug)]
pub struct Receiver {
    fd: OwnedFd,
    inbox: Inbox,
}

impl Receiver {
    /// Wraps the read end of a pipe (or FIFO) carrying this crate's frames.
    pub fn from_fd(fd: OwnedFd) -> Self {
        Receiver {
            fd,
            inbox: Inbox {
                decoder: Decoder::default(),
            },
        }
    }

    /// Gives the fd back. Bytes already read ahead are lost with the
    /// receiver: only call this on a receiver that has not received.
    pub fn into_fd(self) -> OwnedFd {
        self.fd
    }

    /// Refuses headers announcing more than `max` bytes with
    /// [`Error::TooLarge`]. The default is no limit.
    pub fn set_max_message_size(&mut self, max: u64) {
        self.inbox.decoder.set_max_message_size(max);
    }

    /// Receives one whole message, waiting as long as it takes.
    /// [`Error::Closed`] once every sender is gone and every message taken.
    pub fn recv_bytes(&mut self) -> Result<Vec<u8>> {
        Ok(self.inbox.recv(self.fd.as_fd(), None)?.into_vec())
    }

    /// Like [`recv_bytes`](Self::recv_bytes), but gives up with
    /// [`Error::Timeout`] after `timeout`. A timeout loses nothing: a message
    /// half read is finished by the next receive.
    pub fn recv_bytes_timeout(&mut self, timeout: Duration) -> Result<Vec<u8>> {
        let deadline = sys::deadline_after(timeout);
        Ok(self.inbox.recv(self.fd.as_fd(), Some(deadline))?.into_vec())
    }

    /// Receives one message into `buf`, returning its length. If it does
    /// not fit, returns [`Error::BufferTooSmall`] holding the whole message.
    pub fn recv_bytes_into(&mut self, buf: &mut [u8]) -> Result<usize> {
        self.inbox.recv_into(self.fd.as_fd(), buf)
    }

    /// True if there is something to receive: waits up to `timeout`
    /// (`None`: forever; `Some(Duration::ZERO)`: just looks), like Python's
    /// `Connection.poll`. End of stream counts as something to receive.
    pub fn poll(&self, timeout: Option<Duration>) -> Result<bool> {
        self.inbox.poll(self.fd.as_fd(), timeout)
    }

    /// Receives a value sent with [`Sender::send`].
    #[cfg(feature = "serde")]
    pub fn recv<T: serde::de::DeserializeOwned>(&mut self) -> Result<T> {
        decode_value(self.inbox.recv(self.fd.as_fd(), None)?.as_slice())
    }
}

/// One end of a [`duplex()`] connection: sends to and receives from the
/// other end.
#[derive(Debug)]
pub struct Connection {
    fd: OwnedFd,
    max: u64,
    inbox: Inbox,
}

impl Connection {
    /// Wraps a connected stream socket carrying this crate's frames, e.g.
    /// one end of a Python `multiprocessing.Pipe()`.
    pub fn from_fd(fd: OwnedFd) -> Self {
        Connection {
            fd,
            max: frame::UNLIMITED,
            inbox: Inbox {
                decoder: Decoder::default(),
            },
        }
    }

    /// Gives the fd back (bytes already read ahead are lost).
    pub fn into_fd(self) -> OwnedFd {
        self.fd
    }

    /// Sets the maximum message size for both directions.
    pub fn set_max_message_size(&mut self, max: u64) {
        self.max = max;
        self.inbox.decoder.set_max_message_size(max);
    }

    /// Splits the connection into a [`Sender`] and a [`Receiver`] on the
    /// same socket (the fd is duplicated), so that one thread can send while
    /// another receives: two processes that both send large messages before
    /// receiving would otherwise fill the socket's buffers and deadlock.
    /// The peer sees end of stream once both halves are dropped.
    pub fn split(self) -> Result<(Sender, Receiver)> {
        let dup = self.fd.try_clone().map_err(|e| Error::io("dup", e))?;
        let sender = Sender {
            fd: dup,
            kind: WriteKind::Socket,
            max: self.max,
            zero_copy: false,
            ring: Mutex::new(None),
        };
        let receiver = Receiver {
            fd: self.fd,
            inbox: self.inbox,
        };
        Ok((sender, receiver))
    }

    /// Sends one message to the other end. See [`Sender::send_bytes`].
    pub fn send_bytes(&self, msg: &[u8]) -> Result<()> {
        frame::write_frame(self.fd.as_fd(), WriteKind::Socket, msg, self.max)
    }

    /// Receives one whole message. See [`Receiver::recv_bytes`].
    pub fn recv_bytes(&mut self) -> Result<Vec<u8>> {
        Ok(self.inbox.recv(self.fd.as_fd(), None)?.into_vec())
    }

    /// Receives one message or gives up after `timeout`.
    /// See [`Receiver::recv_bytes_timeout`].
    pub fn recv_bytes_timeout(&mut self, timeout: Duration) -> Result<Vec<u8>> {
        let deadline = sys::deadline_after(timeout);
        Ok(self.inbox.recv(self.fd.as_fd(), Some(deadline))?.into_vec())
    }

    /// Receives one message into `buf`. See [`Receiver::recv_bytes_into`].
    pub fn recv_bytes_into(&mut self, buf: &mut [u8]) -> Result<usize> {
        self.inbox.recv_into(self.fd.as_fd(), buf)
    }

    /// True if there is something to receive. See [`Receiver::poll`].
    pub fn poll(&self, timeout: Option<Duration>) -> Result<bool> {
        self.inbox.poll(self.fd.as_fd(), timeout)
    }

    /// Sends a value encoded with the crate's serde codec (postcard).
    #[cfg(feature = "serde")]
    pub fn send<T: serde::Serialize + ?Sized>(&self, value: &T) -> Result<()> {
        self.send_bytes(&encode_value(value)?)
    }

    /// Receives a value sent with [`Connection::send`].
    #[cfg(feature = "serde")]
    pub fn recv<T: serde::de::DeserializeOwned>(&mut self) -> Result<T> {
        decode_value(self.inbox.recv(self.fd.as_fd(), None)?.as_slice())
    }
}

sys::impl_fd_traits!(Sender => fd, Receiver => fd, Connection => fd);
