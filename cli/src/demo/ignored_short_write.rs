//! Pitfall 5, `ignored-short-write`: a non-blocking write took only part of a
//! message and the writer never looked; the fix, `pipe()`'s `Sender`, writes
//! until every byte is in.

use std::io::Write;
use std::os::fd::AsFd;

use ipc_harness::error::{Error, Result};
use ipc_harness::frame::{self};
use ipc_harness::pipe::{Receiver, Sender, pipe};
use ipc_harness::sys;

use super::kit::{
    WAIT, decode_all, drain, go, new_pipe, quote, say, set_capacity, spawn, story, success, wait_go,
};

pub(super) fn ignored_short_write(out: &mut dyn Write) -> Result<(bool, bool)> {
    let (data_r, data_w) = new_pipe()?;
    let cap = set_capacity(data_w.as_fd(), 4096)?;
    let messages: Vec<Vec<u8>> = vec![
        vec![b'a'; cap + cap / 2],
        b"Spam 001".to_vec(),
        b"Spam 002".to_vec(),
    ];
    story(
        out,
        &[
            "The naive code: a writer on a non-blocking pipe sends each framed message with one",
            "write(2) and ignores the count it returns (as os.write's return value often is).",
        ],
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
    story(
        out,
        &[
            "Message 1's header promised more bytes than were ever written, so the reader",
            "swallowed messages 2 and 3 as the rest of message 1, and then the stream ended.",
        ],
    )?;
    let naive_failed = msgs != messages;
    story(
        out,
        &[
            "",
            "Why: a non-blocking write(2) to a pipe takes what fits and returns the count;",
        ],
    )?;
    say(
        out,
        &format!(
            "over PIPE_BUF ({}) bytes it may take part of the buffer. The rest is the",
            sys::PIPE_BUF
        ),
    )?;
    story(
        out,
        &["caller's to write again, once the pipe has room.", ""],
    )?;

    story(
        out,
        &[
            "The fix: ipc_harness::pipe()'s Sender writes until every byte is in, waiting for",
            "room as the reader makes it. Same messages, same 4 KiB pipe, reader in step:",
        ],
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
