//! `ipc-harness demo NAME`: each pitfall of the catalogue, run for real
//! across forked processes, explained in plain words, then the fix run on
//! the same workload.
//!
//! Every demo is deterministic: it never waits for an unlucky schedule.
//! The writer writes, *then* the reader reads (the parent paces its children
//! through pipes of its own), pipes are shrunk with `F_SETPIPE_SZ` so a
//! large write must stop half-way, and a writer is paused with `SIGSTOP` at
//! the exact point where the kernel lets another writer in. Children never
//! print: they return bytes to the parent, which does all the talking.
//!
//! [`run`] holds [`fork::serial()`] for its whole body, so tests may call
//! it from many threads (but not while holding that lock themselves).
//! The output is plain text: lines of printable ASCII, no terminal control
//! characters, whatever bytes the pitfall produced (they are shown escaped).
//!
//! ```
//! use ipc_harness_cli::demo;
//!
//! let mut out = Vec::new();
//! let outcome = demo::run("coalescing", &mut out)?;
//! assert!(outcome.naive_failed && outcome.fixed_ok);
//! let text = String::from_utf8(out).unwrap();
//! assert!(text.contains("\"Spam 004Spam 000\""));
//! # Ok::<(), ipc_harness_cli::demo::DemoError>(())
//! ```
//!
//! The pitfalls guide ([`ipc_harness::guide`]) explains each one at length.

use std::io::Write;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use ipc_harness::error::{Error, Result};
use ipc_harness::fifo::{Fifo, FifoReader, FifoWriter, Wait};
use ipc_harness::frame::{self, Decoder, ReadSource};
use ipc_harness::harness::fork::{self, Child, ChildReport, Outcome};
use ipc_harness::pipe::{Receiver, Sender, pipe};
use ipc_harness::queue::{KillPoint, Queue, set_kill_point};
use ipc_harness::sys::{self, Readiness};

/// How long any step of a demo may take before the demo gives up.
const WAIT: Duration = Duration::from_secs(10);
/// How long a demo lets a process that must hang hang, before killing it.
const HANG: Duration = Duration::from_millis(400);

/// What a demo showed, for a test (or the CLI's exit status) to check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DemoOutcome {
    /// The demo's name, as in [`list`].
    pub name: &'static str,
    /// The naive code ran and broke its promise, as the lesson needs.
    pub naive_failed: bool,
    /// The fixed primitive ran on the same workload and kept every promise.
    pub fixed_ok: bool,
}

impl DemoOutcome {
    /// True if the demo showed what it must: the naive code failing and
    /// the fix working.
    pub fn shown(&self) -> bool {
        self.naive_failed && self.fixed_ok
    }
}

/// Why a demo could not be run.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// No demo has this name.
    #[error("no demo named {name:?}; `ipc-harness demo --list` lists them")]
    Unknown {
        /// The name asked for.
        name: String,
    },
    /// The demo's machinery failed (a fork, a pipe, a child that did not
    /// behave as planned, or writing the output).
    #[error("the demo could not run")]
    Failed(#[from] Error),
}

type Demo = fn(&mut dyn Write) -> Result<(bool, bool)>;

const DEMOS: [(&str, &str, Demo); 10] = [
    (
        "coalescing",
        "two writes come back as one read: \"Spam 004Spam 000\"",
        coalescing,
    ),
    (
        "split-reads",
        "a fixed-size read(fd, 32) cuts a long message into pieces",
        split_reads,
    ),
    (
        "interleaved-writes",
        "two writers of messages over PIPE_BUF, no lock: one message holds both",
        interleaved_writes,
    ),
    (
        "racing-readers",
        "two readers of one pipe, no lock: each takes part of the same message",
        racing_readers,
    ),
    (
        "ignored-short-write",
        "a non-blocking write took only part of a message and nobody looked",
        ignored_short_write,
    ),
    (
        "eof-never-comes",
        "the reader kept a copy of the write end: end of stream never comes",
        eof_never_comes,
    ),
    (
        "fifo-open-blocks",
        "opening a FIFO blocks until the other side opens; O_NONBLOCK gets ENXIO",
        fifo_open_blocks,
    ),
    (
        "fifo-missing-directory",
        "mkfifo in a directory that does not exist: a bare \"No such file\"",
        fifo_missing_directory,
    ),
    (
        "queue-killed-holding-lock",
        "a producer killed holding the queue's lock: Python's Queue deadlocks, ours goes on",
        queue_killed_holding_lock,
    ),
    (
        "task-done-too-many-times",
        "task_done() called more times than items were put",
        task_done_too_many_times,
    ),
];

/// Every demo as `(name, one-line summary)`, in catalogue order (pitfalls
/// 1 to 10 of DESIGN.md).
pub fn list() -> Vec<(&'static str, &'static str)> {
    DEMOS
        .iter()
        .map(|&(name, summary, _)| (name, summary))
        .collect()
}

/// Runs the demo called `name`, writing its story to `out`.
///
/// Holds [`fork::serial()`] while it runs. Takes under a second or two;
/// demos of a hang let it hang for 0.4 s, then kill it.
pub fn run(name: &str, out: &mut dyn Write) -> std::result::Result<DemoOutcome, DemoError> {
    let Some(&(name, summary, demo)) = DEMOS.iter().find(|(n, _, _)| *n == name) else {
        return Err(DemoError::Unknown { name: name.into() });
    };
    let number = DEMOS.iter().position(|(n, _, _)| *n == name).unwrap_or(0) + 1;
    let _serial = fork::serial();
    say(out, &format!("== Pitfall {number}: {name} =="))?;
    let mut first = summary.chars();
    let capitalized: String = first
        .next()
        .map(|c| c.to_ascii_uppercase())
        .into_iter()
        .chain(first)
        .collect();
    say(out, &format!("{capitalized}."))?;
    say(out, "")?;
    let (naive_failed, fixed_ok) = demo(out)?;
    say(out, "")?;
    let verdict = match (naive_failed, fixed_ok) {
        (true, true) => {
            "Verdict: the naive code failed, as it always does; the fix kept every promise."
        }
        (false, _) => "Verdict: UNEXPECTED: the naive code did not fail this time.",
        (true, false) => "Verdict: UNEXPECTED: the fix did not keep its promises.",
    };
    say(out, verdict)?;
    Ok(DemoOutcome {
        name,
        naive_failed,
        fixed_ok,
    })
}

/// Runs every demo in catalogue order, one after the other, each followed
/// by a blank line; stops at the first that cannot run.
pub fn run_all(out: &mut dyn Write) -> std::result::Result<Vec<DemoOutcome>, DemoError> {
    let mut outcomes = Vec::new();
    for (name, _) in list() {
        outcomes.push(run(name, out)?);
        say(out, "")?;
    }
    Ok(outcomes)
}

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

fn say(out: &mut dyn Write, line: &str) -> Result<()> {
    writeln!(out, "{line}").map_err(|e| Error::io("write the demo's output", e))
}

fn other(what: String) -> Error {
    Error::io("run a demo", std::io::Error::other(what))
}

