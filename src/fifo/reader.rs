//! [`FifoReader`]: the read end of a FIFO carrying framed messages.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::chunked;
use super::open::open_read_end;
use super::{FifoMode, FifoOptions, SMALL_MESSAGE_MAX, Wait};
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
/// [`crate::Receiver`] (which it uses), or in chunked mode
/// ([`FifoOptions::chunked`]) the messages of many writers put back
/// together from their chunks.
#[derive(Debug)]
pub struct FifoReader {
    inner: Inner,
    end: ReadEnd,
}

#[derive(Debug)]
enum Inner {
    Framed(Receiver),
    Chunked {
        fd: OwnedFd,
        decoder: chunked::Decoder,
    },
}

/// A framed receive's error, naming chunked mode if a chunk header caused it.
fn framed<T>(result: Result<T>) -> Result<T> {
    result.map_err(|e| {
        if chunked::is_chunk_header_error(&e) {
            Error::corrupt(chunked::CHUNKED_WRITER)
        } else {
            e
        }
    })
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
        let inner = match opts.mode {
            FifoMode::Chunked => Inner::Chunked {
                fd,
                decoder: chunked::Decoder::new(),
            },
            FifoMode::Framed | FifoMode::SmallMessages => {
                let mut rx = Receiver::from_fd(fd);
                if opts.mode == FifoMode::SmallMessages {
                    rx.set_max_message_size(SMALL_MESSAGE_MAX as u64);
                }
                Inner::Framed(rx)
            }
        };
        Ok(FifoReader {
            inner,
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

    /// The mode this reader reads: [`FifoMode::Chunked`], or
    /// [`FifoMode::Framed`] for both framed modes.
    pub fn mode(&self) -> FifoMode {
        match self.inner {
            Inner::Framed(_) => FifoMode::Framed,
            Inner::Chunked { .. } => FifoMode::Chunked,
        }
    }

    /// Keeps listening for new writers after the last one closes, instead of
    /// returning [`Error::Closed`]: the reader holds a write end of its own.
    /// A receive then waits until some writer sends (use the `_timeout`
    /// receives to bound it).
    pub fn keep_listening(&mut self) -> Result<()> {
        let fd = match &self.inner {
            Inner::Framed(rx) => rx.as_fd(),
            Inner::Chunked { fd, .. } => fd.as_fd(),
        };
        self.end.keep_listening(fd)
    }

    /// Refuses messages of more than `max` bytes with [`Error::TooLarge`].
    /// The default is no limit.
    ///
    /// Framed: a header announcing more is refused, and the stream is
    /// unusable after it. Chunked: a message is refused as soon as the
    /// chunks of it that came add up to more than `max` (`len` in the error
    /// is that sum), so the reader never holds more than `max` bytes of any
    /// one writer's message; the rest of that message is skipped as it
    /// comes, and the next receive returns the next message, from any
    /// writer.
    pub fn set_max_message_size(&mut self, max: u64) {
        match &mut self.inner {
            Inner::Framed(rx) => rx.set_max_message_size(max),
            Inner::Chunked { decoder, .. } => decoder.set_max_message_size(max),
        }
    }

    /// Chunked mode: how many messages the reader has dropped because their
    /// writer went away in the middle of them (killed, or closed its fd by
    /// hand mid-message), since it opened. Each such message was never
    /// returned by a receive, and its writer's send never returned `Ok`.
    /// Always 0 in framed mode.
    ///
    /// The reader learns that a writer is gone at the end of the stream
    /// (every writer gone), or, while messages of other writers still
    /// come or the reader waits, when a receive has waited
    /// about 50 ms with nothing arriving and the writer's process no longer
    /// exists (see [`set_writer_liveness_check`](Self::set_writer_liveness_check)).
    pub fn abandoned_messages(&self) -> u64 {
        match &self.inner {
            Inner::Framed(_) => 0,
            Inner::Chunked { decoder, .. } => decoder.abandoned(),
        }
    }

    /// Chunked mode: how many writers have a message in progress (its first
    /// chunk came, its last not yet), and how many bytes the reader holds
    /// for them. `(0, 0)` in framed mode.
    pub fn messages_in_progress(&self) -> (usize, usize) {
        match &self.inner {
            Inner::Framed(_) => (0, 0),
            Inner::Chunked { decoder, .. } => (decoder.in_progress(), decoder.held_bytes()),
        }
    }

    /// Chunked mode: whether a receive that waits with writers' messages in
    /// progress checks (every 50 ms of silence) that their processes are
    /// still alive, to drop the message of one that died without waiting
    /// for the end of the stream. On by default. Turn it off if writers may
    /// run in another pid namespace (a container) than the reader, where
    /// their pids mean nothing to it: a live writer could be taken for dead
    /// and its message dropped. (Where `/proc` cannot be read, the check
    /// never takes anyone for dead.) With it off, a dead writer's message is
    /// dropped at the end of the stream, or when a writer with the same id
    /// starts a new one.
    pub fn set_writer_liveness_check(&mut self, on: bool) {
        if let Inner::Chunked { decoder, .. } = &mut self.inner {
            decoder.check_liveness = on;
        }
    }

    /// Receives one whole message, waiting as long as it takes.
    /// [`Error::Closed`] once every writer is gone and every message taken.
    pub fn recv_bytes(&mut self) -> Result<Vec<u8>> {
        match &mut self.inner {
            Inner::Framed(rx) => framed(rx.recv_bytes()),
            Inner::Chunked { fd, decoder } => decoder.recv(fd.as_fd(), None, |m| m.into_vec()),
        }
    }

    /// Like [`recv_bytes`](Self::recv_bytes), but gives up with
    /// [`Error::Timeout`] after `timeout`; a message half read is finished by
    /// the next receive.
    pub fn recv_bytes_timeout(&mut self, timeout: Duration) -> Result<Vec<u8>> {
        match &mut self.inner {
            Inner::Framed(rx) => framed(rx.recv_bytes_timeout(timeout)),
            Inner::Chunked { fd, decoder } => {
                decoder.recv(fd.as_fd(), Some(sys::deadline_after(timeout)), |m| {
                    m.into_vec()
                })
            }
        }
    }

    /// Receives one message into `buf`, returning its length;
    /// [`Error::BufferTooSmall`] holds a whole message that did not fit.
    pub fn recv_bytes_into(&mut self, buf: &mut [u8]) -> Result<usize> {
        match &mut self.inner {
            Inner::Framed(rx) => framed(rx.recv_bytes_into(buf)),
            Inner::Chunked { fd, decoder } => decoder
                .recv(fd.as_fd(), None, |m| {
                    let n = m.as_slice().len();
                    if n > buf.len() {
                        return Err(Error::BufferTooSmall {
                            message: m.into_vec(),
                        });
                    }
                    buf[..n].copy_from_slice(m.as_slice());
                    Ok(n)
                })
                .and_then(|r| r),
        }
    }

    /// True if there is something to receive within `timeout` (`None`:
    /// forever). End of stream counts. In chunked mode, buffered chunks
    /// count too, even if the rest of their message has yet to come.
    pub fn poll(&self, timeout: Option<Duration>) -> Result<bool> {
        match &self.inner {
            Inner::Framed(rx) => rx.poll(timeout),
            Inner::Chunked { fd, decoder } => {
                if decoder.has_buffered() {
                    return Ok(true);
                }
                let deadline = timeout.map(sys::deadline_after);
                let ready =
                    sys::wait_readable(fd.as_fd(), deadline).map_err(|e| Error::io("poll", e))?;
                Ok(ready == sys::Readiness::Ready)
            }
        }
    }

    /// Receives a value sent with [`FifoWriter::send`](super::FifoWriter::send).
    #[cfg(feature = "serde")]
    pub fn recv<T: serde::de::DeserializeOwned>(&mut self) -> Result<T> {
        match &mut self.inner {
            Inner::Framed(rx) => framed(rx.recv()),
            Inner::Chunked { fd, decoder } => decoder
                .recv(fd.as_fd(), None, |m| {
                    crate::codec::decode_value(m.as_slice())
                })
                .and_then(|r| r),
        }
    }
}

impl AsFd for FifoReader {
    fn as_fd(&self) -> BorrowedFd<'_> {
        match &self.inner {
            Inner::Framed(rx) => rx.as_fd(),
            Inner::Chunked { fd, .. } => fd.as_fd(),
        }
    }
}

impl std::os::fd::AsRawFd for FifoReader {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.as_fd().as_raw_fd()
    }
}
