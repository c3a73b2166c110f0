//! How to create or open a FIFO: [`Wait`] and [`FifoOptions`].

use std::path::Path;
use std::time::{Duration, Instant};

use super::{Fifo, FifoReader, FifoWriter, LineReader};
use crate::error::Result;
use crate::frame;
use crate::sys;

/// How long an open waits for the other side of the FIFO.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wait {
    /// Wait as long as it takes (the kernel's blocking open).
    Blocking,
    /// Wait at most this long, then [`Error::Timeout`](crate::Error::Timeout), leaving nothing open.
    Timeout(Duration),
    /// Do not wait: a writer with no reader gets [`Error::NoReader`](crate::Error::NoReader); a
    /// reader opens at once.
    NonBlocking,
}

impl Wait {
    pub(super) fn deadline(self) -> Option<Instant> {
        match self {
            Wait::Timeout(d) => Some(sys::deadline_after(d)),
            Wait::Blocking | Wait::NonBlocking => None,
        }
    }
}

/// The most a message may hold in [`FifoOptions::small_messages`] mode:
/// header and payload together are at most `PIPE_BUF` bytes, so each frame
/// is one atomic write.
pub const SMALL_MESSAGE_MAX: usize = sys::PIPE_BUF - frame::HEADER_LEN;

/// How to create or open a FIFO: how long an open waits, whether a FIFO
/// that other users can reach is acceptable, and whether writers promise to
/// send small messages only. `FifoOptions::new()` is what [`Fifo::create`],
/// [`FifoReader::open`], [`LineReader::open`] and [`FifoWriter::open`] use
/// (with their `wait`).
///
/// ```
/// use ipc_harness::fifo::{FifoOptions, Wait};
///
/// let dir = tempfile::tempdir()?;
/// let opts = FifoOptions::new().wait(Wait::NonBlocking).small_messages(true);
/// let fifo = opts.create(dir.path().join("f"))?;
/// let mut r = opts.reader(fifo.path())?;
/// let w = opts.writer(fifo.path())?;
/// w.send_bytes(b"Spam 000")?; // one write, no lock
/// assert!(w.send_bytes(&[0; 4093]).unwrap_err().to_string().contains("over the limit"));
/// assert_eq!(r.recv_bytes()?, b"Spam 000");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FifoOptions {
    pub(super) wait: Wait,
    pub(super) allow_shared: bool,
    pub(super) mode: FifoMode,
}

/// How the framed messages of a FIFO are written; every writer and the
/// reader of one FIFO must use the same mode (see the
/// [module docs](crate::fifo#modes) for the trade-offs and what a mismatch
/// does).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FifoMode {
    /// The default: CPython's wire format (a 4-byte length, the payload),
    /// each message written under an exclusive `flock`. A Python
    /// `multiprocessing.connection.Connection` reads and writes it.
    #[default]
    Framed,
    /// CPython's wire format, messages of at most [`SMALL_MESSAGE_MAX`]
    /// bytes, each one atomic write without the lock
    /// ([`FifoOptions::small_messages`]).
    SmallMessages,
    /// The crate's own chunked format: every write is one atomic chunk of at
    /// most `PIPE_BUF` bytes naming its writer, no lock needed to keep
    /// messages whole, messages of any size; a writer killed mid-message
    /// loses only that message
    /// ([`FifoOptions::chunked`]).
    Chunked,
}

impl Default for FifoOptions {
    fn default() -> Self {
        FifoOptions {
            wait: Wait::Blocking,
            allow_shared: false,
            mode: FifoMode::Framed,
        }
    }
}

impl FifoOptions {
    /// The defaults: [`Wait::Blocking`], private FIFOs only, messages of any
    /// size.
    pub fn new() -> Self {
        Self::default()
    }

    /// How long an open waits for the other side.
    pub fn wait(mut self, wait: Wait) -> Self {
        self.wait = wait;
        self
    }

    /// Accepts a FIFO that other users can reach: one owned by another
    /// user, one with read or write permission for group or others, or one
    /// in a world-writable directory without the sticky bit. Refused by
    /// default ([`Error::SharedFifo`](crate::Error::SharedFifo), [`Error::InsecureDirectory`](crate::Error::InsecureDirectory)); see the
    /// [module docs](crate::fifo) for why.
    pub fn allow_shared(mut self, yes: bool) -> Self {
        self.allow_shared = yes;
        self
    }

