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

pub mod shm;

use std::io::{self, IoSlice};
use std::mem::MaybeUninit;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use nix::fcntl::{FcntlArg, FdFlag, OFlag, fcntl};
use nix::unistd::Pid as NixPid;

pub mod fifo;

/// The instant `timeout` from now. A timeout too large to add is as good
/// as none: it is capped a century away.
pub fn deadline_after(timeout: Duration) -> Instant {
    Instant::now()
        .checked_add(timeout)
        .unwrap_or_else(|| Instant::now() + Duration::from_secs(100 * 365 * 24 * 3600))
}

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

fn cvt(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

fn cvt_size(ret: libc::ssize_t) -> io::Result<usize> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret as usize)
    }
}

/// Retries `f` while it fails with `EINTR`.
fn retry<T>(mut f: impl FnMut() -> io::Result<T>) -> io::Result<T> {
    loop {
        match f() {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            other => return other,
        }
    }
}

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

/// `read(2)` into `buf`, retrying on `EINTR`. `Ok(0)` is end of stream.
pub fn read(fd: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<usize> {
    retry(|| {
        // SAFETY: `buf` is valid for writes of `buf.len()` bytes.
        cvt_size(unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) })
    })
}

/// Reads at most `max` bytes into the spare capacity of `buf` (reserving
/// them first) and extends its length by what was read, without zeroing the
/// memory first. Retries on `EINTR`. `Ok(0)` is end of stream.
pub fn read_append(fd: BorrowedFd<'_>, buf: &mut Vec<u8>, max: usize) -> io::Result<usize> {
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
    without_sigpipe(|| {
        retry(|| {
            // SAFETY: `buf` is valid for reads of `buf.len()` bytes.
            cvt_size(unsafe { libc::write(fd.as_raw_fd(), buf.as_ptr().cast(), buf.len()) })
        })
    })
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
    let iovcnt = slices.len().min(libc::UIO_MAXIOV as usize);
    if let [one] = slices {
        // One slice (a small frame, or the tail of a large one): plain
        // write/send, which spares the kernel copying in an iovec array.
        let (ptr, len) = (one.as_ptr().cast(), one.len());
        return match kind {
            WriteKind::Pipe => {
                // SAFETY: `ptr` points at `len` bytes that `one` borrows.
                cvt_size(unsafe { libc::write(fd.as_raw_fd(), ptr, len) })
            }
            WriteKind::Socket => {
                // SAFETY: `ptr` points at `len` bytes that `one` borrows.
                cvt_size(unsafe { libc::send(fd.as_raw_fd(), ptr, len, libc::MSG_NOSIGNAL) })
            }
        };
    }
    match kind {
        WriteKind::Pipe => {
            // SAFETY: IoSlice is ABI-compatible with iovec, and every slice
            // borrows memory valid for reads for the whole call.
            cvt_size(unsafe {
                libc::writev(
                    fd.as_raw_fd(),
                    slices.as_ptr().cast(),
                    iovcnt as libc::c_int,
                )
            })
        }
        WriteKind::Socket => {
            // SAFETY: a zeroed msghdr is valid (no name, no control data).
            let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
            msg.msg_iov = slices.as_ptr() as *mut libc::iovec;
            msg.msg_iovlen = iovcnt as _;
            // SAFETY: `msg` points at `iovcnt` valid iovecs (IoSlice is
            // ABI-compatible with iovec) that live across the call.
            cvt_size(unsafe { libc::sendmsg(fd.as_raw_fd(), &msg, libc::MSG_NOSIGNAL) })
        }
    }
}

/// Set once this process has seen `SIGPIPE` ignored; cleared in every
/// forked child and whenever this module changes a signal's disposition.
static SIGPIPE_IGNORED: AtomicBool = AtomicBool::new(false);
static FORGET_IN_CHILDREN: AtomicU8 = AtomicU8::new(ATFORK_NONE);

const ATFORK_NONE: u8 = 0;
const ATFORK_REGISTERING: u8 = 1;
const ATFORK_REGISTERED: u8 = 2;
const ATFORK_FAILED: u8 = 3;

