//! What `/proc` says about processes: what one is blocked in (and, on a
//! pipe, who keeps its write end open), which children are unreaped, and
//! whether every process of a run is blocked with nothing moving.

use std::time::{Duration, Instant};

use crate::sys::Pid;

/// Watches for every live process being blocked with no progress.
pub(super) struct StallWatch {
    pub(super) window: Duration,
    /// Since when nothing has moved.
    pub(super) since: Instant,
    pub(super) progress: u64,
    /// Every thread's context-switch counts, if every one was blocked.
    pub(super) snapshot: Option<Vec<(Pid, u64)>>,
}

impl StallWatch {
    /// Takes a look; returns how long nothing has moved once that is the
    /// whole window.
    pub(super) fn check(&mut self, progress: u64, live: &[Pid]) -> Option<Duration> {
        let snapshot = blocked_snapshot(live);
        if progress != self.progress || snapshot.is_none() || snapshot != self.snapshot {
            self.progress = progress;
            self.snapshot = snapshot;
            self.since = Instant::now();
            return None;
        }
        let still = self.since.elapsed();
        (still >= self.window).then_some(still)
    }
}

/// If every thread of `pids` and of their descendants is asleep in a
/// system call other than a timed sleep: their context-switch counts.
/// `None` if any is running, runnable, stopped, in disk wait or sleeping
/// on a timer, or cannot be read.
fn blocked_snapshot(pids: &[Pid]) -> Option<Vec<(Pid, u64)>> {
    let mut todo = pids.to_vec();
    let mut seen = Vec::new();
    while let Some(pid) = todo.pop() {
        let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).ok()?;
        for task in tasks.flatten() {
            let dir = task.path();
            let stat = std::fs::read_to_string(dir.join("stat")).ok()?;
            let state = stat.rsplit_once(')')?.1.split_whitespace().next()?;
            if state != "S" {
                return None;
            }
            let syscall = std::fs::read_to_string(dir.join("syscall")).unwrap_or_default();
            let nr = syscall.split_whitespace().next()?.parse::<i64>().ok()?;
            if matches!(nr, 35 | 230) {
                return None; // nanosleep, clock_nanosleep: it will wake
            }
            let status = std::fs::read_to_string(dir.join("status")).ok()?;
            let switches: u64 = status
                .lines()
                .filter(|l| l.contains("ctxt_switches:"))
                .filter_map(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
                .sum();
            let tid = task.file_name().to_str()?.parse::<Pid>().ok()?;
            seen.push((tid, switches));
            if let Ok(children) = std::fs::read_to_string(dir.join("children")) {
                todo.extend(
                    children
                        .split_whitespace()
                        .filter_map(|p| p.parse::<Pid>().ok()),
                );
            }
        }
    }
    seen.sort_unstable();
    Some(seen)
}

/// The pids of this process's children that have not been reaped (alive or
/// zombie), from `/proc/self/task/*/children`. A test that has waited for
/// everything it forked expects this to be empty.
pub fn unreaped_children() -> Vec<Pid> {
    let mut pids = Vec::new();
    if let Ok(tasks) = std::fs::read_dir("/proc/self/task") {
        for task in tasks.flatten() {
            let path = task.path().join("children");
            if let Ok(list) = std::fs::read_to_string(path) {
                pids.extend(
                    list.split_whitespace()
                        .filter_map(|p| p.parse::<Pid>().ok()),
                );
            }
        }
    }
    pids.sort_unstable();
    pids
}

/// What `pid` is blocked in, from `/proc/PID/syscall` and `/proc/PID/wchan`,
/// e.g. `read(fd 5) [pipe_read]`. For a read on a pipe, also who keeps the
/// pipe's write end open, so no end of stream can come, e.g. `read(fd 5)
/// [pipe_read]; the write end of pipe:[123] is still open in pid 42 (the
/// reader itself)`.
pub fn blocked_in(pid: Pid) -> Option<String> {
    let wchan = std::fs::read_to_string(format!("/proc/{pid}/wchan"))
        .ok()
        .filter(|w| !w.is_empty() && w != "0");
    let syscall = std::fs::read_to_string(format!("/proc/{pid}/syscall")).ok();
    let call = syscall.as_deref().and_then(describe_syscall);
    let mut out = match (&call, wchan) {
        (Some(c), Some(w)) => format!("{c} [{w}]"),
        (Some(c), None) => c.clone(),
        (None, Some(w)) => format!("[{w}]"),
        // Between two bounded waits (a queue's wait wakes every 10 ms), a
        // waiter may be caught running: still worth naming a held token.
        (None, None) if producer_token_held(pid) => "no system call (it was running)".to_string(),
        (None, None) => return None,
    };
    let read_fd = syscall.as_deref().and_then(|line| {
        let mut parts = line.split_whitespace();
        let nr: i64 = parts.next()?.parse().ok()?;
        let fd = i64::from_str_radix(parts.next()?.trim_start_matches("0x"), 16).ok()?;
        matches!(nr, 0 | 19).then_some(fd)
    });
    if let Some(fd) = read_fd {
        if let Some(holders) = write_end_holders(pid, fd) {
            out.push_str(&holders);
        }
    }
    if producer_token_held(pid) {
        out.push_str(
            "; it holds a Queue's producer token: it counts as a producer until it \
             calls close_producer(), so while it waits that queue's consumers cannot \
             see Closed (a process that only takes from a queue must call \
             close_producer())",
        );
    }
    Some(out)
}

