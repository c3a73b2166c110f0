//! Pitfall 7, `fifo-open-blocks`: opening a FIFO blocks until the other side
//! opens it, and `O_NONBLOCK` gets `ENXIO`; the fix, `Fifo`, says how long to
//! wait and what went wrong.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::time::{Duration, Instant};

use ipc_harness::error::{Error, Result};
use ipc_harness::fifo::{Fifo, FifoReader, FifoWriter, Wait};
use ipc_harness::harness::fork::Outcome;

use super::kit::{HANG, Scratch, WAIT, describe_outcome, quote, say, spawn, story, success};

pub(super) fn fifo_open_blocks(out: &mut dyn Write) -> Result<(bool, bool)> {
    let scratch = Scratch::new()?;
    let path = scratch.path("spam.fifo");
    let fifo = Fifo::create(&path)?;
    story(
        out,
        &[
            "The naive code: the son opens the FIFO for writing, open(path, O_WRONLY), as",
            "Python's open(path, 'w') does, before any father has it open for reading.",
            "",
        ],
    )?;
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
    story(
        out,
        &[
            "",
            "Why: POSIX open(2) of a FIFO blocks until the other side opens it too: a writer",
            "waits for a reader, a reader for a writer. With O_NONBLOCK a reader opens at once,",
            "but a writer with no reader fails with ENXIO (\"No such device or address\").",
            "",
        ],
    )?;

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
