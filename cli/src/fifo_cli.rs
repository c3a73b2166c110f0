//! The father/son FIFO example (Python's `os.mkfifo`) as library functions, behind
//! `ipc-harness fifo listen PATH` and `ipc-harness fifo send PATH [MESSAGE...]`:
//! two terminals, two processes that share nothing but the FIFO's path.
//!
//! - [`listen`] (the father) creates the FIFO if nothing is at the path
//!   (a missing directory is a clear error unless
//!   [`ListenOptions::parents`]), waits for writers, and prints each message
//!   or line it receives with its pid and a UTC timestamp:
//!   `Father (1234) received: Spam 000 at 2026-11-22T04:01:02.345678Z`.
//!   It returns when the last writer has closed (unless told to keep
//!   listening) or after [`ListenOptions::max_messages`], and removes the
//!   FIFO if it created it.
//! - [`send`] (the son) opens the FIFO by path, waiting for a listener as
//!   [`SendOptions::wait`] says, and sends each message, framed or as a line.
//!
//! Both sides must agree on framing: `--lines` on both, or on neither.
//! Both refuse a FIFO other users can reach (owned by someone else, open to
//! group or others, or in a world-writable directory without the sticky
//! bit) unless given `--allow-shared` ([`FifoOptions::allow_shared`]).
//!
//! [`FifoCommand`] is the clap definition of both subcommands; the binary
//! nests it as `ipc-harness fifo ...` and calls [`FifoCommand::run`].
//!
//! ```
//! use ipc_harness::fifo::Wait;
//! use ipc_harness_cli::fifo_cli::{self, ListenOptions, SendOptions};
//! use ipc_harness::harness::fork;
//! use std::time::Duration;
//!
//! let dir = tempfile::tempdir()?;
//! let path = dir.path().join("spam");
//! let son_path = path.clone();
//! // The son waits (up to 10 s) until the father has created and opened
//! // the FIFO; the father waits for the son. Neither can deadlock.
//! let son = fork::spawn(move || {
//!     let opts = SendOptions {
//!         lines: true,
//!         wait: Wait::Timeout(Duration::from_secs(10)),
//!         ..SendOptions::default()
//!     };
//!     let mut sent = 0;
//!     // The FIFO may not exist yet: retry until the father has made it.
//!     for _ in 0..1000 {
//!         match fifo_cli::send(&son_path, &opts, ["Spam 000", "Spam 001"]) {
//!             Ok(n) => { sent = n; break; }
//!             Err(ipc_harness::Error::NotFound { .. }) => std::thread::sleep(Duration::from_millis(10)),
//!             Err(e) => panic!("{e}"),
//!         }
//!     }
//!     vec![sent as u8]
//! })?;
//! let mut out = Vec::new();
//! let opts = ListenOptions { lines: true, ..ListenOptions::default() };
//! let received = fifo_cli::listen(&path, &opts, &mut out)?;
//! assert_eq!(received, 2);
//! assert_eq!(son.wait(Duration::from_secs(10))?.expect_success(), [2]);
//! let out = String::from_utf8(out)?;
//! assert!(out.lines().next().unwrap().contains("received: Spam 000 at "), "{out}");
//! assert!(!path.exists(), "the listener removes the FIFO it created");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use ipc_harness::error::{Error, Result};
use ipc_harness::fifo::{FifoOptions, FifoReader, FifoWriter, LineReader, Wait};
use ipc_harness::sys;

/// How [`listen`] behaves.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListenOptions {
    /// Create missing parent directories (mode `0700`) for a new FIFO.
    pub parents: bool,
    /// Receive lines instead of framed messages.
    pub lines: bool,
    /// Keep waiting for new writers after the last one closes, instead of
    /// returning (until `max_messages`, or forever).
    pub keep_listening: bool,
    /// Return after this many messages (`None`: no limit).
    pub max_messages: Option<usize>,
    /// Accept a FIFO other users can reach
    /// ([`FifoOptions::allow_shared`]).
    pub allow_shared: bool,
    /// Framed messages in chunked mode ([`FifoOptions::chunked`]): many
    /// writers without a lock, a dead one losing only its own message.
    pub chunked: bool,
}

/// How [`send`] behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SendOptions {
    /// Send lines instead of framed messages.
    pub lines: bool,
    /// How long to wait for a listener to open the FIFO.
    pub wait: Wait,
    /// Accept a FIFO other users can reach
    /// ([`FifoOptions::allow_shared`]).
    pub allow_shared: bool,
    /// Framed messages in chunked mode ([`FifoOptions::chunked`]).
    pub chunked: bool,
}

