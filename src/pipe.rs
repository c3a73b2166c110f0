//! Framed pipes: [`pipe()`] gives a one-way `(Sender, Receiver)` over
//! `pipe2(O_CLOEXEC)`, [`duplex()`] a two-way pair of [`Connection`]s over an
//! `AF_UNIX` `SOCK_STREAM` socketpair, like Python's `Pipe(duplex=False)` and
//! `Pipe()`.
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
//! A receive with nothing buffered is one `read`: of one frame's worth when
//! the last frame was small (at most 1 KiB), else of up to 64 KiB that may
//! bring in many frames; either way header and payload come in one call.
//! A large frame is read straight into its own buffer, or with
//! `recv_bytes_into` straight into the caller's. A receive with a timeout
//! polls before each read. Nothing on the send path allocates, and
//! `recv_bytes_into` allocates nothing once its read-ahead buffer exists.
//!
//! # Performance, and the choices behind it
//! Measured with `ipc-harness bench` (2 vCPUs, medians of interleaved
//! rounds):
//! - **SIGPIPE.** A pipe write must not raise `SIGPIPE`, and asking the
//!   kernel for its disposition on every write (`sigaction`) cost ~170 ns,
//!   as much as the 64-byte write itself. The disposition "ignored" is now
//!   cached, safely across `fork` (see `sys::without_sigpipe`). With a
//!   stack-buffer frame and a plain `write` instead of a two-slice `writev`
//!   (30 ns less per message), 64-byte `pipe()` throughput went from 0.39x
//!   to 0.55-0.75x the raw pipe, and the same-core round trip from 1.27x to
//!   1.06x.
//! - **Read size.** The raw baseline reads exactly one message per
//!   `read`. A reader that reads ahead 64 KiB empties the pipe every time
//!   and sleeps, so every small write must wake it, across CPUs if need be:
//!   in C on these VMs that alone costs 0.57x (two CPUs) and 0.86x (one CPU)
//!   at 64 B. Reading the header and the payload in two calls costs 0.5x.
//!   So the decoder asks for one frame, sized by the frame before it, while
//!   frames are small (at most 1 KiB), and reads ahead 64 KiB for larger
//!   ones (where one-frame reads measured worse on one CPU, 0.94x -> 0.63x
//!   at 4 KiB). At 64 B that took `pipe()` from 0.55x to 0.70x the raw pipe
//!   across CPUs and from 0.73x to 0.86x on one.
//! - **Capacity.** The default 64 KiB pipe caps large messages near 1 GB/s
//!   (one cross-CPU wake-up per 64 KiB). A frame of at least 64 KiB
//!   ([`GROW_AT`]) sent on a pipe or FIFO first checks the pipe's capacity
//!   (`F_GETPIPE_SZ`, ~1 % of such a send) and raises it to 1 MiB
//!   (`F_SETPIPE_SZ`, [`LARGE_CAPACITY`]) if it is smaller, silently
//!   keeping the old capacity if the kernel refuses. This lives in
//!   [`frame::write_frame`], so a [`Fifo`](crate::Fifo) gets it too. It
//!   measured 2.5-3.5x the default pipe from 64 KiB up, level with a raw
//!   1 MiB pipe (Fifo from 0.42x to 0.95-1.06x `pipe()` there). Raising
//!   the capacity not at creation but on the first large frame: a 1 MiB pipe
//!   is charged to the user's pipe budget (`pipe-user-pages-soft`, 64 MiB by
//!   default) at once, and a program with many pipes carrying only small
//!   messages would exhaust it for nothing; past it, the kernel gives new
//!   pipes just two pages.
//! - **Pipe or socket.** A `SOCK_STREAM` socketpair moves large messages
//!   faster still (about 5x the default pipe here) but small ones at 0.4x,
//!   and gives up `PIPE_BUF` atomicity for several writers. `pipe()` stays a
//!   pipe; [`duplex()`] is a socketpair, like Python's `Pipe()`.
//! - **duplex(): two pipes or one socketpair**, measured in the same rounds
//!   (one direction of a two-pipe duplex is exactly a `pipe()`, so the
//!   bench's `pipe()` and `duplex()` rows, and its two-`pipe()` and
//!   `duplex()` round trips, are the comparison; 5 rounds, medians of
//!   per-round ratios): two pipes / socketpair = 2.20x at 64 B, 1.23x at
//!   4 KiB, 0.95x at 64 KiB, 0.69x at 1 MiB; same-core round trip 1.06x vs
//!   1.68x the raw pipes. So two pipes win small messages and lose large
//!   ones, as expected. [`duplex()`] nevertheless stays one socketpair:
//!   its end is one fd that a CPython `Connection(fd)` takes as is (the
//!   interop tests hand our end to Python), [`Connection::split`] is a
//!   `dup`, and [`Connection::from_fd`] must take Python's socket anyway.
//!   A program whose two directions carry small messages and that talks
//!   only to itself gets the pipe figures with two [`pipe()`]s.
//! - **Measured and not kept** (in-round against `pipe()` as it is, 9
//!   rounds, medians; differences under ~1.3x are noise here): reading
//!   2 or 4 small frames per `read` instead of one: 0.95x and 0.89x at 64 B;
//!   one-frame reads for 4 KiB frames instead of the 64 KiB read-ahead:
//!   0.94-1.14x at 4 KiB (noise, and worse on one CPU before); a 16 KiB
//!   read-ahead for 4 KiB frames: 0.89-1.00x; raising the capacity to
//!   1 MiB from 4 KiB frames on (not 64 KiB): 0.89x at 4 KiB and 0.95x at
//!   16 KiB, although a raw 1 MiB pipe runs 1.3x a raw 64 KiB one at 4 KiB.
//!   What remains between `pipe()` and the raw pipe at 64 B (0.7-0.9x) is
//!   not in the hot path's code (one `read` and one `write` per message,
//!   no allocation, no `poll`, no `sigaction`) but in the 4 header bytes
//!   and the scheduling of two processes on two busy vCPUs.
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

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::frame::{self, Decoder, FdSource, Frame};
use crate::sys::{self, Readiness, SocketKind, WriteKind};

/// Creates a one-way framed pipe: what the [`Sender`] sends, the
/// [`Receiver`] receives, one whole message at a time. The pipe has the
/// kernel's default capacity (64 KiB) until the first message of at least
/// [`GROW_AT`] bytes raises it (see the module docs).
pub fn pipe() -> Result<(Sender, Receiver)> {
    let (r, w) = sys::pipe(false).map_err(|e| Error::io("pipe2", e))?;
    Ok((Sender::from_fd(w), Receiver::from_fd(r)))
}

/// Creates a two-way framed connection on a `SOCK_STREAM` socketpair: each
/// [`Connection`] sends to and receives from the other.
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
}

pub use crate::frame::{GROW_AT, LARGE_CAPACITY};

impl Sender {
    /// Wraps the write end of a pipe (or a FIFO, or anything `writev` works on)
    /// that carries this crate's frames, e.g. one inherited from Python.
    pub fn from_fd(fd: OwnedFd) -> Self {
        Sender {
            fd,
            kind: WriteKind::Pipe,
            max: frame::UNLIMITED,
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
        frame::write_frame(self.fd.as_fd(), self.kind, msg, self.max)
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
