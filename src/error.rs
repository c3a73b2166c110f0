//! One error type for the whole crate.
//!
//! The variants keep the distinctions a caller acts on: the peer is gone
//! ([`Error::Closed`]), time ran out ([`Error::Timeout`]), the stream lies or
//! ends mid-message ([`Error::Truncated`], [`Error::Corrupt`]), a message is
//! over the limit ([`Error::TooLarge`]), or the operating system refused
//! ([`Error::Io`], with the `io::Error` as [`source`](std::error::Error::source)).
//!
//! Nothing the caller handed over, and nothing that arrived, is lost in an
//! error: [`Error::BufferTooSmall`] carries the whole message that did not fit.

use std::io;
use std::path::PathBuf;

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in this crate.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The other side is gone: end of stream at a message boundary, or a
    /// write to a pipe or socket whose reader has closed.
    #[error("the channel is closed: the other side has gone away")]
    Closed,

    /// The operation did not complete before its deadline.
    #[error("the operation timed out")]
    Timeout,

    /// A non-blocking receive found nothing to take.
    #[error("there is nothing to receive")]
    Empty,

    /// A non-blocking send found no room.
    #[error("there is no room to send")]
    Full,

    /// A message is longer than the configured maximum. A sender returns
    /// this before writing anything; a receiver returns it on reading the
    /// length header, and the stream is then unusable.
    #[error("message of {len} bytes is over the limit of {max} bytes")]
    TooLarge {
        /// The message's length in bytes.
        len: u64,
        /// The configured maximum.
        max: u64,
    },

    /// The stream ended inside a frame: `got` of `expected` bytes arrived.
    /// The sender died or closed mid-message.
    #[error("the stream ended inside a message: got {got} of {expected} bytes")]
    Truncated {
        /// Bytes the frame (header or payload) should have had.
        expected: u64,
        /// Bytes that arrived before the end of the stream.
        got: u64,
    },

    /// The stream holds something that is not a valid frame.
    #[error("corrupt stream: {reason}")]
    Corrupt {
        /// What was wrong, in words.
        reason: String,
    },

    /// The receive buffer was too small. The whole message is here; nothing
    /// was lost (Python's `BufferTooShort`).
    #[error("receive buffer too small for a message of {} bytes", message.len())]
    BufferTooSmall {
        /// The complete message that did not fit.
        message: Vec<u8>,
    },

    /// `task_done()` was called more times than items were put.
    #[error("task_done() called more times than items were put")]
    TaskDoneTooManyTimes,

    /// The queue was shut down ([`Queue::shutdown`](crate::Queue::shutdown),
    /// by any process): a put is refused, and a get found nothing left to
    /// take (Python 3.13's `queue.ShutDown`).
    #[error("the queue is shut down")]
    ShutDown,

    /// A path that should be a FIFO is something else.
    #[error("{} is not a FIFO", path.display())]
    NotAFifo {
        /// The path that was opened.
        path: PathBuf,
    },

    /// A value could not be encoded or decoded by the serde codec.
    #[cfg(feature = "serde")]
    #[error("could not {action} a value with postcard: {source}")]
    Codec {
        /// `"encode"` or `"decode"`.
        action: &'static str,
        /// The codec's own error.
        #[source]
        source: postcard::Error,
    },

    /// The operating system refused; `context` names the operation, and the
    /// display ends with the OS error: `pipe2 failed: Too many open files
    /// (os error 24)` (also the [`source`](std::error::Error::source)).
    #[error("{context} failed: {source}")]
    Io {
        /// What the crate was doing, e.g. `"pipe2"` or `"write to pipe"`.
        context: &'static str,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },

    /// Something already exists at the path where a FIFO was to be created.
    /// It is left as it was.
    #[error("{} already exists, so no FIFO was created there", path.display())]
    AlreadyExists {
        /// The path asked for.
        path: PathBuf,
    },

    /// The directory that should hold `path` does not exist.
    #[error(
        "the directory {} does not exist, so {} cannot be there (create it first, or ask for missing parents to be created)",
        parent_of(path).display(),
        path.display()
    )]
    NoSuchDirectory {
        /// The path asked for (its parent is the missing directory).
        path: PathBuf,
    },

    /// Nothing exists at the path that was to be opened.
    #[error("{} does not exist", path.display())]
    NotFound {
        /// The path that was opened.
        path: PathBuf,
    },

    /// A non-blocking open of a FIFO for writing found no reader (the
    /// kernel's `ENXIO`).
    #[error("{} has no reader: no process has it open for reading", path.display())]
    NoReader {
        /// The FIFO's path.
        path: PathBuf,
    },

    /// The path is a symbolic link; FIFOs are never opened through one.
    /// The link is left as it was.
    #[error("{} is a symbolic link, and FIFOs are never opened through one", path.display())]
    Symlink {
        /// The path that was opened.
        path: PathBuf,
    },

    /// A FIFO that another user could read from or write to: owned by
    /// someone else, or with read or write permission for group or others.
    /// Refused unless the opener opted in with
    /// [`FifoOptions::allow_shared`](crate::fifo::FifoOptions::allow_shared).
    #[error(
        "{} is {reason} (owner uid {owner}, mode {mode:04o}), so another user could read or forge its messages; refused (opt in with allow_shared to use a shared FIFO)",
        path.display()
    )]
    SharedFifo {
        /// The FIFO's path.
        path: PathBuf,
        /// Its owner, from `fstat` on the opened fd.
        owner: u32,
        /// Its permission bits.
        mode: u32,
        /// What is wrong, in words: `"owned by another user"`, ...
        reason: &'static str,
    },

    /// The FIFO's directory is writable by every user and lacks the sticky
    /// bit, so anyone may remove or replace the FIFO's entry. Refused unless
    /// the opener opted in with
    /// [`FifoOptions::allow_shared`](crate::fifo::FifoOptions::allow_shared).
    #[error(
        "{} is in {}, a directory every user may write to without the sticky bit (owner uid {owner}, mode {mode:04o}), so anyone could replace it; refused (use a private directory, set the sticky bit, or opt in with allow_shared)",
        path.display(),
        dir.display()
    )]
    InsecureDirectory {
        /// The FIFO's path.
        path: PathBuf,
        /// The directory holding it.
        dir: PathBuf,
        /// The directory's owner.
        owner: u32,
        /// The directory's permission bits.
        mode: u32,
    },

    /// The stream ended inside a line: these bytes came with no newline
    /// after them. Nothing is dropped: the partial line is here.
    #[error("the stream ended inside a line: {} bytes came with no newline after them", bytes.len())]
    PartialLine {
        /// The bytes of the unfinished last line.
        bytes: Vec<u8>,
    },

    /// The operating system refused an operation on a path; `context` names
    /// the operation, e.g. `"open"`; the display ends with the OS error
    /// (also the [`source`](std::error::Error::source)).
    #[error("could not {context} {}: {source}", path.display())]
    PathIo {
        /// What the crate was doing, as a verb phrase: `"open"`, `"remove"`.
        context: &'static str,
        /// The path it was doing it to.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },

    /// A [`JoinableQueue::join_timeout`](crate::JoinableQueue::join_timeout)
    /// ran out with tasks unfinished: how many, and who took them with a get
    /// and has not called `task_done` (dead processes included). Tasks not
    /// in `holders` are still waiting in the queue (or were taken by a
    /// process the holder table had no room for).
    #[error("{}", join_timeout_text(*unfinished, holders))]
    JoinTimeout {
        /// Tasks put and not yet marked done, when the join gave up.
        unfinished: u64,
        /// Processes holding tasks taken and not done, by pid.
        holders: Vec<TaskHolder>,
    },
}

