//! Pitfall 1, `coalescing`: two writes come back as one read on a plain
//! pipe; the fix, `pipe()`, frames each message.

use std::io::Write;
use std::os::fd::AsFd;
use std::time::Duration;

use ipc_harness::error::{Error, Result};
use ipc_harness::pipe::pipe;
use ipc_harness::sys;

use super::kit::{
    WAIT, go, new_pipe, provenance, quote, say, spam, spawn, story, success, wait_go,
};

pub(super) fn coalescing(out: &mut dyn Write) -> Result<(bool, bool)> {
    let messages: Vec<Vec<u8>> = (0..6).map(spam).collect();
    story(
        out,
        &[
            "The naive code: the son writes each message with one write(2) on a plain pipe,",
            "the father takes each read(fd, 1024) as one message. The son writes two",
            "messages, then waits while the father reads, three times (as a busy father would).",
            "",
        ],
    )?;

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
    story(
        out,
        &[
            "",
            "Why: a pipe is a stream of bytes. POSIX keeps the bytes in order, but a read",
            "returns whatever is there, up to the buffer's size: the boundaries between",
            "writes are not in the pipe at all. \"Spam 004Spam 000\" is two messages.",
            "",
        ],
    )?;

    // Fixed: the same workload over pipe(), which frames each message.
    story(
        out,
        &[
            "The fix: ipc_harness::pipe() sends a length header before each message, so each",
            "receive returns exactly one. Same son, same pacing, same six messages:",
        ],
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