    /// Small-messages mode: a writer refuses any message over
    /// [`SMALL_MESSAGE_MAX`] bytes (a line over `PIPE_BUF` bytes with its
    /// newline) with [`Error::TooLarge`](crate::Error::TooLarge), and sends every frame as one
    /// atomic write without taking the writers' lock per message; a reader
    /// refuses larger frames. Every writer of the FIFO must use this mode;
    /// see the [module docs](crate::fifo) for what happens if one does not.
    pub fn small_messages(mut self, yes: bool) -> Self {
        self.set_mode(FifoMode::SmallMessages, yes);
        self
    }

    /// Chunked mode ([`FifoMode::Chunked`]): a writer cuts every message
    /// into chunks of at most `PIPE_BUF` bytes, each one atomic write with a
    /// header naming the writer, and needs no lock (messages of 64 KiB and
    /// more take turns, for speed only); the reader puts each
    /// writer's messages back together. Messages of any size from many
    /// writers interleave at chunk boundaries, and a writer killed in the
    /// middle of a message loses that message only
    /// ([`FifoReader::abandoned_messages`] counts it). Not CPython's wire
    /// format. Every writer and the reader of the FIFO must use this mode:
    /// a mismatch is refused by the reader with [`Error::Corrupt`](crate::Error::Corrupt)
    /// naming the other mode. See the [module docs](crate::fifo#modes).
    ///
    /// ```
    /// use ipc_harness::fifo::{FifoMode, FifoOptions, Wait};
    ///
    /// let dir = tempfile::tempdir()?;
    /// let opts = FifoOptions::new().wait(Wait::NonBlocking).chunked(true);
    /// let fifo = opts.create(dir.path().join("f"))?;
    /// let mut r = opts.reader(fifo.path())?;
    /// let (a, b) = (opts.writer(fifo.path())?, opts.writer(fifo.path())?);
    /// assert_eq!(a.mode(), FifoMode::Chunked);
    /// // 10 000 bytes: three chunks, one atomic write each, no lock. (Both
    /// // messages fit the FIFO, so nothing waits for the reader.)
    /// a.send_bytes(&[1; 10_000])?;
    /// b.send_bytes(b"Spam 000")?;
    /// assert_eq!(r.recv_bytes()?, [1; 10_000]);
    /// assert_eq!(r.recv_bytes()?, b"Spam 000");
    /// drop((a, b));
    /// assert!(r.recv_bytes().unwrap_err().is_closed());
    /// assert_eq!(r.abandoned_messages(), 0);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn chunked(mut self, yes: bool) -> Self {
        self.set_mode(FifoMode::Chunked, yes);
        self
    }

    /// Sets the mode of framed messages (see [`FifoMode`]).
    pub fn mode(mut self, mode: FifoMode) -> Self {
        self.mode = mode;
        self
    }

    /// The mode of framed messages these options open with.
    pub fn current_mode(&self) -> FifoMode {
        self.mode
    }

    /// `mode` on, or (if it was on) back to [`FifoMode::Framed`].
    fn set_mode(&mut self, mode: FifoMode, yes: bool) {
        if yes {
            self.mode = mode;
        } else if self.mode == mode {
            self.mode = FifoMode::Framed;
        }
    }

    /// Creates a FIFO at `path`. See [`Fifo::create`]; the FIFO's
    /// [`reader`](Fifo::reader) and [`writer`](Fifo::writer) use these
    /// options.
    pub fn create(&self, path: impl AsRef<Path>) -> Result<Fifo> {
        Fifo::create_inner(path.as_ref(), false, *self)
    }

    /// Like [`create`](Self::create), creating missing parent directories
    /// (mode `0700`) first.
    pub fn create_all(&self, path: impl AsRef<Path>) -> Result<Fifo> {
        Fifo::create_inner(path.as_ref(), true, *self)
    }

    /// Opens the FIFO at `path` for framed reading. See [`FifoReader::open`].
    pub fn reader(&self, path: impl AsRef<Path>) -> Result<FifoReader> {
        FifoReader::open_with(path.as_ref(), self)
    }

    /// Opens the FIFO at `path` for reading lines. See [`LineReader::open`].
    pub fn line_reader(&self, path: impl AsRef<Path>) -> Result<LineReader> {
        LineReader::open_with(path.as_ref(), self)
    }

    /// Opens the FIFO at `path` for writing. See [`FifoWriter::open`].
    pub fn writer(&self, path: impl AsRef<Path>) -> Result<FifoWriter> {
        FifoWriter::open_with(path.as_ref(), self)
    }
}
