//! Reads and writes: `EINTR` retried, `SIGPIPE` never raised.

use std::io::{self, IoSlice, IoSliceMut};
use std::mem::MaybeUninit;
use std::os::fd::{AsRawFd, BorrowedFd};

use super::signal::without_sigpipe;
use super::{cvt_size, retry};

/// `read(2)` into `buf`, retrying on `EINTR`. `Ok(0)` is end of stream.
pub fn read(fd: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<usize> {
    retry(|| Ok(nix::unistd::read(fd, buf)?))
}

/// One `readv(2)` into `head`, then `rest`, retrying on `EINTR`; returns how
/// many bytes it read (`head` is filled first). `Ok(0)` is end of stream.
pub fn read_split(fd: BorrowedFd<'_>, head: &mut [u8], rest: &mut [u8]) -> io::Result<usize> {
    let mut slices = [IoSliceMut::new(head), IoSliceMut::new(rest)];
    retry(|| Ok(nix::sys::uio::readv(fd, &mut slices)?))
}

/// Reads at most `max` bytes into the spare capacity of `buf` (reserving
/// them first) and extends its length by what was read, without zeroing the
/// memory first. Retries on `EINTR`. `Ok(0)` is end of stream.
pub fn read_append(fd: BorrowedFd<'_>, buf: &mut Vec<u8>, max: usize) -> io::Result<usize> {
    // On libc: nix's read takes an initialized `&mut [u8]`, and zeroing
    // `max` bytes before every read would cost the hot path a memset.
    buf.reserve(max);
    let spare: &mut [MaybeUninit<u8>] = &mut buf.spare_capacity_mut()[..max];
    let n = retry(|| {
        // SAFETY: `spare` is valid for writes of `spare.len()` bytes; read(2)
        // writes only initialized bytes and reports how many.
        cvt_size(unsafe { libc::read(fd.as_raw_fd(), spare.as_mut_ptr().cast(), spare.len()) })
    })?;
    // SAFETY: the kernel initialized the first `n <= max` spare bytes, and
    // `len + n` is within the capacity reserved above.
    unsafe { buf.set_len(buf.len() + n) };
    Ok(n)
}

/// `write(2)` of `buf`, retrying on `EINTR`; may write fewer bytes. A pipe
/// whose reader is gone gives `EPIPE`, never `SIGPIPE`.
pub fn write(fd: BorrowedFd<'_>, buf: &[u8]) -> io::Result<usize> {
    without_sigpipe(|| retry(|| Ok(nix::unistd::write(fd, buf)?)))
}

/// The most bytes [`write_joined`] takes.
pub const JOINED_MAX: usize = 516;

/// Writes `head` then `body` (at most [`JOINED_MAX`] bytes together) as one
/// plain `write`/`send`, copied into one stack buffer: a small frame's
/// header and payload in one system call, cheaper for the kernel than a
/// two-slice `writev`. The buffer is not zeroed first (an initialized one
/// cost a 516-byte memset per message, a fifth of a small send's
/// instructions). Otherwise as [`write_all_vectored`].
pub fn write_joined(
    fd: BorrowedFd<'_>,
    kind: WriteKind,
    head: &[u8],
    body: &[u8],
) -> io::Result<()> {
    let n = head.len() + body.len();
    assert!(
        n <= JOINED_MAX,
        "write_joined takes at most {JOINED_MAX} bytes"
    );
    let mut buf = [MaybeUninit::<u8>::uninit(); JOINED_MAX];
    // SAFETY: `head.len() + body.len() <= JOINED_MAX` (asserted), so both
    // copies stay inside `buf`; sources and `buf` do not overlap (`buf` is a
    // fresh local).
    unsafe {
        let dst = buf.as_mut_ptr().cast::<u8>();
        std::ptr::copy_nonoverlapping(head.as_ptr(), dst, head.len());
        std::ptr::copy_nonoverlapping(body.as_ptr(), dst.add(head.len()), body.len());
    }
    // SAFETY: the first `n` bytes were initialized by the copies above.
    let bytes: &[u8] = unsafe { std::slice::from_raw_parts(buf.as_ptr().cast::<u8>(), n) };
    match kind {
        WriteKind::Pipe => without_sigpipe(|| write_all_once(fd, kind, bytes)),
        WriteKind::Socket => write_all_once(fd, kind, bytes),
    }
}

/// Writes all of `bytes` with plain `write`/`send` calls (one when the
/// kernel takes them whole), retrying `EINTR` and short writes.
fn write_all_once(fd: BorrowedFd<'_>, kind: WriteKind, mut bytes: &[u8]) -> io::Result<()> {
    while !bytes.is_empty() {
        let n = retry(|| writev_once(fd, kind, &[IoSlice::new(bytes)]))?;
        if n == 0 {
            return Err(io::Error::new(io::ErrorKind::WriteZero, "write returned 0"));
        }
        bytes = &bytes[n..];
    }
    Ok(())
}

/// How a writer reaches its fd: plain `writev` (pipes, FIFOs) or `sendmsg`
/// with `MSG_NOSIGNAL` (sockets).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteKind {
    /// A pipe or FIFO.
    Pipe,
    /// A socket.
    Socket,
}

