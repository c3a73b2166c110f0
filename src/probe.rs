//! `ipc-harness probe`: what this kernel provides, measured rather than
//! assumed, and [`require`] for tests that need a feature to skip with a
//! reason when it is missing.
//!
//! Each fact comes from the kernel itself: `PIPE_BUF` from the C library's
//! constant (Linux fixes it at 4096), the default capacity from
//! `F_GETPIPE_SZ` on a fresh pipe, the maximum from
//! `/proc/sys/fs/pipe-max-size`, packet-mode pipes by opening one with
//! `O_DIRECT` and checking that two writes come back as two reads,
//! `SOCK_SEQPACKET` the same way on a socketpair, `pidfd_open` on our own
//! pid, `RLIMIT_NOFILE` from `/proc/self/limits`, the release from
//! `/proc/sys/kernel/osrelease`.
//!
//! ```
//! use ipc_harness::probe::{self, Feature};
//!
//! let p = probe::probe();
//! assert_eq!(p.pipe_buf, 4096);
//! println!("{p}");
//! if let Some(reason) = probe::require(Feature::PacketPipes) {
//!     println!("skipped: {reason}");
//!     return;
//! }
//! // ... a test that needs packet-mode pipes ...
//! ```

use std::fmt;
use std::os::fd::AsFd;
use std::sync::OnceLock;

use crate::raw::RawPipe;
use crate::sys::{self, SocketKind};

/// What this kernel provides for inter-process messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probe {
    /// `PIPE_BUF`: the largest pipe write the kernel keeps atomic.
    pub pipe_buf: usize,
    /// A new pipe's capacity in bytes (`F_GETPIPE_SZ`), if it could be read.
    pub default_pipe_capacity: Option<usize>,
    /// The largest capacity an unprivileged process may set with
    /// `F_SETPIPE_SZ` (`/proc/sys/fs/pipe-max-size`), if readable.
    pub max_pipe_capacity: Option<usize>,
    /// True if `F_SETPIPE_SZ` could shrink a pipe to one page.
    pub set_pipe_capacity: bool,
    /// True if packet-mode pipes (`pipe2(O_DIRECT)`, Linux 3.4+) work and
    /// keep two small writes apart.
    pub packet_pipes: bool,
    /// True if `AF_UNIX` `SOCK_SEQPACKET` socketpairs work and keep two
    /// writes apart.
    pub seqpacket: bool,
    /// True if `pidfd_open` works (Linux 5.3+); the fork runner needs it.
    pub pidfd: bool,
    /// `RLIMIT_NOFILE` as `(soft, hard)`; `u64::MAX` means unlimited.
    /// `None` if `/proc/self/limits` could not be read.
    pub rlimit_nofile: Option<(u64, u64)>,
    /// The kernel release (`uname -r`), if readable.
    pub kernel_release: Option<String>,
}

/// Looks at this kernel. Takes well under a millisecond; makes a few pipes
/// and sockets and closes them again.
pub fn probe() -> Probe {
    Probe {
        pipe_buf: sys::PIPE_BUF,
        default_pipe_capacity: RawPipe::new().and_then(|p| p.capacity()).ok(),
        max_pipe_capacity: read_proc("/proc/sys/fs/pipe-max-size").and_then(|s| s.parse().ok()),
        set_pipe_capacity: RawPipe::new()
            .and_then(|p| p.set_capacity(4096))
            .is_ok_and(|got| got >= 4096),
        packet_pipes: packet_pipes_work(),
        seqpacket: seqpacket_works(),
        pidfd: sys::pidfd_open(sys::getpid()).is_ok(),
        rlimit_nofile: read_proc("/proc/self/limits").and_then(|s| parse_nofile(&s)),
        kernel_release: read_proc("/proc/sys/kernel/osrelease"),
    }
}

fn read_proc(path: &str) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_string())
}

fn packet_pipes_work() -> bool {
    let Ok(p) = RawPipe::packet_mode() else {
        return false;
    };
    let mut buf = [0u8; 16];
    p.write(b"ab").is_ok() && p.write(b"cd").is_ok() && p.read(&mut buf).ok() == Some(2)
}

fn seqpacket_works() -> bool {
    let Ok((a, b)) = sys::socketpair(SocketKind::SeqPacket) else {
        return false;
    };
    let mut buf = [0u8; 16];
    sys::write(a.as_fd(), b"ab").is_ok()
        && sys::write(a.as_fd(), b"cd").is_ok()
        && sys::read(b.as_fd(), &mut buf).ok() == Some(2)
}

/// The `Max open files` line of `/proc/self/limits`.
fn parse_nofile(limits: &str) -> Option<(u64, u64)> {
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    let mut fields = line["Max open files".len()..].split_whitespace();
    let value = |s: &str| match s {
        "unlimited" => Some(u64::MAX),
        n => n.parse().ok(),
    };
    Some((value(fields.next()?)?, value(fields.next()?)?))
}

fn cached() -> &'static Probe {
    static PROBE: OnceLock<Probe> = OnceLock::new();
    PROBE.get_or_init(probe)
}

/// A kernel feature a test may need.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Feature {
    /// Packet-mode pipes (`O_DIRECT`).
    PacketPipes,
    /// `SOCK_SEQPACKET` socketpairs.
    SeqPacket,
    /// `pidfd_open`.
    Pidfd,
    /// Setting a pipe's capacity (`F_SETPIPE_SZ`) to at least this many
    /// bytes, as an unprivileged process.
    PipeCapacity(usize),
    /// At least this many open files allowed (`RLIMIT_NOFILE` soft limit).
    OpenFiles(u64),
}