/// Forks a child running `f`; an error in the child becomes its panic
/// message, which the parent reports.
fn spawn(f: impl FnOnce() -> Result<Vec<u8>>) -> Result<Child> {
    fork::spawn(move || match f() {
        Ok(v) => v,
        Err(e) => panic!("{}", ipc_harness::error::chain(&e)),
    })
}

/// The child's bytes, or an error saying how the child ended instead.
fn success(report: ChildReport, who: &str) -> Result<Vec<u8>> {
    if report.is_success() {
        Ok(report.output)
    } else {
        Err(other(format!(
            "{who} (pid {}) {}",
            report.pid, report.outcome
        )))
    }
}

fn new_pipe() -> Result<(OwnedFd, OwnedFd)> {
    sys::pipe(false).map_err(|e| Error::io("pipe2", e))
}

fn dup(fd: &impl AsFd) -> Result<OwnedFd> {
    fd.as_fd()
        .try_clone_to_owned()
        .map_err(|e| Error::io("dup", e))
}

fn set_capacity(fd: BorrowedFd<'_>, bytes: usize) -> Result<usize> {
    sys::set_pipe_capacity(fd, bytes).map_err(|e| Error::io("fcntl(F_SETPIPE_SZ)", e))
}

/// Sends the one-word pacing token `go`.
fn go(tx: &Sender) -> Result<()> {
    tx.send_bytes(b"go")
}

/// Waits for a pacing token.
fn wait_go(rx: &mut Receiver) -> Result<()> {
    rx.recv_bytes_timeout(WAIT).map(drop)
}

/// Reads exactly `n` bytes, in as many reads as it takes, waiting at most
/// [`WAIT`] in all.
fn read_exact(fd: BorrowedFd<'_>, n: usize) -> Result<Vec<u8>> {
    let deadline = Instant::now() + WAIT;
    let mut buf = Vec::with_capacity(n);
    while buf.len() < n {
        if sys::wait_readable(fd, Some(deadline)).map_err(|e| Error::io("poll", e))?
            == Readiness::TimedOut
        {
            return Err(Error::Timeout);
        }
        let want = n - buf.len();
        let got =
            sys::read_append(fd, &mut buf, want).map_err(|e| Error::io("read from pipe", e))?;
        if got == 0 {
            return Err(Error::Truncated {
                expected: n as u64,
                got: buf.len() as u64,
            });
        }
    }
    Ok(buf)
}

