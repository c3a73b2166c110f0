//! Whole reads and writes on a raw file descriptor, for the demos and the
//! benchmark: no framing, no buffering.

use std::os::fd::BorrowedFd;
use std::time::Instant;

use ipc_harness::error::{Error, Result};
use ipc_harness::sys::{self, Readiness};

/// Fills `buf` from `fd`, in as many reads as it takes (`EINTR` is
/// retried). With a `deadline`, waits for data until then (`Timeout`
/// after); with `None`, reads straight away and blocks as long as it must.
/// End of stream before `buf` is full is `Truncated`.
pub(crate) fn read_exact(
    fd: BorrowedFd<'_>,
    buf: &mut [u8],
    deadline: Option<Instant>,
) -> Result<()> {
    let mut got = 0;
    while got < buf.len() {
        // No poll without a deadline: the benchmark's round trips call
        // this in their timed loop, and a poll per read would be measured.
        if deadline.is_some()
            && sys::wait_readable(fd, deadline).map_err(|e| Error::io("poll", e))?
                == Readiness::TimedOut
        {
            return Err(Error::Timeout);
        }
        match sys::read(fd, &mut buf[got..]).map_err(|e| Error::io("read", e))? {
            0 => {
                return Err(Error::Truncated {
                    expected: buf.len() as u64,
                    got: got as u64,
                });
            }
            n => got += n,
        }
    }
    Ok(())
}

/// A plain `write` loop (`EINTR` is retried): no framing, no `SIGPIPE`
/// guard (a Rust program ignores `SIGPIPE`).
pub(crate) fn write_all(fd: BorrowedFd<'_>, mut buf: &[u8]) -> Result<()> {
    while !buf.is_empty() {
        match nix::unistd::write(fd, buf) {
            Ok(n) => buf = &buf[n..],
            Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return Err(Error::io("write", e.into())),
        }
    }
    Ok(())
}
