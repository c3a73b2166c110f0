//! File descriptors: pipes, socket pairs, and the flags and capacity of an fd.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd, RawFd};

use nix::fcntl::{FcntlArg, FdFlag, OFlag, fcntl};

/// A new pipe `(read end, write end)`, both `O_CLOEXEC`; `packet` adds
/// `O_DIRECT` (packet mode: each write is one packet of at most `PIPE_BUF`).
pub fn pipe(packet: bool) -> io::Result<(OwnedFd, OwnedFd)> {
    let mut flags = OFlag::O_CLOEXEC;
    if packet {
        flags |= OFlag::O_DIRECT;
    }
    Ok(nix::unistd::pipe2(flags)?)
}

/// The socket types a socketpair can have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SocketKind {
    /// `SOCK_STREAM`: a byte stream, like a pipe but two-way.
    Stream,
    /// `SOCK_SEQPACKET`: reliable, ordered, message boundaries kept.
    SeqPacket,
    /// `SOCK_DGRAM`: message boundaries kept; on `AF_UNIX`, reliable.
    Datagram,
}

/// A connected `AF_UNIX` socket pair of `kind`, both ends `SOCK_CLOEXEC`.
pub fn socketpair(kind: SocketKind) -> io::Result<(OwnedFd, OwnedFd)> {
    use nix::sys::socket::{AddressFamily, SockFlag, SockType};
    let ty = match kind {
        SocketKind::Stream => SockType::Stream,
        SocketKind::SeqPacket => SockType::SeqPacket,
        SocketKind::Datagram => SockType::Datagram,
    };
    Ok(nix::sys::socket::socketpair(
        AddressFamily::Unix,
        ty,
        None,
        SockFlag::SOCK_CLOEXEC,
    )?)
}

/// The capacity of the pipe behind `fd` (`F_GETPIPE_SZ`).
pub fn pipe_capacity(fd: BorrowedFd<'_>) -> io::Result<usize> {
    Ok(fcntl(fd, FcntlArg::F_GETPIPE_SZ)? as usize)
}

/// Sets the capacity of the pipe behind `fd` (`F_SETPIPE_SZ`); the kernel
/// rounds up to a power-of-two number of pages. Returns the new capacity.
pub fn set_pipe_capacity(fd: BorrowedFd<'_>, bytes: usize) -> io::Result<usize> {
    let arg = libc::c_int::try_from(bytes)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "pipe capacity too large"))?;
    Ok(fcntl(fd, FcntlArg::F_SETPIPE_SZ(arg))? as usize)
}

/// Sets or clears `O_NONBLOCK` on the open file description behind `fd`
/// (shared with every copy of the fd, including across fork).
pub fn set_nonblocking(fd: BorrowedFd<'_>, on: bool) -> io::Result<()> {
    let mut flags = OFlag::from_bits_retain(fcntl(fd, FcntlArg::F_GETFL)?);
    flags.set(OFlag::O_NONBLOCK, on);
    fcntl(fd, FcntlArg::F_SETFL(flags))?;
    Ok(())
}

/// Sets `O_NOATIME` on the open file description behind `fd`: reads no
/// longer update the file's access time. The kernel allows it only to the
/// file's owner (or a process with `CAP_FOWNER`); otherwise this fails with
/// `EPERM` and nothing changes.
pub fn set_noatime(fd: BorrowedFd<'_>) -> io::Result<()> {
    let mut flags = OFlag::from_bits_retain(fcntl(fd, FcntlArg::F_GETFL)?);
    flags.insert(OFlag::O_NOATIME);
    fcntl(fd, FcntlArg::F_SETFL(flags))?;
    Ok(())
}

/// Clears `FD_CLOEXEC` on `fd`, so a program started with `exec` inherits it
/// (used to hand an endpoint to a peer program such as `python3`).
pub fn set_inheritable(fd: BorrowedFd<'_>) -> io::Result<()> {
    fcntl(fd, FcntlArg::F_SETFD(FdFlag::empty()))?;
    Ok(())
}

/// The fds this process has open, from `/proc/self/fd` (the fd used to read
/// the directory itself is left out).
pub fn open_fds() -> io::Result<Vec<RawFd>> {
    let mut fds = Vec::new();
    for entry in std::fs::read_dir("/proc/self/fd")? {
        if let Some(fd) = entry?.file_name().to_str().and_then(|s| s.parse().ok()) {
            fds.push(fd);
        }
    }
    // One of them was the directory handle read_dir had open; drop the ones
    // that are no longer open now that it is closed.
    // On libc: nix's fcntl takes a BorrowedFd, which must not be made from
    // a number that may no longer be open.
    fds.retain(|&fd| {
        // SAFETY: F_GETFD on any int is harmless; it fails with EBADF if closed.
        unsafe { libc::fcntl(fd, libc::F_GETFD) >= 0 }
    });
    fds.sort_unstable();
    Ok(fds)
}

/// Makes `fd`'s number refer to `new`'s open file description (closing
/// `new`'s number), close-on-exec: `dup3`, which swaps the description
/// atomically, so the number is never closed or free for another open.
pub fn replace_description(fd: &OwnedFd, new: OwnedFd) -> io::Result<()> {
    loop {
        // SAFETY: both numbers are open fds the caller owns (`fd` is borrowed
        // for the call, `new` is owned until the end of this function); dup3
        // only changes what `fd`'s number refers to, and `fd` stays its
        // owner. No memory is involved.
        let r = unsafe { libc::dup3(new.as_raw_fd(), fd.as_raw_fd(), libc::O_CLOEXEC) };
        if r >= 0 {
            return Ok(());
        }
        let e = io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EINTR) {
            return Err(e);
        }
    }
}
