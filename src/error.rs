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

    /// A path that should be a FIFO is something else.
    #[error("{} is not a FIFO", path.display())]
    NotAFifo {
        /// The path that was opened.
        path: PathBuf,
    },

    /// A value could not be encoded or decoded by the serde codec.
    #[cfg(feature = "serde")]
    #[error("could not {action} a value with postcard")]
    Codec {
        /// `"encode"` or `"decode"`.
        action: &'static str,
        /// The codec's own error.
        #[source]
        source: postcard::Error,
    },

    /// The operating system refused; `context` names the operation.
    #[error("{context} failed")]
    Io {
        /// What the crate was doing, e.g. `"pipe2"` or `"write to pipe"`.
        context: &'static str,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },
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

    /// True for [`Error::Timeout`].
    pub fn is_timeout(&self) -> bool {
        matches!(self, Error::Timeout)
    }
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

    #[test]
    fn display_reads_as_a_sentence_and_keeps_the_os_error() {
        let e = Error::io("pipe2", io::Error::from_raw_os_error(libc::EMFILE));
        assert_eq!(e.to_string(), "pipe2 failed");
        let src = e.source().expect("the OS error is the source");
        assert!(src.to_string().contains("Too many open files"), "{src}");
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
    }
}
