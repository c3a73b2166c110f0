//! A two-way framed connection on two pipes: [`duplex_pipes()`] gives two
//! [`PipeConnection`]s, each sending on one pipe and receiving on the
//! other. It is the fast two-way connection for small messages; [`duplex()`]
//! is the one a Python peer takes as one fd.
//!
//! # Example
//! ```
//! use ipc_harness::duplex_pipes;
//! use ipc_harness::harness::fork;
//! use std::time::Duration;
//!
//! let (mut parent, mut child_end) = duplex_pipes()?;
//! let child = fork::spawn(move || {
//!     // An echo of three messages. (The child also holds a copy of
//!     // `parent`, open until it exits, so it counts rather than waiting
//!     // for an end of stream that its own copy would hold off.)
//!     for _ in 0..3 {
//!         let msg = child_end.recv_bytes().unwrap();
//!         child_end.send_bytes(&msg).unwrap();
//!     }
//!     Vec::new()
//! })?;
//! for msg in [&b"ping"[..], b"", b"pong"] {
//!     // Cannot deadlock: one small message is in flight at a time.
//!     parent.send_bytes(msg)?;
//!     assert_eq!(parent.recv_bytes()?, msg);
//! }
//! // `child_end` moved into the child: once it exits, our input ends.
//! assert!(parent.recv_bytes().unwrap_err().is_closed());
//! child.wait(Duration::from_secs(10))?.expect_success();
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Contract
//! Each direction is exactly a [`pipe()`](crate::pipe()) and keeps its
//! contract: one whole message per receive, in order, [`Error::Closed`] at
//! the end of the stream at a boundary, [`Error::Truncated`] inside a
//! message, [`Error::Closed`] (never `SIGPIPE`) for a send to a peer that is
//! gone. One process sends on a given end and one receives on it.
//!
//! # Two pipes or one socketpair
//! | | [`duplex_pipes()`] | [`duplex()`] |
//! |---|---|---|
//! | kernel objects | two `pipe2`s | one `AF_UNIX` `SOCK_STREAM` socketpair |
//! | fds per end | **two** (a read end and a write end) | one |
//! | 64 B messages, one way | about 3x `duplex()`: 0.89x a raw pipe | 0.32x a raw pipe (1.06x a raw socketpair) |
//! | 64 B round trip, both processes on one CPU | 1.08x two raw pipes | 2.03x two raw pipes |
//! | 1 MiB messages, one way | 2.9x the default raw pipe (its pipes raised to 1 MiB, see [`GROW_AT`](crate::pipe::GROW_AT)) | 7.0x the default raw pipe |
//! | Python peer | two `Connection`s (below) | one `Connection(fd)`, as `multiprocessing.Pipe()` gives |
//!
//! Medians of per-round ratios over 7 interleaved rounds of `ipc-harness
//! bench` on 2 vCPUs; the measurements and the socket settings that were
//! tried are in [`crate::pipe`](mod@crate::pipe#performance).
//!
//! # Talking to Python
//! The wire format is CPython's, so a Python program can hold the other
//! end, but as two one-way `Connection`s, the way
//! `multiprocessing.Pipe(duplex=False)` gives them, not as one:
//! ```python
//! from multiprocessing.connection import Connection
//! rx = Connection(read_fd, writable=False)   # what the Rust end sends
//! tx = Connection(write_fd, readable=False)  # what the Rust end receives
//! tx.send_bytes(rx.recv_bytes())
//! ```
//! where `read_fd` and `write_fd` are the two fds of the end handed over,
//! from [`PipeConnection::into_fds`] (made inheritable for `exec`). A
//! program that wants to hand Python a single `Connection(fd)` uses
//! [`duplex()`].
//!
//! System calls: as [`pipe()`](crate::pipe()) (a send is one `write` for a
//! small frame, a receive with nothing buffered one `read`).

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::time::Duration;

use crate::error::Result;
use crate::pipe::{Receiver, Sender};
#[cfg(doc)]
use crate::{error::Error, pipe::duplex};

