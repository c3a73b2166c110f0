//! [`LineReader`]: the read end of a FIFO carrying lines.

use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;
use std::time::{Duration, Instant};

use super::open::open_read_end;
use super::reader::ReadEnd;
use super::{FifoOptions, Wait};
use crate::error::{Error, Result};
use crate::frame;
use crate::sys::{self, Readiness};

const READ_CHUNK: usize = 64 * 1024;

/// The read end of a FIFO carrying lines (`\n`-terminated), like Python's
/// `readline` on a FIFO opened in text mode, but never returning part of a
/// line as if it were whole.
#[derive(Debug)]
pub struct LineReader {
    fd: OwnedFd,
    end: ReadEnd,
    buf: Vec<u8>,
    /// `buf[pos..]` is not consumed yet.
    pos: usize,
    /// `buf[pos..scanned]` holds no newline.
    scanned: usize,
    max: u64,
    /// Discarding the rest of a line refused as too long.
    skipping: bool,
}

impl LineReader {
    /// Opens the FIFO at `path` for reading lines, waiting for a writer as
    /// `wait` says. See the [module docs](crate::fifo) for the checks and errors.
    pub fn open(path: impl AsRef<Path>, wait: Wait) -> Result<LineReader> {
        FifoOptions::new().wait(wait).line_reader(path)
    }

    pub(super) fn open_with(path: &Path, opts: &FifoOptions) -> Result<LineReader> {
        let (fd, _) = open_read_end(path, opts)?;
        Ok(LineReader {
            fd,
            end: ReadEnd {
                path: path.into(),
                keep_alive: None,
            },
            buf: Vec::new(),
            pos: 0,
            scanned: 0,
            max: if opts.mode != super::FifoMode::Framed {
                (sys::PIPE_BUF - 1) as u64
            } else {
                frame::UNLIMITED
            },
            skipping: false,
        })
    }

    /// The path this reader was opened by.
    pub fn path(&self) -> &Path {
        &self.end.path
    }

    /// Keeps listening for new writers after the last one closes. See
    /// [`FifoReader::keep_listening`](super::FifoReader::keep_listening).
    pub fn keep_listening(&mut self) -> Result<()> {
        self.end.keep_listening(self.fd.as_fd())
    }

    /// Refuses lines longer than `max` bytes (without the `\n`) with
    /// [`Error::TooLarge`], so a writer that never sends a newline cannot
    /// make the reader buffer without end: at most `max` plus 64 KiB is
    /// held. The refused line is skipped, up to and including its newline;
    /// the next receive returns the line after it. `len` in the error is
    /// the line's length if it was seen whole, else the bytes seen so far.
    /// The default is no limit, as in Python.
    pub fn set_max_line_length(&mut self, max: u64) {
        self.max = max;
    }

    /// Receives one whole line, without its `\n`, waiting as long as it
    /// takes. At the end of the stream: [`Error::Closed`] after a whole line,
    /// [`Error::PartialLine`] holding the bytes of an unfinished one.
    pub fn recv_line(&mut self) -> Result<Vec<u8>> {
        self.recv_line_until(None)
    }

    /// Like [`recv_line`](Self::recv_line), but gives up with
    /// [`Error::Timeout`] after `timeout`. Nothing is lost: bytes of a line
    /// already read are kept for the next receive.
    pub fn recv_line_timeout(&mut self, timeout: Duration) -> Result<Vec<u8>> {
        self.recv_line_until(Some(sys::deadline_after(timeout)))
    }

    fn recv_line_until(&mut self, deadline: Option<Instant>) -> Result<Vec<u8>> {
        loop {
            if let Some(i) = self.buf[self.scanned..].iter().position(|&b| b == b'\n') {
                let end = self.scanned + i;
                let start = self.pos;
                self.pos = end + 1;
                self.scanned = self.pos;
                if std::mem::take(&mut self.skipping) {
                    continue; // the end of a line refused earlier
                }
                let len = end - start;
                if len as u64 > self.max {
                    return Err(Error::TooLarge {
                        len: len as u64,
                        max: self.max,
                    });
                }
                return Ok(self.buf[start..end].to_vec());
            }
            self.scanned = self.buf.len();
            if self.skipping {
                self.buf.clear();
                self.scanned = 0;
                self.pos = 0;
            } else if (self.buf.len() - self.pos) as u64 > self.max {
                // Over the limit with no end in sight: refuse the line, and
                // skip the rest of it as it arrives.
                let len = (self.buf.len() - self.pos) as u64;
                self.buf.clear();
                self.scanned = 0;
                self.pos = 0;
                self.skipping = true;
                return Err(Error::TooLarge { len, max: self.max });
            }
            if self.pos > 0 {
                self.buf.drain(..self.pos);
                self.scanned -= self.pos;
                self.pos = 0;
            }
            if let Some(d) = deadline {
                let ready = sys::wait_readable(self.fd.as_fd(), Some(d))
                    .map_err(|e| Error::io("poll", e))?;
                if ready == Readiness::TimedOut {
                    return Err(Error::Timeout);
                }
            }
            let n = sys::read_append(self.fd.as_fd(), &mut self.buf, READ_CHUNK)
                .map_err(|e| Error::io("read", e))?;
            if n == 0 {
                if self.buf.is_empty() || std::mem::take(&mut self.skipping) {
                    self.buf.clear();
                    self.scanned = 0;
                    return Err(Error::Closed);
                }
                self.scanned = 0;
                return Err(Error::PartialLine {
                    bytes: std::mem::take(&mut self.buf),
                });
            }
        }
    }
}

sys::impl_fd_traits!(LineReader => fd);