impl Default for SendOptions {
    fn default() -> Self {
        SendOptions {
            lines: false,
            wait: Wait::Blocking,
            allow_shared: false,
            chunked: false,
        }
    }
}

/// `ipc-harness fifo ...`: the clap subcommands, ready to be nested in the
/// binary's command enum (see [`FifoCommand::run`]).
#[derive(Debug, Clone, PartialEq, clap::Subcommand)]
pub enum FifoCommand {
    /// The father: create the FIFO if nothing is at PATH, then print each
    /// message (or line) received, with this process's pid and the time.
    Listen(ListenArgs),
    /// The son: send each MESSAGE (or, with none, each line of standard
    /// input) to the FIFO at PATH, waiting for a listener.
    Send(SendArgs),
}

/// Arguments of `fifo listen`.
#[derive(Debug, Clone, PartialEq, clap::Args)]
pub struct ListenArgs {
    /// Where the FIFO is (created, mode 0600, if nothing is there).
    pub path: PathBuf,
    /// Create missing parent directories (mode 0700).
    #[arg(long)]
    pub parents: bool,
    /// Receive newline-terminated lines instead of framed messages.
    #[arg(long)]
    pub lines: bool,
    /// Keep listening for new writers after the last one has closed.
    #[arg(long)]
    pub keep_listening: bool,
    /// Stop after N messages.
    #[arg(long, value_name = "N")]
    pub count: Option<usize>,
    /// Accept a FIFO other users can reach: owned by someone else, open to
    /// group or others, or in a world-writable directory without the sticky
    /// bit (refused by default).
    #[arg(long)]
    pub allow_shared: bool,
    /// Framed messages in chunked mode: every write one atomic chunk
    /// naming its writer, no lock, a writer that dies mid-message losing
    /// only that message. Every sender must use --chunked too.
    #[arg(long, conflicts_with = "lines")]
    pub chunked: bool,
}

/// Arguments of `fifo send`.
#[derive(Debug, Clone, PartialEq, clap::Args)]
pub struct SendArgs {
    /// The FIFO to send to.
    pub path: PathBuf,
    /// The messages; with none, each line of standard input is one.
    pub messages: Vec<String>,
    /// Send newline-terminated lines instead of framed messages.
    #[arg(long)]
    pub lines: bool,
    /// Wait at most this many seconds for a listener (default: forever).
    #[arg(long, value_name = "SECONDS", value_parser = parse_seconds)]
    pub timeout: Option<Duration>,
    /// Do not wait for a listener: fail at once if there is none.
    #[arg(long, conflicts_with = "timeout")]
    pub nonblock: bool,
    /// Accept a FIFO other users can reach: owned by someone else, open to
    /// group or others, or in a world-writable directory without the sticky
    /// bit (refused by default).
    #[arg(long)]
    pub allow_shared: bool,
    /// Framed messages in chunked mode (the listener must use --chunked
    /// too): no lock, and a sender killed mid-message loses only its own.
    #[arg(long, conflicts_with = "lines")]
    pub chunked: bool,
}

fn parse_seconds(s: &str) -> std::result::Result<Duration, String> {
    let secs: f64 = s
        .parse()
        .map_err(|_| format!("{s:?} is not a number of seconds"))?;
    Duration::try_from_secs_f64(secs)
        .map_err(|_| format!("{s:?} is not a usable number of seconds"))
}

impl FifoCommand {
    /// Runs the subcommand: [`listen`] writing to `out`, or [`send`] (with
    /// `stdin`'s lines when no message was given, through
    /// [`send_lines_from`]). Returns how many messages were received or
    /// sent.
    pub fn run(self, out: &mut impl Write, stdin: impl BufRead) -> Result<usize> {
        match self {
            FifoCommand::Listen(a) => {
                let opts = ListenOptions {
                    parents: a.parents,
                    lines: a.lines,
                    keep_listening: a.keep_listening,
                    max_messages: a.count,
                    allow_shared: a.allow_shared,
                    chunked: a.chunked,
                };
                listen(&a.path, &opts, out)
            }
            FifoCommand::Send(a) => {
                let wait = match (a.nonblock, a.timeout) {
                    (true, _) => Wait::NonBlocking,
                    (false, Some(t)) => Wait::Timeout(t),
                    (false, None) => Wait::Blocking,
                };
                let opts = SendOptions {
                    lines: a.lines,
                    wait,
                    allow_shared: a.allow_shared,
                    chunked: a.chunked,
                };
                if a.messages.is_empty() {
                    send_lines_from(&a.path, &opts, stdin)
                } else {
                    send(&a.path, &opts, &a.messages)
                }
            }
        }
    }
}