/// A process that took tasks from a [`JoinableQueue`](crate::JoinableQueue)
/// with a get and has not called `task_done` for them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TaskHolder {
    /// Its process id.
    pub pid: crate::sys::Pid,
    /// Tasks it took and has not marked done.
    pub count: u64,
    /// Whether it was still running when the join gave up.
    pub alive: bool,
}

fn join_timeout_text(unfinished: u64, holders: &[TaskHolder]) -> String {
    let plural = if unfinished == 1 { "task" } else { "tasks" };
    let mut s = format!("join timed out: {unfinished} {plural} unfinished");
    if !holders.is_empty() {
        let who: Vec<String> = holders
            .iter()
            .map(|h| {
                if h.alive {
                    format!("pid {} ({})", h.pid, h.count)
                } else {
                    format!("pid {} ({}, dead)", h.pid, h.count)
                }
            })
            .collect();
        s.push_str("; taken and not done by ");
        s.push_str(&who.join(", "));
    }
    let held: u64 = holders.iter().map(|h| h.count).sum();
    if unfinished > held {
        s.push_str(&format!("; {} not taken yet", unfinished - held));
    }
    s
}

fn parent_of(path: &std::path::Path) -> &std::path::Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => std::path::Path::new("."),
    }
}

impl Error {
    /// An [`Error::Io`] with `context` from an `io::Error`.
    pub fn io(context: &'static str, source: io::Error) -> Self {
        Error::Io { context, source }
    }

