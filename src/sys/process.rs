//! Processes: fork, exit, pids, signals to other processes, reaping, CPU
//! affinity. Used by `harness::fork` and `bench`.

use std::io;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicU8, Ordering};

use nix::unistd::Pid as NixPid;

use super::retry;

pub(super) const ATFORK_NONE: u8 = 0;
pub(super) const ATFORK_REGISTERING: u8 = 1;
pub(super) const ATFORK_REGISTERED: u8 = 2;
pub(super) const ATFORK_FAILED: u8 = 3;

/// Registers `handler` as a `pthread_atfork` child handler once, and says
/// whether it is registered. Never waits: a `Once` would, and a thread of a
/// parent that forked while another thread was inside the `Once` would
/// leave the child waiting forever on its copy. A caller that finds the
/// registration under way elsewhere gets `false` and simply does not cache.
pub(super) fn atfork_child_handler(state: &AtomicU8, handler: extern "C" fn()) -> bool {
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
    let pid = match unsafe { nix::unistd::fork() }? {
        nix::unistd::ForkResult::Parent { child } => child.as_raw(),
        nix::unistd::ForkResult::Child => 0,
    };
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
    // On libc: nix has no `_exit`.
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
    // On libc: nix has no pidfd_open.
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

pub(super) fn to_signal(signal: libc::c_int) -> io::Result<nix::sys::signal::Signal> {
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

/// Pins the calling thread to CPU `cpu` (`sched_setaffinity`); a forked
/// child inherits the pinning.
pub fn pin_to_cpu(cpu: usize) -> io::Result<()> {
    use nix::sched::{CpuSet, sched_setaffinity};
    let mut set = CpuSet::new();
    // Fails with EINVAL for a CPU at or past CPU_SETSIZE.
    set.set(cpu)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "no such CPU"))?;
    // Pid 0 is the calling thread.
    Ok(sched_setaffinity(NixPid::from_raw(0), &set)?)
}

/// The CPUs this thread may run on (`sched_getaffinity`).
pub fn allowed_cpus() -> io::Result<Vec<usize>> {
    use nix::sched::{CpuSet, sched_getaffinity};
    let set = sched_getaffinity(NixPid::from_raw(0))?;
    Ok((0..CpuSet::count())
        .filter(|&c| set.is_set(c).unwrap_or(false))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

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
}
