//! The only module that talks to the kernel directly, and the only one with
//! `unsafe`. Everything above it is safe Rust over `OwnedFd`/`BorrowedFd`.
//!
//! Rules kept here, so no caller has to remember them:
//! - every fd is created `O_CLOEXEC` (`pipe2`, `SOCK_CLOEXEC`);
//! - `EINTR` never escapes: reads, writes and polls retry, and a poll with a
//!   deadline recomputes what is left of it;
//! - a write to a pipe or socket whose reader is gone returns `EPIPE`; it never
//!   kills the process with `SIGPIPE` (sockets use `MSG_NOSIGNAL`; pipes block
//!   `SIGPIPE` in the writing thread for the duration of the write and consume
//!   the signal the write raised, unless the process already ignores it;
//!   "ignored" is cached, see `without_sigpipe` for why that is safe).

//!
//! One file per OS concept; every item is re-exported here, so callers name
//! it `crate::sys::X` whatever file it lives in.

pub mod fifo;
pub mod shm;

mod fd;
mod io;
mod poll;
mod process;
mod signal;
mod splice;
mod time;

pub use fd::*;
pub use io::*;
pub use poll::*;
pub use process::*;
// Without the test hooks and the harness, nothing uses these.
#[allow(unused_imports)]
pub use signal::*;
pub use splice::*;
pub use time::*;

use std::io as stdio;

/// Implements `AsFd` and `AsRawFd` for each type, through the field (or
/// field path) that holds its descriptor: `impl_fd_traits!(Sender => fd)`.
macro_rules! impl_fd_traits {
    ($($t:ty => $($field:ident).+),* $(,)?) => {$(
        impl std::os::fd::AsFd for $t {
            fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
                self.$($field).+.as_fd()
            }
        }
        impl std::os::fd::AsRawFd for $t {
            fn as_raw_fd(&self) -> std::os::fd::RawFd {
                self.$($field).+.as_raw_fd()
            }
        }
    )*};
}
pub(crate) use impl_fd_traits;

/// `PIPE_BUF`: writes of at most this many bytes to a pipe are atomic.
pub const PIPE_BUF: usize = libc::PIPE_BUF;

fn cvt(ret: libc::c_int) -> stdio::Result<libc::c_int> {
    if ret < 0 {
        Err(stdio::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

fn cvt_size(ret: libc::ssize_t) -> stdio::Result<usize> {
    if ret < 0 {
        Err(stdio::Error::last_os_error())
    } else {
        Ok(ret as usize)
    }
}

/// Retries `f` while it fails with `EINTR`.
fn retry<T>(mut f: impl FnMut() -> stdio::Result<T>) -> stdio::Result<T> {
    loop {
        match f() {
            Err(e) if e.kind() == stdio::ErrorKind::Interrupted => continue,
            other => return other,
        }
    }
}