/// Registers `handler` as a `pthread_atfork` child handler once, and says
/// whether it is registered. Never waits: a `Once` would, and a thread of a
/// parent that forked while another thread was inside the `Once` would
/// leave the child waiting forever on its copy. A caller that finds the
/// registration under way elsewhere gets `false` and simply does not cache.
fn atfork_child_handler(state: &AtomicU8, handler: extern "C" fn()) -> bool {
    match state.compare_exchange(
        ATFORK_NONE,
        ATFORK_REGISTERING,
        Ordering::SeqCst,
        Ordering::SeqCst,
    ) {
        Ok(_) => {
            // SAFETY: the handlers passed here only store to an atomic, which
            // is async-signal-safe and allocation-free, as a handler run in a
            // freshly forked child must be; they are plain functions that
            // live forever. A failure (ENOMEM) registers nothing.
            let ok = unsafe { libc::pthread_atfork(None, None, Some(handler)) } == 0;
            state.store(
                if ok { ATFORK_REGISTERED } else { ATFORK_FAILED },
                Ordering::SeqCst,
            );
            ok
        }
        Err(current) => current == ATFORK_REGISTERED,
    }
}

extern "C" fn forget_sigpipe_in_child() {
    // Async-signal-safe: one atomic store.
    SIGPIPE_IGNORED.store(false, Ordering::Relaxed);
}

/// Forgets what the pipe writers know about `SIGPIPE`'s disposition.
/// Call it after changing `SIGPIPE` from "ignore" to anything else by other
/// means than this module (see the source of `without_sigpipe`).
pub fn forget_sigpipe_disposition() {
    SIGPIPE_IGNORED.store(false, Ordering::SeqCst);
}

/// True if `SIGPIPE` is ignored, from the cache when this process has
/// already seen it ignored, else from one `sigaction` query.
fn sigpipe_ignored() -> bool {
    if SIGPIPE_IGNORED.load(Ordering::Relaxed) {
        return true;
    }
    // SAFETY: a zeroed sigaction is a valid out-parameter; passing a null new
    // action only queries the current disposition.
    let ignored = unsafe {
        let mut old: libc::sigaction = std::mem::zeroed();
        libc::sigaction(libc::SIGPIPE, std::ptr::null(), &mut old) == 0
            && old.sa_sigaction == libc::SIG_IGN
    };
    if ignored {
        // The fork handler is registered before the cache is first set, so no
        // child can ever inherit a set cache without the handler clearing it.
        if atfork_child_handler(&FORGET_IN_CHILDREN, forget_sigpipe_in_child) {
            SIGPIPE_IGNORED.store(true, Ordering::Relaxed);
        }
    }
    ignored
}

/// Runs `f` (a write to a pipe) so that `EPIPE` cannot kill the process.
///
/// If the process ignores `SIGPIPE` (every Rust `main` and every Python
/// interpreter does) `f` just runs. Otherwise `SIGPIPE` is blocked in this
/// thread around `f`, and a `SIGPIPE` that `f` raised is consumed before the
/// mask is restored, so the thread never sees it.
///
/// # Why the disposition may be cached
/// Asking the kernel (`sigaction`) costs about 170 ns here, as much as the
/// 64-byte `writev` it guards, and measured as a 25-40 % loss of small-message
/// throughput. So a process remembers, in one atomic flag, that it has seen
/// `SIGPIPE` ignored. The flag is only ever a shortcut to "ignored", and it is
/// cleared (so the next write asks the kernel again):
/// 1. in every child of `fork()`, by a `pthread_atfork` child handler,
///    registered before the flag is first set: a child that resets `SIGPIPE`
///    to the default before writing (as a program about to `exec` does, and
///    as our tests do) is protected as before;
/// 2. whenever this module changes a signal's disposition
///    ([`reset_signal_default`], [`install_noop_handler`] and its restore).
///
/// The one case not covered: code in the *same* process that switches
/// `SIGPIPE` from ignored to the default action with its own `sigaction`
/// after a pipe write, then writes to a pipe whose reader is gone. It must
/// call [`forget_sigpipe_disposition`] after the switch. A switch to a
/// handler of its own is harmless (the handler runs, the write still
/// returns `EPIPE`). A switch the other way (to ignored) is always seen.
fn without_sigpipe<T>(f: impl FnOnce() -> io::Result<T>) -> io::Result<T> {
    let ignored = sigpipe_ignored();
    if ignored {
        return f();
    }
    // SAFETY: sigset_t is plain data; sigemptyset/sigaddset initialize it.
    let (set, old_mask) = unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        let mut old_mask: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGPIPE);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, &mut old_mask);
        (set, old_mask)
    };
    // SAFETY: old_mask was filled in by pthread_sigmask above.
    let was_blocked = unsafe { libc::sigismember(&old_mask, libc::SIGPIPE) == 1 };
    let result = f();
    if !was_blocked {
        if let Err(e) = &result {
            if e.raw_os_error() == Some(libc::EPIPE) {
                let zero = libc::timespec {
                    tv_sec: 0,
                    tv_nsec: 0,
                };
                // SAFETY: `set` holds SIGPIPE, which is blocked in this thread,
                // so sigtimedwait only dequeues the signal our write raised.
                unsafe { libc::sigtimedwait(&set, std::ptr::null_mut(), &zero) };
            }
        }
        // SAFETY: restores the mask saved above.
        unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &old_mask, std::ptr::null_mut()) };
    }
    result
}

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
    fds.retain(|&fd| {
        // SAFETY: F_GETFD on any int is harmless; it fails with EBADF if closed.
        unsafe { libc::fcntl(fd, libc::F_GETFD) >= 0 }
    });
    fds.sort_unstable();
    Ok(fds)
}

