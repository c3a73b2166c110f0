//! [`FifoWriter`]: the write end of a FIFO, safe for many writers.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use super::chunked::{self, WriterId, WriterState};
use super::open::{clear_nonblocking, open_write_end};
use super::{FifoMode, FifoOptions, SMALL_MESSAGE_MAX, Wait};
use crate::error::{Error, Result};
use crate::frame;
use crate::sys::fifo::{self as sysfifo, Access};
use crate::sys::{self, Pid, WriteKind};

/// The write end of a FIFO: framed messages and lines, safe to use from
/// many writers at once (see the [module docs](crate::fifo)).
#[derive(Debug)]
pub struct FifoWriter {
    end: WriterEnd,
    path: PathBuf,
    max: u64,
}

// Why flock on the FIFO rather than a lock file beside it: there is no second
// file to create, name, secure or clean up; anyone who may open the FIFO may
// lock it; and the kernel releases the lock when its holder dies. Even frames
// of at most PIPE_BUF bytes take the lock: the kernel keeps them atomic, but
// one could still land between the pieces of a larger frame whose writer
// holds the lock.
//
// Small-messages writers skip the per-message lock, but hold a shared flock
// from open to close as a safety net: a locked writer then waits for its
// exclusive lock until every small-messages writer has closed, so mixing the
// modes stalls the locked writers and never tears a frame.
//
// flock locks belong to an open file description, which fork shares. So a
// locked writer used in a process other than the one that opened it first
// reopens the FIFO (same inode, via /proc/self/fd/N) and locks its own
// description: a writer inherited across fork still excludes its parent.
// The new description is put under the writer's fd number (dup3), so the
// number `as_fd` hands out stays the writer's for its whole life.
// Within one process, the mutex serializes threads.
#[derive(Debug)]
enum WriterEnd {
    /// Every frame or line under an exclusive `flock`, taken per send.
    Locked {
        fd: OwnedFd,
        /// The process whose open file description `fd` is; held while
        /// sending.
        owner: Mutex<Pid>,
    },
    /// [`FifoOptions::small_messages`]: every frame or line is one write of
    /// at most `PIPE_BUF` bytes, which the kernel keeps whole; the fd holds
    /// a shared `flock` for its whole life, which keeps out writers of the
    /// locked kind.
    Small(OwnedFd),
    /// [`FifoOptions::chunked`]: every message as chunks of at most
    /// `PIPE_BUF` bytes, each one atomic write naming the writer; no lock
    /// between processes keeps messages whole (messages of at least
    /// `chunked::TURN_AT` bytes take turns under an exclusive `flock`, for
    /// speed). The mutex keeps one thread's chunks of a message
    /// together under the writer's id, and holds the id (a fresh one after
    /// `fork`, so parent and child never share one).
    Chunked {
        fd: OwnedFd,
        state: Mutex<WriterState>,
    },
}

impl FifoWriter {
    /// Opens the FIFO at `path` for writing, waiting for a reader as `wait`
    /// says. See the [module docs](crate::fifo) for the checks and errors, and
    /// [`FifoOptions`] for more choices.
    pub fn open(path: impl AsRef<Path>, wait: Wait) -> Result<FifoWriter> {
        FifoOptions::new().wait(wait).writer(path)
    }

    pub(super) fn open_with(path: &Path, opts: &FifoOptions) -> Result<FifoWriter> {
        let (fd, _) = open_write_end(path, opts)?;
        if opts.mode == FifoMode::Chunked {
            return Ok(FifoWriter {
                end: WriterEnd::Chunked {
                    fd,
                    state: Mutex::new(WriterState {
                        id: WriterId::fresh(),
                        next_seq: 0,
                        description_owner: sys::cached_pid(),
                    }),
                },
                path: path.into(),
                max: frame::UNLIMITED,
            });
        }
        if opts.mode == FifoMode::SmallMessages {
            // Waits only while a locked writer is inside a frame.
            sysfifo::lock_shared(fd.as_fd()).map_err(|e| Error::path_io("lock", path, e))?;
            return Ok(FifoWriter {
                end: WriterEnd::Small(fd),
                path: path.into(),
                max: SMALL_MESSAGE_MAX as u64,
            });
        }
        Ok(FifoWriter {
            end: WriterEnd::Locked {
                fd,
                owner: Mutex::new(sys::cached_pid()),
            },
            path: path.into(),
            max: frame::UNLIMITED,
        })
    }

