//! FIFOs (named pipes): create one with an exact mode, open one without
//! following a symlink, tell whether a writer holds one open without taking
//! its data, and lock one across unrelated processes.
//!
//! System calls: `mkfifo`, `open` (always `O_CLOEXEC | O_NOFOLLOW`,
//! `O_NOCTTY` and `O_NONBLOCK` for the read and write ends), `fstat`/`lstat`,
//! `stat` (of the directory), `chmod` on `/proc/self/fd/N`,
//! `tee(SPLICE_F_NONBLOCK)`, `flock`.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};
use std::path::Path;

use nix::fcntl::{AT_FDCWD, OFlag};
use nix::sys::stat::{FchmodatFlags, FileStat, Mode, SFlag};

use super::retry;

/// Which end of a FIFO to open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// `O_RDONLY`.
    Read,
    /// `O_WRONLY`.
    Write,
}

/// What kind of file something is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A FIFO (named pipe).
    Fifo,
    /// A regular file.
    Regular,
    /// A directory.
    Directory,
    /// A symbolic link (only `lstat` and `O_PATH | O_NOFOLLOW` see these).
    Symlink,
    /// A socket.
    Socket,
    /// A device or anything else.
    Other,
}

/// The facts about a file that the FIFO code acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stat {
    /// What kind of file it is.
    pub kind: Kind,
    /// Device and inode: which file it is.
    pub id: (u64, u64),
    /// Permission bits (`st_mode & 0o7777`).
    pub mode: u32,
    /// Owner.
    pub uid: u32,
}

fn to_stat(st: &FileStat) -> Stat {
    let fmt = SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits());
    let kind = match fmt {
        SFlag::S_IFIFO => Kind::Fifo,
        SFlag::S_IFREG => Kind::Regular,
        SFlag::S_IFDIR => Kind::Directory,
        SFlag::S_IFLNK => Kind::Symlink,
        SFlag::S_IFSOCK => Kind::Socket,
        _ => Kind::Other,
    };
    Stat {
        kind,
        id: (st.st_dev, st.st_ino),
        mode: st.st_mode & 0o7777,
        uid: st.st_uid,
    }
}

/// `fstat(2)` of an open fd (an `O_PATH` fd included).
pub fn fstat(fd: BorrowedFd<'_>) -> io::Result<Stat> {
    Ok(to_stat(&nix::sys::stat::fstat(fd)?))
}

/// `lstat(2)`: the path itself, a symlink not followed.
pub fn lstat(path: &Path) -> io::Result<Stat> {
    Ok(to_stat(&nix::sys::stat::lstat(path)?))
}

/// `stat(2)`: the file `path` names, symlinks followed (for directories).
pub fn stat(path: &Path) -> io::Result<Stat> {
    Ok(to_stat(&nix::sys::stat::stat(path)?))
}

/// `mkfifo(path, mode)`. The umask applies; see [`chmod_fd`].
pub fn mkfifo(path: &Path, mode: u32) -> io::Result<()> {
    Ok(nix::unistd::mkfifo(path, Mode::from_bits_truncate(mode))?)
}

/// Opens the directory entry `path` itself with `O_PATH | O_NOFOLLOW`: no
/// read or write access, no blocking, no side effects, and a symlink is
/// opened as the link rather than followed.
pub fn open_path(path: &Path) -> io::Result<OwnedFd> {
    Ok(nix::fcntl::open(
        path,
        OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )?)
}

/// Opens `path` for `access` with `O_NONBLOCK | O_NOFOLLOW | O_NOCTTY |
/// O_CLOEXEC`, so that opening a FIFO never blocks and a symlink as the last
/// component fails with `ELOOP`. A writer with no reader fails with `ENXIO`.
pub fn open_nonblocking(path: &Path, access: Access) -> io::Result<OwnedFd> {
    let acc = match access {
        Access::Read => OFlag::O_RDONLY,
        Access::Write => OFlag::O_WRONLY,
    };
    let flags = acc | OFlag::O_NONBLOCK | OFlag::O_NOFOLLOW | OFlag::O_NOCTTY | OFlag::O_CLOEXEC;
    retry(|| Ok(nix::fcntl::open(path, flags, Mode::empty())?))
}

