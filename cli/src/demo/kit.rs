//! The demos' shared kit: printing the story, forking the children that
//! play it, pacing them, pipes and scratch directories, and showing bytes
//! as text.

use std::io::Write;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::DirBuilderExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use ipc_harness::error::{Error, Result};
use ipc_harness::frame::{Decoder, ReadSource};
use ipc_harness::harness::fork::{self, Child, ChildReport, Outcome};
use ipc_harness::pipe::{Receiver, Sender};
use ipc_harness::sys::{self, Readiness};

/// How long any step of a demo may take before the demo gives up.
pub(super) const WAIT: Duration = Duration::from_secs(10);
/// How long a demo lets a process that must hang hang, before killing it.
pub(super) const HANG: Duration = Duration::from_millis(400);

/// Writes one line of the story.
pub(super) fn say(out: &mut dyn Write, line: &str) -> Result<()> {
    writeln!(out, "{line}").map_err(|e| Error::io("write the demo's output", e))
}

/// Writes the lines of a story, one after the other.
pub(super) fn story(out: &mut dyn Write, lines: &[&str]) -> Result<()> {
    lines.iter().try_for_each(|line| say(out, line))
}

pub(super) fn other(what: String) -> Error {
    Error::io("run a demo", std::io::Error::other(what))
}

/// Forks a child running `f`; an error in the child becomes its panic
/// message, which the parent reports.
pub(super) fn spawn(f: impl FnOnce() -> Result<Vec<u8>>) -> Result<Child> {
    fork::spawn(move || match f() {
        Ok(v) => v,
        Err(e) => panic!("{}", ipc_harness::error::chain(&e)),
    })
}

/// The child's bytes, or an error saying how the child ended instead.
pub(super) fn success(report: ChildReport, who: &str) -> Result<Vec<u8>> {
    if report.is_success() {
        Ok(report.output)
    } else {
        Err(other(format!(
            "{who} (pid {}) {}",
            report.pid, report.outcome
        )))
    }
}

pub(super) fn new_pipe() -> Result<(OwnedFd, OwnedFd)> {
    sys::pipe(false).map_err(|e| Error::io("pipe2", e))
}

pub(super) fn dup(fd: &impl AsFd) -> Result<OwnedFd> {
    fd.as_fd()
        .try_clone_to_owned()
        .map_err(|e| Error::io("dup", e))
}

pub(super) fn set_capacity(fd: BorrowedFd<'_>, bytes: usize) -> Result<usize> {
    sys::set_pipe_capacity(fd, bytes).map_err(|e| Error::io("fcntl(F_SETPIPE_SZ)", e))
}

/// Sends the one-word pacing token `go`.
pub(super) fn go(tx: &Sender) -> Result<()> {
    tx.send_bytes(b"go")
}

/// Waits for a pacing token.
pub(super) fn wait_go(rx: &mut Receiver) -> Result<()> {
    rx.recv_bytes_timeout(WAIT).map(drop)
}

/// Reads exactly `n` bytes, in as many reads as it takes, waiting at most
/// [`WAIT`] in all.
pub(super) fn read_n(fd: BorrowedFd<'_>, n: usize) -> Result<Vec<u8>> {
    let mut buf = vec![0u8; n];
    crate::fdio::read_exact(fd, &mut buf, Some(Instant::now() + WAIT))?;
    Ok(buf)
}

/// Reads whatever is in the pipe now, without waiting for more.
pub(super) fn drain(fd: BorrowedFd<'_>, into: &mut Vec<u8>) -> Result<()> {
    while sys::wait_readable(fd, Some(Instant::now())).map_err(|e| Error::io("poll", e))?
        == Readiness::Ready
    {
        let n = sys::read_append(fd, into, 64 * 1024).map_err(|e| Error::io("read", e))?;
        if n == 0 {
            break;
        }
    }
    Ok(())
}

