//! [`RawPipe`]: a plain `pipe2` byte stream that keeps **no** message
//! boundaries. It is here to teach what goes wrong without framing; use
//! [`pipe()`](crate::pipe()) to send messages.
//!
//! # What POSIX promises for a pipe
//! - Bytes come out in the order they went in, each exactly once.
//! - A `write` of at most `PIPE_BUF` (4096 on Linux) bytes is *atomic*: its
//!   bytes are never interleaved with another writer's. A larger write may be
//!   split and interleaved with other writers' data.
//! - A blocking `write` waits for room; a non-blocking one may write only
//!   part of the buffer and return the count (the *short write*).
//! - The reader sees end of stream (`read` returns 0) only when **every**
//!   copy of the write end, in every process, is closed.
//!
//! # What it does not promise
//! - **Boundaries.** A `read` returns whatever bytes are there, up to the
//!   buffer's size: two writes may come back as one read (coalescing:
//!   `b"Spam 004Spam 000"`), one write may come back in several reads
//!   (splitting), whatever the sizes.
//! - Anything about two *readers*: each read takes some bytes, so two
//!   readers split one writer's data between them arbitrarily.
//!
//! # Packet mode
//! [`RawPipe::packet_mode`] opens the pipe with `O_DIRECT` (Linux 3.4+): each
//! write of at most `PIPE_BUF` bytes becomes one packet and each read returns
//! at most one packet; a read with a buffer smaller than the packet discards
//! the rest of it. Larger writes are split into `PIPE_BUF`-sized packets.
//!
//! # Example
//! ```
//! use ipc_harness::raw::RawPipe;
//!
//! let pipe = RawPipe::new()?;
//! pipe.write(b"Spam 004")?;
//! pipe.write(b"Spam 000")?;
//! let mut buf = [0u8; 64];
//! let n = pipe.read(&mut buf)?;
//! // Two writes, one read: the boundary is gone.
//! assert_eq!(&buf[..n], b"Spam 004Spam 000");
//! # Ok::<(), ipc_harness::Error>(())
//! ```

use std::os::fd::{AsFd, OwnedFd};

use crate::error::{Error, Result};
use crate::frame::write_error;
use crate::sys;

/// `PIPE_BUF`: the largest write a pipe keeps atomic.
pub const PIPE_BUF: usize = sys::PIPE_BUF;

/// A pipe used as a bare byte stream. Holds both ends until one side is
/// closed, as a forked process does after `os.pipe()`.
#[derive(Debug)]
pub struct RawPipe {
    read_end: Option<OwnedFd>,
    write_end: Option<OwnedFd>,
}

impl RawPipe {
    /// A new pipe (`pipe2(O_CLOEXEC)`).
    pub fn new() -> Result<RawPipe> {
        Self::open(false)
    }

    /// A new packet-mode pipe (`pipe2(O_CLOEXEC | O_DIRECT)`).
    pub fn packet_mode() -> Result<RawPipe> {
        Self::open(true)
    }

    fn open(packet: bool) -> Result<RawPipe> {
        let (r, w) = sys::pipe(packet).map_err(|e| Error::io("pipe2", e))?;
        Ok(RawPipe {
            read_end: Some(r),
            write_end: Some(w),
        })
    }

    /// Writes some of `buf` and returns how many bytes were written (all of
    /// them for a blocking pipe, unless a signal interrupts a large write).
    /// [`Error::Closed`] if every read end is closed.
    pub fn write(&self, buf: &[u8]) -> Result<usize> {
        let fd = self.write_end.as_ref().ok_or(Error::Closed)?;
        sys::write(fd.as_fd(), buf).map_err(write_error)
    }

    /// Reads whatever is there, up to `buf.len()` bytes, waiting if nothing
    /// is. `Ok(0)` is end of stream (every write end closed).
    pub fn read(&self, buf: &mut [u8]) -> Result<usize> {
        let fd = self.read_end.as_ref().ok_or(Error::Closed)?;
        sys::read(fd.as_fd(), buf).map_err(|e| Error::io("read from pipe", e))
    }

    /// Closes this process's read end (a writer does this after `fork`).
    pub fn close_read(&mut self) {
        self.read_end = None;
    }

    /// Closes this process's write end (a reader does this after `fork`, or
    /// it never sees end of stream).
    pub fn close_write(&mut self) {
        self.write_end = None;
    }

    /// Puts the write end in non-blocking mode: a write then takes what fits
    /// and returns the count, or fails with `WouldBlock` if nothing fits.
    pub fn set_nonblocking_write(&self, on: bool) -> Result<()> {
        let fd = self.write_end.as_ref().ok_or(Error::Closed)?;
        sys::set_nonblocking(fd.as_fd(), on).map_err(|e| Error::io("fcntl(F_SETFL)", e))
    }

    fn any_end(&self) -> Result<&OwnedFd> {
        self.read_end
            .as_ref()
            .or(self.write_end.as_ref())
            .ok_or(Error::Closed)
    }

    /// The pipe's capacity in bytes (`F_GETPIPE_SZ`; 65536 by default).
    pub fn capacity(&self) -> Result<usize> {
        sys::pipe_capacity(self.any_end()?.as_fd()).map_err(|e| Error::io("fcntl(F_GETPIPE_SZ)", e))
    }

    /// Sets the capacity (`F_SETPIPE_SZ`); the kernel rounds it up to a
    /// power-of-two number of pages, at least one page, at most
    /// `/proc/sys/fs/pipe-max-size` for unprivileged users. Returns the
    /// capacity it got.
    pub fn set_capacity(&self, bytes: usize) -> Result<usize> {
        sys::set_pipe_capacity(self.any_end()?.as_fd(), bytes)
            .map_err(|e| Error::io("fcntl(F_SETPIPE_SZ)", e))
    }

    /// The read end, if still open (to poll it, or hand it to a peer).
    pub fn read_fd(&self) -> Option<&OwnedFd> {
        self.read_end.as_ref()
    }

    /// The write end, if still open.
    pub fn write_fd(&self) -> Option<&OwnedFd> {
        self.write_end.as_ref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packet_mode_keeps_each_small_write_apart() {
        if let Some(reason) = crate::probe::require(crate::probe::Feature::PacketPipes) {
            eprintln!("skipped: {reason}");
            return;
        }
        let p = RawPipe::packet_mode().unwrap();
        p.write(b"Spam 004").unwrap();
        p.write(b"Spam 000").unwrap();
        let mut buf = [0u8; 64];
        let n = p.read(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"Spam 004");
    }

    #[test]
    fn capacity_can_be_read_and_set() {
        let p = RawPipe::new().unwrap();
        assert!(p.capacity().unwrap() >= 4096);
        assert_eq!(p.set_capacity(4096).unwrap(), 4096);
        assert_eq!(p.capacity().unwrap(), 4096);
    }

    #[test]
    fn writing_with_no_reader_is_closed_not_sigpipe() {
        let mut p = RawPipe::new().unwrap();
        p.close_read();
        // After close_read our own handle has no read end, but the kernel
        // pipe also has none left: the write must fail with Closed.
        let e = p.write(b"x").unwrap_err();
        assert!(e.is_closed(), "{e:?}");
    }
}