impl FifoCommand {
    /// The one-line message for `e`, an error from [`FifoCommand::run`] on
    /// this command: the error and its sources
    /// ([`chain`](ipc_harness::error::chain)), with what to do next where
    /// the error alone does not say it:
    ///
    /// - `send` into a directory that does not exist, or to a path with
    ///   nothing at it: `send` creates neither; `listen` does (the
    ///   directory with `--parents`), so start it first.
    /// - A framed `listen` that read a length header which looks like text
    ///   (e.g. `not `, 1852797984 bytes): the sender sent lines; use
    ///   `--lines` on both sides.
    pub fn describe(&self, e: &Error) -> String {
        let text = ipc_harness::error::chain(e);
        match (self, e) {
            (FifoCommand::Send(a), Error::NoSuchDirectory { path }) => format!(
                "the directory {} does not exist, so there is no FIFO at {} to send to; `fifo send` creates neither: start `ipc-harness fifo listen {} --parents{}` first (it creates both), then send",
                parent_or_dot(path).display(),
                path.display(),
                shell_word(path),
                if a.lines { " --lines" } else { "" },
            ),
            (FifoCommand::Send(a), Error::NotFound { path }) => format!(
                "{text}: `fifo send` does not create the FIFO; `ipc-harness fifo listen {}{}` does: start it first, then send",
                shell_word(path),
                if a.lines { " --lines" } else { "" },
            ),
            (FifoCommand::Listen(a), _) if !a.lines => match text_header(e) {
                Some(header) => format!(
                    "{text}; the 4-byte length header reads as text ({header:?}), so the sender is probably sending lines: use --lines on both sides (`ipc-harness fifo listen --lines {path}` and `ipc-harness fifo send --lines {path} ...`), or on neither",
                    path = shell_word(&a.path),
                ),
                None => text,
            },
            _ => text,
        }
    }
}

/// The length a framed receiver read from a header, if `e` reports one
/// (a message cut short, or over the limit), as the 4 bytes it came from,
/// when those bytes are printable ASCII text: a line, not a header.
fn text_header(e: &Error) -> Option<String> {
    let len = match e {
        Error::Truncated { expected, .. } => *expected,
        Error::TooLarge { len, .. } => *len,
        _ => return None,
    };
    let bytes = u32::try_from(len).ok()?.to_be_bytes();
    bytes
        .iter()
        .all(|&b| b.is_ascii_graphic() || b" \t\r\n".contains(&b))
        .then(|| String::from_utf8_lossy(&bytes).into_owned())
}