/// Waits until the pipe behind the write end `fd` is full (not writable).
pub(super) fn wait_full(fd: BorrowedFd<'_>) -> Result<()> {
    let deadline = Instant::now() + WAIT;
    while sys::wait_writable(fd, Some(Instant::now())).map_err(|e| Error::io("poll", e))?
        == Readiness::Ready
    {
        if Instant::now() > deadline {
            return Err(other("the pipe never filled up".into()));
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    Ok(())
}

/// The state letter of `pid` from `/proc/PID/stat` (`R`, `S`, `T`...).
pub(super) fn proc_state(pid: sys::Pid) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(')')?.1.trim_start().chars().next()
}

/// Pauses a child with `SIGSTOP` and waits until it has stopped.
pub(super) fn pause(child: &Child) -> Result<()> {
    child.signal(libc::SIGSTOP)?;
    let deadline = Instant::now() + WAIT;
    while proc_state(child.pid()) != Some('T') {
        if Instant::now() > deadline {
            return Err(other(format!("child {} did not stop", child.pid())));
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    Ok(())
}

pub(super) fn resume(child: &Child) -> Result<()> {
    child.signal(libc::SIGCONT)
}

/// Decodes every whole frame in `stream`, then says how it ended.
pub(super) fn decode_all(stream: &[u8]) -> (Vec<Vec<u8>>, Error) {
    let mut dec = Decoder::default();
    let mut src = ReadSource(stream);
    let mut msgs = Vec::new();
    loop {
        match dec.recv(&mut src, None) {
            Ok(f) => msgs.push(f.into_vec()),
            Err(e) => return (msgs, e),
        }
    }
}

pub(super) fn escape(b: u8) -> String {
    match b {
        b'"' => "\\\"".into(),
        b'\\' => "\\\\".into(),
        0x20..=0x7e => (b as char).to_string(),
        _ => format!("\\x{b:02x}"),
    }
}

/// Bytes as printable text: `"Spam 004"`, long runs of one byte as
/// `4092 x 'A'`, anything unprintable as `\xNN`. Never a control character.
pub fn quote(bytes: &[u8]) -> String {
    let mut parts = Vec::new();
    let mut text = String::new();
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        let run = bytes[i..].iter().take_while(|&&c| c == b).count();
        if run >= 16 {
            if !text.is_empty() {
                parts.push(format!("\"{text}\""));
                text.clear();
            }
            let c = if b == b'\'' {
                "\\'".to_string()
            } else {
                escape(b)
            };
            parts.push(format!("{run} x '{c}'"));
            i += run;
        } else {
            text.push_str(&escape(b));
            i += 1;
        }
    }
    if !text.is_empty() || parts.is_empty() {
        parts.push(format!("\"{text}\""));
    }
    parts.join(" + ")
}

/// Which writes the stream bytes `start..end` came from, in words.
pub(super) fn provenance(write_lens: &[usize], start: usize, end: usize) -> (usize, String) {
    let mut parts = Vec::new();
    let mut pos = 0;
    for (i, &len) in write_lens.iter().enumerate() {
        let (a, b) = (pos, pos + len);
        pos = b;
        let (lo, hi) = (a.max(start), b.min(end));
        if lo >= hi {
            continue;
        }
        if lo == a && hi == b {
            parts.push(format!("all of write {}", i + 1));
        } else {
            parts.push(format!(
                "bytes {}..{} of write {} (of {})",
                lo - a,
                hi - a,
                i + 1,
                len
            ));
        }
    }
    (parts.len(), parts.join(" + "))
}

/// A private scratch directory for FIFOs, removed on drop.
pub(super) struct Scratch {
    pub(super) dir: PathBuf,
}

impl Scratch {
    pub(super) fn new() -> Result<Scratch> {
        static N: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "ipc-harness-demo-{}-{}",
            sys::getpid(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&dir)
            .map_err(|e| Error::path_io("create the directory", &dir, e))?;
        Ok(Scratch { dir })
    }

    pub(super) fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

pub(super) fn describe_outcome(report: &ChildReport) -> String {
    match &report.outcome {
        Outcome::TimedOut {
            blocked_in: Some(b),
        } => format!("was still blocked in {b}, and was killed"),
        o => o.to_string(),
    }
}

/// The `i`th message of the Spam example: `Spam 000` to `Spam 004`, then again.
pub(super) fn spam(i: usize) -> Vec<u8> {
    // The counter runs 0 to 4 and starts again, as in the example.
    format!("Spam {:03}", i % 5).into_bytes()
}