    /// An [`Error::Corrupt`] with a reason.
    pub fn corrupt(reason: impl Into<String>) -> Self {
        Error::Corrupt {
            reason: reason.into(),
        }
    }

    /// True for [`Error::Closed`].
    pub fn is_closed(&self) -> bool {
        matches!(self, Error::Closed)
    }

    /// An [`Error::PathIo`]: `context` on `path` failed with `source`.
    pub fn path_io(context: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        Error::PathIo {
            context,
            path: path.into(),
            source,
        }
    }

    /// True for [`Error::Timeout`].
    pub fn is_timeout(&self) -> bool {
        matches!(self, Error::Timeout)
    }
}

/// `e` and each of its sources, joined by ": ", for a one-line message such
/// as `write failed: Broken pipe (os error 32)`. A source whose text the
/// message already ends with (as this crate's errors end with their OS
/// error) is not repeated.
pub fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(inner) = source {
        let text = inner.to_string();
        if !s.ends_with(&text) {
            s.push_str(": ");
            s.push_str(&text);
        }
        source = inner.source();
    }
    s
}

impl From<nix::Error> for Error {
    fn from(errno: nix::Error) -> Self {
        Error::io("system call", io::Error::from(errno))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::error::Error as _;

    #[derive(Debug, thiserror::Error)]
    #[error("listen failed")]
    struct Outer(#[source] Error);

    #[test]
    fn chain_adds_each_source_not_already_shown() {
        let inner = Error::io("write", io::Error::from_raw_os_error(libc::EPIPE));
        assert_eq!(
            chain(&Outer(inner)),
            "listen failed: write failed: Broken pipe (os error 32)"
        );
        let plain = io::Error::other("disk on fire");
        assert_eq!(chain(&plain), "disk on fire");
    }

    #[cfg(feature = "serde")]
    #[test]
    fn a_codec_error_shows_the_codecs_error_once() {
        let e = Error::Codec {
            action: "decode",
            source: postcard::Error::DeserializeUnexpectedEnd,
        };
        let text = e.to_string();
        assert!(
            text.starts_with("could not decode a value with postcard: "),
            "{text}"
        );
        assert_eq!(chain(&e), text);
    }

    #[test]
    fn display_reads_as_a_sentence_and_keeps_the_os_error() {
        let e = Error::io("pipe2", io::Error::from_raw_os_error(libc::EMFILE));
        assert_eq!(
            e.to_string(),
            "pipe2 failed: Too many open files (os error 24)"
        );
        let src = e.source().expect("the OS error is the source");
        assert!(src.to_string().contains("Too many open files"), "{src}");
        // Walking the sources does not say it twice.
        assert_eq!(chain(&e), e.to_string());
        let e = Error::path_io(
            "open",
            "/tmp/spam",
            io::Error::from_raw_os_error(libc::EACCES),
        );
        assert_eq!(
            e.to_string(),
            "could not open /tmp/spam: Permission denied (os error 13)"
        );
        assert_eq!(chain(&e), e.to_string());
        let e = Error::Truncated {
            expected: 10,
            got: 3,
        };
        assert_eq!(
            e.to_string(),
            "the stream ended inside a message: got 3 of 10 bytes"
        );
        let e = Error::BufferTooSmall {
            message: vec![0; 9],
        };
        assert_eq!(
            e.to_string(),
            "receive buffer too small for a message of 9 bytes"
        );
        let e = Error::JoinTimeout {
            unfinished: 3,
            holders: vec![
                TaskHolder {
                    pid: 4242,
                    count: 2,
                    alive: false,
                },
                TaskHolder {
                    pid: 4243,
                    count: 1,
                    alive: true,
                },
            ],
        };
        assert_eq!(
            e.to_string(),
            "join timed out: 3 tasks unfinished; taken and not done by pid 4242 (2, dead), pid 4243 (1)"
        );
        let e = Error::JoinTimeout {
            unfinished: 1,
            holders: vec![],
        };
        assert_eq!(
            e.to_string(),
            "join timed out: 1 task unfinished; 1 not taken yet"
        );
    }
}