fn parent_or_dot(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// `path` as one shell word: as it is when it needs no quoting, else in
/// single quotes.
fn shell_word(path: &Path) -> String {
    let s = path.display().to_string();
    let plain = !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/._-+:@%,=".contains(&b));
    if plain {
        s
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

enum Inbox {
    Frames(FifoReader),
    Lines(LineReader),
}

/// The father: creates the FIFO at `path` if nothing is there, receives
/// from every writer that opens it, and writes one line to `out` per
/// message or line received, with this process's pid and the time:
///
/// ```text
/// Father (1234) received: Spam 000 at 2026-11-22T04:01:02.345678Z
/// ```
///
/// Control characters in a message are escaped, so each message is one
/// output line. Returns how many messages were received: after the last
/// writer closes (unless `opts.keep_listening`), or after
/// `opts.max_messages`. An unfinished last line is printed with
/// `(partial line: no newline before the end)` and counted. The FIFO is
/// removed on return if this call created it.
///
/// Errors: those of [`Fifo::create`](ipc_harness::fifo::Fifo::create) (e.g.
/// [`Error::NoSuchDirectory`]) and [`FifoReader::open`] (e.g.
/// [`Error::NotAFifo`] if something else is at `path`,
/// [`Error::SharedFifo`] without `opts.allow_shared`), framing errors, and
/// write errors on `out`.
pub fn listen(path: &Path, opts: &ListenOptions, out: &mut impl Write) -> Result<usize> {
    let fopts = FifoOptions::new()
        .wait(Wait::Blocking)
        .allow_shared(opts.allow_shared)
        .chunked(opts.chunked);
    let created = match if opts.parents {
        fopts.create_all(path)
    } else {
        fopts.create(path)
    } {
        Ok(fifo) => Some(fifo),
        Err(Error::AlreadyExists { .. }) => None,
        Err(e) => return Err(e),
    };
    let mut inbox = if opts.lines {
        Inbox::Lines(fopts.line_reader(path)?)
    } else {
        Inbox::Frames(fopts.reader(path)?)
    };
    if opts.keep_listening {
        match &mut inbox {
            Inbox::Frames(r) => r.keep_listening()?,
            Inbox::Lines(r) => r.keep_listening()?,
        }
    }
    let pid = sys::getpid();
    let mut count = 0;
    while opts.max_messages.is_none_or(|max| count < max) {
        let received = match &mut inbox {
            Inbox::Frames(r) => r.recv_bytes(),
            Inbox::Lines(r) => r.recv_line(),
        };
        let (msg, partial) = match received {
            Ok(msg) => (msg, false),
            Err(Error::Closed) => break,
            Err(Error::PartialLine { bytes }) => (bytes, true),
            Err(e) => return Err(e),
        };
        count += 1;
        let note = if partial {
            " (partial line: no newline before the end)"
        } else {
            ""
        };
        writeln!(
            out,
            "Father ({pid}) received: {} at {}{note}",
            printable(&msg),
            utc_timestamp(SystemTime::now())
        )
        .and_then(|()| out.flush())
        .map_err(|e| Error::io("write the listener's output", e))?;
        if partial {
            break;
        }
    }
    drop(inbox);
    drop(created);
    Ok(count)
}

/// The son: opens the FIFO at `path` for writing (waiting for a listener
/// as `opts.wait` says) and sends each of `messages`, framed or as a line.
/// Returns how many were sent.
///
/// Errors: those of [`FifoWriter::open`] ([`Error::NotFound`],
/// [`Error::NoReader`] with [`Wait::NonBlocking`], [`Error::Timeout`],
/// [`Error::NotAFifo`], [`Error::Symlink`], [`Error::SharedFifo`],
/// [`Error::InsecureDirectory`]) and [`Error::Closed`] if the listener goes
/// away.
pub fn send<M: AsRef<[u8]>>(
    path: &Path,
    opts: &SendOptions,
    messages: impl IntoIterator<Item = M>,
) -> Result<usize> {
    let writer = writer(path, opts)?;
    let mut count = 0;
    for msg in messages {
        if opts.lines {
            writer.send_line(msg)?;
        } else {
            writer.send_bytes(msg.as_ref())?;
        }
        count += 1;
    }
    Ok(count)
}

fn writer(path: &Path, opts: &SendOptions) -> Result<FifoWriter> {
    FifoOptions::new()
        .wait(opts.wait)
        .allow_shared(opts.allow_shared)
        .chunked(opts.chunked)
        .writer(path)
}

/// Like [`send`], with the messages read as lines from `input` (for
/// `fifo send PATH` with no messages: each line of standard input is one
/// message). The FIFO is opened before the first line is read.
pub fn send_lines_from(path: &Path, opts: &SendOptions, input: impl BufRead) -> Result<usize> {
    let writer = writer(path, opts)?;
    let mut count = 0;
    for line in input.lines() {
        let line = line.map_err(|e| Error::io("read standard input", e))?;
        if opts.lines {
            writer.send_line(&line)?;
        } else {
            writer.send_bytes(line.as_bytes())?;
        }
        count += 1;
    }
    Ok(count)
}

/// `bytes` as text on one line: invalid UTF-8 replaced, control characters
/// escaped (`\n`, `\t`, `\u{1b}`).
fn printable(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// `t` as an ISO 8601 UTC timestamp with microseconds,
/// `2026-11-22T04:01:02.345678Z`.
pub fn utc_timestamp(t: SystemTime) -> String {
    let d = t.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, day) = civil_from_days(days as i64);
    format!(
        "{y:04}-{m:02}-{day:02}T{:02}:{:02}:{:02}.{:06}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        d.subsec_micros()
    )
}

/// Days since 1970-01-01 to a (year, month, day) in the proleptic
/// Gregorian calendar (Howard Hinnant's `civil_from_days`).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn timestamps_are_iso_8601_utc() {
        let at = |s: u64, us: u64| {
            utc_timestamp(SystemTime::UNIX_EPOCH + Duration::from_micros(s * 1_000_000 + us))
        };
        assert_eq!(at(0, 0), "1970-01-01T00:00:00.000000Z");
        assert_eq!(at(1_700_000_000, 7), "2023-11-14T22:13:20.000007Z");
        assert_eq!(at(951_782_400, 0), "2000-02-29T00:00:00.000000Z");
        assert_eq!(at(4_107_542_399, 999_999), "2100-02-28T23:59:59.999999Z");
    }

    #[derive(Debug, clap::Parser)]
    struct Cli {
        #[command(subcommand)]
        fifo: FifoCommand,
    }

    fn parse(args: &[&str]) -> std::result::Result<FifoCommand, clap::Error> {
        use clap::Parser;
        Cli::try_parse_from(std::iter::once("fifo").chain(args.iter().copied())).map(|c| c.fifo)
    }

    #[test]
    fn the_subcommands_parse_as_documented() {
        assert_eq!(
            parse(&["listen", "/tmp/f", "--parents", "--lines", "--count", "3"]).unwrap(),
            FifoCommand::Listen(ListenArgs {
                path: "/tmp/f".into(),
                parents: true,
                lines: true,
                keep_listening: false,
                count: Some(3),
                allow_shared: false,
                chunked: false,
            })
        );
        assert_eq!(
            parse(&["send", "/tmp/f", "Spam 000", "Spam 001", "--timeout", "1.5"]).unwrap(),
            FifoCommand::Send(SendArgs {
                path: "/tmp/f".into(),
                messages: vec!["Spam 000".into(), "Spam 001".into()],
                lines: false,
                timeout: Some(Duration::from_millis(1500)),
                nonblock: false,
                allow_shared: false,
                chunked: false,
            })
        );
        assert!(matches!(
            parse(&["listen", "/tmp/f", "--chunked"]).unwrap(),
            FifoCommand::Listen(ListenArgs { chunked: true, .. })
        ));
        assert!(parse(&["listen", "/tmp/f", "--chunked", "--lines"]).is_err());
        assert!(matches!(
            parse(&["send", "/tmp/f", "--allow-shared"]).unwrap(),
            FifoCommand::Send(SendArgs {
                allow_shared: true,
                ..
            })
        ));
        assert!(matches!(
            parse(&["listen", "/tmp/f", "--allow-shared"]).unwrap(),
            FifoCommand::Listen(ListenArgs {
                allow_shared: true,
                ..
            })
        ));
        assert!(parse(&["send", "/tmp/f", "--timeout", "-1"]).is_err());
        assert!(parse(&["send", "/tmp/f", "--timeout", "1", "--nonblock"]).is_err());
        assert!(parse(&["listen"]).is_err(), "PATH is required");
    }

    #[test]
    fn a_length_header_that_reads_as_text_is_told_apart() {
        let truncated = |expected| Error::Truncated { expected, got: 7 };
        let header = |b: &[u8; 4]| u64::from(u32::from_be_bytes(*b));
        assert_eq!(
            text_header(&truncated(header(b"not "))).as_deref(),
            Some("not ")
        );
        assert_eq!(
            text_header(&truncated(header(b"ab\nc"))).as_deref(),
            Some("ab\nc")
        );
        let too_large = Error::TooLarge {
            len: header(b"Spam"),
            max: 1 << 20,
        };
        assert_eq!(text_header(&too_large).as_deref(), Some("Spam"));
        // Lengths a frame could well have are not text.
        assert_eq!(text_header(&truncated(10_000)), None);
        assert_eq!(text_header(&truncated(header(b"\0\0\x01\0"))), None);
        assert_eq!(text_header(&truncated(1 << 40)), None);
        assert_eq!(text_header(&Error::Closed), None);
    }

    #[test]
    fn paths_in_suggested_commands_are_one_shell_word() {
        assert_eq!(
            shell_word(Path::new("/tmp/spam-1.fifo")),
            "/tmp/spam-1.fifo"
        );
        assert_eq!(shell_word(Path::new("/tmp/my fifo")), "'/tmp/my fifo'");
        assert_eq!(shell_word(Path::new("/tmp/it's")), "'/tmp/it'\\''s'");
    }

    #[test]
    fn printable_keeps_one_message_on_one_line() {
        assert_eq!(printable(b"Spam 000"), "Spam 000");
        assert_eq!(printable(b"a\nb\t\xff"), "a\\nb\\t\u{fffd}");
    }
}