// ---------------------------------------------------------------------------
// Processes: fork, exit, signals, reaping. Used by `harness::fork`.
// ---------------------------------------------------------------------------

/// A process id.
pub type Pid = libc::pid_t;

/// Forks. In the child, puts it in a process group of its own, asks the
/// kernel to SIGKILL it if the parent dies, runs `child`, and ends with
/// `_exit(code)` where `code` is what `child` returned: the child never
/// returns into the caller, never runs atexit handlers and never flushes the
/// parent's stdio buffers. In the parent, returns the child's pid.
///
/// `child` runs in a copy of a process that may have had other threads; only
/// the forking thread exists in the child, and any lock another thread held
/// stays held. `child` must therefore not print, touch stdout/stderr locks,
/// or use test-framework state (see the fork rules in the crate docs).
/// Memory allocation is fine: glibc's malloc is fork-safe.
pub fn fork_run(child: impl FnOnce() -> i32) -> io::Result<Pid> {
    // SAFETY: fork has no memory-safety preconditions of its own; the hazards
    // of a multi-threaded parent (held locks) are confined to the child, which
    // runs only `child` and then `_exit`s without unwinding into the caller.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(io::Error::last_os_error());
    }
    if pid == 0 {
        let _ = nix::unistd::setpgid(NixPid::from_raw(0), NixPid::from_raw(0));
        let _ = nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL);
        let code = child();
        exit_now(code)
    }
    Ok(pid)
}

/// `_exit(code)`: ends this process at once, without atexit handlers, stdio
/// flushing or unwinding. The only way a forked child should end.
pub fn exit_now(code: i32) -> ! {
    // SAFETY: _exit is async-signal-safe and always safe to call.
    unsafe { libc::_exit(code) }
}

/// This process's id.
pub fn getpid() -> Pid {
    nix::unistd::getpid().as_raw()
}

/// Whether `pid` is a live process: it exists in `/proc` and is neither a
/// zombie (`Z`: dead, not yet reaped) nor dead (`X`). A pid can be reused
/// after its process is reaped; the answer is about whoever holds it now.
pub fn process_alive(pid: Pid) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    // `pid (comm) S ...`: comm may hold spaces and parentheses; the state
    // follows the last `)`.
    match stat
        .rfind(')')
        .and_then(|i| stat[i + 1..].trim_start().chars().next())
    {
        Some('Z' | 'X' | 'x') | None => false,
        Some(_) => true,
    }
}

/// This process's id without a system call after the first: cached, and
/// forgotten in the child of every `fork()` by a `pthread_atfork` handler
/// (registered on first use), so a forked child never sees its parent's.
pub fn cached_pid() -> Pid {
    use std::sync::atomic::AtomicI32;
    static PID: AtomicI32 = AtomicI32::new(0);
    static ATFORK: AtomicU8 = AtomicU8::new(ATFORK_NONE);
    extern "C" fn forget_pid() {
        PID.store(0, Ordering::Relaxed);
    }
    let pid = PID.load(Ordering::Relaxed);
    if pid != 0 {
        return pid;
    }
    let pid = getpid();
    if atfork_child_handler(&ATFORK, forget_pid) {
        PID.store(pid, Ordering::Relaxed);
    }
    pid
}

/// A pidfd for `pid` (`pidfd_open`): readable once the process has exited.
pub fn pidfd_open(pid: Pid) -> io::Result<OwnedFd> {
    // SAFETY: pidfd_open takes a pid and flags and returns a new fd or -1.
    let ret = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the syscall returned a new fd that nobody else owns; pidfds are
    // always close-on-exec.
    Ok(unsafe { OwnedFd::from_raw_fd(ret as RawFd) })
}

/// Sends `signal` to the process group `pgid` (its leader's pid).
pub fn kill_group(pgid: Pid, signal: libc::c_int) -> io::Result<()> {
    Ok(nix::sys::signal::killpg(
        NixPid::from_raw(pgid),
        to_signal(signal)?,
    )?)
}