/// Creates a two-way framed connection on two pipes: what one
/// [`PipeConnection`] sends, the other receives, in both directions. Four
/// fds, all `O_CLOEXEC`.
pub fn duplex_pipes() -> Result<(PipeConnection, PipeConnection)> {
    let (a_tx, b_rx) = crate::pipe()?;
    let (b_tx, a_rx) = crate::pipe()?;
    Ok((
        PipeConnection { tx: a_tx, rx: a_rx },
        PipeConnection { tx: b_tx, rx: b_rx },
    ))
}

/// One end of a [`duplex_pipes()`] connection: a [`Sender`] on one pipe
/// and a [`Receiver`] on the other.
#[derive(Debug)]
pub struct PipeConnection {
    tx: Sender,
    rx: Receiver,
}

impl PipeConnection {
    /// Wraps the read end of one pipe and the write end of another, both
    /// carrying this crate's frames (e.g. from a Python peer holding the
    /// other ends as two `Connection`s).
    pub fn from_fds(read: OwnedFd, write: OwnedFd) -> Self {
        PipeConnection {
            tx: Sender::from_fd(write),
            rx: Receiver::from_fd(read),
        }
    }

    /// Gives the fds back, `(read end, write end)`. Bytes already read
    /// ahead are lost: only call this on an end that has not received.
    pub fn into_fds(self) -> (OwnedFd, OwnedFd) {
        (self.rx.into_fd(), self.tx.into_fd())
    }

    /// The fd this end receives on.
    pub fn read_fd(&self) -> BorrowedFd<'_> {
        self.rx.as_fd()
    }

    /// The fd this end sends on.
    pub fn write_fd(&self) -> BorrowedFd<'_> {
        self.tx.as_fd()
    }

    /// Sets the maximum message size for both directions: a longer send is
    /// refused before anything is written, a longer header received is
    /// [`Error::TooLarge`].
    pub fn set_max_message_size(&mut self, max: u64) {
        self.tx.set_max_message_size(max);
        self.rx.set_max_message_size(max);
    }

    /// Splits the end into its [`Sender`] and its [`Receiver`], so that one
    /// thread can send while another receives. No fd is duplicated: each
    /// half owns its pipe end, so dropping the sender alone closes the
    /// peer's input (the peer sees end of stream) while this side can
    /// still receive.
    pub fn split(self) -> (Sender, Receiver) {
        (self.tx, self.rx)
    }

    /// Sends one message to the other end. See [`Sender::send_bytes`].
    pub fn send_bytes(&self, msg: &[u8]) -> Result<()> {
        self.tx.send_bytes(msg)
    }

    /// Receives one whole message. See [`Receiver::recv_bytes`].
    pub fn recv_bytes(&mut self) -> Result<Vec<u8>> {
        self.rx.recv_bytes()
    }

    /// Receives one message or gives up with [`Error::Timeout`] after
    /// `timeout`. See [`Receiver::recv_bytes_timeout`].
    pub fn recv_bytes_timeout(&mut self, timeout: Duration) -> Result<Vec<u8>> {
        self.rx.recv_bytes_timeout(timeout)
    }

    /// Receives one message into `buf`. See [`Receiver::recv_bytes_into`].
    pub fn recv_bytes_into(&mut self, buf: &mut [u8]) -> Result<usize> {
        self.rx.recv_bytes_into(buf)
    }

    /// True if there is something to receive. See [`Receiver::poll`].
    pub fn poll(&self, timeout: Option<Duration>) -> Result<bool> {
        self.rx.poll(timeout)
    }

    /// Sends a value encoded with the crate's serde codec (postcard).
    #[cfg(feature = "serde")]
    pub fn send<T: serde::Serialize + ?Sized>(&self, value: &T) -> Result<()> {
        self.tx.send(value)
    }

    /// Receives a value sent with [`PipeConnection::send`] (or
    /// [`Sender::send`]).
    #[cfg(feature = "serde")]
    pub fn recv<T: serde::de::DeserializeOwned>(&mut self) -> Result<T> {
        self.rx.recv()
    }
}