    /// The path this writer was opened by.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Refuses, with [`Error::TooLarge`] and before writing anything, any
    /// message longer than `max` bytes. The default is no limit; in
    /// [`small_messages`](FifoOptions::small_messages) mode the limit is
    /// never above [`SMALL_MESSAGE_MAX`].
    pub fn set_max_message_size(&mut self, max: u64) {
        self.max = match self.end {
            WriterEnd::Small(_) => max.min(SMALL_MESSAGE_MAX as u64),
            WriterEnd::Locked { .. } | WriterEnd::Chunked { .. } => max,
        };
    }

    /// The mode this writer writes in.
    pub fn mode(&self) -> FifoMode {
        match self.end {
            WriterEnd::Locked { .. } => FifoMode::Framed,
            WriterEnd::Small(_) => FifoMode::SmallMessages,
            WriterEnd::Chunked { .. } => FifoMode::Chunked,
        }
    }

    /// In chunked mode, the id this writer's chunks carry (its process id
    /// and a random nonce); a writer inherited across `fork` takes a fresh
    /// one on its first send in the new process. `None` in the other modes.
    pub fn writer_id(&self) -> Option<WriterId> {
        match &self.end {
            WriterEnd::Chunked { state, .. } => Some(
                state
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner())
                    .id,
            ),
            _ => None,
        }
    }

    /// The maximum message size.
    pub fn max_message_size(&self) -> u64 {
        self.max
    }

    /// Gives the fd back (no longer protected by the writers' lock; in
    /// small-messages mode its shared lock goes with it).
    pub fn into_fd(self) -> OwnedFd {
        match self.end {
            WriterEnd::Small(fd) | WriterEnd::Chunked { fd, .. } => fd,
            WriterEnd::Locked { fd, .. } => fd,
        }
    }

    /// Runs `write` on the fd, holding the writers' lock unless in
    /// small-messages mode (where `write` is one atomic write).
    fn locked<T>(&self, write: impl FnOnce(BorrowedFd<'_>) -> Result<T>) -> Result<T> {
        let (fd, owner) = match &self.end {
            WriterEnd::Small(fd) | WriterEnd::Chunked { fd, .. } => return write(fd.as_fd()),
            WriterEnd::Locked { fd, owner } => (fd, owner),
        };
        let mut owner = owner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        self.own_description(fd, &mut owner)?;
        self.holding_lock(fd.as_fd(), write)
    }

    /// Makes `fd`'s open file description this process's own, if `owner`
    /// says it was inherited across fork: the description (and with it any
    /// flock) is shared with the parent, so it gets one of its own, under
    /// the same fd number.
    fn own_description(&self, fd: &OwnedFd, owner: &mut Pid) -> Result<()> {
        let me = sys::cached_pid();
        if *owner == me {
            return Ok(());
        }
        let new = match sysfifo::reopen_nonblocking(fd.as_fd(), Access::Write) {
            Ok(fd) => fd,
            Err(e) if e.raw_os_error() == Some(libc::ENXIO) => return Err(Error::Closed),
            Err(e) => return Err(Error::path_io("reopen", &self.path, e)),
        };
        clear_nonblocking(new.as_fd(), &self.path)?;
        sys::replace_description(fd, new).map_err(|e| Error::path_io("reopen", &self.path, e))?;
        *owner = me;
        Ok(())
    }

    /// Runs `write` holding an exclusive `flock` on `fd`.
    fn holding_lock<T>(
        &self,
        fd: BorrowedFd<'_>,
        write: impl FnOnce(BorrowedFd<'_>) -> Result<T>,
    ) -> Result<T> {
        sysfifo::lock_exclusive(fd).map_err(|e| Error::path_io("lock", &self.path, e))?;
        let result = write(fd);
        let unlocked = sysfifo::unlock(fd).map_err(|e| Error::path_io("unlock", &self.path, e));
        let value = result?;
        unlocked?;
        Ok(value)
    }

    /// Sends one framed message, whole, never interleaved with another
    /// writer's. Blocks while the FIFO is full or another writer holds the
    /// lock. [`Error::Closed`] if the reader is gone; [`Error::TooLarge`]
    /// (nothing written) if over the limit.
    ///
    /// In chunked mode the message goes out as chunks of at most `PIPE_BUF`
    /// bytes; a message of 64 KiB or more waits for its turn (an exclusive
    /// `flock` on the FIFO, which only spares the writers a herd), a smaller
    /// one takes no lock between processes. The writer's threads take turns
    /// per message.
    pub fn send_bytes(&self, msg: &[u8]) -> Result<()> {
        frame::check_len(msg.len() as u64, self.max)?;
        if let WriterEnd::Chunked { fd, state } = &self.end {
            let mut state = state
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            if state.id.pid != sys::cached_pid() as u32 {
                // Inherited across fork: the parent still writes under the
                // old id.
                state.id = WriterId::fresh();
                state.next_seq = 0;
            }
            let seq = state.next_seq;
            state.next_seq = seq.wrapping_add(1);
            let id = state.id;
            if msg.len() < chunked::TURN_AT {
                return chunked::write_message(fd.as_fd(), id, seq, msg);
            }
            // Large messages take turns (see `TURN_AT`), each process on a
            // description of its own, so that a child's lock excludes its
            // parent and dies with it.
            self.own_description(fd, &mut state.description_owner)?;
            return self.holding_lock(fd.as_fd(), |fd| chunked::write_message(fd, id, seq, msg));
        }
        self.locked(|fd| frame::write_frame(fd, WriteKind::Pipe, msg, self.max))
    }

    /// Sends a value encoded with the crate's serde codec (postcard).
    #[cfg(feature = "serde")]
    pub fn send<T: serde::Serialize + ?Sized>(&self, value: &T) -> Result<()> {
        self.send_bytes(&crate::codec::encode_value(value)?)
    }

    /// Sends `line` and a `\n` (unless `line` already ends with one) in one
    /// locked write, never interleaved with another writer's. A `line` with
    /// newlines inside arrives as several lines, together. In small-messages
    /// mode (and in chunked mode, which applies to framed messages only: a
    /// line goes out as plain bytes, one atomic write) a line over
    /// `PIPE_BUF` bytes with its newline is
    /// [`Error::TooLarge`] (`len` without the newline), nothing written.
    pub fn send_line(&self, line: impl AsRef<[u8]>) -> Result<()> {
        let line = line.as_ref();
        let newline: &[u8] = if line.ends_with(b"\n") { b"" } else { b"\n" };
        if matches!(self.end, WriterEnd::Small(_) | WriterEnd::Chunked { .. })
            && line.len() + newline.len() > sys::PIPE_BUF
        {
            return Err(Error::TooLarge {
                len: (line.len() + newline.len() - 1) as u64,
                max: (sys::PIPE_BUF - 1) as u64,
            });
        }
        self.locked(|fd| {
            sys::write_all_vectored(fd, WriteKind::Pipe, &[line, newline])
                .map_err(frame::write_error)
        })
    }
}

/// The writer's fd: the same number for the writer's whole life. A locked
/// writer (the default) used in a process other than the one that opened
/// it, as after `fork`, gets an open file description of its own on its
/// first send, for its lock (see the [module docs](crate::fifo)); the new
/// description is put under this same number (`dup3`), so the fd stays
/// valid, stays the write end of the same FIFO, blocking and
/// close-on-exec, and a poll on it keeps working. Writing to it directly
/// bypasses the writers' lock.
impl AsFd for FifoWriter {
    fn as_fd(&self) -> BorrowedFd<'_> {
        match &self.end {
            WriterEnd::Small(fd) | WriterEnd::Locked { fd, .. } | WriterEnd::Chunked { fd, .. } => {
                fd.as_fd()
            }
        }
    }
}

/// The number of [`FifoWriter`]'s [`AsFd`] fd, with the same guarantees.
impl AsRawFd for FifoWriter {
    fn as_raw_fd(&self) -> RawFd {
        self.as_fd().as_raw_fd()
    }
}