/// Opens the file `fd` refers to once more, as a new open file description,
/// through `/proc/self/fd/N`: the same inode whatever has happened to its
/// path since. Same flags as [`open_nonblocking`] minus `O_NOFOLLOW` (the
/// magic link must be followed; it cannot lead anywhere else).
pub fn reopen_nonblocking(fd: BorrowedFd<'_>, access: Access) -> io::Result<OwnedFd> {
    let acc = match access {
        Access::Read => OFlag::O_RDONLY,
        Access::Write => OFlag::O_WRONLY,
    };
    let flags = acc | OFlag::O_NONBLOCK | OFlag::O_NOCTTY | OFlag::O_CLOEXEC;
    let link = format!("/proc/self/fd/{}", fd.as_raw_fd());
    retry(|| Ok(nix::fcntl::open(link.as_str(), flags, Mode::empty())?))
}

/// Sets the permission bits of the file `fd` refers to (an `O_PATH` fd
/// works, which `fchmod` refuses), by `chmod` on `/proc/self/fd/N`: it acts
/// on that inode, never on whatever the original path names now.
pub fn chmod_fd(fd: BorrowedFd<'_>, mode: u32) -> io::Result<()> {
    let link = format!("/proc/self/fd/{}", fd.as_raw_fd());
    Ok(nix::sys::stat::fchmodat(
        AT_FDCWD,
        link.as_str(),
        Mode::from_bits_truncate(mode),
        FchmodatFlags::FollowSymlink,
    )?)
}

/// The effective user id of this process.
pub fn geteuid() -> u32 {
    nix::unistd::geteuid().as_raw()
}

/// What [`probe_writer`] found on a FIFO's read end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Probe {
    /// Data is waiting (some writer has written).
    Data,
    /// Nothing is waiting, but a writer holds the FIFO open.
    Writer,
    /// Nothing is waiting and no writer holds the FIFO open.
    Nobody,
}

/// Tells whether a writer holds the FIFO behind `fifo` (a read end) open,
/// without consuming a byte: `tee(fifo, scratch, 1, SPLICE_F_NONBLOCK)`
/// copies rather than takes, and on an empty pipe returns 0 when there is no
/// writer and fails with `EAGAIN` when there is one. `scratch` is the write
/// end of an empty pipe of the caller's; it receives at most one byte.
pub fn probe_writer(fifo: BorrowedFd<'_>, scratch: BorrowedFd<'_>) -> io::Result<Probe> {
    use nix::fcntl::{SpliceFFlags, tee};
    let r = retry(|| Ok(tee(fifo, scratch, 1, SpliceFFlags::SPLICE_F_NONBLOCK)?));
    match r {
        Ok(0) => Ok(Probe::Nobody),
        Ok(_) => Ok(Probe::Data),
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(Probe::Writer),
        Err(e) => Err(e),
    }
}

// flock stays on libc: nix's only undeprecated flock is the owning guard
// `Flock<T>`, which takes the fd by value and panics in `drop` if unlocking
// fails. These locks are taken on a borrowed fd for one message at a time
// (the fd stays in its writer), an unlock failure is an error to return, and
// the shared lock of a small-messages writer must travel with `into_fd`.

/// `flock(fd, LOCK_EX)`: waits for the exclusive lock on the file `fd`
/// refers to, retrying on `EINTR`. The lock belongs to the open file
/// description (shared with `dup`s and across `fork`) and is released by
/// [`unlock`], or when the last fd of that description is closed, including
/// by the kernel when its process dies.
pub fn lock_exclusive(fd: BorrowedFd<'_>) -> io::Result<()> {
    retry(|| {
        // SAFETY: flock(2) takes an fd and an operation; no memory involved.
        let r = unsafe { libc::flock(fd.as_raw_fd(), libc::LOCK_EX) };
        if r < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(())
        }
    })
}

/// `flock(fd, LOCK_SH)`: waits for a shared lock on the file `fd` refers
/// to (many holders at once; excludes [`lock_exclusive`]), retrying on
/// `EINTR`. Same ownership and release rules as [`lock_exclusive`].
pub fn lock_shared(fd: BorrowedFd<'_>) -> io::Result<()> {
    retry(|| {
        // SAFETY: flock(2) takes an fd and an operation; no memory involved.
        let r = unsafe { libc::flock(fd.as_raw_fd(), libc::LOCK_SH) };
        if r < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(())
        }
    })
}

/// `flock(fd, LOCK_UN)`.
pub fn unlock(fd: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: flock(2) takes an fd and an operation; no memory involved.
    let r = unsafe { libc::flock(fd.as_raw_fd(), libc::LOCK_UN) };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}