/// Writes every byte of `bufs`, in order, in as few system calls as the
/// kernel allows (one `writev`/`sendmsg` when it takes everything, which it
/// does atomically for a pipe write of at most `PIPE_BUF` bytes in total).
/// Retries `EINTR` and short writes; `EPIPE` is returned, never raised as
/// `SIGPIPE`. `WouldBlock` from a non-blocking fd is returned together with
/// nothing about progress, so use it on blocking fds only.
pub fn write_all_vectored(fd: BorrowedFd<'_>, kind: WriteKind, bufs: &[&[u8]]) -> io::Result<()> {
    // A frame is two slices: keep them on the stack, so a send allocates
    // nothing. More than INLINE slices go to the heap.
    const INLINE: usize = 4;
    let mut inline = [IoSlice::new(&[]); INLINE];
    let mut heap = Vec::new();
    let slices: &mut [IoSlice<'_>] = if bufs.len() <= INLINE {
        let mut n = 0;
        for b in bufs.iter().filter(|b| !b.is_empty()) {
            inline[n] = IoSlice::new(b);
            n += 1;
        }
        &mut inline[..n]
    } else {
        heap.extend(
            bufs.iter()
                .filter(|b| !b.is_empty())
                .map(|b| IoSlice::new(b)),
        );
        &mut heap
    };
    let mut rest: &mut [IoSlice<'_>] = slices;
    let body = |rest: &mut &mut [IoSlice<'_>]| -> io::Result<()> {
        while !rest.is_empty() {
            let n = retry(|| writev_once(fd, kind, rest))?;
            if n == 0 {
                return Err(io::Error::new(io::ErrorKind::WriteZero, "write returned 0"));
            }
            IoSlice::advance_slices(rest, n);
        }
        Ok(())
    };
    match kind {
        WriteKind::Pipe => without_sigpipe(|| body(&mut rest)),
        WriteKind::Socket => body(&mut rest),
    }
}

fn writev_once(fd: BorrowedFd<'_>, kind: WriteKind, slices: &[IoSlice<'_>]) -> io::Result<usize> {
    use nix::sys::socket::{MsgFlags, send, sendmsg};
    let slices = &slices[..slices.len().min(libc::UIO_MAXIOV as usize)];
    if let [one] = slices {
        // One slice (a small frame, or the tail of a large one): plain
        // write/send, which spares the kernel copying in an iovec array.
        return Ok(match kind {
            WriteKind::Pipe => nix::unistd::write(fd, one)?,
            WriteKind::Socket => send(fd.as_raw_fd(), one, MsgFlags::MSG_NOSIGNAL)?,
        });
    }
    Ok(match kind {
        WriteKind::Pipe => nix::sys::uio::writev(fd, slices)?,
        // No control messages and no address: nix builds the msghdr on the
        // stack (its cmsg buffer is an empty Vec, which does not allocate).
        WriteKind::Socket => {
            sendmsg::<()>(fd.as_raw_fd(), slices, &[], MsgFlags::MSG_NOSIGNAL, None)?
        }
    })
}