/// `None` if this kernel has `feature`; otherwise the reason a test that
/// needs it should print as it skips. The kernel is probed once per process.
///
/// ```
/// use ipc_harness::probe::{Feature, require};
///
/// assert_eq!(require(Feature::OpenFiles(1)), None);
/// let reason = require(Feature::PipeCapacity(usize::MAX)).unwrap();
/// assert!(reason.contains("pipe-max-size"), "{reason}");
/// ```
pub fn require(feature: Feature) -> Option<String> {
    let p = cached();
    match feature {
        Feature::PacketPipes if !p.packet_pipes => Some(
            "this kernel has no packet-mode pipes: pipe2(O_DIRECT) failed or merged two writes (Linux 3.4+ needed)".into(),
        ),
        Feature::SeqPacket if !p.seqpacket => {
            Some("this kernel has no working AF_UNIX SOCK_SEQPACKET socketpairs".into())
        }
        Feature::Pidfd if !p.pidfd => {
            Some("this kernel has no pidfd_open (Linux 5.3+ needed)".into())
        }
        Feature::PipeCapacity(bytes) => match (p.set_pipe_capacity, p.max_pipe_capacity) {
            (false, _) => Some("F_SETPIPE_SZ does not work here".into()),
            (true, Some(max)) if max >= bytes => None,
            (true, Some(max)) => Some(format!(
                "a pipe capacity of {bytes} bytes is needed, but /proc/sys/fs/pipe-max-size allows {max}"
            )),
            (true, None) => {
                Some("/proc/sys/fs/pipe-max-size could not be read".into())
            }
        },
        Feature::OpenFiles(n) => match p.rlimit_nofile {
            Some((soft, _)) if soft >= n => None,
            Some((soft, hard)) => Some(format!(
                "{n} open files are needed, but RLIMIT_NOFILE allows {soft} (hard limit {}); try `ulimit -n`",
                show_limit(hard)
            )),
            None => Some("RLIMIT_NOFILE could not be read from /proc/self/limits".into()),
        },
        _ => None,
    }
}

fn show_limit(n: u64) -> String {
    if n == u64::MAX {
        "unlimited".into()
    } else {
        n.to_string()
    }
}

fn yes_no(b: bool) -> &'static str {
    if b { "yes" } else { "no" }
}

fn bytes(n: Option<usize>) -> String {
    n.map_or("unknown".into(), |n| format!("{n} bytes"))
}

impl fmt::Display for Probe {
    /// A small table, one fact per line, plain text.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let rows: [(&str, String, &str); 9] = [
            (
                "kernel release",
                self.kernel_release.clone().unwrap_or("unknown".into()),
                "",
            ),
            (
                "PIPE_BUF",
                format!("{} bytes", self.pipe_buf),
                "pipe writes up to this size are atomic",
            ),
            (
                "default pipe capacity",
                bytes(self.default_pipe_capacity),
                "F_GETPIPE_SZ on a new pipe",
            ),
            (
                "max pipe capacity",
                bytes(self.max_pipe_capacity),
                "/proc/sys/fs/pipe-max-size",
            ),
            (
                "F_SETPIPE_SZ",
                yes_no(self.set_pipe_capacity).into(),
                "resize a pipe",
            ),
            (
                "packet-mode pipes",
                yes_no(self.packet_pipes).into(),
                "pipe2(O_DIRECT): one write, one read",
            ),
            (
                "SOCK_SEQPACKET",
                yes_no(self.seqpacket).into(),
                "AF_UNIX socketpair keeping boundaries",
            ),
            (
                "pidfd_open",
                yes_no(self.pidfd).into(),
                "the fork runner waits on pidfds",
            ),
            (
                "RLIMIT_NOFILE",
                self.rlimit_nofile.map_or("unknown".into(), |(s, h)| {
                    format!("{} soft, {} hard", show_limit(s), show_limit(h))
                }),
                "open files per process",
            ),
        ];
        writeln!(f, "What this kernel provides:")?;
        for (name, value, note) in rows {
            if note.is_empty() {
                writeln!(f, "  {name:<22} {value}")?;
            } else {
                writeln!(f, "  {name:<22} {value:<24} ({note})")?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nofile_line_is_parsed() {
        let limits = "Limit                     Soft Limit           Hard Limit           Units     \n\
                      Max open files            1024                 524288               files     \n";
        assert_eq!(parse_nofile(limits), Some((1024, 524288)));
        let unlimited =
            "Max open files            unlimited            unlimited            files\n";
        assert_eq!(parse_nofile(unlimited), Some((u64::MAX, u64::MAX)));
        assert_eq!(parse_nofile("nothing here"), None);
    }

    #[test]
    fn this_machine_is_probed() {
        let p = probe();
        assert_eq!(p.pipe_buf, 4096);
        assert!(p.default_pipe_capacity.unwrap() >= 4096);
        assert!(p.pidfd, "the fork runner needs pidfd_open");
        let text = p.to_string();
        assert!(text.contains("PIPE_BUF"), "{text}");
        assert!(!text.chars().any(|c| c.is_control() && c != '\n'));
    }
}
