//! Waiting for an fd to become readable or writable, with a deadline.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::time::Instant;

/// What `poll` found on an fd.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Readiness {
    /// Data (or end of stream, or an error) is waiting: a read won't block.
    Ready,
    /// The deadline passed first.
    TimedOut,
}

/// Waits until `fd` is readable (or at end of stream) or `deadline` passes.
/// `None` waits forever. Never returns `TimedOut` before the deadline:
/// `EINTR` and early wake-ups recompute what is left and wait again.
pub fn wait_readable(fd: BorrowedFd<'_>, deadline: Option<Instant>) -> io::Result<Readiness> {
    wait_for(fd, libc::POLLIN, deadline)
}

/// Waits until `fd` is writable, like [`wait_readable`].
pub fn wait_writable(fd: BorrowedFd<'_>, deadline: Option<Instant>) -> io::Result<Readiness> {
    wait_for(fd, libc::POLLOUT, deadline)
}

fn wait_for(
    fd: BorrowedFd<'_>,
    events: libc::c_short,
    deadline: Option<Instant>,
) -> io::Result<Readiness> {
    let mut fds = [libc::pollfd {
        fd: fd.as_raw_fd(),
        events,
        revents: 0,
    }];
    Ok(match poll_fds(&mut fds, deadline)? {
        0 => Readiness::TimedOut,
        _ => Readiness::Ready,
    })
}

/// `poll(2)` on `fds` until at least one is ready or `deadline` passes;
/// returns how many are ready (0: the deadline passed). Retries `EINTR` with
/// the time that is left.
pub fn poll_fds(fds: &mut [libc::pollfd], deadline: Option<Instant>) -> io::Result<usize> {
    loop {
        let timeout_ms: libc::c_int = match deadline {
            None => -1,
            Some(d) => {
                let now = Instant::now();
                if now >= d {
                    0
                } else {
                    // Round up, so we never wake before the deadline.
                    let left = d - now;
                    let ms = left.as_micros().div_ceil(1000);
                    ms.min(libc::c_int::MAX as u128) as libc::c_int
                }
            }
        };
        // SAFETY: `fds` is a valid, exclusively borrowed array of pollfd.
        let ret = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout_ms) };
        if ret < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        if ret == 0 {
            match deadline {
                // A timed-out poll can wake a hair early; check the clock.
                Some(d) if Instant::now() < d => continue,
                _ => return Ok(0),
            }
        }
        return Ok(ret as usize);
    }
}