/// True if `pid` holds the write end of a queue's producers pipe (see
/// `queue::is_producers_pipe`), i.e. it still counts as a producer.
fn producer_token_held(pid: Pid) -> bool {
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return false;
    };
    fds.flatten().any(|fd| {
        let Some(inode) = std::fs::read_link(fd.path()).ok().and_then(|t| {
            let t = t
                .to_str()?
                .strip_prefix("pipe:[")?
                .strip_suffix(']')?
                .to_string();
            t.parse::<u64>().ok()
        }) else {
            return false;
        };
        if !crate::queue::is_producers_pipe(inode) {
            return false;
        }
        opened_for_writing(pid, &fd.file_name())
    })
}

/// True if `pid`'s fd named `fd` (an entry of `/proc/PID/fd`) was opened
/// for writing, from the `flags:` line of `/proc/PID/fdinfo/FD`.
fn opened_for_writing(pid: Pid, fd: &std::ffi::OsStr) -> bool {
    let info = std::fs::read_to_string(format!("/proc/{pid}/fdinfo/{}", fd.to_string_lossy()))
        .unwrap_or_default();
    let flags = info
        .lines()
        .find_map(|l| l.strip_prefix("flags:"))
        .and_then(|f| i64::from_str_radix(f.trim(), 8).ok())
        .unwrap_or(0);
    flags & i64::from(libc::O_ACCMODE) != i64::from(libc::O_RDONLY)
}

/// For `pid`'s `fd` on a pipe: which processes hold its write end open.
fn write_end_holders(pid: Pid, fd: i64) -> Option<String> {
    let target = std::fs::read_link(format!("/proc/{pid}/fd/{fd}")).ok()?;
    let target = target.to_str()?.to_string();
    if !target.starts_with("pipe:") {
        return None;
    }
    let mut holders = Vec::new();
    for proc_entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Some(other) = proc_entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<Pid>().ok())
        else {
            continue;
        };
        let Ok(fds) = std::fs::read_dir(format!("/proc/{other}/fd")) else {
            continue;
        };
        for fd_entry in fds.flatten() {
            let same = std::fs::read_link(fd_entry.path())
                .ok()
                .is_some_and(|t| t.to_str() == Some(target.as_str()));
            if !same {
                continue;
            }
            if opened_for_writing(other, &fd_entry.file_name()) {
                holders.push(other);
                break;
            }
        }
    }
    if holders.is_empty() {
        return Some(format!("; no process holds the write end of {target}"));
    }
    let names: Vec<String> = holders
        .iter()
        .map(|&h| {
            if h == pid {
                format!("pid {h} (the reader itself)")
            } else {
                format!("pid {h}")
            }
        })
        .collect();
    Some(format!(
        "; the write end of {target} is still open in {}, so no end of stream can come",
        names.join(", ")
    ))
}

/// Turns a `/proc/PID/syscall` line (`0 0x5 0x7ff... ...`) into words.
pub(super) fn describe_syscall(line: &str) -> Option<String> {
    let mut parts = line.split_whitespace();
    let nr: i64 = parts.next()?.parse().ok()?;
    let arg0 = parts
        .next()
        .and_then(|a| i64::from_str_radix(a.trim_start_matches("0x"), 16).ok());
    let name = match nr {
        0 => "read",
        1 => "write",
        7 => "poll",
        19 => "readv",
        20 => "writev",
        23 => "select",
        35 => "nanosleep",
        45 => "recvfrom",
        46 => "sendmsg",
        47 => "recvmsg",
        61 => "wait4",
        202 => "futex",
        230 => "clock_nanosleep",
        232 => "epoll_wait",
        257 => "openat",
        270 => "pselect6",
        271 => "ppoll",
        278 => "vmsplice",
        _ => return Some(format!("syscall {nr}")),
    };
    Some(match (name, arg0) {
        (
            "read" | "write" | "readv" | "writev" | "recvfrom" | "sendmsg" | "recvmsg" | "vmsplice",
            Some(fd),
        ) => {
            format!("{name}(fd {fd})")
        }
        _ => name.to_string(),
    })
}
