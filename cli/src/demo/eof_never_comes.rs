//! Pitfall 6, `eof-never-comes`: a reader that kept its own copy of the write end
//! waits forever for end of stream; the fix gives each process only the ends
//! it uses.

use std::io::Write;
use std::time::Duration;

use ipc_harness::error::{Error, Result};
use ipc_harness::harness::fork::{ChildReport, Outcome};
use ipc_harness::pipe::pipe;

use super::kit::{HANG, WAIT, describe_outcome, dup, quote, say, spam, spawn, story, success};

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

pub(super) fn eof_never_comes(out: &mut dyn Write) -> Result<(bool, bool)> {
    let messages: Vec<Vec<u8>> = (0..3).map(spam).collect();
    story(
        out,
        &[
            "The naive code: the parent makes a pipe and forks a writer and a reader. The",
            "reader reads until the end of the stream, but never closed the copy of the write",
            "end it inherited. The writer sends three messages and exits.",
            "",
        ],
    )?;
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
    story(
        out,
        &[
            "",
            "Why: read(2) on a pipe returns 0 (end of stream) only when every write end, in",
            "every process, is closed. The reader holds one itself, so it waits forever for",
            "itself. (Without our deadline it would still be waiting.)",
            "",
        ],
    )?;

    story(
        out,
        &[
            "The fix: give each process only the ends it uses. With harness::fork, values moved",
            "into a child are closed in the parent; the reader holds no write end:",
        ],
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