/// Sends `signal` to the process `pid`.
pub fn kill(pid: Pid, signal: libc::c_int) -> io::Result<()> {
    Ok(nix::sys::signal::kill(
        NixPid::from_raw(pid),
        to_signal(signal)?,
    )?)
}

fn to_signal(signal: libc::c_int) -> io::Result<nix::sys::signal::Signal> {
    Ok(nix::sys::signal::Signal::try_from(signal)?)
}

/// How a reaped process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
    /// `exit`/`_exit` with this code.
    Code(i32),
    /// Killed by this signal.
    Signal(i32),
}

/// Reaps `pid`. `block == false` returns `Ok(None)` if it is still running.
pub fn waitpid(pid: Pid, block: bool) -> io::Result<Option<ExitStatus>> {
    use nix::sys::wait::{WaitPidFlag, WaitStatus};
    let flags = (!block).then_some(WaitPidFlag::WNOHANG);
    loop {
        return match retry(|| Ok(nix::sys::wait::waitpid(NixPid::from_raw(pid), flags)?))? {
            WaitStatus::StillAlive => Ok(None),
            WaitStatus::Exited(_, code) => Ok(Some(ExitStatus::Code(code))),
            WaitStatus::Signaled(_, sig, _) => Ok(Some(ExitStatus::Signal(sig as i32))),
            // Stopped/continued children are not ended: wait on.
            _ if block => continue,
            _ => Ok(None),
        };
    }
}

/// Installs a handler for `signal` that only counts (see
/// [`noop_handler_runs`]), without `SA_RESTART`, so every blocking system call
/// it interrupts fails with `EINTR`. Used by signal-storm tests; returns the
/// previous action so it can be restored.
pub fn install_noop_handler(signal: libc::c_int) -> io::Result<SavedAction> {
    extern "C" fn noop(_: libc::c_int) {
        // An atomic add on a lock-free integer is async-signal-safe.
        NOOP_HANDLER_RUNS.fetch_add(1, Ordering::Relaxed);
    }
    // SAFETY: a zeroed sigaction is valid; we fill in a handler that is
    // async-signal-safe (one atomic add, no locks, no allocation) and an
    // empty mask.
    unsafe {
        let mut new: libc::sigaction = std::mem::zeroed();
        new.sa_sigaction = noop as extern "C" fn(libc::c_int) as libc::sighandler_t;
        libc::sigemptyset(&mut new.sa_mask);
        new.sa_flags = 0;
        let mut old: libc::sigaction = std::mem::zeroed();
        cvt(libc::sigaction(signal, &new, &mut old))?;
        forget_sigpipe_disposition();
        Ok(SavedAction { signal, old })
    }
}

static NOOP_HANDLER_RUNS: AtomicU64 = AtomicU64::new(0);

/// How many times, in this process, a handler installed by
/// [`install_noop_handler`] has run (for any signal). Signal-storm tests read
/// it before and after a transfer to prove the signals really arrived. A
/// forked child starts with the parent's count and counts on its own.
pub fn noop_handler_runs() -> u64 {
    NOOP_HANDLER_RUNS.load(Ordering::Relaxed)
}

/// A signal's previous action, restored on drop.
pub struct SavedAction {
    signal: libc::c_int,
    old: libc::sigaction,
}

impl Drop for SavedAction {
    fn drop(&mut self) {
        // SAFETY: `old` was filled in by sigaction and is a valid action.
        unsafe { libc::sigaction(self.signal, &self.old, std::ptr::null_mut()) };
        forget_sigpipe_disposition();
    }
}

/// Arms `ITIMER_REAL` to deliver `SIGALRM` to this process every `interval`
/// (zero disarms it).
pub fn set_interval_timer(interval: Duration) -> io::Result<()> {
    let tv = libc::timeval {
        tv_sec: interval.as_secs() as libc::time_t,
        tv_usec: interval.subsec_micros() as libc::suseconds_t,
    };
    let it = libc::itimerval {
        it_interval: tv,
        it_value: tv,
    };
    // SAFETY: `it` is a valid itimerval; the old value is not requested.
    cvt(unsafe { libc::setitimer(libc::ITIMER_REAL, &it, std::ptr::null_mut()) }).map(drop)
}

