//! Waiting for an fd to become readable or writable, with a deadline.

use std::io;
use std::os::fd::BorrowedFd;
use std::time::Instant;

pub use nix::poll::PollFlags;
use nix::poll::{PollFd, PollTimeout};

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
    wait_for(fd, PollFlags::POLLIN, deadline)
}

/// Waits until `fd` is writable, like [`wait_readable`].
pub fn wait_writable(fd: BorrowedFd<'_>, deadline: Option<Instant>) -> io::Result<Readiness> {
    wait_for(fd, PollFlags::POLLOUT, deadline)
}

fn wait_for(
    fd: BorrowedFd<'_>,
    events: PollFlags,
    deadline: Option<Instant>,
) -> io::Result<Readiness> {
    Ok(match poll_one(fd, events, deadline)? {
        None => Readiness::TimedOut,
        Some(_) => Readiness::Ready,
    })
}

/// `poll(2)` on the one fd `fd` for `events` until it is ready or
/// `deadline` passes: `Some(revents)`, or `None` once the deadline passed.
/// Retries `EINTR` with the time that is left, like [`poll_fds`].
pub fn poll_one(
    fd: BorrowedFd<'_>,
    events: PollFlags,
    deadline: Option<Instant>,
) -> io::Result<Option<PollFlags>> {
    let mut fds = [PollFd::new(fd, events)];
    let n = poll_until(deadline, |ms| {
        Ok(nix::poll::poll(
            &mut fds,
            PollTimeout::try_from(ms).unwrap_or(PollTimeout::NONE),
        )? as usize)
    })?;
    Ok((n > 0).then(|| fds[0].revents().unwrap_or(PollFlags::empty())))
}

/// `poll(2)` on `fds` until at least one is ready or `deadline` passes;
/// returns how many are ready (0: the deadline passed). Retries `EINTR` with
/// the time that is left.
pub fn poll_fds(fds: &mut [libc::pollfd], deadline: Option<Instant>) -> io::Result<usize> {
    // On libc: the callers build arrays of `libc::pollfd` over fds they hold
    // as raw numbers, which nix's `PollFd` (tied to a `BorrowedFd`) cannot
    // take without a borrow per entry.
    poll_until(deadline, |timeout_ms| {
        // SAFETY: `fds` is a valid, exclusively borrowed array of pollfd.
        let ret = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout_ms) };
        if ret < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(ret as usize)
        }
    })
}

/// Runs `poll` (given the timeout in ms, -1 for none) until it reports
/// something or `deadline` passes; retries `EINTR` with the time that is
/// left, and a timed-out poll that woke a hair early.
fn poll_until(
    deadline: Option<Instant>,
    mut poll: impl FnMut(libc::c_int) -> io::Result<usize>,
) -> io::Result<usize> {
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
        let ret = match poll(timeout_ms) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            other => other?,
        };
        if ret == 0 {
            match deadline {
                // A timed-out poll can wake a hair early; check the clock.
                Some(d) if Instant::now() < d => continue,
                _ => return Ok(0),
            }
        }
        return Ok(ret);
    }
}
