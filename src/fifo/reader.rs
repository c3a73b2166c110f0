//! [`FifoReader`]: the read end of a FIFO carrying framed messages.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::open::open_read_end;
use super::{FifoOptions, SMALL_MESSAGE_MAX, Wait};
use crate::error::{Error, Result};
use crate::pipe::Receiver;
use crate::sys;
use crate::sys::fifo::{self as sysfifo, Access};

/// What both readers share: the path, and the write end a reader that keeps
/// listening holds open itself.
#[derive(Debug)]
pub(super) struct ReadEnd {
    pub(super) path: PathBuf,
    pub(super) keep_alive: Option<OwnedFd>,
}

impl ReadEnd {
    pub(super) fn keep_listening(&mut self, fd: BorrowedFd<'_>) -> Result<()> {
        if self.keep_alive.is_none() {
            // Reopen the inode we have open (not the path, which may name
            // something else by now). We are a reader, so no ENXIO.
            let w = sysfifo::reopen_nonblocking(fd, Access::Write)
                .map_err(|e| Error::path_io("open a write end of", &self.path, e))?;
            self.keep_alive = Some(w);
        }
        Ok(())
    }
}

/// The read end of a FIFO carrying framed messages, like
/// [`crate::Receiver`] (which it uses).
#[derive(Debug)]
pub struct FifoReader {
    rx: Receiver,
    end: ReadEnd,
}

impl FifoReader {
    /// Opens the FIFO at `path` for reading framed messages, waiting for a
    /// writer as `wait` says. See the [module docs](crate::fifo) for the checks
    /// and errors.
    pub fn open(path: impl AsRef<Path>, wait: Wait) -> Result<FifoReader> {
        FifoOptions::new().wait(wait).reader(path)
    }

    pub(super) fn open_with(path: &Path, opts: &FifoOptions) -> Result<FifoReader> {
        let (fd, _) = open_read_end(path, opts)?;
        let mut rx = Receiver::from_fd(fd);
        if opts.small_messages {
            rx.set_max_message_size(SMALL_MESSAGE_MAX as u64);
        }
        Ok(FifoReader {
            rx,
            end: ReadEnd {
                path: path.into(),
                keep_alive: None,
            },
        })
    }

    /// The path this reader was opened by.
    pub fn path(&self) -> &Path {
        &self.end.path
    }

    /// Keeps listening for new writers after the last one closes, instead of
    /// returning [`Error::Closed`]: the reader holds a write end of its own.
    /// A receive then waits until some writer sends (use the `_timeout`
    /// receives to bound it).
    pub fn keep_listening(&mut self) -> Result<()> {
        self.end.keep_listening(self.rx.as_fd())
    }

    /// Refuses headers announcing more than `max` bytes with
    /// [`Error::TooLarge`]. The default is no limit.
    pub fn set_max_message_size(&mut self, max: u64) {
        self.rx.set_max_message_size(max);
    }

    /// Receives one whole message, waiting as long as it takes.
    /// [`Error::Closed`] once every writer is gone and every message taken.
    pub fn recv_bytes(&mut self) -> Result<Vec<u8>> {
        self.rx.recv_bytes()
    }

    /// Like [`recv_bytes`](Self::recv_bytes), but gives up with
    /// [`Error::Timeout`] after `timeout`; a message half read is finished by
    /// the next receive.
    pub fn recv_bytes_timeout(&mut self, timeout: Duration) -> Result<Vec<u8>> {
        self.rx.recv_bytes_timeout(timeout)
    }

    /// Receives one message into `buf`, returning its length;
    /// [`Error::BufferTooSmall`] holds a whole message that did not fit.
    pub fn recv_bytes_into(&mut self, buf: &mut [u8]) -> Result<usize> {
        self.rx.recv_bytes_into(buf)
    }

    /// True if there is something to receive within `timeout` (`None`:
    /// forever). End of stream counts.
    pub fn poll(&self, timeout: Option<Duration>) -> Result<bool> {
        self.rx.poll(timeout)
    }

    /// Receives a value sent with [`FifoWriter::send`](super::FifoWriter::send).
    #[cfg(feature = "serde")]
    pub fn recv<T: serde::de::DeserializeOwned>(&mut self) -> Result<T> {
        self.rx.recv()
    }
}

sys::impl_fd_traits!(FifoReader => rx);