/// Restores the default action of `signal` (for `SIGPIPE`: kill the
/// process). Tests use it to prove a write can never raise `SIGPIPE`.
pub fn reset_signal_default(signal: libc::c_int) -> io::Result<()> {
    use nix::sys::signal::{SigHandler, signal as set_signal};
    // SAFETY: SIG_DFL installs no handler code, so no handler can run with
    // broken invariants; this only changes the disposition.
    unsafe { set_signal(to_signal(signal)?, SigHandler::SigDfl) }?;
    // After the change: a write racing with it could re-learn "ignored".
    forget_sigpipe_disposition();
    Ok(())
}

// ---------------------------------------------------------------------------
// Clocks and CPU affinity. Used by `bench`.
// ---------------------------------------------------------------------------

/// `CLOCK_MONOTONIC` in nanoseconds. One clock for every process on the
/// machine, so a time taken in one forked process can be subtracted from a
/// time taken in another.
pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, exclusively borrowed timespec to fill in;
    // CLOCK_MONOTONIC always exists on Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Pins the calling thread to CPU `cpu` (`sched_setaffinity`); a forked
/// child inherits the pinning.
pub fn pin_to_cpu(cpu: usize) -> io::Result<()> {
    // SAFETY: cpu_set_t is plain data; an all-zero set is a valid empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    if cpu >= libc::CPU_SETSIZE as usize {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "no such CPU"));
    }
    // SAFETY: `cpu` is below CPU_SETSIZE, so the bit is inside `set`.
    unsafe { libc::CPU_SET(cpu, &mut set) };
    // SAFETY: `set` is a valid cpu_set_t of the size passed; pid 0 is the
    // calling thread.
    cvt(unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) })
        .map(drop)
}

/// The CPUs this thread may run on (`sched_getaffinity`).
pub fn allowed_cpus() -> io::Result<Vec<usize>> {
    // SAFETY: cpu_set_t is plain data; an all-zero set is a valid empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is a valid, exclusively borrowed cpu_set_t of that size.
    cvt(unsafe { libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) })?;
    Ok((0..libc::CPU_SETSIZE as usize)
        // SAFETY: every `c` is below CPU_SETSIZE, inside `set`.
        .filter(|&c| unsafe { libc::CPU_ISSET(c, &set) })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The regression behind `atfork_child_handler`: with a `Once`, a child
    /// forked while another thread of the parent was registering waited
    /// forever in its first pipe write (seen in tests/fifo.rs under load).
    /// A registration under way elsewhere must answer at once, uncached.
    #[test]
    fn a_registration_under_way_elsewhere_never_waits() {
        extern "C" fn nothing() {}
        let state = AtomicU8::new(ATFORK_REGISTERING);
        let start = Instant::now();
        assert!(!atfork_child_handler(&state, nothing));
        assert!(start.elapsed() < Duration::from_secs(1));
        assert_eq!(state.load(Ordering::SeqCst), ATFORK_REGISTERING);
        let done = AtomicU8::new(ATFORK_REGISTERED);
        assert!(atfork_child_handler(&done, nothing));
        let failed = AtomicU8::new(ATFORK_FAILED);
        assert!(!atfork_child_handler(&failed, nothing));
    }
    use crate::harness::fork;
    use std::os::fd::AsFd;

    #[test]
    fn the_cached_sigpipe_disposition_is_forgotten_in_a_child_and_after_a_reset() {
        let _serial = fork::serial();
        // A Rust test binary ignores SIGPIPE: one write teaches the cache.
        let (live_r, live_w) = pipe(false).unwrap();
        write_all_vectored(live_w.as_fd(), WriteKind::Pipe, &[b"x"]).unwrap();
        assert!(SIGPIPE_IGNORED.load(Ordering::SeqCst));
        let (dead_r, dead_w) = pipe(false).unwrap();
        drop(dead_r);
        let report = fork::run(Duration::from_secs(10), move || {
            let forgotten_by_fork = !SIGPIPE_IGNORED.load(Ordering::SeqCst);
            // Learn "ignored" again in the child, then switch to the default
            // action: the next write must not trust the cache.
            write_all_vectored(live_w.as_fd(), WriteKind::Pipe, &[b"y"]).unwrap();
            let relearned = SIGPIPE_IGNORED.load(Ordering::SeqCst);
            reset_signal_default(libc::SIGPIPE).unwrap();
            let e = write_all_vectored(dead_w.as_fd(), WriteKind::Pipe, &[b"z"]).unwrap_err();
            format!("{forgotten_by_fork} {relearned} {:?}", e.raw_os_error()).into_bytes()
        })
        .unwrap();
        assert!(report.is_success(), "child {}", report.outcome);
        assert_eq!(
            String::from_utf8(report.output).unwrap(),
            format!("true true Some({})", libc::EPIPE)
        );
        drop(live_r);
    }
}