/// Reads whatever is in the pipe now, without waiting for more.
fn drain(fd: BorrowedFd<'_>, into: &mut Vec<u8>) -> Result<()> {
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
fn wait_full(fd: BorrowedFd<'_>) -> Result<()> {
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
fn proc_state(pid: sys::Pid) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(')')?.1.trim_start().chars().next()
}

/// Pauses a child with `SIGSTOP` and waits until it has stopped.
fn pause(child: &Child) -> Result<()> {
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

fn resume(child: &Child) -> Result<()> {
    child.signal(libc::SIGCONT)
}

/// Decodes every whole frame in `stream`, then says how it ended.
fn decode_all(stream: &[u8]) -> (Vec<Vec<u8>>, Error) {
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

fn escape(b: u8) -> String {
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
fn provenance(write_lens: &[usize], start: usize, end: usize) -> (usize, String) {
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
struct Scratch {
    dir: PathBuf,
}

impl Scratch {
    fn new() -> Result<Scratch> {
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

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn describe_outcome(report: &ChildReport) -> String {
    match &report.outcome {
        Outcome::TimedOut {
            blocked_in: Some(b),
        } => format!("was still blocked in {b}, and was killed"),
        o => o.to_string(),
    }
}

// ---------------------------------------------------------------------------
// 1. Coalescing
// ---------------------------------------------------------------------------

fn spam(i: usize) -> Vec<u8> {
    // The seed's counter runs 0 to 4 and starts again.
    format!("Spam {:03}", i % 5).into_bytes()
}

fn coalescing(out: &mut dyn Write) -> Result<(bool, bool)> {
    let messages: Vec<Vec<u8>> = (0..6).map(spam).collect();
    say(
        out,
        "The naive code: the son writes each message with one write(2) on a plain pipe,",
    )?;
    say(
        out,
        "the father takes each read(fd, 1024) as one message. The son writes two",
    )?;
    say(
        out,
        "messages, then waits while the father reads, three times (as a busy father would).",
    )?;
    say(out, "")?;

    // Naive: raw writes, one read per "message".
    let (data_r, data_w) = new_pipe()?;
    let (go_tx, mut go_rx) = pipe()?;
    let (done_tx, mut done_rx) = pipe()?;
    let msgs = messages.clone();
    let son = spawn(move || {
        for pair in msgs.chunks(2) {
            for m in pair {
                sys::write(data_w.as_fd(), m).map_err(|e| Error::io("write", e))?;
            }
            go(&done_tx)?;
            wait_go(&mut go_rx)?;
        }
        Ok(Vec::new())
    })?;
    let mut reads = Vec::new();
    for _ in 0..messages.len().div_ceil(2) {
        wait_go(&mut done_rx)?;
        let mut buf = vec![0u8; 1024];
        let n = sys::read(data_r.as_fd(), &mut buf).map_err(|e| Error::io("read", e))?;
        buf.truncate(n);
        reads.push(buf);
        go(&go_tx)?;
    }
    success(son.wait(WAIT)?, "the son")?;

    say(
        out,
        &format!("The son made {} writes, one per message:", messages.len()),
    )?;
    for (i, m) in messages.iter().enumerate() {
        say(out, &format!("  write {}: {}", i + 1, quote(m)))?;
    }
    say(
        out,
        &format!(
            "The father made {} reads and took each one as a message:",
            reads.len()
        ),
    )?;
    let lens: Vec<usize> = messages.iter().map(Vec::len).collect();
    let mut pos = 0;
    let mut glued = 0;
    for (i, r) in reads.iter().enumerate() {
        let (n, from) = provenance(&lens, pos, pos + r.len());
        pos += r.len();
        say(out, &format!("  read {}: {}", i + 1, quote(r)))?;
        if n > 1 {
            glued += 1;
            say(
                out,
                &format!("          that is {n} messages glued together: {from}"),
            )?;
        }
    }
    let naive_failed = glued > 0 || reads.len() != messages.len();
    say(out, "")?;
    say(
        out,
        "Why: a pipe is a stream of bytes. POSIX keeps the bytes in order, but a read",
    )?;
    say(
        out,
        "returns whatever is there, up to the buffer's size: the boundaries between",
    )?;
    say(
        out,
        "writes are not in the pipe at all. \"Spam 004Spam 000\" is two messages.",
    )?;
    say(out, "")?;

    // Fixed: the same workload over pipe(), which frames each message.
    say(
        out,
        "The fix: ipc_harness::pipe() sends a length header before each message, so each",
    )?;
    say(
        out,
        "receive returns exactly one. Same son, same pacing, same six messages:",
    )?;
    let (tx, mut rx) = pipe()?;
    let (go_tx, mut go_rx) = pipe()?;
    let (done_tx, mut done_rx) = pipe()?;
    let msgs = messages.clone();
    let son = spawn(move || {
        for pair in msgs.chunks(2) {
            for m in pair {
                tx.send_bytes(m)?;
            }
            go(&done_tx)?;
            wait_go(&mut go_rx)?;
        }
        Ok(Vec::new())
    })?;
    let mut received = Vec::new();
    for round in 0..messages.len().div_ceil(2) {
        wait_go(&mut done_rx)?;
        let mut got = vec![rx.recv_bytes_timeout(WAIT)?];
        while rx.poll(Some(Duration::ZERO))? {
            got.push(rx.recv_bytes_timeout(WAIT)?);
        }
        let shown: Vec<String> = got.iter().map(|m| quote(m)).collect();
        say(
            out,
            &format!(
                "  round {}: {} receives: {}",
                round + 1,
                got.len(),
                shown.join(", ")
            ),
        )?;
        received.extend(got);
        go(&go_tx)?;
    }
    success(son.wait(WAIT)?, "the son")?;
    let fixed_ok = received == messages;
    say(
        out,
        &format!(
            "{} messages sent, {} received, each one whole.",
            messages.len(),
            received.len()
        ),
    )?;
    Ok((naive_failed, fixed_ok))
}

// ---------------------------------------------------------------------------
// 2. Split reads
// ---------------------------------------------------------------------------

fn split_reads(out: &mut dyn Write) -> Result<(bool, bool)> {
    let messages: Vec<Vec<u8>> = vec![
        b"Spam 000: lovely spam, wonderful spam!".to_vec(),
        b"Spam 001: egg, bacon, sausage and spam".to_vec(),
        b"Spam 002".to_vec(),
    ];
    say(
        out,
        "The naive code: the son writes each message with one write(2); the father reads",
    )?;
    say(
        out,
        "with a fixed buffer, os.read(fd, 32), and takes each read as one message. The son",
    )?;
    say(out, "writes everything first, then the father reads.")?;
    say(out, "")?;

    let (data_r, data_w) = new_pipe()?;
    let msgs = messages.clone();
    let son = spawn(move || {
        for m in &msgs {
            sys::write(data_w.as_fd(), m).map_err(|e| Error::io("write", e))?;
        }
        Ok(Vec::new())
    })?;
    success(son.wait(WAIT)?, "the son")?;
    let mut reads = Vec::new();
    loop {
        let mut buf = [0u8; 32];
        let n = sys::read(data_r.as_fd(), &mut buf).map_err(|e| Error::io("read", e))?;
        if n == 0 {
            break;
        }
        reads.push(buf[..n].to_vec());
    }
    say(out, &format!("The son made {} writes:", messages.len()))?;
    for (i, m) in messages.iter().enumerate() {
        say(
            out,
            &format!("  write {} ({} bytes): {}", i + 1, m.len(), quote(m)),
        )?;
    }
    say(
        out,
        &format!(
            "The father made {} reads of at most 32 bytes, and took each as a message:",
            reads.len()
        ),
    )?;
    let lens: Vec<usize> = messages.iter().map(Vec::len).collect();
    let mut pos = 0;
    for (i, r) in reads.iter().enumerate() {
        let (_, from) = provenance(&lens, pos, pos + r.len());
        pos += r.len();
        say(out, &format!("  read {}: {}", i + 1, quote(r)))?;
        say(out, &format!("          which is {from}"))?;
    }
    let naive_failed = reads != messages;
    say(out, "")?;
    say(
        out,
        "Why: a read returns at most the buffer's size, and a pipe keeps no boundaries,",
    )?;
    say(
        out,
        "so a long message comes back in pieces and the pieces run into the next message.",
    )?;
    say(out, "")?;

    say(
        out,
        "The fix: ipc_harness::pipe(). Even into the same 32-byte buffer, a receive never",
    )?;
    say(
        out,
        "cuts a message: recv_bytes_into says BufferTooSmall and hands back the whole of it.",
    )?;
    let (tx, mut rx) = pipe()?;
    let msgs = messages.clone();
    let son = spawn(move || {
        for m in &msgs {
            tx.send_bytes(m)?;
        }
        Ok(Vec::new())
    })?;
    success(son.wait(WAIT)?, "the son")?;
    let mut received = Vec::new();
    loop {
        let mut buf = [0u8; 32];
        match rx.recv_bytes_into(&mut buf) {
            Ok(n) => {
                say(
                    out,
                    &format!("  receive {}: {}", received.len() + 1, quote(&buf[..n])),
                )?;
                received.push(buf[..n].to_vec());
            }
            Err(Error::BufferTooSmall { message }) => {
                say(
                    out,
                    &format!(
                        "  receive {}: BufferTooSmall, holding all {} bytes: {}",
                        received.len() + 1,
                        message.len(),
                        quote(&message)
                    ),
                )?;
                received.push(message);
            }
            Err(Error::Closed) => break,
            Err(e) => return Err(e),
        }
    }
    let fixed_ok = received == messages;
    say(
        out,
        &format!(
            "{} messages sent, {} received, none cut.",
            messages.len(),
            received.len()
        ),
    )?;
    Ok((naive_failed, fixed_ok))
}

// ---------------------------------------------------------------------------
// 3. Interleaved writes
// ---------------------------------------------------------------------------

fn interleaved_writes(out: &mut dyn Write) -> Result<(bool, bool)> {
    let (data_r, data_w) = new_pipe()?;
    let cap = set_capacity(data_w.as_fd(), 4096)?;
    let len = cap + cap / 2;
    let a = vec![b'A'; len];
    let b = vec![b'B'; len];
    let frame_len = frame::HEADER_LEN + len;
    say(
        out,
        &format!(
            "The naive code: two writers, A and B, each send one framed message of {len} bytes"
        ),
    )?;
    say(
        out,
        "(a 4-byte length header, then the payload, in one writev) into the same pipe,",
    )?;
    say(
        out,
        &format!(
            "with no lock between them. PIPE_BUF is {}; the pipe holds {cap} bytes (F_SETPIPE_SZ).",
            sys::PIPE_BUF
        ),
    )?;
    say(out, "")?;

    let wa = Sender::from_fd(dup(&data_w)?);
    let wb = Sender::from_fd(dup(&data_w)?);
    let msg_a = a.clone();
    let writer_a = spawn(move || {
        wa.send_bytes(&msg_a)?;
        Ok(Vec::new())
    })?;
    // A's write stops once the pipe is full; pause A right there.
    wait_full(data_w.as_fd())?;
    pause(&writer_a)?;
    let mut stream = read_exact(data_r.as_fd(), cap)?;
    say(
        out,
        &format!(
            "1. A's write filled the pipe with the first {cap} bytes of its {frame_len}-byte frame;"
        ),
    )?;
    say(
        out,
        "   the kernel put A to sleep mid-write (here we also pause it, to keep the order)",
    )?;
    say(out, &format!("   and the reader took those {cap} bytes."))?;
    let msg_b = b.clone();
    let writer_b = spawn(move || {
        wb.send_bytes(&msg_b)?;
        Ok(Vec::new())
    })?;
    wait_full(data_w.as_fd())?;
    pause(&writer_b)?;
    stream.extend(read_exact(data_r.as_fd(), cap)?);
    say(
        out,
        &format!("2. B's write found room and put the first {cap} bytes of its frame in."),
    )?;
    resume(&writer_a)?;
    stream.extend(read_exact(data_r.as_fd(), frame_len - cap)?);
    success(writer_a.wait(WAIT)?, "writer A")?;
    say(
        out,
        &format!(
            "3. A woke up and wrote the rest of its frame ({} bytes).",
            frame_len - cap
        ),
    )?;
    resume(&writer_b)?;
    stream.extend(read_exact(data_r.as_fd(), frame_len - cap)?);
    success(writer_b.wait(WAIT)?, "writer B")?;
    say(out, "4. Then B wrote the rest of its frame.")?;
    drop(data_w);
    drop(data_r);

    let (msgs, end) = decode_all(&stream);
    say(out, "")?;
    say(out, "The reader decoded that stream frame by frame:")?;
    for (i, m) in msgs.iter().enumerate() {
        say(
            out,
            &format!("  message {} ({} bytes): {}", i + 1, m.len(), quote(m)),
        )?;
    }
    say(out, &format!("  then: {}", ipc_harness::error::chain(&end)))?;
    let naive_failed = msgs != [a.clone(), b.clone()];
    say(
        out,
        "Message 1 is A's header with A's payload cut short, B's header and the start of B's",
    )?;
    say(
        out,
        "payload: two messages mixed into one. What follows is B's payload read as a length.",
    )?;
    say(out, "")?;
    say(
        out,
        &format!(
            "Why: POSIX makes a pipe write atomic only up to PIPE_BUF ({}) bytes. A larger",
            sys::PIPE_BUF
        ),
    )?;
    say(
        out,
        "write goes in as room appears, and any other writer may get in between the pieces.",
    )?;
    say(out, "")?;

    // Fixed: a FIFO whose writers take a flock around each frame.
    say(
        out,
        "The fix: writers that share a lock for a whole frame. FifoWriter takes an exclusive",
    )?;
    say(
        out,
        "flock on the FIFO around each frame (a Queue would do too). Same sizes, same pause:",
    )?;
    let scratch = Scratch::new()?;
    let path = scratch.path("interleaved");
    let fifo = Fifo::create(&path)?;
    let mut reader = FifoReader::open(&path, Wait::NonBlocking)?;
    let probe = FifoWriter::open(&path, Wait::NonBlocking)?.into_fd();
    set_capacity(probe.as_fd(), 4096)?;
    let p = path.clone();
    let msg_a = a.clone();
    let writer_a = spawn(move || {
        FifoWriter::open(&p, Wait::Timeout(WAIT))?.send_bytes(&msg_a)?;
        Ok(Vec::new())
    })?;
    wait_full(probe.as_fd())?;
    pause(&writer_a)?;
    // The reader takes what is there (part of A's frame) and keeps it.
    match reader.recv_bytes_timeout(Duration::from_millis(50)) {
        Err(Error::Timeout) => {}
        Ok(_) => return Err(other("a whole frame arrived from a paused writer".into())),
        Err(e) => return Err(e),
    }
    let p = path.clone();
    let msg_b = b.clone();
    let writer_b = spawn(move || {
        FifoWriter::open(&p, Wait::Timeout(WAIT))?.send_bytes(&msg_b)?;
        Ok(Vec::new())
    })?;
    let b_waited = sys::wait_readable(reader.as_fd(), Some(Instant::now() + HANG))
        .map_err(|e| Error::io("poll", e))?
        == Readiness::TimedOut;
    say(
        out,
        &format!(
            "  A was paused mid-frame holding the lock; B then waited {} ms and wrote {}.",
            HANG.as_millis(),
            if b_waited {
                "nothing: it waits for A's lock"
            } else {
                "something (unexpected)"
            }
        ),
    )?;
    resume(&writer_a)?;
    let first = reader.recv_bytes_timeout(WAIT)?;
    success(writer_a.wait(WAIT)?, "writer A")?;
    let second = reader.recv_bytes_timeout(WAIT)?;
    success(writer_b.wait(WAIT)?, "writer B")?;
    drop(probe);
    let closed = reader.recv_bytes_timeout(WAIT);
    say(
        out,
        &format!("  message 1 ({} bytes): {}", first.len(), quote(&first)),
    )?;
    say(
        out,
        &format!("  message 2 ({} bytes): {}", second.len(), quote(&second)),
    )?;
    drop(fifo);
    let fixed_ok = b_waited && first == a && second == b && matches!(closed, Err(Error::Closed));
    say(
        out,
        "Each message whole; then the end of the stream, cleanly.",
    )?;
    Ok((naive_failed, fixed_ok))
}

// ---------------------------------------------------------------------------
// 4. Racing readers
// ---------------------------------------------------------------------------

/// What a naive reader tells the parent after each step.
fn report_step(tx: &Sender, what: &[u8]) -> Result<()> {
    tx.send_bytes(what)
}

fn racing_readers(out: &mut dyn Write) -> Result<(bool, bool)> {
    let messages: Vec<Vec<u8>> = vec![
        b"Spam 000: Geek University.".to_vec(),
        b"Spam 001: Geek University.".to_vec(),
    ];
    say(
        out,
        "The naive code: two readers share the read end of one framed pipe, with no lock.",
    )?;
    say(
        out,
        "Each reads a message as CPython's Connection.recv_bytes does: read the 4-byte",
    )?;
    say(
        out,
        "length header, then read that many bytes. The writer sends two messages first.",
    )?;
    say(out, "")?;

    let (data_r, data_w) = new_pipe()?;
    let writer = {
        let tx = Sender::from_fd(data_w);
        let msgs = messages.clone();
        spawn(move || {
            for m in &msgs {
                tx.send_bytes(m)?;
            }
            Ok(Vec::new())
        })?
    };
    success(writer.wait(WAIT)?, "the writer")?;

    // Each reader: on "go", read a header and report it; on "go", read the
    // payload it announced (if it is believable) and report it.
    let mut readers = Vec::new();
    let mut gos = Vec::new();
    let mut reports = Vec::new();
    for _ in 0..2 {
        let fd = dup(&data_r)?;
        let (go_tx, mut go_rx) = pipe()?;
        let (rep_tx, rep_rx) = pipe()?;
        readers.push(spawn(move || {
            wait_go(&mut go_rx)?;
            let header = read_exact(fd.as_fd(), frame::HEADER_LEN)?;
            report_step(&rep_tx, &header)?;
            let len = u32::from_be_bytes([header[0], header[1], header[2], header[3]]) as usize;
            wait_go(&mut go_rx)?;
            if len > 1 << 20 {
                // Python would try to read (and allocate) all of it.
                report_step(&rep_tx, b"")?;
            } else {
                report_step(&rep_tx, &read_exact(fd.as_fd(), len)?)?;
            }
            Ok(Vec::new())
        })?);
        gos.push(go_tx);
        reports.push(rep_rx);
    }
    drop(data_r);
    let header_len = |h: &[u8]| u32::from_be_bytes([h[0], h[1], h[2], h[3]]);
    go(&gos[0])?;
    let h1 = reports[0].recv_bytes_timeout(WAIT)?;
    go(&gos[1])?;
    let h2 = reports[1].recv_bytes_timeout(WAIT)?;
    go(&gos[0])?;
    let p1 = reports[0].recv_bytes_timeout(WAIT)?;
    go(&gos[1])?;
    let p2 = reports[1].recv_bytes_timeout(WAIT)?;
    for r in fork::wait_all(readers, WAIT)? {
        success(r, "a reader")?;
    }
    say(
        out,
        &format!(
            "1. Reader 1 read a header: {} -> {} bytes follow.",
            quote(&h1),
            header_len(&h1)
        ),
    )?;
    say(
        out,
        &format!(
            "2. Reader 2 read a header: {} -> {} bytes follow. Nonsense: those are",
            quote(&h2),
            header_len(&h2)
        ),
    )?;
    say(
        out,
        "   the first 4 bytes of message 1's payload. (Python would now try to read them.)",
    )?;
    say(
        out,
        &format!(
            "3. Reader 1 read {} bytes as message 1: {}",
            p1.len(),
            quote(&p1)
        ),
    )?;
    say(
        out,
        &format!(
            "   Sent was {}: it lost its first 4 bytes to reader 2 and took",
            quote(&messages[0])
        ),
    )?;
    say(out, "   message 2's header instead.")?;
    let _ = p2;
    let naive_failed = p1 != messages[0];
    say(out, "")?;
    say(
        out,
        "Why: each read(2) takes some bytes off the front of the pipe, whoever calls it.",
    )?;
    say(
        out,
        "A message is a header and a payload read in separate calls; with two readers,",
    )?;
    say(
        out,
        "the other one can take bytes in between. Nothing in a pipe belongs to a reader.",
    )?;
    say(out, "")?;

    say(
        out,
        "The fix: ipc_harness::Queue. A consumer holds the queue's consumer lock for a",
    )?;
    say(
        out,
        "whole message. Same two messages, same two readers, same turns:",
    )?;
    let q = Queue::new()?;
    let writer = {
        let q = q.clone();
        let msgs = messages.clone();
        spawn(move || {
            for m in &msgs {
                q.put_bytes(m)?;
            }
            Ok(Vec::new())
        })?
    };
    success(writer.wait(WAIT)?, "the writer")?;
    let mut readers = Vec::new();
    let mut gos = Vec::new();
    for _ in 0..2 {
        let (go_tx, mut go_rx) = pipe()?;
        let q = q.clone();
        readers.push(spawn(move || {
            q.close_producer();
            wait_go(&mut go_rx)?;
            q.get_bytes_timeout(WAIT)
        })?);
        gos.push(go_tx);
    }
    q.close_producer();
    let mut received = Vec::new();
    for (i, (reader, go_tx)) in readers.into_iter().zip(&gos).enumerate() {
        go(go_tx)?;
        let got = success(reader.wait(WAIT)?, "a reader")?;
        say(out, &format!("  reader {} got: {}", i + 1, quote(&got)))?;
        received.push(got);
    }
    let fixed_ok = received == messages;
    say(out, "Each message went whole to exactly one reader.")?;
    Ok((naive_failed, fixed_ok))
}

// ---------------------------------------------------------------------------
// 5. Ignored short write
// ---------------------------------------------------------------------------

fn ignored_short_write(out: &mut dyn Write) -> Result<(bool, bool)> {
    let (data_r, data_w) = new_pipe()?;
    let cap = set_capacity(data_w.as_fd(), 4096)?;
    let messages: Vec<Vec<u8>> = vec![
        vec![b'a'; cap + cap / 2],
        b"Spam 001".to_vec(),
        b"Spam 002".to_vec(),
    ];
    say(
        out,
        "The naive code: a writer on a non-blocking pipe sends each framed message with one",
    )?;
    say(
        out,
        "write(2) and ignores the count it returns (as os.write's return value often is).",
    )?;
    say(
        out,
        &format!("The pipe holds {cap} bytes. After each write the reader takes what is there."),
    )?;
    say(out, "")?;

    sys::set_nonblocking(data_w.as_fd(), true).map_err(|e| Error::io("O_NONBLOCK", e))?;
    let (go_tx, mut go_rx) = pipe()?;
    let (done_tx, mut done_rx) = pipe()?;
    let msgs = messages.clone();
    let writer = spawn(move || {
        let mut counts = String::new();
        for m in &msgs {
            let whole = frame::encode(m);
            // The bug: whatever write() returns, carry on as if it all went.
            let result = sys::write(data_w.as_fd(), &whole);
            counts.push_str(&match result {
                Ok(n) => format!("{} {n}\n", whole.len()),
                Err(e) => format!("{} {e}\n", whole.len()),
            });
            go(&done_tx)?;
            wait_go(&mut go_rx)?;
        }
        Ok(counts.into_bytes())
    })?;
    let mut stream = Vec::new();
    for _ in &messages {
        wait_go(&mut done_rx)?;
        drain(data_r.as_fd(), &mut stream)?;
        go(&go_tx)?;
    }
    let counts = String::from_utf8_lossy(&success(writer.wait(WAIT)?, "the writer")?).into_owned();
    drain(data_r.as_fd(), &mut stream)?;
    say(
        out,
        "What the writer did (it believed every send succeeded):",
    )?;
    for (i, line) in counts.lines().enumerate() {
        let (asked, got) = line.split_once(' ').unwrap_or((line, "?"));
        say(
            out,
            &format!(
                "  send {}: write of a {asked}-byte frame returned {got}",
                i + 1
            ),
        )?;
    }
    let (msgs, end) = decode_all(&stream);
    say(
        out,
        &format!(
            "What the reader got: {} bytes in all; {} whole messages, then: {}",
            stream.len(),
            msgs.len(),
            ipc_harness::error::chain(&end)
        ),
    )?;
    say(
        out,
        "Message 1's header promised more bytes than were ever written, so the reader",
    )?;
    say(
        out,
        "swallowed messages 2 and 3 as the rest of message 1, and then the stream ended.",
    )?;
    let naive_failed = msgs != messages;
    say(out, "")?;
    say(
        out,
        "Why: a non-blocking write(2) to a pipe takes what fits and returns the count;",
    )?;
    say(
        out,
        &format!(
            "over PIPE_BUF ({}) bytes it may take part of the buffer. The rest is the",
            sys::PIPE_BUF
        ),
    )?;
    say(out, "caller's to write again, once the pipe has room.")?;
    say(out, "")?;

    say(
        out,
        "The fix: ipc_harness::pipe()'s Sender writes until every byte is in, waiting for",
    )?;
    say(
        out,
        "room as the reader makes it. Same messages, same 4 KiB pipe, reader in step:",
    )?;
    let (r, w) = new_pipe()?;
    set_capacity(w.as_fd(), 4096)?;
    let tx = Sender::from_fd(w);
    let mut rx = Receiver::from_fd(r);
    let msgs = messages.clone();
    let writer = spawn(move || {
        for m in &msgs {
            tx.send_bytes(m)?;
        }
        Ok(Vec::new())
    })?;
    let mut received = Vec::new();
    let end = loop {
        match rx.recv_bytes_timeout(WAIT) {
            Ok(m) => {
                say(
                    out,
                    &format!("  received ({} bytes): {}", m.len(), quote(&m)),
                )?;
                received.push(m);
            }
            Err(e) => break e,
        }
    };
    success(writer.wait(WAIT)?, "the writer")?;
    let fixed_ok = received == messages && matches!(end, Error::Closed);
    say(out, "  then the end of the stream, at a message boundary.")?;
    Ok((naive_failed, fixed_ok))
}

// ---------------------------------------------------------------------------
// 6. EOF that never comes
// ---------------------------------------------------------------------------

/// Runs a reader that reports each message to the parent, then "EOF" when
/// the stream ends. Returns (messages, saw end of stream, reader's fate).
fn eof_round(
    keep_write_end: bool,
    messages: &[Vec<u8>],
) -> Result<(Vec<Vec<u8>>, bool, ChildReport)> {
    let (tx, mut rx) = pipe()?;
    let kept = if keep_write_end {
        Some(dup(&tx)?)
    } else {
        None
    };
    let msgs = messages.to_vec();
    // The writer first: it takes the parent's write end with it.
    let writer = spawn(move || {
        for m in &msgs {
            tx.send_bytes(m)?;
        }
        Ok(Vec::new())
    })?;
    let (rep_tx, mut rep_rx) = pipe()?;
    let reader = spawn(move || {
        let _kept = kept; // the naive reader's own copy of the write end
        loop {
            match rx.recv_bytes() {
                Ok(m) => {
                    let mut line = b"M".to_vec();
                    line.extend(m);
                    rep_tx.send_bytes(&line)?;
                }
                Err(Error::Closed) => {
                    rep_tx.send_bytes(b"EOF")?;
                    return Ok(Vec::new());
                }
                Err(e) => return Err(e),
            }
        }
    })?;
    success(writer.wait(WAIT)?, "the writer")?;
    let mut got = Vec::new();
    for _ in messages {
        let line = rep_rx.recv_bytes_timeout(WAIT)?;
        got.push(line[1..].to_vec());
    }
    // The naive reader gets HANG to see an end of stream that cannot come;
    // the fixed one as long as it takes to be scheduled.
    let eof = match rep_rx.recv_bytes_timeout(if keep_write_end { HANG } else { WAIT }) {
        Ok(line) => line == b"EOF",
        Err(Error::Timeout) => false,
        Err(e) => return Err(e),
    };
    let report = reader.wait(if eof { WAIT } else { Duration::ZERO })?;
    Ok((got, eof, report))
}

fn eof_never_comes(out: &mut dyn Write) -> Result<(bool, bool)> {
    let messages: Vec<Vec<u8>> = (0..3).map(spam).collect();
    say(
        out,
        "The naive code: the parent makes a pipe and forks a writer and a reader. The",
    )?;
    say(
        out,
        "reader reads until the end of the stream, but never closed the copy of the write",
    )?;
    say(
        out,
        "end it inherited. The writer sends three messages and exits.",
    )?;
    say(out, "")?;
    let (got, eof, report) = eof_round(true, &messages)?;
    for m in &got {
        say(out, &format!("  reader received {}", quote(m)))?;
    }
    say(
        out,
        &format!(
            "  the writer exited; {} ms later the reader had still seen no end of stream.",
            HANG.as_millis()
        ),
    )?;
    say(
        out,
        &format!(
            "  The reader (pid {}) {}.",
            report.pid,
            describe_outcome(&report)
        ),
    )?;
    let naive_failed = !eof && matches!(report.outcome, Outcome::TimedOut { .. });
    say(out, "")?;
    say(
        out,
        "Why: read(2) on a pipe returns 0 (end of stream) only when every write end, in",
    )?;
    say(
        out,
        "every process, is closed. The reader holds one itself, so it waits forever for",
    )?;
    say(
        out,
        "itself. (Without our deadline it would still be waiting.)",
    )?;
    say(out, "")?;

    say(
        out,
        "The fix: give each process only the ends it uses. With harness::fork, values moved",
    )?;
    say(
        out,
        "into a child are closed in the parent; the reader holds no write end:",
    )?;
    let (got, eof, report) = eof_round(false, &messages)?;
    for m in &got {
        say(out, &format!("  reader received {}", quote(m)))?;
    }
    say(
        out,
        &format!(
            "  then {}; the reader {}.",
            if eof {
                "end of stream (Error::Closed)"
            } else {
                "no end of stream (unexpected)"
            },
            report.outcome
        ),
    )?;
    let fixed_ok = eof && got == messages && report.is_success();
    Ok((naive_failed, fixed_ok))
}

// ---------------------------------------------------------------------------
// 7. FIFO open blocks; ENXIO
// ---------------------------------------------------------------------------

fn fifo_open_blocks(out: &mut dyn Write) -> Result<(bool, bool)> {
    let scratch = Scratch::new()?;
    let path = scratch.path("seed.fifo");
    let fifo = Fifo::create(&path)?;
    say(
        out,
        "The naive code: the son opens the FIFO for writing, open(path, O_WRONLY), as",
    )?;
    say(
        out,
        "Python's open(path, 'w') does, before any father has it open for reading.",
    )?;
    say(out, "")?;
    let p = path.clone();
    let son = spawn(move || {
        let _f = std::fs::OpenOptions::new()
            .write(true)
            .open(&p)
            .map_err(|e| Error::path_io("open", &p, e))?;
        Ok(b"opened".to_vec())
    })?;
    let report = son.wait(HANG)?;
    say(
        out,
        &format!(
            "  after {} ms its open had not returned: the son (pid {}) {}.",
            HANG.as_millis(),
            report.pid,
            describe_outcome(&report)
        ),
    )?;
    let blocked = matches!(report.outcome, Outcome::TimedOut { .. });
    say(
        out,
        "  Then it tries again with O_NONBLOCK, so as not to wait:",
    )?;
    let nonblocking = std::fs::OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(&path);
    let enxio = match &nonblocking {
        Err(e) => {
            say(
                out,
                &format!("  open(path, O_WRONLY | O_NONBLOCK) failed: {e}"),
            )?;
            e.raw_os_error() == Some(libc::ENXIO)
        }
        Ok(_) => {
            say(
                out,
                "  open(path, O_WRONLY | O_NONBLOCK) succeeded (unexpected)",
            )?;
            false
        }
    };
    drop(nonblocking);
    say(
        out,
        "  (Python: OSError: [Errno 6] No such device or address, a baffling message.)",
    )?;
    let naive_failed = blocked && enxio;
    say(out, "")?;
    say(
        out,
        "Why: POSIX open(2) of a FIFO blocks until the other side opens it too: a writer",
    )?;
    say(
        out,
        "waits for a reader, a reader for a writer. With O_NONBLOCK a reader opens at once,",
    )?;
    say(
        out,
        "but a writer with no reader fails with ENXIO (\"No such device or address\").",
    )?;
    say(out, "")?;

    say(
        out,
        "The fix: ipc_harness::fifo says how long to wait, and says what went wrong:",
    )?;
    let start = Instant::now();
    let timed = FifoWriter::open(&path, Wait::Timeout(Duration::from_millis(200)));
    let took = start.elapsed();
    let timeout_ok = matches!(timed, Err(Error::Timeout));
    say(
        out,
        &format!(
            "  FifoWriter::open(path, Wait::Timeout(200 ms)) gave up after {} ms: {}",
            took.as_millis(),
            match &timed {
                Err(e) => ipc_harness::error::chain(e),
                Ok(_) => "it opened (unexpected)".into(),
            }
        ),
    )?;
    drop(timed);
    let nb = FifoWriter::open(&path, Wait::NonBlocking);
    let no_reader_ok = matches!(nb, Err(Error::NoReader { .. }));
    say(
        out,
        &format!(
            "  FifoWriter::open(path, Wait::NonBlocking): {}",
            match &nb {
                Err(e) =>
                    ipc_harness::error::chain(e).replace(&scratch.dir.display().to_string(), "$TMP"),
                Ok(_) => "it opened (unexpected)".into(),
            }
        ),
    )?;
    drop(nb);
    let p = path.clone();
    let son = spawn(move || {
        FifoWriter::open(&p, Wait::Timeout(WAIT))?.send_bytes(b"Spam 000")?;
        Ok(Vec::new())
    })?;
    let mut father = FifoReader::open(&path, Wait::Timeout(WAIT))?;
    let got = father.recv_bytes_timeout(WAIT)?;
    success(son.wait(WAIT)?, "the son")?;
    say(
        out,
        &format!(
            "  With the father opening too (each side waiting up to 10 s), the son's message arrived: {}",
            quote(&got)
        ),
    )?;
    drop(father);
    drop(fifo);
    let fixed_ok = timeout_ok && no_reader_ok && got == b"Spam 000";
    Ok((naive_failed, fixed_ok))
}

// ---------------------------------------------------------------------------
// 8. FIFO in a missing directory
// ---------------------------------------------------------------------------

fn fifo_missing_directory(out: &mut dyn Write) -> Result<(bool, bool)> {
    let scratch = Scratch::new()?;
    let path = scratch.path("missing").join("seed.fifo");
    let shown = Path::new("$TMP").join("missing").join("seed.fifo");
    say(
        out,
        &format!(
            "The naive code: the father calls mkfifo({}), as the seed's os.mkfifo did,",
            shown.display()
        ),
    )?;
    say(out, "in a directory that does not exist.")?;
    say(out, "")?;
    let p = path.clone();
    let father = spawn(move || {
        Ok(match sys::fifo::mkfifo(&p, 0o600) {
            Ok(()) => b"created".to_vec(),
            Err(e) => e.to_string().into_bytes(),
        })
    })?;
    let said = String::from_utf8_lossy(&success(father.wait(WAIT)?, "the father")?).into_owned();
    say(out, &format!("  mkfifo failed: {said}"))?;
    say(
        out,
        "  (The seed died here with FileNotFoundError: [Errno 2] No such file or directory.)",
    )?;
    say(
        out,
        "  It does not say that the missing thing is the directory, not the FIFO it was",
    )?;
    say(out, "  asked to create.")?;
    let naive_failed = said.contains("No such file") && !path.exists();
    say(out, "")?;
    say(
        out,
        "Why: mkfifo(3) creates one directory entry; like open(2) with O_CREAT it fails with",
    )?;
    say(
        out,
        "ENOENT when a directory on the way is missing, and it never creates directories.",
    )?;
    say(out, "")?;

    say(
        out,
        "The fix: ipc_harness::Fifo names the missing directory, and can create it:",
    )?;
    let clear = Fifo::create(&path);
    let text = match &clear {
        Err(e) => ipc_harness::error::chain(e).replace(&scratch.dir.display().to_string(), "$TMP"),
        Ok(_) => "it was created (unexpected)".into(),
    };
    say(out, &format!("  Fifo::create: {text}"))?;
    let clear_ok = matches!(clear, Err(Error::NoSuchDirectory { .. }));
    drop(clear);
    let fifo = Fifo::create_all(&path)?;
    say(
        out,
        "  Fifo::create_all made the directory (mode 0700) and the FIFO (mode 0600).",
    )?;
    let p = path.clone();
    let son = spawn(move || {
        FifoWriter::open(&p, Wait::Timeout(WAIT))?.send_bytes(b"Spam 000")?;
        Ok(Vec::new())
    })?;
    let mut father = FifoReader::open(&path, Wait::Timeout(WAIT))?;
    let got = father.recv_bytes_timeout(WAIT)?;
    success(son.wait(WAIT)?, "the son")?;
    say(
        out,
        &format!("  The son's message came through it: {}", quote(&got)),
    )?;
    drop(father);
    drop(fifo);
    let fixed_ok = clear_ok && got == b"Spam 000";
    Ok((naive_failed, fixed_ok))
}

// ---------------------------------------------------------------------------
// 9. A producer killed holding the queue's lock
// ---------------------------------------------------------------------------

/// A naive queue: a framed pipe guarded by a lock that is one byte in a
/// second pipe (take the byte to lock, put it back to unlock). Like a POSIX
/// semaphore (what Python's `multiprocessing.Lock` is), nobody gives the
/// lock back when its holder dies.
struct NaiveQueue {
    data: Sender,
    lock_r: OwnedFd,
    lock_w: OwnedFd,
}

impl NaiveQueue {
    /// Takes the token, waiting as long as it takes (like `sem_wait`).
    fn lock(&self) -> Result<()> {
        let mut token = [0u8; 1];
        match sys::read(self.lock_r.as_fd(), &mut token) {
            Ok(1) => Ok(()),
            Ok(_) => Err(Error::Closed),
            Err(e) => Err(Error::io("read", e)),
        }
    }

    fn unlock(&self) -> Result<()> {
        sys::write(self.lock_w.as_fd(), b"L")
            .map(drop)
            .map_err(|e| Error::io("write", e))
    }

    fn put(&self, msg: &[u8]) -> Result<()> {
        self.lock()?;
        self.data.send_bytes(msg)?;
        self.unlock()
    }
}

fn queue_killed_holding_lock(out: &mut dyn Write) -> Result<(bool, bool)> {
    say(
        out,
        "The naive code: a queue whose writers share one lock that the kernel does not",
    )?;
    say(
        out,
        "release when its holder dies, as Python's multiprocessing.Queue does (its lock is a",
    )?;
    say(
        out,
        "POSIX semaphore; CPython gh-87971). Here the lock is a one-byte token in a pipe,",
    )?;
    say(
        out,
        "which behaves the same. Producer A puts \"A 000\", takes the lock for its next",
    )?;
    say(
        out,
        "put, and is SIGKILLed holding it. Producer B then puts three messages.",
    )?;
    say(out, "")?;
    let (lock_r, lock_w) = new_pipe()?;
    sys::write(lock_w.as_fd(), b"L").map_err(|e| Error::io("write", e))?;
    let (data_r, data_w) = new_pipe()?;
    let q = NaiveQueue {
        data: Sender::from_fd(data_w),
        lock_r,
        lock_w,
    };
    let victim = spawn(|| {
        q.put(b"A 000")?;
        q.lock()?;
        sys::kill(sys::getpid(), libc::SIGKILL).map_err(|e| Error::io("kill", e))?;
        Ok(Vec::new())
    })?;
    let victim = victim.wait(WAIT)?;
    say(
        out,
        &format!("  Producer A (pid {}) {}.", victim.pid, victim.outcome),
    )?;
    let survivor = spawn(|| {
        for i in 0..3 {
            q.put(format!("B {i:03}").as_bytes())?;
        }
        Ok(Vec::new())
    })?;
    let survivor = survivor.wait(HANG)?;
    say(
        out,
        &format!(
            "  Producer B (pid {}) {}.",
            survivor.pid,
            describe_outcome(&survivor)
        ),
    )?;
    drop(q);
    let mut rx = Receiver::from_fd(data_r);
    let mut got = Vec::new();
    while let Ok(m) = rx.recv_bytes_timeout(Duration::from_millis(50)) {
        got.push(quote(&m));
    }
    say(
        out,
        &format!(
            "  The consumer got: {} and then nothing, ever.",
            got.join(", ")
        ),
    )?;
    let naive_failed = victim.outcome == Outcome::Signaled(libc::SIGKILL)
        && matches!(survivor.outcome, Outcome::TimedOut { .. });
    say(out, "")?;
    say(
        out,
        "Why: a semaphore (or any lock kept in user space) is just a count; when the",
    )?;
    say(
        out,
        "process that took it dies, nothing gives it back, and everyone else waits forever.",
    )?;
    say(out, "")?;

    say(
        out,
        "The fix: ipc_harness::Queue's locks are robust process-shared mutexes. When the",
    )?;
    say(
        out,
        "holder dies, the kernel hands the next locker EOWNERDEAD and it repairs the queue.",
    )?;
    say(
        out,
        "Same story: A dies holding the producer lock (a test hook, KillPoint::ProducerLocked).",
    )?;
    let q = Queue::new()?;
    let victim = {
        let q = q.clone();
        spawn(move || {
            q.put_bytes(b"A 000")?;
            set_kill_point(Some(KillPoint::ProducerLocked), 1);
            q.put_bytes(b"A 001")?;
            Ok(Vec::new())
        })?
    };
    let victim = victim.wait(WAIT)?;
    say(
        out,
        &format!("  Producer A (pid {}) {}.", victim.pid, victim.outcome),
    )?;
    let survivor = {
        let q = q.clone();
        spawn(move || {
            for i in 0..3 {
                q.put_bytes(format!("B {i:03}").as_bytes())?;
            }
            Ok(Vec::new())
        })?
    };
    let survivor = survivor.wait(WAIT)?;
    say(
        out,
        &format!("  Producer B (pid {}) {}.", survivor.pid, survivor.outcome),
    )?;
    q.close_producer();
    let mut got = Vec::new();
    let end = loop {
        match q.get_bytes_timeout(WAIT) {
            Ok(m) => got.push(m),
            Err(e) => break e,
        }
    };
    let shown: Vec<String> = got.iter().map(|m| quote(m)).collect();
    say(
        out,
        &format!(
            "  The consumer got: {}, then {} (every producer is gone).",
            shown.join(", "),
            ipc_harness::error::chain(&end)
        ),
    )?;
    say(
        out,
        &format!(
            "  Messages lost with the dead producer: {} (it died before writing \"A 001\").",
            q.lost_to_dead_members()
        ),
    )?;
    let expected: Vec<Vec<u8>> = [&b"A 000"[..], b"B 000", b"B 001", b"B 002"]
        .iter()
        .map(|m| m.to_vec())
        .collect();
    let fixed_ok = victim.outcome == Outcome::Signaled(libc::SIGKILL)
        && survivor.is_success()
        && got == expected
        && matches!(end, Error::Closed);
    Ok((naive_failed, fixed_ok))
}

// ---------------------------------------------------------------------------
// 10. task_done() too many times
// ---------------------------------------------------------------------------

/// The naive counter runs as plain arithmetic (it is the missing check, not
/// an IPC effect); the fix runs for real across a fork.
fn task_done_too_many_times(out: &mut dyn Write) -> Result<(bool, bool)> {
    say(
        out,
        "The naive code: a counter of unfinished tasks with no check. The parent puts",
    )?;
    say(
        out,
        "item 1; a worker finishes it and, by a bug, calls task_done() twice; then the",
    )?;
    say(out, "parent puts item 2 and joins.")?;
    let mut unchecked: i64 = 0;
    unchecked += 1; // put item 1
    unchecked -= 1; // task_done
    unchecked -= 1; // the extra task_done: -1, and nobody notices
    say(
        out,
        &format!("  after the two task_done() calls the counter says {unchecked}"),
    )?;
    unchecked += 1; // put item 2
    say(
        out,
        &format!("  after item 2 is put it says {unchecked}: nothing unfinished"),
    )?;
    let naive_failed = unchecked == 0;
    if naive_failed {
        say(
            out,
            "  so join() returns at once, while item 2 has not even been taken.",
        )?;
    }
    say(out, "")?;
    say(
        out,
        "Why: join() trusts the counter, and the extra call pushed it below zero.",
    )?;
    say(
        out,
        "Python refuses the extra call: ValueError: task_done() called too many times.",
    )?;
    say(out, "")?;
    say(
        out,
        "The fix: ipc_harness::JoinableQueue, shared with a forked worker that takes",
    )?;
    say(out, "item 1 and calls task_done() twice:")?;
    let jq = ipc_harness::JoinableQueue::new()?;
    jq.put_bytes(b"item 1")?;
    let worker = {
        let jq = jq.clone();
        fork::spawn(move || {
            jq.close_producer();
            let got = jq
                .get_bytes()
                .map(|m| String::from_utf8_lossy(&m).into_owned());
            let show = |r: Result<()>| match r {
                Ok(()) => "accepted".to_string(),
                Err(e) => format!("refused: {e}"),
            };
            let first = show(jq.task_done());
            let second = show(jq.task_done());
            format!("{got:?}|{first}|{second}").into_bytes()
        })?
    };
    let report = worker.wait(Duration::from_secs(10))?;
    let text = String::from_utf8_lossy(&report.output).into_owned();
    let parts: Vec<&str> = text.split('|').collect();
    let first = parts.get(1).copied().unwrap_or("?");
    let second = parts.get(2).copied().unwrap_or("?");
    say(out, &format!("  first task_done():  {first}"))?;
    say(out, &format!("  second task_done(): {second}"))?;
    let refused =
        first == "accepted" && second == format!("refused: {}", Error::TaskDoneTooManyTimes);
    jq.put_bytes(b"item 2")?;
    jq.close_producer();
    let join = jq.join_timeout(Duration::from_millis(200));
    let waited = matches!(&join, Err(Error::JoinTimeout { unfinished: 1, .. }));
    match &join {
        Err(e) => say(
            out,
            &format!("  after item 2 is put, join_timeout(200 ms): {e}"),
        )?,
        Ok(()) => say(
            out,
            "  after item 2 is put, join_timeout(200 ms) returned: WRONG",
        )?,
    }
    say(
        out,
        "The extra call changed nothing: join() waits for item 2, as it must.",
    )?;
    Ok((naive_failed, report.is_success() && refused && waited))
}
